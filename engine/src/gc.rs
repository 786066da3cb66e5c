//! Garbage collection: unlinking versions no reader can read and the retention policy lets
//! go, and forgetting keys that are deleted for every reader.
//!
//! # How a pass works
//!
//! 1. **Horizon.** The candidate is `min(visible version, retention horizon)`; the snapshot
//!    registry publishes it and lowers it to the oldest registered reader (`watermark.rs`).
//!    No reader at or above the horizon can need a version superseded at or below it.
//! 2. **Which chains.** The collector does not scan the keyspace. The sequencer queues a
//!    chain when it gains a version over an older one (once, until the collector takes it).
//!    A chain that still holds superseded versions after a pass (held back by a snapshot,
//!    by retention, or committed while the pass ran) waits in a heap keyed by the horizon
//!    that frees its oldest version. A pass takes the queue and every heap entry the
//!    horizon has reached, so every superseded version is eventually looked at again.
//! 3. **Prune.** Each chain keeps its versions down to the newest one at or below the
//!    horizon (and at least `keep_last`, but none older than a range delete covering the
//!    key at or below the horizon), and retires the rest through the epoch. Readers
//!    never wait: they either stop before the cut or hold a guard that keeps the memory.
//! 4. **Forget.** A chain whose newest version is a tombstone at or below the horizon is
//!    deleted for every reader; under the sequencer's lock (so no commit installs into it
//!    meanwhile), the collector checks that its head is unchanged and marks it forgotten;
//!    then, with the lock released, it unlinks it from both indexes (`index.rs`).
//! 5. **Reclaim.** What the pass unlinked is freed through the epoch: crossbeam-epoch runs
//!    deferred functions on whichever thread pins next, so left alone, a committing thread
//!    would free a pass's skiplist entries (and their chains) in batches of hundreds, tens
//!    of microseconds at a time. The collector instead keeps its own thread pinning and
//!    collecting until a marker it deferred last has run, so the pass's garbage is freed
//!    here, off the foreground (bounded by [`DRAIN_MAX`], in case a long reader holds the
//!    epoch back). Dropping the database does the same for what is still left
//!    ([`Shared::free_garbage_left_to_the_epoch`]).
//!
//! The collector also measures what open snapshots cost: the bytes of superseded versions
//! that the retention policy would let go but the horizon keeps (see
//! [`crate::OldestSnapshot::pinned_bytes`]).
//!
//! Passes run one at a time (the collector's own lock) on the maintenance thread, or when
//! [`crate::Database::collect_garbage`] is called.

use std::cmp::Reverse;
#[cfg(not(loom))]
use std::sync::Arc;
#[cfg(not(loom))]
use std::time::{Duration, Instant};

use crate::chain::{Released, Retired};
use crate::clock;
use crate::gc_state::{GcState, Waiting};
use crate::index::ChainRef;
use crate::range_delete::Hiding;
use crate::shared::{retention_keep_last, Shared};
use crate::stats::{Counters, GcReport};
use crate::sync::epoch::{self, Guard};
#[cfg(not(loom))]
use crate::sync::{spin_wait, AtomicBool, Ordering};
use crate::version::{CommitVersion, VersionNode};

/// Dead chains forgotten per hold of the sequencer's lock (each a check and a flag; the
/// unlinking that costs comes after the lock), so commits wait at most that long: short
/// enough that a committer waiting for the lock is still spinning when it is released.
const REMOVALS_PER_LOCK_MAX: usize = 16;
/// How long a pass keeps collecting its own deferred functions at most (see the module's
/// documentation, step 5): past that, a reader pinned all along holds the epoch back, and
/// what is left is freed later, by whichever thread pins.
#[cfg(not(loom))]
const DRAIN_MAX: Duration = Duration::from_millis(50);
/// How long dropping a database waits at most for the epoch to run what its passes handed
/// it (see [`Shared::free_garbage_left_to_the_epoch`]).
#[cfg(not(loom))]
const DRAIN_AT_DROP_MAX: Duration = Duration::from_secs(1);

/// The horizons of one pass.
#[derive(Clone, Copy)]
struct Horizons {
    /// What the pass prunes with.
    effective: u64,
    /// What it would prune with if no snapshot were open.
    unpinned: u64,
    keep_last: usize,
}

