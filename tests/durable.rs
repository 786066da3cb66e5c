//! Databases on a directory: commits through the write-ahead log, recovery on reopen, the
//! directory lock, durability modes, and failed log I/O.

#![allow(clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_newest_versions, put_concurrently, NO_MAINTENANCE};
use inmem_engine::{
    Bytes, Database, Durability, Error, Limit, Limits, Options, RecoveryMode, Retention,
    TransactionOptions,
};
use inmem_wal::io::fault::{Effect, Fault, FaultIo, Op};
use inmem_wal::io::sync::SyncIo;
use inmem_wal::io::Io;
use inmem_wal::WalOptions;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn quiet() -> Options {
    Options::default().maintenance_interval(NO_MAINTENANCE)
}

fn value_of(db: &Database, key: &[u8]) -> Option<Vec<u8>> {
    db.get(key).expect("get").map(|value| value.to_vec())
}

/// Every key and value of the visible state.
fn contents(db: &Database) -> Vec<(Bytes, Bytes)> {
    db.snapshot().prefix(b"").collect()
}

#[test]
fn a_database_reopens_with_its_commits_after_close_and_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    db.put(b"a", b"1").expect("put");
    db.transaction(|txn| {
        txn.put(b"b", b"2")?;
        txn.put(b"c", b"3")?;
        Ok(())
    })
    .expect("txn");
    let last = db.delete(b"a").expect("delete");
    let before = contents(&db);
    db.close().expect("close");

    let db = Database::open(dir.path(), quiet()).expect("reopen after close");
    assert_eq!(db.visible_version(), last);
    assert_eq!(contents(&db), before);
    let more = db.put(b"d", b"4").expect("put after reopen");
    assert_eq!(more.get(), last.get() + 1, "versions go on after the recovered one");
    drop(db);

    let db = Database::open(dir.path(), quiet()).expect("reopen after drop");
    assert_eq!(db.visible_version(), more);
    assert_eq!(value_of(&db, b"d"), Some(b"4".to_vec()));
    assert_eq!(value_of(&db, b"a"), None);
}

#[test]
fn an_empty_and_a_100_key_database_open_without_reading_their_segment_s_end() {
    // The log's frontier slots bound how far recovery reads the newest segment (64 MiB):
    // at most two frontier steps past its header here (the wal's own tests check a log
    // left as a crash leaves it, too).
    let bound = inmem_wal::format::SEGMENT_HEADER_LEN + 2 * inmem_wal::format::FRONTIER_STEP;
    for keys in [0u32, 100] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), quiet()).expect("open");
        for key in 0..keys {
            db.put(key.to_le_bytes(), [7u8; 100]).expect("put");
        }
        db.close().expect("close");
        let segment = dir.path().join("wal").join("00000000000000000000.wal");
        assert_eq!(std::fs::metadata(&segment).expect("a segment").len(), 64 << 20);
        let io = FaultIo::new(Arc::new(SyncIo::new()));
        let log = WalOptions::default().io(io.clone());
        let db = Database::open_with_log_options(dir.path(), quiet(), log).expect("reopen");
        assert_eq!(contents(&db).len(), keys as usize);
        let read = io.read_end(&segment).expect("the segment was read");
        assert!(read <= bound, "{keys} keys: read up to {read}");
        db.close().expect("close");
    }
}

