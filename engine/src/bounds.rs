//! Key ranges as bounds: a prefix's range, emptiness, owned copies.

use std::ops::Bound;

use crate::bytes::Bytes;

/// An owned copy of a borrowed bound.
pub(crate) fn owned_bound<K: AsRef<[u8]>>(bound: Bound<&K>) -> Bound<Bytes> {
    bound.map(|key| Bytes::copy_from(key.as_ref()))
}

/// The bounds of the keys that start with `prefix`: from the prefix itself up to, not
/// including, the next key that does not (the prefix with its last non-0xFF byte
/// incremented and what follows dropped); unbounded if there is none.
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Bound<Bytes>, Bound<Bytes>) {
    let start = Bound::Included(Bytes::copy_from(prefix));
    let mut end: smallvec::SmallVec<[u8; Bytes::INLINE_CAPACITY]> = prefix.into();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (start, Bound::Excluded(Bytes::copy_from(&end)));
        }
    }
    (start, Bound::Unbounded)
}

/// Whether no key can lie between `start` and `end` (an inverted or empty range).
pub(crate) fn bounds_are_empty(start: &Bound<Bytes>, end: &Bound<Bytes>) -> bool {
    match (start, end) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start) | Bound::Excluded(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end)) => start >= end,
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_and_empty_ranges_are_recognised() {
        let key = |k: &str| Bytes::from(k);
        assert!(bounds_are_empty(&Bound::Included(key("b")), &Bound::Included(key("a"))));
        assert!(bounds_are_empty(&Bound::Included(key("a")), &Bound::Excluded(key("a"))));
        assert!(bounds_are_empty(&Bound::Excluded(key("a")), &Bound::Included(key("a"))));
        assert!(!bounds_are_empty(&Bound::Included(key("a")), &Bound::Included(key("a"))));
        assert!(!bounds_are_empty(&Bound::Unbounded, &Bound::Excluded(key(""))));
    }

    #[test]
    fn prefix_bounds_cover_exactly_the_keys_with_the_prefix() {
        let (start, end) = prefix_bounds(b"ab");
        assert_eq!(start, Bound::Included(Bytes::from("ab")));
        assert_eq!(end, Bound::Excluded(Bytes::from("ac")));
        let (_, end) = prefix_bounds(&[b'a', 0xFF, 0xFF]);
        assert_eq!(end, Bound::Excluded(Bytes::from("b")));
        let (_, end) = prefix_bounds(&[0xFF, 0xFF]);
        assert_eq!(end, Bound::Unbounded);
        let (start, end) = prefix_bounds(b"");
        assert_eq!((start, end), (Bound::Included(Bytes::from("")), Bound::Unbounded));
    }
}
