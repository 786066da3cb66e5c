//! The commit sequencer: the engine's one serialized step.
//!
//! A commit arrives with its version nodes already built (allocation happens before, never
//! inside, the critical section), and finds or creates its keys' chains in the index before
//! the lock too (a new key's chain is created empty, which reads as absent; see `index.rs`).
//! Under the sequencer's lock it is validated, takes the next commit version, and its nodes
//! are installed into their chains, each checked to be still linked (a removal may have come
//! in between; then it is resolved again, under the lock). A commit that fails validation
//! removes the chains it created if they are still empty. The lock covers memory work only,
//! bounded by the write set (and, for serializable transactions, the read set): never I/O,
//! encoding, index inserts of new keys, or waiting for durability.
//!
//! Then the commit finishes: the visible version advances over it (see `visible.rs`), and
//! `commit` returns once it is visible, so every snapshot taken afterwards sees it. In
//! memory that happens before the lock is released (`finish_in_memory`); with the
//! write-ahead log, the lock is released first, the log takes the record, and the commit
//! finishes when the record is as durable as it asked ([`Shared::finish_logged`]).
//!
//! # Commits through the log
//!
//! A commit's record is encoded before the sequencer (`record.rs`), and handed to the log
//! after it, once the commit has its version. Records may so reach the log out of version
//! order; the visible version keeps the order (`visible.rs`), and recovery restores it.
//!
//! - `Sync`: append, wait until the record is durable, then finish (become visible). A
//!   commit is visible only once durable, so every commit visible before it is durable too.
//! - `Buffered`: append, finish at once; the log syncs in the background. A transaction
//!   that asks for `Sync` in a buffered database waits, once it is visible, until
//!   everything appended by then is durable: its record and those of every earlier commit.
//!
//! A failed append or sync poisons the database: the failing commit never becomes visible,
//! and every later one fails. The log overwrites what it wrote since its last good sync
//! with zeros (best effort), and recovery keeps only a prefix of commits in version order
//! anyway, so nothing unacknowledged needs undoing here.

use inmem_wal::LogPosition;

use crate::bytes::Bytes;
use crate::dir::Log;
use crate::error::{Error, Limit, Result};
use crate::expiry::Expiry;
use crate::index::ChainRef;
use crate::options::Durability;
use crate::options::Retention;
use crate::record;
use crate::sequencer::{SequencerState, LINKED_BEFORE_EARLY_COLLECTION};
use crate::shared::Shared;
use crate::stats::Counters;
use crate::sync::epoch::{self, Guard, Owned};
use crate::sync::spin_wait;
use crate::txn::validate::Validation;
use crate::version::{CommitVersion, VersionNode};

/// A write's chain as resolved before the sequencer.
struct Resolved {
    /// `None` for a delete of a key without a chain.
    chain: Option<ChainRef>,
    /// Whether resolving created it (empty).
    created: bool,
}

