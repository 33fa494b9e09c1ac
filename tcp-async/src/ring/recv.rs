//! The receive ring: the driver places and publishes, the application reads.

use tokio::io::ReadBuf;

use std::marker::PhantomData;

use super::sync::Arc;
use super::Ring;

/// Creates a receive ring that holds up to `capacity` bytes, readable and
/// out-of-order together.
///
/// Memory is allocated on the first write, without locks, and freed again
/// by [`RecvWriter::release_if_idle`] once the ring stayed empty.
///
/// # Panics
/// If `capacity` exceeds `usize::MAX / 4`.
///
/// # Examples
/// ```
/// use tcp_async::ring::recv_ring;
/// use tcp_stack::RecvBuffer;
///
/// let (mut driver, mut app) = recv_ring(16);
/// driver.write_at(5, b" world"); // arrived early
/// driver.write_at(0, b"hello");
/// driver.commit(11);
/// let mut buf = [0; 16];
/// assert_eq!(app.read(&mut buf), 11);
/// assert_eq!(&buf[..11], b"hello world");
/// ```
pub fn recv_ring(capacity: usize) -> (RecvWriter, RecvReader) {
    let ring = Arc::new(Ring::new(capacity));
    (
        RecvWriter {
            ring: ring.clone(),
            _not_sync: PhantomData,
        },
        RecvReader { ring },
    )
}

/// The driver's half of a receive ring: the producer, as a
/// [`tcp_stack::RecvBuffer`].
///
/// Not `Sync`: its `&self` methods (`peek`, `release_if_idle`) run on the
/// one thread that holds it, so a `peek` never overlaps a release.
#[derive(Debug)]
pub struct RecvWriter {
    pub(super) ring: Arc<Ring>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl RecvWriter {
    /// Frees the ring's storage if the [`RecvReader`] has read every byte,
    /// no out-of-order bytes are held, and nothing was published since the
    /// previous call; the next write allocates again. Returns true when the
    /// ring holds no storage afterwards.
    ///
    /// Meant to be called periodically: storage is freed only after a whole
    /// period without new bytes, not at every moment the ring is empty.
    pub fn release_if_idle(&self) -> bool {
        let ring = &*self.ring;
        if !ring.has_storage() {
            return true;
        }
        ring.quiet_since_last_check() && ring.release()
    }
}

impl tcp_stack::RecvBuffer for RecvWriter {
    fn len(&self) -> usize {
        self.ring.producer_len().0
    }

    fn capacity(&self) -> usize {
        self.ring.cap()
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        self.ring.produce(offset, data)
    }

    fn commit(&mut self, n: usize) {
        self.ring.publish(n);
    }

    /// Consumes as the consumer, for the stack's own `recv` path.
    ///
    /// Only valid while the [`RecvReader`] is not reading concurrently (idle
    /// or dropped). If it is, this reads nothing and returns 0 instead of
    /// racing with it.
    fn read(&mut self, dst: &mut [u8]) -> usize {
        let ring = &*self.ring;
        if !ring.guard.enter_borrowed() {
            return 0;
        }
        let n = ring.peek_at(0, dst);
        ring.consume(n);
        ring.guard.exit_borrowed();
        n
    }

    /// Moves every byte, readable and out-of-order, into new storage of
    /// `capacity` bytes (the core's receive autotuning). Returns false, to
    /// be asked again later, while the [`RecvReader`] is inside a read or
    /// when the bytes straddle the end of the position space; allocates, but
    /// only when it grows.
    fn grow(&mut self, capacity: usize) -> bool {
        // Takes the consumer role: the old storage is freed.
        self.ring.grow_borrowing(capacity)
    }

    /// Copies readable bytes without consuming them. Safe at any time: the
    /// bytes can only be overwritten by this half.
    fn peek(&self, dst: &mut [u8]) -> usize {
        self.ring.peek_at(0, dst)
    }
}

/// The application's half of a receive ring: the consumer.
#[derive(Debug)]
pub struct RecvReader {
    pub(super) ring: Arc<Ring>,
}

impl RecvReader {
    /// Moves readable bytes into `dst`; returns the count (0 when empty).
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let ring = &*self.ring;
        // Waits out a concurrent (misused) `RecvWriter::read`.
        ring.guard.enter_owner();
        let n = ring.peek_at(0, dst);
        ring.consume(n);
        ring.guard.exit_owner();
        n
    }

    /// Copies readable bytes into `dst` without consuming them.
    pub fn peek(&self, dst: &mut [u8]) -> usize {
        let ring = &*self.ring;
        ring.guard.enter_owner();
        let n = ring.peek_at(0, dst);
        ring.guard.exit_owner();
        n
    }

    /// Moves readable bytes into the unfilled part of `buf` and advances it;
    /// returns the count.
    pub fn read_buf(&mut self, buf: &mut ReadBuf<'_>) -> usize {
        let want = buf.remaining().min(self.len());
        if want == 0 {
            return 0;
        }
        // Initialises (zeroes) only what is about to be filled, and only the
        // first time; keeps this module's unsafe code to the ring itself.
        let n = self.read(buf.initialize_unfilled_to(want));
        buf.advance(n);
        n
    }

    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.ring.consumer_len().0
    }

    /// True when nothing is readable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.ring.cap()
    }
}
