//! Snapshot isolation and serializability, checked against a model of committed versions.
//!
//! Random sequences of operations over six keys interleave several open transactions
//! (snapshot isolation and serializable), one-shot writes, snapshots, time travel and
//! garbage collection, on one thread: deterministic, and it still exercises every
//! concurrency rule of docs/architecture.md §3-4, since what matters is the order of begins,
//! reads and commits. The model (`common/model.rs`) keeps the state after every commit version.
//!
//! Invariants checked after every operation:
//! - no dirty reads: a transaction or snapshot never sees another's uncommitted write;
//! - read-your-own-writes, in point reads and in scans;
//! - repeatable reads: a snapshot or transaction reads its own version's state, however many
//!   commits come after it;
//! - scans (ranges, prefixes, inverted ranges; forward, reverse and alternating ends) equal
//!   the model's state at the snapshot's version merged with the transaction's own writes;
//! - no lost updates: a commit conflicts exactly when a key it wrote (or, serializably, read
//!   or scanned) was committed by another after its snapshot, naming such a key; a commit
//!   that does not conflict succeeds with the next version;
//! - `snapshot_at(v)` is exactly the state at `v` for every committed `v` the retention
//!   keeps, and `SnapshotTooOld` below that;
//! - the counters (`commits`, `conflicts`, `keys`, `open_snapshots`, the oldest snapshot,
//!   and, where nothing is collected, `live_versions` and `live_bytes`) agree with the model.

#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::ops::Bound;

