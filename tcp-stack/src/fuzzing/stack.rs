//! The whole-stack harness: a [`Stack`] at [`LOCAL_IP`] with a listener on
//! port [`LISTEN_PORT`], and the fuzz input playing the peer at
//! [`PEER_IP`] and the application.
//!
//! The input is a configuration byte, then actions ([`Action`]); each
//! decodes from an opcode byte and a few fields, and reads past the end as
//! zeroes. Peer segments start from [`Template`]s recorded from real
//! exchanges and are mutated field by field; their sequence and
//! acknowledgment numbers can be made relative to the target connection's
//! RCV.NXT / SND.UNA / SND.NXT / SND.MAX, so a mutated segment still lands
//! in the window as the state moves on.

use super::invariants::{check_invariants, check_progress, Bounds};
use super::reader::Reader;
use super::{templates, ConnSnapshot, Template};
use crate::config::EthernetConfig;
use crate::wire::tcp::fill_checksum;
use crate::wire::{
    ArpOp, ArpRepr, EtherType, EthernetFrame, EthernetRepr, IcmpRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, MacAddr, TcpFlags, TcpOptions, TcpRepr,
};
use crate::{
    Config, CongestionControl, ConnId, Duration, Event, Instant, ListenerId, RxMeta, SeqNum,
    SockOpt, Stack, State,
};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

/// The stack's address.
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The peer's address (every template comes from it).
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The stack's IPv6 address (it answers for both families).
pub const LOCAL_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// The peer's IPv6 address.
pub const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The port of the listener opened before the first action.
pub const LISTEN_PORT: u16 = 80;
/// Connections the stack may hold: small, so the bound is reached.
pub const MAX_CONNECTIONS: usize = 4;
/// At most this many actions are decoded from one input.
pub const MAX_ACTIONS: usize = 256;
/// At most this many datagrams are drained after one action.
const MAX_TRANSMITS: usize = 2048;
const MTU: usize = 1500;
/// Time steps by code; codes past the table read milliseconds as a `u16`.
const STEPS_MS: [u64; 10] = [
    1, 10, 40, 200, 1_000, 3_000, 10_000, 60_000, 130_000, 7_200_000,
];

/// A change to one field of a template segment (`None`: as recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mutation {
    /// `< 0x80`: the template's tuple with the peer port moved up by
    /// `t % 4`; else the tuple of a live connection (`t & 0x7f` modulo
    /// their number).
    pub target: Option<u8>,
    /// (mode, delta): mode % 4 = 0 template + delta, 1 RCV.NXT + delta,
    /// 2 IRS + delta, 3 delta as the number.
    pub seq: Option<(u8, u32)>,
    /// (mode, delta): mode % 5 = 0 template + delta, 1 SND.UNA + delta,
    /// 2 SND.NXT + delta, 3 SND.MAX + delta, 4 delta as the number.
    pub ack: Option<(u8, u32)>,
    /// The eight control bits.
    pub flags: Option<u8>,
    /// The raw window field.
    pub window: Option<u16>,
    /// (length % 2048, fill byte).
    pub payload: Option<(u16, u8)>,
    /// Replacement options.
    pub options: Option<OptMutation>,
    /// Bit 0: corrupt the checksum; bits 1-2: ECN codepoint; bit 3: mark
    /// the checksum as verified by the device; bit 4: deliver twice.
    pub misc: Option<u8>,
}

/// Replacement options: bit 0 MSS, 1 window scale, 2 SACK-permitted,
/// 3 timestamps, 4 SACK blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptMutation {
    /// Which options are present (bits as above).
    pub present: u8,
    /// The MSS value.
    pub mss: u16,
    /// The window scale shift.
    pub wscale: u8,
    /// (mode, a, b): mode % 3 = 0 (a, b) as given; 1 (template TSval + a,
    /// last TSval the stack sent on this tuple + b); 2 (a, 0).
    pub ts: (u8, u32, u32),
    /// (offset from SND.UNA, length), at most four.
    pub sack: Vec<(u16, u16)>,
}

