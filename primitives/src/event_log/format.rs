//! The event log's stored formats: its keys, the head record, the event record and the
//! event hash. Every layout here is an on-disk format; the tables in the module doc of
//! `event_log.rs` describe the same bytes.

use bytemuck::{Pod, Zeroable};
use inmem_engine::Bytes;

use crate::error::{DecodeError, DecodeReason, Error, Result};
use crate::key::{split_key, KeyBuf};
use crate::run_id::RunId;
use crate::tag::TypeTag;
use crate::value::ValueRef;
use crate::view::{U32Le, U64Le, ValueView, View};

/// A BLAKE3 hash of an event (see [`event_hash`]).
pub type EventHash = [u8; 32];

/// The previous hash of the first event of every run: 32 zero bytes.
pub const GENESIS_HASH: EventHash = [0; 32];

/// The longest event type name, in bytes.
pub const EVENT_TYPE_MAX: usize = 256;

/// The byte after `run id | 0x02` of the run's head record.
pub(super) const SUB_HEAD: u8 = 0x00;
/// The byte after `run id | 0x02` of every event record.
pub(super) const SUB_EVENT: u8 = 0x01;
/// The byte after `run id | 0x02` of every entry of the type index.
pub(super) const SUB_TYPE_INDEX: u8 = 0x02;

/// Whether `sub_tag` (the byte after `run id | 0x02`) is that of an index entry, which
/// readers only scan.
pub(crate) fn is_index_sub_tag(sub_tag: u8) -> bool {
    sub_tag == SUB_TYPE_INDEX
}

/// `run id | 0x02 | 0x00`: the run's head record.
pub(super) fn head_key(run: RunId) -> KeyBuf {
    KeyBuf::new(run, TypeTag::Event).push_u8(SUB_HEAD)
}

/// `run id | 0x02 | 0x01 | seq (u64 BE)`: event `seq`, so that events order by sequence.
pub(super) fn event_key(run: RunId, seq: u64) -> KeyBuf {
    KeyBuf::with_capacity(run, TypeTag::Event, 9).push_u8(SUB_EVENT).push_u64(seq)
}

/// The smallest key after every event key of `run`: `run id | 0x02 | 0x02`.
pub(super) fn events_end(run: RunId) -> KeyBuf {
    KeyBuf::new(run, TypeTag::Event).push_u8(SUB_EVENT + 1)
}

/// `run id | 0x02 | 0x02 | event type (component)`: the prefix of the type's index entries.
pub(super) fn type_index_prefix(run: RunId, event_type: &str) -> KeyBuf {
    KeyBuf::new(run, TypeTag::Event).push_u8(SUB_TYPE_INDEX).push_component(event_type.as_bytes())
}

/// `run id | 0x02 | 0x02 | event type (component) | seq (u64 BE)`: event `seq` is of the type.
pub(super) fn type_index_key(run: RunId, event_type: &str, seq: u64) -> KeyBuf {
    type_index_prefix(run, event_type).push_u64(seq)
}

/// The sequence an event key names, if `key` is one.
pub(super) fn event_key_seq(key: &[u8]) -> Result<u64, DecodeError> {
    let mut reader = split_key(key)?.reader();
    let sub = reader.read_u8()?;
    if sub != SUB_EVENT {
        return Err(DecodeError::new(crate::key::TAG_PREFIX_LEN, DecodeReason::UnknownTag(sub)));
    }
    let seq = reader.read_u64()?;
    reader.finish()?;
    Ok(seq)
}

/// The sequence a type index key names, if `key` is one.
pub(super) fn type_index_key_seq(key: &[u8]) -> Result<u64, DecodeError> {
    let mut reader = split_key(key)?.reader();
    let sub = reader.read_u8()?;
    if sub != SUB_TYPE_INDEX {
        return Err(DecodeError::new(crate::key::TAG_PREFIX_LEN, DecodeReason::UnknownTag(sub)));
    }
    reader.read_component()?;
    let seq = reader.read_u64()?;
    reader.finish()?;
    Ok(seq)
}

/// The head record of a run's log, the value of [`head_key`]: 48 bytes, nothing after.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | len: the number of events, u64 LE (the next event's sequence) |
/// | 8 | 8 | the last event's timestamp, ms since the Unix epoch, u64 LE |
/// | 16 | 32 | the last event's hash ([`GENESIS_HASH`] for an empty log) |
///
/// Every append reads and rewrites it in the append's transaction, so two concurrent
/// appends to one run write the same key and the later committer conflicts and retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(super) struct HeadRecord {
    pub(super) len: U64Le,
    pub(super) last_timestamp_ms: U64Le,
    pub(super) last_hash: EventHash,
}

impl HeadRecord {
    /// The head of a log without events (stored as an absent key).
    pub(super) const EMPTY: HeadRecord = HeadRecord {
        len: U64Le::new(0),
        last_timestamp_ms: U64Le::new(0),
        last_hash: GENESIS_HASH,
    };

