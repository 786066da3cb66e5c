//! `Bytes`: the immutable byte strings the engine stores and hands out.
//!
//! A key or value is copied once, when it enters the engine. Up to
//! [`Bytes::INLINE_CAPACITY`] bytes it lives inside the handle itself (no allocation, and a
//! clone is a 32-byte copy with no shared cache line); longer, it lives in one allocation
//! that holds the reference count and the bytes together, and from then on it is shared,
//! never copied: a clone is one atomic increment and every reader reads the stored bytes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, cheaply cloneable byte string: a key or a value as the engine stores it.
///
/// Short strings (up to [`Bytes::INLINE_CAPACITY`] bytes) are stored inline; longer ones are
/// shared, so cloning never copies more than the handle. Ordering, equality and hashing are
/// those of the underlying `[u8]`.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; Bytes::INLINE_CAPACITY] },
    Shared(Arc<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Bytes>() == 32, "a handle is half a cache line");
const _: () =
    assert!(std::mem::size_of::<Option<Bytes>>() == 32, "a tombstone costs nothing extra");

impl Bytes {
    /// The longest byte string stored inside the handle, without an allocation: long enough
    /// for a 16-byte run id, a type tag and a short name, so that most keys never allocate,
    /// and comparing two of them never leaves the handles.
    pub const INLINE_CAPACITY: usize = 30;

    /// Copies `bytes` into a new byte string.
    pub fn copy_from(bytes: &[u8]) -> Bytes {
        let mut data = [0; Bytes::INLINE_CAPACITY];
        match data.get_mut(..bytes.len()) {
            Some(prefix) => {
                prefix.copy_from_slice(bytes);
                Bytes(Repr::Inline { len: bytes.len() as u8, data })
            }
            None => Bytes(Repr::Shared(Arc::from(bytes))),
        }
    }

    /// The number of bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The bytes as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Shared(shared) => shared,
        }
    }
}

impl Default for Bytes {
    fn default() -> Bytes {
        Bytes(Repr::Inline { len: 0, data: [0; Bytes::INLINE_CAPACITY] })
    }
}

impl Deref for Bytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Bytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Bytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    #[inline]
    fn cmp(&self, other: &Bytes) -> std::cmp::Ordering {
        compare(self.as_slice(), other.as_slice())
    }
}

/// The order of byte strings (the `[u8]` one), compared eight bytes at a time as
/// big-endian words: a skiplist insert compares its key with some 20-40 others, and for
/// short keys a call to `memcmp` for each cost more than the comparison itself.
#[inline]
#[allow(
    clippy::big_endian_bytes,
    reason = "the order of eight bytes is the order of their big-endian value; nothing is stored"
)]
fn compare(mut a: &[u8], mut b: &[u8]) -> std::cmp::Ordering {
    while let (Some((x, a_rest)), Some((y, b_rest))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return u64::from_be_bytes(*x).cmp(&u64::from_be_bytes(*y));
        }
        (a, b) = (a_rest, b_rest);
    }
    a.cmp(b)
}

impl Hash for Bytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
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
        if bytes.len() <= Bytes::INLINE_CAPACITY {
            return Bytes::copy_from(&bytes);
        }
        Bytes(Repr::Shared(Arc::from(bytes)))
    }
}

impl From<&str> for Bytes {
    fn from(text: &str) -> Bytes {
        Bytes::copy_from(text.as_bytes())
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Bytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Bytes {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == &other[..]
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_slice().escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_equality_are_those_of_the_bytes_inline_or_shared() {
        let samples: Vec<Vec<u8>> = vec![
            vec![],
            b"abc".to_vec(),
            b"abd".to_vec(),
            vec![0xFF; Bytes::INLINE_CAPACITY],
            vec![0xFF; Bytes::INLINE_CAPACITY + 1],
            vec![0x00; 100],
        ];
        for a in &samples {
            let bytes_a = Bytes::from(a.clone());
            assert_eq!(bytes_a.as_slice(), a.as_slice());
            assert_eq!(bytes_a, Bytes::copy_from(a), "both constructors agree");
            for b in &samples {
                assert_eq!(bytes_a.cmp(&Bytes::from(b.clone())), a.cmp(b));
            }
        }
        assert_eq!(format!("{:?}", Bytes::from("abc")), "b\"abc\"");
    }

    #[test]
    fn the_word_at_a_time_order_is_the_order_of_the_bytes() {
        // Strings of every length up to 25 that differ from a base in one byte (below,
        // above, or cut short there), against each other: every place a word comparison
        // could get wrong.
        let base: Vec<u8> = (0..25u8).map(|n| n.wrapping_mul(37) | 1).collect();
        let mut samples = Vec::new();
        for len in 0..=base.len() {
            samples.push(base[..len].to_vec());
            for at in 0..len {
                for byte in [0x00, base[at] - 1, base[at] + 1, 0xFF] {
                    let mut changed = base[..len].to_vec();
                    changed[at] = byte;
                    samples.push(changed);
                }
            }
        }
        for a in &samples {
            for b in &samples {
                assert_eq!(compare(a, b), a.cmp(b), "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn long_byte_strings_are_shared_by_clones_and_short_ones_inline() {
        let long = Bytes::from(vec![7; 100]);
        assert_eq!(long.as_ptr(), long.clone().as_ptr(), "a clone shares the stored bytes");
        let short = Bytes::from("short");
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Shared(_)));
    }
}
