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

use inmem_wal::{LogPosition, RecoveryMode, Survey, Wal, WalOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::version::CommitVersion;

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

impl Recovery {
    /// Whether the open found nothing to report: no damaged checkpoint passed over, and
    /// nothing in the log cut, skipped, set aside or removed.
    pub fn is_clean(&self) -> bool {
        self.damaged_checkpoints.is_empty() && self.log.is_clean()
    }
}

/// The recovery modes, in the order [`predict`] gives them.
pub(crate) const MODES: [RecoveryMode; 3] =
    [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime, RecoveryMode::Strict];

/// What a whole checkpoint covers: every commit up to `version`, and the log before
/// `replay_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Covers {
    pub(crate) path: PathBuf,
    pub(crate) version: CommitVersion,
    pub(crate) replay_from: LogPosition,
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
            checkpoint_version: self
                .checkpoint
                .as_ref()
                .map_or(CommitVersion::ZERO, |(covers, _)| covers.version),
            damaged_checkpoints: self.damaged.clone(),
            log: self.log.report().clone(),
        }
    }
}

/// Decides how the database whose log is in `wal_dir` and whose checkpoints are
/// `checkpoints` (newest first) opens under `mode`, changing nothing. `load` reads a
/// checkpoint (linking it into a keyspace, for an open; only verifying it, for `inspect`).
/// `replay_from` forecasts, from a checkpoint's header alone, where its replay starts (or
/// gives `None`): the log is then surveyed from there while the checkpoint loads, on
/// another thread, and the survey is kept only if the checkpoint turns out whole with that
/// position, as the survey taken after the load would have been (both only read).
///
/// # Errors
/// What the mode refuses: a damaged checkpoint under `Strict`, or with nothing to fall
/// back on; the log's anomaly ([`Error::Log`], naming file and offset); an I/O error.
pub(crate) fn decide<T>(
    wal_dir: &Path,
    checkpoints: &[PathBuf],
    mode: RecoveryMode,
    log_options: &WalOptions,
    mut replay_from: impl FnMut(&Path) -> Option<LogPosition>,
    mut load: impl FnMut(&Path) -> Result<(Covers, T)>,
) -> Result<Decision<T>> {
    let mut damaged = Vec::new();
    for path in checkpoints {
        let forecast = replay_from(path);
        let (loaded, surveyed) = std::thread::scope(|scope| {
            let surveying = forecast.map(|position| {
                scope.spawn(move || survey(wal_dir, &with(log_options, mode, position)))
            });
            let loaded = load(path);
            let surveyed = surveying.map(|thread| {
                thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (loaded, surveyed)
        });
        match loaded {
            Ok((covers, loaded)) => {
                let log_options = with(log_options, mode, covers.replay_from);
                let log = match surveyed {
                    Some(surveyed) if forecast == Some(covers.replay_from) => surveyed?,
                    _ => survey(wal_dir, &log_options)?,
                };
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

/// What an open in each mode of [`MODES`] would do, as [`crate::inspect`] reports it:
/// the [`Recovery`] it would report, or the error it would fail with, given the
/// checkpoints (newest first) as read and verified once.
pub(crate) fn predict(
    wal_dir: &Path,
    checkpoints: &[(PathBuf, Result<Covers>)],
    log_options: &WalOptions,
) -> [(RecoveryMode, Result<Recovery>); 3] {
    let paths: Vec<PathBuf> = checkpoints.iter().map(|(path, _)| path.clone()).collect();
    MODES.map(|mode| {
        // Each checkpoint was read already: nothing to overlap the survey with.
        let decided = decide(
            wal_dir,
            &paths,
            mode,
            log_options,
            |_| None,
            |path| {
                let read = checkpoints.iter().find(|(read, _)| read == path);
                read.map_or_else(|| Err(missing(path)), |(_, covers)| covers.clone())
                    .map(|covers| (covers, ()))
            },
        );
        (mode, decided.map(|decision| decision.recovery()))
    })
}

/// The error for a checkpoint `decide` asked for that was not read: none, as it asks only
/// for the paths it was given.
fn missing(path: &Path) -> Error {
    let error = std::io::Error::new(std::io::ErrorKind::NotFound, "not among those read");
    Error::io("reading a checkpoint", path, error)
}
