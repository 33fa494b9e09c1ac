//! One TCP connection: the transmission control block (RFC 9293 3.3.1) and
//! its reactions to segments ([`input`]), to time ([`timer`]) and to the
//! application, and what it sends ([`output`]).
//!
//! The connection never sees IP headers or other connections: the
//! [`Stack`](crate::Stack) demultiplexes, and hands it an [`Env`] with the
//! clock and the stack-wide limits.

mod gso;
mod input;
mod output;
mod parts;
mod rack;
mod rcv_mss;
mod sent;
mod timer;

#[cfg(test)]
mod tests;

pub(crate) use input::SegmentIn;
pub(crate) use timer::{Timer, Timers};

use crate::assembler::Assembler;
use crate::buffer::{RecvBuffer, SendBuffer};
use crate::cc::{self, CongestionController};
use crate::config::Config;
use crate::error::Error;
use crate::rtt::RttEstimator;
use crate::seq::SeqNum;
use crate::stack::{Stats, TcpInfo};
use crate::state::{ListenerId, State};
use crate::time::{Duration, Instant};
use parts::{Ecn, Pending, Prr, Recovery, Tlp};
use rack::Rack;
use rcv_mss::RcvMss;
use sent::SentLog;
use std::net::SocketAddr;

/// Largest window shift (RFC 7323 2.3).
pub(crate) const MAX_WSCALE: u8 = 14;

/// Stack-wide context handed to a connection for one call.
pub(crate) struct Env<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub stats: &'a mut Stats,
    pub challenge: &'a mut RateLimiter,
    /// In: new data may go as one super-segment of several MSS-sized parts
    /// (see `Stack::poll_transmit_gso`).
    pub gso: bool,
    /// Out: the part size of the super-segment just produced, if it was one.
    pub gso_size: Option<u16>,
}

/// RFC 5961 7: the stack-wide ceiling on challenge ACKs per second. Each
/// second's budget is drawn at random from `[limit/2, 3*limit/2)` (Linux's
/// answer to CVE-2016-5696): a fixed shared counter would let an off-path
/// attacker count the challenge ACKs another connection drew, and so find
/// its sequence numbers. The main limit is per connection (`Conn::challenge_ack`).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    window_start: Option<Instant>,
    remaining: u32,
    rng: crate::rng::Rng,
}

impl RateLimiter {
    pub fn new(seed: u64) -> RateLimiter {
        RateLimiter {
            window_start: None,
            remaining: 0,
            rng: crate::rng::Rng::new(seed),
        }
    }

    /// True if one more challenge ACK may be sent at `now`.
    pub fn allow(&mut self, now: Instant, limit: u32) -> bool {
        if limit == u32::MAX {
            return true;
        }
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            let half = u64::from(limit).div_ceil(2);
            let budget = self.rng.gen_range(half, half + u64::from(limit).max(1));
            self.remaining = u32::try_from(budget).unwrap_or(u32::MAX);
        }
        if self.remaining > 0 {
            self.remaining -= 1;
            true
        } else {
            false
        }
    }
}

/// Application-visible happenings, coalesced per connection as bits.
pub(crate) mod ev {
    pub const CONNECTED: u8 = 1 << 0;
    pub const READABLE: u8 = 1 << 1;
    pub const WRITABLE: u8 = 1 << 2;
    pub const PEER_CLOSED: u8 = 1 << 3;
    pub const RESET: u8 = 1 << 4;
    pub const TIMED_OUT: u8 = 1 << 5;
    pub const CLOSED: u8 = 1 << 6;
    pub const SOFT_ERROR: u8 = 1 << 7;
}

/// Per-connection options (the `SockOpt` values).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub nodelay: bool,
    pub keepalive: bool,
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_probes: u32,
    pub user_timeout: Duration,
    pub ttl: u8,
    pub linger_zero: bool,
    /// IP TOS of IPv4 datagrams (`SockOpt::Tos`); only the DSCP bits are used.
    pub tos: u8,
    /// `SockOpt::QuickAck`: no delayed ACKs while set.
    pub quickack: bool,
    /// How long an orphaned connection may stay in FIN-WAIT-2.
    pub fin_wait2_timeout: Duration,
}

