//! The background task that owns the device and the `tcp_stack::Stack`.
//!
//! One round of [`Driver::poll_drive`]:
//! 1. control commands from handles (bounded batch);
//! 2. the dirty queue: `notify_send` / `notify_recv` for connections whose
//!    rings the application touched (bounded batch);
//! 3. up to [`RECV_BATCH`] packets from the device into `handle_packet`
//!    (commands queued meanwhile are taken before each packet);
//! 4. `handle_timeout` (only a peek at the timer heap when nothing is due);
//! 5. `poll_event` until empty, waking the application tasks;
//! 6. `poll_transmit` into a batch of up to [`DEVICE_BATCH`] datagrams,
//!    handed to the device at once (`Device::poll_send_batch`), until the
//!    core has nothing, the device is full (what it did not take is kept
//!    and retried when it has room) or [`SEND_BATCH`] packets went out;
//! 7. re-arm the sleep if the core's deadline moved earlier or the sleep
//!    fired (a later deadline keeps the earlier sleep: one empty round);
//! 8. every [`RING_SWEEP`], while some connection's rings hold storage, the
//!    ring sweep (see [`Driver::sweep_rings`]).
//!
//! A round that hit a batch bound, or whose sleep already elapsed, is
//! followed by another; after [`MAX_ROUNDS`] the task wakes itself and
//! yields, so the runtime (and other connections' application tasks) get a
//! turn even under a flood.

use crate::device::{Device, RxChecksum, RxPacket, TxPacket};
use crate::factory::{Halves, RingFactory};
use crate::shared::{
    CachedOpts, ListenerShared, Shared, ABORTED, CLOSED, CONNECTED, DIRTY_RECV, DIRTY_SEND,
    PEER_FIN, WRITE_SHUT,
};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tcp_stack::{
    Config, ConnId, Event, ListenerId, ListenerInfo, NeighbourInfo, SockOpt, State, Stats, TcpInfo,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;
use tracing::{debug, debug_span, trace, warn, Span};

/// Packets read from the device per round.
const RECV_BATCH: usize = 64;
/// Packets written to the device per round.
const SEND_BATCH: usize = 128;
/// Packets handed to the device per `poll_send_batch` call (one
/// `sendmmsg(2)` on a packet socket).
const DEVICE_BATCH: usize = 32;
/// Commands and dirty notifications handled per round.
const CMD_BATCH: usize = 256;
/// Rounds per poll before yielding to the runtime.
const MAX_ROUNDS: usize = 8;
/// Largest datagram accepted from a device.
const RX_BUF: usize = 65536;
/// Unclaimed ring halves tolerated before the first sweep.
const PRUNE_MIN: usize = 64;
/// Period of the ring sweep: a ring's storage is freed once the ring stayed
/// empty, with no new bytes, from one sweep to the next (so after 200 to
/// 400 ms of idleness).
pub(crate) const RING_SWEEP: Duration = Duration::from_millis(200);

/// Socket options given at creation (by `TcpSocket`), `None` = stack default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SocketOpts {
    pub(crate) send_buffer: Option<usize>,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) nodelay: Option<bool>,
    pub(crate) keepalive: Option<bool>,
    pub(crate) ttl: Option<u8>,
    pub(crate) linger: Option<Duration>,
    /// `IPV6_V6ONLY`: an IPv6 listener on `[::]` takes no IPv4.
    pub(crate) only_v6: bool,
    /// `SO_REUSEPORT` (listeners).
    pub(crate) reuseport: bool,
    /// `IP_TOS` of IPv4 datagrams.
    pub(crate) tos: Option<u8>,
}

/// Rare control operations, sent by handles on the command channel.
pub(crate) enum Command {
    Connect {
        local: Option<SocketAddr>,
        remote: SocketAddr,
        opts: SocketOpts,
        reply: oneshot::Sender<io::Result<Arc<Shared>>>,
    },
    /// Create the core listener of a handle `listen` already made (its
    /// address reserved in the bind table, so the core accepts it).
    Listen {
        listener: Arc<ListenerShared>,
        opts: SocketOpts,
    },
    /// The application took from the accept queue: move more from the core,
    /// and tell it how many still wait.
    Refill(Arc<ListenerShared>),
    CloseListener(Arc<ListenerShared>),
    /// Queue a FIN after the data already written.
    Shutdown(ConnId),
    /// The application dropped its last handle of the connection.
    Close(ConnId),
    SetOption(ConnId, SockOpt),
    Info(ConnId, oneshot::Sender<Option<TcpInfo>>),
    Stats(oneshot::Sender<Stats>),
    Connections(oneshot::Sender<Vec<TcpInfo>>),
    Listeners(oneshot::Sender<Vec<ListenerInfo>>),
    Neighbours(oneshot::Sender<Vec<NeighbourInfo>>),
    /// Stop the driver. `grace: Some(t)`: first close every listener, send
    /// a FIN on every connection and wait up to `t` for them to finish;
    /// `None` (or the wait running out): reset them all.
    Stop {
        grace: Option<Duration>,
        reply: oneshot::Sender<()>,
    },
}

/// What the driver knows about a connection the application holds.
struct Entry {
    shared: Arc<Shared>,
    /// Last state seen, for the state-transition trace.
    state: State,
    /// The connection's `tcp_conn` span, only when it was enabled: a disabled
    /// `Span` still takes 40 bytes in every map slot.
    span: Option<Box<Span>>,
    /// In [`Driver::watched`]: its rings may hold storage.
    watched: bool,
}

