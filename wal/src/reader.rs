//! Reading the log's records back, segment by segment.

use std::sync::Arc;

use crate::error::Result;
use crate::format::FrameKind;
use crate::io::Io;
use crate::segment::SegmentMeta;
use crate::LogPosition;

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where the record's frame starts: the position [`crate::Wal::append`] returned.
    pub position: LogPosition,
    /// The kind it was appended with.
    pub kind: FrameKind,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// The records of a log from a position up to an end, in position order.
#[derive(Debug)]
pub struct LogReader {
    _io: Arc<dyn Io>,
}

impl LogReader {
    /// Reads the records of `segments` (in order, consecutive) from `from` (the position of
    /// a frame, or a segment's first position) up to, not including, `end`.
    pub(crate) fn new(
        io: Arc<dyn Io>,
        segments: Vec<SegmentMeta>,
        from: LogPosition,
        end: LogPosition,
        max_record_bytes: u64,
    ) -> Result<LogReader> {
        let _ = (segments, from, end, max_record_bytes);
        todo!("reader: {io:?}")
    }
}

impl Iterator for LogReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        todo!("reader")
    }
}
