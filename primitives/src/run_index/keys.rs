//! The keys of the run index: a run's record, under the run itself, and the index entries,
//! under the system run.
//!
//! ```text
//! record           run id | 0x05 | 0x00                                   -> record.rs
//! status entry     SYSTEM_RUN | 0x05 | 0x01 | status u8            | created | run id -> ""
//! tag entry        SYSTEM_RUN | 0x05 | 0x02 | component(tag)       | created | run id -> ""
//! created entry    SYSTEM_RUN | 0x05 | 0x03                        | created | run id -> ""
//! parent entry     SYSTEM_RUN | 0x05 | 0x04 | parent run id (16)   | created | run id -> ""
//! ```
//!
//! `created` is the run's creation time in ms since the Unix epoch, u64 big-endian, and the
//! run id its 16 raw bytes, always the last 24 bytes of an entry. So each index holds its
//! runs in creation order (ties by run id), a creation time range is a key range inside any
//! of them, and an entry's run is read from its end whatever came before. A tag is an
//! escaped, terminated component (`key.rs`), so tags that are prefixes of one another do
//! not mix. Entry values are empty: a query reads the record the entry names.
//!
//! The record lies in the run's own range, so deleting `run_prefix(run)` removes it with
//! the run's other data; the entries lie in the range of the reserved all-zero
//! [`SYSTEM_RUN`], outside every real run's, so that a query across runs is one scan.

use std::ops::{Bound, Range};

use crate::error::{Error, Result};
use crate::key::{prefix_end, KeyBuf, KeyReader};
use crate::run_id::RunId;
use crate::run_index::record::RecordParts;
use crate::run_index::status::RunStatus;
use crate::tag::TypeTag;

/// The reserved run under which the run index keeps its index entries. No run can be
/// created with this id.
pub const SYSTEM_RUN: RunId = RunId::from_bytes([0; RunId::LEN]);

/// Sub-tag of a run's record, in the run's own range.
const RECORD: u8 = 0x00;
/// Sub-tags of the index entries, in [`SYSTEM_RUN`]'s range.
const BY_STATUS: u8 = 0x01;
const BY_TAG: u8 = 0x02;
const BY_CREATED: u8 = 0x03;
const BY_PARENT: u8 = 0x04;

/// Whether `sub_tag` is that of an index entry, which readers only scan.
pub(crate) fn is_index_sub_tag(sub_tag: u8) -> bool {
    matches!(sub_tag, BY_STATUS | BY_TAG | BY_CREATED | BY_PARENT)
}

/// The bytes an entry ends with: created (8) and run id (16).
const ENTRY_TAIL_LEN: usize = 8 + RunId::LEN;

/// The key of `run`'s record.
pub(super) fn record_key(run: RunId) -> Vec<u8> {
    KeyBuf::new(run, TypeTag::Run).push_u8(RECORD).finish()
}

/// One index, and the part of its keys before `created | run id`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Index<'a> {
    Status(RunStatus),
    Tag(&'a str),
    Created,
    Parent(RunId),
}

impl Index<'_> {
    fn prefix(self) -> KeyBuf {
        let index = KeyBuf::new(SYSTEM_RUN, TypeTag::Run);
        match self {
            Index::Status(status) => index.push_u8(BY_STATUS).push_u8(status.byte()),
            Index::Tag(tag) => index.push_u8(BY_TAG).push_component(tag.as_bytes()),
            Index::Created => index.push_u8(BY_CREATED),
            Index::Parent(parent) => index.push_u8(BY_PARENT).push_bytes(parent.as_bytes()),
        }
    }

    /// The entry of the run `run` created at `created_at_ms` in this index.
    fn entry(self, created_at_ms: u64, run: RunId) -> Vec<u8> {
        self.prefix().push_u64(created_at_ms).push_bytes(run.as_bytes()).finish()
    }

    /// The bounds of the entries of runs created in `created` (all of them if `None`).
    pub(super) fn bounds(self, created: Option<&Range<u64>>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let prefix = self.prefix();
        match created {
            Some(range) => (
                Bound::Included(prefix.clone().push_u64(range.start).finish()),
                Bound::Excluded(prefix.push_u64(range.end).finish()),
            ),
            None => {
                let end = prefix_end(prefix.as_slice()).map_or(Bound::Unbounded, Bound::Excluded);
                (Bound::Included(prefix.finish()), end)
            }
        }
    }
}

/// Every index entry of the record `parts` of `run`.
pub(super) fn entries(run: RunId, parts: &RecordParts<'_>) -> Vec<Vec<u8>> {
    let created = parts.created_at_ms;
    let mut entries = Vec::with_capacity(3 + parts.tags.len());
    entries.push(Index::Status(parts.status).entry(created, run));
    entries.push(Index::Created.entry(created, run));
    if let Some(parent) = parts.parent {
        entries.push(Index::Parent(parent).entry(created, run));
    }
    entries.extend(parts.tags.iter().map(|&tag| Index::Tag(tag).entry(created, run)));
    entries
}

/// The creation time and run an index entry names.
///
/// # Errors
/// [`Error::Corrupt`] for a key too short to be an entry.
pub(super) fn read_entry(key: &[u8]) -> Result<(u64, RunId)> {
    let corrupt = || Error::corrupt(key, "run index entry too short");
    let tail = key.len().checked_sub(ENTRY_TAIL_LEN).and_then(|at| key.get(at..));
    let mut reader = KeyReader::new(tail.ok_or_else(corrupt)?);
    let created = reader.read_u64().map_err(|_| corrupt())?;
    let run = <[u8; RunId::LEN]>::try_from(reader.read_rest()).map_err(|_| corrupt())?;
    Ok((created, RunId::from_bytes(run)))
}
