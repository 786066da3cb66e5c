//! Snapshot registrations and the collection horizon.
//!
//! Every reader — a `Snapshot`, a transaction, a one-shot `get` — registers the version it
//! reads at for as long as it reads. The garbage collector may unlink a version only if no
//! registered reader can need it: it computes a horizon below which nothing is read.
//!
//! # Protocol (a hazard-pointer handshake)
//!
//! Reader: store its version into a slot, `fence(SeqCst)`, load the published horizon. If
//! its version is below the horizon, the collector may already be unlinking what it needs:
//! a reader of "now" retries with a fresh visible version (which is at or above the
//! horizon, see below); a reader of a fixed old version gives up with `SnapshotTooOld`.
//!
//! Collector: store the candidate horizon, `fence(SeqCst)`, load every slot, and prune with
//! the minimum of the candidate and every registered version.
//!
//! The two fences are totally ordered. If the reader's comes first, the collector's loads
//! see the reader's slot; if the collector's comes first, the reader's load sees the
//! candidate (or a later one) and the reader does not proceed below it. Either way no
//! reader reads below the horizon a pass prunes with.
//!
//! The candidate is computed from a visible version the collector loaded before publishing
//! (Release); a reader that loads the horizon with Acquire and then the visible version sees
//! one at least as new, so its retry succeeds unless the collector advanced again.
//!
//! Slots are cache-padded and a thread starts its search at the slot it used last, so
//! readers on different threads do not share cache lines. Slots come in blocks; when every
//! slot is taken, a new block is appended (once: a `OnceLock`, whose only wait is two
//! readers racing to append the same block) and kept until the registry is dropped. No
//! reader ever waits for a writer or the collector.
//!
//! A reader that registers in a new block stores its version after the block is linked
//! (the `OnceLock` publishes it with Release, readers reach it with Acquire), so a collector
//! whose fence follows the reader's sees the block as well as the version.

#[cfg(not(loom))]
use std::cell::Cell;
#[cfg(not(loom))]
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use crossbeam_utils::CachePadded;

use crate::sync::{fence, AtomicU64, Ordering};
use crate::visible::VisibleVersion;

/// Registration slots per block.
#[cfg(not(any(test, loom)))]
pub(crate) const SNAPSHOT_SLOTS: usize = 128;
/// Small under test, so that blocks are appended constantly.
#[cfg(all(test, not(loom)))]
pub(crate) const SNAPSHOT_SLOTS: usize = 2;
/// Enough for every loom model, so that the models stay in one block (a `OnceLock` is not
/// loom-instrumented).
#[cfg(loom)]
pub(crate) const SNAPSHOT_SLOTS: usize = 8;

/// A slot nobody holds.
const FREE: u64 = u64::MAX;
/// A slot claimed by a reader that has not stored its version yet. The collector may
/// ignore it: that reader checks the horizon after storing its version.
const CLAIMED: u64 = u64::MAX - 1;

struct Slot {
    version: AtomicU64,
    created_ms: AtomicU64,
}

/// A block of slots, and the block appended after it when every slot was taken.
struct SlotBlock {
    slots: Box<[CachePadded<Slot>]>,
    next: OnceLock<Box<SlotBlock>>,
}

impl SlotBlock {
    fn new() -> SlotBlock {
        let slots = (0..SNAPSHOT_SLOTS)
            .map(|_| {
                CachePadded::new(Slot {
                    version: AtomicU64::new(FREE),
                    created_ms: AtomicU64::new(0),
                })
            })
            .collect();
        SlotBlock { slots, next: OnceLock::new() }
    }

    /// Claims a free slot, searching from `start`.
    fn claim(&self, start: usize) -> Option<&Slot> {
        (0..SNAPSHOT_SLOTS)
            .map(|step| &*self.slots[start.wrapping_add(step) % SNAPSHOT_SLOTS])
            .find(|slot| {
                // Relaxed loads and CAS: claiming only needs atomicity; the version is
                // published (and ordered against the collector) by the fence in `register`.
                slot.version.load(Ordering::Relaxed) == FREE
                    && slot
                        .version
                        .compare_exchange(FREE, CLAIMED, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
            })
    }
}

impl Drop for SlotBlock {
    /// Unlinks the chain of blocks iteratively: however many were appended, dropping them
    /// does not recurse.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut block) = next {
            next = block.next.take();
        }
    }
}

