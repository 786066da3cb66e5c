//! A run's stored record and [`RunView`], the view reads return.
//!
//! # Layout
//!
//! Key: `run id | TypeTag::Run (0x05) | 0x00` (see `keys.rs`). Value: a [`RecordHeader`],
//! then its sections, each exactly as long as the header says, with nothing after them:
//!
//! ```text
//! record  = header (36 bytes) | parent | tags | metadata | error
//! parent  = 16 bytes of the parent's run id, present iff header.has_parent == 1
//! tags    = tag_count times { u32 LE length | UTF-8 bytes }, strictly ascending bytewise
//!           (each tag once), tags_len bytes in all
//! metadata= an encoded `Value` (value/encode.rs), metadata_len bytes
//! error   = UTF-8 text, error_len bytes; meaningful iff header.has_error == 1 (else empty)
//! ```

use bytemuck::{Pod, Zeroable};
use inmem_engine::Bytes;

use crate::error::{Error, Result};
use crate::run_id::RunId;
use crate::run_index::status::RunStatus;
use crate::value::ValueRef;
use crate::view::{U32Le, U64Le, ValueView, View};

/// The format of [`RecordHeader`] and the sections after it; the only one this build reads.
const RECORD_FORMAT: u8 = 1;

/// The fixed fields at the front of a run's record.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 1 | format, 1 |
/// | 1 | 1 | status ([`RunStatus::byte`]) |
/// | 2 | 1 | has_parent, 0 or 1 |
/// | 3 | 1 | has_error, 0 or 1 |
/// | 4 | 8 | created at, ms since the Unix epoch, u64 LE |
/// | 12 | 8 | updated at, ms since the Unix epoch, u64 LE |
/// | 20 | 4 | tag_count, u32 LE |
/// | 24 | 4 | tags_len: bytes of the tags section, u32 LE |
/// | 28 | 4 | metadata_len: bytes of the encoded metadata, u32 LE |
/// | 32 | 4 | error_len: bytes of the error message, u32 LE |
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(super) struct RecordHeader {
    format: u8,
    status: u8,
    has_parent: u8,
    has_error: u8,
    created_at_ms: U64Le,
    updated_at_ms: U64Le,
    tag_count: U32Le,
    tags_len: U32Le,
    metadata_len: U32Le,
    error_len: U32Le,
}

const _: () = assert!(size_of::<RecordHeader>() == 36 && align_of::<RecordHeader>() == 1);

/// A run's record, read in place: a refcounted handle on the stored bytes, checked once
/// when it was read, with typed accessors that copy no payload.
#[derive(Clone)]
pub struct RunView {
    run: RunId,
    /// Copied out of the stored bytes through bytemuck (fixed fields, no payload).
    header: RecordHeader,
    /// The header's status byte, decoded.
    status: RunStatus,
    parent: Option<RunId>,
    /// The tags section, checked to be well formed.
    tags: View,
    metadata: ValueView,
    /// The error message, checked to be UTF-8; `None` when the header has no error.
    error: Option<View>,
    stored: View,
}

