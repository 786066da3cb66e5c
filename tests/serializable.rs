//! Serializable isolation against snapshot isolation: write skew and phantoms.
//!
//! Each anomaly is shown deterministically, by interleaving two transactions by hand: under
//! snapshot isolation it happens (both commit), under serializable isolation the second
//! commit fails with `Conflict` naming the key that changed under it and leaves no trace.

#![allow(clippy::expect_used)]

mod common;

use std::sync::Barrier;

use common::{decode_u64, encode_u64, open, open_quiet, owned, NO_MAINTENANCE};
use inmem_engine::{Bytes, Database, Error, Isolation, Options, TransactionOptions};

fn on_call(db: &Database) {
    db.put(b"oncall/x", encode_u64(1)).expect("put");
    db.put(b"oncall/y", encode_u64(1)).expect("put");
}

fn doctors_on_call(db: &Database) -> u64 {
    let snapshot = db.snapshot();
    let read = |key: &[u8]| decode_u64(snapshot.get(key).expect("get").as_ref()).expect("set");
    read(b"oncall/x") + read(b"oncall/y")
}

fn serializable() -> TransactionOptions {
    TransactionOptions::default().isolation(Isolation::Serializable)
}

fn snapshot_isolation() -> TransactionOptions {
    TransactionOptions::default().isolation(Isolation::Snapshot)
}

/// Both doctors check that the other is on call, then go off call themselves; returns the
/// outcomes of the two commits, in order.
fn both_go_off_call(
    db: &Database,
    options: TransactionOptions,
) -> (Result<inmem_engine::CommitVersion, Error>, Result<inmem_engine::CommitVersion, Error>) {
    let mut first = db.begin_with(options);
    let mut second = db.begin_with(options);
    for txn in [&mut first, &mut second] {
        let x = decode_u64(txn.get(b"oncall/x").expect("get").as_ref()).expect("set");
        let y = decode_u64(txn.get(b"oncall/y").expect("get").as_ref()).expect("set");
        assert_eq!(x + y, 2, "each sees both on call, so each may leave");
    }
    first.put(b"oncall/x", encode_u64(0)).expect("put");
    second.put(b"oncall/y", encode_u64(0)).expect("put");
    (first.commit(), second.commit())
}

#[test]
fn write_skew_commits_under_snapshot_isolation() {
    let db = open_quiet();
    on_call(&db);
    let (first, second) = both_go_off_call(&db, snapshot_isolation());
    assert!(first.is_ok() && second.is_ok(), "disjoint writes never conflict under SI");
    assert_eq!(doctors_on_call(&db), 0, "the invariant x + y >= 1 is broken: write skew");
    assert_eq!(db.stats().conflicts, 0);
}

#[test]
fn write_skew_is_refused_under_serializable_isolation() {
    let db = open(Options::default().isolation(Isolation::Serializable));
    on_call(&db);
    let (first, second) = both_go_off_call(&db, TransactionOptions::default());
    assert!(first.is_ok(), "the first committer wins");
    assert_eq!(
        second,
        Err(Error::Conflict { key: Bytes::from("oncall/x") }),
        "the second read x, which the first changed"
    );
    assert_eq!(doctors_on_call(&db), 1, "the invariant holds");
    let y = db.get(b"oncall/y").expect("get");
    assert_eq!(decode_u64(y.as_ref()), Some(1), "nothing of the refused commit is visible");
    assert_eq!(db.stats().conflicts, 1);
}

#[test]
fn begin_with_serializable_overrides_a_snapshot_isolation_default() {
    let db = open_quiet();
    assert_eq!(db.options().isolation, Isolation::Snapshot);
    assert_eq!(db.begin().isolation(), Isolation::Snapshot);
    assert_eq!(db.begin_with(serializable()).isolation(), Isolation::Serializable);
    on_call(&db);
    let (first, second) = both_go_off_call(&db, serializable());
    assert!(first.is_ok());
    assert!(matches!(second, Err(Error::Conflict { key }) if key == b"oncall/x"));
    assert_eq!(doctors_on_call(&db), 1);
}

#[test]
fn begin_with_snapshot_isolation_overrides_a_serializable_default() {
    let db = open(Options::default().isolation(Isolation::Serializable));
    assert_eq!(db.begin().isolation(), Isolation::Serializable);
    on_call(&db);
    let (first, second) = both_go_off_call(&db, snapshot_isolation());
    assert!(first.is_ok() && second.is_ok());
    assert_eq!(doctors_on_call(&db), 0);
}

/// A transaction counts who is on call (a prefix scan) and records the count; meanwhile
/// another adds a doctor under the prefix and commits.
fn count_while_a_doctor_joins(db: &Database, options: TransactionOptions) -> Result<(), Error> {
    on_call(db);
    let mut counter = db.begin_with(options);
    let counted = counter.prefix(b"oncall/").expect("scan").count() as u64;
    assert_eq!(counted, 2);
    db.put(b"oncall/z", encode_u64(1)).expect("the phantom commits");
    counter.put(b"count", encode_u64(counted)).expect("put");
    counter.commit().map(|_| ())
}

#[test]
fn a_serializable_prefix_scan_conflicts_with_an_insert_into_the_prefix() {
    let db = open_quiet();
    let outcome = count_while_a_doctor_joins(&db, serializable());
    assert_eq!(outcome, Err(Error::Conflict { key: Bytes::from("oncall/z") }), "a phantom");
    assert_eq!(db.get(b"count").expect("get"), None);
}

#[test]
fn a_snapshot_isolation_prefix_scan_does_not_conflict_with_an_insert_into_the_prefix() {
    let db = open_quiet();
    assert_eq!(count_while_a_doctor_joins(&db, snapshot_isolation()), Ok(()));
    assert_eq!(decode_u64(db.get(b"count").expect("get").as_ref()), Some(2), "a stale count");
}

