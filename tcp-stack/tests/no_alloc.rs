//! The steady-state data path does not allocate: once a connection is
//! established and its buffers exist, moving data (segments out, segments
//! in, ACKs, timers) performs no heap allocation. Checked with a counting
//! global allocator around a bulk transfer between two stacks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use tcp_stack::{Config, Duration, Instant, Stack, State};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Live heap bytes (all threads; the tests below run their measurements
/// under a lock so they do not see each other).
static LIVE: AtomicI64 = AtomicI64::new(0);
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Moves packets between two stacks for `rounds` iterations, advancing a
/// virtual clock by 100 us each, sending `chunk` on `a` and reading on `b`.
#[allow(clippy::too_many_arguments)]
fn pump(
    a: &mut Stack,
    b: &mut Stack,
    now: &mut Instant,
    ca: tcp_stack::ConnId,
    cb: tcp_stack::ConnId,
    chunk: &[u8],
    rbuf: &mut [u8],
    pkt: &mut [u8],
    rounds: usize,
) -> u64 {
    let mut moved = 0u64;
    for _ in 0..rounds {
        *now += Duration::from_micros(100);
        a.handle_timeout(*now);
        b.handle_timeout(*now);
        let _ = a.send(ca, chunk);
        while let Some(n) = a.poll_transmit(*now, pkt) {
            b.handle_packet(*now, &pkt[..n]);
        }
        while let Ok(n) = b.recv(cb, rbuf) {
            if n == 0 {
                break;
            }
            moved += n as u64;
        }
        while let Some(n) = b.poll_transmit(*now, pkt) {
            a.handle_packet(*now, &pkt[..n]);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        let _ = a.poll_timeout();
        let _ = b.poll_timeout();
    }
    moved
}

#[test]
fn steady_state_data_path_does_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ip_a = Ipv4Addr::new(10, 0, 0, 1);
    let ip_b = Ipv4Addr::new(10, 0, 0, 2);
    let mut a = Stack::new(Config::with_addr(ip_a));
    let mut b = Stack::new(Config {
        seed: 99,
        ..Config::with_addr(ip_b)
    });
    let mut now = Instant::from_millis(1);
    let l = b.listen(SocketAddrV4::new(ip_b, 80), 4).unwrap();
    let ca = a.connect(now, None, SocketAddrV4::new(ip_b, 80)).unwrap();
    let mut pkt = vec![0u8; 1500];
    let mut cb = None;
    for _ in 0..10 {
        now += Duration::from_micros(100);
        while let Some(n) = a.poll_transmit(now, &mut pkt) {
            b.handle_packet(now, &pkt[..n]);
        }
        while let Some(n) = b.poll_transmit(now, &mut pkt) {
            a.handle_packet(now, &pkt[..n]);
        }
        cb = cb.or_else(|| b.accept(l));
    }
    let cb = cb.expect("accepted");
    assert_eq!(a.state(ca), State::Established);
    let chunk = vec![0xabu8; 16 * 1024];
    let mut rbuf = vec![0u8; 64 * 1024];
    // Warm up: buffers reach their working size, queues their capacity.
    let warm = pump(
        &mut a, &mut b, &mut now, ca, cb, &chunk, &mut rbuf, &mut pkt, 3000,
    );
    assert!(warm > 1 << 20, "warm-up moved only {warm} bytes");
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let moved = pump(
        &mut a, &mut b, &mut now, ca, cb, &chunk, &mut rbuf, &mut pkt, 3000,
    );
    COUNTING.store(false, Ordering::Relaxed);
    let allocs = ALLOCS.load(Ordering::Relaxed);
    eprintln!("{moved} bytes moved with {allocs} allocations");
    assert!(moved > 1 << 20, "moved only {moved} bytes");
    assert_eq!(allocs, 0, "allocations on the steady-state path");
}

/// Idle established connections cost little memory in the core: buffers
/// are allocated on first use. 10,000 connections between two stacks.
#[test]
fn idle_connections_cost_under_4_kib_each() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // UTCP_IDLE_CONNS=100000 checks the 100k case by hand (about 2 s).
    let n: usize = std::env::var("UTCP_IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let ip_a = Ipv4Addr::new(10, 0, 0, 1);
    let ip_b = Ipv4Addr::new(10, 0, 0, 2);
    let before = LIVE.load(Ordering::Relaxed);
    let mut a = Stack::new(Config::with_addr(ip_a));
    let mut b = Stack::new(Config {
        seed: 7,
        ..Config::with_addr(ip_b)
    });
    let mut now = Instant::from_millis(1);
    // One peer port gives at most ~28k ephemeral ports: spread over 8.
    let listeners: Vec<_> = (0..8)
        .map(|p| b.listen(SocketAddrV4::new(ip_b, 80 + p), n).unwrap())
        .collect();
    let mut pkt = vec![0u8; 1500];
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        let port = 80 + (i % 8) as u16;
        clients.push(a.connect(now, None, SocketAddrV4::new(ip_b, port)).unwrap());
        while let Some(n) = a.poll_transmit(now, &mut pkt) {
            b.handle_packet(now, &pkt[..n]);
        }
        while let Some(n) = b.poll_transmit(now, &mut pkt) {
            a.handle_packet(now, &pkt[..n]);
        }
        while let Some(n) = a.poll_transmit(now, &mut pkt) {
            b.handle_packet(now, &pkt[..n]);
        }
        while let Some(c) = b.accept(listeners[i % 8]) {
            servers.push(c);
        }
        now += Duration::from_micros(10);
    }
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    assert_eq!(servers.len(), n);
    assert!(clients.iter().all(|&c| a.state(c) == State::Established));
    let used = LIVE.load(Ordering::Relaxed) - before;
    let per_conn = used as f64 / (2 * n) as f64;
    eprintln!("{n} idle connections: {used} heap bytes, {per_conn:.0} bytes per connection end");
    assert!(per_conn < 4096.0, "{per_conn} bytes per connection");
}
