//! The decoder: [`ValueRef`], a view of an encoded value that borrows from its bytes.
//!
//! [`ValueRef::parse`] walks the whole encoding once, allocating nothing, and checks every
//! rule of the format (`encode.rs`). Only then does it hand out a view, so reading the view
//! afterwards cannot fail: arrays and maps are iterated lazily by the same shallow reader
//! the check used, over bytes it already accepted.

use std::fmt;

use super::encode::tag;
use super::{Value, DEPTH_MAX, FORMAT_VERSION};
use crate::error::{DecodeError, DecodeReason};

/// An encoded value, read in place: strings and bytes borrow from the encoding, arrays and
/// maps are walked lazily. Made by [`ValueRef::parse`], which checks the whole encoding
/// first, so nothing read from a `ValueRef` can fail.
///
/// ```
/// use inmem_primitives::{Value, ValueRef};
///
/// let bytes = Value::from(vec![Value::from("a"), Value::from(2)]).encode();
/// let ValueRef::Array(items) = ValueRef::parse(&bytes)? else { panic!("an array") };
/// let items: Vec<ValueRef<'_>> = items.iter().collect();
/// assert_eq!(items, [ValueRef::Str("a"), ValueRef::Int(2)]);
/// # Ok::<(), inmem_primitives::DecodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text, borrowed from the encoding.
    Str(&'a str),
    /// Raw bytes, borrowed from the encoding.
    Bytes(&'a [u8]),
    /// An array, walked lazily.
    Array(ArrayRef<'a>),
    /// A map, walked lazily in key order.
    Map(MapRef<'a>),
}

/// The items of an encoded array; iterate with [`ArrayRef::iter`].
#[derive(Clone, Copy)]
pub struct ArrayRef<'a> {
    /// The items' bytes, accepted by [`ValueRef::parse`].
    items: &'a [u8],
    /// Where `items` starts in the encoding.
    offset: usize,
    len: usize,
}

/// The entries of an encoded map; iterate with [`MapRef::iter`], look up with
/// [`MapRef::get`].
#[derive(Clone, Copy)]
pub struct MapRef<'a> {
    /// The entries' bytes, accepted by [`ValueRef::parse`].
    entries: &'a [u8],
    /// Where `entries` starts in the encoding.
    offset: usize,
    len: usize,
}

impl<'a> ValueRef<'a> {
    /// Checks that `bytes` is exactly the encoding of one value, and returns a view of it.
    /// Allocates nothing, copies nothing.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the offset and the reason, for anything that is not the
    /// encoding [`Value::encode`] writes for some value (see `value/encode.rs`).
    pub fn parse(bytes: &'a [u8]) -> Result<ValueRef<'a>, DecodeError> {
        let mut cursor = Cursor { bytes, pos: 0, origin: 0 };
        let version = cursor.byte()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::new(0, DecodeReason::UnknownVersion(version)));
        }
        let value = cursor.value()?;
        check_nested(value, 1)?;
        cursor.finish(DecodeReason::TrailingBytes)?;
        Ok(value)
    }

    /// An owned copy of the value.
    pub fn to_owned(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(value) => Value::Bool(value),
            ValueRef::Int(value) => Value::Int(value),
            ValueRef::Float(value) => Value::Float(value),
            ValueRef::Str(text) => Value::String(text.to_owned()),
            ValueRef::Bytes(bytes) => Value::Bytes(bytes.to_vec()),
            ValueRef::Array(items) => {
                Value::Array(items.iter().map(|item| item.to_owned()).collect())
            }
            ValueRef::Map(entries) => Value::Map(
                entries.iter().map(|(key, item)| (key.to_owned(), item.to_owned())).collect(),
            ),
        }
    }

    /// The name of the value's kind, as [`Value::kind`] names it.
    pub fn kind(&self) -> &'static str {
        match self {
            ValueRef::Null => "null",
            ValueRef::Bool(_) => "bool",
            ValueRef::Int(_) => "int",
            ValueRef::Float(_) => "float",
            ValueRef::Str(_) => "string",
            ValueRef::Bytes(_) => "bytes",
            ValueRef::Array(_) => "array",
            ValueRef::Map(_) => "map",
        }
    }

    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, ValueRef::Null)
    }

    /// The boolean, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ValueRef::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The integer, if the value is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            ValueRef::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The float, if the value is one (an integer is not).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            ValueRef::Float(value) => Some(*value),
            _ => None,
        }
    }

    /// The text, if the value is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, if the value is bytes.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            ValueRef::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The array, if the value is one.
    pub fn as_array(&self) -> Option<ArrayRef<'a>> {
        match self {
            ValueRef::Array(items) => Some(*items),
            _ => None,
        }
    }

    /// The map, if the value is one.
    pub fn as_map(&self) -> Option<MapRef<'a>> {
        match self {
            ValueRef::Map(entries) => Some(*entries),
            _ => None,
        }
    }
}

