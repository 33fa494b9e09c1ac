//! Tasks waiting on a socket: every one is woken, as tokio wakes every
//! task waiting on a `ScheduledIo` for the readiness it asked for.
//!
//! One slot per direction holds the usual single waiter without allocating;
//! further tasks go to a boxed list, allocated only when two tasks wait on
//! the same direction at once. A task polling again replaces its own entry
//! (`Waker::will_wake`), so the list grows with the number of distinct
//! waiting tasks, and is bounded by [`MAX_EXTRA`]: past it every extra
//! waiter is woken early (a spurious wake-up; it registers again if still
//! waiting) rather than growing without end when futures are abandoned.
//!
//! A mutex, not an `AtomicWaker`: the registration (lock, unlock) and the
//! driver's wake (lock) are ordered by it, so a waiter that registers and
//! then checks the socket again cannot miss a wake-up that follows a state
//! change: either the wake finds its waker, or its check sees the change.
//! The critical sections are a few moves; the data path never takes it.

use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

/// Waiters beyond the first per direction, at most.
pub(crate) const MAX_EXTRA: usize = 64;

/// The waiters of one socket, in `D` directions (2 for a connection: read
/// and write; 1 for a listener).
pub(crate) struct Waiters<const D: usize> {
    inner: Mutex<Slots<D>>,
}

struct Slots<const D: usize> {
    first: [Option<Waker>; D],
    /// Boxed on purpose: 8 bytes in every connection's `Shared` instead of
    /// a `Vec`'s 24, for a list most connections never need.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<(usize, Waker)>>>,
}

impl<const D: usize> Default for Waiters<D> {
    fn default() -> Self {
        Waiters {
            inner: Mutex::new(Slots {
                first: std::array::from_fn(|_| None),
                more: None,
            }),
        }
    }
}

impl<const D: usize> Waiters<D> {
    fn lock(&self) -> MutexGuard<'_, Slots<D>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `waker` for direction `dir`, until the next wake of `dir`.
    pub(crate) fn register(&self, dir: usize, waker: &Waker) {
        let mut early = Vec::new();
        {
            let mut s = self.lock();
            match &mut s.first[dir] {
                slot @ None => {
                    *slot = Some(waker.clone());
                    return;
                }
                Some(w) if w.will_wake(waker) => return,
                Some(_) => {}
            }
            let more = s.more.get_or_insert_with(Default::default);
            if more.iter().any(|(d, w)| *d == dir && w.will_wake(waker)) {
                return;
            }
            if more.len() >= MAX_EXTRA {
                early = std::mem::take(&mut **more);
            }
            more.push((dir, waker.clone()));
        }
        for (_, w) in early {
            w.wake();
        }
    }

    /// Wakes every task waiting for direction `dir`.
    pub(crate) fn wake(&self, dir: usize) {
        let (first, rest) = {
            let mut s = self.lock();
            let first = s.first[dir].take();
            let rest = match &mut s.more {
                Some(more) if !more.is_empty() => {
                    let mut rest = Vec::new();
                    more.retain(|(d, w)| {
                        if *d == dir {
                            rest.push(w.clone());
                        }
                        *d != dir
                    });
                    rest
                }
                _ => Vec::new(),
            };
            (first, rest)
        };
        if let Some(w) = first {
            w.wake();
        }
        for w in rest {
            w.wake();
        }
    }

    /// Wakes every waiting task.
    pub(crate) fn wake_all(&self) {
        let (first, rest) = {
            let mut s = self.lock();
            let first: [Option<Waker>; D] = std::array::from_fn(|d| s.first[d].take());
            let rest = s.more.as_mut().map(|m| std::mem::take(&mut **m));
            (first, rest)
        };
        for w in first.into_iter().flatten() {
            w.wake();
        }
        for (_, w) in rest.into_iter().flatten() {
            w.wake();
        }
    }

    /// How many tasks wait (all directions).
    #[cfg(all(test, not(loom)))]
    fn len(&self) -> usize {
        let s = self.lock();
        s.first.iter().flatten().count() + s.more.as_ref().map_or(0, |m| m.len())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn every_waiter_of_a_direction_is_woken_once() {
        let w: Waiters<2> = Waiters::default();
        let (a, wa) = counter();
        let (b, wb) = counter();
        let (c, wc) = counter();
        w.register(0, &wa);
        w.register(0, &wb);
        w.register(0, &wa); // the same task again: no second entry
        w.register(1, &wc);
        assert_eq!(w.len(), 3);
        w.wake(0);
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
        assert_eq!(w.len(), 1);
        w.wake_all();
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn abandoned_waiters_are_bounded() {
        let w: Waiters<1> = Waiters::default();
        let counters: Vec<_> = (0..MAX_EXTRA + 10).map(|_| counter()).collect();
        for (_, waker) in &counters {
            w.register(0, waker);
        }
        assert!(w.len() <= MAX_EXTRA + 1);
        // The ones pushed out were woken early, so none is lost.
        w.wake(0);
        for (c, _) in &counters {
            assert_eq!(c.0.load(Ordering::SeqCst), 1);
        }
    }
}
