//! Stopping a stack (`Stack::shutdown`) resets its connections, so their
//! peers learn at once (RFC 9293 3.10.5 ABORT) instead of waiting for a
//! stack that will never answer again.

mod common;

use common::*;
use std::io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn stopping_a_stack_resets_its_connections() {
    let (a, b) = stacks();
    let listener = tcp_async::TcpListener::bind_with(&b, addr(B, 80))
        .await
        .unwrap();
    let mut client = within(
        "connect",
        tcp_async::TcpStream::connect_with(&a, addr(B, 80)),
    )
    .await
    .unwrap();
    let (mut server, _) = within("accept", listener.accept()).await.unwrap();
    client.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    within("read", server.read_exact(&mut buf)).await.unwrap();
    // The server's stack stops.
    b.shutdown().await;
    // The client hears a reset, not silence.
    let r = within("client read", client.read(&mut buf)).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    // The server's own socket fails as the docs say.
    let e = server.write(b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionAborted);
}