impl Shared {
    /// Validates, versions, links and publishes a commit of range deletes of `prefixes`
    /// (in order; see `range_delete.rs`) and `writes` (in key order).
    pub(crate) fn commit(
        &self,
        prefixes: Vec<Bytes>,
        writes: Vec<(Bytes, Owned<VersionNode>)>,
        validation: Validation<'_>,
        durability: Option<Durability>,
    ) -> Result<CommitVersion> {
        self.check_not_poisoned()?;
        debug_assert!(
            !writes.is_empty() || !prefixes.is_empty(),
            "a commit that writes nothing takes no version"
        );
        debug_assert!(prefixes.windows(2).all(|pair| pair[0] < pair[1]), "prefixes in order");
        debug_assert!(
            writes.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "one write per key, in key order"
        );
        // Encoded before the sequencer, which never covers encoding; one the log would
        // refuse is refused here, before it takes a version.
        let record = match &self.log {
            Some(log) => Some(encode_commit(&prefixes, &writes, log.wal.max_record_bytes())?),
            None => None,
        };
        let guard = epoch::pin();
        // New keys get their chains, empty, before the sequencer: inserting into the indexes
        // is most of what a new key costs, and under the lock every committer waited for it.
        let chains: Vec<Resolved> = writes
            .iter()
            .map(|(key, node)| self.resolve(key, node.is_tombstone(), &guard))
            .collect();
        let version = {
            let mut state = self.sequencer.lock();
            let written = writes.iter().zip(&chains);
            let written = written.map(|((key, _), resolved)| (key, resolved.chain.as_ref()));
            if let Err(error) = self.validate(written, &validation, &guard) {
                self.forget_created(&writes, &chains, &guard);
                return Err(error);
            }
            let version = self.take_version(&mut state);
            // Before the version is visible, as its nodes are installed: every reader at it
            // or later applies the range deletes.
            self.range_deletes.install(&prefixes, version);
            for ((key, mut node), resolved) in writes.into_iter().zip(chains) {
                node.set_version(version);
                // A removal may have come between the resolve and the lock (it holds the
                // lock, so none comes now): then resolve again, under the lock.
                let chain = match resolved.chain {
                    Some(chain) if self.index.is_linked(&chain) => Some(chain),
                    _ => self.resolve_locked(&key, node.is_tombstone(), &guard),
                };
                if let Some(chain) = chain {
                    self.install(&mut state, chain, node, &guard);
                }
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
        Ok(version)
    }

    /// Hands out the next commit version, waiting (rarely, and only while commits are in
    /// flight) for room in the visible-version ring.
    pub(crate) fn take_version(&self, state: &mut SequencerState) -> CommitVersion {
        let version = state.last_version.next();
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
    pub(crate) fn finish_in_memory(&self, version: CommitVersion) {
        self.visible.finish(version);
        debug_assert_eq!(self.visible.load(), version, "finished in order under the lock");
    }

    /// The chain a write of `key` goes into, found or created (empty) in the index; a delete
    /// of a key that has no chain has none: there is nothing to hide, and no chain is
    /// created only to hold a tombstone. Any thread, outside the sequencer.
    fn resolve(&self, key: &Bytes, tombstone: bool, guard: &Guard) -> Resolved {
        if tombstone {
            let index_guard = self.index.guard();
            let chain = self.index.get_ref(key, &index_guard, guard);
            return Resolved { chain, created: false };
        }
        let (chain, created) = self.index.get_or_insert(key, guard);
        if created {
            Counters::add(&self.counters.keys, 1);
            Counters::add(&self.counters.bytes, key.len() as u64);
        }
        Resolved { chain: Some(chain), created }
    }

    /// As [`Shared::resolve`], under the sequencer's lock: the chain returned is linked, and
    /// stays so until the lock is released.
    fn resolve_locked(&self, key: &Bytes, tombstone: bool, guard: &Guard) -> Option<ChainRef> {
        loop {
            match self.resolve(key, tombstone, guard).chain {
                Some(chain) if self.index.is_linked(&chain) => return Some(chain),
                // A stale hash-index entry (see `KeyIndex::get_or_insert`): for a delete,
                // the key has no chain with a committed version; a write drops the entry and
                // gets a linked chain on the next round.
                Some(_) if tombstone => return None,
                Some(_) => {}
                None => return None,
            }
        }
    }

    /// Removes, after a failed validation and still under the lock, the chains this commit
    /// created that are still empty, so that a failed commit leaves no key behind.
    /// Committers that found one of them meanwhile see it unlinked and resolve again.
    fn forget_created(
        &self,
        writes: &[(Bytes, Owned<VersionNode>)],
        chains: &[Resolved],
        guard: &Guard,
    ) {
        for ((key, _), resolved) in writes.iter().zip(chains) {
            let Some(chain) = resolved.chain.as_ref().filter(|_| resolved.created) else {
                continue;
            };
            if chain.head_ptr(guard).is_null() && self.index.remove(chain, guard) {
                Counters::sub(&self.counters.keys, 1);
                Counters::sub(&self.counters.bytes, key.len() as u64);
            }
        }
    }

    /// Links a versioned node as the newest version of `key`, under the sequencer's lock,
    /// creating the key's chain if it is new (recovery, the reaper); as [`Shared::resolve`]
    /// for a delete of a key without a chain.
    pub(crate) fn link(
        &self,
        state: &mut SequencerState,
        key: Bytes,
        node: Owned<VersionNode>,
        guard: &Guard,
    ) {
        if let Some(chain) = self.resolve_locked(&key, node.is_tombstone(), guard) {
            self.install(state, chain, node, guard);
        }
    }

    /// Links a versioned node as the newest version of `chain`, a chain linked in the index,
    /// under the sequencer's lock.
    fn install(
        &self,
        state: &mut SequencerState,
        chain: ChainRef,
        node: Owned<VersionNode>,
        guard: &Guard,
    ) {
        debug_assert!(node.version() > 0, "only committed versions are linked");
        debug_assert!(self.index.is_linked(&chain), "installed into a chain of the index");
        Counters::add(&self.counters.versions, 1);
        Counters::add(&self.counters.bytes, node.payload_bytes());
        let expiry = node.has_expiry().then(|| (node.expires_at_ms(), node.version()));
        let tombstone = node.is_tombstone();
        let had_versions = chain.install(node, guard);
        if let Some((at_ms, version)) = expiry {
            state.expiries.push(Expiry { at_ms, version, chain: chain.clone() });
            self.reaper.expiry_pushed();
        }
        // A lone tombstone (recovery links them: a checkpoint keeps a deleted key's
        // tombstone) is queued too, so that the collector forgets its key.
        let collectable = had_versions || tombstone;
        if collectable && self.options.retention != Retention::KeepAll && chain.mark_gc_queued() {
            state.gc_queue.push(chain);
        }
        state.linked_since_collection += 1;
        if state.linked_since_collection == LINKED_BEFORE_EARLY_COLLECTION {
            self.wake_maintenance();
        }
    }
}

/// How long a run of maintenance commits in a `Sync` database waits for the application's
/// commits to sync its records before syncing them itself.
const MAINTENANCE_SYNC_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1);

/// A maintenance commit whose record is appended to the log and not yet waited for
/// ([`Shared::append_maintenance`]).
pub(crate) struct Unsettled {
    version: CommitVersion,
    position: LogPosition,
}

/// The record of a commit, encoded before the sequencer.
///
/// # Errors
/// [`Error::LimitExceeded`] ([`Limit::CommitBytes`]) for a record longer than `max` bytes.
pub(crate) fn encode_commit(
    prefixes: &[Bytes],
    writes: &[(Bytes, Owned<crate::version::VersionNode>)],
    max: u64,
) -> Result<Vec<u8>> {
    let writes = writes.iter().map(|(key, node)| (key.as_slice(), &**node));
    let record = record::encode_with_prefixes(prefixes, writes);
    if record.len() as u64 > max {
        let actual = record.len() as u64;
        return Err(Error::LimitExceeded { limit: Limit::CommitBytes, actual, max });
    }
    Ok(record)
}

impl Shared {
    /// Finishes commit `version` through the log: appends its record (version patched in)
    /// and, as its durability asks, waits for it; then makes it visible. A failure poisons
    /// the database and the commit never becomes visible.
    pub(crate) fn finish_logged(
        &self,
        log: &Log,
        record: Vec<u8>,
        version: CommitVersion,
        durability: Durability,
    ) -> Result<()> {
        if log.durability == Durability::Sync {
            // This thread waits for it, and so writes it or joins a batch: no hand-off to
            // the background writer. Parked before the wait, the commit is made visible by
            // whichever committer of its batch wakes first.
            let position = self.append_commit(log, record, version, true)?;
            log.wal.wait_durable(position).map_err(|error| self.log_failed("committing", error))?;
            self.visible.announce(|| log.wal.durable_position());
        } else {
            self.append_commit(log, record, version, false)?;
        }
        self.wait_visible(version)?;
        if log.durability != Durability::Sync && durability == Durability::Sync {
            // Every commit up to this one is visible, so appended: waiting for the log's
            // end as it is now covers all of their records.
            let end: LogPosition = log.wal.end_position();
            log.wal
                .wait_durable_before(end)
                .map_err(|error| self.log_failed("syncing a commit", error))?;
        }
        Ok(())
    }

    /// Appends the record of the engine's maintenance commit `version` (the reaper's
    /// tombstones) without waiting for it: visible at once under `Buffered`, parked
    /// until durable under `Sync`. Its committer appends a run of them, then waits once
    /// for the last ([`Shared::settle_maintenance`]), writing the run itself: one write (and
    /// one sync) per run instead of one per commit, and no other thread woken for them. A
    /// stream of small commits handed to the log's background writer woke it again and
    /// again, and each sync's completion is an interrupt: either takes a core from the
    /// application's readers. A failure poisons the database.
    pub(crate) fn append_maintenance(
        &self,
        log: &Log,
        record: Vec<u8>,
        version: CommitVersion,
    ) -> Result<Unsettled> {
        let position = self.append_commit(log, record, version, true)?;
        Ok(Unsettled { version, position })
    }

    /// Appends the record of commit `version` (version patched in), to be waited for by
    /// its committer if `then_wait` (who then writes it if nobody else does), and makes
    /// the commit visible as the log's durability says: at once under `Buffered`, parked
    /// until its record is durable under `Sync`. A failure poisons the database.
    fn append_commit(
        &self,
        log: &Log,
        mut record: Vec<u8>,
        version: CommitVersion,
        then_wait: bool,
    ) -> Result<LogPosition> {
        record::set_version(&mut record, version);
        let appended = if then_wait {
            log.wal.append_to_wait(record::COMMIT, &record)
        } else {
            log.wal.append(record::COMMIT, &record)
        };
        let position = appended.map_err(|error| self.log_failed("committing", error))?;
        if log.durability == Durability::Sync {
            self.visible.park(version, LogPosition::new(position.get() + 1));
        } else {
            self.visible.finish(version);
        }
        Ok(position)
    }

    /// Waits until every maintenance commit appended up to `last` is as durable as the log
    /// makes commits (written under `Buffered`, synced under `Sync`) and visible; the
    /// caller writes them itself if no one else is writing. A failure poisons the database.
    pub(crate) fn settle_maintenance(&self, log: &Log, last: Unsettled) -> Result<()> {
        let failed = |error| self.log_failed("committing", error);
        if log.durability == Durability::Sync {
            if log.wal.durable_position() <= last.position {
                // Its records are queued ahead of every later commit's: an application
                // committing meanwhile syncs them with its own, and then this sync, a
                // flush of the disk's cache that the application's would queue behind,
                // is not needed.
                std::thread::sleep(MAINTENANCE_SYNC_PATIENCE);
            }
            log.wal.wait_durable(last.position).map_err(failed)?;
            self.visible.announce(|| log.wal.durable_position());
        } else {
            log.wal.wait_written(last.position).map_err(failed)?;
        }
        self.wait_visible(last.version)
    }

    /// The error of a failed log operation while `doing` a commit, after poisoning the
    /// database: what the log could not make durable is never acknowledged, and nothing
    /// more is committed.
    fn log_failed(&self, doing: &'static str, error: inmem_wal::Error) -> Error {
        self.poison();
        Error::log(doing, error)
    }
}
