//! `wal_segment_reader`: recovery and the segment reader of the write-ahead log over
//! damaged segment files.
//!
//! The input decodes (through `arbitrary`, with bounded wrappers) into a log's options
//! (minimum-size segments of 8 or 12 KiB, record limits from 24 bytes to the largest such a
//! segment allows, queue bounds that make the cuttable tail 8 bytes to 4 KiB longer than a
//! frame), its first segment's number and first position, up to `RECORDS_MAX` records
//! (their kinds and payload lengths cycling through up to `SPECS_MAX` shapes, so that a few
//! bytes make a full log), up to `MUTATIONS_MAX` mutations of its files, and up to
//! `APPENDS_MAX` records to append after recovery. The records are written, as the log
//! writer lays them out, into one segment or two, with the crate's own header and frame
//! encoders (`Wal` itself writes nothing before the damage); the mutations then cut,
//! extend, flip, overwrite and zero bytes, copy frames elsewhere, forge valid frames (at
//! the position they sit at, or another, with the file's seed or another), re-encode
//! headers with other fields, write frontier slots (valid or not: any sequence number and
//! frontier, sealed for the file's header), remove, rename and add segment files, and add unfinished
//! (`.tmp`) ones. The files are written to a fresh directory (on tmpfs when there is one)
//! for each recovery mode, and opened with `Wal::open`; everything is read back with
//! `read_from`.
//!
//! Invariants checked:
//! - nothing panics; an open fails only with a typed error about the log's files
//!   (`BadSegmentHeader`, `Corrupt` or `Inconsistent`, naming a file of the directory);
//! - after an open, everything from the first position to the end reads back without error,
//!   as many records as recovery reports, at strictly increasing, back-to-back positions
//!   inside the recovered range: the first at the first position, the last ending at the end
//!   (no damaged frame skipped and what follows kept);
//! - an open that succeeds reads back first every record written before the first damaged
//!   byte (under `PointInTime` and `TolerateTornTail`, and `Strict` alike), unchanged;
//! - an undamaged log opens in every mode, cuts nothing, drops nothing and reads back every
//!   record written;
//! - `Strict` never cuts, drops or removes anything, and a `Strict` open that fails leaves
//!   the files as they were; `TolerateTornTail` sets aside only unfinished segments that
//!   hold more than a header; `PointInTime` sets segments aside, never deletes them;
//! - after a successful `TolerateTornTail` open and close, reopening in `Strict` mode
//!   succeeds, reports no cut, and reads exactly the same records (recovery is
//!   deterministic and its cut was made durable); then records appended (and synced) after
//!   it, a segment rotation included, read back after another `TolerateTornTail` reopen
//!   right after the recovered ones: what recovery accepts stays usable (appends are not
//!   tried on logs within 2^62 of the 64-bit limits of positions and segment numbers, which
//!   the writer does not guard).

#![no_main]

#[path = "wal_segment_reader/files.rs"]
mod files;
#[path = "wal_segment_reader/input.rs"]
mod input;

use std::path::Path;

use inmem_wal::format::{frame_len, parse_segment_file_name, FrameKind, SegmentHeader};
use inmem_wal::{Error, LogPosition, Record, RecoveryMode, RecoveryReport, Wal};
use libfuzzer_sys::fuzz_target;

use crate::files::{intact_frames, mutate, write_log, Files, Written, WrittenFrame};
use crate::input::{Config, Input};

/// Appends are not tried past this end or segment number: the writer's arithmetic assumes
/// a log never nears 2^64 bytes or segments (at `u64::MAX` its next segment number
/// overflows), and recovery, not appending, is what this target drives.
const APPEND_LIMIT: u64 = 1 << 62;

/// A fresh directory, on tmpfs when there is one, so that fsyncs cost nothing.
fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let made = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    match made {
        Ok(dir) => dir,
        Err(error) => panic!("cannot make a temporary directory (not an invariant): {error}"),
    }
}

/// Writes `files` into `dir`.
fn write_files(dir: &Path, files: &Files) {
    for (name, bytes) in files {
        if let Err(error) = std::fs::write(dir.join(name), bytes) {
            panic!("cannot write {name} (not an invariant): {error}");
        }
    }
}

/// The files in `dir`, by name.
fn read_files(dir: &Path) -> Files {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => panic!("cannot list {} (not an invariant): {error}", dir.display()),
    };
    let mut files = Files::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match std::fs::read(entry.path()) {
            Ok(bytes) => files.insert(name, bytes),
            Err(error) => panic!("cannot read {name} (not an invariant): {error}"),
        };
    }
    files
}

