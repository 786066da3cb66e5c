//! Time to live: expiry of versions, and the reaper that turns expired keys into tombstones;
//! and the purge of range deletes (`range_delete.rs`), which writes its tombstones the
//! same way.
//!
//! Readers treat a value whose expiry has passed as absent on their own (`version.rs`); the
//! reaper makes it so in the keyspace, through the ordinary commit path (a version from the
//! sequencer, and a record in the log once the database is durable), so that what recovery
//! rebuilds agrees with what readers saw.
//!
//! The reaper is maintenance, never a competitor: it writes a tombstone only if the expired
//! version is still the newest of its key (checked under the sequencer's lock, so any user
//! write that got there first wins), and validation ignores its tombstones, so it never
//! makes a user transaction conflict.
//!
//! With a log, it appends the records of a run of its commits and then waits once, for the
//! last, writing them itself (`Shared::append_maintenance`): one write, and in a `Sync`
//! database one sync, per run of [`LOGGED_COMMITS_PER_WAIT`] commits, and no other thread
//! woken for them.

use std::cmp::Reverse;
use std::ops::ControlFlow;

use crate::bytes::Bytes;

use crate::clock;
use crate::index::ChainRef;
use crate::options::Retention;
use crate::range_delete::{Walk, PURGE_KEYS_PER_STEP};
use crate::record;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::sync::epoch::{self, Guard, Owned};
use crate::sync::Ordering;
use crate::txn::commit::Unsettled;
use crate::version::{Origin, VersionNode};
use crate::visible::COMMITS_IN_FLIGHT_MAX;

/// Tombstones written per hold of the sequencer's lock (one commit) in memory, so commits
/// wait at most that long: each costs a check and a link, a few hundred nanoseconds, and a
/// committer that waits longer than its spin falls asleep, to be woken tens of
/// microseconds later. (The MVCC reference model, `tests/model`, commits a purge in
/// batches of the same size: `MAINTENANCE_COMMIT_KEYS_MAX`.)
const REAPS_PER_COMMIT_MAX: usize = 4;
/// The same with a log, where each commit is also a record, and in a `Sync` database a
/// sync the reaper waits for: fewer, larger commits.
const REAPS_PER_LOGGED_COMMIT_MAX: usize = 16;
/// Tombstones the reaper writes per turn at the maintenance gate (`gate.rs`).
const REAPS_PER_SLICE: usize = 1024;
/// With a log, the reaper's commits appended before it waits for them, all at once: more
/// than a slice takes (so one wait per slice), and a quarter of the commits the visible
/// version lets be in flight, so that those of its own parked for their sync never fill
/// them (the sequencer would wait for room that only their sync makes).
const LOGGED_COMMITS_PER_WAIT: u64 = COMMITS_IN_FLIGHT_MAX / 4;

/// Maintenance commits made and not yet waited for (with a log); their tombstones count
/// once the wait returns.
#[derive(Default)]
struct Run {
    tombstones: u64,
    commits: u64,
    last: Option<Unsettled>,
}

impl Shared {
    /// Replaces every expired newest version by a tombstone, in slices of at most
    /// [`REAPS_PER_SLICE`], one per turn at the maintenance gate; returns how many.
    /// A call while another reaps waits for it (or takes over its remaining slices), so
    /// on return every version due when it was called is reaped or replaced.
    pub(crate) fn reap_expired(&self) -> u64 {
        let now_ms = clock::now_ms();
        // Nothing pushed and nothing due: no lock a committer needs (see `expiry::Reaper`).
        if !self.reaper.may_have_due(now_ms) {
            return 0;
        }
        let mut reaped = 0;
        loop {
            let turn = self.maintenance.enter();
            let mut due = self.reaper.due.lock();
            if self.reaper.incoming.load(Ordering::Acquire) {
                // Lowered before the sequencer's lock is taken: a push missed raises it.
                self.reaper.incoming.store(false, Ordering::Release);
                let pushed = std::mem::take(&mut self.sequencer.lock().expiries);
                due.extend(pushed.into_iter().map(Reverse));
            }
            let guard = epoch::pin();
            let mut expired = Vec::new();
            while expired.len() < REAPS_PER_SLICE
                && due.peek().is_some_and(|Reverse(next)| next.at_ms <= now_ms)
            {
                let Some(Reverse(expiry)) = due.pop() else { break };
                if is_still_newest(&expiry.chain, expiry.version, &guard) {
                    expired.push((expiry.chain, expiry.version));
                }
            }
            let slice = self.commit_tombstones_batched(&expired, &guard);
            Counters::add(&self.counters.expirations_reaped, slice);
            reaped += slice;
            let next = due.peek().map_or(u64::MAX, |Reverse(next)| next.at_ms);
            if next > now_ms {
                // Only now, under `due`'s lock: a call meanwhile waited for this one's
                // tombstones instead of returning before they were written.
                self.reaper.next_due_ms.store(next, Ordering::Release);
                return reaped;
            }
            drop(due);
            turn.hand_over();
        }
    }

