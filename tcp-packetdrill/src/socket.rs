//! Sockets and the calls that create, connect and release them: socket,
//! bind, listen, accept, connect, shutdown, close, fcntl and ioctl, with
//! the results and errno values Linux gives (the kernel function deciding
//! each is named beside it).

use crate::addr;
use crate::errno::{Errno, SysResult};
use crate::hostfd::HostFd;
use crate::shim::{Inner, Shared, Wait};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;
use tcp_stack::{
    CongestionControl, ConnId, Instant, ListenOptions, ListenerId, SockOpt, Stack, State,
};

/// Linux `net.core.somaxconn`: the largest listen backlog.
const SOMAXCONN: usize = 4096;

/// What a socket is in the stack.
#[derive(Debug)]
pub enum Kind {
    /// Created, perhaps bound, neither listening nor connected.
    Fresh,
    /// Listening. `ready`: connections taken from the stack's accept queue
    /// (to answer `poll`) and not yet handed out by `accept`.
    Listener {
        id: ListenerId,
        ready: VecDeque<ConnId>,
    },
    /// Connecting or connected (active or accepted).
    Conn(ConnId),
}

/// Options set by the application, kept so they can be applied to the
/// connection once it exists (set before `connect`, or on a listener,
/// whose accepted connections inherit them as on Linux), and read back.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub reuseaddr: bool,
    pub keepalive: Option<bool>,
    /// SO_LINGER as set: (l_onoff, l_linger).
    pub linger: Option<(i32, i32)>,
    /// SO_SNDBUF / SO_RCVBUF as requested (bytes).
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    pub nodelay: Option<bool>,
    /// TCP_MAXSEG as set (recorded; the core has no per-socket MSS clamp).
    pub maxseg: Option<i32>,
    /// TCP_KEEPIDLE, TCP_KEEPINTVL (seconds), TCP_KEEPCNT.
    pub keepidle: Option<u32>,
    pub keepintvl: Option<u32>,
    pub keepcnt: Option<u32>,
    /// TCP_USER_TIMEOUT in milliseconds (0: the stack's default).
    pub user_timeout_ms: Option<u32>,
    /// TCP_LINGER2 as set (recorded; the core's FIN-WAIT-2 timeout is
    /// stack-wide).
    pub linger2: Option<i32>,
    pub cc: Option<CongestionControl>,
    /// IPV6_V6ONLY (AF_INET6 sockets; Linux's default, from
    /// net.ipv6.bindv6only, is 0): an AF_INET6 socket then neither takes
    /// nor reaches IPv4.
    pub v6_only: bool,
}

impl Opts {
    /// The per-connection options of the core these settings amount to.
    pub fn sock_opts(&self, stack: &Stack) -> Vec<SockOpt> {
        let cfg = stack.config();
        let mut v = Vec::new();
        if let Some(on) = self.nodelay {
            v.push(SockOpt::NoDelay(on));
        }
        if let Some(on) = self.keepalive {
            v.push(SockOpt::KeepAlive(on));
        }
        if self.keepidle.is_some() || self.keepintvl.is_some() || self.keepcnt.is_some() {
            v.push(SockOpt::KeepAliveParams {
                idle: self
                    .keepidle
                    .map_or(cfg.keepalive_idle, |s| Duration::from_secs(s.into())),
                interval: self
                    .keepintvl
                    .map_or(cfg.keepalive_interval, |s| Duration::from_secs(s.into())),
                probes: self.keepcnt.unwrap_or(cfg.keepalive_probes),
            });
        }
        if let Some(ms) = self.user_timeout_ms {
            // Linux tcp_sock.user_timeout: 0 restores the default behaviour.
            v.push(SockOpt::UserTimeout(if ms == 0 {
                cfg.user_timeout
            } else {
                Duration::from_millis(ms.into())
            }));
        }
        if let Some((onoff, secs)) = self.linger {
            // SO_LINGER on with a zero timeout: close() resets (RFC 9293
            // 3.10.5 ABORT). A non-zero timeout is not modelled: close()
            // returns at once and the close goes on in the background.
            v.push(SockOpt::LingerZero(onoff != 0 && secs == 0));
        }
        if let Some(kind) = self.cc {
            v.push(SockOpt::CongestionControl(kind));
        }
        v
    }

    /// Applies every option to a connection that now exists.
    pub fn apply(&self, stack: &mut Stack, conn: ConnId) {
        for o in self.sock_opts(stack) {
            let _ = stack.set_option(conn, o);
        }
    }