use common::model::{Key, Model, Span, Value, Writes};
use common::{drain_mixed, expected_mixed, owned, NO_MAINTENANCE};
use inmem_engine::{
    CommitVersion, Database, Error, Isolation, Options, Retention, Snapshot, Transaction,
    TransactionOptions,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

/// The key space: the empty key, keys that are prefixes of each other, and a key above
/// 0xFF (whose prefix has no upper bound).
const KEYS: [&[u8]; 6] = [b"", b"a", b"ab", b"abc", b"b", b"\xff\x01"];
const PREFIXES: [&[u8]; 6] = [b"", b"a", b"ab", b"b", b"c", b"\xff"];
/// Range bounds: the keys and the points between and around them.
const POINTS: [&[u8]; 12] =
    [b"", b"a", b"aa", b"ab", b"abc", b"abd", b"b", b"ba", b"c", b"\xff", b"\xff\x01", b"\xff\x02"];

#[derive(Debug, Clone, Copy)]
enum BoundSpec {
    Unbounded,
    Included(usize),
    Excluded(usize),
}

impl BoundSpec {
    fn bound(self) -> Bound<Vec<u8>> {
        match self {
            BoundSpec::Unbounded => Bound::Unbounded,
            BoundSpec::Included(point) => Bound::Included(POINTS[point].to_vec()),
            BoundSpec::Excluded(point) => Bound::Excluded(POINTS[point].to_vec()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ScanSpec {
    Range(BoundSpec, BoundSpec),
    Prefix(usize),
}

impl ScanSpec {
    fn span(self) -> Span {
        match self {
            ScanSpec::Range(start, end) => Span::Range((start.bound(), end.bound())),
            ScanSpec::Prefix(prefix) => Span::Prefix(PREFIXES[prefix].to_vec()),
        }
    }
}

/// One step. Transactions and snapshots are chosen among the open ones by `Index`; an
/// operation on one when none is open does nothing. A scan's `u64` says which end each step
/// takes from (see `common::drain_mixed`).
#[derive(Debug, Clone)]
enum Op {
    Begin(Isolation),
    TxnGet(Index, usize),
    TxnPut(Index, usize, Value),
    TxnDelete(Index, usize),
    TxnScan(Index, ScanSpec, u64),
    Commit(Index),
    Rollback(Index),
    Put(usize, Value),
    Delete(usize),
    Get(usize),
    TakeSnapshot,
    SnapshotAt(Index),
    SnapGet(Index, usize),
    SnapScan(Index, ScanSpec, u64),
    DropSnapshot(Index),
    CollectGarbage,
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

/// Small values, the empty one included (present, unlike an absent key).
fn value() -> impl Strategy<Value = Value> {
    prop::collection::vec(0u8..3, 0..3)
}

fn bound() -> impl Strategy<Value = BoundSpec> {
    prop_oneof![
        Just(BoundSpec::Unbounded),
        (0..POINTS.len()).prop_map(BoundSpec::Included),
        (0..POINTS.len()).prop_map(BoundSpec::Excluded),
    ]
}

fn scan() -> impl Strategy<Value = ScanSpec> {
    prop_oneof![
        (bound(), bound()).prop_map(|(start, end)| ScanSpec::Range(start, end)),
        (0..PREFIXES.len()).prop_map(ScanSpec::Prefix),
    ]
}

/// Forward, reverse, or alternating ends at random.
fn ends() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(u64::MAX), any::<u64>()]
}

fn op() -> impl Strategy<Value = Op> {
    let isolation = prop_oneof![Just(Isolation::Snapshot), Just(Isolation::Serializable)];
    prop_oneof![
        3 => isolation.prop_map(Op::Begin),
        4 => (any::<Index>(), key()).prop_map(|(t, k)| Op::TxnGet(t, k)),
        5 => (any::<Index>(), key(), value()).prop_map(|(t, k, v)| Op::TxnPut(t, k, v)),
        2 => (any::<Index>(), key()).prop_map(|(t, k)| Op::TxnDelete(t, k)),
        3 => (any::<Index>(), scan(), ends()).prop_map(|(t, s, e)| Op::TxnScan(t, s, e)),
        6 => any::<Index>().prop_map(Op::Commit),
        1 => any::<Index>().prop_map(Op::Rollback),
        3 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => key().prop_map(Op::Delete),
        1 => key().prop_map(Op::Get),
        2 => Just(Op::TakeSnapshot),
        2 => any::<Index>().prop_map(Op::SnapshotAt),
        2 => (any::<Index>(), key()).prop_map(|(s, k)| Op::SnapGet(s, k)),
        2 => (any::<Index>(), scan(), ends()).prop_map(|(s, sc, e)| Op::SnapScan(s, sc, e)),
        1 => any::<Index>().prop_map(Op::DropSnapshot),
        2 => Just(Op::CollectGarbage),
    ]
}

/// How the database under test keeps old versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `Retention::KeepAll`, with the background thread running: nothing is ever collected,
    /// so every version stays reachable by `snapshot_at`.
    KeepAll,
    /// The default retention, collected only at `CollectGarbage` steps (no background
    /// thread), so which versions are gone is deterministic.
    Collecting,
}

impl Variant {
    fn options(self) -> Options {
        match self {
            Variant::KeepAll => Options::default().retention(Retention::KeepAll),
            Variant::Collecting => Options::default().maintenance_interval(NO_MAINTENANCE),
        }
    }
}

trait OrFail<T> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError>;
}

impl<T> OrFail<T> for Result<T, Error> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError> {
        self.map_err(|error| TestCaseError::fail(format!("{what} failed: {error}")))
    }
}

struct OpenTxn<'db> {
    txn: Transaction<'db>,
    read_version: u64,
    isolation: Isolation,
    writes: Writes,
    /// Point reads (as one-key ranges) and scans.
    reads: Vec<Span>,
}

struct OpenSnapshot<'db> {
    snapshot: Snapshot<'db>,
    version: u64,
}

struct Run<'db> {
    db: &'db Database,
    variant: Variant,
    model: Model,
    txns: Vec<OpenTxn<'db>>,
    snapshots: Vec<OpenSnapshot<'db>>,
    /// The oldest version `snapshot_at` may ask for.
    horizon: u64,
    conflicts: u64,
}

fn as_vec(value: Option<inmem_engine::Bytes>) -> Option<Vec<u8>> {
    value.map(|value| value.to_vec())
}

fn point(key: &[u8]) -> Span {
    Span::Range((Bound::Included(key.to_vec()), Bound::Included(key.to_vec())))
}

