//! Borrowed halves of a [`TcpStream`], from [`TcpStream::split`].

use crate::tcp::stream::TcpStream;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

/// The read half of a borrowed split; reads go straight to the stream.
///
/// Created by [`TcpStream::split`].
///
/// # Examples
///
/// Reading and writing one stream at once, in one task:
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # use tcp_async::{device::MemoryDevice, Config, Stack};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # // Two stacks joined by an in-memory link, 10.0.0.1 and 10.0.0.2.
/// # let (a, b) = MemoryDevice::pair(1500);
/// # let server = Stack::builder(a).config(Config::with_addr("10.0.0.1".parse().unwrap())).build()?;
/// # let client = Stack::builder(b).config(Config::with_addr("10.0.0.2".parse().unwrap())).build()?;
/// # let listener = tcp_async::TcpListener::bind_with(&server, "10.0.0.1:7").await?;
/// # let mut stream = tcp_async::TcpStream::connect_with(&client, "10.0.0.1:7").await?;
/// # let (mut peer, _) = listener.accept().await?;
/// # peer.write_all(b"pong").await?;
/// let (mut rd, mut wr) = stream.split();
/// let mut buf = [0; 4];
/// let (r, w) = tokio::join!(rd.read_exact(&mut buf), wr.write_all(b"ping"));
/// r?;
/// w?;
/// assert_eq!(&buf, b"pong");
/// # let mut got = [0; 4];
/// # peer.read_exact(&mut got).await?;
/// # assert_eq!(&got, b"ping");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The write half of a borrowed split. Shutting it down half-closes the
/// stream; dropping it does nothing.
///
/// Created by [`TcpStream::split`].
///
/// # Examples
///
/// Half-closing through the write half, then reading the answer:
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # use tcp_async::{device::MemoryDevice, Config, Stack};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # // Two stacks joined by an in-memory link, 10.0.0.1 and 10.0.0.2.
/// # let (a, b) = MemoryDevice::pair(1500);
/// # let server = Stack::builder(a).config(Config::with_addr("10.0.0.1".parse().unwrap())).build()?;
/// # let client = Stack::builder(b).config(Config::with_addr("10.0.0.2".parse().unwrap())).build()?;
/// # let listener = tcp_async::TcpListener::bind_with(&server, "10.0.0.1:7").await?;
/// # let mut stream = tcp_async::TcpStream::connect_with(&client, "10.0.0.1:7").await?;
/// # let (mut peer, _) = listener.accept().await?;
/// let (mut rd, mut wr) = stream.split();
/// wr.write_all(b"question").await?;
/// wr.shutdown().await?; // the peer sees the end of stream
/// # let mut q = Vec::new();
/// # peer.read_to_end(&mut q).await?;
/// # assert_eq!(q, b"question");
/// # peer.write_all(b"answer").await?;
/// # drop(peer);
/// let mut answer = Vec::new();
/// rd.read_to_end(&mut answer).await?;
/// assert_eq!(answer, b"answer");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

pub(crate) fn split(stream: &mut TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf(stream), WriteHalf(stream))
}

impl ReadHalf<'_> {
    /// See [`TcpStream::poll_peek`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::peek`].
    pub fn poll_peek(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }

    /// See [`TcpStream::peek`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::peek`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }

    /// See [`TcpStream::ready`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::ready`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// See [`TcpStream::readable`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::ready`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// See [`TcpStream::try_read`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }

    /// See [`TcpStream::try_read_buf`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_read`].
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.0.try_read_buf(buf)
    }

    /// See [`TcpStream::try_read_vectored`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_read`].
    pub fn try_read_vectored(&self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        self.0.try_read_vectored(bufs)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl WriteHalf<'_> {
    /// See [`TcpStream::ready`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::ready`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// See [`TcpStream::writable`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::ready`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }

    /// See [`TcpStream::try_write`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    /// See [`TcpStream::try_write_vectored`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_write`].
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl AsRef<TcpStream> for ReadHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.0
    }
}

impl AsRef<TcpStream> for WriteHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.0
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_priv())
    }
}