    /// Send and receive buffer sizes for a new connection.
    pub fn buffers(&self, stack: &Stack) -> (usize, usize) {
        let cfg = stack.config();
        (
            self.sndbuf.unwrap_or(cfg.send_buffer),
            self.rcvbuf.unwrap_or(cfg.recv_buffer),
        )
    }
}

/// One socket of the shim.
#[derive(Debug)]
pub struct Socket {
    pub host: HostFd,
    pub nonblocking: bool,
    /// AF_INET6 (else AF_INET): the family of the addresses the socket
    /// takes and reports.
    pub v6: bool,
    /// The local address, in the socket's family.
    pub bound: Option<SocketAddr>,
    pub kind: Kind,
    pub opts: Opts,
    /// shutdown(SHUT_RD) was called: reads return end of stream.
    pub rd_shut: bool,
    /// shutdown(SHUT_WR) was called: writes fail with EPIPE.
    pub wr_shut: bool,
    /// The connection's error was reported once. Linux keeps a pending
    /// error in `sk_err` and `sock_error()` clears it when a call returns
    /// it; later reads see end of stream and writes EPIPE.
    pub err_reported: bool,
    /// connect() returned success once (a later call gives EISCONN).
    pub connect_reported: bool,
}

impl Socket {
    fn new(host: HostFd, nonblocking: bool, v6: bool) -> Socket {
        Socket {
            host,
            nonblocking,
            v6,
            bound: None,
            kind: Kind::Fresh,
            opts: Opts::default(),
            rd_shut: false,
            wr_shut: false,
            err_reported: false,
            connect_reported: false,
        }
    }

    pub fn conn(&self) -> Option<ConnId> {
        match self.kind {
            Kind::Conn(c) => Some(c),
            _ => None,
        }
    }

    /// The connection's error not yet reported, if any (Linux `sk_err`).
    pub fn pending_error(&self, stack: &Stack) -> Option<Errno> {
        if self.err_reported {
            return None;
        }
        stack.error(self.conn()?).map(Errno::from)
    }

    /// Reports the pending error once (Linux `sock_error()`).
    pub fn take_error(&mut self, stack: &Stack) -> Option<Errno> {
        let e = self.pending_error(stack)?;
        self.err_reported = true;
        Some(e)
    }
}

impl Inner {
    pub fn sock(&mut self, fd: RawFd) -> SysResult<&mut Socket> {
        self.sockets.get_mut(&fd).ok_or(Errno::EBADF)
    }

    /// A socket and the stack, borrowed together.
    pub fn parts(&mut self, fd: RawFd) -> SysResult<(&mut Socket, &mut Stack)> {
        let s = self.sockets.get_mut(&fd).ok_or(Errno::EBADF)?;
        Ok((s, &mut self.stack))
    }

    /// Moves every connection waiting in a listener's accept queue into
    /// the socket's `ready` list.
    pub fn fill_ready(&mut self, fd: RawFd) {
        let Some(s) = self.sockets.get_mut(&fd) else {
            return;
        };
        if let Kind::Listener { id, ready } = &mut s.kind {
            while let Some(c) = self.stack.accept(*id) {
                ready.push_back(c);
            }
        }
    }

    /// Adds a socket under its host descriptor's number. A stale entry
    /// under the same number (packetdrill closed it with libc's close())
    /// is released first.
    fn insert(&mut self, s: Socket) -> RawFd {
        let fd = s.host.raw();
        if let Some(old) = self.sockets.remove(&fd) {
            self.release(old);
        }
        self.sockets.insert(fd, s);
        fd
    }

    /// Releases a socket's stack side and its descriptor.
    fn release(&mut self, s: Socket) {
        match s.kind {
            Kind::Fresh => {}
            Kind::Listener { id, ready } => {
                // Linux inet_csk_listen_stop: connections never accepted
                // are reset (tcp_disconnect sends RST in synchronized states).
                self.stack.close_listener(id);
                for c in ready {
                    let _ = self.stack.abort(c);
                    let _ = self.stack.close(c);
                }
            }
            Kind::Conn(c) => {
                let _ = self.stack.close(c);
            }
        }
        s.host.close();
    }
}

fn is_connecting(state: State) -> bool {
    matches!(state, State::SynSent | State::SynReceived)
}