/// Stands in for the span of a connection opened while it was disabled.
static NO_SPAN: Span = Span::none();

impl Entry {
    fn span(&self) -> &Span {
        self.span.as_deref().unwrap_or(&NO_SPAN)
    }
}

pub(crate) struct Driver<D> {
    device: D,
    stack: tcp_stack::Stack,
    config: Config,
    base: tokio::time::Instant,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    dirty_rx: mpsc::UnboundedReceiver<ConnId>,
    dirty_tx: mpsc::UnboundedSender<ConnId>,
    halves: Halves,
    conns: HashMap<ConnId, Entry>,
    listeners: HashMap<ListenerId, Arc<ListenerShared>>,
    rx_buf: Vec<u8>,
    /// Datagrams the core made and the device has not taken yet.
    tx: TxBatch,
    /// The device takes super-packets: the batch's slots are sized for
    /// them and the core may make them.
    gso: bool,
    /// The device's receive metadata is used (checksums it vouches for).
    rx_meta: bool,
    sleep: Pin<Box<Sleep>>,
    /// The time (whole milliseconds) `sleep` is armed for; may be earlier
    /// than the core's deadline, see [`Driver::poll_timer`].
    armed: Option<tcp_stack::Instant>,
    /// Sweep unclaimed ring halves once the factory holds more than this.
    prune_at: usize,
    /// Connections whose rings may hold storage, for the ring sweep.
    watched: Vec<ConnId>,
    /// Fires the next ring sweep; armed while `watched` is not empty.
    sweep: Pin<Box<Sleep>>,
    sweep_armed: bool,
    recv_failed: bool,
    /// Every handle is gone: the driver runs until the graceful closes in
    /// progress are done, then stops.
    orphaned: bool,
    stopping: bool,
    /// A graceful stop is under way: the connections were sent a FIN, the
    /// driver stops once they are done, or resets them when this fires.
    draining: Option<Pin<Box<Sleep>>>,
    stop_replies: Vec<oneshot::Sender<()>>,
}

