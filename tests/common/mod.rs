//! Helpers shared by the engine's integration tests.
//!
//! Every test file includes this module, and each uses only part of it.

#![allow(dead_code, clippy::expect_used)]

use std::time::{Duration, Instant};

use inmem_engine::{Bytes, CommitVersion, Database, Options};

/// A maintenance interval long enough that the background thread never runs during a test:
/// garbage collection and reaping then happen only where a test calls them, so what it
/// asserts is deterministic.
pub const NO_MAINTENANCE: Duration = Duration::from_secs(3600);

/// How long a liveness check waits for something the engine does on its own (the background
/// thread, say) before declaring that it never happens. Generous: the machine is shared.
pub const LIVENESS_DEADLINE: Duration = Duration::from_secs(5);

/// A database with `options`, which must be valid.
pub fn open(options: Options) -> Database {
    Database::with_options(options).expect("the test's options are valid")
}

/// A database with default options but no background maintenance.
pub fn open_quiet() -> Database {
    open(Options::default().maintenance_interval(NO_MAINTENANCE))
}

/// Polls `condition` every 10 ms until it holds or [`LIVENESS_DEADLINE`] passes; returns
/// whether it held. A liveness check, not a timing assertion.
pub fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + LIVENESS_DEADLINE;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Owned `(key, value)` pairs, for comparisons with a model.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Turns an iterator of engine entries into owned pairs.
pub fn owned(entries: impl Iterator<Item = (Bytes, Bytes)>) -> Entries {
    entries.map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
}

/// A `u64` stored as 8 little-endian bytes.
pub fn encode_u64(value: u64) -> [u8; 8] {
    value.to_le_bytes()
}

/// The `u64` a value holds, or `None` if it is absent or not 8 bytes.
pub fn decode_u64(value: Option<&Bytes>) -> Option<u64> {
    let bytes: [u8; 8] = value?.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Which end each step of a scan takes from: `pattern` bit `i` set means step `i` calls
/// `next_back`, clear means `next`. Collects what each end produced, the front's items in
/// order and the back's in the order taken.
pub fn drain_mixed<I>(mut iter: I, pattern: u64) -> (Entries, Entries)
where
    I: DoubleEndedIterator<Item = (Bytes, Bytes)>,
{
    let mut front = Vec::new();
    let mut back = Vec::new();
    for step in 0.. {
        let from_back = step < 64 && pattern & (1 << step) != 0;
        let item = if from_back { iter.next_back() } else { iter.next() };
        match item {
            Some((key, value)) if from_back => back.push((key.to_vec(), value.to_vec())),
            Some((key, value)) => front.push((key.to_vec(), value.to_vec())),
            None => break,
        }
    }
    assert_eq!(iter.next(), None, "an exhausted iterator stays exhausted at the front");
    assert_eq!(iter.next_back(), None, "an exhausted iterator stays exhausted at the back");
    (front, back)
}

/// What [`drain_mixed`] must produce over `expected` (in key order) with `pattern`.
pub fn expected_mixed(expected: &[(Vec<u8>, Vec<u8>)], pattern: u64) -> (Entries, Entries) {
    let mut low = 0;
    let mut high = expected.len();
    let mut front = Vec::new();
    let mut back = Vec::new();
    let mut step = 0;
    while low < high {
        let from_back = step < 64 && pattern & (1 << step) != 0;
        if from_back {
            high -= 1;
            back.push(expected[high].clone());
        } else {
            front.push(expected[low].clone());
            low += 1;
        }
        step += 1;
    }
    (front, back)
}

/// Puts from `writers` threads, `per_writer` keys each (key `writer * 10_000 + index`, as
/// little-endian bytes; value `value(index)`), while `meanwhile` runs on this thread;
/// returns every key with the version its put was acknowledged at.
pub fn put_concurrently(
    db: &Database,
    writers: u32,
    per_writer: u32,
    value: impl Fn(u32) -> Vec<u8> + Sync,
    meanwhile: impl FnOnce(),
) -> Vec<(u32, CommitVersion)> {
    std::thread::scope(|scope| {
        let value = &value;
        let workers: Vec<_> = (0..writers)
            .map(|writer| {
                scope.spawn(move || {
                    (0..per_writer)
                        .map(|index| {
                            let key = writer * 10_000 + index;
                            (key, db.put(key.to_le_bytes(), value(index)).expect("put"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        meanwhile();
        workers.into_iter().flat_map(|worker| worker.join().expect("writer")).collect()
    })
}

/// Asserts that each key's newest version is the one its put was acknowledged at.
pub fn assert_newest_versions(db: &Database, acknowledged: &[(u32, CommitVersion)]) {
    for &(key, version) in acknowledged {
        let newest = db.history(key.to_le_bytes(), 1, None).expect("history");
        assert_eq!(newest.first().map(|record| record.version), Some(version), "key {key}");
    }
}
