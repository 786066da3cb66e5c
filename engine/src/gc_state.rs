//! The collector's state, kept between passes (its protocol is `gc.rs`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use crate::chain::Released;
use crate::clock;
use crate::index::ChainRef;
use crate::options::Retention;
use crate::sync::Mutex;

/// Samples of (visible version, time) kept for `Retention::KeepFor`, at most.
const RETENTION_SAMPLES_MAX: usize = 1 << 16;

/// The collector's state, one pass at a time.
pub(crate) struct GarbageCollector {
    pub(crate) state: Mutex<GcState>,
    /// Versions the epoch has released (no reader can hold them), waiting to be freed by
    /// the next pass: freeing happens on the collector's thread, never on a reader's.
    pub(crate) released: Arc<Mutex<Vec<Released>>>,
}

#[derive(Default)]
pub(crate) struct GcState {
    /// Chains holding superseded versions, by the horizon that frees the oldest of them.
    pub(crate) waiting: BinaryHeap<Reverse<Waiting>>,
    /// (visible version, wall-clock ms) at past passes, oldest first: the version that was
    /// newest some time ago, for `Retention::KeepFor`.
    pub(crate) samples: VecDeque<(u64, u64)>,
    /// Sum of every chain's pinned bytes.
    pub(crate) pinned_bytes: u64,
    /// Tie-breaker that keeps the heap's order total.
    pub(crate) sequence: u64,
}

pub(crate) struct Waiting {
    pub(crate) frees_at: u64,
    pub(crate) sequence: u64,
    pub(crate) chain: ChainRef,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.frees_at, self.sequence) == (other.frees_at, other.sequence)
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.frees_at, self.sequence).cmp(&(other.frees_at, other.sequence))
    }
}

impl GarbageCollector {
    pub(crate) fn new() -> GarbageCollector {
        GarbageCollector {
            state: Mutex::new(GcState::default()),
            released: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl GcState {
    /// The newest version whose predecessors the retention policy lets go.
    pub(crate) fn retention_horizon(
        &mut self,
        retention: Retention,
        visible: u64,
        now_ms: u64,
    ) -> u64 {
        match retention {
            Retention::KeepAll => 0,
            Retention::KeepLast(_) => visible,
            Retention::KeepFor(duration) => {
                let cutoff_ms = now_ms.saturating_sub(clock::saturating_ms(duration));
                if self.samples.back().is_none_or(|&(version, _)| version < visible) {
                    self.samples.push_back((visible, now_ms));
                }
                // Keep the newest sample at or before the cutoff at the front.
                while self.samples.get(1).is_some_and(|&(_, at_ms)| at_ms <= cutoff_ms)
                    || self.samples.len() > RETENTION_SAMPLES_MAX
                {
                    self.samples.pop_front();
                }
                match self.samples.front() {
                    Some(&(version, at_ms)) if at_ms <= cutoff_ms => version,
                    _ => 0,
                }
            }
        }
    }
}
