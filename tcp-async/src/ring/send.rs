//! The send ring: the application writes, the driver segments and releases.

use std::io::IoSlice;

use std::marker::PhantomData;

use super::sync::Arc;
use super::Ring;

/// Creates a send ring that holds up to `capacity` bytes.
///
/// Memory is allocated on the first write, without locks, and freed again
/// by [`SendReader::release_if_idle`] once the ring stayed empty.
///
/// # Panics
/// If `capacity` exceeds `usize::MAX / 4`.
///
/// # Examples
/// ```
/// use tcp_async::ring::send_ring;
/// use tcp_stack::SendBuffer;
///
/// let (mut app, mut driver) = send_ring(8);
/// assert_eq!(app.write(b"hello world"), 8);
/// let mut seg = [0; 3];
/// assert_eq!(driver.peek(2, &mut seg), 3);
/// assert_eq!(&seg, b"llo");
/// driver.consume(5); // acknowledged
/// assert_eq!(app.free(), 5);
/// ```
pub fn send_ring(capacity: usize) -> (SendWriter, SendReader) {
    let ring = Arc::new(Ring::new(capacity));
    (
        SendWriter { ring: ring.clone() },
        SendReader {
            ring,
            _not_sync: PhantomData,
        },
    )
}

/// The application's half of a send ring: the producer.
#[derive(Debug)]
pub struct SendWriter {
    pub(super) ring: Arc<Ring>,
}

impl SendWriter {
    /// Appends as much of `data` as fits; returns how many bytes were taken
    /// (0 when the ring is full).
    pub fn write(&mut self, data: &[u8]) -> usize {
        self.write_vectored(&[IoSlice::new(data)])
    }

    /// Appends as much of `bufs`, in order, as fits; returns the byte count.
    /// The bytes become visible to the driver all at once.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        let ring = &*self.ring;
        // Waits out a concurrent `SendReader::enqueue` or idle release.
        ring.guard.enter_owner();
        let mut n = 0;
        for buf in bufs {
            let took = ring.produce(n, buf);
            n += took;
            if took < buf.len() {
                break;
            }
        }
        ring.publish(n);
        ring.guard.exit_owner();
        n
    }

    /// Bytes that can be written now.
    pub fn free(&self) -> usize {
        {
            let (len, cap) = self.ring.producer_len();
            cap - len
        }
    }

    /// Bytes held: written but not yet acknowledged.
    pub fn len(&self) -> usize {
        self.ring.producer_len().0
    }

    /// True when every written byte has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.ring.cap()
    }
}

/// The driver's half of a send ring: the consumer, as a
/// [`tcp_stack::SendBuffer`].
///
/// Not `Sync`: its `&self` methods (`peek`, `release_if_idle`) run on the
/// one thread that holds it.
#[derive(Debug)]
pub struct SendReader {
    pub(super) ring: Arc<Ring>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl SendReader {
    /// Frees the ring's storage if every written byte was acknowledged, the
    /// [`SendWriter`] wrote nothing since the previous call, and it is not
    /// writing right now; the next write allocates again. Returns true when
    /// the ring holds no storage afterwards.
    ///
    /// Meant to be called periodically: storage is freed only after a whole
    /// period without writes, not at every moment the ring is empty.
    pub fn release_if_idle(&self) -> bool {
        let ring = &*self.ring;
        if !ring.has_storage() {
            return true;
        }
        if !ring.quiet_since_last_check() || !ring.guard.enter_borrowed() {
            return false;
        }
        // We hold the producer role; `head` is our own.
        let released = ring.release();
        ring.guard.exit_borrowed();
        released
    }
}

impl tcp_stack::SendBuffer for SendReader {
    fn len(&self) -> usize {
        self.ring.consumer_len().0
    }

    fn capacity(&self) -> usize {
        self.ring.cap()
    }

    /// Writes as the producer, for the stack's own `send` path.
    ///
    /// Only valid while the [`SendWriter`] is not writing concurrently (idle
    /// or dropped). If it is, this takes nothing and returns 0 instead of
    /// racing with it.
    fn enqueue(&mut self, data: &[u8]) -> usize {
        let ring = &*self.ring;
        if !ring.guard.enter_borrowed() {
            return 0;
        }
        let n = ring.produce(0, data);
        ring.publish(n);
        ring.guard.exit_borrowed();
        n
    }

    fn peek(&self, offset: usize, dst: &mut [u8]) -> usize {
        self.ring.peek_at(offset, dst)
    }

    fn consume(&mut self, n: usize) {
        self.ring.consume(n);
    }

    /// Moves every byte held (unacknowledged and unsent) into new storage of
    /// `capacity` bytes (the core's send buffer auto-sizing). Returns false,
    /// to be asked again later, while the [`SendWriter`] is inside a write
    /// or when the bytes straddle the end of the position space; allocates,
    /// but only when it grows.
    fn grow(&mut self, capacity: usize) -> bool {
        // Takes the producer role: the writer is excluded while the old
        // storage is copied and freed.
        self.ring.grow_borrowing(capacity)
    }
}
