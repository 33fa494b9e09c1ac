//! Packet devices: where the driver reads and writes IP packets.
//!
//! A [`Device`] moves whole IP packets (IPv4 or IPv6, told apart by the
//! version nibble), bare ([`Medium::Ip`]: [`tun::TunDevice`] on a TUN,
//! [`MemoryDevice`]) or in Ethernet frames ([`Medium::Ethernet`]:
//! [`tun::TunDevice`] on a TAP, [`RawDevice`] on any Ethernet
//! interface). Devices compose as wrappers:
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
mod raw;
pub mod tun;
mod vnet;

pub use fault::{Direction, FaultInjector, FaultStats, Faults};
pub use memory::MemoryDevice;
pub use pcap::PcapWriter;
pub use raw::{RawCounters, RawDegraded, RawDevice};

use std::io;
use std::task::{Context, Poll};
pub use tcp_stack::TxHeaders;

/// What a device does beyond moving packets of at most [`Device::mtu`]
/// bytes with complete checksums (the default: nothing).
///
/// Like a NIC's offloads, these are about packets, never connections, and
/// no device parses IP or TCP headers for them: on send the core tells the
/// header layout ([`TxHeaders`]); on receive a partial checksum is
/// completed (for a plain [`Device::poll_recv`]) at the offsets the kernel
/// wrote in the virtio-net header (TUN, TAP, [`RawDevice`]) or the sending
/// core gave with the super-packet ([`MemoryDevice`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// [`Device::poll_recv_meta`] reports checksums the device verified or
    /// that are partial (see [`RxChecksum`]), and may deliver TCP/IPv4
    /// super-packets larger than the MTU (GRO, or TSO of a local sender),
    /// up to this many bytes. 0: neither.
    pub rx_max: usize,
    /// [`Device::poll_send_gso`] takes TCP super-packets (IPv4 or IPv6) up to this
    /// many bytes (of IP datagram; a frame adds the link header) and cuts them into segments of the given payload size
    /// (TSO). 0: not supported.
    pub tso_max: usize,
}

impl Offloads {
    /// The largest IPv4 datagram (and IPv6 payload): the super-packet limit.
    pub const MAX_SUPER_PACKET: usize = 65535;

    /// Super-packets up to [`MAX_SUPER_PACKET`](Self::MAX_SUPER_PACKET)
    /// both ways if `on`, else none.
    pub fn super_packets(on: bool) -> Offloads {
        if on {
            Offloads {
                rx_max: Self::MAX_SUPER_PACKET,
                tso_max: Self::MAX_SUPER_PACKET,
            }
        } else {
            Offloads::default()
        }
    }
}

/// The state of a received packet's transport checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RxChecksum {
    /// Not checked: the stack verifies it.
    #[default]
    Unverified,
    /// The device verified it.
    Verified,
    /// Partial ("needs checksum"): the packet comes from the local host's
    /// own stack and never crossed a wire, so it cannot have been
    /// corrupted in transit; the checksum field holds only the pseudo-header
    /// sum. Linux hands such packets through a TUN with offloads. To be
    /// treated as verified.
    Partial,
}

impl RxChecksum {
    /// Whether the stack may skip the check ([`Verified`](Self::Verified)
    /// or [`Partial`](Self::Partial)).
    pub fn is_trusted(self) -> bool {
        self != RxChecksum::Unverified
    }
}

/// A packet received by [`Device::poll_recv_meta`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxPacket {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Its checksum state.
    pub checksum: RxChecksum,
}

/// What a device's packets start with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Bare IPv4 or IPv6 packets (a TUN device, a memory pair).
    #[default]
    Ip,
    /// Ethernet frames: a 14-byte header (destination, source, EtherType)
    /// before the IP packet (a TAP device, an `AF_PACKET` socket). The core
    /// frames and unframes; the device and the driver only move bytes.
    Ethernet,
}

impl Medium {
    /// Bytes of link-layer header before the IP header: 0 or 14.
    pub const fn header_len(self) -> usize {
        match self {
            Medium::Ip => 0,
            Medium::Ethernet => 14,
        }
    }
}

/// One packet handed to [`Device::poll_send_batch`]: what
/// [`poll_send`](Device::poll_send) (`segment_size: None`) or
/// [`poll_send_gso`](Device::poll_send_gso) (`Some`) would take.
#[derive(Debug, Clone, Copy, Default)]
pub struct TxPacket<'a> {
    /// The packet (a whole frame on an Ethernet device).
    pub data: &'a [u8],
    /// `Some(size)`: a TCP super-packet to be cut into segments of `size`
    /// payload bytes (see `poll_send_gso`).
    pub segment_size: Option<u16>,
    /// Its header layout as the core wrote it (read for super-packets).
    pub headers: TxHeaders,
}

