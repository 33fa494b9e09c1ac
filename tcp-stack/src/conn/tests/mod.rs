//! Unit tests per state and event, driving a [`Stack`] with hand-made
//! segments from a scripted peer. Named `test_<state>_<event>`.

use crate::wire::tcp::fill_checksum;
use crate::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptions, TcpRepr};
use crate::{Config, ConnId, Duration, Error, Event, Instant, SeqNum, SockOpt, Stack, State};
use std::net::{Ipv4Addr, SocketAddrV4};

const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LOCAL: SocketAddrV4 = SocketAddrV4::new(LOCAL_IP, 80);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(REMOTE_IP, 4000);
const REMOTE_ISS: u32 = 1000;

/// A parsed segment the stack sent.
#[derive(Debug, Clone)]
struct Out {
    tcp: TcpRepr,
    payload: Vec<u8>,
}

impl Out {
    fn flags(&self) -> TcpFlags {
        self.tcp.flags
    }
}

/// A stack plus a scripted peer at `REMOTE`.
struct Harness {
    stack: Stack,
    now: Instant,
    /// The peer's next sequence number.
    peer_seq: SeqNum,
    /// What the peer acknowledges (our next byte).
    peer_ack: SeqNum,
    conn: Option<ConnId>,
    local: SocketAddrV4,
}

fn config() -> Config {
    Config {
        addrs: vec![LOCAL_IP.into()],
        timestamps: false,
        sack: false,
        window_scaling: false,
        recv_buffer: 8192,
        recv_buffer_max: 8192,
        send_buffer: 8192,
        seed: 7,
        msl: Duration::from_secs(10),
        ecn: false,
        ..Config::default()
    }
}

fn packet(src: SocketAddrV4, dst: SocketAddrV4, tcp: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let hl = tcp.header_len();
    let mut buf = vec![0u8; 20 + hl + payload.len()];
    tcp.emit(&mut buf[20..20 + hl]);
    buf[20 + hl..].copy_from_slice(payload);
    fill_checksum(&mut buf[20..], *src.ip(), *dst.ip());
    Ipv4Repr {
        src: *src.ip(),
        dst: *dst.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: hl + payload.len(),
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut buf);
    buf
}

impl Harness {
    fn new(cfg: Config) -> Harness {
        Harness {
            stack: Stack::new(cfg),
            now: Instant::from_millis(1000),
            peer_seq: SeqNum(REMOTE_ISS),
            peer_ack: SeqNum(0),
            conn: None,
            local: LOCAL,
        }
    }

    fn id(&self) -> ConnId {
        self.conn.expect("no connection")
    }

    fn state(&self) -> State {
        self.stack.state(self.id())
    }

    /// Sends a raw segment from the peer.
    #[track_caller]
    fn send_raw(&mut self, seq: SeqNum, ack: Option<SeqNum>, flags: TcpFlags, payload: &[u8]) {
        self.send_opts(seq, ack, flags, payload, TcpOptions::default(), 65535);
    }

    fn send_opts(
        &mut self,
        seq: SeqNum,
        ack: Option<SeqNum>,
        flags: TcpFlags,
        payload: &[u8],
        options: TcpOptions,
        window: u16,
    ) {
        let mut flags = flags;
        if ack.is_some() {
            flags |= TcpFlags::ACK;
        }
        let tcp = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: self.local.port(),
            seq,
            ack: ack.unwrap_or(SeqNum(0)),
            flags,
            window,
            urgent: 0,
            options,
        };
        let pkt = packet(REMOTE, self.local, &tcp, payload);
        self.stack.handle_packet(self.now, &pkt);
    }

    /// The peer sends in-sequence `payload` with `flags`, acknowledging `peer_ack`.
    fn send(&mut self, flags: TcpFlags, payload: &[u8]) {
        let (seq, ack) = (self.peer_seq, self.peer_ack);
        self.send_raw(seq, Some(ack), flags, payload);
        self.peer_seq += payload.len() + usize::from(flags.fin()) + usize::from(flags.syn());
    }

    /// Everything the stack wants to send now.
    fn output(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2000];
        while let Some(n) = self.stack.poll_transmit(self.now, &mut buf) {
            let ip = Ipv4Packet::new_checked(&buf[..n]).expect("valid ip");
            let repr = Ipv4Repr::parse(&ip).expect("valid ip repr");
            assert_eq!(repr.protocol, IpProtocol::Tcp);
            let (tcp, payload) =
                TcpRepr::parse(ip.payload(), repr.src, repr.dst, true).expect("valid tcp");
            out.push(Out {
                tcp,
                payload: payload.to_vec(),
            });
        }
        out
    }

    /// Exactly one segment must be sent now; returns it.
    #[track_caller]
    fn expect_one(&mut self) -> Out {
        let out = self.output();
        assert_eq!(out.len(), 1, "expected one segment, got {out:#?}");
        out.into_iter().next().unwrap()
    }

    #[track_caller]
    fn expect_none(&mut self) {
        let out = self.output();
        assert!(out.is_empty(), "expected no segment, got {out:#?}");
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.stack.handle_timeout(self.now);
    }

    /// Runs timers until `t` has passed.
    fn run_timers_until(&mut self, t: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        loop {
            match self.stack.poll_timeout() {
                Some(at) if at <= t => {
                    self.now = self.now.max(at);
                    self.stack.handle_timeout(self.now);
                    out.extend(self.output());
                }
                _ => break,
            }
        }
        self.now = t;
        out
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.stack.poll_event()).collect()
    }
}

// ---------------------------------------------------------------------
// Fixtures named after states
// ---------------------------------------------------------------------

fn socket_listen() -> Harness {
    socket_listen_with(config())
}

fn socket_listen_with(cfg: Config) -> Harness {
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 16).unwrap();
    h
}

/// Passive open up to SYN-RECEIVED; returns the harness and our ISS.
fn socket_syn_received() -> (Harness, SeqNum) {
    socket_syn_received_with(config())
}

fn socket_syn_received_with(cfg: Config) -> (Harness, SeqNum) {
    let mut h = socket_listen_with(cfg);
    h.send_raw(h.peer_seq, None, TcpFlags::SYN, &[]);
    h.peer_seq += 1;
    let synack = h.expect_one();
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.tcp.ack, SeqNum(REMOTE_ISS + 1));
    h.peer_ack = synack.tcp.seq + 1;
    (h, synack.tcp.seq)
}

fn socket_established() -> Harness {
    socket_established_with(config())
}

fn socket_established_with(cfg: Config) -> Harness {
    let (mut h, _) = socket_syn_received_with(cfg);
    h.send(TcpFlags::EMPTY, &[]);
    h.expect_none();
    let lid = crate::ListenerId(0);
    let id = h.stack.accept(lid).expect("accept");
    h.conn = Some(id);
    assert_eq!(h.state(), State::Established);
    h
}

/// Active open: SYN-SENT, with the SYN already observed.
fn socket_syn_sent() -> (Harness, SeqNum) {
    let mut h = Harness::new(config());
    let id = h
        .stack
        .connect(
            h.now,
            Some(SocketAddrV4::new(LOCAL_IP, 50000).into()),
            REMOTE,
        )
        .unwrap();
    h.conn = Some(id);
    h.local = SocketAddrV4::new(LOCAL_IP, 50000);
    let syn = h.expect_one();
    assert_eq!(syn.flags(), TcpFlags::SYN);
    assert_eq!(syn.tcp.options.mss, Some(1460));
    assert_eq!(h.state(), State::SynSent);
    (h, syn.tcp.seq)
}

fn socket_fin_wait_1() -> Harness {
    let mut h = socket_established();
    h.stack.shutdown(h.id()).unwrap();
    assert_eq!(h.state(), State::FinWait1);
    let fin = h.expect_one();
    assert!(fin.flags().fin());
    h
}

fn socket_fin_wait_2() -> Harness {
    let mut h = socket_fin_wait_1();
    h.peer_ack += 1;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.state(), State::FinWait2);
    h
}

fn socket_close_wait() -> Harness {
    let mut h = socket_established();
    h.send(TcpFlags::FIN, &[]);
    assert_eq!(h.state(), State::CloseWait);
    let ack = h.expect_one();
    assert_eq!(ack.tcp.ack, h.peer_seq);
    h
}

fn socket_last_ack() -> Harness {
    let mut h = socket_close_wait();
    h.stack.shutdown(h.id()).unwrap();
    assert_eq!(h.state(), State::LastAck);
    let fin = h.expect_one();
    assert!(fin.flags().fin());
    h
}

