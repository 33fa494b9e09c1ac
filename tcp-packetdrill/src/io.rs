//! Moving data and waiting for it: the read and write families and poll,
//! with Linux's results (tcp_recvmsg, tcp_sendmsg and tcp_poll decide
//! them there; each rule below names where it comes from).

use crate::errno::{Errno, SysResult};
use crate::shim::{Inner, Shared, Wait};
use crate::socket::Kind;
use std::os::fd::RawFd;
use std::time::{Duration, Instant as StdInstant};
use tcp_stack::{Error, State};

impl Shared {
    fn wait_for(&self, fd: RawFd, flags: i32) -> SysResult<Wait> {
        let nonblocking = self.run(Wait::Never, |i, _| Ok(i.sock(fd)?.nonblocking))?;
        Ok(Wait::blocking(
            nonblocking || flags & libc::MSG_DONTWAIT != 0,
        ))
    }

    /// recv() and read(): MSG_PEEK, MSG_DONTWAIT and MSG_WAITALL are honoured.
    pub fn recv(&self, fd: RawFd, buf: &mut [u8], flags: i32) -> SysResult<usize> {
        if flags & libc::MSG_OOB != 0 {
            // Urgent data is delivered in band (the core's "Not yet" list);
            // Linux gives EINVAL when there is no out-of-band byte.
            return Err(Errno::EINVAL);
        }
        let wait = self.wait_for(fd, flags)?;
        let peek = flags & libc::MSG_PEEK != 0;
        let wait_all = flags & libc::MSG_WAITALL != 0 && !peek;
        let nonblocking = matches!(wait, Wait::Never);
        let mut got = 0;
        self.run(wait, |inner, _| loop {
            match recv_once(inner, fd, &mut buf[got..], peek) {
                Ok(0) => return Ok(got),
                Ok(n) => {
                    got += n;
                    if !wait_all || got == buf.len() {
                        return Ok(got);
                    }
                }
                // Partial data before a would-block (non-blocking) or an
                // error counts as the result (tcp_recvmsg returns "copied").
                Err(Errno::EAGAIN) if got > 0 && nonblocking => return Ok(got),
                Err(Errno::EAGAIN) => return Err(Errno::EAGAIN),
                Err(_) if got > 0 => return Ok(got),
                Err(e) => return Err(e),
            }
        })
    }

    /// send() and write(). A blocking socket waits until every byte is
    /// queued (tcp_sendmsg); a non-blocking one takes what fits.
    pub fn send(&self, fd: RawFd, data: &[u8], flags: i32) -> SysResult<usize> {
        let wait = self.wait_for(fd, flags)?;
        let nonblocking = matches!(wait, Wait::Never);
        let mut sent = 0;
        self.run(wait, |inner, _| loop {
            match send_once(inner, fd, &data[sent..]) {
                Ok(n) => {
                    sent += n;
                    if sent == data.len() || n == 0 {
                        return Ok(sent);
                    }
                }
                Err(Errno::EAGAIN) if sent > 0 && nonblocking => return Ok(sent),
                Err(Errno::EAGAIN) => return Err(Errno::EAGAIN),
                Err(_) if sent > 0 => return Ok(sent),
                Err(e) => return Err(e),
            }
        })
    }

    /// poll(): fills `revents`; waits up to `timeout_ms` (negative: for
    /// ever) for one of them to be non-zero.
    pub fn poll(&self, fds: &mut [libc::pollfd], timeout_ms: i32) -> SysResult<usize> {
        let wait = match u64::try_from(timeout_ms) {
            Err(_) => Wait::Forever,
            Ok(0) => Wait::Never,
            Ok(ms) => Wait::Until(StdInstant::now() + Duration::from_millis(ms)),
        };
        let r = self.run(wait, |inner, _| {
            let mut ready = 0;
            for p in fds.iter_mut() {
                p.revents = if p.fd < 0 {
                    0
                } else {
                    let mask = revents(inner, p.fd);
                    // As Linux's do_pollfd: the requested events plus the
                    // ones always reported.
                    mask & (p.events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL)
                };
                if p.revents != 0 {
                    ready += 1;
                }
            }
            if ready == 0 {
                Err(Errno::EAGAIN)
            } else {
                Ok(ready)
            }
        });
        match r {
            Err(Errno::EAGAIN) => Ok(0),
            r => r,
        }
    }
}

