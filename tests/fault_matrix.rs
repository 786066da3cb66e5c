//! The fault matrix (docs/recovery.md): a durable database with known acknowledged commits
//! (several log segments, two checkpoints), one fault at a time, opened in every recovery
//! mode. For every fault and mode:
//!
//! - the open refuses with a typed error naming the file (and the offset, for damage
//!   inside a file), and the directory is exactly as it was; or it opens with every
//!   acknowledged commit, and a reopen still has them all;
//! - `inspect` (what `inmem verify` prints) predicted exactly that outcome;
//! - bytes a cut removed are in the salvage file it names, byte for byte.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inmem::engine::{inspect, Recovery};
use inmem::wal::format::{decode_frame, Decoded, SegmentHeader, SEGMENT_HEADER_LEN};
use inmem::wal::{LogPosition, WalOptions};
use inmem::{Database, Error, Limits, Options, RecoveryMode};

const COMMITS: u32 = 600;
const CHECKPOINTS_AFTER: [u32; 2] = [200, 400];
const MODES: [RecoveryMode; 3] =
    [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime, RecoveryMode::Strict];

fn options(mode: RecoveryMode) -> Options {
    let limits = Limits { key_bytes_max: 64, value_bytes_max: 1024, ..Limits::default() };
    Options::default().checkpoint_log_bytes(0).recovery(mode).limits(limits)
}

/// Small segments, so that 600 commits fill several (records of about 230 bytes).
fn log_options() -> WalOptions {
    WalOptions::default().segment_size(32 << 10).max_record_bytes(4 << 10)
}

fn key(index: u32) -> Vec<u8> {
    format!("key/{index:05}").into_bytes()
}

fn value(index: u32) -> Vec<u8> {
    let mut value = format!("value of commit {index} ").into_bytes();
    value.resize(200, b'a' + (index % 26) as u8);
    value
}

/// A frame of the log: its segment file, file offset, length, and log position.
#[derive(Clone, Debug)]
struct FrameAt {
    segment: PathBuf,
    offset: u64,
    len: u64,
}

