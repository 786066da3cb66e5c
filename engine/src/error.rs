//! The engine's errors: typed, cheap to build, and saying what went wrong and where.

use std::sync::Arc;

use crate::bytes::Bytes;
use crate::version::CommitVersion;

/// A limit the engine enforces at its API edge; see [`crate::Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Bytes in one key.
    KeyBytes,
    /// Bytes in one value.
    ValueBytes,
    /// Distinct keys written by one transaction.
    TransactionWrites,
    /// Keys and ranges read by one serializable transaction (its read set).
    TransactionReads,
    /// Bytes in one commit's log record (the log's [`inmem_wal::WalOptions::max_record_bytes`]).
    CommitBytes,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::KeyBytes => "key bytes",
            Limit::ValueBytes => "value bytes",
            Limit::TransactionWrites => "writes per transaction",
            Limit::TransactionReads => "reads per serializable transaction",
            Limit::CommitBytes => "bytes per commit record",
        })
    }
}

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A concurrent transaction committed a write this transaction conflicts with; nothing of
    /// this transaction is visible. [`crate::Database::transaction`] retries on it.
    #[error("conflict on key {key:?}: another transaction committed it after this one's snapshot")]
    Conflict {
        /// The first key found in conflict.
        key: Bytes,
    },

    /// An input is larger than the configured limit allows.
    #[error("{limit} limit exceeded: {actual} > {max}")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// The size that was asked for.
        actual: u64,
        /// The configured maximum.
        max: u64,
    },

    /// A snapshot at a version older than what the engine retains was asked for.
    #[error("snapshot at version {requested} is too old: versions below {oldest_available} may be collected")]
    SnapshotTooOld {
        /// The version asked for.
        requested: CommitVersion,
        /// The oldest version a snapshot can still be taken at.
        oldest_available: CommitVersion,
    },

    /// A snapshot at a version that is not visible yet was asked for.
    #[error("snapshot at version {requested} is in the future: the visible version is {visible}")]
    VersionNotVisible {
        /// The version asked for.
        requested: CommitVersion,
        /// The newest visible version.
        visible: CommitVersion,
    },

    /// An option has a value the engine cannot work with.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option's name, as in [`crate::Options`].
        name: &'static str,
        /// Why the value is refused.
        reason: &'static str,
    },

    /// A background maintenance thread panicked, or the write-ahead log failed; the
    /// database refuses further commits until it is reopened.
    #[error(
        "the database is poisoned (a maintenance thread panicked or the log failed): reopen it"
    )]
    Poisoned,

    /// The write-ahead log failed or refused something: a write or fsync that failed (the
    /// commit is not acknowledged, and the database is poisoned), or damage found while
    /// recovering. The log's own error is kept, typed: its [`inmem_wal::Error::Corrupt`],
    /// [`inmem_wal::Error::Inconsistent`] and [`inmem_wal::Error::BadSegmentHeader`] name
    /// the file (and the offset), its [`inmem_wal::Error::Io`] the file and the system's error.
    #[error("write-ahead log, {context}: {source}")]
    Log {
        /// What the engine was doing.
        context: &'static str,
        /// The log's error.
        #[source]
        source: inmem_wal::Error,
    },

    /// A commit record read back from the log does not decode: the log's checksums
    /// passed, so the record was written so (a bug, or a log written by something else).
    #[error("commit record at log position {position} is malformed: {reason}")]
    CorruptRecord {
        /// The record's position in the log.
        position: u64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A checkpoint file is damaged: a checksum, a length or a field does not hold.
    #[error("checkpoint {path} is damaged at offset {offset}: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: std::path::PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },

    /// Another handle (in this process or another) has the database directory open.
    #[error("the database at {path} is open elsewhere (its lock file is held)")]
    Locked {
        /// The lock file.
        path: std::path::PathBuf,
    },

    /// The operating system refused something the engine needs, on the file or directory
    /// `path`. Opening a database on a path that is not a directory is one too: its
    /// `source` is of kind [`std::io::ErrorKind::NotADirectory`].
    #[error("{context}{}: {source}", PathSuffix(path))]
    Io {
        /// What the engine was doing.
        context: &'static str,
        /// The file or directory it was acting on (the checkpoint file, its temporary file,
        /// the checkpoints' directory, the lock file, the database's directory); empty only
        /// for an error that acts on none (starting the maintenance thread).
        path: std::path::PathBuf,
        /// The system's error.
        #[source]
        source: IoError,
    },
}

/// Displays a path after a space, or nothing for an empty one.
struct PathSuffix<'p>(&'p std::path::Path);

