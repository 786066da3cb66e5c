//! Type tags: the byte after the run id in every key, naming the primitive that owns it.
//!
//! The built-in primitives have [`TypeTag`]s (0x01-0x07; 0x08-0x0F are reserved for
//! built-ins to come); a primitive added outside this crate takes a [`CustomTag`] (0x10 and
//! up) and registers it (`registry.rs`). Keys are built with either through [`KeyTag`].

use crate::error::{Error, Result};

/// A tag a key can carry: a built-in [`TypeTag`] or a [`CustomTag`].
pub trait KeyTag: Copy {
    /// The tag's byte in a key.
    fn byte(self) -> u8;
}

/// The byte after the run id in every key, naming the primitive that owns the key, so that
/// each primitive's keys of one run form one contiguous range.
///
/// 0x08-0x0F are reserved for built-ins; 0x10 and up are for primitives added later.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum TypeTag {
    /// KvStore.
    Kv = 0x01,
    /// EventLog.
    Event = 0x02,
    /// StateCell.
    State = 0x03,
    /// TraceStore.
    Trace = 0x04,
    /// RunIndex.
    Run = 0x05,
    /// JsonStore.
    Json = 0x06,
    /// VectorStore.
    Vector = 0x07,
}

impl TypeTag {
    /// The tag's byte in a key.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// The tag a key byte names, if any built-in one.
    pub const fn from_byte(byte: u8) -> Option<TypeTag> {
        Some(match byte {
            0x01 => TypeTag::Kv,
            0x02 => TypeTag::Event,
            0x03 => TypeTag::State,
            0x04 => TypeTag::Trace,
            0x05 => TypeTag::Run,
            0x06 => TypeTag::Json,
            0x07 => TypeTag::Vector,
            _ => return None,
        })
    }
}

impl KeyTag for TypeTag {
    fn byte(self) -> u8 {
        TypeTag::byte(self)
    }
}

/// The tag of a primitive added outside this crate: a byte of 0x10 or more, so that it can
/// never collide with a built-in (or a reserved) one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomTag(u8);

impl CustomTag {
    /// The lowest byte a custom tag may take.
    pub const FIRST: u8 = 0x10;

    /// The custom tag `byte`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a byte below [`CustomTag::FIRST`]: built-in or reserved.
    pub const fn new(byte: u8) -> Result<CustomTag> {
        if byte < CustomTag::FIRST {
            return Err(Error::InvalidName {
                reason: "a custom type tag below 0x10 (built-in or reserved)",
            });
        }
        Ok(CustomTag(byte))
    }
}

impl KeyTag for CustomTag {
    fn byte(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_round_trips_through_its_byte() {
        for byte in 0..=u8::MAX {
            if let Some(tag) = TypeTag::from_byte(byte) {
                assert_eq!(tag.byte(), byte);
            }
        }
        assert_eq!(TypeTag::from_byte(0x08), None, "reserved, not assigned");
    }

    #[test]
    fn a_custom_tag_is_never_a_built_in_or_reserved_one() {
        for byte in 0..CustomTag::FIRST {
            assert!(CustomTag::new(byte).is_err(), "{byte:#x} must be refused");
        }
        for byte in CustomTag::FIRST..=u8::MAX {
            assert_eq!(CustomTag::new(byte).map(KeyTag::byte).ok(), Some(byte));
            assert_eq!(TypeTag::from_byte(byte), None);
        }
    }
}
