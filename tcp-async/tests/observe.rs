//! What a stack shows about itself: `connections()` and `listeners()` as
//! `ss -tni` lists them, `stats()` under `nstat`'s names.

mod common;

use common::*;
use std::io::ErrorKind;
use tcp_async::State;

#[tokio::test]
async fn connections_listeners_and_stats_are_reported() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 80).await;
    // `connected` dropped its listener; keep one open to see it listed.
    let listener = tcp_async::TcpListener::bind_with(&a, addr(A, 81))
        .await
        .unwrap();

    let on_a = a.connections().await.unwrap();
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    let conn = &on_a[0];
    assert_eq!(conn.state, State::Established);
    assert_eq!(conn.local, server.local_addr().unwrap());
    assert_eq!(conn.remote, client.local_addr().unwrap());
    let line = conn.to_string();
    assert!(line.starts_with("ESTAB"), "{line}");
    assert!(line.contains(&conn.remote.to_string()), "{line}");
    assert!(line.contains(" mss:"), "{line}");

    let listeners = a.listeners().await.unwrap();
    assert_eq!(listeners.len(), 1, "{listeners:?}");
    assert_eq!(listeners[0].local, listener.local_addr().unwrap());
    assert!(listeners[0].to_string().starts_with("LISTEN"));

    let stats = b.stats().await.unwrap();
    let opens = stats
        .nstat()
        .into_iter()
        .find(|(name, _)| *name == "TcpActiveOpens")
        .map(|(_, v)| v);
    assert_eq!(opens, Some(1));
    let text = stats.to_string();
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["TcpActiveOpens", "1"]),
        "{text}"
    );

    drop((client, server));
    a.abort().await;
    assert_eq!(
        a.connections().await.unwrap_err().kind(),
        ErrorKind::NotConnected
    );
}
