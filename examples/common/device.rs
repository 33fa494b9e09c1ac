//! TUN device setup shared by the examples and the kernel-peer tests.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use tcp_async::device::tun::TunDevice;

/// Why a TUN device cannot be made here, if it cannot: no `/dev/net/tun`,
/// or no CAP_NET_ADMIN in the effective capability set.
pub fn tun_unavailable() -> Option<String> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun does not exist".into());
    }
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return Some(format!("cannot read /proc/self/status: {e}")),
    };
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u32 = 12;
    if cap_eff & (1 << CAP_NET_ADMIN) == 0 {
        return Some("CAP_NET_ADMIN is missing (not root?)".into());
    }
    None
}

/// Creates TUN device `name` (non-persistent: it disappears when dropped),
/// gives the kernel side `peer/prefix` when `peer` is set, sets the MTU and
/// brings the link up, with offloads (checksum, TSO) when the kernel
/// supports them. Call inside the Tokio runtime.
pub fn open_tun(
    name: &str,
    peer: Option<Ipv4Addr>,
    prefix: u8,
    mtu: usize,
) -> io::Result<TunDevice> {
    open_tun_with(name, peer, prefix, mtu, true)
}

/// [`open_tun`] choosing offloads; with `offload`, a kernel refusing them
/// (`InvalidInput`) gets a plain device instead.
pub fn open_tun_with(
    name: &str,
    peer: Option<Ipv4Addr>,
    prefix: u8,
    mtu: usize,
    offload: bool,
) -> io::Result<TunDevice> {
    let peers: Vec<(IpAddr, u8)> = peer.map(|p| (p.into(), prefix)).into_iter().collect();
    open_tun_addrs(name, &peers, mtu, offload)
}

/// [`open_tun_with`] giving the kernel side any number of addresses of
/// either family, each with its prefix length (at most one IPv4 address:
/// a TUN device has one).
pub fn open_tun_addrs(
    name: &str,
    peers: &[(IpAddr, u8)],
    mtu: usize,
    offload: bool,
) -> io::Result<TunDevice> {
    let mtu = u32::try_from(mtu).map_err(|_| io::Error::other("MTU out of range"))?;
    let mut builder = tcp_tun::TunBuilder::new().name(name).mtu(mtu).up(true);
    let mut v6 = Vec::new();
    for &(peer, prefix) in peers {
        match peer {
            IpAddr::V4(p) => builder = builder.address(p, prefix),
            // The builder takes one IPv6 address; the rest are added below.
            IpAddr::V6(p) if v6.is_empty() => {
                builder = builder.address6(p, prefix);
                v6.push((p, prefix));
            }
            IpAddr::V6(p) => v6.push((p, prefix)),
        }
    }
    let tun = match builder.clone().offload(offload).build() {
        Err(e) if offload && e.kind() == io::ErrorKind::InvalidInput => builder.build()?,
        result => result?,
    };
    for &(p, prefix) in v6.iter().skip(1) {
        tun.set_address6(p, prefix)?;
    }
    TunDevice::new(tun)
}
