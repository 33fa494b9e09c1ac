//! `TcpStream::connect`, the default stack, and `TcpSocket::connect`.

mod common;

use common::*;
use std::net::SocketAddr;
use tcp_async::{TcpListener, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The only test in this binary using the process-wide default stack.
#[tokio::test]
async fn connect_and_bind_use_the_default_stack() {
    let (a, b) = stacks();
    assert_eq!(
        TcpStream::connect(addr(A, 1)).await.unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    a.set_default();
    let listener = TcpListener::bind("10.0.0.1:5000").await.unwrap();
    tcp_async::set_default(b);
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(TcpStream::connect("10.0.0.1:5000"), listener.accept())
    })
    .await;
    let client = client.unwrap();
    assert_eq!(client.local_addr().unwrap().ip(), B);
    accepted.unwrap();
    tcp_async::clear_default();
}

#[tokio::test]
async fn connect_with_accepts_tokio_style_addresses() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, (A, 5001)).await.unwrap();
    let accept = tokio::spawn(async move {
        for _ in 0..3 {
            listener.accept().await.unwrap();
        }
    });
    within("connects", async {
        TcpStream::connect_with(&b, "10.0.0.1:5001").await.unwrap();
        TcpStream::connect_with(&b, ("10.0.0.1", 5001))
            .await
            .unwrap();
        let list: &[SocketAddr] = &["[::1]:5001".parse().unwrap(), addr(A, 5001)];
        TcpStream::connect_with(&b, list).await.unwrap();
        accept.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn socket_connect_from_a_bound_port() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 5002)).await.unwrap();
    let socket = TcpSocket::new_v4_with(&b);
    socket.bind(addr(B, 40000)).unwrap();
    assert_eq!(socket.local_addr().unwrap(), addr(B, 40000));
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(socket.connect(addr(A, 5002)), listener.accept())
    })
    .await;
    let mut client = client.unwrap();
    let (mut server, peer) = accepted.unwrap();
    assert_eq!(client.local_addr().unwrap(), addr(B, 40000));
    assert_eq!(peer, addr(B, 40000));
    within("data", async {
        client.write_all(b"x").await.unwrap();
        let mut one = [0; 1];
        server.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
    })
    .await;
}

#[tokio::test]
async fn cancelled_connect_leaves_the_stack_usable() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 5003)).await.unwrap();
    // Dropped before it could complete.
    let fut = TcpStream::connect_with(&b, addr(A, 5003));
    drop(fut);
    let connecting = tokio::spawn({
        let b = b.clone();
        async move { TcpStream::connect_with(&b, addr(A, 5003)).await }
    });
    connecting.abort();
    let _ = connecting.await;
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(TcpStream::connect_with(&b, addr(A, 5003)), async {
            // The aborted attempt may have completed and been closed: skip
            // connections that are already finished.
            loop {
                let (s, p) = listener.accept().await.unwrap();
                let mut buf = [0; 1];
                match tokio::time::timeout(std::time::Duration::from_millis(50), s.peek(&mut buf))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => continue,
                    _ => return (s, p),
                }
            }
        })
    })
    .await;
    let client = client.unwrap();
    assert_eq!(accepted.1, client.local_addr().unwrap());
}
