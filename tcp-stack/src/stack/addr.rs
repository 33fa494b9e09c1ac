//! Addresses: which are ours, which listener a destination reaches, and
//! which binds collide, for IPv4 and IPv6 together (dual stack as Linux
//! with `net.ipv6.bindv6only=0`).
//!
//! Connections keep their addresses in the family on the wire. An IPv6
//! socket may carry IPv4 traffic: a listener on `[::]:p` (unless
//! `v6_only`) also takes IPv4, and an IPv6 socket may connect to an
//! IPv4-mapped address `::ffff:a.b.c.d` (RFC 4291 2.5.5.2); such a
//! connection is IPv4 inside and reports IPv4-mapped addresses.

use super::*;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// `addr` in the family it has on the wire: an IPv4-mapped IPv6 address
/// becomes the IPv4 address it maps.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// `addr` as an IPv6 socket reports it: IPv4 addresses IPv4-mapped.
pub(crate) fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
        v6 => v6,
    }
}

/// The unspecified address of `ip`'s family.
pub(crate) fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// An address a datagram may not come from, nor a connection go to (RFC
/// 1122 3.2.1.3, RFC 4291 2.5.2 and 2.7: unspecified, broadcast, multicast).
pub(crate) fn bad_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    }
}

/// The addresses a listener covers, per family: `None` not that family,
/// `Some(None)` every address of it, `Some(Some(a))` only `a`.
#[derive(Clone, Copy)]
struct Covers {
    v4: Option<Option<Ipv4Addr>>,
    v6: Option<Option<Ipv6Addr>>,
}

impl Covers {
    /// What a listener bound to `addr` (canonical) takes: `[::]` takes
    /// IPv4 too unless `v6_only`.
    fn of(addr: SocketAddr, v6_only: bool) -> Covers {
        match addr.ip() {
            IpAddr::V4(a) if a.is_unspecified() => Covers {
                v4: Some(None),
                v6: None,
            },
            IpAddr::V4(a) => Covers {
                v4: Some(Some(a)),
                v6: None,
            },
            IpAddr::V6(a) if a.is_unspecified() => Covers {
                v4: (!v6_only).then_some(None),
                v6: Some(None),
            },
            IpAddr::V6(a) => Covers {
                v4: None,
                v6: Some(Some(a)),
            },
        }
    }

    fn overlaps(self, other: Covers) -> bool {
        fn one<T: PartialEq>(a: Option<Option<T>>, b: Option<Option<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a.is_none() || b.is_none() || a == b,
                _ => false,
            }
        }
        one(self.v4, other.v4) || one(self.v6, other.v6)
    }
}

/// Whether sockets bound to `a` and `b` (the same port, either family,
/// IPv4-mapped or not) would take a common destination: Linux's bind
/// conflict test before `SO_REUSEADDR`/`SO_REUSEPORT` are considered. An
/// IPv6 wildcard overlaps IPv4 unless its `v6_only` is set.
pub fn binds_overlap(a: SocketAddr, a_v6_only: bool, b: SocketAddr, b_v6_only: bool) -> bool {
    Covers::of(canonical(a), a_v6_only).overlaps(Covers::of(canonical(b), b_v6_only))
}

