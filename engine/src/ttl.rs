//! Time to live: expiry of versions, and the reaper that turns expired keys into tombstones.
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
use std::collections::BinaryHeap;

use crate::clock;
use crate::db::Shared;
use crate::index::ChainRef;
use crate::record;
use crate::stats::Counters;
use crate::sync::epoch::{self, Guard, Owned};
use crate::sync::Mutex;
use crate::version::{Origin, VersionNode};

/// Tombstones written per hold of the sequencer's lock, so commits wait at most that long.
const REAPS_PER_COMMIT_MAX: usize = 1024;

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

/// The reaper's queue of expiries, soonest first.
pub(crate) struct Reaper {
    due: Mutex<BinaryHeap<Reverse<Expiry>>>,
}

impl Reaper {
    pub(crate) fn new() -> Reaper {
        Reaper { due: Mutex::new(BinaryHeap::new()) }
    }
}

impl Shared {
    /// Replaces every expired newest version by a tombstone; returns how many.
    pub(crate) fn reap_expired(&self) -> u64 {
        let mut due = self.reaper.due.lock();
        due.extend(std::mem::take(&mut self.sequencer.lock().expiries).into_iter().map(Reverse));
        let now_ms = clock::now_ms();
        let guard = epoch::pin();
        let mut expired = Vec::new();
        while due.peek().is_some_and(|Reverse(next)| next.at_ms <= now_ms) {
            let Some(Reverse(expiry)) = due.pop() else { break };
            if is_still_newest(&expiry, &guard) {
                expired.push(expiry);
            }
        }
        // Each batch also fits one log record: a key's tombstone takes 5 bytes and the key
        // (the record's header, 12), and `Database::open` checks that the longest key fits.
        let record_max = self.log.as_ref().map_or(u64::MAX, |log| log.wal.max_record_bytes());
        let mut reaped = 0;
        let mut rest = expired.as_slice();
        while !rest.is_empty() {
            let mut bytes = record::HEADER_LEN as u64;
            let mut len = 0;
            for expiry in rest.iter().take(REAPS_PER_COMMIT_MAX) {
                let more = 5 + expiry.chain.key().len() as u64;
                if len > 0 && bytes + more > record_max {
                    break;
                }
                bytes += more;
                len += 1;
            }
            let (batch, later) = rest.split_at(len);
            reaped += self.commit_tombstones(batch, &guard);
            rest = later;
        }
        Counters::add(&self.counters.expirations_reaped, reaped);
        reaped
    }

    /// Commits reaper tombstones over the expired versions that are still the newest of
    /// their keys, in one commit; returns how many it wrote.
    fn commit_tombstones(&self, batch: &[Expiry], guard: &Guard) -> u64 {
        if self.check_not_poisoned().is_err() {
            return 0;
        }
        let tombstones: Vec<Owned<VersionNode>> =
            batch.iter().map(|_| Owned::new(VersionNode::tombstone(Origin::Reaper))).collect();
        let mut state = self.sequencer.lock();
        let still: Vec<(&Expiry, Owned<VersionNode>)> = batch
            .iter()
            .zip(tombstones)
            .filter(|(expiry, _)| is_still_newest(expiry, guard))
            .collect();
        if still.is_empty() {
            return 0;
        }
        let version = self.take_version(&mut state);
        let reaped = still.len() as u64;
        let mut keys = Vec::with_capacity(still.len());
        for (expiry, mut tombstone) in still {
            tombstone.set_version(version);
            let key = expiry.chain.key().clone();
            if self.log.is_some() {
                keys.push(key.clone());
            }
            self.link(&mut state, key, tombstone, guard);
        }
        let Some(log) = &self.log else {
            self.finish_in_memory(version);
            drop(state);
            // In memory, it finished under the lock: it is visible.
            return reaped;
        };
        drop(state);
        // Encoded after the sequencer: which keys it reaps is known only under its lock.
        keys.sort_unstable();
        let reaper_tombstone = VersionNode::tombstone(Origin::Reaper);
        // Keys within the key limit, a few hundred of them: far below any record limit.
        let record = record::encode(keys.iter().map(|key| (key.as_slice(), &reaper_tombstone)));
        // A failure poisons the database: nothing more is reaped or committed.
        match self.finish_logged(log, record, version, log.durability) {
            Ok(()) => reaped,
            Err(_) => 0,
        }
    }
}

/// Whether the expiring version is still the newest of its key (no write replaced it).
fn is_still_newest(expiry: &Expiry, guard: &Guard) -> bool {
    expiry
        .chain
        .head(guard)
        .is_some_and(|head| head.version() == expiry.version && !head.is_tombstone())
}