    /// The head record in `stored`, the value of the head key `key`.
    pub(super) fn decode(key: &KeyBuf, stored: &[u8]) -> Result<HeadRecord> {
        bytemuck::try_pod_read_unaligned::<HeadRecord>(stored)
            .map_err(|_| Error::corrupt(key, "an event log head record is not 48 bytes"))
    }
}

/// The fixed header of an event record, the value of [`event_key`]; the record is this
/// header (84 bytes), the event type's UTF-8 bytes, then the payload's encoded `Value`.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | seq, u64 LE (equal to the sequence in the key) |
/// | 8 | 8 | timestamp, ms since the Unix epoch, u64 LE |
/// | 16 | 32 | prev hash: the hash of event seq - 1 ([`GENESIS_HASH`] for event 0) |
/// | 48 | 32 | hash: [`event_hash`] of this event |
/// | 80 | 4 | type length in bytes, u32 LE (1 to [`EVENT_TYPE_MAX`]) |
/// | 84 | type length | the event type, UTF-8 |
/// | 84 + type length | rest | the payload, an encoded `Value` (value/encode.rs) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(super) struct EventHeader {
    pub(super) seq: U64Le,
    pub(super) timestamp_ms: U64Le,
    pub(super) prev_hash: EventHash,
    pub(super) hash: EventHash,
    pub(super) type_len: U32Le,
}

/// The bytes of an [`EventHeader`].
pub(super) const HEADER_LEN: usize = size_of::<EventHeader>();
const _: () = assert!(HEADER_LEN == 84 && align_of::<EventHeader>() == 1);
const _: () = assert!(size_of::<HeadRecord>() == 48 && align_of::<HeadRecord>() == 1);
/// The offset of the type length field, for decode errors.
const TYPE_LEN_OFFSET: usize = 80;

impl EventHeader {
    /// Read in place of a header only if a checked view's bytes were not one, which cannot
    /// happen (see [`EventView::header`]).
    const ZERO: EventHeader = EventHeader {
        seq: U64Le::new(0),
        timestamp_ms: U64Le::new(0),
        prev_hash: GENESIS_HASH,
        hash: GENESIS_HASH,
        type_len: U32Le::new(0),
    };
}

/// The context string of the event hash's BLAKE3 key derivation mode: a hash of this
/// format is never equal to a BLAKE3 hash of the same bytes made for another purpose.
const HASH_CONTEXT: &str = "inmem-primitives 2025 event log event hash v1";

