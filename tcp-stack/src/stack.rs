//! The [`Stack`]: demultiplexing, sockets, timers and events.

use crate::buffer::{BufferFactory, RecvBuffer, SendBuffer, VecBufferFactory};
use crate::config::Config;
use crate::conn::{ev, Conn, Disposition, Env, RateLimiter, SegmentIn};
use crate::error::Error;
use crate::isn::IsnGenerator;
use crate::rng::Rng;
use crate::seq::SeqNum;
use crate::state::{ConnId, Event, ListenerId, State};
use crate::syncookie::Cookies;
use crate::time::{Duration, Instant};
use crate::wire::tcp::{fill_checksum, fill_partial_checksum};
use crate::wire::{
    IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptions, TcpRepr, WireError,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4};

#[cfg(any(test, feature = "fuzzing"))]
mod inspect;
mod listen;

/// Counters of what the stack did with its input and output.
///
/// Every datagram that is not processed is counted under exactly one
/// `drop_*` reason (or, for listeners, one of the queue counters). Where
/// Linux has a counter for the same thing, its `nstat` name is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `handle_packet` (nstat `IpInReceives`).
    pub packets_in: u64,
    /// Datagrams produced by `poll_transmit` (nstat `IpOutRequests`).
    pub packets_out: u64,
    /// Dropped: not IPv4, a bad or truncated header, a malformed TCP
    /// option, a broadcast/multicast/zero source or port 0 (nstat
    /// `IpInHdrErrors`, `TcpInErrs`).
    pub drop_malformed: u64,
    /// Dropped: IPv4 header or TCP/ICMP checksum wrong (nstat `TcpInCsumErrors`).
    pub drop_checksum: u64,
    /// Dropped: IPv4 fragments, which are not reassembled (nstat `IpReasmFails`).
    pub drop_fragment: u64,
    /// Dropped: not addressed to one of our addresses (nstat `IpInAddrErrors`).
    pub drop_not_ours: u64,
    /// Dropped: a protocol other than TCP and ICMP (nstat `IpInUnknownProtos`).
    pub drop_protocol: u64,
    /// Dropped: a segment a connection or listener would not take:
    /// outside the window, PAWS (nstat `TcpExtPAWSEstab`), no ACK, a
    /// SYN+FIN to a listener, no room in the receive buffer.
    pub drop_segment: u64,
    /// SYNs (or cookie ACKs) dropped at a listener: its queues were full
    /// and no cookie was sent, or `max_connections` was reached (nstat
    /// `TcpExtListenDrops`).
    pub drop_listen_overflow: u64,
    /// SYN cookies sent (RFC 4987 3.6; nstat `TcpExtSyncookiesSent`).
    pub syncookies_sent: u64,
    /// ACKs whose SYN cookie validated, creating a connection (nstat
    /// `TcpExtSyncookiesRecv`).
    pub syncookies_validated: u64,
    /// ACKs to a listener that had sent cookies recently whose cookie did
    /// not validate (wrong hash, old counter, sequence off): dropped
    /// (nstat `TcpExtSyncookiesFailed`).
    pub syncookies_rejected: u64,
    /// SYNs that found the SYN queue full (answered with a cookie, or
    /// dropped; nstat `TcpExtTCPReqQFullDoCookies` + `TcpExtTCPReqQFullDrop`).
    pub syn_queue_overflows: u64,
    /// SYNs and final ACKs dropped because the accept queue was full
    /// (nstat `TcpExtListenOverflows`).
    pub accept_queue_overflows: u64,
    /// Half-open connections evicted to make room (oldest first, among
    /// those that already retransmitted their SYN-ACK).
    pub syn_queue_evictions: u64,
    /// RSTs sent for segments that match no connection (nstat `TcpOutRsts`
    /// counts these and the connections' own).
    pub rst_sent: u64,
    /// RSTs received by connections, acceptable or not.
    pub rst_received: u64,
    /// Challenge ACKs sent (RFC 5961; nstat `TcpExtTCPChallengeACK`).
    pub challenge_acks: u64,
    /// ACKs that stopped at data the peer had SACKed (RFC 2018 8 reneging;
    /// nstat `TcpExtTCPSACKReneging`).
    pub sack_reneging: u64,
    /// Challenge ACKs not sent because of the RFC 5961 7 limits (nstat
    /// `TcpExtTCPACKSkippedChallenge`).
    pub challenge_acks_suppressed: u64,
    /// Segments retransmitted, for any reason (nstat `TcpRetransSegs`).
    pub retransmits: u64,
    /// Loss recoveries entered on duplicate ACKs or SACK (nstat
    /// `TcpExtTCPFastRetrans` counts segments; this counts episodes).
    pub fast_retransmits: u64,
    /// Window reductions in response to ECN-Echo (RFC 3168).
    pub ecn_reductions: u64,
    /// Retransmission timeouts (nstat `TcpExtTCPTimeouts`).
    pub rto_expirations: u64,
    /// ICMP messages received (nstat `IcmpInMsgs`).
    pub icmp_in: u64,
    /// ICMP echo replies sent (nstat `IcmpOutEchoReps`).
    pub icmp_echo_replies: u64,
    /// ICMP messages not sent: over `Config::icmp_msgs_per_sec` (nstat
    /// `IcmpOutRateLimitGlobal`).
    pub icmp_rate_limited: u64,
    /// Control packets (RSTs for unknown tuples, cookie SYN-ACKs, echo
    /// replies) not queued because the control queue was full.
    pub drop_control_full: u64,
    /// SYNs (and cookie ACKs) dropped because the buffer memory was at
    /// `Config::max_buffer_memory` (nstat `TcpExtTCPMemoryPressures` counts
    /// the pressure episodes).
    pub drop_memory: u64,
    /// Orphaned connections reset because their peer kept its window shut
    /// past `Config::orphan_retries` probes (nstat `TcpExtTCPAbortOnMemory`
    /// is the nearest; Linux counts these as `TCPAbortOnTimeout`).
    pub orphans_reset: u64,
    /// Active opens (nstat `TcpActiveOpens`).
    pub connections_opened: u64,
    /// Connections taken from accept queues (nstat `TcpPassiveOpens`
    /// counts them at establishment instead).
    pub connections_accepted: u64,
    /// Datagrams to one of the stack's own addresses or to 127.0.0.0/8,
    /// handed back to the stack instead of the device (RFC 1122 3.2.1.3);
    /// `packets_out` and `packets_in` count them too.
    pub loopback: u64,
}

/// What the device knows about a received datagram
/// ([`Stack::handle_packet_meta`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// Skip the TCP checksum check: the device verified it, or the packet
    /// never crossed a wire (a Linux TUN's "checksum partial" packet, made
    /// by the local kernel, whose checksum field holds only the
    /// pseudo-header sum). The IPv4 header checksum is still checked (20
    /// bytes, always complete).
    pub checksum_verified: bool,
}

/// One datagram written by [`Stack::poll_transmit_gso`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes of the IPv4 datagram.
    pub len: usize,
    /// `Some(n)`: a TCP super-segment (TSO/GSO) to be cut into parts of `n`
    /// payload bytes (the last part may be shorter), each with a copy of
    /// the IP and TCP headers, as a NIC or the Linux kernel does it. Its IP
    /// total length covers the whole super-segment; its TCP checksum field
    /// holds the pseudo-header sum over the whole TCP length, folded and not
    /// complemented (Linux `CHECKSUM_PARTIAL`), for whoever cuts it to
    /// complete per part. `None`: an ordinary datagram, checksums complete.
    pub segment_size: Option<u16>,
}

