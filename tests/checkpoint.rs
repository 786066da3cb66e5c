//! Checkpoints: written while the database works, recovered from with the log after them,
//! damaged ones reported, and taken in the background as the log grows.

#![allow(clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_newest_versions, eventually, put_concurrently, NO_MAINTENANCE};
use inmem_engine::{Bytes, Database, Durability, Error, Options, RecoveryMode, Retention};
use inmem_wal::io::fault::{Fault, FaultIo, Op, ENOSPC};
use inmem_wal::io::sim::{CrashMode, SimIo};
use inmem_wal::io::sync::SyncIo;
use inmem_wal::io::Io;
use inmem_wal::WalOptions;

fn quiet() -> Options {
    Options::default().maintenance_interval(NO_MAINTENANCE).checkpoint_log_bytes(0)
}

/// Small segments, so that a few hundred commits fill several.
fn small_segments() -> WalOptions {
    WalOptions::default().segment_size(64 << 10).max_record_bytes(16 << 10)
}

fn contents(db: &Database) -> Vec<(Bytes, Bytes)> {
    db.snapshot().prefix(b"").collect()
}

fn checkpoint_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .map(|entries| entries.map(|entry| entry.expect("entry").path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Closes `db`, flips the byte at `offset` of its `newest` checkpoint, reopens it through
/// `open`, and checks that the open passed the damaged checkpoint over for `older` (one
/// damaged checkpoint reported) and replayed the log since it: the same version and
/// contents. Returns the reopened database.
fn reopen_past_a_damaged_newest_checkpoint(
    db: Database,
    newest: &inmem_engine::CheckpointReport,
    offset: usize,
    older: &inmem_engine::CheckpointReport,
    open: impl Fn() -> inmem_engine::Result<Database>,
) -> Database {
    let before = contents(&db);
    let version = db.visible_version();
    drop(db);
    let mut bytes = std::fs::read(&newest.path).expect("read");
    bytes[offset] ^= 1;
    std::fs::write(&newest.path, &bytes).expect("write");

    let db = open().expect("opens from the older checkpoint and the log since it");
    assert_eq!(db.visible_version(), version);
    assert_eq!(contents(&db), before);
    let recovery = db.recovery().expect("a database on a directory");
    assert_eq!(recovery.checkpoint.as_ref(), Some(&older.path));
    assert_eq!(recovery.damaged_checkpoints.len(), 1);
    db
}

#[test]
fn a_reopen_recovers_from_the_checkpoint_and_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Database::open_with_log_options(dir.path(), quiet(), small_segments());
    let db = open().expect("open");
    for index in 0u32..2000 {
        db.put(index.to_le_bytes(), [index as u8; 64]).expect("put");
    }
    let report = db.checkpoint().expect("checkpoint");
    assert_eq!(report.version, db.visible_version());
    assert_eq!(report.keys, 2000);
    assert_eq!(report.segments_deleted, 0, "the first keeps the log: no older checkpoint");
    assert_eq!(checkpoint_files(dir.path()), std::slice::from_ref(&report.path));
    for index in 0u32..100 {
        db.delete(index.to_le_bytes()).expect("delete");
    }
    db.put(b"after", b"the checkpoint").expect("put");
    let before = contents(&db);
    let version = db.visible_version();
    drop(db);

    let db = open().expect("reopen");
    assert_eq!(db.visible_version(), version);
    assert_eq!(contents(&db), before);
    let second = db.checkpoint().expect("a second checkpoint");
    assert!(second.segments_deleted >= 1, "the log before the first is deleted: {second:?}");
    assert_eq!(
        checkpoint_files(dir.path()),
        [report.path.clone(), second.path.clone()],
        "the previous one stays"
    );
    let between = db.put(b"next", b"0").expect("put");
    let third = db.checkpoint().expect("a third checkpoint");
    assert_eq!(third.version, between);
    assert_eq!(checkpoint_files(dir.path()), [second.path, third.path], "the oldest goes");
    drop(db);
    let db = open().expect("reopen from the third");
    let mut expected = before;
    expected.push((Bytes::from("next"), Bytes::from("0")));
    expected.sort();
    assert_eq!(contents(&db), expected);
    assert_eq!(db.put(b"next", b"1").expect("put").get(), version.get() + 2);
}

#[test]
fn history_ttls_and_tombstones_are_kept_in_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let options = quiet().retention(Retention::KeepAll);
    let db = Database::open(dir.path(), options.clone()).expect("open");
    let v1 = db.put(b"k", b"one").expect("put");
    db.put(b"k", b"two").expect("put");
    db.delete(b"k").expect("delete");
    db.put_with_ttl(b"ttl", b"v", Duration::from_secs(3600)).expect("put");
    db.put_with_ttl(b"gone", b"v", Duration::from_millis(1)).expect("put");
    std::thread::sleep(Duration::from_millis(5));
    db.reap_expired();
    let history = db.history(b"k", 10, None).expect("history");
    let ttl = db.history(b"ttl", 10, None).expect("history");
    let reaped = db.history(b"gone", 10, None).expect("history");
    db.checkpoint().expect("checkpoint");
    drop(db);
    // Only the checkpoint holds them now: the log's segments before it may be gone.
    let db = Database::open(dir.path(), options).expect("reopen");
    assert_eq!(db.history(b"k", 10, None).expect("history"), history);
    assert_eq!(db.history(b"ttl", 10, None).expect("history"), ttl);
    assert_eq!(db.history(b"gone", 10, None).expect("history"), reaped);
    let at_v1 = db.snapshot_at(v1).expect("kept");
    assert_eq!(at_v1.get(b"k").expect("get").as_deref(), Some(&b"one"[..]));
}