impl<'db> Run<'db> {
    fn new(db: &'db Database, variant: Variant) -> Run<'db> {
        Run {
            db,
            variant,
            model: Model::default(),
            txns: Vec::new(),
            snapshots: Vec::new(),
            horizon: 0,
            conflicts: 0,
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Begin(isolation) => self.begin(isolation),
            Op::TxnGet(t, k) => self.txn_get(t, KEYS[k]),
            Op::TxnPut(t, k, value) => self.txn_write(t, KEYS[k], Some(value)),
            Op::TxnDelete(t, k) => self.txn_write(t, KEYS[k], None),
            Op::TxnScan(t, spec, ends) => self.txn_scan(t, spec, ends),
            Op::Commit(t) => self.commit(t),
            Op::Rollback(t) => {
                if !self.txns.is_empty() {
                    let open = self.txns.remove(t.index(self.txns.len()));
                    open.txn.rollback();
                }
                Ok(())
            }
            Op::Put(k, value) => self.one_shot(KEYS[k], Some(value)),
            Op::Delete(k) => self.one_shot(KEYS[k], None),
            Op::Get(k) => {
                let got = as_vec(self.db.get(KEYS[k]).or_fail("db.get")?);
                prop_assert_eq!(
                    got.as_ref(),
                    self.model.state_at(self.model.latest()).get(KEYS[k])
                );
                Ok(())
            }
            Op::TakeSnapshot => {
                let snapshot = self.db.snapshot();
                prop_assert_eq!(snapshot.version().get(), self.model.latest());
                let version = self.model.latest();
                self.snapshots.push(OpenSnapshot { snapshot, version });
                Ok(())
            }
            Op::SnapshotAt(at) => {
                let version = at.index(self.model.latest() as usize + 1) as u64;
                if let Some(snapshot) = self.snapshot_at(version)? {
                    self.snapshots.push(OpenSnapshot { snapshot, version });
                }
                Ok(())
            }
            Op::SnapGet(s, k) => self.snapshot_get(s, KEYS[k]),
            Op::SnapScan(s, spec, ends) => self.snapshot_scan(s, spec, ends),
            Op::DropSnapshot(s) => {
                if !self.snapshots.is_empty() {
                    self.snapshots.remove(s.index(self.snapshots.len()));
                }
                Ok(())
            }
            Op::CollectGarbage => self.collect_garbage(),
        }
    }

    fn begin(&mut self, isolation: Isolation) -> Result<(), TestCaseError> {
        let txn = self.db.begin_with(TransactionOptions::default().isolation(isolation));
        prop_assert_eq!(txn.read_version().get(), self.model.latest());
        prop_assert_eq!(txn.isolation(), isolation);
        let read_version = self.model.latest();
        self.txns.push(OpenTxn {
            txn,
            read_version,
            isolation,
            writes: Writes::new(),
            reads: vec![],
        });
        Ok(())
    }

    fn txn_get(&mut self, t: Index, key: &[u8]) -> Result<(), TestCaseError> {
        if self.txns.is_empty() {
            return Ok(());
        }
        let chosen = t.index(self.txns.len());
        let open = &mut self.txns[chosen];
        let got = as_vec(open.txn.get(key).or_fail("txn.get")?);
        let expected = match open.writes.get(key) {
            Some(own) => own.clone(),
            None => self.model.state_at(open.read_version).get(key).cloned(),
        };
        open.reads.push(point(key));
        prop_assert_eq!(got, expected, "txn at {} reads {:?}", open.read_version, key);
        Ok(())
    }

    fn txn_write(
        &mut self,
        t: Index,
        key: &[u8],
        value: Option<Value>,
    ) -> Result<(), TestCaseError> {
        if self.txns.is_empty() {
            return Ok(());
        }
        let chosen = t.index(self.txns.len());
        let open = &mut self.txns[chosen];
        match &value {
            Some(value) => open.txn.put(key, value).or_fail("txn.put")?,
            None => open.txn.delete(key).or_fail("txn.delete")?,
        }
        open.writes.insert(key.to_vec(), value);
        prop_assert_eq!(open.txn.write_count(), open.writes.len());
        Ok(())
    }

    fn txn_scan(&mut self, t: Index, spec: ScanSpec, ends: u64) -> Result<(), TestCaseError> {
        if self.txns.is_empty() {
            return Ok(());
        }
        let chosen = t.index(self.txns.len());
        let open = &mut self.txns[chosen];
        let span = spec.span();
        let expected = span.entries(&self.model.state_with(open.read_version, &open.writes));
        let iter = match spec {
            ScanSpec::Range(start, end) => open.txn.range((start.bound(), end.bound())),
            ScanSpec::Prefix(prefix) => open.txn.prefix(PREFIXES[prefix]),
        }
        .or_fail("txn scan")?;
        let got = drain_mixed(iter, ends);
        open.reads.push(span);
        prop_assert_eq!(got, expected_mixed(&expected, ends), "txn scan {:?}", spec);
        Ok(())
    }

    /// The keys whose commits since the transaction's snapshot make it conflict.
    fn conflicting_keys(&self, open: &OpenTxn<'_>) -> BTreeSet<Key> {
        let rv = open.read_version;
        let mut keys: BTreeSet<Key> =
            open.writes.keys().filter(|key| self.model.changed_since(key, rv)).cloned().collect();
        if open.isolation == Isolation::Serializable {
            for span in &open.reads {
                keys.extend(self.model.changed_in(span, rv));
            }
        }
        keys
    }

    fn commit(&mut self, t: Index) -> Result<(), TestCaseError> {
        if self.txns.is_empty() {
            return Ok(());
        }
        let open = self.txns.remove(t.index(self.txns.len()));
        let conflicting = self.conflicting_keys(&open);
        let OpenTxn { txn, read_version, writes, .. } = open;
        let outcome = txn.commit();
        if writes.is_empty() {
            prop_assert_eq!(outcome, Ok(CommitVersion::new(read_version)), "a read-only commit");
        } else if conflicting.is_empty() {
            let version = self.model.commit(&writes);
            prop_assert_eq!(outcome, Ok(CommitVersion::new(version)), "a commit without conflict");
        } else {
            match outcome {
                Err(Error::Conflict { key }) => prop_assert!(
                    conflicting.contains(key.as_slice()),
                    "conflict names {:?}, not one of {:?}",
                    key,
                    conflicting
                ),
                other => {
                    prop_assert!(false, "expected a conflict on {:?}, got {:?}", conflicting, other)
                }
            }
            self.conflicts += 1;
        }
        Ok(())
    }

    fn one_shot(&mut self, key: &[u8], value: Option<Value>) -> Result<(), TestCaseError> {
        let version = match &value {
            Some(value) => self.db.put(key, value).or_fail("db.put")?,
            None => self.db.delete(key).or_fail("db.delete")?,
        };
        let expected = self.model.commit(&Writes::from([(key.to_vec(), value)]));
        prop_assert_eq!(version, CommitVersion::new(expected));
        Ok(())
    }

    /// Takes a snapshot at `version` and checks it against the model: `None` if the version
    /// is (rightly) too old.
    fn snapshot_at(&self, version: u64) -> Result<Option<Snapshot<'db>>, TestCaseError> {
        let outcome = self.db.snapshot_at(CommitVersion::new(version));
        if version < self.horizon {
            let too_old = Error::SnapshotTooOld {
                requested: CommitVersion::new(version),
                oldest_available: CommitVersion::new(self.horizon),
            };
            prop_assert_eq!(outcome.err(), Some(too_old));
            return Ok(None);
        }
        let snapshot = outcome.or_fail("snapshot_at a retained version")?;
        prop_assert_eq!(snapshot.version().get(), version);
        let state = self.model.state_at(version);
        let expected: Vec<_> = state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(&owned(snapshot.prefix(b"")), &expected, "snapshot_at({})", version);
        let mut reversed = owned(snapshot.prefix(b"").rev());
        reversed.reverse();
        prop_assert_eq!(&reversed, &expected, "snapshot_at({}) in reverse", version);
        for key in KEYS {
            let got = as_vec(snapshot.get(key).or_fail("get")?);
            prop_assert_eq!(got.as_ref(), state.get(key));
        }
        Ok(Some(snapshot))
    }

