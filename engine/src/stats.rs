//! Counters the engine keeps as it works, and the [`Stats`] snapshot of them.

use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};
use crate::version::CommitVersion;

/// Running counters. All `Relaxed`: each is a statistic read on its own, never used to
/// order other memory.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) keys: AtomicU64,
    pub(crate) versions: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) gc_passes: AtomicU64,
    pub(crate) versions_pruned: AtomicU64,
    pub(crate) versions_freed: AtomicU64,
    pub(crate) bytes_pruned: AtomicU64,
    pub(crate) keys_removed: AtomicU64,
    pub(crate) pinned_bytes: AtomicU64,
    pub(crate) expirations_reaped: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) checkpoint_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, amount: u64) {
        let before = counter.fetch_sub(amount, Ordering::Relaxed);
        debug_assert!(before >= amount, "a counter only gives back what it was given");
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A point-in-time view of the engine's size and activity; see [`crate::Database::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The newest version a new snapshot reads.
    pub visible_version: CommitVersion,
    /// Keys with at least one retained version. A deleted key counts until the collector
    /// forgets it; a new key counts from the moment its commit creates it in the index,
    /// just before the commit takes its version (and no longer if the commit then fails).
    pub keys: u64,
    /// Versions retained in all chains, tombstones included.
    pub live_versions: u64,
    /// Bytes of keys (once per key) and values (once per retained version). Index and node
    /// overhead comes on top; `inmem bench` reports the process's peak memory.
    pub live_bytes: u64,
    /// Commits since the database was created.
    pub commits: u64,
    /// Commits refused with [`crate::Error::Conflict`].
    pub conflicts: u64,
    /// Readers registered now: snapshots, transactions, reads in progress.
    pub open_snapshots: u64,
    /// The oldest open snapshot: long-lived snapshots are the usual cause of MVCC memory
    /// growth, and this says which version it holds, for how long, and at what cost.
    pub oldest_snapshot: Option<OldestSnapshot>,
    /// The oldest version `snapshot_at` can still be asked for.
    pub oldest_available: CommitVersion,
    /// Garbage collection.
    pub gc: GcStats,
    /// Expired versions the TTL reaper replaced by tombstones.
    pub expirations_reaped: u64,
    /// Checkpoints the background policy took ([`crate::Options::checkpoint_log_bytes`]).
    pub background_checkpoints: u64,
    /// Background checkpoints that failed (each is tried again at the next round).
    pub background_checkpoint_failures: u64,
    /// The log's counters since the database was opened (records, write batches,
    /// fdatasyncs); `None` without a log.
    pub log: Option<inmem_wal::WalStats>,
}

/// The oldest open snapshot, as [`Stats::oldest_snapshot`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestSnapshot {
    /// The version it reads at.
    pub version: CommitVersion,
    /// How long it has been open.
    pub age: Duration,
    /// Bytes of superseded versions kept alive only because open snapshots might read them
    /// (the retention policy would let them go); the oldest snapshot holds the horizon, so
    /// this is what closing it (and any at the same version) frees. As of the last
    /// collection pass.
    pub pinned_bytes: u64,
}

/// Garbage-collection counters, as [`Stats::gc`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Collection passes run.
    pub passes: u64,
    /// Versions unlinked: no reader can reach them any more.
    pub versions_pruned: u64,
    /// Pruned versions whose memory has been returned. It lags `versions_pruned` by the
    /// epoch's grace period (readers that were already walking them); a gap that keeps
    /// growing means some thread stays pinned.
    pub versions_freed: u64,
    /// Value bytes of those versions.
    pub bytes_pruned: u64,
    /// Deleted keys forgotten entirely.
    pub keys_removed: u64,
}

/// What one collection pass did; see [`crate::Database::collect_garbage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// The horizon it pruned with: no reader at or above it lost anything it could read.
    pub horizon: CommitVersion,
    /// Versions it unlinked.
    pub versions_pruned: u64,
    /// Value bytes of those versions.
    pub bytes_pruned: u64,
    /// Deleted keys it forgot.
    pub keys_removed: u64,
    /// Bytes of superseded versions that open snapshots keep alive after the pass.
    pub pinned_bytes: u64,
}