impl RunView {
    /// Checks the record of `run`, stored at `key`, and views it.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for bytes that are not a record of this format.
    pub(super) fn parse(run: RunId, key: &[u8], bytes: Bytes) -> Result<RunView> {
        let corrupt = |reason| Error::corrupt(key, reason);
        let stored = View::new(bytes);
        let (header, rest) =
            stored.split_header::<RecordHeader>().map_err(|_| corrupt("header too short"))?;
        let header = *header;
        if header.format != RECORD_FORMAT {
            return Err(corrupt("unknown run record format"));
        }
        let status =
            RunStatus::from_byte(header.status).ok_or_else(|| corrupt("unknown run status"))?;
        let mut sections = Sections { rest, corrupt: &corrupt };
        let parent = match header.has_parent {
            0 => None,
            1 => Some(sections.take(RunId::LEN)?),
            _ => return Err(corrupt("has_parent is neither 0 nor 1")),
        };
        let parent = parent.map(|view| parent_id(&view)).transpose().map_err(corrupt)?;
        let tags = sections.take(header.tags_len.get() as usize)?;
        check_tags(tags.as_bytes(), header.tag_count.get()).map_err(corrupt)?;
        let metadata = sections.take(header.metadata_len.get() as usize)?;
        let metadata = ValueView::new(metadata).map_err(|_| corrupt("metadata does not decode"))?;
        let error = sections.take(header.error_len.get() as usize)?;
        if std::str::from_utf8(error.as_bytes()).is_err() {
            return Err(corrupt("error message is not UTF-8"));
        }
        let error = match header.has_error {
            0 if error.is_empty() => None,
            1 => Some(error),
            _ => return Err(corrupt("has_error is not 0 (with no message) or 1")),
        };
        if !sections.rest.is_empty() {
            return Err(corrupt("trailing bytes after the record"));
        }
        Ok(RunView { run, header, status, parent, tags, metadata, error, stored })
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.run
    }

    /// The run's status.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// When the run was created, in ms since the Unix epoch.
    pub fn created_at_ms(&self) -> u64 {
        self.header.created_at_ms.get()
    }

    /// When the run's record was last changed, in ms since the Unix epoch.
    pub fn updated_at_ms(&self) -> u64 {
        self.header.updated_at_ms.get()
    }

    /// The run's parent, if it was created under one.
    pub fn parent(&self) -> Option<RunId> {
        self.parent
    }

    /// The run's tags, in ascending byte order, each once; borrowed from the stored bytes.
    pub fn tags(&self) -> Tags<'_> {
        Tags { bytes: self.tags.as_bytes() }
    }

    /// The number of tags.
    pub fn tag_count(&self) -> usize {
        self.header.tag_count.get() as usize
    }

    /// Whether the run carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|own| own == tag)
    }

    /// The run's metadata, read in place.
    pub fn metadata(&self) -> ValueRef<'_> {
        self.metadata.value()
    }

    /// The run's metadata as a checked view of its encoding.
    pub fn metadata_view(&self) -> &ValueView {
        &self.metadata
    }

    /// The error message the run failed with ([`crate::run_index::RunIndex::fail`]), kept
    /// when it is archived; `None` for a run that did not fail.
    pub fn error(&self) -> Option<&str> {
        // Checked to be UTF-8 by `parse`.
        self.error.as_ref().and_then(|view| std::str::from_utf8(view.as_bytes()).ok())
    }

    /// The stored record, whole.
    pub fn stored(&self) -> &View {
        &self.stored
    }

    /// The record's parts, borrowed, to write a changed copy of it.
    pub(super) fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            status: self.status(),
            created_at_ms: self.created_at_ms(),
            updated_at_ms: self.updated_at_ms(),
            parent: self.parent,
            tags: self.tags().collect(),
            metadata: self.metadata.view().as_bytes(),
            error: self.error(),
        }
    }
}

impl std::fmt::Debug for RunView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunView")
            .field("id", &self.run)
            .field("status", &self.status())
            .field("created_at_ms", &self.created_at_ms())
            .field("updated_at_ms", &self.updated_at_ms())
            .field("parent", &self.parent)
            .field("tags", &self.tags().collect::<Vec<_>>())
            .field("metadata", &self.metadata())
            .field("error", &self.error())
            .finish()
    }
}

impl PartialEq for RunView {
    /// Views are equal when they are of the same run and their records are the same bytes.
    fn eq(&self, other: &RunView) -> bool {
        self.run == other.run && self.stored == other.stored
    }
}

/// The tags of a run, in ascending byte order; see [`RunView::tags`].
#[derive(Clone, Debug)]
pub struct Tags<'a> {
    /// The rest of a tags section checked by [`check_tags`].
    bytes: &'a [u8],
}

impl<'a> Iterator for Tags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (tag, rest) = split_tag(self.bytes)?;
        self.bytes = rest;
        // Checked to be UTF-8 by `check_tags`.
        std::str::from_utf8(tag).ok()
    }
}

