//! The on-disk format of the log: segment headers and frames.
//!
//! Everything here is pure: bytes in, bytes or typed errors out. Nothing reads a file.
//! Every field is fixed-width little-endian.
//!
//! # Segments
//!
//! A log is a directory of segment files, `<first position, 20 decimal digits>.wal`, each
//! preallocated to the segment size. A segment starts with a header block of
//! [`SEGMENT_HEADER_LEN`] bytes; frames follow it back to back.
//!
//! ```text
//! offset  size  field
//!      0     8  magic, "INMEMWAL"
//!      8     4  format version (4; a log of another version is refused, naming the version)
//!     12     4  header length in bytes (4096)
//!     16     8  segment number: 1 for the first segment of a log, +1 for each next one
//!     24     8  first position: the log position of the segment's first frame
//!     32     8  segment size in bytes, header included
//!     40     8  xxh3-64 (seed 0) of bytes 0..40
//!     48   464  zero (checked: a header with anything else there is refused)
//!    512   512  frontier slot 0 (below), a sector of its own
//!   1024   512  frontier slot 1
//!   1536  2560  zero (checked)
//! ```
//!
//! A header is valid only if its number is at least 1, its size is larger than the header,
//! a multiple of 4096 and at most [`SEGMENT_SIZE_MAX`], and every position of its frame area
//! fits in 64 bits: first position plus segment size minus header length is at most
//! `u64::MAX`. The header's checksum covers its fields only, and the zero check skips the
//! two slot sectors: the writer rewrites a slot while the segment is in use, and neither a
//! slot write nor a torn one can make the header invalid.
//!
//! # Frontier slots: how far recovery reads
//!
//! ```text
//! offset  size  field (within the slot's sector)
//!      0     8  sequence number: 1 for the slot a segment is created with, +1 each write
//!      8     8  frontier: a file offset of this segment, SEGMENT_HEADER_LEN..=size
//!     16     8  step: how far past this frontier the next slot may name,
//!                 FRONTIER_STEP..=FRONTIER_STEP_MAX
//!     24     8  xxh3-64 of bytes 0..24, seeded with the segment number
//!     32   480  zero
//! ```
//!
//! A sector of zeroes is an empty slot; one whose checksum, zero bytes, sequence number (at
//! least 1), frontier (within the segment) or step (within its bounds) is wrong is invalid
//! (a torn slot write, or damage) and counts as empty. A slot is always written whole, a sector at a time, so a
//! torn slot write can only invalidate that slot.
//!
//! The frontier bounds where the writer may have written. With `M` the highest frontier of
//! the segment's valid slots and `S` the step that slot carries, the writer keeps this
//! property:
//!
//! > **P.** Every byte the writer ever wrote at an offset at or past `M + S` was written by
//! > a round (a write, and its fdatasync if it has one) whose sync did not complete, even if
//! > the newest slot write was lost: not persisted, torn, or zeroed while its sync reported
//! > success.
//!
//! It holds because of three rules (`writer.rs`):
//!
//! 1. the writer writes a slot only into the slot that does not hold the *base*, the
//!    highest frontier known durable (written, then synced); so a crash during a round
//!    leaves the base's slot whole, and `M` is at least the base;
//! 2. a slot write names at most base + the base slot's step; no byte of a round lies at or
//!    past the frontier its slot (or an earlier one since the base) names, so every byte a
//!    round writes lies below that, which is at most `M` + `S`; a batch that reaches
//!    further advances the frontier in steps, each step's slot made durable by a completed
//!    sync before any byte passes it;
//! 3. only a completed sync makes the newest slot the base.
//!
//! A slot write lost while its sync reported success leaves the previous slot value, whose
//! frontier plus its step is at least the lost frontier: the bytes of the round, below the
//! lost frontier, are still below `M + S`. `Durability::Buffered` writes rounds without a
//! sync; its slot writes never move the base, so its unsynced rounds stay below base plus
//! the base's step too, and passing it takes a sync (a Buffered log syncs at least once per
//! step written).
//!
//! The step is the writer's to choose, per slot, between [`FRONTIER_STEP`] and
//! [`FRONTIER_STEP_MAX`]: about what the log writes in a quarter second at the rate it
//! wrote the last step (`writer.rs`, `FRONTIER_STEP_RUNWAY`). A slot's step is runway: how much the writer may
//! write while the sync that makes the slot the base is in flight, so that a slow sync does
//! not stop a busy log's writes. It is also what recovery reads past the frontier, so a
//! log that writes little keeps the smallest step, and its open reads little.
//!
//! So recovery reads a segment to `min(size, M + S)` wherever it looked for written bytes
//! up to the segment's end (`recovery.rs`): after its records, its trailer, or a damaged
//! frame. A segment with no valid slot (damage to both sectors) is read to its end.
//!
//! A segment is created with slot 0 holding frontier `SEGMENT_HEADER_LEN + FRONTIER_STEP`
//! (clamped to its size) and step [`FRONTIER_STEP`], durable with the header before the segment gets its name: its frame area is
//! all zeroes then, so nothing lies past it.
//!
//! # Positions
//!
//! A log position counts frame bytes only, across segments: the frame at position `p` of a
//! segment whose first position is `f` starts at file offset
//! `SEGMENT_HEADER_LEN + (p - f)`, and the next frame's position is `p` plus the frame's
//! length. A segment's unused tail (too short for the next frame) holds no positions. A
//! frame lies wholly inside its segment: one that would run past the segment's size is
//! damage, whatever the file holds beyond it. The last [`TRAILER_LEN`] bytes of a segment
//! are kept for its trailer: record frames end before them.
//!
//! # Frames
//!
//! ```text
//! offset    size  field
//!      0       4  payload length n (at most the log's frame limit)
//!      4       1  kind (1..=255; 0 never starts a frame, so a zeroed region ends the log)
//!      5       1  flags: 0 a record, 1 a seal trailer, 2 a close trailer (see below)
//!      6       2  zero
//!      8       8  position of this frame
//!     16       8  synced: the end of what was durable when the frame's batch was written
//!     24       n  payload
//!   24+n       8  xxh3-64 of bytes 0..24+n, seeded with the segment number
//!   32+n     0-7  zero padding, so that every frame starts 8-byte aligned (checked)
//! ```
//!
//! The checksum covers the header, so a frame that validates is exactly where it was
//! written: a stale frame of an earlier segment (in a recycled file) carries another seed,
//! and a frame copied elsewhere carries another position.
//!
//! # What a frame proves: the torn-tail rule
//!
//! `synced` is at most the frame's position. A valid frame stamped `synced = d` proves that
//! every byte of the log before `d` reached stable storage before the crash: the writer
//! only stamps what an fdatasync (or an `O_DSYNC` write) had completed. A write the crash
//! interrupted can damage only what was never synced, so damage at a position below the
//! highest stamp of any valid frame is corruption, never a torn write; recovery cuts only
//! damage at or after every proof (`recovery.rs`).
//!
//! # Trailers
//!
//! A trailer is a frame with an empty payload and flags 1 or 2, at the position where the
//! segment's records end; it takes no position (the next record, in this segment or the
//! next, has the same one), and its `synced` equals its position:
//!
//! - a **seal** (flags 1) is written, and synced, into a segment once its successor
//!   exists, before any record goes to the successor: a sealed newest segment means the
//!   segment after it is missing;
//! - a **close** trailer (flags 2) is written by a clean close once everything is synced,
//!   so that damage to the last records of a closed log is proved corruption; the next
//!   record written overwrites it (a record frame is never shorter than a trailer).

