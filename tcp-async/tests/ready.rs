//! `TcpStream::ready` and the readiness it reports.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::Interest;

/// tokio reports `Ready::ERROR` to `ready(Interest::ERROR)` once the socket
/// has a pending error (Linux: `EPOLLERR` while `sk_err` is set, as
/// `tcp_reset()` sets it), and only to that interest.
#[tokio::test]
async fn error_interest_is_ready_after_a_reset() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 8100).await;
    let ready = client
        .ready(Interest::ERROR | Interest::WRITABLE)
        .await
        .unwrap();
    assert!(ready.is_writable());
    assert!(!ready.is_error(), "{ready:?}");
    server.set_linger(Some(Duration::ZERO)).unwrap();
    drop(server);
    let ready = within("error readiness", client.ready(Interest::ERROR))
        .await
        .unwrap();
    assert!(ready.is_error(), "{ready:?}");
    assert!(!ready.is_readable() && !ready.is_writable(), "{ready:?}");
    // The other interests do not report it.
    let ready = client.ready(Interest::READABLE).await.unwrap();
    assert!(!ready.is_error(), "{ready:?}");
}
