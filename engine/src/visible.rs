//! The visible version: the newest commit version a new snapshot may read.
//!
//! Commits take versions in the sequencer, in order, but finish (become durable, once the
//! log is wired in) in any order. The visible version advances only over a contiguous prefix
//! of finished commits: if commit 12 finishes before 11, the visible version stays at 10
//! until 11 is finished too, so no snapshot ever sees 12 without 11.
//!
//! # Protocol
//!
//! Each finished commit `v` records itself in a ring slot (`done[v % RING]` = `v`, Release),
//! then performs a read-modify-write on the `announce` counter (AcqRel), then tries to
//! advance: while `done[visible + 1]` holds `visible + 1`, it compare-exchanges `visible`
//! one step forward.
//!
//! Why no advance is ever lost: read-modify-writes of one location are totally ordered, and
//! each one (AcqRel) synchronizes with the one before it. So the finisher whose `announce`
//! comes last sees every earlier finisher's `done` store, and it stops advancing only at a
//! version that is not finished yet. Without the counter, two finishers (of 11 and 12) could
//! each miss the other's store (the store-buffer pattern) and leave the version stuck at 10.
//!
//! A reader that loads the visible version with Acquire sees everything a commit at or
//! below it linked: the committer links, then stores `done` (Release); the advancer loads
//! `done` (Acquire), then compare-exchanges `visible` (Release).
//!
//! The ring bounds the commits in flight: the sequencer does not hand out version
//! `visible + RING` or higher, since its slot would overwrite one still needed.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

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
    done: Box<[AtomicU64]>,
}

impl VisibleVersion {
    /// Starts at `initial`: every version up to it is visible.
    pub(crate) fn new(initial: u64) -> VisibleVersion {
        let done = (0..COMMITS_IN_FLIGHT_MAX).map(|_| AtomicU64::new(u64::MAX)).collect();
        let ring = VisibleVersion {
            visible: CachePadded::new(AtomicU64::new(initial)),
            announce: CachePadded::new(AtomicU64::new(0)),
            done,
        };
        ring.slot(initial).store(initial, Ordering::Relaxed);
        ring
    }

    fn slot(&self, version: u64) -> &AtomicU64 {
        let index = (version & (COMMITS_IN_FLIGHT_MAX - 1)) as usize;
        &self.done[index]
    }

    /// The newest visible version. Acquire: pairs with the Release compare-exchange in
    /// `advance`, so the caller sees every node linked by commits up to it.
    pub(crate) fn load(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Whether the sequencer may hand out `version` without overwriting a ring slot still
    /// needed.
    pub(crate) fn has_room_for(&self, version: u64) -> bool {
        version < self.load() + COMMITS_IN_FLIGHT_MAX
    }

    /// Records commit `version` as finished and advances the visible version as far as the
    /// contiguous prefix of finished commits reaches.
    pub(crate) fn finish(&self, version: u64) {
        debug_assert!(version > self.load(), "a commit finishes once, above the visible version");
        debug_assert!(self.has_room_for(version), "the sequencer respects the ring bound");
        // Release: pairs with the Acquire load in `advance`, publishing what the commit linked.
        self.slot(version).store(version, Ordering::Release);
        // AcqRel: orders this finish with every other one; see the module documentation.
        self.announce.fetch_add(1, Ordering::AcqRel);
        self.advance();
    }

    fn advance(&self) {
        let mut current = self.visible.load(Ordering::Acquire);
        loop {
            let next = current + 1;
            // Acquire: pairs with the Release store in `finish`.
            if self.slot(next).load(Ordering::Acquire) != next {
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

    #[test]
    fn finishing_out_of_order_waits_for_the_gap() {
        let visible = VisibleVersion::new(10);
        visible.finish(12);
        assert_eq!(visible.load(), 10, "12 must not be visible before 11");
        visible.finish(11);
        assert_eq!(visible.load(), 12);
    }

    #[test]
    fn the_ring_wraps_many_times() {
        let visible = VisibleVersion::new(0);
        let window = COMMITS_IN_FLIGHT_MAX - 1;
        for base in (0..100).map(|round| round * window) {
            for version in (base + 1..=base + window).rev() {
                assert!(visible.has_room_for(version));
                visible.finish(version);
            }
            assert_eq!(visible.load(), base + window);
        }
    }

    #[test]
    fn the_ring_bound_refuses_a_version_too_far_ahead() {
        let visible = VisibleVersion::new(7);
        assert!(visible.has_room_for(7 + COMMITS_IN_FLIGHT_MAX - 1));
        assert!(!visible.has_room_for(7 + COMMITS_IN_FLIGHT_MAX));
    }
}
