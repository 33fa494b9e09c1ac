//! Errors map to the `io::ErrorKind`s of kernel sockets.

mod common;

use common::*;
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::device::MemoryDevice;
use tcp_async::{Stack, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connect_to_closed_port_is_refused() {
    let (_a, b) = stacks();
    let err = within("refused", TcpStream::connect_with(&b, addr(A, 9)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn abortive_close_resets_the_peer() {
    let (a, b) = stacks();
    let (mut client, server) = connected(&a, &b, 8000).await;
    server.set_linger(Some(Duration::ZERO)).unwrap();
    drop(server);
    within("reset", async {
        let mut buf = [0; 4];
        let err = client.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        // Writing to a reset connection fails too.
        let err = client.write_all(b"late").await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn unanswered_connect_times_out() {
    init_tracing();
    // Nobody drives the other end: SYNs vanish.
    let (dev, _silent) = MemoryDevice::pair(1500);
    let mut config = config(B, 2);
    config.connect_timeout = Duration::from_secs(10);
    let stack = Stack::builder(dev).config(config).build().unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        TcpStream::connect_with(&stack, addr(A, 80)),
    )
    .await
    .expect("the connect timeout should fire first")
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[tokio::test]
async fn invalid_addresses() {
    let (_a, b) = stacks();
    let err = TcpStream::connect_with(&b, addr(A, 0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // IPv6 loopback works inside the stack as 127.0.0.1 does: nothing
    // listens, so refused (as Linux).
    let err = TcpStream::connect_with(&b, "[::1]:80").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // No IPv6 address configured: no route (Linux ENETUNREACH).
    let err = TcpStream::connect_with(&b, "[fd00::1]:80")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable);
    // An IPv4 socket cannot take an IPv6 address (Linux EAFNOSUPPORT).
    let socket = TcpSocket::new_v4_with(&b);
    let err = socket.bind("[::1]:0".parse().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // A foreign local address: EADDRNOTAVAIL at bind, as Linux.
    let socket = TcpSocket::new_v4_with(&b);
    let err = socket.bind(addr([10, 9, 9, 9].into(), 0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
    let err = tcp_async::TcpListener::bind_with(&b, "10.9.9.9:80")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
}

#[tokio::test]
async fn no_default_stack_is_not_found() {
    // This binary never sets a default.
    let err = tcp_async::TcpListener::bind("10.0.0.1:1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(TcpSocket::new_v4().unwrap_err().kind(), ErrorKind::NotFound);
}

/// Linux `tcp_reset()`: a reset in CLOSE-WAIT (the peer's FIN already in)
/// sets EPIPE, not ECONNRESET; reads keep giving the end of stream
/// (`SOCK_DONE` is tested first in `tcp_recvmsg()`), writes fail with
/// BrokenPipe.
#[tokio::test]
async fn reset_in_close_wait_is_broken_pipe_and_end_of_stream() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 8001).await;
    server.set_linger(Some(Duration::ZERO)).unwrap();
    within("reset after FIN", async {
        server.shutdown().await.unwrap();
        let mut buf = [0; 4];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        // The client is in CLOSE-WAIT; the server's drop resets it.
        drop(server);
        loop {
            let ready = client.ready(tokio::io::Interest::WRITABLE).await.unwrap();
            if ready.is_write_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let err = client.write(b"late").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    })
    .await;
}

/// Linux `sock_error()` reports a connection's error once and clears it
/// (`sk_err`): after a reset, the first read or write gives ECONNRESET,
/// then reads give the end of stream and writes EPIPE.
#[tokio::test]
async fn a_reset_is_reported_once() {
    let (a, b) = stacks();
    // Read first.
    let (mut client, server) = connected(&a, &b, 8002).await;
    server.set_linger(Some(Duration::ZERO)).unwrap();
    drop(server);
    let mut buf = [0; 4];
    let err = within("reset", client.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    let err = client.write(b"late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
    // Write first.
    let (mut client, server) = connected(&a, &b, 8003).await;
    server.set_linger(Some(Duration::ZERO)).unwrap();
    drop(server);
    within("reset", client.ready(tokio::io::Interest::ERROR))
        .await
        .unwrap();
    let err = client.write(b"late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    let err = client.try_write(b"late").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
}
