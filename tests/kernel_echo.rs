//! Echo with the Linux kernel as the peer over a TUN device, both ways:
//! kernel clients against our listener, our clients against a kernel listener.

mod common;

use common::{echo_exchange, kernel_echo_server, kernel_net, our_echo_server, within};
use std::sync::Arc;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 7;
const CONNS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_client_echo_to_our_listener() {
    let Some(net) = kernel_net() else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .expect("bind on our stack");
    let server = tokio::spawn(our_echo_server(listener));
    within(30, "echo", async {
        let mut s = tokio::net::TcpStream::connect(net.our_addr(PORT))
            .await
            .expect("kernel connect to our listener");
        assert_eq!(s.local_addr().unwrap().ip(), net.kernel);
        for msg in ["hello", "user-space", "tcp"] {
            s.write_all(msg.as_bytes()).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        echo_exchange("kernel client, 4 MiB echo", s, 4 << 20).await;
    })
    .await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_clients_concurrent_to_our_listener() {
    let Some(net) = kernel_net() else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .expect("bind on our stack");
    let server = tokio::spawn(our_echo_server(listener));
    let addr = net.our_addr(PORT);
    within(60, "200 concurrent kernel clients", async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|i| {
                tokio::spawn(async move {
                    let s = tokio::net::TcpStream::connect(addr)
                        .await
                        .unwrap_or_else(|e| panic!("kernel connect #{i}: {e}"));
                    echo_exchange(&format!("kernel client #{i}"), s, 16 * 1024 + i as u64).await;
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client task");
        }
    })
    .await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_echo_to_kernel_listener() {
    let Some(net) = kernel_net() else { return };
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    let server = tokio::spawn(kernel_echo_server(listener));
    within(30, "echo", async {
        let mut s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT))
            .await
            .expect("our connect to the kernel listener");
        assert_eq!(s.local_addr().unwrap().ip(), net.ours);
        assert_eq!(s.peer_addr().unwrap(), net.kernel_addr(PORT));
        for msg in ["hello", "kernel", "tcp"] {
            s.write_all(msg.as_bytes()).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        echo_exchange("our client, 4 MiB echo", s, 4 << 20).await;
    })
    .await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_clients_concurrent_to_kernel_listener() {
    let Some(net) = kernel_net() else { return };
    let listener = common::kernel_listener(net.kernel_addr(PORT));
    let server = tokio::spawn(kernel_echo_server(listener));
    let net = Arc::new(net);
    within(60, "200 concurrent clients of ours", async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|i| {
                let net = net.clone();
                tokio::spawn(async move {
                    let s = TcpStream::connect_with(&net.stack, net.kernel_addr(PORT))
                        .await
                        .unwrap_or_else(|e| panic!("our connect #{i}: {e}"));
                    echo_exchange(&format!("our client #{i}"), s, 16 * 1024 + i as u64).await;
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client task");
        }
    })
    .await;
    server.abort();
}
