//! The [`Stack`] handle, its [`Builder`], and the ambient default stack.

use crate::device::{Device, Medium};
use crate::driver::{Command, Driver, SocketOpts};
use crate::shared::Shared;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tcp_stack::{Config, ConnId, ListenerInfo, NeighbourInfo, SockOpt, Stats, TcpInfo};
use tokio::runtime::{self, Handle};
use tokio::sync::{mpsc, oneshot};

/// A handle to a user-space TCP/IP stack (IPv4 and IPv6) driven by a background task.
///
/// Cloning is cheap (one reference count). Sockets created on a stack hold a
/// handle too, so, like a kernel, the stack keeps running as long as any
/// [`Stack`], [`TcpListener`](crate::TcpListener), [`TcpStream`](crate::TcpStream)
/// or split half exists. When the last one is dropped the driver goes on
/// until the graceful closes in progress are done (the data written before
/// a drop, then the FIN, reach the peer; see the crate docs) and stops.
/// [`Stack::shutdown`] stops it gracefully (a FIN on every connection, a
/// bounded wait), [`Stack::abort`] at once (a RST on every connection); if
/// the runtime running the driver shuts down, the driver stops with it.
/// Either way every socket of the stack then fails instead of waiting.
///
/// # Examples
///
/// ```
/// use tcp_async::{device::MemoryDevice, Config, Stack, TcpListener, TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, b) = MemoryDevice::pair(1500);
/// let stack = Stack::builder(a)
///     .config(Config::with_addr("10.0.0.1".parse().unwrap()))
///     .build()?;
/// let peer = Stack::builder(b)
///     .config(Config::with_addr("10.0.0.2".parse().unwrap()))
///     .build()?;
/// let listener = TcpListener::bind_with(&stack, "10.0.0.1:80").await?;
/// let mut client = TcpStream::connect_with(&peer, "10.0.0.1:80").await?;
/// let (mut server, from) = listener.accept().await?;
/// assert_eq!(from, client.local_addr()?);
/// server.write_all(b"hello").await?;
/// let mut buf = [0; 5];
/// client.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
///
/// // Once the stack stops, its sockets fail with one error.
/// stack.abort().await;
/// let err = server.write_all(b"more").await.unwrap_err();
/// assert!(tcp_async::is_stack_stopped(&err));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Stack {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    cmd_tx: mpsc::UnboundedSender<Command>,
    pub(crate) config: Config,
    /// Addresses and ports bound by this stack's sockets (`bind`, `listen`).
    pub(crate) ports: Arc<crate::tcp::ports::Ports>,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("addrs", &self.inner.config.addrs)
            .field("mtu", &self.inner.config.mtu)
            .finish()
    }
}

/// Configures and starts a [`Stack`]; see [`Stack::builder`].
pub struct Builder<D> {
    device: D,
    config: Config,
    offloads: bool,
}

impl<D: Device> fmt::Debug for Builder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("offloads", &self.offloads)
            .finish_non_exhaustive()
    }
}

impl<D: Device> Builder<D> {
    /// Uses `config` instead of [`Config::default`]. Its `mtu` is lowered to
    /// the device's if larger.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Use the device's [`Offloads`](crate::device::Offloads) (default
    /// `true`): TCP super-packets to a device with segmentation offload,
    /// checksums the device vouches for not checked again. `false` makes
    /// the driver treat the device as a plain one (packets of up to the MTU
    /// out, every checksum checked); a TUN opened with offloads may still
    /// deliver super-packets, which the stack accepts either way.
    pub fn offloads(mut self, offloads: bool) -> Self {
        self.offloads = offloads;
        self
    }

