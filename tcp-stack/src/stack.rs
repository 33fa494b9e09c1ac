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
    IcmpRepr, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Drop, Ipv6Packet, Ipv6Repr,
    TcpFlags, TcpOptions, TcpPacket, TcpRepr, WireError,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

mod addr;
pub(crate) use addr::mapped;
pub use addr::{binds_overlap, canonical};
mod calls;
mod icmp;
mod input;
#[cfg(any(test, feature = "fuzzing"))]
mod inspect;
mod link;
mod listen;
mod neighbour;
mod output;
mod report;
pub use neighbour::{NeighbourInfo, NeighbourState};
pub use report::ListenerInfo;

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
    /// ICMP errors ignored because the segment they quote is not in flight
    /// (RFC 5927 4.1), either family.
    pub icmp_ignored: u64,
    /// Path MTU reductions from "fragmentation needed" (RFC 1191) or
    /// "packet too big" (RFC 8201).
    pub pmtu_reductions: u64,
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
    /// Link layer ([`Config::ethernet`]): frames dropped as runts (under
    /// the 14-byte header), with a group source MAC, or whose EtherType
    /// disagrees with the IP version.
    pub link_drop_malformed: u64,
    /// Link layer: frames for another MAC or a group we do not listen to.
    pub link_drop_not_ours: u64,
    /// Link layer: frames of an EtherType other than IPv4, IPv6 and ARP
    /// (VLAN-tagged frames included).
    pub link_drop_ethertype: u64,
    /// ARP packets received (RFC 826).
    pub arp_in: u64,
    /// ARP packets dropped: malformed, not Ethernet/IPv4, or from our own
    /// or a group MAC.
    pub arp_dropped: u64,
    /// ARP replies sent for our addresses.
    pub arp_replies: u64,
    /// Neighbour Solicitations and Advertisements dropped by the checks of
    /// RFC 4861 7.1 (hop limit, code, length, options, multicast target,
    /// S with a multicast destination, DAD rules).
    pub ndp_invalid: u64,
    /// Solicitations sent: ARP requests and NS, first tries,
    /// retransmissions and NUD probes.
    pub neigh_solicits: u64,
    /// Datagrams with no next hop: no prefix covers the destination and
    /// there is no gateway of its family (nstat `IpOutNoRoutes`).
    pub drop_no_route: u64,
    /// Datagrams dropped from a full per-neighbour queue while it resolved
    /// (the oldest go first; `NeighbourConfig::queue_packets`).
    pub neigh_queue_drops: u64,
    /// Address resolutions that failed (`max_probes` unanswered; Linux
    /// `res_failed`).
    pub neigh_res_failed: u64,
    /// Datagrams dropped because their next hop did not resolve; each is
    /// reported to its connection as an ICMP host unreachable.
    pub neigh_failed_drops: u64,
    /// Datagrams dropped because the neighbour cache was full of entries
    /// in use (`NeighbourConfig::max_entries`).
    pub neigh_table_full: u64,
    /// ARP/NS/NA frames not queued because the link control queue was full.
    pub drop_link_control_full: u64,
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

/// The header layout of a datagram the stack wrote, so that a device
/// (a TSO engine, a virtio-net header) never parses it: the core knows
/// what it emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxHeaders {
    /// Bytes of link-layer header before the IP header (0 on an IP device;
    /// 14 for Ethernet).
    pub link_len: u8,
    /// Bytes of IP header (20 for IPv4 without options, 40 for IPv6 without
    /// extension headers).
    pub ip_len: u16,
    /// The IP header is IPv6.
    pub ipv6: bool,
    /// Bytes of TCP header including options; 0 if the datagram is not TCP.
    pub tcp_len: u8,
    /// The TCP header has CWR set (a device cutting a super-segment must set
    /// CWR on the first part only: `VIRTIO_NET_HDR_GSO_ECN`).
    pub cwr: bool,
}

