//! Two stacks on a virtual Ethernet cable (`MemoryDevice::ethernet_pair`):
//! each frames its own datagrams, resolves the other with ARP (RFC 826)
//! or NDP (RFC 4861 7.2) from an empty cache, and moves data both ways,
//! with and without segmentation offload (whose checksum offsets count
//! the link header: `TxHeaders::link_len`). The builder refuses a device
//! and a configuration that disagree about the link layer.

use std::io;
use std::net::{IpAddr, SocketAddr};
use tcp_async::device::MemoryDevice;
use tcp_async::{MacAddr, NeighbourState, Stack, TcpListener, TcpStream};
use tcp_stack::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const B_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);

fn config(mac: MacAddr, v4: &str, v6: &str, seed: u64) -> Config {
    Config {
        seed,
        ..Config::with_ethernet(
            mac,
            [
                (v4.parse::<IpAddr>().unwrap(), 24),
                (v6.parse::<IpAddr>().unwrap(), 64),
            ],
        )
    }
}

fn pair(offloads: bool) -> (Stack, Stack) {
    let (a, b) = MemoryDevice::ethernet_pair(1500, offloads);
    let a = Stack::builder(a)
        .config(config(A_MAC, "10.1.0.1", "fd00:1::1", 1))
        .build()
        .unwrap();
    let b = Stack::builder(b)
        .config(config(B_MAC, "10.1.0.2", "fd00:1::2", 2))
        .build()
        .unwrap();
    (a, b)
}

/// Sends `len` patterned bytes from `a` to a listener on `b` at `to`,
/// which echoes them; checks every byte back, and the neighbour entries.
async fn echo(a: &Stack, b: &Stack, to: SocketAddr, len: usize) {
    let listener = TcpListener::bind_with(b, to).await.unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let s = TcpStream::connect_with(a, to).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(len);
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    server.await.unwrap();
    assert!(
        back == data,
        "echo over Ethernet differs ({} bytes back)",
        back.len()
    );
    // RFC 4861 7.2.5 / RFC 826: each side learnt the other's MAC.
    let peer_ip = to.ip();
    let entry = a
        .neighbours()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.ip == peer_ip)
        .expect("a neighbour entry for the peer");
    assert_eq!(entry.mac, Some(B_MAC));
    assert_ne!(entry.state, NeighbourState::Incomplete);
    assert_ne!(entry.state, NeighbourState::Failed);
}

#[tokio::test]
async fn echo_over_ethernet_both_families_with_offloads() {
    let (a, b) = pair(true);
    echo(&a, &b, "10.1.0.2:7".parse().unwrap(), 1 << 20).await;
    echo(&a, &b, "[fd00:1::2]:7".parse().unwrap(), 1 << 20).await;
}

#[tokio::test]
async fn echo_over_ethernet_both_families_without_offloads() {
    let (a, b) = pair(false);
    echo(&a, &b, "10.1.0.2:8".parse().unwrap(), 256 << 10).await;
    echo(&a, &b, "[fd00:1::2]:8".parse().unwrap(), 256 << 10).await;
}

#[tokio::test]
async fn builder_refuses_a_link_layer_mismatch() {
    let (a, _b) = MemoryDevice::ethernet_pair(1500, false);
    let err = Stack::builder(a)
        .config(Config::with_addrs(["10.1.0.1".parse::<IpAddr>().unwrap()]))
        .build()
        .expect_err("an Ethernet device without Config::ethernet");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let (ip, _ip2) = MemoryDevice::pair(1500);
    let err = Stack::builder(ip)
        .config(config(A_MAC, "10.1.0.1", "fd00:1::1", 1))
        .build()
        .expect_err("Config::ethernet on an IP device");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