use std::num::NonZeroU8;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::LogPosition;

/// The magic number at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"INMEMWAL";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 4;
/// The length of a segment header: one 4 KiB block, so that frames start block-aligned.
pub const SEGMENT_HEADER_LEN: u64 = 4096;
/// The largest segment a log writes or reads (1 GiB): a header naming a larger size is
/// damage, so that no recovery step is sized by an unbounded field.
pub const SEGMENT_SIZE_MAX: u64 = 1 << 30;
/// The bytes of a segment header that carry fields.
const HEADER_FIELDS_LEN: usize = 48;
/// The unit a slot is written in: a slot has a sector of its own.
pub const SLOT_SECTOR_LEN: usize = 512;
/// The file offsets of the two frontier slots, each a [`SLOT_SECTOR_LEN`]-byte sector of the
/// header block.
pub const FRONTIER_SLOT_OFFSETS: [u64; 2] = [512, 1024];
/// The bytes of a frontier slot that carry fields (the rest of its sector is zero).
const SLOT_FIELDS_LEN: usize = 32;
/// The smallest step a frontier slot carries, and the one a segment is created with: how
/// far past a slot's frontier the writer may write before the next slot (see "Frontier
/// slots"), and so how far past it recovery reads.
pub const FRONTIER_STEP: u64 = 1 << 20;
/// The largest step a frontier slot carries.
pub const FRONTIER_STEP_MAX: u64 = 16 << 20;
/// The bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 24;
/// The bytes of a frame after its payload, before the padding.
pub const FRAME_CHECKSUM_LEN: usize = 8;
/// Frames start at multiples of this.
pub const FRAME_ALIGN: usize = 8;
/// The length of a trailer frame (a frame with an empty payload), kept free at the end of
/// every segment.
pub const TRAILER_LEN: usize = frame_len(0);

/// The flags of a record frame.
const FLAG_RECORD: u8 = 0;
/// The flags of a seal trailer.
const FLAG_SEAL: u8 = 1;
/// The flags of a close trailer.
const FLAG_CLOSE: u8 = 2;

/// What a trailer says.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Trailer {
    /// The segment's successor exists: a log whose newest segment is sealed misses one.
    Seal,
    /// The log was closed cleanly here, with everything before synced.
    Close,
}

