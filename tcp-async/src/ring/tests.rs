//! Model-based property tests against `VecDeque`, edge cases, and two-thread
//! stress tests.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use tcp_stack::{RecvBuffer, SendBuffer};
use tokio::io::ReadBuf;

use super::*;

#[derive(Debug, Clone)]
enum SendOp {
    Write(Vec<u8>),
    WriteVectored(Vec<Vec<u8>>),
    Enqueue(Vec<u8>),
    Peek(usize, usize),
    Consume(usize),
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn send_op() -> impl Strategy<Value = SendOp> {
    prop_oneof![
        3 => bytes().prop_map(SendOp::Write),
        1 => prop::collection::vec(bytes(), 0..4).prop_map(SendOp::WriteVectored),
        1 => bytes().prop_map(SendOp::Enqueue),
        2 => (0usize..24, 0usize..24).prop_map(|(o, n)| SendOp::Peek(o, n)),
        3 => (0usize..24).prop_map(SendOp::Consume),
    ]
}

#[derive(Debug, Clone)]
enum RecvOp {
    WriteAt(usize, Vec<u8>),
    Commit(usize),
    Read(usize),
    Peek(usize),
    ReadBuf(usize),
    WriterRead(usize),
    WriterPeek(usize),
}

fn recv_op() -> impl Strategy<Value = RecvOp> {
    prop_oneof![
        4 => (0usize..20, bytes()).prop_map(|(o, d)| RecvOp::WriteAt(o, d)),
        3 => (0usize..24).prop_map(RecvOp::Commit),
        3 => (0usize..24).prop_map(RecvOp::Read),
        1 => (0usize..24).prop_map(RecvOp::Peek),
        1 => (0usize..24).prop_map(RecvOp::ReadBuf),
        1 => (0usize..24).prop_map(RecvOp::WriterRead),
        1 => (0usize..24).prop_map(RecvOp::WriterPeek),
    ]
}

/// Bytes from `model` (`None` = never written, any value is fine) match `got`.
#[track_caller]
fn assert_matches(model: impl Iterator<Item = Option<u8>>, got: &[u8]) {
    for (i, (m, g)) in model.zip(got).enumerate() {
        if let Some(m) = m {
            assert_eq!(m, *g, "byte {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn send_ring_matches_vecdeque(cap in 0usize..18, ops in prop::collection::vec(send_op(), 0..80)) {
        let (mut w, mut r) = send_ring(cap);
        let mut model: VecDeque<u8> = VecDeque::new();
        for op in ops {
            let free = cap - model.len();
            match op {
                SendOp::Write(d) => {
                    let n = w.write(&d);
                    prop_assert_eq!(n, d.len().min(free));
                    model.extend(&d[..n]);
                }
                SendOp::Enqueue(d) => {
                    let n = r.enqueue(&d);
                    prop_assert_eq!(n, d.len().min(free));
                    model.extend(&d[..n]);
                }
                SendOp::WriteVectored(bufs) => {
                    let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                    let all: Vec<u8> = bufs.concat();
                    let n = w.write_vectored(&slices);
                    prop_assert_eq!(n, all.len().min(free));
                    model.extend(&all[..n]);
                }
                SendOp::Peek(offset, len) => {
                    let mut dst = vec![0xEE; len];
                    let n = r.peek(offset, &mut dst);
                    let want: Vec<u8> = model.iter().skip(offset).take(len).copied().collect();
                    prop_assert_eq!(&dst[..n], &want[..]);
                }
                SendOp::Consume(n) => {
                    r.consume(n);
                    model.drain(..n.min(model.len()));
                }
            }
            prop_assert_eq!(w.len(), model.len());
            prop_assert_eq!(SendBuffer::len(&r), model.len());
            prop_assert_eq!(w.free(), cap - model.len());
            prop_assert_eq!(SendBuffer::free(&r), cap - model.len());
            prop_assert_eq!(w.capacity(), cap);
        }
    }

    #[test]
    fn recv_ring_matches_vecdeque(cap in 0usize..18, ops in prop::collection::vec(recv_op(), 0..80)) {
        let (mut w, mut r) = recv_ring(cap);
        // Readable bytes, then the out-of-order area (relative to the tail).
        let mut readable: VecDeque<Option<u8>> = VecDeque::new();
        let mut pending: Vec<Option<u8>> = vec![None; cap];
        for op in ops {
            let free = cap - readable.len();
            match op {
                RecvOp::WriteAt(offset, d) => {
                    let n = w.write_at(offset, &d);
                    let want = if offset >= free { 0 } else { d.len().min(free - offset) };
                    prop_assert_eq!(n, want);
                    for (i, b) in d[..n].iter().enumerate() {
                        pending[offset + i] = Some(*b);
                    }
                }
                RecvOp::Commit(n) => {
                    w.commit(n);
                    let n = n.min(free);
                    readable.extend(pending.drain(..n));
                    pending.resize(cap, None);
                }
                RecvOp::Read(len) | RecvOp::WriterRead(len) | RecvOp::ReadBuf(len) => {
                    let mut dst = vec![0u8; len];
                    let n = match op {
                        RecvOp::Read(_) => r.read(&mut dst),
                        RecvOp::WriterRead(_) => w.read(&mut dst),
                        _ => {
                            let mut rb = ReadBuf::new(&mut dst);
                            let n = r.read_buf(&mut rb);
                            prop_assert_eq!(rb.filled().len(), n);
                            n
                        }
                    };
                    prop_assert_eq!(n, len.min(readable.len()));
                    assert_matches(readable.drain(..n), &dst[..n]);
                }
                RecvOp::Peek(len) | RecvOp::WriterPeek(len) => {
                    let mut dst = vec![0u8; len];
                    let n = if matches!(op, RecvOp::Peek(_)) { r.peek(&mut dst) } else { w.peek(&mut dst) };
                    prop_assert_eq!(n, len.min(readable.len()));
                    assert_matches(readable.iter().copied(), &dst[..n]);
                }
            }
            prop_assert_eq!(r.len(), readable.len());
            prop_assert_eq!(RecvBuffer::len(&w), readable.len());
            prop_assert_eq!(RecvBuffer::free(&w), cap - readable.len());
            prop_assert_eq!(r.capacity(), cap);
        }
    }
}

#[test]
fn test_send_ring_allocates_on_first_write() {
    let (mut w, mut r) = send_ring(1 << 20);
    assert!(w.ring.buf.load(Ordering::Relaxed).is_null());
    assert_eq!(w.write(&[]), 0);
    assert_eq!(r.peek(0, &mut [0; 4]), 0);
    r.consume(10);
    assert!(w.ring.buf.load(Ordering::Relaxed).is_null());
    assert_eq!(w.write(b"x"), 1);
    assert!(!w.ring.buf.load(Ordering::Relaxed).is_null());
}

#[test]
fn test_recv_ring_allocates_on_first_write() {
    let (mut w, mut r) = recv_ring(1 << 20);
    w.commit(0);
    assert_eq!(r.read(&mut [0; 4]), 0);
    assert!(r.ring.buf.load(Ordering::Relaxed).is_null());
    assert_eq!(w.write_at(100, b"late"), 4);
    assert!(!r.ring.buf.load(Ordering::Relaxed).is_null());
}

#[test]
fn test_zero_capacity_rings_hold_nothing() {
    let (mut w, mut r) = send_ring(0);
    assert_eq!(w.write(b"abc"), 0);
    assert_eq!(r.enqueue(b"abc"), 0);
    assert_eq!((w.free(), w.len(), w.capacity()), (0, 0, 0));
    let (mut w, mut r) = recv_ring(0);
    assert_eq!(w.write_at(0, b"abc"), 0);
    w.commit(3);
    assert_eq!(r.read(&mut [0; 3]), 0);
    assert!(r.is_empty());
}

#[test]
fn test_commit_of_unwritten_bytes_reads_zeroes() {
    // Never undefined behaviour, even if the stack commits too much.
    let (mut w, mut r) = recv_ring(8);
    w.commit(8);
    let mut dst = [1; 8];
    assert_eq!(r.read(&mut dst), 8);
    assert_eq!(dst, [0; 8]);
}

#[test]
fn test_borrowed_role_refuses_while_owner_is_inside() {
    let (mut w, mut r) = send_ring(8);
    assert!(w.ring.guard.enter_owner());
    assert_eq!(r.enqueue(b"abc"), 0);
    w.ring.guard.exit_owner();
    assert_eq!(r.enqueue(b"abc"), 3);
    assert!(w.ring.guard.enter_borrowed());
    assert_eq!(w.write(b"def"), 0);
    w.ring.guard.exit_borrowed();
    assert_eq!(w.write(b"def"), 3);

    let (mut w, mut r) = recv_ring(8);
    w.write_at(0, b"abc");
    w.commit(3);
    assert!(r.ring.guard.enter_owner());
    assert_eq!(w.read(&mut [0; 3]), 0);
    assert_eq!(w.peek(&mut [0; 3]), 3);
    r.ring.guard.exit_owner();
    assert!(r.ring.guard.enter_borrowed());
    assert_eq!(r.read(&mut [0; 3]), 0);
    assert_eq!(r.peek(&mut [0; 3]), 0);
    r.ring.guard.exit_borrowed();
    assert_eq!(r.read(&mut [0; 3]), 3);
}

#[test]
fn test_rings_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<SendWriter>();
    check::<SendReader>();
    check::<RecvWriter>();
    check::<RecvReader>();
}

/// The byte at stream position `i`: not periodic in any ring capacity.
fn pattern(i: usize) -> u8 {
    (i ^ (i >> 8) ^ (i >> 17)).wrapping_mul(31) as u8
}

/// A cheap deterministic chunk-size sequence in `1..=max`.
struct Sizes(u64);

impl Sizes {
    fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % max as u64) as usize + 1
    }
}

