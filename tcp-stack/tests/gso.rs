//! Super-segments (`poll_transmit_gso`) and large received segments
//! (`handle_packet_meta`): two stacks over a lossless link, with a tiny
//! test-only segmenter standing in for the kernel's GSO.

use std::net::{Ipv4Addr, SocketAddrV4};
use tcp_stack::wire::checksum;
use tcp_stack::wire::tcp::fill_checksum;
use tcp_stack::{Config, ConnId, Duration, Instant, RxMeta, Stack, State, Transmit, TxHeaders};

const MTU: usize = 1500;
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// How a super-segment reaches the peer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Cut into MTU-sized datagrams with complete checksums (TSO on the
    /// way to a real wire).
    Segmented,
    /// Handed over whole, checksum partial (a Linux TUN delivering a
    /// GRO/TSO packet to us).
    Whole,
}

/// Cuts a super-segment as Linux's `tcp_gso_segment` does: the headers
/// copied into every part, sequence numbers advanced, FIN/PSH only on the
/// last part, CWR only on the first, IP ids consecutive, checksums
/// completed.
fn segment(packet: &[u8], size: usize) -> Vec<Vec<u8>> {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let thl = usize::from(packet[ihl + 12] >> 4) * 4;
    let hl = ihl + thl;
    let payload = &packet[hl..];
    let seq = u32::from_be_bytes(packet[ihl + 4..ihl + 8].try_into().unwrap());
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).unwrap());
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap());
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = packet[..hl].to_vec();
            p.extend_from_slice(chunk);
            let total = p.len() as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&p[..ihl]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            let off = (i * size) as u32;
            p[ihl + 4..ihl + 8].copy_from_slice(&seq.wrapping_add(off).to_be_bytes());
            const FIN: u8 = 0x01;
            const PSH: u8 = 0x08;
            const CWR: u8 = 0x80;
            if i != last {
                p[ihl + 13] &= !(FIN | PSH);
            }
            if i != 0 {
                p[ihl + 13] &= !CWR;
            }
            fill_checksum(&mut p[ihl..], src, dst);
            p
        })
        .collect()
}

struct Pair {
    a: Stack,
    b: Stack,
    now: Instant,
    path: Path,
    /// Super-segments seen, and the parts they became.
    supers: usize,
    parts: usize,
    /// Largest datagram delivered.
    largest: usize,
}

impl Pair {
    fn new(path: Path) -> Pair {
        let cfg = |addr, seed| Config {
            mtu: MTU,
            seed,
            send_buffer: 1 << 20,
            recv_buffer: 1 << 20,
            ..Config::with_addr(addr)
        };
        Pair {
            a: Stack::new(cfg(A, 1)),
            b: Stack::new(cfg(B, 2)),
            now: Instant::from_micros(0),
            path,
            supers: 0,
            parts: 0,
            largest: 0,
        }
    }

    /// Moves everything due from `from` to `to` once.
    fn carry(&mut self, a_to_b: bool) -> bool {
        let mut buf = vec![0u8; 65535];
        let mut moved = false;
        loop {
            let (from, to) = if a_to_b {
                (&mut self.a, &mut self.b)
            } else {
                (&mut self.b, &mut self.a)
            };
            let Some(Transmit {
                len,
                segment_size,
                headers,
            }) = from.poll_transmit_gso(self.now, &mut buf)
            else {
                break;
            };
            moved = true;
            let pkt = &buf[..len];
            // The layout reported with every datagram is the one written.
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let expect = TxHeaders {
                link_len: 0,
                ip_len: ihl as u16,
                ipv6: false,
                tcp_len: (pkt[ihl + 12] >> 4) * 4,
                cwr: pkt[ihl + 13] & 0x80 != 0,
            };
            assert_eq!(headers, expect, "headers of a {len}-byte datagram");
            match (segment_size, self.path) {
                (None, _) => {
                    assert!(len <= MTU, "plain datagram of {len} bytes");
                    self.largest = self.largest.max(len);
                    to.handle_packet(self.now, pkt);
                }
                (Some(size), Path::Segmented) => {
                    self.supers += 1;
                    let parts = segment(pkt, usize::from(size));
                    assert!(parts.len() >= 2, "a super-segment of one part");
                    for (i, p) in parts.iter().enumerate() {
                        assert!(p.len() <= MTU, "part of {} bytes", p.len());
                        let full = p.len() == parts[0].len();
                        assert!(full || i == parts.len() - 1, "short part {i}");
                        self.largest = self.largest.max(p.len());
                        to.handle_packet(self.now, p);
                    }
                    self.parts += parts.len();
                }
                (Some(_), Path::Whole) => {
                    self.supers += 1;
                    self.largest = self.largest.max(len);
                    let meta = RxMeta {
                        checksum_verified: true,
                    };
                    to.handle_packet_meta(self.now, pkt, meta);
                }
            }
        }
        moved
    }

    fn step(&mut self) {
        while self.carry(true) | self.carry(false) {}
        self.now += Duration::from_millis(1);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    fn establish(&mut self) -> (ConnId, ConnId) {
        let addr = SocketAddrV4::new(B, 80);
        let l = self.b.listen(addr, 4).unwrap();
        let ca = self.a.connect(self.now, None, addr).unwrap();
        for _ in 0..100 {
            self.step();
            if let Some(cb) = self.b.accept(l) {
                assert_eq!(self.a.state(ca), State::Established);
                return (ca, cb);
            }
        }
        panic!("no connection");
    }
}

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8 ^ salt).collect()
}

