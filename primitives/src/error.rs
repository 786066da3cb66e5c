//! The errors of the primitives: [`Error`], which every primitive's operations return, and
//! [`DecodeError`], which every decoder of stored bytes (values, key suffixes, headers)
//! returns.
//!
//! Both are cheap to build, `Clone` and comparable, and say what went wrong and where: a
//! decode error names the byte offset and a typed [`DecodeReason`]; an [`Error`] names the
//! thing that is missing, exists, or is over a limit.

/// Why stored bytes do not decode; see [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeReason {
    /// The bytes end inside an item: a header, a length, or a payload.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A value encoding starts with a format version this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// A value's tag byte names no kind of value.
    #[error("unknown value tag {0:#04x}")]
    UnknownTag(u8),
    /// A key's type tag byte names no primitive.
    #[error("unknown type tag {0:#04x}")]
    UnknownTypeTag(u8),
    /// A length is larger than the bytes left after it, or than a container's items can
    /// hold (every item takes at least one byte).
    #[error("length {length} exceeds the {remaining} bytes left")]
    LengthPastEnd {
        /// The length read.
        length: u64,
        /// The bytes left where it applies.
        remaining: u64,
    },
    /// A LEB128 length is longer than needed, or does not fit in 64 bits.
    #[error("length is not in its shortest LEB128 form, or overflows 64 bits")]
    NonCanonicalLength,
    /// A string (a value, a map key or a key component) is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// Arrays and maps are nested deeper than [`crate::DEPTH_MAX`].
    #[error("nesting deeper than {} levels", crate::DEPTH_MAX)]
    TooDeep,
    /// A map's keys are not in strictly ascending byte order (a duplicate, or out of
    /// order): the encoding has one form per map.
    #[error("map keys are not strictly ascending")]
    MapKeysNotAscending,
    /// A container's items do not fill exactly the byte size it announces.
    #[error("container items do not fill its announced size")]
    ContainerSizeMismatch,
    /// In a key component, a 0x00 byte is followed by something other than 0xFF (an
    /// escaped 0x00) or 0x01 (the terminator).
    #[error("invalid escape in a key component")]
    InvalidEscape,
    /// Bytes are left after a complete item (a value, a header, a key).
    #[error("trailing bytes after the end")]
    TrailingBytes,
}

/// Stored bytes that do not decode: where, and why.
///
/// `offset` counts from the start of the bytes handed to the decoder (for a key suffix read
/// through [`crate::KeyParts::reader`], from the start of the whole key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid encoding at byte {offset}: {reason}")]
#[non_exhaustive]
pub struct DecodeError {
    /// The offset of the first byte that does not fit.
    pub offset: usize,
    /// What is wrong there.
    pub reason: DecodeReason,
}

impl DecodeError {
    /// A decode error at `offset`.
    pub const fn new(offset: usize, reason: DecodeReason) -> DecodeError {
        DecodeError { offset, reason }
    }
}

/// Everything that can go wrong in an operation of a primitive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine refused or failed the operation (a conflict, a limit, a poisoned
    /// database, ...); see [`Error::is_conflict`].
    #[error(transparent)]
    Engine(#[from] inmem_engine::Error),

    /// Stored bytes do not decode (a value, a key suffix or a header).
    #[error(transparent)]
    Decode(#[from] DecodeError),

    /// The thing operated on does not exist: a run, a cell, an event, a trace.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. "run" or "state cell".
        what: &'static str,
    },

    /// The thing to create exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was to be created, e.g. "run" or "state cell".
        what: &'static str,
    },

    /// An integer operation (an increment) found a stored value that is not an integer.
    #[error("the stored value is not an integer")]
    NotAnInteger,

    /// An integer operation would overflow `i64`; nothing was written.
    #[error("integer overflow")]
    Overflow,

    /// A child was to be recorded under a parent (a trace, a run) that does not exist.
    #[error("the parent does not exist")]
    ParentMissing,

    /// A lifecycle change the state machine does not allow (e.g. a run's status).
    #[error("invalid transition from {from} to {to}")]
    InvalidTransition {
        /// The current state's name.
        from: &'static str,
        /// The requested state's name.
        to: &'static str,
    },

    /// A name (of a cell, a key, a tag, an event type) is refused.
    #[error("invalid name: {reason}")]
    InvalidName {
        /// Why, e.g. "empty" or "longer than 256 bytes".
        reason: &'static str,
    },

    /// A stored record decodes, but not as its primitive expects (a value of the wrong
    /// shape, a header of the wrong size, an index entry without its record): written by a
    /// bug, or by something else than this crate.
    #[error("stored record {} is corrupt: {reason}", .key.escape_ascii())]
    Corrupt {
        /// The record's key.
        key: Vec<u8>,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An input is over a limit of the primitives (a value's nesting depth, a name's
    /// length, a page size).
    #[error("{what} limit exceeded: {actual} > {max}")]
    LimitExceeded {
        /// Which limit, e.g. "value nesting depth".
        what: &'static str,
        /// The size that was asked for.
        actual: u64,
        /// The maximum.
        max: u64,
    },
}

impl Error {
    /// A [`Error::Corrupt`] for the record at `key`.
    pub fn corrupt(key: impl AsRef<[u8]>, reason: &'static str) -> Error {
        Error::Corrupt { key: key.as_ref().to_vec(), reason }
    }

    /// Whether this is an engine conflict: the transaction may succeed if run again (and
    /// `Database::transaction` retries it).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Engine(error) if error.is_conflict())
    }
}

impl inmem_engine::TransactionError for Error {
    fn is_conflict(&self) -> bool {
        Error::is_conflict(self)
    }
}

/// The primitives' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_and_where() {
        let decode = DecodeError::new(7, DecodeReason::UnknownTag(0x2a));
        assert_eq!(decode.to_string(), "invalid encoding at byte 7: unknown value tag 0x2a");
        assert_eq!(Error::from(decode).to_string(), decode.to_string(), "transparent");
        let corrupt = Error::corrupt(b"run\x00cell", "header too short");
        assert_eq!(corrupt.to_string(), "stored record run\\x00cell is corrupt: header too short");
        let limit = Error::LimitExceeded { what: "value nesting depth", actual: 65, max: 64 };
        assert_eq!(limit.to_string(), "value nesting depth limit exceeded: 65 > 64");
        let transition = Error::InvalidTransition { from: "Archived", to: "Active" };
        assert_eq!(transition.to_string(), "invalid transition from Archived to Active");
    }

    #[test]
    fn only_an_engine_conflict_is_a_conflict() {
        let conflict = inmem_engine::Error::Conflict { key: inmem_engine::Bytes::from("k") };
        assert!(Error::from(conflict).is_conflict());
        assert!(!Error::from(inmem_engine::Error::Poisoned).is_conflict());
        assert!(!Error::NotFound { what: "run" }.is_conflict());
    }
}
