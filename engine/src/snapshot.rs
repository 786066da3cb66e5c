//! Snapshots: registered, read-only views of the keyspace at one commit version.
//!
//! A snapshot costs one atomic load and a registration (see `watermark.rs`). It pins the
//! epoch only while a read is in progress, never in between, so a long-lived snapshot keeps
//! the versions it can read alive but never blocks the reclamation of anything else.
//! Range scans re-pin between chunks for the same reason.

use std::collections::VecDeque;
use std::ops::{Bound, ControlFlow, RangeBounds};

use crate::bytes::Bytes;
use crate::clock;
use crate::db::Shared;
use crate::error::Result;
use crate::index::Direction;
use crate::sync::epoch;
use crate::version::{CommitVersion, Origin, VersionNode};
use crate::watermark::Registration;

/// The wall-clock time a snapshot evaluates expiry against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Fixed when the snapshot was taken: repeated reads agree even as values expire.
    Fixed(u64),
    /// Read when a version with an expiry is met: for one-shot reads.
    Live,
}

impl Clock {
    fn now_ms(self) -> u64 {
        match self {
            Clock::Fixed(now_ms) => now_ms,
            Clock::Live => clock::now_ms(),
        }
    }
}

/// A consistent, read-only view of the database at one commit version.
///
/// Every read through a snapshot sees exactly the commits up to [`Snapshot::version`] and
/// nothing after, however long it lives. Expiry is judged against the wall clock at the
/// moment the snapshot was taken, so repeated reads agree.
///
/// Holding a snapshot keeps alive every version it can read (see
/// [`crate::Stats::oldest_snapshot`]); drop it when done.
pub struct Snapshot<'db> {
    shared: &'db Shared,
    registration: Registration,
    clock: Clock,
}

/// One version of a key, as [`Snapshot::history`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionRecord {
    /// The commit that wrote it.
    pub version: CommitVersion,
    /// The value, or `None` for a deletion.
    pub value: Option<Bytes>,
    /// When the value expires (milliseconds since the Unix epoch), if it does.
    pub expires_at_ms: Option<u64>,
    /// Whether the deletion was written by the TTL reaper after the previous value expired.
    pub reaped: bool,
}

impl VersionRecord {
    fn of(node: &VersionNode) -> VersionRecord {
        VersionRecord {
            version: CommitVersion::new(node.version()),
            value: node.value().cloned(),
            expires_at_ms: node.has_expiry().then(|| node.expires_at_ms()),
            reaped: node.origin() == Origin::Reaper,
        }
    }
}

impl<'db> Snapshot<'db> {
    pub(crate) fn new(
        shared: &'db Shared,
        registration: Registration,
        clock: Clock,
    ) -> Snapshot<'db> {
        Snapshot { shared, registration, clock }
    }

    /// The commit version this snapshot reads at.
    pub fn version(&self) -> CommitVersion {
        CommitVersion::new(self.registration.version())
    }

    pub(crate) fn shared(&self) -> &'db Shared {
        self.shared
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The value of `key`, or `None` if it is absent, deleted or expired.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for a key longer than the key limit.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.shared.check_key(key)?;
        Ok(self.read(key))
    }

    /// The point read, through the hash index: no skiplist walk, no lock, no wait.
    pub(crate) fn read(&self, key: &[u8]) -> Option<Bytes> {
        let guard = epoch::pin();
        let index_guard = self.shared.index.guard();
        let chain = self.shared.index.get(key, &index_guard)?;
        let node = chain.read_at(self.registration.version(), &guard)?;
        if node.has_expiry() {
            return node.live_value(self.clock.now_ms()).cloned();
        }
        node.value().cloned()
    }

    /// The entries with keys in `range`, in key order; `.rev()` walks it backwards.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Iter<'_> {
        Iter::new(self, owned_bound(range.start_bound()), owned_bound(range.end_bound()))
    }

    /// The entries whose keys start with `prefix`, in key order; `.rev()` walks it backwards.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter<'_> {
        let (start, end) = prefix_bounds(prefix.as_ref());
        Iter::new(self, start, end)
    }

    pub(crate) fn scan(&self, start: Bound<Bytes>, end: Bound<Bytes>) -> Iter<'_> {
        Iter::new(self, start, end)
    }

    /// The versions of `key` this snapshot can see, newest first: at most `limit`, each
    /// older than `before` if given. Deletions appear as versions without a value; expired
    /// values appear with their expiry.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for a key longer than the key limit.
    pub fn history(
        &self,
        key: impl AsRef<[u8]>,
        limit: usize,
        before: Option<CommitVersion>,
    ) -> Result<Vec<VersionRecord>> {
        let key = key.as_ref();
        self.shared.check_key(key)?;
        let below = before.map_or(u64::MAX, CommitVersion::get);
        let guard = epoch::pin();
        let index_guard = self.shared.index.guard();
        let Some(chain) = self.shared.index.get(key, &index_guard) else {
            return Ok(Vec::new());
        };
        let records = chain
            .nodes(&guard)
            .filter(|node| node.version() <= self.registration.version() && node.version() < below)
            .take(limit)
            .map(VersionRecord::of)
            .collect();
        Ok(records)
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.shared.registry.release(&self.registration);
    }
}

