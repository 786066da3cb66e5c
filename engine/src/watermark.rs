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
//! readers on different threads do not share cache lines. When every slot is taken, the
//! remaining registrations go to a mutex-protected overflow map: correct, just slower.

#[cfg(not(loom))]
use std::cell::Cell;
use std::collections::BTreeMap;
#[cfg(not(loom))]
use std::hash::{BuildHasher, Hasher};

use crossbeam_utils::CachePadded;

use crate::sync::{fence, AtomicU64, Mutex, Ordering};
use crate::visible::VisibleVersion;

/// Registration slots per database; more concurrent readers spill to the overflow map.
#[cfg(not(any(test, loom)))]
pub(crate) const SNAPSHOT_SLOTS: usize = 128;
/// Small under test and loom, so that the overflow path runs constantly.
#[cfg(any(test, loom))]
pub(crate) const SNAPSHOT_SLOTS: usize = 2;

/// A slot nobody holds.
const FREE: u64 = u64::MAX;
/// A slot claimed by a reader that has not stored its version yet. The collector may
/// ignore it: that reader checks the horizon after storing its version.
const CLAIMED: u64 = u64::MAX - 1;

struct Slot {
    version: AtomicU64,
    created_ms: AtomicU64,
}

#[derive(Default)]
struct Overflow {
    /// version → (registrations at it, creation time of the oldest).
    versions: BTreeMap<u64, (u64, u64)>,
}

/// Where a registration lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Slot(usize),
    Overflow,
}

/// A registered reader; released with [`SnapshotRegistry::release`].
#[derive(Debug)]
pub(crate) struct Registration {
    place: Place,
    version: u64,
    created_ms: u64,
}

impl Registration {
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
    slots: Box<[CachePadded<Slot>]>,
    overflow: Mutex<Overflow>,
    horizon: CachePadded<AtomicU64>,
}