impl Trailer {
    fn flags(self) -> u8 {
        match self {
            Trailer::Seal => FLAG_SEAL,
            Trailer::Close => FLAG_CLOSE,
        }
    }
}

/// What a frame carries, as its writer labels it; never 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FrameKind(NonZeroU8);

impl FrameKind {
    /// A kind for callers with a single kind of record.
    pub const RECORD: FrameKind = FrameKind(NonZeroU8::MIN);

    /// The kind with code `code`, or `None` for 0 (which marks unwritten space).
    pub const fn new(code: u8) -> Option<FrameKind> {
        match NonZeroU8::new(code) {
            Some(code) => Some(FrameKind(code)),
            None => None,
        }
    }

    /// The kind's code.
    pub const fn code(self) -> u8 {
        self.0.get()
    }
}

/// The fields of a segment header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// 1 for a log's first segment, one more for each next one.
    pub number: u64,
    /// The position of the segment's first frame.
    pub first_position: LogPosition,
    /// The segment file's size in bytes, header included.
    pub size: u64,
}

/// Why bytes are not a valid segment header.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("shorter than a segment header ({len} of {SEGMENT_HEADER_LEN} bytes)")]
    Truncated {
        /// The bytes there were.
        len: usize,
    },
    /// Not the magic number.
    #[error("no segment magic number")]
    BadMagic,
    /// A format version this crate does not read.
    #[error(
        "format version {found}, this build reads only version {FORMAT_VERSION} (a log \
         written by another build of inmem: open it with that build)"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The checksum does not match the fields.
    #[error("header checksum mismatch")]
    BadChecksum,
    /// The fields are inconsistent (header length, a size too small to hold it, number 0,
    /// positions past 2^64, or non-zero bytes after the fields).
    #[error("inconsistent header fields")]
    BadFields,
}

/// The fields of a valid frontier slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrontierSlot {
    /// 1 for the slot a segment is created with, one more for each slot written after it.
    pub sequence: u64,
    /// The file offset the writer had not written at or past (see "Frontier slots").
    pub frontier: u64,
    /// How far past `frontier` the next slot may name, and so recovery reads.
    pub step: u64,
}

/// What a frontier slot's sector holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Zeroes: never written.
    Empty,
    /// A valid slot.
    Valid(FrontierSlot),
    /// Neither: a torn slot write, or damage; it counts as empty.
    Invalid,
}

impl Slot {
    /// The slot's fields, if it is valid.
    pub fn valid(self) -> Option<FrontierSlot> {
        match self {
            Slot::Valid(slot) => Some(slot),
            Slot::Empty | Slot::Invalid => None,
        }
    }
}

/// The valid slot with the highest frontier, if any (`M`, with its sequence number).
pub fn highest_frontier(slots: &[Slot; 2]) -> Option<FrontierSlot> {
    slots.iter().filter_map(|slot| slot.valid()).max_by_key(|slot| (slot.frontier, slot.sequence))
}

