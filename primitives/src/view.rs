//! Views: what the primitives' reads return (docs/architecture.md §9). A view is a
//! refcounted handle on the bytes the engine stores plus typed accessors; making one copies
//! no payload.
//!
//! - [`View`]: an [`inmem_engine::Bytes`] and a range of it;
//! - [`ValueView`]: a view whose bytes were checked, once, to be an encoded
//!   [`crate::Value`], read without further checks as a [`ValueRef`];
//! - fixed-size headers, read through bytemuck ([`View::split_header`]).
//!
//! # The header pattern
//!
//! A primitive whose stored value carries fixed fields besides its `Value` (a version, a
//! timestamp, a sequence number) stores them first, as a header, and the encoded `Value`
//! after it. The header is a `#[repr(C)]` struct deriving `bytemuck::{Pod, Zeroable}` whose
//! fields are little-endian byte arrays ([`U64Le`], [`U32Le`], `[u8; N]`): its alignment is
//! 1 and it has no padding, so it is read from any offset of any bytes, as they are, with no
//! unsafe code and no dependence on the host's byte order. Its layout is documented next to
//! it, as every stored format is. A StateCell, for example:
//!
//! ```
//! use bytemuck::{Pod, Zeroable};
//! use inmem_engine::Bytes;
//! use inmem_primitives::{U64Le, Value, ValueRef, ValueView, View};
//!
//! /// A state cell's stored value: this header, then the cell's encoded `Value`.
//! ///
//! /// | offset | size | field |
//! /// |---|---|---|
//! /// | 0 | 8 | cell version, u64 LE |
//! /// | 8 | 8 | updated at, ms since the Unix epoch, u64 LE |
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! #[repr(C)]
//! struct CellHeader {
//!     version: U64Le,
//!     updated_at_ms: U64Le,
//! }
//!
//! // Writing: the header's bytes, then the value's encoding.
//! let header = CellHeader { version: U64Le::new(3), updated_at_ms: U64Le::new(1_700_000) };
//! let mut stored = bytemuck::bytes_of(&header).to_vec();
//! Value::from("ready").encode_into(&mut stored);
//!
//! // Reading: what the engine returned, split without a copy.
//! let view = View::new(Bytes::from(stored));
//! let (header, body) = view.split_header::<CellHeader>()?;
//! assert_eq!((header.version.get(), header.updated_at_ms.get()), (3, 1_700_000));
//! let body = ValueView::new(body)?; // checked once ...
//! assert_eq!(body.value(), ValueRef::Str("ready")); // ... read as often as wanted
//! # Ok::<(), inmem_primitives::DecodeError>(())
//! ```

use std::fmt;
use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use inmem_engine::Bytes;

use crate::error::{DecodeError, DecodeReason};
use crate::value::{Value, ValueRef};

/// Stored bytes, or a range of them, shared with the engine: cloning a view or taking a
/// sub-view never copies the bytes.
#[derive(Clone)]
pub struct View {
    bytes: Bytes,
    /// `range.start <= range.end <= bytes.len()`, established by every constructor.
    range: Range<usize>,
}

impl View {
    /// A view of all of `bytes`.
    pub fn new(bytes: Bytes) -> View {
        let range = 0..bytes.len();
        View { bytes, range }
    }

