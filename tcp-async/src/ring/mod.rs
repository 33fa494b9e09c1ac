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
//! power-of-two capacity; a position maps to the storage index given by its
//! distance from `origin` (below), mod `capacity`. Bytes in `head..tail` belong to the consumer, the rest
//! to the producer, which may also fill free space past `tail` before
//! publishing it (the receive side's out-of-order data).
//!
//! # Storage
//!
//! Storage is allocated lazily, without locks, by the producer's first write
//! and is *not* initialised: an idle connection's pages stay untouched. Only
//! the producer ever allocates; it stores the pointer, and `origin` (the
//! position that storage index 0 stands for: the tail at allocation time),
//! before it publishes any byte, and the consumer only dereferences them
//! after seeing a published byte. Numbering from the tail at allocation
//! makes the first lap fill the storage from index 0 upwards.
//!
//! Only initialised bytes are ever read. The producer keeps `init`: storage
//! indices `0..init` are initialised, and everything it wrote lies below
//! `init`. A write that starts past `init` (an out-of-order segment) first
//! zeroes the gap `init..start`, and `publish` zeroes up to the end of what
//! it publishes, so a `commit` past the written bytes exposes zeroes, never
//! uninitialised memory. Published bytes, the only ones read (by `peek` and
//! `read` on either side), thus always lie below `init`; after one lap
//! `init == capacity` and these checks cost a comparison.
//!
//! # Releasing idle storage
//!
//! [`RecvWriter::release_if_idle`] and [`SendReader::release_if_idle`], both
//! called by the driver, free the storage of a ring that is empty, holds no
//! unpublished (out-of-order) bytes, and whose tail has not moved since the
//! previous call (so a connection must stay idle for a whole sweep period:
//! a request/response exchange does not free and re-allocate every time).
//! The next write allocates again, at a new `origin`. Positions are kept,
//! so nobody has to reset the other side's position. The rule:
//!
//! > Storage is freed only by the holder of the producer role, after it saw
//! > `head == tail` with an `Acquire` load of `head`.
//!
//! - The consumer touches storage only for published bytes: after an
//!   `Acquire` load of `tail` that shows bytes past its `head`, and before
//!   the `Release` store of `head` that gives them back. So `head == tail`,
//!   seen with `Acquire`, means all its reads happen-before the free. Its
//!   next access needs a `tail` past `head`, which only a later `publish`
//!   can store, after the new allocation and `origin`: its `Acquire` load of
//!   `tail` then makes it see the new pointer, never the freed one.
//! - The producer's own unpublished bytes (the receive side's out-of-order
//!   data past `tail`) are tracked in `pending`, the extent written past
//!   `tail`; storage is kept while it is non-zero.
//! - Receive ring: the producer is the driver's [`RecvWriter`] itself. Its
//!   `peek` reads as a consumer but runs on the same thread (the driver
//!   halves are `!Sync`, so their `&self` methods never run concurrently).
//! - Send ring: the producer is the application's [`SendWriter`]. The driver
//!   borrows the producer role through the role guard (below), exactly like
//!   `enqueue`; it is the consumer itself, so `head` is its own.
//!
//! # Growing
//!
//! Both rings grow on demand: the core's receive autotuning calls
//! [`RecvWriter::grow`](tcp_stack::RecvBuffer::grow), its send buffer
//! auto-sizing [`SendReader::grow`](tcp_stack::SendBuffer::grow). The driver,
//! holding one role, also takes the application's through the role guard
//! (giving up if the application is inside a read or write), copies every byte from `head` to
//! `tail + pending` into new storage whose `origin` is `head`, frees the old
//! storage and stores the new capacity. Positions are not renumbered, so
//! `head` stays the application's: growing is refused (and asked again
//! later) while `tail < head`, i.e. the bytes straddle the end of the
//! position space `2 * capacity`, which moves with the capacity. With
//! `head <= tail` both positions mean the same under either capacity.
//!
//! On the send side the application is the producer: it loads the
//! capacity inside its role (after the guard's `Acquire`) for a write, and
//! outside it only to report `free()`, where an old capacity just
//! under-reports the room.
//!
//! On the receive side the consumer loads the capacity after its `Acquire` load of `tail` and
//! uses that one value for the whole operation: new bytes published after a
//! grow bring the new capacity (and storage) with them, and with no new
//! bytes the length `tail - head` is the same under either capacity. Its
//! storage accesses happen inside its role, after an `Acquire` on the guard
//! that pairs with the grow's `Release` on leaving it. The capacity never
//! shrinks: the window offered to the peer never does either.
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
//!   that role stores it. The producer-only fields (`init`, `pending`) are
//!   `Relaxed` too; a borrowed producer role is ordered by the role guard.
//! - `origin` is stored by the producer before the `Release` store of `tail`
//!   that publishes the first byte in new storage, and loaded `Relaxed` by
//!   the consumer after its `Acquire` load of `tail`.
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
//! `compare_exchange` from zero. The borrowed use gives up (returns 0, or
//! frees or grows nothing) when the application half is inside; the
//! application half instead waits for a borrowed use to finish, which is
//! short (a copy, a free, or a grow's copy of the buffered bytes) and never
//! waits itself, so an application call is never refused spuriously (an
//! empty write would look like a full ring, and nothing would wake it).
//! [`RecvWriter`]'s `peek` needs no guard: it only reads, and the only
//! writer is itself.
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

