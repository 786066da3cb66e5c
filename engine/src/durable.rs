//! A database on a directory: its lock, its write-ahead log, the commit path through the
//! log, and recovery by replaying it.
//!
//! # Directory layout
//!
//! | path | what |
//! |---|---|
//! | `LOCK` | empty; held with an exclusive `flock` while a handle has the database open |
//! | `wal/` | the write-ahead log's segments (`wal/src/format.rs` documents them) |
//! | `checkpoints/` | `checkpoint-<version>.ckpt` files (`checkpoint.rs` documents them): the newest and the one before it |
//!
//! # Commits
//!
//! A commit's record is encoded before the sequencer (`record.rs`), and handed to the log
//! after it, once the commit has its version. Records may so reach the log out of version
//! order; the visible version keeps the order (`visible.rs`), and recovery restores it.
//!
//! - `Sync`: append, wait until the record is durable, then finish (become visible). A
//!   commit is visible only once durable, so every commit visible before it is durable too.
//! - `Buffered`: append, finish at once; the log syncs in the background. A transaction
//!   that asks for `Sync` in a buffered database waits, once it is visible, until
//!   everything appended by then is durable: its record and those of every earlier commit.
//!
//! A failed append or sync poisons the database: the failing commit never becomes visible,
//! and every later one fails. The log overwrites what it wrote since its last good sync
//! with zeros (best effort), and recovery keeps only a prefix of commits in version order
//! anyway, so nothing unacknowledged needs undoing here.
//!
//! # Recovery
//!
//! Open first decides, changing nothing (`recovery.rs`, the table in `docs/recovery.md`):
//! which checkpoint it loads (the newest whole one; the one before for a damaged one,
//! except under `Strict`), and what the log's recovery does knowing what that checkpoint
//! covers. A refused open leaves the directory as it was. Then it carries the decision out:
//! loads the checkpoint (`checkpoint.rs`), if any, opens the log (cutting a torn tail after
//! salvaging it, setting damaged parts aside under `PointInTime`), and replays the log
//! from the position the checkpoint names, applying commits above its version in version order: each
//! at the version it was given, over a contiguous run from the checkpoint's version. A
//! record that arrives before its predecessor waits for it. Records whose predecessor never reached the log are not applied (they were never
//! acknowledged: a commit is acknowledged only once every earlier one is, in its mode).
//! Their versions are handed out again, so open first logs a reset record (`record.rs`)
//! that voids them, and makes it durable before the first new commit.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use inmem_wal::{Durability as LogDurability, LogPosition, RecoveryMode, Wal, WalOptions};

use crate::bytes::Bytes;
use crate::checkpoint;
use crate::db::Shared;
use crate::error::{Error, Limit, Result};
use crate::options::{Durability, Options};
use crate::record::{self, DecodedCommit};
use crate::recovery::{self, Recovery};
use crate::sync::epoch::{self, Owned};
use crate::sync::{AtomicU64, Mutex};

/// The lock file's name in a database directory.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// The log's directory in a database directory.
pub(crate) const WAL_DIR: &str = "wal";

/// The database directory's lock: held as long as this is alive.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, creating the lock file if needed.
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle holds it; [`Error::Io`].
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| Error::io("opening the database's lock file", &path, error))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Locked { path }),
            Err(errno) => Err(Error::io("locking the database's lock file", path, errno.into())),
        }
    }
}

/// The log of a database whose durability is `Buffered` or `Sync`.
pub(crate) struct Log {
    pub(crate) wal: Wal,
    /// The database's durability: `Buffered` or `Sync`.
    pub(crate) durability: Durability,
    /// The database's directory.
    pub(crate) dir: PathBuf,
    /// Held while a checkpoint is taken: one at a time.
    pub(crate) checkpointing: Mutex<()>,
    /// Where replay starts after the newest checkpoint (0 without one).
    pub(crate) checkpointed_end: AtomicU64,
}

