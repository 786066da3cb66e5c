//! Time to live: expiring values read as absent at once; the reaper turns them into
//! tombstones through the commit path, yields to user writes, and never makes a user
//! transaction conflict.
//!
//! Waiting for an expiry is a poll (`common::eventually`) on a short TTL, so no test relies
//! on how long a sleep really lasts. What must happen *before* expiry is checked in an
//! `unstalled` scenario: if the thread was descheduled for longer than the TTL before the
//! checks were done, the scenario is run again on a fresh database rather than failing or
//! passing vacuously. The databases run without the background thread unless a test is
//! about it, so reaping happens exactly where a test asks for it.

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{eventually, open, open_quiet, owned};
use inmem_engine::{Bytes, Database, Durability, Isolation, Options, TransactionOptions};

/// Short enough to wait for, long enough that the reads right after the write come first.
const SHORT_TTL: Duration = Duration::from_millis(40);
const LONG_TTL: Duration = Duration::from_secs(3600);

/// Whether a value put with [`SHORT_TTL`] at or after `start` is surely still live now
/// (with a margin for the clock's millisecond resolution).
fn surely_live(start: Instant) -> bool {
    start.elapsed() + Duration::from_millis(5) < SHORT_TTL
}

/// Runs `scenario` (given the time just before its first TTL write) until one run reports
/// that it was not stalled past the TTL before its time-critical reads were done.
fn unstalled(mut scenario: impl FnMut(Instant) -> bool) {
    let done = (0..20).any(|_| scenario(Instant::now()));
    assert!(done, "every attempt was stalled for longer than the TTL");
}

fn wait_until_expired(db: &Database, key: &[u8]) {
    let expired = eventually(|| db.get(key).expect("get").is_none());
    assert!(expired, "{key:?} never expired");
}

#[test]
fn a_value_put_with_a_ttl_is_readable_before_expiry_and_absent_after() {
    unstalled(|start| {
        let db = open_quiet();
        db.put(b"k/stays", b"forever").expect("put");
        db.put_with_ttl(b"k/goes", b"briefly", SHORT_TTL).expect("put_with_ttl");
        let got = db.get(b"k/goes").expect("get");
        let scanned = owned(db.snapshot().prefix(b"k/"));
        let by_txn = db.begin().get(b"k/goes").expect("get");
        if !surely_live(start) {
            return false;
        }
        assert_eq!(got.as_deref(), Some(&b"briefly"[..]));
        assert_eq!(scanned.len(), 2);
        assert_eq!(by_txn.as_deref(), Some(&b"briefly"[..]));
        check_expired(&db);
        true
    });
}

fn check_expired(db: &Database) {
    wait_until_expired(db, b"k/goes");
    let snapshot = db.snapshot();
    assert_eq!(snapshot.get(b"k/goes").expect("get"), None);
    let keys: Vec<Bytes> = snapshot.prefix(b"k/").map(|(key, _)| key).collect();
    assert_eq!(keys, [Bytes::from("k/stays")], "scans skip the expired value");
    assert_eq!(snapshot.prefix(b"k/").rev().count(), 1, "reverse scans too");
    assert_eq!(snapshot.range(&b"k/a"[..]..=&b"k/z"[..]).count(), 1);
    let mut txn = db.begin();
    assert_eq!(txn.get(b"k/goes").expect("get"), None, "a transaction begun after expiry");
    assert_eq!(txn.prefix(b"k/").expect("scan").count(), 1);
    let history = db.history(b"k/goes", 10, None).expect("history");
    assert_eq!(history.len(), 1, "not reaped yet: the expired version is still there");
    assert!(history[0].expires_at_ms.is_some());
}

#[test]
fn a_zero_ttl_expires_at_once() {
    let db = open_quiet();
    db.put_with_ttl(b"k", b"v", Duration::ZERO).expect("put_with_ttl");
    assert_eq!(db.get(b"k").expect("get"), None);
}

#[test]
fn a_ttl_put_in_a_transaction_expires_like_a_one_shot_one() {
    let db = open_quiet();
    let mut txn = db.begin();
    txn.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
    txn.put_with_ttl(b"long", b"v", LONG_TTL).expect("put_with_ttl");
    txn.put(b"plain", b"v").expect("put");
    assert_eq!(txn.get(b"long").expect("get").as_deref(), Some(&b"v"[..]), "own writes");
    assert_eq!(txn.prefix(b"").expect("scan").count(), 3);
    txn.commit().expect("commit");
    assert!(db.get(b"long").expect("get").is_some());
    wait_until_expired(&db, b"k");
    assert_eq!(db.snapshot().prefix(b"").count(), 2);
    let history = db.history(b"long", 1, None).expect("history");
    let expires_at_ms = history[0].expires_at_ms.expect("an expiry");
    assert!(
        expires_at_ms > db.history(b"k", 1, None).expect("history")[0].expires_at_ms.expect("set")
    );
    assert_eq!(db.history(b"plain", 1, None).expect("history")[0].expires_at_ms, None);
}

