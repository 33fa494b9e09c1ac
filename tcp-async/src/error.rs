//! The error every operation on a stopped stack gives.

use std::fmt;
use std::io;

/// The source of the `io::Error` every operation on a stopped [`Stack`]
/// returns, with the kind `io::ErrorKind::NotConnected`.
///
/// A stack stops with [`Stack::shutdown`], [`Stack::abort`], when its last
/// handle and socket are gone, or when the runtime that runs its driver
/// task shuts down. From then on `accept`, `connect`, `bind`/`listen`,
/// reads, writes, readiness, the option setters and the stack's own
/// queries (`stats`, ...) all fail with this error, from any runtime or
/// thread, at once: no operation waits for a driver that is gone. A read
/// still returns the bytes already received, and `Ok(0)` if the peer had
/// closed its side before the stop. `shutdown` (`poll_shutdown`) returns
/// `Ok(())`: tokio's maps `NotConnected` to `Ok(())` on purpose
/// (tokio-rs/tokio#4665), and this error's kind is `NotConnected`.
///
/// The kind is `NotConnected`, not `ConnectionAborted`: servers such as
/// axum and hyper take `ConnectionAborted`, `ConnectionRefused` and
/// `ConnectionReset` from `accept` for one failed connection and retry at
/// once, which would spin on a stopped stack. Test for this error with
/// [`is_stack_stopped`], or as below.
///
/// [`Stack`]: crate::Stack
/// [`Stack::shutdown`]: crate::Stack::shutdown
/// [`Stack::abort`]: crate::Stack::abort
///
/// # Examples
///
/// ```
/// use std::io;
/// use tcp_async::StackStopped;
///
/// let err = io::Error::from(StackStopped);
/// assert_eq!(err.kind(), io::ErrorKind::NotConnected);
/// assert_eq!(err.to_string(), "the stack has stopped");
/// assert!(err.get_ref().is_some_and(|e| e.is::<StackStopped>()));
/// assert!(tcp_async::is_stack_stopped(&err));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StackStopped;

impl fmt::Display for StackStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stack has stopped")
    }
}

impl std::error::Error for StackStopped {}

impl From<StackStopped> for io::Error {
    /// An `io::Error` of kind `NotConnected` with `StackStopped` as its
    /// source.
    fn from(e: StackStopped) -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, e)
    }
}

/// Whether `err` is the error of an operation on a stopped stack (its
/// source is [`StackStopped`]).
///
/// # Examples
///
/// ```
/// use std::io;
///
/// assert!(tcp_async::is_stack_stopped(&tcp_async::StackStopped.into()));
/// // The kind alone is not enough: other errors are `NotConnected` too.
/// let other = io::Error::from(io::ErrorKind::NotConnected);
/// assert!(!tcp_async::is_stack_stopped(&other));
/// ```
pub fn is_stack_stopped(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<StackStopped>())
}

/// The one constructor of the error of an operation on a stopped stack.
pub(crate) fn stack_stopped() -> io::Error {
    StackStopped.into()
}
