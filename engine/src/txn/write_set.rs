//! The write set: a transaction's buffered writes, invisible to everyone else until commit,
//! and the iterator that merges them over the transaction's snapshot.

use std::cmp::Ordering;
use std::collections::btree_map::{self, BTreeMap};
use std::ops::Bound;

use crate::bytes::Bytes;
use crate::error::{Error, Limit, Result};
use crate::snapshot::Iter;
use crate::sync::epoch::Owned;
use crate::version::{Origin, VersionNode, NEVER_EXPIRES};

/// One buffered write.
#[derive(Debug, Clone)]
pub(crate) struct PendingWrite {
    /// The value, or `None` for a delete.
    value: Option<Bytes>,
    expires_at_ms: u64,
}

impl PendingWrite {
    pub(crate) fn put(value: Bytes, expires_at_ms: u64) -> PendingWrite {
        PendingWrite { value: Some(value), expires_at_ms }
    }

    pub(crate) fn delete() -> PendingWrite {
        PendingWrite { value: None, expires_at_ms: NEVER_EXPIRES }
    }

    /// The value the transaction itself reads back at `now_ms`.
    pub(crate) fn live_value(&self, now_ms: u64) -> Option<&Bytes> {
        if self.expires_at_ms != NEVER_EXPIRES && self.expires_at_ms <= now_ms {
            return None;
        }
        self.value.as_ref()
    }

    pub(crate) fn into_node(self) -> VersionNode {
        match self.value {
            Some(value) => VersionNode::put(value, self.expires_at_ms),
            None => VersionNode::tombstone(Origin::User),
        }
    }
}

/// A transaction's writes, by key (the last write to a key wins), and its range deletes.
#[derive(Debug, Default)]
pub(crate) struct WriteSet {
    writes: BTreeMap<Bytes, PendingWrite>,
    /// Prefixes of the range deletes, in order, none starting with another: a write to a key
    /// under one, made after it, is in `writes` and reads as written.
    prefixes: Vec<Bytes>,
}

impl WriteSet {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&PendingWrite> {
        self.writes.get(key)
    }

    /// Whether a range delete of the transaction hides `key` (unless it wrote the key since).
    pub(crate) fn hides(&self, key: &[u8]) -> bool {
        self.prefixes.iter().any(|prefix| key.starts_with(prefix.as_slice()))
    }

    /// Buffers a range delete of every key starting with `prefix`: drops the writes
    /// buffered under it, which it deletes too. Refused beyond `writes_max` writes and range
    /// deletes together.
    pub(crate) fn delete_prefix(&mut self, prefix: &[u8], writes_max: usize) -> Result<()> {
        let (start, end) = crate::bounds::prefix_bounds(prefix);
        let covered: Vec<Bytes> = self.range(&start, &end).map(|(key, _)| key.clone()).collect();
        for key in covered {
            self.writes.remove(&key);
        }
        if self.hides(prefix) {
            return Ok(());
        }
        self.prefixes.retain(|longer| !longer.starts_with(prefix));
        if self.len() >= writes_max {
            return Err(Error::LimitExceeded {
                limit: Limit::TransactionWrites,
                actual: self.len() as u64 + 1,
                max: writes_max as u64,
            });
        }
        let at = self.prefixes.partition_point(|other| other.as_slice() < prefix);
        self.prefixes.insert(at, Bytes::copy_from(prefix));
        Ok(())
    }

    /// Buffers a write, refusing a new key beyond `writes_max` distinct keys.
    pub(crate) fn insert(
        &mut self,
        key: &[u8],
        write: PendingWrite,
        writes_max: usize,
    ) -> Result<()> {
        if let Some(existing) = self.writes.get_mut(key) {
            *existing = write;
            return Ok(());
        }
        if self.len() >= writes_max {
            let actual = self.len() as u64 + 1;
            return Err(Error::LimitExceeded {
                limit: Limit::TransactionWrites,
                actual,
                max: writes_max as u64,
            });
        }
        self.writes.insert(Bytes::copy_from(key), write);
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.prefixes.is_empty()
    }

    /// Writes and range deletes.
    pub(crate) fn len(&self) -> usize {
        self.writes.len() + self.prefixes.len()
    }

    /// The written keys, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.writes.keys().map(Bytes::as_slice)
    }

    /// The range deletes' prefixes, in order, and the writes as version nodes, ready for
    /// the sequencer, in key order.
    pub(crate) fn into_parts(self) -> (Vec<Bytes>, Vec<(Bytes, Owned<VersionNode>)>) {
        let nodes =
            self.writes.into_iter().map(|(key, write)| (key, Owned::new(write.into_node())));
        (self.prefixes, nodes.collect())
    }

    /// The writes in a key range; empty (rather than a panic, as `BTreeMap::range` would)
    /// for an inverted range.
    fn range(
        &self,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
    ) -> btree_map::Range<'_, Bytes, PendingWrite> {
        const NOTHING: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Excluded(&[]), Bound::Included(&[]));
        let bounds = if crate::bounds::bounds_are_empty(start, end) {
            NOTHING
        } else {
            (start.as_ref().map(Bytes::as_slice), end.as_ref().map(Bytes::as_slice))
        };
        self.writes.range::<[u8], _>(bounds)
    }
}

/// A double-ended iterator with one item of look-ahead at each end.
struct Peekable2<I: DoubleEndedIterator> {
    inner: I,
    front: Option<I::Item>,
    back: Option<I::Item>,
}

impl<I: DoubleEndedIterator> Peekable2<I> {
    fn new(inner: I) -> Self {
        Peekable2 { inner, front: None, back: None }
    }