/// 8 MiB natively; Miri is far slower.
const STRESS_BYTES: usize = if cfg!(miri) { 64 << 10 } else { 8 << 20 };

#[test]
fn test_send_ring_two_threads_in_order() {
    let (mut w, mut r) = send_ring(4093);
    let producer = std::thread::spawn(move || {
        let mut sizes = Sizes(0x9E37_79B9_7F4A_7C15);
        let mut chunk = Vec::new();
        let mut pos = 0;
        while pos < STRESS_BYTES {
            let n = sizes.next(1500).min(STRESS_BYTES - pos);
            chunk.clear();
            chunk.extend((pos..pos + n).map(pattern));
            let took = if n % 3 == 1 {
                let (a, b) = chunk.split_at(n / 3);
                w.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            } else {
                w.write(&chunk)
            };
            pos += took;
            if took < n {
                std::thread::yield_now();
            }
        }
    });
    let mut sizes = Sizes(0xD1B5_4A32_D192_ED03);
    let mut buf = vec![0; 2000];
    let mut pos = 0;
    while pos < STRESS_BYTES {
        // Like a sender: peek a segment a little past the head, then ack.
        let offset = sizes.next(64) - 1;
        let n = r.peek(offset, &mut buf[..sizes.next(1460)]);
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                pattern(pos + offset + i),
                "position {}",
                pos + offset + i
            );
        }
        let ack = sizes.next(2000).min(SendBuffer::len(&r));
        let mut head = [0; 1];
        if ack > 0 {
            assert_eq!(r.peek(0, &mut head), 1);
            assert_eq!(head[0], pattern(pos));
        }
        r.consume(ack);
        pos += ack;
        if ack == 0 {
            std::thread::yield_now();
        }
    }
    producer.join().unwrap();
    assert!(SendBuffer::is_empty(&r));
}

