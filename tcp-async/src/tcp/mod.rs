//! TCP sockets, split by type like `tokio::net::tcp`.
//!
//! As `tokio::net::tcp`, this module names the halves of a split
//! [`TcpStream`]: [`ReadHalf`] and [`WriteHalf`] (borrowed, from
//! [`TcpStream::split`]), [`OwnedReadHalf`] and [`OwnedWriteHalf`] (from
//! [`TcpStream::into_split`]) and [`ReuniteError`]. The socket types are
//! also at the crate root, as in `tokio::net`.

pub(crate) mod addr;
pub(crate) mod listener;
pub(crate) mod ports;
pub(crate) mod socket;
pub(crate) mod split;
pub(crate) mod split_owned;
pub(crate) mod stream;

pub use addr::ToSocketAddrs;
pub use listener::{Incoming, IntoIncoming, TcpListener};
pub use socket::TcpSocket;
pub use split::{ReadHalf, WriteHalf};
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