#[test]
fn checkpoints_taken_during_concurrent_commits_lose_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Database::open_with_log_options(dir.path(), quiet(), small_segments());
    let db = open().expect("open");
    let acknowledged = put_concurrently(
        &db,
        4,
        300,
        |_| vec![3u8; 100],
        || {
            for _ in 0..5 {
                db.checkpoint().expect("checkpoint while writers write");
            }
        },
    );
    let version = db.visible_version();
    drop(db);
    let db = open().expect("reopen");
    assert_eq!(db.visible_version(), version);
    assert_newest_versions(&db, &acknowledged);
}

#[test]
fn a_damaged_only_checkpoint_is_refused_by_strict_naming_its_file_and_offset_and_passed_over_for_a_whole_log(
) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    for index in 0u32..100 {
        db.put(index.to_le_bytes(), b"value").expect("put");
    }
    let report = db.checkpoint().expect("checkpoint");
    drop(db);
    let mut bytes = std::fs::read(&report.path).expect("read");
    bytes[48 + 8 + 20] ^= 1; // inside the first block's entries
    std::fs::write(&report.path, &bytes).expect("write");
    let strict = || Database::open(dir.path(), quiet().recovery(RecoveryMode::Strict));
    let error = strict().expect_err("Strict refuses a damaged checkpoint");
    match &error {
        Error::CorruptCheckpoint { path, offset, .. } => {
            assert_eq!(path, &report.path);
            assert_eq!(*offset, 48, "the first block");
        }
        other => panic!("expected CorruptCheckpoint, got {other}"),
    }
    // The log still holds every commit from position 0 (the only checkpoint deleted none of
    // it): the default mode replays it alone and reports the damaged checkpoint.
    let db = Database::open(dir.path(), quiet()).expect("the log alone holds everything");
    assert_eq!(db.visible_version().get(), 100);
    let recovery = db.recovery().expect("durable").clone();
    assert_eq!(recovery.checkpoint, None);
    assert_eq!(recovery.damaged_checkpoints, [error]);
    drop(db);
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&report.path, &bytes).expect("write");
    let error = strict().expect_err("refused");
    assert!(matches!(error, Error::CorruptCheckpoint { .. }), "{error}");
}

#[test]
fn the_maintenance_thread_checkpoints_as_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .maintenance_interval(Duration::from_millis(5))
        .checkpoint_log_bytes(16 << 10);
    let db = Database::open(dir.path(), options).expect("open");
    for index in 0u32..500 {
        db.put(index.to_le_bytes(), [1u8; 100]).expect("put");
    }
    assert!(eventually(|| db.stats().background_checkpoints >= 1), "{:?}", db.stats());
    assert_eq!(db.stats().background_checkpoint_failures, 0);
    assert!(!checkpoint_files(dir.path()).is_empty());
}

