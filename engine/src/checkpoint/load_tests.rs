//! A checkpoint linked by several threads: the keyspace it gives is exactly the one a single
//! thread gives (every key, version, value, expiry, tombstone, and what maintenance is
//! handed), and damage is reported where a single thread reports it: the first in the file.

use std::ops::{Bound, ControlFlow};
use std::time::Duration;

use inmem_wal::io::sim::SimIo;
use xxhash_rust::xxh3::Xxh3;

use super::reader::{read_checkpoint, PARALLEL_BYTES_MIN};
use super::tests::{contents, put_file};
use super::*;
use crate::bytes::Bytes;
use crate::stats::Counters;
use crate::sync::epoch;
use crate::{Database, Options, Retention};

/// One version as the chain holds it: version, value (`None`: a tombstone), expiry.
type Held = (u64, Option<Vec<u8>>, Option<u64>);

fn quiet() -> Options {
    Options::default().retention(Retention::KeepAll).maintenance_interval(Duration::from_secs(3600))
}

/// A database in memory whose checkpoint is several MiB in many blocks: keys of three
/// versions with values of varying sizes (so that blocks end at varying keys), every fifth
/// put with a time to live, every seventh key deleted last, one key whose versions make a
/// block of their own, and a range delete whose keys the checkpoint leaves out.
fn varied() -> Database {
    let db = Database::with_options(quiet()).unwrap_or_else(|error| panic!("open: {error}"));
    let hour = Duration::from_secs(3600);
    for round in 0u8..3 {
        for index in 0..6000u32 {
            let key = format!("key/{index:06}");
            let value = vec![round; 100 + (index as usize * 37) % 400];
            let written = if round == 2 && index % 7 == 0 {
                db.delete(&key)
            } else if index % 5 == 0 {
                db.put_with_ttl(&key, value, hour)
            } else {
                db.put(&key, value)
            };
            written.unwrap_or_else(|error| panic!("write: {error}"));
        }
    }
    db.put("key/003000-huge", vec![7u8; 300 << 10]).unwrap_or_else(|e| panic!("{e}"));
    db.put("key/003000-huge", vec![8u8; 200 << 10]).unwrap_or_else(|e| panic!("{e}"));
    db.delete_prefix("key/0012").unwrap_or_else(|e| panic!("{e}"));
    db
}

/// Every key of the skiplist with its versions, newest first; and whether the hash index
/// maps each hashed key to the skiplist's chain.
fn dump(shared: &Shared) -> Vec<(Bytes, Vec<Held>)> {
    let guard = epoch::pin();
    let index_guard = shared.index.guard();
    let mut keys = Vec::new();
    shared.index.scan((Bound::Unbounded, Bound::Unbounded), &guard, |key, chain| {
        let hashed = shared.index.get(key.as_slice(), &index_guard, &guard);
        assert!(hashed.is_some_and(|hashed| std::ptr::eq(hashed, chain)), "{key:?} hashed");
        let versions = chain
            .nodes(&guard)
            .map(|node| {
                let value = node.value().map(|value| value.as_slice().to_vec());
                (node.version(), value, node.has_expiry().then(|| node.expires_at_ms()))
            })
            .collect();
        keys.push((key.clone(), versions));
        ControlFlow::Continue(())
    });
    keys
}

/// What loading handed to maintenance and the counters.
fn handed(shared: &Shared) -> (Vec<(u64, u64, Bytes)>, usize, [u64; 3]) {
    let state = shared.sequencer.lock();
    let mut expiries: Vec<_> =
        state.expiries.iter().map(|e| (e.at_ms, e.version, e.chain.key().clone())).collect();
    expiries.sort();
    let counters = &shared.counters;
    let counts = [&counters.keys, &counters.versions, &counters.bytes].map(Counters::get);
    (expiries, state.gc_queue.len(), counts)
}

/// The checkpoint at `path` loaded into an empty keyspace by `threads` threads.
fn load(io: &dyn Io, path: &Path, threads: usize) -> (Database, Result<CheckpointInfo>) {
    let empty = Database::with_options(quiet()).unwrap_or_else(|e| panic!("{e}"));
    let read = read_checkpoint(io, Some((&empty.shared, threads)), path);
    crate::load::finish(&empty.shared, threads);
    (empty, read)
}

/// The checkpoint of `db`, on a simulated disk.
fn written(db: &Database) -> (Arc<SimIo>, CheckpointInfo) {
    let sim = SimIo::new();
    let checkpoints = Checkpoints::new(sim.clone(), PathBuf::from("/simulated/checkpoints"));
    let written = checkpoints
        .write(&db.shared, db.visible_version(), LogPosition::ZERO)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(written.bytes > PARALLEL_BYTES_MIN, "{written:?}");
    (sim, written)
}

