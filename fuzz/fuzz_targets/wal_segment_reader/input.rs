//! The input of `wal_segment_reader`: the shape of a log (options, records), the damage
//! done to its files, and records to append after recovery, decoded from the fuzzer's
//! bytes by `arbitrary`.

use arbitrary::{Arbitrary, Unstructured};
use inmem_wal::format::{frame_len, FrameKind, SEGMENT_HEADER_LEN, TRAILER_LEN};
use inmem_wal::{BackendChoice, LogPosition, RecoveryMode, WalOptions};

/// Records written before the damage, at most: with small payloads, enough to fill two
/// minimum-size segments (at most 170 frames each).
pub(crate) const RECORDS_MAX: usize = 255;
/// Record shapes the records cycle through, at most.
pub(crate) const SPECS_MAX: usize = 8;
/// Mutations of the files, at most.
pub(crate) const MUTATIONS_MAX: usize = 8;
/// Records appended after a recovery, at most.
pub(crate) const APPENDS_MAX: usize = 3;
/// Bytes of one overwrite (or of an added file's content), at most.
pub(crate) const CHUNK_MAX: usize = 64;

/// The whole input.
#[derive(Debug)]
pub(crate) struct Input {
    /// The log's options and first segment.
    pub(crate) config: Config,
    /// The records written (as many as fit in the segments the config allows).
    pub(crate) records: Records,
    /// What is done to the files once they are written, in order.
    pub(crate) mutations: Vec<Mutation>,
    /// Payload lengths (modulo the record limit plus one) appended after a recovery.
    pub(crate) appends: Vec<u16>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let config = Config::arbitrary(u)?;
        let records = Records::arbitrary(u)?;
        let mutations = bounded(u, MUTATIONS_MAX)?;
        let appends = bounded(u, APPENDS_MAX)?;
        Ok(Input { config, records, mutations, appends })
    }
}

/// The records written: `count` of them (at most [`RECORDS_MAX`]), whose kinds and payload
/// lengths cycle through `specs` (a few input bytes make a full log).
#[derive(Debug)]
pub(crate) struct Records {
    pub(crate) count: usize,
    pub(crate) specs: Vec<RecordSpec>,
}

impl<'a> Arbitrary<'a> for Records {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let count = u.int_in_range(0..=RECORDS_MAX)?;
        let specs = bounded(u, SPECS_MAX)?;
        Ok(Records { count, specs })
    }
}

impl Records {
    /// Record `index`'s kind and length.
    pub(crate) fn spec(&self, index: usize) -> RecordSpec {
        match self.specs.len() {
            0 => RecordSpec { kind: 1, len: 16 },
            len => self.specs[index % len],
        }
    }
}

/// Up to `max` items, as many as the input announces and holds.
fn bounded<'a, T: Arbitrary<'a>>(
    u: &mut Unstructured<'a>,
    max: usize,
) -> arbitrary::Result<Vec<T>> {
    let count = u.int_in_range(0..=max)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        match T::arbitrary(u) {
            Ok(item) => items.push(item),
            Err(_) => break,
        }
    }
    Ok(items)
}

/// The log's options and where it starts.
#[derive(Arbitrary, Debug)]
pub(crate) struct Config {
    /// 3 (one input in four): segments of three blocks; otherwise of two, the minimum.
    pub(crate) segment_blocks: u8,
    /// Selects the record limit from [`RECORD_LIMITS`] (modulo its length); the last one is
    /// the largest a minimum-size segment allows.
    pub(crate) record_limit: u8,
    /// Selects the queue bound from [`QUEUE_LIMITS`]: it sets how much of the newest
    /// segment's tail recovery may cut (one batch).
    pub(crate) queue_limit: u8,
    /// The first segment's number (at least 1).
    pub(crate) number: NumberChoice,
    /// The first segment's first position.
    pub(crate) first: FirstChoice,
    /// Whether records that do not fit in the first segment go on in a second one.
    pub(crate) spill: bool,
    /// io_uring when available (true), or the sync backend.
    pub(crate) auto_backend: bool,
}

/// Record limits to choose from.
pub(crate) const RECORD_LIMITS: [u64; 4] =
    [24, 200, 1000, 4096 - frame_len(0) as u64 - TRAILER_LEN as u64];
/// Queue bounds to choose from.
pub(crate) const QUEUE_LIMITS: [u64; 3] = [8, 512, 4096];

impl Config {
    /// The segment size.
    pub(crate) fn segment_size(&self) -> u64 {
        let blocks = if self.segment_blocks % 4 == 3 { 3 } else { 2 };
        blocks * SEGMENT_HEADER_LEN
    }

    /// The record limit.
    pub(crate) fn record_limit(&self) -> u64 {
        RECORD_LIMITS[usize::from(self.record_limit) % RECORD_LIMITS.len()]
    }

    /// The first position of the log: the input's, kept low enough that both segments'
    /// positions fit in 64 bits.
    pub(crate) fn first_position(&self) -> LogPosition {
        let size = self.segment_size();
        LogPosition::new(self.first.position().min(u64::MAX - 2 * (size - SEGMENT_HEADER_LEN)))
    }

