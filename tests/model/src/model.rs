//! The committed history: the state after every version, every write of every key and the
//! chains they form, the range deletes and their purge; and what a reader, a transaction,
//! a collection pass and `Stats` must see of it.

use std::collections::{BTreeMap, BTreeSet};

use inmem_engine::{CommitVersion, Error, Limit, Limits, Options, Retention};

use crate::buffer::{Buffer, Write};
use crate::committed::{CommittedWrite, RangeDelete};
use crate::limits::check_limit;
use crate::span::Span;
use crate::txn::TxnModel;
use crate::{Entries, Key, State, Value};

/// The most maintenance tombstones (a range delete's purge, the TTL reaper's) one commit of
/// an in-memory database writes (the model is of one): `REAPS_PER_COMMIT_MAX` in
/// `engine/src/ttl.rs`, which holds the sequencer's lock for one such commit at a time.
pub const MAINTENANCE_COMMIT_KEYS_MAX: usize = 4;

/// The committed history of a database, and the rules that say what the engine must
/// answer about it.
#[derive(Debug, Clone)]
pub struct Model {
    keep_all: bool,
    /// Under `KeepLast(n)`, `n`.
    keep_last: usize,
    limits: Limits,
    /// The committed state after each version: `states[v]`; `states[0]` is the empty
    /// database.
    states: Vec<State>,
    /// Every committed write of each key, oldest first (a delete that linked nothing
    /// included).
    writes: BTreeMap<Key, Vec<CommittedWrite>>,
    /// The keys that have a chain, each with where in its writes the chain begins. While a
    /// chain exists every write of its key links into it, so it is the tail of the key's
    /// writes from there. A put creates a chain if there is none; a delete links a
    /// tombstone only into one that exists; a collection pass forgets one whose newest
    /// version is a tombstone at or below its horizon.
    chains: BTreeMap<Key, usize>,
    /// Every committed range delete, in commit order (a commit's in prefix order).
    range_deletes: Vec<RangeDelete>,
    /// The oldest version `snapshot_at` accepts: the highest horizon a pass pruned with.
    oldest_available: u64,
    /// Commits that failed with a conflict.
    conflicts: u64,
}

impl Model {
    /// The empty database that `Database::with_options(options)` opens.
    ///
    /// # Panics
    ///
    /// On `Retention::KeepFor`, which depends on the clock: the model does not follow it.
    pub fn new(options: &Options) -> Model {
        let (keep_all, keep_last) = match options.retention {
            Retention::KeepAll => (true, usize::MAX),
            Retention::KeepLast(n) => (false, n.get()),
            Retention::KeepFor(_) => panic!("the model does not follow KeepFor retention"),
        };
        Model {
            keep_all,
            keep_last,
            limits: options.limits,
            states: vec![State::new()],
            writes: BTreeMap::new(),
            chains: BTreeMap::new(),
            range_deletes: Vec::new(),
            oldest_available: 0,
            conflicts: 0,
        }
    }

    /// Whether the retention is `KeepAll`: no version is ever collected.
    pub fn keep_all(&self) -> bool {
        self.keep_all
    }

    /// Under `KeepLast(n)`, `n`; `usize::MAX` under `KeepAll`.
    pub fn keep_last(&self) -> usize {
        self.keep_last
    }