/// One step of a stack fuzz input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A peer segment from template `template` (modulo their number).
    Segment {
        /// Template index.
        template: u8,
        /// The changes to the template.
        m: Mutation,
    },
    /// Bytes as a TCP segment from the peer, in a valid IPv4 header, with
    /// its checksum filled in.
    RawTcp(Vec<u8>),
    /// Bytes as a whole IPv4 datagram.
    RawIp(Vec<u8>),
    /// kind % 4: 0 echo request of `len % 64` bytes; 1 destination
    /// unreachable (code `code % 16`), 2 time exceeded, 3 fragmentation
    /// needed with `mtu`; errors quote a recent datagram of ours (`quote`).
    Icmp {
        /// Message kind, modulo 4 (see above).
        kind: u8,
        /// Code of a destination unreachable.
        code: u8,
        /// Next-hop MTU of a fragmentation needed.
        mtu: u16,
        /// Which recent datagram of ours an error quotes.
        quote: u8,
        /// Echo request data length, modulo 64.
        len: u8,
    },
    /// Advance the clock by step `code` (1 ms, 10 ms, 40 ms, 200 ms, 1 s,
    /// 3 s, 10 s, 60 s, 130 s, 2 h), or by `ms` when `code` is past them.
    Advance {
        /// Index into the step table.
        code: u8,
        /// Milliseconds, when `code` is past the table.
        ms: u16,
    },
    /// Jump to the next timer deadline.
    ToTimeout,
    /// Accept from listener `listener`.
    Accept(u8),
    /// `send` of `len` bytes on a held connection.
    Send {
        /// Held connection index (modulo their number), stale handles included.
        conn: u8,
        /// Bytes to send.
        len: u16,
    },
    /// `recv` of up to `len` bytes on a held connection.
    Recv {
        /// Held connection index (modulo their number).
        conn: u8,
        /// Buffer length.
        len: u16,
    },
    /// `peek` of up to `len` bytes on a held connection.
    Peek {
        /// Held connection index (modulo their number).
        conn: u8,
        /// Buffer length.
        len: u16,
    },
    /// `shutdown` of a held connection (index modulo their number).
    Shutdown(u8),
    /// `close` of a held connection (index modulo their number).
    Close(u8),
    /// `abort` of a held connection (index modulo their number).
    Abort(u8),
    /// `set_option` on a held connection.
    SetOption {
        /// Held connection index (modulo their number).
        conn: u8,
        /// Which option, modulo 7: no-delay, keep-alive, keep-alive parameters,
        /// user timeout, TTL, linger zero, congestion control.
        opt: u8,
        /// The option's value, drawn from these bits.
        value: u32,
    },
    /// Active open to the peer; `local_port` 0 picks an ephemeral one.
    Connect {
        /// The peer's port.
        port: u16,
        /// Our port.
        local_port: u16,
    },
    /// Listen on `port` (odd ports on the wildcard address).
    Listen {
        /// The port.
        port: u16,
        /// The backlog.
        backlog: u8,
    },
    /// `close_listener` of a listener (index modulo their number).
    CloseListener(u8),
    /// `connect_listener` from a listener to the peer.
    ConnectListener {
        /// Listener index (modulo their number).
        listener: u8,
        /// The peer's port.
        port: u16,
    },
    /// `notify_recv` or `notify_send`.
    Notify {
        /// Held connection index (modulo their number).
        conn: u8,
        /// `notify_recv` when set, else `notify_send`.
        recv: bool,
    },
    /// The getters: state, error, addresses, info, buffers.
    Query(u8),
    /// Bytes as a TCP segment from the peer's IPv6 address to ours, in a
    /// valid IPv6 header, with the checksum fixed; `ext` picks extension
    /// headers in front (0: none, 1: Hop-by-Hop PadN, 2: Destination
    /// Options with an unknown option of action `ext >> 6`, 3: a fragment).
    RawTcp6 {
        /// Extension headers in front (see above).
        ext: u8,
        /// The TCP segment.
        bytes: Vec<u8>,
    },
}

const OPCODES: u8 = 21;

impl Action {
    fn decode(r: &mut Reader<'_>) -> Action {
        match r.u8() % OPCODES {
            0 => {
                let template = r.u8();
                let mask = r.u8();
                let mut m = Mutation::default();
                if mask & 0x01 != 0 {
                    m.target = Some(r.u8());
                }
                if mask & 0x02 != 0 {
                    m.seq = Some((r.u8(), r.u32()));
                }
                if mask & 0x04 != 0 {
                    m.ack = Some((r.u8(), r.u32()));
                }
                if mask & 0x08 != 0 {
                    m.flags = Some(r.u8());
                }
                if mask & 0x10 != 0 {
                    m.window = Some(r.u16());
                }
                if mask & 0x20 != 0 {
                    m.payload = Some((r.u16(), r.u8()));
                }
                if mask & 0x40 != 0 {
                    let present = r.u8();
                    let mut o = OptMutation {
                        present,
                        ..OptMutation::default()
                    };
                    if present & 1 != 0 {
                        o.mss = r.u16();
                    }
                    if present & 2 != 0 {
                        o.wscale = r.u8();
                    }
                    if present & 8 != 0 {
                        o.ts = (r.u8(), r.u32(), r.u32());
                    }
                    if present & 16 != 0 {
                        let n = r.u8() % 5;
                        o.sack = (0..n).map(|_| (r.u16(), r.u16())).collect();
                    }
                    m.options = Some(o);
                }
                if mask & 0x80 != 0 {
                    m.misc = Some(r.u8());
                }
                Action::Segment { template, m }
            }
            1 => {
                let n = usize::from(r.u8());
                Action::RawTcp(r.bytes(n).to_vec())
            }
            2 => {
                let n = usize::from(r.u8());
                Action::RawIp(r.bytes(n).to_vec())
            }
            3 => Action::Icmp {
                kind: r.u8(),
                code: r.u8(),
                mtu: r.u16(),
                quote: r.u8(),
                len: r.u8(),
            },
            4 => {
                let code = r.u8();
                let ms = if usize::from(code) < STEPS_MS.len() {
                    0
                } else {
                    r.u16()
                };
                Action::Advance { code, ms }
            }
            5 => Action::ToTimeout,
            6 => Action::Accept(r.u8()),
            7 => Action::Send {
                conn: r.u8(),
                len: r.u16(),
            },
            8 => Action::Recv {
                conn: r.u8(),
                len: r.u16(),
            },
            9 => Action::Peek {
                conn: r.u8(),
                len: r.u16(),
            },
            10 => Action::Shutdown(r.u8()),
            11 => Action::Close(r.u8()),
            12 => Action::Abort(r.u8()),
            13 => Action::SetOption {
                conn: r.u8(),
                opt: r.u8(),
                value: r.u32(),
            },
            14 => Action::Connect {
                port: r.u16(),
                local_port: r.u16(),
            },
            15 => Action::Listen {
                port: r.u16(),
                backlog: r.u8(),
            },
            16 => Action::CloseListener(r.u8()),
            17 => Action::ConnectListener {
                listener: r.u8(),
                port: r.u16(),
            },
            18 => {
                let conn = r.u8();
                Action::Notify {
                    conn,
                    recv: r.u8() & 1 != 0,
                }
            }
            19 => Action::Query(r.u8()),
            _ => {
                let ext = r.u8();
                let n = usize::from(r.u8());
                Action::RawTcp6 {
                    ext,
                    bytes: r.bytes(n).to_vec(),
                }
            }
        }
    }

