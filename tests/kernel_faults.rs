//! The kernel-peer transfers through a FaultInjector (2% loss with
//! reordering, both directions): every byte must still arrive, in order.

mod common;

use common::{
    assert_pattern, echo_exchange, kernel_echo_server, kernel_net_with, our_echo_server,
    recv_pattern, report, send_pattern, within, KernelNet, Stackable,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcp_async::device::{FaultInjector, Faults};
use tcp_async::{TcpListener, TcpStream};
use tokio::io::AsyncWriteExt;

const PORT: u16 = 6000;

/// Size of the lossy bulk transfers: `UTCP_LOSSY_MIB` MiB, 64 by default
/// (measured: about 12 s per direction for our sender, 2 s for the kernel).
fn lossy_len() -> u64 {
    std::env::var("UTCP_LOSSY_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(64)
        << 20
}

fn lossy_net(seed: u64) -> Option<KernelNet> {
    kernel_net_with(|tun| {
        let faults = Faults {
            seed,
            loss: 0.02,
            reorder: 0.05,
            reorder_delay: Duration::from_millis(3),
            ..Faults::default()
        };
        Ok(Stackable::new(FaultInjector::new(tun, faults)))
    })
}

/// Prints our stack's retransmission counters (shown with `--nocapture`).
async fn print_stats(what: &str, net: &KernelNet) {
    if let Ok(st) = net.stack.stats().await {
        println!(
            "{what}: packets out {} in {}, retransmits {} (fast {}), RTO expirations {}, dropped segments {}",
            st.packets_out,
            st.packets_in,
            st.retransmits,
            st.fast_retransmits,
            st.rto_expirations,
            st.drop_segment
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_echo_both_ways() {
    let Some(net) = lossy_net(11) else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    let ours = tokio::spawn(our_echo_server(listener));
    let klistener = common::kernel_listener(net.kernel_addr(PORT));
    let kernel = tokio::spawn(kernel_echo_server(klistener));
    let start = Instant::now();
    within(60, "lossy echo", async {
        let k = tokio::net::TcpStream::connect(net.our_addr(PORT))
            .await
            .unwrap();
        echo_exchange("kernel client, lossy echo", k, 1 << 20).await;
        let o = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT))
            .await
            .unwrap();
        echo_exchange("our client, lossy echo", o, 1 << 20).await;
    })
    .await;
    report("lossy echo 1 MiB twice", 4 << 20, start);
    ours.abort();
    kernel.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_bulk_kernel_client() {
    let Some(net) = lossy_net(12) else { return };
    let len = lossy_len();
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    within(120, "lossy bulk with a kernel client", async {
        // Kernel -> us.
        let start = Instant::now();
        let sender = async {
            let mut s = tokio::net::TcpStream::connect(net.our_addr(PORT)).await?;
            send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok(s)
        };
        let receiver = async {
            let (mut s, _) = listener.accept().await?;
            recv_pattern(&mut s).await
        };
        let (_k, got) = tokio::try_join!(sender, receiver).unwrap();
        assert_pattern("lossy kernel -> us", got, len);
        report("lossy kernel client -> us", len, start);

        // Us -> kernel.
        let start = Instant::now();
        let sender = async {
            let (mut s, _) = listener.accept().await?;
            send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok(s)
        };
        let receiver = async {
            let mut s = tokio::net::TcpStream::connect(net.our_addr(PORT)).await?;
            recv_pattern(&mut s).await
        };
        let (_o, got) = tokio::try_join!(sender, receiver).unwrap();
        assert_pattern("lossy us -> kernel client", got, len);
        report("lossy us -> kernel client", len, start);
        print_stats("after our listener sent", &net).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_bulk_our_client() {
    let Some(net) = lossy_net(13) else { return };
    let len = lossy_len();
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    within(120, "lossy bulk with our client", async {
        let start = Instant::now();
        let sender = async {
            let mut s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT)).await?;
            send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok(s)
        };
        let receiver = async {
            let (mut s, _) = listener.accept().await?;
            recv_pattern(&mut s).await
        };
        let (_o, got) = tokio::try_join!(sender, receiver).unwrap();
        assert_pattern("lossy our client -> kernel", got, len);
        report("lossy our client -> kernel", len, start);
        print_stats("after our client sent", &net).await;

        let start = Instant::now();
        let sender = async {
            let (mut s, _) = listener.accept().await?;
            send_pattern(&mut s, len).await?;
            s.shutdown().await?;
            std::io::Result::Ok(s)
        };
        let receiver = async {
            let mut s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT)).await?;
            recv_pattern(&mut s).await
        };
        let (_k, got) = tokio::try_join!(sender, receiver).unwrap();
        assert_pattern("lossy kernel -> our client", got, len);
        report("lossy kernel listener -> our client", len, start);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_concurrent_both_ways() {
    let Some(net) = lossy_net(14) else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    let ours = tokio::spawn(our_echo_server(listener));
    let klistener = common::kernel_listener(net.kernel_addr(PORT));
    let kernel = tokio::spawn(kernel_echo_server(klistener));
    let net = Arc::new(net);
    within(90, "lossy concurrent connections", async {
        let mut tasks = Vec::new();
        for i in 0..100usize {
            let net = net.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    let s = tokio::net::TcpStream::connect(net.our_addr(PORT))
                        .await
                        .unwrap_or_else(|e| panic!("kernel connect #{i}: {e}"));
                    echo_exchange(&format!("lossy kernel client #{i}"), s, 32 * 1024).await;
                } else {
                    let s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT))
                        .await
                        .unwrap_or_else(|e| panic!("our connect #{i}: {e}"));
                    echo_exchange(&format!("lossy client of ours #{i}"), s, 32 * 1024).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
    })
    .await;
    ours.abort();
    kernel.abort();
}
