//! Send and receive buffers behind small traits.
//!
//! The core only talks to these traits, so another crate (the Tokio front
//! end) can supply single-producer/single-consumer rings shared with the
//! application, and the bytes the application writes *are* the TCP send
//! buffer: no extra copy. The core ships [`VecSendBuffer`] and
//! [`VecRecvBuffer`] as plain defaults.
//!
//! Offsets are relative: for the send buffer, offset 0 is SND.UNA (the oldest
//! unacknowledged byte); for the receive buffer, offset 0 is the first byte
//! not yet readable (RCV.NXT).

use std::any::Any;
use std::collections::VecDeque;

/// The TCP send buffer: bytes queued by the application, from SND.UNA on.
pub trait SendBuffer: Any + Send {
    /// Bytes held (unacknowledged + not yet sent).
    fn len(&self) -> usize;
    /// True when no bytes are held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Largest number of bytes the buffer can hold.
    fn capacity(&self) -> usize;
    /// Free space for the application.
    fn free(&self) -> usize {
        self.capacity().saturating_sub(self.len())
    }
    /// Appends application bytes; returns how many were taken.
    fn enqueue(&mut self, data: &[u8]) -> usize;
    /// Copies bytes starting at `offset` into `dst`; returns the count copied
    /// (less than `dst.len()` only at the end of the data).
    fn peek(&self, offset: usize, dst: &mut [u8]) -> usize;
    /// Drops `n` acknowledged bytes from the front.
    fn consume(&mut self, n: usize);
    /// Raises the capacity to `capacity` keeping every byte; returns false
    /// if this buffer cannot grow.
    fn grow(&mut self, capacity: usize) -> bool {
        let _ = capacity;
        false
    }
}

/// The TCP receive buffer: readable bytes, then space where out-of-order
/// data is written before it becomes readable.
pub trait RecvBuffer: Any + Send {
    /// Readable bytes.
    fn len(&self) -> usize;
    /// True when nothing is readable.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Largest number of bytes the buffer can hold.
    fn capacity(&self) -> usize;
    /// Space after the readable bytes (what the receive window may offer).
    fn free(&self) -> usize {
        self.capacity().saturating_sub(self.len())
    }
    /// Writes `data` at `offset` past the readable bytes, clamped to the free
    /// space; returns how many bytes were stored. Does not make them readable.
    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize;
    /// Makes the first `n` written bytes readable.
    fn commit(&mut self, n: usize);
    /// Moves readable bytes into `dst`; returns the count.
    fn read(&mut self, dst: &mut [u8]) -> usize;
    /// Copies readable bytes into `dst` without consuming them.
    fn peek(&self, dst: &mut [u8]) -> usize;
    /// Grows the capacity to `capacity` keeping every byte (readable and
    /// out-of-order) at its offset; returns false if this buffer cannot grow.
    fn grow(&mut self, capacity: usize) -> bool {
        let _ = capacity;
        false
    }
}

/// Default send buffer: a `VecDeque` growing up to its capacity.
#[derive(Debug, Default)]
pub struct VecSendBuffer {
    data: VecDeque<u8>,
    capacity: usize,
}

impl VecSendBuffer {
    /// A buffer that holds at most `capacity` bytes; memory is allocated on demand.
    pub fn new(capacity: usize) -> Self {
        VecSendBuffer {
            data: VecDeque::new(),
            capacity,
        }
    }
}

impl SendBuffer for VecSendBuffer {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn enqueue(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.data.extend(&data[..n]);
        n
    }
    fn peek(&self, offset: usize, dst: &mut [u8]) -> usize {
        if offset >= self.data.len() {
            return 0;
        }
        let (a, b) = self.data.as_slices();
        let mut copied = 0;
        let mut off = offset;
        for part in [a, b] {
            if copied == dst.len() {
                break;
            }
            if off >= part.len() {
                off -= part.len();
                continue;
            }
            let src = &part[off..];
            let n = src.len().min(dst.len() - copied);
            dst[copied..copied + n].copy_from_slice(&src[..n]);
            copied += n;
            off = 0;
        }
        copied
    }
    fn grow(&mut self, capacity: usize) -> bool {
        // Memory is still allocated on demand: only the limit moves.
        self.capacity = self.capacity.max(capacity);
        true
    }
    fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
        if self.data.is_empty() && self.data.capacity() > 64 * 1024 {
            self.data = VecDeque::new();
        }
    }
}

/// Default receive buffer: a contiguous ring allocated on first use.
#[derive(Debug, Default)]
pub struct VecRecvBuffer {
    buf: Vec<u8>,
    capacity: usize,
    /// Index of the first readable byte.
    head: usize,
    /// Readable bytes.
    len: usize,
}

impl VecRecvBuffer {
    /// A buffer that holds at most `capacity` bytes; memory is allocated on demand.
    pub fn new(capacity: usize) -> Self {
        VecRecvBuffer {
            buf: Vec::new(),
            capacity,
            head: 0,
            len: 0,
        }
    }

    fn ensure_alloc(&mut self) {
        if self.buf.len() != self.capacity {
            self.buf = vec![0; self.capacity];
            self.head = 0;
        }
    }
}

impl RecvBuffer for VecRecvBuffer {
    fn len(&self) -> usize {
        self.len
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let free = self.free();
        if offset >= free || data.is_empty() {
            return 0;
        }
        if self.len == 0 && self.buf.len() != self.capacity {
            self.ensure_alloc();
        }
        let n = data.len().min(free - offset);
        let cap = self.capacity;
        let start = (self.head + self.len + offset) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }
    fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(self.capacity);
    }
    fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = self.peek(dst);
        self.head = (self.head + n) % self.capacity.max(1);
        // Never rebase `head` here: out-of-order bytes may already sit past
        // the readable region, at positions relative to it.
        self.len -= n;
        n
    }
    fn grow(&mut self, capacity: usize) -> bool {
        if capacity <= self.capacity {
            return true;
        }
        if self.buf.len() == self.capacity && self.capacity > 0 {
            // Unroll the ring from `head`, keeping offsets relative to it.
            let mut new = vec![0u8; capacity];
            let cap = self.capacity;
            let first = cap - self.head;
            new[..first].copy_from_slice(&self.buf[self.head..]);
            new[first..cap].copy_from_slice(&self.buf[..self.head]);
            self.buf = new;
            self.head = 0;
        }
        self.capacity = capacity;
        true
    }

    fn peek(&self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        if n == 0 {
            return 0;
        }
        let cap = self.capacity;
        let first = n.min(cap - self.head);
        dst[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }
}

/// Supplies buffers for new connections (active and passive).
pub trait BufferFactory: Send {
    /// Buffers for the new connection `conn`; `send`/`recv` are the configured sizes.
    fn buffers(
        &mut self,
        conn: crate::ConnId,
        send: usize,
        recv: usize,
    ) -> (Box<dyn SendBuffer>, Box<dyn RecvBuffer>);
}

/// The default factory: [`VecSendBuffer`] and [`VecRecvBuffer`].
#[derive(Debug, Default, Clone, Copy)]
pub struct VecBufferFactory;

impl BufferFactory for VecBufferFactory {
    fn buffers(
        &mut self,
        _conn: crate::ConnId,
        send: usize,
        recv: usize,
    ) -> (Box<dyn SendBuffer>, Box<dyn RecvBuffer>) {
        (
            Box::new(VecSendBuffer::new(send)),
            Box::new(VecRecvBuffer::new(recv)),
        )
    }
}
