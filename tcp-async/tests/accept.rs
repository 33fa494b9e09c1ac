//! `TcpListener::accept`, `incoming`, backlog and listener addresses.

mod common;

use common::*;
use futures::StreamExt;
use std::time::Duration;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn accept_reports_peer_address() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 80)).await.unwrap();
    assert_eq!(listener.local_addr().unwrap(), addr(A, 80));
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(TcpStream::connect_with(&b, addr(A, 80)), listener.accept())
    })
    .await;
    let client = client.unwrap();
    let (server, peer) = accepted.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    assert_eq!(server.local_addr().unwrap(), addr(A, 80));
    assert_eq!(client.peer_addr().unwrap(), addr(A, 80));
}

#[tokio::test]
async fn bind_port_zero_picks_a_port() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 0)).await.unwrap();
    let local = listener.local_addr().unwrap();
    assert_ne!(local.port(), 0);
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(TcpStream::connect_with(&b, local), listener.accept())
    })
    .await;
    client.unwrap();
    accepted.unwrap();
}

/// Twenty connects at once to a listener with a backlog of 4 are all
/// accepted in the end. Those beyond the SYN queue get SYN cookies (RFC
/// 4987 3.6); a cookie's ACK that finds the accept queue full is dropped,
/// as by Linux (`tcp_abort_on_overflow` = 0), and the client, which
/// believes itself connected, gets through with its first data segment
/// (which carries the same ACK) once there is room. So each client sends
/// a byte, as clients do.
#[tokio::test]
async fn accepts_more_connections_than_the_backlog() {
    let (a, b) = stacks();
    let listener = a_listener_with_backlog(&a, 4).await;
    let target = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect_with(&b, target).await?;
                stream.write_all(b"!").await?;
                Ok::<_, std::io::Error>(stream)
            })
        })
        .collect();
    within("20 accepts", async {
        let mut accepted = Vec::new();
        while accepted.len() < 20 {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut byte = [0];
            stream.read_exact(&mut byte).await.unwrap();
            accepted.push(stream);
        }
        for c in clients {
            c.await.unwrap().unwrap();
        }
    })
    .await;
}

async fn a_listener_with_backlog(a: &tcp_async::Stack, backlog: u32) -> TcpListener {
    let socket = tcp_async::TcpSocket::new_v4_with(a);
    socket.bind(addr(A, 0)).unwrap();
    socket.listen(backlog).unwrap()
}

#[tokio::test]
async fn incoming_yields_connections() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 81)).await.unwrap();
    let mut incoming = listener.incoming();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { TcpStream::connect_with(&b, addr(A, 81)).await })
        })
        .collect();
    within("incoming", async {
        for _ in 0..3 {
            let stream = incoming.next().await.unwrap().unwrap();
            assert_eq!(stream.local_addr().unwrap(), addr(A, 81));
        }
        for c in clients {
            c.await.unwrap().unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn accept_is_cancel_safe() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 82)).await.unwrap();
    // A cancelled accept with nothing pending loses nothing.
    let r = tokio::time::timeout(Duration::from_millis(20), listener.accept()).await;
    assert!(r.is_err());
    let client = within("connect", TcpStream::connect_with(&b, addr(A, 82)))
        .await
        .unwrap();
    let (server, peer) = within("accept", listener.accept()).await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    drop(server);
}

#[tokio::test]
async fn bind_twice_is_addr_in_use() {
    let (a, _b) = stacks();
    let _first = TcpListener::bind_with(&a, addr(A, 83)).await.unwrap();
    let err = TcpListener::bind_with(&a, addr(A, 83)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn listener_drop_frees_the_port() {
    let (a, b) = stacks();
    let first = TcpListener::bind_with(&a, addr(A, 84)).await.unwrap();
    drop(first);
    let listener = within("rebind", async {
        loop {
            match TcpListener::bind_with(&a, addr(A, 84)).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    tokio::task::yield_now().await
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    let (c, s) = within("connect+accept", async {
        tokio::join!(TcpStream::connect_with(&b, addr(A, 84)), listener.accept())
    })
    .await;
    c.unwrap();
    s.unwrap();
}

/// Connects to `target` one after another until a connect is not answered
/// (its SYN dropped, and retransmitted in vain for 10 s of paused time);
/// returns the connections that completed.
async fn connect_until_dropped(
    b: &tcp_async::Stack,
    target: std::net::SocketAddr,
) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect_with(b, target))
            .await
        {
            Ok(stream) => streams.push(stream.unwrap()),
            Err(_) => break,
        }
    }
    streams
}

/// Linux queues `backlog + 1` connections before any accept
/// (`sk_acceptq_is_full()` tests `>`, not `>=`): with `listen(4)`, five
/// connects complete and the sixth SYN is dropped. The front end's queue
/// and the core's count together.
#[tokio::test(start_paused = true)]
async fn listen_backlog_queues_backlog_plus_one() {
    let (a, b) = stacks();
    let listener = a_listener_with_backlog(&a, 4).await;
    let target = listener.local_addr().unwrap();
    let queued = connect_until_dropped(&b, target).await;
    assert_eq!(queued.len(), 5);
    // Each accept makes room for one more.
    within("accept", listener.accept()).await.unwrap();
    let more = connect_until_dropped(&b, target).await;
    assert_eq!(more.len(), 1);
    for _ in 0..5 {
        within("accept", listener.accept()).await.unwrap();
    }
}

/// Linux takes `listen(0)` (no error), and by the same `backlog + 1` rule
/// (`sk_acceptq_is_full()` tests `>`, not `>=`) queues one connection.
#[tokio::test(start_paused = true)]
async fn listen_backlog_zero_queues_one() {
    let (a, b) = stacks();
    let listener = a_listener_with_backlog(&a, 0).await;
    let target = listener.local_addr().unwrap();
    let queued = connect_until_dropped(&b, target).await;
    assert_eq!(queued.len(), 1);
    within("accept", listener.accept()).await.unwrap();
    let more = connect_until_dropped(&b, target).await;
    assert_eq!(more.len(), 1);
    within("accept", listener.accept()).await.unwrap();
}
