//! Address arguments: anything `tokio::net` accepts, either family.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Types that name one or more socket addresses, as in `tokio::net`:
/// `SocketAddr`, `(IpAddr, u16)`, `"10.0.0.1:80"`, `("host", 80)`, ...
///
/// Host names are resolved with the system resolver
/// (`tokio::net::lookup_host`); the addresses are tried in the order it
/// gives them, IPv4 and IPv6 alike.
///
/// This trait is sealed and cannot be implemented outside this crate.
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// What an address argument turns into before any I/O.
    pub enum Resolve {
        Done(io::Result<Vec<SocketAddr>>),
        Lookup(String),
    }

    pub trait ToSocketAddrsPriv {
        fn to_resolve(&self) -> Resolve;
    }
}

use sealed::{Resolve, ToSocketAddrsPriv};

macro_rules! direct {
    ($($t:ty => |$s:ident| $e:expr;)*) => {$(
        impl ToSocketAddrs for $t {}
        impl ToSocketAddrsPriv for $t {
            fn to_resolve(&self) -> Resolve {
                let $s = self;
                Resolve::Done(Ok(vec![$e]))
            }
        }
    )*};
}

direct! {
    SocketAddr => |s| *s;
    SocketAddrV4 => |s| SocketAddr::V4(*s);
    SocketAddrV6 => |s| SocketAddr::V6(*s);
    (IpAddr, u16) => |s| SocketAddr::new(s.0, s.1);
    (Ipv4Addr, u16) => |s| SocketAddr::new(IpAddr::V4(s.0), s.1);
    (Ipv6Addr, u16) => |s| SocketAddr::new(IpAddr::V6(s.0), s.1);
}

impl ToSocketAddrs for [SocketAddr] {}
impl ToSocketAddrsPriv for [SocketAddr] {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Ok(self.to_vec()))
    }
}

impl ToSocketAddrs for str {}
impl ToSocketAddrsPriv for str {
    fn to_resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolve::Done(Ok(vec![addr])),
            Err(_) => Resolve::Lookup(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}
impl ToSocketAddrsPriv for String {
    fn to_resolve(&self) -> Resolve {
        self.as_str().to_resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl ToSocketAddrsPriv for (&str, u16) {
    fn to_resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Done(Ok(vec![SocketAddr::new(ip, self.1)])),
            Err(_) => Resolve::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl ToSocketAddrsPriv for (String, u16) {
    fn to_resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).to_resolve()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrsPriv + ?Sized> ToSocketAddrsPriv for &T {
    fn to_resolve(&self) -> Resolve {
        (**self).to_resolve()
    }
}

/// Resolves `addr` to its socket addresses, in order, either family
/// (a host name through `tokio::net::lookup_host`).
///
/// # Errors
///
/// A resolver error, or `InvalidInput` when nothing resolves.
pub(crate) async fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    let all: Vec<SocketAddr> = match addr.to_resolve() {
        Resolve::Done(r) => r?,
        #[cfg(not(loom))]
        Resolve::Lookup(host) => tokio::net::lookup_host(host).await?.collect(),
        // Tokio leaves `net` out under `cfg(loom)`; only the ring models are
        // built then, so a blocking lookup is fine.
        #[cfg(loom)]
        Resolve::Lookup(host) => std::net::ToSocketAddrs::to_socket_addrs(&host)?.collect(),
    };
    if all.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(all)
}
