//! The socket options a tokio or socket2 user sets on a stream or socket:
//! `IP_TOS`, `TCP_QUICKACK`, keep-alive timing, `TCP_USER_TIMEOUT`,
//! `TCP_CONGESTION`, `SO_LINGER`.

mod common;

use common::{addr, connected, stacks, within, A};
use std::io::ErrorKind;
use std::time::Duration;
use tcp_async::TcpSocket;
use tcp_stack::CongestionControl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn tos_is_set_on_the_socket_and_kept_for_dscp_only() {
    let (a, b) = stacks();
    let listener = tcp_async::TcpListener::bind_with(&a, addr(A, 1200))
        .await
        .unwrap();
    let socket = TcpSocket::new_v4_with(&b);
    assert_eq!(socket.tos_v4().unwrap(), 0);
    // EF with ECN bits: the ECN bits stay the stack's (Linux masks them).
    socket.set_tos_v4(0xb8 | 0b01).unwrap();
    assert_eq!(socket.tos_v4().unwrap(), 0xb8);
    assert_eq!(
        socket.set_tos_v4(256).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let (client, accepted) = within("connect", async {
        tokio::join!(socket.connect(addr(A, 1200)), listener.accept())
    })
    .await;
    let (mut client, (mut server, _)) = (client.unwrap(), accepted.unwrap());
    client.write_all(b"dscp").await.unwrap();
    let mut buf = [0u8; 4];
    within("read", server.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"dscp");
}

#[tokio::test]
async fn quickack_keepalive_user_timeout_and_congestion_control() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 1201).await;
    assert!(!server.quickack().unwrap());
    server.set_quickack(true).unwrap();
    assert!(server.quickack().unwrap());
    assert!(!client.keepalive().unwrap());
    client.set_keepalive(true).unwrap();
    assert!(client.keepalive().unwrap());
    client
        .set_keepalive_params(Duration::from_secs(30), Duration::from_secs(5), 3)
        .unwrap();
    let err = client
        .set_keepalive_params(Duration::ZERO, Duration::from_secs(5), 3)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    client
        .set_user_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.set_user_timeout(None).unwrap();
    client
        .set_congestion_control(CongestionControl::NewReno)
        .unwrap();
    // The connection still carries data both ways.
    client.write_all(&[1; 10_000]).await.unwrap();
    let mut buf = vec![0u8; 10_000];
    within("read", server.read_exact(&mut buf)).await.unwrap();
    server.write_all(b"ok").await.unwrap();
    let mut ok = [0u8; 2];
    within("read back", client.read_exact(&mut ok))
        .await
        .unwrap();
}

/// `SO_LINGER` with a timeout: the dropped stream's data that the peer
/// never acknowledges (it stopped reading, its window is shut) is given up
/// with RST when the timeout passes.
#[tokio::test]
async fn linger_timeout_resets_what_is_still_unacknowledged() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 1202).await;
    client.set_linger(Some(Duration::from_millis(300))).unwrap();
    assert_eq!(client.linger().unwrap(), Some(Duration::from_millis(300)));
    // Fill the peer's window and our send buffer.
    let chunk = vec![3u8; 64 * 1024];
    loop {
        match client.try_write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if client.try_write(&chunk).is_err() {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The peer reads what arrived, then learns of the reset.
    let mut server = server;
    let err = within("reset", async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match server.read(&mut buf).await {
                Ok(0) => panic!("a graceful end instead of a reset"),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    })
    .await;
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

/// With a timeout long enough, a lingering close is an ordinary one.
#[tokio::test]
async fn linger_timeout_after_everything_is_acknowledged_is_graceful() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 1203).await;
    client.set_linger(Some(Duration::from_secs(5))).unwrap();
    client.write_all(b"bye").await.unwrap();
    drop(client);
    let mut got = Vec::new();
    within("end", server.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn zero_linger_resets_on_drop() {
    let (a, b) = stacks();
    let (mut client, server) = connected(&a, &b, 1204).await;
    server.set_zero_linger().unwrap();
    assert_eq!(server.linger().unwrap(), Some(Duration::ZERO));
    drop(server);
    let mut buf = [0u8; 1];
    let err = within("reset", client.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}
