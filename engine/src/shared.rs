//! The state shared by the database handle, its snapshots and transactions, and the
//! maintenance thread, with its plain accessors. Every subsystem's state is a field; their
//! protocols are in their own files (`txn/commit.rs`, `gc.rs`, `ttl.rs`, `checkpoint.rs`,
//! `snapshot.rs`), none of which this file imports.

use crate::clock;
use crate::dir::Log;
use crate::error::{Error, Limit, Result};
use crate::expiry::Reaper;
use crate::gate::MaintenanceGate;
use crate::gc_state::GarbageCollector;
use crate::index::KeyIndex;
use crate::options::{Options, Retention};
use crate::range_delete::RangeDeletes;
use crate::sequencer::Sequencer;
use crate::stats::Counters;
use crate::sync::{spin_wait, AtomicBool, AtomicU64, Ordering};
use crate::turns::Turns;
use crate::version::CommitVersion;
use crate::visible::VisibleVersion;
use crate::watermark::SnapshotRegistry;

/// State shared by the database handle, its snapshots and transactions, and the
/// maintenance thread.
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) visible: VisibleVersion,
    pub(crate) registry: SnapshotRegistry,
    pub(crate) sequencer: Sequencer,
    pub(crate) gc: GarbageCollector,
    pub(crate) reaper: Reaper,
    /// One maintenance task at a time, whichever thread runs it (`gate.rs`).
    pub(crate) maintenance: MaintenanceGate,
    pub(crate) range_deletes: RangeDeletes,
    pub(crate) counters: Counters,
    /// The order in which transactions that lost a key retry it (`turns.rs`).
    pub(crate) turns: Turns,
    /// Wall-clock milliseconds, refreshed by snapshots and maintenance: the creation time
    /// one-shot reads register with, so that they need not read the clock.
    pub(crate) coarse_now_ms: AtomicU64,
    pub(crate) poisoned: AtomicBool,
    /// The maintenance thread, to wake it early; set once it runs.
    pub(crate) maintenance_thread: std::sync::OnceLock<std::thread::Thread>,
    /// Asks the maintenance thread to stop.
    pub(crate) stopping: AtomicBool,
    /// The write-ahead log, for a database on a directory that logs its commits.
    pub(crate) log: Option<Log>,
    /// Declared last so it drops last: the collector's queues and the reaper's heap hold
    /// counted handles into the index's skiplist, and each must be released before the
    /// skiplist is freed (see `index::ChainRef`).
    pub(crate) index: KeyIndex,
}

impl Shared {
    pub(crate) fn new(options: Options) -> Shared {
        Shared {
            index: KeyIndex::new(options.scan_only_keys),
            options,
            visible: VisibleVersion::new(CommitVersion::ZERO),
            registry: SnapshotRegistry::new(),
            sequencer: Sequencer::new(CommitVersion::ZERO),
            gc: GarbageCollector::new(),
            reaper: Reaper::new(),
            maintenance: MaintenanceGate::new(),
            range_deletes: RangeDeletes::new(),
            counters: Counters::default(),
            turns: Turns::new(),
            coarse_now_ms: AtomicU64::new(clock::now_ms()),
            poisoned: AtomicBool::new(false),
            maintenance_thread: std::sync::OnceLock::new(),
            stopping: AtomicBool::new(false),
            log: None,
        }
    }

    /// Continues after `version`, recovered from disk: it is visible, and the next commit
    /// takes the version after it. Only before the state is shared.
    pub(crate) fn recovered_at(&mut self, version: CommitVersion) {
        self.visible = VisibleVersion::new(version);
        self.sequencer.recovered_at(version);
    }

    /// Waits until `version` is visible; gives up if the database is poisoned meanwhile (a
    /// commit before it failed in the log and will never be visible).
    pub(crate) fn wait_visible(&self, version: CommitVersion) -> Result<()> {
        let mut round = 0u32;
        while self.visible.load() < version {
            self.check_not_poisoned()?;
            spin_wait(round);
            round = round.saturating_add(1);
        }
        Ok(())
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<()> {
        check_limit(Limit::KeyBytes, key.len(), self.options.limits.key_bytes_max)
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> Result<()> {
        check_limit(Limit::ValueBytes, value.len(), self.options.limits.value_bytes_max)
    }

    pub(crate) fn check_not_poisoned(&self) -> Result<()> {
        // Relaxed: a flag checked on its own; a commit racing with the poisoning may pass.
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// Reads the clock and publishes it for one-shot reads (at most once a millisecond, so
    /// readers of the shared value rarely see its cache line move). Relaxed: a statistic.
    pub(crate) fn refresh_clock(&self) -> u64 {
        let now_ms = clock::now_ms();
        if self.coarse_now_ms.load(Ordering::Relaxed) != now_ms {
            self.coarse_now_ms.store(now_ms, Ordering::Relaxed);
        }
        now_ms
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Relaxed);
    }

    /// Wakes the maintenance thread for a round now, rather than at its next interval.
    pub(crate) fn wake_maintenance(&self) {
        if let Some(thread) = self.maintenance_thread.get() {
            thread.unpark();
        }
    }
}

pub(crate) fn check_limit(limit: Limit, actual: usize, max: usize) -> Result<()> {
    if actual > max {
        return Err(Error::LimitExceeded { limit, actual: actual as u64, max: max as u64 });
    }
    Ok(())
}

/// Retention in the shape the collector uses: the newest version whose predecessors the
/// policy lets go, and how many versions of each key to keep regardless.
pub(crate) fn retention_keep_last(retention: Retention) -> usize {
    match retention {
        Retention::KeepLast(n) => n.get(),
        Retention::KeepAll | Retention::KeepFor(_) => 1,
    }
}