    /// Appends the bytes that decode to this action.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let u16le = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
        let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        match self {
            Action::Segment { template, m } => {
                out.push(0);
                out.push(*template);
                let mut mask = 0u8;
                for (bit, set) in [
                    m.target.is_some(),
                    m.seq.is_some(),
                    m.ack.is_some(),
                    m.flags.is_some(),
                    m.window.is_some(),
                    m.payload.is_some(),
                    m.options.is_some(),
                    m.misc.is_some(),
                ]
                .into_iter()
                .enumerate()
                {
                    if set {
                        mask |= 1 << bit;
                    }
                }
                out.push(mask);
                if let Some(t) = m.target {
                    out.push(t);
                }
                for (mode, delta) in [m.seq, m.ack].into_iter().flatten() {
                    out.push(mode);
                    u32le(out, delta);
                }
                if let Some(f) = m.flags {
                    out.push(f);
                }
                if let Some(w) = m.window {
                    u16le(out, w);
                }
                if let Some((len, fill)) = m.payload {
                    u16le(out, len);
                    out.push(fill);
                }
                if let Some(o) = &m.options {
                    out.push(o.present);
                    if o.present & 1 != 0 {
                        u16le(out, o.mss);
                    }
                    if o.present & 2 != 0 {
                        out.push(o.wscale);
                    }
                    if o.present & 8 != 0 {
                        out.push(o.ts.0);
                        u32le(out, o.ts.1);
                        u32le(out, o.ts.2);
                    }
                    if o.present & 16 != 0 {
                        out.push(o.sack.len() as u8);
                        for &(a, b) in &o.sack {
                            u16le(out, a);
                            u16le(out, b);
                        }
                    }
                }
                if let Some(x) = m.misc {
                    out.push(x);
                }
            }
            Action::RawTcp(b) | Action::RawIp(b) => {
                out.push(if matches!(self, Action::RawTcp(_)) {
                    1
                } else {
                    2
                });
                let b = &b[..b.len().min(255)];
                out.push(b.len() as u8);
                out.extend_from_slice(b);
            }
            Action::Icmp {
                kind,
                code,
                mtu,
                quote,
                len,
            } => {
                out.extend_from_slice(&[3, *kind, *code]);
                u16le(out, *mtu);
                out.extend_from_slice(&[*quote, *len]);
            }
            Action::Advance { code, ms } => {
                out.extend_from_slice(&[4, *code]);
                if usize::from(*code) >= STEPS_MS.len() {
                    u16le(out, *ms);
                }
            }
            Action::ToTimeout => out.push(5),
            Action::Accept(l) => out.extend_from_slice(&[6, *l]),
            Action::Send { conn, len }
            | Action::Recv { conn, len }
            | Action::Peek { conn, len } => {
                let op = match self {
                    Action::Send { .. } => 7,
                    Action::Recv { .. } => 8,
                    _ => 9,
                };
                out.extend_from_slice(&[op, *conn]);
                u16le(out, *len);
            }
            Action::Shutdown(c) => out.extend_from_slice(&[10, *c]),
            Action::Close(c) => out.extend_from_slice(&[11, *c]),
            Action::Abort(c) => out.extend_from_slice(&[12, *c]),
            Action::SetOption { conn, opt, value } => {
                out.extend_from_slice(&[13, *conn, *opt]);
                u32le(out, *value);
            }
            Action::Connect { port, local_port } => {
                out.push(14);
                u16le(out, *port);
                u16le(out, *local_port);
            }
            Action::Listen { port, backlog } => {
                out.push(15);
                u16le(out, *port);
                out.push(*backlog);
            }
            Action::CloseListener(l) => out.extend_from_slice(&[16, *l]),
            Action::ConnectListener { listener, port } => {
                out.extend_from_slice(&[17, *listener]);
                u16le(out, *port);
            }
            Action::Notify { conn, recv } => out.extend_from_slice(&[18, *conn, u8::from(*recv)]),
            Action::Query(c) => out.extend_from_slice(&[19, *c]),
            Action::RawTcp6 { ext, bytes } => {
                let b = &bytes[..bytes.len().min(255)];
                out.extend_from_slice(&[20, *ext, b.len() as u8]);
                out.extend_from_slice(b);
            }
        }
    }
}

/// The configuration byte and the actions of a stack fuzz input.
pub fn decode_actions(data: &[u8]) -> (u8, Vec<Action>) {
    let mut r = Reader::new(data);
    let config = r.u8();
    let mut actions = Vec::new();
    while !r.is_empty() && actions.len() < MAX_ACTIONS {
        actions.push(Action::decode(&mut r));
    }
    (config, actions)
}

/// The stack's configuration for a configuration byte; 0 is the one the
/// templates were recorded with. Bits turn off timestamps, SACK, window
/// scaling and ECN, pick NewReno, set no-delay, shrink the buffers, and
/// drain with `poll_transmit_gso`.
pub fn config(bits: u8) -> Config {
    let small = bits & 0x40 != 0;
    Config {
        addrs: vec![LOCAL_IP.into(), LOCAL_IP6.into()],
        mtu: MTU,
        seed: 0xf022,
        send_buffer: if small { 4096 } else { 16 * 1024 },
        recv_buffer: if small { 4096 } else { 16 * 1024 },
        send_buffer_max: if small { 4096 } else { 64 * 1024 },
        recv_buffer_max: if small { 4096 } else { 64 * 1024 },
        msl: Duration::from_secs(2),
        fin_wait2_timeout: Duration::from_secs(5),
        timestamps: bits & 0x01 == 0,
        sack: bits & 0x02 == 0,
        window_scaling: bits & 0x04 == 0,
        ecn: bits & 0x08 == 0,
        congestion_control: if bits & 0x10 != 0 {
            CongestionControl::NewReno
        } else {
            CongestionControl::Cubic
        },
        nodelay: bits & 0x20 != 0,
        max_connections: MAX_CONNECTIONS,
        ..Config::default()
    }
}

