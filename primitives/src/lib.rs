//! inmem-primitives: typed, run-scoped facades over the engine's keyspace (DESIGN.md §2, §7).
//!
//! This crate currently holds the key layout's type tags; the primitives themselves (KV,
//! EventLog, StateCell, TraceStore, RunIndex, Json, Vector) are built on it by the
//! primitives work.

#![forbid(unsafe_code)]

/// The byte after the run id in every key, naming the primitive that owns the key, so that
/// each primitive's keys of one run form one contiguous range.
///
/// 0x08–0x0F are reserved for built-ins; 0x10 and up are for primitives added later.
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
}
