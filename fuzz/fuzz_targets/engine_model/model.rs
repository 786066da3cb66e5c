//! The model `engine_model` checks the engine against: the committed state after every
//! version, every committed write of every key, and each open transaction's buffer and read
//! set.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use inmem_engine::{Error, Limit, Limits, Retention};

use crate::input::Config;

pub(crate) type Key = Vec<u8>;
pub(crate) type Value = Vec<u8>;

/// A key range as a predicate, independent of how the engine computes bounds.
#[derive(Debug, Clone)]
pub(crate) enum KeyRange {
    Prefix(Key),
    Bounds(Bound<Key>, Bound<Key>),
}

impl KeyRange {
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Prefix(prefix) => key.starts_with(prefix),
            KeyRange::Bounds(start, end) => {
                let above = match start {
                    Bound::Included(start) => key >= start.as_slice(),
                    Bound::Excluded(start) => key > start.as_slice(),
                    Bound::Unbounded => true,
                };
                let below = match end {
                    Bound::Included(end) => key <= end.as_slice(),
                    Bound::Excluded(end) => key < end.as_slice(),
                    Bound::Unbounded => true,
                };
                above && below
            }
        }
    }
}

/// Whether a committed write was linked into its key's chain, so that it can make later
/// commits conflict and appears in `history`. A delete of a key without a chain links
/// nothing (nothing to hide). Once a collection pass may have forgotten a deleted key, the
/// model no longer knows whether its chain exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linked {
    Yes,
    No,
    Maybe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainState {
    Exists,
    /// Deleted, and possibly forgotten by a collection pass.
    Unknown,
}

#[derive(Debug, Clone)]
pub(crate) struct CommittedWrite {
    pub(crate) version: u64,
    pub(crate) value: Option<Value>,
    pub(crate) ttl: bool,
    pub(crate) linked: Linked,
}

#[derive(Debug, Clone)]
pub(crate) struct PendingWrite {
    pub(crate) value: Option<Value>,
    pub(crate) ttl: bool,
}

#[derive(Debug)]
pub(crate) struct TxnModel {
    pub(crate) read_version: u64,
    pub(crate) serializable: bool,
    pub(crate) writes: BTreeMap<Key, PendingWrite>,
    pub(crate) read_keys: BTreeSet<Key>,
    pub(crate) read_ranges: Vec<KeyRange>,
}

/// What the model says a commit must do.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// No writes: commits at its read version.
    Empty,
    Commits,
    /// Conflicts only if a delete the model is unsure about was linked; then on one of these.
    MayConflict(BTreeSet<Key>),
    /// Conflicts, on one of these keys.
    Conflicts(BTreeSet<Key>),
}

pub(crate) struct Model {
    pub(crate) keep_all: bool,
    /// Under `KeepLast(n)`, `n`.
    pub(crate) keep_last: usize,
    pub(crate) limits: Limits,
    /// The committed state after each version: `states[v]`.
    states: Vec<BTreeMap<Key, Value>>,
    /// Every committed write of each key, oldest first.
    pub(crate) writes: BTreeMap<Key, Vec<CommittedWrite>>,
    /// Keys that have (or may have) a chain; absent keys have none.
    pub(crate) chains: BTreeMap<Key, ChainState>,
    /// The oldest version `snapshot_at` accepts: the highest horizon a pass pruned with.
    pub(crate) oldest_available: u64,
    pub(crate) conflicts: u64,
}

impl Model {
    pub(crate) fn new(config: &Config) -> Model {
        Model {
            keep_all: config.retention() == Retention::KeepAll,
            keep_last: match config.retention() {
                Retention::KeepLast(n) => n.get(),
                _ => usize::MAX,
            },
            limits: config.limits(),
            states: vec![BTreeMap::new()],
            writes: BTreeMap::new(),
            chains: BTreeMap::new(),
            oldest_available: 0,
            conflicts: 0,
        }
    }

