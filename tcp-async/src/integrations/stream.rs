//! [`ListenerStream`]: accepted connections as a `Stream` that ends when
//! the stack stops.

use crate::tcp::{TcpListener, TcpStream};
use futures::Stream;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

impl TcpListener {
    /// A [`Stream`] of accepted connections, owning the listener, that
    /// ends (`None`) once the stack is shut down, as a server's accept loop
    /// should: tonic's `serve_with_incoming` returns then.
    ///
    /// [`into_incoming`](TcpListener::into_incoming) instead yields the
    /// error again at every poll, and a consumer that skips accept errors
    /// (tonic's server does) would then loop without yielding.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// # async fn dox(listener: tcp_async::TcpListener) {
    /// let mut incoming = listener.into_stream();
    /// while let Some(conn) = incoming.next().await {
    ///     let Ok(stream) = conn else { continue };
    ///     tokio::spawn(async move { drop(stream) });
    /// }
    /// // The stack was shut down.
    /// # }
    /// ```
    pub fn into_stream(self) -> ListenerStream {
        ListenerStream {
            listener: Some(self),
        }
    }
}

/// Accepted connections as a [`Stream`] owning the listener, ending when
/// the stack stops; from [`TcpListener::into_stream`].
#[derive(Debug)]
pub struct ListenerStream {
    /// `None` once the stream has ended (the listener is dropped then).
    listener: Option<TcpListener>,
}

impl ListenerStream {
    /// The listener back, unless the stream has ended.
    pub fn into_inner(self) -> Option<TcpListener> {
        self.listener
    }
}

impl Stream for ListenerStream {
    type Item = io::Result<TcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(listener) = &self.listener else {
            return Poll::Ready(None);
        };
        match ready!(listener.poll_accept(cx)) {
            Ok((stream, _)) => Poll::Ready(Some(Ok(stream))),
            // The stack was shut down (or the listener closed): for good.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.listener = None;
                Poll::Ready(None)
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}
