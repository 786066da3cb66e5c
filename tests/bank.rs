//! Concurrent bank transfers: the classic test of transactional isolation under contention.
//!
//! Eight threads move money between 64 accounts, each transfer a `Database::transaction`
//! that reads two balances and writes both; a checker thread meanwhile takes snapshots and
//! checks that each one sees exactly the constant total, through a prefix scan and through
//! point reads. A lost update, a torn commit, or a snapshot that sees part of a commit would
//! change the total.
//!
//! Invariants checked:
//! - every snapshot (and every read-only transaction) sees the exact total, and every
//!   balance is within `0..=total`;
//! - at the end, the total is unchanged, `stats().commits` counts the set-up and every
//!   transfer exactly once, and `stats().conflicts` counts exactly the attempts that were
//!   retried.

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{decode_u64, encode_u64, open};
use inmem_engine::{Database, Isolation, Options, RetryPolicy, Snapshot};

const ACCOUNTS: u64 = 64;
const INITIAL_BALANCE: u64 = 1_000;
const TOTAL: u64 = ACCOUNTS * INITIAL_BALANCE;
const THREADS: u64 = 8;
const PREFIX: &[u8] = b"acct/";

fn account(index: u64) -> Vec<u8> {
    format!("acct/{index:03}").into_bytes()
}

fn bank(isolation: Isolation) -> Database {
    let retry = RetryPolicy {
        attempts_max: 1_000,
        backoff_base: Duration::from_micros(1),
        backoff_max: Duration::from_micros(200),
    };
    let db = open(Options::default().isolation(isolation).retry(retry));
    db.transaction(|txn| {
        for index in 0..ACCOUNTS {
            txn.put(account(index), encode_u64(INITIAL_BALANCE))?;
        }
        Ok(())
    })
    .expect("opening the accounts commits");
    db
}

/// The balances a snapshot sees, through a prefix scan, checked against its point reads.
fn audit(snapshot: &Snapshot<'_>) -> u64 {
    let mut scanned = 0;
    let mut total = 0;
    for (key, value) in snapshot.prefix(PREFIX) {
        assert_eq!(key.as_slice(), account(scanned).as_slice(), "accounts in key order");
        let balance = decode_u64(Some(&value)).expect("a balance is 8 bytes");
        assert!(balance <= TOTAL, "balance {balance} of {key:?} exceeds the total");
        total += balance;
        scanned += 1;
    }
    assert_eq!(scanned, ACCOUNTS, "the scan at {} sees every account", snapshot.version());
    let by_gets: u64 = (0..ACCOUNTS)
        .map(|index| {
            let value = snapshot.get(account(index)).expect("a key within limits");
            decode_u64(value.as_ref()).expect("every account exists")
        })
        .sum();
    assert_eq!(total, by_gets, "scan and point reads of one snapshot agree");
    total
}

/// One transfer of up to `amount` (never overdrawing) from `from` to `to`; returns how many
/// times the closure ran.
fn transfer(db: &Database, from: u64, to: u64, amount: u64, widen: bool) -> u64 {
    let mut runs = 0;
    db.transaction(|txn| {
        runs += 1;
        let source = decode_u64(txn.get(account(from))?.as_ref()).expect("account exists");
        let target = decode_u64(txn.get(account(to))?.as_ref()).expect("account exists");
        if widen {
            // Give the other threads a chance to commit between our reads and our commit,
            // so that conflicts happen on two cores as they do on many.
            std::thread::yield_now();
        }
        let moved = amount.min(source);
        txn.put(account(from), encode_u64(source - moved))?;
        txn.put(account(to), encode_u64(target + moved))?;
        Ok(())
    })
    .expect("a transfer commits within 1000 attempts");
    runs
}

fn run_transfers(isolation: Isolation, transfers_per_thread: u64) {
    let db = bank(isolation);
    let runs = AtomicU64::new(0);
    let audits = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| loop {
            let finished = done.load(Ordering::Acquire);
            assert_eq!(audit(&db.snapshot()), TOTAL, "a snapshot sees the exact total");
            let mut txn = db.begin();
            let by_txn: u64 = txn
                .prefix(PREFIX)
                .expect("a read-only scan")
                .map(|(_, value)| decode_u64(Some(&value)).expect("8 bytes"))
                .sum();
            assert_eq!(by_txn, TOTAL, "a transaction sees the exact total");
            audits.fetch_add(1, Ordering::Relaxed);
            if finished {
                break;
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (db, runs) = (&db, &runs);
                scope.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(thread);
                    for round in 0..transfers_per_thread {
                        let from = rng.u64(0..ACCOUNTS);
                        let to = (from + rng.u64(1..ACCOUNTS)) % ACCOUNTS;
                        let amount = rng.u64(1..=100);
                        let ran = transfer(db, from, to, amount, round % 4 == 0);
                        runs.fetch_add(ran, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a worker finishes");
        }
        done.store(true, Ordering::Release);
    });

    let transfers = THREADS * transfers_per_thread;
    assert_eq!(audit(&db.snapshot()), TOTAL, "the total is unchanged at the end");
    let stats = db.stats();
    assert_eq!(stats.commits, 1 + transfers, "the set-up and each transfer commit once");
    let retried = runs.load(Ordering::Relaxed) - transfers;
    assert_eq!(stats.conflicts, retried, "every retried attempt was a counted conflict");
    assert!(stats.conflicts > 0, "contended transfers conflict");
    assert_eq!(stats.keys, ACCOUNTS);
    assert!(audits.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.open_snapshots, 0, "every snapshot and transaction was released");
}

#[test]
fn concurrent_transfers_under_snapshot_isolation_keep_the_total_in_every_snapshot() {
    run_transfers(Isolation::Snapshot, 12_500);
}

#[test]
fn concurrent_transfers_under_serializable_isolation_keep_the_total_in_every_snapshot() {
    run_transfers(Isolation::Serializable, 12_500);
}
