//! The commit sequencer: the engine's one serialized step.
//!
//! A commit arrives with its version nodes already built (allocation happens before, never
//! inside, the critical section). Under the sequencer's lock it is validated, takes the next
//! commit version, and its nodes are linked into their chains (new keys get a chain, in both
//! indexes). The lock covers memory work only, bounded by the write set (and, for
//! serializable transactions, the read set): never I/O, encoding, or waiting for durability.
//!
//! Then the commit finishes: the visible version advances over it (see `visible.rs`), and
//! `commit` returns once it is visible, so every snapshot taken afterwards sees it. In
//! memory that happens before the lock is released (`finish_in_memory`); with the
//! write-ahead log, the lock is released first, the log takes the record, and the commit
//! finishes when the record is as durable as it asked (`durable.rs`).

use crate::bytes::Bytes;
use crate::db::Shared;
use crate::durable::encode_commit;
use crate::error::Result;
use crate::index::ChainRef;
use crate::options::Durability;
use crate::options::Retention;
use crate::stats::Counters;
use crate::sync::epoch::{self, Guard, Owned};
use crate::sync::{spin_wait, Mutex, MutexGuard};
use crate::ttl::Expiry;
use crate::txn::validate::Validation;
use crate::version::{CommitVersion, VersionNode};

/// The sequencer's lock and what it guards.
pub(crate) struct Sequencer {
    state: Mutex<SequencerState>,
}

/// What only the sequencer's lock holder may touch.
pub(crate) struct SequencerState {
    /// The last commit version handed out.
    last_version: u64,
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
    pub(crate) fn new(last_version: u64) -> Sequencer {
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
    pub(crate) fn last_version(&self) -> u64 {
        self.state.lock().last_version
    }

    /// Continues the commit clock after `version`, recovered from the log.
    pub(crate) fn recovered_at(&self, version: u64) {
        self.state.lock().last_version = version;
    }
}

impl Shared {
    /// Validates, versions, links and publishes a commit of `writes` (in key order).
    pub(crate) fn commit(
        &self,
        writes: Vec<(Bytes, Owned<VersionNode>)>,
        validation: Validation<'_>,
        durability: Option<Durability>,
    ) -> Result<CommitVersion> {
        self.check_not_poisoned()?;
        debug_assert!(!writes.is_empty(), "a commit that writes nothing takes no version");
        debug_assert!(
            writes.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "one write per key, in key order"
        );
        // Encoded before the sequencer, which never covers encoding; one the log would
        // refuse is refused here, before it takes a version.
        let record = match &self.log {
            Some(log) => Some(encode_commit(&writes, log.wal.max_record_bytes())?),
            None => None,
        };
        let guard = epoch::pin();
        let version = {
            let mut state = self.sequencer.lock();
            self.validate(&writes, &validation, &guard)?;
            let version = self.take_version(&mut state);
            for (key, mut node) in writes {
                node.set_version(version);
                self.link(&mut state, key, node, &guard);
            }
            if record.is_none() {
                self.finish_in_memory(version);
            }
            version
        };
        match (&self.log, record) {
            (Some(log), Some(record)) => {
                let durability =
                    durability.map_or(log.durability, |asked| asked.at_least(log.durability));
                self.finish_logged(log, record, version, durability)?;
            }
            _ => self.wait_visible(version)?,
        }
        Ok(CommitVersion::new(version))
    }

    /// Hands out the next commit version, waiting (rarely, and only while commits are in
    /// flight) for room in the visible-version ring.
    pub(crate) fn take_version(&self, state: &mut SequencerState) -> u64 {
        let version = state.last_version + 1;
        let mut round = 0;
        while !self.visible.has_room_for(version) {
            spin_wait(round);
            round = round.saturating_add(1);
        }
        state.last_version = version;
        Counters::add(&self.counters.commits, 1);
        version
    }

    /// Finishes commit `version`, still inside the sequencer, for a database without a log.
    ///
    /// An in-memory commit has nothing to wait for once linked, so it finishes in version
    /// order, and no commit ever waits for an earlier one that was preempted between the
    /// sequencer and its finish. With a write-ahead log, the lock is released here instead,
    /// the record is appended and waited for, and only then is the commit finished, in
    /// whatever order commits become durable; the visible version keeps their order.
    pub(crate) fn finish_in_memory(&self, version: u64) {
        self.visible.finish(version);
        debug_assert_eq!(self.visible.load(), version, "finished in order under the lock");
    }

    /// Links a versioned node as the newest version of `key`, creating the key's chain if
    /// it is new. A delete of a key that has no chain links nothing: there is nothing to
    /// hide, and no chain is created only to hold a tombstone.
    pub(crate) fn link(
        &self,
        state: &mut SequencerState,
        key: Bytes,
        node: Owned<VersionNode>,
        guard: &Guard,
    ) {
        debug_assert!(node.version() > 0, "only committed versions are linked");
        let index_guard = self.index.guard();
        let chain = match self.index.get_ref(&key, &index_guard) {
            Some(chain) => chain,
            None if node.is_tombstone() => return,
            None => {
                Counters::add(&self.counters.keys, 1);
                Counters::add(&self.counters.bytes, key.len() as u64);
                self.index.insert(key, guard)
            }
        };
        Counters::add(&self.counters.versions, 1);
        Counters::add(&self.counters.bytes, node.payload_bytes());
        let expiry = node.has_expiry().then(|| (node.expires_at_ms(), node.version()));
        let had_versions = chain.install(node, guard);
        if let Some((at_ms, version)) = expiry {
            state.expiries.push(Expiry { at_ms, version, chain: chain.clone() });
        }
        if had_versions && self.options.retention != Retention::KeepAll && chain.mark_gc_queued() {
            state.gc_queue.push(chain);
        }
        state.linked_since_collection += 1;
        if state.linked_since_collection == LINKED_BEFORE_EARLY_COLLECTION {
            self.wake_maintenance();
        }
    }
}
