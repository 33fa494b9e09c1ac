//! Socket options, `tcp_info` and stack statistics.

mod common;

use common::*;
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::{State, TcpListener, TcpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn stream_options_round_trip() {
    let (a, b) = stacks();
    let (client, _server) = connected(&a, &b, 9000).await;
    assert!(!client.nodelay().unwrap());
    client.set_nodelay(true).unwrap();
    assert!(client.nodelay().unwrap());
    assert_eq!(client.ttl().unwrap(), 64);
    client.set_ttl(17).unwrap();
    assert_eq!(client.ttl().unwrap(), 17);
    assert_eq!(
        client.set_ttl(300).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(client.linger().unwrap(), None);
    client.set_linger(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(3)));
    client.set_linger(None).unwrap();
    assert_eq!(client.linger().unwrap(), None);
}

#[tokio::test]
async fn tcp_info_reports_the_connection() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 9001).await;
    within("info", async {
        let data = pattern(100_000, 2);
        client.write_all(&data).await.unwrap();
        let mut got = vec![0; data.len()];
        server.read_exact(&mut got).await.unwrap();
        let info = client.tcp_info().await.unwrap();
        assert_eq!(info.state, State::Established);
        assert_eq!(info.local, client.local_addr().unwrap());
        assert_eq!(info.remote, client.peer_addr().unwrap());
        assert!(info.bytes_sent >= data.len() as u64);
        assert!(info.cwnd > 0 && info.mss > 0);
        let info = server.tcp_info().await.unwrap();
        assert_eq!(info.bytes_received, data.len() as u64);
        let stats = a.stats().await.unwrap();
        assert!(stats.packets_in > 0 && stats.packets_out > 0);
        assert_eq!(stats.connections_accepted, 1);
    })
    .await;
}

#[tokio::test]
async fn socket_buffer_sizes_shape_the_connection() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 9002)).await.unwrap();
    let socket = TcpSocket::new_v4_with(&b);
    assert_eq!(socket.recv_buffer_size().unwrap(), 256 * 1024);
    socket.set_recv_buffer_size(8192).unwrap();
    socket.set_send_buffer_size(16384).unwrap();
    assert_eq!(socket.recv_buffer_size().unwrap(), 8192);
    assert_eq!(socket.send_buffer_size().unwrap(), 16384);
    assert_eq!(
        socket.set_send_buffer_size(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    socket.set_nodelay(true).unwrap();
    socket.set_keepalive(true).unwrap();
    socket.set_reuseaddr(true).unwrap();
    assert!(socket.reuseaddr().unwrap() && socket.keepalive().unwrap());
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(socket.connect(addr(A, 9002)), listener.accept())
    })
    .await;
    let client = client.unwrap();
    let (mut server, _) = accepted.unwrap();
    assert!(client.nodelay().unwrap());
    within("small window", async {
        let info = client.tcp_info().await.unwrap();
        assert!(info.recv_window <= 8192, "advertised {}", info.recv_window);
        // A transfer larger than both buffers still completes.
        let data = pattern(100_000, 4);
        let sent = data.clone();
        let (mut r, mut w) = client.into_split();
        let writer = tokio::spawn(async move {
            let (mut sr, mut sw) = server.split();
            let echo = tokio::io::copy(&mut sr, &mut sw);
            echo.await.unwrap();
        });
        let push = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
            w
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        push.await.unwrap();
        writer.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn listener_options_are_inherited() {
    let (a, b) = stacks();
    let socket = TcpSocket::new_v4_with(&a);
    socket.bind(addr(A, 9003)).unwrap();
    socket.set_nodelay(true).unwrap();
    let listener = socket.listen(16).unwrap();
    listener.set_ttl(33).unwrap();
    assert_eq!(listener.ttl().unwrap(), 33);
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(
            tcp_async::TcpStream::connect_with(&b, addr(A, 9003)),
            listener.accept()
        )
    })
    .await;
    client.unwrap();
    let (server, _) = accepted.unwrap();
    assert_eq!(server.ttl().unwrap(), 33);
    assert!(server.nodelay().unwrap());
}

#[tokio::test]
async fn listener_buffer_sizes_apply_to_accepted_connections() {
    let (a, b) = stacks();
    let socket = TcpSocket::new_v4_with(&a);
    socket.bind(addr(A, 9004)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let listener = socket.listen(16).unwrap();
    // A plain listener on the same stack keeps the default.
    let plain = TcpListener::bind_with(&a, addr(A, 9005)).await.unwrap();
    let (c1, s1, c2, s2) = within("connect+accept", async {
        let (c1, s1) = tokio::join!(
            tcp_async::TcpStream::connect_with(&b, addr(A, 9004)),
            listener.accept()
        );
        let (c2, s2) = tokio::join!(
            tcp_async::TcpStream::connect_with(&b, addr(A, 9005)),
            plain.accept()
        );
        (c1.unwrap(), s1.unwrap().0, c2.unwrap(), s2.unwrap().0)
    })
    .await;
    within("info", async {
        let small = s1.tcp_info().await.unwrap();
        assert!(
            small.recv_window <= 4096,
            "advertised {}",
            small.recv_window
        );
        let default = s2.tcp_info().await.unwrap();
        assert!(
            default.recv_window > 4096,
            "advertised {}",
            default.recv_window
        );
    })
    .await;
    drop((c1, c2));
}
