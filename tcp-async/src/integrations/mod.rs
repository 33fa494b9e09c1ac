//! Adapters for the Tokio ecosystem, each behind the cargo feature of its
//! name (all off by default):
//!
//! - `axum`: [`TcpListener`](crate::TcpListener) is an
//!   `axum::serve::Listener`, so `axum::serve(listener, app)` serves over
//!   the stack (see the `axum` module for `ConnectInfo` and ending
//!   `serve` when the stack stops).
//! - `hyper-util`: `HttpConnector`, a
//!   `tower::Service<Uri>` for hyper-util's legacy `Client` (and for
//!   tonic's `Endpoint::connect_with_connector`); `TcpStream` is a
//!   hyper-util `Connection`.
//! - `tonic`: `TcpStream` is a `tonic::transport::server::Connected`
//!   (reporting `TcpConnectInfo`, so `Request::remote_addr` works), so
//!   `Server::serve_with_incoming` takes
//!   [`TcpListener::into_stream`](crate::TcpListener::into_stream).
//!
//! TLS needs no feature: `tokio_rustls` wraps a `TcpStream` as it wraps
//! Tokio's (see `examples/tls.rs`).
//!
//! Always present: [`Stack::stopped`](crate::Stack::stopped), the signal
//! that ends a server's accept loop (`with_graceful_shutdown`,
//! `serve_with_incoming_shutdown`) once the stack is shut down, and
//! [`TcpListener::into_stream`](crate::TcpListener::into_stream), accepted
//! connections as a stream that ends then.

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "hyper-util")]
pub mod hyper;
#[cfg(feature = "tonic")]
pub mod tonic;

mod stream;

pub use stream::ListenerStream;

use crate::stack::Stack;
use std::future::Future;

impl Stack {
    /// Completes once the stack's driver has stopped ([`Stack::shutdown`]).
    ///
    /// Servers take it as their shutdown signal, so that they end when the
    /// stack does rather than wait for connections that can no longer
    /// come: `axum::serve(..).with_graceful_shutdown(stack.stopped())`,
    /// tonic's `serve_with_incoming_shutdown(incoming, stack.stopped())`.
    /// The future holds the driver's command channel open (it is
    /// `'static`, as `with_graceful_shutdown` wants), so the stack only
    /// stops through [`Stack::shutdown`] while it waits (or when the
    /// runtime ends).
    ///
    /// It completes as soon as the driver ends (its command channel
    /// closes), however it ends.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn dox(stack: tcp_async::Stack) {
    /// let watcher = stack.clone();
    /// tokio::spawn(async move {
    ///     watcher.stopped().await;
    ///     println!("stack stopped");
    /// });
    /// stack.shutdown().await;
    /// # }
    /// ```
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        // The driver's command channel closes when the driver ends, however
        // it ends (stop, abort, its runtime dropped).
        self.driver_gone()
    }
}
