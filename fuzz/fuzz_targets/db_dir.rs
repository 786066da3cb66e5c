//! `db_dir`: opening a damaged database directory.
//!
//! A small database is built once (on tmpfs when there is one): 80 commits over 8 keys,
//! every version kept, in 4 KiB-record, 16 KiB segments, with checkpoints after commits 40
//! and 60 (the second deletes the segments before the first; both stay, the first as the
//! fallback) and the state after every commit recorded. Each
//! input copies its files to a fresh directory, applies up to 4 mutations (truncate a file,
//! flip a bit, zero a range, remove a file, duplicate a segment under another position's
//! name, copy a checkpoint under another version's name) and opens it in the recovery mode
//! it picks.
//!
//! Every commit of the base was acknowledged in `Sync` mode, so synced. Invariants checked:
//! - nothing panics;
//! - an open either fails with an error, or opens a state that is a prefix of the committed
//!   history: its visible version `v` is one the workload committed, and every key reads
//!   what it held after commit `v`;
//! - an open that succeeds keeps every commit synced before the first damaged byte: every
//!   commit whose log frame ends before the first log position a mutation touched (all
//!   were synced);
//! - `inspect` (what `inmem verify` prints) predicted the outcome exactly: the same error,
//!   or the same `Database::recovery`;
//! - a refused open leaves every file as it was;
//! - the undamaged directory opens in every mode at the last commit.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use inmem_engine::{inspect_with_log_options, Database, Limits, Options, RecoveryMode, Retention};
use inmem_wal::format::{decode_frame, Decoded, SegmentHeader, SEGMENT_HEADER_LEN};
use inmem_wal::{LogPosition, WalOptions};
use libfuzzer_sys::fuzz_target;

const COMMITS: u64 = 80;
const CHECKPOINTS_AFTER: [u64; 2] = [40, 60];
const KEYS: u64 = 8;

/// The state after each commit, by version (index 0: empty).
type History = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

struct Base {
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
    root: PathBuf,
    history: History,
    /// The log position where each commit's frame ends, for the commits still in the log.
    frame_ends: Vec<(u64, u64)>,
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

fn options(recovery: RecoveryMode) -> (Options, WalOptions) {
    let options = Options::default()
        .retention(Retention::KeepAll)
        .checkpoint_log_bytes(0)
        .recovery(recovery)
        .limits(Limits { key_bytes_max: 64, ..Limits::default() });
    let log = WalOptions::default().segment_size(16 << 10).max_record_bytes(4 << 10);
    (options, log)
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = scratch();
        let root = dir.path().join("db");
        let (options, log) = options(RecoveryMode::TolerateTornTail);
        let db = Database::open_with_log_options(&root, options, log).expect("open");
        let mut history: History = vec![BTreeMap::new()];
        for commit in 1..=COMMITS {
            let key = format!("key/{}", commit % KEYS).into_bytes();
            let mut state = history.last().cloned().unwrap_or_default();
            let version = if commit % 7 == 0 {
                state.remove(&key);
                db.delete(&key).expect("delete")
            } else {
                let value = vec![commit as u8; 100 + (commit as usize * 37) % 300];
                state.insert(key.clone(), value.clone());
                db.put(&key, &value).expect("put")
            };
            assert_eq!(version.get(), commit);
            history.push(state);
            if CHECKPOINTS_AFTER.contains(&commit) {
                db.checkpoint().expect("checkpoint");
            }
        }
        db.close().expect("close");
        let frame_ends = frame_ends(&root);
        Base { _dir: dir, root, history, frame_ends }
    })
}

/// `(commit, end position of its frame)` for the commits in the log of the database at
/// `root`: the log's frames are the last commits, one each, in order.
fn frame_ends(root: &Path) -> Vec<(u64, u64)> {
    let mut ends = Vec::new();
    for segment in with_extension(&files(root), "wal") {
        let bytes = std::fs::read(&segment).expect("read");
        let header = SegmentHeader::decode(&bytes).expect("a valid header");
        let mut offset = SEGMENT_HEADER_LEN;
        let mut position = header.first_position;
        while let Decoded::Frame(frame) =
            decode_frame(&bytes[offset as usize..], position, header.frame_seed(), 4 << 10)
        {
            offset += frame.len as u64;
            position = LogPosition::new(position.get() + frame.len as u64);
            ends.push(position.get());
        }
    }
    let first = COMMITS + 1 - ends.len() as u64;
    (first..=COMMITS).zip(ends).collect()
}

