//! Versions with an expiry, waiting for it: the reaper's queue (its protocol is `ttl.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::index::ChainRef;
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};

/// A version with an expiry, waiting for it.
pub(crate) struct Expiry {
    pub(crate) at_ms: u64,
    pub(crate) version: u64,
    pub(crate) chain: ChainRef,
}

impl PartialEq for Expiry {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.version) == (other.at_ms, other.version)
    }
}

impl Eq for Expiry {}

impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.version).cmp(&(other.at_ms, other.version))
    }
}

/// The reaper's queue of expiries, soonest first, and what lets a call with nothing to do
/// return without taking a lock a committer needs.
///
/// The protocol: a committer pushes an expiry onto the sequencer's `expiries` and raises
/// [`Reaper::incoming`], both under the sequencer's lock. A reaper lowers `incoming` before
/// it takes that lock to move the pushed expiries into [`Reaper::due`], so a push it does
/// not move raises the flag again. [`Reaper::next_due_ms`] is the soonest deadline in
/// `due`, written under `due`'s lock. A call that finds `incoming` low and the soonest
/// deadline in the future has nothing due and takes neither lock. Both are Release/Acquire:
/// a reaper called after a commit (in the same thread, or ordered after it by any
/// synchronization) sees that commit's flag, and after another reaper's call, that call's
/// deadline.
pub(crate) struct Reaper {
    pub(crate) due: Mutex<BinaryHeap<Reverse<Expiry>>>,
    /// Expiries were pushed onto the sequencer's state since a reaper last took them.
    pub(crate) incoming: AtomicBool,
    /// The soonest deadline in `due` (wall-clock ms), `u64::MAX` when it is empty.
    pub(crate) next_due_ms: AtomicU64,
}

impl Reaper {
    pub(crate) fn new() -> Reaper {
        Reaper {
            due: Mutex::new(BinaryHeap::new()),
            incoming: AtomicBool::new(false),
            next_due_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether a call at `now_ms` may find something to reap.
    pub(crate) fn may_have_due(&self, now_ms: u64) -> bool {
        self.incoming.load(Ordering::Acquire) || self.next_due_ms.load(Ordering::Acquire) <= now_ms
    }

    /// A committer pushed an expiry onto the sequencer's state (under its lock).
    pub(crate) fn expiry_pushed(&self) {
        // Cheap when already raised: a load, no write to the shared line.
        if !self.incoming.load(Ordering::Relaxed) {
            self.incoming.store(true, Ordering::Release);
        }
    }
}
