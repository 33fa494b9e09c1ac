//! 64 MiB (`UTCP_BULK_MIB`) each way with the Linux kernel as the peer,
//! checked byte for byte against a pattern stream and by checksum.

mod common;

use common::{assert_pattern, bulk_len, kernel_net, recv_pattern, report, send_pattern, within};
use std::time::Instant;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::AsyncWriteExt;

const PORT: u16 = 5001;

/// Kernel client sends to our listener; we check the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_client_sends_bulk_to_us() {
    let Some(net) = kernel_net() else { return };
    let len = bulk_len();
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    let start = Instant::now();
    within(90, "bulk kernel -> us", async {
        let sender = async {
            let mut s = tokio::net::TcpStream::connect(net.our_addr(PORT)).await?;
            let sum = send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok((sum, s))
        };
        let receiver = async {
            let (mut s, _) = listener.accept().await?;
            recv_pattern(&mut s).await
        };
        let ((sum, _kernel), got) = tokio::try_join!(sender, receiver).unwrap();
        assert_eq!(got.checksum, sum);
        assert_pattern("kernel -> us", got, len);
    })
    .await;
    report("kernel client -> our listener", len, start);
}

/// Our listener's connection sends to the kernel client; the kernel checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_listener_sends_bulk_to_kernel_client() {
    let Some(net) = kernel_net() else { return };
    let len = bulk_len();
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    let start = Instant::now();
    within(90, "bulk us -> kernel", async {
        let sender = async {
            let (mut s, _) = listener.accept().await?;
            let sum = send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok((sum, s))
        };
        let receiver = async {
            let mut s = tokio::net::TcpStream::connect(net.our_addr(PORT)).await?;
            recv_pattern(&mut s).await
        };
        let ((sum, _ours), got) = tokio::try_join!(sender, receiver).unwrap();
        assert_eq!(got.checksum, sum);
        assert_pattern("us -> kernel", got, len);
    })
    .await;
    report("our listener -> kernel client", len, start);
}

/// Our client sends to a kernel listener; the kernel checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_sends_bulk_to_kernel() {
    let Some(net) = kernel_net() else { return };
    let len = bulk_len();
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    let start = Instant::now();
    within(90, "bulk our client -> kernel", async {
        let sender = async {
            let mut s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT)).await?;
            let sum = send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok((sum, s))
        };
        let receiver = async {
            let (mut s, _) = listener.accept().await?;
            recv_pattern(&mut s).await
        };
        let ((sum, _ours), got) = tokio::try_join!(sender, receiver).unwrap();
        assert_eq!(got.checksum, sum);
        assert_pattern("our client -> kernel", got, len);
    })
    .await;
    report("our client -> kernel listener", len, start);
}

/// A kernel listener's connection sends to our client; we check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_listener_sends_bulk_to_our_client() {
    let Some(net) = kernel_net() else { return };
    let len = bulk_len();
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    let start = Instant::now();
    within(90, "bulk kernel listener -> our client", async {
        let sender = async {
            let (mut s, _) = listener.accept().await?;
            let sum = send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok((sum, s))
        };
        let receiver = async {
            let mut s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT)).await?;
            recv_pattern(&mut s).await
        };
        let ((sum, _kernel), got) = tokio::try_join!(sender, receiver).unwrap();
        assert_eq!(got.checksum, sum);
        assert_pattern("kernel listener -> our client", got, len);
    })
    .await;
    report("kernel listener -> our client", len, start);
}
