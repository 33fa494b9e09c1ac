//! Every operation on a stopped stack fails with one error: `NotConnected`
//! whose source is `tcp_async::StackStopped` (`is_stack_stopped`), at once,
//! and pending operations end with it instead of waiting. The exceptions:
//! a read's data received before the stop, then the end of stream if the
//! peer had closed, as a kernel socket still gives them; and `shutdown`,
//! `Ok(())` as tokio's for `NotConnected`.
//!
//! `tokio::time::timeout` below is a hang detector only (10 s, far beyond
//! any run), never a performance threshold.

mod common;

use common::{addr, connected, stacks, A, B};
use std::future::Future;
use std::io::{self, ErrorKind};
use std::time::Duration;
use tcp_async::{is_stack_stopped, Stack, TcpListener, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

/// Fails the test if `f` hangs.
async fn no_hang<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(10), f).await {
        Ok(v) => v,
        Err(_) => panic!("hung: {what}"),
    }
}

#[track_caller]
fn assert_stopped<T: std::fmt::Debug>(what: &str, r: io::Result<T>) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{what}: {e}");
    assert!(is_stack_stopped(&e), "{what}: {e:?}");
    assert_eq!(e.to_string(), "the stack has stopped", "{what}");
}

/// A connection from `b` (client) to `a` (server), then `b` aborted.
async fn stopped_client() -> (Stack, Stack, TcpStream, TcpStream) {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 80).await;
    no_hang("abort", b.abort()).await;
    (a, b, client, server)
}

#[tokio::test]
async fn accept_on_a_stopped_stack() {
    let (a, _b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 80)).await.unwrap();
    no_hang("abort", a.abort()).await;
    assert_stopped("accept", no_hang("accept", listener.accept()).await);
}

#[tokio::test]
async fn pending_accept_when_the_stack_stops() {
    let (a, _b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 80)).await.unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.map(drop) });
    tokio::task::yield_now().await;
    no_hang("shutdown", a.shutdown()).await;
    assert_stopped("pending accept", no_hang("accept", accept).await.unwrap());
}

#[tokio::test]
async fn connect_on_a_stopped_stack() {
    let (a, _b) = stacks();
    no_hang("abort", a.abort()).await;
    let r = no_hang("connect", TcpStream::connect_with(&a, addr(B, 80))).await;
    assert_stopped("connect", r);
    let socket = TcpSocket::new_v4_with(&a);
    assert_stopped(
        "TcpSocket::connect",
        no_hang("socket connect", socket.connect(addr(B, 80))).await,
    );
}

#[tokio::test]
async fn bind_and_listen_on_a_stopped_stack() {
    let (a, _b) = stacks();
    no_hang("abort", a.abort()).await;
    let r = no_hang("bind", TcpListener::bind_with(&a, addr(A, 80))).await;
    assert_stopped("bind", r);
    let socket = TcpSocket::new_v4_with(&a);
    socket.bind(addr(A, 81)).unwrap();
    assert_stopped("listen", socket.listen(16));
}

#[tokio::test]
async fn read_on_a_stopped_stack() {
    let (_a, _b, mut client, _server) = stopped_client().await;
    let mut buf = [0u8; 8];
    assert_stopped("read", no_hang("read", client.read(&mut buf)).await);
    assert_stopped("try_read", client.try_read(&mut buf));
    // Every time, not once as a connection's own error.
    assert_stopped("read again", no_hang("read", client.read(&mut buf)).await);
    assert_stopped("peek", no_hang("peek", client.peek(&mut buf)).await);
}

#[tokio::test]
async fn pending_read_when_the_stack_stops() {
    let (a, b) = stacks();
    let (mut client, _server) = connected(&a, &b, 80).await;
    let read = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        client.read(&mut buf).await
    });
    tokio::task::yield_now().await;
    no_hang("abort", b.abort()).await;
    assert_stopped("pending read", no_hang("read", read).await.unwrap());
}

