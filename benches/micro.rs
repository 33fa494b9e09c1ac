//! Criterion micro-benchmarks of the sans-IO core: checksum throughput,
//! TCP/IPv4 header parse and emit, and a simulated bulk transfer between two
//! `tcp_stack::Stack`s exchanging packets directly (no device, no clock: the
//! figure is pure CPU cost of the two stacks).
//!
//! Run: `CARGO_TARGET_DIR=target-bench cargo bench --bench micro`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tcp_stack::wire::checksum::checksum;
use tcp_stack::wire::tcp::fill_checksum;
use tcp_stack::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptions, TcpRepr};
use tcp_stack::{Config, Event, Instant, SeqNum, Stack};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for size in [64usize, 256, 1500, 4096, 16384, 65536] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| checksum(black_box(d)))
        });
    }
    g.finish();
}

/// A data segment like the ones a bulk transfer carries: timestamps option,
/// 1448 bytes of payload, inside a 20-byte IPv4 header.
fn sample_segment(payload: usize) -> (TcpRepr, Vec<u8>) {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 5001,
        seq: SeqNum(0x1234_5678),
        ack: SeqNum(0x9abc_def0),
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 1024,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        },
    };
    let tcp_len = repr.segment_len(payload);
    let ip = Ipv4Repr {
        src: SRC,
        dst: DST,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    };
    let mut pkt = vec![0u8; ip.total_len()];
    ip.emit(&mut pkt);
    repr.emit(&mut pkt[20..]);
    for (i, b) in pkt[20 + repr.header_len()..].iter_mut().enumerate() {
        *b = i as u8;
    }
    fill_checksum(&mut pkt[20..], SRC, DST);
    (repr, pkt)
}

fn bench_wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    for payload in [0usize, 1448] {
        let (repr, pkt) = sample_segment(payload);
        g.bench_function(
            BenchmarkId::new("parse_ipv4_tcp_checksummed", payload),
            |b| {
                b.iter(|| {
                    let p = Ipv4Packet::new_checked(black_box(&pkt[..])).unwrap();
                    let ip = Ipv4Repr::parse(&p).unwrap();
                    let (t, data) = TcpRepr::parse(p.payload(), ip.src, ip.dst, true).unwrap();
                    black_box((t, data.len()))
                })
            },
        );
        g.bench_function(BenchmarkId::new("parse_tcp_no_checksum", payload), |b| {
            b.iter(|| {
                let (t, data) = TcpRepr::parse(black_box(&pkt[20..]), SRC, DST, false).unwrap();
                black_box((t, data.len()))
            })
        });
        let mut out = pkt.clone();
        g.bench_function(
            BenchmarkId::new("emit_ipv4_tcp_checksummed", payload),
            |b| {
                b.iter(|| {
                    let r = black_box(&repr);
                    let ip = Ipv4Repr {
                        src: SRC,
                        dst: DST,
                        protocol: IpProtocol::Tcp,
                        payload_len: r.segment_len(payload),
                        ttl: 64,
                        tos: 0,
                        ident: 7,
                        dont_frag: true,
                    };
                    ip.emit(&mut out);
                    r.emit(&mut out[20..]);
                    fill_checksum(&mut out[20..], SRC, DST);
                    black_box(out[30])
                })
            },
        );
        g.bench_function(BenchmarkId::new("emit_tcp_header_only", payload), |b| {
            b.iter(|| {
                black_box(&repr).emit(&mut out[20..]);
                black_box(out[36])
            })
        });
    }
    g.finish();
}

/// Moves every pending packet from `from` to `to`; returns how many moved.
fn pump(now: Instant, from: &mut Stack, to: &mut Stack, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while let Some(len) = from.poll_transmit(now, buf) {
        to.handle_packet(now, &buf[..len]);
        n += 1;
    }
    n
}

/// One bulk transfer of `total` bytes from a client stack to a server stack
/// joined by direct calls; virtual time advances 10 us per round and timers
/// fire as due. Returns the bytes received.
fn simulated_transfer(total: usize, chunk: &[u8], sink: &mut [u8], pkt: &mut [u8]) -> usize {
    let server_addr = SocketAddrV4::new(DST, 5001);
    let mut a = Stack::new(Config {
        seed: 1,
        ..Config::with_addr(SRC)
    });
    let mut b = Stack::new(Config {
        seed: 2,
        ..Config::with_addr(DST)
    });
    let mut now = Instant::from_micros(1);
    let lid = b.listen(server_addr, 16).unwrap();
    let cid = a.connect(now, None, server_addr).unwrap();
    let mut sid = None;
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut rounds = 0u64;
    while received < total {
        rounds += 1;
        assert!(
            rounds < 50_000_000,
            "simulated transfer stalled at {received}/{total}"
        );
        if sent < total && a.state(cid).can_send() {
            let end = (total - sent).min(chunk.len());
            if let Ok(n) = a.send(cid, &chunk[..end]) {
                sent += n;
                if sent == total {
                    let _ = a.shutdown(cid);
                }
            }
        }
        let moved = pump(now, &mut a, &mut b, pkt);
        while let Some(ev) = b.poll_event() {
            if let Event::Incoming(l) = ev {
                if l == lid {
                    sid = b.accept(lid).or(sid);
                }
            }
        }
        if let Some(s) = sid {
            while let Ok(n) = b.recv(s, sink) {
                if n == 0 {
                    break;
                }
                received += n;
            }
        }
        let back = pump(now, &mut b, &mut a, pkt);
        while a.poll_event().is_some() {}
        now = Instant::from_micros(now.total_micros() + 10);
        if moved == 0 && back == 0 {
            // Nothing in flight: jump to the next timer (delayed ACK, RTO).
            let next = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            if let Some(t) = next {
                if t > now {
                    now = t;
                }
            }
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    received
}

fn bench_transfer(c: &mut Criterion) {
    const TOTAL: usize = 16 << 20;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sink = vec![0u8; 64 * 1024];
    let mut pkt = vec![0u8; 1500];
    let mut g = c.benchmark_group("simulated_transfer");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("16MiB_two_stacks_direct", |b| {
        b.iter(|| {
            let got = simulated_transfer(TOTAL, &chunk, &mut sink, &mut pkt);
            assert_eq!(got, TOTAL);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_checksum, bench_wire, bench_transfer
}
criterion_main!(benches);
