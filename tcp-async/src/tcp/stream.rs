//! [`TcpStream`]: a connection, like `tokio::net::TcpStream`.

use crate::driver::{Command, SocketOpts};
use crate::ring::{RecvReader, SendWriter};
use crate::shared::{
    Shared, ABORTED, CLOSED, CONNECTED, DIRTY_RECV, DIRTY_SEND, ERROR_TAKEN, FAILED, PEER_FIN,
    WRITE_SHUT,
};
use crate::shared::{READ, WRITE};
use crate::stack::{default_stack, Stack};
use crate::tcp::addr::{resolve, ToSocketAddrs};
use crate::tcp::split::{split, ReadHalf, WriteHalf};
use crate::tcp::split_owned::{split_owned, OwnedReadHalf, OwnedWriteHalf};
use crate::waiters::Waiters;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tcp_stack::{SockOpt, TcpInfo};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

/// A TCP connection of a user-space [`Stack`], with the API of
/// `tokio::net::TcpStream`.
///
/// Reading and writing copy straight between the caller's buffers and the
/// connection's TCP buffers (lock-free rings shared with the driver task).
///
/// Dropping the stream closes it like a kernel socket: with unread received
/// data it is reset (RFC 2525 2.17), otherwise the data already written is
/// delivered and a FIN follows, in the background. Use
/// `shutdown` ([`AsyncWrite::poll_shutdown`]) to half-close and keep
/// reading.
///
/// # Examples
///
/// As with `tokio::net` (`connect` uses the default stack, here `client`;
/// a server at 10.0.0.1:8080 on another stack reads what it gets):
///
/// ```
/// use tcp_async::TcpStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # use tcp_async::{device::MemoryDevice, Config, Stack};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # // Two stacks joined by an in-memory link, 10.0.0.1 and 10.0.0.2.
/// # let (a, b) = MemoryDevice::pair(1500);
/// # let server = Stack::builder(a).config(Config::with_addr("10.0.0.1".parse().unwrap())).build()?;
/// # let client = Stack::builder(b).config(Config::with_addr("10.0.0.2".parse().unwrap())).build()?;
/// # client.set_runtime_default()?;
/// # let listener = tcp_async::TcpListener::bind_with(&server, "10.0.0.1:8080").await?;
/// let mut stream = TcpStream::connect("10.0.0.1:8080").await?;
/// stream.write_all(b"hello world!").await?;
/// stream.shutdown().await?; // a FIN after the data
/// # let (mut peer, _) = listener.accept().await?;
/// # let mut got = Vec::new();
/// # peer.read_to_end(&mut got).await?;
/// # assert_eq!(got, b"hello world!");
/// # Ok(())
/// # }
/// ```
pub struct TcpStream {
    pub(crate) stack: Stack,
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("conn", &self.shared.id.as_u64())
            .field("local", &self.shared.local())
            .field("peer", &self.shared.peer())
            .finish()
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        // If the driver is gone there is nothing left to close.
        let _ = self.stack.command(Command::Close(self.shared.id));
    }
}

