//! A reference model of the engine's committed history, for property tests.
//!
//! The model keeps the whole state after every commit version (a `Vec` indexed by version)
//! and, per key, the versions its chain holds (as docs/architecture.md §3, MVCC, describes
//! them: only committed versions, newest last here; a delete links a tombstone only into a
//! chain that exists, and creates none). Conflicts are predicted from the chains as
//! docs/architecture.md §4, The commit path, states them: a key conflicts with a
//! transaction that read at `rv` if its newest version is above `rv`.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A key or value as the model holds it.
pub type Key = Vec<u8>;
/// A value as the model holds it.
pub type Value = Vec<u8>;
/// The visible state at one version: every live key and its value.
pub type State = BTreeMap<Key, Value>;
/// A transaction's buffered writes: `None` deletes.
pub type Writes = BTreeMap<Key, Option<Value>>;
/// A key range.
pub type Range = (Bound<Key>, Bound<Key>);

/// One linked version of a key: its commit version and value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedVersion {
    pub version: u64,
    pub value: Option<Value>,
}

/// The committed history.
#[derive(Debug, Clone)]
pub struct Model {
    /// `states[v]` is the state after commit `v`; `states[0]` is the empty database.
    states: Vec<State>,
    /// The chain of each key that has one, oldest version first.
    chains: BTreeMap<Key, Vec<LinkedVersion>>,
}

impl Default for Model {
    fn default() -> Self {
        Model { states: vec![State::new()], chains: BTreeMap::new() }
    }
}

impl Model {
    /// The newest commit version (0 before the first commit).
    pub fn latest(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    /// The state a snapshot at `version` must see.
    pub fn state_at(&self, version: u64) -> &State {
        let index = usize::try_from(version).expect("versions fit in usize");
        self.states.get(index).expect("a committed version")
    }

    /// The state a transaction that read at `version` and buffered `writes` sees.
    pub fn state_with(&self, version: u64, writes: &Writes) -> State {
        let mut state = self.state_at(version).clone();
        for (key, write) in writes {
            match write {
                Some(value) => state.insert(key.clone(), value.clone()),
                None => state.remove(key),
            };
        }
        state
    }

    /// Commits `writes` as the next version and returns it.
    pub fn commit(&mut self, writes: &Writes) -> u64 {
        let version = self.latest() + 1;
        let state = self.state_with(self.latest(), writes);
        for (key, write) in writes {
            let linked = LinkedVersion { version, value: write.clone() };
            match (self.chains.get_mut(key), write) {
                (Some(chain), _) => chain.push(linked),
                (None, Some(_)) => {
                    self.chains.insert(key.clone(), vec![linked]);
                }
                (None, None) => {}
            }
        }
        self.states.push(state);
        version
    }

    /// Whether `key`'s newest version is above `read_version`: writing it (or, serializably,
    /// having read it) conflicts.
    pub fn changed_since(&self, key: &[u8], read_version: u64) -> bool {
        self.chains
            .get(key)
            .and_then(|chain| chain.last())
            .is_some_and(|newest| newest.version > read_version)
    }

    /// The keys in `span` whose chains changed since `read_version`.
    pub fn changed_in(&self, span: &Span, read_version: u64) -> Vec<Key> {
        self.chains
            .keys()
            .filter(|key| span.contains(key) && self.changed_since(key, read_version))
            .cloned()
            .collect()
    }

    /// Forgets every key whose newest version is a tombstone at or below `horizon`, as a
    /// collection pass with that effective horizon does (under `KeepLast(1)`).
    pub fn forget_deleted(&mut self, horizon: u64) {
        self.chains.retain(|_, chain| {
            chain.last().is_none_or(|newest| newest.value.is_some() || newest.version > horizon)
        });
    }

    /// Keys that have a chain.
    pub fn chain_count(&self) -> u64 {
        self.chains.len() as u64
    }

    /// Versions in all chains, tombstones included, if nothing was ever collected.
    pub fn linked_versions(&self) -> u64 {
        self.chains.values().map(|chain| chain.len() as u64).sum()
    }

    /// Bytes of keys (once per chain) and values (once per version), if nothing was ever
    /// collected.
    pub fn linked_bytes(&self) -> u64 {
        self.chains
            .iter()
            .map(|(key, chain)| {
                let values: usize =
                    chain.iter().map(|linked| linked.value.as_ref().map_or(0, Vec::len)).sum();
                (key.len() + values) as u64
            })
            .sum()
    }
}

/// A set of keys a scan covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// The keys in a range (an inverted range covers nothing).
    Range(Range),
    /// The keys that start with a prefix.
    Prefix(Key),
}

impl Span {
    /// Whether the span covers `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        let (start, end) = match self {
            Span::Prefix(prefix) => return key.starts_with(prefix),
            Span::Range(range) => range,
        };
        let above_start = match start {
            Bound::Included(start) => key >= start.as_slice(),
            Bound::Excluded(start) => key > start.as_slice(),
            Bound::Unbounded => true,
        };
        let below_end = match end {
            Bound::Included(end) => key <= end.as_slice(),
            Bound::Excluded(end) => key < end.as_slice(),
            Bound::Unbounded => true,
        };
        above_start && below_end
    }

    /// The entries of `state` the span covers, in key order.
    pub fn entries(&self, state: &State) -> Vec<(Key, Value)> {
        state
            .iter()
            .filter(|(key, _)| self.contains(key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}