/// The first log position `mutation` may damage, if it touches the log (`None` for a
/// checkpoint).
fn damaged_position(root: &Path, mutation: &Mutation) -> Option<u64> {
    let files = files(root);
    let first_of = |path: &Path| -> Option<u64> {
        let stem = path.file_stem()?.to_str()?;
        (path.extension()? == "wal").then(|| stem.parse().ok())?
    };
    let in_file = |file: u8, at: u64| -> Option<u64> {
        let path = pick(&files, file)?;
        let first = first_of(&path)?;
        Some(first + at.saturating_sub(SEGMENT_HEADER_LEN))
    };
    match *mutation {
        Mutation::Truncate { file, at } | Mutation::Zero { file, at, .. } => {
            in_file(file, u64::from(at))
        }
        Mutation::Flip { file, at, .. } => {
            let path = pick(&files, file)?;
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0).max(1);
            in_file(file, u64::from(at) % len)
        }
        Mutation::Remove { file } => in_file(file, 0),
        Mutation::DuplicateSegment { file, shift } => {
            let first = first_of(&pick(&with_extension(&files, "wal"), file)?)?;
            Some(first.min(first.saturating_add(u64::from(shift) * 8)))
        }
        Mutation::RenameCheckpoint { .. } => None,
    }
}

/// Every file under `root` and its bytes (a directory as `None`).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.insert(path.clone(), None);
                pending.push(path);
            } else {
                found.insert(path.clone(), std::fs::read(&path).ok());
            }
        }
    }
    found
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Truncate {
        file: u8,
        at: u16,
    },
    Flip {
        file: u8,
        at: u16,
        bit: u8,
    },
    Zero {
        file: u8,
        at: u16,
        len: u16,
    },
    Remove {
        file: u8,
    },
    /// Copies a segment under the name of a position `shift * 8` bytes on.
    DuplicateSegment {
        file: u8,
        shift: u16,
    },
    /// Copies a checkpoint under the name of another version.
    RenameCheckpoint {
        file: u8,
        version: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    mode: u8,
    mutations: Vec<Mutation>,
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for sub in ["wal", "checkpoints"] {
        if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
            found.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
    found.sort();
    found
}

/// Copies a file, again when a signal (libFuzzer's timer) interrupts the copy.
fn copy(from: &Path, to: &Path) {
    loop {
        match std::fs::copy(from, to) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            copied => {
                copied.expect("copy");
                return;
            }
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    // The lock file too: every database directory has one, and a refused open is checked
    // to leave every file as it was.
    std::fs::create_dir_all(to).expect("mkdir");
    copy(&from.join("LOCK"), &to.join("LOCK"));
    for sub in ["wal", "checkpoints"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        if let Ok(entries) = std::fs::read_dir(from.join(sub)) {
            for entry in entries.flatten() {
                copy(&entry.path(), &to.join(sub).join(entry.file_name()));
            }
        }
    }
}

fn pick(files: &[PathBuf], file: u8) -> Option<PathBuf> {
    (!files.is_empty()).then(|| files[file as usize % files.len()].clone())
}

fn with_extension(files: &[PathBuf], extension: &str) -> Vec<PathBuf> {
    files.iter().filter(|path| path.extension().is_some_and(|e| e == extension)).cloned().collect()
}

fn mutate(root: &Path, mutation: &Mutation) {
    let files = files(root);
    match *mutation {
        Mutation::Truncate { file, at } => {
            if let Some(path) = pick(&files, file) {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let at = u64::from(at).min(len);
                let _ =
                    std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(at));
            }
        }
        Mutation::Flip { file, at, bit } => {
            if let Some(path) = pick(&files, file) {
                let mut bytes = std::fs::read(&path).unwrap_or_default();
                if !bytes.is_empty() {
                    let at = at as usize % bytes.len();
                    bytes[at] ^= 1 << (bit % 8);
                    let _ = std::fs::write(&path, bytes);
                }
            }
        }
        Mutation::Zero { file, at, len } => {
            if let Some(path) = pick(&files, file) {
                let mut bytes = std::fs::read(&path).unwrap_or_default();
                let at = (at as usize).min(bytes.len());
                let end = (at + len as usize).min(bytes.len());
                bytes[at..end].fill(0);
                let _ = std::fs::write(&path, bytes);
            }
        }
        Mutation::Remove { file } => {
            if let Some(path) = pick(&files, file) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Mutation::DuplicateSegment { file, shift } => {
            if let Some(path) = pick(&with_extension(&files, "wal"), file) {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                if let Ok(first) = stem.parse::<u64>() {
                    let name = format!("{:020}.wal", first.saturating_add(u64::from(shift) * 8));
                    let _ = std::fs::copy(&path, path.with_file_name(name));
                }
            }
        }
        Mutation::RenameCheckpoint { file, version } => {
            if let Some(path) = pick(&with_extension(&files, "ckpt"), file) {
                let name = format!("checkpoint-{:020}.ckpt", u64::from(version));
                let _ = std::fs::copy(&path, path.with_file_name(name));
            }
        }
    }
}

fn contents(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.snapshot().prefix(b"").map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
}

fuzz_target!(|input: Input| {
    let base = base();
    let dir = scratch();
    let root = dir.path().join("db");
    copy_tree(&base.root, &root);
    let mut damaged: Option<u64> = None;
    for mutation in input.mutations.iter().take(4) {
        if let Some(position) = damaged_position(&root, mutation) {
            damaged = Some(damaged.map_or(position, |earlier| earlier.min(position)));
        }
        mutate(&root, mutation);
    }
    let mode = match input.mode % 3 {
        0 => RecoveryMode::TolerateTornTail,
        1 => RecoveryMode::PointInTime,
        _ => RecoveryMode::Strict,
    };
    let (options, log) = options(mode);
    let predicted = inspect_with_log_options(&root, &log).map(|found| found.prediction(mode).clone());
    let before = snapshot(&root);
    let db = match Database::open_with_log_options(&root, options, log) {
        Ok(db) => db,
        Err(error) => {
            assert!(!input.mutations.is_empty(), "the undamaged directory failed in {mode:?}: {error}");
            match predicted {
                Ok(Err(predicted)) => assert_eq!(predicted.to_string(), error.to_string()),
                Ok(Ok(_)) => panic!("inspect predicted an open; it failed: {error}"),
                // Not even a directory to inspect: the open must fail too.
                Err(_) => {}
            }
            let after = snapshot(&root);
            let changed: Vec<&PathBuf> = before
                .keys()
                .chain(after.keys())
                .filter(|path| before.get(*path) != after.get(*path))
                .collect();
            assert!(changed.is_empty(), "a refused open ({error}) changed {changed:?}");
            return;
        }
    };
    match predicted {
        Ok(Ok(recovery)) => {
            let opened = db.recovery().map(|found| format!("{found:?}"));
            assert_eq!(Some(format!("{recovery:?}")), opened, "inspect predicted another open");
        }
        Ok(Err(error)) => panic!("inspect predicted a refusal ({error}); the open succeeded"),
        Err(error) => panic!("inspect failed ({error}); the open succeeded"),
    }
    let version = db.visible_version().get();
    let Some(expected) = base.history.get(version as usize) else {
        panic!("opened at version {version}, beyond the {COMMITS} committed");
    };
    assert_eq!(&contents(&db), expected, "the state at version {version} is not the one committed");
    if input.mutations.is_empty() {
        assert_eq!(version, COMMITS, "the undamaged directory lost commits in {mode:?}");
    }
    // Every commit whose frame ends before the first damaged position is kept, in every
    // mode. (Past it, damage that erases the log's tail, its close trailer included, reads
    // as a log that ended there: docs/recovery.md, "What no proof can reach".)
    let synced_before = damaged.map_or(COMMITS, |damaged| {
        let kept = base.frame_ends.iter().take_while(|(_, end)| *end <= damaged);
        let first_in_log = base.frame_ends.first().map_or(COMMITS, |(commit, _)| commit - 1);
        kept.last().map_or(first_in_log, |(commit, _)| *commit)
    });
    assert!(
        version >= synced_before,
        "{mode:?} kept {version} commits, {synced_before} were before the first damaged byte"
    );
});
