//! Stopping a stack. `Stack::abort` resets its connections, so their peers
//! learn at once (RFC 9293 3.10.5 ABORT) instead of waiting for a stack
//! that will never answer again. `Stack::shutdown` is graceful: every
//! connection gets a FIN after the data written (RFC 9293 3.10.4 CLOSE),
//! the stop waits (bounded) for them to finish, then resets the rest.

mod common;

use common::*;
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client on `a` connected to a server on `b` (port 80), with a byte
/// exchanged; also returns the listener.
async fn exchange(
    a: &tcp_async::Stack,
    b: &tcp_async::Stack,
) -> (TcpStream, TcpStream, TcpListener) {
    let listener = TcpListener::bind_with(b, addr(B, 80)).await.unwrap();
    let mut client = within("connect", TcpStream::connect_with(a, addr(B, 80)))
        .await
        .unwrap();
    let (mut server, _) = within("accept", listener.accept()).await.unwrap();
    client.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    within("read", server.read_exact(&mut buf)).await.unwrap();
    (client, server, listener)
}

#[tokio::test]
async fn aborting_a_stack_resets_its_connections() {
    let (a, b) = stacks();
    let (mut client, mut server, _listener) = exchange(&a, &b).await;
    // The server's stack stops.
    b.abort().await;
    // The client hears a reset, not silence.
    let mut buf = [0u8; 2];
    let r = within("client read", client.read(&mut buf)).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    // The server's own socket fails as the docs say.
    let e = server.write(b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    assert!(tcp_async::is_stack_stopped(&e), "{e}");
}

/// The data written before the stop, then a FIN, reach the peer; when the
/// peer closes too, the stop ends without waiting for its timeout.
#[tokio::test]
async fn shutdown_sends_a_fin_after_the_data_and_ends_when_peers_close() {
    let (a, b) = stacks();
    let (mut client, server, listener) = exchange(&a, &b).await;
    // Fits in the send buffer, so most is still queued at the stop.
    let payload = pattern(20_000, 7);
    let mut writer = server;
    writer.write_all(&payload).await.unwrap();

    // A timeout far beyond the test's hang guard: only the clean close can
    // end this stop in time.
    let stop = tokio::spawn({
        let b = b.clone();
        async move { b.shutdown_timeout(Duration::from_secs(3600)).await }
    });
    let mut got = Vec::new();
    within("read to end", client.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(got == payload, "all the data, then the end of stream");
    // Meanwhile the server's socket may read but not write.
    let e = writer.write(b"x").await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::NotConnected),
        "{e}"
    );
    // Nothing new is accepted or opened on the stopping stack.
    let e = within("accept", listener.accept()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    // The client closes its side: nothing is left, the stop ends.
    drop(client);
    within("graceful stop", stop).await.unwrap();
    let e = TcpStream::connect_with(&b, addr(A, 80)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    let e = writer.write(b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    assert!(tcp_async::is_stack_stopped(&e), "{e}");
    // The client's stack saw an orderly close: no resets.
    assert_eq!(a.stats().await.unwrap().rst_received, 0);
}

/// A peer that never closes holds the stop only until its timeout; then
/// the connection is reset.
#[tokio::test]
async fn shutdown_resets_what_is_left_at_its_timeout() {
    let (a, b) = stacks();
    let (mut client, _server, _listener) = exchange(&a, &b).await;
    within(
        "stop with a short timeout",
        b.shutdown_timeout(Duration::from_millis(50)),
    )
    .await;
    let mut buf = [0u8; 8];
    // First the FIN (end of stream), then the reset.
    let n = within("read", client.read(&mut buf)).await.unwrap();
    assert_eq!(n, 0);
    within("the reset arrives", async {
        while a.stats().await.unwrap().rst_received == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let e = client.write(b"x").await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{e}"
    );
}

/// `abort` during a graceful stop ends the wait at once.
#[tokio::test]
async fn abort_ends_a_graceful_stop() {
    let (a, b) = stacks();
    let (mut client, _server, _listener) = exchange(&a, &b).await;
    let stop = tokio::spawn({
        let b = b.clone();
        async move { b.shutdown_timeout(Duration::from_secs(3600)).await }
    });
    let mut buf = [0u8; 8];
    assert_eq!(within("fin", client.read(&mut buf)).await.unwrap(), 0);
    within("abort", b.abort()).await;
    within("graceful stop", stop).await.unwrap();
}

/// A write racing a graceful stop either fails (`BrokenPipe`, as after
/// `shutdown(SHUT_WR)`) or is sent before the FIN: every byte a write
/// reported as taken reaches the peer (RFC 9293 3.10.4: CLOSE sends what
/// was queued before the FIN). A writer on another worker thread keeps
/// writing small chunks while the stop starts at a varying moment.
#[test]
fn writes_racing_a_graceful_stop_are_sent_or_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..200u64 {
        rt.block_on(async {
            let (a, b) = stacks();
            let (client, mut server) = connected(&a, &b, 80).await;
            let writer = tokio::spawn(async move {
                let mut client = client;
                let chunk = [0x5au8; 7];
                let mut taken = 0usize;
                loop {
                    match client.write(&chunk).await {
                        Ok(n) => taken += n,
                        Err(e) => {
                            // BrokenPipe while the stop drains; once it
                            // ended, the stopped stack's error.
                            assert!(
                                e.kind() == ErrorKind::BrokenPipe
                                    || tcp_async::is_stack_stopped(&e),
                                "round {round}: {e}"
                            );
                            return taken;
                        }
                    }
                    // Keep going without filling the buffer: the stop
                    // should meet a write in progress, not a full ring.
                    if taken.is_multiple_of(700) {
                        tokio::task::yield_now().await;
                    }
                }
            });
            let reader = tokio::spawn(async move {
                let mut got = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match server
                        .read(&mut buf)
                        .await
                        .unwrap_or_else(|e| panic!("round {round}: read after {got}: {e}"))
                    {
                        0 => return got,
                        n => got += n,
                    }
                }
            });
            // Let the writer run for a varying while, then stop the
            // client's stack (`connected` puts the client on `b`).
            for _ in 0..(round % 13) {
                tokio::task::yield_now().await;
            }
            within("graceful stop", b.shutdown_timeout(LIMIT)).await;
            let taken = within("writer", writer).await.unwrap();
            let got = within("reader", reader).await.unwrap();
            assert_eq!(
                got, taken,
                "round {round}: bytes read vs bytes the writes took"
            );
        });
    }
}
