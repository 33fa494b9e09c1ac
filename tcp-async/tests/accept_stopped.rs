//! `accept` after the stack stopped: an error each time, never a spin.

mod common;

use common::{addr, stacks, A};
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::TcpListener;

#[tokio::test(start_paused = true)]
async fn accept_after_shutdown_fails_without_spinning() {
    let (a, _b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 1300)).await.unwrap();
    a.shutdown().await;
    let start = tokio::time::Instant::now();
    let err = listener.accept().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the first error is at once"
    );
    // A server looping on errors is paced: one error per second.
    for i in 1..=3 {
        let err = listener.accept().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
        assert!(
            start.elapsed() >= Duration::from_secs(i),
            "{:?}",
            start.elapsed()
        );
    }
}
