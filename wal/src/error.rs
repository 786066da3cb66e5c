//! The log's errors.

use std::path::PathBuf;
use std::sync::Arc;

use crate::format::{Damage, HeaderError};
use crate::LogPosition;

/// A specialised `Result` for the log.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the log can refuse or fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the log was doing ("fdatasync", "create segment", ..).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error the system returned.
        source: Arc<std::io::Error>,
    },
    /// The I/O backend asked for cannot be set up: [`crate::BackendChoice::Uring`] where
    /// the kernel refuses io_uring (`source` is the kernel's error: `EPERM`, `ENOSYS`, ..).
    /// The log never takes another backend in its place.
    #[error("the {backend} backend cannot be set up for the log in {}: {source}", path.display())]
    BackendUnavailable {
        /// The backend's name: `"io_uring"`.
        backend: &'static str,
        /// The log's directory.
        path: PathBuf,
        /// The error the system returned.
        source: Arc<std::io::Error>,
    },
    /// A segment's header is not valid.
    #[error("{}: bad segment header: {reason}", path.display())]
    BadSegmentHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        reason: HeaderError,
    },
    /// A damaged frame that recovery may not cut: not the torn tail of the newest segment
    /// (or any damage at all, in `Strict` mode).
    #[error("{}: damaged frame at offset {offset} (log position {position}): {damage}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// The file offset of the frame.
        offset: u64,
        /// The log position the frame should have had.
        position: LogPosition,
        /// What is wrong with it.
        damage: Damage,
    },
    /// The segments do not follow each other (a missing, duplicated or misnamed segment).
    #[error("{}: {reason}", path.display())]
    Inconsistent {
        /// The segment file at which the sequence breaks.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// A record longer than the log accepts.
    #[error("record of {len} bytes over the limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's length.
        len: u64,
        /// The limit ([`crate::WalOptions::max_record_bytes`]).
        limit: u64,
    },
    /// A write or fsync failed earlier: the log acknowledges nothing more until reopened,
    /// since it cannot know what reached the disk.
    #[error("the log failed earlier and must be reopened: {cause}")]
    Failed {
        /// The failure that stopped the log.
        cause: Box<Error>,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// Options that cannot work together.
    #[error("invalid log options: {0}")]
    InvalidOptions(String),
    /// The log's positions or segment numbers would pass 2^64: nothing more fits in it.
    #[error("the log is full: its {what} would pass 2^64")]
    Exhausted {
        /// `"positions"` or `"segment numbers"`.
        what: &'static str,
    },
    /// The log writer thread panicked (a bug): the log acknowledges nothing more.
    #[error("the log writer panicked: {message}")]
    WriterPanicked {
        /// The panic's message, where it had one.
        message: String,
    },
    /// A position the log does not hold (before its first segment, or past its end).
    #[error("log position {position} is outside the log ({first}..{end})")]
    OutOfRange {
        /// The position asked for.
        position: LogPosition,
        /// The first position the log still holds.
        first: LogPosition,
        /// The end of the log.
        end: LogPosition,
    },
}

impl Error {
    /// An [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { op, path: path.into(), source: Arc::new(source) }
    }

    /// The failed system call's error, if this is (or was caused by) one.
    pub fn io_source(&self) -> Option<&std::io::Error> {
        match self {
            Error::Io { source, .. } | Error::BackendUnavailable { source, .. } => Some(source),
            Error::Failed { cause } => cause.io_source(),
            _ => None,
        }
    }

    /// The raw OS error code, if this is (or was caused by) a failed system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_source().and_then(std::io::Error::raw_os_error)
    }
}

/// Errors compare by what they say: an I/O error by its operation, path and kind (the
/// system's error itself has no equality), every other variant field by field.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        match (self, other) {
            (
                Error::Io { op, path, source },
                Error::Io { op: other_op, path: other_path, source: other_source },
            ) => op == other_op && path == other_path && source.kind() == other_source.kind(),
            (Error::Failed { cause }, Error::Failed { cause: other }) => cause == other,
            _ => self.to_string() == other.to_string() && same_variant(self, other),
        }
    }
}

impl Eq for Error {}

fn same_variant(one: &Error, other: &Error) -> bool {
    std::mem::discriminant(one) == std::mem::discriminant(other)
}
