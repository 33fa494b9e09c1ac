//! Lock-free single-producer/single-consumer byte rings: the TCP send and
//! receive buffers, shared between an application task and the driver task.
//!
//! The bytes the application writes into a [`SendWriter`] *are* the
//! connection's send buffer: the driver's [`SendReader`] (a
//! [`tcp_stack::SendBuffer`]) segments straight out of them and drops them
//! once acknowledged. In the other direction the driver's [`RecvWriter`] (a
//! [`tcp_stack::RecvBuffer`]) places segment payloads, out-of-order ones
//! included, and publishes them in order; the application's [`RecvReader`]
//! copies them out. No locks are taken on any path.
//!
//! # Design
//!
//! A ring is `capacity` bytes of storage plus two positions, `head` (owned by
//! the consumer) and `tail` (owned by the producer). Positions run over
//! `0..2 * capacity` and wrap there, so `tail - head` (mod `2 * capacity`)
//! tells a full ring from an empty one without a spare slot and without a
//! power-of-two capacity; a position maps to the storage index `pos` or
//! `pos - capacity`. Bytes in `head..tail` belong to the consumer, the rest
//! to the producer, which may also fill free space past `tail` before
//! publishing it (the receive side's out-of-order data).
//!
//! Storage is allocated lazily, without locks, by the producer's first write:
//! only the producer ever allocates, it stores the pointer before it
//! publishes any byte, and the consumer only dereferences it after seeing a
//! published byte. It is zero-filled (cheap: fresh pages) and freed when both
//! halves are dropped.
//!
//! # Memory ordering
//!
//! - The producer copies bytes in, then stores `tail` with `Release`; the
//!   consumer loads `tail` with `Acquire` before copying them out. So every
//!   byte it reads, and the storage pointer, happen-before its read.
//! - The consumer copies bytes out, then stores `head` with `Release`; the
//!   producer loads `head` with `Acquire` before reusing that space. So the
//!   consumer's reads happen-before the producer's overwrites.
//! - Each side loads its *own* position `Relaxed`: only the current holder of
//!   that role stores it.
//!
//! # Borrowed roles
//!
//! The core's traits give each driver-side half one method of the other
//! role: [`SendReader`]'s `enqueue` writes as the producer (the stack's own
//! `send` path) and [`RecvWriter`]'s `read` consumes as the consumer (the
//! stack's own `recv` path). They are only meant to be used while the
//! application half is idle or gone. To stay sound even if that is broken, a
//! role guard (one atomic word) arbitrates: the application half registers
//! each call with a `fetch_add`, the borrowed method claims the role with a
//! `compare_exchange` from zero; whichever side finds the other inside does
//! nothing and returns 0. Nobody ever waits on it. [`RecvWriter`]'s `peek`
//! needs no guard: it only reads, and the only writer is itself.
//!
//! The loom tests (`cfg(loom)`) check these orderings with every byte access
//! tracked; the proptests compare both rings against a `VecDeque` model.

mod recv;
mod send;
mod sync;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use recv::{recv_ring, RecvReader, RecvWriter};
pub use send::{send_ring, SendReader, SendWriter};

use sync::{AtomicPtr, AtomicUsize, Cell, Ordering};

/// Gives the consumer's position a cache line of its own, so that it and the
/// producer's position (with the rest of [`Ring`]) never share one.
#[repr(align(64))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Arbitrates one role between its owner and a borrowed use (see the module
/// docs). Never waited on.
struct RoleGuard(AtomicUsize);

/// Set while the borrowed use holds the role; the low bits count owner calls.
const BORROWED: usize = 1 << (usize::BITS - 1);

impl RoleGuard {
    fn new() -> Self {
        RoleGuard(AtomicUsize::new(0))
    }