/// Runs a stack fuzz input: decodes it and applies every action, checking
/// the invariants after each.
///
/// # Panics
/// On a panic or failed `debug_assert!` in the stack, or a violated
/// invariant (the message names it).
pub fn run_stack(data: &[u8]) {
    let (config, actions) = decode_actions(data);
    let templates = templates();
    let mut f = Fuzzer::new(config);
    for a in &actions {
        f.apply(a, templates);
    }
}

/// [`run_stack`] with the Ethernet link layer on (`Config::ethernet`):
/// every datagram goes in as a frame from [`PEER_MAC`], the peer answers
/// the stack's ARP requests and Neighbour Solicitations for its
/// addresses, and every frame out must parse (IP datagrams as in
/// `run_stack`, ARP and NS/NA by their own parsers).
///
/// # Panics
/// As [`run_stack`].
pub fn run_stack_ethernet(data: &[u8]) {
    let (config, actions) = decode_actions(data);
    let templates = templates();
    let mut f = Fuzzer::new_with(config, true);
    for a in &actions {
        f.apply(a, templates);
    }
}

/// The stack's MAC in [`run_stack_ethernet`].
pub const LOCAL_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
/// The peer's MAC in [`run_stack_ethernet`].
pub const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// A stack plus what the harness remembers about it.
pub struct Fuzzer {
    /// The stack under test.
    pub stack: Stack,
    /// Its virtual clock.
    pub now: Instant,
    gso: bool,
    bounds: Bounds,
    /// Handles given to the application (connect, accept), stale ones included.
    pub held: Vec<ConnId>,
    /// Handles the application closed: no event may name them again.
    closed: Vec<ConnId>,
    /// Handles whose `Closed` event was delivered.
    closed_event: Vec<ConnId>,
    /// Listeners opened, closed ones included.
    pub listeners: Vec<ListenerId>,
    /// Recent TCP datagrams we sent, for ICMP errors to quote.
    quotes: VecDeque<Vec<u8>>,
    /// Last TSval we sent per (local port, peer port).
    ts_sent: Vec<((u16, u16), u32)>,
    /// Each connection's sequence variables after the previous step.
    previous: Vec<ConnSnapshot>,
    /// Keep the datagrams and events of the last action (for recording).
    pub record: bool,
    /// With `record`: the datagrams the stack sent during the last action.
    pub out: Vec<Vec<u8>>,
    /// With `record`: the events the stack reported during the last action.
    pub events: Vec<Event>,
    tx_buf: Vec<u8>,
    /// The link layer is on ([`run_stack_ethernet`]).
    ethernet: bool,
    /// Frames the peer answers the stack's ARP/NS with, handled after the drain.
    link_replies: Vec<Vec<u8>>,
}

/// A frame from [`PEER_MAC`] to `dst`.
fn eth_frame(dst: MacAddr, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    EthernetRepr {
        dst,
        src: PEER_MAC,
        ethertype,
    }
    .emit(&mut f);
    f.extend_from_slice(payload);
    f
}

/// What `Send` actions write (a pattern with a long period).
fn send_data() -> &'static [u8] {
    static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DATA.get_or_init(|| (0..u16::MAX).map(|i| (i % 251) as u8).collect())
}

impl Fuzzer {
    /// A stack configured by `config_bits` (see [`config`]) with a listener
    /// on [`LISTEN_PORT`] (backlog 2).
    pub fn new(config_bits: u8) -> Fuzzer {
        Fuzzer::new_with(config_bits, false)
    }

    /// [`new`](Fuzzer::new), with the Ethernet link layer when `ethernet`
    /// (every address on-link).
    pub fn new_with(config_bits: u8, ethernet: bool) -> Fuzzer {
        let mut cfg = config(config_bits);
        if ethernet {
            let mut e = EthernetConfig::new(LOCAL_MAC);
            e.prefixes = vec![(LOCAL_IP.into(), 0), (LOCAL_IP6.into(), 0)];
            cfg.ethernet = Some(e);
        }
        let bounds = Bounds {
            send_buffer: cfg.send_buffer.max(cfg.send_buffer_max),
            recv_buffer: cfg.recv_buffer.max(cfg.recv_buffer_max),
        };
        let mut stack = Stack::new(cfg);
        let l = stack
            .listen(SocketAddrV4::new(LOCAL_IP, LISTEN_PORT), 2)
            .expect("listen");
        Fuzzer {
            stack,
            now: Instant::from_millis(1_000),
            gso: config_bits & 0x80 != 0,
            bounds,
            held: Vec::new(),
            closed: Vec::new(),
            closed_event: Vec::new(),
            listeners: vec![l],
            quotes: VecDeque::new(),
            ts_sent: Vec::new(),
            previous: Vec::new(),
            record: false,
            out: Vec::new(),
            events: Vec::new(),
            tx_buf: vec![
                0;
                if config_bits & 0x80 != 0 {
                    usize::from(u16::MAX)
                } else {
                    MTU
                } + if ethernet { 14 } else { 0 }
            ],
            ethernet,
            link_replies: Vec::new(),
        }
    }

    /// Hands a datagram to the stack, in a frame from the peer when the
    /// link layer is on.
    fn inject(&mut self, datagram: &[u8], meta: RxMeta) {
        if !self.ethernet {
            return self.stack.handle_packet_meta(self.now, datagram, meta);
        }
        let ethertype = if datagram.first().map(|b| b >> 4) == Some(6) {
            EtherType::Ipv6
        } else {
            EtherType::Ipv4
        };
        let frame = eth_frame(LOCAL_MAC, ethertype, datagram);
        self.stack.handle_packet_meta(self.now, &frame, meta);
    }