/// One attempt to read.
fn recv_once(inner: &mut Inner, fd: RawFd, buf: &mut [u8], peek: bool) -> SysResult<usize> {
    let (s, stack) = inner.parts(fd)?;
    // tcp_recvmsg: ENOTCONN on a listener or a never-connected socket.
    let Kind::Conn(c) = s.kind else {
        return Err(Errno::ENOTCONN);
    };
    let r = if peek {
        stack.peek(c, buf)
    } else {
        stack.recv(c, buf)
    };
    match r {
        Ok(n) => Ok(n),
        // After shutdown(SHUT_RD), reads see end of stream (RCV_SHUTDOWN).
        Err(Error::WouldBlock) if s.rd_shut => Ok(0),
        Err(Error::WouldBlock) => Err(Errno::EAGAIN),
        // Closed without an error (the connection ended): end of stream.
        Err(Error::NotConnected | Error::InvalidHandle) => Ok(0),
        // The connection's error once (sock_error), then end of stream.
        Err(e) if !s.err_reported => {
            s.err_reported = true;
            Err(Errno::from(e))
        }
        Err(_) => Ok(0),
    }
}

/// One attempt to write.
fn send_once(inner: &mut Inner, fd: RawFd, data: &[u8]) -> SysResult<usize> {
    let (s, stack) = inner.parts(fd)?;
    // tcp_sendmsg -> sk_stream_wait_connect: EPIPE unless connecting or
    // connected (a fresh or listening socket is in CLOSE or LISTEN).
    let Kind::Conn(c) = s.kind else {
        return Err(Errno::EPIPE);
    };
    if let Some(e) = s.take_error(stack) {
        return Err(e);
    }
    if s.wr_shut {
        return Err(Errno::EPIPE);
    }
    match stack.state(c) {
        // Linux does not queue data before the handshake completes: it
        // waits for it (or EAGAIN when non-blocking).
        State::SynSent | State::SynReceived => return Err(Errno::EAGAIN),
        State::Closed => return Err(Errno::EPIPE),
        _ => {}
    }
    if data.is_empty() {
        return Ok(0);
    }
    match stack.send(c, data) {
        Ok(n) => Ok(n),
        Err(Error::WouldBlock) => Err(Errno::EAGAIN),
        Err(Error::BrokenPipe | Error::NotConnected | Error::InvalidHandle) => Err(Errno::EPIPE),
        Err(e) => {
            if s.err_reported {
                Err(Errno::EPIPE)
            } else {
                s.err_reported = true;
                Err(Errno::from(e))
            }
        }
    }
}

/// The poll mask of one descriptor, as Linux's tcp_poll computes it.
fn revents(inner: &mut Inner, fd: RawFd) -> i16 {
    const IN: i16 = libc::POLLIN | libc::POLLRDNORM;
    const OUT: i16 = libc::POLLOUT | libc::POLLWRNORM;
    inner.fill_ready(fd);
    let Some(s) = inner.sockets.get(&fd) else {
        return libc::POLLNVAL;
    };
    let c = match &s.kind {
        // A socket in CLOSE: EPOLLHUP, and writable (Linux gives 0x14 for
        // a new socket).
        Kind::Fresh => return OUT | libc::POLLHUP,
        Kind::Listener { ready, .. } => return if ready.is_empty() { 0 } else { IN },
        Kind::Conn(c) => *c,
    };
    let stack = &inner.stack;
    let state = stack.state(c);
    let closed = state == State::Closed;
    let peer_fin = matches!(
        state,
        State::CloseWait | State::Closing | State::LastAck | State::TimeWait
    );
    // sk_shutdown: set by shutdown(), by the peer's FIN (RCV_SHUTDOWN) and
    // entirely by tcp_done when the connection closes.
    let rcv_shut = s.rd_shut || peer_fin || closed;
    let snd_shut = s.wr_shut || closed;
    let mut mask = 0;
    if rcv_shut && snd_shut {
        mask |= libc::POLLHUP;
    }
    if rcv_shut {
        mask |= IN | libc::POLLRDHUP;
    }
    if !matches!(state, State::SynSent | State::SynReceived) {
        if stack.recv_buffer(c).is_some_and(|b| !b.is_empty()) {
            mask |= IN;
        }
        let writable = stack.send_buffer(c).is_some_and(|b| {
            // sk_stream_is_writeable: free space at least half the queued bytes.
            b.free() > 0 && b.free() >= b.len() / 2
        });
        if snd_shut || writable {
            mask |= OUT;
        }
    }
    if s.pending_error(stack).is_some() {
        mask |= libc::POLLERR;
    }
    mask
}
