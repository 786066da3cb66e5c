//! Which keys a scan covers, as a predicate on keys: the model decides membership without
//! the bounds the engine computes, so that a wrong bound in the engine shows.

use std::ops::Bound;

use crate::{Entries, Key, State};

/// The keys a scan covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// The keys that start with a prefix (every key for the empty one).
    Prefix(Key),
    /// The keys between a start and an end bound (an inverted range covers nothing).
    Range(Bound<Key>, Bound<Key>),
}

/// Whether a scanned span and a range delete's prefix share a key, as commit validation
/// must find out (see [`Span::overlaps_prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// A key can be in both.
    Yes,
    /// No key can be in both, but the engine's test on bounds cannot tell: a range strictly
    /// between `k` and `k\0`, which holds no key, against a prefix that starts there.
    EngineOnly,
    /// No key can be in both, and the engine sees it.
    No,
}

impl Span {
    /// Whether the span covers `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        let (start, end) = match self {
            Span::Prefix(prefix) => return key.starts_with(prefix),
            Span::Range(start, end) => (start, end),
        };
        let above_start = match start {
            Bound::Included(start) => key >= start.as_slice(),
            Bound::Excluded(start) => key > start.as_slice(),
            Bound::Unbounded => true,
        };
        let below_end = match end {
            Bound::Included(end) => key <= end.as_slice(),
            Bound::Excluded(end) => key < end.as_slice(),
            Bound::Unbounded => true,
        };
        above_start && below_end
    }

    /// The entries of `state` the span covers, in key order.
    pub fn entries(&self, state: &State) -> Entries {
        state
            .iter()
            .filter(|(key, _)| self.contains(key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// Whether the span holds a key that starts with `prefix`.
    pub fn overlaps_prefix(&self, prefix: &[u8]) -> Overlap {
        let (start, end) = self.bounds();
        let (prefix_start, prefix_end) = prefix_bounds(prefix);
        let lower = higher_start(&start, &prefix_start);
        let upper = lower_end(&end, &prefix_end);
        let (exact, engine) = match (lower, upper) {
            (_, Bound::Unbounded) | (Bound::Unbounded, _) => (true, true),
            (Bound::Included(a), Bound::Included(b)) => (a <= b, a <= b),
            (Bound::Included(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => {
                (a < b, a < b)
            }
            (Bound::Excluded(a), Bound::Excluded(b)) => {
                // The least key above `a` is `a\0`.
                let successor = [a.as_slice(), &[0]].concat();
                (a < b && *b != successor, a < b)
            }
        };
        match (exact, engine) {
            (true, _) => Overlap::Yes,
            (false, true) => Overlap::EngineOnly,
            (false, false) => Overlap::No,
        }
    }

    /// The span as bounds, as the engine records a scan of it.
    fn bounds(&self) -> (Bound<Key>, Bound<Key>) {
        match self {
            Span::Prefix(prefix) => prefix_bounds(prefix),
            Span::Range(start, end) => (start.clone(), end.clone()),
        }
    }
}

/// The bounds of the keys that start with `prefix` (the prefix with its last byte below
/// 0xFF incremented and what follows dropped; unbounded if none).
fn prefix_bounds(prefix: &[u8]) -> (Bound<Key>, Bound<Key>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

/// The later of two start bounds (on a tie, the exclusive one).
fn higher_start<'b>(a: &'b Bound<Key>, b: &'b Bound<Key>) -> &'b Bound<Key> {
    match (a, b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x > y || (x == y && matches!(a, Bound::Excluded(_))) {
                a
            } else {
                b
            }
        }
    }
}

/// The earlier of two end bounds (on a tie, the exclusive one).
fn lower_end<'b>(a: &'b Bound<Key>, b: &'b Bound<Key>) -> &'b Bound<Key> {
    match (a, b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x < y || (x == y && matches!(a, Bound::Excluded(_))) {
                a
            } else {
                b
            }
        }
    }
}