/// A registered reader; released with [`SnapshotRegistry::release`].
#[derive(Debug)]
pub(crate) struct Registration<'r> {
    slot: &'r Slot,
    version: u64,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Registration<'_> {
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

/// A fixed version asked for is below the horizon: what it read may be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooOld {
    pub(crate) horizon: u64,
}

/// The oldest registered reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OldestReader {
    pub(crate) version: u64,
    pub(crate) created_ms: u64,
}

/// The registered readers and the published horizon.
pub(crate) struct SnapshotRegistry {
    first: SlotBlock,
    horizon: CachePadded<AtomicU64>,
}

#[cfg(not(loom))]
thread_local! {
    /// The slot index this thread used last: where its next search starts.
    static SLOT_HINT: Cell<Option<usize>> = const { Cell::new(None) };
}

#[cfg(not(loom))]
fn slot_hint() -> usize {
    SLOT_HINT.with(|hint| {
        hint.get().unwrap_or_else(|| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            std::hash::Hash::hash(&std::thread::current().id(), &mut hasher);
            let start = hasher.finish() as usize;
            hint.set(Some(start));
            start
        })
    })
}

/// Deterministic under loom, which replays executions and needs every choice to repeat.
#[cfg(loom)]
fn slot_hint() -> usize {
    0
}

impl SnapshotRegistry {
    pub(crate) fn new() -> SnapshotRegistry {
        SnapshotRegistry { first: SlotBlock::new(), horizon: CachePadded::new(AtomicU64::new(0)) }
    }

    fn blocks(&self) -> impl Iterator<Item = &SlotBlock> {
        // Acquire (inside `OnceLock::get`): pairs with the publication of an appended block.
        std::iter::successors(Some(&self.first), |block| block.next.get().map(|next| &**next))
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.blocks().flat_map(|block| block.slots.iter().map(|slot| &**slot))
    }