/// A `tcp_info`-like snapshot of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpInfo {
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Smoothed RTT (None before the first sample).
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    /// Congestion window, bytes.
    pub cwnd: usize,
    pub ssthresh: usize,
    /// Effective send MSS.
    pub mss: usize,
    /// The receiver's estimate of the peer's segment size (Linux
    /// `tcpi_rcv_mss`), learnt from arrivals (RFC 1122 4.2.3.2).
    pub rcv_mss: usize,
    /// Peer's advertised window, bytes (scaled).
    pub send_window: usize,
    /// Window we advertise, bytes.
    pub recv_window: usize,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
    pub retransmits: u64,
    /// Bytes in flight (sent, not acknowledged).
    pub in_flight: usize,
    pub window_scaling: bool,
    pub timestamps: bool,
    pub sack: bool,
    /// Send buffer size in bytes (it grows with the window while the
    /// application keeps it full, up to `Config::send_buffer_max`).
    pub send_buffer: usize,
    /// Receive buffer size in bytes (auto-tuned up to `Config::recv_buffer_max`).
    pub recv_buffer: usize,
}

/// Per-connection options settable after creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOpt {
    /// Disable Nagle's algorithm (TCP_NODELAY).
    NoDelay(bool),
    /// Enable keep-alive probes (SO_KEEPALIVE).
    KeepAlive(bool),
    /// Keep-alive idle time, interval and probe count.
    KeepAliveParams {
        idle: Duration,
        interval: Duration,
        probes: u32,
    },
    /// TCP_USER_TIMEOUT.
    UserTimeout(Duration),
    /// IP TTL of this connection's datagrams.
    Ttl(u8),
    /// SO_LINGER with a zero timeout: `close` aborts with RST.
    LingerZero(bool),
    /// TCP_CONGESTION: switch this connection's congestion controller.
    CongestionControl(crate::CongestionControl),
}

/// A deterministic keyed hasher for the connection table: the key comes
/// from the seed, so the table's layout is reproducible and not predictable
/// by a peer choosing ports (hash flooding).
#[derive(Clone, Copy)]
struct KeyedState(u64);

struct KeyedHasher(u64);

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

type Tuple = (SocketAddrV4, SocketAddrV4);

