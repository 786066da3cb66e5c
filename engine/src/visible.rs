//! The visible version: the newest commit version a new snapshot may read.
//!
//! Commits take versions in the sequencer, in order, but finish (become durable, once the
//! log is wired in) in any order. The visible version advances only over a contiguous prefix
//! of finished commits: if commit 12 finishes before 11, the visible version stays at 10
//! until 11 is finished too, so no snapshot ever sees 12 without 11.
//!
//! A commit that must be durable before it is visible (`Durability::Sync`) is *parked*
//! with the log position its record must be durable through: any finisher may then carry
//! the visible version over it as soon as the log is durable that far, without waiting for
//! its own committer to run. When a batch of 32 records becomes durable at once, the first
//! of the 32 woken committers makes them all visible, and the other 31 find themselves
//! visible already instead of each waiting, in turn, for the ones before it to be
//! scheduled.
//!
//! # Protocol
//!
//! Each commit `v` records itself in a ring slot: first the durable position it needs
//! (`needs`, Relaxed; 0 for none), then `version` = `v` (Release). A commit with no need
//! does so once linked; a parked one once its record is appended. Then, once its need is
//! met (it has seen the log durable that far), it performs a read-modify-write on the
//! `announce` counter (AcqRel), loads the log's durable position, and tries to advance:
//! while slot `visible + 1` holds `visible + 1` and its need is at most that position, it
//! compare-exchanges `visible` one step forward.
//!
//! Why no advance is ever lost: read-modify-writes of one location are totally ordered, and
//! each one (AcqRel) synchronizes with the one before it. So the finisher whose `announce`
//! comes last sees every earlier finisher's slot stores, and reads a durable position at
//! least as far as any of them saw before announcing (coherence of the position, which only
//! grows): it stops advancing only at a version that is not finished yet. Without the
//! counter, two finishers (of 11 and 12) could each miss the other's store (the
//! store-buffer pattern) and leave the version stuck at 10.
//!
//! A reader that loads the visible version with Acquire sees everything a commit at or
//! below it linked: the committer links, then stores `version` (Release); the advancer
//! loads it (Acquire), then compare-exchanges `visible` (Release). The same pair orders the
//! `needs` store before its load.
//!
//! The ring bounds the commits in flight: the sequencer does not hand out version
//! `visible + RING` or higher, since its slot would overwrite one still needed.

use crossbeam_utils::CachePadded;
use inmem_wal::LogPosition;

use crate::sync::{AtomicU64, Ordering};
use crate::version::CommitVersion;

/// How many commits may be in flight (versioned but not yet visible) at once.
#[cfg(not(any(test, loom)))]
pub(crate) const COMMITS_IN_FLIGHT_MAX: u64 = 4096;
/// Small under test and loom, so that the ring wraps constantly.
#[cfg(any(test, loom))]
pub(crate) const COMMITS_IN_FLIGHT_MAX: u64 = 4;

const _: () = assert!(COMMITS_IN_FLIGHT_MAX.is_power_of_two(), "the ring is indexed by masking");

/// The engine's visible version and the ring of finished commits behind it.
pub(crate) struct VisibleVersion {
    visible: CachePadded<AtomicU64>,
    announce: CachePadded<AtomicU64>,
    slots: Box<[Slot]>,
}

/// One commit in flight: its version once recorded, and the durable log position it needs.
struct Slot {
    version: AtomicU64,
    needs: AtomicU64,
}

/// The need of a commit that may be visible as soon as it is recorded.
const NEEDS_NOTHING: LogPosition = LogPosition::ZERO;

impl VisibleVersion {
    /// Starts at `initial`: every version up to it is visible.
    pub(crate) fn new(initial: CommitVersion) -> VisibleVersion {
        let initial = initial.get();
        let slots = (0..COMMITS_IN_FLIGHT_MAX)
            .map(|_| Slot { version: AtomicU64::new(u64::MAX), needs: AtomicU64::new(0) })
            .collect();
        let ring = VisibleVersion {
            visible: CachePadded::new(AtomicU64::new(initial)),
            announce: CachePadded::new(AtomicU64::new(0)),
            slots,
        };
        ring.slot(initial).version.store(initial, Ordering::Relaxed);
        ring
    }

    fn slot(&self, version: u64) -> &Slot {
        let index = (version & (COMMITS_IN_FLIGHT_MAX - 1)) as usize;
        &self.slots[index]
    }

    /// The newest visible version. Acquire: pairs with the Release compare-exchange in
    /// `advance`, so the caller sees every node linked by commits up to it.
    pub(crate) fn load(&self) -> CommitVersion {
        CommitVersion::new(self.visible.load(Ordering::Acquire))
    }

