//! Errors returned by the socket calls of [`Stack`](crate::Stack).

use core::fmt;
use std::io;

/// Why a socket call failed. Converts into the `io::ErrorKind` a kernel socket gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// No data yet (recv) or no room (send); try again after an event.
    WouldBlock,
    /// The handle does not name a live connection or listener.
    InvalidHandle,
    /// The operation is not valid in the connection's state (e.g. `recv` before connected).
    NotConnected,
    /// The address/port is already bound.
    AddrInUse,
    /// The local address is not one of the stack's, or no ephemeral port is free.
    AddrNotAvailable,
    /// The peer answered the SYN with RST (ECONNREFUSED) or an ICMP port/protocol unreachable.
    ConnectionRefused,
    /// The peer reset the connection (ECONNRESET).
    ConnectionReset,
    /// The connection was aborted locally (ECONNABORTED).
    ConnectionAborted,
    /// Connect, keep-alive or user timeout expired (ETIMEDOUT).
    TimedOut,
    /// Writing after `shutdown`/`close` (EPIPE).
    BrokenPipe,
    /// ICMP host/net unreachable on connect (EHOSTUNREACH).
    HostUnreachable,
    /// No route: no local address of the destination's family, or an
    /// IPv6-only socket given an IPv4-mapped destination (ENETUNREACH).
    NetworkUnreachable,
    /// A resource limit was hit: the connection table, or the buffer
    /// memory (`Config::max_buffer_memory`; Linux gives ENOBUFS).
    Exhausted,
    /// An argument is invalid (e.g. port 0 to connect to, backlog 0).
    InvalidInput,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::WouldBlock => "operation would block",
            Error::InvalidHandle => "invalid connection or listener handle",
            Error::NotConnected => "socket is not connected",
            Error::AddrInUse => "address in use",
            Error::AddrNotAvailable => "address not available",
            Error::ConnectionRefused => "connection refused",
            Error::ConnectionReset => "connection reset by peer",
            Error::ConnectionAborted => "connection aborted",
            Error::TimedOut => "connection timed out",
            Error::BrokenPipe => "broken pipe",
            Error::HostUnreachable => "host unreachable",
            Error::NetworkUnreachable => "network unreachable",
            Error::Exhausted => "no buffer space available (connection or memory limit)",
            Error::InvalidInput => "invalid argument",
        })
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::ErrorKind {
    fn from(e: Error) -> io::ErrorKind {
        match e {
            Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::InvalidHandle | Error::NotConnected => io::ErrorKind::NotConnected,
            Error::AddrInUse => io::ErrorKind::AddrInUse,
            Error::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
            Error::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            Error::ConnectionReset => io::ErrorKind::ConnectionReset,
            Error::ConnectionAborted => io::ErrorKind::ConnectionAborted,
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::BrokenPipe => io::ErrorKind::BrokenPipe,
            Error::HostUnreachable => io::ErrorKind::HostUnreachable,
            Error::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
            Error::Exhausted => io::ErrorKind::OutOfMemory,
            Error::InvalidInput => io::ErrorKind::InvalidInput,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(io::ErrorKind::from(e), e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
