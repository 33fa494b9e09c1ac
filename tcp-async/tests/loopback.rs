//! Connections from a stack to itself: the stack's own addresses and
//! 127.0.0.0/8 are looped back inside the stack, never sent to the device.

mod common;

use common::*;
use std::net::Ipv4Addr;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echoes one message from `client` through `server` and back.
async fn echo_once(mut client: TcpStream, mut server: TcpStream) {
    let data = pattern(300_000, 3);
    let (echoed, ()) = tokio::join!(
        async {
            client.write_all(&data).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        },
        async {
            let (mut r, mut w) = server.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        }
    );
    assert!(echoed == data);
}

/// RFC 1122 3.2.1.3 and Linux: datagrams for one of the host's own
/// addresses are delivered inside the host (loopback), never sent on a
/// link: a stack connecting to its own address reaches its own listener.
#[tokio::test(start_paused = true)]
async fn connect_to_own_address_loops_back() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 7000)).await.unwrap();
    let (client, accepted) = within("connect to self", async {
        tokio::join!(
            TcpStream::connect_with(&a, addr(A, 7000)),
            listener.accept()
        )
    })
    .await;
    let client = client.unwrap();
    let (server, peer) = accepted.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(client.peer_addr().unwrap(), addr(A, 7000));
    within("echo over loopback", echo_once(client, server)).await;
    let stats = a.stats().await.unwrap();
    assert!(stats.loopback > 0, "{stats:?}");
    // Nothing of it reached the other end of the device.
    let b_stats = b.stats().await.unwrap();
    assert_eq!(b_stats.packets_in, 0, "{b_stats:?}");
}

/// RFC 1122 3.2.1.3 (g): 127.0.0.0/8 is internal host loopback and MUST
/// NOT appear outside a host. As on Linux, the stack answers for it
/// without it being in `Config::addrs`, and only by loopback.
#[tokio::test(start_paused = true)]
async fn connect_to_127_0_0_1_loops_back() {
    let (a, b) = stacks();
    let localhost = Ipv4Addr::LOCALHOST;
    let listener = TcpListener::bind_with(&a, addr(localhost, 7001))
        .await
        .unwrap();
    let (client, accepted) = within("connect to localhost", async {
        tokio::join!(
            TcpStream::connect_with(&a, addr(localhost, 7001)),
            listener.accept()
        )
    })
    .await;
    let client = client.unwrap();
    let (server, _) = accepted.unwrap();
    assert_eq!(client.local_addr().unwrap().ip(), localhost);
    within("echo over loopback", echo_once(client, server)).await;
    // A wildcard listener answers on 127.0.0.1 too.
    let any = TcpListener::bind_with(&a, addr(Ipv4Addr::UNSPECIFIED, 7002))
        .await
        .unwrap();
    let (client, accepted) = within("connect to localhost", async {
        tokio::join!(
            TcpStream::connect_with(&a, addr(Ipv4Addr::new(127, 1, 2, 3), 7002)),
            any.accept()
        )
    })
    .await;
    client.unwrap();
    accepted.unwrap();
    assert_eq!(b.stats().await.unwrap().packets_in, 0);
}

/// RFC 1122 3.2.1.3, with a device that takes super-packets: they loop
/// back whole, their partial checksums never checked (as on Linux `lo`).
#[tokio::test(start_paused = true)]
async fn loopback_carries_super_packets() {
    init_tracing();
    let (dev, _other) = tcp_async::device::MemoryDevice::pair_with_offloads(1500);
    let a = tcp_async::Stack::builder(dev)
        .config(config(A, 1))
        .build()
        .unwrap();
    let listener = TcpListener::bind_with(&a, addr(A, 7003)).await.unwrap();
    let (client, accepted) = within("connect to self", async {
        tokio::join!(
            TcpStream::connect_with(&a, addr(A, 7003)),
            listener.accept()
        )
    })
    .await;
    within(
        "echo over loopback",
        echo_once(client.unwrap(), accepted.unwrap().0),
    )
    .await;
    let stats = a.stats().await.unwrap();
    assert_eq!(stats.drop_checksum, 0, "{stats:?}");
    assert!(
        stats.loopback < stats.packets_out,
        "no super-packets: {stats:?}"
    );
}
