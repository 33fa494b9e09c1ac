//! State shared between one connection's application handles and the driver.
//!
//! See the crate docs for the protocol; in short, the application owns the
//! app halves of the two rings, the driver owns the core, and they meet in
//! the atomics of [`Shared`].

use crate::ring::{RecvReader, SendWriter};
use crate::waiters::Waiters;
use std::cell::UnsafeCell;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use tcp_stack::ConnId;
use tokio::sync::mpsc::UnboundedSender;

/// The active open completed (always set for accepted connections).
pub(crate) const CONNECTED: u32 = 1 << 0;
/// The peer's FIN arrived: once the ring is empty, reads return 0.
pub(crate) const PEER_FIN: u32 = 1 << 1;
/// The connection failed; the reason is in [`Shared::error`].
pub(crate) const FAILED: u32 = 1 << 2;
/// The application shut the write half down (writes now fail with EPIPE).
pub(crate) const WRITE_SHUT: u32 = 1 << 3;
/// The connection reached CLOSED in the core.
pub(crate) const CLOSED: u32 = 1 << 4;
/// The stack's driver stopped: every operation fails with
/// [`StackStopped`](crate::StackStopped) (`NotConnected`).
pub(crate) const ABORTED: u32 = 1 << 5;
/// The application was given the error behind `FAILED` (set by the app):
/// see [`Shared::take_error`].
pub(crate) const ERROR_TAKEN: u32 = 1 << 6;

/// [`Shared::waiters`] directions.
pub(crate) const READ: usize = 0;
pub(crate) const WRITE: usize = 1;

/// Dirty bits: the app touched a ring and the driver must tell the core.
pub(crate) const DIRTY_SEND: u8 = 1 << 0;
pub(crate) const DIRTY_RECV: u8 = 1 << 1;

/// One connection's state as seen by both sides.
pub(crate) struct Shared {
    pub(crate) id: ConnId,
    /// Local and peer address, boxed: rarely read, and two IPv6-capable
    /// addresses would double this per-connection struct.
    addrs: Box<(SocketAddr, SocketAddr)>,
    /// App half of the send ring (the core reads the other half).
    pub(crate) send: Exclusive<SendWriter>,
    /// App half of the receive ring (the core writes the other half).
    pub(crate) recv: Exclusive<RecvReader>,
    /// Tasks waiting to read ([`READ`]) or write ([`WRITE`]); all are woken.
    pub(crate) waiters: Waiters<2>,
    /// `CONNECTED`, `PEER_FIN`, ... Written by the driver with `Release`
    /// before it wakes; read by the app with `Acquire` after it registers.
    pub(crate) flags: AtomicU32,
    /// Encoded [`tcp_stack::Error`] behind `FAILED` (0 = none); stored
    /// before `FAILED` is set, so an `Acquire` load of `FAILED` sees it.
    error: AtomicU8,
    /// Encoded soft error (Linux `sk_err_soft`, from ICMP) for `take_error`;
    /// 0 = none. Set by the driver on `Event::SoftError`, taken by the app.
    soft_error: AtomicU8,
    /// `DIRTY_*` bits; the app pushes `id` on the dirty queue only when it
    /// sets the first bit, the driver clears them all before notifying.
    dirty: AtomicU8,
    dirty_tx: UnboundedSender<ConnId>,
    /// Cached option values, so getters need no round trip.
    pub(crate) opts: CachedOpts,
}

/// Option values last set through the handle (the core is told by command).
pub(crate) struct CachedOpts {
    pub(crate) nodelay: AtomicBool,
    pub(crate) keepalive: AtomicBool,
    pub(crate) ttl: AtomicU32,
    /// Linger in milliseconds plus one; 0 means "not set".
    pub(crate) linger_ms: AtomicU32,
    /// `IP_TOS` (DSCP bits) of IPv4 datagrams.
    pub(crate) tos: AtomicU8,
    /// `TCP_QUICKACK`.
    pub(crate) quickack: AtomicBool,
}

impl CachedOpts {
    pub(crate) fn new(
        nodelay: bool,
        keepalive: bool,
        ttl: u32,
        linger: Option<std::time::Duration>,
    ) -> Self {
        CachedOpts {
            nodelay: AtomicBool::new(nodelay),
            keepalive: AtomicBool::new(keepalive),
            ttl: AtomicU32::new(ttl),
            linger_ms: AtomicU32::new(encode_linger(linger)),
            tos: AtomicU8::new(0),
            quickack: AtomicBool::new(false),
        }
    }

    pub(crate) fn linger(&self) -> Option<std::time::Duration> {
        match self.linger_ms.load(Ordering::Relaxed) {
            0 => None,
            n => Some(std::time::Duration::from_millis(u64::from(n - 1))),
        }
    }

    pub(crate) fn set_linger(&self, linger: Option<std::time::Duration>) {
        self.linger_ms
            .store(encode_linger(linger), Ordering::Relaxed);
    }
}

fn encode_linger(linger: Option<std::time::Duration>) -> u32 {
    match linger {
        None => 0,
        Some(d) => u32::try_from(d.as_millis())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1),
    }
}

