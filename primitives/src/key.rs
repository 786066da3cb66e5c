//! The key layout every primitive follows (docs/architecture.md §2), a builder for keys and
//! a reader for their suffixes.
//!
//! ```text
//! key = run id (16 bytes) | type tag (1 byte) | suffix
//! ```
//!
//! The engine compares keys as bytes, so a run's keys are one contiguous range
//! ([`run_prefix`]), and one primitive's keys of a run are one contiguous range inside it
//! ([`tag_prefix`]). A primitive lays out its suffix from components, each encoded so that
//! byte order is the order the primitive needs:
//!
//! | component | written by | encoding | order |
//! |---|---|---|---|
//! | `u8` | [`KeyBuf::push_u8`] | 1 byte | numeric |
//! | `u64` | [`KeyBuf::push_u64`] | 8 bytes, big-endian | numeric |
//! | bytes, more follow | [`KeyBuf::push_component`] | escaped, terminated | bytewise |
//! | bytes, last | [`KeyBuf::push_bytes`] | raw | bytewise |
//!
//! A component followed by more components must say where it ends without a length (a
//! length prefix would order short names before long ones). Each 0x00 byte in it is
//! written as 0x00 0xFF, and the component ends with 0x00 0x01:
//!
//! ```text
//! b"a\x00b"  ->  61 00 FF 62 00 01
//! b""        ->  00 01
//! ```
//!
//! Encoded components compare as the components do: where two components first differ,
//! their encodings first differ in the same direction, because an escaped 0x00 (0x00 0xFF)
//! sorts above the terminator (0x00 0x01) and below every other byte; a component that is a
//! prefix of another ends with the terminator where the other goes on, so it sorts first.
//! Whatever follows a component never changes the order of two different components.
//! [`KeyBuf::push_component_prefix`] writes the escaped bytes alone: the prefix of the keys
//! whose component starts with those bytes.

use std::borrow::Cow;

use crate::error::{DecodeError, DecodeReason};
use crate::run_id::RunId;
use crate::tag::{KeyTag, TypeTag};

/// The bytes of a run id at the start of every key.
pub const RUN_PREFIX_LEN: usize = RunId::LEN;

/// The bytes of a run id and a type tag at the start of every key.
pub const TAG_PREFIX_LEN: usize = RUN_PREFIX_LEN + 1;

/// In a component, 0x00 is written as `ESCAPE, ESCAPED_ZERO`.
const ESCAPE: u8 = 0x00;
/// The byte after [`ESCAPE`] for a 0x00 of the component.
const ESCAPED_ZERO: u8 = 0xFF;
/// The byte after [`ESCAPE`] that ends a component.
const TERMINATOR: u8 = 0x01;

// The order argument of the module doc: terminator < escaped zero, and both follow ESCAPE,
// the smallest byte.
const _: () = assert!(ESCAPE == 0x00 && TERMINATOR < ESCAPED_ZERO && TERMINATOR > ESCAPE);

/// The prefix of every key of `run`: delete or scan it to cover the whole run.
pub fn run_prefix(run: RunId) -> [u8; RUN_PREFIX_LEN] {
    *run.as_bytes()
}

/// The prefix of every key of `run` that the primitive of `tag` owns.
pub fn tag_prefix(run: RunId, tag: impl KeyTag) -> [u8; TAG_PREFIX_LEN] {
    let mut prefix = [0; TAG_PREFIX_LEN];
    let (run_bytes, tag_byte) = prefix.split_at_mut(RUN_PREFIX_LEN);
    run_bytes.copy_from_slice(run.as_bytes());
    tag_byte.fill(tag.byte());
    prefix
}

/// The smallest key greater than every key that starts with `prefix`: the exclusive end of
/// the prefix's range. `None` when there is no such key (the prefix is empty or all 0xFF),
/// and the range runs to the end of the keyspace.
///
/// ```
/// use inmem_primitives::prefix_end;
///
/// assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
/// assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
/// assert_eq!(prefix_end(b"\xff"), None);
/// ```
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&byte| byte != 0xFF)?;
    let mut end = prefix.get(..=last)?.to_vec();
    if let Some(byte) = end.last_mut() {
        *byte += 1;
    }
    Some(end)
}

/// A key under construction: `run id | type tag`, then the components pushed.
///
/// ```
/// use inmem_primitives::{KeyBuf, RunId, TypeTag};
///
/// let run = RunId::random();
/// // A trace's entry in the tag index: tag name, then trace number.
/// let key = KeyBuf::new(run, TypeTag::Trace)
///     .push_u8(0x02)
///     .push_component(b"retrieval")
///     .push_u64(42)
///     .finish();
/// assert!(key.starts_with(run.as_bytes()));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyBuf {
    bytes: Vec<u8>,
}