/// Opens the log of `dir`, replays it into `shared` and returns the log (or `None` for
/// `Durability::None`) with the version recovered.
pub(crate) fn open_log(dir: &Path, options: &Options, wal_options: WalOptions) -> Result<Opened> {
    let mut wal_options = wal_options;
    wal_options.durability = match options.durability {
        Durability::Buffered { interval } => LogDurability::Buffered { interval },
        Durability::Sync | Durability::None => LogDurability::Sync,
    };
    wal_options.backend = options.io_backend;
    // Decide before changing anything (`recovery.rs`): a refused open leaves the
    // directory as it was.
    // Read through the log's given backend, if any (a simulated disk holds both), before
    // the log is open; else as the real backends see them.
    let checkpoint_dir = dir.join(checkpoint::CHECKPOINT_DIR);
    let checkpoints = match &wal_options.io {
        Some(io) => checkpoint::Checkpoints::new(std::sync::Arc::clone(io), checkpoint_dir),
        None => checkpoint::Checkpoints::on_file_system(checkpoint_dir),
    };
    let listed: Vec<PathBuf> = checkpoints.list()?.into_iter().map(|(_, path)| path).collect();
    let decision =
        recovery::decide(&dir.join(WAL_DIR), &listed, options.recovery, &wal_options, |path| {
            let shared = Shared::new(options.clone());
            let info = checkpoints.read(Some(&shared), path)?;
            Ok((covers(&info), shared))
        })?;
    let recovery = decision.recovery();
    let recovery::Decision { checkpoint, log, log_options, .. } = decision;
    // A checkpoint left unfinished by a crash holds nothing the log does not.
    checkpoints.remove_unfinished()?;
    let wal = Wal::open_surveyed(log, log_options)
        .map_err(|error| Error::log("opening the log", error))?;
    let (base, shared) = match checkpoint {
        Some((covers, shared)) => (
            checkpoint::Loaded { version: covers.version, replay_from: covers.replay_from },
            shared,
        ),
        None => (checkpoint::Loaded { version: 0, replay_from: 0 }, Shared::new(options.clone())),
    };
    let replayed = replay(&shared, &wal, &dir.join(WAL_DIR), base)?;
    if options.durability == Durability::None {
        // Nothing this session commits is logged; the versions it hands out are never in
        // the log, and so never meet the orphans.
        wal.close().map_err(|error| Error::log("closing the log after recovery", error))?;
        return Ok(Opened { shared, log: None, version: replayed.version, recovery });
    }
    if replayed.orphans > 0 {
        wal.append_sync(record::RESET, &record::encode_reset(replayed.version))
            .map_err(|error| Error::log("logging the reset of unkept records", error))?;
    }
    let log = Log {
        wal,
        durability: options.durability,
        dir: dir.to_path_buf(),
        checkpointing: Mutex::new(()),
        checkpointed_end: AtomicU64::new(base.replay_from),
    };
    Ok(Opened { shared, log: Some(log), version: replayed.version, recovery })
}

/// What [`open_log`] recovered.
pub(crate) struct Opened {
    pub(crate) shared: Shared,
    pub(crate) log: Option<Log>,
    pub(crate) version: u64,
    pub(crate) recovery: Recovery,
}

/// What the checkpoint `info` describes covers.
fn covers(info: &checkpoint::CheckpointInfo) -> recovery::Covers {
    recovery::Covers {
        path: info.path.clone(),
        version: info.version,
        replay_from: info.replay_from,
    }
}

/// What a replay recovered.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The version of the last commit applied.
    pub(crate) version: u64,
    /// Commit records not applied, for want of a predecessor.
    pub(crate) orphans: usize,
}