#[cfg(all(any(test, feature = "fuzzing"), not(loom)))]
#[doc(hidden)]
pub mod fuzzing;

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
/// docs). The borrowed use never waits on it; the owner waits out a borrowed
/// use, which is short and never waits itself.
struct RoleGuard(AtomicUsize);

/// Set while the borrowed use holds the role; the low bits count owner calls.
const BORROWED: usize = 1 << (usize::BITS - 1);

impl RoleGuard {
    fn new() -> Self {
        RoleGuard(AtomicUsize::new(0))
    }

    /// The owner starts a call, first waiting for a borrowed use to end.
    fn enter_owner(&self) {
        let mut spins = 0;
        // Acquire: a previous borrowed use of the role happens-before this call.
        while self.0.fetch_add(1, Ordering::Acquire) & BORROWED != 0 {
            self.0.fetch_sub(1, Ordering::Relaxed);
            while self.0.load(Ordering::Relaxed) & BORROWED != 0 {
                sync::spin(&mut spins);
            }
        }
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
    /// Stored only by the receive ring's producer, in `grow`.
    capacity: AtomicUsize,
    /// First byte the consumer has not released; stored only by the consumer.
    head: Padded<AtomicUsize>,
    /// End of the published bytes; stored only by the producer. Shares the
    /// second cache line with the fields below: `head` alone is padded, which
    /// keeps the two positions apart in two lines instead of three (a ring,
    /// with its `Arc` counts, is 192 bytes instead of 256).
    tail: AtomicUsize,
    /// `capacity` cells, or null before the producer's first write and after
    /// an idle release.
    buf: AtomicPtr<Cell>,
    /// The position storage index 0 stands for: the tail when `buf` was
    /// allocated. Stored by the producer, with `buf`.
    origin: AtomicUsize,
    /// Producer only: storage indices `0..init` are initialised.
    init: AtomicUsize,
    /// Producer only: how far past `tail` bytes were written but not yet
    /// published (the receive side's out-of-order data).
    pending: AtomicUsize,
    /// Driver only: `tail` at the previous idle check.
    mark: AtomicUsize,
    /// Guards the producer role (send ring) or the consumer role (recv ring).
    guard: RoleGuard,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        assert!(
            capacity <= MAX_CAPACITY,
            "ring capacity {capacity} is too large"
        );
        Ring {
            capacity: AtomicUsize::new(capacity),
            head: Padded(AtomicUsize::new(0)),
            tail: AtomicUsize::new(0),
            buf: AtomicPtr::new(std::ptr::null_mut()),
            origin: AtomicUsize::new(0),
            init: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            mark: AtomicUsize::new(0),
            guard: RoleGuard::new(),
        }
    }

