//! TCP sockets, split by type like `tokio::net::tcp`.

pub(crate) mod addr;
pub(crate) mod listener;
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
