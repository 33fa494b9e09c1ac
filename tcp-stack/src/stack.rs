//! The [`Stack`]: demultiplexing, sockets, timers and events.

use crate::buffer::{BufferFactory, RecvBuffer, SendBuffer};
use crate::config::Config;
use crate::error::Result;
use crate::state::{ConnId, Event, ListenerId, State};
use crate::time::{Duration, Instant};
use std::net::SocketAddrV4;

/// Counters of what the stack did with its input and output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Dropped: not IPv4, bad header, truncated.
    pub drop_malformed: u64,
    /// Dropped: IPv4 header or TCP/ICMP checksum wrong.
    pub drop_checksum: u64,
    /// Dropped: IPv4 fragments (not reassembled).
    pub drop_fragment: u64,
    /// Dropped: not addressed to one of our addresses.
    pub drop_not_ours: u64,
    /// Dropped: protocol other than TCP/ICMP.
    pub drop_protocol: u64,
    /// Dropped: segment rejected by a connection (unacceptable, PAWS, ...).
    pub drop_segment: u64,
    /// SYNs dropped because a listen queue was full.
    pub drop_listen_overflow: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub challenge_acks: u64,
    pub challenge_acks_suppressed: u64,
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub rto_expirations: u64,
    pub icmp_in: u64,
    pub icmp_echo_replies: u64,
    pub connections_opened: u64,
    pub connections_accepted: u64,
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
}

/// A TCP/IPv4 endpoint: all connections and listeners of one or more local addresses.
///
/// Drive it by feeding packets ([`handle_packet`](Stack::handle_packet)) and
/// timeouts ([`handle_timeout`](Stack::handle_timeout)), and draining output
/// ([`poll_transmit`](Stack::poll_transmit)) and events
/// ([`poll_event`](Stack::poll_event)). After any `handle_*` or socket call,
/// drain `poll_transmit` until `None`, then sleep until `poll_timeout`.
pub struct Stack {
    _todo: (),
}

#[allow(unused_variables)]
impl Stack {
    /// Creates a stack. Nothing is sent until a socket call or packet arrives.
    pub fn new(config: Config) -> Stack {
        todo!()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        todo!()
    }

    /// Replaces the factory that supplies buffers for new connections.
    pub fn set_buffer_factory(&mut self, factory: Box<dyn BufferFactory>) {
        todo!()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        todo!()
    }

    /// Processes one IPv4 datagram. Bad input is dropped and counted in [`Stats`].
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        todo!()
    }

    /// Writes the next IPv4 datagram due into `buf` (at least `mtu` bytes
    /// recommended) and returns its length, or `None` if nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        todo!()
    }

    /// The earliest instant at which [`handle_timeout`](Stack::handle_timeout) must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        todo!()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!()
    }

    /// Next application-visible event.
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }

    /// Opens a listening socket (passive open). Port 0 picks an ephemeral port.
    pub fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> Result<ListenerId> {
        todo!()
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: ListenerId) -> Option<ConnId> {
        todo!()
    }

    /// Closes a listener; connections not yet accepted are reset.
    pub fn close_listener(&mut self, listener: ListenerId) {
        todo!()
    }

    /// The address a listener is bound to.
    pub fn listener_addr(&self, listener: ListenerId) -> Option<SocketAddrV4> {
        todo!()
    }

    /// Active open: sends a SYN. `local` None (or port 0) picks an address and ephemeral port.
    pub fn connect(
        &mut self,
        now: Instant,
        local: Option<SocketAddrV4>,
        remote: SocketAddrV4,
    ) -> Result<ConnId> {
        todo!()
    }

    /// Queues bytes for sending; returns how many were taken (`WouldBlock` if none fit).
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize> {
        todo!()
    }

    /// Reads received bytes; `Ok(0)` is the end of stream (the peer's FIN),
    /// `WouldBlock` means nothing yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize> {
        todo!()
    }

    /// Like `recv` without consuming.
    pub fn peek(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize> {
        todo!()
    }

    /// Half-close: a FIN is sent after the queued data; receiving continues.
    pub fn shutdown(&mut self, conn: ConnId) -> Result<()> {
        todo!()
    }

    /// Closes the connection and releases the handle. With unread data, or
    /// linger zero, sends RST (RFC 2525 2.17); otherwise a graceful close
    /// (FIN after queued data) continues in the background.
    pub fn close(&mut self, conn: ConnId) -> Result<()> {
        todo!()
    }

    /// Sends RST and drops the connection at once; the handle stays valid
    /// (state CLOSED) until `close`.
    pub fn abort(&mut self, conn: ConnId) -> Result<()> {
        todo!()
    }

    /// The connection's state; `Closed` for unknown or released handles.
    pub fn state(&self, conn: ConnId) -> State {
        todo!()
    }

    /// The error that ended the connection (reset, refused, timed out), if any.
    pub fn error(&self, conn: ConnId) -> Option<crate::Error> {
        todo!()
    }

    pub fn local_addr(&self, conn: ConnId) -> Option<SocketAddrV4> {
        todo!()
    }

    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddrV4> {
        todo!()
    }

    /// Sets a per-connection option.
    pub fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<()> {
        todo!()
    }

    /// Snapshot of connection internals.
    pub fn info(&self, conn: ConnId) -> Option<TcpInfo> {
        todo!()
    }

    /// The application appended to the connection's send buffer directly
    /// (shared-buffer front ends): schedule transmission.
    pub fn notify_send(&mut self, conn: ConnId) {
        todo!()
    }

    /// The application consumed from the receive buffer directly: the window
    /// may need an update.
    pub fn notify_recv(&mut self, conn: ConnId) {
        todo!()
    }

    /// The connection's send buffer (e.g. to downcast to a front end's type).
    pub fn send_buffer(&self, conn: ConnId) -> Option<&dyn SendBuffer> {
        todo!()
    }

    /// The connection's receive buffer.
    pub fn recv_buffer(&self, conn: ConnId) -> Option<&dyn RecvBuffer> {
        todo!()
    }
}
