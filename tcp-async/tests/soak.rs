//! Soak: many connections opening, transferring and closing between two
//! stacks over an in-memory cable with loss, duplication, reordering and
//! corruption, for a while, in real time. Every byte is checked against
//! what was sent.
//!
//! Memory: the live heap (counting allocator) is sampled during traffic,
//! where it swings by tens of MiB with the buffers of the connections in
//! flight, and at checkpoints: the traffic runs in phases of
//! [`PHASE`], after each of which every connection closes (TIME-WAIT is
//! shortened to 1 s) and the rings' storage is swept; the heap at rest must
//! then be back at the first checkpoint's level, give or take
//! [`REST_SLACK`], however many connections went before.
//!
//! Longer runs catch slower leaks: the heap at rest is printed after each
//! phase.
//!
//! Ignored by default (it runs on the wall clock):
//!
//! ```text
//! UTCP_SOAK_SECS=60 cargo test -p tcp-async --test soak -- --ignored --nocapture
//! ```
//!
//! `UTCP_SOAK_SECS` defaults to 10.

mod common;

#[path = "common/alloc.rs"]
mod alloc;

use common::{addr, A, B};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tcp_async::device::{Direction, FaultInjector, Faults, MemoryDevice};
use tcp_async::{Stack, TcpListener, TcpStream};
use tcp_stack::{Config, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const PORT: u16 = 80;
/// Client tasks, each opening one connection after another.
const WORKERS: u64 = 24;
/// The longest one connection may take, faults and all (a SYN lost three
/// times waits 1 + 2 + 4 s).
const PER_CONNECTION: Duration = Duration::from_secs(120);
/// Live-heap samples during traffic.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Traffic between two checkpoints.
const PHASE: Duration = Duration::from_secs(5);
/// Growth of the heap at rest allowed from the first checkpoint to any
/// later one: tables keep the capacity of their peak (connection slots, the
/// timer heap, maps). Without a leak that was 32 KiB over 56,000
/// connections; a leak of 8 bytes per accepted connection (capacity
/// doubling as it grows) passes it within 60 s.
const REST_SLACK: i64 = 192 << 10;
/// Short TIME-WAIT (2 MSL = 1 s), so that the number of connections in it
/// reaches its steady state early in the run.
const MSL: Duration = Duration::from_millis(500);

fn soak_secs() -> u64 {
    std::env::var("UTCP_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

fn live() -> i64 {
    alloc::LIVE.load(Ordering::Relaxed)
}

/// Byte `i` of the stream keyed by `seed`: SplitMix64 of the 8-byte block
/// index, so that a misplaced block never matches (no short period).
fn stream_byte(seed: u64, i: u64) -> u8 {
    let mut z =
        (seed ^ (i / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()[(i % 8) as usize]
}

fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(seed, offset + k as u64);
    }
}

/// Checks `buf` against the stream at `offset`; the first wrong byte.
fn check(seed: u64, offset: u64, buf: &[u8]) -> Result<(), String> {
    match buf
        .iter()
        .enumerate()
        .find(|(k, b)| **b != stream_byte(seed, offset + *k as u64))
    {
        None => Ok(()),
        Some((k, b)) => Err(format!(
            "byte {} is {b:#04x}, sent {:#04x}",
            offset + k as u64,
            stream_byte(seed, offset + k as u64)
        )),
    }
}

/// What a connection does, chosen by the client, announced in a 13-byte
/// header: kind, length (u32), seed (u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The client sends `len` bytes and half-closes; the server echoes
    /// them and closes after the client's FIN.
    Echo,
    /// The server sends `len` bytes and closes first; the client reads to
    /// EOF.
    Source,
    /// The client sends part of `len` bytes and drops the connection
    /// without reading: teardown with data in flight both ways.
    Abandon,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Echo => b'E',
            Kind::Source => b'S',
            Kind::Abandon => b'A',
        }
    }
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            b'E' => Some(Kind::Echo),
            b'S' => Some(Kind::Source),
            b'A' => Some(Kind::Abandon),
            _ => None,
        }
    }
}

