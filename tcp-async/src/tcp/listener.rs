//! [`TcpListener`]: a listening socket, like `tokio::net::TcpListener`.

use crate::driver::{Command, SocketOpts};
use crate::shared::{CachedOpts, ListenerShared};
use crate::stack::{default_stack, Stack};
use crate::tcp::addr::{resolve, ToSocketAddrs};
use crate::tcp::ports::{BindFlags, Reservation};
use crate::tcp::stream::TcpStream;
use futures::Stream;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Backlog of listeners made by `bind` (Tokio uses 1024 as well).
pub(crate) const DEFAULT_BACKLOG: usize = 1024;

/// A TCP listening socket of a user-space [`Stack`], with the API of
/// `tokio::net::TcpListener`.
///
/// Dropping it closes the listener; connections that completed the
/// handshake but were not accepted yet are reset.
///
/// # Examples
///
/// An echo server, as with `tokio::net` (`bind` uses the default stack,
/// here `server`):
///
/// ```
/// use tcp_async::TcpListener;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # use tcp_async::{device::MemoryDevice, Config, Stack};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # // Two stacks joined by an in-memory link, 10.0.0.1 and 10.0.0.2.
/// # let (a, b) = MemoryDevice::pair(1500);
/// # let server = Stack::builder(a).config(Config::with_addr("10.0.0.1".parse().unwrap())).build()?;
/// # let client = Stack::builder(b).config(Config::with_addr("10.0.0.2".parse().unwrap())).build()?;
/// # server.set_runtime_default()?;
/// let listener = TcpListener::bind("10.0.0.1:8080").await?;
/// tokio::spawn(async move {
///     loop {
///         let (mut socket, _peer) = listener.accept().await?;
///         tokio::spawn(async move {
///             let (mut r, mut w) = socket.split();
///             tokio::io::copy(&mut r, &mut w).await
///         });
///     }
///     #[allow(unreachable_code)]
///     Ok::<_, std::io::Error>(())
/// });
/// # let mut c = tcp_async::TcpStream::connect_with(&client, "10.0.0.1:8080").await?;
/// # c.write_all(b"echo").await?;
/// # let mut buf = [0; 4];
/// # c.read_exact(&mut buf).await?;
/// # assert_eq!(&buf, b"echo");
/// # Ok(())
/// # }
/// ```
pub struct TcpListener {
    stack: Stack,
    shared: Arc<ListenerShared>,
    /// The address held in the stack's bind table; released after the
    /// close command is sent (`Drop` runs before the fields drop).
    _port: Reservation,
    /// Once the stack stopped: the pause before the next error (see
    /// [`TcpListener::accept`]).
    stopped: Mutex<Stopped>,
}

/// How `accept` fails once the stack stopped.
#[derive(Default)]
struct Stopped {
    /// The error was returned at least once.
    reported: bool,
    /// The pause before the next one, while it runs.
    pause: Option<Pin<Box<Sleep>>>,
}

/// The pause between two `accept` errors after the stack stopped, so a
/// server looping on `accept` and ignoring errors does not spin (axum's
/// `serve` pauses as long after an accept error).
pub(crate) const STOPPED_RETRY: Duration = Duration::from_secs(1);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.shared.local)
            .finish()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = self
            .stack
            .command(Command::CloseListener(self.shared.clone()));
    }
}