    fn snapshot_get(&self, s: Index, key: &[u8]) -> Result<(), TestCaseError> {
        if self.snapshots.is_empty() {
            return Ok(());
        }
        let open = &self.snapshots[s.index(self.snapshots.len())];
        let got = as_vec(open.snapshot.get(key).or_fail("snapshot.get")?);
        let state = self.model.state_at(open.version);
        prop_assert_eq!(
            got.as_ref(),
            state.get(key),
            "snapshot at {} reads {:?}",
            open.version,
            key
        );
        Ok(())
    }

    fn snapshot_scan(&self, s: Index, spec: ScanSpec, ends: u64) -> Result<(), TestCaseError> {
        if self.snapshots.is_empty() {
            return Ok(());
        }
        let open = &self.snapshots[s.index(self.snapshots.len())];
        let expected = spec.span().entries(self.model.state_at(open.version));
        let got = match spec {
            ScanSpec::Range(start, end) => {
                drain_mixed(open.snapshot.range((start.bound(), end.bound())), ends)
            }
            ScanSpec::Prefix(prefix) => drain_mixed(open.snapshot.prefix(PREFIXES[prefix]), ends),
        };
        prop_assert_eq!(got, expected_mixed(&expected, ends), "snapshot scan {:?}", spec);
        Ok(())
    }