    /// A frame the stack sent: IP datagrams are checked as without a link
    /// layer; ARP and NS/NA must parse, and the peer answers requests for
    /// its addresses.
    fn on_frame(&mut self, frame: &[u8], gso: Option<u16>) {
        let f = EthernetFrame::new_checked(frame).expect("output: frame of 14 bytes or more");
        let eth = EthernetRepr::parse(&f);
        assert_eq!(eth.src, LOCAL_MAC, "output: source MAC");
        let payload = f.payload();
        match eth.ethertype {
            EtherType::Arp => {
                let a = ArpRepr::parse(payload).expect("output: ARP must parse");
                if a.op == ArpOp::Request && a.target_ip == PEER_IP {
                    let mut body = [0u8; ArpRepr::LEN];
                    ArpRepr {
                        op: ArpOp::Reply,
                        sender_mac: PEER_MAC,
                        sender_ip: PEER_IP,
                        target_mac: LOCAL_MAC,
                        target_ip: a.sender_ip,
                    }
                    .emit(&mut body);
                    self.link_replies
                        .push(eth_frame(LOCAL_MAC, EtherType::Arp, &body));
                }
            }
            EtherType::Ipv6
                if payload.get(6) == Some(&58) && matches!(payload.get(40), Some(135 | 136)) =>
            {
                use crate::wire::{Ipv6Packet, Ipv6Repr, NdpRepr};
                let ip = Ipv6Packet::new_checked(payload).expect("output: NDP IPv6 header");
                let (repr, offset) = Ipv6Repr::parse(&ip).expect("output: NDP IPv6 header");
                assert_eq!(repr.hop_limit, 255, "output: NDP hop limit");
                let upper = &payload[offset..offset + repr.payload_len];
                let m =
                    NdpRepr::parse(upper, repr.src, repr.dst).expect("output: NS/NA must parse");
                if let NdpRepr::NeighborSolicit { target, .. } = m {
                    if target == PEER_IP6 {
                        let na = NdpRepr::NeighborAdvert {
                            router: false,
                            solicited: true,
                            overrides: true,
                            target,
                            target_ll: Some(PEER_MAC),
                        };
                        let mut body = vec![0u8; na.buffer_len()];
                        na.emit(PEER_IP6, repr.src, &mut body);
                        let mut pkt = vec![0u8; Ipv6Repr::HEADER_LEN + body.len()];
                        Ipv6Repr {
                            src: PEER_IP6,
                            dst: repr.src,
                            next_header: IpProtocol::Icmpv6,
                            payload_len: body.len(),
                            hop_limit: 255,
                            traffic_class: 0,
                            flow_label: 0,
                        }
                        .emit(&mut pkt);
                        pkt[Ipv6Repr::HEADER_LEN..].copy_from_slice(&body);
                        self.link_replies
                            .push(eth_frame(LOCAL_MAC, EtherType::Ipv6, &pkt));
                    }
                }
            }
            EtherType::Ipv4 | EtherType::Ipv6 => {
                assert!(
                    eth.dst.is_unicast() || eth.dst.is_multicast(),
                    "output: destination MAC"
                );
                self.on_transmit(payload, gso);
            }
            EtherType::Unknown(t) => panic!("output: unexpected EtherType {t:#06x}"),
        }
    }

    fn conn(&self, i: u8) -> Option<ConnId> {
        if self.held.is_empty() {
            return None;
        }
        Some(self.held[usize::from(i) % self.held.len()])
    }

    fn listener(&self, i: u8) -> Option<ListenerId> {
        if self.listeners.is_empty() {
            return None;
        }
        Some(self.listeners[usize::from(i) % self.listeners.len()])
    }

