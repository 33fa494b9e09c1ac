//! An in-memory device pair: a virtual cable between two stacks.

use std::io;
use std::task::{Context, Poll};

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Device, Medium, Offloads, RxChecksum, RxPacket, TxHeaders};

/// A packet on the cable and, for a super-packet sent with offloads, the
/// header layout the sending core gave with it: its TCP checksum is
/// partial (nothing can corrupt it in memory), the field at `ip_len + 16`.
#[derive(Debug)]
struct Packet {
    data: Vec<u8>,
    partial: Option<TxHeaders>,
}

/// One end of an in-memory cable. Packets sent on one end are received by
/// the other, in order.
///
/// Each direction has a bounded queue. Like a NIC's transmit queue, a full
/// queue drops the packet and counts it ([`dropped`](Self::dropped)); sending
/// never blocks. When the other end is dropped, sends are discarded (and
/// counted) and receives stay pending, as with an unplugged cable.
///
/// A pair made by [`pair_with_offloads`](Self::pair_with_offloads) also
/// carries TCP super-packets whole, as two stacks on one host would (the
/// Linux loopback device does the same with GSO): see [`Offloads`].
#[derive(Debug)]
pub struct MemoryDevice {
    tx: mpsc::Sender<Packet>,
    rx: mpsc::Receiver<Packet>,
    mtu: usize,
    offloads: bool,
    medium: Medium,
    dropped: u64,
}

impl MemoryDevice {
    /// Queue length per direction used by [`pair`](Self::pair).
    pub const DEFAULT_QUEUE_PACKETS: usize = 4096;

    /// Two connected ends carrying packets up to `mtu` bytes, with a queue
    /// of [`DEFAULT_QUEUE_PACKETS`](Self::DEFAULT_QUEUE_PACKETS) per direction.
    ///
    /// # Examples
    /// ```
    /// use std::future::poll_fn;
    /// use tcp_async::device::{Device, MemoryDevice};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (mut a, mut b) = MemoryDevice::pair(1500);
    /// poll_fn(|cx| a.poll_send(cx, b"packet")).await?;
    /// let mut buf = [0; 1500];
    /// let n = poll_fn(|cx| b.poll_recv(cx, &mut buf)).await?;
    /// assert_eq!(&buf[..n], b"packet");
    /// # Ok(())
    /// # }
    /// ```
    pub fn pair(mtu: usize) -> (MemoryDevice, MemoryDevice) {
        Self::pair_with_capacity(mtu, Self::DEFAULT_QUEUE_PACKETS)
    }

    /// Like [`pair`](Self::pair) with a queue of `queue_packets` per direction.
    ///
    /// # Panics
    /// If `queue_packets` is 0.
    pub fn pair_with_capacity(mtu: usize, queue_packets: usize) -> (MemoryDevice, MemoryDevice) {
        Self::make_pair(mtu, queue_packets, false)
    }

    /// Like [`pair`](Self::pair), with segmentation offload both ways: a
    /// stack may send TCP super-packets of up to 64 KiB
    /// ([`Device::poll_send_gso`]), which arrive whole, their partial
    /// checksums reported as such by [`Device::poll_recv_meta`] (and
    /// completed in software for a plain [`Device::poll_recv`]).
    pub fn pair_with_offloads(mtu: usize) -> (MemoryDevice, MemoryDevice) {
        Self::make_pair(mtu, Self::DEFAULT_QUEUE_PACKETS, true)
    }

    /// A virtual Ethernet cable: like [`pair`](Self::pair) (or
    /// [`pair_with_offloads`](Self::pair_with_offloads) with `offloads`)
    /// carrying Ethernet II frames of up to `mtu` bytes of IP datagram plus
    /// the 14-byte header, [`Medium::Ethernet`]. The stacks on it need
    /// [`Config::ethernet`](tcp_stack::Config::ethernet), each with its own
    /// MAC: they resolve each other with ARP and NDP as on a real link.
    pub fn ethernet_pair(mtu: usize, offloads: bool) -> (MemoryDevice, MemoryDevice) {
        let (mut a, mut b) = Self::make_pair(mtu, Self::DEFAULT_QUEUE_PACKETS, offloads);
        a.medium = Medium::Ethernet;
        b.medium = Medium::Ethernet;
        (a, b)
    }