    /// Starts the driver task on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the configuration has no address, or if
    /// [`Config::ethernet`] is set on a device that is not an Ethernet one
    /// ([`Device::medium`]) or missing on one that is; `Other` if called
    /// outside a Tokio runtime.
    pub fn build(self) -> io::Result<Stack> {
        let Builder {
            device,
            mut config,
            offloads,
        } = self;
        if config.addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the stack needs at least one address",
            ));
        }
        // The core frames its own packets exactly when the device is a
        // link-layer one.
        match (device.medium(), config.ethernet.is_some()) {
            (Medium::Ethernet, false) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an Ethernet device needs Config::ethernet (Config::with_ethernet(mac, \
                     addresses with prefixes), the MAC from Device::mac_address)",
                ))
            }
            (Medium::Ip, true) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "Config::ethernet is set but the device carries bare IP packets (a TUN): \
                     leave it None",
                ))
            }
            _ => {}
        }
        config.mtu = config.mtu.min(device.mtu());
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(device, config.clone(), offloads, cmd_rx);
        handle.spawn(driver.run());
        Ok(Stack {
            inner: Arc::new(Inner {
                cmd_tx,
                ports: Arc::new(crate::tcp::ports::Ports::new(&config)),
                config,
            }),
        })
    }
}

impl Stack {
    /// A builder for a stack sending and receiving through `device`.
    pub fn builder<D: Device>(device: D) -> Builder<D> {
        Builder {
            device,
            config: Config::default(),
            offloads: true,
        }
    }

    /// The configuration the stack runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Makes this stack the process-wide default, used by
    /// [`TcpListener::bind`](crate::TcpListener::bind),
    /// [`TcpStream::connect`](crate::TcpStream::connect) and
    /// [`TcpSocket::new_v4`](crate::TcpSocket::new_v4) when no scoped or
    /// runtime default is set. Same as [`set_default`].
    pub fn set_default(&self) {
        set_default(self.clone());
    }

    /// Makes this stack the default of the current Tokio runtime. Same as
    /// [`set_runtime_default`].
    ///
    /// # Errors
    ///
    /// `Other` if called outside a Tokio runtime.
    pub fn set_runtime_default(&self) -> io::Result<()> {
        set_runtime_default(self.clone()).map(drop)
    }

    /// Makes this stack the default of the current thread until the guard
    /// is dropped, which restores the previous one (like
    /// `tokio::runtime::Handle::enter` or tracing's `set_default`). It
    /// comes before the runtime's and the process-wide default (see
    /// [`default_stack`]), so parallel tests need not race on those.
    ///
    /// The scope is the thread: hold the guard around synchronous code, or
    /// across `.await`s only on a current-thread runtime (a multi-thread
    /// runtime may resume the task elsewhere; use
    /// [`set_runtime_default`](Stack::set_runtime_default) there). Guards
    /// should be dropped in the reverse order of creation.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stack: tcp_async::Stack) -> std::io::Result<()> {
    /// let _guard = stack.enter();
    /// let listener = tcp_async::TcpListener::bind("10.0.0.1:80").await?; // on `stack`
    /// # drop(listener); Ok(())
    /// # }
    /// ```
    pub fn enter(&self) -> DefaultGuard {
        let prev = SCOPED.with(|s| s.borrow_mut().replace(self.clone()));
        DefaultGuard {
            prev,
            _not_send: PhantomData,
        }
    }

