//! Packet devices: where the driver reads and writes IP packets.
//!
//! A [`Device`] moves whole IPv4 packets, no link-layer header. Devices
//! compose as wrappers:
//!
//! - [`MemoryDevice`]: an in-memory pair, a virtual cable between two stacks.
//! - [`FaultInjector`]: loss, duplication, reordering, corruption and delay,
//!   seeded and deterministic, around any device.
//! - [`PcapWriter`]: records every packet in both directions to a pcap file
//!   that `tcpdump -r` and Wireshark read.
//!
//! ```no_run
//! use tcp_async::device::{Device, FaultInjector, Faults, MemoryDevice, PcapWriter};
//!
//! # fn main() -> std::io::Result<()> {
//! let (a, b) = MemoryDevice::pair(1500);
//! let lossy = FaultInjector::new(a, Faults { seed: 7, loss: 0.01, ..Faults::default() });
//! let dev: Box<dyn Device> = Box::new(PcapWriter::new(lossy, "a.pcap")?);
//! # drop((dev, b));
//! # Ok(())
//! # }
//! ```

mod fault;
mod memory;
mod pcap;
pub mod tun;

pub use fault::{Direction, FaultInjector, FaultStats, Faults};
pub use memory::MemoryDevice;
pub use pcap::PcapWriter;

use std::io;
use std::task::{Context, Poll};

/// A network device that carries IP packets.
///
/// The driver calls both methods from its one task; each returns `Pending`
/// only after arranging for that task to be woken.
pub trait Device: Send + 'static {
    /// Receives one IP packet into `buf`; Pending (waker registered) when none is ready.
    ///
    /// A packet longer than `buf` is truncated to it.
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Sends one IP packet; Pending when the device cannot take it now.
    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>>;

    /// Largest IP packet the device carries.
    fn mtu(&self) -> usize;
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        (**self).poll_recv(cx, buf)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        (**self).poll_send(cx, packet)
    }

    fn mtu(&self) -> usize {
        (**self).mtu()
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the device tests.

    use super::Device;
    use std::future::poll_fn;
    use std::io;

    /// Sends `packet`, waiting while the device is busy.
    pub async fn send<D: Device + ?Sized>(dev: &mut D, packet: &[u8]) -> io::Result<()> {
        poll_fn(|cx| dev.poll_send(cx, packet)).await
    }

    /// Receives one packet.
    pub async fn recv<D: Device + ?Sized>(dev: &mut D) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; 65535];
        let n = poll_fn(|cx| dev.poll_recv(cx, &mut buf)).await?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Receives one packet if one is ready right now.
    pub fn try_recv<D: Device + ?Sized>(dev: &mut D) -> Option<Vec<u8>> {
        let mut buf = vec![0; 65535];
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match dev.poll_recv(&mut cx, &mut buf) {
            std::task::Poll::Ready(Ok(n)) => {
                buf.truncate(n);
                Some(buf)
            }
            std::task::Poll::Ready(Err(e)) => panic!("recv failed: {e}"),
            std::task::Poll::Pending => None,
        }
    }

    /// A recognisable packet: its number in the first four bytes.
    pub fn numbered(i: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0xAB; len.max(4)];
        p[..4].copy_from_slice(&i.to_be_bytes());
        p
    }

    /// The number [`numbered`] put in a packet.
    pub fn number(p: &[u8]) -> u32 {
        u32::from_be_bytes(p[..4].try_into().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[tokio::test]
    async fn test_boxed_device_forwards() {
        let (a, b) = MemoryDevice::pair(1500);
        let mut a: Box<dyn Device> = Box::new(a);
        let mut b: Box<dyn Device> = Box::new(b);
        assert_eq!(a.mtu(), 1500);
        send(&mut a, b"ping").await.unwrap();
        assert_eq!(recv(&mut b).await.unwrap(), b"ping");
    }
}