    /// Applies one action, then runs due timers, drains output and events,
    /// and checks the invariants.
    pub fn apply(&mut self, a: &Action, templates: &[Template]) {
        self.out.clear();
        self.events.clear();
        match a {
            Action::Segment { template, m } => self.segment(*template, m, templates),
            Action::RawTcp(b) => {
                let mut seg = b.clone();
                fill_checksum(&mut seg, PEER_IP, LOCAL_IP);
                let pkt = ip_datagram(PEER_IP, LOCAL_IP, IpProtocol::Tcp, 0, &seg);
                self.inject(&pkt, RxMeta::default());
            }
            Action::RawIp(b) => self.inject(b, RxMeta::default()),
            Action::RawTcp6 { ext, bytes } => {
                let mut seg = bytes.clone();
                fill_checksum(&mut seg, PEER_IP6, LOCAL_IP6);
                let pkt = ipv6_datagram(*ext, &seg);
                self.inject(&pkt, RxMeta::default());
            }
            Action::Icmp {
                kind,
                code,
                mtu,
                quote,
                len,
            } => self.icmp(*kind, *code, *mtu, *quote, *len),
            Action::Advance { code, ms } => {
                let ms = STEPS_MS
                    .get(usize::from(*code))
                    .copied()
                    .unwrap_or(u64::from(*ms));
                self.now += Duration::from_millis(ms);
            }
            Action::ToTimeout => {
                if let Some(t) = self.stack.poll_timeout() {
                    self.now = self.now.max(t);
                }
            }
            Action::Accept(l) => {
                if let Some(l) = self.listener(*l) {
                    if let Some(id) = self.stack.accept(l) {
                        self.held.push(id);
                    }
                }
            }
            Action::Send { conn, len } => {
                if let Some(id) = self.conn(*conn) {
                    let _ = self.stack.send(id, &send_data()[..usize::from(*len)]);
                }
            }
            Action::Recv { conn, len } | Action::Peek { conn, len } => {
                if let Some(id) = self.conn(*conn) {
                    let mut buf = vec![0; usize::from(*len)];
                    let _ = if matches!(a, Action::Recv { .. }) {
                        self.stack.recv(id, &mut buf)
                    } else {
                        self.stack.peek(id, &mut buf)
                    };
                }
            }
            Action::Shutdown(c) => {
                if let Some(id) = self.conn(*c) {
                    let _ = self.stack.shutdown(id);
                }
            }
            Action::Close(c) => {
                if let Some(id) = self.conn(*c) {
                    if self.stack.close(id).is_ok() {
                        self.closed.push(id);
                    }
                }
            }
            Action::Abort(c) => {
                if let Some(id) = self.conn(*c) {
                    let _ = self.stack.abort(id);
                }
            }
            Action::SetOption { conn, opt, value } => {
                if let Some(id) = self.conn(*conn) {
                    let _ = self.stack.set_option(id, sock_opt(*opt, *value));
                }
            }
            Action::Connect { port, local_port } => {
                let local = (*local_port != 0).then(|| SocketAddrV4::new(LOCAL_IP, *local_port));
                let remote = SocketAddrV4::new(PEER_IP, *port);
                if let Ok(id) = self.stack.connect(self.now, local.map(Into::into), remote) {
                    self.held.push(id);
                }
            }
            Action::Listen { port, backlog } => {
                let ip = if port % 2 == 1 {
                    Ipv4Addr::UNSPECIFIED
                } else {
                    LOCAL_IP
                };
                let addr = SocketAddrV4::new(ip, *port);
                if let Ok(l) = self.stack.listen(addr, usize::from(*backlog)) {
                    self.listeners.push(l);
                }
            }
            Action::CloseListener(l) => {
                if let Some(l) = self.listener(*l) {
                    self.stack.close_listener(l);
                }
            }
            Action::ConnectListener { listener, port } => {
                if let Some(l) = self.listener(*listener) {
                    let remote = SocketAddrV4::new(PEER_IP, *port);
                    if let Ok(id) = self.stack.connect_listener(self.now, l, remote) {
                        self.held.push(id);
                    }
                }
            }
            Action::Notify { conn, recv } => {
                if let Some(id) = self.conn(*conn) {
                    if *recv {
                        self.stack.notify_recv(id);
                    } else {
                        self.stack.notify_send(id);
                    }
                }
            }
            Action::Query(c) => {
                if let Some(id) = self.conn(*c) {
                    self.query(id);
                }
            }
        }
        self.settle();
    }

    /// The getters must agree with each other.
    fn query(&self, id: ConnId) {
        let s = &self.stack;
        let state = s.state(id);
        let _ = (s.error(id), s.peer_addr(id));
        match s.info(id) {
            Some(info) => {
                assert_eq!(info.state, state, "info and state disagree");
                assert_eq!(Some(info.local), s.local_addr(id));
                let sb = s.send_buffer(id).expect("send buffer of a live connection");
                let rb = s.recv_buffer(id).expect("recv buffer of a live connection");
                assert!(sb.len() <= sb.capacity() && rb.len() <= rb.capacity());
            }
            None => assert_eq!(state, State::Closed, "a handle without info is CLOSED"),
        }
    }

    /// Runs due timers, drains datagrams and events, checks the invariants.
    fn settle(&mut self) {
        if self.stack.poll_timeout().is_some_and(|t| t <= self.now) {
            self.stack.handle_timeout(self.now);
        }
        let mut drained = false;
        for round in 0..MAX_TRANSMITS {
            // The peer's answers to ARP/NS, as soon as they are asked for.
            if round > 0 && !self.link_replies.is_empty() {
                for f in std::mem::take(&mut self.link_replies) {
                    self.stack.handle_packet(self.now, &f);
                }
            }
            let sent = if self.gso {
                self.stack
                    .poll_transmit_gso(self.now, &mut self.tx_buf)
                    .map(|t| (t.len, t.segment_size))
            } else {
                self.stack
                    .poll_transmit(self.now, &mut self.tx_buf)
                    .map(|n| (n, None))
            };
            let Some((len, gso)) = sent else {
                drained = true;
                break;
            };
            let pkt = std::mem::take(&mut self.tx_buf);
            if self.ethernet {
                self.on_frame(&pkt[..len], gso);
            } else {
                self.on_transmit(&pkt[..len], gso);
            }
            self.tx_buf = pkt;
        }
        while let Some(ev) = self.stack.poll_event() {
            self.on_event(ev);
        }
        let snap = self.stack.fuzz_snapshot();
        if let Err(e) = check_invariants(&snap, self.stack.config(), &self.bounds, drained) {
            panic!("invariant violated: {e}\n{snap:#?}");
        }
        for c in &snap.conns {
            if let Some(p) = self.previous.iter().find(|p| p.id == c.id) {
                if let Err(e) = check_progress(p, c) {
                    panic!("invariant violated: {e}\nbefore: {p:#?}\nafter: {c:#?}");
                }
            }
        }
        for id in &self.closed {
            assert!(
                snap.conns.iter().all(|c| c.id != *id || c.user_closed),
                "a closed handle's connection is not orphaned"
            );
        }
        self.previous = snap.conns;
    }

    fn on_event(&mut self, ev: Event) {
        let id = match ev {
            Event::Incoming(_) => None,
            Event::Connected(id)
            | Event::Readable(id)
            | Event::Writable(id)
            | Event::PeerClosed(id)
            | Event::Reset(id)
            | Event::TimedOut(id)
            | Event::Closed(id)
            | Event::SoftError(id) => Some(id),
        };
        if let Some(id) = id {
            assert!(
                self.held.contains(&id),
                "event for a connection never handed to the application: {ev:?}"
            );
            assert!(
                !self.closed.contains(&id),
                "event for a connection the application closed: {ev:?}"
            );
            assert!(
                !self.closed_event.contains(&id),
                "event after the connection's Closed event: {ev:?}"
            );
            if matches!(ev, Event::Closed(_)) {
                self.closed_event.push(id);
            }
        }
        if self.record {
            self.events.push(ev);
        }
    }

