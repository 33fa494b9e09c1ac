//! Failures as the errno values a Linux socket call sets.

use tcp_stack::Error;

/// An errno value (`libc::E*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Result of a socket call: the value, or the errno to set with -1.
pub type SysResult<T> = Result<T, Errno>;

impl Errno {
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const EPIPE: Errno = Errno(libc::EPIPE);
    pub const ENOTCONN: Errno = Errno(libc::ENOTCONN);
    pub const EISCONN: Errno = Errno(libc::EISCONN);
    pub const EALREADY: Errno = Errno(libc::EALREADY);
    pub const EINPROGRESS: Errno = Errno(libc::EINPROGRESS);
    pub const ECONNABORTED: Errno = Errno(libc::ECONNABORTED);
    pub const EADDRINUSE: Errno = Errno(libc::EADDRINUSE);
    pub const EADDRNOTAVAIL: Errno = Errno(libc::EADDRNOTAVAIL);
    pub const EAFNOSUPPORT: Errno = Errno(libc::EAFNOSUPPORT);
    pub const EPROTONOSUPPORT: Errno = Errno(libc::EPROTONOSUPPORT);
    pub const ESOCKTNOSUPPORT: Errno = Errno(libc::ESOCKTNOSUPPORT);
    pub const ENOPROTOOPT: Errno = Errno(libc::ENOPROTOOPT);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    pub const ENETUNREACH: Errno = Errno(libc::ENETUNREACH);
}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        Errno(match e {
            Error::WouldBlock => libc::EAGAIN,
            Error::InvalidHandle => libc::EBADF,
            Error::NotConnected => libc::ENOTCONN,
            Error::AddrInUse => libc::EADDRINUSE,
            Error::AddrNotAvailable => libc::EADDRNOTAVAIL,
            Error::ConnectionRefused => libc::ECONNREFUSED,
            Error::NetworkUnreachable => libc::ENETUNREACH,
            Error::ConnectionReset => libc::ECONNRESET,
            Error::ConnectionAborted => libc::ECONNABORTED,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::BrokenPipe => libc::EPIPE,
            Error::HostUnreachable => libc::EHOSTUNREACH,
            Error::Exhausted => libc::ENOBUFS,
            Error::InvalidInput => libc::EINVAL,
        })
    }
}