#[test]
fn a_snapshot_taken_before_expiry_keeps_reading_the_value() {
    unstalled(|start| {
        let db = open_quiet();
        db.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
        let before = db.snapshot();
        let mut txn = db.begin();
        if !surely_live(start) {
            return false;
        }
        wait_until_expired(&db, b"k");
        assert_eq!(db.reap_expired(), 1);
        db.collect_garbage();
        let read = before.get(b"k").expect("get");
        assert_eq!(read.as_deref(), Some(&b"v"[..]), "its clock is fixed at creation");
        assert_eq!(owned(before.prefix(b"")).len(), 1, "in scans too");
        let read = txn.get(b"k").expect("get");
        assert_eq!(read.as_deref(), Some(&b"v"[..]), "a transaction's clock too");
        assert_eq!(txn.prefix(b"").expect("scan").count(), 1);
        assert_eq!(db.snapshot().get(b"k").expect("get"), None, "a new snapshot's is not");
        assert_eq!(db.stats().keys, 1, "the collector keeps what the old snapshot reads");
        drop((before, txn));
        db.collect_garbage();
        assert_eq!(db.stats().keys, 0, "and forgets the key once it is closed");
        true
    });
}

#[test]
fn reaping_writes_a_tombstone_marked_as_reaped() {
    unstalled(|start| {
        let db = open_quiet();
        db.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
        db.put_with_ttl(b"other", b"v", LONG_TTL).expect("put_with_ttl");
        let early = db.reap_expired();
        if !surely_live(start) {
            return false;
        }
        assert_eq!(early, 0, "nothing has expired yet");
        check_reaped(&db);
        true
    });
}

fn check_reaped(db: &Database) {
    wait_until_expired(db, b"k");
    let commits = db.stats().commits;
    assert_eq!(db.reap_expired(), 1);
    let stats = db.stats();
    assert_eq!(stats.expirations_reaped, 1);
    assert_eq!(stats.commits, commits + 1, "the reaper commits like any writer");
    let history = db.history(b"k", 10, None).expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].value.as_ref(), history[0].reaped), (None, true));
    assert_eq!(history[1].value.as_deref(), Some(&b"v"[..]));
    assert!(!history[1].reaped);
    assert_eq!(db.reap_expired(), 0, "a key is reaped once");
    assert_eq!(db.get(b"other").expect("get").as_deref(), Some(&b"v"[..]));
}

#[test]
fn reaped_keys_are_forgotten_by_the_collector() {
    let db = open_quiet();
    db.put(b"keep", b"v").expect("put");
    db.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
    wait_until_expired(&db, b"k");
    assert_eq!(db.stats().keys, 2);
    assert_eq!(db.reap_expired(), 1);
    db.collect_garbage();
    let stats = db.stats();
    assert_eq!(stats.keys, 1);
    assert_eq!(stats.gc.keys_removed, 1);
    assert_eq!(stats.live_versions, 1);
}

#[test]
fn the_reaper_yields_to_a_user_write_made_before_it_runs() {
    let db = open_quiet();
    db.put_with_ttl(b"rewritten", b"old", SHORT_TTL).expect("put_with_ttl");
    db.put(b"rewritten", b"new").expect("put without a ttl");
    db.put_with_ttl(b"deleted", b"old", SHORT_TTL).expect("put_with_ttl");
    db.delete(b"deleted").expect("delete");
    db.put_with_ttl(b"extended", b"old", SHORT_TTL).expect("put_with_ttl");
    db.put_with_ttl(b"extended", b"new", LONG_TTL).expect("put_with_ttl");
    db.put_with_ttl(b"probe", b"v", SHORT_TTL).expect("put_with_ttl");
    wait_until_expired(&db, b"probe");
    assert_eq!(db.reap_expired(), 1, "only the probe: every other key was written again");
    assert_eq!(db.get(b"rewritten").expect("get").as_deref(), Some(&b"new"[..]));
    assert_eq!(db.get(b"extended").expect("get").as_deref(), Some(&b"new"[..]));
    assert_eq!(db.get(b"deleted").expect("get"), None);
    for key in [&b"rewritten"[..], b"deleted", b"extended"] {
        let history = db.history(key, 10, None).expect("history");
        assert!(history.iter().all(|record| !record.reaped), "{key:?} was reaped: {history:?}");
    }
}

/// A transaction that began before the reap, read the key while it was live, and writes it.
fn write_after_reap(isolation: Isolation) {
    unstalled(|start| {
        let db = open_quiet();
        db.put(b"other", b"v").expect("put");
        db.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
        let mut txn = db.begin_with(TransactionOptions::default().isolation(isolation));
        if !surely_live(start) {
            return false;
        }
        assert!(txn.get(b"k").expect("get").is_some(), "read while live");
        assert_eq!(txn.prefix(b"").expect("scan").count(), 2);
        commit_after_reap(&db, txn);
        true
    });
}

fn commit_after_reap(db: &Database, mut txn: inmem_engine::Transaction<'_>) {
    wait_until_expired(db, b"k");
    assert_eq!(db.reap_expired(), 1);
    txn.put(b"k", b"renewed").expect("put");
    txn.put(b"other", b"w").expect("put");
    assert!(txn.commit().is_ok(), "the reaper's tombstone is no conflict");
    assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"renewed"[..]));
    assert_eq!(db.stats().conflicts, 0);
}