    /// An IPv6 datagram we send: from our IPv6 address, a fixed header
    /// only, TCP or ICMPv6 with a correct checksum (RFC 8200 8.1).
    fn on_transmit_v6(&mut self, pkt: &[u8], gso: Option<u16>) {
        use crate::wire::{Icmpv6Repr, Ipv6Packet, Ipv6Repr};
        let ip = Ipv6Packet::new_checked(pkt).expect("output: IPv6 datagram must check");
        let (repr, offset) = Ipv6Repr::parse(&ip).expect("output: IPv6 header must parse");
        assert_eq!(repr.src, LOCAL_IP6, "output: source address");
        assert_eq!(offset, Ipv6Repr::HEADER_LEN, "output: no extension headers");
        assert!(
            gso.is_some() || pkt.len() <= MTU,
            "output: datagram of {} bytes exceeds the MTU",
            pkt.len()
        );
        let upper = &pkt[offset..offset + repr.payload_len];
        match repr.next_header {
            IpProtocol::Tcp => {
                TcpRepr::parse(upper, repr.src, repr.dst, gso.is_none())
                    .expect("output: TCP segment must parse");
            }
            IpProtocol::Icmpv6 => {
                Icmpv6Repr::parse(upper, repr.src, repr.dst)
                    .expect("output: ICMPv6 message must parse");
            }
            p => panic!("output: unexpected protocol {p:?}"),
        }
        if self.record {
            self.out.push(pkt.to_vec());
        }
    }

    /// Every datagram we send must parse, with correct checksums.
    fn on_transmit(&mut self, pkt: &[u8], gso: Option<u16>) {
        if pkt.first().map(|b| b >> 4) == Some(6) {
            return self.on_transmit_v6(pkt, gso);
        }
        let ip = Ipv4Packet::new_checked(pkt).expect("output: IPv4 datagram must check");
        let repr = Ipv4Repr::parse(&ip).expect("output: IPv4 header must parse");
        assert_eq!(repr.src, LOCAL_IP, "output: source address");
        assert!(
            gso.is_some() || pkt.len() <= MTU,
            "output: datagram of {} bytes exceeds the MTU",
            pkt.len()
        );
        match repr.protocol {
            IpProtocol::Tcp => {
                let (tcp, _) = TcpRepr::parse(ip.payload(), repr.src, repr.dst, gso.is_none())
                    .expect("output: TCP segment must parse");
                if let Some((val, _)) = tcp.options.timestamps {
                    let key = (tcp.src_port, tcp.dst_port);
                    match self.ts_sent.iter_mut().find(|(k, _)| *k == key) {
                        Some(e) => e.1 = val,
                        None => self.ts_sent.push((key, val)),
                    }
                }
                if self.quotes.len() == 8 {
                    self.quotes.pop_front();
                }
                self.quotes
                    .push_back(pkt[..pkt.len().min(Ipv4Repr::HEADER_LEN + 28)].to_vec());
            }
            IpProtocol::Icmp => {
                IcmpRepr::parse(ip.payload()).expect("output: ICMP message must parse");
            }
            p => panic!("output: unexpected protocol {p:?}"),
        }
        if self.record {
            self.out.push(pkt.to_vec());
        }
    }

    fn segment(&mut self, template: u8, m: &Mutation, templates: &[Template]) {
        if templates.is_empty() {
            return;
        }
        let t = &templates[usize::from(template) % templates.len()];
        let (mut src, mut dst) = (t.src, t.dst);
        let snap = self.stack.fuzz_snapshot();
        match m.target {
            None => {}
            Some(x) if x < 0x80 => {
                let port = src.port().wrapping_add(u16::from(x % 4)).max(1);
                src.set_port(port);
            }
            Some(x) if !snap.conns.is_empty() => {
                let c = &snap.conns[usize::from(x & 0x7f) % snap.conns.len()];
                (src, dst) = (v4_of(c.remote), v4_of(c.local));
            }
            Some(_) => {}
        }
        let conn: Option<&ConnSnapshot> = snap
            .conns
            .iter()
            .find(|c| c.local == SocketAddr::V4(dst) && c.remote == SocketAddr::V4(src));
        let mut tcp = t.tcp;
        tcp.src_port = src.port();
        tcp.dst_port = dst.port();
        if let Some((mode, d)) = m.seq {
            let base = match (mode % 4, conn) {
                (1, Some(c)) => c.rcv_nxt,
                (2, Some(c)) => c.irs,
                (3, _) => SeqNum(0),
                _ => t.tcp.seq,
            };
            tcp.seq = SeqNum(base.0.wrapping_add(d));
        }
        if let Some((mode, d)) = m.ack {
            let base = match (mode % 5, conn) {
                (1, Some(c)) => c.snd_una,
                (2, Some(c)) => c.snd_nxt,
                (3, Some(c)) => c.snd_max,
                (4, _) => SeqNum(0),
                _ => t.tcp.ack,
            };
            tcp.ack = SeqNum(base.0.wrapping_add(d));
        }
        if let Some(f) = m.flags {
            tcp.flags = TcpFlags(u16::from(f));
        }
        if let Some(w) = m.window {
            tcp.window = w;
        }
        let filled;
        let payload: &[u8] = match m.payload {
            Some((len, fill)) => {
                filled = vec![fill; usize::from(len % 2048)];
                &filled
            }
            None => &t.payload,
        };
        if let Some(o) = &m.options {
            let mut opts = TcpOptions::default();
            if o.present & 1 != 0 {
                opts.mss = Some(o.mss);
            }
            if o.present & 2 != 0 {
                opts.window_scale = Some(o.wscale);
            }
            opts.sack_permitted = o.present & 4 != 0;
            if o.present & 8 != 0 {
                let (mode, a, b) = o.ts;
                opts.timestamps = Some(match mode % 3 {
                    1 => {
                        let val = t.tcp.options.timestamps.map_or(0, |(v, _)| v);
                        let key = (dst.port(), src.port());
                        let ecr = self
                            .ts_sent
                            .iter()
                            .find(|(k, _)| *k == key)
                            .map_or(0, |e| e.1);
                        (val.wrapping_add(a), ecr.wrapping_add(b))
                    }
                    2 => (a, 0),
                    _ => (a, b),
                });
            }
            if o.present & 16 != 0 {
                let base = conn.map_or(t.tcp.ack, |c| c.snd_una);
                for &(off, len) in &o.sack {
                    let left = base + usize::from(off);
                    opts.sack.push(left, left + usize::from(len));
                }
            }
            tcp.options = opts;
        }
        let misc = m.misc.unwrap_or(0);
        let hl = tcp.header_len();
        let mut seg = vec![0u8; hl + payload.len()];
        tcp.emit(&mut seg);
        seg[hl..].copy_from_slice(payload);
        fill_checksum(&mut seg, *src.ip(), *dst.ip());
        if misc & 1 != 0 {
            seg[16] ^= 0x5a;
        }
        let tos = (misc >> 1) & 0b11;
        let pkt = ip_datagram(*src.ip(), *dst.ip(), IpProtocol::Tcp, tos, &seg);
        let meta = RxMeta {
            checksum_verified: misc & 8 != 0,
        };
        self.inject(&pkt, meta);
        if misc & 16 != 0 {
            self.inject(&pkt, meta);
        }
    }