impl TxHeaders {
    /// The layout of a datagram the stack itself emitted (an IP datagram
    /// without link header), read back from its bytes: used for the
    /// prebuilt control packets (RSTs, SYN-ACK cookies, ICMP replies).
    /// Anything unexpected gives the IP part only, or the default.
    pub(crate) fn of_datagram(datagram: &[u8]) -> TxHeaders {
        let (ip_len, ipv6, proto) = match datagram.first().map(|b| b >> 4) {
            Some(4) => match Ipv4Packet::new_checked(datagram) {
                Ok(ip) => (ip.header_len(), false, ip.protocol()),
                Err(_) => return TxHeaders::default(),
            },
            Some(6) => match Ipv6Packet::new_checked(datagram) {
                Ok(ip) => (Ipv6Repr::HEADER_LEN, true, ip.next_header()),
                Err(_) => return TxHeaders::default(),
            },
            _ => return TxHeaders::default(),
        };
        let mut headers = TxHeaders {
            link_len: 0,
            ip_len: u16::try_from(ip_len).unwrap_or(0),
            ipv6,
            tcp_len: 0,
            cwr: false,
        };
        if proto == IpProtocol::Tcp {
            if let Some(tcp) = datagram
                .get(ip_len..)
                .and_then(|s| TcpPacket::new_checked(s).ok())
            {
                headers.tcp_len = u8::try_from(tcp.header_len()).unwrap_or(0);
                headers.cwr = tcp.flags().contains(TcpFlags::CWR);
            }
        }
        headers
    }
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
    /// Its header layout, for a device that needs it (segmentation
    /// offload, a virtio-net header) without parsing the datagram.
    pub headers: TxHeaders,
}

/// A `tcp_info`-like snapshot of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpInfo {
    /// The connection's state (Linux `tcpi_state`).
    pub state: State,
    /// As [`Stack::local_addr`] reports it (IPv4-mapped for an IPv4
    /// connection of an IPv6 socket).
    pub local: SocketAddr,
    /// The peer's address, as [`Stack::peer_addr`] reports it.
    pub remote: SocketAddr,
    /// Smoothed RTT (None before the first sample).
    pub srtt: Option<Duration>,
    /// RTT variation, RTTVAR of RFC 6298 2 (Linux `tcpi_rttvar`); zero
    /// before the first sample.
    pub rttvar: Duration,
    /// Current retransmission timeout, backoff included (RFC 6298; Linux
    /// `tcpi_rto`).
    pub rto: Duration,
    /// Congestion window, bytes.
    pub cwnd: usize,
    /// Slow-start threshold, bytes (RFC 5681 3.1; Linux
    /// `tcpi_snd_ssthresh` counts segments); `usize::MAX` before the first
    /// congestion event.
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
    /// Payload bytes sent for the first time; unlike Linux
    /// `tcpi_bytes_sent`, retransmissions are not counted.
    pub bytes_sent: u64,
    /// Payload bytes acknowledged by the peer (Linux `tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// Payload bytes received in order, ready for the application (Linux
    /// `tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Segments sent, pure ACKs and retransmissions included, each part of
    /// a super-segment counted (Linux `tcpi_segs_out`).
    pub segments_sent: u64,
    /// Segments received by this connection (Linux `tcpi_segs_in`).
    pub segments_received: u64,
    /// Segments retransmitted, SYNs included (Linux `tcpi_total_retrans`).
    pub retransmits: u64,
    /// Bytes in flight (sent, not acknowledged).
    pub in_flight: usize,
    /// Window scaling (RFC 7323 2) was negotiated (Linux `tcpi_options`
    /// `TCPI_OPT_WSCALE`).
    pub window_scaling: bool,
    /// Timestamps (RFC 7323 3) were negotiated (`TCPI_OPT_TIMESTAMPS`).
    pub timestamps: bool,
    /// SACK (RFC 2018) was negotiated (`TCPI_OPT_SACK`).
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
    ///
    /// [`Stack::set_option`] refuses a zero `idle` or `interval` with
    /// [`Error::InvalidInput`].
    KeepAliveParams {
        /// Time without a received segment before the first probe
        /// (TCP_KEEPIDLE).
        idle: Duration,
        /// Time between unanswered probes (TCP_KEEPINTVL).
        interval: Duration,
        /// Unanswered probes before the connection times out
        /// (TCP_KEEPCNT; 0 counts as 1).
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
    /// IP_TOS of the connection's IPv4 datagrams. Only the DSCP bits (the
    /// upper six) are used: the ECN field (the lower two) stays under the
    /// stack's control (RFC 3168 6.1.2), as Linux `ip_setsockopt()` keeps
    /// `INET_ECN_MASK` from the socket's ECN state. IPv6 datagrams are
    /// unaffected (that is `IPV6_TCLASS`).
    Tos(u8),
    /// TCP_QUICKACK: while set, every segment that would start the delayed
    /// ACK timer is acknowledged at once. Linux's quick-ack mode ends by
    /// itself after a few ACKs; this one lasts until it is cleared.
    QuickAck(bool),
}

/// Options of [`Stack::listen_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenOptions {
    /// An IPv6 wildcard listener takes IPv6 only (`IPV6_V6ONLY`); without
    /// it `[::]:p` takes IPv4 too, reporting IPv4-mapped peers (Linux's
    /// default, `net.ipv6.bindv6only=0`). Ignored for IPv4 addresses.
    pub v6_only: bool,
    /// `SO_REUSEPORT`: several listeners with it may share one address and
    /// port (and overlap each other's addresses); a new connection goes to
    /// one of the listeners bound to the address it reaches, chosen by a
    /// hash of its four-tuple (Linux `reuseport_select_sock()`).
    pub reuseport: bool,
}

