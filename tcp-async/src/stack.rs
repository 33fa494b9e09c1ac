//! The [`Stack`] handle, its [`Builder`], and the ambient default stack.

use crate::device::Device;
use crate::driver::{Command, Driver, SocketOpts};
use crate::shared::Shared;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tcp_stack::{Config, ConnId, SockOpt, Stats};
use tokio::sync::{mpsc, oneshot};

/// A handle to a user-space TCP/IP stack (IPv4 and IPv6) driven by a background task.
///
/// Cloning is cheap (one reference count). Sockets created on a stack hold a
/// handle too, so, like a kernel, the stack keeps running as long as any
/// [`Stack`], [`TcpListener`](crate::TcpListener), [`TcpStream`](crate::TcpStream)
/// or split half exists. When the last one is dropped the driver goes on
/// until the graceful closes in progress are done (the data written before
/// a drop, then the FIN, reach the peer; see the crate docs) and stops;
/// [`Stack::shutdown`] stops it at once.
///
/// # Examples
///
/// ```no_run
/// use tcp_async::{device::MemoryDevice, Stack, TcpListener};
/// use tcp_stack::Config;
///
/// # async fn dox() -> std::io::Result<()> {
/// let (a, _b) = MemoryDevice::pair(1500);
/// let stack = Stack::builder(a)
///     .config(Config::with_addr("10.0.0.1".parse().unwrap()))
///     .build()?;
/// let listener = TcpListener::bind_with(&stack, "10.0.0.1:80").await?;
/// # drop(listener);
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
    /// `InvalidInput` if the configuration has no address; `Other` if called
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

    /// Makes this stack the one used by [`TcpListener::bind`](crate::TcpListener::bind),
    /// [`TcpStream::connect`](crate::TcpStream::connect) and
    /// [`TcpSocket::new_v4`](crate::TcpSocket::new_v4). Same as [`set_default`].
    pub fn set_default(&self) {
        set_default(self.clone());
    }

    /// A snapshot of the stack's counters.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the stack was shut down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn stats(&self) -> io::Result<Stats> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Stats(tx))?;
        rx.await.map_err(|_| gone())
    }

    /// Stops the driver: every connection is reset (its peer gets a RST,
    /// as nothing will answer for it any more), packets already due are
    /// flushed, then every open socket of this stack fails with
    /// `ConnectionAborted`. Returns once the
    /// driver task has finished. Calling it again is a no-op.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the stop happens even if this future is dropped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.command(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) fn command(&self, cmd: Command) -> io::Result<()> {
        self.inner.cmd_tx.send(cmd).map_err(|_| gone())
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

pub(crate) fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the stack was shut down")
}

static DEFAULT: RwLock<Option<Stack>> = RwLock::new(None);

/// Makes `stack` the process-wide default used by the constructors without
/// `_with`, replacing (and returning) the previous one.
///
/// The default holds a handle, so its driver runs until [`clear_default`]
/// (or [`Stack::shutdown`]).
pub fn set_default(stack: Stack) -> Option<Stack> {
    DEFAULT
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .replace(stack)
}

/// Removes the default stack and returns it.
pub fn clear_default() -> Option<Stack> {
    DEFAULT.write().unwrap_or_else(|e| e.into_inner()).take()
}

/// The default stack.
///
/// # Errors
///
/// `NotFound` if none was set with [`set_default`].
pub fn default_stack() -> io::Result<Stack> {
    DEFAULT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no default tcp_async::Stack: call Stack::set_default first",
            )
        })
}
