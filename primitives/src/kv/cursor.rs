//! [`ScanCursor`]: where a [`super::KvStore::scan`] resumes, in a form a client can carry.
//!
//! A cursor is a position among a run's keys: the start, or strictly after one key. It holds
//! the user's key (never the run id or the type tag), so a cursor cannot reach into another
//! run, whatever bytes a client hands back.
//!
//! # Format
//!
//! Clients store cursors and send them back, possibly to a later build, so the form is
//! fixed:
//!
//! | bytes | position |
//! |---|---|
//! | (none) | the start |
//! | `01`, then the key's bytes | strictly after that key |
//!
//! The text form ([`std::fmt::Display`], [`std::str::FromStr`]) is those bytes as lowercase
//! hex digits, two per byte: the start is the empty string, after the key `b"ab"` is
//! `"016162"`. Each position has exactly one form of each kind; any other is refused with a
//! [`ParseScanCursorError`].

use crate::hex::{self, HexError};
use std::fmt;
use std::str::FromStr;

/// The first byte of a cursor positioned after a key.
const AFTER_KEY: u8 = 0x01;

/// Where a scan resumes: the start, or strictly after the last key a page returned. See the
/// module doc for its byte and text forms.
///
/// ```
/// use inmem_primitives::kv::ScanCursor;
///
/// let cursor = ScanCursor::after(b"user/7");
/// let text = cursor.to_string(); // what a client carries
/// assert_eq!(text.parse::<ScanCursor>(), Ok(cursor.clone()));
/// assert_eq!(ScanCursor::from_bytes(&cursor.to_bytes()), Ok(cursor));
/// assert_eq!(ScanCursor::start().to_string(), "");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanCursor {
    /// The key the scan resumes after; `None` at the start.
    after: Option<Vec<u8>>,
}

impl ScanCursor {
    /// The start: a scan from here returns the prefix's first keys.
    pub const fn start() -> ScanCursor {
        ScanCursor { after: None }
    }

    /// The position strictly after `key` (a user key, without run id or tag).
    pub fn after(key: impl AsRef<[u8]>) -> ScanCursor {
        ScanCursor { after: Some(key.as_ref().to_vec()) }
    }

    /// Whether this is the start.
    pub fn is_start(&self) -> bool {
        self.after.is_none()
    }

    /// The key the scan resumes after, `None` at the start.
    pub fn key(&self) -> Option<&[u8]> {
        self.after.as_deref()
    }

    /// The cursor's byte form (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.after {
            None => Vec::new(),
            Some(key) => {
                let mut bytes = Vec::with_capacity(1 + key.len());
                bytes.push(AFTER_KEY);
                bytes.extend_from_slice(key);
                bytes
            }
        }
    }

    /// The cursor whose byte form is `bytes`.
    ///
    /// # Errors
    /// [`ParseScanCursorError::UnknownKind`] for a first byte that is not `01`.
    pub fn from_bytes(bytes: &[u8]) -> Result<ScanCursor, ParseScanCursorError> {
        match bytes.split_first() {
            None => Ok(ScanCursor::start()),
            Some((&AFTER_KEY, key)) => Ok(ScanCursor::after(key)),
            Some((&byte, _)) => Err(ParseScanCursorError::UnknownKind { byte }),
        }
    }
}

impl fmt::Display for ScanCursor {
    /// The byte form as lowercase hex digits; the start is the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(key) = &self.after else {
            return Ok(());
        };
        hex::write(f, &[AFTER_KEY])?;
        hex::write(f, key)
    }
}

impl fmt::Debug for ScanCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.after {
            None => f.write_str("ScanCursor::start"),
            Some(key) => write!(f, "ScanCursor::after(b\"{}\")", key.escape_ascii()),
        }
    }
}

/// Bytes or text that are not a [`ScanCursor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseScanCursorError {
    /// The first byte names no kind of position.
    #[error("unknown scan cursor kind {byte:#04x}")]
    UnknownKind {
        /// The first byte.
        byte: u8,
    },
    /// The text has an odd number of bytes: hex digits come in pairs.
    #[error("a scan cursor is hex digits in pairs, not {len} bytes")]
    OddLength {
        /// The text's length in bytes.
        len: usize,
    },
    /// A byte of the text is not a lowercase hex digit.
    #[error("byte {offset} of a scan cursor is not a lowercase hex digit")]
    NotHex {
        /// The offset of the byte in the text.
        offset: usize,
    },
}

impl FromStr for ScanCursor {
    type Err = ParseScanCursorError;

    /// Parses the form `Display` writes, and no other (lowercase digits only).
    fn from_str(text: &str) -> Result<ScanCursor, ParseScanCursorError> {
        let digits = text.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(ParseScanCursorError::OddLength { len: digits.len() });
        }
        let bytes = hex::decode(digits).map_err(|error| match error {
            HexError::OddLength => ParseScanCursorError::OddLength { len: digits.len() },
            HexError::NotHex { offset } => ParseScanCursorError::NotHex { offset },
        })?;
        ScanCursor::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip_every_position() {
        let keys: [&[u8]; 4] = [b"", b"a", b"user/\x00\xff", &[0x01; 40]];
        let mut cursors: Vec<ScanCursor> = keys.iter().map(ScanCursor::after).collect();
        cursors.push(ScanCursor::start());
        for cursor in cursors {
            assert_eq!(ScanCursor::from_bytes(&cursor.to_bytes()), Ok(cursor.clone()));
            assert_eq!(cursor.to_string().parse::<ScanCursor>(), Ok(cursor));
        }
    }

    #[test]
    fn the_forms_are_as_documented() {
        assert_eq!(ScanCursor::after(b"ab").to_bytes(), b"\x01ab");
        assert_eq!(ScanCursor::after(b"ab").to_string(), "016162");
        assert_eq!(
            ScanCursor::after(b"").to_string(),
            "01",
            "after the empty key is not the start"
        );
        assert!(ScanCursor::start().to_bytes().is_empty());
        assert_eq!(ScanCursor::default(), ScanCursor::start());
    }

    #[test]
    fn other_forms_are_refused_with_where() {
        assert_eq!(
            ScanCursor::from_bytes(b"\x02ab"),
            Err(ParseScanCursorError::UnknownKind { byte: 0x02 })
        );
        assert_eq!("016".parse::<ScanCursor>(), Err(ParseScanCursorError::OddLength { len: 3 }));
        assert_eq!("01616G".parse::<ScanCursor>(), Err(ParseScanCursorError::NotHex { offset: 5 }));
        assert_eq!("0161A2".parse::<ScanCursor>(), Err(ParseScanCursorError::NotHex { offset: 4 }));
        assert_eq!("00".parse::<ScanCursor>(), Err(ParseScanCursorError::UnknownKind { byte: 0 }));
    }
}
