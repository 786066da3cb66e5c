//! Inspecting a database directory without changing it: what it holds, and what an open in
//! each recovery mode would do with it.

use std::path::{Path, PathBuf};

use inmem_wal::{RecoveryMode, WalOptions};

use crate::checkpoint;
use crate::dir::WAL_DIR;
use crate::error::{Error, Result};
use crate::recovery::{self, Recovery};

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
        .map(|(path, info)| {
            (
                path.clone(),
                info.as_ref().map(checkpoint::CheckpointInfo::covers).map_err(Error::clone),
            )
        })
        .collect();
    let predictions = recovery::predict(&wal_dir, &covering, log_options);
    let checkpoints = read.into_iter().map(|(_, info)| info).collect();
    Ok(Inspection { checkpoints, segments, predictions })
}