/// Sends `a_data` from A and `b_data` from B at once, then closes both;
/// returns what each side read.
fn exchange(pair: &mut Pair, a_data: &[u8], b_data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (ca, cb) = pair.establish();
    let (mut a_sent, mut b_sent) = (0, 0);
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    let (mut a_done, mut b_done) = (false, false);
    let mut buf = vec![0u8; 65536];
    for _ in 0..20_000 {
        if a_sent < a_data.len() {
            a_sent += pair.a.send(ca, &a_data[a_sent..]).unwrap_or(0);
        } else if !a_done {
            pair.a.shutdown(ca).unwrap();
            a_done = true;
        }
        if b_sent < b_data.len() {
            b_sent += pair.b.send(cb, &b_data[b_sent..]).unwrap_or(0);
        } else if !b_done {
            pair.b.shutdown(cb).unwrap();
            b_done = true;
        }
        pair.step();
        while let Ok(n @ 1..) = pair.b.recv(cb, &mut buf) {
            at_b.extend_from_slice(&buf[..n]);
        }
        while let Ok(n @ 1..) = pair.a.recv(ca, &mut buf) {
            at_a.extend_from_slice(&buf[..n]);
        }
        if at_a.len() == b_data.len()
            && at_b.len() == a_data.len()
            && !pair.a.state(ca).can_recv()
            && !pair.b.state(cb).can_recv()
        {
            break;
        }
    }
    (at_a, at_b)
}

/// [`exchange`] of `(length, seed)` patterns each way, checked byte-exact.
fn exchange_exact(pair: &mut Pair, a: (usize, u8), b: (usize, u8)) {
    let a_data = pattern(a.0, a.1);
    let b_data = pattern(b.0, b.1);
    let (at_a, at_b) = exchange(pair, &a_data, &b_data);
    assert!(
        at_b == a_data,
        "A to B not byte-exact ({} bytes)",
        at_b.len()
    );
    assert!(
        at_a == b_data,
        "B to A not byte-exact ({} bytes)",
        at_a.len()
    );
}

#[test]
fn super_segments_split_into_valid_segments_the_peer_accepts() {
    let mut pair = Pair::new(Path::Segmented);
    exchange_exact(&mut pair, (3_000_123, 0x5a), (1_000_001, 0xa5));
    assert!(pair.supers > 10, "only {} super-segments", pair.supers);
    assert!(pair.parts > 2 * pair.supers);
    let stats = pair.a.stats();
    assert_eq!(stats.drop_checksum + pair.b.stats().drop_checksum, 0);
    assert_eq!(stats.retransmits, 0);
}

#[test]
fn whole_super_segments_with_partial_checksums_are_received() {
    let mut pair = Pair::new(Path::Whole);
    exchange_exact(&mut pair, (2_000_000, 0x11), (777_777, 0x22));
    assert!(pair.supers > 10, "only {} super-segments", pair.supers);
    assert!(pair.largest > 8 * MTU, "largest datagram {}", pair.largest);
    assert_eq!(
        pair.a.stats().drop_checksum + pair.b.stats().drop_checksum,
        0
    );
    assert_eq!(pair.a.stats().drop_segment + pair.b.stats().drop_segment, 0);
}

#[test]
fn a_partial_checksum_is_dropped_unless_the_device_vouches_for_it() {
    let mut pair = Pair::new(Path::Whole);
    let (ca, _cb) = pair.establish();
    pair.a.send(ca, &pattern(50_000, 1)).unwrap();
    let mut buf = vec![0u8; 65535];
    let t = pair.a.poll_transmit_gso(pair.now, &mut buf).unwrap();
    assert!(t.segment_size.is_some(), "{t:?}");
    let before = pair.b.stats().drop_checksum;
    pair.b.handle_packet(pair.now, &buf[..t.len]);
    assert_eq!(pair.b.stats().drop_checksum, before + 1);
}

#[test]
fn plain_poll_transmit_never_makes_super_segments() {
    let mut pair = Pair::new(Path::Segmented);
    let (ca, _cb) = pair.establish();
    pair.a.send(ca, &pattern(50_000, 1)).unwrap();
    let mut buf = vec![0u8; 65535];
    let mut n = 0;
    while let Some(len) = pair.a.poll_transmit(pair.now, &mut buf) {
        assert!(len <= MTU);
        n += 1;
    }
    assert_eq!(n, 10, "initial window of 10 segments");
}

/// The control queue's datagrams (here the RST of RFC 9293 3.10.7.1 for a
/// SYN to a closed port) carry their header layout too: `carry` checks
/// every datagram's against its bytes.
#[test]
fn control_queue_datagrams_report_their_headers() {
    let mut pair = Pair::new(Path::Whole);
    let ca = pair
        .a
        .connect(pair.now, None, SocketAddrV4::new(B, 81))
        .unwrap();
    for _ in 0..10 {
        pair.step();
    }
    assert_eq!(pair.a.state(ca), State::Closed, "reset by the RST");
    assert!(pair.b.stats().rst_sent >= 1);
}