impl SegmentHeader {
    /// The header block, [`SEGMENT_HEADER_LEN`] bytes, with slot 0 holding the frontier a
    /// segment is created with ([`SegmentHeader::initial_frontier`], sequence number 1).
    pub fn encode(&self) -> Vec<u8> {
        let mut block = vec![0; SEGMENT_HEADER_LEN as usize];
        block[0..8].copy_from_slice(&SEGMENT_MAGIC);
        block[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        block[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        block[16..24].copy_from_slice(&self.number.to_le_bytes());
        block[24..32].copy_from_slice(&self.first_position.get().to_le_bytes());
        block[32..40].copy_from_slice(&self.size.to_le_bytes());
        let checksum = xxh3_64(&block[0..40]);
        block[40..48].copy_from_slice(&checksum.to_le_bytes());
        let first =
            FrontierSlot { sequence: 1, frontier: self.initial_frontier(), step: FRONTIER_STEP };
        let at = FRONTIER_SLOT_OFFSETS[0] as usize;
        block[at..at + SLOT_SECTOR_LEN].copy_from_slice(&self.encode_slot(first));
        block
    }

    /// The frontier a segment is created with: its header's end plus [`FRONTIER_STEP`],
    /// or its size if smaller.
    pub fn initial_frontier(&self) -> u64 {
        SEGMENT_HEADER_LEN.saturating_add(FRONTIER_STEP).min(self.size)
    }

    /// The sector of a frontier slot holding `slot`, sealed for this segment.
    pub fn encode_slot(&self, slot: FrontierSlot) -> [u8; SLOT_SECTOR_LEN] {
        let mut sector = [0; SLOT_SECTOR_LEN];
        sector[0..8].copy_from_slice(&slot.sequence.to_le_bytes());
        sector[8..16].copy_from_slice(&slot.frontier.to_le_bytes());
        sector[16..24].copy_from_slice(&slot.step.to_le_bytes());
        let checksum = xxh3_64_with_seed(&sector[0..24], self.number);
        sector[24..32].copy_from_slice(&checksum.to_le_bytes());
        sector
    }

    /// Reads the frontier slot in `sector` (a slot's sector of this segment's header block).
    /// Never panics, whatever the bytes.
    pub fn decode_slot(&self, sector: &[u8]) -> Slot {
        if sector.iter().all(|&b| b == 0) {
            return Slot::Empty;
        }
        let Some(fields) = sector.get(..SLOT_FIELDS_LEN) else { return Slot::Invalid };
        let rest_zero =
            sector.len() == SLOT_SECTOR_LEN && sector[SLOT_FIELDS_LEN..].iter().all(|&b| b == 0);
        let slot = FrontierSlot {
            sequence: le_u64(&fields[0..8]),
            frontier: le_u64(&fields[8..16]),
            step: le_u64(&fields[16..24]),
        };
        let sealed = xxh3_64_with_seed(&fields[0..24], self.number) == le_u64(&fields[24..32]);
        if !sealed
            || !rest_zero
            || slot.sequence == 0
            || slot.frontier < SEGMENT_HEADER_LEN
            || slot.frontier > self.size
            || !(FRONTIER_STEP..=FRONTIER_STEP_MAX).contains(&slot.step)
        {
            return Slot::Invalid;
        }
        Slot::Valid(slot)
    }

    /// Both frontier slots of the header block `block` (fewer bytes read as empty sectors).
    pub fn decode_slots(&self, block: &[u8]) -> [Slot; 2] {
        FRONTIER_SLOT_OFFSETS.map(|offset| {
            let from = offset as usize;
            match block.get(from..from + SLOT_SECTOR_LEN) {
                Some(sector) => self.decode_slot(sector),
                None => Slot::Invalid,
            }
        })
    }

    /// Where recovery stops looking for written bytes in this segment, given its slots:
    /// `min(size, M + S)` for `M` the highest valid frontier and `S` its slot's step (see
    /// "Frontier slots"), or the segment's size if no slot is valid.
    pub fn scan_end(&self, slots: &[Slot; 2]) -> u64 {
        match highest_frontier(slots) {
            Some(slot) => slot.frontier.saturating_add(slot.step).min(self.size),
            None => self.size,
        }
    }

    /// Reads a header from the start of `bytes`.
    ///
    /// # Errors
    /// [`HeaderError`] says what is wrong; nothing panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(block) = bytes.get(..SEGMENT_HEADER_LEN as usize) else {
            return Err(HeaderError::Truncated { len: bytes.len() });
        };
        let fields = &block[..HEADER_FIELDS_LEN];
        // Everything but the fields and the two slot sectors, which are checked as slots.
        let slots_from = FRONTIER_SLOT_OFFSETS[0] as usize;
        let slots_to = FRONTIER_SLOT_OFFSETS[1] as usize + SLOT_SECTOR_LEN;
        let mut padding = block[HEADER_FIELDS_LEN..slots_from].iter().chain(&block[slots_to..]);
        if fields[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = le_u32(&fields[8..12]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion { found: version });
        }
        if xxh3_64(&fields[0..40]) != le_u64(&fields[40..48]) {
            return Err(HeaderError::BadChecksum);
        }
        let header = SegmentHeader {
            number: le_u64(&fields[16..24]),
            first_position: LogPosition::new(le_u64(&fields[24..32])),
            size: le_u64(&fields[32..40]),
        };
        if u64::from(le_u32(&fields[12..16])) != SEGMENT_HEADER_LEN
            || padding.any(|&b| b != 0)
            || header.size <= SEGMENT_HEADER_LEN
            || header.size > SEGMENT_SIZE_MAX
            || header.size % 4096 != 0
            || header.number == 0
            || header.first_position.checked_add(header.capacity()).is_none()
        {
            return Err(HeaderError::BadFields);
        }
        Ok(header)
    }

    /// The seed of the checksums of this segment's frames.
    pub fn frame_seed(&self) -> u64 {
        self.number
    }

    /// The file offset of the frame at `position`, if it lies in this segment's frame area.
    pub fn offset_of(&self, position: LogPosition) -> Option<u64> {
        let delta = position.get().checked_sub(self.first_position.get())?;
        let offset = SEGMENT_HEADER_LEN.checked_add(delta)?;
        (offset < self.size).then_some(offset)
    }

    /// The log position of the byte at file `offset`, for offsets in the frame area.
    pub fn position_at(&self, offset: u64) -> Option<LogPosition> {
        let delta = offset.checked_sub(SEGMENT_HEADER_LEN)?;
        self.first_position.checked_add(delta)
    }

    /// How many frame bytes the segment holds.
    pub fn capacity(&self) -> u64 {
        self.size.saturating_sub(SEGMENT_HEADER_LEN)
    }
}

/// The name of the segment file whose first position is `first`.
pub fn segment_file_name(first: LogPosition) -> String {
    format!("{:020}.wal", first.get())
}

/// The first position a segment file name stands for, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<LogPosition> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogPosition::new)
}