impl Shared {
    /// socket(AF_INET or AF_INET6, SOCK_STREAM[|SOCK_NONBLOCK|SOCK_CLOEXEC],
    /// 0 or IPPROTO_TCP).
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> SysResult<RawFd> {
        let v6 = match domain {
            libc::AF_INET => false,
            libc::AF_INET6 => true,
            _ => return Err(Errno::EAFNOSUPPORT),
        };
        if ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != libc::SOCK_STREAM {
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        if protocol != 0 && protocol != libc::IPPROTO_TCP {
            return Err(Errno::EPROTONOSUPPORT);
        }
        let mut host = Some(HostFd::open().map_err(|_| Errno::EMFILE)?);
        let nonblocking = ty & libc::SOCK_NONBLOCK != 0;
        self.run(Wait::Never, |inner, _| {
            let host = host.take().ok_or(Errno::EIO)?;
            Ok(inner.insert(Socket::new(host, nonblocking, v6)))
        })
    }

    /// bind(): records the local address, used by listen() or connect().
    /// `raw` is the caller's `sockaddr_in` or `sockaddr_in6`, checked
    /// against the socket's family (`addr::parse`).
    pub fn bind(&self, fd: RawFd, raw: &[u8]) -> SysResult<()> {
        self.run(Wait::Never, |inner, _| {
            let local = inner.stack.config().addrs.clone();
            let s = inner.sock(fd)?;
            let addr = addr::parse(raw, s.v6)?;
            // Linux inet_bind / __inet6_bind: EINVAL if already bound (or
            // connected).
            if s.bound.is_some() || !matches!(s.kind, Kind::Fresh) {
                return Err(Errno::EINVAL);
            }
            // __inet6_bind: an IPV6_V6ONLY socket cannot bind an
            // IPv4-mapped address (RFC 4291 2.5.5.2).
            if s.opts.v6_only && addr::is_mapped(addr) {
                return Err(Errno::EINVAL);
            }
            // The address as it is on the wire: a mapped one is IPv4.
            let ip = addr::in_family(addr, false).ip();
            if !ip.is_unspecified() && !local.contains(&ip) {
                return Err(Errno::EADDRNOTAVAIL);
            }
            let reuse = s.opts.reuseaddr;
            let v6_only = s.opts.v6_only;
            // Linux inet_csk_bind_conflict: the same port on an overlapping
            // address conflicts unless both set SO_REUSEADDR and the other
            // is not listening.
            let conflict = addr.port() != 0
                && inner.sockets.iter().any(|(&other_fd, o)| {
                    other_fd != fd
                        && o.bound.is_some_and(|b| {
                            b.port() == addr.port()
                                && addr::overlap(b, o.opts.v6_only, addr, v6_only)
                        })
                        && !(reuse && o.opts.reuseaddr && !matches!(o.kind, Kind::Listener { .. }))
                });
            if conflict {
                return Err(Errno::EADDRINUSE);
            }
            inner.sock(fd)?.bound = Some(addr);
            Ok(())
        })
    }

    /// listen(): a passive open (RFC 9293 3.10.1) on the bound address, or
    /// on an ephemeral port if unbound (Linux inet_autobind).
    pub fn listen(&self, fd: RawFd, backlog: i32) -> SysResult<()> {
        self.run(Wait::Never, |inner, _| {
            let (s, stack) = inner.parts(fd)?;
            match s.kind {
                // Linux allows listen() again to change the backlog.
                Kind::Listener { .. } => return Ok(()),
                Kind::Conn(_) => return Err(Errno::EINVAL),
                Kind::Fresh => {}
            }
            let addr = s.bound.unwrap_or(addr::unspecified(s.v6));
            // Linux: a negative backlog means somaxconn, larger ones are
            // capped by it, and the accept queue holds backlog + 1
            // (sk_acceptq_is_full tests ">").
            let backlog = usize::try_from(backlog).map_or(SOMAXCONN, |b| b.min(SOMAXCONN)) + 1;
            let buffers = s.opts.buffers(stack);
            // An AF_INET6 listener on `[::]` takes IPv4 too, reporting
            // IPv4-mapped peers, unless IPV6_V6ONLY (Linux, bindv6only=0).
            let opts = ListenOptions::default().v6_only(s.opts.v6_only);
            let id = stack
                .listen_with(addr, backlog, opts)
                .map_err(Errno::from)?;
            let _ = stack.set_listener_buffers(id, buffers.0, buffers.1);
            let addr = stack
                .listener_addr(id)
                .map_or(addr, |a| addr::in_family(a, s.v6));
            s.bound = Some(addr);
            s.kind = Kind::Listener {
                id,
                ready: VecDeque::new(),
            };
            Ok(())
        })
    }

    /// accept(): the next established connection, as a new blocking socket
    /// that inherits the listener's options (Linux inet_csk_clone_lock).
    /// The peer's address is in the listener's family: an AF_INET6
    /// listener reports IPv4 peers IPv4-mapped (RFC 4291 2.5.5.2).
    pub fn accept(&self, fd: RawFd) -> SysResult<(RawFd, SocketAddr)> {
        let wait = Wait::blocking(self.run(Wait::Never, |i, _| Ok(i.sock(fd)?.nonblocking))?);
        self.run(wait, |inner, _| {
            inner.fill_ready(fd);
            let s = inner.sock(fd)?;
            let Kind::Listener { ready, .. } = &mut s.kind else {
                return Err(Errno::EINVAL);
            };
            let Some(c) = ready.pop_front() else {
                return Err(Errno::EAGAIN);
            };
            let opts = s.opts.clone();
            let v6 = s.v6;
            let host = match HostFd::open() {
                Ok(h) => h,
                Err(_) => {
                    if let Kind::Listener { ready, .. } = &mut s.kind {
                        ready.push_front(c);
                    }
                    return Err(Errno::EMFILE);
                }
            };
            opts.apply(&mut inner.stack, c);
            let peer = inner
                .stack
                .peer_addr(c)
                .map_or(addr::unspecified(v6), |a| addr::in_family(a, v6));
            let mut new = Socket::new(host, false, v6);
            new.bound = inner.stack.local_addr(c).map(|a| addr::in_family(a, v6));
            new.kind = Kind::Conn(c);
            new.opts = opts;
            new.connect_reported = true;
            Ok((inner.insert(new), peer))
        })
    }

    /// connect(): an active open (RFC 9293 3.10.1), with Linux's results
    /// (__inet_stream_connect): EINPROGRESS when non-blocking, EALREADY
    /// while it is under way, 0 once when it completed, then EISCONN; a
    /// failed attempt reports its error and leaves the socket unconnected.
    /// `raw` is the caller's `sockaddr_in` or `sockaddr_in6`, read (as
    /// tcp_v4_connect / tcp_v6_connect do) only when a connection starts.
    pub fn connect(&self, fd: RawFd, raw: &[u8]) -> SysResult<()> {
        let started = self.run(Wait::Never, |inner, now| {
            let s = inner.sock(fd)?;
            let nonblocking = s.nonblocking;
            match s.kind {
                Kind::Listener { .. } => Err(Errno::EISCONN),
                Kind::Conn(c) => connect_progress(inner, fd, c, nonblocking),
                Kind::Fresh => start_connect(inner, fd, now, raw),
            }
        });
        match started {
            Err(Errno::EAGAIN) => {}
            r => return r,
        }
        // A blocking connect waits for the handshake to finish.
        self.run(Wait::Forever, |inner, _| {
            let Some(c) = inner.sock(fd)?.conn() else {
                return Err(Errno::EBADF);
            };
            connect_progress(inner, fd, c, false)
        })
    }

    /// shutdown(): SHUT_WR sends a FIN after the queued data (RFC 9293
    /// 3.10.4 CLOSE); SHUT_RD only makes reads return end of stream (Linux).
    pub fn shutdown(&self, fd: RawFd, how: i32) -> SysResult<()> {
        let (rd, wr) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        self.run(Wait::Never, |inner, _| {
            let s = inner.sock(fd)?;
            match &mut s.kind {
                Kind::Fresh => Err(Errno::ENOTCONN),
                Kind::Listener { id, ready } => {
                    // Linux inet_shutdown: SHUT_RD on a listener stops it.
                    if rd {
                        let (id, ready) = (*id, std::mem::take(ready));
                        s.kind = Kind::Fresh;
                        inner.stack.close_listener(id);
                        for c in ready {
                            let _ = inner.stack.abort(c);
                            let _ = inner.stack.close(c);
                        }
                    }
                    Ok(())
                }
                Kind::Conn(c) => {
                    let c = *c;
                    s.rd_shut |= rd;
                    s.wr_shut |= wr;
                    if inner.stack.state(c) == State::Closed {
                        return Err(Errno::ENOTCONN);
                    }
                    if wr {
                        inner.stack.shutdown(c).map_err(Errno::from)?;
                    }
                    Ok(())
                }
            }
        })
    }

    /// close(): releases the socket. A connection closes gracefully in the
    /// background, or with RST when unread data remains or SO_LINGER is
    /// zero (RFC 2525 2.17, RFC 9293 3.10.5).
    pub fn close(&self, fd: RawFd) -> SysResult<()> {
        self.run(Wait::Never, |inner, _| {
            let s = inner.sockets.remove(&fd).ok_or(Errno::EBADF)?;
            inner.release(s);
            Ok(())
        })
    }

    /// fcntl(): F_GETFL / F_SETFL (O_NONBLOCK), F_GETFD / F_SETFD.
    pub fn fcntl(&self, fd: RawFd, cmd: i32, arg: i32) -> SysResult<i32> {
        self.run(Wait::Never, |inner, _| {
            let s = inner.sock(fd)?;
            match cmd {
                libc::F_GETFL => {
                    Ok(libc::O_RDWR | if s.nonblocking { libc::O_NONBLOCK } else { 0 })
                }
                libc::F_SETFL => {
                    s.nonblocking = arg & libc::O_NONBLOCK != 0;
                    Ok(0)
                }
                libc::F_GETFD => Ok(0),
                libc::F_SETFD => Ok(0),
                _ => Err(Errno::EINVAL),
            }
        })
    }

    /// ioctl(): FIONREAD (bytes ready to read), TIOCOUTQ (bytes not yet
    /// acknowledged) and FIONBIO. `arg` is read for FIONBIO and written
    /// for the others.
    pub fn ioctl(&self, fd: RawFd, request: u64, arg: &mut i32) -> SysResult<()> {
        self.run(Wait::Never, |inner, _| {
            let s = inner.sock(fd)?;
            let listening = matches!(s.kind, Kind::Listener { .. });
            let conn = s.conn();
            let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
            match request {
                libc::FIONBIO => {
                    s.nonblocking = *arg != 0;
                }
                // Linux tcp_ioctl SIOCINQ: EINVAL on a listener.
                libc::FIONREAD if listening => return Err(Errno::EINVAL),
                libc::FIONREAD => {
                    let n = conn
                        .and_then(|c| inner.stack.recv_buffer(c))
                        .map_or(0, |b| b.len());
                    *arg = clamp(n);
                }
                libc::TIOCOUTQ if listening => return Err(Errno::EINVAL),
                libc::TIOCOUTQ => {
                    let n = conn
                        .and_then(|c| inner.stack.send_buffer(c))
                        .map_or(0, |b| b.len());
                    *arg = clamp(n);
                }
                _ => return Err(Errno::ENOTTY),
            }
            Ok(())
        })
    }
}

/// Sends the SYN of a fresh socket.
fn start_connect(inner: &mut Inner, fd: RawFd, now: Instant, raw: &[u8]) -> SysResult<()> {
    let (s, stack) = inner.parts(fd)?;
    let remote = addr::parse(raw, s.v6)?;
    // tcp_v6_connect: an IPV6_V6ONLY socket cannot reach an IPv4-mapped
    // address; any other mapped one goes out as IPv4 (RFC 4291 2.5.5.2),
    // which the stack does for an IPv6 socket's mapped remote.
    if s.opts.v6_only && addr::is_mapped(remote) {
        return Err(Errno::ENETUNREACH);
    }
    let local = s
        .bound
        .filter(|b| b.port() != 0 || !b.ip().is_unspecified());
    let buffers = s.opts.buffers(stack);
    let c = stack
        .connect_with_buffers(now, local, remote, buffers)
        .map_err(Errno::from)?;
    s.opts.apply(stack, c);
    let nonblocking = s.nonblocking;
    s.bound = stack.local_addr(c).map(|a| addr::in_family(a, s.v6));
    s.kind = Kind::Conn(c);
    s.err_reported = false;
    s.connect_reported = false;
    if nonblocking {
        Err(Errno::EINPROGRESS)
    } else {
        Err(Errno::EAGAIN)
    }
}

/// connect() on a socket that already has a connection.
fn connect_progress(inner: &mut Inner, fd: RawFd, c: ConnId, nonblocking: bool) -> SysResult<()> {
    let (s, stack) = inner.parts(fd)?;
    let state = stack.state(c);
    if is_connecting(state) {
        return Err(if nonblocking {
            Errno::EALREADY
        } else {
            Errno::EAGAIN
        });
    }
    if state != State::Closed {
        if s.connect_reported {
            return Err(Errno::EISCONN);
        }
        s.connect_reported = true;
        return Ok(());
    }
    if s.connect_reported {
        return Err(Errno::EISCONN);
    }
    // The attempt failed (RST, ICMP, timeout): report why once and go back
    // to unconnected (Linux sock_error ?: -ECONNABORTED, then disconnect).
    let err = s.take_error(stack).unwrap_or(Errno::ECONNABORTED);
    s.kind = Kind::Fresh;
    let _ = stack.close(c);
    Err(err)
}