fn socket_closing() -> Harness {
    let mut h = socket_fin_wait_1();
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    h.send(TcpFlags::FIN, &[]);
    assert_eq!(h.state(), State::Closing);
    let ack = h.expect_one();
    assert_eq!(ack.tcp.ack, h.peer_seq);
    h
}

fn socket_time_wait() -> Harness {
    let mut h = socket_fin_wait_2();
    h.send(TcpFlags::FIN, &[]);
    assert_eq!(h.state(), State::TimeWait);
    let ack = h.expect_one();
    assert_eq!(ack.tcp.ack, h.peer_seq);
    h
}

// ---------------------------------------------------------------------
// CLOSED
// ---------------------------------------------------------------------

#[test]
fn test_closed_syn_gets_rst_ack() {
    let mut h = Harness::new(config());
    h.send_raw(SeqNum(5), None, TcpFlags::SYN, &[]);
    let rst = h.expect_one();
    // RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    assert_eq!(rst.flags(), TcpFlags::RST | TcpFlags::ACK);
    assert_eq!(rst.tcp.seq, SeqNum(0));
    assert_eq!(rst.tcp.ack, SeqNum(6));
}

#[test]
fn test_closed_ack_gets_rst_with_seq_from_ack() {
    let mut h = Harness::new(config());
    h.send_raw(SeqNum(5), Some(SeqNum(777)), TcpFlags::EMPTY, b"abc");
    let rst = h.expect_one();
    assert_eq!(rst.flags(), TcpFlags::RST);
    assert_eq!(rst.tcp.seq, SeqNum(777));
}

#[test]
fn test_closed_rst_is_never_answered() {
    let mut h = Harness::new(config());
    h.send_raw(SeqNum(5), Some(SeqNum(9)), TcpFlags::RST, &[]);
    h.send_raw(SeqNum(5), None, TcpFlags::RST, &[]);
    h.expect_none();
}

// ---------------------------------------------------------------------
// LISTEN
// ---------------------------------------------------------------------

#[test]
fn test_listen_syn_gives_syn_ack() {
    let (h, _) = socket_syn_received();
    assert_eq!(h.stack.stats().drop_segment, 0);
}

#[test]
fn test_listen_ack_gets_rst() {
    let mut h = socket_listen();
    h.send_raw(SeqNum(5), Some(SeqNum(4242)), TcpFlags::EMPTY, &[]);
    let rst = h.expect_one();
    assert_eq!(rst.flags(), TcpFlags::RST);
    assert_eq!(rst.tcp.seq, SeqNum(4242));
}

#[test]
fn test_listen_rst_ignored() {
    let mut h = socket_listen();
    h.send_raw(SeqNum(5), None, TcpFlags::RST, &[]);
    h.expect_none();
}

#[test]
fn test_listen_backlog_overflow_drops_syn() {
    // Without SYN cookies (see tests/syncookies.rs for the default).
    let mut h = Harness::new(Config {
        syn_cookies: crate::SynCookies::Off,
        ..config()
    });
    let lid = h.stack.listen(LOCAL, 1).unwrap();
    for port in 0..20u16 {
        let tcp = TcpRepr {
            src_port: 5000 + port,
            dst_port: 80,
            seq: SeqNum(1),
            flags: TcpFlags::SYN,
            window: 1000,
            ..TcpRepr::default()
        };
        let src = SocketAddrV4::new(REMOTE_IP, 5000 + port);
        let pkt = packet(src, LOCAL, &tcp, &[]);
        h.stack.handle_packet(h.now, &pkt);
    }
    let synacks = h.output();
    assert_eq!(synacks.len(), 8, "SYN queue holds max(backlog, 8)");
    assert_eq!(h.stack.stats().drop_listen_overflow, 12);
    assert!(h.stack.accept(lid).is_none());
}

#[test]
fn test_listen_addr_in_use() {
    let mut h = socket_listen();
    assert_eq!(h.stack.listen(LOCAL, 4), Err(Error::AddrInUse));
    assert_eq!(
        h.stack
            .listen(SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 80), 4),
        Err(Error::AddrNotAvailable)
    );
}

// ---------------------------------------------------------------------
// SYN-RECEIVED
// ---------------------------------------------------------------------

#[test]
fn test_syn_received_ack_establishes_and_queues_accept() {
    let (mut h, _) = socket_syn_received();
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.events(), vec![Event::Incoming(crate::ListenerId(0))]);
    let id = h.stack.accept(crate::ListenerId(0)).unwrap();
    assert_eq!(h.stack.state(id), State::Established);
    assert_eq!(h.stack.peer_addr(id), Some(REMOTE.into()));
}

#[test]
fn test_syn_received_rst_returns_to_listen() {
    let (mut h, _) = socket_syn_received();
    let seq = h.peer_seq;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    h.expect_none();
    assert_eq!(h.stack.connection_count(), 0);
    // The listener still works.
    h.send_raw(SeqNum(9000), None, TcpFlags::SYN, &[]);
    assert_eq!(h.expect_one().flags(), TcpFlags::SYN | TcpFlags::ACK);
}

#[test]
fn test_syn_received_bad_ack_gets_rst() {
    let (mut h, iss) = socket_syn_received();
    let seq = h.peer_seq;
    h.send_raw(seq, Some(iss + 100), TcpFlags::EMPTY, &[]);
    let rst = h.expect_one();
    assert_eq!(rst.flags(), TcpFlags::RST);
    assert_eq!(rst.tcp.seq, iss + 100);
}

#[test]
fn test_syn_received_duplicate_syn_resends_syn_ack() {
    let (mut h, iss) = socket_syn_received();
    h.send_raw(SeqNum(REMOTE_ISS), None, TcpFlags::SYN, &[]);
    let synack = h.expect_one();
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.tcp.seq, iss);
}

#[test]
fn test_syn_received_timeout_retransmits_syn_ack() {
    let (mut h, iss) = socket_syn_received();
    let out = h.run_timers_until(h.now + Duration::from_millis(1500));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(out[0].tcp.seq, iss);
}

#[test]
fn test_syn_received_data_on_final_ack_is_readable() {
    let (mut h, _) = socket_syn_received();
    h.send(TcpFlags::PSH, b"hello");
    let id = h.stack.accept(crate::ListenerId(0)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(id, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
}

// ---------------------------------------------------------------------
// SYN-SENT
// ---------------------------------------------------------------------

#[test]
fn test_syn_sent_syn_ack_establishes() {
    let (mut h, iss) = socket_syn_sent();
    h.send_raw(SeqNum(REMOTE_ISS), Some(iss + 1), TcpFlags::SYN, &[]);
    let ack = h.expect_one();
    assert_eq!(ack.flags(), TcpFlags::ACK);
    assert_eq!(ack.tcp.ack, SeqNum(REMOTE_ISS + 1));
    assert_eq!(h.state(), State::Established);
    assert!(h.events().contains(&Event::Connected(h.id())));
}

#[test]
fn test_syn_sent_rst_ack_is_refused() {
    let (mut h, iss) = socket_syn_sent();
    h.send_raw(SeqNum(0), Some(iss + 1), TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::ConnectionRefused));
    assert!(h.events().contains(&Event::Reset(h.id())));
    let mut buf = [0u8; 4];
    assert_eq!(
        h.stack.recv(h.id(), &mut buf),
        Err(Error::ConnectionRefused)
    );
}

#[test]
fn test_syn_sent_rst_without_ack_ignored() {
    let (mut h, _) = socket_syn_sent();
    h.send_raw(SeqNum(0), None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::SynSent);
}

#[test]
fn test_syn_sent_bad_ack_gets_rst() {
    let (mut h, iss) = socket_syn_sent();
    h.send_raw(SeqNum(REMOTE_ISS), Some(iss + 50), TcpFlags::SYN, &[]);
    let rst = h.expect_one();
    assert_eq!(rst.flags(), TcpFlags::RST);
    assert_eq!(rst.tcp.seq, iss + 50);
    assert_eq!(h.state(), State::SynSent);
}

#[test]
fn test_syn_sent_syn_is_simultaneous_open() {
    let (mut h, iss) = socket_syn_sent();
    // The peer's SYN crosses ours (RFC 9293 figure 7).
    h.send_raw(SeqNum(REMOTE_ISS), None, TcpFlags::SYN, &[]);
    assert_eq!(h.state(), State::SynReceived);
    let synack = h.expect_one();
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.tcp.seq, iss);
    assert_eq!(synack.tcp.ack, SeqNum(REMOTE_ISS + 1));
    // Its SYN,ACK (acknowledging our SYN) completes the open.
    h.send_raw(SeqNum(REMOTE_ISS), Some(iss + 1), TcpFlags::SYN, &[]);
    assert_eq!(h.state(), State::Established);
    assert!(h.events().contains(&Event::Connected(h.id())));
}