impl TcpListener {
    /// Listens on `addr` on the default stack (see
    /// [`set_default`](crate::set_default)). Port 0 picks a free port; see
    /// [`local_addr`](TcpListener::local_addr).
    ///
    /// # Errors
    ///
    /// `NotFound` if no default stack is set; otherwise as
    /// [`bind_with`](TcpListener::bind_with).
    ///
    /// # Cancel safety
    ///
    /// As [`bind_with`](TcpListener::bind_with).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox() -> std::io::Result<()> {
    /// let listener = tcp_async::TcpListener::bind("10.0.0.1:0").await?;
    /// println!("listening on {}", listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let stack = default_stack()?;
        TcpListener::bind_with(&stack, addr).await
    }

    /// Listens on `addr` on `stack`. Each address `addr` resolves to is
    /// tried in turn until one can be bound.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the address is taken; `AddrNotAvailable` if the IP is
    /// not one of the stack's (either family; `[::]` is dual stack, as Linux
    /// with `bindv6only=0`); `NotConnected`
    /// ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: only the resolution of `addr` waits, and the listener
    /// is created when the future completes; a future dropped before
    /// leaves nothing bound.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stack: tcp_async::Stack) -> std::io::Result<()> {
    /// let listener = tcp_async::TcpListener::bind_with(&stack, "10.0.0.1:80").await?;
    /// # drop(listener); Ok(())
    /// # }
    /// ```
    pub async fn bind_with<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        let mut last = None;
        // As tokio's `bind`: `SO_REUSEADDR` set, backlog 1024.
        let flags = BindFlags {
            reuseaddr: true,
            ..BindFlags::default()
        };
        for local in resolve(addr).await? {
            let listener = stack
                .inner
                .ports
                .reserve(local, flags, true)
                .and_then(|port| {
                    TcpListener::start(stack, port, DEFAULT_BACKLOG, SocketOpts::default())
                });
            match listener {
                Ok(listener) => return Ok(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    /// A listener on the address `port` holds (already marked listening
    /// in the bind table); the driver creates the core listener from the
    /// command this sends, without anyone waiting for it.
    pub(crate) fn start(
        stack: &Stack,
        port: Reservation,
        backlog: usize,
        opts: SocketOpts,
    ) -> io::Result<TcpListener> {
        let c = stack.config();
        let cached = CachedOpts::new(
            opts.nodelay.unwrap_or(c.nodelay),
            opts.keepalive.unwrap_or(c.keepalive),
            u32::from(opts.ttl.unwrap_or(c.ttl)),
            opts.linger,
        );
        cached.tos.store(opts.tos.unwrap_or(0), Ordering::Relaxed);
        let shared = Arc::new(ListenerShared {
            id: Default::default(),
            error: Default::default(),
            local: port.addr,
            queue: Default::default(),
            // Linux queues `backlog + 1` (`sk_acceptq_is_full()` tests `>`).
            backlog: backlog.saturating_add(1),
            waker: Default::default(),
            closed: Default::default(),
            opts: cached,
        });
        stack.command(Command::Listen {
            listener: shared.clone(),
            opts,
        })?;
        Ok(TcpListener {
            stack: stack.clone(),
            shared,
            _port: port,
            stopped: Mutex::default(),
        })
    }

    /// Waits for a new connection; returns it with the peer's address.
    ///
    /// Several tasks may wait at once; each is woken when a connection
    /// arrives (one of them gets it, the others wait again).
    ///
    /// # Errors
    ///
    /// Once the stack was shut down (or the driver stopped), `NotConnected`
    /// ([`StackStopped`](crate::StackStopped)),
    /// the error every command to a stopped stack gives: at once the first
    /// time, then after a pause of one second each time, so a server that
    /// loops on `accept` and ignores errors does not spin. It is not
    /// `ConnectionAborted`, which servers (hyper, axum) take for one failed
    /// connection and retry at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, no connection is lost (it
    /// stays in the queue for the next call).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(listener: tcp_async::TcpListener) -> std::io::Result<()> {
    /// let (stream, peer) = listener.accept().await?;
    /// println!("connection from {peer}");
    /// # drop(stream); Ok(())
    /// # }
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a new connection. On `Pending` the task is woken when one
    /// is ready; every task polling is woken.
    ///
    /// # Errors
    ///
    /// As [`accept`](TcpListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        if let Some(r) = self.try_pop() {
            return self.pace(cx, r);
        }
        self.shared.waker.register(0, cx.waker());
        match self.try_pop() {
            Some(r) => self.pace(cx, r),
            None => Poll::Pending,
        }
    }

    /// Delays the errors after the first by [`STOPPED_RETRY`].
    fn pace(
        &self,
        cx: &mut Context<'_>,
        r: io::Result<(TcpStream, SocketAddr)>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        if r.is_ok() {
            return Poll::Ready(r);
        }
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if !stopped.reported {
            stopped.reported = true;
            return Poll::Ready(r);
        }
        let pause = stopped
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(STOPPED_RETRY)));
        if pause.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        stopped.pause = None;
        Poll::Ready(r)
    }

    fn try_pop(&self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        let conn = self.shared.queue().pop_front();
        match conn {
            Some(shared) => {
                // The core counts this queue against the backlog and may
                // hold more: tell the driver (one command per accept).
                let _ = self.stack.command(Command::Refill(self.shared.clone()));
                let peer = shared.peer();
                Some(Ok((TcpStream::new(self.stack.clone(), shared), peer)))
            }
            None if self.shared.closed.load(Ordering::Acquire) => {
                Some(Err(match self.shared.error.get() {
                    Some(&e) => e.into(),
                    // Closed without an error: the stack stopped (or is
                    // stopping, which takes nothing new either).
                    None => crate::error::stack_stopped(),
                }))
            }
            None => None,
        }
    }

    /// The local address, with the port chosen if bound to port 0.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.local)
    }

    /// The IP TTL accepted connections start with.
    ///
    /// # Errors
    ///
    /// Never fails; `io::Result` for parity with `tokio::net`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.shared.opts.ttl.load(Ordering::Relaxed))
    }

    /// Sets the IP TTL of connections accepted from now on (a listener
    /// sends nothing itself; RSTs it provokes use the stack's TTL).
    ///
    /// # Errors
    ///
    /// `InvalidInput` above 255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        if ttl > 255 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "TTL above 255"));
        }
        self.shared.opts.ttl.store(ttl, Ordering::Relaxed);
        Ok(())
    }

    /// The stack this listener belongs to.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// A [`Stream`] of accepted connections (like `tokio_stream`'s
    /// `TcpListenerStream`), borrowing the listener.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A [`Stream`] of accepted connections that owns the listener.
    pub fn into_incoming(self) -> IntoIncoming {
        IntoIncoming { listener: self }
    }
}

/// Accepted connections as a [`Stream`]; from [`TcpListener::incoming`].
/// It never ends; errors are yielded as items.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(s, _)| s)))
    }
}

/// Accepted connections as a [`Stream`] owning the listener; from
/// [`TcpListener::into_incoming`].
#[derive(Debug)]
pub struct IntoIncoming {
    listener: TcpListener,
}

impl IntoIncoming {
    /// The listener back.
    pub fn into_inner(self) -> TcpListener {
        self.listener
    }
}

impl Stream for IntoIncoming {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(s, _)| s)))
    }
}
