//! `engine_model`: random sequences of transactions, one-shot writes, range deletes (a
//! transaction's and one-shot), their purge, snapshots, time travel, scans and collection
//! passes on an in-memory `Database`, each result checked against a model: the committed
//! state after every version (a `BTreeMap` per version), every committed write of every key
//! (the purge's maintenance tombstones included) and the chains they form, every range
//! delete and its purge, and the open transactions' buffers, range deletes and read sets.
//! The model is `inmem-model` (`tests/model/` of the root workspace), the one the property
//! test `tests/mvcc_model.rs` checks against too; this file and `engine_model/input.rs` are
//! the harness and its input.
//!
//! The input decodes (through `arbitrary`, with bounded wrappers) into a configuration
//! (retention `KeepAll`, `KeepLast(1)` or `KeepLast(2)`; default isolation; tight or default
//! limits) and at most `OPS_MAX` operations over a small key space (8 fixed keys sharing
//! prefixes, with the empty key and 0x00/0xFF edges, plus a family `m·` written in bulk so
//! that scans cross the iterator's batches), values of at most 32 bytes (a stamp byte that
//! tells writes apart, then the input's bytes), 3 transaction slots and 4 snapshot slots.
//! Range deletes take their prefix from the scans' (the empty one and the bulk family's `m`
//! among them) and some whole keys. Scans may be interrupted by a one-shot write, a one-shot
//! range delete, a purge step or a collection pass between two steps. The maintenance
//! thread is held off (one-hour interval), so collection and purges happen only where the
//! input asks for them (an operation, or a configuration that collects after every
//! operation), and the run is deterministic.
//!
//! Invariants checked:
//! - every read (`Database::get`, `Snapshot::get`, `Transaction::get`) equals the model: the
//!   state at the reader's version, overlaid for a transaction with its own range deletes
//!   and then its own writes; a range delete of `p` committed at `V` removes from the state
//!   at `V` every key under `p` (the prefix itself included, every key for the empty
//!   prefix), except those the same commit writes, and readers before `V` still see them;
//! - every scan (prefix or arbitrary bounds, inverted and empty ones included, through a
//!   held snapshot, a fresh one or a transaction) yields exactly the model's entries in key
//!   order, whatever the interleaving of `next` and `next_back` and whatever is committed or
//!   collected between two steps, and then `None`;
//! - a commit conflicts exactly when first-committer-wins says (a written key, and for a
//!   serializable transaction a read key or a key in a scanned range, has a user write newer
//!   than the read version, or a range delete committed after the read version covers it;
//!   or a scanned range overlaps such a range delete's prefix), names a key that justifies
//!   it (the first such written key in key order; for a scanned range under a range delete,
//!   its prefix), and leaves nothing visible;
//!   the transaction's own range deletes, the purge's tombstones and one-shot range deletes
//!   never conflict; a commit without writes or range deletes returns its read version;
//!   every other commit returns the next version and makes exactly its writes and range
//!   deletes visible;
//! - a transaction's range delete drops its buffered writes under the prefix, keeps those
//!   made after it, hides the keys under it from its reads (recording no read), counts as
//!   one write (`write_count`, `transaction_writes_max`) unless an earlier one covers it,
//!   replaces the earlier ones it covers, and checks its prefix against the key limit;
//! - `snapshot` reads at the visible version; `snapshot_at(v)` succeeds exactly for
//!   `oldest available <= v <= visible` (the oldest available version being the highest
//!   horizon a collection pass pruned with) and then reads the model's state at `v`, before and
//!   after collection passes (with `KeepAll` every version stays reachable); the errors
//!   otherwise are `VersionNotVisible` and `SnapshotTooOld` with the right versions;
//! - a collection pass reports the horizon the model expects (the retention horizon, held
//!   back by the oldest open snapshot or transaction) and never changes what any open or
//!   later snapshot reads; under `KeepLast(n)`, after a pass that no reader held back, every
//!   deleted key is forgotten (no history, not counted in `Stats::keys`; a key a range
//!   delete hides has no history, and is counted until its purge's tombstone lets it go)
//!   and every other key keeps at most `n` versions;
//! - `history` lists the key's versions newest first, bounded by the snapshot, `before` and
//!   `limit`, without the versions a range delete at or below the snapshot hides (every
//!   version older than it), the purge's tombstones flagged `reaped`: exactly the versions
//!   of the model's chain under `KeepAll`, and otherwise a subset of them that starts with
//!   the value the snapshot reads; a retired range delete still hides what it deleted (the
//!   collector cut those versions whatever `keep_last` says);
//! - `purge_range_deletes(steps)` first retires every walked range delete whose walk ended
//!   at or below the published horizon, then walks the oldest unwalked ones, one a step,
//!   replacing in one commit (a version, none if nothing is replaced) every key under the
//!   prefix whose newest version is older than the range delete and no tombstone, changing
//!   nothing any reader reads; it returns the keys replaced, and `range_deletes()` lists
//!   exactly the unretired range deletes, in commit order, with the keys each purged and
//!   whether its walk ended;
//! - key, value, write-set and read-set limits fail with the exact `LimitExceeded` the model
//!   predicts, and change nothing;
//! - `Stats` agree with the model: visible version, commits, conflicts, open readers, the
//!   oldest available version and the oldest open snapshot (purge commits count as commits),
//!   the keys that have a chain (a put creates one, a delete links a tombstone only into one
//!   that exists, a pass forgets one whose newest version is a tombstone at or below its
//!   horizon), and under `KeepAll` the counts of versions and bytes (a range delete adds no
//!   version and removes none: the versions it hides stay counted, and its purge's
//!   tombstones are versions without payload bytes).

