//! The log's worker: what writes and syncs the log, for whichever thread holds the writer
//! token (`group.rs`): a committer leading a batch, or the background writer thread.
//!
//! It seals each frame of a batch with the checksum seed of the segment it lands in, writes
//! the batch with one submission (write and fdatasync linked, on io_uring) and says how far
//! the log is written and durable. When the next frame does not fit in the current segment,
//! the part before it is written and synced, a new segment is created (header durable,
//! directory synced), and the rest goes there: a segment's frames always end where the next
//! segment begins.

use std::io::IoSlice;
use std::sync::atomic::Ordering as StdOrdering;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{seal_frame, SegmentHeader, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::group::{Batch, Done, Work, Worker};
use crate::io::{write_all_durably, LogFile};
use crate::log::Shared;
use crate::segment::create_segment;
use crate::LogPosition;

/// The longest a batch waits for committers to join it under `Durability::Sync`.
pub(crate) const GATHER_MAX: Duration = Duration::from_micros(500);

/// The open segment and what writes to it.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    file: Box<dyn LogFile>,
    segment: SegmentHeader,
}

impl Worker for Writer {
    fn perform(&mut self, work: Work) -> Result<Done> {
        match work {
            Work::Write { batch, sync } => self.write(batch, sync),
            Work::Sync { end } => {
                self.file.sync_data().map_err(|e| self.error("fdatasync", e))?;
                self.shared.stats.fsyncs.fetch_add(1, StdOrdering::Relaxed);
                Ok(Done { written: end, durable: Some(end), buffer: None })
            }
        }
    }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        file: Box<dyn LogFile>,
        segment: SegmentHeader,
    ) -> Writer {
        Writer { shared, file, segment }
    }

    fn write(&mut self, mut batch: Batch, sync: bool) -> Result<Done> {
        let end = batch.end();
        let mut from = 0;
        let mut at = 0;
        let mut position = batch.start;
        while at < batch.bytes.len() {
            let Some(payload_len) = frame_payload_len(&batch.bytes[at..]) else {
                return Err(Error::InvalidOptions("a queued frame is malformed".into()));
            };
            let len = crate::format::frame_len(payload_len);
            if self.offset_of(position) + len as u64 > self.segment.size {
                // The frame does not fit: finish this segment, durably, and start the next.
                self.write_slice(&batch.bytes[from..at], batch_position(&batch, from), true)?;
                self.rotate(position)?;
                from = at;
            }
            let sealed = seal_frame(&mut batch.bytes[at..], self.segment.frame_seed());
            debug_assert_eq!(sealed, Some(len));
            at += len;
            position = LogPosition::new(position.get() + len as u64);
        }
        self.write_slice(&batch.bytes[from..], batch_position(&batch, from), sync)?;
        self.shared.stats.batches.fetch_add(1, StdOrdering::Relaxed);
        Ok(Done { written: end, durable: sync.then_some(end), buffer: Some(batch.bytes) })
    }

    /// Writes `bytes`, the frames from `position` on, into the current segment.
    fn write_slice(&mut self, bytes: &[u8], position: LogPosition, sync: bool) -> Result<()> {
        if bytes.is_empty() && !sync {
            return Ok(());
        }
        let offset = self.offset_of(position);
        debug_assert!(offset + bytes.len() as u64 <= self.segment.size, "a batch fits its segment");
        // An O_DSYNC file makes each write durable before it returns: no fdatasync to add.
        let fdatasync = sync && !self.shared.options.open_flags.dsync;
        write_all_durably(self.file.as_ref(), &[IoSlice::new(bytes)], offset, fdatasync)
            .map_err(|e| self.error(if sync { "write and fdatasync" } else { "write" }, e))?;
        if sync {
            self.shared.stats.fsyncs.fetch_add(1, StdOrdering::Relaxed);
        }
        Ok(())
    }

    /// Starts a new segment whose first frame is at `first`.
    fn rotate(&mut self, first: LogPosition) -> Result<()> {
        let number = self.segment.number.checked_add(1);
        let number = number.ok_or(Error::Exhausted { what: "segment numbers" })?;
        let header =
            SegmentHeader { number, first_position: first, size: self.shared.options.segment_size };
        if first.checked_add(header.capacity()).is_none() {
            return Err(Error::Exhausted { what: "positions" });
        }
        let (meta, file) = create_segment(
            self.shared.io.as_ref(),
            &self.shared.dir,
            header,
            &self.shared.options,
        )?;
        self.shared.segments_lock().push(meta);
        self.shared.stats.segments_created.fetch_add(1, StdOrdering::Relaxed);
        self.file = file;
        self.segment = header;
        Ok(())
    }

    fn offset_of(&self, position: LogPosition) -> u64 {
        SEGMENT_HEADER_LEN + (position.get() - self.segment.first_position.get())
    }

    fn error(&self, op: &'static str, error: std::io::Error) -> Error {
        let path =
            self.shared.dir.join(crate::format::segment_file_name(self.segment.first_position));
        Error::io(op, path, error)
    }
}

/// The payload length in the header of the frame that starts `bytes`.
fn frame_payload_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..FRAME_HEADER_LEN)?;
    let mut word = [0; 4];
    word.copy_from_slice(&header[..4]);
    usize::try_from(u32::from_le_bytes(word)).ok()
}

fn batch_position(batch: &Batch, offset: usize) -> LogPosition {
    LogPosition::new(batch.start.get() + offset as u64)
}
