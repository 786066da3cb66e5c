//! The commit sequencer's state: the engine's one serialized step (its protocol is
//! `txn/commit.rs`), and what commits hand to maintenance under its lock.

use crate::expiry::Expiry;
use crate::index::ChainRef;
use crate::sync::{Mutex, MutexGuard};
use crate::version::CommitVersion;

/// The sequencer's lock and what it guards.
pub(crate) struct Sequencer {
    state: Mutex<SequencerState>,
}

/// What only the sequencer's lock holder may touch.
pub(crate) struct SequencerState {
    /// The last commit version handed out.
    pub(crate) last_version: CommitVersion,
    /// Chains that gained a version over an older one since the collector last looked.
    pub(crate) gc_queue: Vec<ChainRef>,
    /// Versions with an expiry, linked since the reaper last looked.
    pub(crate) expiries: Vec<Expiry>,
    /// Versions linked since the collector last took the queue.
    pub(crate) linked_since_collection: u64,
}

/// Versions linked between collection passes before the maintenance thread is woken early,
/// so that garbage between passes stays bounded however fast commits come.
#[cfg(not(test))]
pub(crate) const LINKED_BEFORE_EARLY_COLLECTION: u64 = 64 * 1024;
/// Small under test, so that early wake-ups happen constantly.
#[cfg(test)]
pub(crate) const LINKED_BEFORE_EARLY_COLLECTION: u64 = 64;

impl Sequencer {
    pub(crate) fn new(last_version: CommitVersion) -> Sequencer {
        Sequencer {
            state: Mutex::new(SequencerState {
                last_version,
                gc_queue: Vec::new(),
                expiries: Vec::new(),
                linked_since_collection: 0,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SequencerState> {
        self.state.lock()
    }

    /// The last commit version handed out (visible or not).
    pub(crate) fn last_version(&self) -> CommitVersion {
        self.state.lock().last_version
    }

    /// Continues the commit clock after `version`, recovered from the log.
    pub(crate) fn recovered_at(&self, version: CommitVersion) {
        self.state.lock().last_version = version;
    }
}