/// The highest segment number in the headers of the segment files of `dir`.
fn highest_number(dir: &Path) -> u64 {
    let files = read_files(dir);
    let segments = files.iter().filter(|(name, _)| parse_segment_file_name(name).is_some());
    let headers = segments.filter_map(|(_, bytes)| SegmentHeader::decode(bytes).ok());
    headers.map(|header| header.number).max().unwrap_or(0)
}

/// Checks that an open failed only for a reason about one of the log's files.
fn check_open_error(error: &Error, dir: &Path, mode: RecoveryMode) {
    match error {
        Error::BadSegmentHeader { path, .. }
        | Error::Corrupt { path, .. }
        | Error::Inconsistent { path, .. } => {
            assert_eq!(path.parent(), Some(dir), "{mode:?}: an error names no file of the log");
        }
        other => panic!("{mode:?}: open failed with an unexpected error: {other:?}"),
    }
}

/// Reads every record from the first position; checks that they read without error, back
/// to back over the recovered range, as many as reported.
fn read_all(wal: &Wal, report: &RecoveryReport, what: &str) -> Vec<Record> {
    assert_eq!(wal.first_position(), report.first, "{what}: first position is not the report's");
    assert_eq!(wal.durable_position(), report.end, "{what}: durable end is not the report's");
    assert_eq!(wal.end_position(), report.end, "{what}: end is not the report's");
    let reader = match wal.read_from(report.first) {
        Ok(reader) => reader,
        Err(error) => panic!("{what}: reading from the first position fails: {error:?}"),
    };
    let mut records = Vec::new();
    let mut next = report.first;
    for record in reader {
        let record = match record {
            Ok(record) => record,
            Err(error) => panic!("{what}: a recovered record does not read back: {error:?}"),
        };
        assert_eq!(record.position, next, "{what}: records are not back to back");
        assert!(record.position < report.end, "{what}: a record past the recovered end");
        let len = frame_len(record.payload.len()) as u64;
        next = LogPosition::new(record.position.get() + len);
        records.push(record);
    }
    assert_eq!(next, report.end, "{what}: the records stop before the recovered end");
    assert_eq!(records.len() as u64, report.records, "{what}: not the records reported");
    records
}

/// Checks that `records` start with `expected`, unchanged.
fn check_prefix(records: &[Record], expected: &[WrittenFrame], what: &str) {
    assert!(
        records.len() >= expected.len(),
        "{what}: {} records read back, {} written intact",
        records.len(),
        expected.len()
    );
    for (record, frame) in records.iter().zip(expected) {
        let same = record.position == frame.position
            && record.kind == frame.kind
            && record.payload == frame.payload;
        assert!(same, "{what}: read {record:?}, written intact {frame:?}");
    }
}

/// Opens `dir` in `mode`; checks why, if it cannot be opened.
fn open(dir: &Path, config: &Config, mode: RecoveryMode) -> Result<Wal, Error> {
    let opened = Wal::open(dir, config.options(mode));
    if let Err(error) = &opened {
        check_open_error(error, dir, mode);
    }
    opened
}

/// Closes `wal`, which must end healthy.
fn close(wal: Wal, what: &str) {
    if let Err(error) = wal.close() {
        panic!("{what}: closing a log that wrote nothing failed: {error:?}");
    }
}