impl KeyBuf {
    /// The suffix bytes [`KeyBuf::new`] makes room for: enough for a sub-tag, a short
    /// component, a time and an id, so that building most keys allocates once.
    pub const SUFFIX_CAPACITY: usize = 48;

    /// A key of `run` owned by the primitive of `tag`, with an empty suffix so far (and room
    /// for [`KeyBuf::SUFFIX_CAPACITY`] bytes of it).
    pub fn new(run: RunId, tag: impl KeyTag) -> KeyBuf {
        KeyBuf::with_capacity(run, tag, KeyBuf::SUFFIX_CAPACITY)
    }

    /// As [`KeyBuf::new`], with room for `suffix_bytes` more bytes before it allocates again.
    pub fn with_capacity(run: RunId, tag: impl KeyTag, suffix_bytes: usize) -> KeyBuf {
        let mut bytes = Vec::with_capacity(TAG_PREFIX_LEN.saturating_add(suffix_bytes));
        bytes.extend_from_slice(&tag_prefix(run, tag));
        KeyBuf { bytes }
    }

    /// Appends one byte (a sub-tag, a kind).
    #[must_use]
    pub fn push_u8(mut self, byte: u8) -> KeyBuf {
        self.bytes.push(byte);
        self
    }

    /// Appends `number` big-endian, so that keys order by it numerically.
    #[must_use]
    #[expect(clippy::big_endian_bytes, reason = "big-endian keys order as their numbers do")]
    pub fn push_u64(mut self, number: u64) -> KeyBuf {
        self.bytes.extend_from_slice(&number.to_be_bytes());
        self
    }

    /// Appends `bytes` as they are: only for the last component, since nothing marks where
    /// it ends.
    #[must_use]
    pub fn push_bytes(mut self, bytes: &[u8]) -> KeyBuf {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Appends `component` escaped and terminated (see the module doc), so that more
    /// components can follow and keys still order by it bytewise.
    #[must_use]
    pub fn push_component(self, component: &[u8]) -> KeyBuf {
        let mut key = self.push_component_prefix(component);
        key.bytes.extend_from_slice(&[ESCAPE, TERMINATOR]);
        key
    }

    /// Appends `component` escaped but not terminated: a key so built is the prefix of every
    /// key whose component here starts with `component` (for prefix queries; never stored).
    #[must_use]
    pub fn push_component_prefix(mut self, component: &[u8]) -> KeyBuf {
        let zeros = component.iter().filter(|&&byte| byte == ESCAPE).count();
        self.bytes.reserve(component.len() + zeros + 2);
        for piece in component.split_inclusive(|&byte| byte == ESCAPE) {
            self.bytes.extend_from_slice(piece);
            if piece.last() == Some(&ESCAPE) {
                self.bytes.push(ESCAPED_ZERO);
            }
        }
        self
    }

    /// The key built so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The key's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the key is empty: never, it holds at least its run id and type tag.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The key.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

impl AsRef<[u8]> for KeyBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyBuf(b\"{}\")", self.bytes.escape_ascii())
    }
}

/// A key split into its layout's parts; see [`split_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// The run the key belongs to.
    pub run: RunId,
    /// The primitive that owns the key.
    pub tag: TypeTag,
    /// The primitive's part of the key.
    pub suffix: &'a [u8],
}

impl<'a> KeyParts<'a> {
    /// A reader of the suffix's components, whose errors count offsets from the start of
    /// the whole key.
    pub fn reader(&self) -> KeyReader<'a> {
        KeyReader { bytes: self.suffix, pos: 0, origin: TAG_PREFIX_LEN }
    }
}

/// Splits `key` into its run id, type tag and suffix.
///
/// # Errors
/// [`DecodeReason::UnexpectedEnd`] for a key shorter than [`TAG_PREFIX_LEN`];
/// [`DecodeReason::UnknownTypeTag`] for a tag byte that names no primitive.
pub fn split_key(key: &[u8]) -> Result<KeyParts<'_>, DecodeError> {
    let Some((run, rest)) = key.split_first_chunk::<RUN_PREFIX_LEN>() else {
        return Err(DecodeError::new(key.len(), DecodeReason::UnexpectedEnd));
    };
    let Some((&tag, suffix)) = rest.split_first() else {
        return Err(DecodeError::new(key.len(), DecodeReason::UnexpectedEnd));
    };
    let tag = TypeTag::from_byte(tag)
        .ok_or(DecodeError::new(RUN_PREFIX_LEN, DecodeReason::UnknownTypeTag(tag)))?;
    Ok(KeyParts { run: RunId::from_bytes(*run), tag, suffix })
}

