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
//! Invariants checked:
//! - nothing panics;
//! - an open either fails with an error, or opens a state that is a prefix of the committed
//!   history: its visible version `v` is one the workload committed, and every key reads
//!   what it held after commit `v`;
//! - the undamaged directory opens in every mode at the last commit.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use inmem_engine::{Database, Limits, Options, RecoveryMode, Retention};
use inmem_wal::WalOptions;
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
        Base { _dir: dir, root, history }
    })
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

fn copy_tree(from: &Path, to: &Path) {
    for sub in ["wal", "checkpoints"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        if let Ok(entries) = std::fs::read_dir(from.join(sub)) {
            for entry in entries.flatten() {
                std::fs::copy(entry.path(), to.join(sub).join(entry.file_name())).expect("copy");
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
    for mutation in input.mutations.iter().take(4) {
        mutate(&root, mutation);
    }
    let mode = match input.mode % 3 {
        0 => RecoveryMode::TolerateTornTail,
        1 => RecoveryMode::PointInTime,
        _ => RecoveryMode::Strict,
    };
    let (options, log) = options(mode);
    let Ok(db) = Database::open_with_log_options(&root, options, log) else {
        assert!(!input.mutations.is_empty(), "the undamaged directory failed to open in {mode:?}");
        return;
    };
    let version = db.visible_version().get();
    let Some(expected) = base.history.get(version as usize) else {
        panic!("opened at version {version}, beyond the {COMMITS} committed");
    };
    assert_eq!(&contents(&db), expected, "the state at version {version} is not the one committed");
    if input.mutations.is_empty() {
        assert_eq!(version, COMMITS, "the undamaged directory lost commits in {mode:?}");
    }
});
