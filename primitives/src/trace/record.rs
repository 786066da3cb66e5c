//! A trace's stored record: its fixed header, its sections, and [`TraceView`], which reads
//! them in place.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use inmem_engine::Bytes;

use super::id::TraceId;
use super::kind::{TraceType, CUSTOM_CODE};
use crate::error::{DecodeError, Error, Result};
use crate::value::{Value, ValueRef};
use crate::view::{U32Le, U64Le, ValueView, View};

/// The format of the record this build writes, and the only one it reads.
const RECORD_FORMAT: u8 = 1;

/// The fixed header at the front of a trace's record (the record's key is
/// `run | 0x04 | 0x00 | trace id`, see the module doc of `trace.rs`).
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | created at, ms since the Unix epoch, u64 LE |
/// | 8 | 1 | record format, 1 |
/// | 9 | 1 | type code: 1 tool_call, 2 decision, 3 query, 4 thought, 5 error, 0x80 custom |
/// | 10 | 1 | has parent: 0 or 1 |
/// | 11 | 1 | reserved, 0 |
/// | 12 | 4 | parent id bytes, u32 LE (0 without a parent) |
/// | 16 | 4 | type name bytes, u32 LE (0 for a built-in type) |
/// | 20 | 4 | tag count, u32 LE |
/// | 24 | 4 | tags bytes, u32 LE |
/// | 28 | 4 | content bytes, u32 LE |
/// | 32 | 4 | metadata bytes, u32 LE |
///
/// Then the sections, in this order, each exactly as long as its header field says, and
/// nothing after them:
///
/// ```text
/// parent id  = the parent's key form (TraceId::key_bytes), if it has a parent
/// type name  = a custom type's name, UTF-8
/// tags       = { u32 LE length | UTF-8 bytes } per tag, distinct, in the order given
/// content    = encoded Value (value/encode.rs, format version byte first)
/// metadata   = encoded Value
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct TraceHeader {
    created_at_ms: U64Le,
    format: u8,
    type_code: u8,
    has_parent: u8,
    reserved: u8,
    parent_len: U32Le,
    type_name_len: U32Le,
    tag_count: U32Le,
    tags_len: U32Le,
    content_len: U32Le,
    metadata_len: U32Le,
}

/// The bytes of [`TraceHeader`].
const HEADER_LEN: usize = size_of::<TraceHeader>();

// The layout table above: 8 + 4 * 1 + 6 * 4 bytes, no padding, alignment 1.
const _: () = assert!(HEADER_LEN == 36 && align_of::<TraceHeader>() == 1);

/// The bytes before each tag in the tags section.
const TAG_LEN_BYTES: usize = size_of::<U32Le>();

/// What goes into a record; see [`encode`].
pub(crate) struct RecordParts<'a> {
    pub created_at_ms: u64,
    pub trace_type: &'a TraceType,
    pub parent: Option<&'a TraceId>,
    /// Distinct, checked.
    pub tags: &'a [&'a str],
    pub content: &'a Value,
    pub metadata: &'a Value,
}

/// A section's length as its u32 header field.
fn section_len(what: &'static str, len: usize) -> Result<U32Le> {
    let max = u64::from(u32::MAX);
    u32::try_from(len).map(U32Le::new).map_err(|_| Error::LimitExceeded {
        what,
        actual: len as u64,
        max,
    })
}

/// The record of a trace (the layout on [`TraceHeader`]).
///
/// # Errors
/// [`Error::LimitExceeded`] for a content or metadata value nested too deeply, or a
/// section over 4 GiB.
pub(crate) fn encode(parts: &RecordParts<'_>) -> Result<Vec<u8>> {
    let content = parts.content.try_encode()?;
    let metadata = parts.metadata.try_encode()?;
    let parent = parts.parent.map(TraceId::key_bytes).unwrap_or_default();
    let type_name = match parts.trace_type {
        TraceType::Custom(name) => name.as_bytes(),
        _ => &[],
    };
    let mut tags = Vec::new();
    for tag in parts.tags {
        tags.extend_from_slice(bytemuck::bytes_of(&section_len("trace tag bytes", tag.len())?));
        tags.extend_from_slice(tag.as_bytes());
    }
    let header = TraceHeader {
        created_at_ms: U64Le::new(parts.created_at_ms),
        format: RECORD_FORMAT,
        type_code: parts.trace_type.code(),
        has_parent: u8::from(parts.parent.is_some()),
        reserved: 0,
        parent_len: section_len("trace parent id bytes", parent.len())?,
        type_name_len: section_len("trace type name bytes", type_name.len())?,
        tag_count: section_len("trace tags", parts.tags.len())?,
        tags_len: section_len("trace tags bytes", tags.len())?,
        content_len: section_len("trace content bytes", content.len())?,
        metadata_len: section_len("trace metadata bytes", metadata.len())?,
    };
    let sections = [parent.as_slice(), type_name, &tags, &content, &metadata];
    let mut record =
        Vec::with_capacity(HEADER_LEN + sections.iter().map(|s| s.len()).sum::<usize>());
    record.extend_from_slice(bytemuck::bytes_of(&header));
    sections.iter().for_each(|section| record.extend_from_slice(section));
    Ok(record)
}

