//! Owned halves of a [`TcpStream`], from [`TcpStream::into_split`].

use crate::tcp::stream::TcpStream;
use std::error::Error;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

/// The read half of an owned split; can move to its own task.
///
/// Created by [`TcpStream::into_split`]. Dropping it does not close
/// anything: the connection closes when both halves are gone.
///
/// # Examples
///
/// A reader task and a writer task on one connection, then the halves
/// reunited:
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
/// let (mut rd, mut wr) = stream.into_split();
/// let reader = tokio::spawn(async move {
///     let mut buf = [0; 4];
///     rd.read_exact(&mut buf).await.map(|_| (buf, rd))
/// });
/// wr.write_all(b"ping").await?;
/// let (buf, rd) = reader.await.unwrap()?;
/// assert_eq!(&buf, b"pong");
/// let stream = rd.reunite(wr).expect("halves of one stream");
/// # let mut got = [0; 4];
/// # peer.read_exact(&mut got).await?;
/// # assert_eq!(&got, b"ping");
/// # drop(stream);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<TcpStream>,
}

/// The write half of an owned split; can move to its own task.
///
/// Created by [`TcpStream::into_split`]. Like Tokio's, dropping it shuts
/// the write direction down (a FIN after the written data), unless
/// [`forget`](OwnedWriteHalf::forget) was called.
///
/// # Examples
///
/// Dropping the write half sends the FIN; the read half keeps reading:
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
/// let (mut rd, mut wr) = stream.into_split();
/// wr.write_all(b"bye").await?;
/// drop(wr); // shuts the write direction down
/// # let mut got = Vec::new();
/// # peer.read_to_end(&mut got).await?;
/// # assert_eq!(got, b"bye");
/// # peer.write_all(b"ok").await?;
/// # drop(peer);
/// let mut answer = Vec::new();
/// rd.read_to_end(&mut answer).await?;
/// assert_eq!(answer, b"ok");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

pub(crate) fn split_owned(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let inner = Arc::new(stream);
    (
        OwnedReadHalf {
            inner: inner.clone(),
        },
        OwnedWriteHalf {
            inner,
            shutdown_on_drop: true,
        },
    )
}

/// Error of [`OwnedReadHalf::reunite`]: the halves came from different
/// streams. It gives both back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl Error for ReuniteError {}

fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if !Arc::ptr_eq(&read.inner, &write.inner) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    Ok(Arc::try_unwrap(read.inner).expect("the two halves held the only references"))
}

impl OwnedReadHalf {
    /// Puts the halves back together into the original stream.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] (with both halves) if they belong to different streams.
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }

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
        self.inner.poll_peek(cx, buf)
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
        self.inner.peek(buf).await
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
        self.inner.ready(interest).await
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
        self.inner.readable().await
    }

    /// See [`TcpStream::try_read`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.try_read(buf)
    }

    /// See [`TcpStream::try_read_buf`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_read`].
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.inner.try_read_buf(buf)
    }

    /// See [`TcpStream::try_read_vectored`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_read`].
    pub fn try_read_vectored(&self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        self.inner.try_read_vectored(bufs)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl OwnedWriteHalf {
    /// Puts the halves back together into the original stream.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] (with both halves) if they belong to different streams.
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }

    /// Drops the half without shutting the write direction down.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
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
        self.inner.ready(interest).await
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
        self.inner.writable().await
    }

    /// See [`TcpStream::try_write`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }

    /// See [`TcpStream::try_write_vectored`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::try_write`].
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.try_write_vectored(bufs)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// Never fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.inner.shutdown_priv();
        }
    }
}

impl AsRef<TcpStream> for OwnedReadHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsRef<TcpStream> for OwnedWriteHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = self.inner.shutdown_priv();
        if res.is_ok() {
            // Already shut down: nothing more to do on drop.
            self.get_mut().shutdown_on_drop = false;
        }
        Poll::Ready(res)
    }
}
