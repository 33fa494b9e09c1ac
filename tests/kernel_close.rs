//! Half-close, refusal and abort with the Linux kernel as the peer.

mod common;

use common::{assert_pattern, kernel_net, recv_pattern, send_pattern, within};
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 8000;
const AFTER: u64 = 1 << 20;

/// The kernel client half-closes first; it still reads all we send afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_half_closes_then_reads_what_we_send() {
    let Some(net) = kernel_net() else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    within(30, "half-close by the kernel", async {
        let ours = async {
            let (mut s, _) = listener.accept().await?;
            let mut req = Vec::new();
            s.read_to_end(&mut req).await?;
            assert_eq!(req, b"request, then FIN");
            // The kernel's FIN is in; our direction is still open.
            send_pattern(&mut s, AFTER).await?;
            s.shutdown().await?;
            std::io::Result::Ok(s)
        };
        let kernel = async {
            let mut s = tokio::net::TcpStream::connect(net.our_addr(PORT)).await?;
            s.write_all(b"request, then FIN").await?;
            s.shutdown().await?;
            recv_pattern(&mut s).await
        };
        let (_s, got) = tokio::try_join!(ours, kernel).unwrap();
        assert_pattern("after the kernel's FIN", got, AFTER);
    })
    .await;
}

/// We half-close first; the kernel reads EOF and keeps sending to us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_half_close_then_kernel_keeps_sending() {
    let Some(net) = kernel_net() else { return };
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    within(30, "half-close by us", async {
        let kernel = async {
            let (mut s, _) = listener.accept().await?;
            let mut req = Vec::new();
            s.read_to_end(&mut req).await?;
            assert_eq!(req, b"our request, then FIN");
            send_pattern(&mut s, AFTER).await?;
            s.shutdown().await?;
            std::io::Result::Ok(s)
        };
        let ours = async {
            let mut s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT)).await?;
            s.write_all(b"our request, then FIN").await?;
            s.shutdown().await?;
            recv_pattern(&mut s).await
        };
        let (_s, got) = tokio::try_join!(kernel, ours).unwrap();
        assert_pattern("after our FIN", got, AFTER);
    })
    .await;
}

/// A SYN to a kernel port with no listener: the kernel's RST makes our
/// connect fail with ConnectionRefused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_rst_refuses_our_connect() {
    let Some(net) = kernel_net() else { return };
    let r = within(10, "refused connect", async {
        TcpStream::connect_with(&net.stack, net.kernel_addr(1)).await
    })
    .await;
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("connect to a closed kernel port succeeded"),
    }
}

/// A kernel SYN to a port of ours with no listener: our RST makes the
/// kernel's connect fail with ECONNREFUSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_rst_refuses_kernel_connect() {
    let Some(net) = kernel_net() else { return };
    let r = within(10, "refused kernel connect", async {
        tokio::net::TcpStream::connect(net.our_addr(1)).await
    })
    .await;
    match r {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            assert_eq!(e.raw_os_error(), Some(libc_econnrefused()));
        }
        Ok(_) => panic!("kernel connect to a closed port of ours succeeded"),
    }
}

fn libc_econnrefused() -> i32 {
    // ECONNREFUSED on Linux (all architectures).
    111
}

/// Kernel connects, sends; we read part of it and drop the stream with data
/// unread: we abort (RST), and the kernel's read fails with ConnectionReset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_drop_with_unread_data_resets_kernel() {
    let Some(net) = kernel_net() else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    within(30, "abort by drop", async {
        let mut k = tokio::net::TcpStream::connect(net.our_addr(PORT))
            .await
            .unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        k.write_all(&[1u8; 1000]).await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await; // let the rest arrive
        drop(s);
        let mut buf = [0u8; 16];
        let e = k.read(&mut buf).await.expect_err("read after our abort");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    })
    .await;
}

/// SO_LINGER 0 then drop (close) aborts: the kernel's read gets ConnectionReset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_linger_zero_close_resets_kernel() {
    let Some(net) = kernel_net() else { return };
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    within(30, "abort by linger 0", async {
        let s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT))
            .await
            .unwrap();
        let (mut k, _) = listener.accept().await.unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
        let mut buf = [0u8; 16];
        let e = k.read(&mut buf).await.expect_err("read after our abort");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    })
    .await;
}

/// The kernel aborts (SO_LINGER 0): our read fails with ConnectionReset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_abort_resets_our_read() {
    let Some(net) = kernel_net() else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    within(30, "abort by the kernel", async {
        let k = tokio::net::TcpStream::connect(net.our_addr(PORT))
            .await
            .unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        k.set_zero_linger().unwrap();
        drop(k);
        let mut buf = [0u8; 16];
        let e = s
            .read(&mut buf)
            .await
            .expect_err("read after the kernel's abort");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    })
    .await;
}