/// The length of the frame of a `payload_len`-byte payload, padding included.
pub const fn frame_len(payload_len: usize) -> usize {
    let unpadded = FRAME_HEADER_LEN + payload_len + FRAME_CHECKSUM_LEN;
    unpadded.next_multiple_of(FRAME_ALIGN)
}

/// Appends a frame to `out` with its checksum left zero; [`seal_frame`] fills it in once
/// the segment the frame goes to is known.
pub fn encode_unsealed(out: &mut Vec<u8>, kind: FrameKind, position: LogPosition, payload: &[u8]) {
    let start = out.len();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind.code());
    out.push(FLAG_RECORD);
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(&position.get().to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(payload);
    out.resize(start + frame_len(payload.len()), 0);
}

/// Stamps the unsealed frame that starts `frame` (its length included) with `synced` (the
/// end of what is durable as it is written; at most its position) and writes its checksum.
/// Returns the frame's length, or `None` if `frame` does not start with a whole frame.
pub fn seal_frame(frame: &mut [u8], seed: u64, synced: LogPosition) -> Option<usize> {
    let payload_len = usize::try_from(le_u32(frame.get(0..4)?)).ok()?;
    let len = frame_len(payload_len);
    let covered = FRAME_HEADER_LEN + payload_len;
    let frame = frame.get_mut(..len)?;
    frame[16..24].copy_from_slice(&synced.get().to_le_bytes());
    let checksum = xxh3_64_with_seed(&frame[..covered], seed);
    frame[covered..covered + FRAME_CHECKSUM_LEN].copy_from_slice(&checksum.to_le_bytes());
    Some(len)
}

/// Appends a complete frame (stamped `synced`, sealed with `seed`) to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    kind: FrameKind,
    position: LogPosition,
    payload: &[u8],
    seed: u64,
    synced: LogPosition,
) {
    let start = out.len();
    encode_unsealed(out, kind, position, payload);
    let sealed = seal_frame(&mut out[start..], seed, synced);
    debug_assert_eq!(sealed, Some(frame_len(payload.len())));
}

/// The trailer frame `trailer` at `position` (where the segment's records end), sealed
/// with `seed`: [`TRAILER_LEN`] bytes.
pub fn encode_trailer(trailer: Trailer, position: LogPosition, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRAILER_LEN);
    encode_unsealed(&mut out, FrameKind::RECORD, position, &[]);
    out[5] = trailer.flags();
    let sealed = seal_frame(&mut out, seed, position);
    debug_assert_eq!(sealed, Some(TRAILER_LEN));
    out
}

/// A frame read back.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the frame carries.
    pub kind: FrameKind,
    /// Where it is in the log.
    pub position: LogPosition,
    /// Its payload.
    pub payload: &'a [u8],
    /// Its length in the log, padding included.
    pub len: usize,
    /// The end of what was durable when it was written: everything before it was synced.
    pub synced: LogPosition,
}

/// What lies at a place where a frame may start.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record frame.
    Frame(Frame<'a>),
    /// A valid trailer: the segment's records end here ([`TRAILER_LEN`] bytes).
    Trailer(Trailer),
    /// Zeroes where a frame header would be: nothing was written here.
    Zeroed,
    /// Not a valid frame, for the reason given.
    Damaged(Damage),
}

/// Why the bytes at a frame's place are not a valid frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The bytes end before the frame does (its header, or the length it announces).
    #[error("frame cut short: {needed} bytes needed, {available} there")]
    Truncated {
        /// The frame's bytes (or a header's, if the header itself is cut).
        needed: u64,
        /// The bytes there are.
        available: u64,
    },
    /// The announced payload is longer than frames may be.
    #[error("frame length {len} over the limit of {limit} bytes")]
    TooLong {
        /// The announced payload length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header names kind 0 but is not all zero, unknown flags, a `synced` stamp past
    /// its position, or its reserved bytes are not zero.
    #[error("malformed frame header")]
    BadHeader,
    /// The frame names another position than the one it sits at.
    #[error("frame claims position {found}, sits at {expected}")]
    WrongPosition {
        /// The position the frame sits at.
        expected: LogPosition,
        /// The position it names.
        found: LogPosition,
    },
    /// The checksum does not match.
    #[error("frame checksum mismatch")]
    BadChecksum,
    /// The padding after the checksum is not zero.
    #[error("non-zero frame padding")]
    BadPadding,
}