#[test]
fn history_ttls_and_tombstones_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let options = quiet().retention(Retention::KeepAll);
    let db = Database::open(dir.path(), options.clone()).expect("open");
    let v1 = db.put(b"k", b"one").expect("put");
    db.put(b"k", b"two").expect("put");
    let deleted = db.delete(b"k").expect("delete");
    db.put_with_ttl(b"lives", b"long", Duration::from_secs(3600)).expect("ttl put");
    db.put_with_ttl(b"dies", b"soon", Duration::from_millis(1)).expect("ttl put");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(db.reap_expired(), 1, "the short-lived value expired and was reaped");
    let history_before = db.history(b"k", 10, None).expect("history");
    let ttl_before = db.history(b"lives", 1, None).expect("history");
    let reaped_before = db.history(b"dies", 10, None).expect("history");
    drop(db);

    let db = Database::open(dir.path(), options).expect("reopen");
    assert_eq!(db.history(b"k", 10, None).expect("history"), history_before);
    assert_eq!(db.history(b"k", 10, None).expect("history")[0].version, deleted);
    assert_eq!(
        db.snapshot_at(v1).expect("kept").get(b"k").expect("get").as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(db.history(b"lives", 1, None).expect("history"), ttl_before);
    assert!(ttl_before[0].expires_at_ms.is_some());
    assert_eq!(value_of(&db, b"lives"), Some(b"long".to_vec()));
    let reaped_after = db.history(b"dies", 10, None).expect("history");
    assert_eq!(reaped_after, reaped_before);
    assert!(reaped_after[0].reaped, "the reaper's tombstone is recovered as the reaper's");
    assert_eq!(value_of(&db, b"dies"), None);
}

#[test]
fn a_directory_is_opened_by_one_handle_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    let second = Database::open(dir.path(), quiet());
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    drop(db);
    Database::open(dir.path(), quiet()).expect("free again once the first is gone");
}

#[test]
fn opening_a_regular_file_as_a_database_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"some file").expect("write");
    let error = Database::open(&file, quiet()).expect_err("a file is no database directory");
    let message = error.to_string();
    assert!(matches!(&error, Error::Io { path, .. } if *path == file), "{error:?}");
    assert_eq!(error.io_kind(), Some(std::io::ErrorKind::NotADirectory), "{message}");
    assert!(message.contains(&file.display().to_string()), "names the path: {message}");
    assert!(message.contains("not a directory"), "says what is wrong: {message}");
    assert_eq!(std::fs::read(&file).expect("read"), b"some file", "the file is left alone");

    // A directory to create under the file: the error names the directory.
    let below = file.join("db");
    let error = Database::open(&below, quiet()).expect_err("no directory under a file");
    assert!(matches!(&error, Error::Io { path, .. } if *path == below), "{error:?}");
    assert!(error.to_string().contains(&below.display().to_string()), "{error}");
}

#[test]
fn buffered_commits_are_visible_at_once_and_kept_by_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let options = quiet().durability(Durability::Buffered { interval: Duration::from_millis(20) });
    let db = Database::open(dir.path(), options.clone()).expect("open");
    for index in 0u32..200 {
        let version = db.put(index.to_le_bytes(), b"v").expect("put");
        assert_eq!(db.visible_version(), version, "visible when put returns");
    }
    db.close().expect("close syncs");
    let db = Database::open(dir.path(), options).expect("reopen");
    assert_eq!(contents(&db).len(), 200);
}

/// A log backend whose calls are counted and into which faults can be injected.
fn faulty_log() -> (WalOptions, Arc<FaultIo>) {
    let inner: Arc<dyn Io> = Arc::new(SyncIo::new());
    let faults = FaultIo::new(inner);
    let io: Arc<dyn Io> = faults.clone();
    (WalOptions::default().io(io), faults)
}

#[test]
fn a_sync_transaction_in_a_buffered_database_is_synced_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    // An interval that never comes due during the test: only the transaction syncs.
    let options = quiet().durability(Durability::Buffered { interval: Duration::from_secs(3600) });
    let (log, faults) = faulty_log();
    let db = Database::open_with_log_options(dir.path(), options, log).expect("open");
    db.put(b"buffered", b"1").expect("put");
    let syncs = faults.calls(Op::Sync);
    let committed = db
        .transaction_with(TransactionOptions::default().durability(Durability::Sync), |txn| {
            txn.put(b"synced", b"2")
        })
        .expect("commit");
    assert!(faults.calls(Op::Sync) > syncs, "the Sync transaction returned before a sync");
    assert_eq!(committed.version, db.visible_version());
}

