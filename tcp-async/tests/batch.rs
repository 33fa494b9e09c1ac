//! The driver hands the device what the core has due in batches
//! (`Device::poll_send_batch`), so a device whose system call takes several
//! packets (a packet socket's `sendmmsg(2)`) gets several; a device that
//! takes only some of a batch gets the rest offered again, in order, and
//! nothing is lost or reordered.

mod common;

use common::*;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tcp_async::device::{Device, MemoryDevice, TxPacket};
use tcp_async::{Stack, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A memory end whose `poll_send_batch` takes at most `take` packets per
/// call (1 when `take` is 0) and records the longest batch offered.
struct Batching {
    inner: MemoryDevice,
    take: usize,
    longest: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Device for Batching {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, buf)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        self.inner.poll_send(cx, packet)
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn poll_send_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &[TxPacket<'_>],
    ) -> Poll<io::Result<usize>> {
        self.longest.fetch_max(batch.len(), Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let limit = self.take.max(1).min(batch.len());
        // The default implementation, over a shorter batch.
        let mut taken = 0;
        for p in &batch[..limit] {
            match self.inner.poll_send(cx, p.data) {
                Poll::Ready(Ok(())) => taken += 1,
                Poll::Ready(Err(e)) if taken == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if taken == 0 => return Poll::Pending,
                _ => break,
            }
        }
        Poll::Ready(Ok(taken))
    }
}

/// Sends 2 MiB from a stack on a [`Batching`] device taking `take` per
/// call; returns (longest batch offered, calls).
async fn transfer(take: usize) -> (usize, usize) {
    let (da, db) = MemoryDevice::pair(1500);
    let longest = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let da = Batching {
        inner: da,
        take,
        longest: longest.clone(),
        calls: calls.clone(),
    };
    let a = Stack::builder(da).config(config(A, 1)).build().unwrap();
    let b = Stack::builder(db).config(config(B, 2)).build().unwrap();
    let listener = TcpListener::bind_with(&b, addr(B, 80)).await.unwrap();
    let payload = pattern(2 << 20, 3);
    let sent = payload.clone();
    let client = tokio::spawn(async move {
        let mut s = TcpStream::connect_with(&a, addr(B, 80)).await.unwrap();
        s.write_all(&sent).await.unwrap();
        s.shutdown().await.unwrap();
        // Keep `a` alive until the peer has read everything.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        a
    });
    let (mut server, _) = within("accept", listener.accept()).await.unwrap();
    let mut got = Vec::new();
    within("read", server.read_to_end(&mut got)).await.unwrap();
    drop(server);
    within("client", client).await.unwrap();
    assert!(
        got == payload,
        "{} bytes arrived, byte-exact: {}",
        got.len(),
        got == payload
    );
    (
        longest.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed),
    )
}

/// A bulk transfer offers the device more than one packet per call.
#[tokio::test]
async fn bulk_sends_reach_the_device_in_batches() {
    let (longest, calls) = transfer(usize::MAX).await;
    assert!(longest > 1, "longest batch {longest} over {calls} calls");
}

/// A device that takes one packet per call gets the rest of each batch
/// again: the transfer is still byte-exact and in order.
#[tokio::test]
async fn a_device_taking_part_of_each_batch_loses_nothing() {
    let (longest, _) = transfer(1).await;
    assert!(longest > 1, "longest batch {longest}");
}