impl std::fmt::Debug for Snapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version()).finish_non_exhaustive()
    }
}

pub(crate) fn owned_bound<K: AsRef<[u8]>>(bound: Bound<&K>) -> Bound<Bytes> {
    bound.map(|key| Bytes::copy_from(key.as_ref()))
}

/// The bounds of the keys that start with `prefix`: from the prefix itself up to, not
/// including, the next key that does not (the prefix with its last non-0xFF byte
/// incremented and what follows dropped); unbounded if there is none.
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Bound<Bytes>, Bound<Bytes>) {
    let start = Bound::Included(Bytes::copy_from(prefix));
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (start, Bound::Excluded(Bytes::from(end)));
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

/// Chunks start small, for scans that stop early, and double up to this.
const SCAN_CHUNK_MAX: usize = 256;
const SCAN_CHUNK_MIN: usize = 16;

/// An iterator over a snapshot's entries in a key range, as `(key, value)` pairs.
///
/// It reads ahead in chunks, pinning the epoch for one chunk at a time, and works from both
/// ends (it is a [`DoubleEndedIterator`]).
pub struct Iter<'s> {
    snapshot: &'s Snapshot<'s>,
    /// What has not been read from either end yet.
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    /// Set once a chunk reached the other end: everything left is in the buffers.
    exhausted: bool,
    front: VecDeque<(Bytes, Bytes)>,
    back: VecDeque<(Bytes, Bytes)>,
    front_chunk: usize,
    back_chunk: usize,
}

impl<'s> Iter<'s> {
    fn new(snapshot: &'s Snapshot<'s>, start: Bound<Bytes>, end: Bound<Bytes>) -> Iter<'s> {
        let exhausted = bounds_are_empty(&start, &end);
        Iter {
            snapshot,
            start,
            end,
            exhausted,
            front: VecDeque::new(),
            back: VecDeque::new(),
            front_chunk: SCAN_CHUNK_MIN,
            back_chunk: SCAN_CHUNK_MIN,
        }
    }

    /// Reads the next chunk from one end into that end's buffer.
    fn refill(&mut self, direction: Direction) {
        let chunk = match direction {
            Direction::Forward => &mut self.front_chunk,
            Direction::Reverse => &mut self.back_chunk,
        };
        let limit = *chunk;
        *chunk = (limit * 2).min(SCAN_CHUNK_MAX);

        let version = self.snapshot.registration.version();
        let now_ms = self.snapshot.now_ms();
        let shared = self.snapshot.shared;
        let buffer = match direction {
            Direction::Forward => &mut self.front,
            Direction::Reverse => &mut self.back,
        };
        let mut examined = 0;
        let mut last_key = None;
        let guard = epoch::pin();
        let bounds =
            (self.start.as_ref().map(Bytes::as_slice), self.end.as_ref().map(Bytes::as_slice));
        shared.index.scan(bounds, direction, &guard, |chain| {
            examined += 1;
            if let Some(value) =
                chain.read_at(version, &guard).and_then(|node| node.live_value(now_ms))
            {
                let entry = (chain.key().clone(), value.clone());
                match direction {
                    Direction::Forward => buffer.push_back(entry),
                    Direction::Reverse => buffer.push_front(entry),
                }
            }
            if examined < limit {
                return ControlFlow::Continue(());
            }
            last_key = Some(chain.key().clone());
            ControlFlow::Break(())
        });
        match last_key {
            None => self.exhausted = true,
            Some(key) => match direction {
                Direction::Forward => self.start = Bound::Excluded(key),
                Direction::Reverse => self.end = Bound::Excluded(key),
            },
        }
    }
}

impl Iterator for Iter<'_> {
    type Item = (Bytes, Bytes);

    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        while self.front.is_empty() && !self.exhausted {
            self.refill(Direction::Forward);
        }
        self.front.pop_front().or_else(|| self.back.pop_front())
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<(Bytes, Bytes)> {
        while self.back.is_empty() && !self.exhausted {
            self.refill(Direction::Reverse);
        }
        self.back.pop_back().or_else(|| self.front.pop_back())
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
