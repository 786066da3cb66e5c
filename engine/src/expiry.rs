//! Versions with an expiry, waiting for it: the reaper's queue (its protocol is `ttl.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::index::ChainRef;
use crate::sync::Mutex;

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
    pub(crate) due: Mutex<BinaryHeap<Reverse<Expiry>>>,
}

impl Reaper {
    pub(crate) fn new() -> Reaper {
        Reaper { due: Mutex::new(BinaryHeap::new()) }
    }
}
