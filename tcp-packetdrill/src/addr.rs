//! Socket addresses as they cross the ABI: `struct sockaddr_in` for an
//! AF_INET socket, `struct sockaddr_in6` for an AF_INET6 one, with the
//! length and family checks Linux makes (inet_bind / tcp_v4_connect and
//! inet6_bind / tcp_v6_connect), and the family each socket reports its
//! addresses in.
//!
//! An AF_INET6 socket may carry IPv4: given an IPv4-mapped address
//! `::ffff:a.b.c.d` (RFC 4291 2.5.5.2) it talks IPv4 on the wire, and it
//! reports IPv4 peers and local addresses IPv4-mapped, as Linux does.
//! Everything here is safe code on byte slices; `ffi` copies them from
//! and to the caller's memory.

use crate::errno::{Errno, SysResult};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `sizeof(struct sockaddr_in)`.
pub const SIN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub const SIN6_LEN: usize = 28;
/// Linux SIN6_LEN_RFC2133: a `sockaddr_in6` without `sin6_scope_id`, the
/// shortest inet6_bind and tcp_v6_connect accept.
pub const SIN6_LEN_RFC2133: usize = 24;
/// `sizeof(struct sockaddr_storage)`: Linux move_addr_to_kernel refuses
/// longer addresses with EINVAL.
pub const SOCKADDR_STORAGE_LEN: usize = 128;

/// Reads the address given to bind() or connect() on a socket of the given
/// family (`v6`: AF_INET6). A short address is EINVAL, one of another
/// family EAFNOSUPPORT (so an AF_INET socket given a `sockaddr_in6` is
/// EAFNOSUPPORT, as on Linux). An AF_INET6 socket's address is returned as
/// `SocketAddr::V6`, IPv4-mapped ones included; the stack maps them to IPv4.
pub fn parse(b: &[u8], v6: bool) -> SysResult<SocketAddr> {
    if b.len() > SOCKADDR_STORAGE_LEN {
        return Err(Errno::EINVAL);
    }
    let min = if v6 { SIN6_LEN_RFC2133 } else { SIN_LEN };
    if b.len() < min {
        return Err(Errno::EINVAL);
    }
    let family = i32::from(libc::sa_family_t::from_ne_bytes([b[0], b[1]]));
    let port = u16::from_be_bytes([b[2], b[3]]);
    if !v6 {
        if family != libc::AF_INET {
            return Err(Errno::EAFNOSUPPORT);
        }
        let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
        return Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)));
    }
    if family != libc::AF_INET6 {
        return Err(Errno::EAFNOSUPPORT);
    }
    let flowinfo = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&b[8..24]);
    // sin6_scope_id only when the caller passed it (RFC 2553's longer form).
    let scope = b
        .get(24..28)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    Ok(SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(octets),
        port,
        flowinfo,
        scope,
    )))
}

/// `addr` in the family of a socket (`v6`: AF_INET6): an AF_INET6 socket
/// reports IPv4 addresses IPv4-mapped (RFC 4291 2.5.5.2); an AF_INET one
/// only ever holds IPv4 addresses, and a mapped one is shown as the IPv4
/// address it maps.
pub fn in_family(addr: SocketAddr, v6: bool) -> SocketAddr {
    match (addr, v6) {
        (SocketAddr::V4(a), true) => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        (SocketAddr::V6(a), false) => match a.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::V4(SocketAddrV4::new(ip, a.port())),
            None => addr,
        },
        _ => addr,
    }
}

/// The unspecified address of a socket's family, port 0 (what an unbound
/// socket is bound to).
pub fn unspecified(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}

/// Whether `addr` is IPv4-mapped (RFC 4291 2.5.5.2).
pub fn is_mapped(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_some())
}

/// The addresses a socket bound to `a` (in its family) covers, per wire
/// family: `None` none of that family, `Some(None)` all of it,
/// `Some(Some(ip))` that one. An AF_INET6 wildcard covers IPv4 too unless
/// IPV6_V6ONLY; a mapped address covers the IPv4 address it maps.
fn covers(a: SocketAddr, v6_only: bool) -> (Option<Option<Ipv4Addr>>, Option<Option<Ipv6Addr>>) {
    match in_family(a, false) {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Some(None), None),
        SocketAddr::V4(a) => (Some(Some(*a.ip())), None),
        SocketAddr::V6(a) if a.ip().is_unspecified() => ((!v6_only).then_some(None), Some(None)),
        SocketAddr::V6(a) => (None, Some(Some(*a.ip()))),
    }
}

