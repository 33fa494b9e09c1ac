//! Dropping sockets and stacks: kernel-like close semantics.

mod common;

use common::*;
use std::future::poll_fn;
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::device::{Device, MemoryDevice};
use tcp_async::{Stack, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn drop_with_unread_data_resets_the_peer() {
    let (a, b) = stacks();
    let (mut client, server) = connected(&a, &b, 6000).await;
    within("reset", async {
        client.write_all(b"never read").await.unwrap();
        // Wait until the bytes sit unread in the server's buffer.
        let mut buf = [0; 10];
        while server.peek(&mut buf).await.unwrap() < 10 {}
        drop(server);
        let err = loop {
            match client.read(&mut buf).await {
                Ok(0) => panic!("expected a reset, got end of stream"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    })
    .await;
}

#[tokio::test]
async fn drop_after_reading_closes_gracefully() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 6001).await;
    within("graceful", async {
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        drop(server);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn data_written_before_drop_is_still_delivered() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 6002).await;
    let data = pattern(200_000, 5);
    within("deliver after drop", async {
        // Fits in the default 256 KiB send buffer: write_all returns at once.
        client.write_all(&data).await.unwrap();
        drop(client);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
    })
    .await;
}

#[tokio::test]
async fn dropping_the_listener_resets_unaccepted_connections() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 6003)).await.unwrap();
    let mut client = within("connect", TcpStream::connect_with(&b, addr(A, 6003)))
        .await
        .unwrap();
    // Give the driver a moment to queue it, then close without accepting.
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(listener);
    let mut buf = [0; 1];
    let r = within("reset", client.read(&mut buf)).await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn explicit_shutdown_aborts_sockets() {
    let (a, b) = stacks();
    let (mut client, _server) = connected(&a, &b, 6004).await;
    within("shutdown", b.shutdown()).await;
    let mut buf = [0; 1];
    assert_eq!(
        client.read(&mut buf).await.unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    assert_eq!(
        client.write(b"x").await.unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    // New sockets fail cleanly.
    let err = TcpStream::connect_with(&b, addr(A, 6004))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    // Idempotent.
    within("second shutdown", b.shutdown()).await;
}

#[tokio::test]
async fn dropping_every_handle_stops_the_driver() {
    init_tracing();
    let (dev, mut other_end) = MemoryDevice::pair(1500);
    let stack = Stack::builder(dev).config(config(A, 1)).build().unwrap();
    let listener = TcpListener::bind_with(&stack, addr(A, 1)).await.unwrap();
    drop(stack);
    // The listener still holds the stack: the driver keeps running.
    tokio::time::sleep(Duration::from_millis(20)).await;
    poll_fn(|cx| other_end.poll_send(cx, b"x")).await.unwrap();
    assert_eq!(other_end.dropped(), 0);
    drop(listener);
    // Once the driver stops, its device end is gone and sends are dropped.
    within("driver stop", async {
        while other_end.dropped() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            poll_fn(|cx| other_end.poll_send(cx, b"x")).await.unwrap();
        }
    })
    .await;
}

/// Stack `a` at 10.0.0.1 and stack `b` at 10.0.0.2, `b` on an
/// [`Observed`] device whose receiver resolves once `b`'s driver ended
/// (dropping the device drops the sender its closure owns).
fn stacks_watching_b(
    b_config: tcp_stack::Config,
) -> (Stack, Stack, tokio::sync::oneshot::Receiver<()>) {
    init_tracing();
    let (da, db) = MemoryDevice::pair(1500);
    let (gone_tx, gone) = tokio::sync::oneshot::channel();
    let db = Observed {
        inner: db,
        on_recv: move |_: &[u8]| {
            let _ = &gone_tx;
        },
    };
    let a = Stack::builder(da).config(config(A, 1)).build().unwrap();
    let b = Stack::builder(db).config(b_config).build().unwrap();
    (a, b, gone)
}

/// Linux keeps delivering after `close()` without linger: dropping the
/// last handle of a stack lets the graceful closes in progress finish (the
/// driver runs on, bounded by the core's timeouts), so the peer gets every
/// byte written and then the end of stream, never a silent truncation.
#[tokio::test]
async fn dropping_the_last_handle_still_delivers_written_data() {
    let mut b_config = config(B, 2);
    // The whole write fits in the send buffer: `write_all` returns at once,
    // with nearly all of it unsent.
    b_config.send_buffer = 2 << 20;
    let (a, b, gone) = stacks_watching_b(b_config);
    let (mut client, mut server) = connected(&a, &b, 6005).await;
    let data = pattern(1 << 20, 9);
    within("write", client.write_all(&data)).await.unwrap();
    drop(client);
    drop(b);
    let mut got = Vec::new();
    within(
        "deliver after the last handle",
        server.read_to_end(&mut got),
    )
    .await
    .unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    // Once the close completes (the server closes too: TIME-WAIT), the
    // driver stops.
    drop(server);
    within("driver exit", gone).await.unwrap_err();
}

/// Linux keeps delivering after `close()` without linger, but an orphan
/// waits for the peer's FIN only `tcp_fin_timeout` (`fin_wait2_timeout`):
/// the driver of a stack whose handles are all gone runs while its
/// connection closes, and ends when the close times out.
#[tokio::test(start_paused = true)]
async fn an_orphaned_driver_ends_with_the_fin_wait_2_timeout() {
    let b_config = config(B, 2);
    let fin_wait2 = b_config.fin_wait2_timeout;
    let (a, b, mut gone) = stacks_watching_b(b_config);
    let (mut client, mut server) = connected(&a, &b, 6006).await;
    within("write", client.write_all(b"last words"))
        .await
        .unwrap();
    drop(client);
    drop(b);
    let mut got = Vec::new();
    within("deliver", server.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"last words");
    // The server never closes: the client waits in FIN-WAIT-2.
    tokio::time::sleep(fin_wait2 / 2).await;
    assert_eq!(
        gone.try_recv(),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty),
        "the driver stopped before the close was done"
    );
    tokio::time::timeout(fin_wait2, gone)
        .await
        .expect("the driver runs past the FIN-WAIT-2 timeout")
        .unwrap_err();
    drop(server);
}