#[test]
fn a_failed_log_write_or_sync_fails_the_commit_and_reopening_keeps_only_acknowledged_ones() {
    for fault in
        [Fault::error(Op::Sync, EIO), Fault::error(Op::Write, EIO), Fault::error(Op::Write, ENOSPC)]
    {
        let dir = tempfile::tempdir().unwrap();
        let (log, faults) = faulty_log();
        let db = Database::open_with_log_options(dir.path(), quiet(), log).expect("open");
        let kept = db.put(b"before", b"1").expect("put");
        faults.inject(fault.sticky());
        let failed = db.put(b"during", b"2");
        let Effect::Error(errno) = fault.effect() else { panic!("{fault:?}") };
        match &failed {
            Err(Error::Log { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(errno), "the log's error, kept typed");
            }
            other => panic!("{fault:?}: {other:?}"),
        }
        assert_eq!(db.visible_version(), kept, "{fault:?}: the failed commit is not visible");
        assert_eq!(value_of(&db, b"during"), None);
        let later = db.put(b"after", b"3");
        assert!(matches!(later, Err(Error::Poisoned)), "{fault:?}: {later:?}");
        assert_eq!(value_of(&db, b"before"), Some(b"1".to_vec()), "reads go on");
        drop(db);

        let db = Database::open(dir.path(), quiet()).expect("reopen");
        assert_eq!(db.visible_version(), kept, "{fault:?}");
        assert_eq!(value_of(&db, b"before"), Some(b"1".to_vec()));
        assert_eq!(value_of(&db, b"during"), None, "{fault:?}: nothing of it after reopen");
        db.put(b"after", b"3").expect("usable after reopen");
    }
}

#[test]
fn concurrent_sync_committers_have_every_acknowledged_commit_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    let acknowledged = put_concurrently(&db, 8, 100, |index| index.to_le_bytes().to_vec(), || {});
    let newest = acknowledged.iter().map(|(_, version)| *version).max().expect("commits");
    drop(db);
    let db = Database::open(dir.path(), quiet()).expect("reopen");
    assert_eq!(db.visible_version(), newest);
    assert_newest_versions(&db, &acknowledged);
}

#[test]
fn a_database_without_durability_recovers_the_directory_and_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    let logged = db.put(b"logged", b"1").expect("put");
    drop(db);
    let db = Database::open(dir.path(), quiet().durability(Durability::None)).expect("open");
    assert_eq!(value_of(&db, b"logged"), Some(b"1".to_vec()), "recovered");
    db.put(b"unlogged", b"2").expect("put");
    drop(db);
    let db = Database::open(dir.path(), quiet()).expect("reopen");
    assert_eq!(db.visible_version(), logged);
    assert_eq!(value_of(&db, b"unlogged"), None);
}

#[test]
fn damage_inside_the_log_is_an_error_unless_point_in_time_recovery_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // With at most 512 bytes in flight and records of at most 1 KiB, damage further from
    // the end than that cannot be a torn tail.
    let log = || WalOptions::default().max_queued_bytes(512).max_record_bytes(1024);
    let refused = Database::open_with_log_options(dir.path(), quiet(), log());
    assert!(
        matches!(refused, Err(Error::InvalidOption { .. })),
        "records too small for the longest key are refused: {refused:?}"
    );
    let limits = Limits { key_bytes_max: 64, ..Limits::default() };
    let quiet = || quiet().limits(limits);
    let open = |options: Options| Database::open_with_log_options(dir.path(), options, log());
    let db = open(quiet()).expect("open");
    let first = db.put(b"first", b"1").expect("put");
    for index in 0u32..40 {
        db.put(index.to_le_bytes(), [7u8; 100]).expect("put");
    }
    let oversized = db.put(b"big", [1u8; 2000]);
    assert!(
        matches!(oversized, Err(Error::LimitExceeded { limit: Limit::CommitBytes, .. })),
        "a commit over the log's record limit is refused before it takes a version: {oversized:?}"
    );
    db.put(b"after", b"still usable").expect("put");
    db.close().expect("close");
    // Flip a byte inside the second record's frame: damage that is not a torn tail.
    let segment = std::fs::read_dir(dir.path().join("wal"))
        .expect("log dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_none_or(|ext| ext != "tmp"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    let offset = 4096 + 100;
    bytes[offset] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("write");

    let error = open(quiet()).expect_err("damage is reported");
    let message = error.to_string();
    match &error {
        Error::Log { source: inmem_wal::Error::Corrupt { path, offset, .. }, .. } => {
            assert_eq!(path, &segment, "{message}");
            assert!((4096..=4096 + 100).contains(offset), "the damaged frame's offset: {message}");
        }
        other => panic!("expected the log's Corrupt, got {other:?}"),
    }
    let name = segment.file_name().expect("name").to_string_lossy().into_owned();
    assert!(message.contains(&name), "names the file: {message}");

    let strict = open(quiet().recovery(RecoveryMode::Strict)).expect_err("strict refuses");
    assert!(
        matches!(&strict, Error::Log { source: inmem_wal::Error::Corrupt { path, .. }, .. } if *path == segment),
        "{strict:?}"
    );
    let db = open(quiet().recovery(RecoveryMode::PointInTime)).expect("point in time");
    assert_eq!(db.visible_version(), first, "the prefix before the damage");
    assert_eq!(value_of(&db, b"first"), Some(b"1".to_vec()));
}