impl Options {
    /// The defaults for a connection; `v6`: the hop limit is
    /// `Config::hop_limit` instead of `Config::ttl`.
    fn from_config(cfg: &Config, v6: bool) -> Self {
        Options {
            nodelay: cfg.nodelay,
            keepalive: cfg.keepalive,
            keepalive_idle: cfg.keepalive_idle,
            keepalive_interval: cfg.keepalive_interval,
            keepalive_probes: cfg.keepalive_probes,
            user_timeout: cfg.user_timeout,
            ttl: if v6 { cfg.hop_limit } else { cfg.ttl },
            linger_zero: false,
            tos: 0,
            quickack: false,
            fin_wait2_timeout: cfg.fin_wait2_timeout,
        }
    }
}

/// What a connection asks the stack to do after processing input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Nothing special.
    Keep,
    /// A passive open completed: move to the listener's accept queue.
    Established,
    /// A SYN arrived in TIME-WAIT that may reopen the connection (RFC 9293
    /// 3.10.7.4 / RFC 6191): the stack ends this connection and hands the
    /// SYN to a listener.
    ReopenFromTimeWait,
}

/// Counters for `TcpInfo`.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnStats {
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
    pub retransmits: u64,
}

/// The transmission control block.
pub(crate) struct Conn {
    pub state: State,
    /// Addresses in the family on the wire: an IPv4 connection has IPv4
    /// addresses here even when an IPv6 socket owns it (`v6_socket`).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// An IPv6 socket owns this IPv4 connection (a dual-stack listener
    /// accepted it, or an IPv6 socket connected to an IPv4-mapped
    /// address): its addresses are reported IPv4-mapped (RFC 4291 2.5.5.2),
    /// as Linux does with `bindv6only=0`.
    pub v6_socket: bool,
    /// IPv6 flow label of this connection's datagrams (RFC 6437: a keyed
    /// hash of the 4-tuple, constant for the connection); unused for IPv4.
    pub flow_label: u32,
    /// The listener of a passive open (to return to on RST in SYN-RECEIVED).
    pub listener: Option<ListenerId>,

    // --- Send sequence space (RFC 9293 3.3.1) ---
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    /// Next sequence number to send (moves back to SND.UNA on a timeout).
    pub snd_nxt: SeqNum,
    /// Highest sequence number sent so far.
    pub snd_max: SeqNum,
    /// Peer's window, in bytes (already scaled).
    pub snd_wnd: usize,
    pub snd_wl1: SeqNum,
    pub snd_wl2: SeqNum,
    /// Largest window the peer ever offered (for RFC 5961 5.2 and SWS).
    pub max_snd_wnd: usize,
    /// Peer's window shift (applied to windows it sends).
    pub snd_wscale: u8,

    // --- Receive sequence space ---
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Right edge of the window last advertised (never moves left: RFC 9293 3.8.6).
    pub rcv_adv: SeqNum,
    /// Our window shift (applied to windows we send).
    pub rcv_wscale: u8,

    // --- Negotiated options ---
    /// MSS the peer can receive (its option, or 536 by default: RFC 9293 3.7.1).
    pub peer_mss: usize,
    /// The largest segment we send and advertise: the link MTU less the
    /// headers (MTU - 40 for IPv4, MTU - 60 for IPv6), or less after path
    /// MTU discovery lowered it.
    pub our_mss: usize,
    /// When path MTU discovery last lowered `our_mss` (RFC 1191, RFC
    /// 8201): ten minutes on, it goes back to the link's, and a router on
    /// a path still too small says so again (RFC 1191 6.3, RFC 8201 5.3).
    pub pmtu_since: Option<Instant>,
    pub ws_enabled: bool,
    pub sack_enabled: bool,
    pub ts_enabled: bool,
    /// Explicit Congestion Notification (RFC 3168).
    pub ecn: Ecn,
    /// TS.Recent (RFC 7323 4.3).
    pub ts_recent: u32,
    pub ts_recent_at: Instant,
    /// Our timestamp clock offset (RFC 7323 5.4: random per connection).
    pub ts_offset: u32,
    /// The ACK value of the last segment we sent (Last.ACK.sent, RFC 7323 4.3).
    pub last_ack_sent: SeqNum,

    // --- Buffers ---
    pub send_buf: Box<dyn SendBuffer>,
    pub recv_buf: Box<dyn RecvBuffer>,
    pub assembler: Assembler,
    /// Sequence number of the peer's FIN if it arrived out of order.
    pub fin_recv_seq: Option<SeqNum>,
    /// Receive auto-tuning: start of the current measurement round, and
    /// in-order bytes received since (dynamic right-sizing).
    pub drs_start: Instant,
    pub drs_bytes: usize,
    pub recv_buffer_max: usize,
    pub send_buffer_max: usize,
    /// The peer's FIN was received in order (remembered after CLOSED for `recv`).
    pub fin_was_received: bool,
    /// The application shut down the write side: FIN follows the queued data.
    pub fin_queued: bool,
    /// Sequence number of our FIN (valid when `fin_queued`).
    pub fin_at: SeqNum,
    /// The application released the handle (`close`): the connection is orphaned.
    pub user_closed: bool,
    /// When our FIN was acknowledged (FIN-WAIT-2 began).
    pub fin_wait2_since: Instant,