#[test]
fn a_damaged_newest_checkpoint_is_passed_over_for_the_one_before_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Database::open_with_log_options(dir.path(), quiet(), small_segments());
    let db = open().expect("open");
    for index in 0u32..500 {
        db.put(index.to_le_bytes(), [1u8; 64]).expect("put");
    }
    let older = db.checkpoint().expect("checkpoint");
    for index in 0u32..500 {
        db.put(index.to_le_bytes(), [2u8; 64]).expect("put");
    }
    let newest = db.checkpoint().expect("checkpoint");
    db.put(b"after", b"both").expect("put");
    let db = reopen_past_a_damaged_newest_checkpoint(db, &newest, 60, &older, open);
    let recovery = db.recovery().expect("a database on a directory");
    assert_eq!(recovery.checkpoint_version, older.version);
    assert!(matches!(
        &recovery.damaged_checkpoints[0],
        Error::CorruptCheckpoint { path, .. } if path == &newest.path
    ));
}

#[test]
fn a_checkpoint_left_unfinished_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    db.put(b"k", b"v").expect("put");
    let report = db.checkpoint().expect("checkpoint");
    drop(db);
    let unfinished = dir.path().join("checkpoints").join("checkpoint-00000000000000000009.tmp");
    std::fs::write(&unfinished, b"half a checkpoint").expect("write");
    let db = Database::open(dir.path(), quiet()).expect("open");
    assert!(!unfinished.exists());
    assert_eq!(checkpoint_files(dir.path()), [report.path]);
    assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_database_without_a_log_has_no_checkpoints() {
    let db = Database::in_memory().expect("open");
    assert!(matches!(db.checkpoint(), Err(Error::InvalidOption { .. })));
}

#[test]
fn a_checkpoint_failing_on_a_full_disk_names_its_temporary_file_and_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultIo::new(Arc::new(SyncIo::new()));
    let io: Arc<dyn Io> = faults.clone();
    let open = |log: WalOptions| Database::open_with_log_options(dir.path(), quiet(), log);
    let db = open(WalOptions::default().io(io)).expect("open");
    for index in 0u32..200 {
        db.put(index.to_le_bytes(), [5u8; 100]).expect("put");
    }
    let first = db.checkpoint().expect("a checkpoint before the disk fills");
    db.put(b"between", b"checkpoints").expect("put");
    // No commit runs meanwhile: the next write is the checkpoint's.
    faults.inject(Fault::error(Op::Write, ENOSPC));
    let error = db.checkpoint().expect_err("the disk is full");
    assert_eq!(faults.fired(Op::Write), 1, "{error}");
    let temporary =
        first.path.with_file_name(format!("checkpoint-{:020}.tmp", db.visible_version().get()));
    match &error {
        Error::Io { context, path, source } => {
            assert_eq!((*context, path), ("writing a checkpoint", &temporary));
            assert_eq!(source.io_error().raw_os_error(), Some(ENOSPC));
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(error.to_string().contains(&temporary.display().to_string()), "{error}");
    assert_eq!(error.io_kind(), Some(std::io::ErrorKind::StorageFull));
    assert_eq!(checkpoint_files(dir.path()), [first.path], "no temporary file left");

    // Not poisoned: it commits, checkpoints again, and reopens with everything.
    db.put(b"after", b"the full disk").expect("commits after the failed checkpoint");
    let before = contents(&db);
    let version = db.visible_version();
    drop(db);
    let db = open(WalOptions::default()).expect("reopen");
    assert_eq!(db.visible_version(), version);
    assert_eq!(contents(&db), before);
    assert_eq!(before.len(), 202);
    db.checkpoint().expect("a checkpoint once there is room");
}

#[test]
fn a_buffered_databases_checkpoint_is_durable_with_the_log_it_needs_when_it_returns() {
    // The log and the checkpoints on a simulated disk; a power failure right after the
    // checkpoint returns (unsynced writes lost) must leave a directory that opens with the
    // checkpoint's contents: the log durable up to where the checkpoint says replay starts.
    let root = tempfile::tempdir().unwrap();
    let sim = SimIo::new();
    let options = quiet().durability(Durability::Buffered { interval: Duration::from_secs(3600) });
    let log = WalOptions::default().io(sim.clone());
    let db = Database::open_with_log_options(root.path(), options.clone(), log).expect("open");
    for index in 0u32..100 {
        db.put(index.to_le_bytes(), [6u8; 50]).expect("put");
    }
    let report = db.checkpoint().expect("checkpoint");
    assert_eq!(report.version, db.visible_version());
    let expected = contents(&db);
    let crashed = sim.crash_image(sim.events(), CrashMode::DropUnsynced);
    drop(db);

    let target = tempfile::tempdir().unwrap();
    crashed.write_to(root.path(), target.path()).expect("image");
    let db = Database::open(target.path(), options)
        .unwrap_or_else(|error| panic!("the image after the checkpoint does not open: {error}"));
    assert_eq!(db.visible_version(), report.version);
    assert_eq!(contents(&db), expected);
}

#[test]
fn a_log_whose_start_a_checkpoint_no_longer_covers_is_an_inconsistent_log_naming_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Database::open_with_log_options(dir.path(), quiet(), small_segments());
    let db = open().expect("open");
    for round in 0u8..2 {
        for index in 0u32..1000 {
            db.put(index.to_le_bytes(), [round; 64]).expect("put");
        }
        db.checkpoint().expect("checkpoint");
    }
    let second = db.checkpoint().expect("a checkpoint that deletes the log's first segments");
    assert!(second.segments_deleted >= 1, "{second:?}");
    drop(db);
    // Without the checkpoints, replay would have to start at the log's beginning, deleted.
    for path in checkpoint_files(dir.path()) {
        std::fs::remove_file(path).expect("remove");
    }
    let error = open().expect_err("the log's start is gone");
    // The log's own error, typed: naming the log's directory (or its first segment).
    let wal = dir.path().join("wal");
    match &error {
        Error::Log { source: inmem_wal::Error::Inconsistent { path, .. }, .. } => {
            assert!(path.starts_with(&wal), "{error}");
        }
        other => panic!("expected the log's Inconsistent, got {other:?}"),
    }
    assert!(error.to_string().contains(&wal.display().to_string()), "{error}");
}