/// Shared tallies.
#[derive(Default)]
struct Tally {
    connections: [AtomicU64; 3],
    /// Bytes checked at their destination (client or server).
    verified: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }
}

/// Serves one connection per the header it starts with.
async fn serve(mut s: TcpStream, tally: Arc<Tally>) {
    let mut head = [0u8; 13];
    let r: std::io::Result<Kind> = async {
        s.read_exact(&mut head).await?;
        let kind = Kind::from_byte(head[0]).ok_or_else(|| std::io::Error::other("bad header"))?;
        let len = u64::from(u32::from_be_bytes(head[1..5].try_into().unwrap()));
        let seed = u64::from_be_bytes(head[5..13].try_into().unwrap());
        let mut buf = vec![0u8; 32 * 1024];
        match kind {
            Kind::Echo | Kind::Abandon => {
                let mut at = 0u64;
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(n) => n,
                        Err(_) if kind == Kind::Abandon => return Ok(kind),
                        Err(e) => return Err(e),
                    };
                    if n == 0 {
                        break;
                    }
                    if let Err(e) = check(seed, at, &buf[..n]) {
                        return Err(std::io::Error::other(format!("server received: {e}")));
                    }
                    tally.verified.fetch_add(n as u64, Ordering::Relaxed);
                    at += n as u64;
                    if let Err(e) = s.write_all(&buf[..n]).await {
                        return if kind == Kind::Abandon {
                            Ok(kind)
                        } else {
                            Err(e)
                        };
                    }
                }
                if kind == Kind::Echo && at != len {
                    return Err(std::io::Error::other(format!(
                        "server got {at} of {len} bytes"
                    )));
                }
                let _ = s.shutdown().await;
            }
            Kind::Source => {
                let mut at = 0u64;
                while at < len {
                    let n = (len - at).min(buf.len() as u64) as usize;
                    fill(seed, at, &mut buf[..n]);
                    s.write_all(&buf[..n]).await?;
                    at += n as u64;
                }
                s.shutdown().await?;
                // Until the client's FIN (or its reset).
                while s.read(&mut buf).await? > 0 {}
            }
        }
        Ok(kind)
    }
    .await;
    if let Err(e) = r {
        tally.fail(format!("server, {:?}: {e}", Kind::from_byte(head[0])));
    }
}

/// One client connection of `kind`; checks every byte it gets back.
async fn client(b: &Stack, kind: Kind, len: u64, seed: u64, tally: &Tally) -> std::io::Result<()> {
    let s = TcpStream::connect_with(b, addr(A, PORT)).await?;
    let mut head = [0u8; 13];
    head[0] = kind.byte();
    head[1..5].copy_from_slice(&(len as u32).to_be_bytes());
    head[5..13].copy_from_slice(&seed.to_be_bytes());
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(&head).await?;
    let mut buf = vec![0u8; 32 * 1024];
    match kind {
        Kind::Echo => {
            let writer = async {
                let mut out = vec![0u8; 32 * 1024];
                let mut at = 0u64;
                while at < len {
                    let n = (len - at).min(out.len() as u64) as usize;
                    fill(seed, at, &mut out[..n]);
                    wr.write_all(&out[..n]).await?;
                    at += n as u64;
                }
                wr.shutdown().await
            };
            let reader = async {
                let mut at = 0u64;
                loop {
                    let n = rd.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    check(seed, at, &buf[..n])
                        .map_err(|e| std::io::Error::other(format!("echo: {e}")))?;
                    tally.verified.fetch_add(n as u64, Ordering::Relaxed);
                    at += n as u64;
                }
                if at == len {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "echo: {at} of {len} bytes came back"
                    )))
                }
            };
            let (w, r) = tokio::join!(writer, reader);
            w?;
            r?;
        }
        Kind::Source => {
            wr.shutdown().await?;
            let mut at = 0u64;
            loop {
                let n = rd.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                check(seed, at, &buf[..n])
                    .map_err(|e| std::io::Error::other(format!("source: {e}")))?;
                tally.verified.fetch_add(n as u64, Ordering::Relaxed);
                at += n as u64;
            }
            if at != len {
                return Err(std::io::Error::other(format!(
                    "source: {at} of {len} bytes"
                )));
            }
        }
        Kind::Abandon => {
            let part = len / 2;
            let mut at = 0u64;
            while at < part {
                let n = (part - at).min(buf.len() as u64) as usize;
                fill(seed, at, &mut buf[..n]);
                wr.write_all(&buf[..n]).await?;
                at += n as u64;
            }
            // Dropped here with the echo unread.
        }
    }
    Ok(())
}

