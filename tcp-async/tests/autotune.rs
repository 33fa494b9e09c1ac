//! Receive autotuning and send buffer auto-sizing apply to this crate's
//! sockets: the receive ring grows on demand (`RecvBuffer::grow`) from
//! `recv_buffer` toward `recv_buffer_max`, the send ring (`SendBuffer::grow`)
//! from `send_buffer` toward `send_buffer_max`, during a bulk transfer,
//! keeping every byte.

mod common;

use common::*;
use tcp_stack::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const START: usize = 16 * 1024;
const MAX: usize = 1 << 20;

#[tokio::test]
async fn test_bulk_receive_grows_the_ring() {
    let server = Config {
        recv_buffer: START,
        recv_buffer_max: MAX,
        ..config(A, 1)
    };
    let (a, b) = stacks_with(server, config(B, 2));
    let (mut client, mut server) = connected(&a, &b, 80).await;
    let before = server.tcp_info().await.unwrap().recv_window;
    assert!(before <= START, "window {before} before any data");
    let data = pattern(8 << 20, 3);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::with_capacity(data.len());
    within("bulk transfer", server.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(got == data, "the bytes arrived intact and in order");
    let after = server.tcp_info().await.unwrap().recv_window;
    println!("receive window {before} -> {after}");
    assert!(after > START, "the ring did not grow: window {after}");
    assert!(after <= MAX);
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn test_bulk_send_grows_the_ring() {
    let client = Config {
        send_buffer: START,
        send_buffer_max: MAX,
        ..config(B, 2)
    };
    let (a, b) = stacks_with(config(A, 1), client);
    let (mut client, mut server) = connected(&a, &b, 80).await;
    let before = client.tcp_info().await.unwrap().send_buffer;
    assert_eq!(before, START);
    let data = pattern(8 << 20, 5);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        let info = client.tcp_info().await.unwrap();
        client.shutdown().await.unwrap();
        (client, info)
    });
    let mut got = Vec::with_capacity(data.len());
    within("bulk transfer", server.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(got == data, "the bytes arrived intact and in order");
    let (_client, info) = writer.await.unwrap();
    println!(
        "send buffer {before} -> {} (cwnd {})",
        info.send_buffer, info.cwnd
    );
    assert!(info.send_buffer > START, "the ring did not grow: {info:?}");
    assert!(info.send_buffer <= MAX);
}
