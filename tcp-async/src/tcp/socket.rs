//! [`TcpSocket`]: a socket configured before it connects or listens, like
//! `tokio::net::TcpSocket`.

use crate::driver::SocketOpts;
use crate::stack::{default_stack, Stack};
use crate::tcp::listener::TcpListener;
use crate::tcp::ports::{BindFlags, Reservation};
use crate::tcp::stream::{connect_addr, TcpStream};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A TCP socket not yet connected or listening, with the API of
/// `tokio::net::TcpSocket`: set options, optionally [`bind`](TcpSocket::bind),
/// then [`connect`](TcpSocket::connect) or [`listen`](TcpSocket::listen).
///
/// As a kernel socket, `bind` reserves the address in the stack's bind
/// table at once (`AddrInUse` then; port 0 picks a free ephemeral port,
/// which [`local_addr`](TcpSocket::local_addr) shows), and `listen` is
/// synchronous: see `tcp/ports.rs` for the conflict rules.
///
/// # Examples
///
/// A socket configured, then connected (`new_v4` uses the default stack,
/// here `client`, and the server at 10.0.0.1:80 is on another stack):
///
/// ```
/// use tcp_async::TcpSocket;
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
/// # let listener = TcpSocket::new_v4_with(&server);
/// # listener.bind("10.0.0.1:80".parse().unwrap())?;
/// # let listener = listener.listen(16)?;
/// let socket = TcpSocket::new_v4()?;
/// socket.set_send_buffer_size(64 * 1024)?;
/// socket.set_nodelay(true)?;
/// let mut stream = socket.connect("10.0.0.1:80".parse().unwrap()).await?;
/// assert!(stream.nodelay()?);
/// stream.write_all(b"hi").await?;
/// # let (mut peer, _) = listener.accept().await?;
/// # let mut buf = [0; 2];
/// # peer.read_exact(&mut buf).await?;
/// # assert_eq!(&buf, b"hi");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    stack: Stack,
    /// An `AF_INET6` socket (`new_v6`): it binds and connects to IPv6
    /// addresses, and to IPv4 ones IPv4-mapped (unless `only_v6`).
    v6: bool,
    /// The address `bind` reserved.
    bound: std::sync::Mutex<Option<Reservation>>,
    opts: std::sync::Mutex<Opts>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Opts {
    inner: SocketOpts,
    reuseaddr: bool,
}

impl Opts {
    fn bind_flags(&self) -> BindFlags {
        BindFlags {
            v6_only: self.inner.only_v6,
            reuseaddr: self.reuseaddr,
            reuseport: self.inner.reuseport,
        }
    }
}

impl TcpSocket {
    /// A new IPv4 socket on the default stack (see [`set_default`](crate::set_default)).
    ///
    /// # Errors
    ///
    /// `NotFound` if no default stack is set.
    pub fn new_v4() -> io::Result<TcpSocket> {
        Ok(TcpSocket::new_v4_with(&default_stack()?))
    }

    /// A new IPv4 socket on `stack`.
    pub fn new_v4_with(stack: &Stack) -> TcpSocket {
        TcpSocket {
            stack: stack.clone(),
            v6: false,
            bound: std::sync::Mutex::new(None),
            opts: std::sync::Mutex::new(Opts::default()),
        }
    }

