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

use std::cmp::Reverse;
use std::ops::ControlFlow;

use crate::bytes::Bytes;

use crate::clock;
use crate::index::ChainRef;
use crate::options::{Durability, Retention};
use crate::range_delete::{Walk, PURGE_KEYS_PER_STEP};
use crate::record;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::sync::epoch::{self, Guard, Owned};
use crate::sync::{unlock_fair, Ordering};
use crate::txn::commit::Parked;
use crate::version::{Origin, VersionNode};

/// Tombstones written per hold of the sequencer's lock (one commit) in memory, so commits
/// wait at most that long: each costs a check and a link, a few hundred nanoseconds, and a
/// committer that waits longer than its spin stops spinning and sleeps, to be woken tens
/// of microseconds later. (The MVCC reference model, `tests/model`, commits a purge in
/// batches of the same size: `MAINTENANCE_COMMIT_KEYS_MAX`.)
const REAPS_PER_COMMIT_MAX: usize = 4;
/// The same with a log, where each commit is also a record, and in a `Sync` database a
/// sync the reaper waits for: fewer, larger commits.
const REAPS_PER_LOGGED_COMMIT_MAX: usize = 16;
/// Maintenance commits a `Sync` database makes durable together: each is appended and
/// parked, and the reaper (or purge) waits once for the group, not once per commit, so
/// reaping syncs the log a sixteenth as often (and completes a sixteenth of the writes,
/// each an interrupt on the core that takes the disk's). A user commit that comes
/// meanwhile writes the group's records with its own and waits at most for the group.
const MAINTENANCE_COMMITS_PER_SYNC: usize = 16;
/// Tombstones the reaper writes per turn at the maintenance gate (`gate.rs`).
const REAPS_PER_SLICE: usize = 1024;

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
    /// tombstone; returns how many it wrote.
    fn commit_tombstones_batched(&self, doomed: &[(ChainRef, u64)], guard: &Guard) -> u64 {
        // Each batch also fits one log record: a key's tombstone takes 5 bytes and the key
        // (the record's header, 12), and `Database::open` checks that the longest key fits.
        let record_max = self.log.as_ref().map_or(u64::MAX, |log| log.wal.max_record_bytes());
        let per_commit =
            if self.log.is_some() { REAPS_PER_LOGGED_COMMIT_MAX } else { REAPS_PER_COMMIT_MAX };
        let mut written = 0;
        let mut unsynced = Unsynced::default();
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
            written += self.commit_tombstones(batch, guard, &mut unsynced);
            rest = later;
        }
        written + self.finish_unsynced(&mut unsynced)
    }

    /// Waits for the maintenance commits `unsynced` holds: until they are durable and
    /// visible. Returns how many tombstones they wrote, or 0 if that failed (the database
    /// is then poisoned, and they never become visible).
    fn finish_unsynced(&self, unsynced: &mut Unsynced) -> u64 {
        let (Some(log), Some(last)) = (&self.log, unsynced.last.take()) else { return 0 };
        let tombstones = std::mem::take(&mut unsynced.tombstones);
        unsynced.commits = 0;
        match self.finish_parked(log, last) {
            Ok(()) => tombstones,
            Err(_) => 0,
        }
    }

    /// Commits maintenance tombstones over the versions of `batch` that are still the
    /// newest of their keys, in one commit; returns how many it wrote. In a `Sync`
    /// database the commit joins the group `unsynced`, and counts once its group is
    /// waited for ([`MAINTENANCE_COMMITS_PER_SYNC`]; the caller waits for the last one):
    /// the return is then the tombstones of the groups this call waited for.
    fn commit_tombstones(
        &self,
        batch: &[(ChainRef, u64)],
        guard: &Guard,
        unsynced: &mut Unsynced,
    ) -> u64 {
        if self.check_not_poisoned().is_err() {
            return 0;
        }
        let tombstones: Vec<Owned<VersionNode>> =
            batch.iter().map(|_| Owned::new(VersionNode::tombstone(Origin::Reaper))).collect();
        let mut state = self.sequencer.lock();
        if unsynced.last.is_some() && !self.visible.has_room_for(state.last_version.next()) {
            // The ring of commits in flight is full, perhaps of this thread's own parked
            // commits, whose records nobody else may be waiting for: waiting for room
            // under the lock could then wait forever. Wait for them first.
            unlock_fair(state);
            let waited = self.finish_unsynced(unsynced);
            if self.check_not_poisoned().is_err() {
                return waited;
            }
            return waited + self.commit_tombstones(batch, guard, unsynced);
        }
        let still: Vec<(&ChainRef, Owned<VersionNode>)> = batch
            .iter()
            .zip(tombstones)
            .filter(|((chain, version), _)| is_still_newest(chain, *version, guard))
            .map(|((chain, _), tombstone)| (chain, tombstone))
            .collect();
        if still.is_empty() {
            return 0;
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
        let Some(log) = &self.log else {
            self.finish_in_memory(version);
            unlock_fair(state);
            // In memory, it finished under the lock: it is visible.
            return written;
        };
        unlock_fair(state);
        // Encoded after the sequencer: which keys it covers is known only under its lock.
        keys.sort_unstable();
        let maintenance_tombstone = VersionNode::tombstone(Origin::Reaper);
        // Keys within the key limit, at most a thousand of them, fitting the record limit
        // (see `commit_tombstones_batched`).
        let record =
            record::encode(keys.iter().map(|key| (key.as_slice(), &maintenance_tombstone)));
        // A failure poisons the database: nothing more is reaped or committed.
        if log.durability != Durability::Sync {
            return match self.finish_logged(log, record, version, log.durability) {
                Ok(()) => written,
                Err(_) => 0,
            };
        }
        let Ok(parked) = self.append_parked(log, record, version) else { return 0 };
        unsynced.last = Some(parked);
        unsynced.commits += 1;
        unsynced.tombstones += written;
        if unsynced.commits == MAINTENANCE_COMMITS_PER_SYNC {
            return self.finish_unsynced(unsynced);
        }
        0
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

/// Whether `version` is still the newest of `chain`, and no tombstone (no write replaced
/// it).
/// A group of maintenance commits parked in a `Sync` log, not yet waited for.
#[derive(Default)]
struct Unsynced {
    /// The newest: waiting for it waits for them all.
    last: Option<Parked>,
    commits: usize,
    tombstones: u64,
}

fn is_still_newest(chain: &ChainRef, version: u64, guard: &Guard) -> bool {
    chain.head(guard).is_some_and(|head| head.version() == version && !head.is_tombstone())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use crate::{Database, Durability, Options};

    /// In a `Sync` database the reaper parks its commits and waits for them in groups;
    /// under test the ring of commits in flight holds only 4, so a group of 16 fills it
    /// at once, while user commits take their share of it: the reaper must wait for its
    /// own commits before it takes another version, or it waits for room forever. (The
    /// maintenance thread, woken by the first expiry, may be the one reaping: the call
    /// here then waits for it.)
    #[test]
    fn a_sync_databases_reaper_waits_for_its_own_parked_commits_before_the_ring_fills() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default()
            .durability(Durability::Sync)
            .maintenance_interval(Duration::from_secs(3600));
        let db = std::sync::Arc::new(Database::open(dir.path(), options.clone()).expect("open"));
        let expiring = 200;
        let mut txn = db.begin();
        for i in 0..expiring {
            txn.put_with_ttl(format!("x{i:04}"), b"v", Duration::from_millis(1)).unwrap();
        }
        txn.commit().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // Neither thread is joined: if they never return (a reaper stuck under the
        // sequencer's lock stops the writer too), the test fails instead of hanging.
        let (reaper, writer) = (std::sync::Arc::clone(&db), std::sync::Arc::clone(&db));
        let (reaped_tx, reaped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reaped = reaper.reap_expired();
            drop(reaper);
            reaped_tx.send(reaped)
        });
        let (written_tx, written) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let written = (0..100u32).filter(|i| writer.put(format!("u{i:04}"), b"w").is_ok());
            let written = written.count();
            drop(writer);
            written_tx.send(written)
        });
        let deadline = Duration::from_secs(60);
        let reaped = reaped.recv_timeout(deadline).expect("the reaper returns");
        assert_eq!(written.recv_timeout(deadline).expect("the writer returns"), 100);
        // The maintenance thread, woken by the first expiry, may have reaped some first.
        assert!(reaped <= expiring);
        assert_eq!(db.stats().expirations_reaped, expiring, "every expired key reaped, once");
        // Every reaper commit is visible: nothing was left parked.
        let snapshot = db.snapshot();
        assert_eq!(snapshot.version(), db.visible_version());
        for i in 0..expiring {
            assert_eq!(db.get(format!("x{i:04}")).unwrap(), None);
        }
        drop(snapshot);
        drop(std::sync::Arc::into_inner(db).expect("the reaper's handle is gone"));
        // And durable: the reopened log holds the tombstones as written.
        let db = Database::open(dir.path(), options).expect("reopen");
        assert_eq!(db.get("u0099").unwrap().as_deref(), Some(&b"w"[..]));
        assert_eq!(db.reap_expired(), 0, "the tombstones were logged: nothing left to reap");
    }
}