/// Polls `op`; on `WouldBlock` registers `waker` and tries once more, so a
/// wake-up between the first try and the registration is not lost.
pub(crate) fn poll_io<T>(
    cx: &mut Context<'_>,
    waiters: (&Waiters<2>, usize),
    mut op: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    match op() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        r => return Poll::Ready(r),
    }
    waiters.0.register(waiters.1, cx.waker());
    match op() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl TcpStream {
    pub(crate) fn new(stack: Stack, shared: Arc<Shared>) -> TcpStream {
        TcpStream { stack, shared }
    }

    /// Opens a connection to `addr` on the default stack (see
    /// [`set_default`](crate::set_default)).
    ///
    /// Each address `addr` resolves to is tried in turn until one connects.
    ///
    /// # Errors
    ///
    /// `NotFound` if no default stack is set; otherwise as
    /// [`connect_with`](TcpStream::connect_with).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt; a half-open connection is
    /// aborted in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox() -> std::io::Result<()> {
    /// let stream = tcp_async::TcpStream::connect("10.0.0.2:80").await?;
    /// # drop(stream); Ok(())
    /// # }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let stack = default_stack()?;
        TcpStream::connect_with(&stack, addr).await
    }

    /// Opens a connection to `addr` on `stack`.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` when the peer answers with RST, `TimedOut` when
    /// the SYN goes unanswered for the configured connect timeout,
    /// `HostUnreachable` on an ICMP error, `AddrNotAvailable` when no
    /// ephemeral port is free, `InvalidInput` for port 0 or IPv6-only
    /// addresses.
    ///
    /// # Cancel safety
    ///
    /// As [`connect`](TcpStream::connect).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stack: tcp_async::Stack) -> std::io::Result<()> {
    /// let stream = tcp_async::TcpStream::connect_with(&stack, "10.0.0.2:80").await?;
    /// # drop(stream); Ok(())
    /// # }
    /// ```
    pub async fn connect_with<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for remote in resolve(addr).await? {
            match connect_addr(stack, None, remote, SocketOpts::default()).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.local())
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.peer())
    }

    // ----- reading -----

    /// Reads through `f`; `Ok(0)` only at the end of stream.
    fn try_read_with(
        &self,
        consume: bool,
        mut f: impl FnMut(&mut RecvReader) -> usize,
    ) -> io::Result<usize> {
        let mut attempt = || {
            self.shared.recv.with(|r| {
                let before = r.len();
                (f(r), before, r.capacity())
            })
        };
        let (mut n, mut before, cap) = attempt();
        if n == 0 {
            let flags = self.shared.flags();
            if flags & (PEER_FIN | FAILED | ABORTED | CLOSED) == 0 {
                return Err(would_block());
            }
            // Bytes may have landed between the read and the flag load; the
            // `Acquire` load makes them visible to this second read.
            (n, before, _) = attempt();
            if n == 0 {
                if flags & PEER_FIN != 0 || flags & (FAILED | ABORTED) == 0 {
                    return Ok(0);
                }
                // Linux `sock_error()` reports a connection's error once.
                return match self.shared.take_error(flags) {
                    Some(e) => Err(e),
                    None => Ok(0),
                };
            }
        }
        // The window may open: tell the core once the buffer was at least
        // half full (smaller gains are reported with later reads or ACKs).
        if consume && cap - before < cap.div_ceil(2) {
            self.shared.mark_dirty(DIRTY_RECV);
        }
        Ok(n)
    }

    pub(crate) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        poll_io(cx, (&self.shared.waiters, READ), || {
            self.try_read_with(true, |r| r.read_buf(buf)).map(drop)
        })
    }

    /// Tries to read into `buf` without waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is buffered yet; the connection's error
    /// (`ConnectionReset`, `TimedOut`, ...) once it failed and the buffered
    /// bytes are consumed. `Ok(0)` is the end of stream (or an empty `buf`);
    /// as on Linux, the error is given once (to a read or a write), and
    /// reads return `Ok(0)` after it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stream: tcp_async::TcpStream) -> std::io::Result<()> {
    /// let mut buf = [0; 4096];
    /// loop {
    ///     stream.readable().await?;
    ///     match stream.try_read(&mut buf) {
    ///         Ok(0) => break,
    ///         Ok(n) => println!("read {n} bytes"),
    ///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.try_read_with(true, |r| r.read(buf))
    }

    /// Like [`try_read`](TcpStream::try_read) into the spare capacity of a
    /// `BufMut`, advancing it.
    ///
    /// # Errors
    ///
    /// As [`try_read`](TcpStream::try_read).
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        if !buf.has_remaining_mut() {
            return Ok(0);
        }
        let n = {
            // SAFETY: the slice is only written through `ReadBuf`, which
            // never de-initializes bytes.
            let spare = unsafe { buf.chunk_mut().as_uninit_slice_mut() };
            let mut rb = ReadBuf::uninit(spare);
            self.try_read_with(true, |r| r.read_buf(&mut rb))?;
            rb.filled().len()
        };
        // SAFETY: `ReadBuf` reports `n` bytes at the front of the spare
        // capacity as filled, hence initialized.
        unsafe { buf.advance_mut(n) };
        Ok(n)
    }

    /// Tries to read into several buffers without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_read`](TcpStream::try_read).
    pub fn try_read_vectored(&self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        self.try_read_with(true, |r| {
            let mut total = 0;
            for b in bufs.iter_mut() {
                let n = r.read(b);
                total += n;
                if n < b.len() {
                    break;
                }
            }
            total
        })
    }

    /// Receives data without removing it from the buffer; waits until some
    /// is there. Returns 0 at the end of stream.
    ///
    /// # Errors
    ///
    /// The connection's error once it failed and nothing is buffered.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stream: tcp_async::TcpStream) -> std::io::Result<()> {
    /// let mut b = [0; 10];
    /// let n = stream.peek(&mut b).await?;
    /// # let _ = n; Ok(())
    /// # }
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut rb = ReadBuf::new(buf);
            self.poll_peek(cx, &mut rb)
        })
        .await
    }

    /// Polls for data to peek at; fills `buf` without consuming.
    ///
    /// On `Pending` the task is woken when data (or the end of stream)
    /// arrives; every task polling is woken.
    ///
    /// # Errors
    ///
    /// As [`peek`](TcpStream::peek).
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(0));
        }
        poll_io(cx, (&self.shared.waiters, READ), || {
            let n = self.try_read_with(false, |r| r.peek(buf.initialize_unfilled()))?;
            buf.advance(n);
            Ok(n)
        })
    }

    // ----- writing -----

    /// Writes through `f`; `empty` if there is nothing to write.
    ///
    /// The state is checked before the length, as Linux `tcp_sendmsg()`
    /// tests `SEND_SHUTDOWN` before it looks at the length: writing nothing
    /// to a shut-down or failed connection fails too.
    fn try_write_with(
        &self,
        empty: bool,
        f: impl FnOnce(&mut SendWriter) -> usize,
    ) -> io::Result<usize> {
        let flags = self.shared.flags();
        if flags & (FAILED | ABORTED) != 0 {
            // Linux `sock_error()` reports a connection's error once.
            let e = self.shared.take_error(flags);
            return Err(e.unwrap_or_else(|| io::ErrorKind::BrokenPipe.into()));
        }
        if flags & (WRITE_SHUT | CLOSED) != 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if flags & CONNECTED == 0 {
            return Err(would_block());
        }
        if empty {
            return Ok(0);
        }
        // The shutdown is checked again under the writer's role: the driver
        // sets `WRITE_SHUT` and then takes the role once
        // (`Shared::settle_writes`) before it places the FIN, so a write
        // either lands before that FIN or sees the flag here. Checked only
        // outside, a write racing a stop could pass the check, land after
        // the FIN and report bytes that are never sent.
        let n = self.shared.send.with(|w| {
            if self.shared.flags() & WRITE_SHUT != 0 {
                None
            } else {
                Some(f(w))
            }
        });
        let Some(n) = n else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        if n == 0 {
            return Err(would_block());
        }
        self.shared.mark_dirty(DIRTY_SEND);
        Ok(n)
    }

    pub(crate) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_io(cx, (&self.shared.waiters, WRITE), || {
            self.try_write_with(buf.is_empty(), |w| w.write(buf))
        })
    }

    pub(crate) fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let empty = bufs.iter().all(|b| b.is_empty());
        poll_io(cx, (&self.shared.waiters, WRITE), || {
            self.try_write_with(empty, |w| w.write_vectored(bufs))
        })
    }

    /// Tries to write `buf` without waiting; returns how much was taken.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the send buffer is full; `BrokenPipe` after
    /// shutdown; the connection's error once it failed (both even for an
    /// empty `buf`). As on Linux, the error is given once (to a read or a
    /// write), and writes fail with `BrokenPipe` after it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stream: tcp_async::TcpStream) -> std::io::Result<()> {
    /// stream.writable().await?;
    /// let n = stream.try_write(b"hello")?;
    /// # let _ = n; Ok(())
    /// # }
    /// ```
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write_with(buf.is_empty(), |w| w.write(buf))
    }

    /// Tries to write several buffers without waiting (gathered write).
    ///
    /// # Errors
    ///
    /// As [`try_write`](TcpStream::try_write).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let empty = bufs.iter().all(|b| b.is_empty());
        self.try_write_with(empty, |w| w.write_vectored(bufs))
    }

    /// Half-closes: queues a FIN after the data already written. Reading
    /// keeps working. Idempotent.
    ///
    /// A connection that failed (or whose stack stopped) is not connected
    /// any more, and tokio's `shutdown` maps ENOTCONN to `Ok(())` on purpose
    /// (tokio-rs/tokio#4665): so does this one. It is thus the one
    /// operation that does not report [`StackStopped`](crate::StackStopped),
    /// whose kind is `NotConnected`.
    pub(crate) fn shutdown_priv(&self) -> io::Result<()> {
        let flags = self.shared.flags();
        if flags & (WRITE_SHUT | FAILED | ABORTED) != 0 {
            return Ok(());
        }
        let prev = self.shared.flags.fetch_or(WRITE_SHUT, Ordering::AcqRel);
        if prev & WRITE_SHUT == 0 {
            // The driver is gone only when the stack stopped: ENOTCONN, `Ok`.
            let _ = self.stack.command(Command::Shutdown(self.shared.id));
        }
        Ok(())
    }

    // ----- readiness -----

    fn readiness(&self) -> Ready {
        let flags = self.shared.flags();
        let (buffered, free) = (
            self.shared.recv.with(|r| r.len()),
            self.shared.send.with(|w| w.free()),
        );
        let failed = flags & (FAILED | ABORTED) != 0;
        let mut ready = Ready::EMPTY;
        if buffered > 0 || failed || flags & (PEER_FIN | CLOSED) != 0 {
            ready |= Ready::READABLE;
        }
        if failed || flags & (PEER_FIN | CLOSED) != 0 {
            ready |= Ready::READ_CLOSED;
        }
        let write_closed = failed || flags & (WRITE_SHUT | CLOSED) != 0;
        if write_closed || (flags & CONNECTED != 0 && free > 0) {
            ready |= Ready::WRITABLE;
        }
        if write_closed {
            ready |= Ready::WRITE_CLOSED;
        }
        // tokio reports `Ready::ERROR` to `Interest::ERROR` while the socket
        // has a pending error (Linux: `EPOLLERR` while `sk_err` is set, as
        // `tcp_reset()` sets it, until `sock_error()` reports it once).
        if flags & ABORTED != 0 || flags & (FAILED | ERROR_TAKEN) == FAILED {
            ready |= Ready::ERROR;
        }
        ready
    }

    fn ready_for(&self, interest: Interest) -> Ready {
        let all = self.readiness();
        let mut ready = Ready::EMPTY;
        if interest.is_readable() {
            if all.is_readable() {
                ready |= Ready::READABLE;
            }
            if all.is_read_closed() {
                ready |= Ready::READ_CLOSED;
            }
        }
        if interest.is_writable() {
            if all.is_writable() {
                ready |= Ready::WRITABLE;
            }
            if all.is_write_closed() {
                ready |= Ready::WRITE_CLOSED;
            }
        }
        if interest.is_error() && all.is_error() {
            ready |= Ready::ERROR;
        }
        ready
    }

    /// On a stopped stack, the readiness fails with `StackStopped`, as
    /// tokio's fails once its I/O driver is gone; except that a reader
    /// still sees the data received before the stop, and the end of stream
    /// if the peer had closed, as its reads do.
    fn stopped(&self, interest: Interest) -> Option<io::Error> {
        let flags = self.shared.flags();
        if flags & ABORTED == 0 {
            return None;
        }
        let readable = interest.is_readable()
            && (flags & PEER_FIN != 0 || self.shared.recv.with(|r| r.len()) > 0);
        (!readable).then(crate::error::stack_stopped)
    }

    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<Ready>> {
        if let Some(e) = self.stopped(interest) {
            return Poll::Ready(Err(e));
        }
        let ready = self.ready_for(interest);
        if !ready.is_empty() {
            return Poll::Ready(Ok(ready));
        }
        if interest.is_readable() {
            self.shared.waiters.register(READ, cx.waker());
        }
        // A failure wakes both directions (`Shared::fail`). `ERROR` alone
        // takes the write direction's slot: a writer waits only on a full
        // send buffer, a reader on every idle connection.
        if interest.is_writable() || (interest.is_error() && !interest.is_readable()) {
            self.shared.waiters.register(WRITE, cx.waker());
        }
        if let Some(e) = self.stopped(interest) {
            return Poll::Ready(Err(e));
        }
        let ready = self.ready_for(interest);
        if ready.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(ready))
        }
    }

    /// Waits for any of the requested readiness. Readiness may be spurious:
    /// a following `try_*` call can still return `WouldBlock`.
    ///
    /// Several tasks may wait at once, for the same direction too: each is
    /// woken (as tokio wakes every waiter). A wait for [`Interest::ERROR`]
    /// alone waits with the writers; it is ready once the connection
    /// failed (reset, timed out, stack shut down), as `EPOLLERR` is.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) once the
    /// stack has stopped, as tokio's readiness fails once its I/O driver
    /// is gone; a wait that includes [`Interest::READABLE`] still resolves
    /// while data received before the stop (or the peer's end of stream)
    /// is there to read. A failed connection is not an error here: it is
    /// ready, and the error comes with the next read or write.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use tokio::io::Interest;
    /// # async fn dox(stream: tcp_async::TcpStream) -> std::io::Result<()> {
    /// let ready = stream.ready(Interest::READABLE | Interest::WRITABLE).await?;
    /// if ready.is_readable() { /* try_read */ }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        poll_fn(|cx| self.poll_ready(cx, interest)).await
    }

    /// Waits until the stream may be readable (data, end of stream or error).
    ///
    /// # Errors
    ///
    /// As [`ready`](TcpStream::ready).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(drop)
    }

    /// Polls for read readiness.
    ///
    /// # Errors
    ///
    /// As [`ready`](TcpStream::ready).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Interest::READABLE).map_ok(drop)
    }

    /// Waits until the stream may be writable (buffer space or error).
    ///
    /// # Errors
    ///
    /// As [`ready`](TcpStream::ready).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(drop)
    }

    /// Polls for write readiness.
    ///
    /// # Errors
    ///
    /// As [`ready`](TcpStream::ready).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Interest::WRITABLE).map_ok(drop)
    }

    // ----- options -----

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`).
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.shared.opts.nodelay.load(Ordering::Relaxed))
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn dox(stream: tcp_async::TcpStream) -> std::io::Result<()> {
    /// stream.set_nodelay(true)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stack
            .set_option(self.shared.id, SockOpt::NoDelay(nodelay))?;
        self.shared.opts.nodelay.store(nodelay, Ordering::Relaxed);
        Ok(())
    }

    /// The `SO_LINGER` value last set.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.shared.opts.linger())
    }

    /// Sets `SO_LINGER`, which takes effect when the stream is dropped:
    ///
    /// - `None` (the default): the graceful close continues in the
    ///   background; the data written, then the FIN, reach the peer.
    /// - `Some(Duration::ZERO)` ([`set_zero_linger`](TcpStream::set_zero_linger)):
    ///   drop aborts the connection with RST, discarding unsent data.
    /// - `Some(timeout)`: a kernel's `close()` would block until the data
    ///   is acknowledged or the timeout passes; a drop cannot block in
    ///   async code, so the stack keeps the connection closing in the
    ///   background and, if data (or the FIN) is still unacknowledged when
    ///   `timeout` has passed since the drop, resets it (as BSD and
    ///   Windows end a linger; Linux would instead only stop waiting).
    ///   The wait is thus bounded by `timeout` as with a kernel.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        let zero = dur == Some(Duration::ZERO);
        let was_zero = self.shared.opts.linger() == Some(Duration::ZERO);
        if zero != was_zero {
            self.stack
                .set_option(self.shared.id, SockOpt::LingerZero(zero))?;
        }
        self.shared.opts.set_linger(dur);
        Ok(())
    }

    /// `SO_LINGER` with a zero timeout: dropping the stream resets the
    /// connection (RST) instead of closing it gracefully. Same as
    /// `set_linger(Some(Duration::ZERO))`.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// Whether `TCP_QUICKACK` is set.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn quickack(&self) -> io::Result<bool> {
        Ok(self.shared.opts.quickack.load(Ordering::Relaxed))
    }

    /// Sets `TCP_QUICKACK`: while set, received data is acknowledged at
    /// once instead of after the delayed-ACK timer, and setting it sends a
    /// delayed ACK now. Linux's quick-ack mode is temporary (the kernel
    /// leaves it after a few ACKs, so applications set it again after
    /// reads); here it lasts until cleared, which is what those
    /// applications want.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_quickack(&self, quickack: bool) -> io::Result<()> {
        self.stack
            .set_option(self.shared.id, SockOpt::QuickAck(quickack))?;
        self.shared.opts.quickack.store(quickack, Ordering::Relaxed);
        Ok(())
    }

    /// Whether keep-alive probes are on (`SO_KEEPALIVE`).
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self.shared.opts.keepalive.load(Ordering::Relaxed))
    }

    /// Turns keep-alive probes on or off (`SO_KEEPALIVE`, socket2's
    /// `set_keepalive`), with the timing of
    /// [`set_keepalive_params`](TcpStream::set_keepalive_params) or the
    /// stack's `Config`.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.stack
            .set_option(self.shared.id, SockOpt::KeepAlive(keepalive))?;
        self.shared
            .opts
            .keepalive
            .store(keepalive, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the keep-alive timing, as socket2's
    /// `set_tcp_keepalive(&TcpKeepalive::new().with_time(idle)
    /// .with_interval(interval).with_retries(count))`: `TCP_KEEPIDLE` (idle
    /// time before the first probe), `TCP_KEEPINTVL` (between probes) and
    /// `TCP_KEEPCNT` (unanswered probes before the connection is dropped,
    /// at least 1). It does not turn keep-alive on: see
    /// [`set_keepalive`](TcpStream::set_keepalive).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero `idle` or `interval` (Linux: EINVAL below
    /// one second); `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_keepalive_params(
        &self,
        idle: Duration,
        interval: Duration,
        count: u32,
    ) -> io::Result<()> {
        if idle.is_zero() || interval.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "keep-alive idle time and interval must be above zero",
            ));
        }
        self.stack.set_option(
            self.shared.id,
            SockOpt::KeepAliveParams {
                idle,
                interval,
                probes: count,
            },
        )
    }

    /// Sets `TCP_USER_TIMEOUT` (socket2's `set_tcp_user_timeout`): how long
    /// sent data may stay unacknowledged before the connection is dropped
    /// with `TimedOut`. `None` restores the stack's configured value.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_user_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.unwrap_or(self.stack.config().user_timeout);
        self.stack
            .set_option(self.shared.id, SockOpt::UserTimeout(timeout))
    }

    /// Sets `TCP_CONGESTION` (socket2's `set_tcp_congestion`, which takes
    /// the name: `b"cubic"` is `Cubic`, `b"reno"` is `NewReno`): switches
    /// this connection's congestion controller.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_congestion_control(&self, cc: tcp_stack::CongestionControl) -> io::Result<()> {
        self.stack
            .set_option(self.shared.id, SockOpt::CongestionControl(cc))
    }

    /// The IP TTL of this connection's datagrams.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.shared.opts.ttl.load(Ordering::Relaxed))
    }

    /// Sets the IP TTL of this connection's datagrams.
    ///
    /// # Errors
    ///
    /// `InvalidInput` above 255; `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl8 = u8::try_from(ttl)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TTL above 255"))?;
        self.stack.set_option(self.shared.id, SockOpt::Ttl(ttl8))?;
        self.shared.opts.ttl.store(ttl, Ordering::Relaxed);
        Ok(())
    }

    /// `SO_ERROR`: the error pending on the socket, cleared by the call.
    ///
    /// As Linux `sock_getsockopt(SO_ERROR)`: the error that failed the
    /// connection (a reset, a timeout) if no read or write reported it yet
    /// (it is then not reported again), else the soft error an ICMP message
    /// left on the live connection (`HostUnreachable`,
    /// `NetworkUnreachable`, `ConnectionRefused`), else `None`.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self.shared.so_error())
    }

    /// A snapshot of the connection's internals (state, RTT, RTO, window,
    /// byte and retransmission counters), like Linux `TCP_INFO`.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped or the connection is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn tcp_info(&self) -> io::Result<TcpInfo> {
        let id = self.shared.id;
        self.stack
            .request(|reply| Command::Info(id, reply))
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection is gone"))
    }

    // ----- splitting -----

    /// Splits into a borrowed read half and write half, usable
    /// concurrently (for example with `tokio::join!`).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split(self)
    }

    /// Splits into owned halves that can move to different tasks.
    /// [`OwnedReadHalf::reunite`] puts them back together.
    ///
    /// Dropping the [`OwnedWriteHalf`] shuts the write direction down (as
    /// in Tokio); use [`OwnedWriteHalf::forget`] to avoid that.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }
}

/// Active open of one address; waits for the handshake.
pub(crate) async fn connect_addr(
    stack: &Stack,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    opts: SocketOpts,
) -> io::Result<TcpStream> {
    let shared = stack.connect(local, remote, opts).await?;
    // From here on, dropping `stream` (a cancelled connect) closes it.
    let stream = TcpStream::new(stack.clone(), shared);
    poll_fn(|cx| {
        poll_io(cx, (&stream.shared.waiters, WRITE), || {
            let flags = stream.shared.flags();
            if flags & (FAILED | ABORTED) != 0 {
                Err(stream.shared.error(flags))
            } else if flags & CONNECTED != 0 {
                Ok(())
            } else if flags & CLOSED != 0 {
                Err(io::ErrorKind::ConnectionRefused.into())
            } else {
                Err(would_block())
            }
        })
    })
    .await?;
    Ok(stream)
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// A no-op: written bytes are already in the TCP send buffer.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Queues a FIN after the written data and returns; reading continues.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_priv())
    }
}