#[test]
fn test_syn_sent_simultaneous_open_completes_with_plain_ack() {
    let (mut h, iss) = socket_syn_sent();
    h.send_raw(SeqNum(REMOTE_ISS), None, TcpFlags::SYN, &[]);
    h.expect_one();
    h.send_raw(SeqNum(REMOTE_ISS + 1), Some(iss + 1), TcpFlags::EMPTY, &[]);
    assert_eq!(h.state(), State::Established);
}

#[test]
fn test_syn_sent_timeout_retransmits_with_backoff_then_times_out() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_secs(10);
    let mut h = Harness::new(cfg);
    let id = h.stack.connect(h.now, None, REMOTE).unwrap();
    h.conn = Some(id);
    let start = h.now;
    assert_eq!(h.output().len(), 1);
    let mut times = Vec::new();
    let mut t = start;
    while h.state() == State::SynSent && t < start + Duration::from_secs(20) {
        t += Duration::from_millis(100);
        for o in h.run_timers_until(t) {
            assert!(o.flags().syn());
            times.push(h.now - start);
        }
    }
    // 1 s, then 2 s later, then 4 s later (exponential backoff).
    assert!(times.len() >= 3, "{times:?}");
    assert_eq!(times[0], Duration::from_secs(1));
    assert_eq!(times[1], Duration::from_secs(3));
    assert_eq!(times[2], Duration::from_secs(7));
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(id), Some(Error::TimedOut));
    assert!(h.now <= start + Duration::from_millis(10_200));
}

#[test]
fn test_syn_sent_close_deletes() {
    let (mut h, _) = socket_syn_sent();
    h.stack.close(h.id()).unwrap();
    h.expect_none();
    assert_eq!(h.stack.connection_count(), 0);
}

// ---------------------------------------------------------------------
// ESTABLISHED
// ---------------------------------------------------------------------

#[test]
fn test_established_send_data() {
    let mut h = socket_established();
    assert_eq!(h.stack.send(h.id(), b"hello"), Ok(5));
    let seg = h.expect_one();
    assert_eq!(seg.payload, b"hello");
    assert!(seg.flags().psh());
    assert_eq!(seg.tcp.seq, h.peer_ack);
    // Acknowledged: retransmission timer stops.
    h.peer_ack += 5;
    h.send(TcpFlags::EMPTY, &[]);
    assert!(h
        .stack
        .poll_timeout()
        .is_none_or(|t| t > h.now + Duration::from_secs(100)));
}

#[test]
fn test_established_recv_data_delayed_ack() {
    let mut h = socket_established();
    h.send(TcpFlags::PSH, b"abc");
    h.expect_none();
    let at = h.stack.poll_timeout().unwrap();
    assert_eq!(at, h.now + Duration::from_millis(40));
    let out = h.run_timers_until(at);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].tcp.ack, h.peer_seq);
}

#[test]
fn test_established_every_second_segment_acked_at_once() {
    let mut h = socket_established();
    h.send(TcpFlags::EMPTY, &[1; 1000]);
    h.expect_none();
    h.send(TcpFlags::EMPTY, &[2; 1000]);
    let ack = h.expect_one();
    assert_eq!(ack.tcp.ack, h.peer_seq);
}

#[test]
fn test_established_out_of_order_acked_at_once_and_reassembled() {
    let mut h = socket_established();
    let base = h.peer_seq;
    let ack = h.peer_ack;
    h.send_raw(base + 3, Some(ack), TcpFlags::EMPTY, b"def");
    let dup = h.expect_one();
    assert_eq!(dup.tcp.ack, base);
    h.send_raw(base, Some(ack), TcpFlags::EMPTY, b"abc");
    let ack2 = h.expect_one();
    assert_eq!(ack2.tcp.ack, base + 6);
    let mut buf = [0u8; 10];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"abcdef");
}

#[test]
fn test_established_duplicate_and_overlapping_segments() {
    let mut h = socket_established();
    let base = h.peer_seq;
    let ack = h.peer_ack;
    h.send_raw(base, Some(ack), TcpFlags::EMPTY, b"abcd");
    h.send_raw(base + 2, Some(ack), TcpFlags::EMPTY, b"cdefg");
    h.send_raw(base, Some(ack), TcpFlags::EMPTY, b"ab");
    let mut buf = [0u8; 10];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(7));
    assert_eq!(&buf[..7], b"abcdefg");
}

#[test]
fn test_established_fin_goes_close_wait_and_eof() {
    let mut h = socket_close_wait();
    let mut buf = [0u8; 4];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(0));
    assert!(h.events().contains(&Event::PeerClosed(h.id())));
}

#[test]
fn test_established_rst_exact_resets() {
    let mut h = socket_established();
    let seq = h.peer_seq;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::ConnectionReset));
    assert_eq!(
        h.stack.send(h.id(), b"x"),
        Err(Error::ConnectionReset),
        "send after reset"
    );
}

#[test]
fn test_established_rst_in_window_gets_challenge_ack() {
    let mut h = socket_established();
    let seq = h.peer_seq + 100;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::Established);
    let ack = h.expect_one();
    assert_eq!(ack.flags(), TcpFlags::ACK);
    assert_eq!(ack.tcp.ack, h.peer_seq);
    assert_eq!(h.stack.stats().challenge_acks, 1);
}

#[test]
fn test_established_rst_out_of_window_dropped() {
    let mut h = socket_established();
    let seq = h.peer_seq + 100_000;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::Established);
    h.expect_none();
}

#[test]
fn test_established_syn_gets_challenge_ack() {
    let mut h = socket_established();
    let seq = h.peer_seq + 10;
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    assert_eq!(h.state(), State::Established);
    let ack = h.expect_one();
    assert_eq!(ack.flags(), TcpFlags::ACK);
    assert_eq!(ack.tcp.ack, h.peer_seq);
}

/// RFC 5961 7: challenge ACKs are limited per connection (one per
/// `challenge_ack_interval`) and by a randomised stack-wide ceiling.
#[test]
fn test_established_challenge_acks_rate_limited() {
    let mut h = socket_established();
    let mut acks = 0;
    for i in 0..10 {
        let seq = h.peer_seq + 10 + i;
        h.send_raw(seq, None, TcpFlags::RST, &[]);
        acks += h.output().len();
    }
    assert_eq!(acks, 1);
    assert_eq!(h.stack.stats().challenge_acks_suppressed, 9);
    // After the interval, the next one is answered again.
    h.advance(Duration::from_millis(500));
    let seq = h.peer_seq + 10;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.output().len(), 1);
    assert_eq!(h.state(), State::Established);
}

/// RFC 5961 7 (CVE-2016-5696): the stack-wide ceiling is drawn afresh each
/// second from [limit/2, 3*limit/2), so it is no fixed counter.
#[test]
fn test_challenge_ack_ceiling_is_randomised() {
    let mut lim = crate::conn::RateLimiter::new(1);
    let mut budgets = std::collections::BTreeSet::new();
    for sec in 0..20u64 {
        let now = Instant::from_millis(sec * 1000);
        let mut n = 0;
        while lim.allow(now, 100) {
            n += 1;
            assert!(n < 1000);
        }
        assert!((50..150).contains(&n), "{n}");
        budgets.insert(n);
    }
    assert!(budgets.len() > 5, "{budgets:?}");
    assert!(lim.allow(Instant::from_millis(0), u32::MAX));
}

#[test]
fn test_established_ack_of_unsent_data_gets_ack() {
    let mut h = socket_established();
    let ack = h.peer_ack + 1000;
    let seq = h.peer_seq;
    h.send_raw(seq, Some(ack), TcpFlags::EMPTY, &[]);
    let out = h.expect_one();
    assert_eq!(out.flags(), TcpFlags::ACK);
    assert_eq!(h.state(), State::Established);
}

#[test]
fn test_established_unacceptable_segment_gets_ack() {
    let mut h = socket_established();
    let seq = h.peer_seq + 100_000;
    let ack = h.peer_ack;
    h.send_raw(seq, Some(ack), TcpFlags::EMPTY, b"zz");
    let out = h.expect_one();
    assert_eq!(out.tcp.ack, h.peer_seq);
}

#[test]
fn test_established_retransmits_on_timeout() {
    let mut h = socket_established();
    h.stack.send(h.id(), b"data").unwrap();
    let first = h.expect_one();
    // The handshake gave an RTT sample, so RTO = min_rto (200 ms), doubling.
    let out = h.run_timers_until(h.now + Duration::from_millis(650));
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].payload, b"data");
    assert_eq!(out[0].tcp.seq, first.tcp.seq);
    assert_eq!(h.stack.stats().rto_expirations, 2);
}