impl<D: Device> Driver<D> {
    /// A driver for `device`; with `offloads`, the device's offloads (if
    /// any) are used: super-packets out, trusted checksums in.
    pub(crate) fn new(
        device: D,
        config: Config,
        offloads: bool,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let caps = if offloads {
            device.offloads()
        } else {
            Default::default()
        };
        let gso = caps.tso_max > config.mtu;
        // `config.mtu` and the offload limits are IP sizes; frames of an
        // Ethernet device carry the link header on top, which the core
        // writes and strips: the driver only makes room for it.
        let link = device.medium().header_len();
        // One batch per driver, whatever the number of connections.
        let tx_max = link
            + if gso {
                caps.tso_max.min(usize::from(u16::MAX))
            } else {
                config.mtu.max(576)
            };
        let mut stack = tcp_stack::Stack::new(config.clone());
        let halves = Halves::default();
        stack.set_buffer_factory(Box::new(RingFactory {
            halves: halves.clone(),
        }));
        let (dirty_tx, dirty_rx) = mpsc::unbounded_channel();
        let base = tokio::time::Instant::now();
        Driver {
            device,
            stack,
            tx: TxBatch::new(tx_max, link + config.mtu.max(576)),
            gso,
            rx_meta: caps.rx_max > 0,
            config,
            base,
            cmd_rx,
            dirty_rx,
            dirty_tx,
            halves,
            conns: HashMap::new(),
            listeners: HashMap::new(),
            rx_buf: vec![0; RX_BUF + link],
            sleep: Box::pin(tokio::time::sleep_until(base)),
            armed: None,
            prune_at: PRUNE_MIN,
            watched: Vec::new(),
            sweep: Box::pin(tokio::time::sleep_until(base)),
            sweep_armed: false,
            recv_failed: false,
            orphaned: false,
            stopping: false,
            draining: None,
            stop_replies: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        debug!(addrs = ?self.config.addrs, mtu = self.config.mtu, gso = self.gso, rx_meta = self.rx_meta, "tcp driver started");
        std::future::poll_fn(|cx| self.poll_drive(cx)).await;
        // Dropping `self` fails every socket (see `Drop`).
    }

    fn now(&self) -> tcp_stack::Instant {
        let elapsed = self.base.elapsed().as_micros();
        tcp_stack::Instant::from_micros(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_ROUNDS {
            // One clock read per round: the round takes microseconds.
            let now = self.now();
            let mut more = self.poll_commands(cx);
            more |= self.poll_dirty(cx);
            more |= self.poll_device(cx, now);
            // Cheap when nothing is due: it only peeks at the timer heap.
            self.stack.handle_timeout(now);
            self.drain_events();
            self.poll_drain_deadline(cx);
            more |= self.flush(cx, now);
            self.poll_sweep(cx);
            self.trace_states();
            let closing = self.orphaned || self.draining.is_some();
            if self.stopping || (closing && !more && self.closes_done()) {
                return Poll::Ready(());
            }
            let timer_due = self.poll_timer(cx, now);
            if !more && !timer_due {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Handles queued commands; true if the batch bound was hit.
    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        if self.orphaned {
            return false;
        }
        for _ in 0..CMD_BATCH {
            match self.cmd_rx.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => self.handle_command(cmd),
                Poll::Ready(None) => {
                    // The `Close` of every socket came before this.
                    debug!(
                        closing = self.stack.active_connection_count(),
                        "last handle dropped: the tcp driver stops once the closes in progress are done"
                    );
                    self.orphaned = true;
                    return false;
                }
                Poll::Pending => return false,
            }
            if self.stopping {
                return false;
            }
        }
        true
    }

    /// Every handle is gone (`orphaned`), or a graceful stop is under way
    /// (`draining`): whether the driver may stop.
    ///
    /// Linux keeps delivering after `close()` without linger: a graceful
    /// close in progress keeps the driver running until the core is done
    /// with it (FIN acknowledged and the peer's FIN in, or the FIN-WAIT-2,
    /// retransmission or user timeout ended it), and the last packets due
    /// (RSTs included) went out. TIME-WAIT does not keep it.
    fn closes_done(&self) -> bool {
        self.tx.is_empty() && self.stack.active_connection_count() == 0
    }

    /// Tells the core about ring updates; true if the batch bound was hit.
    fn poll_dirty(&mut self, cx: &mut Context<'_>) -> bool {
        for _ in 0..CMD_BATCH {
            match self.dirty_rx.poll_recv(cx) {
                Poll::Ready(Some(id)) => {
                    let Some(entry) = self.conns.get(&id) else {
                        continue;
                    };
                    let bits = entry.shared.take_dirty();
                    if bits & DIRTY_SEND != 0 {
                        self.stack.notify_send(id);
                    }
                    if bits & DIRTY_RECV != 0 {
                        self.stack.notify_recv(id);
                    }
                    // The application wrote (allocating send storage, maybe)
                    // or read.
                    self.watch(id);
                }
                // The driver holds a sender itself, so `None` cannot happen.
                Poll::Ready(None) | Poll::Pending => return false,
            }
        }
        true
    }

    /// Feeds device packets to the core, taking the commands queued
    /// meanwhile before each packet; true if a batch bound was hit.
    fn poll_device(&mut self, cx: &mut Context<'_>, now: tcp_stack::Instant) -> bool {
        if self.recv_failed {
            return false;
        }
        let mut received = 0;
        let mut more = true;
        // The command batch bound was hit while taking commands early.
        let mut commands_left = false;
        while more {
            if received == RECV_BATCH {
                break;
            }
            let polled = if self.rx_meta {
                self.device.poll_recv_meta(cx, &mut self.rx_buf)
            } else {
                self.device
                    .poll_recv(cx, &mut self.rx_buf)
                    .map_ok(|len| RxPacket {
                        len,
                        checksum: RxChecksum::Unverified,
                    })
            };
            match polled {
                Poll::Ready(Ok(RxPacket { len: 0, .. })) => {}
                Poll::Ready(Ok(RxPacket { len: n, checksum })) => {
                    received += 1;
                    // Commands sent before this packet came are taken
                    // first: a `listen()` that returned before a peer's
                    // SYN was sent must find that SYN (RFC 9293 3.10.1, as
                    // Linux's `listen()` returns in LISTEN). The packet's
                    // arrival orders them: the command was queued before
                    // the SYN was written to the device we read it from.
                    if !self.cmd_rx.is_empty() {
                        commands_left |= self.poll_commands(cx);
                        if self.stopping {
                            return false;
                        }
                    }
                    let n = n.min(self.rx_buf.len());
                    let meta = tcp_stack::RxMeta {
                        checksum_verified: checksum.is_trusted(),
                    };
                    self.stack.handle_packet_meta(now, &self.rx_buf[..n], meta);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    warn!(error = %e, "device receive failed; no longer receiving");
                    self.recv_failed = true;
                    more = false;
                }
                Poll::Pending => more = false,
            }
        }
        if received > 0 {
            self.maybe_prune();
        }
        more || commands_left
    }

    /// Drops the ring halves of connections that died before they were
    /// accepted. The core removes those silently (no event for connections
    /// nobody holds), so the driver sweeps the factory's map whenever it has
    /// doubled since the last sweep: amortized O(1) per connection.
    fn maybe_prune(&mut self) {
        if self.halves.len() > self.prune_at {
            self.prune();
        }
    }

    fn prune(&mut self) {
        let stack = &self.stack;
        let conns = &self.conns;
        self.halves
            .retain(|id| conns.contains_key(&id) || stack.state(id) != State::Closed);
        self.prune_at = (self.halves.len() * 2).max(PRUNE_MIN);
    }

    /// Sends what the core has due, up to [`SEND_BATCH`] packets, in
    /// batches of up to [`DEVICE_BATCH`] (one `poll_send_batch` each);
    /// keeps what the device cannot take yet. True if the batch bound was
    /// hit: the next round reads the device first, so a long burst cannot
    /// fill the device's queue of packets for us (ACKs) until the kernel
    /// drops them.
    fn flush(&mut self, cx: &mut Context<'_>, now: tcp_stack::Instant) -> bool {
        let mut sent = 0;
        loop {
            if self.tx.is_empty() {
                if sent >= SEND_BATCH {
                    return true;
                }
                self.fill_tx(now);
                if self.tx.is_empty() {
                    return false;
                }
            }
            let mut view = [TxPacket::default(); DEVICE_BATCH];
            let n = self.tx.view(&mut view);
            match self.device.poll_send_batch(cx, &view[..n]) {
                Poll::Ready(Ok(taken)) => {
                    let taken = taken.clamp(1, n);
                    self.tx.consume(taken);
                    sent += taken;
                }
                Poll::Ready(Err(e)) => {
                    trace!(error = %e, len = view[0].data.len(), "device send failed; packet dropped");
                    self.tx.consume(1);
                    sent += 1;
                }
                Poll::Pending => return false,
            }
        }
    }

    /// Fills the empty batch with what the core has due: up to
    /// [`DEVICE_BATCH`] datagrams, while a largest one still fits.
    fn fill_tx(&mut self, now: tcp_stack::Instant) {
        while let Some(buf) = self.tx.next_slot() {
            let next = if self.gso {
                self.stack.poll_transmit_gso(now, buf)
            } else {
                // The slot may exceed a small MTU (576 at least): plain
                // `poll_transmit`, never a super-packet. The header layout
                // is only read for super-packets.
                self.stack
                    .poll_transmit(now, buf)
                    .map(|len| tcp_stack::Transmit {
                        len,
                        segment_size: None,
                        headers: tcp_stack::TxHeaders::default(),
                    })
            };
            match next {
                Some(t) => self.tx.push(t),
                None => return,
            }
        }
    }

    /// Arms the sleep for the core's deadline; true if it is already due.
    ///
    /// A sleep armed for an earlier time than the core now wants is kept
    /// (retransmission deadlines move later with every ACK): when it fires
    /// early the round finds nothing due and re-arms it. So the timer is
    /// reset about once per deadline rather than once per packet.
    fn poll_timer(&mut self, cx: &mut Context<'_>, now: tcp_stack::Instant) -> bool {
        let deadline = self
            .stack
            .poll_timeout()
            .filter(|d| *d != tcp_stack::Instant::MAX);
        let Some(deadline) = deadline else {
            // An armed sleep may still fire once: a harmless empty round.
            return false;
        };
        // Check the clock before trusting the sleep.
        if deadline <= now {
            return true;
        }
        // Round up to the timer wheel's millisecond, so that once the sleep
        // fires the clock is past the deadline.
        let ms = deadline.total_micros().div_ceil(1000);
        let target = tcp_stack::Instant::from_micros(ms.saturating_mul(1000));
        let rearm = match self.armed {
            None => true,
            Some(armed) => target < armed || self.sleep.is_elapsed(),
        };
        if rearm {
            let at = self
                .base
                .checked_add(Duration::from_millis(ms))
                .unwrap_or_else(|| self.base + Duration::from_secs(86400 * 365));
            self.sleep.as_mut().reset(at);
            self.armed = Some(target);
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.stack.poll_event() {
            trace!(?event, "event");
            match event {
                Event::Incoming(l) => self.refill(l),
                Event::Connected(c) => self.with_conn(c, |s| s.set_flags(CONNECTED)),
                Event::Readable(c) => {
                    // Bytes arrived: the receive ring holds storage.
                    self.watch(c);
                    self.with_conn(c, |s| s.wake_read());
                }
                Event::Writable(c) => self.with_conn(c, |s| s.wake_write()),
                Event::PeerClosed(c) => self.with_conn(c, |s| s.set_flags(PEER_FIN)),
                Event::Reset(c) => {
                    let err = self
                        .stack
                        .error(c)
                        .unwrap_or(tcp_stack::Error::ConnectionReset);
                    self.with_conn(c, |s| s.fail(err));
                }
                Event::SoftError(c) => {
                    if let Some(e) = self.stack.soft_error(c) {
                        self.with_conn(c, |s| s.set_soft_error(e));
                    }
                }
                Event::TimedOut(c) => {
                    let err = self.stack.error(c).unwrap_or(tcp_stack::Error::TimedOut);
                    self.with_conn(c, |s| s.fail(err));
                }
                Event::Closed(c) => {
                    if self.conns.contains_key(&c) {
                        let err = self.stack.error(c);
                        self.with_conn(c, |s| {
                            if let Some(e) = err {
                                s.fail(e);
                            }
                            s.set_flags(CLOSED);
                        });
                    } else {
                        // Died before anyone accepted it: drop its ring halves.
                        self.halves.retain(|id| id != c);
                    }
                }
            }
        }
    }

    /// Adds `conn` to the ring sweep.
    fn watch(&mut self, conn: ConnId) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            if !entry.watched {
                entry.watched = true;
                self.watched.push(conn);
            }
        }
    }

    /// Runs the ring sweep when it is due; keeps it armed while any
    /// connection is watched.
    fn poll_sweep(&mut self, cx: &mut Context<'_>) {
        while !self.watched.is_empty() {
            if !self.sweep_armed {
                let at = tokio::time::Instant::now() + RING_SWEEP;
                self.sweep.as_mut().reset(at);
                self.sweep_armed = true;
            }
            if self.sweep.as_mut().poll(cx).is_pending() {
                return;
            }
            self.sweep_armed = false;
            self.sweep_rings();
        }
    }

    /// Frees the storage of rings that stayed empty and quiet since the last
    /// sweep (see `ring::RecvWriter::release_if_idle` and
    /// `ring::SendReader::release_if_idle`), and stops watching connections
    /// whose rings hold none. An application write or a received segment
    /// allocates again and brings the connection back (`watch`).
    ///
    /// Connections the application closed stay watched until their rings
    /// are released or the core drops them (their unacknowledged data must
    /// stay until then).
    ///
    /// It also measures the storage the rings still hold and reports it to
    /// the core (`Stack::set_buffer_memory`), which refuses new connections
    /// at `Config::max_buffer_memory` (ENOBUFS-like) until it falls again.
    fn sweep_rings(&mut self) {
        let stack = &self.stack;
        let conns = &mut self.conns;
        let mut held = 0usize;
        self.watched.retain(|&id| {
            // A buffer the core dropped (or not one of ours) holds nothing.
            let send = match stack.send_buffer(id).and_then(crate::ring::as_send_reader) {
                Some(r) => {
                    let freed = r.release_if_idle();
                    if !freed {
                        held += tcp_stack::SendBuffer::capacity(r);
                    }
                    freed
                }
                None => true,
            };
            let recv = match stack.recv_buffer(id).and_then(crate::ring::as_recv_writer) {
                Some(w) => {
                    let freed = w.release_if_idle();
                    if !freed {
                        held += tcp_stack::RecvBuffer::capacity(w);
                    }
                    freed
                }
                None => true,
            };
            let keep = !(send && recv);
            if let Some(entry) = conns.get_mut(&id) {
                entry.watched = keep;
            }
            keep
        });
        self.stack.set_buffer_memory(held);
        // Give back the list's memory after a burst (amortized: only when
        // it shrank to a quarter).
        let floor = self.watched.len().max(16);
        if self.watched.capacity() > 4 * floor {
            self.watched.shrink_to(2 * floor);
        }
    }

    fn with_conn(&self, conn: ConnId, f: impl FnOnce(&Shared)) {
        if let Some(entry) = self.conns.get(&conn) {
            f(&entry.shared);
        }
    }

    /// Emits a `debug` event for every state change since the last round.
    fn trace_states(&mut self) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        for (id, entry) in &mut self.conns {
            let state = self.stack.state(*id);
            if state != entry.state {
                debug!(parent: entry.span(), from = %entry.state, to = %state, "state change");
                entry.state = state;
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect {
                local,
                remote,
                opts,
                reply,
            } => {
                let result = match self.draining {
                    Some(_) => Err(crate::stack::gone()),
                    None => self.connect(local, remote, opts),
                };
                if let Err(Ok(shared)) = reply.send(result) {
                    // The `connect` future was dropped: nobody holds the socket.
                    self.close(shared.id);
                }
            }
            Command::Listen { listener, opts } => {
                if self.draining.is_some() {
                    // A graceful stop is under way: no new listeners.
                    listener.closed.store(true, Ordering::Release);
                    listener.waker.wake_all();
                } else {
                    self.listen(listener, opts);
                }
            }
            Command::Refill(l) => {
                if let Some(&id) = l.id.get() {
                    self.refill(id);
                }
            }
            Command::CloseListener(l) => {
                if let Some(&id) = l.id.get() {
                    self.close_listener(id);
                }
            }
            Command::Shutdown(c) => {
                // `WRITE_SHUT` is set: a write racing the shutdown from
                // another thread lands before the FIN or fails.
                if let Some(entry) = self.conns.get(&c) {
                    entry.shared.settle_writes();
                }
                self.stack.notify_send(c);
                if let Err(e) = self.stack.shutdown(c) {
                    debug!(conn = c.as_u64(), error = %e, "shutdown failed");
                }
            }
            Command::Close(c) => self.close(c),
            Command::SetOption(c, opt) => {
                if let Err(e) = self.stack.set_option(c, opt) {
                    debug!(conn = c.as_u64(), ?opt, error = %e, "set_option failed");
                }
            }
            Command::Info(c, reply) => {
                let _ = reply.send(self.stack.info(c));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stack.stats().clone());
            }
            Command::Connections(reply) => {
                let _ = reply.send(self.stack.connections().collect());
            }
            Command::Listeners(reply) => {
                let _ = reply.send(self.stack.listeners().collect());
            }
            Command::Neighbours(reply) => {
                let _ = reply.send(self.stack.neighbours());
            }
            Command::Stop { grace, reply } => {
                self.stop_replies.push(reply);
                match grace {
                    Some(grace) => self.drain(grace),
                    None => self.abort_all(),
                }
            }
        }
    }

    /// Starts a graceful stop: no new listeners or connections, every
    /// listener closed (unaccepted connections reset, as a kernel does),
    /// and on every connection the application holds a FIN after the data
    /// it wrote, its writes failing from now on (as after `shutdown(SHUT_WR)`;
    /// reads go on). Connections already released keep closing. The driver
    /// stops once none is left to close (`closes_done`), or resets what
    /// remains after `grace` (`poll_drain_deadline`). A second graceful
    /// stop can only bring the deadline closer.
    fn drain(&mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now()
            .checked_add(grace)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365));
        if let Some(sleep) = &mut self.draining {
            if deadline < sleep.deadline() {
                sleep.as_mut().reset(deadline);
            }
            return;
        }
        debug!(
            connections = self.stack.active_connection_count(),
            ?grace,
            "graceful shutdown requested: closing every connection"
        );
        self.draining = Some(Box::pin(tokio::time::sleep_until(deadline)));
        let listeners: Vec<_> = self.listeners.keys().copied().collect();
        for l in listeners {
            self.close_listener(l);
        }
        // Writes stop first (a write in progress finishes, later ones see
        // `WRITE_SHUT`: `settle_writes`); then the bytes already written
        // are handed to the core before the FIN is placed after them
        // (RFC 9293 3.10.4: CLOSE sends what was queued before it).
        for entry in self.conns.values() {
            entry.shared.set_flags(WRITE_SHUT);
            entry.shared.settle_writes();
        }
        while let Ok(id) = self.dirty_rx.try_recv() {
            if let Some(entry) = self.conns.get(&id) {
                let bits = entry.shared.take_dirty();
                if bits & DIRTY_SEND != 0 {
                    self.stack.notify_send(id);
                }
                if bits & DIRTY_RECV != 0 {
                    self.stack.notify_recv(id);
                }
            }
        }
        let ids: Vec<_> = self.conns.keys().copied().collect();
        for id in ids {
            self.stack.notify_send(id);
            if let Err(e) = self.stack.shutdown(id) {
                trace!(conn = id.as_u64(), error = %e, "shutdown at stop failed");
            }
        }
    }

    /// Resets what a graceful stop left once its time is up.
    fn poll_drain_deadline(&mut self, cx: &mut Context<'_>) {
        if self.stopping {
            return;
        }
        if let Some(sleep) = &mut self.draining {
            if sleep.as_mut().poll(cx).is_ready() {
                debug!(
                    left = self.stack.active_connection_count(),
                    "graceful shutdown timed out: resetting the rest"
                );
                self.abort_all();
            }
        }
    }

    /// Stops at once. Nothing will answer for the connections any more:
    /// reset them, so peers learn at once instead of waiting for a timeout
    /// (the RSTs go out in this round's flush).
    fn abort_all(&mut self) {
        debug!("stopping the tcp driver: resetting every connection");
        self.stack.reset_all();
        self.stopping = true;
    }

    fn connect(
        &mut self,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        opts: SocketOpts,
    ) -> io::Result<Arc<Shared>> {
        let sizes = self.buffer_sizes(&opts);
        let id = self
            .stack
            .connect_with_buffers(self.now(), local, remote, sizes)?;
        let cached = self.apply_opts(id, &opts);
        match self.adopt(id, cached) {
            Some(shared) => Ok(shared),
            None => {
                let _ = self.stack.close(id);
                Err(no_buffers())
            }
        }
    }

    /// Send and receive buffer sizes: those `opts` asks for, else the configured ones.
    fn buffer_sizes(&self, opts: &SocketOpts) -> (usize, usize) {
        (
            opts.send_buffer.unwrap_or(self.config.send_buffer),
            opts.recv_buffer.unwrap_or(self.config.recv_buffer),
        )
    }

    /// Sets the options that differ from the stack's defaults; returns the
    /// values the handle caches.
    fn apply_opts(&mut self, id: ConnId, opts: &SocketOpts) -> CachedOpts {
        let c = &self.config;
        let mut set = Vec::new();
        if let Some(v) = opts.nodelay.filter(|v| *v != c.nodelay) {
            set.push(SockOpt::NoDelay(v));
        }
        if let Some(v) = opts.keepalive.filter(|v| *v != c.keepalive) {
            set.push(SockOpt::KeepAlive(v));
        }
        if let Some(v) = opts.ttl.filter(|v| *v != c.ttl) {
            set.push(SockOpt::Ttl(v));
        }
        if opts.linger == Some(Duration::ZERO) {
            set.push(SockOpt::LingerZero(true));
        }
        if let Some(tos) = opts.tos.filter(|t| *t != 0) {
            set.push(SockOpt::Tos(tos));
        }
        let cached = CachedOpts::new(
            opts.nodelay.unwrap_or(c.nodelay),
            opts.keepalive.unwrap_or(c.keepalive),
            u32::from(opts.ttl.unwrap_or(c.ttl)),
            opts.linger,
        );
        cached.tos.store(opts.tos.unwrap_or(0), Ordering::Relaxed);
        for opt in set {
            if let Err(e) = self.stack.set_option(id, opt) {
                debug!(conn = id.as_u64(), ?opt, error = %e, "set_option failed");
            }
        }
        cached
    }

    /// Wraps a new connection's ring halves in a `Shared` and tracks it.
    fn adopt(&mut self, id: ConnId, opts: CachedOpts) -> Option<Arc<Shared>> {
        let (send, recv) = self.halves.take(id)?;
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let local = self.stack.local_addr(id).unwrap_or(unspecified);
        let peer = self.stack.peer_addr(id).unwrap_or(unspecified);
        let state = self.stack.state(id);
        let mut flags = 0;
        if state.is_synchronized() {
            flags |= CONNECTED;
            if !state.can_recv() {
                flags |= PEER_FIN;
            }
        }
        if state == State::Closed {
            flags |= CLOSED;
        }
        let shared = Arc::new(Shared::new(
            id,
            local,
            peer,
            send,
            recv,
            flags,
            self.dirty_tx.clone(),
            opts,
        ));
        if let Some(e) = self.stack.error(id) {
            shared.fail(e);
        }
        let span = debug_span!("tcp_conn", conn = id.as_u64(), %local, %peer);
        debug!(parent: &span, %state, "connection opened");
        let span = (!span.is_disabled()).then(|| Box::new(span));
        self.conns.insert(
            id,
            Entry {
                shared: shared.clone(),
                state,
                span,
                watched: false,
            },
        );
        // Bytes that arrived before the accept may already hold storage,
        // and reading them need not notify the driver.
        self.watch(id);
        Some(shared)
    }

    fn close(&mut self, id: ConnId) {
        // Data written just before the drop may still be un-notified.
        self.stack.notify_send(id);
        // SO_LINGER with a timeout: the close goes on, bounded by it (see
        // `TcpStream::set_linger`); zero was given to the core already.
        let linger = self
            .conns
            .get(&id)
            .and_then(|e| e.shared.opts.linger())
            .filter(|d| !d.is_zero());
        let now = self.now();
        let closed = match linger {
            Some(linger) => self.stack.close_with_linger(now, id, linger),
            None => self.stack.close(id),
        };
        if let Err(e) = closed {
            debug!(conn = id.as_u64(), error = %e, "close failed");
        }
        if let Some(entry) = self.conns.remove(&id) {
            debug!(parent: entry.span(), state = %entry.state, "released by the application");
        }
    }

    /// Creates the core listener for `listener`. The handle reserved its
    /// address in the bind table, whose rules include the core's, so this
    /// does not fail; if it ever did, `accept` reports the error.
    fn listen(&mut self, listener: Arc<ListenerShared>, opts: SocketOpts) {
        // Linux queues `backlog + 1` connections before any accept
        // (`sk_acceptq_is_full()` tests `>`, not `>=`), and takes a backlog
        // of 0 (the handle added the 1). The core's accept queue and the
        // listener's count together (`set_listener_waiting`).
        let listen_opts = tcp_stack::ListenOptions::default()
            .v6_only(opts.only_v6)
            .reuseport(opts.reuseport);
        let local = listener.local;
        let result = self
            .stack
            .listen_with(local, listener.backlog, listen_opts)
            .and_then(|id| {
                let (send, recv) = self.buffer_sizes(&opts);
                self.stack.set_listener_buffers(id, send, recv).map(|()| id)
            });
        match result {
            Ok(id) => {
                let _ = listener.id.set(id);
                debug!(%local, backlog = listener.backlog, "listening");
                self.listeners.insert(id, listener);
            }
            Err(e) => {
                warn!(%local, error = %e, "the core refused a listener the bind table allowed");
                let _ = listener.error.set(e);
                listener.closed.store(true, Ordering::Release);
                listener.waker.wake_all();
            }
        }
    }

    /// Moves established connections from the core's accept queue to the
    /// listener's, up to its backlog, and tells the core how many wait
    /// there: they count against the backlog in the core's SYN check.
    fn refill(&mut self, l: ListenerId) {
        let Some(listener) = self.listeners.get(&l).cloned() else {
            return;
        };
        let mut added = false;
        while listener.queue().len() < listener.backlog {
            let Some(id) = self.stack.accept(l) else {
                break;
            };
            let o = &listener.opts;
            let opts = SocketOpts {
                nodelay: Some(o.nodelay.load(Ordering::Relaxed)),
                keepalive: Some(o.keepalive.load(Ordering::Relaxed)),
                ttl: u8::try_from(o.ttl.load(Ordering::Relaxed)).ok(),
                linger: o.linger(),
                tos: Some(o.tos.load(Ordering::Relaxed)),
                ..SocketOpts::default()
            };
            let cached = self.apply_opts(id, &opts);
            match self.adopt(id, cached) {
                Some(shared) => {
                    listener.queue().push_back(shared);
                    added = true;
                }
                None => {
                    warn!(conn = id.as_u64(), "accepted connection has no buffers");
                    let _ = self.stack.close(id);
                }
            }
        }
        let waiting = listener.queue().len();
        if let Err(e) = self.stack.set_listener_waiting(l, waiting) {
            debug!(local = %listener.local, error = %e, "set_listener_waiting failed");
        }
        if added {
            listener.waker.wake_all();
        }
    }

    fn close_listener(&mut self, l: ListenerId) {
        self.stack.close_listener(l);
        if let Some(listener) = self.listeners.remove(&l) {
            debug!(local = %listener.local, "listener closed");
            listener.closed.store(true, Ordering::Release);
            let queued: Vec<_> = listener.queue().drain(..).collect();
            // Like a kernel listener, reset what was never accepted.
            for shared in queued {
                let _ = self.stack.abort(shared.id);
                self.close(shared.id);
            }
            listener.waker.wake_all();
        }
        // Connections the core reset with the listener never reach us.
        self.prune();
    }
}