    fn peek_front(&mut self) -> Option<&I::Item> {
        if self.front.is_none() {
            self.front = self.inner.next().or_else(|| self.back.take());
        }
        self.front.as_ref()
    }

    fn peek_back(&mut self) -> Option<&I::Item> {
        if self.back.is_none() {
            self.back = self.inner.next_back().or_else(|| self.front.take());
        }
        self.back.as_ref()
    }

    fn take_front(&mut self) -> Option<I::Item> {
        self.peek_front();
        self.front.take()
    }

    fn take_back(&mut self) -> Option<I::Item> {
        self.peek_back();
        self.back.take()
    }
}

/// A transaction's view of a key range: its snapshot with its own writes laid over it, in
/// key order; `.rev()` walks it backwards.
pub struct TxnIter<'t> {
    committed: Peekable2<Iter<'t>>,
    own: Peekable2<btree_map::Range<'t, Bytes, PendingWrite>>,
    /// The transaction's write set, whose range deletes hide committed entries.
    writes: &'t WriteSet,
    now_ms: u64,
}

impl<'t> TxnIter<'t> {
    pub(crate) fn new(
        committed: Iter<'t>,
        writes: &'t WriteSet,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        now_ms: u64,
    ) -> Self {
        TxnIter {
            committed: Peekable2::new(committed),
            own: Peekable2::new(writes.range(start, end)),
            writes,
            now_ms,
        }
    }

    /// Which side holds the next entry from the front (or the back, `reverse`): `Less` for
    /// the snapshot, `Greater` for the transaction's own write, `Equal` when both hold the
    /// key (the own write wins). `None` when both are done.
    fn next_side(&mut self, reverse: bool) -> Option<Ordering> {
        let (committed, own) = if reverse {
            (self.committed.peek_back(), self.own.peek_back())
        } else {
            (self.committed.peek_front(), self.own.peek_front())
        };
        Some(match (committed, own) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((committed, _)), Some((own, _))) if reverse => (*own).cmp(committed),
            (Some((committed, _)), Some((own, _))) => committed.cmp(own),
        })
    }

    fn step(&mut self, reverse: bool) -> Option<(Bytes, Bytes)> {
        loop {
            let side = self.next_side(reverse)?;
            if side == Ordering::Less {
                let entry =
                    if reverse { self.committed.take_back() } else { self.committed.take_front() };
                match entry {
                    Some((key, _)) if self.writes.hides(&key) => continue,
                    entry => return entry,
                }
            }
            if side == Ordering::Equal {
                let _shadowed =
                    if reverse { self.committed.take_back() } else { self.committed.take_front() };
            }
            let (key, write) =
                if reverse { self.own.take_back()? } else { self.own.take_front()? };
            if let Some(value) = write.live_value(self.now_ms) {
                return Some((key.clone(), value.clone()));
            }
        }
    }
}

impl Iterator for TxnIter<'_> {
    type Item = (Bytes, Bytes);

    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        self.step(false)
    }
}

impl DoubleEndedIterator for TxnIter<'_> {
    fn next_back(&mut self) -> Option<(Bytes, Bytes)> {
        self.step(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_write_to_a_key_wins() {
        let mut writes = WriteSet::default();
        writes.insert(b"k", PendingWrite::put(Bytes::from("a"), NEVER_EXPIRES), 10).expect("fits");
        writes.insert(b"k", PendingWrite::delete(), 10).expect("fits");
        assert_eq!(writes.len(), 1);
        assert!(writes.get(b"k").expect("buffered").live_value(0).is_none());
    }

    #[test]
    fn a_write_beyond_the_limit_is_refused_but_rewrites_are_not() {
        let mut writes = WriteSet::default();
        writes.insert(b"a", PendingWrite::delete(), 1).expect("fits");
        writes.insert(b"a", PendingWrite::delete(), 1).expect("a rewrite adds no key");
        let refused = writes.insert(b"b", PendingWrite::delete(), 1).unwrap_err();
        assert_eq!(
            refused,
            Error::LimitExceeded { limit: Limit::TransactionWrites, actual: 2, max: 1 }
        );
    }

    #[test]
    fn a_range_delete_drops_the_writes_under_it_and_counts_as_one_write() {
        let mut writes = WriteSet::default();
        let put = || PendingWrite::put(Bytes::from("v"), NEVER_EXPIRES);
        for key in ["a1", "a2", "b"] {
            writes.insert(key.as_bytes(), put(), 10).expect("fits");
        }
        writes.delete_prefix(b"ab", 10).expect("fits");
        writes.delete_prefix(b"a", 10).expect("fits");
        assert_eq!(writes.len(), 2, "b and the range delete of a (which covers ab)");
        assert!(writes.hides(b"a1") && writes.hides(b"ab7") && !writes.hides(b"b"));
        writes.insert(b"a3", put(), 10).expect("fits");
        assert!(writes.get(b"a3").is_some(), "a write after the range delete stays");
        let (prefixes, nodes) = writes.into_parts();
        assert_eq!(prefixes, [Bytes::from("a")]);
        let keys: Vec<&[u8]> = nodes.iter().map(|(key, _)| key.as_slice()).collect();
        assert_eq!(keys, [&b"a3"[..], b"b"]);
    }

    #[test]
    fn peekable2_hands_out_each_item_once_from_either_end() {
        let mut items = Peekable2::new(1..=3);
        assert_eq!(items.peek_front(), Some(&1));
        assert_eq!(items.peek_back(), Some(&3));
        assert_eq!(items.take_back(), Some(3));
        assert_eq!(items.take_back(), Some(2));
        assert_eq!(items.take_back(), Some(1));
        assert_eq!(items.take_front(), None);
    }
}