/// A trace as stored: its header read through bytemuck, its sections read in place. Cloning
/// it shares the stored bytes.
#[derive(Clone)]
pub struct TraceView {
    id: TraceId,
    /// Copied out of the stored bytes (36 bytes).
    header: TraceHeader,
    /// Decoded from the parent section (at most 129 bytes).
    parent: Option<TraceId>,
    /// The whole record.
    stored: View,
    /// The custom type's name in `stored`, checked to be UTF-8.
    type_name: Range<usize>,
    /// The tags section in `stored`, checked to hold `tag_count` UTF-8 tags exactly.
    tags: Range<usize>,
    content: ValueView,
    metadata: ValueView,
}

/// The ranges of a record's five sections, after the header.
fn section_ranges(key: &[u8], header: &TraceHeader, len: usize) -> Result<[Range<usize>; 5]> {
    let lens = [
        header.parent_len,
        header.type_name_len,
        header.tags_len,
        header.content_len,
        header.metadata_len,
    ];
    let mut start = HEADER_LEN;
    let mut ranges: [Range<usize>; 5] = Default::default();
    for (range, section) in ranges.iter_mut().zip(lens) {
        let end = usize::try_from(section.get())
            .ok()
            .and_then(|section| start.checked_add(section))
            .filter(|&end| end <= len)
            .ok_or_else(|| Error::corrupt(key, "trace record sections run past its end"))?;
        *range = start..end;
        start = end;
    }
    if start != len {
        return Err(Error::corrupt(key, "trace record has bytes after its sections"));
    }
    Ok(ranges)
}

/// Checks that `section` holds exactly `count` tags of UTF-8 (the layout of the tags
/// section); reads them back if so.
fn check_tags(section: &[u8], count: u32) -> Option<()> {
    let mut tags = Tags { rest: section, remaining: count };
    for _ in 0..count {
        tags.next_checked()?;
    }
    tags.rest.is_empty().then_some(())
}

impl TraceView {
    /// Reads the record of the trace `id`, stored at `key`: the header through bytemuck,
    /// each section checked once (and not copied).
    pub(crate) fn decode(key: &[u8], id: TraceId, stored: Bytes) -> Result<TraceView> {
        let stored = View::new(stored);
        let (header, _) = stored
            .split_header::<TraceHeader>()
            .map_err(|_| Error::corrupt(key, "trace record shorter than its header"))?;
        let header = *header;
        if header.format != RECORD_FORMAT {
            return Err(Error::corrupt(key, "unknown trace record format"));
        }
        let [parent, type_name, tags, content, metadata] =
            section_ranges(key, &header, stored.len())?;
        let parent =
            match (header.has_parent, parent.is_empty()) {
                (0, true) => None,
                (1, false) => Some(
                    stored.as_bytes().get(parent).and_then(TraceId::from_key_bytes).ok_or_else(
                        || Error::corrupt(key, "trace record's parent id is invalid"),
                    )?,
                ),
                _ => return Err(Error::corrupt(key, "trace record's parent flag and id disagree")),
            };
        let name = stored.as_bytes().get(type_name.clone()).unwrap_or_default();
        let type_ok = match (header.type_code, std::str::from_utf8(name)) {
            (CUSTOM_CODE, Ok(name)) => TraceType::Custom(name.to_owned()).check().is_ok(),
            (code, _) => name.is_empty() && TraceType::built_in(code).is_some(),
        };
        if !type_ok {
            return Err(Error::corrupt(key, "trace record's type is invalid"));
        }
        let tag_bytes = stored.as_bytes().get(tags.clone()).unwrap_or_default();
        check_tags(tag_bytes, header.tag_count.get())
            .ok_or_else(|| Error::corrupt(key, "trace record's tags are invalid"))?;
        let content = value_section(key, &stored, content)?;
        let metadata = value_section(key, &stored, metadata)?;
        Ok(TraceView { id, header, parent, stored, type_name, tags, content, metadata })
    }

    /// The trace's id.
    pub fn id(&self) -> &TraceId {
        &self.id
    }

    /// When the trace was recorded, in ms since the Unix epoch.
    pub fn created_at_ms(&self) -> u64 {
        self.header.created_at_ms.get()
    }

    /// The trace's type (a copy of the name, for a custom type).
    pub fn trace_type(&self) -> TraceType {
        match TraceType::built_in(self.header.type_code) {
            Some((built_in, _)) => built_in,
            None => TraceType::Custom(self.type_name().to_owned()),
        }
    }

    /// The name of the trace's type, read in place.
    pub fn type_name(&self) -> &str {
        match TraceType::built_in(self.header.type_code) {
            Some((_, name)) => name,
            // Checked to be UTF-8 by `decode`.
            None => self
                .stored
                .as_bytes()
                .get(self.type_name.clone())
                .and_then(|name| std::str::from_utf8(name).ok())
                .unwrap_or_default(),
        }
    }