#[test]
fn test_established_user_timeout_on_dead_link() {
    let mut h = socket_established();
    h.stack
        .set_option(h.id(), SockOpt::UserTimeout(Duration::from_secs(5)))
        .unwrap();
    h.stack.send(h.id(), b"data").unwrap();
    h.output();
    h.run_timers_until(h.now + Duration::from_secs(30));
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::TimedOut));
}

#[test]
fn test_established_fast_retransmit_on_three_dup_acks() {
    let mut h = socket_established();
    h.stack.send(h.id(), &[7u8; 5000]).unwrap();
    let segs = h.output();
    assert!(segs.len() >= 4);
    let una = h.peer_ack;
    let seq = h.peer_seq;
    for _ in 0..3 {
        h.send_raw(seq, Some(una), TcpFlags::EMPTY, &[]);
    }
    let out = h.output();
    assert!(
        out.iter()
            .any(|o| o.tcp.seq == una && !o.payload.is_empty()),
        "{out:#?}"
    );
    assert_eq!(h.stack.stats().fast_retransmits, 1);
}

#[test]
fn test_established_zero_window_probe() {
    let mut h = socket_established();
    let (seq, ack) = (h.peer_seq, h.peer_ack);
    h.send_opts(seq, Some(ack), TcpFlags::ACK, &[], TcpOptions::default(), 0);
    h.stack.send(h.id(), b"blocked").unwrap();
    h.expect_none();
    let out = h.run_timers_until(h.now + Duration::from_secs(3));
    assert!(!out.is_empty());
    assert!(out.iter().all(|o| o.payload.len() == 1 && o.tcp.seq == ack));
    // The window reopens: the rest flows.
    h.send_opts(
        seq,
        Some(ack),
        TcpFlags::ACK,
        &[],
        TcpOptions::default(),
        1000,
    );
    let rest = h.output();
    let total: usize = rest.iter().map(|o| o.payload.len()).sum();
    assert!(total >= 6, "{rest:#?}");
    assert_eq!(h.state(), State::Established);
}

#[test]
fn test_established_keepalive_detects_dead_peer() {
    let mut h = socket_established();
    h.stack
        .set_option(
            h.id(),
            SockOpt::KeepAliveParams {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(1),
                probes: 3,
            },
        )
        .unwrap();
    h.stack
        .set_option(h.id(), SockOpt::KeepAlive(true))
        .unwrap();
    let out = h.run_timers_until(h.now + Duration::from_secs(20));
    let probes: Vec<_> = out.iter().filter(|o| o.tcp.seq == h.peer_ack - 1).collect();
    assert_eq!(probes.len(), 3);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::TimedOut));
}

#[test]
fn test_established_keepalive_answered_keeps_connection() {
    let mut h = socket_established();
    h.stack
        .set_option(
            h.id(),
            SockOpt::KeepAliveParams {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(1),
                probes: 2,
            },
        )
        .unwrap();
    h.stack
        .set_option(h.id(), SockOpt::KeepAlive(true))
        .unwrap();
    for _ in 0..5 {
        let out = h.run_timers_until(h.now + Duration::from_secs(11));
        assert!(!out.is_empty());
        h.send(TcpFlags::EMPTY, &[]);
    }
    assert_eq!(h.state(), State::Established);
}

#[test]
fn test_established_close_with_unread_data_sends_rst() {
    let mut h = socket_established();
    h.send(TcpFlags::PSH, b"unread");
    h.output();
    h.stack.close(h.id()).unwrap();
    let rst = h.expect_one();
    assert!(rst.flags().rst());
    assert_eq!(h.stack.connection_count(), 0);
}

#[test]
fn test_established_abort_sends_rst() {
    let mut h = socket_established();
    h.stack.abort(h.id()).unwrap();
    let rst = h.expect_one();
    assert!(rst.flags().rst());
    assert_eq!(rst.tcp.seq, h.peer_ack);
    assert_eq!(h.state(), State::Closed);
}

#[test]
fn test_established_nagle_holds_small_segments() {
    let mut h = socket_established();
    h.stack.send(h.id(), b"a").unwrap();
    assert_eq!(h.output().len(), 1);
    h.stack.send(h.id(), b"b").unwrap();
    h.stack.send(h.id(), b"c").unwrap();
    h.expect_none();
    h.peer_ack += 1;
    h.send(TcpFlags::EMPTY, &[]);
    let seg = h.expect_one();
    assert_eq!(seg.payload, b"bc");
}

#[test]
fn test_established_nodelay_sends_at_once() {
    let mut h = socket_established();
    h.stack.set_option(h.id(), SockOpt::NoDelay(true)).unwrap();
    h.stack.send(h.id(), b"a").unwrap();
    h.stack.send(h.id(), b"b").unwrap();
    assert_eq!(h.output().len(), 1);
    h.stack.send(h.id(), b"c").unwrap();
    assert_eq!(h.output().len(), 1);
}

#[test]
fn test_established_window_update_after_read() {
    let mut h = socket_established();
    // Fill the 8 KiB receive buffer.
    for _ in 0..8 {
        h.send(TcpFlags::EMPTY, &[0u8; 1024]);
    }
    let acks = h.output();
    assert_eq!(acks.last().unwrap().tcp.window, 0);
    let mut buf = [0u8; 8192];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(8192));
    let upd = h.expect_one();
    assert_eq!(upd.tcp.window, 8192);
}

#[test]
fn test_established_send_after_shutdown_is_broken_pipe() {
    let mut h = socket_fin_wait_1();
    assert_eq!(h.stack.send(h.id(), b"x"), Err(Error::BrokenPipe));
}

// ---------------------------------------------------------------------
// FIN-WAIT-1, FIN-WAIT-2, CLOSING, TIME-WAIT
// ---------------------------------------------------------------------

#[test]
fn test_fin_wait_1_ack_of_fin_goes_fin_wait_2() {
    socket_fin_wait_2();
}

#[test]
fn test_fin_wait_1_fin_ack_goes_time_wait() {
    let mut h = socket_fin_wait_1();
    h.peer_ack += 1;
    h.send(TcpFlags::FIN, &[]);
    assert_eq!(h.state(), State::TimeWait);
}

#[test]
fn test_fin_wait_1_simultaneous_close_through_closing() {
    let mut h = socket_closing();
    h.peer_ack += 1;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.state(), State::TimeWait);
}

#[test]
fn test_fin_wait_1_fin_retransmitted() {
    let mut h = socket_fin_wait_1();
    let out = h.run_timers_until(h.now + Duration::from_millis(250));
    assert_eq!(out.len(), 1);
    assert!(out[0].flags().fin());
}

#[test]
fn test_fin_wait_1_data_still_received_half_close() {
    let mut h = socket_fin_wait_1();
    h.send(TcpFlags::PSH, b"more");
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(4));
}

#[test]
fn test_fin_wait_2_receives_data_then_fin() {
    let mut h = socket_fin_wait_2();
    h.send(TcpFlags::PSH, b"tail");
    h.send(TcpFlags::FIN, &[]);
    assert_eq!(h.state(), State::TimeWait);
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(4));
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(0));
}

#[test]
fn test_fin_wait_2_orphan_times_out() {
    let mut cfg = config();
    cfg.fin_wait2_timeout = Duration::from_secs(5);
    let mut h = socket_established_with(cfg);
    h.stack.close(h.id()).unwrap();
    assert!(h.expect_one().flags().fin());
    h.peer_ack += 1;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.stack.connection_count(), 1);
    h.run_timers_until(h.now + Duration::from_secs(6));
    assert_eq!(h.stack.connection_count(), 0);
}

#[test]
fn test_fin_wait_2_data_after_close_gets_rst() {
    let mut h = socket_fin_wait_2();
    h.stack.close(h.id()).unwrap();
    h.send(TcpFlags::PSH, b"late");
    let rst = h.expect_one();
    assert!(rst.flags().rst());
}

#[test]
fn test_time_wait_lasts_two_msl() {
    let mut h = socket_time_wait();
    let entered = h.now;
    h.stack.close(h.id()).unwrap();
    assert_eq!(h.stack.connection_count(), 1);
    h.run_timers_until(entered + Duration::from_secs(19));
    assert_eq!(h.stack.connection_count(), 1);
    h.run_timers_until(entered + Duration::from_secs(21));
    assert_eq!(h.stack.connection_count(), 0);
}