    // --- Reliability ---
    pub rtt: RttEstimator,
    /// The most recent RTT sample (for the congestion controller).
    pub last_rtt: Option<Duration>,
    /// Karn-timed segment: (sequence number whose ACK ends the sample, send time).
    pub rtt_seq: Option<(SeqNum, Instant)>,
    pub cc: Box<dyn CongestionController>,
    /// End of the current round trip (for HyStart++ rounds, RFC 9406).
    pub round_end: SeqNum,
    /// Loss recovery (RFC 5681 3.2, RFC 6582, RFC 6675).
    pub recovery: Recovery,
    /// The segments in flight: SACK marks, loss marks, send times (RFC 6675, RFC 8985).
    pub sent: SentLog,
    /// RACK loss detection (RFC 8985 6).
    pub rack: Rack,
    /// The tail loss probe's episode (RFC 8985 7).
    pub tlp: Tlp,
    /// Proportional Rate Reduction (RFC 6937) during SACK recovery.
    pub prr: Prr,
    /// Number of SYN (or SYN-ACK) retransmissions.
    pub syn_retries: u32,
    /// Deadline of the active open.
    pub connect_deadline: Instant,
    /// Since when the oldest unacknowledged data has waited (user timeout).
    pub unacked_since: Option<Instant>,
    /// Keep-alive probes sent without an answer.
    pub keepalive_sent: u32,
    /// Last time a segment arrived (keep-alive idle time).
    pub last_recv: Instant,
    /// Last time we sent data (RFC 5681 4.1 idle restart).
    pub last_send: Instant,
    /// When the oldest segment in flight was first sent: the flight began
    /// (SND.MAX moved off SND.UNA). No RTT sample can be older (RFC 7323 4.3).
    pub flight_start: Instant,
    /// Retransmission timeouts in a row, with no new data acknowledged.
    pub consecutive_rtos: u32,
    /// Persist timer backoff count.
    pub persist_backoff: u32,

    /// Control segments, probes and ACKs owed on the next output, and the
    /// order they go in.
    pub pending: Pending,

    // --- ACK generation ---
    /// The peer's segment size as seen from what arrives (full-sized
    /// segments for the every-second-segment ACK rule).
    pub rcv_mss: RcvMss,
    /// Full-size segments received since our last ACK (RFC 9293 3.8.6.3: ACK every second).
    pub unacked_segments: u32,
    /// A duplicate to report in the next ACK's first SACK block (RFC 2883).
    pub dsack: Option<(SeqNum, SeqNum)>,
    /// Out-of-order blocks, most recently received first: the order the
    /// next ACK reports them in (RFC 2018 4).
    pub sack_recent: crate::wire::SackBlocks,
    /// When this connection last sent a challenge ACK (RFC 5961 7 limit).
    pub last_challenge: Option<Instant>,

    pub timers: Timers,
    pub opts: Options,
    pub error: Option<Error>,
    /// Soft error (ICMP) seen while established; reported only if the connection times out.
    pub soft_error: Option<Error>,
    pub events: u8,
    pub stats: ConnStats,
}