    /// The capacity, for getters and for the producer (its only writer).
    /// The consumer's operations use the one [`Ring::consumer_len`] returns.
    fn cap(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Published bytes and the capacity, as seen by the producer.
    fn producer_len(&self) -> (usize, usize) {
        let cap = self.cap();
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        (distance(cap, head, tail).min(cap), cap)
    }

    /// Published bytes and the capacity, as seen by the consumer. The
    /// capacity is loaded after `tail`, so it is the one the published bytes
    /// were written under (see "Growing").
    fn consumer_len(&self) -> (usize, usize) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let cap = self.cap();
        (distance(cap, head, tail).min(cap), cap)
    }

    /// Producer only: the storage, allocated (uninitialised) if there is none.
    fn storage(&self, cap: usize) -> *mut Cell {
        let mut base = self.buf.load(Ordering::Relaxed);
        if base.is_null() {
            base = sync::alloc(cap);
            self.origin
                .store(self.tail.load(Ordering::Relaxed), Ordering::Relaxed);
            self.init.store(0, Ordering::Relaxed);
            // Release is not strictly needed (the tail store that publishes
            // the first byte orders it) but makes the hand-off obvious.
            self.buf.store(base, Ordering::Release);
        }
        base
    }

    /// Producer only: zeroes storage indices from `init` up to `to`, so that
    /// `0..to` is initialised.
    fn zero_to(&self, base: *mut Cell, to: usize) {
        let init = self.init.load(Ordering::Relaxed);
        if to > init {
            // SAFETY: `init..to` lies inside the storage (`to <= capacity`)
            // and holds no published byte (those lie below `init`), so the
            // consumer does not touch it; we are the only producer.
            unsafe { sync::zero(base, init, to) };
            self.init.store(to, Ordering::Relaxed);
        }
    }

    /// Producer only: copies `data` into free space `offset` bytes past the
    /// tail without publishing it; returns how many bytes fit.
    fn produce(&self, offset: usize, data: &[u8]) -> usize {
        let (len, cap) = self.producer_len();
        let free = cap - len;
        if offset >= free || data.is_empty() {
            return 0;
        }
        let n = data.len().min(free - offset);
        let base = self.storage(cap);
        let origin = self.origin.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let start = index(cap, origin, advance(cap, tail, offset));
        let first = n.min(cap - start);
        // An out-of-order write past the initialised part: zero the gap.
        self.zero_to(base, start);
        // SAFETY: `base` holds `cap` cells and both ranges are inside it.
        // They lie in `tail..tail + free`, which the consumer does not
        // touch: it stays behind `tail` until we publish, and the Acquire
        // load of `head` in `producer_len` ordered its last reads of this
        // space before our writes. We are the only producer (role owner, or
        // holder of the guard).
        unsafe {
            sync::write(base, start, &data[..first]);
            sync::write(base, 0, &data[first..n]);
        }
        // The wrapped part (if any) lies below `start`, already initialised.
        if start + first > self.init.load(Ordering::Relaxed) {
            self.init.store(start + first, Ordering::Relaxed);
        }
        if offset + n > self.pending.load(Ordering::Relaxed) {
            self.pending.store(offset + n, Ordering::Relaxed);
        }
        n
    }