    /// Replaces, in commits of at most [`REAPS_PER_COMMIT_MAX`] (with a log
    /// [`REAPS_PER_LOGGED_COMMIT_MAX`], each fitting one log record), every
    /// `(chain, version)` whose newest version is still `version` by a maintenance
    /// tombstone; returns how many it wrote, once they are as durable as the log makes
    /// commits (waiting once per [`LOGGED_COMMITS_PER_WAIT`] commits).
    fn commit_tombstones_batched(&self, doomed: &[(ChainRef, u64)], guard: &Guard) -> u64 {
        // Each batch also fits one log record: a key's tombstone takes 5 bytes and the key
        // (the record's header, 12), and `Database::open` checks that the longest key fits.
        let record_max = self.log.as_ref().map_or(u64::MAX, |log| log.wal.max_record_bytes());
        let per_commit =
            if self.log.is_some() { REAPS_PER_LOGGED_COMMIT_MAX } else { REAPS_PER_COMMIT_MAX };
        let mut written = 0;
        let mut run = Run::default();
        let mut rest = doomed;
        while !rest.is_empty() {
            let mut bytes = record::HEADER_LEN as u64;
            let mut len = 0;
            for (chain, _) in rest.iter().take(per_commit) {
                let more = 5 + chain.key().len() as u64;
                if len > 0 && bytes + more > record_max {
                    break;
                }
                bytes += more;
                len += 1;
            }
            let (batch, later) = rest.split_at(len);
            self.commit_tombstones(batch, guard, &mut run);
            if run.commits >= LOGGED_COMMITS_PER_WAIT {
                written += self.settle(&mut run);
            }
            rest = later;
            if !rest.is_empty() {
                leave_the_lock_free();
            }
        }
        written + self.settle(&mut run)
    }

    /// Waits for the commits of `run` (see `Shared::settle_maintenance`) and returns how
    /// many tombstones they wrote: none if the wait failed (the database is poisoned).
    fn settle(&self, run: &mut Run) -> u64 {
        let Run { tombstones, last, .. } = std::mem::take(run);
        let (Some(log), Some(last)) = (&self.log, last) else {
            return tombstones;
        };
        match self.settle_maintenance(log, last) {
            Ok(()) => tombstones,
            Err(_) => 0,
        }
    }

    /// Commits maintenance tombstones over the versions of `batch` that are still the
    /// newest of their keys, in one commit, and adds it to `run`.
    fn commit_tombstones(&self, batch: &[(ChainRef, u64)], guard: &Guard, run: &mut Run) {
        if self.check_not_poisoned().is_err() {
            return;
        }
        let tombstones: Vec<Owned<VersionNode>> =
            batch.iter().map(|_| Owned::new(VersionNode::tombstone(Origin::Reaper))).collect();
        let mut state = self.sequencer.lock();
        let still: Vec<(&ChainRef, Owned<VersionNode>)> = batch
            .iter()
            .zip(tombstones)
            .filter(|((chain, version), _)| is_still_newest(chain, *version, guard))
            .map(|((chain, _), tombstone)| (chain, tombstone))
            .collect();
        if still.is_empty() {
            return;
        }
        let version = self.take_version(&mut state);
        let written = still.len() as u64;
        let mut keys = Vec::with_capacity(still.len());
        for (chain, mut tombstone) in still {
            tombstone.set_version(version);
            let key = chain.key().clone();
            if self.log.is_some() {
                keys.push(key.clone());
            }
            self.link(&mut state, key, tombstone, guard);
        }
        run.commits += 1;
        let Some(log) = &self.log else {
            self.finish_in_memory(version);
            drop(state);
            // In memory, it finished under the lock: it is visible.
            run.tombstones += written;
            return;
        };
        // Encoded under the lock: which keys it covers is known only there. Appended under
        // it too, so that every later commit's record comes after this one in the log: a
        // `Sync` commit's own sync then covers it, and never waits for the reaper's wait
        // to make it visible.
        keys.sort_unstable();
        let maintenance_tombstone = VersionNode::tombstone(Origin::Reaper);
        // Keys within the key limit, at most a thousand of them, fitting the record limit
        // (see `commit_tombstones_batched`).
        let record =
            record::encode(keys.iter().map(|key| (key.as_slice(), &maintenance_tombstone)));
        let appended = self.append_maintenance(log, record, version);
        drop(state);
        // A failure poisons the database: nothing more is reaped or committed.
        if let Ok(appended) = appended {
            run.tombstones += written;
            run.last = Some(appended);
        }
    }

