//! The primitives the rings are built from, swapped for loom's under
//! `cfg(loom)` so the model checker sees every atomic and every byte access.
//!
//! Storage is a run of `Cell`s behind a raw pointer: uninitialised bytes
//! normally, one `loom::cell::UnsafeCell<Option<u8>>` per byte under loom,
//! so that loom reports a producer and a consumer touching the same byte
//! without ordering (a free counts as a write of every byte), and a read of
//! a byte never written fails the model.

#[cfg(not(loom))]
mod imp {
    use std::mem::MaybeUninit;

    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;

    /// One byte of ring storage, initialised only once written.
    pub(crate) type Cell = MaybeUninit<u8>;

    /// Allocates `len` uninitialised cells: nothing is written, so the
    /// allocator's pages stay untouched (and non-resident) until used.
    pub(crate) fn alloc(len: usize) -> *mut Cell {
        let cells: Box<[Cell]> = std::iter::repeat_with(MaybeUninit::uninit)
            .take(len)
            .collect();
        Box::into_raw(cells).cast()
    }

    /// Frees storage from [`alloc`].
    ///
    /// # Safety
    /// `ptr` came from `alloc(len)` and is not used afterwards.
    pub(crate) unsafe fn dealloc(ptr: *mut Cell, len: usize) {
        // SAFETY: the caller guarantees `ptr`/`len` describe a live boxed
        // slice from `alloc` that nobody uses any more.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }

    /// Copies `src` to `base[at..at + src.len()]`.
    ///
    /// # Safety
    /// The range lies inside the allocation and no other thread accesses it
    /// during the call.
    pub(crate) unsafe fn write(base: *mut Cell, at: usize, src: &[u8]) {
        // SAFETY: in bounds and exclusively ours, per the caller; `src` is a
        // separate Rust slice, so the ranges cannot overlap. Writing a
        // `MaybeUninit<u8>` through a `u8` pointer initialises it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(at).cast(), src.len()) }
    }

    /// Zeroes `base[from..to]`.
    ///
    /// # Safety
    /// As for [`write`].
    pub(crate) unsafe fn zero(base: *mut Cell, from: usize, to: usize) {
        // SAFETY: in bounds and exclusively ours, per the caller.
        unsafe { std::ptr::write_bytes(base.add(from), 0, to - from) }
    }

    /// Copies `len` cells from `from[at..]` to `to[to_at..]`.
    ///
    /// # Safety
    /// Both ranges lie inside their (distinct) allocations and no other
    /// thread accesses them during the call.
    pub(crate) unsafe fn copy(
        from: *const Cell,
        at: usize,
        to: *mut Cell,
        to_at: usize,
        len: usize,
    ) {
        // SAFETY: in bounds, distinct and exclusively ours, per the caller.
        unsafe { std::ptr::copy_nonoverlapping(from.add(at), to.add(to_at), len) }
    }

    /// Copies `base[at..at + dst.len()]` to `dst`.
    ///
    /// # Safety
    /// The range lies inside the allocation, was initialised (written or
    /// zeroed), and no thread writes it during the call.
    pub(crate) unsafe fn read(base: *const Cell, at: usize, dst: &mut [u8]) {
        // SAFETY: in bounds, initialised and not written concurrently, per
        // the caller.
        unsafe { std::ptr::copy_nonoverlapping(base.add(at).cast(), dst.as_mut_ptr(), dst.len()) }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;

    /// `None` until written: reading it fails the model.
    pub(crate) type Cell = loom::cell::UnsafeCell<Option<u8>>;

    pub(crate) fn alloc(len: usize) -> *mut Cell {
        let cells: Box<[Cell]> = (0..len).map(|_| Cell::new(None)).collect();
        Box::into_raw(cells).cast()
    }

    pub(crate) unsafe fn dealloc(ptr: *mut Cell, len: usize) {
        // A free is a write of every byte: loom reports it racing a read.
        for i in 0..len {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            unsafe { (*ptr.add(i)).with_mut(|p| *p = None) }
        }
        // SAFETY: as in the std version.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }

    pub(crate) unsafe fn write(base: *mut Cell, at: usize, src: &[u8]) {
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            unsafe { (*base.add(at + i)).with_mut(|p| *p = Some(b)) }
        }
    }

    pub(crate) unsafe fn zero(base: *mut Cell, from: usize, to: usize) {
        for i in from..to {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            unsafe { (*base.add(i)).with_mut(|p| *p = Some(0)) }
        }
    }

    pub(crate) unsafe fn copy(
        from: *const Cell,
        at: usize,
        to: *mut Cell,
        to_at: usize,
        len: usize,
    ) {
        for i in 0..len {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            let b = unsafe { (*from.add(at + i)).with(|p| *p) };
            let b = b.expect("copy of a ring byte that was never written");
            // SAFETY: as above.
            unsafe { (*to.add(to_at + i)).with_mut(|p| *p = Some(b)) }
        }
    }

    pub(crate) unsafe fn read(base: *const Cell, at: usize, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            let b = unsafe { (*base.add(at + i)).with(|p| *p) };
            *d = b.expect("read of a ring byte that was never written");
        }
    }
}

/// Waits a moment for another thread to leave a short critical section.
pub(crate) fn spin(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *spins += 1;
        if *spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

pub(crate) use imp::*;
