//! TUN device setup shared by the examples and the kernel-peer tests.

use std::io;
use std::net::Ipv4Addr;
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
    let mtu = u32::try_from(mtu).map_err(|_| io::Error::other("MTU out of range"))?;
    let mut builder = tcp_tun::TunBuilder::new().name(name).mtu(mtu).up(true);
    if let Some(peer) = peer {
        builder = builder.address(peer, prefix);
    }
    let tun = match builder.clone().offload(offload).build() {
        Err(e) if offload && e.kind() == io::ErrorKind::InvalidInput => builder.build()?,
        result => result?,
    };
    TunDevice::new(tun)
}