/// The first `{ u32 LE length | bytes }` of a tags section, and the bytes after it.
fn split_tag(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Checks that `bytes` is exactly `count` UTF-8 tags in strictly ascending order.
fn check_tags(mut bytes: &[u8], count: u32) -> Result<(), &'static str> {
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let (tag, rest) = split_tag(bytes).ok_or("a tag runs past its section")?;
        if std::str::from_utf8(tag).is_err() {
            return Err("a tag is not UTF-8");
        }
        if previous.is_some_and(|previous| previous >= tag) {
            return Err("tags are not strictly ascending");
        }
        previous = Some(tag);
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err("tags do not fill their section");
    }
    Ok(())
}

fn parent_id(view: &View) -> Result<RunId, &'static str> {
    let bytes = <[u8; RunId::LEN]>::try_from(view.as_bytes()).map_err(|_| "parent id too short")?;
    Ok(RunId::from_bytes(bytes))
}

/// The sections after the header, taken in order.
struct Sections<'c, F> {
    rest: View,
    corrupt: &'c F,
}

impl<F: Fn(&'static str) -> Error> Sections<'_, F> {
    fn take(&mut self, len: usize) -> Result<View> {
        let past_end = || (self.corrupt)("a section runs past the record");
        let section = self.rest.slice(0..len).ok_or_else(past_end)?;
        self.rest = self.rest.slice(len..self.rest.len()).ok_or_else(past_end)?;
        Ok(section)
    }
}

/// The parts of a record to write; tags strictly ascending (a set).
#[derive(Clone, Debug)]
pub(super) struct RecordParts<'a> {
    pub(super) status: RunStatus,
    pub(super) created_at_ms: u64,
    pub(super) updated_at_ms: u64,
    pub(super) parent: Option<RunId>,
    /// Strictly ascending, each tag once.
    pub(super) tags: Vec<&'a str>,
    /// An encoded `Value`.
    pub(super) metadata: &'a [u8],
    pub(super) error: Option<&'a str>,
}

impl RecordParts<'_> {
    /// The record's bytes, laid out as the module doc says.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a section longer than a u32 length can say (the
    /// engine's value limit refuses such a record anyway).
    pub(super) fn encode(&self) -> Result<Vec<u8>> {
        let tags_len: usize = self.tags.iter().map(|tag| 4 + tag.len()).sum();
        let error = self.error.unwrap_or_default();
        let header = RecordHeader {
            format: RECORD_FORMAT,
            status: self.status.byte(),
            has_parent: u8::from(self.parent.is_some()),
            has_error: u8::from(self.error.is_some()),
            created_at_ms: U64Le::new(self.created_at_ms),
            updated_at_ms: U64Le::new(self.updated_at_ms),
            tag_count: U32Le::new(section_len("run tag count", self.tags.len())?),
            tags_len: U32Le::new(section_len("run tags bytes", tags_len)?),
            metadata_len: U32Le::new(section_len("run metadata bytes", self.metadata.len())?),
            error_len: U32Le::new(section_len("run error message bytes", error.len())?),
        };
        let total = size_of::<RecordHeader>()
            + self.parent.map_or(0, |_| RunId::LEN)
            + tags_len
            + self.metadata.len()
            + error.len();
        let mut bytes = Vec::with_capacity(total);
        bytes.extend_from_slice(bytemuck::bytes_of(&header));
        if let Some(parent) = self.parent {
            bytes.extend_from_slice(parent.as_bytes());
        }
        for tag in &self.tags {
            // Fits: each tag is shorter than the whole section, checked above.
            bytes.extend_from_slice(&(tag.len() as u32).to_le_bytes());
            bytes.extend_from_slice(tag.as_bytes());
        }
        bytes.extend_from_slice(self.metadata);
        bytes.extend_from_slice(error.as_bytes());
        Ok(bytes)
    }
}

fn section_len(what: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::LimitExceeded {
        what,
        actual: len as u64,
        max: u64::from(u32::MAX),
    })
}