#[test]
fn test_time_wait_retransmitted_fin_reacked_and_timer_restarted() {
    let mut h = socket_time_wait();
    h.advance(Duration::from_secs(15));
    let seq = h.peer_seq - 1;
    let ack = h.peer_ack;
    h.send_raw(seq, Some(ack), TcpFlags::FIN, &[]);
    let out = h.expect_one();
    assert_eq!(out.tcp.ack, h.peer_seq);
    let restarted = h.now;
    h.run_timers_until(restarted + Duration::from_secs(19));
    assert_eq!(h.state(), State::TimeWait);
    h.run_timers_until(restarted + Duration::from_secs(21));
    assert_eq!(h.state(), State::Closed);
}

#[test]
fn test_time_wait_old_syn_gets_challenge_ack() {
    let mut h = socket_time_wait();
    let seq = h.peer_seq - 5;
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    let out = h.expect_one();
    assert_eq!(out.flags(), TcpFlags::ACK);
    assert_eq!(h.state(), State::TimeWait);
}

#[test]
fn test_time_wait_new_syn_reopens_via_listener() {
    let mut h = socket_time_wait();
    // The fixture's listener is still open; a SYN with a higher sequence number
    // starts a new incarnation (RFC 9293 3.10.7.4, RFC 6191).
    let seq = h.peer_seq + 100_000;
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    let out = h.expect_one();
    assert_eq!(out.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(out.tcp.ack, seq + 1);
}

#[test]
fn test_time_wait_rst_ignored_rfc1337() {
    let mut h = socket_time_wait();
    let seq = h.peer_seq;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::TimeWait);
    h.expect_none();
}

#[test]
fn test_closing_rst_closes() {
    let mut h = socket_closing();
    let seq = h.peer_seq;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::Closed);
    assert!(h.stack.error(h.id()).is_none());
}

// ---------------------------------------------------------------------
// CLOSE-WAIT, LAST-ACK
// ---------------------------------------------------------------------

#[test]
fn test_close_wait_can_still_send() {
    let mut h = socket_close_wait();
    assert_eq!(h.stack.send(h.id(), b"reply"), Ok(5));
    let seg = h.expect_one();
    assert_eq!(seg.payload, b"reply");
}

#[test]
fn test_close_wait_held_until_application_closes() {
    let mut h = socket_close_wait();
    h.run_timers_until(h.now + Duration::from_secs(3600));
    assert_eq!(h.state(), State::CloseWait);
}

#[test]
fn test_last_ack_ack_closes() {
    let mut h = socket_last_ack();
    h.peer_ack += 1;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.state(), State::Closed);
    assert!(h.stack.error(h.id()).is_none());
}

#[test]
fn test_last_ack_fin_retransmitted() {
    let mut h = socket_last_ack();
    let out = h.run_timers_until(h.now + Duration::from_millis(1100));
    assert!(out.iter().any(|o| o.flags().fin()));
}

// ---------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------

#[test]
fn test_listen_syn_with_options_negotiates_ws_ts_sack() {
    let mut cfg = config();
    cfg.timestamps = true;
    cfg.sack = true;
    cfg.window_scaling = true;
    cfg.recv_buffer = 1 << 20;
    cfg.recv_buffer_max = 1 << 20;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let opts = TcpOptions {
        mss: Some(1200),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((5555, 0)),
        ..TcpOptions::default()
    };
    let seq = h.peer_seq;
    h.send_opts(seq, None, TcpFlags::SYN, &[], opts, 65535);
    let synack = h.expect_one();
    assert_eq!(synack.tcp.options.mss, Some(1460));
    assert_eq!(synack.tcp.options.window_scale, Some(5));
    assert!(synack.tcp.options.sack_permitted);
    assert_eq!(synack.tcp.options.timestamps.map(|t| t.1), Some(5555));
}

#[test]
fn test_listen_syn_without_ws_disables_scaling() {
    let mut cfg = config();
    cfg.window_scaling = true;
    cfg.recv_buffer = 1 << 20;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let seq = h.peer_seq;
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    let synack = h.expect_one();
    assert_eq!(synack.tcp.options.window_scale, None);
    assert_eq!(synack.tcp.window, 65535);
}

#[test]
fn test_established_paws_drops_old_timestamp() {
    let mut cfg = config();
    cfg.timestamps = true;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let mut opts = TcpOptions {
        timestamps: Some((100, 0)),
        ..TcpOptions::default()
    };
    let seq = h.peer_seq;
    h.send_opts(seq, None, TcpFlags::SYN, &[], opts, 65535);
    h.peer_seq += 1;
    let synack = h.expect_one();
    h.peer_ack = synack.tcp.seq + 1;
    opts.timestamps = Some((200, synack.tcp.options.timestamps.unwrap().0));
    let (seq, ack) = (h.peer_seq, h.peer_ack);
    h.send_opts(seq, Some(ack), TcpFlags::EMPTY, b"new", opts, 65535);
    h.peer_seq += 3;
    h.conn = h.stack.accept(crate::ListenerId(0));
    // An old duplicate (TSval 150 < TS.Recent 200) is dropped even though in window.
    opts.timestamps = Some((150, 0));
    let (seq, ack) = (h.peer_seq, h.peer_ack);
    h.send_opts(seq, Some(ack), TcpFlags::EMPTY, b"old", opts, 65535);
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"new");
}

/// An IPv4 datagram from the peer carrying `msg`.
fn icmp_packet(msg: &crate::wire::IcmpRepr) -> Vec<u8> {
    let len = msg.buffer_len();
    let mut pkt = vec![0u8; 20 + len];
    Ipv4Repr {
        src: REMOTE_IP,
        dst: LOCAL_IP,
        protocol: IpProtocol::Icmp,
        payload_len: len,
        ttl: 64,
        tos: 0,
        ident: 3,
        dont_frag: false,
    }
    .emit(&mut pkt);
    msg.emit(&mut pkt[20..]);
    pkt
}

#[test]
fn test_icmp_port_unreachable_refuses_connect() {
    let (mut h, iss) = socket_syn_sent();
    // Quote our SYN: IPv4 header + 8 bytes of TCP.
    let tcp = TcpRepr {
        src_port: 50000,
        dst_port: REMOTE.port(),
        seq: iss,
        flags: TcpFlags::SYN,
        ..TcpRepr::default()
    };
    let quoted = packet(h.local, REMOTE, &tcp, &[]);
    let msg = crate::wire::IcmpRepr::DstUnreachable {
        code: 3,
        next_hop_mtu: 0,
        data: &quoted[..28],
    };
    h.stack.handle_packet(h.now, &icmp_packet(&msg));
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::ConnectionRefused));
}

#[test]
fn test_icmp_echo_request_answered() {
    let mut h = Harness::new(config());
    let msg = crate::wire::IcmpRepr::EchoRequest {
        ident: 9,
        seq: 1,
        data: b"ping",
    };
    h.stack.handle_packet(h.now, &icmp_packet(&msg));
    let mut buf = [0u8; 100];
    let n = h.stack.poll_transmit(h.now, &mut buf).unwrap();
    let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
    let reply = crate::wire::IcmpRepr::parse(ip.payload()).unwrap();
    assert_eq!(
        reply,
        crate::wire::IcmpRepr::EchoReply {
            ident: 9,
            seq: 1,
            data: b"ping"
        }
    );
}

/// RFC 1812 4.3.2.8 (Linux `icmp_msgs_per_sec` / `icmp_msgs_burst`): ICMP
/// output is rate-limited by a token bucket; the excess is counted.
#[test]
fn test_icmp_replies_rate_limited() {
    let mut h = Harness::new(Config {
        icmp_msgs_per_sec: 100,
        icmp_msgs_burst: 10,
        ..config()
    });
    let msg = crate::wire::IcmpRepr::EchoRequest {
        ident: 9,
        seq: 1,
        data: b"ping",
    };
    let mut replies = 0;
    for _ in 0..50 {
        h.stack.handle_packet(h.now, &icmp_packet(&msg));
        let mut buf = [0u8; 100];
        while h.stack.poll_transmit(h.now, &mut buf).is_some() {
            replies += 1;
        }
    }
    assert_eq!(replies, 10, "the burst");
    assert_eq!(h.stack.stats().icmp_rate_limited, 40);
    // 100 ms later, 10 more tokens.
    h.advance(Duration::from_millis(100));
    for _ in 0..50 {
        h.stack.handle_packet(h.now, &icmp_packet(&msg));
    }
    let mut buf = [0u8; 100];
    let mut more = 0;
    while h.stack.poll_transmit(h.now, &mut buf).is_some() {
        more += 1;
    }
    assert_eq!(more, 10);
}