/// Reads the frame that should start `bytes` and sit at `position`, sealed with `seed`,
/// whose payload may be at most `max_payload` bytes.
///
/// Never panics, never allocates: the payload is borrowed from `bytes`.
pub fn decode_frame(
    bytes: &[u8],
    position: LogPosition,
    seed: u64,
    max_payload: u64,
) -> Decoded<'_> {
    let available = bytes.len() as u64;
    let Some(header) = bytes.get(..FRAME_HEADER_LEN) else {
        if bytes.iter().all(|&b| b == 0) {
            return Decoded::Zeroed;
        }
        return Decoded::Damaged(Damage::Truncated { needed: FRAME_HEADER_LEN as u64, available });
    };
    if header.iter().all(|&b| b == 0) {
        return Decoded::Zeroed;
    }
    let Some(kind) = FrameKind::new(header[4]) else {
        return Decoded::Damaged(Damage::BadHeader);
    };
    let flags = header[5];
    if header[6..8] != [0; 2] || flags > FLAG_CLOSE {
        return Decoded::Damaged(Damage::BadHeader);
    }
    let payload_len = u64::from(le_u32(&header[0..4]));
    if payload_len > max_payload {
        return Decoded::Damaged(Damage::TooLong { len: payload_len, limit: max_payload });
    }
    // payload_len < 2^32: no overflow in u64; a target whose usize cannot hold the length
    // cannot have that many bytes either.
    let needed = frame_len_u64(payload_len);
    let Some(frame) = usize::try_from(needed).ok().and_then(|len| bytes.get(..len)) else {
        return Decoded::Damaged(Damage::Truncated { needed, available });
    };
    let len = frame.len();
    let found = LogPosition::new(le_u64(&header[8..16]));
    if found != position {
        return Decoded::Damaged(Damage::WrongPosition { expected: position, found });
    }
    let covered = FRAME_HEADER_LEN + payload_len as usize;
    let stored = le_u64(&frame[covered..covered + FRAME_CHECKSUM_LEN]);
    if xxh3_64_with_seed(&frame[..covered], seed) != stored {
        return Decoded::Damaged(Damage::BadChecksum);
    }
    if frame[covered + FRAME_CHECKSUM_LEN..].iter().any(|&b| b != 0) {
        return Decoded::Damaged(Damage::BadPadding);
    }
    let synced = LogPosition::new(le_u64(&header[16..24]));
    let trailer = match flags {
        FLAG_RECORD => None,
        FLAG_SEAL => Some(Trailer::Seal),
        _ => Some(Trailer::Close),
    };
    match trailer {
        None if synced <= position => Decoded::Frame(Frame {
            kind,
            position,
            payload: &frame[FRAME_HEADER_LEN..covered],
            len,
            synced,
        }),
        Some(trailer) if synced == position && payload_len == 0 => Decoded::Trailer(trailer),
        _ => Decoded::Damaged(Damage::BadHeader),
    }
}