    /// The newest commit version (0 before the first commit).
    pub fn visible(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    /// The state a snapshot at `version` reads.
    ///
    /// # Panics
    ///
    /// If `version` is above [`Model::visible`].
    pub fn state(&self, version: u64) -> &State {
        &self.states[version as usize]
    }

    /// The oldest version `snapshot_at` accepts.
    pub fn oldest_available(&self) -> u64 {
        self.oldest_available
    }

    /// Commits that failed with a conflict, as `Stats::conflicts` counts them.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// `Ok` if `key` fits the key limit, else the engine's error.
    pub fn check_key(&self, key: &[u8]) -> Result<(), Error> {
        check_limit(Limit::KeyBytes, key.len(), self.limits.key_bytes_max)
    }

    /// `Ok` if `value` fits the value limit, else the engine's error.
    pub fn check_value(&self, value: &[u8]) -> Result<(), Error> {
        check_limit(Limit::ValueBytes, value.len(), self.limits.value_bytes_max)
    }

    /// Checks `write` of `key` against the key and value limits.
    fn check_write(&self, key: &[u8], write: &Write) -> Result<(), Error> {
        self.check_key(key)?;
        match &write.value {
            Some(value) => self.check_value(value),
            None => Ok(()),
        }
    }

    // ----- commits ------------------------------------------------------------------------

    /// Commits `buffer` at the next version and returns it: its range deletes delete every
    /// key under their prefixes, and then its writes apply. Whether it may commit is
    /// [`Model::verdict`]'s to say.
    pub fn commit(&mut self, buffer: &Buffer) -> u64 {
        let version = self.visible() + 1;
        let mut state = self.state(self.visible()).clone();
        buffer.apply_to(&mut state);
        self.range_deletes.extend(buffer.prefixes.iter().map(|prefix| RangeDelete {
            prefix: prefix.clone(),
            version,
            purged: 0,
            walked_at: None,
            retired: false,
        }));
        for (key, write) in &buffer.writes {
            let writes = self.writes.entry(key.clone()).or_default();
            if write.value.is_some() {
                self.chains.entry(key.clone()).or_insert(writes.len());
            }
            let value = write.value.clone();
            writes.push(CommittedWrite { version, value, ttl: write.ttl, reaped: false });
        }
        self.states.push(state);
        version
    }

    /// A one-shot write (`Database::put`, `put_with_ttl`, `delete`): blind, it always
    /// commits, at the version returned, unless a limit refuses it.
    pub fn one_shot(&mut self, key: &[u8], write: Write) -> Result<u64, Error> {
        self.check_write(key, &write)?;
        let writes = BTreeMap::from([(key.to_vec(), write)]);
        Ok(self.commit(&Buffer { writes, prefixes: BTreeSet::new() }))
    }

    /// A one-shot range delete (`Database::delete_prefix`): blind, it always commits, at
    /// the version returned, unless the key limit refuses the prefix.
    pub fn one_shot_delete_prefix(&mut self, prefix: &[u8]) -> Result<u64, Error> {
        self.check_key(prefix)?;
        let prefixes = BTreeSet::from([prefix.to_vec()]);
        Ok(self.commit(&Buffer { writes: BTreeMap::new(), prefixes }))
    }

    /// Counts a commit that failed with a conflict.
    pub(crate) fn count_conflict(&mut self) {
        self.conflicts += 1;
    }

    // ----- reads --------------------------------------------------------------------------

    /// What `get(key)` through a snapshot at `version` returns.
    pub fn get(&self, version: u64, key: &[u8]) -> Result<Option<Value>, Error> {
        self.check_key(key)?;
        Ok(self.state(version).get(key).cloned())
    }

    /// The state a reader at `version` sees; for a transaction (`own`), with its buffer
    /// applied over it.
    pub fn view(&self, version: u64, own: Option<&TxnModel>) -> State {
        let mut state = self.state(version).clone();
        if let Some(txn) = own {
            txn.buffer.apply_to(&mut state);
        }
        state
    }

    /// The entries a scan of `span` by a reader at `version` yields (for a transaction,
    /// `own`, with its buffer applied), in key order.
    pub fn scan(&self, version: u64, own: Option<&TxnModel>, span: &Span) -> Entries {
        span.entries(&self.view(version, own))
    }

    /// What `snapshot_at(version)` returns: a snapshot at `version` if it is visible and
    /// no collection pass pruned past it.
    pub fn snapshot_at(&self, version: u64) -> Result<CommitVersion, Error> {
        let requested = CommitVersion::new(version);
        let visible = self.visible();
        if version > visible {
            return Err(Error::VersionNotVisible {
                requested,
                visible: CommitVersion::new(visible),
            });
        }
        if version < self.oldest_available {
            let oldest_available = CommitVersion::new(self.oldest_available);
            return Err(Error::SnapshotTooOld { requested, oldest_available });
        }
        Ok(requested)
    }

    // ----- a transaction's operations -----------------------------------------------------

    /// What `txn.get(key)` returns, recording the read: the buffer's write of the key if
    /// any, nothing if the buffer's range delete hides it (no read recorded), else the state
    /// at the read version.
    pub fn txn_get(&self, txn: &mut TxnModel, key: &[u8]) -> Result<Option<Value>, Error> {
        self.check_key(key)?;
        if let Some(write) = txn.buffer.writes.get(key) {
            return Ok(write.value.clone());
        }
        if txn.buffer.hides(key) {
            return Ok(None);
        }
        txn.record_key(key, self.limits.transaction_reads_max)?;
        Ok(self.state(txn.read_version).get(key).cloned())
    }

    /// What `txn.put(key, ..)`, `put_with_ttl` or `delete(key)` returns, buffering `write`.
    pub fn txn_write(&self, txn: &mut TxnModel, key: &[u8], write: Write) -> Result<(), Error> {
        self.check_write(key, &write)?;
        txn.buffer.write(key, write, self.limits.transaction_writes_max)
    }

    /// What `txn.delete_prefix(prefix)` returns, buffering the range delete.
    pub fn txn_delete_prefix(&self, txn: &mut TxnModel, prefix: &[u8]) -> Result<(), Error> {
        self.check_key(prefix)?;
        txn.buffer.delete_prefix(prefix, self.limits.transaction_writes_max)
    }

    /// What a scan of `span` through `txn` yields, recording the scan: the state at its
    /// read version with its buffer applied.
    pub fn txn_scan(&self, txn: &mut TxnModel, span: &Span) -> Result<Entries, Error> {
        txn.record_span(span, self.limits.transaction_reads_max)?;
        Ok(self.scan(txn.read_version, Some(txn), span))
    }

    // ----- maintenance --------------------------------------------------------------------

    /// `Database::purge_range_deletes(steps)`: retires the walked range deletes whose walk
    /// ended at or below the published horizon, then walks the oldest unwalked ones, one a
    /// step (the harnesses' key spaces are far smaller than a step), each replacing every
    /// newest version of a key under its prefix that is older than it, and no tombstone, by
    /// a maintenance tombstone, in commits of at most `MAINTENANCE_COMMIT_KEYS_MAX` keys
    /// in key order; returns how many it replaced.
    pub fn purge(&mut self, steps: usize) -> u64 {
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
            let range_delete = &self.range_deletes[at];
            let doomed: Vec<Key> = self
                .writes
                .iter()
                .filter(|(key, writes)| {
                    range_delete.covers(key)
                        && writes.last().is_some_and(|newest| {
                            newest.version < range_delete.version && newest.value.is_some()
                        })
                })
                .map(|(key, _)| key.clone())
                .collect();
            // In key order, in commits of at most MAINTENANCE_COMMIT_KEYS_MAX keys each.
            for batch in doomed.chunks(MAINTENANCE_COMMIT_KEYS_MAX) {
                // Every reader at or after the range delete already reads these keys as
                // absent: the state does not change. Each key's newest version is a put, so
                // it has a chain, which the tombstone joins.
                let version = self.visible() + 1;
                self.states.push(self.state(self.visible()).clone());
                for key in batch {
                    let tombstone =
                        CommittedWrite { version, value: None, ttl: false, reaped: true };
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

    /// The range deletes still in effect, oldest first, as `Database::range_deletes` lists
    /// them.
    pub fn pending_range_deletes(&self) -> impl Iterator<Item = &RangeDelete> {
        self.range_deletes.iter().filter(|r| !r.retired)
    }

    /// The horizon a collection pass prunes with, `oldest_reader` being the version of the
    /// oldest open snapshot or transaction: the retention's (0 under `KeepAll`, the visible
    /// version under `KeepLast`), held back by the oldest reader.
    pub fn collection_horizon(&self, oldest_reader: Option<u64>) -> u64 {
        let retention = if self.keep_all { 0 } else { self.visible() };
        oldest_reader.map_or(retention, |oldest| oldest.min(retention))
    }

    /// A collection pass that pruned with the horizon `effective`: `snapshot_at` is refused
    /// below it from now on, and every chain whose newest version is a tombstone at or below
    /// it is forgotten (a key a pending range delete hides is not, until its purge's
    /// tombstone heads its chain).
    pub fn collect(&mut self, effective: u64) {
        self.oldest_available = self.oldest_available.max(effective);
        let writes = &self.writes;
        self.chains.retain(|key, _| {
            writes
                .get(key)
                .and_then(|writes| writes.last())
                .is_some_and(|newest| newest.value.is_some() || newest.version > effective)
        });
    }

    // ----- chains, history and stats ------------------------------------------------------

    /// The versions `key`'s chain holds, oldest first: none if it has no chain. The model
    /// prunes nothing: under `KeepAll` this is the engine's chain, otherwise the engine's
    /// may hold fewer.
    pub fn chain(&self, key: &[u8]) -> &[CommittedWrite] {
        match (self.chains.get(key), self.writes.get(key)) {
            (Some(&start), Some(writes)) => &writes[start..],
            _ => &[],
        }
    }

    /// Every key ever written, in key order.
    pub fn written_keys(&self) -> impl Iterator<Item = &Key> {
        self.writes.keys()
    }

    /// The range deletes committed after `read_version`.
    pub(crate) fn range_deletes_since(
        &self,
        read_version: u64,
    ) -> impl Iterator<Item = &RangeDelete> {
        self.range_deletes.iter().filter(move |r| r.version > read_version)
    }

    /// The versions of `key` that `history` through a snapshot at `at`, below `before`, may
    /// list, newest first: those of its chain the snapshot can see, except every version
    /// older than the newest range delete at or below `at` that covers the key (pending or
    /// retired: the pass that retires one cut what it hid). Under `KeepAll` it lists exactly
    /// these; otherwise the collector may have pruned some.
    pub fn history(&self, key: &[u8], at: u64, before: Option<u64>) -> Vec<&CommittedWrite> {
        let below = before.unwrap_or(u64::MAX);
        let hidden_below = self
            .range_deletes
            .iter()
            .filter(|r| r.version <= at && r.covers(key))
            .map(|r| r.version)
            .max()
            .unwrap_or(0);
        self.chain(key)
            .iter()
            .rev()
            .filter(|w| w.version <= at && w.version < below && w.version >= hidden_below)
            .collect()
    }

    /// Keys that have a chain, as `Stats::keys` counts them.
    pub fn chain_count(&self) -> u64 {
        self.chains.len() as u64
    }

    /// The keys whose newest write is a put: after a collection pass no reader held back,
    /// exactly those keep a chain.
    pub fn keys_with_a_live_head(&self) -> u64 {
        let live = |writes: &Vec<CommittedWrite>| writes.last().is_some_and(|w| w.value.is_some());
        self.writes.values().filter(|writes| live(writes)).count() as u64
    }

    /// Versions in all chains, tombstones included: `Stats::live_versions` if nothing was
    /// ever pruned.
    pub fn linked_versions(&self) -> u64 {
        self.chains.keys().map(|key| self.chain(key).len() as u64).sum()
    }

    /// Bytes of keys (once per chain) and values (once per version): `Stats::live_bytes` if
    /// nothing was ever pruned.
    pub fn linked_bytes(&self) -> u64 {
        self.chains
            .keys()
            .map(|key| {
                let values: usize =
                    self.chain(key).iter().map(|w| w.value.as_ref().map_or(0, Vec::len)).sum();
                (key.len() + values) as u64
            })
            .sum()
    }
}
