//! Reading the log's records back, segment by segment.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    decode_frame, Damage, Decoded, FrameKind, SegmentHeader, FRAME_ALIGN, FRAME_CHECKSUM_LEN,
    FRAME_HEADER_LEN,
};
use crate::io::{Io, LogFile, OpenFlags};
use crate::segments::SegmentMeta;
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

/// Bytes read from a file at a time (more only for a longer frame, up to the frame limit).
const CHUNK: usize = 256 << 10;

/// A window over one segment file, refilled in chunks.
#[derive(Debug)]
pub(crate) struct SegmentBytes {
    file: Box<dyn LogFile>,
    start: u64,
    bytes: Vec<u8>,
}

impl SegmentBytes {
    pub(crate) fn open(io: &dyn Io, path: &Path) -> Result<SegmentBytes> {
        let file = io
            .open(path, false, OpenFlags::default())
            .map_err(|e| Error::io("open segment", path, e))?;
        Ok(SegmentBytes { file, start: 0, bytes: Vec::new() })
    }

    /// The file, to read it elsewhere than through the window.
    pub(crate) fn file(&self) -> &dyn LogFile {
        self.file.as_ref()
    }

    /// The file's length.
    pub(crate) fn len(&self, path: &Path) -> Result<u64> {
        self.file.size().map_err(|e| Error::io("read the size of segment", path, e))
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    pub(crate) fn at(&mut self, offset: u64, len: usize, path: &Path) -> Result<&[u8]> {
        let end = offset.saturating_add(len as u64);
        let held = self.start + self.bytes.len() as u64;
        if offset < self.start || end > held {
            self.bytes.resize(len.max(CHUNK), 0);
            let read = self
                .file
                .read_at(&mut self.bytes, offset)
                .map_err(|e| Error::io("read segment", path, e))?;
            self.bytes.truncate(read);
            self.start = offset;
        }
        let from = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        let to = from.saturating_add(len).min(self.bytes.len());
        Ok(self.bytes.get(from..to).unwrap_or(&[]))
    }

    /// The frame (or what stands in its place) at `position`, file `offset`, of the
    /// segment `segment` heads.
    ///
    /// Only the segment's own bytes count: a frame that would run past the segment's size
    /// is [`Damage::Truncated`], even if the file goes on. So every frame read ends inside
    /// its segment, and (as the header's positions fit in 64 bits) at a position that does
    /// too.
    pub(crate) fn frame(
        &mut self,
        segment: &SegmentHeader,
        offset: u64,
        position: LogPosition,
        max_payload: u64,
        path: &Path,
    ) -> Result<Decoded<'_>> {
        let in_segment = segment.size.saturating_sub(offset);
        let header_len = FRAME_HEADER_LEN.min(usize::try_from(in_segment).unwrap_or(usize::MAX));
        let header = self.at(offset, header_len, path)?;
        let mut len = header_len;
        if let Some(word) = header.get(0..4) {
            let payload = u64::from(u32::from_le_bytes([word[0], word[1], word[2], word[3]]));
            if payload <= max_payload {
                let whole = FRAME_HEADER_LEN as u64 + payload + FRAME_CHECKSUM_LEN as u64;
                let whole = whole.next_multiple_of(FRAME_ALIGN as u64).min(in_segment);
                len = usize::try_from(whole).unwrap_or(len);
            }
        }
        let bytes = self.at(offset, len, path)?;
        Ok(decode_frame(bytes, position, segment.frame_seed(), max_payload))
    }
}

/// The records of a log from a position up to an end, in position order.
#[derive(Debug)]
pub struct LogReader {
    io: Arc<dyn Io>,
    segments: VecDeque<SegmentMeta>,
    current: Option<SegmentBytes>,
    position: LogPosition,
    end: LogPosition,
    max_record_bytes: u64,
    done: bool,
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
        Ok(LogReader {
            io,
            segments: segments.into(),
            current: None,
            position: from,
            end,
            max_record_bytes,
            done: false,
        })
    }

    fn read_next(&mut self) -> Result<Record> {
        while self.segments.len() > 1
            && self.segments.get(1).is_some_and(|next| next.header.first_position <= self.position)
        {
            self.segments.pop_front();
            self.current = None;
        }
        let Some(segment) = self.segments.front() else {
            return Err(Error::OutOfRange {
                position: self.position,
                first: self.position,
                end: self.end,
            });
        };
        let path = segment.path.clone();
        let header = segment.header;
        let Some(offset) = header.offset_of(self.position) else {
            return Err(Error::OutOfRange {
                position: self.position,
                first: header.first_position,
                end: self.end,
            });
        };
        let current = match &mut self.current {
            Some(current) => current,
            None => self.current.insert(SegmentBytes::open(self.io.as_ref(), &path)?),
        };
        let position = self.position;
        match current.frame(&header, offset, position, self.max_record_bytes, &path)? {
            Decoded::Frame(frame) => {
                self.position = LogPosition::new(position.get() + frame.len as u64);
                Ok(Record { position, kind: frame.kind, payload: frame.payload.to_vec() })
            }
            // Records end at a trailer: one before the end of what is read is damage.
            Decoded::Trailer(_) => {
                Err(Error::Corrupt { path, offset, position, damage: Damage::BadHeader })
            }
            Decoded::Zeroed => Err(Error::Corrupt {
                path,
                offset,
                position,
                damage: Damage::Truncated { needed: FRAME_HEADER_LEN as u64, available: 0 },
            }),
            Decoded::Damaged(damage) => Err(Error::Corrupt { path, offset, position, damage }),
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done || self.position >= self.end {
            return None;
        }
        let record = self.read_next();
        self.done = record.is_err();
        Some(record)
    }
}