    /// Producer only: makes the next `n` bytes (clamped to the free space)
    /// readable; returns how many.
    fn publish(&self, n: usize) -> usize {
        let (len, cap) = self.producer_len();
        let n = n.min(cap - len);
        if n > 0 {
            let base = self.storage(cap);
            let origin = self.origin.load(Ordering::Relaxed);
            let tail = self.tail.load(Ordering::Relaxed);
            // Bytes never written (a `commit` past `write_at`) read as
            // zeroes, never as uninitialised memory. A no-op when they were
            // written; a wrapped part lies below a full `init`.
            let start = index(cap, origin, tail);
            self.zero_to(base, (start + n).min(cap));
            let pending = self.pending.load(Ordering::Relaxed);
            self.pending
                .store(pending.saturating_sub(n), Ordering::Relaxed);
            self.tail.store(advance(cap, tail, n), Ordering::Release);
        }
        n
    }

    /// Consumer only: copies published bytes from `offset` past the head
    /// into `dst`; returns the count.
    fn peek_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        let (len, cap) = self.consumer_len();
        if offset >= len || dst.is_empty() {
            return 0;
        }
        let n = dst.len().min(len - offset);
        let base = self.buf.load(Ordering::Acquire);
        debug_assert!(!base.is_null(), "published bytes without storage");
        let origin = self.origin.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        let start = index(cap, origin, advance(cap, head, offset));
        let first = n.min(cap - start);
        // SAFETY: published bytes exist, so the producer allocated `base`
        // (and set `origin`) before its Release store of `tail`, which our
        // Acquire load read; it cannot free it while they are unread. Both
        // ranges lie in `head..tail`, which the producer does not write
        // until we move `head` past them, and which it initialised before
        // that same tail store.
        unsafe {
            sync::read(base, start, &mut dst[..first]);
            sync::read(base, 0, &mut dst[first..n]);
        }
        n
    }

    /// Consumer only: releases `n` bytes (clamped to the published ones)
    /// from the head; returns how many.
    fn consume(&self, n: usize) -> usize {
        let (len, cap) = self.consumer_len();
        let n = n.min(len);
        if n > 0 {
            let head = self.head.load(Ordering::Relaxed);
            self.head.store(advance(cap, head, n), Ordering::Release);
        }
        n
    }

    /// True when the ring holds storage (a hint for the other side).
    fn has_storage(&self) -> bool {
        !self.buf.load(Ordering::Relaxed).is_null()
    }

    /// Driver only: true when the tail has not moved since the previous call.
    fn quiet_since_last_check(&self) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        self.mark.swap(tail, Ordering::Relaxed) == tail
    }

    /// Producer only: frees the storage if every published byte was consumed
    /// and no unpublished byte is held; true when no storage is left.
    fn release(&self) -> bool {
        let base = self.buf.load(Ordering::Relaxed);
        if base.is_null() {
            return true;
        }
        if self.pending.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let tail = self.tail.load(Ordering::Relaxed);
        // Acquire: the consumer's reads of every byte it released
        // happen-before the free.
        if self.head.load(Ordering::Acquire) != tail {
            return false;
        }
        // The consumer loads `buf` only after a later publish, which stores
        // the next allocation first (see the module docs).
        self.buf.store(std::ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: `base` came from `alloc(cap)`. The consumer released
        // every byte and will not dereference `base` again (it needs a new
        // publish first); we are the only producer.
        unsafe { sync::dealloc(base, self.cap()) };
        true
    }

    /// The driver's half: takes the application's role through the guard
    /// and grows; false while the application is inside its role.
    fn grow_borrowing(&self, new_cap: usize) -> bool {
        if !self.guard.enter_borrowed() {
            return false;
        }
        let grown = self.grow(new_cap);
        self.guard.exit_borrowed();
        grown
    }

    /// Holding both roles (the driver's own and the application's, through
    /// the guard): moves every byte, published and out-of-order, into
    /// storage of `new_cap` bytes, at the same positions; false if it cannot
    /// now (see "Growing").
    fn grow(&self, new_cap: usize) -> bool {
        let cap = self.cap();
        if new_cap <= cap || new_cap > MAX_CAPACITY {
            return new_cap == cap;
        }
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Relaxed);
        if tail < head {
            // The bytes straddle the end of the position space (`2 * cap`),
            // which moves with the capacity: try again later.
            return false;
        }
        let old = self.buf.load(Ordering::Relaxed);
        if !old.is_null() {
            let n = (tail - head) + self.pending.load(Ordering::Relaxed);
            let new = sync::alloc(new_cap);
            let origin = self.origin.load(Ordering::Relaxed);
            let start = index(cap, origin, head);
            let first = n.min(cap - start);
            // SAFETY: `head..tail + pending` is at most `cap` bytes, mapped
            // to the two old ranges, all initialised (below `init`: every
            // byte written or zeroed); the new ranges fit in `new_cap`. The
            // consumer is excluded by the guard, so nobody else touches
            // either storage, and `old` is not used after the free.
            unsafe {
                sync::copy(old, start, new, 0, first);
                sync::copy(old, 0, new, first, n - first);
                sync::dealloc(old, cap);
            }
            self.origin.store(head, Ordering::Relaxed);
            self.init.store(n, Ordering::Relaxed);
            self.buf.store(new, Ordering::Relaxed);
        }
        // The consumer reads these after entering its role (Acquire, paired
        // with our guard release) or after a later publish.
        self.capacity.store(new_cap, Ordering::Relaxed);
        true
    }
}

