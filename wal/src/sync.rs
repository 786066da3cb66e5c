//! The one place the log takes its synchronization primitives from: std's, or loom's
//! twins under `cfg(loom)`, so the group-commit hand-off is model-checked as written.
//!
//! Every atomic, mutex and condition variable of the crate comes from here; clippy's
//! `disallowed-types` (the workspace's `clippy.toml`) refuses std's and `parking_lot`'s
//! anywhere else. The names below are type aliases, not re-exports, so that a use of them
//! elsewhere names this module's alias and not the banned type. The crate has one mutex
//! kind, std's (loom's has the same API, poisoning included): [`lock`] takes one whatever
//! a panicking holder left, as every lock of the crate does.
#![allow(
    clippy::disallowed_types,
    reason = "the shim: the one module that names std's and loom's primitives"
)]

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) type AtomicBool = std::sync::atomic::AtomicBool;
#[cfg(not(loom))]
pub(crate) type AtomicU32 = std::sync::atomic::AtomicU32;
#[cfg(not(loom))]
pub(crate) type AtomicU64 = std::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) type Mutex<T> = std::sync::Mutex<T>;
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
#[cfg(not(loom))]
pub(crate) type Condvar = std::sync::Condvar;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::Ordering;
#[cfg(loom)]
pub(crate) type AtomicBool = loom::sync::atomic::AtomicBool;
#[cfg(loom)]
pub(crate) type AtomicU32 = loom::sync::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) type AtomicU64 = loom::sync::atomic::AtomicU64;
#[cfg(loom)]
pub(crate) type Mutex<T> = loom::sync::Mutex<T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type Condvar = loom::sync::Condvar;

/// Locks `mutex`, also after a thread panicked holding it: every critical section of the
/// crate leaves its state consistent at each step, so going on is sound.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
            let guard = lock(&self.lock);
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
            drop(lock(&self.lock));
            self.sleep.notify_all();
        }
    }
}