/// Data received before the stop, and the peer's clean close, are still
/// read after it: the bytes, then the end of stream (and readiness says
/// so), then the end of stream again.
#[tokio::test]
async fn read_after_a_clean_close_then_a_stop_gives_the_data_then_eof() {
    let (a, b) = stacks();
    let (client, mut server) = connected(&a, &b, 80).await;
    server.write_all(b"last words").await.unwrap();
    server.shutdown().await.unwrap();
    // Wait for the FIN to arrive, without reading.
    no_hang("fin", async {
        while !client
            .ready(Interest::READABLE)
            .await
            .unwrap()
            .is_read_closed()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    no_hang("abort", b.abort()).await;
    no_hang("readable", client.readable()).await.unwrap();
    let mut client = client;
    let mut got = Vec::new();
    no_hang("read to end", client.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"last words");
    let mut buf = [0u8; 4];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    // Writing is over, with the one error.
    assert_stopped("write", client.write(b"x").await);
}

#[tokio::test]
async fn write_on_a_stopped_stack() {
    let (_a, _b, mut client, _server) = stopped_client().await;
    assert_stopped("write", no_hang("write", client.write(b"x")).await);
    assert_stopped("try_write", client.try_write(b"x"));
    assert_stopped("empty write", client.try_write(b""));
    let (_r, mut w) = client.split();
    assert_stopped("write half", no_hang("write", w.write(b"x")).await);
}

#[tokio::test]
async fn pending_write_when_the_stack_stops() {
    let (a, b) = stacks();
    let (client, _server) = connected(&a, &b, 80).await;
    // The server never reads: the send buffer fills and the write waits.
    let write = tokio::spawn(async move {
        let mut client = client;
        let big = vec![7u8; 64 << 20];
        client.write_all(&big).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!write.is_finished(), "the write should be waiting");
    no_hang("abort", b.abort()).await;
    assert_stopped("pending write", no_hang("write", write).await.unwrap());
}

#[tokio::test]
async fn readiness_on_a_stopped_stack() {
    let (_a, _b, client, _server) = stopped_client().await;
    assert_stopped("readable", no_hang("readable", client.readable()).await);
    assert_stopped("writable", no_hang("writable", client.writable()).await);
    let r = no_hang(
        "ready",
        client.ready(Interest::READABLE | Interest::WRITABLE),
    )
    .await;
    assert_stopped("ready", r);
    let r = no_hang("error", client.ready(Interest::ERROR)).await;
    assert_stopped("ready(ERROR)", r);
}

#[tokio::test]
async fn pending_readiness_when_the_stack_stops() {
    let (a, b) = stacks();
    let (client, _server) = connected(&a, &b, 80).await;
    let readable = tokio::spawn(async move { client.readable().await });
    tokio::task::yield_now().await;
    no_hang("abort", b.abort()).await;
    assert_stopped(
        "pending readable",
        no_hang("readable", readable).await.unwrap(),
    );
}

/// The exception: tokio's `shutdown` maps `NotConnected` (the kind of
/// `StackStopped`) to `Ok(())` (tokio-rs/tokio#4665), so this one does.
#[tokio::test]
async fn shutdown_on_a_stopped_stack_is_ok_as_in_tokio() {
    let (_a, _b, mut client, _server) = stopped_client().await;
    no_hang("shutdown", client.shutdown()).await.unwrap();
    let (_r, mut w) = client.into_split();
    no_hang("owned half shutdown", w.shutdown()).await.unwrap();
    // Writes still report the stop.
    assert_stopped("write", no_hang("write", w.write(b"x")).await);
}

#[tokio::test]
async fn setters_on_a_stopped_stack() {
    let (_a, _b, client, _server) = stopped_client().await;
    assert_stopped("set_nodelay", client.set_nodelay(true));
    assert_stopped("set_keepalive", client.set_keepalive(true));
    assert_stopped("set_ttl", client.set_ttl(32));
    assert_stopped("set_quickack", client.set_quickack(true));
    assert_stopped("set_zero_linger", client.set_zero_linger());
    assert_stopped(
        "set_user_timeout",
        client.set_user_timeout(Some(Duration::from_secs(1))),
    );
    assert_stopped("tcp_info", no_hang("tcp_info", client.tcp_info()).await);
}

#[tokio::test]
async fn stack_queries_on_a_stopped_stack() {
    let (a, _b) = stacks();
    no_hang("shutdown", a.shutdown()).await;
    assert_stopped("stats", no_hang("stats", a.stats()).await);
    assert_stopped("connections", no_hang("connections", a.connections()).await);
    assert_stopped("listeners", no_hang("listeners", a.listeners()).await);
    // Stopping again returns.
    no_hang("abort again", a.abort()).await;
}