/// The pristine directory: `COMMITS` acknowledged commits (each its own `Sync` put),
/// checkpoints after commits 200 and 400, closed cleanly.
fn pristine(dir: &Path) {
    let db = Database::open_with_log_options(dir, options(RecoveryMode::Strict), log_options())
        .expect("open");
    for index in 0..COMMITS {
        db.put(key(index), value(index)).expect("put");
        if CHECKPOINTS_AFTER.contains(&(index + 1)) {
            db.checkpoint().expect("checkpoint");
        }
    }
    db.close().expect("close");
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    files
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The record frames of a segment file, in order.
fn frames(segment: &Path) -> Vec<FrameAt> {
    let bytes = std::fs::read(segment).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let mut offset = SEGMENT_HEADER_LEN;
    let mut position = header.first_position;
    let mut found = Vec::new();
    loop {
        let rest = &bytes[offset as usize..];
        match decode_frame(rest, position, header.frame_seed(), 4 << 10) {
            Decoded::Frame(frame) => {
                let len = frame.len as u64;
                found.push(FrameAt { segment: segment.to_path_buf(), offset, len });
                offset += len;
                position = LogPosition::new(position.get() + len);
            }
            _ => return found,
        }
    }
}

/// Every file of the directory (recursively) with its bytes; a directory as `None`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.insert(path.clone(), None);
                pending.push(path);
            } else {
                files.insert(path.clone(), Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    for (path, bytes) in snapshot(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        match bytes {
            None => std::fs::create_dir_all(&target).unwrap(),
            Some(bytes) => {
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(&target, bytes).unwrap();
            }
        }
    }
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// What a fault does to a file of the directory (given by its path relative to it).
enum Action {
    /// Flips a bit of the byte at the offset.
    Flip(PathBuf, u64),
    /// A crash while a batch after the last acknowledged one was written: the close
    /// trailer at the offset (the log's end) gone, 100 bytes of a frame written there.
    TornBatch(PathBuf, u64),
    /// Cuts the file to the length.
    Truncate(PathBuf, u64),
    Delete(PathBuf),
    /// Overwrites the whole file with zeroes.
    Zero(PathBuf),
    /// Replaces the file with a directory: unreadable, even by root.
    Unreadable(PathBuf),
}

impl Action {
    fn apply(&self, dir: &Path) {
        match self {
            Action::Flip(file, offset) => flip(&dir.join(file), *offset),
            Action::TornBatch(file, end) => {
                let path = dir.join(file);
                let mut bytes = std::fs::read(&path).unwrap();
                let end = *end as usize;
                for (index, byte) in bytes[end..end + 100].iter_mut().enumerate() {
                    *byte = index as u8 | 0x80;
                }
                std::fs::write(&path, bytes).unwrap();
            }
            Action::Truncate(file, len) => {
                let file = std::fs::OpenOptions::new().write(true).open(dir.join(file)).unwrap();
                file.set_len(*len).unwrap();
            }
            Action::Delete(file) => std::fs::remove_file(dir.join(file)).unwrap(),
            Action::Zero(file) => {
                let len = std::fs::metadata(dir.join(file)).unwrap().len();
                std::fs::write(dir.join(file), vec![0u8; len as usize]).unwrap();
            }
            Action::Unreadable(file) => {
                std::fs::remove_file(dir.join(file)).unwrap();
                std::fs::create_dir(dir.join(file)).unwrap();
            }
        }
    }
}

/// One fault, and what the default mode and `Strict` must do with it.
struct Fault {
    name: &'static str,
    action: Action,
    /// Whether `TolerateTornTail` opens (true) or refuses (false).
    tolerated: bool,
    /// Whether `Strict` opens: the fault touches nothing the open reads (an older
    /// checkpoint, a segment wholly below the newest checkpoint).
    strict_opens: bool,
}

/// `TolerateTornTail` opens, `Strict` refuses.
const OPENS: (bool, bool) = (true, false);
/// Both refuse.
const REFUSED: (bool, bool) = (false, false);
/// Both open: the open never reads what the fault touched.
const UNREAD: (bool, bool) = (true, true);

fn faults(base: &Path) -> Vec<Fault> {
    let relative = |path: &Path| path.strip_prefix(base).unwrap().to_path_buf();
    let segments: Vec<PathBuf> = segments(base);
    assert!(segments.len() >= 4, "several segments: {segments:?}");
    let checkpoints = checkpoints(base);
    assert_eq!(checkpoints.len(), 2);
    let all: Vec<FrameAt> = segments.iter().flat_map(|segment| frames(segment)).collect();
    let (first, last) = (all.first().unwrap(), all.last().unwrap());
    let middle = &frames(&segments[segments.len() - 2])[3];
    let inside =
        |frame: &FrameAt| Action::Flip(relative(&frame.segment), frame.offset + frame.len / 2);
    let fault =
        |name, (tolerated, strict_opens), action| Fault { name, action, tolerated, strict_opens };
    vec![
        // The log's first kept frame lies below the newest checkpoint: covered.
        fault("flip in the first synced frame", OPENS, inside(first)),
        fault("flip in a middle synced frame", REFUSED, inside(middle)),
        fault("flip in the last synced frame", REFUSED, inside(last)),
        fault(
            "garbage in the unsynced last batch",
            OPENS,
            Action::TornBatch(relative(&last.segment), last.offset + last.len),
        ),
        // An open reads the older checkpoint only when the newest is damaged.
        fault("flip in the older checkpoint", UNREAD, Action::Flip(relative(&checkpoints[0]), 100)),
        fault("flip in the newest checkpoint", OPENS, Action::Flip(relative(&checkpoints[1]), 100)),
        fault(
            "newest segment truncated mid-frame",
            REFUSED,
            Action::Truncate(relative(&last.segment), last.offset + last.len / 2),
        ),
        fault(
            "a segment truncated at a frame boundary",
            REFUSED,
            Action::Truncate(relative(&middle.segment), middle.offset),
        ),
        // Wholly below the newest checkpoint, which covers it.
        fault("first segment deleted", UNREAD, Action::Delete(relative(&segments[0]))),
        fault(
            "a middle segment deleted",
            REFUSED,
            Action::Delete(relative(&segments[segments.len() / 2])),
        ),
        fault("newest segment deleted", REFUSED, Action::Delete(relative(&last.segment))),
        fault("a segment zeroed", REFUSED, Action::Zero(relative(&segments[segments.len() - 2]))),
        fault(
            "the newest segment unreadable",
            REFUSED,
            Action::Unreadable(relative(&last.segment)),
        ),
    ]
}

/// Whether the error names a file or directory of `dir` and, for damage inside a file,
/// the offset.
fn names_its_subject(error: &Error, dir: &Path) -> bool {
    let message = error.to_string();
    let names_path = message.contains(&dir.display().to_string());
    let inside_a_file = matches!(error, Error::CorruptCheckpoint { .. })
        || matches!(error, Error::Log { source: inmem::wal::Error::Corrupt { .. }, .. });
    names_path && (!inside_a_file || message.contains("offset"))
}

fn assert_every_commit(db: &Database, context: &str) {
    assert_eq!(commits_kept(db, context), COMMITS, "{context}: commits lost");
}

/// How many commits the database holds: a prefix of them, checked (no later one without
/// every earlier one).
fn commits_kept(db: &Database, context: &str) -> u32 {
    let mut kept = 0;
    for index in 0..COMMITS {
        match db.get(key(index)).unwrap() {
            Some(read) if kept == index => {
                assert_eq!(read.as_slice(), &value(index)[..], "{context}: commit {index}");
                kept += 1;
            }
            Some(_) => panic!("{context}: commit {index} without commit {kept} before it"),
            None => {}
        }
    }
    kept
}

/// The salvage file a cut names holds the bytes it removed.
fn assert_salvaged(
    recovery: &Recovery,
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    context: &str,
) {
    let Some(cut) = &recovery.log.cut else { return };
    let original = before[&cut.path].as_ref().expect("a file");
    let salvaged = std::fs::read(&cut.salvage).expect("the salvage file is there");
    let from = cut.offset as usize;
    let to = (cut.offset + cut.bytes) as usize;
    assert_eq!(salvaged, original[from..to.min(original.len())], "{context}: salvaged bytes");
}

fn db_reopened(dir: &Path) -> Database {
    Database::open_with_log_options(dir, options(RecoveryMode::TolerateTornTail), log_options())
        .expect("a reopen after recovery")
}

/// Checks a refused open of the faulty copy `dir`: as predicted, naming its subject,
/// changing nothing. Returns the outcome's line.
fn check_refused(
    fault: &Fault,
    mode: RecoveryMode,
    dir: &Path,
    error: &Error,
    predicted: Result<Recovery, Error>,
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) -> String {
    let context = format!("{} ({mode:?})", fault.name);
    let Err(predicted) = predicted else {
        panic!("{context}: verify predicted an open, the open failed: {error}")
    };
    assert_eq!(predicted.to_string(), error.to_string(), "{context}");
    assert!(names_its_subject(error, dir), "{context}: {error}");
    assert!(snapshot(dir) == *before, "{context}: a refused open changed the directory");
    match mode {
        RecoveryMode::TolerateTornTail => assert!(!fault.tolerated, "{context}: {error}"),
        RecoveryMode::Strict => assert!(!fault.strict_opens, "{context}: {error}"),
        _ => {}
    }
    format!("{context}: refused: {error}")
}

/// Checks an open of the faulty copy `dir` that succeeded: as predicted, with every
/// acknowledged commit (`PointInTime`: a prefix, and what it set aside said), salvaged
/// bytes in place, and all of it still there after a reopen. Returns the outcome's line.
fn check_opened(
    fault: &Fault,
    mode: RecoveryMode,
    dir: &Path,
    db: Database,
    predicted: Result<Recovery, Error>,
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) -> String {
    let context = format!("{} ({mode:?})", fault.name);
    let recovery = db.recovery().expect("a durable database").clone();
    let Ok(predicted) = predicted else {
        panic!("{context}: verify predicted a refusal, the open succeeded")
    };
    assert_eq!(format!("{predicted:?}"), format!("{recovery:?}"), "{context}");
    let kept = commits_kept(&db, &context);
    if mode == RecoveryMode::PointInTime {
        // It keeps a prefix, and says what it set aside when that loses any.
        let said = recovery.log.stopped_at.is_some() || !recovery.log.dropped.is_empty();
        assert!(kept == COMMITS || said, "{context}: {kept} kept, nothing said");
    } else {
        assert_eq!(kept, COMMITS, "{context}: acknowledged commits lost");
    }
    assert_salvaged(&recovery, before, &context);
    db.close().expect("close");
    let again = commits_kept(&db_reopened(dir), &format!("{context}, reopened"));
    assert_eq!(again, kept, "{context}: a reopen after recovery lost commits");
    match mode {
        RecoveryMode::TolerateTornTail => assert!(fault.tolerated, "{context}: opened"),
        RecoveryMode::Strict => assert!(fault.strict_opens, "{context}: opened a damaged dir"),
        _ => {}
    }
    format!("{context}: opened: {:?}", recovery.log.cut)
}

#[test]
fn every_fault_in_every_mode_is_refused_unchanged_or_opened_whole_as_verify_predicts() {
    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("pristine");
    pristine(&base);
    let faults = faults(&base);
    let mut outcomes = Vec::new();
    for (number, fault) in faults.iter().enumerate() {
        for mode in MODES {
            let dir = scratch.path().join(format!("fault-{number}-{mode:?}"));
            copy_dir(&base, &dir);
            fault.action.apply(&dir);
            let predicted = inspect(&dir).expect("inspect").prediction(mode).clone();
            let before = snapshot(&dir);
            outcomes.push(
                match Database::open_with_log_options(&dir, options(mode), log_options()) {
                    Err(error) => check_refused(fault, mode, &dir, &error, predicted, &before),
                    Ok(db) => check_opened(fault, mode, &dir, db, predicted, &before),
                },
            );
        }
    }
    // The undamaged directory opens in every mode, with nothing to report.
    for mode in MODES {
        let dir = scratch.path().join(format!("clean-{mode:?}"));
        copy_dir(&base, &dir);
        let db = Database::open_with_log_options(&dir, options(mode), log_options()).expect("open");
        assert_every_commit(&db, "clean");
        let recovery = db.recovery().expect("durable");
        assert!(recovery.is_clean(), "{recovery:?}");
    }
    // The table, for `--nocapture`.
    eprintln!("{}", outcomes.join("\n"));
}