/// Every key the database ever wrote under `keys`, with all its versions, newest first.
fn histories(db: &Database, keys: &[String]) -> Vec<Vec<inmem_engine::VersionRecord>> {
    keys.iter().map(|key| db.history(key, 8, None).expect("history")).collect()
}

#[test]
fn a_checkpoint_of_many_blocks_recovers_every_version_from_every_thread() {
    // Several MiB of checkpoint, so that open links its blocks from every core: keys of
    // three versions with values of varying sizes (blocks end at varying keys), every fifth
    // put with a time to live, every seventh key deleted last, a key whose versions fill a
    // block of their own, a range delete, and commits in the log after the checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let options = quiet().retention(Retention::KeepAll);
    let db = Database::open(dir.path(), options.clone()).expect("open");
    let keys: Vec<String> = (0..6000u32).map(|index| format!("key/{index:06}")).collect();
    let hour = Duration::from_secs(3600);
    for round in 0u8..3 {
        for (index, key) in keys.iter().enumerate() {
            let value = vec![round; 100 + (index * 37) % 400];
            if round == 2 && index % 7 == 0 {
                db.delete(key).expect("delete");
            } else if index % 5 == 0 {
                db.put_with_ttl(key, value, hour).expect("put");
            } else {
                db.put(key, value).expect("put");
            }
        }
    }
    db.put("key/003000-huge", vec![7u8; 300 << 10]).expect("put");
    db.put("key/003000-huge", vec![8u8; 200 << 10]).expect("put");
    db.delete_prefix("key/0012").expect("range delete");
    let report = db.checkpoint().expect("checkpoint");
    assert!(report.bytes > 4 << 20, "{report:?}");
    db.put("key/000001", b"after the checkpoint").expect("put");
    db.delete("key/000002").expect("delete");
    let mut all = keys.clone();
    all.push("key/003000-huge".into());
    let before = (contents(&db), histories(&db, &all), db.visible_version());
    drop(db);

    let db = Database::open(dir.path(), options).expect("reopen");
    assert_eq!(db.recovery().and_then(|r| r.checkpoint.clone()), Some(report.path));
    assert_eq!((contents(&db), histories(&db, &all), db.visible_version()), before);
    // The range delete's keys are not in the checkpoint; the log after it made none.
    assert_eq!(db.stats().keys, report.keys);
    assert!(db.get("key/001234").expect("get").is_none(), "under the range delete");
    assert_eq!(db.get("key/000005").expect("get").map(|v| v.len()), Some(100 + 5 * 37));
}

