//! Stack configuration.

use crate::time::Duration;
use crate::wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which congestion controller new connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionControl {
    /// RFC 5681 slow start / congestion avoidance with RFC 6582 NewReno recovery.
    NewReno,
    /// RFC 9438 CUBIC with RFC 9406 HyStart++ for the initial slow start.
    #[default]
    Cubic,
}

/// When a listener answers a SYN with a SYN cookie (RFC 4987 3.6) instead
/// of keeping a half-open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynCookies {
    /// Never: a full SYN queue drops SYNs (after evicting the oldest
    /// half-open entry that already retransmitted its SYN-ACK).
    Off,
    /// Once the listener's SYN queue (or the stack-wide cap) is full, as
    /// Linux's `tcp_syncookies=1`.
    #[default]
    WhenFull,
    /// For every SYN (Linux `tcp_syncookies=2`): no half-open state at all.
    Always,
}

/// Configuration of a [`Stack`](crate::Stack). Every field has a kernel-like default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Local addresses this stack answers for, of either family (at least
    /// one). The first of each family is the source of connections that
    /// name none. IPv4 127.0.0.0/8 and IPv6 `::1` are answered for without
    /// being listed (loopback inside the stack).
    pub addrs: Vec<IpAddr>,
    /// Link MTU: the largest IP datagram `poll_transmit` emits, either
    /// family (an IPv6 link has at least 1280, RFC 8200 5).
    pub mtu: usize,
    /// Seed for every random choice (ISN key, ephemeral ports, ...).
    pub seed: u64,
    /// Default send buffer per connection, bytes.
    pub send_buffer: usize,
    /// Default receive buffer per connection, bytes (the largest window advertised).
    pub recv_buffer: usize,
    /// Receive buffer auto-tuning cap: the buffer (and window) grows toward
    /// twice the data delivered per round trip, up to this many bytes.
    /// Equal to `recv_buffer` to disable auto-tuning.
    pub recv_buffer_max: usize,
    /// Send buffer auto-sizing cap: while the application keeps the buffer
    /// full, it grows toward twice the congestion window (a window in
    /// flight plus the next one queued), up to this many bytes. Equal to
    /// `send_buffer` to disable.
    pub send_buffer_max: usize,
    /// Maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 3.4.2).
    pub msl: Duration,
    /// How long an orphaned connection (closed by the application) may stay
    /// in FIN-WAIT-2 (Linux `tcp_fin_timeout`).
    pub fin_wait2_timeout: Duration,
    /// Keep-alive: idle time before the first probe (RFC 1122 4.2.3.6).
    pub keepalive_idle: Duration,
    /// Keep-alive: interval between probes.
    pub keepalive_interval: Duration,
    /// Keep-alive: unanswered probes before the connection is dropped.
    pub keepalive_probes: u32,
    /// Whether new connections enable keep-alive.
    pub keepalive: bool,
    /// User timeout (RFC 9293 3.10.8): data unacknowledged this long aborts
    /// the connection with `TimedOut`.
    pub user_timeout: Duration,
    /// Connect timeout: SYN retransmitted with backoff until this elapses.
    pub connect_timeout: Duration,
    /// Largest delay of an ACK for in-order data (RFC 9293 3.8.6.3, RFC 1122 4.2.3.2: < 0.5 s).
    pub delayed_ack: Duration,
    /// Lower bound of the retransmission timeout (RFC 6298 2.4 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout (RFC 6298 2.5: at least 60 s).
    pub max_rto: Duration,
    /// Initial RTO before any sample (RFC 6298 2.1).
    pub initial_rto: Duration,
    /// Nagle's algorithm disabled by default on new connections.
    pub nodelay: bool,
    /// Negotiate window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Negotiate timestamps (RFC 7323).
    pub timestamps: bool,
    /// Negotiate SACK (RFC 2018).
    pub sack: bool,
    /// Congestion controller for new connections.
    pub congestion_control: CongestionControl,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window_segments: u32,
    /// IP TTL of emitted IPv4 datagrams.
    pub ttl: u8,
    /// Hop limit of emitted IPv6 datagrams (RFC 8200 3; Linux
    /// `net.ipv6.conf.*.hop_limit`, 64).
    pub hop_limit: u8,
    /// Upper bound on connections (all states); beyond it SYNs are dropped and
    /// `connect` fails with `Exhausted`.
    pub max_connections: usize,
    /// RFC 5961 7: a stack-wide ceiling on challenge ACKs per second. The
    /// budget of each second is drawn at random from `[limit/2, 3*limit/2)`,
    /// as Linux does since CVE-2016-5696, so that an off-path attacker
    /// cannot use a shared, predictable counter to learn whether another
    /// connection drew challenge ACKs. `u32::MAX` disables the ceiling.
    pub challenge_ack_limit: u32,
    /// RFC 5961 7: per connection, at most one challenge ACK per interval
    /// (Linux `tcp_invalid_ratelimit`, 500 ms).
    pub challenge_ack_interval: Duration,
    /// ICMP messages the stack may send per second, with bursts of
    /// `icmp_msgs_burst` (RFC 1812 4.3.2.8; Linux `icmp_msgs_per_sec`,
    /// 1000, and `icmp_msgs_burst`, 50). Beyond it they are not sent and are
    /// counted in `Stats::icmp_rate_limited`.
    pub icmp_msgs_per_sec: u32,
    /// The most ICMP messages sent back to back after a quiet spell: the
    /// token bucket's capacity for `icmp_msgs_per_sec` (Linux
    /// `icmp_msgs_burst`, 50).
    pub icmp_msgs_burst: u32,
    /// Memory the connections' buffers may hold, stack-wide, as a front
    /// end reports it ([`Stack::set_buffer_memory`](crate::Stack::set_buffer_memory);
    /// Linux's `tcp_mem`). At or above it, `connect` fails with `Exhausted`
    /// (ENOBUFS-like) and listeners drop SYNs (`Stats::drop_memory`) until
    /// the buffers shrink again. Already open connections are not touched.
    pub max_buffer_memory: usize,
    /// Zero-window probes an orphaned connection (closed by the
    /// application) sends before it is reset, when its peer keeps the
    /// window shut (Linux `tcp_orphan_retries`, whose 0 means 8).
    pub orphan_retries: u32,
    /// SYN cookies (RFC 4987 3.6): see [`SynCookies`].
    pub syn_cookies: SynCookies,
    /// Stack-wide cap on half-open (SYN-RECEIVED) connections, as Linux's
    /// `tcp_max_syn_backlog`. Each listener also holds at most
    /// `max(backlog, 8)` of them (and never more than this cap).
    pub max_syn_backlog: usize,
    /// SYN-ACK retransmissions before a half-open connection is dropped
    /// (Linux `tcp_synack_retries`, 5: about 63 s with a 1 s initial RTO).
    pub synack_retries: u32,
    /// First and last ephemeral port for `connect` without an explicit local port.
    pub ephemeral_ports: (u16, u16),
    /// Verify TCP checksums on input (turn off when the device did it).
    pub verify_checksums: bool,
    /// Explicit Congestion Notification (RFC 3168): request it on active
    /// opens and accept it on passive ones.
    pub ecn: bool,
    /// An Ethernet link layer ([`EthernetConfig`]): `handle_packet` takes
    /// and `poll_transmit` emits Ethernet II frames, and `poll_transmit`
    /// needs `mtu + 14` bytes. `None` (default): bare IP datagrams, as a TUN.
    pub ethernet: Option<EthernetConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            mtu: 1500,
            seed: 0x5eed_0f7c_95ee_d5ed,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            recv_buffer_max: 8 * 1024 * 1024,
            send_buffer_max: 8 * 1024 * 1024,
            msl: Duration::from_secs(30),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            keepalive: false,
            user_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(75),
            delayed_ack: Duration::from_millis(40),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            initial_rto: Duration::from_secs(1),
            nodelay: false,
            window_scaling: true,
            timestamps: true,
            sack: true,
            congestion_control: CongestionControl::Cubic,
            initial_window_segments: 10,
            ttl: 64,
            hop_limit: 64,
            max_connections: 1 << 20,
            challenge_ack_limit: 1000,
            challenge_ack_interval: Duration::from_millis(500),
            max_buffer_memory: 4 << 30,
            orphan_retries: 8,
            icmp_msgs_per_sec: 1000,
            icmp_msgs_burst: 50,
            syn_cookies: SynCookies::WhenFull,
            max_syn_backlog: 4096,
            synack_retries: 5,
            ephemeral_ports: (32768, 60999),
            verify_checksums: true,
            ecn: true,
            ethernet: None,
        }
    }
}