/// The datagrams of one device batch, back to back in one buffer: the
/// core writes each into the free space after the previous one, so a
/// batch of small packets shares the room of one super-packet. Filled only
/// when empty and drained in order, so nothing is moved.
struct TxBatch {
    buf: Vec<u8>,
    /// The largest datagram the core may write (a super-packet with
    /// offloads, else the MTU; link header included).
    max: usize,
    /// Where each datagram starts in `buf`, and what the core said of it.
    items: Vec<(usize, tcp_stack::Transmit)>,
    /// Bytes of `buf` in use.
    used: usize,
    /// Items already taken by the device.
    done: usize,
}

impl TxBatch {
    /// Room for one datagram of `max` bytes plus [`DEVICE_BATCH`] of
    /// `typical` (MTU-sized) ones.
    fn new(max: usize, typical: usize) -> TxBatch {
        TxBatch {
            buf: vec![0; max + DEVICE_BATCH * typical.min(max)],
            max,
            items: Vec::with_capacity(DEVICE_BATCH),
            used: 0,
            done: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.done == self.items.len()
    }

    /// Where the core may write the next datagram, if the batch has room
    /// for another of the largest size.
    fn next_slot(&mut self) -> Option<&mut [u8]> {
        if self.items.len() == DEVICE_BATCH || self.buf.len() - self.used < self.max {
            return None;
        }
        Some(&mut self.buf[self.used..self.used + self.max])
    }

    /// Records the datagram the core just wrote into `next_slot`.
    fn push(&mut self, mut t: tcp_stack::Transmit) {
        t.len = t.len.min(self.max);
        self.items.push((self.used, t));
        self.used += t.len;
    }

    /// The datagrams not yet taken, into `view`; returns how many.
    fn view<'a>(&'a self, view: &mut [TxPacket<'a>]) -> usize {
        let pending = &self.items[self.done..];
        for (slot, &(at, t)) in view.iter_mut().zip(pending) {
            *slot = TxPacket {
                data: &self.buf[at..at + t.len],
                segment_size: t.segment_size,
                headers: t.headers,
            };
        }
        pending.len().min(view.len())
    }

    /// The device took (or dropped) the next `n`.
    fn consume(&mut self, n: usize) {
        self.done = (self.done + n).min(self.items.len());
        if self.is_empty() {
            self.items.clear();
            self.used = 0;
            self.done = 0;
        }
    }
}

/// However the driver ends (a stop, the last handle dropped, a panic, or
/// its runtime shutting down and dropping the task), every socket still
/// held fails from then on: pending and later reads, writes, readiness,
/// accepts and commands (connect, listen, stats) give one error,
/// `NotConnected` carrying [`StackStopped`](crate::StackStopped). No
/// operation waits for a driver that is gone.
impl<D> Drop for Driver<D> {
    fn drop(&mut self) {
        // Mark, close, then wake, in that order: a task woken by a failure
        // may send a command at once (a bind after its accept failed),
        // which must fail to send rather than be taken, answered Ok and
        // drained unseen; and a task that saw the channel close
        // (`Stack::stopped`) must find every socket already failed.
        for entry in self.conns.values() {
            entry.shared.mark_flags(ABORTED);
        }
        for listener in self.listeners.values() {
            listener.closed.store(true, Ordering::Release);
        }
        self.cmd_rx.close();
        for entry in self.conns.values() {
            entry.shared.wake_all();
        }
        for listener in self.listeners.values() {
            listener.waker.wake_all();
        }
        // Replies still queued (connect, listen, stats...) fail now rather
        // than when the channel's memory is freed.
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            // A listener whose command never ran has no reply to fail:
            // close it, so its accept ends instead of waiting for ever.
            if let Command::Listen { listener, .. } = cmd {
                listener.closed.store(true, Ordering::Release);
                listener.waker.wake_all();
            }
        }
        debug!(
            connections = self.conns.len(),
            unclaimed = self.halves.len(),
            "tcp driver stopped"
        );
        for reply in self.stop_replies.drain(..) {
            let _ = reply.send(());
        }
    }
}

