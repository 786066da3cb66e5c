//! The format fixture: `tests/fixtures/log-v4-checkpoint-v1`, a small database directory
//! written by this version (`examples/format_fixture.rs`), opened from a copy and checked
//! exactly.
//!
//! A change to an on-disk format (the log's segments and frames, commit records,
//! checkpoints) makes this test fail: that is its purpose. A deliberate change bumps the
//! format's version and writes a new fixture, as `docs/format.md` explains.

#![allow(clippy::expect_used, reason = "a test stops at the first failure")]

use std::path::{Path, PathBuf};

use inmem::wal::{LogPosition, RecoveryMode};
use inmem::Database;

/// The fixture's writer, `examples/format_fixture.rs`, and the options it writes and reads
/// with (no maintenance round while a test runs, so an open's state is what recovery made
/// of the files).
#[allow(dead_code, reason = "the example's main is not called here")]
#[path = "../examples/format_fixture.rs"]
mod writer;
use writer::{log_options, options};

/// The fixture, as committed.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/log-v4-checkpoint-v1")
}

/// The fixture of the log's previous version (3, whose frontier slots carry no step), kept
/// to check that this build refuses it.
fn previous_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/log-v3-checkpoint-v1")
}

/// Copies the directory tree `from` into `to` (opening may change the files it opens).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("a fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("its type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture file");
        }
    }
}

/// The names of the files under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["", "wal", "checkpoints"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("read a directory") {
            let entry = entry.expect("an entry");
            if entry.file_type().expect("its type").is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                names.push(if sub.is_empty() { name } else { format!("{sub}/{name}") });
            }
        }
    }
    names.sort();
    names
}

#[test]
fn the_fixture_holds_the_files_of_this_format_version() {
    assert_eq!(files(&fixture()), EXPECTED_FILES);
}

/// The file names and sizes under `dir`.
fn layout(dir: &Path) -> Vec<(String, u64)> {
    files(dir)
        .into_iter()
        .map(|name| {
            let size = std::fs::metadata(dir.join(&name)).expect("a file's size").len();
            (name, size)
        })
        .collect()
}

/// What a reopen of `dir` reports of its log: segments, records, first, end, proven.
fn log_report(dir: &Path) -> (usize, u64, LogPosition, LogPosition, LogPosition) {
    let db = Database::open_with_log_options(dir, options(), log_options()).expect("open");
    let log = &db.recovery().expect("a recovery report").log;
    (log.segments, log.records, log.first, log.end, log.proven)
}

/// This build still writes what the fixture holds: the same files, of the same sizes, and
/// a log of the same records ending at the same position (a record or frame of another
/// size moves it). Expiry and creation times differ between two writes, so the bytes
/// themselves are not compared.
#[test]
fn this_build_writes_the_fixture_s_layout() {
    let fresh = tempfile::tempdir().expect("a temporary directory");
    let dir = fresh.path().join("db");
    let (checkpoint, last) = writer::write(&dir).expect("write the fixture's commits");
    assert_eq!((checkpoint.get(), last.get()), (6, 14));
    assert_eq!(layout(&dir), layout(&fixture()));
    assert_eq!(log_report(&dir), EXPECTED_LOG);
}

#[test]
fn the_fixture_opens_with_exactly_what_was_committed() {
    let copy = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&fixture(), copy.path());
    let db = Database::open_with_log_options(copy.path(), options(), log_options())
        .expect("this version opens the directory it wrote");

    // What recovery did: the checkpoint at version 6, then the log's tail after it.
    let recovery = db.recovery().expect("a database on a directory reports its recovery");
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(
        recovery.checkpoint.as_deref().and_then(Path::file_name).and_then(|name| name.to_str()),
        Some("checkpoint-00000000000000000006.ckpt")
    );
    assert_eq!(recovery.checkpoint_version.get(), 6);
    assert!(recovery.damaged_checkpoints.is_empty());
    let log = &recovery.log;
    assert_eq!(log.mode, RecoveryMode::TolerateTornTail);
    assert_eq!(
        (log.segments, log.records, log.first, log.end, log.proven),
        EXPECTED_LOG,
        "segments, records, first, end, proven"
    );
    assert!(log.cut.is_none() && log.dropped.is_empty() && log.covered.is_empty());

    // What it holds: every commit, in order.
    assert_eq!(db.visible_version().get(), 14);
    let contents: Vec<(String, String)> = db
        .snapshot()
        .range::<&[u8]>(..)
        .map(|(key, value)| {
            (
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let expected = [
        ("a/1", "uno"),
        ("c/1", "see"),
        ("c/2", "sea"),
        ("r/4", "r-four"),
        ("ttl/long", "lives"),
        ("ttl/tail", "also lives"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    assert_eq!(contents, expected);
    for gone in ["a/2", "b/1", "r/1", "r/2", "r/3", "ttl/gone"] {
        assert_eq!(db.get(gone).expect("read"), None, "{gone}");
    }

    // The range delete of version 12 is recovered pending: its purge starts over.
    let pending = db.range_deletes();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((pending[0].prefix.as_slice(), pending[0].version.get()), (&b"r/"[..], 12));

    // And the database goes on from there.
    assert_eq!(db.put("a/1", "next").expect("commit").get(), 15);
    db.close().expect("close");
}

#[test]
fn a_directory_of_the_previous_log_version_is_refused_and_left_unchanged() {
    let copy = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&previous_fixture(), copy.path());
    let before = layout(copy.path());
    let segment = std::fs::read(copy.path().join("wal/00000000000000000000.wal")).expect("read");
    let Err(error) = Database::open_with_log_options(copy.path(), options(), log_options()) else {
        panic!("a version 3 log is refused");
    };
    let message = error.to_string();
    assert!(message.contains("format version 3"), "{message}");
    assert!(message.contains("this build reads only version 4"), "{message}");
    assert_eq!(layout(copy.path()), before);
    let after = std::fs::read(copy.path().join("wal/00000000000000000000.wal")).expect("read");
    assert_eq!(after, segment, "the segment is unchanged");
}

/// The files of the fixture.
const EXPECTED_FILES: [&str; 3] =
    ["LOCK", "checkpoints/checkpoint-00000000000000000006.ckpt", "wal/00000000000000000000.wal"];

/// The log's recovery report: segments, records, first, end, proven. The one segment holds
/// every commit's record (the checkpoint was the first, so no segment was deleted), and a
/// clean close proved all of it synced.
const EXPECTED_LOG: (usize, u64, LogPosition, LogPosition, LogPosition) =
    (1, 14, LogPosition::new(0), LogPosition::new(1032), LogPosition::new(1032));