/// Applies every commit of `wal` (in directory `wal_dir`) to `shared`, in version order,
/// as far as they run contiguously.
fn replay(
    shared: &Shared,
    wal: &Wal,
    wal_dir: &Path,
    base: checkpoint::Loaded,
) -> Result<Replayed> {
    let first = wal.first_position().get();
    if first > base.replay_from {
        let reason = format!(
            "the log starts at position {first}, after position {} where replay must start \
             (a deleted segment not covered by a checkpoint)",
            base.replay_from
        );
        let gap = inmem_wal::Error::Inconsistent { path: wal_dir.to_path_buf(), reason };
        return Err(Error::log("recovering", gap));
    }
    let reader = wal
        .read_from(LogPosition::new(base.replay_from))
        .map_err(|error| Error::log("reading the log", error))?;
    let mut applied = base.version;
    let mut waiting: BTreeMap<u64, DecodedCommit> = BTreeMap::new();
    for record in reader {
        let record = record.map_err(|error| Error::log("reading the log", error))?;
        let position = record.position.get();
        if record.kind == record::COMMIT {
            let commit = record::decode(&record.payload, position)?;
            if commit.version <= base.version {
                // In the checkpoint already: logged after the position it starts replay at.
                continue;
            }
            if commit.version <= applied || waiting.contains_key(&commit.version) {
                return Err(Error::CorruptRecord { position, reason: "a version logged twice" });
            }
            waiting.insert(commit.version, commit);
            while let Some(next) = waiting.remove(&(applied + 1)) {
                apply(shared, next);
                applied += 1;
            }
        } else if record.kind == record::RESET {
            let version = record::decode_reset(&record.payload, position)?;
            if version != applied {
                return Err(Error::CorruptRecord {
                    position,
                    reason: "a reset to another version than the one recovered",
                });
            }
            waiting.clear();
        } else {
            return Err(Error::CorruptRecord { position, reason: "an unknown record kind" });
        }
    }
    Ok(Replayed { version: applied, orphans: waiting.len() })
}

/// Links a recovered commit's versions.
fn apply(shared: &Shared, commit: DecodedCommit) {
    let guard = epoch::pin();
    let mut state = shared.sequencer.lock();
    shared.range_deletes.install(&commit.prefixes, commit.version);
    for (key, node) in commit.writes {
        shared.link(&mut state, key, Owned::new(node), &guard);
    }
}

/// The record of a commit, encoded before the sequencer.
///
/// # Errors
/// [`Error::LimitExceeded`] ([`Limit::CommitBytes`]) for a record longer than `max` bytes.
pub(crate) fn encode_commit(
    prefixes: &[Bytes],
    writes: &[(Bytes, Owned<crate::version::VersionNode>)],
    max: u64,
) -> Result<Vec<u8>> {
    let writes = writes.iter().map(|(key, node)| (key.as_slice(), &**node));
    let record = record::encode_with_prefixes(prefixes, writes);
    if record.len() as u64 > max {
        let actual = record.len() as u64;
        return Err(Error::LimitExceeded { limit: Limit::CommitBytes, actual, max });
    }
    Ok(record)
}

impl Shared {
    /// Finishes commit `version` through the log: appends its record (version patched in)
    /// and, as its durability asks, waits for it; then makes it visible. A failure poisons
    /// the database and the commit never becomes visible.
    pub(crate) fn finish_logged(
        &self,
        log: &Log,
        mut record: Vec<u8>,
        version: u64,
        durability: Durability,
    ) -> Result<()> {
        record::set_version(&mut record, version);
        let failed = |doing: &'static str, error: inmem_wal::Error| {
            self.poison();
            Error::log(doing, error)
        };
        if log.durability == Durability::Sync {
            // This thread waits for it, and so writes it or joins a batch: no hand-off to
            // the background writer. Parked before the wait, the commit is made visible by
            // whichever committer of its batch wakes first.
            let position = log
                .wal
                .append_to_wait(record::COMMIT, &record)
                .map_err(|error| failed("committing", error))?;
            self.visible.park(version, position.get() + 1);
            log.wal.wait_durable(position).map_err(|error| failed("committing", error))?;
            self.visible.announce(|| log.wal.durable_position().get());
        } else {
            log.wal.append(record::COMMIT, &record).map_err(|error| failed("committing", error))?;
            self.visible.finish(version);
        }
        self.wait_visible(version)?;
        if log.durability != Durability::Sync && durability == Durability::Sync {
            // Every commit up to this one is visible, so appended: waiting for the log's
            // end as it is now covers all of their records.
            let end: LogPosition = log.wal.end_position();
            log.wal.wait_durable_before(end).map_err(|error| failed("syncing a commit", error))?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::expect_used, reason = "a failed expectation in a test helper fails the test")]