    /// Whether the sequencer may hand out `version` without overwriting a ring slot still
    /// needed.
    pub(crate) fn has_room_for(&self, version: CommitVersion) -> bool {
        version.get() < self.load().get() + COMMITS_IN_FLIGHT_MAX
    }

    /// Records commit `version` as finished and advances the visible version as far as the
    /// contiguous prefix of finished commits reaches.
    pub(crate) fn finish(&self, version: CommitVersion) {
        self.record(version, NEEDS_NOTHING);
        self.announce(|| NEEDS_NOTHING);
    }

    /// Records commit `version`, linked and appended to the log, as visible once the log's
    /// durable position reaches `needs` (its record's position plus one). Its
    /// committer calls [`VisibleVersion::announce`] once it has seen that; any finisher may
    /// make it visible before then.
    pub(crate) fn park(&self, version: CommitVersion, needs: LogPosition) {
        debug_assert!(needs != NEEDS_NOTHING, "a parked commit needs a durable position");
        self.record(version, needs);
    }

    fn record(&self, version: CommitVersion, needs: LogPosition) {
        debug_assert!(version > self.load(), "a commit finishes once, above the visible version");
        debug_assert!(self.has_room_for(version), "the sequencer respects the ring bound");
        let slot = self.slot(version.get());
        // Relaxed: published by the Release store of the version below.
        slot.needs.store(needs.get(), Ordering::Relaxed);
        // Release: pairs with the Acquire load in `advance`, publishing what the commit
        // linked and its need.
        slot.version.store(version.get(), Ordering::Release);
    }

    /// Announces a recorded commit whose need is met, then advances the visible version
    /// over every recorded commit whose need `durable` (the log's durable position, which
    /// only grows) meets, as far as they are contiguous.
    pub(crate) fn announce(&self, durable: impl FnOnce() -> LogPosition) {
        // AcqRel: orders this finish with every other one; see the module documentation.
        self.announce.fetch_add(1, Ordering::AcqRel);
        let durable = durable().get();
        let mut current = self.visible.load(Ordering::Acquire);
        loop {
            let next = current + 1;
            let slot = self.slot(next);
            // Acquire: pairs with the Release store in `record`.
            if slot.version.load(Ordering::Acquire) != next {
                return;
            }
            let needs = slot.needs.load(Ordering::Relaxed);
            if needs != NEEDS_NOTHING.get() && needs > durable {
                return;
            }
            // Release: pairs with the Acquire in `load`; Acquire on failure, for the value.
            match self.visible.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => current = next,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn v(version: u64) -> CommitVersion {
        CommitVersion::new(version)
    }

    fn at(offset: u64) -> impl FnOnce() -> LogPosition {
        move || LogPosition::new(offset)
    }

    #[test]
    fn finishing_out_of_order_waits_for_the_gap() {
        let visible = VisibleVersion::new(v(10));
        visible.finish(v(12));
        assert_eq!(visible.load(), v(10), "12 must not be visible before 11");
        visible.finish(v(11));
        assert_eq!(visible.load(), v(12));
    }

    #[test]
    fn a_parked_commit_becomes_visible_once_the_log_is_durable_past_its_need() {
        let visible = VisibleVersion::new(v(10));
        visible.park(v(11), LogPosition::new(100));
        visible.park(v(12), LogPosition::new(200));
        visible.announce(at(99));
        assert_eq!(visible.load(), v(10), "11 needs the log durable through 100");
        // 12's committer saw its record durable: the same sync covers 11, whose committer
        // has not run yet.
        visible.announce(at(200));
        assert_eq!(visible.load(), v(12));
    }

    #[test]
    fn a_parked_commit_holds_back_the_ones_after_it() {
        let visible = VisibleVersion::new(v(0));
        visible.park(v(1), LogPosition::new(500));
        visible.finish(v(2));
        visible.announce(at(499));
        assert_eq!(visible.load(), v(0), "2 must not be visible before 1");
        visible.announce(at(500));
        assert_eq!(visible.load(), v(2));
    }

    #[test]
    fn the_ring_wraps_many_times() {
        let visible = VisibleVersion::new(v(0));
        let window = COMMITS_IN_FLIGHT_MAX - 1;
        for base in (0..100).map(|round| round * window) {
            for version in (base + 1..=base + window).rev() {
                assert!(visible.has_room_for(v(version)));
                visible.finish(v(version));
            }
            assert_eq!(visible.load(), v(base + window));
        }
    }

    #[test]
    fn the_ring_bound_refuses_a_version_too_far_ahead() {
        let visible = VisibleVersion::new(v(7));
        assert!(visible.has_room_for(v(7 + COMMITS_IN_FLIGHT_MAX - 1)));
        assert!(!visible.has_room_for(v(7 + COMMITS_IN_FLIGHT_MAX)));
    }
}