/// Reads back, in order, the components a [`KeyBuf`] pushed into a key suffix. Bad bytes
/// are a [`DecodeError`], never a panic.
///
/// ```
/// use inmem_primitives::{split_key, KeyBuf, RunId, TypeTag};
///
/// let run = RunId::random();
/// let key = KeyBuf::new(run, TypeTag::State).push_component(b"cell\x00name").push_u64(7).finish();
/// let parts = split_key(&key)?;
/// assert_eq!((parts.run, parts.tag), (run, TypeTag::State));
/// let mut reader = parts.reader();
/// assert_eq!(&*reader.read_component()?, b"cell\x00name");
/// assert_eq!(reader.read_u64()?, 7);
/// reader.finish()?;
/// # Ok::<(), inmem_primitives::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The offset of `bytes` in what errors count offsets from.
    origin: usize,
}

impl<'a> KeyReader<'a> {
    /// A reader of `suffix`, whose errors count offsets from its start.
    pub fn new(suffix: &'a [u8]) -> KeyReader<'a> {
        KeyReader { bytes: suffix, pos: 0, origin: 0 }
    }

    fn error(&self, pos: usize, reason: DecodeReason) -> DecodeError {
        DecodeError::new(self.origin + pos, reason)
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining().is_empty()
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((bytes, _)) = self.remaining().split_first_chunk::<N>() else {
            return Err(self.error(self.bytes.len(), DecodeReason::UnexpectedEnd));
        };
        self.pos += N;
        Ok(*bytes)
    }

    /// Reads a byte pushed by [`KeyBuf::push_u8`].
    ///
    /// # Errors
    /// [`DecodeReason::UnexpectedEnd`] at the end of the suffix.
    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        let [byte] = self.read_array::<1>()?;
        Ok(byte)
    }

    /// Reads a number pushed by [`KeyBuf::push_u64`].
    ///
    /// # Errors
    /// [`DecodeReason::UnexpectedEnd`] if fewer than 8 bytes are left.
    #[expect(clippy::big_endian_bytes, reason = "big-endian keys order as their numbers do")]
    pub fn read_u64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.read_array::<8>()?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Reads a component pushed by [`KeyBuf::push_component`]: borrowed from the key unless
    /// it holds a 0x00 byte (whose escape must be undone).
    ///
    /// # Errors
    /// [`DecodeReason::UnexpectedEnd`] if the terminator is missing;
    /// [`DecodeReason::InvalidEscape`] for a 0x00 followed by neither 0xFF nor 0x01.
    pub fn read_component(&mut self) -> Result<Cow<'a, [u8]>, DecodeError> {
        let rest = self.remaining();
        // The component unescaped so far, once a 0x00 made borrowing impossible.
        let mut unescaped: Option<Vec<u8>> = None;
        let mut start = 0;
        loop {
            let tail = rest.get(start..).unwrap_or_default();
            let Some(escape) = tail.iter().position(|&byte| byte == ESCAPE) else {
                return Err(self.error(self.bytes.len(), DecodeReason::UnexpectedEnd));
            };
            let piece = tail.get(..escape).unwrap_or_default();
            let escape = start + escape;
            match rest.get(escape + 1).copied() {
                Some(TERMINATOR) => {
                    self.pos += escape + 2;
                    return Ok(match unescaped {
                        None => Cow::Borrowed(piece),
                        Some(mut component) => {
                            component.extend_from_slice(piece);
                            Cow::Owned(component)
                        }
                    });
                }
                Some(ESCAPED_ZERO) => {
                    let component = unescaped.get_or_insert_with(|| Vec::with_capacity(rest.len()));
                    component.extend_from_slice(piece);
                    component.push(0x00);
                    start = escape + 2;
                }
                Some(_) => {
                    return Err(self.error(self.pos + escape + 1, DecodeReason::InvalidEscape))
                }
                None => return Err(self.error(self.bytes.len(), DecodeReason::UnexpectedEnd)),
            }
        }
    }

    /// Reads a component pushed by [`KeyBuf::push_component`] as UTF-8 text.
    ///
    /// # Errors
    /// As [`KeyReader::read_component`]; [`DecodeReason::InvalidUtf8`] if it is not UTF-8
    /// (and the reader stays before the component).
    pub fn read_component_str(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        let start = self.pos;
        let text = match self.read_component()? {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Cow::Owned(bytes) => String::from_utf8(bytes).ok().map(Cow::Owned),
        };
        text.ok_or_else(|| {
            self.pos = start;
            self.error(start, DecodeReason::InvalidUtf8)
        })
    }

    /// Reads every byte left: the last component, pushed by [`KeyBuf::push_bytes`].
    pub fn read_rest(&mut self) -> &'a [u8] {
        let rest = self.remaining();
        self.pos = self.bytes.len();
        rest
    }

    /// Checks that every byte has been read.
    ///
    /// # Errors
    /// [`DecodeReason::TrailingBytes`] if some are left.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error(self.pos, DecodeReason::TrailingBytes))
        }
    }
}

#[cfg(test)]
mod tests;