mod tests {
    use super::*;
    use crate::version::VersionNode;
    use crate::Database;

    /// Appends a commit record of `key` = `value` at `version` to the log in `dir`.
    fn log_commit(wal: &Wal, version: u64, key: &[u8], value: &[u8]) {
        let node = VersionNode::put(Bytes::copy_from(value), 0);
        let mut payload = record::encode([(key, &node)].into_iter());
        record::set_version(&mut payload, version);
        wal.append_sync(record::COMMIT, &payload).expect("append");
    }

    fn raw_log(dir: &Path) -> Wal {
        Wal::open(dir.join(WAL_DIR), WalOptions::default()).expect("open log")
    }

    #[test]
    fn records_out_of_version_order_are_applied_in_order_and_orphans_are_voided() {
        let dir = tempfile::tempdir().unwrap();
        let wal = raw_log(dir.path());
        // 1, then 3 before 2 (as two committers may append), then 5 whose 4 never came.
        log_commit(&wal, 1, b"k", b"one");
        log_commit(&wal, 3, b"k", b"three");
        log_commit(&wal, 2, b"k", b"two");
        log_commit(&wal, 5, b"k", b"five");
        wal.close().expect("close");

        let options = Options::default().retention(crate::Retention::KeepAll);
        let db = Database::open(dir.path(), options.clone()).expect("open");
        assert_eq!(db.visible_version().get(), 3, "applied 1, 2, 3; 5 lacks 4");
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"three"[..]));
        let history: Vec<_> = db.history(b"k", 10, None).unwrap();
        let values: Vec<_> =
            history.iter().map(|v| v.value.as_ref().map(|b| b.as_slice().to_vec())).collect();
        assert_eq!(values, [Some(b"three".to_vec()), Some(b"two".to_vec()), Some(b"one".to_vec())]);
        // Version 4 is handed out again; the reset logged at open voids the old 5.
        assert_eq!(db.put(b"k", b"four").unwrap().get(), 4);
        drop(db);

        let db = Database::open(dir.path(), options).expect("reopen");
        assert_eq!(db.visible_version().get(), 4);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"four"[..]));
        assert_eq!(db.put(b"k", b"five again").unwrap().get(), 5);
    }

    #[test]
    fn records_a_checkpoint_covers_are_skipped_by_replay() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Options::default()).expect("open");
        for value in [&b"1"[..], b"2", b"3"] {
            db.put(b"k", value).expect("put");
        }
        // A checkpoint at 3 whose replay starts at the log's beginning: all of the log's
        // records are at or below its version.
        let checkpoints = dir.path().join(checkpoint::CHECKPOINT_DIR);
        checkpoint::write(&db.shared, &checkpoints, 3, 0).expect("checkpoint");
        drop(db);
        let db = Database::open(dir.path(), Options::default()).expect("reopen");
        assert_eq!(db.visible_version().get(), 3);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(db.put(b"k", b"4").unwrap().get(), 4);
    }

    #[test]
    fn a_version_logged_twice_is_an_error_naming_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let wal = raw_log(dir.path());
        log_commit(&wal, 1, b"a", b"x");
        let second = wal.end_position().get();
        log_commit(&wal, 1, b"b", b"y");
        wal.close().expect("close");
        let error = Database::open(dir.path(), Options::default()).expect_err("refused");
        assert!(
            matches!(error, Error::CorruptRecord { position, reason: "a version logged twice" } if position == second),
            "{error}"
        );
    }

    #[test]
    fn a_record_of_an_unknown_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = raw_log(dir.path());
        let kind = inmem_wal::FrameKind::new(99).unwrap();
        wal.append_sync(kind, b"?").expect("append");
        wal.close().expect("close");
        let error = Database::open(dir.path(), Options::default()).expect_err("refused");
        assert!(matches!(error, Error::CorruptRecord { reason: "an unknown record kind", .. }));
    }
}