#[cfg(not(loom))]
thread_local! {
    /// The slot this thread used last: where its next search starts.
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
        let slots = (0..SNAPSHOT_SLOTS)
            .map(|_| {
                CachePadded::new(Slot {
                    version: AtomicU64::new(FREE),
                    created_ms: AtomicU64::new(0),
                })
            })
            .collect();
        SnapshotRegistry {
            slots,
            overflow: Mutex::new(Overflow::default()),
            horizon: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Registers a reader at `at`, or at the current visible version if `at` is `None`.
    pub(crate) fn register(
        &self,
        visible: &VisibleVersion,
        at: Option<u64>,
        now_ms: u64,
    ) -> Result<Registration, TooOld> {
        let place = self.claim();
        let mut registration = Registration { place, version: FREE, created_ms: now_ms };
        loop {
            let version = at.unwrap_or_else(|| visible.load());
            self.publish_reader(&mut registration, version);
            fence(Ordering::SeqCst);
            // Acquire: pairs with the Release store in `publish_horizon`; see the module docs.
            let horizon = self.horizon.load(Ordering::Acquire);
            if version >= horizon {
                return Ok(registration);
            }
            if at.is_some() {
                self.release(&registration);
                return Err(TooOld { horizon });
            }
        }
    }

    fn claim(&self) -> Place {
        let start = slot_hint();
        for step in 0..SNAPSHOT_SLOTS {
            let index = start.wrapping_add(step) % SNAPSHOT_SLOTS;
            let slot = &self.slots[index];
            // Relaxed loads and CAS: claiming only needs atomicity; the version is
            // published (and ordered against the collector) by the fence in `register`.
            if slot.version.load(Ordering::Relaxed) == FREE
                && slot
                    .version
                    .compare_exchange(FREE, CLAIMED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                #[cfg(not(loom))]
                SLOT_HINT.with(|hint| hint.set(Some(index)));
                return Place::Slot(index);
            }
        }
        Place::Overflow
    }

    /// Stores (or replaces) the reader's version where the collector looks for it.
    fn publish_reader(&self, registration: &mut Registration, version: u64) {
        match registration.place {
            Place::Slot(index) => {
                let slot = &self.slots[index];
                // Relaxed: read by `oldest` only after an Acquire load of the version below.
                slot.created_ms.store(registration.created_ms, Ordering::Relaxed);
                // Release: pairs with the Acquire load in `oldest`. The ordering against the
                // collector comes from the SeqCst fence that follows in `register`.
                slot.version.store(version, Ordering::Release);
            }
            Place::Overflow => {
                let mut overflow = self.overflow.lock();
                if registration.version != FREE {
                    overflow.remove(registration.version);
                }
                overflow.insert(version, registration.created_ms);
            }
        }
        registration.version = version;
    }

    /// Ends a registration.
    pub(crate) fn release(&self, registration: &Registration) {
        match registration.place {
            // Release: the reader's last reads happen before its slot frees.
            Place::Slot(index) => self.slots[index].version.store(FREE, Ordering::Release),
            Place::Overflow => self.overflow.lock().remove(registration.version),
        }
    }

    /// The horizon last published: readers below it are refused.
    pub(crate) fn published_horizon(&self) -> u64 {
        self.horizon.load(Ordering::Acquire)
    }

    /// Publishes `candidate` as the horizon (never moving it back) and returns the horizon a
    /// collection pass may prune with: the lowest of `candidate` and every registered
    /// version. Called by the collector only, one pass at a time.
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
        let mut oldest: Option<OldestReader> = None;
        let mut consider = |version: u64, created_ms: u64| {
            if oldest.is_none_or(|o| {
                version < o.version || (version == o.version && created_ms < o.created_ms)
            }) {
                oldest = Some(OldestReader { version, created_ms });
            }
        };
        for slot in self.slots.iter() {
            // Acquire: pairs with the Release store in `publish_reader`, so the creation
            // time read next is the one stored with this version.
            let version = slot.version.load(Ordering::Acquire);
            if version < CLAIMED {
                consider(version, slot.created_ms.load(Ordering::Relaxed));
            }
        }
        if let Some((&version, &(_, created_ms))) = self.overflow.lock().versions.first_key_value()
        {
            consider(version, created_ms);
        }
        oldest
    }

    /// How many readers are registered right now.
    pub(crate) fn open_readers(&self) -> u64 {
        let in_slots =
            self.slots.iter().filter(|slot| slot.version.load(Ordering::Relaxed) < CLAIMED).count();
        let overflowed: u64 = self.overflow.lock().versions.values().map(|&(count, _)| count).sum();
        in_slots as u64 + overflowed
    }
}

impl Overflow {
    fn insert(&mut self, version: u64, created_ms: u64) {
        let entry = self.versions.entry(version).or_insert((0, created_ms));
        entry.0 += 1;
        entry.1 = entry.1.min(created_ms);
    }

    fn remove(&mut self, version: u64) {
        if let Some(entry) = self.versions.get_mut(&version) {
            entry.0 -= 1;
            if entry.0 == 0 {
                self.versions.remove(&version);
            }
        } else {
            debug_assert!(false, "released a registration that was not registered");
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_collector_never_prunes_above_a_registered_reader() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(5);
        let reader = registry.register(&visible, None, 1).expect("registers");
        assert_eq!(reader.version(), 5);
        assert_eq!(registry.publish_horizon(9), 5);
        registry.release(&reader);
        assert_eq!(registry.publish_horizon(9), 9);
    }

    #[test]
    fn a_fixed_version_below_the_horizon_is_refused() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(9);
        registry.publish_horizon(6);
        assert_eq!(registry.register(&visible, Some(5), 1).unwrap_err(), TooOld { horizon: 6 });
        assert_eq!(registry.open_readers(), 0, "a refused registration leaves nothing behind");
        assert!(registry.register(&visible, Some(6), 1).is_ok());
    }

    #[test]
    fn registrations_beyond_the_slots_overflow_and_are_still_seen() {
        let registry = SnapshotRegistry::new();
        let visible = VisibleVersion::new(3);
        let readers: Vec<_> = (0..SNAPSHOT_SLOTS + 3)
            .map(|i| registry.register(&visible, Some(3), i as u64).expect("registers"))
            .collect();
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
        let visible = VisibleVersion::new(5);
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
