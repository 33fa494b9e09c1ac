//! [`TunDevice`]: a Linux TUN interface as a [`Device`].

use super::Device;
use std::io;
use std::task::{ready, Context, Poll};
use tcp_tun::Tun;
use tokio::io::unix::AsyncFd;

/// A [`Device`] over a [`tcp_tun::Tun`] (non-blocking fd), driven by Tokio's
/// readiness events.
///
/// # Examples
///
/// ```no_run
/// use tcp_async::{device::tun::TunDevice, Stack};
/// use tcp_stack::Config;
///
/// # async fn dox() -> std::io::Result<()> {
/// let tun = tcp_tun::Tun::builder()
///     .name("utcp0")
///     .address("10.7.0.1".parse().unwrap(), 24)
///     .up(true)
///     .build()?;
/// let stack = Stack::builder(TunDevice::new(tun)?)
///     .config(Config::with_addr("10.7.0.2".parse().unwrap()))
///     .build()?;
/// # drop(stack); Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TunDevice {
    fd: AsyncFd<Tun>,
    mtu: usize,
}

impl TunDevice {
    /// Wraps `tun`, reading its MTU once.
    ///
    /// # Errors
    ///
    /// `Other` outside a Tokio runtime (with I/O enabled); the MTU ioctl's
    /// or the reactor registration's error otherwise.
    pub fn new(tun: Tun) -> io::Result<TunDevice> {
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let mtu = usize::try_from(tun.mtu()?).unwrap_or(usize::MAX);
        // SAFETY: `Tun` owns its packet fd (an `OwnedFd` closed only when
        // the `Tun` drops) and `as_raw_fd` always returns that same fd, so
        // it stays open and unchanged for the `AsyncFd`'s whole life.
        let fd = unsafe { AsyncFd::register(tun) }.map_err(io::Error::from)?;
        Ok(TunDevice { fd, mtu })
    }

    /// The TUN device.
    pub fn get_ref(&self) -> &Tun {
        self.fd.get_ref()
    }

    /// Unwraps the TUN device (deregistering it from the reactor).
    pub fn into_inner(self) -> Tun {
        self.fd.into_inner()
    }
}

impl Device for TunDevice {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            // `try_io` clears the readiness on `WouldBlock`: poll again.
            if let Ok(result) = guard.try_io(|tun| tun.get_ref().recv(buf)) {
                return Poll::Ready(result);
            }
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        // A TUN write almost never blocks (the kernel takes the packet into
        // its receive path at once), so write first and consult the reactor
        // only after `WouldBlock`: no readiness bookkeeping per packet.
        match self.fd.get_ref().send(packet) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result.map(drop)),
        }
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            if let Ok(result) = guard.try_io(|tun| tun.get_ref().send(packet)) {
                return Poll::Ready(result.map(drop));
            }
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}
