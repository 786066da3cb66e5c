//! The model `engine_model` checks the engine against: the committed state after every
//! version, every committed write of every key (the purge's maintenance tombstones
//! included), every range delete with its purge, and each open transaction's buffer, range
//! deletes and read set.

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
    /// The range as bounds, as the engine records a scan of it.
    fn bounds(&self) -> (Bound<Key>, Bound<Key>) {
        match self {
            KeyRange::Prefix(prefix) => prefix_bounds(prefix),
            KeyRange::Bounds(start, end) => (start.clone(), end.clone()),
        }
    }

    /// Whether the range holds a key that starts with `prefix`: `Yes` if one can exist,
    /// `EngineOnly` if none can but the engine's bounds test cannot tell (a range strictly
    /// between `k` and `k\0`, which holds no key), else `No`.
    pub(crate) fn overlaps_prefix(&self, prefix: &[u8]) -> Overlap {
        let (start, end) = self.bounds();
        let (prefix_start, prefix_end) = prefix_bounds(prefix);
        let lower = higher_start(&start, &prefix_start);
        let upper = lower_end(&end, &prefix_end);
        let (exact, engine) = match (lower, upper) {
            (_, Bound::Unbounded) | (Bound::Unbounded, _) => (true, true),
            (Bound::Included(a), Bound::Included(b)) => (a <= b, a <= b),
            (Bound::Included(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => {
                (a < b, a < b)
            }
            (Bound::Excluded(a), Bound::Excluded(b)) => {
                // The least key above `a` is `a\0`.
                let successor = [a.as_slice(), &[0]].concat();
                (a < b && *b != successor, a < b)
            }
        };
        match (exact, engine) {
            (true, _) => Overlap::Yes,
            (false, true) => Overlap::EngineOnly,
            (false, false) => Overlap::No,
        }
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overlap {
    Yes,
    EngineOnly,
    No,
}

/// The bounds of the keys that start with `prefix` (the prefix with its last byte below
/// 0xFF incremented and what follows dropped; unbounded if none).
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Bound<Key>, Bound<Key>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

/// The later of two start bounds (on a tie, the exclusive one).
fn higher_start<'b>(a: &'b Bound<Key>, b: &'b Bound<Key>) -> &'b Bound<Key> {
    match (a, b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x > y || (x == y && matches!(a, Bound::Excluded(_))) {
                a
            } else {
                b
            }
        }
    }
}

/// The earlier of two end bounds (on a tie, the exclusive one).
fn lower_end<'b>(a: &'b Bound<Key>, b: &'b Bound<Key>) -> &'b Bound<Key> {
    match (a, b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x < y || (x == y && matches!(a, Bound::Excluded(_))) {
                a
            } else {
                b
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
    /// A maintenance tombstone of a range delete's purge: never a conflict, `reaped` in
    /// `history`.
    pub(crate) reaped: bool,
}

/// A committed range delete, and its purge.
#[derive(Debug, Clone)]
pub(crate) struct RangeDelete {
    pub(crate) prefix: Key,
    pub(crate) version: u64,
    /// Keys its purge replaced by tombstones.
    pub(crate) purged: u64,
    /// The last version handed out when its walk ended.
    pub(crate) walked_at: Option<u64>,
    /// Retired: walked, and the published horizon passed the walk's end.
    pub(crate) retired: bool,
}

impl RangeDelete {
    fn covers(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix)
    }
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
    /// The range deletes' prefixes, none starting with another.
    pub(crate) prefixes: BTreeSet<Key>,
    pub(crate) read_keys: BTreeSet<Key>,
    pub(crate) read_ranges: Vec<KeyRange>,
}

impl TxnModel {
    pub(crate) fn new(read_version: u64, serializable: bool) -> TxnModel {
        TxnModel {
            read_version,
            serializable,
            writes: BTreeMap::new(),
            prefixes: BTreeSet::new(),
            read_keys: BTreeSet::new(),
            read_ranges: Vec::new(),
        }
    }

    /// Writes and range deletes, as `write_count` counts them.
    pub(crate) fn write_count(&self) -> usize {
        self.writes.len() + self.prefixes.len()
    }

    /// Whether a range delete of the transaction hides `key` (unless it wrote it since).
    pub(crate) fn hides(&self, key: &[u8]) -> bool {
        self.prefixes.iter().any(|prefix| key.starts_with(prefix))
    }

    /// Buffers a range delete of `prefix` (its length already checked): drops the writes
    /// under it; adds nothing if an earlier one covers it, and replaces those it covers.
    pub(crate) fn delete_prefix(&mut self, prefix: &[u8], writes_max: usize) -> Result<(), Error> {
        self.writes.retain(|key, _| !key.starts_with(prefix));
        if self.hides(prefix) {
            return Ok(());
        }
        self.prefixes.retain(|longer| !longer.starts_with(prefix));
        check_limit(Limit::TransactionWrites, self.write_count() + 1, writes_max)?;
        self.prefixes.insert(prefix.to_vec());
        Ok(())
    }
}

/// What the model says a commit must do.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// No writes and no range deletes: commits at its read version.
    Empty,
    Commits,
    /// Conflicts only if a delete the model is unsure about was linked, or on a scanned
    /// range that holds no key under a newer range delete's prefix but that the engine's
    /// bounds test cannot tell from one that does; then on one of these.
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
    /// Every committed range delete, in commit order (a commit's in prefix order).
    pub(crate) range_deletes: Vec<RangeDelete>,
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
            range_deletes: Vec::new(),
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

    /// Commits range deletes of `prefixes` and `writes` at the next version and returns it:
    /// the range deletes delete every key under their prefixes, and then the writes apply.
    pub(crate) fn apply(
        &mut self,
        prefixes: &BTreeSet<Key>,
        writes: &BTreeMap<Key, PendingWrite>,
    ) -> u64 {
        let version = self.visible() + 1;
        let mut state = self.state(self.visible()).clone();
        state.retain(|key, _| !prefixes.iter().any(|prefix| key.starts_with(prefix)));
        self.range_deletes.extend(prefixes.iter().map(|prefix| RangeDelete {
            prefix: prefix.clone(),
            version,
            purged: 0,
            walked_at: None,
            retired: false,
        }));
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
            let value = write.value.clone();
            let committed =
                CommittedWrite { version, value, ttl: write.ttl, linked, reaped: false };
            self.writes.entry(key.clone()).or_default().push(committed);
        }
        self.states.push(state);
        version
    }

    /// `Database::purge_range_deletes(steps)`: retires the walked range deletes whose walk
    /// ended at or below the published horizon, then walks the oldest unwalked ones, one a
    /// step (the key space is far smaller than a step), each replacing every newest version
    /// of a key under its prefix that is older than it, and no tombstone, by a maintenance
    /// tombstone, in one commit if there is any; returns how many it replaced.
    pub(crate) fn purge(&mut self, steps: usize) -> u64 {
        let horizon = self.oldest_available;
        for range_delete in &mut self.range_deletes {
            if range_delete.walked_at.is_some_and(|walked_at| walked_at <= horizon) {
                range_delete.retired = true;
            }
        }
        let mut purged = 0;
        for _ in 0..steps {
            let Some(at) = self.range_deletes.iter().position(|r| r.walked_at.is_none()) else {
                break;
            };
            let doomed: Vec<Key> = self
                .writes
                .iter()
                .filter(|(key, writes)| {
                    let range_delete = &self.range_deletes[at];
                    let newest = writes.last().expect("a written key has a write");
                    range_delete.covers(key)
                        && newest.version < range_delete.version
                        && newest.value.is_some()
                })
                .map(|(key, _)| key.clone())
                .collect();
            if !doomed.is_empty() {
                // Every reader at or after the range delete already reads these keys as
                // absent: the state does not change.
                let version = self.visible() + 1;
                self.states.push(self.state(self.visible()).clone());
                for key in &doomed {
                    let tombstone = CommittedWrite {
                        version,
                        value: None,
                        ttl: false,
                        linked: Linked::Yes,
                        reaped: true,
                    };
                    self.writes.entry(key.clone()).or_default().push(tombstone);
                }
            }
            let visible = self.visible();
            let range_delete = &mut self.range_deletes[at];
            range_delete.purged += doomed.len() as u64;
            range_delete.walked_at = Some(visible);
            purged += doomed.len() as u64;
        }
        purged
    }

    /// The range deletes still in effect, oldest first.
    pub(crate) fn pending_range_deletes(&self) -> impl Iterator<Item = &RangeDelete> {
        self.range_deletes.iter().filter(|r| !r.retired)
    }

    /// The versions of `key` a reader at `reader` finds are those at or above this: the
    /// newest range delete at or below `reader` that covers `key` hides every older one
    /// (only the unretired ones unless `retired_too`).
    pub(crate) fn hidden_below(&self, key: &[u8], reader: u64, retired_too: bool) -> u64 {
        self.range_deletes
            .iter()
            .filter(|r| r.version <= reader && r.covers(key) && (retired_too || !r.retired))
            .map(|r| r.version)
            .max()
            .unwrap_or(0)
    }

    /// The newest user write of `key` that certainly, and that possibly, is in its chain.
    fn newest_user_versions(&self, key: &[u8]) -> (u64, u64) {
        let writes = self.writes.get(key).map_or(&[][..], Vec::as_slice);
        let newest = |linked| writes.iter().rev().find(|w| w.linked == linked && !w.reaped);
        let version = |write: Option<&CommittedWrite>| write.map_or(0, |w| w.version);
        (version(newest(Linked::Yes)), version(newest(Linked::Maybe)))
    }

    /// First committer wins, in the order the engine checks: written keys in key order,
    /// then (serializable) read keys and scanned ranges; a range delete committed after the
    /// read version changes every key under its prefix. The transaction's own range deletes
    /// are validated as nothing.
    pub(crate) fn verdict(&self, txn: &TxnModel) -> Verdict {
        if txn.writes.is_empty() && txn.prefixes.is_empty() {
            return Verdict::Empty;
        }
        let read_version = txn.read_version;
        let newer: Vec<&RangeDelete> =
            self.range_deletes.iter().filter(|r| r.version > read_version).collect();
        let deleted_since = |key: &[u8]| newer.iter().any(|r| r.covers(key));
        let mut candidates = BTreeSet::new();
        for key in txn.writes.keys() {
            if deleted_since(key) {
                candidates.insert(key.clone());
                return Verdict::Conflicts(candidates);
            }
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
                let deleted = deleted_since(key);
                if deleted || certain > read_version || possible > read_version {
                    candidates.insert(key.clone());
                }
                certain_conflict |= deleted || certain > read_version;
            }
            for (range, range_delete) in txn
                .read_ranges
                .iter()
                .flat_map(|range| newer.iter().map(move |range_delete| (range, range_delete)))
            {
                match range.overlaps_prefix(&range_delete.prefix) {
                    Overlap::Yes => {
                        candidates.insert(range_delete.prefix.clone());
                        certain_conflict = true;
                    }
                    Overlap::EngineOnly => {
                        candidates.insert(range_delete.prefix.clone());
                    }
                    Overlap::No => {}
                }
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
            // Nobody can read below the newest state: every key whose newest version is a
            // tombstone is forgotten (a key a pending range delete hides is not, until its
            // purge replaces its newest version by a tombstone).
            let writes = &self.writes;
            self.chains.retain(|key, _| Self::newest_is_put(writes, key));
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

    fn newest_is_put(writes: &BTreeMap<Key, Vec<CommittedWrite>>, key: &[u8]) -> bool {
        writes.get(key).and_then(|writes| writes.last()).is_some_and(|w| w.value.is_some())
    }

    /// The keys that have a chain after a collection pass no reader held back under
    /// `KeepLast`: those whose newest version is no tombstone.
    pub(crate) fn keys_with_a_live_head(&self) -> usize {
        self.writes.keys().filter(|key| Self::newest_is_put(&self.writes, key)).count()
    }

    /// The entries of `range` as a reader at `version` sees them; for a transaction, with
    /// its range deletes and then its `own` writes over them.
    pub(crate) fn scan(
        &self,
        version: u64,
        own: Option<&TxnModel>,
        range: &KeyRange,
    ) -> Vec<(Key, Value)> {
        let mut view = self.state(version).clone();
        if let Some(txn) = own {
            view.retain(|key, _| !txn.hides(key));
        }
        for (key, write) in own.map(|txn| &txn.writes).into_iter().flatten() {
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
