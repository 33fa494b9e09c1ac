//! [`TunDevice`]: a Linux TUN interface as a [`Device`].

use super::vnet::{self, gso_header};
use super::{Device, Medium, Offloads, RxPacket, TxHeaders};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tcp_tun::{Tun, VirtioNetHdr};
use tokio::io::unix::AsyncFd;

/// Counters of a [`TunDevice`] opened with offloads, shared with whoever
/// took them through [`TunDevice::counters`] (the device itself moves into
/// the driver).
#[derive(Debug, Default)]
pub struct TunCounters {
    /// Packets received larger than the MTU (GRO/TSO super-packets).
    pub rx_super: AtomicU64,
    /// Packets received with a partial checksum (vouched for, not checked).
    pub rx_partial: AtomicU64,
    /// Super-packets sent (`poll_send_gso`).
    pub tx_super: AtomicU64,
    /// Segments those super-packets hold.
    pub tx_super_segments: AtomicU64,
}

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
///
/// # Offloads
///
/// On a [`Tun`] opened with [`tcp_tun::TunBuilder::offload`] every packet
/// carries a [`VirtioNetHdr`], and the device advertises [`Offloads`] of
/// 64 KB both ways:
///
/// - receive: a packet with `NEEDS_CSUM` comes from the local kernel's own
///   stack and never crossed a wire, so nothing can have corrupted it; its
///   checksum field holds only the pseudo-header sum. `poll_recv_meta`
///   reports it as [`RxChecksum::Partial`] (`DATA_VALID` as
///   [`RxChecksum::Verified`]) and the stack skips the check; plain
///   `poll_recv` completes such checksums in software instead. Packets may
///   be TSO super-packets larger than the MTU, of either family;
///   `csum_start` is an offset from the packet start, so completing a
///   partial checksum is the same for IPv4 and IPv6.
/// - send: plain packets go with an all-zero header; `poll_send_gso` puts a
///   `GSO_TCPV4` or `GSO_TCPV6` header in front, built from the
///   [`TxHeaders`] the core gave with the packet, never from its bytes
///   (`gso_size` the segment size, `hdr_len` the IP + TCP header length,
///   `NEEDS_CSUM` from the TCP header at offset 16, `GSO_ECN` if CWR is
///   set) and the kernel segments it, or delivers it whole to its own TCP,
///   like a GRO packet.
///
/// # TAP
///
/// On a TAP ([`tcp_tun::TunBuilder::tap`]) the packets are Ethernet
/// frames: [`medium`](Device::medium) is [`Medium::Ethernet`], the MTU is
/// still the IP MTU (frames are 14 bytes longer), the offloads are the same
/// (the virtio-net header's offsets count the Ethernet header, which the
/// core reports in [`TxHeaders::link_len`]), and
/// [`mac_address`](Device::mac_address) is `None`: the TAP interface's MAC
/// belongs to the kernel side; the stack picks its own.
///
/// The TUN carries both families (IPv4 and IPv6 told apart by the first
/// nibble), and the kernel routes any destination through it, so no
/// gateway is needed to reach off-link addresses.
#[derive(Debug)]
pub struct TunDevice {
    fd: AsyncFd<Tun>,
    mtu: usize,
    offload: bool,
    tap: bool,
    counters: Arc<TunCounters>,
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
        let offload = tun.has_offload();
        let tap = tun.is_tap();
        let fd = unsafe { AsyncFd::register(tun) }.map_err(io::Error::from)?;
        Ok(TunDevice {
            fd,
            mtu,
            offload,
            tap,
            counters: Arc::default(),
        })
    }

    /// The offload counters (all zero without offloads).
    pub fn counters(&self) -> Arc<TunCounters> {
        self.counters.clone()
    }

    /// Reads one packet: with offloads its header, else a plain header.
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<(VirtioNetHdr, usize)> {
        let tun = self.fd.get_ref();
        if self.offload {
            let (hdr, len) = tun.recv_vnet(buf)?;
            if len > self.mtu {
                self.counters.rx_super.fetch_add(1, Ordering::Relaxed);
            }
            Ok((hdr, len))
        } else {
            Ok((VirtioNetHdr::plain(), tun.recv(buf)?))
        }
    }

    fn poll_recv_hdr(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(VirtioNetHdr, usize)>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            // `try_io` clears the readiness on `WouldBlock`: poll again.
            let this = &*self;
            if let Ok(result) = guard.try_io(|_| this.recv_one(buf)) {
                return Poll::Ready(result);
            }
        }
    }

    /// Writes one packet (with `hdr` when opened with offloads).
    fn send_one(&self, hdr: &VirtioNetHdr, packet: &[u8]) -> io::Result<usize> {
        let tun = self.fd.get_ref();
        if self.offload {
            tun.send_vnet(hdr, packet)
        } else {
            tun.send(packet)
        }
    }

    fn poll_send_hdr(
        &mut self,
        cx: &mut Context<'_>,
        hdr: &VirtioNetHdr,
        packet: &[u8],
    ) -> Poll<io::Result<()>> {
        // A TUN write almost never blocks (the kernel takes the packet into
        // its receive path at once), so write first and consult the reactor
        // only after `WouldBlock`: no readiness bookkeeping per packet.
        match self.send_one(hdr, packet) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result.map(drop)),
        }
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let this = &*self;
            if let Ok(result) = guard.try_io(|_| this.send_one(hdr, packet)) {
                return Poll::Ready(result.map(drop));
            }
        }
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
        let (hdr, len) = ready!(self.poll_recv_hdr(cx, buf))?;
        vnet::complete_rx(&hdr, &mut buf[..len]);
        Poll::Ready(Ok(len))
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        self.poll_send_hdr(cx, &VirtioNetHdr::plain(), packet)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn offloads(&self) -> Offloads {
        Offloads::super_packets(self.offload)
    }

    /// [`Medium::Ethernet`] on a TAP, [`Medium::Ip`] on a TUN.
    fn medium(&self) -> Medium {
        if self.tap {
            Medium::Ethernet
        } else {
            Medium::Ip
        }
    }

    /// `None`, on a TAP too: the MAC address of a TAP interface is the
    /// kernel side's, the host at the other end of the virtual wire. The
    /// stack is a different host on that wire and picks its own.
    fn mac_address(&self) -> Option<[u8; 6]> {
        None
    }

    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        let (hdr, len) = ready!(self.poll_recv_hdr(cx, buf))?;
        Poll::Ready(Ok(vnet::rx_packet(&hdr, len, &self.counters.rx_partial)))
    }

    fn poll_send_gso(
        &mut self,
        cx: &mut Context<'_>,
        packet: &[u8],
        segment_size: u16,
        headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        let hdr = match gso_header(headers, segment_size, packet.len()) {
            Some(hdr) if self.offload => hdr,
            _ => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a TCP super-packet (headers say no TCP header, or longer than \
                     the packet), or the TUN has no offloads",
                )))
            }
        };
        let res = ready!(self.poll_send_hdr(cx, &hdr, packet));
        if res.is_ok() {
            let c = &self.counters;
            c.tx_super.fetch_add(1, Ordering::Relaxed);
            c.tx_super_segments
                .fetch_add(vnet::segments(&hdr, packet.len()), Ordering::Relaxed);
        }
        Poll::Ready(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tcp_stack::wire::checksum;
    use tcp_stack::wire::tcp::{fill_checksum, fill_partial_checksum};

    /// An IPv4/TCP packet with a 32-byte TCP header and `payload` bytes.
    fn tcp_packet(payload: usize, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 32 + payload];
        p[0] = 0x45;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[32] = 8 << 4;
        p[33] = flags;
        for (i, b) in p[52..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    /// An IPv6/TCP packet (fixed header, next header TCP) with a 32-byte
    /// TCP header and `payload` bytes.
    fn tcp6_packet(payload: usize, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40 + 32 + payload];
        p[0] = 0x60;
        let len = (32 + payload) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8..24].copy_from_slice(&"fd00:77::2".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00:77::1".parse::<Ipv6Addr>().unwrap().octets());
        p[52] = 8 << 4;
        p[53] = flags;
        for (i, b) in p[72..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn partial_checksum_is_completed_in_software_for_ipv6() {
        let mut full = tcp6_packet(999, 0x18);
        // IPv6 pseudo-header (RFC 8200 8.1): addresses, upper-layer length
        // as 32 bits, next header.
        let tcp_len = (full.len() - 40) as u32;
        let mut pseudo = full[8..40].to_vec();
        pseudo.extend_from_slice(&tcp_len.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        let pseudo_sum = checksum::sum(&pseudo);
        // Partial: the folded pseudo-header sum, not complemented.
        let mut partial = full.clone();
        let folded = !checksum::finish(pseudo_sum);
        partial[56..58].copy_from_slice(&folded.to_be_bytes());
        // Complete: the complemented sum over pseudo-header and segment.
        let sum = checksum::finish(checksum::combine(pseudo_sum, checksum::sum(&full[40..])));
        full[56..58].copy_from_slice(&sum.to_be_bytes());
        let hdr = VirtioNetHdr {
            flags: VirtioNetHdr::NEEDS_CSUM,
            csum_start: 40,
            csum_offset: 16,
            ..VirtioNetHdr::plain()
        };
        vnet::complete_partial_checksum(&mut partial, hdr.csum_start, hdr.csum_offset);
        assert_eq!(partial, full);
    }

    #[test]
    fn partial_checksum_is_completed_in_software() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut full = tcp_packet(999, 0x18);
        fill_checksum(&mut full[20..], src, dst);
        let mut partial = full.clone();
        fill_partial_checksum(&mut partial[20..], src, dst);
        assert_ne!(partial, full);
        let hdr = VirtioNetHdr {
            flags: VirtioNetHdr::NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VirtioNetHdr::plain()
        };
        vnet::complete_partial_checksum(&mut partial, hdr.csum_start, hdr.csum_offset);
        assert_eq!(partial, full);
        // Offsets past the end are left alone.
        let bad = VirtioNetHdr {
            csum_start: 2000,
            ..hdr
        };
        let before = partial.clone();
        vnet::complete_partial_checksum(&mut partial, bad.csum_start, bad.csum_offset);
        assert_eq!(partial, before);
    }
}