#[test]
fn test_recv_ring_two_threads_in_order() {
    let (mut w, mut r) = recv_ring(4093);
    let producer = std::thread::spawn(move || {
        let mut sizes = Sizes(0x2545_F491_4F6C_DD1D);
        let mut seg = Vec::new();
        let mut pos = 0;
        while pos < STRESS_BYTES {
            let n = sizes
                .next(1460)
                .min(STRESS_BYTES - pos)
                .min(RecvBuffer::free(&w));
            if n == 0 {
                std::thread::yield_now();
                continue;
            }
            seg.clear();
            seg.extend((pos..pos + n).map(pattern));
            // The second half arrives first, then the hole is filled.
            let split = n / 2;
            assert_eq!(w.write_at(split, &seg[split..]), n - split);
            assert_eq!(w.write_at(0, &seg[..split]), split);
            w.commit(n);
            pos += n;
        }
    });
    let mut sizes = Sizes(0x1405_7B7E_F767_814F);
    let mut buf = vec![0; 3000];
    let mut pos = 0;
    while pos < STRESS_BYTES {
        let want = sizes.next(3000);
        let n = if want % 4 == 1 {
            let mut rb = ReadBuf::new(&mut buf[..want]);
            r.read_buf(&mut rb)
        } else {
            r.read(&mut buf[..want])
        };
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pattern(pos + i), "position {}", pos + i);
        }
        pos += n;
        if n == 0 {
            std::thread::yield_now();
        }
    }
    producer.join().unwrap();
    assert!(r.is_empty());
}

/// Two cache lines: `head` alone, `tail` with the rest (part of the heap
/// cost of every connection, see `tests/memory.rs`).
#[test]
fn ring_state_is_two_cache_lines() {
    assert_eq!(std::mem::size_of::<super::Ring>(), 128);
}