impl<'a> ArrayRef<'a> {
    /// The number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items, in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter { cursor: Cursor::over(self.items, self.offset), left: self.len }
    }

    /// The item at `index`, stepping over the ones before it (each in constant time).
    pub fn get(&self, index: usize) -> Option<ValueRef<'a>> {
        self.iter().nth(index)
    }
}

impl<'a> MapRef<'a> {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in key order.
    pub fn iter(&self) -> MapIter<'a> {
        MapIter { cursor: Cursor::over(self.entries, self.offset), left: self.len }
    }

    /// The value of `key`, stepping over the entries before it (each in constant time).
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        for (candidate, value) in self.iter() {
            match candidate.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Some(value),
                // Keys ascend: the rest are greater still.
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

impl PartialEq for ArrayRef<'_> {
    /// Item by item, as [`Value`] compares arrays.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl PartialEq for MapRef<'_> {
    /// Entry by entry, as [`Value`] compares maps.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for ArrayRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Debug for MapRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for ArrayRef<'a> {
    type Item = ValueRef<'a>;
    type IntoIter = ArrayIter<'a>;

    fn into_iter(self) -> ArrayIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for MapRef<'a> {
    type Item = (&'a str, ValueRef<'a>);
    type IntoIter = MapIter<'a>;

    fn into_iter(self) -> MapIter<'a> {
        self.iter()
    }
}

/// The items of an [`ArrayRef`], in order.
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    cursor: Cursor<'a>,
    left: usize,
}

