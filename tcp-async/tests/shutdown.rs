//! Half-close in both directions: `poll_shutdown` sends FIN, reading goes on.

mod common;

use common::*;
use std::io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn client_half_close_then_server_answers() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 2000).await;
    within("half-close", async {
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        // The server reads everything, then the end of stream...
        let mut req = Vec::new();
        server.read_to_end(&mut req).await.unwrap();
        assert_eq!(req, b"request");
        // ...and can still answer on its open half.
        server.write_all(b"response").await.unwrap();
        server.shutdown().await.unwrap();
        let mut resp = Vec::new();
        client.read_to_end(&mut resp).await.unwrap();
        assert_eq!(resp, b"response");
        // End of stream is sticky.
        let mut buf = [0; 8];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn server_half_close_first() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 2001).await;
    within("half-close", async {
        server.write_all(b"banner").await.unwrap();
        server.shutdown().await.unwrap();
        let mut banner = Vec::new();
        client.read_to_end(&mut banner).await.unwrap();
        assert_eq!(banner, b"banner");
        let big = pattern(300_000, 1);
        client.write_all(&big).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == big);
    })
    .await;
}

#[tokio::test]
async fn write_after_shutdown_is_broken_pipe() {
    let (a, b) = stacks();
    let (mut client, _server) = connected(&a, &b, 2002).await;
    client.shutdown().await.unwrap();
    // Idempotent.
    client.shutdown().await.unwrap();
    let err = client.write(b"late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    assert_eq!(
        client.try_write(b"late").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
}

#[tokio::test]
async fn flush_is_a_no_op() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 2003).await;
    within("flush", async {
        client.write_all(b"abc").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0; 3];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abc");
    })
    .await;
}

#[tokio::test]
async fn both_sides_close_and_readiness_reports_it() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 2004).await;
    within("close both", async {
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
        let ready = client
            .ready(tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE)
            .await
            .unwrap();
        assert!(ready.is_write_closed());
        let mut buf = Vec::new();
        assert_eq!(client.read_to_end(&mut buf).await.unwrap(), 0);
        assert_eq!(server.read_to_end(&mut buf).await.unwrap(), 0);
        let ready = client.ready(tokio::io::Interest::READABLE).await.unwrap();
        assert!(ready.is_read_closed());
    })
    .await;
}

/// tokio's `shutdown` maps ENOTCONN to `Ok(())` on purpose
/// (tokio-rs/tokio#4665): a connection the peer reset, or whose stack
/// stopped, shuts down without error.
#[tokio::test]
async fn shutdown_of_a_failed_connection_is_ok() {
    let (a, b) = stacks();
    let (mut client, server) = connected(&a, &b, 2005).await;
    server.set_linger(Some(std::time::Duration::ZERO)).unwrap();
    drop(server);
    within("reset", async {
        let mut buf = [0; 4];
        let err = client.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    })
    .await;
    client.shutdown().await.unwrap();

    let (mut client, _server) = connected(&a, &b, 2006).await;
    within("stack abort", b.abort()).await;
    client.shutdown().await.unwrap();

    // A graceful stop times out here (the peer never closes), then stops.
    let (a, b) = stacks();
    let (mut client, _server) = connected(&a, &b, 2007).await;
    let stop = b.shutdown_timeout(std::time::Duration::from_millis(10));
    within("stack shutdown", stop).await;
    client.shutdown().await.unwrap();
}

/// Linux `tcp_sendmsg()` tests `SEND_SHUTDOWN` before it looks at the
/// length: a 0-byte write after `shutdown()` fails with EPIPE, whichever
/// write call makes it.
#[tokio::test]
async fn zero_byte_write_after_shutdown_is_broken_pipe() {
    use std::io::IoSlice;
    let (a, b) = stacks();
    let (mut client, _server) = connected(&a, &b, 2007).await;
    // Before the shutdown, writing nothing succeeds.
    assert_eq!(client.write(b"").await.unwrap(), 0);
    assert_eq!(client.try_write(b"").unwrap(), 0);
    client.shutdown().await.unwrap();
    let kind = |r: std::io::Result<usize>| r.unwrap_err().kind();
    assert_eq!(kind(client.write(b"").await), ErrorKind::BrokenPipe);
    assert_eq!(kind(client.try_write(b"")), ErrorKind::BrokenPipe);
    assert_eq!(
        kind(client.write_vectored(&[]).await),
        ErrorKind::BrokenPipe
    );
    assert_eq!(
        kind(client.try_write_vectored(&[IoSlice::new(b"")])),
        ErrorKind::BrokenPipe
    );
    let (_, mut w) = client.split();
    assert_eq!(kind(w.write(b"").await), ErrorKind::BrokenPipe);
}
