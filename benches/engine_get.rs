//! Point reads on a prefilled in-memory database (keys of 16 bytes, values of 100 bytes), in
//! a fixed pseudo-random key order:
//!
//! - `engine_get/keys=N/snapshot/hit`: `Snapshot::get` of existing keys through one snapshot
//!   held across iterations (the hash-index lookup and chain read alone);
//! - `engine_get/keys=N/database/hit`: `Database::get`, the one-shot read that registers and
//!   releases a reader on every call;
//! - `engine_get/keys=N/snapshot/miss` and `.../database/miss`: the same for keys that were
//!   never written.
//!
//! With 1,000 keys everything stays in cache and the figures show the engine's own path;
//! 100,000 keys (some 25 MiB with the indexes) about fill a 32 MiB L3, so hits pay misses to
//! memory and swing with whatever else shares the cache.

#![allow(
    clippy::expect_used,
    reason = "a bench that cannot set up its database has nothing to measure"
)]
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use criterion::{black_box, criterion_group, criterion_main, Criterion};

mod common;

/// The database sizes measured.
const KEY_COUNTS: [u64; 2] = [1_000, 100_000];
/// Length of the precomputed key order (a power of two, for masking).
const ORDER_LEN: usize = 1 << 16;
const SEED: u64 = 0x5EED_0001;

/// Key `i`: a fixed 8-byte tag, then `i` (16 bytes in all).
fn key(i: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(b"getbench");
    key[8..].copy_from_slice(&i.to_le_bytes());
    key
}

/// Keys in a fixed pseudo-random order, from `offset..offset + keys`: offset 0 gives
/// written keys (hits), offset `keys` keys never written (misses).
fn key_order(keys: u64, offset: u64) -> Vec<[u8; 16]> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    (0..ORDER_LEN).map(|_| key(offset + rng.u64(0..keys))).collect()
}

fn bench_gets(c: &mut Criterion) {
    for keys in KEY_COUNTS {
        bench_gets_of(c, keys);
    }
}

fn bench_gets_of(c: &mut Criterion, keys: u64) {
    let db = common::prefilled((0..keys).map(key));
    let hits = key_order(keys, 0);
    let misses = key_order(keys, keys);
    let mut group = c.benchmark_group("engine_get");

    let snapshot = db.snapshot();
    for (name, order) in [("hit", &hits), ("miss", &misses)] {
        let expected = name == "hit";
        assert_eq!(snapshot.get(order[0]).expect("get").is_some(), expected);
        let mut next = 0usize;
        group.bench_function(format!("keys={keys}/snapshot/{name}"), |b| {
            b.iter(|| {
                let key = &order[next & (ORDER_LEN - 1)];
                next = next.wrapping_add(1);
                black_box(snapshot.get(black_box(key)).expect("get"))
            });
        });
    }
    drop(snapshot);

    for (name, order) in [("hit", &hits), ("miss", &misses)] {
        let mut next = 0usize;
        group.bench_function(format!("keys={keys}/database/{name}"), |b| {
            b.iter(|| {
                let key = &order[next & (ORDER_LEN - 1)];
                next = next.wrapping_add(1);
                black_box(db.get(black_box(key)).expect("get"))
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_gets
}
criterion_main!(benches);