#[test]
fn test_fragments_and_garbage_dropped_and_counted() {
    let mut h = socket_listen();
    let tcp = TcpRepr {
        src_port: 4000,
        dst_port: 80,
        seq: SeqNum(1),
        flags: TcpFlags::SYN,
        ..TcpRepr::default()
    };
    let mut pkt = packet(REMOTE, LOCAL, &tcp, &[]);
    pkt[6] |= 0x20; // MF
    pkt[10] = 0;
    pkt[11] = 0;
    let c = crate::wire::checksum::checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    h.stack.handle_packet(h.now, &pkt);
    h.stack.handle_packet(h.now, &[0x45, 0, 0]);
    h.stack.handle_packet(h.now, &[]);
    h.expect_none();
    assert_eq!(h.stack.stats().drop_fragment, 1);
    assert_eq!(h.stack.stats().drop_malformed, 2);
}

// ---------------------------------------------------------------------
// The rarer arrows of the state diagram
// ---------------------------------------------------------------------

#[test]
fn test_listen_send_goes_syn_sent() {
    let mut h = socket_listen();
    let lid = crate::ListenerId(0);
    let id = h.stack.connect_listener(h.now, lid, REMOTE).unwrap();
    h.conn = Some(id);
    assert_eq!(h.state(), State::SynSent);
    assert_eq!(h.stack.local_addr(id), Some(LOCAL.into()));
    let syn = h.expect_one();
    assert_eq!(syn.flags(), TcpFlags::SYN);
    assert_eq!(syn.tcp.src_port, LOCAL.port());
    assert!(h.stack.listener_addr(lid).is_none());
}

#[test]
fn test_listen_close_goes_closed() {
    let (mut h, _) = socket_syn_received();
    let lid = crate::ListenerId(0);
    h.stack.close_listener(lid);
    // The embryonic connection is reset, the port no longer listens.
    let rst = h.expect_one();
    assert!(rst.flags().rst());
    assert_eq!(h.stack.connection_count(), 0);
    h.send_raw(SeqNum(77), None, TcpFlags::SYN, &[]);
    let out = h.expect_one();
    assert_eq!(out.flags(), TcpFlags::RST | TcpFlags::ACK);
}

#[test]
fn test_syn_received_close_goes_fin_wait_1() {
    // Simultaneous open to reach SYN-RECEIVED on an active connection.
    let (mut h, iss) = socket_syn_sent();
    h.send_raw(SeqNum(REMOTE_ISS), None, TcpFlags::SYN, &[]);
    assert_eq!(h.state(), State::SynReceived);
    h.expect_one();
    // CLOSE in SYN-RECEIVED: the FIN waits for the handshake (RFC 9293 3.10.4).
    h.stack.shutdown(h.id()).unwrap();
    assert_eq!(h.state(), State::SynReceived);
    h.send_raw(SeqNum(REMOTE_ISS + 1), Some(iss + 1), TcpFlags::EMPTY, &[]);
    assert_eq!(h.state(), State::FinWait1);
    let fin = h.expect_one();
    assert!(fin.flags().fin());
    assert_eq!(fin.tcp.seq, iss + 1);
}

#[test]
fn test_established_close_goes_fin_wait_1_without_data() {
    let mut h = socket_established();
    h.stack.close(h.id()).unwrap();
    let fin = h.expect_one();
    assert!(fin.flags().fin());
    // The handle is released but the connection lives on until the end.
    assert_eq!(h.stack.connection_count(), 1);
    assert_eq!(h.stack.state(h.id()), State::FinWait1);
}

// ---------------------------------------------------------------------
// No panics: random and mutated segments in every state
// ---------------------------------------------------------------------

fn fixture(which: u8) -> Harness {
    match which % 11 {
        0 => Harness::new(config()),
        1 => socket_listen(),
        2 => socket_syn_received().0,
        3 => socket_syn_sent().0,
        4 => socket_established(),
        5 => socket_fin_wait_1(),
        6 => socket_fin_wait_2(),
        7 => socket_close_wait(),
        8 => socket_closing(),
        9 => socket_last_ack(),
        _ => socket_time_wait(),
    }
}

#[derive(Debug, Clone)]
struct FuzzSeg {
    seq_mode: u8,
    seq_off: u32,
    ack_mode: u8,
    ack_off: u32,
    flags: u8,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_perm: bool,
    sack: Vec<(u32, u32)>,
    ts: Option<(u32, u32)>,
    payload: Vec<u8>,
    advance_ms: u16,
    app: u8,
}

fn fuzz_seg() -> impl proptest::strategy::Strategy<Value = FuzzSeg> {
    use proptest::prelude::*;
    (
        (
            0u8..3,
            any::<u32>(),
            0u8..3,
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
        ),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..4),
            proptest::option::of((any::<u32>(), any::<u32>())),
        ),
        proptest::collection::vec(any::<u8>(), 0..300),
        0u16..3000,
        any::<u8>(),
    )
        .prop_map(
            |(
                (seq_mode, seq_off, ack_mode, ack_off, flags, window),
                (mss, wscale, sack_perm, sack, ts),
                payload,
                advance_ms,
                app,
            )| FuzzSeg {
                seq_mode,
                seq_off,
                ack_mode,
                ack_off,
                flags,
                window,
                mss,
                wscale,
                sack_perm,
                sack,
                ts,
                payload,
                advance_ms,
                app,
            },
        )
}

impl Harness {
    fn fuzz(&mut self, f: &FuzzSeg) {
        let near = |base: SeqNum, mode: u8, off: u32| match mode {
            0 => base,
            1 => base + (off % 70_000) as usize - 35_000,
            _ => SeqNum(off),
        };
        let seq = near(self.peer_seq, f.seq_mode, f.seq_off);
        let ack = near(self.peer_ack, f.ack_mode, f.ack_off);
        let mut sack = crate::wire::SackBlocks::default();
        for &(a, b) in &f.sack {
            sack.push(SeqNum(a), SeqNum(b));
        }
        let options = TcpOptions {
            mss: f.mss,
            window_scale: f.wscale,
            sack_permitted: f.sack_perm,
            sack,
            timestamps: f.ts,
        };
        let flags = TcpFlags(u16::from(f.flags));
        let tcp = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: self.local.port(),
            seq,
            ack,
            flags,
            window: f.window,
            urgent: 0,
            options,
        };
        let pkt = packet(REMOTE, self.local, &tcp, &f.payload);
        self.stack.handle_packet(self.now, &pkt);
        let _ = self.output();
        if let Some(id) = self.conn {
            let mut buf = [0u8; 512];
            match f.app % 8 {
                0 => {
                    let _ = self.stack.send(id, &f.payload);
                }
                1 => {
                    let _ = self.stack.recv(id, &mut buf);
                }
                2 => {
                    let _ = self.stack.shutdown(id);
                }
                3 if f.app > 250 => {
                    let _ = self.stack.close(id);
                }
                4 if f.app > 250 => {
                    let _ = self.stack.abort(id);
                }
                _ => {}
            }
        }
        let _ = self.output();
        self.advance(Duration::from_millis(u64::from(f.advance_ms)));
        let _ = self.output();
        let _ = self.events();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, failure_persistence: None, ..Default::default() })]

    /// Segments with random flags, sequence numbers near and far, options
    /// and payloads, interleaved with application calls and timers, in
    /// every state: nothing panics, and the stack still answers afterwards.
    #[test]
    fn no_panic_on_random_segments_in_every_state(
        which in 0u8..11,
        segs in proptest::collection::vec(fuzz_seg(), 1..12),
    ) {
        let mut h = fixture(which);
        for s in &segs {
            h.fuzz(s);
        }

        let _ = h.stack.poll_timeout();
        let _ = h.stack.info(h.conn.unwrap_or(ConnId { index: 0, generation: 0 }));
    }

    /// Valid packets with random bytes overwritten (checksums recomputed so
    /// the damage reaches the TCP logic), and plain garbage.
    #[test]
    fn no_panic_on_mutated_packets_in_every_state(
        which in 0u8..11,
        flips in proptest::collection::vec((0usize..80, proptest::prelude::any::<u8>()), 1..12),
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
    ) {
        let mut h = fixture(which);
        let tcp = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: h.local.port(),
            seq: h.peer_seq,
            ack: h.peer_ack,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 1000,
            urgent: 0,
            options: TcpOptions { timestamps: Some((1, 2)), ..TcpOptions::default() },
        };
        let mut pkt = packet(REMOTE, h.local, &tcp, b"payload-bytes");
        for (pos, val) in flips {
            let i = 20 + pos % (pkt.len() - 20);
            pkt[i] = val;
        }
        fill_checksum(&mut pkt[20..], REMOTE_IP, *h.local.ip());
        h.stack.handle_packet(h.now, &pkt);
        let _ = h.output();
        h.stack.handle_packet(h.now, &garbage);
        let _ = h.output();
        h.advance(Duration::from_secs(1));
        let _ = h.output();
    }
}

