//! The one place the engine takes its synchronization primitives from.
//!
//! Under `cfg(loom)` every atomic, fence, lock and epoch type below is swapped for a
//! loom-instrumented twin, so the lock-free protocols of `chain.rs`, `visible.rs` and
//! `watermark.rs` are model-checked exactly as they are written, not as a copy of them.
//!
//! The epoch twin (`epoch` under loom) keeps crossbeam-epoch's API for the subset the engine
//! uses. It does not model reclamation: deferred functions never run, so what the collector
//! unlinks stays allocated (leaked) and no modelled reader can ever see it freed. What the
//! models check is the protocol: orderings, what a reader can observe, and that no reader
//! ever needs a node that was unlinked. That memory is only freed once no guard can reach it
//! is crossbeam-epoch's own guarantee.
//!
//! Clippy's `disallowed-types` and `disallowed-methods` (the workspace's `clippy.toml`)
//! refuse std's atomics and locks, `parking_lot`'s and crossbeam-epoch's anywhere else. So
//! the names below are type aliases and small wrapper functions, not re-exports: a use of
//! them elsewhere names this module's item, not the banned one. Only `epoch::unprotected`
//! stays a re-export (a wrapper would need an `unsafe` block of its own); it is not banned.
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the shim: the one module that names the real primitives and their loom twins"
)]

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) type AtomicBool = std::sync::atomic::AtomicBool;
#[cfg(not(loom))]
pub(crate) type AtomicU64 = std::sync::atomic::AtomicU64;

/// An atomic fence ([`std::sync::atomic::fence`]).
#[cfg(not(loom))]
#[inline]
pub(crate) fn fence(order: Ordering) {
    std::sync::atomic::fence(order);
}

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

/// The word type of the skiplist's own atomics, which a scan reads to prefetch ahead
/// (`index.rs`). Only the real index reads them: under loom the index is a model without a
/// skiplist, so there is no twin.
#[cfg(not(loom))]
pub(crate) type AtomicUsize = std::sync::atomic::AtomicUsize;

/// The mutex of the commit sequencer and of the engine's few other short critical sections.
#[cfg(not(loom))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
/// The guard of [`Mutex`].
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

#[cfg(loom)]
pub(crate) use loom_mutex::{Mutex, MutexGuard};

/// Unlocks `guard` and hands the lock to the thread that waited longest, if any, instead
/// of letting this one take it again at once ([`parking_lot::MutexGuard::unlock_fair`]).
#[cfg(not(loom))]
pub(crate) fn unlock_fair<T>(guard: MutexGuard<'_, T>) {
    MutexGuard::unlock_fair(guard);
}

/// Unlocks `guard` (loom explores every order of the waiters anyway).
#[cfg(loom)]
pub(crate) fn unlock_fair<T>(guard: MutexGuard<'_, T>) {
    drop(guard);
}

/// Waits politely in a loop that expects another thread to make progress soon.
#[cfg(not(loom))]
pub(crate) fn spin_wait(round: u32) {
    if round < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Waits politely in a loop that expects another thread to make progress soon.
#[cfg(loom)]
pub(crate) fn spin_wait(_round: u32) {
    loom::thread::yield_now();
}

#[cfg(not(loom))]
pub(crate) mod epoch {
    //! crossbeam-epoch, under the shim's names.
    pub(crate) use crossbeam_epoch::unprotected;

    pub(crate) type Atomic<T> = crossbeam_epoch::Atomic<T>;
    pub(crate) type Guard = crossbeam_epoch::Guard;
    pub(crate) type Owned<T> = crossbeam_epoch::Owned<T>;
    pub(crate) type Shared<'g, T> = crossbeam_epoch::Shared<'g, T>;

    /// Pins the current thread ([`crossbeam_epoch::pin`]).
    #[inline]
    pub(crate) fn pin() -> Guard {
        crossbeam_epoch::pin()
    }

    /// The global collector ([`crossbeam_epoch::default_collector`]).
    #[inline]
    pub(crate) fn default_collector() -> &'static crossbeam_epoch::Collector {
        crossbeam_epoch::default_collector()
    }
}

/// A shared value read on every read and replaced rarely: `arc-swap`'s lock-free cell.
#[cfg(not(loom))]
pub(crate) type ArcCell<T> = arc_swap::ArcSwapOption<T>;

#[cfg(loom)]
pub(crate) use loom_arc_cell::ArcCell;

#[cfg(loom)]
mod loom_arc_cell {
    //! The twin of the subset of `arc_swap::ArcSwapOption` the engine uses, over loom's
    //! mutex: a model then checks what a reader can observe of a store, in every order.

    use std::sync::Arc;

    pub(crate) struct ArcCell<T>(loom::sync::Mutex<Option<Arc<T>>>);

    impl<T> ArcCell<T> {
        pub(crate) fn const_empty() -> Self {
            ArcCell(loom::sync::Mutex::new(None))
        }

        #[expect(clippy::unwrap_used, reason = "a poisoned lock means the model already failed")]
        pub(crate) fn load_full(&self) -> Option<Arc<T>> {
            self.0.lock().unwrap().clone()
        }

        #[expect(clippy::unwrap_used, reason = "a poisoned lock means the model already failed")]
        pub(crate) fn store(&self, value: Option<Arc<T>>) {
            *self.0.lock().unwrap() = value;
        }
    }
}