/// The work of one collection pass, as it goes.
struct Pass<'g> {
    guard: &'g Guard,
    horizons: Horizons,
    report: GcReport,
    /// Chains deleted for every reader, with the head each was seen with.
    dead: Vec<(ChainRef, *const VersionNode)>,
    /// Versions unlinked by this pass, freed once no reader can hold them.
    retired: Retired,
    /// The range deletes in effect: no version older than one at or below the horizon is
    /// kept (see `range_delete.rs`).
    hiding: Hiding,
}

impl Shared {
    /// Runs one collection pass, as one turn at the maintenance gate (`gate.rs`).
    pub(crate) fn collect_garbage(&self) -> GcReport {
        let _turn = self.maintenance.enter();
        let mut gc = self.gc.state.lock();
        let visible = self.visible.load().get();
        let retention = gc.retention_horizon(self.options.retention, visible, clock::now_ms());
        let unpinned = retention.min(visible);
        let effective = self.registry.publish_horizon(unpinned);
        debug_assert!(effective <= unpinned && unpinned <= visible);
        let keep_last = retention_keep_last(self.options.retention);
        let mut guard = epoch::pin();
        let mut pass = Pass {
            guard: &guard,
            horizons: Horizons { effective, unpinned, keep_last },
            report: GcReport { horizon: CommitVersion::new(effective), ..GcReport::default() },
            dead: Vec::new(),
            retired: Retired::default(),
            hiding: self.range_deletes.hiding(),
        };
        let queued = {
            let mut state = self.sequencer.lock();
            state.linked_since_collection = 0;
            std::mem::take(&mut state.gc_queue)
        };
        for chain in queued {
            chain.take_gc_queued();
            self.collect_chain(&mut gc, &mut pass, chain);
        }
        while gc.waiting.peek().is_some_and(|Reverse(top)| top.frees_at <= effective) {
            let Some(Reverse(entry)) = gc.waiting.pop() else { break };
            entry.chain.set_gc_waiting(false);
            self.collect_chain(&mut gc, &mut pass, entry.chain);
        }
        let dead = std::mem::take(&mut pass.dead);
        for batch in dead.chunks(REMOVALS_PER_LOCK_MAX) {
            pass.report.keys_removed += self.forget_dead(&mut gc, batch, pass.guard);
        }
        // Released here, on this thread: a forgotten chain's last handle may be one of
        // these, whose release defers the skiplist entry's destruction.
        drop(dead);
        let Pass { report, retired, .. } = pass;
        retired.release_after_readers(&guard, &self.gc.released);
        self.range_deletes.collected_to(effective);
        self.reclaim(&mut guard, report.keys_removed);
        self.account(&gc, report)
    }

    /// Frees what earlier passes released, then hands this thread's deferred functions
    /// (this pass's retired versions, the index's unlinked entries) to the global queue;
    /// if the pass unlinked keys, it collects until they have run (module documentation,
    /// step 5).
    fn reclaim(&self, guard: &mut Guard, keys_removed: u64) {
        let released = std::mem::take(&mut *self.gc.released.lock());
        let freed: u64 = released.iter().map(Released::versions).sum();
        drop(released);
        Counters::add(&self.counters.versions_freed, freed);
        guard.repin();
        guard.flush();
        #[cfg(not(loom))]
        if keys_removed > 0 {
            drain_deferred(guard, DRAIN_MAX);
        }
        // Loom's epoch twin runs no deferred functions: there is nothing to drain.
        #[cfg(loom)]
        let _ = keys_removed;
    }

    /// Frees, on this thread, what this database's passes handed to the epoch and no thread
    /// has freed yet; called when the database is dropped. Left to the epoch, it would be
    /// freed by whichever thread of the process pins next, a reader of another database
    /// perhaps, and all at once: the deferred functions that hold the released batches
    /// hold the list of them too, and once the database is gone the last one to run drops
    /// every batch in it.
    pub(crate) fn free_garbage_left_to_the_epoch(&self) {
        #[cfg(not(loom))]
        drain_deferred(&mut epoch::pin(), DRAIN_AT_DROP_MAX);
        drop(std::mem::take(&mut *self.gc.released.lock()));
    }

