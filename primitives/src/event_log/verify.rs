//! Chain verification: recompute every event's hash, check every link and the density of
//! the sequences, and name the first sequence where any of it fails.

use inmem_engine::Bytes;

use super::format::{event_key_seq, EventHash, EventView, HeadRecord, Hex, GENESIS_HASH};
use crate::error::DecodeError;
use crate::run_id::RunId;

/// What [`verify_chain`](super::EventLog::verify_chain) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every event is present, in its place, unmodified and linked to the one before it,
    /// and the head record agrees with the last one.
    Verified {
        /// The number of events checked (the log's length).
        len: u64,
        /// The last event's hash, `None` for an empty log.
        head_hash: Option<EventHash>,
    },
    /// The chain is broken; events before `seq` verified.
    Broken(ChainBreak),
}

impl ChainReport {
    /// Whether the chain verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, ChainReport::Verified { .. })
    }

    /// The first sequence at which the chain breaks, if it does.
    pub fn first_broken(&self) -> Option<u64> {
        match self {
            ChainReport::Verified { .. } => None,
            ChainReport::Broken(chain_break) => Some(chain_break.seq),
        }
    }
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first sequence that does not verify: every event before it does.
    pub seq: u64,
    /// What is wrong there.
    pub reason: BreakReason,
}

/// Why a chain breaks at a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakReason {
    /// There is no event at the sequence, though the head record or a later event says
    /// there is one (an event was removed).
    Missing,
    /// A key under the run's event range is not an event key (bytes written by something
    /// else than this crate).
    MalformedKey(DecodeError),
    /// The event's record does not decode.
    Malformed(DecodeError),
    /// The record at the sequence's key carries another sequence (events were moved or
    /// reordered).
    SequenceMismatch {
        /// The sequence in the record.
        stored: u64,
    },
    /// The event's previous hash is not the hash of the event before it (that event was
    /// replaced, or this one was moved).
    PrevHashMismatch {
        /// The hash of the event before.
        expected: EventHash,
        /// The previous hash the event holds.
        stored: EventHash,
    },
    /// The event's fields do not hash to its stored hash (it was modified).
    HashMismatch {
        /// The hash the event holds.
        stored: EventHash,
        /// The hash of its fields.
        computed: EventHash,
    },
    /// An event exists at or past the head record's length (it was added outside an
    /// append).
    PastHead {
        /// The head record's length.
        len: u64,
    },
    /// The head record's last hash is not the last event's hash (the last event was
    /// replaced, hash and all).
    HeadMismatch {
        /// The head record's last hash.
        head: EventHash,
        /// The last event's hash.
        last: EventHash,
    },
    /// The head record does not decode.
    HeadMalformed,
}

impl std::fmt::Display for BreakReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakReason::Missing => write!(f, "the event is missing"),
            BreakReason::MalformedKey(error) => write!(f, "a malformed event key: {error}"),
            BreakReason::Malformed(error) => write!(f, "the event does not decode: {error}"),
            BreakReason::SequenceMismatch { stored } => {
                write!(f, "the record holds sequence {stored}")
            }
            BreakReason::PrevHashMismatch { expected, stored } => write!(
                f,
                "previous hash {:?} is not the previous event's {:?}",
                Hex(stored),
                Hex(expected)
            ),
            BreakReason::HashMismatch { stored, computed } => write!(
                f,
                "stored hash {:?} is not the hash of the fields, {:?}",
                Hex(stored),
                Hex(computed)
            ),
            BreakReason::PastHead { len } => {
                write!(f, "an event past the head record's length {len}")
            }
            BreakReason::HeadMismatch { head, last } => write!(
                f,
                "the head record's hash {:?} is not the last event's {:?}",
                Hex(head),
                Hex(last)
            ),
            BreakReason::HeadMalformed => write!(f, "the head record does not decode"),
        }
    }
}

fn broken(seq: u64, reason: BreakReason) -> ChainReport {
    ChainReport::Broken(ChainBreak { seq, reason })
}

/// Verifies `run`'s chain: `head` is its head record, `events` every entry of its event
/// range in key order (from one snapshot).
pub(super) fn verify(
    run: RunId,
    head: HeadRecord,
    events: impl Iterator<Item = (Bytes, Bytes)>,
) -> ChainReport {
    let head_len = head.len.get();
    let mut expected: u64 = 0;
    let mut prev = GENESIS_HASH;
    for (key, stored) in events {
        match check_event(run, expected, &prev, head_len, &key, stored) {
            Ok(hash) => prev = hash,
            Err(reason) => return broken(expected, reason),
        }
        expected += 1;
    }
    if expected < head_len {
        return broken(expected, BreakReason::Missing);
    }
    if head.last_hash != prev {
        let reason = BreakReason::HeadMismatch { head: head.last_hash, last: prev };
        return broken(expected.saturating_sub(1), reason);
    }
    ChainReport::Verified { len: expected, head_hash: (expected > 0).then_some(prev) }
}

/// Checks the entry `key` = `stored` as event `expected`, whose previous event's hash is
/// `prev`; its hash, or why the chain breaks there.
fn check_event(
    run: RunId,
    expected: u64,
    prev: &EventHash,
    head_len: u64,
    key: &[u8],
    stored: Bytes,
) -> Result<EventHash, BreakReason> {
    let seq = event_key_seq(key).map_err(BreakReason::MalformedKey)?;
    if seq != expected {
        // Keys come in order, so `seq > expected`: the events in between are gone.
        return Err(BreakReason::Missing);
    }
    if seq >= head_len {
        return Err(BreakReason::PastHead { len: head_len });
    }
    let event = EventView::decode(stored).map_err(BreakReason::Malformed)?;
    if event.seq() != seq {
        return Err(BreakReason::SequenceMismatch { stored: event.seq() });
    }
    if event.prev_hash() != prev {
        return Err(BreakReason::PrevHashMismatch { expected: *prev, stored: *event.prev_hash() });
    }
    let computed = event.compute_hash(run);
    if computed != *event.hash() {
        return Err(BreakReason::HashMismatch { stored: *event.hash(), computed });
    }
    Ok(computed)
}