/// Largest ring capacity: positions run up to `2 * capacity`.
const MAX_CAPACITY: usize = usize::MAX / 4;

/// Bytes from position `from` to position `to`, in a ring of `cap` bytes.
fn distance(cap: usize, from: usize, to: usize) -> usize {
    if to >= from {
        to - from
    } else {
        to + 2 * cap - from
    }
}

/// Position `pos` moved on by `n <= cap` bytes.
fn advance(cap: usize, pos: usize, n: usize) -> usize {
    let p = pos + n;
    if p >= 2 * cap {
        p - 2 * cap
    } else {
        p
    }
}

/// Storage index of position `pos`, for storage of `cap` bytes whose index
/// 0 is the position `origin`.
fn index(cap: usize, origin: usize, pos: usize) -> usize {
    let d = distance(cap, origin, pos);
    if d >= cap {
        d - cap
    } else {
        d
    }
}

/// The [`SendReader`] behind a core send buffer, if it is one.
///
/// `<dyn Any>::downcast_ref` without trait upcasting (Rust 1.86; the crate
/// supports 1.80).
pub(crate) fn as_send_reader(buf: &dyn tcp_stack::SendBuffer) -> Option<&SendReader> {
    // `Any` is a supertrait: this is the concrete type's id, from the vtable.
    if std::any::Any::type_id(buf) != std::any::TypeId::of::<SendReader>() {
        return None;
    }
    // SAFETY: the object's concrete type is `SendReader` (checked above), so
    // the data pointer points to one, borrowed for as long as `buf`.
    Some(unsafe { &*(buf as *const dyn tcp_stack::SendBuffer).cast::<SendReader>() })
}

/// The [`RecvWriter`] behind a core receive buffer, if it is one.
pub(crate) fn as_recv_writer(buf: &dyn tcp_stack::RecvBuffer) -> Option<&RecvWriter> {
    if std::any::Any::type_id(buf) != std::any::TypeId::of::<RecvWriter>() {
        return None;
    }
    // SAFETY: as in `as_send_reader`.
    Some(unsafe { &*(buf as *const dyn tcp_stack::RecvBuffer).cast::<RecvWriter>() })
}

impl Drop for Ring {
    fn drop(&mut self) {
        let base = self.buf.load(Ordering::Acquire);
        if !base.is_null() {
            // SAFETY: `base` came from `alloc(capacity)`; `&mut self` means
            // neither half can use it any more.
            unsafe { sync::dealloc(base, self.cap()) }
        }
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.cap())
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("tail", &self.tail.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