/// One recovery of the damaged files in `mode`, with every check.
fn recover(input: &Input, written: &Written, damaged: &Files, mode: RecoveryMode) {
    let dir = temp_dir();
    write_files(dir.path(), damaged);
    let undamaged = damaged == &written.files;
    let what = format!("{mode:?}");
    let wal = match open(dir.path(), &input.config, mode) {
        Ok(wal) => wal,
        Err(error) => {
            assert!(!undamaged, "{what}: an undamaged log does not open: {error}");
            if mode == RecoveryMode::Strict {
                assert_eq!(&read_files(dir.path()), damaged, "{what}: a failed open changed files");
            }
            return;
        }
    };
    let report = wal.recovery_report().clone();
    let records = read_all(&wal, &report, &what);
    check_prefix(&records, intact_frames(written, damaged), &what);
    if undamaged {
        assert_eq!(records.len(), written.frames.len(), "{what}: an undamaged log lost records");
        assert!(report.cut.is_none(), "{what}: an undamaged log was cut: {report:?}");
        assert!(report.dropped.is_empty(), "{what}: an undamaged log was dropped: {report:?}");
    }
    match mode {
        RecoveryMode::Strict => {
            assert!(report.cut.is_none(), "{what}: cut {report:?}");
            assert!(report.dropped.is_empty(), "{what}: dropped {report:?}");
            assert!(report.removed_unfinished.is_empty(), "{what}: removed {report:?}");
        }
        RecoveryMode::TolerateTornTail => {
            // Only an unfinished segment holding more than a header, kept as it is.
            let unfinished = |path: &&std::path::PathBuf| {
                path.to_str().is_some_and(|name| name.contains(".wal.tmp.dropped"))
            };
            assert!(report.dropped.iter().all(|path| unfinished(&path)), "{what}: {report:?}");
        }
        RecoveryMode::PointInTime => {
            for path in &report.dropped {
                assert!(path.exists(), "{what}: {} was deleted, not set aside", path.display());
            }
        }
    }
    // Checked before the close, which writes a close trailer where the records end.
    if mode == RecoveryMode::Strict && report.segments > 0 {
        assert!(&read_files(dir.path()) == damaged, "{what}: a strict open changed files");
    }
    close(wal, &what);
    if mode == RecoveryMode::TolerateTornTail {
        reopen(dir.path(), &input.config, &input.appends, &report, &records);
    }
}

/// After a `TolerateTornTail` recovery that found `records`: reopens in `Strict` mode
/// (which must find the same, and nothing to cut; `TolerateTornTail` again if the first
/// found damage the checkpointed position covers, which is left in place), appends, and
/// reopens again.
fn reopen(
    dir: &Path,
    config: &Config,
    appends: &[u16],
    first: &RecoveryReport,
    records: &[Record],
) {
    // Damage the checkpointed position covers is left in place, and `Strict` refuses it:
    // then the reopen is a `TolerateTornTail` one, which must find that damage again.
    let (what, mode) = if first.covered.is_empty() {
        ("Strict reopen after TolerateTornTail", RecoveryMode::Strict)
    } else {
        if let Ok(strict) = open(dir, config, RecoveryMode::Strict) {
            panic!("Strict opened a log with covered damage: {:?}", strict.recovery_report());
        }
        ("TolerateTornTail reopen after TolerateTornTail", RecoveryMode::TolerateTornTail)
    };
    let wal = match open(dir, config, mode) {
        Ok(wal) => wal,
        Err(error) => panic!("{what}: the log recovery left does not open: {error} ({first:?})"),
    };
    let report = wal.recovery_report().clone();
    assert!(report.cut.is_none(), "{what}: a second cut, the first was not durable: {report:?}");
    assert_eq!(report.covered, first.covered, "{what}: other covered damage");
    assert_eq!((report.first, report.end), (first.first, first.end), "{what}: another range");
    assert_eq!(read_all(&wal, &report, what), records, "{what}: other records");
    if report.end.get() > APPEND_LIMIT || highest_number(dir) > APPEND_LIMIT || appends.is_empty() {
        close(wal, what);
        return;
    }
    let mut expected = records.to_vec();
    for (index, &len) in appends.iter().enumerate() {
        let limit = config.record_limit();
        let len = usize::from(len) % (usize::try_from(limit).unwrap_or(0) + 1);
        let payload = vec![0xa0 ^ index as u8; len];
        let position = match wal.append_sync(FrameKind::RECORD, &payload) {
            Ok(position) => position,
            Err(error) => panic!("{what}: appending to a recovered log fails: {error:?}"),
        };
        expected.push(Record { position, kind: FrameKind::RECORD, payload });
    }
    if let Err(error) = wal.close() {
        panic!("{what}: closing after appends fails: {error:?}");
    }
    let what = "TolerateTornTail reopen after appends";
    let wal = match open(dir, config, RecoveryMode::TolerateTornTail) {
        Ok(wal) => wal,
        Err(error) => panic!("{what}: a recovered log no longer opens after appends: {error}"),
    };
    let report = wal.recovery_report().clone();
    assert_eq!(read_all(&wal, &report, what), expected, "{what}: not the records appended");
    close(wal, what);
}

fuzz_target!(|input: Input| {
    let written = write_log(&input.config, &input.records);
    let mut damaged = written.files.clone();
    for mutation in &input.mutations {
        mutate(&mut damaged, &written, &input.config, mutation);
    }
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime, RecoveryMode::Strict] {
        recover(&input, &written, &damaged, mode);
    }
});