impl Config {
    /// A default configuration answering for `addr`.
    pub fn with_addr(addr: Ipv4Addr) -> Self {
        Config::with_addrs([addr])
    }

    /// A default configuration answering for `addrs`, of either family
    /// (e.g. one IPv4 and one IPv6 address for a dual-stack host).
    pub fn with_addrs<A: Into<IpAddr>>(addrs: impl IntoIterator<Item = A>) -> Self {
        Config {
            addrs: addrs.into_iter().map(Into::into).collect(),
            ..Config::default()
        }
    }

    /// A default configuration with an Ethernet link layer: our MAC, and
    /// the addresses with their prefix lengths (each also an on-link
    /// prefix). Set gateways on [`Config::ethernet`] afterwards.
    pub fn with_ethernet(mac: MacAddr, addrs: impl IntoIterator<Item = (IpAddr, u8)>) -> Config {
        let prefixes: Vec<(IpAddr, u8)> = addrs.into_iter().collect();
        Config {
            addrs: prefixes.iter().map(|p| p.0).collect(),
            ethernet: Some(EthernetConfig {
                prefixes,
                ..EthernetConfig::new(mac)
            }),
            ..Config::default()
        }
    }
}

/// Neighbour cache tuning (ARP and NDP share it, as Linux's `neigh`
/// tables do). Defaults are Linux's and RFC 4861 10's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// BASE_REACHABLE_TIME (RFC 4861 10, 30 s): a confirmed neighbour stays
    /// REACHABLE for a random 0.5..1.5 times this (RFC 4861 6.3.2; drawn
    /// from [`Config::seed`]).
    pub reachable_time: Duration,
    /// RETRANS_TIMER (RFC 4861 10, 1 s): between solicitations (NS or ARP
    /// requests) of one neighbour.
    pub retrans_time: Duration,
    /// DELAY_FIRST_PROBE_TIME (RFC 4861 10, 5 s).
    pub delay_first_probe: Duration,
    /// MAX_MULTICAST_SOLICIT / MAX_UNICAST_SOLICIT (RFC 4861 10, 3):
    /// solicitations before the neighbour is given up; ARP uses it too.
    pub max_probes: u32,
    /// An unused STALE entry is removed after this (Linux `gc_stale_time`, 60 s).
    pub stale_timeout: Duration,
    /// Datagrams held per unresolved neighbour (Linux `unres_qlen`-like);
    /// beyond it the oldest is dropped (`Stats::neigh_queue_drops`).
    pub queue_packets: usize,
    /// Entries in the cache (Linux `gc_thresh3`, 1024). A full cache
    /// evicts a FAILED or STALE entry first; when there is none, the new
    /// neighbour is not created and its datagram dropped.
    pub max_entries: usize,
}