#[test]
fn the_reaper_never_makes_a_snapshot_isolation_transaction_conflict() {
    write_after_reap(Isolation::Snapshot);
}

#[test]
fn the_reaper_never_makes_a_serializable_transaction_conflict() {
    write_after_reap(Isolation::Serializable);
}

#[test]
fn a_user_write_after_the_ttl_put_still_conflicts() {
    let db = open_quiet();
    let mut txn = db.begin();
    db.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
    txn.put(b"k", b"mine").expect("put");
    assert!(txn.commit().is_err_and(|error| error.is_conflict()), "the TTL put is a user write");
}

#[test]
fn the_background_thread_reaps_without_being_asked() {
    let db = open(Options::default().maintenance_interval(Duration::from_millis(10)));
    db.put_with_ttl(b"k", b"v", SHORT_TTL).expect("put_with_ttl");
    let reaped = eventually(|| {
        let history = db.history(b"k", 1, None).expect("history");
        history.first().is_some_and(|newest| newest.reaped) || db.stats().keys == 0
    });
    assert!(reaped, "no background reaping: {:?}", db.stats());
    assert_eq!(db.stats().expirations_reaped, 1);
    assert_eq!(db.get(b"k").expect("get"), None);
}

/// Writers keep putting values that expire at once and then replacing them, through
/// transactions that read the expired value, while another thread reaps in a loop: the
/// reaper must never erase the replacement, and never make a transaction conflict.
#[test]
fn the_reaper_racing_with_writers_never_erases_a_newer_value_nor_causes_a_conflict() {
    const KEYS_PER_WRITER: u64 = 16;
    const ROUNDS: u64 = 100;
    let db = open_quiet();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                db.reap_expired();
            }
        });
        let writers: Vec<_> = (0..2u64)
            .map(|writer| {
                let db = &db;
                scope.spawn(move || {
                    // At least ROUNDS rounds, and on until the reaper has raced with them.
                    let mut round = 0;
                    while round < ROUNDS || db.stats().expirations_reaped == 0 {
                        round += 1;
                        let isolation = if round % 2 == 0 {
                            Isolation::Snapshot
                        } else {
                            Isolation::Serializable
                        };
                        for index in 0..KEYS_PER_WRITER {
                            let key = format!("w{writer}/{index:02}");
                            let value = format!("{key} round {round}");
                            db.put_with_ttl(&key, b"expired", Duration::ZERO).expect("put");
                            let mut txn =
                                db.begin_with(TransactionOptions::default().isolation(isolation));
                            assert_eq!(txn.get(&key).expect("get"), None, "expired at once");
                            std::thread::yield_now();
                            txn.put(&key, &value).expect("put");
                            txn.commit().expect("the reaper never makes a commit conflict");
                            let read = db.get(&key).expect("get");
                            assert_eq!(read.as_deref(), Some(value.as_bytes()), "never reaped");
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("a writer finishes");
        }
        done.store(true, Ordering::Release);
    });
    let stats = db.stats();
    assert_eq!(stats.conflicts, 0);
    assert!(stats.expirations_reaped > 0, "the reaper raced with the writers");
    assert_eq!(db.snapshot().prefix(b"w").count() as u64, 2 * KEYS_PER_WRITER);
    for record in db.history(b"w0/00", 1, None).expect("history") {
        assert!(!record.reaped && record.expires_at_ms.is_none(), "the newest is the user's");
    }
}

#[test]
fn the_reaper_writes_a_slice_of_its_commits_to_the_log_at_once() {
    let durabilities = [Durability::Sync, Durability::Buffered { interval: LONG_TTL }];
    for durability in durabilities {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = Options::default()
            .durability(durability)
            .maintenance_interval(LONG_TTL)
            .checkpoint_log_bytes(0);
        let db = Database::open(dir.path(), options).expect("opens");
        let keys: Vec<[u8; 8]> = (0..1_000_u64).map(u64::to_le_bytes).collect();
        db.transaction(|txn| {
            for key in &keys {
                txn.put_with_ttl(key, b"v", SHORT_TTL)?;
            }
            Ok(())
        })
        .expect("commits");
        for key in &keys {
            wait_until_expired(&db, key);
        }
        let before = db.stats().log.expect("a log");
        assert_eq!(db.reap_expired(), 1_000);
        let after = db.stats().log.expect("a log");
        // 1,000 tombstones, 16 to a commit, all in one slice: 63 records, one write.
        assert_eq!(after.appends - before.appends, 63, "{durability:?}");
        assert_eq!(after.batches - before.batches, 1, "{durability:?}: one write per slice");
        let syncs = after.fsyncs - before.fsyncs;
        match durability {
            Durability::Sync => assert_eq!(syncs, 1, "one sync per slice"),
            _ => assert_eq!(syncs, 0, "a Buffered log syncs with its interval"),
        }
    }
}