/// The entries of a [`MapRef`], in key order.
#[derive(Debug, Clone)]
pub struct MapIter<'a> {
    cursor: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = ValueRef<'a>;

    fn next(&mut self) -> Option<ValueRef<'a>> {
        self.left = self.left.checked_sub(1)?;
        match self.cursor.value() {
            Ok(item) => Some(item),
            Err(error) => accepted_bytes_failed(error),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a> Iterator for MapIter<'a> {
    type Item = (&'a str, ValueRef<'a>);

    fn next(&mut self) -> Option<(&'a str, ValueRef<'a>)> {
        self.left = self.left.checked_sub(1)?;
        match self.cursor.str().and_then(|key| Ok((key, self.cursor.value()?))) {
            Ok(entry) => Some(entry),
            Err(error) => accepted_bytes_failed(error),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ArrayIter<'_> {}
impl ExactSizeIterator for MapIter<'_> {}
impl std::iter::FusedIterator for ArrayIter<'_> {}
impl std::iter::FusedIterator for MapIter<'_> {}

/// The value of bytes that [`ValueRef::parse`] accepted, read again without the check.
pub(crate) fn read_accepted(bytes: &[u8]) -> ValueRef<'_> {
    debug_assert!(ValueRef::parse(bytes).is_ok(), "the bytes were accepted");
    let mut cursor = Cursor { bytes, pos: 1, origin: 0 };
    match cursor.value() {
        Ok(value) => value,
        Err(error) => accepted_bytes_failed(error),
    }
}

/// An iterator read bytes that [`ValueRef::parse`] accepted, with the very reader that
/// accepted them, and failed: impossible, since the bytes are immutable and the reader
/// deterministic (the fuzz target walks every item of every accepted input to hold this).
#[cold]
fn accepted_bytes_failed(error: DecodeError) -> ! {
    unreachable!("bytes accepted by ValueRef::parse failed to read again: {error}")
}

/// Checks the items of `value`, if it is a container, and of every container inside:
/// `depth` is `value`'s nesting (1 for a container at the top). Recurses at most
/// [`DEPTH_MAX`] deep.
fn check_nested(value: ValueRef<'_>, depth: usize) -> Result<(), DecodeError> {
    match value {
        ValueRef::Array(items) => {
            let mut cursor = Cursor::over(items.items, items.offset);
            for _ in 0..items.len {
                check_item(&mut cursor, depth)?;
            }
            cursor.finish(DecodeReason::ContainerSizeMismatch)
        }
        ValueRef::Map(entries) => {
            let mut cursor = Cursor::over(entries.entries, entries.offset);
            let mut previous: Option<&str> = None;
            for _ in 0..entries.len {
                let key_at = cursor.offset();
                let key = cursor.str()?;
                if previous.is_some_and(|previous| previous >= key) {
                    return Err(DecodeError::new(key_at, DecodeReason::MapKeysNotAscending));
                }
                previous = Some(key);
                check_item(&mut cursor, depth)?;
            }
            cursor.finish(DecodeReason::ContainerSizeMismatch)
        }
        _ => Ok(()),
    }
}

// The top value may always be a container.
const _: () = assert!(DEPTH_MAX >= 1);

/// Reads and checks one item of a container nested `depth` deep.
fn check_item(cursor: &mut Cursor<'_>, depth: usize) -> Result<(), DecodeError> {
    let item_at = cursor.offset();
    let item = cursor.value()?;
    if matches!(item, ValueRef::Array(_) | ValueRef::Map(_)) {
        if depth + 1 > DEPTH_MAX {
            return Err(DecodeError::new(item_at, DecodeReason::TooDeep));
        }
        check_nested(item, depth + 1)?;
    }
    Ok(())
}

/// A shallow reader of encoded items: reads one item's tag and payload, and hands out a
/// container's items as bytes, unread.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where `bytes` starts in the encoding, for the offsets of errors.
    origin: usize,
}

impl<'a> Cursor<'a> {
    fn over(bytes: &'a [u8], origin: usize) -> Cursor<'a> {
        Cursor { bytes, pos: 0, origin }
    }

    fn offset(&self) -> usize {
        self.origin + self.pos
    }

    fn error(&self, pos: usize, reason: DecodeReason) -> DecodeError {
        DecodeError::new(self.origin + pos, reason)
    }

    fn remaining(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    fn finish(&self, reason: DecodeReason) -> Result<(), DecodeError> {
        if self.remaining().is_empty() {
            Ok(())
        } else {
            Err(self.error(self.pos, reason))
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((bytes, _)) = self.remaining().split_first_chunk::<N>() else {
            return Err(self.error(self.bytes.len(), DecodeReason::UnexpectedEnd));
        };
        self.pos += N;
        Ok(*bytes)
    }

    /// A uleb128 in its shortest form.
    fn uleb128(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut number = 0u64;
        for shift in (0..u64::BITS).step_by(7) {
            let byte = self.byte()?;
            let group = u64::from(byte & 0x7F);
            // The tenth byte holds bit 63 alone.
            if shift == 63 && group > 1 {
                break;
            }
            number |= group << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    break;
                }
                return Ok(number);
            }
        }
        Err(self.error(start, DecodeReason::NonCanonicalLength))
    }

    /// A uleb128 length, then that many bytes.
    fn sized(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let length_at = self.pos;
        let length = self.uleb128()?;
        let rest = self.remaining();
        let past_end = || DecodeReason::LengthPastEnd { length, remaining: rest.len() as u64 };
        let bytes = usize::try_from(length)
            .ok()
            .and_then(|length| rest.get(..length))
            .ok_or_else(|| self.error(length_at, past_end()))?;
        let bytes_at = self.offset();
        self.pos += bytes.len();
        Ok((bytes, bytes_at))
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let (bytes, bytes_at) = self.sized()?;
        std::str::from_utf8(bytes).map_err(|error| {
            DecodeError::new(bytes_at + error.valid_up_to(), DecodeReason::InvalidUtf8)
        })
    }

    /// A container's count, then its items' bytes; each item takes at least
    /// `item_bytes_min` bytes.
    fn container(&mut self, item_bytes_min: u64) -> Result<(&'a [u8], usize, usize), DecodeError> {
        let count_at = self.pos;
        let count = self.uleb128()?;
        let (items, items_at) = self.sized()?;
        let size = items.len() as u64;
        if count.saturating_mul(item_bytes_min) > size {
            let reason = DecodeReason::LengthPastEnd { length: count, remaining: size };
            return Err(self.error(count_at, reason));
        }
        // At most `size` items, so the count fits a usize.
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        Ok((items, items_at, count))
    }

    /// One item: its tag and payload; a container's items are not read.
    fn value(&mut self) -> Result<ValueRef<'a>, DecodeError> {
        let tag_at = self.pos;
        Ok(match self.byte()? {
            tag::NULL => ValueRef::Null,
            tag::FALSE => ValueRef::Bool(false),
            tag::TRUE => ValueRef::Bool(true),
            tag::INT => ValueRef::Int(i64::from_le_bytes(self.array()?)),
            tag::FLOAT => ValueRef::Float(f64::from_bits(u64::from_le_bytes(self.array()?))),
            tag::STRING => ValueRef::Str(self.str()?),
            tag::BYTES => ValueRef::Bytes(self.sized()?.0),
            tag::ARRAY => {
                let (items, offset, len) = self.container(1)?;
                ValueRef::Array(ArrayRef { items, offset, len })
            }
            tag::MAP => {
                // An entry is at least a key length and a value tag.
                let (entries, offset, len) = self.container(2)?;
                ValueRef::Map(MapRef { entries, offset, len })
            }
            unknown => return Err(self.error(tag_at, DecodeReason::UnknownTag(unknown))),
        })
    }
}
