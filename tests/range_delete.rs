//! Range deletes: every key under a prefix deleted in one small commit, hidden from every
//! read at once, purged in bounded steps, and the same after a crash at any point.

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

mod common;

use common::{open_quiet, NO_MAINTENANCE};
use inmem_engine::{Database, Error, Isolation, Options, TransactionOptions, PURGE_KEYS_PER_STEP};

fn quiet() -> Options {
    Options::default().maintenance_interval(NO_MAINTENANCE)
}

/// Writes `count` keys `prefix/00000..` in transactions of a thousand.
fn fill(db: &Database, prefix: &str, count: u32) {
    for start in (0..count).step_by(1000) {
        db.transaction(|txn| {
            for i in start..(start + 1000).min(count) {
                txn.put(format!("{prefix}/{i:06}"), i.to_le_bytes())?;
            }
            Ok(())
        })
        .expect("fill");
    }
}

fn count(db: &Database, prefix: &str) -> usize {
    db.snapshot().prefix(prefix).count()
}

/// Runs purge steps and collection passes until no range delete is pending; returns the
/// keys purged. Bounded: a purge that never finishes fails the test.
fn purge_all(db: &Database) -> u64 {
    let mut purged = 0;
    for _ in 0..10_000 {
        if db.range_deletes().is_empty() {
            return purged;
        }
        purged += db.purge_range_deletes(16);
        db.collect_garbage();
    }
    panic!("range deletes still pending: {:?}", db.range_deletes());
}

#[test]
fn a_range_delete_hides_every_key_under_its_prefix_at_once_in_every_read() {
    let db = open_quiet();
    fill(&db, "doomed", 5000);
    fill(&db, "kept", 10);
    db.put("doome", "a neighbour, not under the prefix").expect("put");
    let before = db.snapshot();
    let version = db.delete_prefix("doomed/").expect("range delete");

    assert_eq!(count(&db, "doomed/"), 0, "a scan finds nothing");
    assert_eq!(db.snapshot().prefix("doomed/").rev().count(), 0, "nor a reverse one");
    assert_eq!(db.get("doomed/000042").expect("get"), None, "a point read finds nothing");
    assert!(db.history("doomed/000042", 10, None).expect("history").is_empty());
    assert_eq!(count(&db, "kept/"), 10);
    assert!(db.get("doome").expect("get").is_some());
    let mut txn = db.begin();
    assert_eq!(txn.get("doomed/000001").expect("get"), None);
    assert_eq!(txn.prefix("doomed/").expect("scan").count(), 0);
    drop(txn);

    assert_eq!(before.prefix("doomed/").count(), 5000, "an older snapshot still sees them");
    let pending = db.range_deletes();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].prefix.as_slice(), pending[0].version), (&b"doomed/"[..], version));

    db.put("doomed/000042", "written after the delete").expect("put");
    assert_eq!(count(&db, "doomed/"), 1, "a write after the delete is not touched");
}

#[test]
fn the_purge_frees_every_key_in_bounded_steps_and_retires_once_older_snapshots_go() {
    let db = open_quiet();
    fill(&db, "doomed", 10_000);
    fill(&db, "kept", 10);
    let keys_before = db.stats().keys;
    let old = db.snapshot();
    db.delete_prefix("doomed/").expect("range delete");

    let purged = db.purge_range_deletes(1);
    assert_eq!(purged, PURGE_KEYS_PER_STEP as u64, "one step purges one step's keys");
    assert!(!db.range_deletes()[0].walked);
    while !db.range_deletes()[0].walked {
        db.purge_range_deletes(1);
    }
    assert_eq!(db.range_deletes()[0].keys_purged, 10_000);
    db.collect_garbage();
    db.purge_range_deletes(1);
    assert_eq!(db.range_deletes().len(), 1, "the old snapshot keeps the range delete");
    assert_eq!(old.prefix("doomed/").count(), 10_000, "and still reads every key");
    drop(old);
    purge_all(&db);
    assert_eq!(db.stats().keys, keys_before - 10_000, "every key is gone from memory");
    assert_eq!(count(&db, "doomed/"), 0);
    assert_eq!(count(&db, "kept/"), 10);
}

