//! Heap memory per idle established connection, measured with a counting
//! global allocator: two stacks over an in-memory cable, N connections from
//! one to a listener on the other, all accepted and kept open.
//!
//! Run with `--nocapture` to see the numbers.
//!
//! Where an idle end's bytes go (about 1,690 in all, measured at N = 2,000):
//! - the core's connection (`tcp_stack`, see its `tests/no_alloc.rs`) and
//!   its share of the core's maps: about 1,080;
//! - two rings' shared state, `Arc<Ring>`: 2 x 192 (the storage itself is
//!   allocated, uninitialised, on the first write, at full capacity, and
//!   freed again by the driver's ring sweep once the ring stayed empty and
//!   quiet for a sweep period, 200 to 400 ms);
//! - `Arc<Shared>` (wakers, flags, app halves of the rings): 144;
//! - the driver's `HashMap<ConnId, Entry>` slot: 33 bytes a bucket, 1.1 to
//!   2.3 buckets per connection (about 67 here);
//! - the boxed driver halves of the rings handed to the core: 2 x 8.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use tcp_async::device::MemoryDevice;
use tcp_async::{Stack, TcpListener, TcpStream};
use tcp_stack::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/alloc.rs"]
mod alloc;

use alloc::LIVE;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 80;
/// Connections opened: 2,000, or `UTCP_IDLE_CONNS` (run by hand with
/// 100000 to check that many concurrent connections work).
fn connections() -> usize {
    std::env::var("UTCP_IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Connections per listening port: the client's ephemeral ports (about
/// 28,000) bound how many it can open to one address and port.
const PER_PORT: usize = 20_000;

/// The project target for an idle established connection end.
const IDLE_TARGET: i64 = 4096;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Lets both drivers run until nothing is left to do.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn idle_connection_heap_per_end() {
    // One thread: the drivers and this task take turns, so the counts are
    // not disturbed by work in flight elsewhere.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (da, db) = MemoryDevice::pair(1500);
        let a = Stack::builder(da)
            .config(Config {
                seed: 1,
                ..Config::with_addr(A)
            })
            .build()
            .unwrap();
        let b = Stack::builder(db)
            .config(Config {
                seed: 2,
                ..Config::with_addr(B)
            })
            .build()
            .unwrap();
        #[allow(non_snake_case)]
        let N = connections();
        let mut listeners = Vec::new();
        for i in 0..N.div_ceil(PER_PORT).max(1) {
            let port = PORT + i as u16;
            let target = SocketAddr::V4(SocketAddrV4::new(A, port));
            listeners.push((target, TcpListener::bind_with(&a, target).await.unwrap()));
        }
        let (target, listener) = (listeners[0].0, &listeners[0].1);
        // Warm up: one connection opened and closed, so lazily created
        // runtime and driver state is not charged to the measured ones.
        {
            let (c, s) = tokio::join!(TcpStream::connect_with(&b, target), listener.accept());
            drop((c.unwrap(), s.unwrap()));
            settle().await;
        }
        let mut clients = Vec::with_capacity(N);
        let mut servers = Vec::with_capacity(N);
        settle().await;
        let before = live();
        for i in 0..N {
            let (target, listener) = &listeners[i / PER_PORT];
            let (c, s) = tokio::join!(TcpStream::connect_with(&b, *target), listener.accept());
            clients.push(c.unwrap());
            servers.push(s.unwrap().0);
        }
        settle().await;
        let idle = live() - before;
        let idle_per_end = idle / (2 * N as i64);
        println!(
            "idle: {idle} bytes for {N} connections = {idle_per_end} bytes per connection end"
        );

        // Some bytes each way: both rings of both ends get their storage.
        let mut buf = [0u8; 100];
        for (c, s) in clients.iter_mut().zip(servers.iter_mut()) {
            c.write_all(&[b'x'; 100]).await.unwrap();
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&[b'y'; 10]).await.unwrap();
            c.read_exact(&mut buf[..10]).await.unwrap();
        }
        settle().await;
        let used = live() - before;
        let used_per_end = used / (2 * N as i64);
        println!(
            "right after 100 bytes out, 10 back: {used_per_end} bytes per connection \
             end ({} more: the ring storage, allocated at full capacity on first \
             write; send_buffer {} + recv_buffer {})",
            used_per_end - idle_per_end,
            a.config().send_buffer,
            a.config().recv_buffer,
        );
        // Then idle: the drivers' ring sweeps free the storage once every
        // ring stayed empty for a sweep period. Waits on the real clock but
        // asserts nothing about time: up to 10 s for a 400 ms process.
        let mut after_use_per_end = used_per_end;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            after_use_per_end = (live() - before) / (2 * N as i64);
            if after_use_per_end < IDLE_TARGET {
                break;
            }
        }
        settle().await;
        let after_use_per_end_now = (live() - before) / (2 * N as i64);
        println!(
            "idle after use: {after_use_per_end_now} bytes per connection end \
             (idle before use: {idle_per_end})"
        );
        assert!(
            after_use_per_end <= IDLE_TARGET && after_use_per_end_now <= IDLE_TARGET,
            "{after_use_per_end_now} heap bytes per connection end idle after use \
             (target <= {IDLE_TARGET})"
        );
        // The core alone takes over 1 KB: a smaller figure means the
        // counting missed the connections, not that they got cheaper.
        assert!(idle_per_end > 1000, "implausible: {idle_per_end} bytes");
        assert!(
            idle_per_end < IDLE_TARGET,
            "{idle_per_end} heap bytes per idle connection end (target < {IDLE_TARGET})"
        );
        // The rings allocate their whole capacity on first write (not
        // growing on demand), so a busy connection costs about that much.
        let rings = (a.config().send_buffer + a.config().recv_buffer) as i64;
        assert!(
            used_per_end < rings + IDLE_TARGET,
            "{used_per_end} heap bytes per used connection end"
        );

        drop((clients, servers, listeners));
        a.shutdown().await;
        b.shutdown().await;
    });
}
