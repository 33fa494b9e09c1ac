//! [`TcpSocket`]: a socket configured before it connects or listens, like
//! `tokio::net::TcpSocket`.

use crate::driver::SocketOpts;
use crate::stack::{default_stack, Stack};
use crate::tcp::listener::TcpListener;
use crate::tcp::stream::{connect_addr, TcpStream};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A TCP socket not yet connected or listening, with the API of
/// `tokio::net::TcpSocket`: set options, optionally [`bind`](TcpSocket::bind),
/// then [`connect`](TcpSocket::connect) or [`listen`](TcpSocket::listen).
///
/// Unlike a kernel socket, nothing is reserved before `connect`/`listen`:
/// `bind` records the address and conflicts (`AddrInUse`) are reported by
/// `connect` or `listen`.
///
/// # Examples
///
/// ```no_run
/// use tcp_async::TcpSocket;
///
/// # async fn dox() -> std::io::Result<()> {
/// let socket = TcpSocket::new_v4()?;
/// socket.set_send_buffer_size(64 * 1024)?;
/// socket.set_nodelay(true)?;
/// let stream = socket.connect("10.0.0.2:80".parse().unwrap()).await?;
/// # drop(stream); Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    stack: Stack,
    /// An `AF_INET6` socket (`new_v6`): it binds and connects to IPv6
    /// addresses, and to IPv4 ones IPv4-mapped (unless `only_v6`).
    v6: bool,
    local: std::sync::Mutex<Option<SocketAddr>>,
    opts: std::sync::Mutex<Opts>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Opts {
    inner: SocketOpts,
    reuseaddr: bool,
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
            local: std::sync::Mutex::new(None),
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

    fn local(&self) -> std::sync::MutexGuard<'_, Option<SocketAddr>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `SO_REUSEADDR`. Recorded only: the core always lets a new
    /// connection reuse a local address whose old connection is in
    /// TIME-WAIT, and never lets two listeners share one.
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

    /// Chooses the local address (port 0: an ephemeral port at connect).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an address of the other family (an IPv6 address
    /// on an IPv4 socket); `NetworkUnreachable` for an IPv4-mapped address
    /// on an `only_v6` socket.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let addr = self.check_family(addr)?;
        *self.local() = Some(addr);
        Ok(())
    }

    /// The address given to [`bind`](TcpSocket::bind), or `0.0.0.0:0`.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let unspecified = self.unspecified();
        Ok(self.local().unwrap_or(unspecified))
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
        let local = (*self.local()).filter(|a| !(a.ip().is_unspecified() && a.port() == 0));
        connect_addr(&self.stack, local, remote, opts).await
    }

    /// Listens, consuming the socket. An unbound socket listens on the
    /// stack's first address and an ephemeral port.
    ///
    /// Unlike Tokio's, this is `async`: the listener is created by the
    /// driver task, which may run on the calling thread.
    ///
    /// As on Linux, `backlog + 1` connections may complete and wait for
    /// `accept` (`sk_acceptq_is_full()` tests `>`, not `>=`); further SYNs
    /// are dropped until the application accepts (the peers retry). A
    /// backlog of 0 is valid: one connection may wait.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::bind_with`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the listener if it was created.
    pub async fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let first = self
            .stack
            .config()
            .addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv6() == self.v6);
        let unspecified = self.unspecified();
        let local = self
            .local()
            .unwrap_or_else(|| first.map_or(unspecified, |ip| SocketAddr::new(ip, 0)));
        let opts = self.opts().inner;
        let backlog = usize::try_from(backlog).unwrap_or(usize::MAX);
        let shared = self.stack.listen(local, backlog, opts).await?;
        Ok(TcpListener::new(self.stack.clone(), shared))
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