/// A network device that carries IP packets, bare or in link-layer frames
/// ([`Device::medium`]).
///
/// The driver calls these methods from its one task; each returns `Pending`
/// only after arranging for that task to be woken. The offload methods have
/// defaults, so a device that moves plain packets implements only
/// `poll_recv`, `poll_send` and `mtu`.
pub trait Device: Send + 'static {
    /// Receives one IP packet into `buf`; Pending (waker registered) when none is ready.
    ///
    /// A packet longer than `buf` is truncated to it.
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Sends one IP packet; Pending when the device cannot take it now.
    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>>;

    /// Largest IP packet the device carries (the interface MTU: on an
    /// Ethernet device frames are [`Medium::header_len`] bytes longer).
    fn mtu(&self) -> usize;

    /// What the packets start with (default: [`Medium::Ip`]). On an
    /// Ethernet device every buffer `poll_recv` fills and every packet
    /// `poll_send` takes is a whole frame.
    fn medium(&self) -> Medium {
        Medium::Ip
    }

    /// The device's own hardware address, if it has one for the stack to
    /// use (default: `None`; always `None` on an IP device).
    fn mac_address(&self) -> Option<[u8; 6]> {
        None
    }

    /// The offloads this device supports (default: none).
    fn offloads(&self) -> Offloads {
        Offloads::default()
    }

    /// [`poll_recv`](Self::poll_recv) with the packet's checksum state.
    /// The default reports [`RxChecksum::Unverified`]. Plain `poll_recv`
    /// always delivers complete checksums, even on a device with offloads.
    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        self.poll_recv(cx, buf).map_ok(|len| RxPacket {
            len,
            checksum: RxChecksum::Unverified,
        })
    }

    /// Sends a TCP super-packet (IPv4 or IPv6) (see `tcp_stack::Transmit`) to be cut
    /// into segments of `segment_size` payload bytes; its TCP checksum field
    /// holds the pseudo-header sum. `headers` is its layout as the core
    /// wrote it (link, IP and TCP header lengths, CWR): a device builds its
    /// offload descriptor from it and never parses the packet. Only called
    /// when [`offloads`](Self::offloads) advertises `tso_max`; the default
    /// fails with `Unsupported`.
    fn poll_send_gso(
        &mut self,
        _cx: &mut Context<'_>,
        _packet: &[u8],
        _segment_size: u16,
        _headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this device has no segmentation offload",
        )))
    }

    /// Sends the packets of `batch` in order, as many as the device takes
    /// now, and returns how many it took: `Ready(Ok(n))` with `n >= 1`
    /// (the first `n` are sent or queued for sending by the kernel);
    /// `Pending` (waker registered) when it can take none. An error is the
    /// first packet's: the driver drops that one and goes on with the
    /// rest. A device whose system call takes several packets (a packet
    /// socket's `sendmmsg(2)`) overrides this; the default hands them to
    /// [`poll_send`](Self::poll_send) and
    /// [`poll_send_gso`](Self::poll_send_gso) one at a time, so a wrapper
    /// that forwards only those two stays correct, only unbatched.
    fn poll_send_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &[TxPacket<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut taken = 0;
        for p in batch {
            let sent = match p.segment_size {
                Some(size) => self.poll_send_gso(cx, p.data, size, p.headers),
                None => self.poll_send(cx, p.data),
            };
            match sent {
                Poll::Ready(Ok(())) => taken += 1,
                // The packets before it went out: report those; the
                // driver calls again and meets this error first.
                Poll::Ready(Err(e)) if taken == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if taken == 0 => return Poll::Pending,
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(taken))
    }
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

    fn medium(&self) -> Medium {
        (**self).medium()
    }

    fn mac_address(&self) -> Option<[u8; 6]> {
        (**self).mac_address()
    }

    fn offloads(&self) -> Offloads {
        (**self).offloads()
    }

    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        (**self).poll_recv_meta(cx, buf)
    }

    fn poll_send_gso(
        &mut self,
        cx: &mut Context<'_>,
        packet: &[u8],
        segment_size: u16,
        headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        (**self).poll_send_gso(cx, packet, segment_size, headers)
    }

    fn poll_send_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &[TxPacket<'_>],
    ) -> Poll<io::Result<usize>> {
        (**self).poll_send_batch(cx, batch)
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

    /// A device whose sends follow a script: `Some(true)` sent,
    /// `Some(false)` an error, `None` Pending.
    struct Scripted {
        script: Vec<Option<bool>>,
        sent: Vec<u8>,
    }

    impl Device for Scripted {
        fn poll_recv(&mut self, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_send(&mut self, _: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
            match self.script.remove(0) {
                Some(true) => {
                    self.sent.push(packet[0]);
                    Poll::Ready(Ok(()))
                }
                Some(false) => Poll::Ready(Err(io::ErrorKind::Other.into())),
                None => Poll::Pending,
            }
        }
        fn mtu(&self) -> usize {
            1500
        }
    }

    /// The default `poll_send_batch`: the packets sent before a Pending or
    /// an error count as taken; a Pending or error on the first is the
    /// call's result.
    #[test]
    fn default_batch_send_reports_what_went_out() {
        let packets: Vec<[u8; 1]> = (0..4).map(|i| [i]).collect();
        let batch: Vec<TxPacket<'_>> = packets
            .iter()
            .map(|p| TxPacket {
                data: p,
                ..TxPacket::default()
            })
            .collect();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut run = |script: Vec<Option<bool>>| {
            let mut d = Scripted {
                script,
                sent: Vec::new(),
            };
            let r = d
                .poll_send_batch(&mut cx, &batch)
                .map(|r| r.map_err(|e| e.kind()));
            (r, d.sent)
        };
        let all = vec![Some(true); 4];
        assert_eq!(run(all), (Poll::Ready(Ok(4)), vec![0, 1, 2, 3]));
        assert_eq!(run(vec![Some(true), None]), (Poll::Ready(Ok(1)), vec![0]));
        assert_eq!(run(vec![None]), (Poll::Pending, vec![]));
        assert_eq!(
            run(vec![Some(false)]),
            (Poll::Ready(Err(io::ErrorKind::Other)), vec![])
        );
        assert_eq!(
            run(vec![Some(true), Some(true), Some(false)]),
            (Poll::Ready(Ok(2)), vec![0, 1])
        );
    }

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