// ---------------------------------------------------------------------
// SACK-based loss recovery (RFC 6675) and limited transmit (RFC 3042)
// ---------------------------------------------------------------------

fn socket_established_sack() -> Harness {
    let mut cfg = config();
    cfg.sack = true;
    cfg.send_buffer = 64 * 1024;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let opts = TcpOptions {
        mss: Some(1000),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    let seq = h.peer_seq;
    h.send_opts(seq, None, TcpFlags::SYN, &[], opts, 65535);
    h.peer_seq += 1;
    let synack = h.expect_one();
    assert!(synack.tcp.options.sack_permitted);
    h.peer_ack = synack.tcp.seq + 1;
    h.send(TcpFlags::EMPTY, &[]);
    h.conn = h.stack.accept(crate::ListenerId(0));
    assert!(h.stack.info(h.id()).unwrap().sack);
    h
}

fn sack_ack(h: &mut Harness, blocks: &[(SeqNum, SeqNum)]) {
    let mut sack = crate::wire::SackBlocks::default();
    for &(l, r) in blocks {
        sack.push(l, r);
    }
    let opts = TcpOptions {
        sack,
        ..TcpOptions::default()
    };
    let (seq, ack) = (h.peer_seq, h.peer_ack);
    h.send_opts(seq, Some(ack), TcpFlags::EMPTY, &[], opts, 65535);
}

#[test]
fn test_established_sack_retransmits_hole_before_three_dupacks() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    let segs = h.output();
    assert_eq!(segs.len(), 10, "initial window of 10 x 1000");
    let una = h.peer_ack;
    // Segment 1 lost; the peer SACKs segments 2..5 (more than 2 * MSS).
    sack_ack(&mut h, &[(una + 1000, una + 4000)]);
    let out = h.output();
    assert!(
        out.iter()
            .any(|o| o.tcp.seq == una && o.payload.len() == 1000),
        "{out:#?}"
    );
    assert_eq!(h.stack.stats().fast_retransmits, 1);
    // The hole is filled: cumulative ACK of everything SACKed so far.
    h.peer_ack = una + 4000;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.stack.info(h.id()).unwrap().bytes_acked, 4000);
}

#[test]
fn test_established_sack_retransmits_several_holes() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    // Segments 1, 3 and 5 lost; 2, 4, 6..10 arrive one RTT later.
    h.advance(Duration::from_millis(10));
    sack_ack(
        &mut h,
        &[
            (una + 5000, una + 10_000),
            (una + 3000, una + 4000),
            (una + 1000, una + 2000),
        ],
    );
    // Only the first hole goes at once (RFC 6675 step C); then PRR (RFC
    // 6937) decides: with pipe below ssthresh its slow-start bound lets
    // two segments out per segment delivered, so both remaining holes go.
    let rtx: Vec<SeqNum> = h.output().iter().map(|o| o.tcp.seq).collect();
    assert_eq!(rtx, vec![una]);
    let blocks = [(una + 5000, una + 10_000), (una + 3000, una + 4000)];
    h.advance(Duration::from_millis(10));
    h.peer_ack = una + 2000;
    sack_ack(&mut h, &blocks);
    let rtx: Vec<SeqNum> = h.output().iter().map(|o| o.tcp.seq).collect();
    assert_eq!(rtx, vec![una + 2000, una + 4000]);
    // Each retransmission happens once: more SACKs bring nothing new.
    sack_ack(&mut h, &[(una + 5000, una + 10_000)]);
    assert!(h.output().is_empty());
    assert_eq!(h.stack.stats().rto_expirations, 0);
}

/// Buffer sizes per listener and per active open (SO_SNDBUF/SO_RCVBUF set
/// before listen or connect) reach the connections, and the windows they
/// advertise.
#[test]
fn test_listen_and_connect_with_own_buffer_sizes() {
    let mut h = socket_listen();
    let lid = crate::ListenerId(0);
    h.stack.set_listener_buffers(lid, 3000, 2000).unwrap();
    assert_eq!(
        h.stack.set_listener_buffers(crate::ListenerId(9), 1, 1),
        Err(Error::InvalidHandle)
    );
    h.send_raw(h.peer_seq, None, TcpFlags::SYN, &[]);
    let synack = h.expect_one();
    assert_eq!(synack.tcp.window, 2000);
    h.peer_seq += 1;
    h.peer_ack = synack.tcp.seq + 1;
    h.send(TcpFlags::EMPTY, &[]);
    let id = h.stack.accept(lid).unwrap();
    assert_eq!(h.stack.send_buffer(id).unwrap().capacity(), 3000);
    assert_eq!(h.stack.recv_buffer(id).unwrap().capacity(), 2000);

    let mut h = Harness::new(config());
    let local = SocketAddrV4::new(LOCAL_IP, 50000);
    let id = h
        .stack
        .connect_with_buffers(h.now, Some(local.into()), REMOTE, (5000, 1000))
        .unwrap();
    assert_eq!(h.expect_one().tcp.window, 1000);
    assert_eq!(h.stack.send_buffer(id).unwrap().capacity(), 5000);
}

/// Send buffer auto-sizing: the buffer grows toward twice cwnd, but only
/// once the application has filled it.
#[test]
fn test_established_send_buffer_grows_when_the_application_fills_it() {
    let mut h = socket_established();
    let cap = |h: &Harness| h.stack.send_buffer(h.id()).unwrap().capacity();
    assert_eq!(cap(&h), 8192);
    // A small write, acknowledged: no growth.
    h.stack.send(h.id(), &[1u8; 100]).unwrap();
    let sent: usize = h.output().iter().map(|o| o.payload.len()).sum();
    h.peer_ack += sent;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(cap(&h), 8192);
    // The application fills the buffer; the ACK of the first window lets
    // it grow to twice the (slow-start grown) window.
    assert_eq!(h.stack.send(h.id(), &[1u8; 20_000]), Ok(8192));
    let sent: usize = h.output().iter().map(|o| o.payload.len()).sum();
    h.peer_ack += sent;
    h.send(TcpFlags::EMPTY, &[]);
    let cwnd = h.stack.info(h.id()).unwrap().cwnd;
    assert_eq!(cap(&h), 2 * cwnd);
    assert!(h.stack.send(h.id(), &[1u8; 20_000]).unwrap() > sent);
}

// ---------------------------------------------------------------------
// RACK-TLP time-based loss detection (RFC 8985)
// ---------------------------------------------------------------------

/// RFC 8985 6.2: a retransmission that is lost again is found once a
/// segment sent after it is delivered, without waiting for the RTO.
#[test]
fn test_established_rack_detects_lost_retransmission_without_rto() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 12_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    // Segment 1 lost; 2..10 SACKed one RTT later: RACK marks segment 1.
    h.advance(Duration::from_millis(10));
    sack_ack(&mut h, &[(una + 1000, una + 10_000)]);
    let rtx: Vec<SeqNum> = h.output().iter().map(|o| o.tcp.seq).collect();
    assert_eq!(rtx, vec![una], "fast retransmit");
    // A further duplicate ACK lets PRR send one new segment, after the
    // retransmission.
    h.advance(Duration::from_millis(1));
    sack_ack(&mut h, &[(una + 1000, una + 10_000)]);
    let new: Vec<SeqNum> = h.output().iter().map(|o| o.tcp.seq).collect();
    assert_eq!(new, vec![una + 10_000]);
    // The new segment is SACKed, the retransmission never arrives: lost
    // again, and sent again at once.
    h.advance(Duration::from_millis(10));
    sack_ack(&mut h, &[(una + 1000, una + 11_000)]);
    let again: Vec<SeqNum> = h.output().iter().map(|o| o.tcp.seq).collect();
    assert_eq!(again.first(), Some(&una), "{again:?}");
    assert_eq!(h.stack.stats().rto_expirations, 0);
    assert_eq!(h.stack.info(h.id()).unwrap().retransmits, 2);
}

/// RFC 8985 6.2 step 3: a segment delivered out of order (never
/// retransmitted) shows reordering; from then on, the reordering window
/// (min_rtt / 4) delays loss marking, and the reordering timer marks the
/// segment once it has passed.
#[test]
fn test_established_rack_waits_reordering_window_once_reordering_seen() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    // Segment 1 arrives after segment 2, 1 ms later (before the 2 ms probe
    // timeout): reordering, no retransmission.
    h.advance(Duration::from_millis(1));
    sack_ack(&mut h, &[(una + 1000, una + 2000)]);
    assert!(h.output().is_empty());
    h.peer_ack = una + 2000;
    h.send(TcpFlags::EMPTY, &[]);
    assert!(h.output().is_empty());
    // Now segment 3 is missing while 4..10 are SACKed: with reordering seen,
    // RACK waits RACK.rtt + min_rtt / 4 = 1.25 ms after its send time.
    sack_ack(&mut h, &[(una + 3000, una + 10_000)]);
    assert!(h.output().is_empty(), "inside the reordering window");
    assert_eq!(h.stack.stats().fast_retransmits, 0);
    let at = h.stack.poll_timeout().unwrap();
    assert_eq!(at, h.now + Duration::from_micros(250));
    h.advance(Duration::from_micros(250));
    let rtx: Vec<SeqNum> = h.output().iter().map(|o| o.tcp.seq).collect();
    assert_eq!(rtx, vec![una + 2000]);
    assert_eq!(h.stack.stats().rto_expirations, 0);
}

