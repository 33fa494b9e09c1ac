//! Several tasks waiting on one socket at once are all woken, as tokio
//! allows: `accept`, `ready`, `readable` and `writable`.

mod common;

use common::{addr, connected, stacks, within, A};
use std::sync::Arc;
use std::time::Duration;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

/// Lets two spawned tasks reach their wait.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn two_tasks_accepting_both_get_a_connection() {
    let (a, b) = stacks();
    let listener = Arc::new(TcpListener::bind_with(&a, addr(A, 800)).await.unwrap());
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let l = listener.clone();
            tokio::spawn(async move { l.accept().await.map(|(s, _)| s) })
        })
        .collect();
    settle().await;
    let _c1 = TcpStream::connect_with(&b, addr(A, 800)).await.unwrap();
    let _c2 = TcpStream::connect_with(&b, addr(A, 800)).await.unwrap();
    for t in waiting {
        within("both accepts", t).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn two_tasks_waiting_to_read_are_both_woken() {
    let (a, b) = stacks();
    let (mut client, server) = connected(&a, &b, 801).await;
    let server = Arc::new(server);
    let readable = {
        let s = server.clone();
        tokio::spawn(async move { s.readable().await })
    };
    let ready = {
        let s = server.clone();
        tokio::spawn(async move { s.ready(Interest::READABLE).await })
    };
    settle().await;
    client.write_all(b"wake").await.unwrap();
    within("readable", readable).await.unwrap().unwrap();
    let r = within("ready", ready).await.unwrap().unwrap();
    assert!(r.is_readable());
}

#[tokio::test]
async fn two_tasks_waiting_to_write_are_both_woken() {
    let (a, b) = stacks();
    let (client, mut server) = connected(&a, &b, 802).await;
    let client = Arc::new(client);
    // Fill the send buffer (and the peer's receive window).
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    loop {
        match client.try_write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                settle().await;
                if client.try_write(&chunk).is_err() {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                if i == 0 {
                    c.writable().await
                } else {
                    c.ready(Interest::WRITABLE).await.map(drop)
                }
            })
        })
        .collect();
    settle().await;
    // The peer reads: room opens, both writers are woken.
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < sent.min(128 * 1024) {
        got += within("drain", server.read(&mut buf)).await.unwrap();
    }
    for t in waiters {
        within("both writable", t).await.unwrap().unwrap();
    }
}