/// [`frame_len`] over a `u64` payload length.
const fn frame_len_u64(payload_len: u64) -> u64 {
    let unpadded = (FRAME_HEADER_LEN + FRAME_CHECKSUM_LEN) as u64 + payload_len;
    unpadded.next_multiple_of(FRAME_ALIGN as u64)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 7;

    fn frame(position: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let at = LogPosition::new(position);
        encode_frame(&mut out, FrameKind::RECORD, at, payload, SEED, at);
        out
    }

    #[test]
    fn a_frame_reads_back_with_its_fields() {
        let bytes = frame(4096, b"hello");
        assert_eq!(bytes.len(), frame_len(5));
        assert_eq!(bytes.len() % FRAME_ALIGN, 0);
        let Decoded::Frame(read) = decode_frame(&bytes, LogPosition::new(4096), SEED, 1 << 20)
        else {
            panic!("a valid frame")
        };
        assert_eq!(read.payload, b"hello");
        assert_eq!(read.kind, FrameKind::RECORD);
        assert_eq!(read.len, bytes.len());
    }

    #[test]
    fn another_seed_or_position_does_not_validate() {
        let bytes = frame(64, b"payload");
        assert_eq!(
            decode_frame(&bytes, LogPosition::new(64), SEED + 1, 1 << 20),
            Decoded::Damaged(Damage::BadChecksum)
        );
        assert!(matches!(
            decode_frame(&bytes, LogPosition::new(72), SEED, 1 << 20),
            Decoded::Damaged(Damage::WrongPosition { .. })
        ));
    }

    #[test]
    fn zeroes_end_the_log_and_a_huge_length_is_refused_before_reading() {
        assert_eq!(decode_frame(&[0; 64], LogPosition::ZERO, SEED, 1 << 20), Decoded::Zeroed);
        assert_eq!(decode_frame(&[0; 3], LogPosition::ZERO, SEED, 1 << 20), Decoded::Zeroed);
        let mut bytes = frame(0, b"x");
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame(&bytes, LogPosition::ZERO, SEED, 1 << 20),
            Decoded::Damaged(Damage::TooLong { .. })
        ));
    }

    #[test]
    fn a_header_round_trips_and_refuses_damage() {
        let header =
            SegmentHeader { number: 3, first_position: LogPosition::new(1 << 30), size: 1 << 26 };
        let mut block = header.encode();
        assert_eq!(SegmentHeader::decode(&block), Ok(header));
        block[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&block), Err(HeaderError::BadChecksum));
        assert_eq!(SegmentHeader::decode(&block[..10]), Err(HeaderError::Truncated { len: 10 }));
    }

    #[test]
    fn a_header_carries_its_first_frontier_slot_and_slots_round_trip() {
        let header =
            SegmentHeader { number: 9, first_position: LogPosition::new(64), size: 8 << 20 };
        let block = header.encode();
        let first = FrontierSlot {
            sequence: 1,
            frontier: SEGMENT_HEADER_LEN + FRONTIER_STEP,
            step: FRONTIER_STEP,
        };
        assert_eq!(header.decode_slots(&block), [Slot::Valid(first), Slot::Empty]);
        assert_eq!(
            header.scan_end(&header.decode_slots(&block)),
            SEGMENT_HEADER_LEN + 2 * FRONTIER_STEP
        );
        let slot = FrontierSlot { sequence: 7, frontier: 3 << 20, step: FRONTIER_STEP_MAX };
        assert_eq!(header.decode_slot(&header.encode_slot(slot)), Slot::Valid(slot));
        // Another segment's slot does not validate here.
        let other = SegmentHeader { number: 10, ..header };
        assert_eq!(header.decode_slot(&other.encode_slot(slot)), Slot::Invalid);
        // The frontier is clamped to the segment, and a tiny segment's first slot fits it.
        let tiny = SegmentHeader { size: 8192, ..header };
        assert_eq!(tiny.initial_frontier(), 8192);
        assert_eq!(tiny.scan_end(&tiny.decode_slots(&tiny.encode())), 8192);
    }

    #[test]
    fn a_damaged_slot_is_invalid_and_never_invalidates_the_header() {
        let header = SegmentHeader { number: 2, first_position: LogPosition::ZERO, size: 4 << 20 };
        let block = header.encode();
        let at = FRONTIER_SLOT_OFFSETS[0] as usize;
        // Any single byte of the slot's sector changed: that slot invalid, the header valid.
        for offset in at..at + SLOT_SECTOR_LEN {
            let mut damaged = block.clone();
            damaged[offset] ^= 0x10;
            assert_eq!(SegmentHeader::decode(&damaged), Ok(header), "offset {offset}");
            assert_eq!(header.decode_slots(&damaged)[0], Slot::Invalid, "offset {offset}");
            assert_eq!(header.scan_end(&header.decode_slots(&damaged)), header.size);
        }
        // Checksummed, but not what a writer writes: sequence 0, a frontier in the header
        // or past the segment, a step out of its bounds.
        let step = FRONTIER_STEP;
        for slot in [
            (0, 8192, step),
            (1, 4095, step),
            (1, (4 << 20) + 1, step),
            (1, 8192, step - 1),
            (1, 8192, FRONTIER_STEP_MAX + 1),
        ] {
            let slot = FrontierSlot { sequence: slot.0, frontier: slot.1, step: slot.2 };
            assert_eq!(header.decode_slot(&header.encode_slot(slot)), Slot::Invalid, "{slot:?}");
        }
        assert_eq!(header.decode_slot(&[1; 10]), Slot::Invalid);
        assert_eq!(header.decode_slot(&[0; 10]), Slot::Empty);
        // A byte outside the fields and the slot sectors is still refused.
        for offset in [48, 511, 1536, 4095] {
            let mut damaged = block.clone();
            damaged[offset] = 1;
            assert_eq!(SegmentHeader::decode(&damaged), Err(HeaderError::BadFields), "{offset}");
        }
    }

    #[test]
    fn the_highest_valid_frontier_bounds_the_scan() {
        let header = SegmentHeader { number: 1, first_position: LogPosition::ZERO, size: 64 << 20 };
        let slot = |sequence, frontier| {
            Slot::Valid(FrontierSlot { sequence, frontier, step: FRONTIER_STEP })
        };
        // The highest frontier's own step, not the other slot's.
        let wide = |sequence, frontier| {
            Slot::Valid(FrontierSlot { sequence, frontier, step: FRONTIER_STEP_MAX })
        };
        for (slots, end) in [
            ([slot(4, 5 << 20), slot(5, 6 << 20)], 7 << 20),
            ([slot(5, 6 << 20), slot(4, 5 << 20)], 7 << 20),
            ([Slot::Invalid, slot(4, 5 << 20)], 6 << 20),
            ([wide(4, 5 << 20), slot(5, 6 << 20)], 7 << 20),
            ([slot(4, 5 << 20), wide(5, 6 << 20)], 22 << 20),
            ([slot(9, 64 << 20), Slot::Empty], 64 << 20),
            ([Slot::Invalid, Slot::Empty], 64 << 20),
        ] {
            assert_eq!(header.scan_end(&slots), end, "{slots:?}");
        }
    }

    #[test]
    fn a_header_is_refused_when_its_last_position_would_pass_2_64() {
        let size = 8192;
        let capacity = size - SEGMENT_HEADER_LEN;
        let last_fits = LogPosition::new(u64::MAX - capacity);
        let header = SegmentHeader { number: 1, first_position: last_fits, size };
        assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        let past =
            SegmentHeader { first_position: LogPosition::new(u64::MAX - capacity + 1), ..header };
        assert_eq!(SegmentHeader::decode(&past.encode()), Err(HeaderError::BadFields));
    }

    #[test]
    fn a_header_is_refused_when_its_size_is_past_the_maximum_or_not_a_multiple_of_4096() {
        let header = SegmentHeader { number: 1, first_position: LogPosition::ZERO, size: 8192 };
        assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        for size in [SEGMENT_SIZE_MAX + 4096, 8193, u64::MAX - 4095] {
            let odd = SegmentHeader { size, ..header };
            assert_eq!(SegmentHeader::decode(&odd.encode()), Err(HeaderError::BadFields), "{size}");
        }
    }

    #[test]
    fn segment_names_round_trip() {
        let name = segment_file_name(LogPosition::new(12345));
        assert_eq!(name, "00000000000000012345.wal");
        assert_eq!(parse_segment_file_name(&name), Some(LogPosition::new(12345)));
        assert_eq!(parse_segment_file_name("12345.wal"), None);
        assert_eq!(parse_segment_file_name("0000000000000001234x.wal"), None);
    }

    /// A frame at `position` with `flags` and `payload`, stamped `synced`, sealed with
    /// [`SEED`]: any combination, valid or not.
    fn flagged(flags: u8, position: u64, payload: &[u8], synced: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_unsealed(&mut out, FrameKind::RECORD, LogPosition::new(position), payload);
        out[5] = flags;
        assert_eq!(seal_frame(&mut out, SEED, LogPosition::new(synced)), Some(out.len()));
        out
    }

    #[test]
    fn a_seal_and_a_close_trailer_each_decode_as_that_trailer() {
        let at = LogPosition::new(4096);
        for trailer in [Trailer::Seal, Trailer::Close] {
            let bytes = encode_trailer(trailer, at, SEED);
            assert_eq!(bytes.len(), TRAILER_LEN);
            assert_eq!(decode_frame(&bytes, at, SEED, 1 << 20), Decoded::Trailer(trailer));
        }
    }

    #[test]
    fn a_record_frame_stamped_past_its_position_is_a_bad_header_and_one_stamped_at_it_is_valid() {
        let at = LogPosition::new(4096);
        for (synced, valid) in [(4096, true), (4104, false), (u64::MAX, false)] {
            let mut bytes = Vec::new();
            encode_frame(
                &mut bytes,
                FrameKind::RECORD,
                at,
                b"stamp",
                SEED,
                LogPosition::new(synced),
            );
            let decoded = decode_frame(&bytes, at, SEED, 1 << 20);
            if valid {
                assert!(matches!(decoded, Decoded::Frame(_)), "stamped {synced}: {decoded:?}");
            } else {
                assert_eq!(decoded, Decoded::Damaged(Damage::BadHeader), "stamped {synced}");
            }
        }
    }

    #[test]
    fn a_trailer_with_a_payload_or_a_stamp_other_than_its_position_is_a_bad_header() {
        for flags in [FLAG_SEAL, FLAG_CLOSE] {
            assert!(matches!(
                decode_frame(&flagged(flags, 4096, &[], 4096), LogPosition::new(4096), SEED, 64),
                Decoded::Trailer(_)
            ));
            for bytes in [
                flagged(flags, 4096, b"x", 4096),
                flagged(flags, 4096, &[0; 8], 4096),
                flagged(flags, 4096, &[], 4088),
                flagged(flags, 4096, &[], 0),
                flagged(flags, 4096, &[], 4104),
            ] {
                assert_eq!(
                    decode_frame(&bytes, LogPosition::new(4096), SEED, 64),
                    Decoded::Damaged(Damage::BadHeader),
                    "flags {flags}: {bytes:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_flags_are_a_bad_header() {
        for flags in [3, 4, 0x40, 0x80, 0xff] {
            for payload in [&b""[..], b"payload"] {
                assert_eq!(
                    decode_frame(&flagged(flags, 64, payload, 64), LogPosition::new(64), SEED, 64),
                    Decoded::Damaged(Damage::BadHeader),
                    "flags {flags} payload {payload:?}"
                );
            }
        }
    }

    #[test]
    fn a_frame_reads_back_the_synced_stamp_seal_frame_gave_it() {
        let at = LogPosition::new(4096);
        for synced in [0, 8, 4088, 4096] {
            let mut bytes = Vec::new();
            encode_unsealed(&mut bytes, FrameKind::RECORD, at, b"payload");
            // Sealed twice, as a frame re-stamped before its write: the last stamp holds.
            seal_frame(&mut bytes, SEED, LogPosition::new(4096 - synced));
            let len = seal_frame(&mut bytes, SEED, LogPosition::new(synced));
            assert_eq!(len, Some(bytes.len()));
            let Decoded::Frame(frame) = decode_frame(&bytes, at, SEED, 1 << 20) else {
                panic!("a valid frame stamped {synced}")
            };
            assert_eq!(frame.synced, LogPosition::new(synced));
        }
    }
}
