//! Address arguments: `tokio::net::ToSocketAddrs`, either family.
//!
//! `bind` and `connect` take anything tokio's do (`SocketAddr`,
//! `(IpAddr, u16)`, `"10.0.0.1:80"`, `("host", 80)`, ...), through tokio's
//! own (sealed) trait, so code generic over `tokio::net::ToSocketAddrs`
//! calls them unchanged. Resolution is `tokio::net::lookup_host`: literal
//! addresses at once, host names with the system resolver; the addresses
//! are tried in the order it gives them, IPv4 and IPv6 alike.

use std::io;
use std::net::SocketAddr;

#[cfg(not(loom))]
pub use tokio::net::ToSocketAddrs;

/// Under `cfg(loom)` tokio is built without `net`; only the ring models
/// run then, and std's trait stands in for tokio's.
#[cfg(loom)]
pub trait ToSocketAddrs: std::net::ToSocketAddrs {}
#[cfg(loom)]
impl<T: std::net::ToSocketAddrs + ?Sized> ToSocketAddrs for T {}

/// Resolves `addr` to its socket addresses, in order, either family.
///
/// # Errors
///
/// A resolver error, or `InvalidInput` when nothing resolves.
pub(crate) async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    #[cfg(not(loom))]
    let all: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
    #[cfg(loom)]
    let all: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if all.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(all)
}