fn no_buffers() -> io::Error {
    io::Error::other("the core created a connection without calling the buffer factory")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Config, Driver, Entry};
    use crate::device::{Device, Medium, MemoryDevice};
    use crate::shared::Shared;

    /// Per-connection structs stay small (see `tests/memory.rs` for the
    /// heap bytes per connection these add up to).
    #[test]
    fn per_connection_structs_stay_small() {
        let entry = std::mem::size_of::<Entry>();
        let shared = std::mem::size_of::<Shared>();
        println!("Entry {entry} bytes, Shared {shared} bytes");
        assert!(entry <= 24, "Entry is {entry} bytes");
        assert!(shared <= 128, "Shared is {shared} bytes");
    }

    /// A memory end that says its packets are Ethernet frames.
    struct Framed(MemoryDevice);

    impl Device for Framed {
        fn poll_recv(
            &mut self,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.poll_recv(cx, buf)
        }
        fn poll_send(
            &mut self,
            cx: &mut std::task::Context<'_>,
            packet: &[u8],
        ) -> std::task::Poll<std::io::Result<()>> {
            self.0.poll_send(cx, packet)
        }
        fn mtu(&self) -> usize {
            self.0.mtu()
        }
        fn offloads(&self) -> crate::device::Offloads {
            self.0.offloads()
        }
        fn medium(&self) -> Medium {
            Medium::Ethernet
        }
    }

    /// `Config::mtu` stays the IP MTU; the buffers add the link header.
    #[tokio::test]
    async fn buffers_make_room_for_the_link_header() {
        let config = Config {
            mtu: 1500,
            ..Config::with_addr("10.0.0.1".parse().unwrap())
        };
        let sizes = |device: Framed, offloads: bool| {
            let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let d = Driver::new(device, config.clone(), offloads, rx);
            (d.tx.max, d.rx_buf.len(), d.config.mtu)
        };
        let (plain, _) = MemoryDevice::pair(1500);
        assert_eq!(sizes(Framed(plain), true), (1514, 65536 + 14, 1500));
        let (tso, _) = MemoryDevice::pair_with_offloads(1500);
        assert_eq!(sizes(Framed(tso), true), (65535 + 14, 65536 + 14, 1500));
    }
}
