//! `axum::serve` over the stack: [`TcpListener`] is an
//! [`axum::serve::Listener`] (feature `axum`, axum 0.8).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tcp_async::TcpListener;
//!
//! # async fn dox(stack: tcp_async::Stack) -> std::io::Result<()> {
//! let app = Router::new().route("/", get(|| async { "hello" }));
//! let listener = TcpListener::bind_with(&stack, "10.0.0.1:80").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(stack.stopped())
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # `ConnectInfo<SocketAddr>`
//!
//! axum 0.8 implements `Connected<IncomingStream<'_, L>> for SocketAddr`
//! only for Tokio's listener and for `TapIo<L, F>` (any `L` whose `Addr`
//! is `SocketAddr`); the orphan rules keep this crate from adding it for
//! its own listener (axum pull request 3331 would make it general). Wrap
//! the listener with [`ListenerExt::tap_io`](axum::serve::ListenerExt::tap_io)
//! (a no-op closure will do, or one that sets `TCP_NODELAY`) and
//! `into_make_service_with_connect_info::<SocketAddr>()` works as over
//! Tokio:
//!
//! ```no_run
//! use axum::{extract::ConnectInfo, routing::get, serve::ListenerExt, Router};
//! use std::net::SocketAddr;
//!
//! # async fn dox(listener: tcp_async::TcpListener) -> std::io::Result<()> {
//! let app = Router::new().route(
//!     "/",
//!     get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
//! );
//! let listener = listener.tap_io(|s| {
//!     let _ = s.set_nodelay(true);
//! });
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors and a stopped stack
//!
//! `Listener::accept` cannot fail, so, as axum's implementation for
//! Tokio's listener does, errors are handled inside it: a connection that
//! failed before it was accepted (`ConnectionAborted`, `ConnectionReset`,
//! `ConnectionRefused`) is skipped; any other error is logged and the
//! accept retried after a second. Once the stack is shut down no
//! connection can come again: the error is logged once and `accept` never
//! completes, so `serve` waits for its graceful-shutdown signal. Pass
//! [`Stack::stopped`](crate::Stack::stopped) (or a future that also waits
//! for it) to `with_graceful_shutdown` to have `serve` return when the
//! stack stops.

use crate::tcp::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// How long `accept` waits after an error that is not the connection's.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

impl axum::serve::Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match TcpListener::accept(self).await {
                Ok(conn) => return conn,
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accept: connection failed before it was accepted");
                }
                // The listener's stack was shut down: nothing will come.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    tracing::error!(
                        local = ?TcpListener::local_addr(self).ok(),
                        "accept: {e}; no more connections (end `axum::serve` with \
                         `with_graceful_shutdown(stack.stopped())`)"
                    );
                    return std::future::pending().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "accept error; retrying in 1 s");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// Errors of one connection, not of the listener (axum's own list).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