    fn make_pair(mtu: usize, queue_packets: usize, offloads: bool) -> (MemoryDevice, MemoryDevice) {
        assert!(queue_packets > 0, "a device queue needs room for a packet");
        let (a_tx, b_rx) = mpsc::channel(queue_packets);
        let (b_tx, a_rx) = mpsc::channel(queue_packets);
        let end = |tx, rx| MemoryDevice {
            tx,
            rx,
            mtu,
            offloads,
            medium: Medium::Ip,
            dropped: 0,
        };
        (end(a_tx, a_rx), end(b_tx, b_rx))
    }

    /// Queues `packet`, or drops and counts it.
    fn push(&mut self, packet: &[u8], partial: Option<TxHeaders>) {
        let packet = Packet {
            data: packet.to_vec(),
            partial,
        };
        match self.tx.try_send(packet) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => self.dropped += 1,
        }
    }

    /// Copies the next packet into `buf`.
    fn poll_packet(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<(usize, Option<TxHeaders>)> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(packet)) => {
                let n = packet.data.len().min(buf.len());
                buf[..n].copy_from_slice(&packet.data[..n]);
                Poll::Ready((n, packet.partial))
            }
            // The other end is gone and nothing will ever arrive; no waker is
            // needed for a wake that cannot happen.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// Packets this end dropped on send: the other end's queue was full or
    /// the other end was gone.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Packets waiting to be received on this end.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }
}

impl Device for MemoryDevice {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_packet(cx, buf).map(|(n, partial)| {
            if let Some(h) = partial {
                // Where the checksum starts, from the sender's metadata.
                let start = u16::from(h.link_len).saturating_add(h.ip_len);
                super::vnet::complete_partial_checksum(&mut buf[..n], start, TCP_CSUM_OFFSET);
            }
            Ok(n)
        })
    }

    fn offloads(&self) -> Offloads {
        Offloads::super_packets(self.offloads)
    }

    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        self.poll_packet(cx, buf).map(|(len, partial)| {
            let checksum = if partial.is_some() {
                RxChecksum::Partial
            } else {
                RxChecksum::Unverified
            };
            Ok(RxPacket { len, checksum })
        })
    }

    /// Queues a super-packet whole (the receiving stack takes it as is).
    ///
    /// # Errors
    /// `Unsupported` on a pair without offloads; `InvalidInput` beyond 64 KiB.
    fn poll_send_gso(
        &mut self,
        _cx: &mut Context<'_>,
        packet: &[u8],
        _segment_size: u16,
        headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        if !self.offloads {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this memory pair has no segmentation offload",
            )));
        }
        if packet.len() > Offloads::MAX_SUPER_PACKET + self.medium.header_len() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("super-packet of {} bytes exceeds 64 KiB", packet.len()),
            )));
        }
        self.push(packet, Some(headers));
        Poll::Ready(Ok(()))
    }

    /// Always ready: a packet that does not fit in the queue is dropped.
    ///
    /// # Errors
    /// `InvalidInput` when `packet` is longer than the MTU.
    fn poll_send(&mut self, _cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        // The MTU counts the IP datagram; a frame also has its link header.
        if packet.len() > self.mtu + self.medium.header_len() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("packet of {} bytes exceeds MTU {}", packet.len(), self.mtu),
            )));
        }
        self.push(packet, None);
        Poll::Ready(Ok(()))
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn medium(&self) -> Medium {
        self.medium
    }
}

