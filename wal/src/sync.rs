//! The one place the log takes its synchronization primitives from: std's, or loom's
//! twins under `cfg(loom)`, so the group-commit hand-off is model-checked as written.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

/// A counter threads sleep on until it moves: a futex. Waiters read [`Signal::epoch`], check
/// their condition, and sleep with [`Signal::wait`] on the epoch they read; a waker changes
/// the condition, then calls [`Signal::wake_all`]. A wake between the waiter's read and its
/// sleep is never lost: the sleep returns at once when the epoch is no longer the one read.
///
/// All accesses are `SeqCst`, the waiters' condition included: in the single order of
/// `SeqCst` operations, a waiter that saw the old condition read the epoch before the waker
/// bumped it, so its sleep cannot miss the bump.
///
/// Unlike a condition variable, waking needs no mutex, so the woken threads do not queue on
/// one to return. A waker makes no system call when nobody sleeps: a sleeper counts itself
/// in `sleepers` before it checks the epoch and sleeps, and a waker that finds no sleeper
/// after its bump came before that count, so the sleeper's futex wait, which checks the
/// epoch in the kernel, sees the bump and returns at once.
#[derive(Debug)]
pub(crate) struct Signal {
    epoch: AtomicU32,
    sleepers: AtomicU32,
    /// loom has no futex: a mutex and condvar give the same check-then-sleep atomicity.
    #[cfg(loom)]
    lock: Mutex<()>,
    #[cfg(loom)]
    sleep: Condvar,
}

impl Signal {
    pub(crate) fn new() -> Signal {
        Signal {
            epoch: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            #[cfg(loom)]
            lock: Mutex::new(()),
            #[cfg(loom)]
            sleep: Condvar::new(),
        }
    }

    /// The epoch to pass to [`Signal::wait`] once the condition is found unmet.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Sleeps unless the epoch has moved on from `seen`; may return spuriously.
    pub(crate) fn wait(&self, seen: u32) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        #[cfg(not(loom))]
        atomic_wait::wait(&self.epoch, seen);
        #[cfg(loom)]
        {
            let guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.epoch.load(Ordering::SeqCst) == seen {
                drop(self.sleep.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner));
            }
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Moves the epoch on and wakes every sleeper.
    pub(crate) fn wake_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // A read-modify-write, not a load: a sleeper's count that this does not see comes
        // after it in the counter's modification order and so reads from it, which makes
        // the bump above visible to the sleeper's epoch check (`SeqCst` alone would say so
        // too, but loom checks only what acquire and release give).
        if self.sleepers.fetch_add(0, Ordering::SeqCst) == 0 {
            return;
        }
        #[cfg(not(loom))]
        atomic_wait::wake_all(&self.epoch);
        #[cfg(loom)]
        {
            drop(self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            self.sleep.notify_all();
        }
    }
}