/// RFC 2883 / RFC 9438 4.9: when D-SACKs show every retransmission of a
/// recovery was spurious, cwnd and ssthresh return to their prior values.
#[test]
fn test_established_dsack_undoes_spurious_recovery() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    let before = h.stack.info(h.id()).unwrap();
    h.advance(Duration::from_millis(10));
    sack_ack(&mut h, &[(una + 1000, una + 10_000)]);
    assert_eq!(h.output().len(), 1);
    let during = h.stack.info(h.id()).unwrap();
    assert!(during.cwnd < before.cwnd && during.ssthresh < before.ssthresh);
    // The original arrives late, then the retransmission: a D-SACK.
    h.advance(Duration::from_millis(10));
    h.peer_ack = una + 10_000;
    sack_ack(&mut h, &[(una, una + 1000)]);
    let after = h.stack.info(h.id()).unwrap();
    assert_eq!(after.ssthresh, before.ssthresh, "{after:?}");
    assert!(after.cwnd >= before.cwnd, "{after:?} vs {before:?}");
}

#[test]
fn test_established_limited_transmit_on_first_dupacks() {
    let mut h = socket_established();
    // Peer MSS 536 (no option): send more than the initial window.
    h.stack.send(h.id(), &[1u8; 8000]).unwrap();
    let first = h.output();
    let sent: usize = first.iter().map(|o| o.payload.len()).sum();
    let una = h.peer_ack;
    let seq = h.peer_seq;
    h.send_raw(seq, Some(una), TcpFlags::EMPTY, &[]);
    let more = h.output();
    assert_eq!(more.len(), 1, "one new segment per duplicate ACK");
    assert_eq!(more[0].tcp.seq, una + sent);
}

#[test]
fn test_established_duplicate_segment_reported_by_dsack() {
    let mut h = socket_established_sack();
    let base = h.peer_seq;
    h.send(TcpFlags::PSH, b"abcd");
    h.output();
    // The same segment again: RFC 2883 D-SACK in the first block.
    let ack = h.peer_ack;
    h.send_raw(base, Some(ack), TcpFlags::PSH, b"abcd");
    let out = h.expect_one();
    assert_eq!(out.tcp.ack, base + 4);
    assert_eq!(out.tcp.options.sack.as_slice(), &[(base, base + 4)]);
    // Reported once only.
    h.send(TcpFlags::PSH, b"e");
    h.advance(Duration::from_millis(50));
    let later = h.output();
    assert!(
        later.iter().all(|o| o.tcp.options.sack.is_empty()),
        "{later:#?}"
    );
}

#[test]
fn test_established_tail_loss_probe_recovers_last_two_segments() {
    let mut h = socket_established_sack();
    // Give the connection a real RTT of 20 ms.
    h.stack.send(h.id(), &[1u8; 1000]).unwrap();
    h.output();
    h.advance(Duration::from_millis(20));
    h.peer_ack += 1000;
    h.send(TcpFlags::EMPTY, &[]);
    let start = h.now;
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    // The last two segments are dropped: the peer acknowledges 8 of 10.
    h.peer_ack = una + 8000;
    h.send(TcpFlags::EMPTY, &[]);
    // The probe timeout (2 * SRTT = 40 ms) comes well before the RTO.
    let probe = h.run_timers_until(start + Duration::from_millis(60));
    assert_eq!(probe.len(), 1, "{probe:#?}");
    assert_eq!(probe[0].tcp.seq, una + 9000, "the last segment is probed");
    // The probe is SACKed: the segment before it is lost, and resent at once.
    sack_ack(&mut h, &[(una + 9000, una + 10_000)]);
    let out = h.output();
    assert!(out.iter().any(|o| o.tcp.seq == una + 8000), "{out:#?}");
    assert_eq!(h.stack.stats().rto_expirations, 0);
    assert!(h.now - start < Duration::from_millis(100));
}

// ---------------------------------------------------------------------
// ECN (RFC 3168)
// ---------------------------------------------------------------------

#[test]
fn test_syn_sent_ecn_setup_and_ece_reaction() {
    let mut cfg = config();
    cfg.ecn = true;
    let mut h = Harness::new(cfg);
    h.local = SocketAddrV4::new(LOCAL_IP, 50000);
    let id = h
        .stack
        .connect(h.now, Some(h.local.into()), REMOTE)
        .unwrap();
    h.conn = Some(id);
    let syn = h.expect_one();
    assert_eq!(syn.flags(), TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR);
    let iss = syn.tcp.seq;
    // ECN-setup SYN-ACK: ECE without CWR.
    h.send_raw(
        SeqNum(REMOTE_ISS),
        Some(iss + 1),
        TcpFlags::SYN | TcpFlags::ECE,
        &[],
    );
    h.peer_seq = SeqNum(REMOTE_ISS + 1);
    h.peer_ack = iss + 1;
    h.output();
    assert_eq!(h.state(), State::Established);
    h.stack.set_option(id, SockOpt::NoDelay(true)).unwrap();
    h.stack.send(id, &[1u8; 3000]).unwrap();
    let segs = h.output();
    assert!(!segs.is_empty());
    // The peer echoes congestion: one reduction, then CWR on new data.
    h.peer_ack += 536;
    h.send(TcpFlags::ECE, &[]);
    assert_eq!(h.stack.stats().ecn_reductions, 1);
    // Within the same window a second ECE does not reduce again.
    h.peer_ack += 536;
    h.send(TcpFlags::ECE, &[]);
    assert_eq!(h.stack.stats().ecn_reductions, 1);
    h.peer_ack += 3000 - 2 * 536;
    h.send(TcpFlags::EMPTY, &[]);
    h.stack.send(id, &[2u8; 3000]).unwrap();
    let out = h.output();
    assert!(
        out.iter().any(|o| o.flags().contains(TcpFlags::CWR)),
        "{out:#?}"
    );
}

#[test]
fn test_established_ce_mark_echoed_until_cwr() {
    let mut cfg = config();
    cfg.ecn = true;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let seq = h.peer_seq;
    h.send_raw(
        seq,
        None,
        TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR,
        &[],
    );
    h.peer_seq += 1;
    let synack = h.expect_one();
    assert_eq!(
        synack.flags(),
        TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE
    );
    h.peer_ack = synack.tcp.seq + 1;
    h.send(TcpFlags::EMPTY, &[]);
    h.conn = h.stack.accept(crate::ListenerId(0));
    // A data segment marked CE in the IP header.
    let tcp = TcpRepr {
        src_port: REMOTE.port(),
        dst_port: LOCAL.port(),
        seq: h.peer_seq,
        ack: h.peer_ack,
        flags: TcpFlags::ACK,
        window: 65535,
        ..TcpRepr::default()
    };
    let mut pkt = packet(REMOTE, LOCAL, &tcp, b"data");
    pkt[1] |= 0b11;
    pkt[10] = 0;
    pkt[11] = 0;
    let c = crate::wire::checksum::checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    h.stack.handle_packet(h.now, &pkt);
    h.peer_seq += 4;
    let ack = h.expect_one();
    assert!(ack.flags().contains(TcpFlags::ECE));
    // ECE continues until the sender's CWR.
    h.send(TcpFlags::PSH, b"more");
    h.send(TcpFlags::PSH, b"more");
    assert!(h.output().iter().all(|o| o.flags().contains(TcpFlags::ECE)));
    h.send(TcpFlags::CWR | TcpFlags::PSH, b"more");
    h.send(TcpFlags::PSH, b"more");
    let out = h.output();
    assert!(
        out.iter().all(|o| !o.flags().contains(TcpFlags::ECE)),
        "{out:#?}"
    );
}

// Regression tests for defects found by black-box probes, named after the
// rule each one breaks.
mod rules;
// SYN queue, SYN cookies (RFC 4987) and the accept queue's limit.
mod syncookies;
// TCP_QUICKACK, IP_TOS, SO_LINGER, SO_ERROR, SO_REUSEPORT.
mod sockopts;
