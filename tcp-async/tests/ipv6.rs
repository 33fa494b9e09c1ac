//! IPv6 and dual stack through the `tokio::net`-like API: `[::]`
//! listeners, `TcpSocket::new_v6`, `set_only_v6`, IPv4-mapped addresses as
//! Linux reports them with `net.ipv6.bindv6only=0`, offloaded
//! super-packets over IPv6.

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use tcp_async::device::MemoryDevice;
use tcp_async::{Stack, TcpListener, TcpSocket, TcpStream};
use tcp_stack::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn dual(v4: std::net::Ipv4Addr, v6: Ipv6Addr, seed: u64) -> Config {
    Config {
        seed,
        ..Config::with_addrs([IpAddr::V4(v4), IpAddr::V6(v6)])
    }
}

/// Dual-stack stacks: `a` at 10.0.0.1 and fd00::1, `b` at 10.0.0.2 and fd00::2.
fn dual_stacks(offloads: bool) -> (Stack, Stack) {
    init_tracing();
    let (da, db) = if offloads {
        MemoryDevice::pair_with_offloads(1500)
    } else {
        MemoryDevice::pair(1500)
    };
    let a = Stack::builder(da).config(dual(A, A6, 1)).build().unwrap();
    let b = Stack::builder(db).config(dual(B, B6, 2)).build().unwrap();
    (a, b)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Echoes one connection's bytes back until EOF, then closes.
async fn echo_one(listener: &TcpListener) -> SocketAddr {
    let (mut s, peer) = listener.accept().await.unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await.unwrap();
    }
    s.shutdown().await.unwrap();
    peer
}

/// Writes `data`, half-closes, reads the echo to EOF.
async fn round_trip(mut s: TcpStream, data: &[u8]) -> Vec<u8> {
    let (mut r, mut w) = s.split();
    let (_, got) = tokio::join!(
        async {
            w.write_all(data).await.unwrap();
            w.shutdown().await.unwrap();
        },
        async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        }
    );
    got
}

#[tokio::test]
async fn ipv6_echo_with_half_close() {
    for offloads in [false, true] {
        let (a, b) = dual_stacks(offloads);
        let listener = TcpListener::bind_with(&b, "[fd00::2]:7").await.unwrap();
        assert_eq!(listener.local_addr().unwrap(), sa("[fd00::2]:7"));
        let server = tokio::spawn(async move { echo_one(&listener).await });
        let client = within("connect", TcpStream::connect_with(&a, "[fd00::2]:7"))
            .await
            .unwrap();
        let local = client.local_addr().unwrap();
        assert_eq!(local.ip(), IpAddr::V6(A6));
        assert_eq!(client.peer_addr().unwrap(), sa("[fd00::2]:7"));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let got = within("echo", round_trip(client, &data)).await;
        assert!(got == data, "offloads {offloads}: echo differs");
        let peer = within("server", server).await.unwrap();
        assert_eq!(peer, local, "the server sees the client's address");
    }
}