/// Offset of the checksum field in a TCP header.
const TCP_CSUM_OFFSET: u16 = 16;

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[tokio::test]
    async fn test_pair_delivers_in_order_both_ways() {
        let (mut a, mut b) = MemoryDevice::pair(1500);
        for i in 0..100 {
            send(&mut a, &numbered(i, 20 + i as usize)).await.unwrap();
            send(&mut b, &numbered(1000 + i, 40)).await.unwrap();
        }
        for i in 0..100 {
            let p = recv(&mut b).await.unwrap();
            assert_eq!((number(&p), p.len()), (i, 20 + i as usize));
            assert_eq!(number(&recv(&mut a).await.unwrap()), 1000 + i);
        }
        assert!(try_recv(&mut a).is_none());
        assert_eq!((a.dropped(), b.dropped()), (0, 0));
    }

    #[tokio::test]
    async fn test_pair_overflow_drops_and_counts() {
        let (mut a, mut b) = MemoryDevice::pair_with_capacity(1500, 8);
        for i in 0..20 {
            send(&mut a, &numbered(i, 60)).await.unwrap();
        }
        assert_eq!(a.dropped(), 12);
        assert_eq!(b.queued(), 8);
        for i in 0..8 {
            assert_eq!(number(&recv(&mut b).await.unwrap()), i);
        }
        assert!(try_recv(&mut b).is_none());
        // Room again.
        send(&mut a, &numbered(99, 60)).await.unwrap();
        assert_eq!(number(&recv(&mut b).await.unwrap()), 99);
        assert_eq!(a.dropped(), 12);
    }

    #[tokio::test]
    async fn test_pair_recv_wakes_on_send() {
        let (mut a, mut b) = MemoryDevice::pair(1500);
        let reader = tokio::spawn(async move { recv(&mut b).await.unwrap() });
        tokio::task::yield_now().await;
        send(&mut a, b"late").await.unwrap();
        assert_eq!(reader.await.unwrap(), b"late");
    }

    #[tokio::test]
    async fn test_pair_rejects_oversized_and_truncates_small_buffers() {
        let (mut a, mut b) = MemoryDevice::pair(100);
        let err = send(&mut a, &[0; 101]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        send(&mut a, &[7; 100]).await.unwrap();
        let mut small = [0; 10];
        let n = std::future::poll_fn(|cx| b.poll_recv(cx, &mut small))
            .await
            .unwrap();
        assert_eq!((n, small), (10, [7; 10]));
    }

    #[tokio::test]
    async fn test_offload_pair_carries_super_packets_whole() {
        use std::future::poll_fn;
        use std::net::Ipv4Addr;
        use tcp_stack::wire::tcp::{fill_checksum, fill_partial_checksum};
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        // IPv4 header (20 bytes) + TCP header (20) + 3000 bytes of payload.
        let mut full = vec![0u8; 3040];
        full[0] = 0x45;
        full[2..4].copy_from_slice(&3040u16.to_be_bytes());
        full[9] = 6;
        full[12..16].copy_from_slice(&src.octets());
        full[16..20].copy_from_slice(&dst.octets());
        full[32] = 5 << 4;
        full[40..].fill(9);
        fill_checksum(&mut full[20..], src, dst);
        let mut partial = full.clone();
        fill_partial_checksum(&mut partial[20..], src, dst);

        let headers = TxHeaders {
            ip_len: 20,
            tcp_len: 20,
            ..TxHeaders::default()
        };
        let (mut plain, _other) = MemoryDevice::pair(1500);
        assert_eq!(plain.offloads(), Offloads::default());
        let err = poll_fn(|cx| plain.poll_send_gso(cx, &partial, 1460, headers))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);

        let (mut a, mut b) = MemoryDevice::pair_with_offloads(1500);
        assert_eq!(a.offloads().tso_max, 65535);
        let mut buf = vec![0u8; 65535];
        // Seen with its metadata: partial, as sent.
        poll_fn(|cx| a.poll_send_gso(cx, &partial, 1460, headers))
            .await
            .unwrap();
        let p = poll_fn(|cx| b.poll_recv_meta(cx, &mut buf)).await.unwrap();
        assert_eq!(p.checksum, RxChecksum::Partial);
        assert_eq!(&buf[..p.len], &partial[..]);
        // Seen by a plain receive: completed.
        poll_fn(|cx| a.poll_send_gso(cx, &partial, 1460, headers))
            .await
            .unwrap();
        let n = poll_fn(|cx| b.poll_recv(cx, &mut buf)).await.unwrap();
        assert_eq!(&buf[..n], &full[..]);
        // Ordinary packets stay unverified.
        send(&mut a, &full[..1500]).await.unwrap();
        let p = poll_fn(|cx| b.poll_recv_meta(cx, &mut buf)).await.unwrap();
        assert_eq!((p.len, p.checksum), (1500, RxChecksum::Unverified));
        assert_eq!(a.dropped(), 0);
    }

    #[tokio::test]
    async fn test_pair_peer_gone_discards_and_pends() {
        let (mut a, b) = MemoryDevice::pair(1500);
        drop(b);
        send(&mut a, b"void").await.unwrap();
        assert_eq!(a.dropped(), 1);
        assert!(try_recv(&mut a).is_none());
    }
}
