//! TUN device setup shared by the examples and the kernel-peer tests.

use std::io;
use std::net::Ipv4Addr;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;

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

/// A [`tcp_async::device::Device`] over a [`tcp_tun::Tun`], driven by
/// Tokio's readiness (`AsyncFd`).
pub struct TunDev {
    fd: AsyncFd<tcp_tun::Tun>,
    mtu: usize,
}

impl TunDev {
    /// Wraps `tun`; must be called inside the Tokio runtime.
    pub fn new(tun: tcp_tun::Tun) -> io::Result<TunDev> {
        let mtu = tun.mtu()? as usize;
        // `AsyncFd::new` is deprecated in favour of the unsafe `register`;
        // `Tun` owns its fd, so the safe constructor is sound here.
        #[allow(deprecated)]
        let fd = AsyncFd::new(tun)?;
        Ok(TunDev { fd, mtu })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        self.fd.get_ref().name()
    }
}

impl tcp_async::device::Device for TunDev {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().recv(buf)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().send(packet)) {
                Ok(r) => return Poll::Ready(r.map(|_| ())),
                Err(_would_block) => continue,
            }
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}

/// Creates TUN device `name` (non-persistent: it disappears when dropped),
/// gives the kernel side `peer/prefix` when `peer` is set, sets the MTU and
/// brings the link up. Call inside the Tokio runtime.
pub fn open_tun(name: &str, peer: Option<Ipv4Addr>, prefix: u8, mtu: usize) -> io::Result<TunDev> {
    let mtu = u32::try_from(mtu).map_err(|_| io::Error::other("MTU out of range"))?;
    let mut builder = tcp_tun::TunBuilder::new().name(name).mtu(mtu).up(true);
    if let Some(peer) = peer {
        builder = builder.address(peer, prefix);
    }
    TunDev::new(builder.build()?)
}