#![no_main]

#[path = "engine_model/input.rs"]
mod input;

use std::collections::VecDeque;
use std::ops::Bound;
use std::time::Duration;

use inmem_engine::{
    Bytes, CommitVersion, Database, Error, Isolation, Snapshot, Transaction, TransactionOptions,
    VersionRecord,
};
use libfuzzer_sys::fuzz_target;

use inmem_model::{CommittedWrite, Entries, Model, Span, TxnModel, Value, Write};

use crate::input::{bulk_key, Config, Input, Interrupt, Interruption, Op, Scanner, BULK_KEYS_MAX};

/// Purge steps a `PurgeRangeDeletes` operation runs at most.
const PURGE_STEPS_MAX: u8 = 3;

const TXN_SLOTS: usize = 3;
const SNAPSHOT_SLOTS: usize = 4;
/// Long enough that nothing expires during a run: TTL writes read like plain ones.
const TTL: Duration = Duration::from_secs(3600);

fn owned(value: Option<Bytes>) -> Option<Value> {
    value.map(|value| value.to_vec())
}

/// Walks `iter` from both ends as `pattern` says, checking each step against `expected`,
/// and then that both ends are exhausted.
fn check_iteration(
    iter: impl DoubleEndedIterator<Item = (Bytes, Bytes)>,
    expected: Entries,
    pattern: u16,
    what: &str,
) {
    check_interrupted_iteration(iter, expected, pattern, what, |_| {});
}

/// As `check_iteration`, calling `before_step` before each step.
fn check_interrupted_iteration(
    mut iter: impl DoubleEndedIterator<Item = (Bytes, Bytes)>,
    expected: Entries,
    pattern: u16,
    what: &str,
    mut before_step: impl FnMut(usize),
) {
    let mut expected: VecDeque<_> = expected.into();
    for step in 0..expected.len() + 2 {
        before_step(step);
        let back = (pattern >> (step % 16)) & 1 == 1;
        let (got, want) = if back {
            (iter.next_back(), expected.pop_back())
        } else {
            (iter.next(), expected.pop_front())
        };
        let got = got.map(|(key, value)| (key.to_vec(), value.to_vec()));
        let end = if back { "back" } else { "front" };
        assert_eq!(got, want, "{what}: step {step} from the {end}");
    }
}

/// A transaction open in a slot, with the model of its buffer and read set.
struct OpenTxn<'db> {
    txn: Transaction<'db>,
    model: TxnModel,
}

