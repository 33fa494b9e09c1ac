//! Packets in flight, hook verdicts, and a small independent TCP/IPv4 codec.
//!
//! The simulator deliberately does not use [`crate::wire`] to read or build
//! segments: the code under test should not also be the oracle. What is here
//! is the minimum needed to route, trace and inject packets.

use crate::time::Instant;
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

use super::NodeId;

/// One IPv4 datagram travelling through the simulated network.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    /// Unique, increasing number (order of emission or injection).
    pub id: u64,
    /// When it was emitted (or injected).
    pub sent: Instant,
    /// Emitting node, `None` for injected packets.
    pub from: Option<NodeId>,
    /// Destination node (owner of the IPv4 destination address).
    pub to: NodeId,
    /// The whole datagram (IPv4 or IPv6), or with an Ethernet link the
    /// whole frame.
    pub data: Vec<u8>,
    /// Bytes of link-layer header in front of the IP datagram in `data`:
    /// 14 on an Ethernet link ([`Sim::add_stack`](super::Sim::add_stack)
    /// with `Config::ethernet`), 0 for bare IP.
    pub link_len: usize,
}

impl Packet {
    /// The TCP view of the datagram, if it is a well-formed IPv4/TCP packet
    /// (behind the link header, if any).
    pub fn tcp(&self) -> Option<TcpSegment> {
        TcpSegment::parse(self.ip())
    }

    /// The IP datagram: `data` without the link header (empty for a frame
    /// shorter than its header).
    pub fn ip(&self) -> &[u8] {
        self.data.get(self.link_len..).unwrap_or(&[])
    }

    /// The EtherType of an Ethernet frame (`None` for bare IP).
    pub fn ethertype(&self) -> Option<u16> {
        if self.link_len < 14 {
            return None;
        }
        Some(u16::from_be_bytes([
            *self.data.get(12)?,
            *self.data.get(13)?,
        ]))
    }

    /// The destination MAC of an Ethernet frame (`None` for bare IP).
    pub fn dst_mac(&self) -> Option<[u8; 6]> {
        if self.link_len < 14 {
            return None;
        }
        self.data.get(..6)?.try_into().ok()
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {:?}->{:?} ",
            self.id, self.sent, self.from, self.to
        )?;
        match self.tcp() {
            Some(seg) => write!(f, "{seg}"),
            None => write!(f, "[{} bytes, not TCP]", self.data.len()),
        }
    }
}

/// What a packet hook decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the (possibly modified) packet continue.
    Deliver,
    /// Discard it.
    Drop,
}

/// TCP flag bits as on the wire (low 8 bits of byte 13).
pub mod flags {
    /// FIN: no more data from the sender.
    pub const FIN: u8 = 0x01;
    /// SYN: synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// RST: reset the connection.
    pub const RST: u8 = 0x04;
    /// PSH: push function.
    pub const PSH: u8 = 0x08;
    /// ACK: the acknowledgment number is significant.
    pub const ACK: u8 = 0x10;
}

