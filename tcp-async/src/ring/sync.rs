//! The primitives the rings are built from, swapped for loom's under
//! `cfg(loom)` so the model checker sees every atomic and every byte access.
//!
//! Storage is a run of `Cell`s behind a raw pointer: plain bytes normally,
//! one `loom::cell::UnsafeCell<u8>` per byte under loom, so that loom reports
//! a producer and a consumer touching the same byte without ordering.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;

    /// One byte of ring storage.
    pub(crate) type Cell = u8;

    /// Allocates `len` zeroed cells. Zeroed so that no path can ever expose
    /// uninitialised memory, even if `commit` publishes bytes never written;
    /// `alloc_zeroed` maps fresh pages lazily, so this costs little.
    pub(crate) fn alloc(len: usize) -> *mut Cell {
        Box::into_raw(vec![0u8; len].into_boxed_slice()).cast()
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
        // separate Rust slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(at), src.len()) }
    }

    /// Copies `base[at..at + dst.len()]` to `dst`.
    ///
    /// # Safety
    /// The range lies inside the allocation, was initialised, and no thread
    /// writes it during the call.
    pub(crate) unsafe fn read(base: *const Cell, at: usize, dst: &mut [u8]) {
        // SAFETY: in bounds and not written concurrently, per the caller.
        unsafe { std::ptr::copy_nonoverlapping(base.add(at), dst.as_mut_ptr(), dst.len()) }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;

    pub(crate) type Cell = loom::cell::UnsafeCell<u8>;

    pub(crate) fn alloc(len: usize) -> *mut Cell {
        let cells: Box<[Cell]> = (0..len).map(|_| Cell::new(0)).collect();
        Box::into_raw(cells).cast()
    }

    pub(crate) unsafe fn dealloc(ptr: *mut Cell, len: usize) {
        // SAFETY: as in the std version.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }

    pub(crate) unsafe fn write(base: *mut Cell, at: usize, src: &[u8]) {
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            unsafe { (*base.add(at + i)).with_mut(|p| *p = b) }
        }
    }

    pub(crate) unsafe fn read(base: *const Cell, at: usize, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: in bounds per the caller; loom checks the exclusivity.
            *d = unsafe { (*base.add(at + i)).with(|p| *p) };
        }
    }
}

pub(crate) use imp::*;
