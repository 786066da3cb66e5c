//! `Value`: the dynamically typed values the primitives store, and their binary encoding.
//!
//! The encoding is an on-disk format (it is what the engine logs and checkpoints): it is
//! versioned, documented byte by byte in `value/encode.rs` next to the encoder, has exactly
//! one form per value (so that equal values are equal bytes), and is fuzzed
//! (`fuzz/fuzz_targets/value_decode.rs`).
//!
//! Two ways to read an encoding:
//! - [`Value::decode`] builds an owned [`Value`];
//! - [`ValueRef::parse`] checks the whole encoding once, without allocating, and returns a
//!   view that borrows strings and bytes from it and walks arrays and maps lazily: reading a
//!   stored value this way never copies its payload.
//!
//! Both refuse every byte string that is not the encoding of a value, with a
//! [`DecodeError`] naming the offset, and never allocate more than the input justifies:
//! every length is checked against the bytes left before anything is read or allocated,
//! and nesting is limited to [`DEPTH_MAX`].

mod encode;
mod read;

use std::collections::BTreeMap;

use crate::error::{DecodeError, Error, Result};

pub(crate) use read::read_accepted;
pub use read::{ArrayIter, ArrayRef, MapIter, MapRef, ValueRef};

/// The format version the encoder writes as the first byte, and the only one the decoder
/// reads.
pub const FORMAT_VERSION: u8 = 1;

/// The deepest nesting of arrays and maps that decodes: a scalar has depth 0, an array of
/// scalars depth 1, an array holding that array depth 2. Decoding refuses deeper values
/// ([`crate::DecodeReason::TooDeep`]), which bounds the decoder's recursion; writers refuse
/// them up front through [`Value::try_encode`].
pub const DEPTH_MAX: usize = 64;

/// A dynamically typed value: what KvStore, StateCell, EventLog payloads, trace and run
/// metadata hold.
///
/// ```
/// use std::collections::BTreeMap;
/// use inmem_primitives::{Value, ValueRef};
///
/// let value = Value::Map(BTreeMap::from([
///     ("name".to_string(), Value::from("search")),
///     ("tries".to_string(), Value::from(3)),
/// ]));
/// let bytes = value.try_encode()?;
/// assert_eq!(Value::decode(&bytes)?, value);
///
/// // Or read it in place, borrowing from the bytes.
/// let view = ValueRef::parse(&bytes)?;
/// assert_eq!(view.as_map().and_then(|map| map.get("name")), Some(ValueRef::Str("search")));
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
///
/// Equality is structural, with floats compared as `f64` (so `NaN != NaN`); the encoding
/// keeps a float's exact bits.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float (any bits, NaNs included, kept exactly).
    Float(f64),
    /// UTF-8 text.
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An ordered list of values.
    Array(Vec<Value>),
    /// String keys to values, in key (byte) order.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The value's encoding (see the format in `value/encode.rs`).
    ///
    /// A value nested deeper than [`DEPTH_MAX`] encodes, but its encoding does not decode;
    /// code that stores values uses [`Value::try_encode`], which refuses it.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.encode_into(&mut bytes);
        bytes
    }

    /// Appends the value's encoding to `out`; as [`Value::encode`].
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode::encode_into(self, out);
    }

    /// The value's encoding, if it decodes: nested at most [`DEPTH_MAX`] deep.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] (what: "value nesting depth") for a deeper value.
    pub fn try_encode(&self) -> Result<Vec<u8>> {
        let depth = self.depth();
        if depth > DEPTH_MAX {
            return Err(Error::LimitExceeded {
                what: "value nesting depth",
                actual: depth as u64,
                max: DEPTH_MAX as u64,
            });
        }
        Ok(self.encode())
    }

    /// Decodes an encoding: exactly one value, with nothing after it.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the offset and the reason, for anything that is not the
    /// encoding [`Value::encode`] writes for some value.
    pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        ValueRef::parse(bytes).map(|value| value.to_owned())
    }

    /// How deeply arrays and maps nest in the value: 0 for a scalar, 1 for an array or map
    /// of scalars. Computed without recursion, so any value can be asked.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 0)];
        while let Some((value, depth)) = pending.pop() {
            match value {
                Value::Array(items) => pending.extend(items.iter().map(|item| (item, depth + 1))),
                Value::Map(entries) => {
                    pending.extend(entries.values().map(|item| (item, depth + 1)))
                }
                _ => continue,
            }
            deepest = deepest.max(depth + 1);
        }
        deepest
    }

    /// The name of the value's kind ("null", "bool", "int", "float", "string", "bytes",
    /// "array", "map"), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// Whether the value is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The integer, if the value is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The float, if the value is one (an integer is not).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(value) => Some(*value),
            _ => None,
        }
    }

    /// The text, if the value is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(value) => Some(value),
            _ => None,
        }
    }

    /// The bytes, if the value is [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(value) => Some(value),
            _ => None,
        }
    }

    /// The items, if the value is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if the value is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }
}

macro_rules! from_scalar {
    ($($source:ty => $variant:ident via $into:ty),* $(,)?) => {$(
        impl From<$source> for Value {
            #[doc = concat!("A [`Value::", stringify!($variant), "`].")]
            fn from(value: $source) -> Value {
                Value::$variant(<$into>::from(value))
            }
        }
    )*};
}

from_scalar! {
    bool => Bool via bool,
    i64 => Int via i64,
    i32 => Int via i64,
    i16 => Int via i64,
    i8 => Int via i64,
    u32 => Int via i64,
    u16 => Int via i64,
    u8 => Int via i64,
    f64 => Float via f64,
    f32 => Float via f64,
    String => String via String,
    &str => String via String,
    Vec<u8> => Bytes via Vec<u8>,
    &[u8] => Bytes via Vec<u8>,
    Vec<Value> => Array via Vec<Value>,
    BTreeMap<String, Value> => Map via BTreeMap<String, Value>,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// The value, or [`Value::Null`] for `None`.
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

impl From<ValueRef<'_>> for Value {
    /// As [`ValueRef::to_owned`].
    fn from(value: ValueRef<'_>) -> Value {
        value.to_owned()
    }
}

impl FromIterator<Value> for Value {
    /// A [`Value::Array`] of the items.
    fn from_iter<I: IntoIterator<Item = Value>>(items: I) -> Value {
        Value::Array(items.into_iter().collect())
    }
}

impl FromIterator<(String, Value)> for Value {
    /// A [`Value::Map`] of the entries (of equal keys, the last wins).
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(entries: I) -> Value {
        Value::Map(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
