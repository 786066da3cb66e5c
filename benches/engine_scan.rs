//! Prefix scans on a prefilled in-memory database of 100,000 keys laid out so that each
//! 8-byte prefix holds exactly 100 keys (key `i` is `i / 100` as a big-endian u64, then the
//! byte `i % 100`; values of 100 bytes), prefixes picked in a fixed pseudo-random order:
//!
//! - `engine_scan/keys=100000/prefix=100/forward` and `.../reverse`: reading all 100 entries
//!   of a prefix through a snapshot held across iterations, front to back and back to front;
//! - `engine_scan/keys=100000/prefix=100/txn_own_writes=4`: the same forward scan through a
//!   transaction that has written 4 keys under the prefix (two overwrites, a delete and a new
//!   key), so the scan merges its own writes over its snapshot. The transaction is built
//!   outside the measurement.

#![allow(
    clippy::expect_used,
    reason = "a bench that cannot set up its database has nothing to measure"
)]
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use inmem_engine::Database;

mod common;

const KEYS: u64 = 100_000;
const KEYS_PER_PREFIX: u64 = 100;
const PREFIXES: u64 = KEYS / KEYS_PER_PREFIX;
/// Length of the precomputed prefix order (a power of two, for masking).
const ORDER_LEN: usize = 1 << 12;
/// Transactions built per batch for the transaction scan: few enough that every one's
/// snapshot gets a registration slot of its own.
const TXNS_PER_BATCH: u64 = 64;
const SEED: u64 = 0x5EED_0003;

const _: () = assert!(KEYS_PER_PREFIX < 256, "the last key byte numbers the keys of a prefix");
const _: () = assert!(KEYS % KEYS_PER_PREFIX == 0);

/// The 8-byte prefix `p`: big-endian, so that byte order is numeric order.
#[expect(clippy::big_endian_bytes, reason = "keys are laid out so byte order is numeric order")]
fn prefix(p: u64) -> [u8; 8] {
    p.to_be_bytes()
}

/// Key number `n` (below 256) under prefix `p`.
fn key(p: u64, n: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&prefix(p));
    key[8] = n;
    key
}

/// Prefix numbers in a fixed pseudo-random order.
fn prefix_order() -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    (0..ORDER_LEN).map(|_| rng.u64(0..PREFIXES)).collect()
}

fn bench_snapshot_scans(c: &mut Criterion, db: &Database, order: &[u64]) {
    let mut group = c.benchmark_group("engine_scan");
    let snapshot = db.snapshot();
    assert_eq!(snapshot.prefix(prefix(order[0])).count() as u64, KEYS_PER_PREFIX);
    assert_eq!(snapshot.prefix(prefix(order[0])).rev().count() as u64, KEYS_PER_PREFIX);

    let mut next = 0usize;
    group.bench_function(format!("keys={KEYS}/prefix={KEYS_PER_PREFIX}/forward"), |b| {
        b.iter(|| {
            let p = prefix(order[next & (ORDER_LEN - 1)]);
            next = next.wrapping_add(1);
            for entry in snapshot.prefix(black_box(p)) {
                black_box(entry);
            }
        });
    });
    let mut next = 0usize;
    group.bench_function(format!("keys={KEYS}/prefix={KEYS_PER_PREFIX}/reverse"), |b| {
        b.iter(|| {
            let p = prefix(order[next & (ORDER_LEN - 1)]);
            next = next.wrapping_add(1);
            for entry in snapshot.prefix(black_box(p)).rev() {
                black_box(entry);
            }
        });
    });
    group.finish();
}

fn bench_txn_scan(c: &mut Criterion, db: &Database, order: &[u64]) {
    let mut group = c.benchmark_group("engine_scan");
    let value = [0x5Au8; common::VALUE_BYTES];
    let mut next = 0usize;
    let mut begin_with_own_writes = || {
        let p = order[next & (ORDER_LEN - 1)];
        next = next.wrapping_add(1);
        let mut txn = db.begin();
        txn.put(key(p, 10), value).expect("put");
        txn.put(key(p, 50), value).expect("put");
        txn.delete(key(p, 90)).expect("delete");
        txn.put(key(p, 200), value).expect("put");
        (txn, prefix(p))
    };
    let (mut txn, p) = begin_with_own_writes();
    let seen = txn.prefix(p).expect("scan").count() as u64;
    assert_eq!(seen, KEYS_PER_PREFIX, "one key deleted, one added");
    drop(txn);

    group.bench_function(format!("keys={KEYS}/prefix={KEYS_PER_PREFIX}/txn_own_writes=4"), |b| {
        b.iter_batched_ref(
            &mut begin_with_own_writes,
            |(txn, p)| {
                for entry in txn.prefix(black_box(*p)).expect("scan") {
                    black_box(entry);
                }
            },
            BatchSize::NumIterations(TXNS_PER_BATCH),
        );
    });
    group.finish();
}

fn bench_scans(c: &mut Criterion) {
    let db = common::prefilled((0..KEYS).map(|i| {
        let n = u8::try_from(i % KEYS_PER_PREFIX).expect("below 256");
        key(i / KEYS_PER_PREFIX, n)
    }));
    let order = prefix_order();
    bench_snapshot_scans(c, &db, &order);
    bench_txn_scan(c, &db, &order);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_scans
}
criterion_main!(benches);