/// Whether two binds (each address in its socket's family, with its
/// socket's IPV6_V6ONLY) share an address: the test Linux's
/// inet_csk_bind_conflict makes for the same port, across families.
pub fn overlap(a: SocketAddr, a_v6_only: bool, b: SocketAddr, b_v6_only: bool) -> bool {
    fn meet<T: PartialEq>(x: Option<Option<T>>, y: Option<Option<T>>) -> bool {
        match (x, y) {
            (Some(x), Some(y)) => x.is_none() || y.is_none() || x == y,
            _ => false,
        }
    }
    let (a4, a6) = covers(a, a_v6_only);
    let (b4, b6) = covers(b, b_v6_only);
    meet(a4, b4) || meet(a6, b6)
}

/// The bytes of a `sockaddr_in` (IPv4) or `sockaddr_in6` (IPv6) for
/// `addr`, as an address-returning call writes them (sin_zero,
/// sin6_flowinfo and sin6_scope_id as the address has them).
pub fn encode(addr: SocketAddr) -> Vec<u8> {
    match addr {
        SocketAddr::V4(a) => {
            let mut b = vec![0u8; SIN_LEN];
            b[..2].copy_from_slice(&(libc::AF_INET as libc::sa_family_t).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            b
        }
        SocketAddr::V6(a) => {
            let mut b = vec![0u8; SIN6_LEN];
            b[..2].copy_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str, port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(s.parse().unwrap(), port, 0, 0))
    }

    #[test]
    fn sockaddr_in_round_trips() {
        let a: SocketAddr = "192.168.0.1:8080".parse().unwrap();
        let b = encode(a);
        assert_eq!(b.len(), SIN_LEN);
        assert_eq!(parse(&b, false), Ok(a));
    }

    #[test]
    fn sockaddr_in6_round_trips_with_and_without_scope_id() {
        let a = v6("fd3d:fa7b:d17d::1", 8080);
        let b = encode(a);
        assert_eq!(b.len(), SIN6_LEN);
        assert_eq!(parse(&b, true), Ok(a));
        // RFC 2133's 24-byte form, without sin6_scope_id, is accepted.
        assert_eq!(parse(&b[..SIN6_LEN_RFC2133], true), Ok(a));
        let mapped = v6("::ffff:192.168.0.1", 80);
        assert_eq!(parse(&encode(mapped), true), Ok(mapped));
        assert!(is_mapped(mapped) && !is_mapped(a));
    }

    #[test]
    fn wrong_length_or_family_fails_as_linux() {
        let sin = encode("10.0.0.1:1".parse().unwrap());
        let sin6 = encode(v6("::1", 1));
        // inet_bind / tcp_v4_connect: short is EINVAL, AF_INET6 EAFNOSUPPORT.
        assert_eq!(parse(&sin[..SIN_LEN - 1], false), Err(Errno::EINVAL));
        assert_eq!(parse(&sin6, false), Err(Errno::EAFNOSUPPORT));
        // inet6_bind / tcp_v6_connect: a sockaddr_in is too short (EINVAL);
        // one padded to the length is of the wrong family (EAFNOSUPPORT).
        assert_eq!(parse(&sin, true), Err(Errno::EINVAL));
        let mut padded = sin.clone();
        padded.resize(SIN6_LEN, 0);
        assert_eq!(parse(&padded, true), Err(Errno::EAFNOSUPPORT));
        assert_eq!(parse(&sin6[..23], true), Err(Errno::EINVAL));
        // move_addr_to_kernel: longer than sockaddr_storage is EINVAL.
        let mut long = sin6.clone();
        long.resize(SOCKADDR_STORAGE_LEN + 1, 0);
        assert_eq!(parse(&long, true), Err(Errno::EINVAL));
    }

    #[test]
    fn addresses_are_reported_in_the_socket_family() {
        let a: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let m = in_family(a, true);
        assert_eq!(m, v6("::ffff:192.0.2.1", 40000));
        assert_eq!(in_family(m, false), a);
        assert_eq!(in_family(a, false), a);
        let six = v6("2001:db8::1", 5);
        assert_eq!(in_family(six, true), six);
        assert_eq!(unspecified(true), v6("::", 0));
    }

    #[test]
    fn binds_overlap_across_families() {
        let any4: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let one4: SocketAddr = "192.168.0.1:80".parse().unwrap();
        let any6 = v6("::", 80);
        let one6 = v6("fd3d::1", 80);
        let mapped = v6("::ffff:192.168.0.1", 80);
        assert!(overlap(any6, false, one4, false));
        assert!(!overlap(any6, true, one4, false));
        assert!(overlap(any6, true, one6, false));
        assert!(overlap(mapped, false, one4, false));
        assert!(overlap(any4, false, mapped, false));
        assert!(!overlap(any4, false, one6, false));
        assert!(!overlap(one4, false, one6, false));
    }
}
