//! The steady-state data path of the Tokio front end does not allocate: a
//! request/response echo over two stacks and the in-memory cable, once
//! warmed up, performs (almost) no heap allocation per round trip. Ring
//! storage is allocated on first use and kept while the connection is busy:
//! the driver's ring sweep only frees rings that stayed idle for a whole
//! sweep period, so a busy exchange never frees and re-allocates.
//!
//! Counted with a global allocator; one current-thread runtime, so nothing
//! else allocates meanwhile. The in-memory cable itself copies every packet
//! into a `Vec` (it is a test device, not the data path): those are counted
//! from the stacks' `packets_out` and subtracted.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use tcp_async::device::MemoryDevice;
use tcp_async::{Stack, TcpListener, TcpStream};
use tcp_stack::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/alloc.rs"]
mod alloc;

use alloc::{ALLOCS, COUNTING};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const WARMUP: usize = 2_000;
const ROUND_TRIPS: usize = 20_000;
const MSG: usize = 64;

async fn round_trip(client: &mut TcpStream, i: usize) {
    let mut msg = [0u8; MSG];
    msg[0] = i as u8;
    client.write_all(&msg).await.unwrap();
    let mut reply = [0u8; MSG];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, msg);
}

#[test]
fn echo_round_trips_do_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (da, db) = MemoryDevice::pair(1500);
        let cfg = |addr, seed| Config {
            seed,
            ..Config::with_addr(addr)
        };
        let a = Stack::builder(da).config(cfg(A, 1)).build().unwrap();
        let b = Stack::builder(db).config(cfg(B, 2)).build().unwrap();
        let target = SocketAddr::V4(SocketAddrV4::new(A, 7));
        let listener = TcpListener::bind_with(&a, target).await.unwrap();
        let (client, server) = tokio::join!(TcpStream::connect_with(&b, target), listener.accept());
        let (mut client, (mut server, _)) = (client.unwrap(), server.unwrap());
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; MSG];
            while server.read_exact(&mut buf).await.is_ok() {
                server.write_all(&buf).await.unwrap();
            }
        });
        for i in 0..WARMUP {
            round_trip(&mut client, i).await;
        }
        let packets = |a: &tcp_stack::Stats, b: &tcp_stack::Stats| a.packets_out + b.packets_out;
        let before = packets(&a.stats().await.unwrap(), &b.stats().await.unwrap());
        COUNTING.store(true, Ordering::Relaxed);
        for i in 0..ROUND_TRIPS {
            round_trip(&mut client, i).await;
        }
        COUNTING.store(false, Ordering::Relaxed);
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let sent = packets(&a.stats().await.unwrap(), &b.stats().await.unwrap()) - before;
        let stack_allocs = allocs.saturating_sub(sent);
        println!(
            "{allocs} allocations in {ROUND_TRIPS} round trips of {MSG} bytes, \
             {sent} of them the cable's packet copies: {stack_allocs} by the stacks \
             ({:.4} per round trip)",
            stack_allocs as f64 / ROUND_TRIPS as f64
        );
        assert!(allocs >= sent, "the cable copies every packet");
        // Timer-wheel levels, the channels' block lists and the like may
        // grow now and then; one allocation per 100 round trips is plenty.
        assert!(
            stack_allocs * 100 <= ROUND_TRIPS as u64,
            "{stack_allocs} allocations in {ROUND_TRIPS} round trips"
        );
        // Idle past the drivers' ring sweep: the four rings are freed, and
        // the next round trip allocates each of them again, once.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let before = packets(&a.stats().await.unwrap(), &b.stats().await.unwrap());
        ALLOCS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        for i in 0..10 {
            round_trip(&mut client, i).await;
        }
        COUNTING.store(false, Ordering::Relaxed);
        let sent = packets(&a.stats().await.unwrap(), &b.stats().await.unwrap()) - before;
        let stack_allocs = ALLOCS.load(Ordering::Relaxed) - sent;
        println!("after an idle second, 10 round trips: {stack_allocs} allocations by the stacks");
        assert_eq!(stack_allocs, 4, "one per ring storage");
        drop(client);
        echo.await.unwrap();
        a.shutdown().await;
        b.shutdown().await;
    });
}