    /// The options of every open, in `mode`: the log is checkpointed up to its first
    /// position (a log that starts past 0 had its earlier segments deleted by one).
    pub(crate) fn options(&self, mode: RecoveryMode) -> WalOptions {
        let queue = QUEUE_LIMITS[usize::from(self.queue_limit) % QUEUE_LIMITS.len()];
        let backend = if self.auto_backend { BackendChoice::Auto } else { BackendChoice::Sync };
        WalOptions::default()
            .segment_size(self.segment_size())
            .max_record_bytes(self.record_limit())
            .max_queued_bytes(queue)
            .recovery(mode)
            .checkpointed(self.first_position())
            .backend(backend)
    }
}

/// A segment number.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum NumberChoice {
    /// 1, a new log's.
    One,
    /// Any (0 counts as 1), up to `u64::MAX`, after which there is no next segment.
    Raw(u64),
}

impl NumberChoice {
    /// The number.
    pub(crate) fn number(self) -> u64 {
        match self {
            NumberChoice::One => 1,
            NumberChoice::Raw(number) => number.max(1),
        }
    }
}

/// A first position.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum FirstChoice {
    /// 0, a new log's.
    Zero,
    /// A small one, not necessarily 8-byte aligned.
    Small(u16),
    /// Any, up to the last from which two segments' positions fit in 64 bits (a header
    /// rewrite can go further).
    Raw(u64),
}

impl FirstChoice {
    /// The position.
    pub(crate) fn position(self) -> u64 {
        match self {
            FirstChoice::Zero => 0,
            FirstChoice::Small(position) => u64::from(position),
            FirstChoice::Raw(position) => position,
        }
    }
}

/// One record: its kind (0 counts as 1) and payload length (scaled to the record limit).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct RecordSpec {
    pub(crate) kind: u8,
    pub(crate) len: u8,
}

impl RecordSpec {
    /// The kind.
    pub(crate) fn kind(self) -> FrameKind {
        FrameKind::new(self.kind).unwrap_or(FrameKind::RECORD)
    }

    /// The payload length: 0 to `limit`, both ends included.
    pub(crate) fn len(self, limit: u64) -> usize {
        let len = u64::from(self.len) * limit / u64::from(u8::MAX);
        usize::try_from(len).unwrap_or(0)
    }
}

/// A place in a file: a written frame's (whichever file holds it now), or an offset in one
/// of the files (by index in name order, modulo their count).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum Place {
    /// `delta` bytes from the start of written frame `index` (modulo their count).
    Frame { index: u8, delta: i8 },
    /// `offset` (modulo the file's length plus one).
    Offset { file: u8, offset: u16 },
    /// `back` bytes before the end of the file (at most its length).
    FromEnd { file: u8, back: u16 },
}

/// Bytes chosen by the input, at most [`CHUNK_MAX`].
#[derive(Debug, Clone)]
pub(crate) struct Chunk(pub(crate) Vec<u8>);

impl<'a> Arbitrary<'a> for Chunk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.int_in_range(0..=CHUNK_MAX)?;
        Ok(Chunk(u.bytes(len)?.to_vec()))
    }
}

/// The name of a segment file.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum NameChoice {
    /// The name of position `delta` after (or before) the first position of file `file`.
    Near { file: u8, delta: i16 },
    /// The name of any position.
    Raw(u64),
}

/// A change to the files of the log.
#[derive(Arbitrary, Debug, Clone)]
pub(crate) enum Mutation {
    /// Cuts the file at the place.
    Truncate(Place),
    /// Appends `len` (modulo one segment plus one) bytes of `fill` to a file.
    Extend { file: u8, len: u16, fill: u8 },
    /// Flips bit `bit % 8` of the byte at the place.
    FlipBit { at: Place, bit: u8 },
    /// Writes the bytes at the place (extending the file if they pass its end).
    Overwrite { at: Place, bytes: Chunk },
    /// Zeroes `len` bytes from the place (up to the end of the file).
    Zero { at: Place, len: u16 },
    /// Copies written frame `frame` (modulo their count), as written, to the place
    /// (rounded down to 8 bytes).
    CopyFrame { frame: u8, to: Place },
    /// Writes a valid frame, sealed by the crate's encoder, at the place (rounded down to
    /// 8 bytes): by default at the position it sits at and with its file's seed, so that it
    /// validates there.
    ForgeFrame { at: Place, kind: u8, len: u8, position: Option<u64>, seed: Option<u64> },
    /// Re-encodes the header of a file with some fields replaced (the others read from the
    /// file's header, or 0 if it has none), checksum included.
    RewriteHeader { file: u8, number: Option<u64>, first: Option<u64>, size: Option<u64> },
    /// Removes a file.
    Remove { file: u8 },
    /// Renames a file (unless the name is taken).
    Rename { file: u8, to: NameChoice },
    /// Adds a segment file (unless the name is taken): with `header`, a valid header for the
    /// name, numbered `number_delta` after file `file`'s, one segment long; then `bytes`
    /// (after the header, if there is one).
    AddSegment { name: NameChoice, header: bool, file: u8, number_delta: i8, bytes: Chunk },
    /// Adds an unfinished segment file (`.tmp`) holding `bytes`.
    AddUnfinished { name: NameChoice, bytes: Chunk },
    /// Writes frontier slot `second as usize` of a file's header block: sealed for the
    /// file's header (or number 0 if it has none), with this sequence number, frontier and
    /// step.
    WriteSlot { file: u8, second: bool, sequence: u64, frontier: u64, step: u64 },
}
