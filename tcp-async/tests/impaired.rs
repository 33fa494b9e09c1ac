//! The driver under loss, reordering and delay, and with one connection
//! flooding while another needs quick turns.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tcp_async::device::{FaultInjector, Faults, MemoryDevice};
use tcp_async::{Stack, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Virtual time: retransmission timers fire as soon as everything is idle.
#[tokio::test(start_paused = true)]
async fn transfer_survives_loss_reordering_and_delay() {
    transfer_through(|seed| Faults {
        seed,
        loss: 0.03,
        reorder: 0.03,
        delay: Duration::from_millis(5),
        ..Faults::default()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn transfer_survives_duplication_and_corruption() {
    transfer_through(|seed| Faults {
        seed,
        duplicate: 0.05,
        corrupt: 0.02,
        delay: Duration::from_millis(1),
        ..Faults::default()
    })
    .await;
}

/// 400 kB one way, an answer back, over a pair of impaired links.
async fn transfer_through(faults: impl Fn(u64) -> Faults) {
    init_tracing();
    let (da, db) = MemoryDevice::pair(1500);
    let a = Stack::builder(FaultInjector::new(da, faults(11)))
        .config(config(A, 1))
        .build()
        .unwrap();
    let b = Stack::builder(FaultInjector::new(db, faults(12)))
        .config(config(B, 2))
        .build()
        .unwrap();
    let listener = TcpListener::bind_with(&a, addr(A, 100)).await.unwrap();
    let data = pattern(400_000, 8);
    let sent = data.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(b"done").await.unwrap();
        s.shutdown().await.unwrap();
        got
    });
    let mut c = tokio::time::timeout(Duration::from_secs(600), async {
        let mut c = TcpStream::connect_with(&b, addr(A, 100)).await.unwrap();
        c.write_all(&sent).await.unwrap();
        c.shutdown().await.unwrap();
        c
    })
    .await
    .expect("virtual-time limit");
    let mut ack = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), c.read_to_end(&mut ack))
        .await
        .expect("virtual-time limit")
        .unwrap();
    assert_eq!(ack, b"done");
    let got = server.await.unwrap();
    assert!(
        got == data,
        "{} of {} bytes, or different",
        got.len(),
        data.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_connection_does_not_starve_another() {
    let (a, b) = stacks();
    let (bulk_client, mut bulk_server) = connected(&a, &b, 101).await;
    let (mut ping_client, mut ping_server) = connected(&a, &b, 102).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (_r, mut w) = bulk_client.into_split();
            let chunk = vec![0x5a; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                w.write_all(&chunk).await.unwrap();
            }
        }
    });
    let drain = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        while bulk_server.read(&mut buf).await.unwrap() > 0 {}
    });
    let echo = tokio::spawn(async move {
        let mut b = [0; 1];
        while ping_server.read(&mut b).await.unwrap() == 1 {
            ping_server.write_all(&b).await.unwrap();
        }
    });
    within("200 ping-pongs during a flood", async {
        for i in 0..200u32 {
            let byte = [i as u8];
            ping_client.write_all(&byte).await.unwrap();
            let mut back = [0; 1];
            ping_client.read_exact(&mut back).await.unwrap();
            assert_eq!(back, byte);
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    within("flood stops", flood).await.unwrap();
    drop(ping_client);
    within("echo ends", echo).await.unwrap();
    within("drain ends", drain).await.unwrap();
}