    /// The owner starts a call; false when the role is borrowed right now.
    fn enter_owner(&self) -> bool {
        // Acquire: a previous borrowed use of the role happens-before this call.
        if self.0.fetch_add(1, Ordering::Acquire) & BORROWED != 0 {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn exit_owner(&self) {
        // Release: this call happens-before a later borrowed use.
        self.0.fetch_sub(1, Ordering::Release);
    }

    /// The borrowed use starts; false when the owner is inside a call.
    fn enter_borrowed(&self) -> bool {
        self.0
            .compare_exchange(0, BORROWED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn exit_borrowed(&self) {
        self.0.fetch_sub(BORROWED, Ordering::Release);
    }
}

/// The state shared by the two halves of either ring.
struct Ring {
    capacity: usize,
    /// First byte the consumer has not released; stored only by the consumer.
    head: Padded<AtomicUsize>,
    /// End of the published bytes; stored only by the producer. Shares the
    /// second cache line with the fields below: `head` alone is padded, which
    /// keeps the two positions apart in two lines instead of three (a ring,
    /// with its `Arc` counts, is 192 bytes instead of 256).
    tail: AtomicUsize,
    /// `capacity` cells, or null until the producer's first write.
    buf: AtomicPtr<Cell>,
    /// Guards the producer role (send ring) or the consumer role (recv ring).
    guard: RoleGuard,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        assert!(
            capacity <= usize::MAX / 4,
            "ring capacity {capacity} is too large"
        );
        Ring {
            capacity,
            head: Padded(AtomicUsize::new(0)),
            tail: AtomicUsize::new(0),
            buf: AtomicPtr::new(std::ptr::null_mut()),
            guard: RoleGuard::new(),
        }
    }

    /// Bytes from position `from` to position `to`.
    fn distance(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + 2 * self.capacity - from
        }
    }

    /// Position `pos` moved on by `n <= capacity` bytes.
    fn advance(&self, pos: usize, n: usize) -> usize {
        let p = pos + n;
        if p >= 2 * self.capacity {
            p - 2 * self.capacity
        } else {
            p
        }
    }

    /// Storage index of position `pos`.
    fn index(&self, pos: usize) -> usize {
        if pos >= self.capacity {
            pos - self.capacity
        } else {
            pos
        }
    }

    /// Published bytes, as seen by the producer.
    fn producer_len(&self) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        self.distance(head, tail).min(self.capacity)
    }

    /// Published bytes, as seen by the consumer.
    fn consumer_len(&self) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        self.distance(head, tail).min(self.capacity)
    }

    /// Producer only: the storage, allocated on first use.
    fn storage(&self) -> *mut Cell {
        let mut base = self.buf.load(Ordering::Relaxed);
        if base.is_null() {
            base = sync::alloc(self.capacity);
            // Release is not strictly needed (the tail store that publishes
            // the first byte orders it) but makes the hand-off obvious.
            self.buf.store(base, Ordering::Release);
        }
        base
    }

    /// Producer only: copies `data` into free space `offset` bytes past the
    /// tail without publishing it; returns how many bytes fit.
    fn produce(&self, offset: usize, data: &[u8]) -> usize {
        let free = self.capacity - self.producer_len();
        if offset >= free || data.is_empty() {
            return 0;
        }
        let n = data.len().min(free - offset);
        let base = self.storage();
        let tail = self.tail.load(Ordering::Relaxed);
        let start = self.index(self.advance(tail, offset));
        let first = n.min(self.capacity - start);
        // SAFETY: `base` holds `capacity` cells and both ranges are inside
        // it. They lie in `tail..tail + free`, which the consumer does not
        // touch: it stays behind `tail` until we publish, and the Acquire
        // load of `head` in `producer_len` ordered its last reads of this
        // space before our writes. We are the only producer (role owner, or
        // holder of the guard).
        unsafe {
            sync::write(base, start, &data[..first]);
            sync::write(base, 0, &data[first..n]);
        }
        n
    }

    /// Producer only: makes the next `n` bytes (clamped to the free space)
    /// readable; returns how many.
    fn publish(&self, n: usize) -> usize {
        let n = n.min(self.capacity - self.producer_len());
        if n > 0 {
            // Publishing bytes never written (a `commit` past `write_at`)
            // still needs storage behind them: zeroes.
            self.storage();
            let tail = self.tail.load(Ordering::Relaxed);
            self.tail.store(self.advance(tail, n), Ordering::Release);
        }
        n
    }

    /// Consumer only: copies published bytes from `offset` past the head
    /// into `dst`; returns the count.
    fn peek_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        let len = self.consumer_len();
        if offset >= len || dst.is_empty() {
            return 0;
        }
        let n = dst.len().min(len - offset);
        let base = self.buf.load(Ordering::Acquire);
        debug_assert!(!base.is_null(), "published bytes without storage");
        let head = self.head.load(Ordering::Relaxed);
        let start = self.index(self.advance(head, offset));
        let first = n.min(self.capacity - start);
        // SAFETY: published bytes exist, so the producer allocated `base`
        // before its Release store of `tail`, which our Acquire load read.
        // Both ranges lie in `head..tail`, which the producer does not write
        // until we move `head` past them, and its writes to them
        // happen-before this read through the same tail load.
        unsafe {
            sync::read(base, start, &mut dst[..first]);
            sync::read(base, 0, &mut dst[first..n]);
        }
        n
    }

    /// Consumer only: releases `n` bytes (clamped to the published ones)
    /// from the head; returns how many.
    fn consume(&self, n: usize) -> usize {
        let n = n.min(self.consumer_len());
        if n > 0 {
            let head = self.head.load(Ordering::Relaxed);
            self.head.store(self.advance(head, n), Ordering::Release);
        }
        n
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let base = self.buf.load(Ordering::Acquire);
        if !base.is_null() {
            // SAFETY: `base` came from `alloc(capacity)`; `&mut self` means
            // neither half can use it any more.
            unsafe { sync::dealloc(base, self.capacity) }
        }
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("tail", &self.tail.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
