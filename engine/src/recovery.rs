//! The recovery decision: for a database directory and a recovery mode, which checkpoint
//! an open loads and what the log's recovery does, decided before anything is changed.
//! [`crate::Database::open`] carries the decision out; [`crate::inspect`] (and so
//! `inmem verify`) reports it for every mode, so the two cannot disagree. The table this
//! implements is `docs/recovery.md`.
//!
//! 1. The checkpoints are tried newest first. A damaged one is passed over (and reported)
//!    for the one before it, except under `Strict`, which refuses it. An I/O error reading
//!    one is never passed over: the open fails with it.
//! 2. The first whole checkpoint is chosen, and the log is surveyed knowing what it covers
//!    ([`inmem_wal::WalOptions::checkpointed`]): damage wholly below its position loses
//!    nothing; a log that starts after it, or ends before it, misses segments. The older
//!    checkpoint and the log since it are the fallback only for a damaged newer one; with
//!    no whole checkpoint, the log alone from position zero is, if it still holds it all.
//! 3. The survey's verdict under the mode is the log's part of the decision: refused
//!    (naming file and offset), or what the open keeps, cuts (salvaging the bytes first)
//!    and sets aside.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inmem_wal::io::Io;
use inmem_wal::{LogPosition, RecoveryMode, Survey, Wal, WalOptions};

use crate::error::{Error, Result};

/// What opening a database directory recovered, as [`crate::Database::recovery`] reports it
/// (and [`crate::inspect`] predicts it for each mode).
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The checkpoint loaded, if any.
    pub checkpoint: Option<PathBuf>,
    /// Its version (zero without one): the log was replayed after it.
    pub checkpoint_version: crate::CommitVersion,
    /// Newer checkpoints passed over because they are damaged (each an
    /// [`Error::CorruptCheckpoint`] naming file and offset); the one loaded is older.
    pub damaged_checkpoints: Vec<Error>,
    /// What the log's recovery did (a torn tail cut, segments set aside).
    pub log: inmem_wal::RecoveryReport,
}

/// What a whole checkpoint covers: every commit up to `version`, and the log before
/// `replay_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Covers {
    pub(crate) path: PathBuf,
    pub(crate) version: u64,
    pub(crate) replay_from: u64,
}

/// What an open of a directory does, decided: the checkpoint it loads (with what loading
/// it produced) and the log's survey.
pub(crate) struct Decision<T> {
    /// The checkpoint chosen and what loading it gave, if any.
    pub(crate) checkpoint: Option<(Covers, T)>,
    /// Newer checkpoints passed over as damaged.
    pub(crate) damaged: Vec<Error>,
    /// What the log's recovery does, knowing what the checkpoint covers.
    pub(crate) log: Survey,
    /// The log options the survey was taken with.
    pub(crate) log_options: WalOptions,
}

impl<T> Decision<T> {
    /// What the open will report as [`crate::Database::recovery`].
    pub(crate) fn recovery(&self) -> Recovery {
        Recovery {
            checkpoint: self.checkpoint.as_ref().map(|(covers, _)| covers.path.clone()),
            checkpoint_version: crate::CommitVersion::new(
                self.checkpoint.as_ref().map_or(0, |(covers, _)| covers.version),
            ),
            damaged_checkpoints: self.damaged.clone(),
            log: self.log.report().clone(),
        }
    }
}

/// The I/O backend the checkpoints of a directory are read through before its log is
/// open: the log's given backend, if any (a simulated disk holds both), else plain
/// file-system calls (the same files the real backends see).
pub(crate) fn checkpoint_io(log_options: &WalOptions) -> Arc<dyn Io> {
    match &log_options.io {
        Some(io) => Arc::clone(io),
        None => Arc::new(inmem_wal::io::sync::SyncIo::new()),
    }
}

/// Decides how the database whose log is in `wal_dir` and whose checkpoints are
/// `checkpoints` (newest first) opens under `mode`, changing nothing. `load` reads a
/// checkpoint (linking it into a keyspace, for an open; only verifying it, for `inspect`).
///
/// # Errors
/// What the mode refuses: a damaged checkpoint under `Strict`, or with nothing to fall
/// back on; the log's anomaly ([`Error::Log`], naming file and offset); an I/O error.
pub(crate) fn decide<T>(
    wal_dir: &Path,
    checkpoints: &[PathBuf],
    mode: RecoveryMode,
    log_options: &WalOptions,
    mut load: impl FnMut(&Path) -> Result<(Covers, T)>,
) -> Result<Decision<T>> {
    let mut damaged = Vec::new();
    for path in checkpoints {
        match load(path) {
            Ok((covers, loaded)) => {
                let log_options = with(log_options, mode, LogPosition::new(covers.replay_from));
                let log = survey(wal_dir, &log_options)?;
                return Ok(Decision {
                    checkpoint: Some((covers, loaded)),
                    damaged,
                    log,
                    log_options,
                });
            }
            Err(error @ Error::CorruptCheckpoint { .. }) if mode != RecoveryMode::Strict => {
                damaged.push(error);
            }
            Err(error) => return Err(error),
        }
    }
    let log_options = with(log_options, mode, LogPosition::ZERO);
    match survey(wal_dir, &log_options) {
        Ok(log) => Ok(Decision { checkpoint: None, damaged, log, log_options }),
        // The log alone does not hold everything: the damaged checkpoint is what is lost.
        Err(_) if !damaged.is_empty() => Err(damaged.swap_remove(0)),
        Err(error) => Err(error),
    }
}

fn with(log_options: &WalOptions, mode: RecoveryMode, checkpointed: LogPosition) -> WalOptions {
    log_options.clone().recovery(mode).checkpointed(checkpointed)
}

fn survey(wal_dir: &Path, log_options: &WalOptions) -> Result<Survey> {
    Wal::survey(wal_dir, log_options).map_err(|error| Error::log("recovering", error))
}

/// What an open in each mode would do, as [`crate::inspect`] reports it: the [`Recovery`]
/// it would report, or the error it would fail with. `read` verifies a checkpoint (each is
/// read once, whatever the modes).
pub(crate) fn predict(
    wal_dir: &Path,
    checkpoints: &[PathBuf],
    log_options: &WalOptions,
    read: impl Fn(&Path) -> Result<Covers>,
) -> Vec<(RecoveryMode, Result<Recovery>)> {
    let mut read_once: Vec<(PathBuf, Result<Covers>)> = Vec::new();
    [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime, RecoveryMode::Strict]
        .into_iter()
        .map(|mode| {
            let decided = decide(wal_dir, checkpoints, mode, log_options, |path| {
                let covers = match read_once.iter().find(|(read, _)| read == path) {
                    Some((_, covers)) => covers.clone(),
                    None => {
                        let covers = read(path);
                        read_once.push((path.to_path_buf(), covers.clone()));
                        covers
                    }
                };
                covers.map(|covers| (covers, ()))
            });
            (mode, decided.map(|decision| decision.recovery()))
        })
        .collect()
}
