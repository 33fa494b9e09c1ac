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
    Release,
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
        1 => Just(SendOp::Release),
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
    Release,
    Grow(usize),
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
        1 => Just(RecvOp::Release),
        1 => (0usize..8).prop_map(RecvOp::Grow),
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
                SendOp::Release => {
                    // Twice: the first call may only note the tail.
                    r.release_if_idle();
                    let released = r.release_if_idle();
                    prop_assert_eq!(released, model.is_empty());
                    prop_assert_eq!(r.ring.has_storage(), !released);
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
        let mut cap = cap;
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
                RecvOp::Release => {
                    w.release_if_idle();
                    let released = w.release_if_idle();
                    let ooo = pending.iter().any(Option::is_some);
                    prop_assert_eq!(released, readable.is_empty() && !ooo);
                    if released {
                        // Out-of-order bytes are only dropped with the storage
                        // when none are held; the model agrees.
                        pending.iter_mut().for_each(|b| *b = None);
                    }
                }
                RecvOp::Grow(extra) => {
                    let head = r.ring.head.load(Ordering::Relaxed);
                    let tail = r.ring.tail.load(Ordering::Relaxed);
                    let grown = w.grow(cap + extra);
                    // Refused only when the bytes straddle the position wrap.
                    prop_assert_eq!(grown, extra == 0 || head <= tail);
                    if grown {
                        cap += extra;
                        pending.resize(cap, None);
                    }
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
    w.ring.guard.enter_owner();
    assert_eq!(r.enqueue(b"abc"), 0);
    w.ring.guard.exit_owner();
    assert_eq!(r.enqueue(b"abc"), 3);
    assert_eq!(w.write(b"def"), 3);

    let (mut w, mut r) = recv_ring(8);
    w.write_at(0, b"abc");
    w.commit(3);
    r.ring.guard.enter_owner();
    assert_eq!(w.read(&mut [0; 3]), 0);
    assert_eq!(w.peek(&mut [0; 3]), 3);
    r.ring.guard.exit_owner();
    assert_eq!(r.read(&mut [0; 3]), 3);
}

#[test]
fn test_owner_waits_for_a_borrowed_use() {
    let (mut w, r) = send_ring(8);
    assert!(w.ring.guard.enter_borrowed());
    let app = std::thread::spawn(move || w.write(b"abc"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    r.ring.guard.exit_borrowed();
    assert_eq!(app.join().unwrap(), 3);
    assert_eq!(SendBuffer::len(&r), 3);
}

#[test]
fn test_rings_are_send_and_app_halves_sync() {
    fn send<T: Send + 'static>() {}
    fn sync<T: Send + Sync + 'static>() {}
    sync::<SendWriter>();
    send::<SendReader>();
    send::<RecvWriter>();
    sync::<RecvReader>();
}

#[test]
fn test_core_buffers_downcast_to_the_driver_halves() {
    let (_w, r) = send_ring(4);
    let boxed: Box<dyn SendBuffer> = Box::new(r);
    assert!(as_send_reader(&*boxed).is_some());
    assert!(as_send_reader(&tcp_stack::VecSendBuffer::new(4)).is_none());
    let (w, _r) = recv_ring(4);
    let boxed: Box<dyn RecvBuffer> = Box::new(w);
    assert!(as_recv_writer(&*boxed).is_some());
    assert!(as_recv_writer(&tcp_stack::VecRecvBuffer::new(4)).is_none());
}

#[test]
fn test_send_ring_releases_after_a_quiet_period() {
    let (mut w, mut r) = send_ring(1 << 20);
    assert!(r.release_if_idle(), "nothing allocated yet");
    assert_eq!(w.write(b"hello"), 5);
    assert!(!r.release_if_idle(), "the tail moved since the last check");
    assert!(!r.release_if_idle(), "unacknowledged bytes");
    assert!(r.ring.has_storage());
    r.consume(5);
    assert!(r.release_if_idle());
    assert!(!r.ring.has_storage());
    // The next write allocates again; positions carry on.
    assert_eq!(w.write(b"again"), 5);
    let mut seg = [0; 5];
    assert_eq!(r.peek(0, &mut seg), 5);
    assert_eq!(&seg, b"again");
    // Not while the application is writing.
    r.consume(5);
    r.release_if_idle();
    w.ring.guard.enter_owner();
    assert!(!r.release_if_idle());
    w.ring.guard.exit_owner();
    assert!(r.release_if_idle());
}

#[test]
fn test_recv_ring_keeps_unread_and_out_of_order_bytes() {
    let (mut w, mut r) = recv_ring(16);
    w.write_at(0, b"ab");
    w.commit(2);
    w.release_if_idle();
    assert!(!w.release_if_idle(), "unread bytes");
    let mut buf = [0; 8];
    assert_eq!(r.read(&mut buf), 2);
    assert_eq!(w.write_at(3, b"late"), 4);
    w.release_if_idle();
    assert!(!w.release_if_idle(), "out-of-order bytes");
    w.write_at(0, b"xyz");
    w.commit(7);
    assert_eq!(r.read(&mut buf), 7);
    assert_eq!(&buf[..7], b"xyzlate");
    w.release_if_idle();
    assert!(w.release_if_idle());
    assert!(!r.ring.has_storage());
    // Re-allocated at the current tail: a wrapping write still reads back.
    assert_eq!(w.write_at(0, b"0123456789abcdef"), 16);
    w.commit(16);
    let mut all = [0; 16];
    assert_eq!(r.read(&mut all), 16);
    assert_eq!(&all, b"0123456789abcdef");
}

#[test]
fn test_recv_ring_grows_keeping_every_byte() {
    let (mut w, mut r) = recv_ring(8);
    w.write_at(0, b"abcdef");
    w.commit(6);
    let mut buf = [0; 16];
    assert_eq!(r.read(&mut buf[..4]), 4);
    // Readable "ef", then out-of-order "XY" two bytes past the tail.
    assert_eq!(w.write_at(2, b"XY"), 2);
    assert!(w.grow(16));
    assert_eq!((r.capacity(), RecvBuffer::capacity(&w)), (16, 16));
    assert_eq!(RecvBuffer::free(&w), 14);
    w.write_at(0, b"gh");
    w.commit(4);
    // Fill past the old capacity; the positions wrap at 32 now.
    assert_eq!(w.write_at(0, b"0123456789"), 10);
    w.commit(10);
    assert_eq!(r.read(&mut buf), 16);
    assert_eq!(&buf, b"efghXY0123456789");
    for round in 0..5u8 {
        let data = [round; 11];
        assert_eq!(w.write_at(0, &data), 11);
        w.commit(11);
        assert_eq!(r.read(&mut buf), 11);
        assert_eq!(buf[..11], data);
    }
    // Never shrinks; the same size is a no-op.
    assert!(!w.grow(4));
    assert!(w.grow(16));
}

#[test]
fn test_recv_ring_grow_waits_for_the_reader_and_the_wrap() {
    let (mut w, r) = recv_ring(4);
    r.ring.guard.enter_owner();
    assert!(!w.grow(8), "the reader is inside");
    r.ring.guard.exit_owner();
    assert!(w.grow(8));
    // Without storage, only the capacity changes.
    assert!(!r.ring.has_storage());
    let (mut w, mut r) = recv_ring(4);
    w.write_at(0, b"abc");
    w.commit(3);
    r.read(&mut [0; 3]);
    w.write_at(0, b"defgh");
    w.commit(4);
    // head 3, tail 7: positions under capacity 4 wrap at 8.
    r.read(&mut [0; 1]);
    w.write_at(0, b"i");
    w.commit(1);
    assert!(
        r.ring.tail.load(Ordering::Relaxed) < r.ring.head.load(Ordering::Relaxed),
        "setup: the bytes straddle the wrap"
    );
    assert!(!w.grow(8));
    let mut buf = [0; 4];
    assert_eq!(r.read(&mut buf), 4);
    assert_eq!(&buf, b"efgi");
    assert!(w.grow(8));
}

#[test]
fn test_send_ring_grows_keeping_unacked_and_unsent_bytes() {
    let (mut w, mut r) = send_ring(8);
    assert_eq!(w.write(b"abcdefghij"), 8);
    r.consume(3); // "abc" acknowledged
    assert_eq!(w.write(b"ij"), 2);
    assert_eq!(w.free(), 1);
    // The writer inside its role: not now.
    w.ring.guard.enter_owner();
    assert!(!r.grow(16));
    w.ring.guard.exit_owner();
    assert!(r.grow(16));
    assert_eq!((w.capacity(), SendBuffer::capacity(&r)), (16, 16));
    assert_eq!(w.free(), 9);
    let mut seg = [0; 7];
    assert_eq!(r.peek(0, &mut seg), 7);
    assert_eq!(&seg, b"defghij");
    assert_eq!(w.write(b"0123456789"), 9);
    let mut all = [0; 16];
    assert_eq!(r.peek(0, &mut all), 16);
    assert_eq!(&all, b"defghij012345678");
    // Round the larger ring a few times.
    for round in 0..5u8 {
        r.consume(16);
        assert_eq!(w.write(&[round; 16]), 16);
        assert_eq!(r.peek(0, &mut all), 16);
        assert_eq!(all, [round; 16]);
    }
    assert!(!r.grow(4), "never shrinks");
}

#[test]
fn test_out_of_order_gap_is_zeroed_not_uninitialised() {
    // Only bytes below `init` are ever read; a gap before an out-of-order
    // write is zeroed, so even a bogus commit reads zeroes.
    let (mut w, mut r) = recv_ring(8);
    w.write_at(5, b"z");
    assert_eq!(r.ring.init.load(Ordering::Relaxed), 6);
    w.commit(6);
    let mut dst = [1; 6];
    assert_eq!(r.read(&mut dst), 6);
    assert_eq!(dst, [0, 0, 0, 0, 0, b'z']);
}

#[test]
fn test_storage_is_initialised_only_as_far_as_written() {
    let (mut w, _r) = send_ring(1 << 20);
    assert_eq!(w.write(b"x"), 1);
    assert_eq!(w.ring.init.load(Ordering::Relaxed), 1);
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
            // Frees whenever the writer paused across two calls.
            r.release_if_idle();
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
            // Frees whenever the reader caught up across two calls.
            w.release_if_idle();
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