    /// Runs at most `steps` purge steps of the pending range deletes (see
    /// `range_delete.rs`), after retiring those whose walk every reader is past; returns
    /// how many keys it replaced by tombstones.
    pub(crate) fn purge_range_deletes(&self, steps: usize) -> u64 {
        let _walker = self.range_deletes.walker();
        self.range_deletes.retire_collected();
        let mut purged = 0;
        for _ in 0..steps {
            let turn = self.maintenance.enter();
            let Some(walk) = self.range_deletes.next_walk() else { break };
            if self.check_not_poisoned().is_err() {
                break;
            }
            purged += self.purge_step(&walk);
            turn.hand_over();
        }
        purged
    }

    /// Walks at most [`PURGE_KEYS_PER_STEP`] keys of `walk` and replaces each newest
    /// version older than the range delete by a tombstone; returns how many it replaced.
    fn purge_step(&self, walk: &Walk) -> u64 {
        let guard = epoch::pin();
        let bounds =
            (walk.from.as_ref().map(Bytes::as_slice), walk.to.as_ref().map(Bytes::as_slice));
        let mut walked = 0;
        let mut last = None;
        let mut doomed_keys = Vec::new();
        let mut to_cut = Vec::new();
        self.index.scan(bounds, &guard, |key, chain| {
            walked += 1;
            if let Some(head) = chain.head(&guard) {
                if head.version() < walk.version && !head.is_tombstone() {
                    doomed_keys.push((key.clone(), head.version()));
                } else if head.version() >= walk.version
                    && chain.nodes(&guard).any(|node| node.version() < walk.version)
                {
                    // Written again since: older versions the collector must cut.
                    to_cut.push(key.clone());
                }
            }
            if walked == PURGE_KEYS_PER_STEP {
                last = Some(key.clone());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        let index_guard = self.index.guard();
        let doomed: Vec<(ChainRef, u64)> = doomed_keys
            .into_iter()
            .filter_map(|(key, version)| {
                self.index.get_ref(&key, &index_guard, &guard).map(|chain| (chain, version))
            })
            .collect();
        let to_cut: Vec<ChainRef> =
            to_cut.iter().filter_map(|key| self.index.get_ref(key, &index_guard, &guard)).collect();
        drop(index_guard);
        if !to_cut.is_empty() && self.options.retention != Retention::KeepAll {
            let mut state = self.sequencer.lock();
            for chain in to_cut {
                if chain.mark_gc_queued() {
                    state.gc_queue.push(chain);
                }
            }
        }
        let purged = self.commit_tombstones_batched(&doomed, &guard);
        // Every tombstone of the walk is committed: its version, and that of any user write
        // that got there first, is at or below the last version handed out.
        self.range_deletes.walked(walk, purged, last, self.sequencer.last_version());
        purged
    }
}

/// How long the reaper leaves the sequencer's lock free between two of its commits.
#[cfg(not(loom))]
const LOCK_FREE_BETWEEN_COMMITS: std::time::Duration = std::time::Duration::from_micros(2);

/// Between two maintenance commits: spins a moment before taking the sequencer's lock
/// again. A committer that found the lock held spins too, checking it now and then; were
/// the reaper to take it again at once, that committer would find it held again and again,
/// fall asleep, and be woken tens of microseconds later.
fn leave_the_lock_free() {
    #[cfg(not(loom))]
    {
        let until = std::time::Instant::now() + LOCK_FREE_BETWEEN_COMMITS;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// Whether `version` is still the newest of `chain`, and no tombstone (no write replaced
/// it).
fn is_still_newest(chain: &ChainRef, version: u64, guard: &Guard) -> bool {
    chain.head(guard).is_some_and(|head| head.version() == version && !head.is_tombstone())
}