impl ListenOptions {
    /// Sets [`v6_only`](Self::v6_only).
    pub fn v6_only(mut self, v6_only: bool) -> Self {
        self.v6_only = v6_only;
        self
    }

    /// Sets [`reuseport`](Self::reuseport).
    pub fn reuseport(mut self, reuseport: bool) -> Self {
        self.reuseport = reuseport;
        self
    }
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

type Tuple = (SocketAddr, SocketAddr);

/// What goes into the IP header of an emitted datagram, either family.
pub(crate) struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    /// TTL (IPv4) or hop limit (IPv6).
    pub hop_limit: u8,
    /// ECN codepoint (RFC 3168 5), the low bits of TOS / traffic class.
    pub ecn: u8,
    /// DSCP of an IPv4 datagram: the TOS byte's upper six bits
    /// ([`SockOpt::Tos`]); its ECN bits are ignored (`ecn` gives them).
    pub dscp: u8,
    /// IPv6 flow label (RFC 6437); ignored for IPv4.
    pub flow_label: u32,
}

/// The length of the IP header this stack writes towards `dst`: IPv4
/// without options, or the IPv6 fixed header (no extension headers).
pub(crate) fn ip_header_len(dst: IpAddr) -> usize {
    match dst {
        IpAddr::V4(_) => Ipv4Repr::HEADER_LEN,
        IpAddr::V6(_) => Ipv6Repr::HEADER_LEN,
    }
}

/// An IPv6 address of either family (IPv4 as IPv4-mapped); a header
/// mixing families is never written, this only keeps `ip_header` total.
pub(crate) fn v6_of(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The destination of a datagram the stack wrote (for loopback).
fn datagram_dst(datagram: &[u8]) -> Option<IpAddr> {
    match datagram.first()? >> 4 {
        4 => Ipv4Packet::new_checked(datagram)
            .ok()
            .map(|p| IpAddr::V4(p.dst_addr())),
        6 => Ipv6Packet::new_checked(datagram)
            .ok()
            .map(|p| IpAddr::V6(p.dst_addr())),
        _ => None,
    }
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
    /// The address as bound (reported by `listener_addr`).
    addr: SocketAddr,
    /// The address in its wire family (an IPv4-mapped bind is IPv4): the
    /// key in `listener_map`.
    key: SocketAddr,
    /// Bound by an IPv6 socket: IPv4 connections it accepts report
    /// IPv4-mapped addresses.
    v6_socket: bool,
    /// An IPv6 wildcard listener that takes no IPv4 (`IPV6_V6ONLY`).
    v6_only: bool,
    /// `SO_REUSEPORT`: shares its address with the others that have it.
    reuseport: bool,
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
    listener_map: HashMap<SocketAddr, u32, KeyedState>,
    /// Learnt path MTUs by destination, with when they were learnt
    /// (RFC 1191, RFC 8201; aged out after `icmp::PMTU_AGE`).
    pmtu: HashMap<IpAddr, (usize, Instant), KeyedState>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    dirty: VecDeque<ConnId>,
    events: VecDeque<EventSource>,
    control: VecDeque<Vec<u8>>,
    loopback: Loopback,
    ip_ident: u16,
    port_key: u64,
    port_table: [u16; 256],
    /// The Ethernet link layer, with [`Config::ethernet`].
    link: Option<Box<link::Link>>,
}

impl Stack {
    /// Creates a stack. Nothing is sent until a socket call or packet
    /// arrives, except, with [`Config::ethernet`], a gratuitous ARP per IPv4
    /// address (sent by the first `poll_transmit`). With `ethernet`, its
    /// IPv6 link-local address (if enabled) is added to `addrs`.
    ///
    /// # Panics
    ///
    /// With [`Config::ethernet`]: when its MAC is not unicast, a prefix
    /// is longer than its family's address, or a gateway is not on-link
    /// (covered by a prefix; for IPv6 also fe80::/10).
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
        let mut stack = Stack {
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
            pmtu: HashMap::with_hasher(key),
            timers: BinaryHeap::new(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            control: VecDeque::new(),
            loopback: Loopback::default(),
            ip_ident,
            port_key,
            port_table: [0; 256],
            link: None,
        };
        stack.init_link();
        stack
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
            let pending_output = conn.pending.rst || conn.pending.rst_reply.is_some();
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