    pub(crate) fn visible(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    pub(crate) fn state(&self, version: u64) -> &BTreeMap<Key, Value> {
        &self.states[version as usize]
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), Error> {
        check_limit(Limit::KeyBytes, key.len(), self.limits.key_bytes_max)
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> Result<(), Error> {
        check_limit(Limit::ValueBytes, value.len(), self.limits.value_bytes_max)
    }

    /// Commits `writes` at the next version and returns it.
    pub(crate) fn apply(&mut self, writes: &BTreeMap<Key, PendingWrite>) -> u64 {
        let version = self.visible() + 1;
        let mut state = self.state(self.visible()).clone();
        for (key, write) in writes {
            let linked = match (&write.value, self.chains.get(key)) {
                (Some(_), _) => {
                    self.chains.insert(key.clone(), ChainState::Exists);
                    Linked::Yes
                }
                (None, Some(ChainState::Exists)) => Linked::Yes,
                (None, Some(ChainState::Unknown)) => Linked::Maybe,
                (None, None) => Linked::No,
            };
            match &write.value {
                Some(value) => state.insert(key.clone(), value.clone()),
                None => state.remove(key),
            };
            let committed =
                CommittedWrite { version, value: write.value.clone(), ttl: write.ttl, linked };
            self.writes.entry(key.clone()).or_default().push(committed);
        }
        self.states.push(state);
        version
    }

    /// The newest user write of `key` that certainly, and that possibly, is in its chain.
    fn newest_user_versions(&self, key: &[u8]) -> (u64, u64) {
        let writes = self.writes.get(key).map_or(&[][..], Vec::as_slice);
        let newest = |linked| writes.iter().rev().find(|w| w.linked == linked);
        let version = |write: Option<&CommittedWrite>| write.map_or(0, |w| w.version);
        (version(newest(Linked::Yes)), version(newest(Linked::Maybe)))
    }

    /// First committer wins, in the order the engine checks: written keys in key order,
    /// then (serializable) read keys and scanned ranges.
    pub(crate) fn verdict(&self, txn: &TxnModel) -> Verdict {
        if txn.writes.is_empty() {
            return Verdict::Empty;
        }
        let read_version = txn.read_version;
        let mut candidates = BTreeSet::new();
        for key in txn.writes.keys() {
            let (certain, possible) = self.newest_user_versions(key);
            if certain > read_version {
                candidates.insert(key.clone());
                return Verdict::Conflicts(candidates);
            }
            if possible > read_version {
                candidates.insert(key.clone());
            }
        }
        let mut certain_conflict = false;
        if txn.serializable {
            let ranged =
                self.writes.keys().filter(|key| txn.read_ranges.iter().any(|r| r.contains(key)));
            for key in txn.read_keys.iter().chain(ranged) {
                let (certain, possible) = self.newest_user_versions(key);
                if certain > read_version || possible > read_version {
                    candidates.insert(key.clone());
                }
                certain_conflict |= certain > read_version;
            }
        }
        match (certain_conflict, candidates.is_empty()) {
            (true, _) => Verdict::Conflicts(candidates),
            (false, true) => Verdict::Commits,
            (false, false) => Verdict::MayConflict(candidates),
        }
    }

    /// A collection pass that prunes with the horizon `effective`: `snapshot_at` is refused
    /// below it from now on, and a key whose newest write is a delete at or below it may be
    /// forgotten.
    pub(crate) fn collect(&mut self, effective: u64) {
        self.oldest_available = self.oldest_available.max(effective);
        if !self.keep_all && effective == self.visible() {
            // Nobody can read below the newest state: every deleted key is forgotten.
            let latest = &self.states[self.states.len() - 1];
            self.chains.retain(|key, _| latest.contains_key(key));
            return;
        }
        for (key, state) in &mut self.chains {
            let newest = self.writes.get(key).and_then(|writes| writes.last());
            if let Some(newest) = newest {
                if newest.value.is_none() && newest.version <= effective {
                    *state = ChainState::Unknown;
                }
            }
        }
    }

    /// The entries of `range` as a reader at `version` with `own` writes sees them.
    pub(crate) fn scan(
        &self,
        version: u64,
        own: Option<&BTreeMap<Key, PendingWrite>>,
        range: &KeyRange,
    ) -> Vec<(Key, Value)> {
        let mut view = self.state(version).clone();
        for (key, write) in own.into_iter().flatten() {
            match &write.value {
                Some(value) => view.insert(key.clone(), value.clone()),
                None => view.remove(key),
            };
        }
        view.into_iter().filter(|(key, _)| range.contains(key)).collect()
    }
}

pub(crate) fn check_limit(limit: Limit, actual: usize, max: usize) -> Result<(), Error> {
    if actual > max {
        return Err(Error::LimitExceeded { limit, actual: actual as u64, max: max as u64 });
    }
    Ok(())
}