#[test]
fn recovering_the_same_files_twice_gives_the_same_state_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let options = quiet().retention(Retention::KeepAll);
    let db = Database::open(&original, options.clone()).expect("open");
    std::thread::scope(|scope| {
        for writer in 0u32..4 {
            let db = &db;
            scope.spawn(move || {
                for index in 0u32..100 {
                    let key = (writer * 7 + index) % 50;
                    db.put(key.to_le_bytes(), (writer * 1000 + index).to_le_bytes()).expect("put");
                }
            });
        }
    });
    db.checkpoint().expect("checkpoint");
    for index in 0u32..50 {
        db.delete(index.to_le_bytes()).expect("delete");
    }
    drop(db);
    // Two copies of the same files, each recovered on its own.
    let copies = [dir.path().join("a"), dir.path().join("b")];
    for copy in &copies {
        for sub in ["wal", "checkpoints"] {
            std::fs::create_dir_all(copy.join(sub)).expect("mkdir");
            for entry in std::fs::read_dir(original.join(sub)).expect("list") {
                let entry = entry.expect("entry");
                std::fs::copy(entry.path(), copy.join(sub).join(entry.file_name())).expect("copy");
            }
        }
    }
    let opened: Vec<Database> =
        copies.iter().map(|copy| Database::open(copy, options.clone()).expect("open")).collect();
    assert_eq!(opened[0].visible_version(), opened[1].visible_version());
    for key in 0u32..50 {
        let history =
            |db: &Database| db.history(key.to_le_bytes(), usize::MAX, None).expect("history");
        assert_eq!(history(&opened[0]), history(&opened[1]), "key {key}");
    }
}

#[test]
fn a_torn_tail_is_cut_by_default_and_refused_by_strict_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).expect("open");
    for index in 0u32..10 {
        db.put(index.to_le_bytes(), [9u8; 200]).expect("put");
    }
    let last = db.visible_version();
    let end = db.put(b"torn", [8u8; 200]).expect("the last commit");
    assert_eq!(end.get(), last.get() + 1);
    drop(db);
    // Tear the last commit's frame: its final bytes (the checksum among them) never reached
    // the disk.
    let segment = std::fs::read_dir(dir.path().join("wal"))
        .expect("log dir")
        .map(|entry| entry.expect("entry").path())
        .next()
        .expect("a segment");
    let inspection = inmem_engine::inspect(dir.path()).expect("inspect");
    let predicted = inspection.prediction(RecoveryMode::TolerateTornTail);
    let log_end = predicted.as_ref().expect("a clean log").log.end.get();
    let mut bytes = std::fs::read(&segment).expect("read");
    let tail = 4096 + usize::try_from(log_end).expect("fits");
    // As a crash leaves it: no close trailer after the last frame.
    bytes[tail..tail + inmem_wal::format::TRAILER_LEN].fill(0);
    bytes[tail - 40..tail].fill(0);
    std::fs::write(&segment, &bytes).expect("write");

    let strict = Database::open(dir.path(), quiet().recovery(RecoveryMode::Strict));
    assert!(
        matches!(&strict, Err(Error::Log { source: inmem_wal::Error::Corrupt { path, .. }, .. }) if *path == segment),
        "Strict refuses a torn tail, naming its segment: {strict:?}"
    );
    let db = Database::open(dir.path(), quiet()).expect("TolerateTornTail cuts it");
    assert_eq!(db.visible_version(), last, "everything before the torn commit");
    assert_eq!(value_of(&db, b"torn"), None);
    assert_eq!(db.put(b"after", b"1").expect("put").get(), last.get() + 1);
    drop(db);
    let db = Database::open(dir.path(), quiet().recovery(RecoveryMode::Strict))
        .expect("once cut, the log is clean even for Strict");
    assert_eq!(value_of(&db, b"after"), Some(b"1".to_vec()));
}