impl Conn {
    /// A connection in CLOSED with the given buffers; `open_active`/`open_passive` set it going.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &Config,
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNum,
        ts_offset: u32,
        send_buf: Box<dyn SendBuffer>,
        recv_buf: Box<dyn RecvBuffer>,
        now: Instant,
    ) -> Conn {
        let our_mss = Conn::our_mss(cfg, remote.is_ipv6());
        let rcv_wscale = Conn::recv_wscale(cfg, recv_buf.capacity());
        let peer_mss = 536;
        Conn {
            state: State::Closed,
            local,
            remote,
            v6_socket: false,
            flow_label: 0,
            listener: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: 0,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            rcv_wscale,
            peer_mss,
            our_mss,
            pmtu_since: None,
            ws_enabled: false,
            sack_enabled: false,
            ts_enabled: false,
            ecn: Ecn::new(iss),
            ts_recent: 0,
            ts_recent_at: now,
            ts_offset,
            last_ack_sent: SeqNum(0),
            send_buf,
            recv_buf,
            assembler: Assembler::new(),
            fin_recv_seq: None,
            fin_was_received: false,
            drs_start: now,
            drs_bytes: 0,
            recv_buffer_max: cfg.recv_buffer_max,
            send_buffer_max: cfg.send_buffer_max,
            fin_queued: false,
            fin_at: iss,
            user_closed: false,
            fin_wait2_since: now,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtt_seq: None,
            last_rtt: None,
            cc: cc::new_controller(
                cfg.congestion_control,
                peer_mss,
                cfg.initial_window_segments,
            ),
            round_end: iss,
            recovery: Recovery::new(iss),
            sent: SentLog::default(),
            rack: Rack::default(),
            tlp: Tlp::default(),
            prr: Prr::default(),
            syn_retries: 0,
            connect_deadline: now + cfg.connect_timeout,
            unacked_since: None,
            keepalive_sent: 0,
            last_recv: now,
            last_send: now,
            flight_start: now,
            consecutive_rtos: 0,
            persist_backoff: 0,
            pending: Pending::default(),
            unacked_segments: 0,
            rcv_mss: RcvMss::default(),
            last_challenge: None,
            dsack: None,
            sack_recent: Default::default(),
            timers: Timers::default(),
            opts: Options::from_config(cfg, remote.is_ipv6()),
            error: None,
            soft_error: None,
            events: 0,
            stats: ConnStats::default(),
        }
    }

    /// The local address as the owning socket reports it (IPv4-mapped for
    /// an IPv6 socket's IPv4 connection, RFC 4291 2.5.5.2).
    pub fn reported_local(&self) -> SocketAddr {
        if self.v6_socket {
            crate::stack::mapped(self.local)
        } else {
            self.local
        }
    }

    /// The peer's address as the owning socket reports it.
    pub fn reported_remote(&self) -> SocketAddr {
        if self.v6_socket {
            crate::stack::mapped(self.remote)
        } else {
            self.remote
        }
    }

    /// The MSS we advertise: the MTU less the IP and TCP headers (RFC
    /// 9293 3.7.1): MTU - 40 for IPv4, MTU - 60 for IPv6 (RFC 8200 8.3),
    /// at least 88 (IPv4) or 1220 (RFC 8200 5: IPv6 links carry 1280).
    pub fn our_mss(cfg: &Config, v6: bool) -> usize {
        if v6 {
            cfg.mtu.saturating_sub(60).clamp(1220, 65535)
        } else {
            cfg.mtu.saturating_sub(40).clamp(88, 65535)
        }
    }

    /// Our window shift for a receive buffer of `recv_capacity` bytes (RFC
    /// 7323 2.3): the smallest that lets the window cover the buffer, with
    /// room for auto-tuning up to the configured cap; 0 without scaling.
    pub fn recv_wscale(cfg: &Config, recv_capacity: usize) -> u8 {
        if !cfg.window_scaling {
            return 0;
        }
        let window_max = recv_capacity.max(cfg.recv_buffer_max);
        let mut shift = 0;
        while shift < MAX_WSCALE && (window_max >> shift) > 65535 {
            shift += 1;
        }
        shift
    }

    /// Active open (RFC 9293 3.10.1): CLOSED -> SYN-SENT.
    pub fn open_active(&mut self) {
        self.set_state(State::SynSent);
        self.pending.syn = true;
    }

    /// Passive open: a SYN reached a listener (RFC 9293 3.10.7.2): -> SYN-RECEIVED.
    pub fn open_passive(&mut self, env: &mut Env, seg: &SegmentIn, listener: ListenerId) {
        self.listener = Some(listener);
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.rcv_adv = self.rcv_nxt;
        self.negotiate(env.cfg, seg);
        // RFC 3168 6.1.1: an ECN-setup SYN has both ECE and CWR.
        self.ecn.enabled = env.cfg.ecn
            && seg.flags.contains(crate::wire::TcpFlags::ECE)
            && seg.flags.contains(crate::wire::TcpFlags::CWR);
        self.update_window_from_syn(seg);
        self.set_state(State::SynReceived);
        self.pending.syn = true;
        self.connect_deadline = env.now + env.cfg.connect_timeout;
        self.last_recv = env.now;
        // Data on a SYN is queued until ESTABLISHED; accept it into the buffer now.
        if !seg.payload.is_empty() {
            self.accept_text(env, seg.seq + 1, seg.payload);
        }
    }

    /// A SYN cookie validated (RFC 4987 3.6): the connection is as if
    /// `syn` (rebuilt from the cookie) had arrived and our SYN-ACK, with
    /// the cookie as ISS, had been sent; the ACK that carried the cookie
    /// goes through `on_segment` next and establishes it.
    pub fn open_from_cookie(&mut self, env: &mut Env, syn: &SegmentIn, listener: ListenerId) {
        self.open_passive(env, syn, listener);
        self.pending.syn = false;
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_nxt;
        self.flight_start = env.now;
    }

    /// RFC 9293 3.10.7.2/3: options of the peer's SYN decide what is used.
    fn negotiate(&mut self, cfg: &Config, seg: &SegmentIn) {
        let o = &seg.options;
        if let Some(mss) = o.mss {
            self.peer_mss = usize::from(mss).max(64);
        }
        // RFC 7323 2.2: scaling only if both sides sent the option on their SYN.
        match o.window_scale {
            Some(shift) if cfg.window_scaling => {
                self.ws_enabled = true;
                // RFC 7323 2.3: a shift above 14 is used as 14.
                self.snd_wscale = shift.min(MAX_WSCALE);
            }
            _ => {
                self.ws_enabled = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_enabled = cfg.sack && o.sack_permitted;
        // RFC 7323 3.2: timestamps only if both SYNs carried them.
        if let (Some((tsval, _)), true) = (o.timestamps, cfg.timestamps) {
            self.ts_enabled = true;
            self.ts_recent = tsval;
            self.ts_recent_at = seg.now;
        } else {
            self.ts_enabled = false;
        }
        self.cc.set_mss(self.send_mss());
        self.rcv_mss = RcvMss::init(self.send_mss(), self.our_mss, self.recv_buf.capacity());
    }

    fn update_window_from_syn(&mut self, seg: &SegmentIn) {
        // RFC 7323 2.2: the window field of a SYN is never scaled.
        self.snd_wnd = usize::from(seg.window);
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
    }

    /// Replaces the congestion controller (TCP_CONGESTION). The new one
    /// starts from the current window and slow-start threshold.
    pub fn set_congestion_control(&mut self, kind: crate::CongestionControl, iw: u32) {
        let mut cc = cc::new_controller(kind, self.send_mss(), iw);
        if self.stats.bytes_acked > 0 {
            cc.set_window(self.cc.window());
        }
        self.cc = cc;
    }

    /// In fast recovery, or retransmitting after a timeout (RFC 8985 6.2 step 4).
    pub fn in_recovery(&self) -> bool {
        self.recovery.recover.is_some() || self.snd_una.diff(self.recovery.high) < 0
    }

    /// RFC 8985 6.2 step 4: the reordering window now.
    pub fn reo_wnd(&self) -> Duration {
        self.rack.reo_wnd(
            self.in_recovery(),
            self.sent.sacked_segments(),
            self.rtt.srtt(),
        )
    }

    /// RFC 8985 6.2 step 5 and 6.3: marks the segments RACK deems lost and
    /// arms the reordering timer for those not yet overdue. Returns whether
    /// any was newly marked.
    pub fn rack_detect_loss(&mut self, now: Instant) -> bool {
        if !self.sack_enabled {
            return false;
        }
        let reo_wnd = self.reo_wnd();
        let (lost, timeout) = self.rack.detect_loss(&mut self.sent, now, reo_wnd);
        match timeout {
            Some(at) => self.timers.set(Timer::Reorder, at),
            None => self.timers.clear(Timer::Reorder),
        }
        lost
    }

    /// RFC 6937 3: on each ACK in recovery, how much may be sent.
    pub fn prr_on_ack(&mut self, delivered: usize) {
        let pipe = self.pipe();
        let ssthresh = self.cc.ssthresh();
        let mss = self.send_mss();
        self.prr.on_ack(delivered, pipe, ssthresh, mss);
    }

    /// Accounts `n` bytes sent during recovery.
    pub fn prr_sent(&mut self, n: usize) {
        if self.recovery.recover.is_some() {
            self.prr.on_sent(n);
        }
    }

    /// RFC 6675 SetPipe, with RACK's loss marks for IsLost (RFC 8985 9.1):
    /// the bytes sent and neither SACKed nor deemed lost. A retransmission
    /// clears its segment's mark, so it counts again once.
    pub fn pipe(&self) -> usize {
        self.flight_size()
            .saturating_sub(self.sent.sacked_bytes() + self.sent.lost_bytes())
    }

    /// RFC 8985 7.2: schedule a probe timeout 2*SRTT after new data or a
    /// new ACK, if SACK is on, nothing is in recovery, no probe is out, and
    /// it falls before the retransmission timeout.
    pub fn arm_tlp(&mut self, now: Instant) {
        self.timers.clear(Timer::Probe);
        if !self.sack_enabled
            || self.recovery.recover.is_some()
            || self.tlp.high.is_some()
            || self.snd_max == self.snd_una
            || !self.state.is_synchronized()
            || self.state == State::TimeWait
        {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let mut pto = (srtt * 2).max(Duration::from_millis(2));
        if self.flight_size() <= self.send_mss() {
            // WCDelAckT: the receiver may delay the ACK of a lone segment.
            pto += Duration::from_millis(200);
        }
        let at = now + pto;
        if self
            .timers
            .get(Timer::Retransmit)
            .is_some_and(|rto| at >= rto)
        {
            return;
        }
        self.timers.set(Timer::Probe, at);
    }

    /// Bytes of TCP options on a data segment (timestamps), for the MSS budget.
    pub fn data_options_len(&self) -> usize {
        if self.ts_enabled {
            12
        } else {
            0
        }
    }

    /// Largest payload per segment: the peer's MSS, our MTU, minus options
    /// (RFC 9293 3.7.1: the MSS does not count TCP options).
    pub fn send_mss(&self) -> usize {
        self.peer_mss
            .min(self.our_mss)
            .saturating_sub(self.data_options_len())
            .max(1)
    }

    pub fn set_state(&mut self, to: State) {
        if self.state != to {
            self.state = to;
        }
    }

    pub fn raise(&mut self, bits: u8) {
        self.events |= bits;
    }

    /// True while the SYN we sent is unacknowledged (it occupies one sequence number).
    pub fn syn_unacked(&self) -> bool {
        matches!(self.state, State::SynSent | State::SynReceived)
    }

    /// Sequence number of the first byte in the send buffer.
    pub fn data_start(&self) -> SeqNum {
        self.snd_una + usize::from(self.syn_unacked())
    }

    /// Sequence number our FIN occupies (if queued).
    pub fn fin_seq(&self) -> SeqNum {
        self.fin_at
    }

    /// Our FIN has been sent at least once.
    pub fn fin_sent(&self) -> bool {
        self.fin_queued && self.snd_max.diff(self.fin_seq()) > 0
    }

    /// Our FIN has been acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una.diff(self.fin_seq()) > 0
    }

    /// Bytes sent and not yet acknowledged.
    pub fn flight_size(&self) -> usize {
        self.snd_max.since(self.snd_una)
    }

    /// The FlightSize a congestion response halves (RFC 5681 3.1 eq. 4,
    /// RFC 9438 4.6): bytes outstanding, but never above cwnd. Above SND.UNA
    /// a hole can hold back a cumulative ACK while the peer SACKs far past
    /// it; counting those SACKed bytes would set ssthresh above the window
    /// that caused the loss (Linux bases ssthresh on cwnd for that reason).
    pub fn congestion_flight(&self) -> usize {
        self.flight_size().min(self.cc.window())
    }

    /// Our TSval at `now` (RFC 7323 5.4: 1 ms ticks).
    pub fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The window to advertise now, in bytes, honouring receiver-side silly
    /// window avoidance (RFC 9293 3.8.6.2.2) and never shrinking the right
    /// edge already offered (RFC 9293 3.8.6).
    pub fn recv_window(&self) -> usize {
        let max = 65535usize << self.rcv_wscale;
        let free = self.recv_buf.free().min(max);
        let offered = self.rcv_adv.since(self.rcv_nxt);
        if free <= offered {
            return offered;
        }
        // Open the window only by a worthwhile amount: min(half the buffer, one MSS).
        let threshold = (self.recv_buf.capacity() / 2).min(self.our_mss).max(1);
        if free - offered >= threshold {
            free
        } else {
            offered
        }
    }

    /// Receive buffer auto-tuning (dynamic right-sizing, as Linux does):
    /// once per round trip, if the peer delivered more than half the
    /// buffer in that round, grow the buffer toward twice that amount so
    /// the window never limits a sender filling the path.
    pub fn autotune(&mut self, now: Instant, delivered: usize) {
        self.drs_bytes += delivered;
        let rtt = self
            .rtt
            .srtt()
            .unwrap_or(Duration::from_millis(100))
            .max(Duration::from_micros(100));
        if now < self.drs_start + rtt {
            return;
        }
        let cap = self.recv_buf.capacity();
        let want = (self.drs_bytes * 4).min(self.recv_buffer_max);
        if self.drs_bytes * 2 > cap && want > cap && self.recv_buf.grow(want) {
            self.pending.ack = true;
        }
        self.drs_start = now;
        self.drs_bytes = 0;
    }

    /// Send buffer auto-sizing (as Linux's `tcp_sndbuf_expand`): when the
    /// application had filled the buffer, let it hold twice the congestion
    /// window, so a full window can be in flight while the next is queued.
    /// Grows at least twofold at a time; bounded by `send_buffer_max`.
    pub fn size_send_buffer(&mut self, was_full: bool) {
        let cap = self.send_buf.capacity();
        let want = self.cc.window().saturating_mul(2).min(self.send_buffer_max);
        if was_full && want > cap {
            let new = cap.saturating_mul(2).clamp(want, self.send_buffer_max);
            if self.send_buf.grow(new) {
                self.raise(ev::WRITABLE);
            }
        }
    }

    /// The application read or the buffer grew: decide whether a window update is due.
    pub fn on_app_read(&mut self) {
        if !self.state.is_synchronized() && self.state != State::SynReceived {
            return;
        }
        let offered = self.rcv_adv.since(self.rcv_nxt);
        let wnd = self.recv_window();
        // RFC 9293 3.8.6.2.2 / RFC 1122 4.2.3.3: update once the window grew
        // by a full segment or half the buffer; always when it was closed.
        if wnd > offered {
            let grow = wnd - offered;
            if offered < self.our_mss
                || grow >= (self.recv_buf.capacity() / 2).min(2 * self.our_mss)
            {
                self.pending.ack = true;
            }
        }
    }

    // ---------------- Application calls ----------------

    pub fn send(&mut self, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.state.can_send() || self.fin_queued {
            return Err(match self.state {
                State::Closed => Error::NotConnected,
                _ => Error::BrokenPipe,
            });
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send_buf.enqueue(data);
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        Ok(n)
    }

    pub fn recv(&mut self, buf: &mut [u8], consume: bool) -> Result<usize, Error> {
        if !self.recv_buf.is_empty() && !buf.is_empty() {
            let n = if consume {
                self.recv_buf.read(buf)
            } else {
                self.recv_buf.peek(buf)
            };
            if consume {
                self.on_app_read();
            }
            return Ok(n);
        }
        // The peer's FIN came before any error: the stream ended first, and
        // reads say so (Linux checks SOCK_DONE before sk_err in tcp_recvmsg).
        if self.fin_was_received && self.state == State::Closed {
            return Ok(0);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.peer_fin_received() {
            return Ok(0);
        }
        match self.state {
            State::Closed => Err(Error::NotConnected),
            _ if buf.is_empty() => Ok(0),
            _ => Err(Error::WouldBlock),
        }
    }

    /// The peer's FIN has been received (in order).
    pub fn peer_fin_received(&self) -> bool {
        matches!(
            self.state,
            State::CloseWait | State::Closing | State::LastAck | State::TimeWait
        ) || (self.state == State::Closed && self.error.is_none() && self.fin_was_received)
    }

    /// Half-close (RFC 9293 3.10.4 CLOSE on the send side).
    pub fn shutdown(&mut self) -> Result<(), Error> {
        match self.state {
            State::Closed | State::Listen => Err(Error::NotConnected),
            State::SynSent => {
                // Nothing sent yet worth a FIN: RFC 9293 3.10.4 SYN-SENT: delete the TCB.
                self.fin_queued = true;
                self.enter_closed(None);
                Ok(())
            }
            State::SynReceived | State::Established | State::CloseWait => {
                if !self.fin_queued {
                    self.fin_queued = true;
                    self.fin_at = self.data_start() + self.send_buf.len();
                    // RFC 9293 3.10.4: enter FIN-WAIT-1 (or LAST-ACK from
                    // CLOSE-WAIT) now; the FIN follows the queued data. From
                    // SYN-RECEIVED this happens once ESTABLISHED.
                    match self.state {
                        State::Established => self.set_state(State::FinWait1),
                        State::CloseWait => self.set_state(State::LastAck),
                        _ => {}
                    }
                }
                Ok(())
            }
            // Already closing: nothing to do.
            _ => Ok(()),
        }
    }

    /// `SockOpt::QuickAck`. Setting it sends an ACK the delayed-ACK timer
    /// holds at once (Linux `tcp_setsockopt(TCP_QUICKACK)` does the same
    /// through `__tcp_cleanup_rbuf()`).
    pub fn set_quickack(&mut self, on: bool) {
        self.opts.quickack = on;
        if on && self.timers.is_set(Timer::DelayedAck) {
            self.timers.clear(Timer::DelayedAck);
            self.pending.ack = true;
        }
    }

    /// The application released the connection.
    pub fn close(&mut self) {
        self.user_closed = true;
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.enter_closed(None),
            _ => {
                // RFC 2525 2.17 (and SO_LINGER 0): unread data means the peer
                // would never learn it was lost: reset instead of FIN.
                if !self.recv_buf.is_empty() || self.opts.linger_zero {
                    self.abort(Error::ConnectionAborted);
                    self.error = None;
                } else {
                    let _ = self.shutdown();
                    if self.state == State::FinWait2 {
                        // Our FIN was acknowledged before the handle went:
                        // the orphan must not wait for the peer's FIN for
                        // ever either (Linux `tcp_close()`, `tcp_fin_timeout`).
                        let at = self.fin_wait2_since + self.opts.fin_wait2_timeout;
                        self.timers.set(Timer::Close, at);
                    }
                }
            }
        }
    }

    /// `close` with a non-zero `SO_LINGER`: a graceful close whose data
    /// (and FIN) must be acknowledged by `deadline`, or the connection is
    /// reset then (see [`Timer::Linger`]).
    pub fn close_linger(&mut self, deadline: Instant) {
        self.close();
        if !matches!(self.state, State::Closed | State::TimeWait) {
            self.timers.set(Timer::Linger, deadline);
        }
    }

    /// Data or a FIN sent or queued and not yet acknowledged.
    pub fn has_unacked(&self) -> bool {
        self.snd_una != self.snd_max || !self.send_buf.is_empty()
    }

    /// RFC 9293 3.10.5 ABORT: RST in synchronized (and SYN-RECEIVED) states.
    pub fn abort(&mut self, err: Error) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            self.pending.rst = true;
        }
        self.enter_closed(Some(err));
    }

    /// Moves to CLOSED, stops every timer, records the error.
    pub fn enter_closed(&mut self, err: Option<Error>) {
        if self.state == State::Closed {
            return;
        }
        if self.peer_fin_received() {
            self.fin_was_received = true;
        }
        self.set_state(State::Closed);
        self.timers.clear_all();
        self.pending.cancel_on_close();
        if let Some(e) = err {
            self.error = Some(e);
            match e {
                Error::ConnectionReset | Error::ConnectionRefused => self.raise(ev::RESET),
                Error::TimedOut | Error::HostUnreachable => self.raise(ev::TIMED_OUT),
                _ => {}
            }
        }
        self.raise(ev::CLOSED | ev::READABLE | ev::WRITABLE);
    }

    /// RFC 6298 5.1 (and RFC 2018 8): while data is unacknowledged, a
    /// retransmission timer runs (or the persist timer, while the peer's
    /// window is shut). Checked after every call in debug builds.
    pub fn retransmission_timer_invariant(&self) -> bool {
        let unacked = self.snd_una != self.snd_max
            && self.state.is_synchronized()
            && self.state != State::TimeWait;
        // (A window probe due on the next output re-arms the persist timer.)
        !unacked
            || self.timers.is_set(Timer::Retransmit)
            || self.timers.is_set(Timer::Persist)
            || self.pending.window_probe
    }

    pub fn info(&self) -> TcpInfo {
        TcpInfo {
            state: self.state,
            local: self.reported_local(),
            remote: self.reported_remote(),
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            cwnd: self.cc.window(),
            ssthresh: self.cc.ssthresh(),
            mss: self.send_mss(),
            rcv_mss: self.rcv_mss.get(),
            send_window: self.snd_wnd,
            recv_window: self.rcv_adv.since(self.rcv_nxt),
            bytes_sent: self.stats.bytes_sent,
            bytes_acked: self.stats.bytes_acked,
            bytes_received: self.stats.bytes_received,
            segments_sent: self.stats.segments_sent,
            segments_received: self.stats.segments_received,
            retransmits: self.stats.retransmits,
            in_flight: self.flight_size(),
            window_scaling: self.ws_enabled,
            timestamps: self.ts_enabled,
            sack: self.sack_enabled,
            send_buffer: self.send_buf.capacity(),
            recv_buffer: self.recv_buf.capacity(),
        }
    }
}