/// Sets the ECN bits of an emitted IPv4 header and fixes its checksum.
fn set_ecn(buf: &mut [u8], ecn: u8) {
    buf[1] = (buf[1] & !0b11) | (ecn & 0b11);
    buf[10] = 0;
    buf[11] = 0;
    let c = crate::wire::checksum::checksum(&buf[..Ipv4Repr::HEADER_LEN]);
    buf[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Largest number of queued control packets (RSTs for unknown tuples, ICMP
/// echo replies); beyond it they are dropped, as a kernel rate-limits them.
const MAX_CONTROL: usize = 256;

/// A token bucket: `rate` tokens per second, at most `burst` saved
/// (RFC 1812 4.3.2.8 rate limiting of ICMP, as Linux's `icmp_global_allow`).
#[derive(Debug, Default)]
struct TokenBucket {
    tokens: u64,
    /// Microsecond-tokens carried between refills (tokens * 1e6).
    credit_us: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn allow(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        let burst = u64::from(burst.max(1));
        match self.last {
            None => self.tokens = burst,
            Some(last) => {
                let us = now.saturating_duration_since(last).as_micros() as u64;
                let earned = self
                    .credit_us
                    .saturating_add(us.saturating_mul(u64::from(rate)));
                self.tokens = (self.tokens + earned / 1_000_000).min(burst);
                self.credit_us = if self.tokens == burst {
                    0
                } else {
                    earned % 1_000_000
                };
            }
        }
        self.last = Some(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Bytes of looped-back datagrams that may wait for `handle_timeout`; while
/// more wait, `poll_transmit` pauses (nothing is dropped).
const LOOPBACK_BYTES: usize = 1 << 20;
/// Emptied loopback buffers kept for reuse.
const LOOPBACK_SPARE: usize = 32;

/// Datagrams the stack sent to itself, waiting to be handled as input: a
/// loopback interface inside the stack (RFC 1122 3.2.1.3).
#[derive(Default)]
struct Loopback {
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`.
    bytes: usize,
    /// When the oldest datagram in `queue` was sent (`poll_timeout` reports it).
    since: Option<Instant>,
    spare: Vec<Vec<u8>>,
}

struct Slot {
    generation: u32,
    conn: Option<Box<Conn>>,
    /// The application holds a handle (active open, or accepted).
    owned: bool,
    /// Deadline currently in the timer heap for this slot.
    scheduled: Option<Instant>,
    in_dirty: bool,
    in_events: bool,
}

struct Listener {
    addr: SocketAddrV4,
    backlog: usize,
    /// Embryonic connections (SYN-RECEIVED).
    syn_queue: usize,
    /// The embryos in arrival order, for eviction (entries that are no
    /// longer embryos of this listener are skipped and dropped lazily).
    embryos: VecDeque<ConnId>,
    /// When this listener last answered with a SYN cookie: ACKs are
    /// checked for cookies only while cookies may be out (Linux
    /// `tcp_synq_no_recent_overflow`).
    last_cookie: Option<Instant>,
    accept_queue: VecDeque<ConnId>,
    /// Connections taken with `accept` that still wait in a front end's
    /// own queue; they count against `backlog` ([`Stack::set_listener_waiting`]).
    waiting: usize,
    in_events: bool,
    /// Send and receive buffer sizes of the connections it accepts (the
    /// configured ones unless set: [`Stack::set_listener_buffers`]).
    buffers: (usize, usize),
}

#[derive(Clone, Copy)]
enum EventSource {
    Conn(ConnId),
    Listener(ListenerId),
}

/// A TCP/IPv4 endpoint: all connections and listeners of one or more local addresses.
///
/// Drive it by feeding packets ([`handle_packet`](Stack::handle_packet)) and
/// timeouts ([`handle_timeout`](Stack::handle_timeout)), and draining output
/// ([`poll_transmit`](Stack::poll_transmit)) and events
/// ([`poll_event`](Stack::poll_event)). After any `handle_*` or socket call,
/// drain `poll_transmit` until `None`, then sleep until `poll_timeout`.
///
/// **Loopback.** Datagrams to one of the stack's own addresses, or to
/// 127.0.0.0/8 (which it answers for without configuration, as Linux does),
/// never leave through `poll_transmit`: they wait in a bounded queue inside
/// the stack and are handled as input by the next `handle_timeout`, which
/// `poll_timeout` reports due at once (RFC 1122 3.2.1.3). So two services
/// on one stack can talk, and a driver needs nothing for it. Device input
/// to or from 127.0.0.0/8 is dropped (RFC 1122 3.2.1.3 (g)); counted in
/// [`Stats::loopback`].
pub struct Stack {
    cfg: Config,
    rng: Rng,
    isn: IsnGenerator,
    factory: Box<dyn BufferFactory>,
    stats: Stats,
    challenge: RateLimiter,
    cookies: Cookies,
    icmp_bucket: TokenBucket,
    /// Half-open connections across all listeners (`max_syn_backlog`).
    syn_total: usize,
    /// Buffer memory as the front end last reported it.
    buffer_memory: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    conns: HashMap<Tuple, u32, KeyedState>,
    listeners: Vec<Option<Listener>>,
    listener_map: HashMap<SocketAddrV4, u32, KeyedState>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    dirty: VecDeque<ConnId>,
    events: VecDeque<EventSource>,
    control: VecDeque<Vec<u8>>,
    loopback: Loopback,
    ip_ident: u16,
    port_key: u64,
    port_table: [u16; 256],
}

impl Stack {
    /// Creates a stack. Nothing is sent until a socket call or packet arrives.
    pub fn new(config: Config) -> Stack {
        let mut rng = Rng::new(config.seed);
        let isn = IsnGenerator::new(&mut rng);
        let key = KeyedState(rng.next_u64());
        let port_key = rng.next_u64();
        let ip_ident = rng.next_u32() as u16;
        // Its own stream, so the other draws stay as they were.
        let challenge = RateLimiter::new(config.seed ^ 0x5961_5961_5961_5961);
        let mut cookie_key = [0u8; 16];
        Rng::new(config.seed ^ 0x4987_4987_4987_4987).fill(&mut cookie_key);
        Stack {
            cfg: config,
            rng,
            isn,
            factory: Box::new(VecBufferFactory),
            stats: Stats::default(),
            challenge,
            cookies: Cookies::new(cookie_key),
            icmp_bucket: TokenBucket::default(),
            syn_total: 0,
            buffer_memory: 0,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            conns: HashMap::with_hasher(key),
            listeners: Vec::new(),
            listener_map: HashMap::with_hasher(key),
            timers: BinaryHeap::new(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            control: VecDeque::new(),
            loopback: Loopback::default(),
            ip_ident,
            port_key,
            port_table: [0; 256],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replaces the factory that supplies buffers for new connections.
    pub fn set_buffer_factory(&mut self, factory: Box<dyn BufferFactory>) {
        self.factory = factory;
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of connections in any state (including TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.live
    }

    /// Number of connections with data or a FIN still to exchange: all but
    /// those in TIME-WAIT (which only guards its tuple, RFC 9293 3.4.2) and
    /// those already CLOSED. A front end whose application dropped every
    /// handle keeps driving the stack until this is 0, as a kernel keeps
    /// delivering after `close()`. O(connections).
    pub fn active_connection_count(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_deref())
            .filter(|c| !matches!(c.state, State::Closed | State::TimeWait))
            .count()
    }

    // ------------------------------------------------------------------
    // Slots
    // ------------------------------------------------------------------

    fn slot(&self, id: ConnId) -> Option<&Slot> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation && s.conn.is_some())
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.slot(id).and_then(|s| s.conn.as_deref())
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.conn.as_deref_mut())
    }

    /// The connection behind a handle the application holds: not one it
    /// released with `close` (as a closed descriptor gives EBADF), though
    /// the connection may live on, closing in the background.
    fn owned_conn_mut(&mut self, id: ConnId) -> crate::Result<&mut Conn> {
        match self.slots.get_mut(id.index as usize) {
            Some(s) if s.generation == id.generation && s.owned => s
                .conn
                .as_deref_mut()
                .filter(|c| !c.user_closed)
                .ok_or(Error::InvalidHandle),
            _ => Err(Error::InvalidHandle),
        }
    }

    fn insert(&mut self, conn: Conn, owned: bool) -> ConnId {
        let tuple = (conn.local, conn.remote);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                    owned: false,
                    scheduled: None,
                    in_dirty: false,
                    in_events: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.conn = Some(Box::new(conn));
        slot.owned = owned;
        slot.scheduled = None;
        slot.in_dirty = false;
        slot.in_events = false;
        self.conns.insert(tuple, index);
        self.live += 1;
        ConnId {
            index,
            generation: slot.generation,
        }
    }

    fn remove(&mut self, id: ConnId) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        if let Some(conn) = slot.conn.take() {
            let tuple = (conn.local, conn.remote);
            if self.conns.get(&tuple) == Some(&id.index) {
                self.conns.remove(&tuple);
            }
            if let Some(lid) = conn.listener {
                if !slot.owned {
                    if let Some(Some(l)) = self.listeners.get_mut(lid.0 as usize) {
                        if let Some(pos) = l.accept_queue.iter().position(|c| *c == id) {
                            l.accept_queue.remove(pos);
                        } else if conn.state == State::Closed || conn.state == State::SynReceived {
                            l.syn_queue = l.syn_queue.saturating_sub(1);
                            self.syn_total = self.syn_total.saturating_sub(1);
                        }
                    }
                }
            }
            self.live -= 1;
        }
        slot.generation = slot.generation.wrapping_add(1);
        slot.owned = false;
        slot.scheduled = None;
        slot.in_dirty = false;
        slot.in_events = false;
        self.free.push(id.index);
    }

    /// Bookkeeping after anything touched a connection: events, output
    /// scheduling, timers, and reclaiming it once it is gone.
    fn after(&mut self, id: ConnId, want_output: bool) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        let Some(conn) = slot.conn.as_deref_mut() else {
            return;
        };
        debug_assert!(
            conn.retransmission_timer_invariant(),
            "unacknowledged data without a retransmission timer: {:?}",
            conn.info()
        );
        let owned = slot.owned;
        if conn.events != 0 {
            if owned && !conn.user_closed {
                if !slot.in_events {
                    slot.in_events = true;
                    self.events.push_back(EventSource::Conn(id));
                }
            } else {
                conn.events = 0;
            }
        }
        if want_output && !slot.in_dirty && conn.wants_output() {
            slot.in_dirty = true;
            self.dirty.push_back(id);
        }
        if let Some(t) = conn.timers.next() {
            if slot.scheduled.is_none_or(|s| t < s) {
                slot.scheduled = Some(t);
                self.timers.push(Reverse((t, id.index, id.generation)));
            }
        }
        if conn.state == State::Closed {
            let tuple = (conn.local, conn.remote);
            if self.conns.get(&tuple) == Some(&id.index) {
                self.conns.remove(&tuple);
            }
            let pending_output = conn.rst_pending || conn.rst_reply.is_some();
            let reclaim = !pending_output && (!owned || conn.user_closed);
            if reclaim {
                self.remove(id);
            }
        }
        self.compact_timers_if_bloated();
    }

    fn env_parts(&mut self, now: Instant) -> (Env<'_>, &mut Vec<Slot>) {
        (
            Env {
                now,
                cfg: &self.cfg,
                stats: &mut self.stats,
                challenge: &mut self.challenge,
                gso: false,
                gso_size: None,
            },
            &mut self.slots,
        )
    }
}

impl Stack {
    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    /// Processes one IPv4 datagram. Bad input is dropped and counted in [`Stats`].
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet_meta(now, packet, RxMeta::default());
    }

    /// [`handle_packet`](Stack::handle_packet) with what the device knows
    /// about the datagram. A TCP segment may be larger than the MSS (a
    /// GRO/TSO super-segment of up to 64 KB from a device with offloads):
    /// it is handled as one segment.
    pub fn handle_packet_meta(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        self.handle_ipv4(now, packet, meta, false);
    }

    /// One datagram from the device, or `looped` back from the stack itself.
    fn handle_ipv4(&mut self, now: Instant, packet: &[u8], meta: RxMeta, looped: bool) {
        self.stats.packets_in += 1;
        let ip = match Ipv4Packet::new_checked(packet) {
            Ok(p) => p,
            Err(_) => {
                self.stats.drop_malformed += 1;
                return;
            }
        };
        let repr = match Ipv4Repr::parse(&ip) {
            Ok(r) => r,
            Err(e) => return self.count_drop(e),
        };
        // RFC 1122 3.2.1.3 (g): 127.0.0.0/8 is internal host loopback and
        // MUST NOT appear outside a host: only looped datagrams may carry it.
        let ours = if looped {
            self.is_local(repr.dst)
        } else {
            self.cfg.addrs.contains(&repr.dst)
        };
        if !ours {
            self.stats.drop_not_ours += 1;
            return;
        }
        if !looped && repr.src.is_loopback() {
            self.stats.drop_malformed += 1;
            return;
        }
        let payload = ip.payload();
        match repr.protocol {
            IpProtocol::Tcp => {
                let verify = self.cfg.verify_checksums && !meta.checksum_verified;
                self.handle_tcp(now, &repr, payload, verify)
            }
            IpProtocol::Icmp => self.handle_icmp(now, &repr, payload),
            _ => self.stats.drop_protocol += 1,
        }
    }

    /// Counts a packet dropped for a wire-format error.
    fn count_drop(&mut self, e: WireError) {
        match e {
            WireError::Fragmented => self.stats.drop_fragment += 1,
            WireError::BadChecksum => self.stats.drop_checksum += 1,
            WireError::Truncated | WireError::Malformed => self.stats.drop_malformed += 1,
        }
    }

    fn handle_tcp(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], verify: bool) {
        let (tcp, data) = match TcpRepr::parse(payload, ip.src, ip.dst, verify) {
            Ok(x) => x,
            Err(e) => return self.count_drop(e),
        };
        if tcp.src_port == 0
            || tcp.dst_port == 0
            || ip.src.is_broadcast()
            || ip.src.is_multicast()
            || ip.src.is_unspecified()
        {
            self.stats.drop_malformed += 1;
            return;
        }
        let local = SocketAddrV4::new(ip.dst, tcp.dst_port);
        let remote = SocketAddrV4::new(ip.src, tcp.src_port);
        let seg = SegmentIn {
            now,
            // RFC 3168 5: CE codepoint (0b11) in the IP header.
            ce: ip.tos & 0b11 == 0b11,
            seq: tcp.seq,
            ack: tcp.ack,
            flags: tcp.flags,
            window: tcp.window,
            options: tcp.options,
            payload: data,
        };
        if let Some(&index) = self.conns.get(&(local, remote)) {
            let generation = self.slots[index as usize].generation;
            let id = ConnId { index, generation };
            let Some(conn) = self.slots[index as usize].conn.as_deref() else {
                return;
            };
            if conn.state == State::SynReceived
                && seg.flags.ack()
                && !seg.flags.rst()
                && !seg.flags.syn()
            {
                if let Some(lid) = conn.listener {
                    if self.accept_queue_full(lid.0) {
                        // As Linux (`tcp_abort_on_overflow` = 0): with the
                        // accept queue full the final ACK is dropped; the
                        // SYN-ACK retransmission retries the handshake.
                        self.stats.accept_queue_overflows += 1;
                        return;
                    }
                }
            }
            let (mut env, slots) = self.env_parts(now);
            let Some(conn) = slots[index as usize].conn.as_deref_mut() else {
                return;
            };
            let disposition = conn.on_segment(&mut env, &seg);
            match disposition {
                Disposition::Keep => self.after(id, true),
                Disposition::Established => {
                    self.on_passive_established(id);
                    self.after(id, true);
                }
                Disposition::ReopenFromTimeWait => {
                    // RFC 1122 4.2.2.13: the new incarnation's ISS must be
                    // above any sequence number the old one used (Linux:
                    // the old SND.NXT + 65537, whatever the ISN clock says).
                    let floor = conn.snd_max + 65537;
                    self.remove(id);
                    self.handle_no_conn(now, local, remote, &seg, Some(floor));
                }
            }
            return;
        }
        self.handle_no_conn(now, local, remote, &seg, None);
    }

    fn find_listener(&self, local: SocketAddrV4) -> Option<u32> {
        self.listener_map.get(&local).copied().or_else(|| {
            self.listener_map
                .get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()))
                .copied()
        })
    }

    /// A segment for a tuple with no connection: LISTEN (RFC 9293 3.10.7.2)
    /// or CLOSED (RFC 9293 3.10.7.1).
    fn handle_no_conn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegmentIn,
        iss_floor: Option<SeqNum>,
    ) {
        let f = seg.flags;
        if let Some(lidx) = self.find_listener(local) {
            if f.rst() {
                return;
            }
            if f.ack() {
                if !f.syn() && self.cookies_may_be_out(lidx, now) {
                    // RFC 4987 3.6: the ACK completing a cookie handshake.
                    self.on_cookie_ack(now, lidx, local, remote, seg);
                    return;
                }
                // <SEQ=SEG.ACK><CTL=RST>
                self.queue_rst(local, remote, seg.ack, None);
                return;
            }
            // A SYN+FIN is discarded, as Linux does (`tcp_rcv_state_process`
            // in LISTEN). RFC 9293 3.10.7.2 would take the SYN and queue the
            // FIN, but no client opens that way: it is a scanner's probe,
            // and answering it only tells the scanner the port is open.
            if !f.syn() || f.fin() {
                self.stats.drop_segment += 1;
                return;
            }
            self.on_syn(now, lidx, local, remote, seg, iss_floor);
            return;
        }
        // CLOSED: never answer a RST; otherwise reset (RFC 9293 3.10.7.1).
        if f.rst() {
            return;
        }
        if f.ack() {
            self.queue_rst(local, remote, seg.ack, None);
        } else {
            self.queue_rst(local, remote, SeqNum(0), Some(seg.seq + seg.len()));
        }
    }

    /// A CLOSED connection for the tuple, with its ISN (RFC 6528),
    /// timestamp offset and buffers from the factory; also the id the next
    /// `insert` will give it.
    fn new_conn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        (send, recv): (usize, usize),
        iss_floor: Option<SeqNum>,
    ) -> (ConnId, Conn) {
        let iss = match (self.isn.isn(now, local, remote), iss_floor) {
            (clock, Some(floor)) if clock.diff(floor) < 0 => floor,
            (clock, _) => clock,
        };
        let ts_offset = self.rng.next_u32();
        self.new_conn_with(now, local, remote, (send, recv), iss, ts_offset)
    }

    /// [`new_conn`](Stack::new_conn) with the ISS and timestamp offset given
    /// (a SYN cookie fixed them).
    fn new_conn_with(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        (send, recv): (usize, usize),
        iss: SeqNum,
        ts_offset: u32,
    ) -> (ConnId, Conn) {
        let id = self.next_id();
        let (sb, rb) = self.factory.buffers(id, send, recv);
        let conn = Conn::new(&self.cfg, local, remote, iss, ts_offset, sb, rb, now);
        (id, conn)
    }

    /// The id the next `insert` will return.
    fn next_id(&self) -> ConnId {
        match self.free.last() {
            Some(&index) => ConnId {
                index,
                generation: self.slots[index as usize].generation,
            },
            None => ConnId {
                index: self.slots.len() as u32,
                generation: 0,
            },
        }
    }

    fn on_passive_established(&mut self, id: ConnId) {
        let Some(lid) = self.conn(id).and_then(|c| c.listener) else {
            return;
        };
        match self.listeners.get_mut(lid.0 as usize) {
            Some(Some(l)) => {
                l.syn_queue = l.syn_queue.saturating_sub(1);
                self.syn_total = self.syn_total.saturating_sub(1);
                l.accept_queue.push_back(id);
                if !l.in_events {
                    l.in_events = true;
                    self.events.push_back(EventSource::Listener(lid));
                }
            }
            _ => {
                // The listener is gone: reset the connection.
                if let Some(c) = self.conn_mut(id) {
                    c.abort(Error::ConnectionAborted);
                }
            }
        }
    }

    /// Queues a RST for a segment that matches no connection.
    fn queue_rst(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: SeqNum,
        ack: Option<SeqNum>,
    ) {
        if self.control.len() >= MAX_CONTROL {
            self.stats.drop_control_full += 1;
            return;
        }
        let mut flags = TcpFlags::RST;
        if ack.is_some() {
            flags |= TcpFlags::ACK;
        }
        let tcp = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack: ack.unwrap_or(SeqNum(0)),
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        self.stats.rst_sent += 1;
        self.queue_tcp(local, remote, &tcp);
    }

    /// Queues a header-only TCP segment that belongs to no connection (a
    /// RST, a cookie SYN-ACK) with its IPv4 header and checksum. The
    /// caller checked the control queue's bound.
    fn queue_tcp(&mut self, local: SocketAddrV4, remote: SocketAddrV4, tcp: &TcpRepr) {
        let hl = tcp.header_len();
        let mut pkt = vec![0u8; Ipv4Repr::HEADER_LEN + hl];
        tcp.emit(&mut pkt[Ipv4Repr::HEADER_LEN..]);
        fill_checksum(&mut pkt[Ipv4Repr::HEADER_LEN..], *local.ip(), *remote.ip());
        let ttl = self.cfg.ttl;
        self.ip_header(
            &mut pkt,
            *local.ip(),
            *remote.ip(),
            IpProtocol::Tcp,
            hl,
            ttl,
        );
        self.control.push_back(pkt);
    }

    fn ip_header(
        &mut self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload_len: usize,
        ttl: u8,
    ) {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        Ipv4Repr {
            src,
            dst,
            protocol,
            payload_len,
            ttl,
            tos: 0,
            ident: self.ip_ident,
            dont_frag: true,
        }
        .emit(buf);
    }

    fn handle_icmp(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8]) {
        self.stats.icmp_in += 1;
        let msg = match IcmpRepr::parse(payload) {
            Ok(m) => m,
            Err(e) => return self.count_drop(e),
        };
        match msg {
            IcmpRepr::EchoRequest { ident, seq, data } => {
                if ip.src.is_broadcast() || ip.src.is_multicast() || ip.src.is_unspecified() {
                    self.stats.drop_malformed += 1;
                    return;
                }
                if self.control.len() >= MAX_CONTROL {
                    self.stats.drop_control_full += 1;
                    return;
                }
                let (rate, burst) = (self.cfg.icmp_msgs_per_sec, self.cfg.icmp_msgs_burst);
                if !self.icmp_bucket.allow(now, rate, burst) {
                    self.stats.icmp_rate_limited += 1;
                    return;
                }
                let reply = IcmpRepr::EchoReply { ident, seq, data };
                let len = reply.buffer_len();
                let mut pkt = vec![0u8; Ipv4Repr::HEADER_LEN + len];
                reply.emit(&mut pkt[Ipv4Repr::HEADER_LEN..]);
                self.ip_header(
                    &mut pkt,
                    ip.dst,
                    ip.src,
                    IpProtocol::Icmp,
                    len,
                    self.cfg.ttl,
                );
                self.stats.icmp_echo_replies += 1;
                self.control.push_back(pkt);
            }
            IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => self.icmp_error(now, data, Some((code, next_hop_mtu))),
            IcmpRepr::TimeExceeded { data, .. } => self.icmp_error(now, data, None),
            _ => {}
        }
    }

    /// An ICMP error quoting one of our TCP segments (RFC 1122 4.2.3.9, RFC 5927).
    fn icmp_error(&mut self, now: Instant, quoted: &[u8], unreach: Option<(u8, u16)>) {
        // The quote is an IPv4 header plus at least 8 bytes of TCP header.
        if quoted.len() < 20 || quoted[0] >> 4 != 4 || quoted[9] != 6 {
            return;
        }
        let ihl = usize::from(quoted[0] & 0xf) * 4;
        if ihl < 20 || quoted.len() < ihl + 8 {
            return;
        }
        let src = Ipv4Addr::new(quoted[12], quoted[13], quoted[14], quoted[15]);
        let dst = Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]);
        let t = &quoted[ihl..];
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        let seq = SeqNum(u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
        let tuple = (SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport));
        let Some(&index) = self.conns.get(&tuple) else {
            return;
        };
        let id = ConnId {
            index,
            generation: self.slots[index as usize].generation,
        };
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        // RFC 5927 4.1: the quoted sequence number must be in flight.
        if seq.diff(conn.snd_una) < 0 || seq.diff(conn.snd_max) > 0 {
            return;
        }
        let _ = now;
        match unreach {
            Some((4, mtu)) => {
                // Fragmentation needed (RFC 1191): shrink the segment size and resend.
                let mtu = usize::from(mtu);
                if mtu >= 68 && mtu - 40 < conn.our_mss {
                    conn.our_mss = (mtu - 40).max(48);
                    conn.cc.set_mss(conn.send_mss());
                    conn.snd_nxt = conn.snd_una;
                }
            }
            Some((code, _)) => {
                let err = if code == 2 || code == 3 {
                    Error::ConnectionRefused
                } else {
                    Error::HostUnreachable
                };
                if conn.state == State::SynSent {
                    // A hard error while connecting (as Linux reports it).
                    conn.enter_closed(Some(err));
                } else {
                    conn.soft_error = Some(err);
                }
            }
            None => conn.soft_error = Some(Error::HostUnreachable),
        }
        self.after(id, true);
    }
}

impl Stack {
    // ------------------------------------------------------------------
    // Output, timers, events
    // ------------------------------------------------------------------

    /// Writes the next IPv4 datagram due into `buf` (at least `mtu` bytes
    /// recommended) and returns its length, or `None` if nothing is due.
    /// Connections take turns, one segment each.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.transmit(now, buf, false).map(|t| t.len)
    }

    /// [`poll_transmit`](Stack::poll_transmit) for a device with TCP
    /// segmentation offload: new in-order data may go as one super-segment
    /// of several full-MSS parts (see [`Transmit::segment_size`]) filling
    /// `buf` up to 65535 bytes, within the congestion and peer windows and
    /// Nagle's rule. Retransmissions, probes, SYN/RST and segments with CWR
    /// stay single segments. With a `buf` of at most `mtu` bytes this is
    /// `poll_transmit`.
    pub fn poll_transmit_gso(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.transmit(now, buf, true)
    }

    /// The next datagram for the device. Those for the stack itself
    /// (RFC 1122 3.2.1.3) are queued as input for the next `handle_timeout`
    /// instead, which `poll_timeout` reports due at once; while the queue
    /// is full, output pauses until then.
    fn transmit(&mut self, now: Instant, buf: &mut [u8], gso: bool) -> Option<Transmit> {
        loop {
            if self.loopback.bytes >= LOOPBACK_BYTES {
                return None;
            }
            let t = self.transmit_next(now, buf, gso)?;
            let datagram = &buf[..t.len];
            let local =
                Ipv4Packet::new_checked(datagram).is_ok_and(|p| self.is_local(p.dst_addr()));
            if !local {
                return Some(t);
            }
            let mut copy = self.loopback.spare.pop().unwrap_or_default();
            copy.clear();
            copy.extend_from_slice(datagram);
            self.loopback.bytes += copy.len();
            self.loopback.since.get_or_insert(now);
            self.loopback.queue.push_back(copy);
            self.stats.loopback += 1;
        }
    }

    /// Handles the datagrams the stack sent itself (see `transmit`).
    fn handle_loopback(&mut self, now: Instant) {
        // Only those queued so far: handling them queues none (`transmit`
        // does), but stay bounded anyway.
        for _ in 0..self.loopback.queue.len() {
            let Some(datagram) = self.loopback.queue.pop_front() else {
                break;
            };
            self.loopback.bytes -= datagram.len();
            // It never crossed a wire: its TCP checksum, complete or partial
            // (a super-segment), is not checked.
            let meta = RxMeta {
                checksum_verified: true,
            };
            self.handle_ipv4(now, &datagram, meta, true);
            if self.loopback.spare.len() < LOOPBACK_SPARE {
                self.loopback.spare.push(datagram);
            }
        }
        self.loopback.since = None;
    }

    fn transmit_next(&mut self, now: Instant, buf: &mut [u8], gso: bool) -> Option<Transmit> {
        let plain = |len| {
            Some(Transmit {
                len,
                segment_size: None,
            })
        };
        if let Some(pkt) = self.control.front() {
            if pkt.len() <= buf.len() {
                let pkt = self.control.pop_front()?;
                buf[..pkt.len()].copy_from_slice(&pkt);
                self.stats.packets_out += 1;
                return plain(pkt.len());
            }
            // Caller's buffer too small: drop it rather than wedge the queue.
            self.control.pop_front();
        }
        let limit = if gso && buf.len() > self.cfg.mtu {
            buf.len().min(usize::from(u16::MAX))
        } else {
            buf.len().min(self.cfg.mtu)
        };
        let gso = limit > self.cfg.mtu;
        if limit < Ipv4Repr::HEADER_LEN + 60 {
            return None;
        }
        while let Some(id) = self.dirty.pop_front() {
            let Some(slot) = self.slots.get_mut(id.index as usize) else {
                continue;
            };
            if slot.generation != id.generation {
                continue;
            }
            slot.in_dirty = false;
            let (mut env, slots) = self.env_parts(now);
            env.gso = gso;
            let Some(conn) = slots[id.index as usize].conn.as_deref_mut() else {
                continue;
            };
            let seg_buf = &mut buf[Ipv4Repr::HEADER_LEN..limit];
            let produced = conn.poll_segment(&mut env, seg_buf);
            let segment_size = env.gso_size;
            match produced {
                Some(n) => {
                    let (src, dst, ttl) = (*conn.local.ip(), *conn.remote.ip(), conn.opts.ttl);
                    let tos = conn.out_ecn;
                    if seg_buf[13] & 0x04 != 0 {
                        self.stats.rst_sent += 1;
                    }
                    self.ip_header(buf, src, dst, IpProtocol::Tcp, n, ttl);
                    // RFC 3168 6.1.2: new data of an ECN connection is ECT(0).
                    if tos != 0 {
                        set_ecn(buf, tos);
                    }
                    let len = Ipv4Repr::HEADER_LEN + n;
                    self.stats.packets_out += 1;
                    let segment = &mut buf[Ipv4Repr::HEADER_LEN..len];
                    match segment_size {
                        None => fill_checksum(segment, src, dst),
                        Some(size) => {
                            fill_partial_checksum(segment, src, dst);
                            // Count the datagrams the super-segment becomes.
                            let hl = usize::from(segment[12] >> 4) * 4;
                            let parts = (n - hl).div_ceil(usize::from(size));
                            self.stats.packets_out += parts as u64 - 1;
                            // The parts take consecutive IP ids (Linux GSO).
                            let extra = u16::try_from(parts - 1).unwrap_or(u16::MAX);
                            self.ip_ident = self.ip_ident.wrapping_add(extra);
                        }
                    }
                    // Round robin: back of the queue if it has more.
                    self.after(id, true);
                    return Some(Transmit { len, segment_size });
                }
                None => self.after(id, false),
            }
        }
        None
    }

    /// The earliest instant at which [`handle_timeout`](Stack::handle_timeout)
    /// must be called. Datagrams the stack sent itself (to one of its
    /// addresses or 127.0.0.0/8) are handled there: while some wait, this
    /// is the time they were sent, already past.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let timer = self.next_timer();
        match (timer, self.loopback.since) {
            (Some(t), Some(l)) => Some(t.min(l)),
            (t, l) => t.or(l),
        }
    }

    /// Timers are cancelled lazily, so the heap may hold stale entries:
    /// one each time a connection's deadline moved earlier, or an earlier
    /// timer fired while a later one stood. A peer drawing delayed ACKs
    /// under a long retransmission timeout would grow it until that
    /// deadline. Once the heap holds more than twice the live connections
    /// (plus slack), it is rebuilt from the slots' real deadlines: O(n)
    /// at most once per n pushes, and the heap stays bounded.
    fn compact_timers_if_bloated(&mut self) {
        if self.timers.len() <= 2 * self.live + 64 {
            return;
        }
        let mut entries = std::mem::take(&mut self.timers).into_vec();
        entries.clear();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            slot.scheduled = slot.conn.as_deref().and_then(|c| c.timers.next());
            if let Some(t) = slot.scheduled {
                entries.push(Reverse((t, index as u32, slot.generation)));
            }
        }
        self.timers = BinaryHeap::from(entries);
    }

    /// The stack is going away: resets every connection (RFC 9293 3.10.5
    /// ABORT: a RST in the synchronized states), orphans included, so no
    /// peer waits for a stack that will never answer again. Drain
    /// `poll_transmit` afterwards to send the RSTs.
    pub fn reset_all(&mut self) {
        let ids: Vec<ConnId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(i, s)| ConnId {
                index: i as u32,
                generation: s.generation,
            })
            .collect();
        for id in ids {
            if let Some(c) = self.conn_mut(id) {
                c.abort(Error::ConnectionAborted);
                // The application learns from the stack stopping, not
                // from per-connection events.
                c.events = 0;
            }
            self.after(id, true);
        }
    }

    /// Tells the stack how much memory its connections' buffers hold now
    /// (a front end whose buffers allocate lazily measures it). At or
    /// above `Config::max_buffer_memory`, new connections are refused.
    pub fn set_buffer_memory(&mut self, bytes: usize) {
        self.buffer_memory = bytes;
    }

    /// The buffer memory is at its limit: no new connections.
    pub(crate) fn memory_exhausted(&self) -> bool {
        self.buffer_memory >= self.cfg.max_buffer_memory
    }

    /// Number of entries in the timer heap (for bounds checks).
    #[doc(hidden)]
    pub fn timer_heap_len(&self) -> usize {
        self.timers.len()
    }

    /// The earliest connection timer.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            // The common case: the top entry is current; leave the heap alone.
            if let Some(slot) = self.slots.get(index as usize) {
                if slot.generation == generation
                    && slot.scheduled == Some(t)
                    && slot.conn.as_deref().and_then(|c| c.timers.next()) == Some(t)
                {
                    return Some(t);
                }
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            if slot.generation != generation || slot.scheduled != Some(t) {
                continue;
            }
            // Timers are cancelled lazily: re-check the connection's real deadline.
            let actual = slot.conn.as_deref().and_then(|c| c.timers.next());
            slot.scheduled = actual;
            if let Some(a) = actual {
                self.timers.push(Reverse((a, index, generation)));
                if a == t {
                    return Some(t);
                }
            }
        }
        None
    }

    /// Runs every timer due at `now`, after handling the datagrams the
    /// stack sent itself.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.loopback.queue.is_empty() {
            self.handle_loopback(now);
        }
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            if slot.generation != generation || slot.scheduled != Some(t) {
                continue;
            }
            slot.scheduled = None;
            let id = ConnId { index, generation };
            let (mut env, slots) = self.env_parts(now);
            if let Some(conn) = slots[index as usize].conn.as_deref_mut() {
                conn.on_timeout(&mut env);
            }
            self.after(id, true);
        }
    }

    /// Next application-visible event.
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(&src) = self.events.front() {
            match src {
                EventSource::Listener(lid) => {
                    self.events.pop_front();
                    if let Some(Some(l)) = self.listeners.get_mut(lid.0 as usize) {
                        l.in_events = false;
                        if !l.accept_queue.is_empty() {
                            return Some(Event::Incoming(lid));
                        }
                    }
                }
                EventSource::Conn(id) => {
                    let Some(slot) = self.slots.get_mut(id.index as usize) else {
                        self.events.pop_front();
                        continue;
                    };
                    let conn = match slot.conn.as_deref_mut() {
                        Some(c) if slot.generation == id.generation => c,
                        _ => {
                            self.events.pop_front();
                            continue;
                        }
                    };
                    const ORDER: [u8; 7] = [
                        ev::CONNECTED,
                        ev::READABLE,
                        ev::WRITABLE,
                        ev::PEER_CLOSED,
                        ev::RESET,
                        ev::TIMED_OUT,
                        ev::CLOSED,
                    ];
                    let bit = ORDER.into_iter().find(|b| conn.events & b != 0);
                    let Some(bit) = bit else {
                        slot.in_events = false;
                        self.events.pop_front();
                        continue;
                    };
                    conn.events &= !bit;
                    if conn.events == 0 {
                        slot.in_events = false;
                        self.events.pop_front();
                    }
                    return Some(match bit {
                        ev::CONNECTED => Event::Connected(id),
                        ev::READABLE => Event::Readable(id),
                        ev::WRITABLE => Event::Writable(id),
                        ev::PEER_CLOSED => Event::PeerClosed(id),
                        ev::RESET => Event::Reset(id),
                        ev::TIMED_OUT => Event::TimedOut(id),
                        _ => Event::Closed(id),
                    });
                }
            }
        }
        None
    }

    // ------------------------------------------------------------------
    // Socket calls
    // ------------------------------------------------------------------

    /// Whether `ip` names this host: one of its addresses, or internal host
    /// loopback 127.0.0.0/8 (RFC 1122 3.2.1.3 (g)), which it answers for as
    /// Linux does without it being configured. Datagrams to it are looped
    /// back inside the stack, never sent to the device.
    fn is_local(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.cfg.addrs.contains(&ip)
    }

    fn check_local_ip(&self, ip: Ipv4Addr) -> crate::Result<()> {
        if ip.is_unspecified() || self.is_local(ip) {
            Ok(())
        } else {
            Err(Error::AddrNotAvailable)
        }
    }

    fn port_in_use_by_listener(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.listener_map.contains_key(&SocketAddrV4::new(ip, port))
            || self
                .listener_map
                .contains_key(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            || (ip.is_unspecified() && self.listener_map.keys().any(|a| a.port() == port))
    }

    /// Opens a listening socket (passive open). Port 0 picks an ephemeral port.
    pub fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> crate::Result<ListenerId> {
        self.check_local_ip(*addr.ip())?;
        let addr = if addr.port() == 0 {
            let (lo, hi) = self.cfg.ephemeral_ports;
            let span = u32::from(hi.saturating_sub(lo)) + 1;
            let start = self.rng.next_u32() % span;
            let port = (0..span)
                .map(|i| lo + ((start + i) % span) as u16)
                .find(|&p| !self.port_in_use_by_listener(*addr.ip(), p))
                .ok_or(Error::AddrNotAvailable)?;
            SocketAddrV4::new(*addr.ip(), port)
        } else {
            if self.port_in_use_by_listener(*addr.ip(), addr.port()) {
                return Err(Error::AddrInUse);
            }
            addr
        };
        let l = Listener {
            addr,
            backlog: backlog.clamp(1, 65535),
            syn_queue: 0,
            embryos: VecDeque::new(),
            last_cookie: None,
            accept_queue: VecDeque::new(),
            waiting: 0,
            in_events: false,
            buffers: (self.cfg.send_buffer, self.cfg.recv_buffer),
        };
        let idx = match self.listeners.iter().position(Option::is_none) {
            Some(i) => {
                self.listeners[i] = Some(l);
                i
            }
            None => {
                self.listeners.push(Some(l));
                self.listeners.len() - 1
            }
        } as u32;
        self.listener_map.insert(addr, idx);
        Ok(ListenerId(idx))
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: ListenerId) -> Option<ConnId> {
        let l = self.listeners.get_mut(listener.0 as usize)?.as_mut()?;
        let id = l.accept_queue.pop_front()?;
        let slot = self.slots.get_mut(id.index as usize)?;
        slot.owned = true;
        self.stats.connections_accepted += 1;
        // Events that happened before accept (data, FIN) are now of interest.
        if let Some(c) = slot.conn.as_deref_mut() {
            if !c.recv_buf.is_empty() {
                c.raise(ev::READABLE);
            }
            if c.peer_fin_received() {
                c.raise(ev::PEER_CLOSED | ev::READABLE);
            }
            c.raise(ev::WRITABLE);
        }
        self.after(id, false);
        Some(id)
    }

    /// Closes a listener; connections not yet accepted are reset.
    pub fn close_listener(&mut self, listener: ListenerId) {
        let Some(l) = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::take)
        else {
            return;
        };
        self.listener_map.remove(&l.addr);
        let mut doomed: Vec<ConnId> = l.accept_queue.into_iter().collect();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(c) = s.conn.as_deref() {
                if c.listener == Some(listener) && !s.owned && c.state == State::SynReceived {
                    doomed.push(ConnId {
                        index: i as u32,
                        generation: s.generation,
                    });
                }
            }
        }
        for id in doomed {
            if let Some(c) = self.conn_mut(id) {
                c.listener = None;
                c.abort(Error::ConnectionAborted);
                c.user_closed = true;
            }
            self.after(id, true);
        }
    }

    /// Tells the stack that `waiting` connections taken from `listener`
    /// with [`accept`](Stack::accept) still wait in a front end's own queue
    /// for its application. They count against the backlog as if they were
    /// still in the accept queue, so a front end that moves connections
    /// ahead of its application keeps the backlog's meaning.
    pub fn set_listener_waiting(
        &mut self,
        listener: ListenerId,
        waiting: usize,
    ) -> crate::Result<()> {
        match self.listeners.get_mut(listener.0 as usize) {
            Some(Some(l)) => {
                l.waiting = waiting;
                Ok(())
            }
            _ => Err(Error::InvalidHandle),
        }
    }

    /// The address a listener is bound to.
    pub fn listener_addr(&self, listener: ListenerId) -> Option<SocketAddrV4> {
        self.listeners
            .get(listener.0 as usize)?
            .as_ref()
            .map(|l| l.addr)
    }

    /// Active open: sends a SYN. `local` None (or port 0) picks an address and ephemeral port.
    pub fn connect(
        &mut self,
        now: Instant,
        local: Option<SocketAddrV4>,
        remote: SocketAddrV4,
    ) -> crate::Result<ConnId> {
        let buffers = (self.cfg.send_buffer, self.cfg.recv_buffer);
        self.connect_with_buffers(now, local, remote, buffers)
    }

    /// [`connect`](Stack::connect) with send and receive buffers of the
    /// given sizes instead of the configured ones (`SO_SNDBUF`/`SO_RCVBUF`
    /// set before `connect`). The buffer factory is asked for them.
    pub fn connect_with_buffers(
        &mut self,
        now: Instant,
        local: Option<SocketAddrV4>,
        remote: SocketAddrV4,
        buffers: (usize, usize),
    ) -> crate::Result<ConnId> {
        let rip = *remote.ip();
        if remote.port() == 0 || rip.is_unspecified() || rip.is_broadcast() || rip.is_multicast() {
            return Err(Error::InvalidInput);
        }
        let local = local.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        self.check_local_ip(*local.ip())?;
        let lip = if !local.ip().is_unspecified() {
            *local.ip()
        } else if rip.is_loopback() {
            // As Linux routes 127.0.0.0/8: through loopback, from 127.0.0.1.
            Ipv4Addr::LOCALHOST
        } else if self.cfg.addrs.contains(&rip) {
            // One of our own addresses: it is the source too (RFC 1122 3.2.1.3).
            rip
        } else {
            *self.cfg.addrs.first().ok_or(Error::AddrNotAvailable)?
        };
        // RFC 1122 3.2.1.3 (g): a loopback source never leaves the host
        // (Linux: EINVAL).
        if lip.is_loopback() && !self.is_local(rip) {
            return Err(Error::InvalidInput);
        }
        if self.live >= self.cfg.max_connections || self.memory_exhausted() {
            return Err(Error::Exhausted);
        }
        let local = if local.port() == 0 {
            self.ephemeral_port(lip, remote)?
        } else {
            let l = SocketAddrV4::new(lip, local.port());
            if self.conns.contains_key(&(l, remote)) {
                return Err(Error::AddrInUse);
            }
            l
        };
        let (id_hint, mut conn) = self.new_conn(now, local, remote, buffers, None);
        conn.open_active();
        let id = self.insert(conn, true);
        debug_assert_eq!(id, id_hint);
        self.stats.connections_opened += 1;
        self.after(id, true);
        Ok(id)
    }

    /// Sets the send and receive buffer sizes of the connections
    /// `listener` accepts from now on (`SO_SNDBUF`/`SO_RCVBUF` set on a
    /// listening socket, which Linux passes on to accepted ones).
    pub fn set_listener_buffers(
        &mut self,
        listener: ListenerId,
        send: usize,
        recv: usize,
    ) -> crate::Result<()> {
        match self.listeners.get_mut(listener.0 as usize) {
            Some(Some(l)) => {
                l.buffers = (send, recv);
                Ok(())
            }
            _ => Err(Error::InvalidHandle),
        }
    }

    /// SEND on a listening socket with a foreign socket given (RFC 9293
    /// 3.10.2, the LISTEN -> SYN-SENT arrow, as for active FTP data
    /// connections): the listener becomes an active open from its own
    /// address. Connections still queued on the listener are reset.
    pub fn connect_listener(
        &mut self,
        now: Instant,
        listener: ListenerId,
        remote: SocketAddrV4,
    ) -> crate::Result<ConnId> {
        let local = self.listener_addr(listener).ok_or(Error::InvalidHandle)?;
        if local.ip().is_unspecified() {
            // A wildcard listener has no single source address to use.
            return Err(Error::AddrNotAvailable);
        }
        self.close_listener(listener);
        self.connect(now, Some(local), remote)
    }

    /// Ephemeral port selection (RFC 6056).
    fn ephemeral_port(
        &mut self,
        lip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> crate::Result<SocketAddrV4> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let mut h = KeyedState(self.port_key).build_hasher();
        h.write(&remote.ip().octets());
        h.write(&remote.port().to_be_bytes());
        let hash = h.finish();
        // RFC 6056 3.3.4 (algorithm 4): a keyed per-destination offset plus
        // a small table of counters, so consecutive connects to one peer
        // walk forward instead of probing the same used ports again.
        let slot = (hash >> 56) as usize % self.port_table.len();
        let start = (hash as u32).wrapping_add(u32::from(self.port_table[slot])) % span;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let cand = SocketAddrV4::new(lip, port);
            if !self.conns.contains_key(&(cand, remote)) && !self.port_in_use_by_listener(lip, port)
            {
                self.port_table[slot] = self.port_table[slot].wrapping_add(i as u16 + 1);
                return Ok(cand);
            }
        }
        Err(Error::AddrNotAvailable)
    }

    /// Queues bytes for sending; returns how many were taken (`WouldBlock` if none fit).
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> crate::Result<usize> {
        let n = self.owned_conn_mut(conn)?.send(data)?;
        self.after(conn, true);
        Ok(n)
    }

    /// Reads received bytes; `Ok(0)` is the end of stream (the peer's FIN),
    /// `WouldBlock` means nothing yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> crate::Result<usize> {
        let r = self.owned_conn_mut(conn)?.recv(buf, true);
        self.after(conn, true);
        r
    }

    /// Like `recv` without consuming.
    pub fn peek(&mut self, conn: ConnId, buf: &mut [u8]) -> crate::Result<usize> {
        self.owned_conn_mut(conn)?.recv(buf, false)
    }

    /// Half-close: a FIN is sent after the queued data; receiving continues.
    pub fn shutdown(&mut self, conn: ConnId) -> crate::Result<()> {
        let r = self.owned_conn_mut(conn)?.shutdown();
        self.after(conn, true);
        r
    }

    /// Closes the connection and releases the handle. With unread data, or
    /// linger zero, sends RST (RFC 2525 2.17); otherwise a graceful close
    /// (FIN after queued data) continues in the background.
    pub fn close(&mut self, conn: ConnId) -> crate::Result<()> {
        self.owned_conn_mut(conn)?.close();
        if let Some(s) = self.slots.get_mut(conn.index as usize) {
            s.in_events = false;
        }
        self.after(conn, true);
        Ok(())
    }

    /// Sends RST and drops the connection at once; the handle stays valid
    /// (state CLOSED) until `close`.
    pub fn abort(&mut self, conn: ConnId) -> crate::Result<()> {
        let c = self.owned_conn_mut(conn)?;
        c.abort(Error::ConnectionAborted);
        c.events = 0;
        self.after(conn, true);
        Ok(())
    }

    /// The connection's state; `Closed` for unknown or released handles.
    pub fn state(&self, conn: ConnId) -> State {
        self.conn(conn).map_or(State::Closed, |c| c.state)
    }

    /// The error that ended the connection (reset, refused, timed out), if any.
    pub fn error(&self, conn: ConnId) -> Option<Error> {
        self.conn(conn).and_then(|c| c.error)
    }

    pub fn local_addr(&self, conn: ConnId) -> Option<SocketAddrV4> {
        self.conn(conn).map(|c| c.local)
    }

    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddrV4> {
        self.conn(conn).map(|c| c.remote)
    }

    /// Sets a per-connection option.
    pub fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> crate::Result<()> {
        let iw = self.cfg.initial_window_segments;
        let c = self.owned_conn_mut(conn)?;
        match opt {
            SockOpt::NoDelay(v) => c.opts.nodelay = v,
            SockOpt::KeepAlive(v) => {
                c.opts.keepalive = v;
                // Idle time counts from the last segment received.
                let since = c.last_recv;
                c.arm_keepalive(since);
            }
            SockOpt::KeepAliveParams {
                idle,
                interval,
                probes,
            } => {
                // As Linux refuses TCP_KEEPIDLE or TCP_KEEPINTVL below 1 s
                // (EINVAL): a zero would re-arm the timer at `now` for ever.
                if idle.is_zero() || interval.is_zero() {
                    return Err(Error::InvalidInput);
                }
                c.opts.keepalive_idle = idle;
                c.opts.keepalive_interval = interval;
                c.opts.keepalive_probes = probes.max(1);
                let since = c.last_recv;
                c.arm_keepalive(since);
            }
            SockOpt::UserTimeout(d) => c.opts.user_timeout = d,
            SockOpt::Ttl(t) => c.opts.ttl = t.max(1),
            SockOpt::LingerZero(v) => c.opts.linger_zero = v,
            SockOpt::CongestionControl(kind) => c.set_congestion_control(kind, iw),
        }
        self.after(conn, true);
        Ok(())
    }

    /// Snapshot of connection internals.
    pub fn info(&self, conn: ConnId) -> Option<TcpInfo> {
        self.conn(conn).map(Conn::info)
    }

    /// The application appended to the connection's send buffer directly
    /// (shared-buffer front ends): schedule transmission.
    pub fn notify_send(&mut self, conn: ConnId) {
        self.after(conn, true);
    }

    /// The application consumed from the receive buffer directly: the window
    /// may need an update.
    pub fn notify_recv(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            c.on_app_read();
        }
        self.after(conn, true);
    }

    /// The connection's send buffer (e.g. to downcast to a front end's type).
    pub fn send_buffer(&self, conn: ConnId) -> Option<&dyn SendBuffer> {
        self.conn(conn).map(|c| &*c.send_buf)
    }

    /// The connection's receive buffer.
    pub fn recv_buffer(&self, conn: ConnId) -> Option<&dyn RecvBuffer> {
        self.conn(conn).map(|c| &*c.recv_buf)
    }
}
