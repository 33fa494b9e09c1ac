//! Bounded resources seen from the application: at the buffer memory limit
//! (`Config::max_buffer_memory`, Linux's `tcp_mem`) `connect` fails with an
//! ENOBUFS-like error instead of growing without bound, and works again once
//! the rings' storage is freed.

mod common;

use common::*;
use std::io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(start_paused = true)]
async fn connect_fails_at_the_buffer_memory_limit_then_recovers() {
    let mut a_cfg = config(A, 1);
    a_cfg.send_buffer = 64 * 1024;
    a_cfg.send_buffer_max = 64 * 1024;
    a_cfg.recv_buffer = 16 * 1024;
    a_cfg.recv_buffer_max = 16 * 1024;
    // One send ring's worth.
    a_cfg.max_buffer_memory = 64 * 1024;
    let mut b_cfg = config(B, 2);
    // A small window: the client's send ring stays full while nobody reads.
    b_cfg.recv_buffer = 16 * 1024;
    b_cfg.recv_buffer_max = 16 * 1024;
    let (a, b) = stacks_with(a_cfg, b_cfg);
    let listener = tcp_async::TcpListener::bind_with(&b, addr(B, 80))
        .await
        .unwrap();
    let mut first = within(
        "connect",
        tcp_async::TcpStream::connect_with(&a, addr(B, 80)),
    )
    .await
    .unwrap();
    let (mut server, _) = within("accept", listener.accept()).await.unwrap();
    // The server does not read yet: the client's send ring keeps its storage.
    let writer = tokio::spawn(async move {
        first.write_all(&[7u8; 200 * 1024]).await.unwrap();
        first
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let err = within(
        "refused connect",
        tcp_async::TcpStream::connect_with(&a, addr(B, 80)),
    )
    .await
    .expect_err("connect must fail at the memory limit");
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    // The server reads everything; the rings drain and are freed.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while total < 200 * 1024 {
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0);
            total += n;
        }
        server
    });
    let _server = within("drain", reader).await.unwrap();
    let _first = within("writer", writer).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let again = within(
        "connect after",
        tcp_async::TcpStream::connect_with(&a, addr(B, 80)),
    )
    .await;
    assert!(again.is_ok(), "{again:?}");
    let st = a.stats().await.unwrap();
    assert_eq!(st.connections_opened, 2);
}
