//! inmem-wal: the write-ahead log. Bytes go in, durable log positions come out; the log
//! knows nothing of keys or values (DESIGN.md §5).
//!
//! This crate currently holds the log's vocabulary; segments, frames, group commit over
//! io_uring and recovery are built on it by the write-ahead-log work.

#![forbid(unsafe_code)]

use std::fmt;

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