/// The hash of an event: BLAKE3 in key derivation mode with the context
/// `"inmem-primitives 2025 event log event hash v1"`, over this framing (every length is
/// written before its bytes, every integer little-endian, so that no two different events
/// frame to the same bytes):
///
/// ```text
/// run id        16 bytes
/// seq           u64 LE
/// timestamp_ms  u64 LE
/// prev hash     32 bytes
/// type length   u64 LE, then the type's UTF-8 bytes
/// payload len   u64 LE, then the payload's encoded Value bytes
/// ```
///
/// The run id is in the hash so that an event copied from another run's log does not
/// verify in this one; the previous hash links the events into a chain, so that changing,
/// removing or reordering one breaks the chain at that event or at the one after it.
///
/// ```
/// use inmem_primitives::event_log::{event_hash, GENESIS_HASH};
/// use inmem_primitives::{RunId, Value};
///
/// let run = RunId::from_bytes([7; 16]);
/// let payload = Value::from("hello").try_encode()?;
/// let hash = event_hash(run, 0, 1_700_000_000_000, &GENESIS_HASH, "greeting", &payload);
/// assert_ne!(hash, event_hash(run, 1, 1_700_000_000_000, &GENESIS_HASH, "greeting", &payload));
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
pub fn event_hash(
    run: RunId,
    seq: u64,
    timestamp_ms: u64,
    prev_hash: &EventHash,
    event_type: &str,
    payload: &[u8],
) -> EventHash {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(run.as_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(&timestamp_ms.to_le_bytes());
    hasher.update(prev_hash);
    hasher.update(&(event_type.len() as u64).to_le_bytes());
    hasher.update(event_type.as_bytes());
    hasher.update(&(payload.len() as u64).to_le_bytes());
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// The record of an event: its header, type and encoded payload (see [`EventHeader`]).
pub(super) fn encode_event(header: &EventHeader, event_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(HEADER_LEN + event_type.len() + payload.len());
    stored.extend_from_slice(bytemuck::bytes_of(header));
    stored.extend_from_slice(event_type.as_bytes());
    stored.extend_from_slice(payload);
    stored
}

/// One stored event, read in place: a refcounted handle on the engine's bytes of its
/// record, with accessors that copy nothing (the header is read through bytemuck, the type
/// and the payload are borrowed from the record).
///
/// Made only from a record whose header, type (UTF-8, at most [`EVENT_TYPE_MAX`] bytes)
/// and payload (an encoded `Value`) were checked, once.
#[derive(Clone, PartialEq)]
pub struct EventView {
    /// The whole record; its header and type were checked by [`EventView::decode`].
    stored: View,
    /// The payload part of `stored`, checked to be an encoded `Value`.
    payload: ValueView,
}

impl EventView {
    /// Checks `stored` as an event record (laid out as the module doc of `event_log` says)
    /// and views it.
    ///
    /// # Errors
    /// [`DecodeReason::UnexpectedEnd`] for bytes shorter than the header;
    /// [`DecodeReason::LengthPastEnd`] for a type length over [`EVENT_TYPE_MAX`] or past
    /// the end; [`DecodeReason::InvalidUtf8`] for a type that is not UTF-8; the payload's
    /// decode error (offset from the record's start) for a payload that is not a `Value`.
    pub fn decode(stored: Bytes) -> Result<EventView, DecodeError> {
        let stored = View::new(stored);
        let (header, rest) = stored.split_header::<EventHeader>()?;
        let type_len = header.type_len.get() as usize;
        if type_len > EVENT_TYPE_MAX || type_len > rest.len() {
            let reason = DecodeReason::LengthPastEnd {
                length: type_len as u64,
                remaining: rest.len().min(EVENT_TYPE_MAX) as u64,
            };
            return Err(DecodeError::new(TYPE_LEN_OFFSET, reason));
        }
        let type_bytes = rest.as_bytes().get(..type_len).unwrap_or_default();
        if std::str::from_utf8(type_bytes).is_err() {
            return Err(DecodeError::new(HEADER_LEN, DecodeReason::InvalidUtf8));
        }
        let payload_start = HEADER_LEN + type_len;
        let too_short = DecodeError::new(payload_start, DecodeReason::UnexpectedEnd);
        let payload = rest.slice(type_len..rest.len()).ok_or(too_short)?;
        let payload = ValueView::new(payload)
            .map_err(|error| DecodeError::new(payload_start + error.offset, error.reason))?;
        Ok(EventView { stored, payload })
    }

    /// The header, borrowed from the record.
    fn header(&self) -> &EventHeader {
        let bytes = self.stored.as_bytes().get(..HEADER_LEN).unwrap_or_default();
        // Never the fallback: `decode` checked that the record starts with a header.
        bytemuck::try_from_bytes(bytes).unwrap_or(&EventHeader::ZERO)
    }

    /// The event's sequence number in its run's log.
    pub fn seq(&self) -> u64 {
        self.header().seq.get()
    }

    /// When the event was appended, in ms since the Unix epoch (never earlier than the
    /// event before it).
    pub fn timestamp_ms(&self) -> u64 {
        self.header().timestamp_ms.get()
    }

    /// The hash of the event before this one ([`GENESIS_HASH`] for event 0).
    pub fn prev_hash(&self) -> &EventHash {
        &self.header().prev_hash
    }

    /// The event's hash, as stored (see [`event_hash`]).
    pub fn hash(&self) -> &EventHash {
        &self.header().hash
    }

    /// The event's type, borrowed from the record.
    pub fn event_type(&self) -> &str {
        let type_len = self.header().type_len.get() as usize;
        let bytes = self.stored.as_bytes().get(HEADER_LEN..HEADER_LEN + type_len);
        // Never the fallback: `decode` checked that these bytes are UTF-8. (Checking again
        // costs at most EVENT_TYPE_MAX bytes and keeps this module free of unsafe code.)
        bytes.and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or_default()
    }

    /// The payload, read in place.
    pub fn payload(&self) -> ValueRef<'_> {
        self.payload.value()
    }

    /// The payload as a checked view of its encoded bytes.
    pub fn payload_view(&self) -> &ValueView {
        &self.payload
    }

    /// The whole stored record (header, type, payload).
    pub fn stored(&self) -> &View {
        &self.stored
    }

    /// The hash this event should have in `run`'s log, recomputed from its fields.
    pub fn compute_hash(&self, run: RunId) -> EventHash {
        let payload = self.payload.view().as_bytes();
        event_hash(
            run,
            self.seq(),
            self.timestamp_ms(),
            self.prev_hash(),
            self.event_type(),
            payload,
        )
    }
}

impl std::fmt::Debug for EventView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventView")
            .field("seq", &self.seq())
            .field("timestamp_ms", &self.timestamp_ms())
            .field("event_type", &self.event_type())
            .field("payload", &self.payload())
            .field("hash", &Hex(self.hash()))
            .finish_non_exhaustive()
    }
}

/// A hash, in lowercase hex, for messages.
pub(super) struct Hex<'a>(pub(super) &'a EventHash);

impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::hex::write(f, self.0)
    }
}
