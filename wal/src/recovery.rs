//! Recovery: what [`crate::Wal::open`] does before the log takes appends.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::format::Damage;
use crate::io::Io;
use crate::options::{RecoveryMode, WalOptions};
use crate::segment::SegmentMeta;
use crate::LogPosition;

/// What recovery found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode it ran in.
    pub mode: RecoveryMode,
    /// Segments kept.
    pub segments: usize,
    /// Valid records in them.
    pub records: u64,
    /// The first position the log holds.
    pub first: LogPosition,
    /// Where the next record goes.
    pub end: LogPosition,
    /// The damaged tail cut off, if any.
    pub cut: Option<TailCut>,
    /// Segments set aside (renamed with a `.dropped` suffix) by `PointInTime`.
    pub dropped: Vec<PathBuf>,
    /// Unfinished segment files (`.tmp`, from a crash while creating one) removed.
    pub removed_unfinished: Vec<PathBuf>,
}

/// A damaged tail cut off the newest segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The segment.
    pub path: PathBuf,
    /// The file offset where the cut starts: the first damaged frame.
    pub offset: u64,
    /// The log position there.
    pub position: LogPosition,
    /// How many bytes after it were zeroed.
    pub bytes: u64,
    /// What was wrong with the first frame cut.
    pub damage: Damage,
}

/// The log as recovery leaves it.
pub(crate) struct Recovered {
    /// The segments, oldest first, consecutive.
    pub(crate) segments: Vec<SegmentMeta>,
    /// Where the next frame goes (in the newest segment, or the first of a new one).
    pub(crate) end: LogPosition,
    pub(crate) report: RecoveryReport,
}

/// Recovers the log in `dir` as `options.recovery` says.
pub(crate) fn recover(io: &dyn Io, dir: &Path, options: &WalOptions) -> Result<Recovered> {
    todo!("recovery of {io:?} {} {options:?}", dir.display())
}