    fn account(&self, gc: &GcState, mut report: GcReport) -> GcReport {
        Counters::add(&self.counters.gc_passes, 1);
        Counters::add(&self.counters.versions_pruned, report.versions_pruned);
        Counters::add(&self.counters.bytes_pruned, report.bytes_pruned);
        Counters::add(&self.counters.keys_removed, report.keys_removed);
        self.counters.pinned_bytes.store(gc.pinned_bytes, crate::sync::Ordering::Relaxed);
        report.pinned_bytes = gc.pinned_bytes;
        report
    }

    fn collect_chain(&self, gc: &mut GcState, pass: &mut Pass<'_>, chain: ChainRef) {
        let Horizons { effective, unpinned, keep_last } = pass.horizons;
        let floor = pass.hiding.floor_at(chain.key(), effective);
        let pruned = chain.prune(effective, keep_last, floor, pass.guard, &mut pass.retired);
        if pruned.versions > 0 {
            Counters::sub(&self.counters.versions, pruned.versions);
            Counters::sub(&self.counters.bytes, pruned.bytes);
            pass.report.versions_pruned += pruned.versions;
            pass.report.bytes_pruned += pruned.bytes;
        }
        let pinned = chain.pinned(unpinned, keep_last, pass.guard);
        gc.pinned_bytes = gc.pinned_bytes - chain.swap_gc_pinned_bytes(pinned.bytes) + pinned.bytes;
        if let Some(head) = chain.dead_head(effective, pass.guard) {
            pass.dead.push((chain, head));
            return;
        }
        // Still holding something a higher horizon frees: its oldest superseded version,
        // or the whole key once its deleting tombstone is at or below the horizon.
        let frees_oldest = chain.frees_oldest_at(keep_last, pass.guard);
        let dies =
            chain.head(pass.guard).filter(|head| head.is_tombstone()).map(VersionNode::version);
        // A range delete above the horizon cuts its older versions once the horizon gets
        // there, if the chain holds more than one version.
        let cut = pass
            .hiding
            .next_floor(chain.key(), effective)
            .filter(|_| chain.nodes(pass.guard).nth(1).is_some());
        if let Some(frees_at) = frees_oldest.into_iter().chain(dies).chain(cut).min() {
            if !chain.set_gc_waiting(true) {
                gc.sequence += 1;
                let sequence = gc.sequence;
                gc.waiting.push(Reverse(Waiting { frees_at, sequence, chain }));
            }
        }
    }

    /// Forgets dead chains, under the sequencer's lock so that no commit installs into one
    /// meanwhile, and then, with the lock released, unlinks them from the index (see
    /// `index.rs`: the unlinking is what costs, and no commit waits for it). Returns how
    /// many it forgot.
    fn forget_dead(
        &self,
        gc: &mut GcState,
        dead: &[(ChainRef, *const VersionNode)],
        guard: &Guard,
    ) -> u64 {
        let sequencer = self.sequencer.lock();
        let mut forgotten = Vec::with_capacity(dead.len());
        for (chain, head) in dead {
            if chain.head_ptr(guard) != *head || !self.index.is_linked(chain) || !chain.forget() {
                continue;
            }
            forgotten.push(chain);
            let footprint = chain.footprint(guard);
            Counters::sub(&self.counters.keys, 1);
            Counters::sub(&self.counters.versions, footprint.versions);
            Counters::sub(&self.counters.bytes, footprint.bytes + chain.key().len() as u64);
            gc.pinned_bytes -= chain.swap_gc_pinned_bytes(0);
        }
        drop(sequencer);
        for chain in &forgotten {
            self.index.unlink_forgotten(chain, guard);
        }
        forgotten.len() as u64
    }
}

/// Pins and collects on this thread until a marker deferred now has run: the global queue
/// of deferred functions is first in, first out, so by then everything this thread deferred
/// before it has run too, most of it here. Gives up after `give_up_after`.
#[cfg(not(loom))]
fn drain_deferred(guard: &mut Guard, give_up_after: Duration) {
    let ran = Arc::new(AtomicBool::new(false));
    let marker = Arc::clone(&ran);
    guard.defer(move || marker.store(true, Ordering::Release));
    let give_up = Instant::now() + give_up_after;
    let mut round = 0;
    while !ran.load(Ordering::Acquire) && Instant::now() < give_up {
        guard.repin();
        guard.flush();
        spin_wait(round);
        round += 1;
    }
}