    /// A snapshot of the stack's counters; [`Stats::nstat`] names them as
    /// `nstat` does, and its `Display` prints them so.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn stats(&self) -> io::Result<Stats> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Stats(tx))?;
        rx.await.map_err(|_| gone())
    }

    /// A snapshot of every connection of the stack, like `ss -tnai`: its
    /// addresses, state and [`TcpInfo`], in any state (those the
    /// application dropped that are still closing, and TIME-WAIT, included).
    /// Each prints as an `ss -tni` line (`TcpInfo`'s `Display`).
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn connections(&self) -> io::Result<Vec<TcpInfo>> {
        self.request(Command::Connections).await
    }

    /// A snapshot of every listener, like `ss -tln`; each prints as an
    /// `ss` line.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn listeners(&self) -> io::Result<Vec<ListenerInfo>> {
        self.request(Command::Listeners).await
    }

    /// The neighbour cache of a stack on an Ethernet device (ARP, RFC 826;
    /// NDP, RFC 4861 7.3.2), like `ip neigh`: each neighbour's address,
    /// link-layer address once resolved, and state. Empty on an IP device
    /// (a TUN), where the kernel resolves.
    ///
    /// # Errors
    ///
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn neighbours(&self) -> io::Result<Vec<NeighbourInfo>> {
        self.request(Command::Neighbours).await
    }

    /// How long [`shutdown`](Stack::shutdown) lets connections finish
    /// before it resets them: 5 seconds.
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

    /// Stops the stack gracefully, waiting at most
    /// [`SHUTDOWN_TIMEOUT`](Stack::SHUTDOWN_TIMEOUT); see
    /// [`shutdown_timeout`](Stack::shutdown_timeout).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the stop goes on even if this future is dropped.
    pub async fn shutdown(&self) {
        self.shutdown_timeout(Stack::SHUTDOWN_TIMEOUT).await;
    }

    /// Stops the stack gracefully, waiting at most `timeout`:
    ///
    /// 1. new connections and listeners are refused (`NotConnected`,
    ///    [`StackStopped`](crate::StackStopped)), and
    ///    every listener is closed (connections it had not handed to
    ///    `accept` are reset, as a kernel's closing listener does);
    /// 2. every open connection gets a FIN after the data already written,
    ///    as after `shutdown(SHUT_WR)`: writes now fail with `BrokenPipe`,
    ///    reads go on and see the peer's data and FIN; connections already
    ///    dropped go on closing;
    /// 3. once no connection has anything left to exchange (all CLOSED or
    ///    in TIME-WAIT, as when the last handle is dropped), or when
    ///    `timeout` runs out, whichever comes first, what remains is reset,
    ///    the driver stops, and every socket of this stack fails with
    ///    `NotConnected` ([`StackStopped`](crate::StackStopped)).
    ///
    /// A peer that never closes its side thus holds the stop for `timeout`.
    /// Returns once the driver task has finished. Calling it again only
    /// brings the deadline closer; [`abort`](Stack::abort) ends the wait.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the stop goes on even if this future is dropped.
    pub async fn shutdown_timeout(&self, timeout: Duration) {
        self.stop(Some(timeout)).await;
    }

    /// Stops the stack at once: every connection is reset (its peer gets a
    /// RST, as nothing will answer for it any more, RFC 9293 3.10.5),
    /// packets already due are flushed, then every open socket of this
    /// stack fails with `NotConnected` ([`StackStopped`](crate::StackStopped)).
    /// Returns once the driver task has finished. Calling it again is a
    /// no-op.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the stop happens even if this future is dropped.
    pub async fn abort(&self) {
        self.stop(None).await;
    }

    async fn stop(&self, grace: Option<Duration>) {
        let (reply, rx) = oneshot::channel();
        if self.command(Command::Stop { grace, reply }).is_ok() {
            // An error means the driver is gone: stopped all the same.
            let _ = rx.await;
        }
    }

    pub(crate) fn command(&self, cmd: Command) -> io::Result<()> {
        self.inner.cmd_tx.send(cmd).map_err(|_| gone())
    }

    /// Completes once the driver has ended (its command channel closed).
    pub(crate) fn driver_gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = self.inner.cmd_tx.clone();
        async move { tx.closed().await }
    }

    /// Sends a command and waits for its reply.
    pub(crate) async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> io::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.command(make(tx))?;
        rx.await.map_err(|_| gone())
    }

    pub(crate) async fn connect(
        &self,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        opts: SocketOpts,
    ) -> io::Result<Arc<Shared>> {
        self.request(|reply| Command::Connect {
            local,
            remote,
            opts,
            reply,
        })
        .await?
    }

    /// Fire-and-forget option change; the handle keeps the cached value.
    pub(crate) fn set_option(&self, conn: ConnId, opt: SockOpt) -> io::Result<()> {
        self.command(Command::SetOption(conn, opt))
    }
}

/// The error of a command to a stopped stack (the driver is gone, or is
/// stopping and takes nothing new): [`StackStopped`](crate::StackStopped).
pub(crate) fn gone() -> io::Error {
    crate::error::stack_stopped()
}

static DEFAULT: RwLock<Option<Stack>> = RwLock::new(None);

/// Per-runtime defaults, keyed by the runtime's id. Few runtimes set one,
/// so a list; entries whose driver stopped are pruned when one is set.
static RUNTIME_DEFAULTS: Mutex<Vec<(runtime::Id, Stack)>> = Mutex::new(Vec::new());