    /// Registers a reader at `at`, or at the current visible version if `at` is `None`.
    pub(crate) fn register(
        &self,
        visible: &VisibleVersion,
        at: Option<u64>,
        now_ms: u64,
    ) -> Result<Registration<'_>, TooOld> {
        let slot = self.claim();
        // Relaxed: read by `oldest_reader` only after an Acquire load of the version, which
        // the Release store below publishes.
        slot.created_ms.store(now_ms, Ordering::Relaxed);
        loop {
            let version = at.unwrap_or_else(|| visible.load().get());
            // Release: pairs with the Acquire load in `oldest_reader`. The ordering against
            // the collector comes from the fence that follows.
            slot.version.store(version, Ordering::Release);
            fence(Ordering::SeqCst);
            // Acquire: pairs with the Release stores in `publish_horizon`; see the module docs.
            let horizon = self.horizon.load(Ordering::Acquire);
            if version >= horizon {
                return Ok(Registration { slot, version });
            }
            if at.is_some() {
                self.release(&Registration { slot, version });
                return Err(TooOld { horizon });
            }
        }
    }

    /// A free slot, claimed: in the first block that has one, starting from this thread's
    /// hint, appending a block when all are taken.
    fn claim(&self) -> &Slot {
        let start = slot_hint();
        let mut block = &self.first;
        loop {
            if let Some(slot) = block.claim(start) {
                #[cfg(not(loom))]
                if let Some(index) =
                    block.slots.iter().position(|candidate| std::ptr::eq(&**candidate, slot))
                {
                    SLOT_HINT.with(|hint| hint.set(Some(index)));
                }
                return slot;
            }
            block = block.next.get_or_init(|| Box::new(SlotBlock::new()));
        }
    }

    /// Ends a registration.
    pub(crate) fn release(&self, registration: &Registration<'_>) {
        // Release: the reader's last reads happen before its slot frees.
        registration.slot.version.store(FREE, Ordering::Release);
    }

    /// The horizon last published: readers below it are refused.
    pub(crate) fn published_horizon(&self) -> u64 {
        self.horizon.load(Ordering::Acquire)
    }

    /// Publishes `candidate` as the horizon, finds the lowest registered version, and
    /// returns the horizon a collection pass may prune with: the lower of the two. Called by
    /// the collector only, one pass at a time.
    pub(crate) fn publish_horizon(&self, candidate: u64) -> u64 {
        let previous = self.horizon.load(Ordering::Relaxed);
        // Release: pairs with the Acquire load in `register`; see the module docs.
        self.horizon.store(previous.max(candidate), Ordering::Release);
        fence(Ordering::SeqCst);
        let lowest = self.oldest_reader().map_or(u64::MAX, |oldest| oldest.version);
        let effective = candidate.min(lowest);
        // Then publish what the pass actually prunes with, so that `snapshot_at` is refused
        // only below it (down to the oldest open snapshot). Lowering the published value
        // from the candidate is safe: this pass prunes with `effective`, and every later
        // pass publishes its own candidate before it looks at the slots again.
        self.horizon.store(previous.max(effective), Ordering::Release);
        effective
    }

    /// The oldest registered reader, if any.
    pub(crate) fn oldest_reader(&self) -> Option<OldestReader> {
        self.slots()
            .filter_map(|slot| {
                // Acquire: pairs with the Release store in `register`, so the creation time
                // read next is the one stored with this version.
                let version = slot.version.load(Ordering::Acquire);
                (version < CLAIMED).then(|| OldestReader {
                    version,
                    created_ms: slot.created_ms.load(Ordering::Relaxed),
                })
            })
            .min_by_key(|reader| (reader.version, reader.created_ms))
    }

    /// How many readers are registered right now.
    pub(crate) fn open_readers(&self) -> u64 {
        self.slots().filter(|slot| slot.version.load(Ordering::Relaxed) < CLAIMED).count() as u64
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::version::CommitVersion;

    #[test]
    fn the_collector_never_prunes_above_a_registered_reader() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(CommitVersion::new(5));
        let reader = registry.register(&visible, None, 1).expect("registers");
        assert_eq!(reader.version(), 5);
        assert_eq!(registry.publish_horizon(9), 5);
        registry.release(&reader);
        assert_eq!(registry.publish_horizon(9), 9);
    }

    #[test]
    fn a_fixed_version_below_the_horizon_is_refused() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(CommitVersion::new(9));
        registry.publish_horizon(6);
        assert_eq!(registry.register(&visible, Some(5), 1).unwrap_err(), TooOld { horizon: 6 });
        assert_eq!(registry.open_readers(), 0, "a refused registration leaves nothing behind");
        assert!(registry.register(&visible, Some(6), 1).is_ok());
    }

    #[test]
    fn registrations_beyond_a_block_of_slots_append_blocks_and_are_still_seen() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(CommitVersion::new(3));
        let readers: Vec<_> = (0..3 * SNAPSHOT_SLOTS + 1)
            .map(|i| registry.register(&visible, Some(3), i as u64).expect("registers"))
            .collect();
        assert_eq!(registry.blocks().count(), 4);
        assert_eq!(registry.open_readers(), readers.len() as u64);
        assert_eq!(registry.publish_horizon(10), 3);
        assert_eq!(registry.oldest_reader(), Some(OldestReader { version: 3, created_ms: 0 }));
        for reader in &readers {
            registry.release(reader);
        }
        assert_eq!(registry.open_readers(), 0);
        assert_eq!(registry.publish_horizon(10), 10);
    }

    #[test]
    fn the_published_horizon_is_what_the_pass_prunes_with() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(CommitVersion::new(5));
        let reader = registry.register(&visible, None, 1).expect("registers");
        assert_eq!(registry.publish_horizon(9), 5);
        assert_eq!(
            registry.published_horizon(),
            5,
            "a snapshot at the reader's version stays possible"
        );
        registry.release(&reader);
        assert_eq!(registry.publish_horizon(9), 9);
        assert_eq!(registry.published_horizon(), 9);
    }

    #[test]
    fn the_published_horizon_never_moves_back() {
        let registry = SnapshotRegistry::new();
        registry.publish_horizon(8);
        assert_eq!(registry.publish_horizon(4), 4, "prunes with the lower candidate");
        assert_eq!(registry.published_horizon(), 8, "but readers below 8 stay refused");
    }
}