#[cfg(loom)]
mod loom_mutex {
    //! `parking_lot`'s mutex API over loom's mutex (which cannot be poisoned in a model that
    //! passes, since a panic fails the model).

    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        #[expect(clippy::unwrap_used, reason = "a poisoned lock means the model already failed")]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }
}

#[cfg(loom)]
#[allow(unsafe_code)]
pub(crate) mod epoch {
    //! A loom twin of the crossbeam-epoch API subset the engine uses.
    //!
    //! Unsafe blocks here (all in this module):
    //! - `Shared::as_ref`: dereferences a pointer that, by the caller's contract (the same as
    //!   crossbeam's), points to a live node; in a model the collector frees nothing.
    //! - `Shared::into_owned` / `Owned::from_raw`: take back a `Box` leaked by
    //!   `Owned::into_shared`; called at most once per node, when nothing else can reach it.

    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};

    use loom::sync::atomic::AtomicPtr;

    use super::Ordering;

    /// The twin of `crossbeam_epoch::Guard`.
    pub(crate) struct Guard {
        _not_send: PhantomData<*mut ()>,
    }

    impl Guard {
        /// Drops `f` without running it: under loom, what it would release stays leaked
        /// until the process ends, so no modelled reader can ever see it freed.
        pub(crate) fn defer<F: FnOnce() + Send + 'static>(&self, f: F) {
            drop(f);
        }

        /// Nothing to hand on: the twin keeps no deferred functions.
        pub(crate) fn flush(&self) {}

        /// Nothing to re-pin: the twin does not model epochs.
        pub(crate) fn repin(&mut self) {}
    }

    /// The twin of `crossbeam_epoch::pin`.
    pub(crate) fn pin() -> Guard {
        Guard { _not_send: PhantomData }
    }

    struct UnprotectedGuard(Guard);
    // SAFETY: the unprotected guard carries no state; crossbeam's is shared the same way.
    unsafe impl Sync for UnprotectedGuard {}

    static UNPROTECTED: UnprotectedGuard = UnprotectedGuard(Guard { _not_send: PhantomData });

    /// The twin of `crossbeam_epoch::unprotected`.
    ///
    /// # Safety
    /// As crossbeam's: only for data no other thread can reach.
    pub(crate) unsafe fn unprotected() -> &'static Guard {
        &UNPROTECTED.0
    }

    /// The twin of `crossbeam_epoch::Owned`.
    pub(crate) struct Owned<T>(Box<T>);

    impl<T> Owned<T> {
        pub(crate) fn new(value: T) -> Owned<T> {
            Owned(Box::new(value))
        }

        /// # Safety
        /// As crossbeam's: `raw` came from `into_shared` and nothing else owns it.
        pub(crate) unsafe fn from_raw(raw: *mut T) -> Owned<T> {
            // SAFETY: the caller's contract; the pointer came from `Box::into_raw`.
            Owned(unsafe { Box::from_raw(raw) })
        }

        pub(crate) fn into_shared<'g>(self, _guard: &'g Guard) -> Shared<'g, T> {
            Shared { ptr: Box::into_raw(self.0), _marker: PhantomData }
        }
    }

    impl<T> Deref for Owned<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> DerefMut for Owned<T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.0
        }
    }

    /// The twin of `crossbeam_epoch::Shared`.
    pub(crate) struct Shared<'g, T> {
        ptr: *mut T,
        _marker: PhantomData<(&'g (), *const T)>,
    }

    impl<T> Clone for Shared<'_, T> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<T> Copy for Shared<'_, T> {}

    impl<T> PartialEq for Shared<'_, T> {
        fn eq(&self, other: &Self) -> bool {
            self.ptr == other.ptr
        }
    }

    impl<'g, T> Shared<'g, T> {
        pub(crate) fn null() -> Shared<'g, T> {
            Shared { ptr: std::ptr::null_mut(), _marker: PhantomData }
        }

        pub(crate) fn is_null(&self) -> bool {
            self.ptr.is_null()
        }

        pub(crate) fn as_raw(&self) -> *const T {
            self.ptr
        }

        /// # Safety
        /// As crossbeam's: the pointer is null or points to a live `T`.
        pub(crate) unsafe fn as_ref(&self) -> Option<&'g T> {
            // SAFETY: the caller's contract.
            unsafe { self.ptr.as_ref() }
        }

        /// # Safety
        /// As crossbeam's: no other thread can reach the node any more.
        pub(crate) unsafe fn into_owned(self) -> Owned<T> {
            // SAFETY: the caller's contract; the pointer came from `Box::into_raw`.
            Owned(unsafe { Box::from_raw(self.ptr) })
        }
    }

    /// The twin of `crossbeam_epoch::Atomic`.
    pub(crate) struct Atomic<T>(AtomicPtr<T>);

    impl<T> Atomic<T> {
        pub(crate) fn null() -> Atomic<T> {
            Atomic(AtomicPtr::new(std::ptr::null_mut()))
        }

        pub(crate) fn load<'g>(&self, order: Ordering, _guard: &'g Guard) -> Shared<'g, T> {
            Shared { ptr: self.0.load(order), _marker: PhantomData }
        }

        pub(crate) fn store(&self, new: Shared<'_, T>, order: Ordering) {
            self.0.store(new.ptr, order);
        }

        pub(crate) fn swap<'g>(
            &self,
            new: Shared<'_, T>,
            order: Ordering,
            _guard: &'g Guard,
        ) -> Shared<'g, T> {
            Shared { ptr: self.0.swap(new.ptr, order), _marker: PhantomData }
        }
    }
}