thread_local! {
    /// The innermost [`Stack::enter`] on this thread.
    static SCOPED: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

/// Makes `stack` the process-wide default used by the constructors without
/// `_with`, replacing (and returning) the previous one.
///
/// A scoped default ([`Stack::enter`]) or the current runtime's
/// ([`set_runtime_default`]) takes precedence; see [`default_stack`].
///
/// The default holds a handle, so its driver runs until [`clear_default`]
/// (or [`Stack::shutdown`]).
pub fn set_default(stack: Stack) -> Option<Stack> {
    DEFAULT
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .replace(stack)
}

/// Removes the process-wide default stack and returns it.
pub fn clear_default() -> Option<Stack> {
    DEFAULT.write().unwrap_or_else(|e| e.into_inner()).take()
}

/// Makes `stack` the default of the current Tokio runtime (every thread and
/// task of it), replacing (and returning) the previous one. Two runtimes
/// (parallel tests, say) each keep their own.
///
/// The entry holds a handle, so the driver runs until
/// [`clear_runtime_default`], [`Stack::shutdown`], or the runtime is
/// dropped (which stops a driver spawned on it).
///
/// # Errors
///
/// `Other` if called outside a Tokio runtime.
pub fn set_runtime_default(stack: Stack) -> io::Result<Option<Stack>> {
    let id = Handle::try_current().map_err(io::Error::other)?.id();
    let mut map = RUNTIME_DEFAULTS.lock().unwrap_or_else(|e| e.into_inner());
    // Runtimes that went away took their drivers with them.
    map.retain(|(other, s)| *other == id || !s.inner.cmd_tx.is_closed());
    match map.iter_mut().find(|(other, _)| *other == id) {
        Some((_, old)) => Ok(Some(std::mem::replace(old, stack))),
        None => {
            map.push((id, stack));
            Ok(None)
        }
    }
}

/// Removes the current runtime's default stack and returns it (`None`
/// outside a runtime or if it had none).
pub fn clear_runtime_default() -> Option<Stack> {
    let id = Handle::try_current().ok()?.id();
    let mut map = RUNTIME_DEFAULTS.lock().unwrap_or_else(|e| e.into_inner());
    let at = map.iter().position(|(other, _)| *other == id)?;
    Some(map.swap_remove(at).1)
}

fn runtime_default() -> Option<Stack> {
    let id = Handle::try_current().ok()?.id();
    let map = RUNTIME_DEFAULTS.lock().unwrap_or_else(|e| e.into_inner());
    map.iter()
        .find(|(other, _)| *other == id)
        .map(|(_, s)| s.clone())
}

/// The stack used by [`TcpListener::bind`](crate::TcpListener::bind),
/// [`TcpStream::connect`](crate::TcpStream::connect) and
/// [`TcpSocket::new_v4`](crate::TcpSocket::new_v4)/`new_v6`, the first of:
/// 1. the scoped default of this thread ([`Stack::enter`]);
/// 2. the current runtime's ([`set_runtime_default`]);
/// 3. the process-wide one ([`set_default`]).
///
/// # Errors
///
/// `NotFound` if none is set.
pub fn default_stack() -> io::Result<Stack> {
    if let Some(stack) = SCOPED.with(|s| s.borrow().clone()) {
        return Ok(stack);
    }
    if let Some(stack) = runtime_default() {
        return Ok(stack);
    }
    DEFAULT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no default tcp_async::Stack: call Stack::enter, set_runtime_default or set_default first",
            )
        })
}

/// Restores the previous scoped default when dropped; see [`Stack::enter`].
///
/// Not `Send`: the scope is the thread's, as `tokio::runtime::EnterGuard`'s.
#[must_use = "the stack is the default only until the guard is dropped"]
pub struct DefaultGuard {
    prev: Option<Stack>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for DefaultGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultGuard").finish_non_exhaustive()
    }
}

impl Drop for DefaultGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // During thread teardown the slot may be gone: nothing to restore.
        let _ = SCOPED.try_with(|s| *s.borrow_mut() = prev);
    }
}