    /// A new IPv6 socket on the default stack (see
    /// [`set_default`](crate::set_default)). As on Linux with
    /// `net.ipv6.bindv6only=0`, it also reaches IPv4 peers through
    /// IPv4-mapped addresses (`::ffff:a.b.c.d`), and listening on `[::]`
    /// accepts IPv4 too, unless [`set_only_v6`](TcpSocket::set_only_v6).
    ///
    /// # Errors
    ///
    /// `NotFound` if no default stack is set.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Ok(TcpSocket::new_v6_with(&default_stack()?))
    }

    /// A new IPv6 socket on `stack`.
    pub fn new_v6_with(stack: &Stack) -> TcpSocket {
        TcpSocket {
            v6: true,
            ..TcpSocket::new_v4_with(stack)
        }
    }

    /// `IPV6_V6ONLY` (socket2's `set_only_v6`): this IPv6 socket takes and
    /// reaches IPv6 only; listening on `[::]` then accepts no IPv4.
    ///
    /// # Errors
    ///
    /// `InvalidInput` on an IPv4 socket (Linux: `ENOPROTOOPT`).
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        if !self.v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPV6_V6ONLY on an IPv4 socket",
            ));
        }
        self.opts().inner.only_v6 = only_v6;
        Ok(())
    }

    /// Whether `IPV6_V6ONLY` is set.
    ///
    /// # Errors
    ///
    /// `InvalidInput` on an IPv4 socket.
    pub fn only_v6(&self) -> io::Result<bool> {
        if !self.v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPV6_V6ONLY on an IPv4 socket",
            ));
        }
        Ok(self.opts().inner.only_v6)
    }

    /// `addr` as this socket's family may use it: an IPv4 socket takes
    /// IPv4 only (Linux: `EAFNOSUPPORT`); an IPv6 socket takes IPv6, and
    /// IPv4 as IPv4-mapped unless `only_v6` (Linux: `ENETUNREACH` for a
    /// mapped destination then).
    fn check_family(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        match (self.v6, addr) {
            (false, SocketAddr::V4(_)) => Ok(addr),
            (false, SocketAddr::V6(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv6 address given to an IPv4 socket (address family not supported)",
            )),
            (true, SocketAddr::V4(a)) => self.check_family(SocketAddr::new(
                IpAddr::V6(a.ip().to_ipv6_mapped()),
                a.port(),
            )),
            (true, SocketAddr::V6(a)) => {
                if self.opts().inner.only_v6 && a.ip().to_ipv4_mapped().is_some() {
                    return Err(io::Error::new(
                        io::ErrorKind::NetworkUnreachable,
                        "an IPv4-mapped address on an IPV6_V6ONLY socket",
                    ));
                }
                Ok(addr)
            }
        }
    }

    /// The unspecified address of this socket's family.
    fn unspecified(&self) -> SocketAddr {
        if self.v6 {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        }
    }

    fn opts(&self) -> std::sync::MutexGuard<'_, Opts> {
        self.opts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bound(&self) -> std::sync::MutexGuard<'_, Option<Reservation>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `SO_REUSEADDR`: two sockets that both set it may bind one
    /// address while neither listens (Linux rules); a listener's address
    /// is never shared this way. (The core always lets a new connection
    /// reuse a local address whose old connection is in TIME-WAIT.)
    /// Set it before [`bind`](TcpSocket::bind).
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.opts().reuseaddr = reuseaddr;
        Ok(())
    }

    /// The `SO_REUSEADDR` value last set.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(self.opts().reuseaddr)
    }

    /// Sets `SO_REUSEPORT`: listeners that all set it may share one
    /// address and port; the stack spreads new connections among those
    /// bound to the address a SYN reaches by a hash of its four-tuple, as
    /// Linux does. Set it before [`bind`](TcpSocket::bind) or
    /// [`listen`](TcpSocket::listen).
    ///
    /// # Errors
    ///
    /// Never fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn dox(stack: &tcp_async::Stack) -> std::io::Result<()> {
    /// let mut listeners = Vec::new();
    /// for _ in 0..4 {
    ///     let socket = tcp_async::TcpSocket::new_v4_with(stack);
    ///     socket.set_reuseport(true)?;
    ///     socket.bind("10.0.0.1:80".parse().unwrap())?;
    ///     listeners.push(socket.listen(1024)?);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.opts().inner.reuseport = reuseport;
        Ok(())
    }

    /// The `SO_REUSEPORT` value last set.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(self.opts().inner.reuseport)
    }

    /// Sets `IP_TOS` for the connection's IPv4 datagrams (or those of
    /// every connection the listener accepts). Only the DSCP bits (the
    /// upper six) are used: the ECN bits stay under the stack's control,
    /// as on Linux.
    ///
    /// # Errors
    ///
    /// `InvalidInput` above 255.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        let tos = u8::try_from(tos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TOS above 255"))?;
        self.opts().inner.tos = Some(tos & !0b11);
        Ok(())
    }

    /// The `IP_TOS` value the connection will have (the DSCP bits as set).
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn tos_v4(&self) -> io::Result<u32> {
        Ok(u32::from(self.opts().inner.tos.unwrap_or(0)))
    }

    /// `SO_ERROR`: a socket neither connected nor listening has no pending
    /// error, so this is always `None` (a failed `connect` returns its
    /// error); see [`TcpStream::take_error`].
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    /// Sets the size of the send buffer the connection will have.
    ///
    /// Applies to the connection made by [`connect`](TcpSocket::connect), or
    /// to every connection accepted from the [`listen`](TcpSocket::listen)ed
    /// socket (as kernel listeners pass their sizes on).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for 0.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.opts().inner.send_buffer = Some(nonzero(size)?);
        Ok(())
    }

    /// The send buffer size the connection will have.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        let size = self
            .opts()
            .inner
            .send_buffer
            .unwrap_or(self.stack.config().send_buffer);
        Ok(u32::try_from(size).unwrap_or(u32::MAX))
    }

    /// Sets the size of the receive buffer (the largest window advertised).
    /// Same scope as [`set_send_buffer_size`](TcpSocket::set_send_buffer_size).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for 0.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.opts().inner.recv_buffer = Some(nonzero(size)?);
        Ok(())
    }

    /// The receive buffer size the connection will have.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        let size = self
            .opts()
            .inner
            .recv_buffer
            .unwrap_or(self.stack.config().recv_buffer);
        Ok(u32::try_from(size).unwrap_or(u32::MAX))
    }

    /// Turns Nagle's algorithm off (`true`) for the connection (or the
    /// connections accepted by the listener).
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.opts().inner.nodelay = Some(nodelay);
        Ok(())
    }

    /// The `TCP_NODELAY` value the connection will have.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self
            .opts()
            .inner
            .nodelay
            .unwrap_or(self.stack.config().nodelay))
    }

    /// Enables keep-alive probes (`SO_KEEPALIVE`) with the stack's timing.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.opts().inner.keepalive = Some(keepalive);
        Ok(())
    }

    /// The `SO_KEEPALIVE` value the connection will have.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self
            .opts()
            .inner
            .keepalive
            .unwrap_or(self.stack.config().keepalive))
    }

    /// Sets `SO_LINGER`; see [`TcpStream::set_linger`].
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.opts().inner.linger = dur;
        Ok(())
    }

    /// The `SO_LINGER` value last set.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.opts().inner.linger)
    }

    /// Sets the IP TTL of the connection's datagrams.
    ///
    /// # Errors
    ///
    /// `InvalidInput` above 255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TTL above 255"))?;
        self.opts().inner.ttl = Some(ttl);
        Ok(())
    }

    /// Binds the local address, reserving it in the stack's bind table
    /// (port 0: a free ephemeral port, shown by
    /// [`local_addr`](TcpSocket::local_addr)).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another socket holds the address (Linux rules, see
    /// [`set_reuseaddr`](TcpSocket::set_reuseaddr) and
    /// [`set_reuseport`](TcpSocket::set_reuseport)); `AddrNotAvailable` if
    /// the IP is not one of the stack's; `InvalidInput` if already bound
    /// (Linux: EINVAL) or for an address of the other family (an IPv6
    /// address on an IPv4 socket); `NetworkUnreachable` for an IPv4-mapped
    /// address on an `only_v6` socket.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let addr = self.check_family(addr)?;
        let mut bound = self.bound();
        if bound.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket is already bound",
            ));
        }
        let flags = self.opts().bind_flags();
        *bound = Some(self.stack.inner.ports.reserve(addr, flags, false)?);
        Ok(())
    }

    /// The bound address (with the port chosen for port 0), or the
    /// unspecified address of the family with port 0.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let unspecified = self.unspecified();
        Ok(self.bound().as_ref().map_or(unspecified, |r| r.addr))
    }

    /// Connects to `addr`, consuming the socket.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::connect_with`]; `AddrInUse` if the bound address
    /// and `addr` already form a connection.
    ///
    /// # Cancel safety
    ///
    /// As [`TcpStream::connect`].
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let remote = self.check_family(addr)?;
        let opts = self.opts().inner;
        // The reservation is given back when this returns: the core keeps
        // connections apart by their four-tuple (see `tcp/ports.rs`).
        let bound = self.bound().take();
        let local = bound
            .as_ref()
            .map(|r| r.addr)
            .filter(|a| !(a.ip().is_unspecified() && a.port() == 0));
        let stream = connect_addr(&self.stack, local, remote, opts).await;
        drop(bound);
        stream
    }

    /// Listens, consuming the socket. An unbound socket listens on the
    /// stack's first address of its family and an ephemeral port.
    ///
    /// Synchronous, as tokio's: the address is checked and taken in the
    /// stack's bind table at once, and the driver task creates the core's
    /// listener from a command (nothing waits for it; the table's rules
    /// include the core's, so the core cannot refuse it).
    ///
    /// As on Linux, `backlog + 1` connections may complete and wait for
    /// `accept` (`sk_acceptq_is_full()` tests `>`, not `>=`); further SYNs
    /// are dropped until the application accepts (the peers retry). A
    /// backlog of 0 is valid: one connection may wait.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if a listener holds an overlapping address (unless both
    /// set [`set_reuseport`](TcpSocket::set_reuseport)); `AddrNotAvailable`
    /// for an address not the stack's or no free ephemeral port;
    /// `NotConnected` ([`StackStopped`](crate::StackStopped)) if the stack has stopped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn dox() -> std::io::Result<()> {
    /// let socket = tcp_async::TcpSocket::new_v4()?;
    /// socket.bind("10.0.0.1:8080".parse().unwrap())?;
    /// let listener = socket.listen(1024)?;
    /// # drop(listener); Ok(())
    /// # }
    /// ```
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let opts = *self.opts();
        let flags = opts.bind_flags();
        let port = match self.bound().take() {
            Some(port) => {
                port.listen(flags)?;
                port
            }
            None => {
                let first = self
                    .stack
                    .config()
                    .addrs
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv6() == self.v6);
                let local = first.map_or(self.unspecified(), |ip| SocketAddr::new(ip, 0));
                self.stack.inner.ports.reserve(local, flags, true)?
            }
        };
        let backlog = usize::try_from(backlog).unwrap_or(usize::MAX);
        TcpListener::start(&self.stack, port, backlog, opts.inner)
    }
}

fn nonzero(size: u32) -> io::Result<usize> {
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "buffer size of 0",
        ));
    }
    Ok(usize::try_from(size).unwrap_or(usize::MAX))
}
