//! The engine's errors: typed, cheap to build, and saying what went wrong and where.

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
    /// recovering (the message names the file and offset).
    #[error("write-ahead log, {context}: {message}")]
    Log {
        /// What the engine was doing.
        context: &'static str,
        /// The log's error.
        message: String,
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

    /// The operating system refused something the engine needs.
    #[error("{context}: {message} ({kind:?})")]
    Io {
        /// What the engine was doing.
        context: &'static str,
        /// The kind of the underlying error, to act on.
        kind: std::io::ErrorKind,
        /// The underlying error's message.
        message: String,
    },
}

impl Error {
    #[cfg_attr(loom, allow(dead_code, reason = "loom models start no thread"))]
    pub(crate) fn io(context: &'static str, error: &std::io::Error) -> Error {
        Error::Io { context, kind: error.kind(), message: error.to_string() }
    }

    pub(crate) fn log(context: &'static str, error: &inmem_wal::Error) -> Error {
        Error::Log { context, message: error.to_string() }
    }

    /// Whether this is a [`Error::Conflict`]: the transaction may succeed if run again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
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
}