#[test]
fn a_write_racing_with_a_range_delete_conflicts_instead_of_surviving_it() {
    let db = open_quiet();
    fill(&db, "run", 100);
    for isolation in [Isolation::Snapshot, Isolation::Serializable] {
        let mut writer = db.begin_with(TransactionOptions::default().isolation(isolation));
        writer.put("run/new", "made without seeing the delete").expect("put");
        db.delete_prefix("run/").expect("range delete");
        assert!(matches!(writer.commit(), Err(Error::Conflict { .. })), "{isolation:?}");
    }
    let mut reader =
        db.begin_with(TransactionOptions::default().isolation(Isolation::Serializable));
    reader.get("run/000001").expect("get");
    reader.put("elsewhere", "depends on the read").expect("put");
    db.delete_prefix("run/").expect("range delete");
    assert!(matches!(reader.commit(), Err(Error::Conflict { .. })), "a read of a deleted key");
    let mut scanner =
        db.begin_with(TransactionOptions::default().isolation(Isolation::Serializable));
    assert_eq!(scanner.range("ru".."rz").expect("scan").count(), 0);
    scanner.put("elsewhere", "depends on the scan").expect("put");
    db.delete_prefix("run/").expect("range delete");
    assert!(matches!(scanner.commit(), Err(Error::Conflict { .. })), "a scan overlapping it");
    let mut unrelated = db.begin();
    unrelated.put("other/key", "no overlap").expect("put");
    db.delete_prefix("run/").expect("range delete");
    unrelated.commit().expect("a transaction outside the prefix commits");
    assert_eq!(count(&db, "run/"), 0);
}

#[test]
fn a_transaction_sees_its_own_range_delete_and_keeps_what_it_writes_after_it() {
    let db = open_quiet();
    fill(&db, "p", 10);
    let mut txn = db.begin();
    txn.put("p/dropped", "written before the range delete").expect("put");
    txn.delete_prefix("p/").expect("range delete");
    txn.put("p/kept", "written after it").expect("put");
    assert_eq!(txn.get("p/000001").expect("get"), None);
    assert_eq!(txn.get("p/dropped").expect("get"), None);
    let seen: Vec<_> = txn.prefix("p/").expect("scan").map(|(key, _)| key).collect();
    assert_eq!(seen, ["p/kept".as_bytes()]);
    assert_eq!(txn.write_count(), 2);
    txn.commit().expect("commit");
    let keys: Vec<_> = db.snapshot().prefix("p/").map(|(key, _)| key).collect();
    assert_eq!(keys, ["p/kept".as_bytes()]);
}

#[test]
fn a_range_delete_survives_reopening_before_during_and_after_its_purge() {
    for stop_after_steps in [0, 3, usize::MAX] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(dir.path(), quiet()).expect("open");
        fill(&db, "doomed", 8000);
        fill(&db, "kept", 10);
        db.delete_prefix("doomed/").expect("range delete");
        db.purge_range_deletes(stop_after_steps);
        drop(db);

        let db = Database::open(dir.path(), quiet()).expect("reopen");
        assert_eq!(count(&db, "doomed/"), 0, "after {stop_after_steps} steps");
        assert_eq!(count(&db, "kept/"), 10);
        purge_all(&db);
        assert_eq!(db.stats().keys, 10, "after {stop_after_steps} steps, purged after reopening");
    }
}

#[test]
fn a_checkpoint_taken_while_a_range_delete_is_pending_leaves_its_keys_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path(), quiet()).expect("open");
    fill(&db, "doomed", 3000);
    fill(&db, "kept", 10);
    db.checkpoint().expect("a checkpoint from before the delete");
    db.delete_prefix("doomed/").expect("range delete");
    db.purge_range_deletes(1);
    db.checkpoint().expect("a checkpoint with the delete half purged");
    drop(db);

    let db = Database::open(dir.path(), quiet()).expect("reopen");
    assert_eq!(count(&db, "doomed/"), 0);
    assert_eq!(count(&db, "kept/"), 10);
    assert!(db.range_deletes().is_empty(), "the checkpoint holds no deleted key to purge");
    assert_eq!(db.stats().keys, 10);
}