/// SplitMix64 for the workload's choices.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A length: mostly small, sometimes up to 1 MiB.
fn length(r: u64) -> u64 {
    match r % 16 {
        0 => r >> 8 & 0xf_ffff,
        1..=4 => r >> 8 & 0xffff,
        _ => r >> 8 & 0xfff,
    }
}

fn faults(seed: u64) -> Faults {
    Faults {
        seed,
        loss: 0.01,
        duplicate: 0.01,
        reorder: 0.02,
        reorder_delay: Duration::from_millis(5),
        corrupt: 0.005,
        delay: Duration::from_micros(200),
        // Each stack's outgoing packets: every packet meets the faults once.
        apply_to: Direction::Send,
    }
}

fn config(addr: std::net::Ipv4Addr, seed: u64) -> Config {
    Config {
        seed,
        msl: MSL,
        ..Config::with_addr(addr)
    }
}

/// Minimum, median and maximum of `v`, MiB.
fn spread(v: &[i64]) -> String {
    let mut v = v.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => "-".into(),
        n => format!(
            "{:.1} / {:.1} / {:.1}",
            mib(v[0]),
            mib(v[n / 2]),
            mib(v[n - 1])
        ),
    }
}

fn mib(b: i64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn summary(s: &Stats) -> String {
    format!(
        "accepted {}, retransmits {}, RTOs {}, checksum drops {}, segment drops {}, RSTs in {}",
        s.connections_accepted,
        s.retransmits,
        s.rto_expirations,
        s.drop_checksum,
        s.drop_segment,
        s.rst_received
    )
}

#[test]
#[ignore = "soak: runs on the wall clock for UTCP_SOAK_SECS (default 10)"]
fn soak_connections_through_faults_lose_no_byte_and_keep_memory_flat() {
    let secs = soak_secs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (da, db) = MemoryDevice::pair(1500);
        let a = Stack::builder(FaultInjector::new(da, faults(11)))
            .config(config(A, 1))
            .build()
            .unwrap();
        let b = Stack::builder(FaultInjector::new(db, faults(12)))
            .config(config(B, 2))
            .build()
            .unwrap();
        let listener = TcpListener::bind_with(&a, addr(A, PORT)).await.unwrap();
        let tally = Arc::new(Tally::default());
        let server = tokio::spawn({
            let tally = tally.clone();
            async move {
                loop {
                    let (s, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(s, tally.clone()));
                }
            }
        });
        // Every connection closed: TIME-WAIT over, ring storage swept.
        let rest = 4 * MSL + Duration::from_millis(600);

        // Quiet start: one connection of each kind, then everything gone.
        for (i, kind) in [Kind::Echo, Kind::Source, Kind::Abandon].into_iter().enumerate() {
            let r = tokio::time::timeout(PER_CONNECTION, client(&b, kind, 10_000, i as u64, &tally)).await;
            assert!(matches!(r, Ok(Ok(()))), "warm-up {kind:?}: {r:?}");
        }
        tokio::time::sleep(rest).await;
        let quiet_start = live();

        let phases = secs.div_ceil(PHASE.as_secs()).max(2);
        let start = Instant::now();
        let mut checkpoints = Vec::new();
        let mut in_traffic = Vec::new();
        for phase in 0..phases {
            let stop = Arc::new(AtomicBool::new(false));
            let mut workers = Vec::new();
            for w in 0..WORKERS {
                let (b, tally, stop) = (b.clone(), tally.clone(), stop.clone());
                workers.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let r = mix(phase << 56 | w << 40 | i);
                        let kind = match r % 8 {
                            0..=3 => Kind::Echo,
                            4..=6 => Kind::Source,
                            _ => Kind::Abandon,
                        };
                        let seed = mix(r);
                        let len = length(mix(seed));
                        let what = || format!("client {phase}/{w}/{i}, {kind:?} of {len} bytes");
                        match tokio::time::timeout(PER_CONNECTION, client(&b, kind, len, seed, &tally)).await {
                            Ok(Ok(())) => {
                                tally.connections[kind as usize].fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Err(e)) => tally.fail(format!("{}: {e}", what())),
                            Err(_) => tally.fail(format!(
                                "{}: not done in {} s",
                                what(),
                                PER_CONNECTION.as_secs()
                            )),
                        }
                        i += 1;
                    }
                }));
            }
            let phase_start = Instant::now();
            let mut samples = Vec::new();
            while phase_start.elapsed() < PHASE {
                tokio::time::sleep(SAMPLE_EVERY).await;
                samples.push(live());
            }
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                // Each worker ends its current connection within PER_CONNECTION.
                tokio::time::timeout(PER_CONNECTION + Duration::from_secs(5), w)
                    .await
                    .expect("a worker did not stop")
                    .unwrap();
            }
            tokio::time::sleep(rest).await;
            let at_rest = live();
            let done: u64 = tally.connections.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            println!(
                "{:5.1} s: phase {phase}: live heap MiB during traffic min / median / max {}; at rest {:.3} MiB; {done} connections, {:.1} MiB verified so far",
                start.elapsed().as_secs_f64(),
                spread(&samples),
                mib(at_rest),
                tally.verified.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
            );
            checkpoints.push(at_rest);
            in_traffic.extend(samples);
        }
        let stats_a = a.stats().await.unwrap();
        let stats_b = b.stats().await.unwrap();
        server.abort();

        let by_kind: Vec<u64> = tally.connections.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let verified = tally.verified.load(Ordering::Relaxed);
        println!(
            "soak: {} s of traffic in {phases} phases, {} connections (echo {}, source {}, abandoned {}), {:.1} MiB verified",
            phases * PHASE.as_secs(),
            by_kind.iter().sum::<u64>(),
            by_kind[0],
            by_kind[1],
            by_kind[2],
            verified as f64 / (1024.0 * 1024.0)
        );
        println!("server stack: {}", summary(&stats_a));
        println!("client stack: {}", summary(&stats_b));
        println!(
            "live heap: {:.3} MiB at rest before; during traffic min / median / max {}; at rest after each phase {}",
            mib(quiet_start),
            spread(&in_traffic),
            checkpoints.iter().map(|c| format!("{:.3}", mib(*c))).collect::<Vec<_>>().join(", ")
        );

        let failures = tally.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
        assert!(
            by_kind.iter().all(|&n| n > 0),
            "every kind of connection ran: {by_kind:?}"
        );
        // The first checkpoint is after warm-up (tables and caches at their
        // working size); none later may be more than REST_SLACK above it.
        let base = checkpoints[0];
        for (i, c) in checkpoints.iter().enumerate() {
            assert!(
                *c <= base + REST_SLACK,
                "live heap at rest after phase {i}: {:.3} MiB, after phase 0: {:.3} MiB",
                mib(*c),
                mib(base)
            );
        }
    });
}