impl Shared {
    /// The connection's local address.
    pub(crate) fn local(&self) -> SocketAddr {
        self.addrs.0
    }

    /// The peer's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.addrs.1
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: ConnId,
        local: SocketAddr,
        peer: SocketAddr,
        send: SendWriter,
        recv: RecvReader,
        flags: u32,
        dirty_tx: UnboundedSender<ConnId>,
        opts: CachedOpts,
    ) -> Shared {
        Shared {
            id,
            addrs: Box::new((local, peer)),
            send: Exclusive::new(send),
            recv: Exclusive::new(recv),
            waiters: Waiters::default(),
            flags: AtomicU32::new(flags),
            error: AtomicU8::new(0),
            soft_error: AtomicU8::new(0),
            dirty: AtomicU8::new(0),
            dirty_tx,
            opts,
        }
    }

    /// Current flags (`Acquire`: pairs with the driver's `Release` updates).
    pub(crate) fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// Driver side: sets `bits` and wakes both directions.
    pub(crate) fn set_flags(&self, bits: u32) {
        self.mark_flags(bits);
        self.wake_all();
    }

    /// Driver side, after setting `WRITE_SHUT` and before placing the
    /// FIN: waits out a write in progress. Writers check `WRITE_SHUT`
    /// under the send role, so once this returns every write either
    /// landed in the ring (and the next `notify_send` hands it to the core
    /// ahead of the FIN) or will see the flag and fail with `BrokenPipe`.
    pub(crate) fn settle_writes(&self) {
        self.send.with(|_| ());
    }

    /// Driver side: sets `bits` without waking anyone (the caller wakes
    /// later, once everything it must publish first is done).
    pub(crate) fn mark_flags(&self, bits: u32) {
        self.flags.fetch_or(bits, Ordering::Release);
    }

    /// Driver side: records why the connection failed, then sets `FAILED`.
    ///
    /// Linux `tcp_reset()`: a reset in CLOSE-WAIT (the peer's FIN already
    /// in) is EPIPE, not ECONNRESET; the core reports it so. Reads then
    /// keep giving the end of stream (`PEER_FIN` is tested first), writes
    /// fail with `BrokenPipe`.
    pub(crate) fn fail(&self, err: tcp_stack::Error) {
        // Keep the first error: a later CLOSED must not hide a reset.
        let _ =
            self.error
                .compare_exchange(0, encode_error(err), Ordering::Relaxed, Ordering::Relaxed);
        self.set_flags(FAILED);
    }

    /// The error behind `FAILED`, as the `io::Error` a kernel socket gives.
    /// Call after observing `FAILED` with `Acquire`.
    /// A stopped stack gives [`StackStopped`](crate::StackStopped), even
    /// if the connection had failed before: one error for every operation
    /// once the driver is gone.
    pub(crate) fn error(&self, flags: u32) -> io::Error {
        if flags & ABORTED != 0 {
            return crate::error::stack_stopped();
        }
        match decode_error(self.error.load(Ordering::Relaxed)) {
            Some(e) => e.into(),
            None => io::Error::new(io::ErrorKind::ConnectionAborted, "connection aborted"),
        }
    }

    /// App side: the error for an operation that found `FAILED` or
    /// `ABORTED` in `flags`, or `None` if it was already given once.
    ///
    /// Linux `sock_error()` reports a connection's error once and clears it
    /// (`sk_err`): after a reset, the first read or write gives ECONNRESET,
    /// then reads give the end of stream and writes EPIPE (the caller's
    /// choice on `None`). A stopped stack gives
    /// [`StackStopped`](crate::StackStopped) every time.
    pub(crate) fn take_error(&self, flags: u32) -> Option<io::Error> {
        if flags & ABORTED != 0 || flags & FAILED == 0 {
            return Some(self.error(flags));
        }
        let prev = self.flags.fetch_or(ERROR_TAKEN, Ordering::AcqRel);
        (prev & ERROR_TAKEN == 0).then(|| self.error(flags))
    }

    /// Driver side: an ICMP error left `err` as the connection's soft error.
    pub(crate) fn set_soft_error(&self, err: tcp_stack::Error) {
        self.soft_error.store(encode_error(err), Ordering::Release);
        self.wake_all();
    }

    /// App side: `SO_ERROR` as Linux `sock_getsockopt()` reports it: the
    /// pending error that failed the connection (once), else the soft error
    /// an ICMP message left (cleared), else `None`.
    pub(crate) fn so_error(&self) -> Option<io::Error> {
        let flags = self.flags();
        if flags & (FAILED | ABORTED) != 0 && flags & ERROR_TAKEN == 0 {
            if let Some(e) = self.take_error(flags) {
                return Some(e);
            }
        }
        decode_error(self.soft_error.swap(0, Ordering::Acquire)).map(Into::into)
    }

    pub(crate) fn wake_all(&self) {
        self.waiters.wake_all();
    }

    /// Driver side: wakes the tasks waiting to read.
    pub(crate) fn wake_read(&self) {
        self.waiters.wake(READ);
    }

    /// Driver side: wakes the tasks waiting to write.
    pub(crate) fn wake_write(&self) {
        self.waiters.wake(WRITE);
    }

    /// App side: the ring changed in a way the core must hear about.
    /// `AcqRel` orders the ring update before the queue push, and the
    /// driver's clearing `fetch_and` before its reading of the ring.
    pub(crate) fn mark_dirty(&self, bit: u8) {
        if self.dirty.fetch_or(bit, Ordering::AcqRel) == 0 {
            // The receiver is gone only when the driver stopped; the ABORTED
            // flag tells the application then.
            let _ = self.dirty_tx.send(self.id);
        }
    }

    /// Driver side: takes the dirty bits.
    pub(crate) fn take_dirty(&self) -> u8 {
        self.dirty.swap(0, Ordering::AcqRel)
    }
}

