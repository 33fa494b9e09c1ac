//! A connector for hyper-util's legacy client (feature `hyper-util`).
//!
//! ```no_run
//! use http_body_util::Empty;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tcp_async::HttpConnector;
//!
//! # async fn dox(stack: tcp_async::Stack) -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<bytes::Bytes>>(HttpConnector::new(&stack));
//! let resp = client.get("http://10.0.0.2:8080/".parse()?).await?;
//! println!("{}", resp.status());
//! # Ok(())
//! # }
//! ```

use crate::stack::Stack;
use crate::tcp::TcpStream;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Opens TCP connections on a [`Stack`] for URIs: a
/// `tower::Service<Uri>` yielding `TokioIo<TcpStream>`, like hyper-util's
/// `HttpConnector` over Tokio.
///
/// It connects to the URI's host and port: port 80 by default for `http`,
/// 443 for `https` (it does no TLS itself: a TLS connector wrapping it
/// does that). Host names are resolved with `tokio::net::lookup_host`, and
/// each address is tried in turn. It serves hyper-util's legacy
/// `Client::builder(..).build(connector)` and tonic's
/// `Endpoint::connect_with_connector(connector)` alike.
///
/// Cloning is cheap (a stack handle).
///
/// # Examples
///
/// ```no_run
/// use tower_service::Service;
///
/// # async fn dox(stack: tcp_async::Stack) -> std::io::Result<()> {
/// let mut connector = tcp_async::HttpConnector::new(&stack);
/// let io = connector.call("http://10.0.0.2/".parse().unwrap()).await?;
/// # drop(io); Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpConnector {
    stack: Stack,
    nodelay: bool,
}

impl fmt::Debug for HttpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnector")
            .field("stack", &self.stack)
            .field("nodelay", &self.nodelay)
            .finish()
    }
}

impl HttpConnector {
    /// A connector opening its connections on `stack`.
    pub fn new(stack: &Stack) -> HttpConnector {
        HttpConnector {
            stack: stack.clone(),
            nodelay: false,
        }
    }

    /// Sets `TCP_NODELAY` on every connection it opens (default `false`).
    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.nodelay = nodelay;
    }
}

/// The future of [`HttpConnector`]'s `call`.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TcpStream>>> + Send>>;

impl tower_service::Service<Uri> for HttpConnector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let stack = self.stack.clone();
        let nodelay = self.nodelay;
        Box::pin(async move {
            let (host, port) = host_port(&uri)?;
            let stream = match host.parse::<IpAddr>() {
                Ok(ip) => TcpStream::connect_with(&stack, (ip, port)).await?,
                Err(_) => TcpStream::connect_with(&stack, (host, port)).await?,
            };
            if nodelay {
                stream.set_nodelay(true)?;
            }
            Ok(TokioIo::new(stream))
        })
    }
}

/// The host (brackets of an IPv6 literal removed) and port `uri` names.
fn host_port(uri: &Uri) -> io::Result<(&str, u16)> {
    let invalid =
        |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {uri}"));
    let host = uri.host().ok_or_else(|| invalid("URI without a host"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("http") | None) => 80,
        (None, Some("https")) => 443,
        (None, Some(_)) => return Err(invalid("no default port for the URI's scheme")),
    };
    Ok((host, port))
}

impl Connection for TcpStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn test_host_port_defaults_and_literals() {
        let hp = |s: &str| host_port(&s.parse().unwrap()).map(|(h, p)| (h.to_owned(), p));
        assert_eq!(hp("http://10.0.0.1/").unwrap(), ("10.0.0.1".into(), 80));
        assert_eq!(
            hp("https://example.org/x").unwrap(),
            ("example.org".into(), 443)
        );
        assert_eq!(
            hp("http://[fd00::1]:8080/").unwrap(),
            ("fd00::1".into(), 8080)
        );
        assert_eq!(hp("10.0.0.1:9").unwrap(), ("10.0.0.1".into(), 9));
        assert!(hp("ftp://10.0.0.1/").is_err());
        assert!(hp("/relative").is_err());
    }
}
