//! inmem-wal: the write-ahead log. Bytes go in, durable log positions come out; the log
//! knows nothing of keys or values (docs/architecture.md §5, The log).
//!
//! - [`Wal::append`] hands a record to the log and returns its position at once;
//!   [`Wal::wait_durable`] returns once that position is on stable storage;
//!   [`Wal::append_sync`] does both.
//! - One writer at a time drains everything pending and writes it with one pwritev and one
//!   fdatasync (or, over io_uring, one submission of the two linked), so k concurrent
//!   committers pay one fsync, not k (group commit). [`Wal::backend`] says which backend
//!   the log uses and why ([`BackendChoice`]).
//! - [`Wal::open`] recovers the log first: a torn tail (damage no valid frame proves was
//!   ever synced) is cut after its bytes are salvaged, any other damage is an error naming
//!   file and offset ([`RecoveryMode`]); [`Wal::survey`] decides the same without changing
//!   anything.
//!
//! The on-disk format is documented in [`format`](mod@format); the I/O backends in [`io`](mod@io).
//!
//! Inside, one file per concern, each importing only those below it:
//! - `log.rs`: [`Wal`], opening (recovery, then the newest segment) and the calls;
//! - `writer.rs`: the worker that writes, syncs and rotates segments, for whichever thread
//!   holds the writer token;
//! - `group.rs`: the group-commit hand-off (appenders, waiters, the writer token, the
//!   background writer), with no I/O;
//! - `segments.rs`: the state the log and its writer share (directory, backend, options,
//!   the list of segments, counters), and segment files' creation and removal;
//! - `stats.rs`: [`WalStats`] and its counters; `reader.rs`: [`LogReader`];
//!   `recovery.rs`: surveying and repairing a log at open; `options.rs`, `error.rs`;
//! - `sync.rs`: every atomic, mutex and condition variable of the crate (std's, loom's
//!   under `cfg(loom)`); clippy's `disallowed-types` refuses them anywhere else.
//!
//! The log holds the group commit, which holds the writer; the log and the writer both hold
//! the shared segment state, which holds neither: there is no reference cycle to break.
//!
//! ```
//! use inmem_wal::{FrameKind, Wal, WalOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let wal = Wal::open(dir.path(), WalOptions::default().segment_size(1 << 20).max_record_bytes(64 << 10))?;
//! let first = wal.append_sync(FrameKind::RECORD, b"hello")?;
//! let second = wal.append(FrameKind::RECORD, b"world")?;
//! wal.wait_durable(second)?;
//! let records: Vec<_> = wal.read_from(first)?.collect::<Result<_, _>>()?;
//! assert_eq!(records[1].payload, b"world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]

use std::fmt;

pub mod error;
pub mod format;
mod group;
pub mod io;
mod log;
mod options;
mod reader;
mod recovery;
mod segments;
mod stats;
mod sync;
mod writer;
mod zeroes;

pub use error::{Error, Result};
pub use format::FrameKind;
pub use io::{BackendChoice, BackendInUse, BackendReason, Preallocation};
pub use log::{Survey, Wal};
pub use options::{Durability, RecoveryMode, WalOptions};
pub use reader::{LogReader, Record};
pub use recovery::{RecoveryReport, SegmentFrontier, TailCut, DROPPED_SUFFIX, SALVAGE_INFIX};
pub use segments::SPARE_FILE;
pub use stats::WalStats;

/// A position in the log: the byte offset of a frame from the start of the log, across all
/// segments. Positions only grow; a record's position is where its frame starts.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition(u64);

impl LogPosition {
    /// The start of an empty log.
    pub const ZERO: LogPosition = LogPosition(0);

    /// Wraps a raw byte offset.
    pub const fn new(offset: u64) -> LogPosition {
        LogPosition(offset)
    }

    /// The raw byte offset.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The position `bytes` further on, or `None` if it would overflow.
    pub fn checked_add(self, bytes: u64) -> Option<LogPosition> {
        self.0.checked_add(bytes).map(LogPosition)
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_as_offsets_and_refuse_to_overflow() {
        assert!(LogPosition::new(3) < LogPosition::new(4));
        assert_eq!(LogPosition::ZERO.checked_add(7), Some(LogPosition::new(7)));
        assert_eq!(LogPosition::new(u64::MAX).checked_add(1), None);
    }
}

#[cfg(all(test, loom))]
mod loom_models;