#[test]
fn a_checkpoint_linked_by_several_threads_is_exactly_the_one_linked_by_one() {
    let db = varied();
    let (sim, written) = written(&db);
    let (one, read) = load(sim.as_ref(), &written.path, 1);
    let info = read.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((info.keys, info.versions), (written.keys, written.versions));
    let reference = dump(&one.shared);
    assert_eq!(reference.len() as u64, written.keys);
    // Keys under the range delete are left out; every other key is as the database has it.
    assert!(reference.iter().all(|(key, _)| !key.as_slice().starts_with(b"key/0012")));
    assert_eq!(
        reference,
        dump(&db.shared)
            .into_iter()
            .filter(|(key, _)| { !key.as_slice().starts_with(b"key/0012") })
            .collect::<Vec<_>>()
    );
    let (expiries, _, counts) = handed(&one.shared);
    assert!(expiries.len() > 1000, "{}", expiries.len());
    assert_eq!(counts[..2], [written.keys, written.versions]);
    for threads in [2, 3, 4, 16] {
        let (many, read) = load(sim.as_ref(), &written.path, threads);
        assert_eq!(read.unwrap_or_else(|e| panic!("{e}")), info, "{threads} threads");
        assert!(dump(&many.shared) == reference, "{threads} threads: another keyspace");
        assert_eq!(handed(&many.shared), handed(&one.shared), "{threads} threads");
    }
}

/// The file offsets of the blocks of a checkpoint's `bytes`, end block excluded.
fn blocks(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 48;
    loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        if len == 0 {
            return offsets;
        }
        offsets.push(at);
        at += 8 + len + 8;
    }
}

/// Gives the block at `at` a first key with no versions, and a checksum that matches: damage
/// only decoding finds.
fn undecodable(bytes: &mut [u8], at: usize, version: u64) {
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
    let key_len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap_or_default());
    let count = at + 12 + key_len as usize;
    bytes[count..count + 4].fill(0);
    let mut hasher = Xxh3::with_seed(version);
    hasher.update(&bytes[at..at + 8 + len]);
    bytes[at + 8 + len..at + 16 + len].copy_from_slice(&hasher.digest().to_le_bytes());
}

#[test]
fn damage_found_by_several_threads_is_reported_where_one_thread_finds_it() {
    let db = varied();
    let (sim, written) = written(&db);
    let whole = contents(sim.as_ref(), &written.path);
    let offsets = blocks(&whole);
    assert!(offsets.len() > 64, "{} blocks", offsets.len());
    let version = written.version.get();
    // (block, damage) pairs, the earlier first: decoding and checksum damage in either
    // order, in blocks handed to the same thread and to different ones, and near the end.
    type Damage = fn(&mut Vec<u8>, usize, u64);
    let decode: Damage = |bytes, at, version| undecodable(bytes, at, version);
    let checksum: Damage = |bytes, at, _| bytes[at + 20] ^= 0xFF;
    let last = offsets.len() - 1;
    let cases: [(usize, Damage, usize, Damage); 5] = [
        (3, decode, 7, checksum),
        (3, checksum, 7, decode),
        (5, decode, 6, decode),
        (40, decode, 41, checksum),
        (last, decode, last, decode),
    ];
    for (case, (first, first_damage, second, second_damage)) in cases.into_iter().enumerate() {
        let mut bytes = whole.clone();
        first_damage(&mut bytes, offsets[first], version);
        second_damage(&mut bytes, offsets[second], version);
        let path = written.path.with_file_name(format!("damaged-{case}.ckpt"));
        put_file(sim.as_ref(), &path, &bytes);
        let (_, alone) = load(sim.as_ref(), &path, 1);
        let Err(Error::CorruptCheckpoint { offset, reason, .. }) = alone else {
            panic!("case {case}: {alone:?}");
        };
        assert_eq!(offset, offsets[first] as u64, "case {case}: {reason}");
        for threads in [2, 3, 4] {
            let (_, together) = load(sim.as_ref(), &path, threads);
            match together {
                Err(Error::CorruptCheckpoint { offset: found, reason: why, path: named }) => {
                    assert_eq!((found, why), (offset, reason), "case {case}, {threads} threads");
                    assert_eq!(named, path);
                }
                other => panic!("case {case}, {threads} threads: {other:?}"),
            }
        }
    }
}
