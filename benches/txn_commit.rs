//! Commits on a prefilled in-memory database (100,000 keys of 16 bytes, values of 100
//! bytes), each overwriting existing keys picked in a fixed pseudo-random order:
//!
//! - `txn_commit/keys=100000/writes=1` and `.../writes=8`: begin, 1 or 8 puts, commit
//!   (snapshot isolation: validation, versioning, linking, publication);
//! - `txn_commit/keys=100000/blind_put`: `Database::put`, a one-key commit without
//!   validation;
//! - `txn_commit/snapshot/create_drop`: taking and releasing a snapshot, the fixed cost
//!   every transaction and one-shot read pays.
//!
//! The database runs with its default retention and maintenance, so the background collector
//! prunes the overwritten versions while the bench runs, as it would in production. The
//! benches run from the least to the most garbage they make: versions the collector retires
//! faster than the epoch frees them are freed later by whichever thread pins, so a bench run
//! after `writes=8` pays for its garbage (docs/benchmarks.md, "Micro benchmarks", has the
//! figures).

#![allow(
    clippy::expect_used,
    reason = "a bench that cannot set up its database has nothing to measure"
)]
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use criterion::{black_box, criterion_group, criterion_main, Criterion};

mod common;

const KEYS: u64 = 100_000;
/// Length of the precomputed key order (a power of two, for masking).
const ORDER_LEN: usize = 1 << 16;
const SEED: u64 = 0x5EED_0002;

/// Key `i`: a fixed 8-byte tag, then `i` (16 bytes in all).
fn key(i: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(b"txnbench");
    key[8..].copy_from_slice(&i.to_le_bytes());
    key
}

/// Existing keys in a fixed pseudo-random order.
fn key_order() -> Vec<[u8; 16]> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    (0..ORDER_LEN).map(|_| key(rng.u64(0..KEYS))).collect()
}

fn bench_commits(c: &mut Criterion) {
    let db = common::prefilled((0..KEYS).map(key));
    let keys = key_order();
    let value = [0x5Au8; common::VALUE_BYTES];
    let mut group = c.benchmark_group("txn_commit");

    group.bench_function("snapshot/create_drop", |b| {
        b.iter(|| black_box(db.snapshot().version()));
    });

    let mut next = 0usize;
    group.bench_function(format!("keys={KEYS}/blind_put"), |b| {
        b.iter(|| {
            let key = &keys[next & (ORDER_LEN - 1)];
            next = next.wrapping_add(1);
            black_box(db.put(black_box(key), value).expect("put"))
        });
    });

    for writes in [1usize, 8] {
        let mut next = 0usize;
        group.bench_function(format!("keys={KEYS}/writes={writes}"), |b| {
            b.iter(|| {
                let mut txn = db.begin();
                for _ in 0..writes {
                    txn.put(keys[next & (ORDER_LEN - 1)], value).expect("put");
                    next = next.wrapping_add(1);
                }
                black_box(txn.commit().expect("a lone committer never conflicts"))
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_commits
}
criterion_main!(benches);