impl std::fmt::Display for PathSuffix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.as_os_str().is_empty() {
            return Ok(());
        }
        write!(f, " {}", self.0.display())
    }
}

/// An operating-system error, shared so that [`Error`] stays `Clone`. Two compare equal when
/// their [`kind`](IoError::kind)s do (the system's error itself has no equality); it
/// displays as the system's error does, whose own source is its source.
#[derive(Debug, Clone)]
pub struct IoError(Arc<std::io::Error>);

impl IoError {
    /// Wraps `error`.
    pub fn new(error: std::io::Error) -> IoError {
        IoError(Arc::new(error))
    }

    /// The error's kind, to act on (`StorageFull` for a full disk, ...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The system's error.
    pub fn io_error(&self) -> &std::io::Error {
        &self.0
    }
}

impl From<std::io::Error> for IoError {
    fn from(error: std::io::Error) -> IoError {
        IoError::new(error)
    }
}

impl AsRef<std::io::Error> for IoError {
    fn as_ref(&self) -> &std::io::Error {
        &self.0
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &IoError) -> bool {
        self.kind() == other.kind()
    }
}

impl Eq for IoError {}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Error {
    /// An [`Error::Io`]: `error` from doing `context` on `path`.
    #[cfg_attr(loom, allow(dead_code, reason = "loom models start no thread"))]
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<std::path::PathBuf>,
        error: std::io::Error,
    ) -> Error {
        Error::Io { context, path: path.into(), source: IoError::new(error) }
    }

    /// An [`Error::Log`]: the log's `error` while doing `context`.
    pub(crate) fn log(context: &'static str, error: inmem_wal::Error) -> Error {
        Error::Log { context, source: error }
    }

    /// The kind of the operating system's error behind this one, if a system call failed:
    /// of an [`Error::Io`], or of an [`Error::Log`] whose log's write, fsync or file
    /// operation failed (now or, for [`inmem_wal::Error::Failed`], earlier).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            Error::Log { source, .. } => source.io_source().map(std::io::Error::kind),
            _ => None,
        }
    }

    /// Whether this is a [`Error::Conflict`]: the transaction may succeed if run again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

/// The system's error for a database path that is not a directory: of kind
/// [`std::io::ErrorKind::NotADirectory`].
pub(crate) fn not_a_directory() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_and_where() {
        let conflict = Error::Conflict { key: Bytes::from("acct/7") };
        assert_eq!(
            conflict.to_string(),
            "conflict on key b\"acct/7\": another transaction committed it after this one's snapshot"
        );
        assert!(conflict.is_conflict());
        let limit = Error::LimitExceeded { limit: Limit::KeyBytes, actual: 5000, max: 4096 };
        assert_eq!(limit.to_string(), "key bytes limit exceeded: 5000 > 4096");
    }

    #[test]
    fn an_io_error_names_its_path_and_keeps_the_systems_error_as_its_source() {
        let full = || std::io::Error::from_raw_os_error(28);
        let path = std::path::Path::new("/db/checkpoints/checkpoint-7.tmp");
        let error = Error::io("writing a checkpoint", path, full());
        assert_eq!(
            error.to_string(),
            format!("writing a checkpoint {}: {}", path.display(), full())
        );
        assert_eq!(error.io_kind(), Some(std::io::ErrorKind::StorageFull));
        let Error::Io { path: named, source, .. } = &error else { panic!("{error:?}") };
        assert_eq!(named, path);
        assert_eq!(source.io_error().raw_os_error(), Some(28));
        let chained = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(chained, Some(full().to_string()), "the system's error is the source");
        // Equal by kind: a clone is, another kind is not.
        assert_eq!(error.clone(), error);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_ne!(Error::io("writing a checkpoint", path, denied), error);
        let threadless = Error::io("starting the maintenance thread", "", full());
        assert_eq!(threadless.to_string(), format!("starting the maintenance thread: {}", full()));
    }

    #[test]
    fn a_log_error_keeps_the_logs_error_typed_as_its_source() {
        let path = std::path::PathBuf::from("/db/wal");
        let reason = "a deleted segment".to_string();
        let logged = inmem_wal::Error::Inconsistent { path: path.clone(), reason };
        let error = Error::log("recovering", logged.clone());
        assert_eq!(error.to_string(), "write-ahead log, recovering: /db/wal: a deleted segment");
        assert!(
            matches!(&error, Error::Log { source: inmem_wal::Error::Inconsistent { path: named, .. }, .. } if *named == path),
            "{error:?}"
        );
        let source = std::error::Error::source(&error).and_then(|s| s.downcast_ref());
        assert_eq!(source, Some(&logged));
        assert_eq!(error.io_kind(), None);
    }
}