    /// The trace's parent, if it was recorded as a child.
    pub fn parent(&self) -> Option<&TraceId> {
        self.parent.as_ref()
    }

    /// The trace's tags, in the order given, read in place.
    pub fn tags(&self) -> Tags<'_> {
        let rest = self.stored.as_bytes().get(self.tags.clone()).unwrap_or_default();
        Tags { rest, remaining: self.header.tag_count.get() }
    }

    /// Whether the trace carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|own| own == tag)
    }

    /// The trace's content, read in place.
    pub fn content(&self) -> ValueRef<'_> {
        self.content.value()
    }

    /// The trace's content as a view of its encoded bytes.
    pub fn content_view(&self) -> &ValueView {
        &self.content
    }

    /// The trace's metadata, read in place ([`ValueRef::Null`] if none was given).
    pub fn metadata(&self) -> ValueRef<'_> {
        self.metadata.value()
    }

    /// The trace's metadata as a view of its encoded bytes.
    pub fn metadata_view(&self) -> &ValueView {
        &self.metadata
    }

    /// The whole stored record (header and sections).
    pub fn stored(&self) -> &View {
        &self.stored
    }
}

/// The section `range` of `stored` checked to be an encoded value; decode offsets count
/// from the start of the record.
fn value_section(key: &[u8], stored: &View, range: Range<usize>) -> Result<ValueView> {
    let start = range.start;
    let section = stored
        .slice(range)
        .ok_or_else(|| Error::corrupt(key, "trace record sections run past its end"))?;
    ValueView::new(section)
        .map_err(|error| Error::from(DecodeError::new(start + error.offset, error.reason)))
}

impl PartialEq for TraceView {
    /// Views are equal when they are of the same trace with the same stored bytes.
    fn eq(&self, other: &TraceView) -> bool {
        self.id == other.id && self.stored == other.stored
    }
}

impl std::fmt::Debug for TraceView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceView")
            .field("id", &self.id)
            .field("created_at_ms", &self.created_at_ms())
            .field("type", &self.type_name())
            .field("parent", &self.parent)
            .field("tags", &self.tags().collect::<Vec<_>>())
            .field("content", &self.content())
            .field("metadata", &self.metadata())
            .finish()
    }
}

/// The tags of a [`TraceView`], borrowed from the stored bytes.
#[derive(Clone, Debug)]
pub struct Tags<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Tags<'a> {
    /// The next tag, if the bytes left hold one.
    fn next_checked(&mut self) -> Option<&'a str> {
        let (len, rest) = self.rest.split_first_chunk::<TAG_LEN_BYTES>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let (tag, rest) = rest.split_at_checked(len)?;
        let tag = std::str::from_utf8(tag).ok()?;
        self.rest = rest;
        self.remaining = self.remaining.checked_sub(1)?;
        Some(tag)
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.remaining == 0 {
            return None;
        }
        // Checked by `TraceView::decode`: `remaining` tags are left in `rest`.
        self.next_checked()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for Tags<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Vec<u8> {
        let parent = TraceId::custom("p").unwrap();
        let parts = RecordParts {
            created_at_ms: 7,
            trace_type: &TraceType::Custom("plan".into()),
            parent: Some(&parent),
            tags: &["a", "bc"],
            content: &Value::from("hello"),
            metadata: &Value::Null,
        };
        encode(&parts).unwrap()
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let id = TraceId::custom("t").unwrap();
        let view = TraceView::decode(b"k", id.clone(), Bytes::from(record())).unwrap();
        assert_eq!(view.id(), &id);
        assert_eq!(view.created_at_ms(), 7);
        assert_eq!(view.type_name(), "plan");
        assert_eq!(view.parent(), TraceId::custom("p").ok().as_ref());
        assert_eq!(view.tags().collect::<Vec<_>>(), ["a", "bc"]);
        assert_eq!(view.tags().len(), 2);
        assert_eq!(view.content(), ValueRef::Str("hello"));
        assert_eq!(view.metadata(), ValueRef::Null);
    }

    #[test]
    fn every_truncation_and_a_flipped_flag_is_an_error_not_a_panic() {
        let record = record();
        let id = TraceId::custom("t").unwrap();
        for len in 0..record.len() {
            let cut = Bytes::copy_from(record.get(..len).unwrap_or_default());
            assert!(TraceView::decode(b"k", id.clone(), cut).is_err(), "cut at {len}");
        }
        for offset in [8, 9, 10] {
            let mut bad = record.clone();
            bad[offset] ^= 0x40;
            assert!(TraceView::decode(b"k", id.clone(), Bytes::from(bad)).is_err());
        }
        let mut longer = record.clone();
        longer.push(0);
        assert!(TraceView::decode(b"k", id, Bytes::from(longer)).is_err());
    }
}