impl Default for NeighbourConfig {
    fn default() -> Self {
        NeighbourConfig {
            reachable_time: Duration::from_secs(30),
            retrans_time: Duration::from_secs(1),
            delay_first_probe: Duration::from_secs(5),
            max_probes: 3,
            stale_timeout: Duration::from_secs(60),
            queue_packets: 16,
            max_entries: 1024,
        }
    }
}

/// An Ethernet link layer under IP ([`Config::ethernet`]): the stack takes
/// and emits Ethernet II frames, resolves neighbours with ARP (RFC 826)
/// and NDP (RFC 4861), and routes to on-link neighbours or a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetConfig {
    /// Our MAC address (unicast).
    pub mac: MacAddr,
    /// On-link prefixes: (address, prefix length). Each address is also in
    /// [`Config::addrs`].
    pub prefixes: Vec<(IpAddr, u8)>,
    /// The IPv4 default gateway (on-link), for destinations no prefix covers.
    pub gateway_v4: Option<Ipv4Addr>,
    /// The IPv6 default gateway (on-link or link-local).
    pub gateway_v6: Option<Ipv6Addr>,
    /// Derive an IPv6 link-local address fe80::/64 from the MAC (modified
    /// EUI-64, RFC 4291 2.5.1 and appendix A, RFC 4862 5.3) and answer for
    /// it. Default true. No DAD is performed for it.
    pub link_local: bool,
    /// Neighbour cache tuning.
    pub neighbour: NeighbourConfig,
}

impl EthernetConfig {
    /// `mac` with no prefixes, no gateways, a link-local address, and
    /// default neighbour tuning.
    pub fn new(mac: MacAddr) -> Self {
        EthernetConfig {
            mac,
            prefixes: Vec::new(),
            gateway_v4: None,
            gateway_v6: None,
            link_local: true,
            neighbour: NeighbourConfig::default(),
        }
    }
}