#[test]
fn maintenance_finishes_a_range_delete_on_its_own() {
    let db = Database::with_options(
        Options::default().maintenance_interval(std::time::Duration::from_millis(5)),
    )
    .expect("open");
    fill(&db, "doomed", 20_000);
    db.delete_prefix("doomed/").expect("range delete");
    assert!(common::eventually(|| db.range_deletes().is_empty()), "{:?}", db.range_deletes());
    assert!(common::eventually(|| db.stats().keys == 0), "{} keys left", db.stats().keys);
}

#[test]
fn history_shows_no_version_a_retired_range_delete_deleted_whatever_the_retention_keeps() {
    use std::num::NonZeroUsize;
    let keep_two = inmem_engine::Retention::KeepLast(NonZeroUsize::new(2).expect("nonzero"));
    let db = Database::with_options(quiet().retention(keep_two)).expect("open");
    db.put("a", "before").expect("put");
    let deleted = db.delete_prefix("a").expect("range delete");
    let after = db.put("a", "after").expect("put");
    db.put("ab", "hidden, no newer version").expect("put");
    db.delete_prefix("ab").expect("range delete");
    purge_all(&db);
    let history = db.history("a", 10, None).expect("history");
    let versions: Vec<_> = history.iter().map(|record| record.version).collect();
    assert_eq!(versions, [after], "nothing from before the delete at {deleted:?}");
    assert!(db.history("ab", 10, None).expect("history").is_empty());
}

#[test]
fn readers_never_see_a_deleted_run_nor_part_of_one_while_runs_are_filled_deleted_and_purged() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const RUNS: u32 = 100;
    const KEYS: u32 = 500;
    let options = Options::default().maintenance_interval(std::time::Duration::from_millis(1));
    let db = Arc::new(Database::with_options(options).expect("open"));
    let done = Arc::new(AtomicBool::new(false));
    // Each deleted run's prefix with its delete's version, once the delete returned.
    let deleted = Arc::new(Mutex::new(BTreeMap::<Vec<u8>, u64>::new()));
    let writer = {
        let (db, done, deleted) = (Arc::clone(&db), Arc::clone(&done), Arc::clone(&deleted));
        std::thread::spawn(move || {
            for run in 0..RUNS {
                let prefix = format!("run{run:03}/");
                db.transaction(|txn| {
                    for i in 0..KEYS {
                        txn.put(format!("{prefix}{i:04}"), run.to_le_bytes())?;
                    }
                    Ok(())
                })
                .expect("fill");
                if run % 4 != 3 {
                    let version = db.delete_prefix(&prefix).expect("range delete");
                    deleted.lock().expect("lock").insert(prefix.into_bytes(), version.get());
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, done, deleted) = (Arc::clone(&db), Arc::clone(&done), Arc::clone(&deleted));
            std::thread::spawn(move || {
                let mut snapshots = 0u32;
                while !done.load(Ordering::Acquire) || snapshots == 0 {
                    let snapshot = db.snapshot();
                    let at = snapshot.version().get();
                    let mut counts = BTreeMap::new();
                    for (key, _) in snapshot.prefix("run") {
                        *counts.entry(key.as_slice()[..7].to_vec()).or_insert(0u32) += 1;
                    }
                    let deleted = deleted.lock().expect("lock");
                    for (prefix, n) in counts {
                        let name = String::from_utf8_lossy(&prefix);
                        assert_eq!(n, KEYS, "{name} partly visible at {at}");
                        let gone = deleted.get(&prefix).is_some_and(|&version| version <= at);
                        assert!(
                            !gone,
                            "{name} visible at {at}, deleted at {:?}",
                            deleted.get(&prefix)
                        );
                    }
                    snapshots += 1;
                }
                snapshots
            })
        })
        .collect();
    writer.join().expect("writer");
    for reader in readers {
        assert!(reader.join().expect("reader") > 0);
    }
    assert!(common::eventually(|| db.range_deletes().is_empty()), "{:?}", db.range_deletes());
    let kept = u64::from(KEYS) * (0..RUNS).filter(|run| run % 4 == 3).count() as u64;
    assert_eq!(db.snapshot().prefix("run").count() as u64, kept);
    assert!(common::eventually(|| {
        db.collect_garbage();
        db.stats().keys == kept
    }));
}