#[test]
fn a_serializable_range_scan_conflicts_with_a_delete_in_the_range() {
    let db = open_quiet();
    on_call(&db);
    let mut txn = db.begin_with(serializable());
    let seen = owned(txn.range(&b"oncall/"[..]..&b"oncall0"[..]).expect("scan"));
    assert_eq!(seen.len(), 2);
    db.delete(b"oncall/y").expect("delete");
    txn.put(b"count", encode_u64(2)).expect("put");
    assert_eq!(txn.commit(), Err(Error::Conflict { key: Bytes::from("oncall/y") }));
}

#[test]
fn a_serializable_scan_protects_its_whole_range_even_when_stopped_early() {
    let db = open_quiet();
    on_call(&db);
    let mut txn = db.begin_with(serializable());
    let first = txn.prefix(b"oncall/").expect("scan").next();
    assert_eq!(first.map(|(key, _)| key), Some(Bytes::from("oncall/x")));
    db.put(b"oncall/zz", b"late").expect("put past where the scan stopped");
    txn.put(b"count", b"1").expect("put");
    assert!(matches!(txn.commit(), Err(Error::Conflict { key }) if key == b"oncall/zz"));
}

#[test]
fn a_serializable_scan_ignores_commits_just_outside_its_prefix() {
    let db = open_quiet();
    on_call(&db);
    let mut txn = db.begin_with(serializable());
    assert_eq!(txn.prefix(b"oncall/").expect("scan").count(), 2);
    db.put(b"oncall", b"just before the prefix").expect("put");
    db.put(b"oncall0", b"just after the prefix").expect("put");
    txn.put(b"count", encode_u64(2)).expect("put");
    assert!(txn.commit().is_ok());
}

#[test]
fn a_serializable_scan_of_an_inverted_range_protects_nothing() {
    let db = open_quiet();
    on_call(&db);
    let mut txn = db.begin_with(serializable());
    assert_eq!(txn.range(&b"oncall/y"[..]..&b"oncall/x"[..]).expect("scan").count(), 0);
    db.put(b"oncall/xa", b"between the inverted bounds").expect("put");
    txn.put(b"count", encode_u64(0)).expect("put");
    assert!(txn.commit().is_ok());
}

#[test]
fn a_serializable_point_read_of_an_absent_key_conflicts_with_its_insert() {
    let db = open_quiet();
    let mut txn = db.begin_with(serializable());
    assert_eq!(txn.get(b"lock").expect("get"), None);
    db.put(b"lock", b"taken").expect("put");
    txn.put(b"lock-holder", b"me").expect("put");
    assert_eq!(txn.commit(), Err(Error::Conflict { key: Bytes::from("lock") }));
}

#[test]
fn a_serializable_transaction_ignores_commits_to_keys_it_neither_read_nor_wrote() {
    let db = open_quiet();
    on_call(&db);
    let mut txn = db.begin_with(serializable());
    txn.get(b"oncall/x").expect("get");
    db.put(b"oncall/y", encode_u64(0)).expect("put");
    db.put(b"elsewhere", b"1").expect("put");
    txn.put(b"oncall/x", encode_u64(0)).expect("put");
    assert!(txn.commit().is_ok());
}

#[test]
fn a_read_only_serializable_transaction_commits_at_its_read_version() {
    let db = open_quiet();
    on_call(&db);
    let mut txn = db.begin_with(serializable());
    let read_version = txn.read_version();
    assert_eq!(txn.prefix(b"oncall/").expect("scan").count(), 2);
    txn.get(b"oncall/x").expect("get");
    db.put(b"oncall/x", encode_u64(0)).expect("a later commit to what it read");
    db.put(b"oncall/w", encode_u64(1)).expect("a later commit into what it scanned");
    assert_eq!(txn.commit(), Ok(read_version), "it saw one consistent state, so it commits");
    assert_eq!(db.stats().conflicts, 0);
}

#[test]
fn a_serializable_transaction_that_only_reads_its_own_writes_conflicts_only_on_them() {
    let db = open_quiet();
    let mut txn = db.begin_with(serializable());
    txn.put(b"mine", b"1").expect("put");
    assert_eq!(txn.get(b"mine").expect("get").as_deref(), Some(&b"1"[..]));
    db.put(b"mine", b"theirs").expect("put");
    assert_eq!(txn.commit(), Err(Error::Conflict { key: Bytes::from("mine") }));
}

/// Many rounds of the two doctors, on two threads, through `transaction_with` (which
/// retries conflicts): serializable isolation keeps the invariant in every round.
#[test]
fn concurrent_serializable_doctors_never_both_leave() {
    let db = open(Options::default().maintenance_interval(NO_MAINTENANCE));
    let barrier = Barrier::new(2);
    for _round in 0..200 {
        on_call(&db);
        std::thread::scope(|scope| {
            for own in [&b"oncall/x"[..], b"oncall/y"] {
                let (db, barrier) = (&db, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    db.transaction_with(serializable(), |txn| {
                        let x = decode_u64(txn.get(b"oncall/x")?.as_ref()).unwrap_or(0);
                        let y = decode_u64(txn.get(b"oncall/y")?.as_ref()).unwrap_or(0);
                        std::thread::yield_now();
                        if x + y >= 2 {
                            txn.put(own, encode_u64(0))?;
                        }
                        Ok(())
                    })
                    .expect("commits within the retry budget");
                });
            }
        });
        assert_eq!(doctors_on_call(&db), 1, "exactly one doctor left");
    }
}