impl Stack {
    /// Whether `ip` names this host: one of its addresses, or internal host
    /// loopback (127.0.0.0/8, RFC 1122 3.2.1.3 (g); `::1`, RFC 4291
    /// 2.5.3), which it answers for as Linux does without it being
    /// configured. Datagrams to it are looped back inside the stack, never
    /// sent to the device.
    pub(super) fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.cfg.addrs.contains(&ip)
    }

    /// A bind to `ip` (canonical) is possible: unspecified or local.
    pub(super) fn check_local_ip(&self, ip: IpAddr) -> crate::Result<()> {
        if ip.is_unspecified() || self.is_local(ip) {
            Ok(())
        } else {
            Err(Error::AddrNotAvailable)
        }
    }

    /// A listener bound to `addr` (canonical) with `v6_only` would take
    /// some destination an existing listener takes (Linux `inet_csk_get_port`
    /// conflict, with every socket `SO_REUSEADDR` as tokio sets it), unless
    /// both have `SO_REUSEPORT` (`inet_csk_bind_conflict()`: `sk_reuseport`
    /// on both, one user, lets them share).
    pub(super) fn listener_conflict(
        &self,
        addr: SocketAddr,
        v6_only: bool,
        reuseport: bool,
    ) -> bool {
        let new = Covers::of(addr, v6_only);
        self.listeners
            .iter()
            .flatten()
            .filter(|l| l.key.port() == addr.port())
            .filter(|l| !(reuseport && l.reuseport))
            .any(|l| Covers::of(l.key, l.v6_only).overlaps(new))
    }

    /// The listener a segment from `remote` to `local` (in its wire
    /// family) reaches: the one bound to that address, else the wildcard
    /// of its family, else for IPv4 a dual-stack `[::]` listener. Among
    /// `SO_REUSEPORT` listeners bound to that same address, the four-tuple's
    /// hash picks one (Linux `reuseport_select_sock()` scales `inet_ehashfn`
    /// over the group), so a connection's segments (and a SYN cookie's ACK)
    /// keep reaching the same one while the group is unchanged.
    pub(super) fn find_listener(&self, local: SocketAddr, remote: SocketAddr) -> Option<u32> {
        let found = self.find_listener_key(local)?;
        let l = self.listeners.get(found as usize)?.as_ref()?;
        if !l.reuseport {
            return Some(found);
        }
        let key = l.key;
        let group = || {
            self.listeners
                .iter()
                .enumerate()
                .filter(move |(_, o)| matches!(o, Some(o) if o.reuseport && o.key == key))
                .map(|(i, _)| i as u32)
        };
        let n = group().count() as u64;
        let hash = self.conns.hasher().hash_one((local, remote));
        // `reciprocal_scale()`: the hash's top half scaled to `0..n`.
        let pick = ((hash >> 32) * n) >> 32;
        group().nth(pick as usize).or(Some(found))
    }

    /// The first listener found for `local`, before `SO_REUSEPORT`'s choice.
    fn find_listener_key(&self, local: SocketAddr) -> Option<u32> {
        if let Some(&i) = self.listener_map.get(&local) {
            return Some(i);
        }
        let any = SocketAddr::new(unspecified_like(local.ip()), local.port());
        if let Some(&i) = self.listener_map.get(&any) {
            return Some(i);
        }
        if local.is_ipv4() {
            let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), local.port());
            if let Some(&i) = self.listener_map.get(&any6) {
                if matches!(self.listeners.get(i as usize), Some(Some(l)) if !l.v6_only) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The source address for a connection to `remote` (canonical) when
    /// the socket names none: loopback to loopback (Linux routes
    /// 127.0.0.0/8 and `::1` through `lo`), one of our own addresses to
    /// itself (RFC 1122 3.2.1.3), else the first configured address of
    /// the family (RFC 6724's rules reduce to that with one interface).
    pub(super) fn source_for(&self, remote: IpAddr) -> crate::Result<IpAddr> {
        if remote.is_loopback() {
            return Ok(match remote {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        if self.cfg.addrs.contains(&remote) {
            return Ok(remote);
        }
        // RFC 6724 rule 2 (scope): a link-local destination gets our
        // link-local source.
        if let (IpAddr::V6(r), Some(ll)) = (remote, self.link_local_addr()) {
            if r.segments()[0] & 0xffc0 == 0xfe80 {
                return Ok(IpAddr::V6(ll));
            }
        }
        self.cfg
            .addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            // Linux: ENETUNREACH when no address of the family is configured.
            .ok_or(Error::NetworkUnreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn canonical_unmaps_ipv4_mapped_addresses() {
        assert_eq!(canonical(sa("[::ffff:10.0.0.1]:80")), sa("10.0.0.1:80"));
        assert_eq!(canonical(sa("[fd00::1]:80")), sa("[fd00::1]:80"));
        assert_eq!(mapped(sa("10.0.0.1:80")), sa("[::ffff:10.0.0.1]:80"));
    }

    #[test]
    fn dual_stack_wildcard_overlaps_ipv4_unless_v6_only() {
        let any6 = Covers::of(sa("[::]:80"), false);
        let any6_only = Covers::of(sa("[::]:80"), true);
        let any4 = Covers::of(sa("0.0.0.0:80"), false);
        let one4 = Covers::of(sa("10.0.0.1:80"), false);
        let one6 = Covers::of(sa("[fd00::1]:80"), false);
        assert!(any6.overlaps(any4));
        assert!(any6.overlaps(one4));
        assert!(!any6_only.overlaps(any4));
        assert!(any6_only.overlaps(one6));
        assert!(!one4.overlaps(one6));
        assert!(!Covers::of(sa("10.0.0.2:80"), false).overlaps(one4));
    }
}
