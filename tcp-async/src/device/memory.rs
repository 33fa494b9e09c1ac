//! An in-memory device pair: a virtual cable between two stacks.

use std::io;
use std::task::{Context, Poll};

use tokio::sync::mpsc::{self, error::TrySendError};

use super::Device;

/// One end of an in-memory cable. Packets sent on one end are received by
/// the other, in order.
///
/// Each direction has a bounded queue. Like a NIC's transmit queue, a full
/// queue drops the packet and counts it ([`dropped`](Self::dropped)); sending
/// never blocks. When the other end is dropped, sends are discarded (and
/// counted) and receives stay pending, as with an unplugged cable.
#[derive(Debug)]
pub struct MemoryDevice {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
    mtu: usize,
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
        assert!(queue_packets > 0, "a device queue needs room for a packet");
        let (a_tx, b_rx) = mpsc::channel(queue_packets);
        let (b_tx, a_rx) = mpsc::channel(queue_packets);
        let end = |tx, rx| MemoryDevice {
            tx,
            rx,
            mtu,
            dropped: 0,
        };
        (end(a_tx, a_rx), end(b_tx, b_rx))
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
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(packet)) => {
                let n = packet.len().min(buf.len());
                buf[..n].copy_from_slice(&packet[..n]);
                Poll::Ready(Ok(n))
            }
            // The other end is gone and nothing will ever arrive; no waker is
            // needed for a wake that cannot happen.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// Always ready: a packet that does not fit in the queue is dropped.
    ///
    /// # Errors
    /// `InvalidInput` when `packet` is longer than the MTU.
    fn poll_send(&mut self, _cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        if packet.len() > self.mtu {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("packet of {} bytes exceeds MTU {}", packet.len(), self.mtu),
            )));
        }
        match self.tx.try_send(packet.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => self.dropped += 1,
        }
        Poll::Ready(Ok(()))
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}

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
    async fn test_pair_peer_gone_discards_and_pends() {
        let (mut a, b) = MemoryDevice::pair(1500);
        drop(b);
        send(&mut a, b"void").await.unwrap();
        assert_eq!(a.dropped(), 1);
        assert!(try_recv(&mut a).is_none());
    }
}