/// The database, its open transactions and snapshots, and the model beside them.
struct Run<'db> {
    db: &'db Database,
    model: Model,
    txns: [Option<OpenTxn<'db>>; TXN_SLOTS],
    snapshots: [Option<Snapshot<'db>>; SNAPSHOT_SLOTS],
    /// The operation being run, for failure messages.
    step: usize,
}

fn txn_slot(slot: u8) -> usize {
    usize::from(slot) % TXN_SLOTS
}

fn snapshot_slot(slot: u8) -> usize {
    usize::from(slot) % SNAPSHOT_SLOTS
}

impl<'db> Run<'db> {
    fn new(db: &'db Database, config: &Config) -> Run<'db> {
        Run {
            db,
            model: Model::new(&config.options()),
            txns: Default::default(),
            snapshots: Default::default(),
            step: 0,
        }
    }

    fn apply(&mut self, step: usize, op: &Op) {
        self.step = step;
        match op {
            Op::Begin { slot, isolation } => self.begin(txn_slot(*slot), *isolation),
            Op::Get { slot, key } => self.txn_get(txn_slot(*slot), &key.key()),
            Op::Put { slot, key, value, ttl } => {
                let value = Write { value: Some(value.stamped(step)), ttl: *ttl };
                self.txn_write(txn_slot(*slot), &key.key(), value);
            }
            Op::Delete { slot, key } => {
                self.txn_write(txn_slot(*slot), &key.key(), Write::delete());
            }
            Op::Bulk { slot, start, count, step: stride, delete } => {
                self.bulk(txn_slot(*slot), *start, *count, *stride, *delete);
            }
            Op::Commit { slot } => self.commit(txn_slot(*slot)),
            Op::Rollback { slot } => {
                if let Some(open) = self.txns[txn_slot(*slot)].take() {
                    open.txn.rollback();
                }
            }
            Op::DbGet { key } => self.db_get(&key.key()),
            Op::DbPut { key, value, ttl } => {
                let value = Write { value: Some(value.stamped(step)), ttl: *ttl };
                self.db_write(&key.key(), value);
            }
            Op::DbDelete { key } => self.db_write(&key.key(), Write::delete()),
            Op::Snapshot { slot } => self.snapshot(snapshot_slot(*slot)),
            Op::SnapshotAt { slot, version } => self.snapshot_at(snapshot_slot(*slot), *version),
            Op::DropSnapshot { slot } => self.snapshots[snapshot_slot(*slot)] = None,
            Op::SnapshotGet { slot, key } => self.snapshot_get(snapshot_slot(*slot), &key.key()),
            Op::Scan { scanner, range, pattern, interruption } => {
                self.scan(*scanner, &range.range(), *pattern, *interruption);
            }
            Op::History { slot, key, limit, before } => {
                self.history(usize::from(*slot), &key.key(), *limit, *before);
            }
            Op::CollectGarbage => self.collect_garbage(),
            Op::ReapExpired => {
                assert_eq!(self.db.reap_expired(), 0, "op {step}: nothing expires within a run");
            }
            Op::DeletePrefix { slot, prefix } => {
                self.txn_delete_prefix(txn_slot(*slot), &prefix.prefix());
            }
            Op::DbDeletePrefix { prefix } => {
                one_shot_delete_prefix(self.db, &mut self.model, &prefix.prefix(), step);
            }
            Op::PurgeRangeDeletes { steps } => {
                purge(self.db, &mut self.model, usize::from(steps % (PURGE_STEPS_MAX + 1)), step);
            }
        }
        self.check_stats();
    }

    fn begin(&mut self, slot: usize, isolation: u8) {
        let (txn, serializable) = match isolation {
            0 => (self.db.begin(), self.db.options().isolation == Isolation::Serializable),
            1 => (
                self.db.begin_with(TransactionOptions::default().isolation(Isolation::Snapshot)),
                false,
            ),
            _ => {
                let options = TransactionOptions::default().isolation(Isolation::Serializable);
                (self.db.begin_with(options), true)
            }
        };
        let step = self.step;
        assert_eq!(txn.read_version().get(), self.model.visible(), "op {step}: begin reads now");
        assert_eq!(txn.isolation() == Isolation::Serializable, serializable, "op {step}");
        let model = TxnModel::new(self.model.visible(), serializable);
        self.txns[slot] = Some(OpenTxn { txn, model });
    }

    fn txn_get(&mut self, slot: usize, key: &[u8]) {
        let Some(open) = self.txns[slot].as_mut() else { return };
        let got = open.txn.get(key).map(owned);
        let expected = self.model.txn_get(&mut open.model, key);
        assert_eq!(got, expected, "op {}: transaction get of {key:?}", self.step);
    }

    fn txn_write(&mut self, slot: usize, key: &[u8], write: Write) {
        let Some(open) = self.txns[slot].as_mut() else { return };
        let got = match (&write.value, write.ttl) {
            (Some(value), false) => open.txn.put(key, value),
            (Some(value), true) => open.txn.put_with_ttl(key, value, TTL),
            (None, _) => open.txn.delete(key),
        };
        let expected = self.model.txn_write(&mut open.model, key, write);
        assert_eq!(got, expected, "op {}: transaction write of {key:?}", self.step);
        assert_eq!(open.txn.write_count(), open.model.write_count(), "op {}", self.step);
    }

    fn txn_delete_prefix(&mut self, slot: usize, prefix: &[u8]) {
        let Some(open) = self.txns[slot].as_mut() else { return };
        let got = open.txn.delete_prefix(prefix);
        let expected = self.model.txn_delete_prefix(&mut open.model, prefix);
        let step = self.step;
        assert_eq!(got, expected, "op {step}: transaction range delete of {prefix:?}");
        assert_eq!(open.txn.write_count(), open.model.write_count(), "op {step}: write count");
    }

    fn bulk(&mut self, slot: usize, start: u8, count: u8, stride: u8, delete: bool) {
        for i in 0..count % (BULK_KEYS_MAX + 1) {
            let key = bulk_key(start.wrapping_add(i.wrapping_mul(stride % 4 + 1)));
            let value = (!delete).then(|| vec![self.step as u8, i]);
            self.txn_write(slot, &key, Write { value, ttl: false });
        }
    }

    fn commit(&mut self, slot: usize) {
        let Some(OpenTxn { txn, model }) = self.txns[slot].take() else { return };
        let visible = self.model.visible();
        let step = self.step;
        let outcome = txn.commit();
        if let Err(mismatch) = self.model.check_commit(&model, &outcome) {
            panic!("op {step}: {mismatch}");
        }
        if let Err(Error::Conflict { .. }) = outcome {
            let now = self.db.visible_version().get();
            assert_eq!(now, visible, "op {step}: a conflict publishes nothing");
        }
    }

    fn db_get(&mut self, key: &[u8]) {
        let got = self.db.get(key).map(owned);
        let expected = self.model.get(self.model.visible(), key);
        assert_eq!(got, expected, "op {}: database get of {key:?}", self.step);
    }

    fn db_write(&mut self, key: &[u8], write: Write) {
        one_shot_write(self.db, &mut self.model, key, write, self.step);
    }

    fn snapshot(&mut self, slot: usize) {
        let snapshot = self.db.snapshot();
        assert_eq!(snapshot.version().get(), self.model.visible(), "op {}: snapshot", self.step);
        self.snapshots[slot] = Some(snapshot);
    }

    fn snapshot_at(&mut self, slot: usize, version: u8) {
        let visible = self.model.visible();
        let version = u64::from(version) % (visible + 2);
        let requested = CommitVersion::new(version);
        let got = self.db.snapshot_at(requested);
        let expected = self.model.snapshot_at(version);
        let step = self.step;
        assert_eq!(
            got.as_ref().map(Snapshot::version),
            expected.as_ref().map(|v| *v),
            "op {step}: snapshot_at"
        );
        if let Ok(snapshot) = got {
            // Read every key at once: time travel must see the whole state at `version`.
            let all = Span::Range(Bound::Unbounded, Bound::Unbounded);
            let expected = self.model.scan(version, None, &all);
            check_iteration(snapshot.range::<&[u8]>(..), expected, 0, "snapshot_at full scan");
            self.snapshots[slot] = Some(snapshot);
        }
    }

    fn snapshot_get(&mut self, slot: usize, key: &[u8]) {
        let Some(snapshot) = self.snapshots[slot].as_ref() else { return };
        let version = snapshot.version().get();
        let got = snapshot.get(key).map(owned);
        let expected = self.model.get(version, key);
        assert_eq!(got, expected, "op {}: snapshot get of {key:?} at {version}", self.step);
    }

    fn scan(
        &mut self,
        scanner: Scanner,
        range: &Span,
        pattern: u16,
        interruption: Option<Interruption>,
    ) {
        let what = format!("op {}: scan of {range:?} by {scanner:?}", self.step);
        // The scan's own reader is already registered (or, fresh, no older than any other).
        let oldest_reader = Some(self.oldest_reader().unwrap_or(self.model.visible()));
        let (db, step) = (self.db, self.step);
        let model = &mut self.model;
        let interrupt = |model: &mut Model, at: usize| match interruption {
            Some(Interruption { at_step, action }) if usize::from(at_step) == at => {
                interrupt(db, model, action, oldest_reader, step);
            }
            _ => {}
        };
        match scanner {
            Scanner::Snapshot(slot) => {
                let Some(snapshot) = self.snapshots[snapshot_slot(slot)].as_ref() else { return };
                let expected = model.scan(snapshot.version().get(), None, range);
                let iter = snapshot_scan(snapshot, range);
                check_interrupted_iteration(iter, expected, pattern, &what, |at| {
                    interrupt(model, at);
                });
            }
            Scanner::Fresh => {
                let snapshot = db.snapshot();
                let expected = model.scan(model.visible(), None, range);
                let iter = snapshot_scan(&snapshot, range);
                check_interrupted_iteration(iter, expected, pattern, &what, |at| {
                    interrupt(model, at);
                });
            }
            Scanner::Transaction(slot) => {
                let Some(open) = self.txns[txn_slot(slot)].as_mut() else { return };
                txn_scan(open, model, range, pattern, &what, interrupt);
            }
        }
    }

    fn history(&mut self, slot: usize, key: &[u8], limit: u8, before: Option<u8>) {
        let limit = usize::from(limit % 5);
        let before = before.map(|b| u64::from(b) % (self.model.visible() + 2));
        let fresh;
        let snapshot = match self.snapshots.get(slot).and_then(Option::as_ref) {
            Some(snapshot) => snapshot,
            None => {
                fresh = self.db.snapshot();
                &fresh
            }
        };
        let at = snapshot.version().get();
        let got = snapshot.history(key, limit, before.map(CommitVersion::new));
        let what = format!(
            "op {}: history of {key:?} at {at}, limit {limit}, before {before:?}",
            self.step
        );
        if let Err(error) = self.model.check_key(key) {
            assert_eq!(got, Err(error), "{what}");
            return;
        }
        let Ok(records) = got else { panic!("{what}: {got:?}") };
        let writes = self.model.history(key, at, before);
        let reads_newest = before.is_none_or(|before| before > at);
        check_history(&records, &writes, limit, self.model.keep_all(), reads_newest, &what);
    }

    fn collect_garbage(&mut self) {
        let oldest_reader = self.oldest_reader();
        collect(self.db, &mut self.model, oldest_reader, self.step);
        if !self.model.keep_all() && oldest_reader.is_none() {
            self.check_forgotten();
        }
    }

    /// After a pass under `KeepLast(n)` that no reader held back: every deleted key is
    /// forgotten ("deleting a key ends its history"; a key a range delete hides has none,
    /// and is forgotten once its purge wrote its tombstone) and every other key keeps at
    /// most `n` versions.
    fn check_forgotten(&self) {
        let latest = self.model.state(self.model.visible());
        for key in self.model.written_keys() {
            let what = format!("op {}: after an unobstructed collection, {key:?}", self.step);
            let Ok(history) = self.db.history(key, usize::MAX, None) else {
                panic!("{what}: a written key fits the key limit");
            };
            if latest.contains_key(key) {
                assert!(!history.is_empty(), "{what}: a live key lost its versions");
                assert!(history.len() <= self.model.keep_last(), "{what}: keeps {history:?}");
            } else {
                assert!(history.is_empty(), "{what}: deleted, but not forgotten: {history:?}");
            }
        }
        let step = self.step;
        let keys = self.model.keys_with_a_live_head();
        assert_eq!(self.db.stats().keys, keys, "op {step}: keys after collection");
    }

    fn oldest_reader(&self) -> Option<u64> {
        let snapshots = self.snapshots.iter().flatten().map(|s| s.version().get());
        let txns = self.txns.iter().flatten().map(|t| t.model.read_version);
        snapshots.chain(txns).min()
    }

    fn check_stats(&self) {
        let stats = self.db.stats();
        let model = &self.model;
        let step = self.step;
        assert_eq!(stats.visible_version.get(), model.visible(), "op {step}: visible version");
        assert_eq!(stats.commits, model.visible(), "op {step}: every commit takes a version");
        assert_eq!(stats.conflicts, model.conflicts(), "op {step}: conflicts");
        let readers = self.snapshots.iter().flatten().count() + self.txns.iter().flatten().count();
        assert_eq!(stats.open_snapshots, readers as u64, "op {step}: open readers");
        assert_eq!(
            stats.oldest_available.get(),
            model.oldest_available(),
            "op {step}: oldest available"
        );
        let oldest = stats.oldest_snapshot.map(|oldest| oldest.version.get());
        assert_eq!(oldest, self.oldest_reader(), "op {step}: oldest snapshot");
        let pending: Vec<_> = self
            .db
            .range_deletes()
            .into_iter()
            .map(|r| (r.prefix.to_vec(), r.version.get(), r.keys_purged, r.walked))
            .collect();
        let expected: Vec<_> = model
            .pending_range_deletes()
            .map(|r| (r.prefix.clone(), r.version, r.purged, r.walked_at.is_some()))
            .collect();
        assert_eq!(pending, expected, "op {step}: pending range deletes");
        assert_eq!(stats.keys, model.chain_count(), "op {step}: keys");
        if model.keep_all() {
            assert_eq!(stats.live_versions, model.linked_versions(), "op {step}: versions");
            assert_eq!(stats.live_bytes, model.linked_bytes(), "op {step}: bytes");
        }
    }
}

/// A one-shot write, checked against the model.
fn one_shot_write(db: &Database, model: &mut Model, key: &[u8], write: Write, step: usize) {
    let got = match (&write.value, write.ttl) {
        (Some(value), false) => db.put(key, value),
        (Some(value), true) => db.put_with_ttl(key, value, TTL),
        (None, _) => db.delete(key),
    };
    let expected = model.one_shot(key, write).map(CommitVersion::new);
    assert_eq!(got, expected, "op {step}: one-shot write of {key:?}");
}

/// A one-shot range delete, checked against the model: blind, it always commits.
fn one_shot_delete_prefix(db: &Database, model: &mut Model, prefix: &[u8], step: usize) {
    let got = db.delete_prefix(prefix);
    let expected = model.one_shot_delete_prefix(prefix).map(CommitVersion::new);
    assert_eq!(got, expected, "op {step}: one-shot range delete of {prefix:?}");
}

/// `steps` purge steps of the pending range deletes, checked against the model (the keys
/// purged; the versions, the pending list and what every reader reads are checked after).
fn purge(db: &Database, model: &mut Model, steps: usize, step: usize) {
    let purged = db.purge_range_deletes(steps);
    assert_eq!(purged, model.purge(steps), "op {step}: keys purged in {steps} steps");
}

/// A collection pass, checked against the model, with `oldest_reader` the version of the
/// oldest open reader, if any.
fn collect(db: &Database, model: &mut Model, oldest_reader: Option<u64>, step: usize) {
    let effective = model.collection_horizon(oldest_reader);
    let report = db.collect_garbage();
    assert_eq!(report.horizon.get(), effective, "op {step}: collection horizon");
    model.collect(effective);
}

/// Runs `action` in the middle of a scan.
fn interrupt(
    db: &Database,
    model: &mut Model,
    action: Interrupt,
    oldest_reader: Option<u64>,
    step: usize,
) {
    let value = |key: &[u8]| {
        let mut value = vec![0x80 | step as u8];
        value.extend_from_slice(key);
        Write::put(value)
    };
    let delete = Write::delete();
    match action {
        Interrupt::Put(key) => one_shot_write(db, model, &key.key(), value(&key.key()), step),
        Interrupt::Delete(key) => one_shot_write(db, model, &key.key(), delete, step),
        Interrupt::PutBulkKey(byte) => {
            one_shot_write(db, model, &bulk_key(byte), value(&bulk_key(byte)), step);
        }
        Interrupt::DeleteBulkKey(byte) => one_shot_write(db, model, &bulk_key(byte), delete, step),
        Interrupt::CollectGarbage => collect(db, model, oldest_reader, step),
        Interrupt::DeletePrefix(prefix) => {
            one_shot_delete_prefix(db, model, &prefix.prefix(), step)
        }
        Interrupt::PurgeRangeDeletes => purge(db, model, 1, step),
    }
}

/// A scan through a transaction, checked against the model (its read set included).
fn txn_scan(
    open: &mut OpenTxn<'_>,
    model: &mut Model,
    range: &Span,
    pattern: u16,
    what: &str,
    mut before_step: impl FnMut(&mut Model, usize),
) {
    let expected = model.txn_scan(&mut open.model, range);
    let iter = match range {
        Span::Prefix(prefix) => open.txn.prefix(prefix),
        Span::Range(start, end) => open.txn.range((start.clone(), end.clone())),
    };
    match (iter, expected) {
        (Ok(iter), Ok(expected)) => {
            check_interrupted_iteration(iter, expected, pattern, what, |at| before_step(model, at));
        }
        (Err(got), Err(expected)) => assert_eq!(got, expected, "{what}"),
        (iter, expected) => panic!("{what}: scan is {:?}, expected {expected:?}", iter.err()),
    }
}

fn snapshot_scan<'s>(snapshot: &'s Snapshot<'_>, range: &Span) -> inmem_engine::Iter<'s> {
    match range {
        Span::Prefix(prefix) => snapshot.prefix(prefix),
        Span::Range(start, end) => snapshot.range((start.clone(), end.clone())),
    }
}

/// `writes` are the model's candidates ([`Model::history`]), newest first: the versions of
/// the key's chain the snapshot can see, below `before`, that no range delete hides.
fn check_history(
    records: &[VersionRecord],
    writes: &[&CommittedWrite],
    limit: usize,
    keep_all: bool,
    reads_newest: bool,
    what: &str,
) {
    let agrees = |record: &VersionRecord, write: &CommittedWrite| {
        record.version.get() == write.version
            && owned(record.value.clone()) == write.value
            && record.expires_at_ms.is_some() == write.ttl
            && record.reaped == write.reaped
    };
    assert!(records.len() <= limit, "{what}: {records:?} is over the limit");
    assert!(
        records.windows(2).all(|pair| pair[0].version > pair[1].version),
        "{what}: {records:?} is not newest first"
    );
    if keep_all {
        // Every candidate is linked (nothing is forgotten) and nothing is pruned.
        let expected: Vec<_> = writes.iter().take(limit).collect();
        assert_eq!(records.len(), expected.len(), "{what}: {records:?}, expected {expected:?}");
        for (record, write) in records.iter().zip(expected) {
            assert!(agrees(record, write), "{what}: {record:?}, expected {write:?}");
        }
        return;
    }
    for record in records {
        let write = writes.iter().find(|w| w.version == record.version.get());
        assert!(
            write.is_some_and(|w| agrees(record, w)),
            "{what}: {record:?} is no write of the key"
        );
    }
    // What the snapshot reads is never pruned, so a live value heads the history.
    if let (true, Some(newest), true) = (reads_newest, writes.first(), limit > 0) {
        if newest.value.is_some() {
            assert!(
                records.first().is_some_and(|r| agrees(r, newest)),
                "{what}: {records:?} does not start with {newest:?}"
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let Ok(db) = Database::with_options(input.config.options()) else {
        panic!("the fuzz options are valid");
    };
    let mut run = Run::new(&db, &input.config);
    for (step, op) in input.ops.iter().enumerate() {
        run.apply(step, op);
        if input.config.collect_after_each_op < 64 {
            run.collect_garbage();
            run.check_stats();
        }
    }
});