    fn icmp(&mut self, kind: u8, code: u8, mtu: u16, quote: u8, len: u8) {
        let quoted: Vec<u8> = if self.quotes.is_empty() {
            Vec::new()
        } else {
            self.quotes[usize::from(quote) % self.quotes.len()].clone()
        };
        let data = vec![0xab; usize::from(len % 64)];
        let msg = match kind % 4 {
            0 => IcmpRepr::EchoRequest {
                ident: mtu,
                seq: u16::from(code),
                data: &data,
            },
            1 => IcmpRepr::DstUnreachable {
                code: code % 16,
                next_hop_mtu: 0,
                data: &quoted,
            },
            2 => IcmpRepr::TimeExceeded {
                code: code % 2,
                data: &quoted,
            },
            _ => IcmpRepr::DstUnreachable {
                code: 4,
                next_hop_mtu: mtu,
                data: &quoted,
            },
        };
        let mut body = vec![0u8; msg.buffer_len()];
        msg.emit(&mut body);
        let pkt = ip_datagram(PEER_IP, LOCAL_IP, IpProtocol::Icmp, 0, &body);
        self.inject(&pkt, RxMeta::default());
    }
}

/// Option `opt % 7` with a value drawn from `value`.
fn sock_opt(opt: u8, value: u32) -> SockOpt {
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    match opt % 7 {
        0 => SockOpt::NoDelay(value & 1 != 0),
        1 => SockOpt::KeepAlive(value & 1 != 0),
        // Idle at least 1 ms: zero wedges handle_timeout (the ignored test
        // `keepalive_idle_of_zero_is_refused`).
        2 => SockOpt::KeepAliveParams {
            idle: ms(((value & 0x3ff) * 10).max(1)),
            interval: ms(((value >> 10) & 0x3ff) * 10),
            probes: (value >> 20) & 0xf,
        },
        3 => SockOpt::UserTimeout(ms(value % 300_000)),
        4 => SockOpt::Ttl(value as u8),
        5 => SockOpt::LingerZero(value & 1 != 0),
        _ => SockOpt::CongestionControl(if value & 1 != 0 {
            CongestionControl::NewReno
        } else {
            CongestionControl::Cubic
        }),
    }
}

/// An IPv4 datagram around `payload`.
pub(crate) fn ip_datagram(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    tos: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut pkt = vec![0u8; Ipv4Repr::HEADER_LEN + payload.len()];
    Ipv4Repr {
        src,
        dst,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        tos,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut pkt);
    pkt[Ipv4Repr::HEADER_LEN..].copy_from_slice(payload);
    pkt
}

/// An IPv6 datagram from `PEER_IP6` to `LOCAL_IP6` carrying TCP `seg`,
/// behind the extension headers `ext` asks for (see [`Action::RawTcp6`]).
fn ipv6_datagram(ext: u8, seg: &[u8]) -> Vec<u8> {
    use crate::wire::Ipv6Repr;
    let (first, hdr): (u8, Vec<u8>) = match ext & 3 {
        0 => (6, Vec::new()),
        1 => (0, vec![6, 0, 1, 4, 0, 0, 0, 0]),
        2 => (60, vec![6, 0, 0x1e | (ext & 0xc0), 4, 0, 0, 0, 0]),
        _ => (44, vec![6, 0, 0, u8::from(ext & 4 != 0), 0, 0, 0, 1]),
    };
    let mut pkt = vec![0u8; Ipv6Repr::HEADER_LEN + hdr.len() + seg.len()];
    Ipv6Repr {
        src: PEER_IP6,
        dst: LOCAL_IP6,
        next_header: IpProtocol::from(first),
        payload_len: hdr.len() + seg.len(),
        hop_limit: 64,
        traffic_class: ext & 0x30 >> 4,
        flow_label: 0,
    }
    .emit(&mut pkt);
    pkt[Ipv6Repr::HEADER_LEN..Ipv6Repr::HEADER_LEN + hdr.len()].copy_from_slice(&hdr);
    pkt[Ipv6Repr::HEADER_LEN + hdr.len()..].copy_from_slice(seg);
    pkt
}

/// An IPv4 socket address of a snapshot (this harness speaks IPv4 only).
fn v4_of(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, a.port()),
    }
}