/// What a database directory holds, checked without changing anything in it, and what an
/// open in each recovery mode would do with it: by [`inspect`].
#[derive(Debug)]
pub struct Inspection {
    /// Each checkpoint file, newest first: what it holds, or its damage.
    pub checkpoints: Vec<std::result::Result<checkpoint::CheckpointInfo, Error>>,
    /// The log's files and their sizes, by name.
    pub segments: Vec<(PathBuf, u64)>,
    /// For each recovery mode (`TolerateTornTail`, `PointInTime`, `Strict`): what
    /// [`crate::Database::open`] in that mode would report as [`crate::Database::recovery`],
    /// or the error it would fail with. The same decision the open carries out
    /// (docs/recovery.md).
    pub predictions: [(RecoveryMode, std::result::Result<Recovery, Error>); 3],
}

impl Inspection {
    /// What an open in `mode` would do.
    pub fn prediction(&self, mode: RecoveryMode) -> &std::result::Result<Recovery, Error> {
        let index = match mode {
            RecoveryMode::TolerateTornTail => 0,
            RecoveryMode::PointInTime => 1,
            RecoveryMode::Strict => 2,
        };
        &self.predictions[index].1
    }

    /// Whether anything is damaged: a checkpoint, or anything an open in some mode would
    /// refuse, cut, skip, set aside or remove.
    pub fn is_damaged(&self) -> bool {
        self.checkpoints.iter().any(std::result::Result::is_err)
            || self
                .predictions
                .iter()
                .any(|(_, predicted)| !predicted.as_ref().is_ok_and(Recovery::is_clean))
    }
}

/// Checks every checkpoint and log segment of the database directory `dir`, changing
/// nothing (no lock is taken: it may be open elsewhere, and then what it reports may be a
/// moment old), and predicts what an open in each recovery mode would do, judging the log
/// with its default limits.
///
/// # Errors
/// [`Error::Io`] if `dir` is not a directory or cannot be listed.
pub fn inspect(dir: &Path) -> Result<Inspection> {
    inspect_with_log_options(dir, &WalOptions::default())
}

/// [`inspect`], judging the log with `log_options`' limits (those the database is opened
/// with, through [`crate::Database::open_with_log_options`]).
///
/// # Errors
/// As [`inspect`].
pub fn inspect_with_log_options(dir: &Path, log_options: &WalOptions) -> Result<Inspection> {
    let inspecting = |error| Error::io("inspecting the database directory", dir, error);
    if !std::fs::metadata(dir).map_err(inspecting)?.is_dir() {
        return Err(inspecting(crate::error::not_a_directory()));
    }
    let read: Vec<(PathBuf, Result<checkpoint::CheckpointInfo>)> =
        checkpoint::list(&dir.join(checkpoint::CHECKPOINT_DIR))?
            .into_iter()
            .map(|(_, path)| {
                let info = checkpoint::read(None, &path);
                (path, info)
            })
            .collect();
    let wal_dir = dir.join(WAL_DIR);
    let mut segments = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&wal_dir) {
        for entry in entries.flatten() {
            let size = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
            segments.push((entry.path(), size));
        }
    }
    segments.sort();
    let covering: Vec<(PathBuf, Result<recovery::Covers>)> = read
        .iter()
        .map(|(path, info)| (path.clone(), info.as_ref().map(covers).map_err(Error::clone)))
        .collect();
    let predictions = recovery::predict(&wal_dir, &covering, log_options);
    let checkpoints = read.into_iter().map(|(_, info)| info).collect();
    Ok(Inspection { checkpoints, segments, predictions })
}