/// `[::]:p` accepts both families; IPv4 peers come IPv4-mapped.
#[tokio::test]
async fn dual_stack_listener_reports_ipv4_mapped_peers() {
    let (a, b) = dual_stacks(false);
    let listener = TcpListener::bind_with(&b, "[::]:80").await.unwrap();
    assert_eq!(listener.local_addr().unwrap(), sa("[::]:80"));
    let c4 = within("v4", TcpStream::connect_with(&a, "10.0.0.2:80"))
        .await
        .unwrap();
    let (s4, p4) = within("accept v4", listener.accept()).await.unwrap();
    let c6 = within("v6", TcpStream::connect_with(&a, "[fd00::2]:80"))
        .await
        .unwrap();
    let (s6, p6) = within("accept v6", listener.accept()).await.unwrap();
    let l4 = c4.local_addr().unwrap();
    assert_eq!(
        p4,
        SocketAddr::new(
            IpAddr::V6(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            l4.port()
        )
    );
    assert_eq!(s4.peer_addr().unwrap(), p4);
    assert_eq!(s4.local_addr().unwrap(), sa("[::ffff:10.0.0.2]:80"));
    assert_eq!(p6, c6.local_addr().unwrap());
    assert_eq!(s6.local_addr().unwrap(), sa("[fd00::2]:80"));
}

/// `set_only_v6(true)` on `[::]:p`: IPv6 only; an IPv4 connect is refused
/// and `0.0.0.0:p` may be bound beside it.
#[tokio::test]
async fn only_v6_listener_refuses_ipv4() {
    let (a, b) = dual_stacks(false);
    let socket = TcpSocket::new_v6_with(&b);
    socket.set_only_v6(true).unwrap();
    assert!(socket.only_v6().unwrap());
    socket.bind(sa("[::]:81")).unwrap();
    let listener = socket.listen(16).unwrap();
    let err = within("v4", TcpStream::connect_with(&a, "10.0.0.2:81"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let _v4 = TcpListener::bind_with(&b, "0.0.0.0:81").await.unwrap();
    let _c6 = within("v6", TcpStream::connect_with(&a, "[fd00::2]:81"))
        .await
        .unwrap();
    within("accept", listener.accept()).await.unwrap();
    // Without only_v6, [::]:82 and 0.0.0.0:82 collide (Linux EADDRINUSE).
    let _l = TcpListener::bind_with(&b, "[::]:82").await.unwrap();
    let err = TcpListener::bind_with(&b, "0.0.0.0:82").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    // only_v6 is an IPv6 socket's option.
    assert_eq!(
        TcpSocket::new_v4_with(&b)
            .set_only_v6(true)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

/// An IPv6 socket reaches IPv4 peers through IPv4-mapped addresses, unless
/// only_v6 (Linux ENETUNREACH).
#[tokio::test]
async fn v6_socket_connects_to_ipv4_mapped_address() {
    let (a, b) = dual_stacks(false);
    let listener = TcpListener::bind_with(&b, "0.0.0.0:83").await.unwrap();
    let socket = TcpSocket::new_v6_with(&a);
    let stream = within("connect", socket.connect(sa("[::ffff:10.0.0.2]:83")))
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap(), sa("[::ffff:10.0.0.2]:83"));
    let (_s, peer) = within("accept", listener.accept()).await.unwrap();
    assert!(peer.is_ipv4(), "the IPv4 listener sees plain IPv4: {peer}");
    let socket = TcpSocket::new_v6_with(&a);
    socket.set_only_v6(true).unwrap();
    let err = socket
        .connect(sa("[::ffff:10.0.0.2]:83"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable);
    // An IPv4 socket cannot take an IPv6 destination.
    let err = TcpSocket::new_v4_with(&a)
        .connect(sa("[fd00::2]:83"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// An unbound IPv6 socket listens on the stack's IPv6 address.
#[tokio::test]
async fn unbound_v6_socket_listens_on_the_ipv6_address() {
    let (_a, b) = dual_stacks(false);
    let listener = TcpSocket::new_v6_with(&b).listen(4).unwrap();
    let local = listener.local_addr().unwrap();
    assert_eq!(local.ip(), IpAddr::V6(B6));
    assert_ne!(local.port(), 0);
}

/// Over `::1` inside one stack.
#[tokio::test]
async fn ipv6_loopback() {
    let (a, _b) = dual_stacks(false);
    let listener = TcpListener::bind_with(&a, "[::1]:9").await.unwrap();
    let server = tokio::spawn(async move { echo_one(&listener).await });
    let client = within("connect", TcpStream::connect_with(&a, "[::1]:9"))
        .await
        .unwrap();
    let got = within("echo", round_trip(client, b"over ::1")).await;
    assert_eq!(got, b"over ::1");
    assert!(within("server", server).await.unwrap().ip().is_loopback());
}
