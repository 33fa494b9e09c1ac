//! The stack's bind table: which local addresses and ports the sockets of
//! one [`Stack`](crate::Stack) hold, checked synchronously by `bind` and
//! `listen` with Linux's conflict rules, so neither waits for the driver.
//!
//! Every listener of the stack is in it (the driver creates a core
//! listener only for a reservation made here), so the core's own conflict
//! check, a subset of these rules, never fails: a `listen` that passed here
//! succeeds in the core by construction. Commands reach the driver in
//! order, so a reservation released when a listener is dropped (after its
//! close command was sent) is free in the core too by the time a new
//! listener's command arrives.
//!
//! Rules (Linux `inet_csk_bind_conflict()`), for two sockets on one port
//! whose addresses overlap (equal, or one a wildcard of the family;
//! `[::]` covers IPv4 too unless `IPV6_V6ONLY`):
//! - both have `SO_REUSEPORT`: no conflict;
//! - both have `SO_REUSEADDR` and the one already there is not listening:
//!   no conflict;
//! - otherwise `AddrInUse`.
//!
//! A socket bound and then connected gives its reservation back once
//! `connect` returns: the core keeps connections apart by their
//! four-tuple, as Linux lets a connected socket share a port with others
//! that set `SO_REUSEADDR`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tcp_stack::stack::{binds_overlap, canonical};
use tcp_stack::Config;

/// How a socket holds its address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BindFlags {
    pub(crate) v6_only: bool,
    pub(crate) reuseaddr: bool,
    pub(crate) reuseport: bool,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    /// In its wire family (IPv4-mapped as IPv4).
    key: SocketAddr,
    flags: BindFlags,
    listening: bool,
}

#[derive(Debug)]
struct Table {
    entries: Vec<Entry>,
    next_id: u64,
    /// xorshift state for the ephemeral port search's start.
    rng: u64,
    ephemeral: (u16, u16),
    addrs: Vec<IpAddr>,
}

/// The bind table of one stack.
#[derive(Debug)]
pub(crate) struct Ports {
    table: Mutex<Table>,
}

/// One socket's hold on an address; released when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    ports: Arc<Ports>,
    id: u64,
    /// The address as the socket sees it (the family it was bound with),
    /// with the port chosen for port 0.
    pub(crate) addr: SocketAddr,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let id = self.id;
        self.ports.lock().entries.retain(|e| e.id != id);
    }
}

impl Table {
    fn conflicts(&self, key: SocketAddr, flags: BindFlags, skip: Option<u64>) -> bool {
        self.entries
            .iter()
            .filter(|e| Some(e.id) != skip && e.key.port() == key.port())
            .filter(|e| binds_overlap(e.key, e.flags.v6_only, key, flags.v6_only))
            .any(|e| {
                let shared_port = flags.reuseport && e.flags.reuseport;
                let shared_addr = flags.reuseaddr && e.flags.reuseaddr && !e.listening;
                !(shared_port || shared_addr)
            })
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

impl Ports {
    pub(crate) fn new(config: &Config) -> Ports {
        Ports {
            table: Mutex::new(Table {
                entries: Vec::new(),
                next_id: 1,
                rng: (config.seed ^ 0x9E37_79B9_7F4A_7C15) | 1,
                ephemeral: config.ephemeral_ports,
                addrs: config.addrs.clone(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `addr` (port 0: a free ephemeral port) for a socket with
    /// `flags`, already listening if `listening`.
    ///
    /// # Errors
    ///
    /// `AddrNotAvailable` if the IP is not one of the stack's (nor a
    /// wildcard or loopback), or no ephemeral port is free; `AddrInUse`
    /// on a conflict; `InvalidInput` for an IPv4-mapped address on an
    /// `IPV6_V6ONLY` socket (Linux: EINVAL).
    pub(crate) fn reserve(
        self: &Arc<Self>,
        addr: SocketAddr,
        flags: BindFlags,
        listening: bool,
    ) -> io::Result<Reservation> {
        let mut key = canonical(addr);
        if flags.v6_only && addr.is_ipv6() && key.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv4-mapped address on an IPV6_V6ONLY socket",
            ));
        }
        let flags = BindFlags {
            v6_only: flags.v6_only && key.is_ipv6(),
            ..flags
        };
        let mut t = self.lock();
        let ip = key.ip();
        if !(ip.is_unspecified() || ip.is_loopback() || t.addrs.contains(&ip)) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the address is not one of the stack's",
            ));
        }
        if key.port() == 0 {
            let (lo, hi) = t.ephemeral;
            let span = u32::from(hi.saturating_sub(lo)) + 1;
            let start = (t.next_rand() % u64::from(span)) as u32;
            let port = (0..span)
                .map(|i| lo + ((start + i) % span) as u16)
                .find(|&p| !t.conflicts(SocketAddr::new(ip, p), flags, None))
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::AddrNotAvailable, "no free ephemeral port")
                })?;
            key.set_port(port);
        } else if t.conflicts(key, flags, None) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        let id = t.next_id;
        t.next_id += 1;
        t.entries.push(Entry {
            id,
            key,
            flags,
            listening,
        });
        let mut addr = addr;
        addr.set_port(key.port());
        Ok(Reservation {
            ports: self.clone(),
            id,
            addr,
        })
    }
}

