//! tonic's server over the stack (feature `tonic`, tonic 0.14).
//!
//! [`TcpStream`] is a [`Connected`]: its connect info is tonic's own
//! [`TcpConnectInfo`], so `Request::remote_addr` and `local_addr` work in
//! handlers as over Tokio. Serve with `serve_with_incoming` (or
//! `serve_with_incoming_shutdown`) fed by
//! [`TcpListener::into_stream`](crate::TcpListener::into_stream), which
//! ends when the stack stops, and so ends the server (not
//! [`into_incoming`](crate::TcpListener::into_incoming): tonic skips
//! accept errors, and would poll it again and again once the stack has
//! stopped);
//! connect clients with `Endpoint::connect_with_connector` and an
//! [`HttpConnector`](crate::HttpConnector).
//!
//! ```ignore
//! use tcp_async::{HttpConnector, TcpListener};
//! use tonic::transport::{Endpoint, Server};
//!
//! let listener = TcpListener::bind_with(&stack, "10.0.0.1:50051").await?;
//! tokio::spawn(
//!     Server::builder()
//!         .add_service(svc)
//!         .serve_with_incoming(listener.into_stream()),
//! );
//! let channel = Endpoint::from_static("http://10.0.0.1:50051")
//!     .connect_with_connector(HttpConnector::new(&stack))
//!     .await?;
//! ```
//!
//! (Not compiled here, as a service needs tonic's `router` feature; the
//! `grpc` example of the workspace is the same program, whole.)

use crate::tcp::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

impl Connected for TcpStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local_addr().ok(),
            remote_addr: self.peer_addr().ok(),
        }
    }
}
