//! `Bytes`: the refcounted, immutable byte strings the engine stores and hands out.
//!
//! A key or value is copied once, when it enters the engine, into one allocation that holds
//! the reference count and the bytes together. From then on it is shared, never copied: a
//! read clones the handle (one atomic increment) and the caller reads the stored bytes.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, cheaply cloneable byte string: a key or a value as the engine stores it.
///
/// Cloning is one atomic increment; the bytes themselves are shared, never copied.
/// Ordering, equality and hashing are those of the underlying `[u8]`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(Arc<[u8]>);

impl Bytes {
    /// Copies `bytes` into a new shared buffer.
    pub fn copy_from(bytes: &[u8]) -> Bytes {
        Bytes(Arc::from(bytes))
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes as a slice.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Bytes {
        Bytes::copy_from(bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(bytes: &[u8; N]) -> Bytes {
        Bytes::copy_from(bytes)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        Bytes(Arc::from(bytes))
    }
}

impl From<&str> for Bytes {
    fn from(text: &str) -> Bytes {
        Bytes::copy_from(text.as_bytes())
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&[u8]> for Bytes {
    fn eq(&self, other: &&[u8]) -> bool {
        *self.0 == **other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Bytes {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self.0 == other[..]
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_equality_are_those_of_the_bytes() {
        let a = Bytes::from(b"abc");
        let b = Bytes::from(&b"abd"[..]);
        assert!(a < b);
        assert_eq!(a, Bytes::from(vec![b'a', b'b', b'c']));
        assert_eq!(a, b"abc");
        assert_eq!(format!("{a:?}"), "b\"abc\"");
    }

    #[test]
    fn clones_share_one_buffer() {
        let a = Bytes::from("shared");
        let b = a.clone();
        assert_eq!(a.as_ptr(), b.as_ptr());
    }
}
