//! TUN offloads with the Linux kernel as the peer: bulk data both ways at
//! once, byte-exact, with super-packets actually used in both directions
//! (the kernel's TSO packets larger than the MTU to us, our super-segments
//! cut by the kernel), and the same transfer on a TUN without offloads.

mod common;

use common::{
    assert_pattern, bulk_len, kernel_net_opts, recv_pattern, report, send_pattern, within,
    KernelNet, Received, Stackable,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tcp_async::device::tun::TunCounters;
use tcp_async::device::Device;
use tcp_async::TcpListener;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const PORT: u16 = 5001;

/// A stack on a TUN with or without offloads, and the TUN's counters.
fn net(offload: bool) -> Option<(KernelNet, Arc<TunCounters>)> {
    let mut counters = None;
    let net = kernel_net_opts(offload, |tun| {
        assert_eq!(tun.get_ref().has_offload(), offload);
        assert_eq!(tun.offloads().tso_max > 0, offload);
        counters = Some(tun.counters());
        Ok(Stackable::new(tun))
    })?;
    Some((net, counters.unwrap()))
}

/// Sends `len` pattern bytes on `w` (then half-closes) while receiving on
/// `r`; returns the checksum sent and what arrived.
async fn send_and_receive<R, W>(mut r: R, mut w: W, len: u64) -> std::io::Result<(u64, Received)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let send = async {
        let sum = send_pattern(&mut w, len).await?;
        w.shutdown().await?;
        std::io::Result::Ok(sum)
    };
    tokio::try_join!(send, recv_pattern(&mut r))
}

/// The kernel sends `len` bytes to our listener while our side sends `len`
/// bytes back on the same connection; both sides check the pattern.
async fn bulk_both_ways(net: &KernelNet, len: u64) {
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    let kernel = async {
        let s = tokio::net::TcpStream::connect(net.our_addr(PORT)).await?;
        let (r, w) = s.into_split();
        send_and_receive(r, w, len).await
    };
    let ours = async {
        let (s, _) = listener.accept().await?;
        let (r, w) = s.into_split();
        send_and_receive(r, w, len).await
    };
    let ((k_sum, at_kernel), (o_sum, at_ours)) = tokio::try_join!(kernel, ours).unwrap();
    assert_eq!(at_ours.checksum, k_sum);
    assert_pattern("kernel -> us", at_ours, len);
    assert_eq!(at_kernel.checksum, o_sum);
    assert_pattern("us -> kernel", at_kernel, len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offloaded_bulk_both_ways_uses_super_packets() {
    let Some((net, counters)) = net(true) else {
        return;
    };
    let len = bulk_len();
    let start = Instant::now();
    within(120, "offloaded bulk both ways", bulk_both_ways(&net, len)).await;
    report("offloads on, both ways (per direction)", len, start);
    let rx_super = counters.rx_super.load(Ordering::Relaxed);
    let rx_partial = counters.rx_partial.load(Ordering::Relaxed);
    let tx_super = counters.tx_super.load(Ordering::Relaxed);
    let tx_segs = counters.tx_super_segments.load(Ordering::Relaxed);
    println!("rx super-packets {rx_super}, rx partial {rx_partial}, tx super-packets {tx_super} ({tx_segs} segments)");
    assert!(
        rx_super > 0,
        "the kernel sent no packet larger than the MTU"
    );
    assert!(rx_partial > 0, "no checksum-partial packet from the kernel");
    assert!(tx_super > 0, "we sent no super-packet");
    assert!(tx_segs >= 2 * tx_super);
    let stats = net.stack.stats().await.unwrap();
    assert_eq!(stats.drop_checksum, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_bulk_both_ways_without_offloads() {
    let Some((net, counters)) = net(false) else {
        return;
    };
    let len = bulk_len() / 4;
    let start = Instant::now();
    within(120, "plain bulk both ways", bulk_both_ways(&net, len)).await;
    report("offloads off, both ways (per direction)", len, start);
    assert_eq!(counters.rx_super.load(Ordering::Relaxed), 0);
    assert_eq!(counters.tx_super.load(Ordering::Relaxed), 0);
}