/// The destination address of an IPv4 (bytes 16..20) or IPv6 (bytes
/// 24..40) datagram, by its version nibble, if long enough.
pub fn ip_dst(data: &[u8]) -> Option<IpAddr> {
    match data.first()? >> 4 {
        6 => {
            let b: [u8; 16] = data.get(24..40)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => ipv4_dst(data).map(IpAddr::V4),
    }
}

/// The IPv4 destination address of a datagram (bytes 16..20), if long enough.
pub fn ipv4_dst(data: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = data.get(16..20)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// A decoded TCP/IPv4 segment (header fields and payload length). Checksums
/// are not verified: corrupted packets still parse so that traces show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// Sequence Number.
    pub seq: u32,
    /// Acknowledgment Number.
    pub ack: u32,
    /// Control bits (see [`flags`]).
    pub flags: u8,
    /// Window, raw (not scaled).
    pub window: u16,
    /// Raw option bytes.
    pub options: Vec<u8>,
    /// Payload bytes after the TCP header.
    pub payload_len: usize,
}

impl TcpSegment {
    /// Decodes an IPv4 datagram carrying TCP; `None` for anything else.
    pub fn parse(data: &[u8]) -> Option<TcpSegment> {
        if data.len() < 20 || data[0] >> 4 != 4 || data[9] != 6 {
            return None;
        }
        let ihl = usize::from(data[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if ihl < 20 || total < ihl || total > data.len() {
            return None;
        }
        let tcp = &data[ihl..total];
        if tcp.len() < 20 {
            return None;
        }
        let doff = usize::from(tcp[12] >> 4) * 4;
        if doff < 20 || doff > tcp.len() {
            return None;
        }
        let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Some(TcpSegment {
            src: SocketAddrV4::new(addr(&data[12..16]), be16(&tcp[0..2])),
            dst: SocketAddrV4::new(addr(&data[16..20]), be16(&tcp[2..4])),
            seq: be32(&tcp[4..8]),
            ack: be32(&tcp[8..12]),
            flags: tcp[13],
            window: be16(&tcp[14..16]),
            options: tcp[20..doff].to_vec(),
            payload_len: tcp.len() - doff,
        })
    }

    /// Whether every bit of `flag` (from [`flags`]) is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }

    /// Whether SYN is set.
    pub fn syn(&self) -> bool {
        self.has(flags::SYN)
    }

    /// Whether FIN is set.
    pub fn fin(&self) -> bool {
        self.has(flags::FIN)
    }

    /// Whether RST is set.
    pub fn rst(&self) -> bool {
        self.has(flags::RST)
    }

    /// Whether ACK is set.
    pub fn is_ack(&self) -> bool {
        self.has(flags::ACK)
    }

    /// Sequence space the segment occupies (payload plus SYN and FIN).
    pub fn seq_len(&self) -> u32 {
        // Payload is bounded by the 16-bit IPv4 total length.
        self.payload_len as u32 + u32::from(self.syn()) + u32::from(self.fin())
    }

    /// The sequence number just after this segment.
    pub fn seq_end(&self) -> u32 {
        self.seq.wrapping_add(self.seq_len())
    }

    /// The window scale option's shift, if present (RFC 7323 2.2).
    pub fn window_scale(&self) -> Option<u8> {
        let mut i = 0;
        let o = &self.options;
        while i < o.len() {
            match o[i] {
                0 => return None,
                1 => i += 1,
                kind => {
                    let len = usize::from(*o.get(i + 1)?);
                    if len < 2 || i + len > o.len() {
                        return None;
                    }
                    if kind == 3 && len == 3 {
                        return Some(o[i + 2]);
                    }
                    i += len;
                }
            }
        }
        None
    }
}

impl fmt::Display for TcpSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fl = String::new();
        for (bit, c) in [
            (flags::SYN, 'S'),
            (flags::FIN, 'F'),
            (flags::RST, 'R'),
            (flags::PSH, 'P'),
            (flags::ACK, '.'),
        ] {
            if self.flags & bit != 0 {
                fl.push(c);
            }
        }
        write!(
            f,
            "{} > {} [{}] seq={} ack={} win={} len={}",
            self.src, self.dst, fl, self.seq, self.ack, self.window, self.payload_len
        )
    }
}

/// One's-complement sum of big-endian 16-bit words (RFC 1071), unfolded.
fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Builds TCP/IPv4 datagrams with correct checksums, for injection.
///
/// ```
/// # use tcp_stack::sim::{SegmentBuilder, flags};
/// # use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
/// let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1000);
/// let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
/// let bytes = SegmentBuilder::new(a, b).seq(7).flags(flags::RST).build();
/// assert_eq!(bytes.len(), 40);
/// ```
#[derive(Debug, Clone)]
pub struct SegmentBuilder {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: Vec<u8>,
    payload: Vec<u8>,
    ttl: u8,
}

impl SegmentBuilder {
    /// A segment from `src` to `dst`: sequence and acknowledgment numbers 0, no
    /// flags, window 65535, no options or payload, TTL 64.
    pub fn new(src: SocketAddrV4, dst: SocketAddrV4) -> Self {
        SegmentBuilder {
            src,
            dst,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65535,
            options: Vec::new(),
            payload: Vec::new(),
            ttl: 64,
        }
    }

    /// Sets the Sequence Number.
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    /// Sets the Acknowledgment Number.
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }

    /// Flag bits from [`flags`].
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the Window.
    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }

    /// Raw option bytes, padded with zero (end-of-list) bytes to a multiple of 4.
    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        while self.options.len() & 3 != 0 {
            self.options.push(0);
        }
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// The finished datagram.
    pub fn build(&self) -> Vec<u8> {
        let tcp_len = 20 + self.options.len() + self.payload.len();
        let total = 20 + tcp_len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = self.ttl;
        p[9] = 6;
        p[12..16].copy_from_slice(&self.src.ip().octets());
        p[16..20].copy_from_slice(&self.dst.ip().octets());
        let ip_csum = fold(ones_sum(0, &p[..20]));
        p[10..12].copy_from_slice(&ip_csum.to_be_bytes());

        let t = &mut p[20..];
        t[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        t[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        t[4..8].copy_from_slice(&self.seq.to_be_bytes());
        t[8..12].copy_from_slice(&self.ack.to_be_bytes());
        t[12] = (((20 + self.options.len()) / 4) as u8) << 4;
        t[13] = self.flags;
        t[14..16].copy_from_slice(&self.window.to_be_bytes());
        t[20..20 + self.options.len()].copy_from_slice(&self.options);
        t[20 + self.options.len()..].copy_from_slice(&self.payload);
        let mut acc = ones_sum(0, &self.src.ip().octets());
        acc = ones_sum(acc, &self.dst.ip().octets());
        acc = acc.wrapping_add(6).wrapping_add(tcp_len as u32);
        let csum = fold(ones_sum(acc, t));
        t[16..18].copy_from_slice(&csum.to_be_bytes());
        p
    }
}

/// Whether the IPv4 header checksum and the TCP checksum of a datagram verify.
pub fn checksums_ok(data: &[u8]) -> bool {
    if data.len() < 20 {
        return false;
    }
    let ihl = usize::from(data[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if ihl < 20 || total < ihl || total > data.len() {
        return false;
    }
    if fold(ones_sum(0, &data[..ihl])) != 0 {
        return false;
    }
    if data[9] != 6 {
        return true;
    }
    let tcp = &data[ihl..total];
    let mut acc = ones_sum(0, &data[12..20]);
    acc = acc.wrapping_add(6).wrapping_add(tcp.len() as u32);
    fold(ones_sum(acc, tcp)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000)
    }
    fn b() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80)
    }

    #[test]
    fn build_then_parse_round_trips() {
        let bytes = SegmentBuilder::new(a(), b())
            .seq(0xffff_fff0)
            .ack(42)
            .flags(flags::SYN | flags::ACK)
            .window(1000)
            .options(&[2, 4, 5, 0xb4, 1, 3, 3, 7])
            .payload(b"hello")
            .build();
        assert!(checksums_ok(&bytes));
        assert_eq!(ipv4_dst(&bytes), Some(*b().ip()));
        let seg = TcpSegment::parse(&bytes).unwrap();
        assert_eq!(seg.src, a());
        assert_eq!(seg.dst, b());
        assert_eq!(seg.seq, 0xffff_fff0);
        assert_eq!(seg.ack, 42);
        assert!(seg.syn() && seg.is_ack() && !seg.fin() && !seg.rst());
        assert_eq!(seg.window, 1000);
        assert_eq!(seg.payload_len, 5);
        assert_eq!(seg.seq_len(), 6);
        assert_eq!(seg.seq_end(), 0xffff_fff6);
        assert_eq!(seg.window_scale(), Some(7));
    }

    #[test]
    fn every_single_bit_flip_breaks_a_checksum() {
        let bytes = SegmentBuilder::new(a(), b())
            .seq(1)
            .flags(flags::ACK)
            .payload(&[0xa5; 33])
            .build();
        for bit in 0..bytes.len() * 8 {
            let mut c = bytes.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(!checksums_ok(&c), "bit {bit}");
        }
    }

    #[test]
    fn garbage_does_not_parse() {
        assert!(TcpSegment::parse(&[]).is_none());
        assert!(TcpSegment::parse(&[0x45; 19]).is_none());
        let mut bytes = SegmentBuilder::new(a(), b()).build();
        bytes[9] = 17;
        assert!(TcpSegment::parse(&bytes).is_none());
        assert!(ipv4_dst(&[0; 10]).is_none());
    }
}