#[test]
fn many_keys_reopened_are_each_found_by_a_point_read_at_their_newest_version() {
    // Enough keys that open sorts them by where they land in the hash index before
    // inserting them (engine/src/index.rs, `hash_loaded`), from the checkpoint's threads
    // and from the log's replay: keys only in the checkpoint, keys in both (the log's
    // version is the newer), keys deleted in the log, and keys only in the log.
    let dir = tempfile::tempdir().unwrap();
    let options = quiet().durability(Durability::Buffered { interval: Duration::from_millis(5) });
    let db = Database::open(dir.path(), options.clone()).expect("open");
    let key = |n: u32| format!("key/{:08}", n.wrapping_mul(2_654_435_761));
    let checkpointed = 80_000u32;
    for n in 0..checkpointed {
        db.put(key(n), n.to_le_bytes()).expect("put");
    }
    db.checkpoint().expect("checkpoint");
    for n in (0..checkpointed).step_by(3) {
        db.put(key(n), (n + 1).to_le_bytes()).expect("overwrite");
    }
    for n in (1..checkpointed).step_by(7) {
        db.delete(key(n)).expect("delete");
    }
    let logged = 60_000u32;
    for n in checkpointed..checkpointed + logged {
        db.put(key(n), n.to_le_bytes()).expect("put");
    }
    let version = db.visible_version();
    drop(db);

    let db = Database::open(dir.path(), options).expect("reopen");
    assert_eq!(db.visible_version(), version);
    let expected = |n: u32| {
        if n < checkpointed && n % 7 == 1 {
            None
        } else if n < checkpointed && n % 3 == 0 {
            Some((n + 1).to_le_bytes().to_vec())
        } else {
            Some(n.to_le_bytes().to_vec())
        }
    };
    let wrong: Vec<u32> = (0..checkpointed + logged)
        .filter(|&n| db.get(key(n)).expect("get").map(|v| v.to_vec()) != expected(n))
        .collect();
    assert!(wrong.is_empty(), "{} keys read wrong, the first {:?}", wrong.len(), wrong.first());
    assert!(db.get(b"key/absent").expect("get").is_none());
    let live = (0..checkpointed + logged).filter(|&n| expected(n).is_some()).count();
    assert_eq!(db.snapshot().prefix(b"key/").count(), live);
}

#[test]
fn a_damaged_newest_checkpoint_whose_log_survey_ran_beside_its_load_is_passed_over_too() {
    // Checkpoints of several MiB, so that open surveys the log while it loads each (from
    // where the checkpoint's header says replay starts): the newest, damaged past its
    // header, fails to load, and its survey is set aside for one from the older's position.
    let dir = tempfile::tempdir().unwrap();
    let options = quiet().durability(Durability::Buffered { interval: Duration::from_millis(5) });
    // Small segments: the second checkpoint deletes those before the first's position,
    // so only a survey from where the loaded checkpoint's replay starts accepts the log.
    let open = || Database::open_with_log_options(dir.path(), options.clone(), small_segments());
    let db = open().expect("open");
    for index in 0u32..50_000 {
        db.put(index.to_le_bytes(), [1u8; 100]).expect("put");
    }
    let older = db.checkpoint().expect("checkpoint");
    assert!(older.bytes > 4 << 20, "{older:?}");
    for index in 0u32..50_000 {
        db.put(index.to_le_bytes(), [2u8; 100]).expect("put");
    }
    let newest = db.checkpoint().expect("checkpoint");
    assert!(newest.segments_deleted >= 1, "{newest:?}");
    db.put(b"after", b"both").expect("put");
    let middle = usize::try_from(std::fs::metadata(&newest.path).expect("stat").len() / 2)
        .expect("a test checkpoint's size fits");
    let db = reopen_past_a_damaged_newest_checkpoint(db, &newest, middle, &older, open);
    let recovery = db.recovery().expect("a database on a directory");
    assert!(recovery.log.is_clean(), "{:?}", recovery.log);
}