/// Overwrites a stretch of the stack below the caller, so that whatever a dead frame left
/// there (a value moved away from it, say) no longer reads as it did.
#[inline(never)]
fn clobber_the_stack() {
    let mut bytes = [0x5a_u8; 256 * 1024];
    std::hint::black_box(&mut bytes);
}

#[test]
fn keys_deleted_before_a_reopen_are_forgotten_after_it_wherever_recovery_built_the_index() {
    // Recovery builds the index (the checkpoint's keys, the log's replay) before the
    // database's shared state moves to where it lives; the handles it made must still
    // reach their entries after that move. Deleted keys are the ones garbage collection
    // removes through those handles.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Database::open(dir.path(), quiet()).expect("open");
        for i in 0..100u32 {
            db.put(format!("key-{i:03}"), b"v").expect("put");
            db.delete(format!("key-{i:03}")).expect("delete");
        }
        db.put(b"kept", b"k").expect("put");
        db.checkpoint().expect("checkpoint");
        for i in 100..200u32 {
            db.put(format!("key-{i:03}"), b"v").expect("put");
            db.delete(format!("key-{i:03}")).expect("delete");
        }
    }
    let db = Database::open(dir.path(), quiet()).expect("reopen");
    clobber_the_stack();
    let report = db.collect_garbage();
    assert_eq!(report.keys_removed, 200, "every deleted key forgotten: {report:?}");
    assert_eq!(contents(&db), [(Bytes::from("kept"), Bytes::from("k"))]);
    assert_eq!(db.collect_garbage().keys_removed, 0);
}

/// Keys that start with "idx/": the scan-only keys of the test below.
fn scan_only_test_keys(key: &[u8]) -> bool {
    key.starts_with(b"idx/")
}

#[test]
fn scan_only_keys_read_write_and_recover_alike_whichever_options_each_open_uses() {
    // The predicate shapes the in-memory index only: a directory written with it reopens
    // without it and the other way round, with the same contents either way, and deleted
    // scan-only keys are forgotten by garbage collection as the others are.
    let dir = tempfile::tempdir().expect("tempdir");
    let scan_only = || quiet().scan_only_keys(scan_only_test_keys);
    let expected: Vec<(Bytes, Bytes)> = {
        let db = Database::open(dir.path(), scan_only()).expect("open");
        for i in 0..50u32 {
            db.put(format!("idx/{i:03}"), b"").expect("put");
            db.put(format!("rec/{i:03}"), format!("value {i}")).expect("put");
        }
        db.checkpoint().expect("checkpoint");
        for i in 0..10u32 {
            db.delete(format!("idx/{i:03}")).expect("delete");
        }
        db.put("idx/new", "after the checkpoint").expect("put");
        assert_eq!(value_of(&db, b"idx/new").as_deref(), Some(&b"after the checkpoint"[..]));
        assert_eq!(value_of(&db, b"idx/005"), None, "deleted");
        assert_eq!(db.collect_garbage().keys_removed, 10);
        contents(&db)
    };
    assert_eq!(expected.len(), 91);
    for options in [quiet(), scan_only(), quiet()] {
        let db = Database::open(dir.path(), options).expect("reopen");
        assert_eq!(contents(&db), expected);
        assert_eq!(value_of(&db, b"idx/020").as_deref(), Some(&b""[..]));
        assert_eq!(value_of(&db, b"rec/020").as_deref(), Some(&b"value 20"[..]));
        db.delete("idx/020").expect("delete");
        db.put("idx/020", b"").expect("put again");
    }
}