    /// The viewed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // In bounds: the invariant on `range`.
        &self.bytes[self.range.clone()]
    }

    /// The number of viewed bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether no bytes are viewed.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The stored bytes the view is a range of, whole.
    pub fn stored(&self) -> &Bytes {
        &self.bytes
    }

    /// The view of `range` of this view's bytes, if it lies within them.
    pub fn slice(&self, range: Range<usize>) -> Option<View> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        let start = self.range.start + range.start;
        let end = self.range.start + range.end;
        Some(View { bytes: self.bytes.clone(), range: start..end })
    }

    /// The bytes as an encoded [`Value`], read in place; offsets in an error count from the
    /// start of this view. Checks the whole encoding (without allocating) on every call:
    /// to read a value more than once, check it once with [`ValueView::new`].
    ///
    /// # Errors
    /// As [`ValueRef::parse`].
    pub fn value(&self) -> Result<ValueRef<'_>, DecodeError> {
        ValueRef::parse(self.as_bytes())
    }

    /// The header `H` at the front of the bytes, borrowed from them, and a view of the bytes
    /// after it. `H` must have alignment 1 (fields that are byte arrays: see the module doc);
    /// any other `H` fails to compile:
    ///
    /// ```compile_fail
    /// # use inmem_primitives::View;
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct Aligned {
    ///     version: u64, // aligned to 8: use `U64Le`
    /// }
    /// let view = View::new(inmem_engine::Bytes::default());
    /// let _ = view.split_header::<Aligned>();
    /// ```
    ///
    /// # Errors
    /// [`DecodeReason::UnexpectedEnd`] if the bytes are shorter than `H`.
    pub fn split_header<H: Pod>(&self) -> Result<(&H, View), DecodeError> {
        const { assert!(align_of::<H>() == 1, "a header's fields are byte arrays") };
        let size = size_of::<H>();
        let too_short = DecodeError::new(self.len(), DecodeReason::UnexpectedEnd);
        let header_bytes = self.as_bytes().get(..size).ok_or(too_short)?;
        // Cannot fail: the size is exact and the alignment 1.
        let header = bytemuck::try_from_bytes::<H>(header_bytes).map_err(|_| too_short)?;
        let rest = self.slice(size..self.len()).ok_or(too_short)?;
        Ok((header, rest))
    }
}

impl From<Bytes> for View {
    fn from(bytes: Bytes) -> View {
        View::new(bytes)
    }
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for View {
    /// Views are equal when their bytes are.
    fn eq(&self, other: &View) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for View {}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "View(b\"{}\")", self.as_bytes().escape_ascii())
    }
}

/// A [`View`] whose bytes are checked to be an encoded [`Value`]: reading it is infallible
/// and costs no further check.
#[derive(Clone, PartialEq)]
pub struct ValueView {
    /// Accepted by [`ValueRef::parse`].
    view: View,
}

impl ValueView {
    /// Checks that `view` holds exactly an encoded value (once, without allocating).
    ///
    /// # Errors
    /// As [`ValueRef::parse`]; offsets count from the start of `view`.
    pub fn new(view: View) -> Result<ValueView, DecodeError> {
        ValueRef::parse(view.as_bytes())?;
        Ok(ValueView { view })
    }

    /// The value, read in place.
    pub fn value(&self) -> ValueRef<'_> {
        crate::value::read_accepted(self.view.as_bytes())
    }

    /// An owned copy of the value.
    pub fn to_value(&self) -> Value {
        self.value().to_owned()
    }

    /// The encoded bytes.
    pub fn view(&self) -> &View {
        &self.view
    }
}

impl TryFrom<View> for ValueView {
    type Error = DecodeError;

    fn try_from(view: View) -> Result<ValueView, DecodeError> {
        ValueView::new(view)
    }
}

impl fmt::Debug for ValueView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueView").field(&self.value()).finish()
    }
}

macro_rules! little_endian {
    ($(#[$doc:meta] $name:ident($int:ty, $bytes:literal);)*) => {$(
        #[$doc]
        ///
        /// Stored as a byte array, so a header made of these has alignment 1 and no padding,
        /// and reads the same on every host.
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
        #[repr(transparent)]
        pub struct $name([u8; $bytes]);

        impl $name {
            /// The field holding `number`.
            pub const fn new(number: $int) -> $name {
                $name(number.to_le_bytes())
            }

            /// The number the field holds.
            pub const fn get(self) -> $int {
                <$int>::from_le_bytes(self.0)
            }
        }

        impl From<$int> for $name {
            fn from(number: $int) -> $name {
                $name::new(number)
            }
        }

        impl From<$name> for $int {
            fn from(field: $name) -> $int {
                field.get()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.get(), f)
            }
        }
    )*};
}

little_endian! {
    /// A `u64` field of a stored header, little-endian.
    U64Le(u64, 8);
    /// A `u32` field of a stored header, little-endian.
    U32Le(u32, 4);
}

#[cfg(test)]
mod tests;