    /// The oldest version an open snapshot or transaction reads at, if any is open.
    fn oldest_reader(&self) -> Option<u64> {
        let snapshots = self.snapshots.iter().map(|open| open.version);
        snapshots.chain(self.txns.iter().map(|open| open.read_version)).min()
    }

    fn collect_garbage(&mut self) -> Result<(), TestCaseError> {
        let report = self.db.collect_garbage();
        match self.variant {
            Variant::KeepAll => {
                prop_assert_eq!(report.horizon, CommitVersion::ZERO, "KeepAll collects nothing");
                prop_assert_eq!(report.versions_pruned, 0);
            }
            Variant::Collecting => {
                let latest = self.model.latest();
                let effective = self.oldest_reader().map_or(latest, |oldest| oldest.min(latest));
                prop_assert_eq!(report.horizon, CommitVersion::new(effective));
                self.model.forget_deleted(effective);
                // The pass publishes the horizon it pruned with: `snapshot_at` reaches down
                // to the oldest reader that was open.
                self.horizon = self.horizon.max(effective);
            }
        }
        Ok(())
    }

    fn check_stats(&self) -> Result<(), TestCaseError> {
        let stats = self.db.stats();
        prop_assert_eq!(stats.visible_version.get(), self.model.latest());
        prop_assert_eq!(stats.commits, self.model.latest());
        prop_assert_eq!(stats.conflicts, self.conflicts);
        prop_assert_eq!(stats.keys, self.model.chain_count());
        prop_assert_eq!(stats.open_snapshots, (self.snapshots.len() + self.txns.len()) as u64);
        prop_assert_eq!(
            stats.oldest_snapshot.map(|oldest| oldest.version.get()),
            self.oldest_reader()
        );
        prop_assert_eq!(stats.oldest_available.get(), self.horizon);
        if self.variant == Variant::KeepAll {
            prop_assert_eq!(stats.live_versions, self.model.linked_versions());
            prop_assert_eq!(stats.live_bytes, self.model.linked_bytes());
        }
        Ok(())
    }

    /// Time travel to every committed version, then closes everything and collects: what is
    /// left is exactly what the retention keeps.
    fn finish(mut self) -> Result<(), TestCaseError> {
        for version in 0..=self.model.latest() {
            drop(self.snapshot_at(version)?);
        }
        self.txns.clear();
        self.snapshots.clear();
        self.collect_garbage()?;
        self.check_stats()?;
        let stats = self.db.stats();
        if self.variant == Variant::Collecting {
            let state = self.model.state_at(self.model.latest());
            let bytes: usize = state.iter().map(|(key, value)| key.len() + value.len()).sum();
            prop_assert_eq!(stats.keys, state.len() as u64, "deleted keys are forgotten");
            prop_assert_eq!(stats.live_versions, state.len() as u64, "one version per key");
            prop_assert_eq!(stats.live_bytes, bytes as u64);
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>, variant: Variant) -> Result<(), TestCaseError> {
    let db = Database::with_options(variant.options()).or_fail("opening")?;
    let mut run = Run::new(&db, variant);
    for op in ops {
        run.apply(op)?;
        run.check_stats()?;
    }
    run.finish()
}

fn config() -> ProptestConfig {
    // `PROPTEST_CASES` runs a deeper search by hand. No failure persistence: a failing case
    // is printed (and shrunk), not written into the source tree.
    let cases =
        std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(1024);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn interleaved_transactions_keep_snapshot_isolation_and_time_travel_is_exact(
        ops in prop::collection::vec(op(), 1..200)
    ) {
        run(ops, Variant::KeepAll)?;
    }

    #[test]
    fn interleaved_transactions_keep_snapshot_isolation_while_garbage_is_collected(
        ops in prop::collection::vec(op(), 1..200)
    ) {
        run(ops, Variant::Collecting)?;
    }
}
