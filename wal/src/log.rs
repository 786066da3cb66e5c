//! The log: [`Wal`].

use std::path::Path;

use crate::error::Result;
use crate::format::FrameKind;
use crate::options::WalOptions;
use crate::reader::LogReader;
use crate::recovery::RecoveryReport;
use crate::LogPosition;

/// Counters of a log since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalStats {
    /// Records appended.
    pub appends: u64,
    /// Bytes appended (frames, padding included).
    pub bytes: u64,
    /// Write batches.
    pub batches: u64,
    /// fdatasyncs of segment data.
    pub fsyncs: u64,
    /// Segments created.
    pub segments_created: u64,
}

/// A write-ahead log in a directory.
#[derive(Debug)]
pub struct Wal {}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, recovering it first.
    ///
    /// # Errors
    /// Damage recovery may not cut, I/O errors, invalid options.
    pub fn open(dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal> {
        let _ = (dir.as_ref(), options);
        todo!()
    }

    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        todo!()
    }

    /// Hands a record to the log; returns its position without waiting for it to be durable.
    ///
    /// # Errors
    /// [`crate::Error::RecordTooLarge`], [`crate::Error::Failed`] after an I/O failure,
    /// [`crate::Error::Closed`].
    pub fn append(&self, kind: FrameKind, payload: &[u8]) -> Result<LogPosition> {
        let _ = (kind, payload);
        todo!()
    }

    /// Returns once the record at `position` (and everything before it) is durable.
    ///
    /// # Errors
    /// [`crate::Error::Failed`] if the write or fsync that should have made it durable
    /// failed.
    pub fn wait_durable(&self, position: LogPosition) -> Result<()> {
        let _ = position;
        todo!()
    }

    /// [`Wal::append`], then [`Wal::wait_durable`].
    ///
    /// # Errors
    /// As both.
    pub fn append_sync(&self, kind: FrameKind, payload: &[u8]) -> Result<LogPosition> {
        let position = self.append(kind, payload)?;
        self.wait_durable(position)?;
        Ok(position)
    }

    /// Reads the durable records from `position` on.
    ///
    /// # Errors
    /// [`crate::Error::OutOfRange`] for a position the log does not hold.
    pub fn read_from(&self, position: LogPosition) -> Result<LogReader> {
        let _ = position;
        todo!()
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        todo!()
    }
}