impl Reservation {
    /// Turns a bound socket's reservation into a listener's (with the
    /// options it has now), checking the conflicts a listener has.
    ///
    /// # Errors
    ///
    /// `AddrInUse` on a conflict.
    pub(crate) fn listen(&self, flags: BindFlags) -> io::Result<()> {
        let mut t = self.ports.lock();
        let Some(i) = t.entries.iter().position(|e| e.id == self.id) else {
            return Err(io::ErrorKind::AddrInUse.into());
        };
        let key = t.entries[i].key;
        let flags = BindFlags {
            v6_only: flags.v6_only && key.is_ipv6(),
            ..flags
        };
        if t.conflicts(key, flags, Some(self.id)) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        let e = &mut t.entries[i];
        e.flags = flags;
        e.listening = true;
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ports() -> Arc<Ports> {
        let mut c = Config::with_addr("10.0.0.1".parse().unwrap());
        c.addrs.push("fd00::1".parse().unwrap());
        Arc::new(Ports::new(&c))
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const REUSEADDR: BindFlags = BindFlags {
        v6_only: false,
        reuseaddr: true,
        reuseport: false,
    };

    #[test]
    fn listeners_conflict_unless_both_reuseport() {
        let p = ports();
        let _a = p.reserve(sa("10.0.0.1:80"), REUSEADDR, true).unwrap();
        let e = p.reserve(sa("0.0.0.0:80"), REUSEADDR, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let e = p.reserve(sa("[::]:80"), REUSEADDR, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let v6only = BindFlags {
            v6_only: true,
            ..REUSEADDR
        };
        let _b = p.reserve(sa("[::]:80"), v6only, true).unwrap();
        let rp = BindFlags {
            reuseport: true,
            ..Default::default()
        };
        let _c = p.reserve(sa("10.0.0.1:81"), rp, true).unwrap();
        let _d = p.reserve(sa("10.0.0.1:81"), rp, true).unwrap();
        assert!(p.reserve(sa("10.0.0.1:81"), REUSEADDR, true).is_err());
    }

    #[test]
    fn bound_sockets_share_with_reuseaddr_and_release_on_drop() {
        let p = ports();
        let a = p
            .reserve(sa("10.0.0.1:90"), BindFlags::default(), false)
            .unwrap();
        assert!(p.reserve(sa("10.0.0.1:90"), REUSEADDR, false).is_err());
        drop(a);
        let a = p.reserve(sa("10.0.0.1:90"), REUSEADDR, false).unwrap();
        let b = p.reserve(sa("10.0.0.1:90"), REUSEADDR, false).unwrap();
        a.listen(REUSEADDR).unwrap();
        // `b` may not listen too, nor a new socket bind there.
        assert!(b.listen(REUSEADDR).is_err());
        assert!(p.reserve(sa("10.0.0.1:90"), REUSEADDR, false).is_err());
    }

    #[test]
    fn port_zero_takes_a_free_ephemeral_port_and_foreign_ips_fail() {
        let p = ports();
        let a = p.reserve(sa("10.0.0.1:0"), REUSEADDR, true).unwrap();
        assert!((32768..=60999).contains(&a.addr.port()));
        let b = p.reserve(sa("0.0.0.0:0"), REUSEADDR, true).unwrap();
        assert_ne!(a.addr.port(), b.addr.port());
        let e = p.reserve(sa("10.9.9.9:80"), REUSEADDR, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable);
        assert!(p.reserve(sa("127.0.0.1:80"), REUSEADDR, true).is_ok());
    }
}