fn encode_error(e: tcp_stack::Error) -> u8 {
    use tcp_stack::Error::*;
    match e {
        WouldBlock => 1,
        InvalidHandle => 2,
        NotConnected => 3,
        AddrInUse => 4,
        AddrNotAvailable => 5,
        ConnectionRefused => 6,
        ConnectionReset => 7,
        ConnectionAborted => 8,
        TimedOut => 9,
        BrokenPipe => 10,
        HostUnreachable => 11,
        Exhausted => 12,
        InvalidInput => 13,
        NetworkUnreachable => 14,
    }
}

fn decode_error(code: u8) -> Option<tcp_stack::Error> {
    use tcp_stack::Error::*;
    Some(match code {
        1 => WouldBlock,
        2 => InvalidHandle,
        3 => NotConnected,
        4 => AddrInUse,
        5 => AddrNotAvailable,
        6 => ConnectionRefused,
        7 => ConnectionReset,
        8 => ConnectionAborted,
        9 => TimedOut,
        10 => BrokenPipe,
        11 => HostUnreachable,
        12 => Exhausted,
        13 => InvalidInput,
        14 => NetworkUnreachable,
        _ => return None,
    })
}

/// A value used by one caller at a time through `&self`.
///
/// `tokio::net::TcpStream` reads and writes through `&self` (`try_read`,
/// the borrowed split halves), while a ring's app half needs `&mut`. This
/// cell hands out the `&mut` under a claim flag: one uncontended
/// compare-and-swap per call. It is not a lock shared with the driver (the
/// driver never touches it); it can only be contended by two application
/// tasks using the *same direction* of the *same socket* at the same
/// instant, which then take turns for the length of one `memcpy`.
pub(crate) struct Exclusive<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `with` gives out `&mut T` only while holding `busy`, so at most one
// thread accesses `value` at a time; moving that access between threads
// requires `T: Send`.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    pub(crate) fn new(value: T) -> Self {
        Exclusive {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access to the value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut spins = 0u32;
        // `Acquire` on claim / `Release` on release: the previous holder's
        // accesses happen-before ours.
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        // SAFETY: `busy` is held until `_release` drops, after `f` returns
        // (or unwinds); no other `&mut` or `&` to `value` exists meanwhile.
        f(unsafe { &mut *self.value.get() })
    }
}

/// One listener's accept queue, filled by the driver, drained by `accept`.
pub(crate) struct ListenerShared {
    /// The core's listener, set by the driver when it creates it (the
    /// handle exists before: `listen` does not wait for the driver).
    pub(crate) id: std::sync::OnceLock<tcp_stack::ListenerId>,
    /// Why the core refused the listener; the bind table makes that
    /// impossible, so this is a safety net reported by `accept`.
    pub(crate) error: std::sync::OnceLock<tcp_stack::Error>,
    pub(crate) local: SocketAddr,
    /// Connections the driver took from the core's accept queue; at most
    /// `backlog` of them, the rest wait in the core, which counts these
    /// against the same backlog.
    pub(crate) queue: std::sync::Mutex<std::collections::VecDeque<std::sync::Arc<Shared>>>,
    /// How many connections may wait for `accept`: the application's
    /// backlog + 1, as on Linux.
    pub(crate) backlog: usize,
    /// Tasks waiting in `accept` (direction 0); all are woken.
    pub(crate) waker: Waiters<1>,
    /// The driver stopped or the listener was closed.
    pub(crate) closed: AtomicBool,
    /// Options accepted connections inherit (like a kernel listener's).
    pub(crate) opts: CachedOpts,
}

impl ListenerShared {
    pub(crate) fn queue(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<std::sync::Arc<Shared>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Exclusive;
    use std::sync::Arc;

    #[test]
    fn exclusive_serializes_concurrent_callers() {
        let cell = Arc::new(Exclusive::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cell = cell.clone();
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        // A non-atomic read-modify-write: lost updates would
                        // show if two callers were ever inside at once.
                        cell.with(|v| {
                            let old = *v;
                            std::hint::black_box(());
                            *v = old + 1;
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cell.with(|v| *v), 200_000);
    }

    #[test]
    fn exclusive_is_released_after_a_panic() {
        let cell = Exclusive::new(1u8);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(|_| panic!("inside"));
        }));
        assert!(r.is_err());
        assert_eq!(cell.with(|v| *v), 1);
    }
}
