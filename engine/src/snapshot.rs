//! Snapshots: registered, read-only views of the keyspace at one commit version.
//!
//! A snapshot costs one atomic load and a registration (see `watermark.rs`). It pins the
//! epoch only while a read is in progress, never in between, so a long-lived snapshot keeps
//! the versions it can read alive but never blocks the reclamation of anything else.
//! Range scans re-pin between chunks for the same reason.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use crate::bounds::{bounds_are_empty, owned_bound, prefix_bounds};
use crate::bytes::Bytes;
use crate::clock;
use crate::error::Error;
use crate::error::Result;
use crate::index::Direction;
use crate::shared::Shared;
use crate::sync::epoch;
use crate::sync::Ordering;
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
    registration: Registration<'db>,
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

impl Shared {
    /// A snapshot at the visible version, with its clock fixed now.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        let now_ms = self.refresh_clock();
        self.snapshot_registered(None, Clock::Fixed(now_ms)).unwrap_or_else(|_| {
            unreachable!("a snapshot of the visible version is never below the horizon")
        })
    }

    pub(crate) fn snapshot_registered(
        &self,
        at: Option<u64>,
        clock: Clock,
    ) -> Result<Snapshot<'_>> {
        let created_ms = match clock {
            Clock::Fixed(now_ms) => now_ms,
            Clock::Live => self.coarse_now_ms.load(Ordering::Relaxed),
        };
        match self.registry.register(&self.visible, at, created_ms) {
            Ok(registration) => Ok(Snapshot::new(self, registration, clock)),
            Err(too_old) => Err(Error::SnapshotTooOld {
                requested: CommitVersion::new(at.unwrap_or_default()),
                oldest_available: CommitVersion::new(too_old.horizon),
            }),
        }
    }
}

impl<'db> Snapshot<'db> {
    pub(crate) fn new(
        shared: &'db Shared,
        registration: Registration<'db>,
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

    /// The point read, through the hash index (the ordered one for a scan-only key): no
    /// lock, no wait.
    pub(crate) fn read(&self, key: &[u8]) -> Option<Bytes> {
        let guard = epoch::pin();
        let index_guard = self.shared.index.guard();
        let chain = self.shared.index.get(key, &index_guard, &guard)?;
        let version = self.registration.version();
        let node = chain.read_at(version, &guard)?;
        if self.shared.range_deletes.hiding().hides(key, node.version(), version) {
            return None;
        }
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
    /// values appear with their expiry. Versions a range delete removed
    /// ([`crate::Transaction::delete_prefix`]) do not appear.
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
        let Some(chain) = self.shared.index.get(key, &index_guard, &guard) else {
            return Ok(Vec::new());
        };
        let version = self.registration.version();
        let hiding = self.shared.range_deletes.hiding();
        let records = chain
            .nodes(&guard)
            .filter(|node| node.version() <= version && node.version() < below)
            .take_while(|node| !hiding.hides(key, node.version(), version))
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

/// A scan reads the index in batches: the first is small, for scans that stop early, and
/// each next one grows, up to the largest.
const SCAN_BATCH_MIN: usize = 32;
const SCAN_BATCH_MAX: usize = crate::index::BATCH_KEYS_MAX;
/// Each batch is this many times the one before: a scan of a hundred keys seeks twice.
const SCAN_BATCH_GROWTH: usize = 4;

/// An iterator over a snapshot's entries in a key range, as `(key, value)` pairs; a
/// [`DoubleEndedIterator`], so `.rev()` walks the range backwards.
///
/// It reads ahead in batches, pinning the epoch for one batch at a time. Within a batch it
/// first walks the index, then loads every chain's version, then every value, so that the
/// cache misses of one phase overlap instead of waiting on each other.
pub struct Iter<'s> {
    snapshot: &'s Snapshot<'s>,
    /// What neither end has read yet.
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    /// Set once a batch reached the other end: everything left is in the buffers.
    exhausted: bool,
    front: VecDeque<(Bytes, Bytes)>,
    back: VecDeque<(Bytes, Bytes)>,
    front_batch: usize,
    back_batch: usize,
}

impl<'s> Iter<'s> {
    fn new(snapshot: &'s Snapshot<'s>, start: Bound<Bytes>, end: Bound<Bytes>) -> Iter<'s> {
        let exhausted = bounds_are_empty(&start, &end);
        Iter {
            snapshot,
            start,
            end,
            exhausted,
            front: VecDeque::with_capacity(SCAN_BATCH_MIN),
            back: VecDeque::new(),
            front_batch: SCAN_BATCH_MIN,
            back_batch: SCAN_BATCH_MIN,
        }
    }

    /// Reads the next batch from one end into that end's buffer.
    fn refill(&mut self, direction: Direction) {
        let batch = match direction {
            Direction::Forward => &mut self.front_batch,
            Direction::Reverse => &mut self.back_batch,
        };
        let limit = *batch;
        *batch = (limit * SCAN_BATCH_GROWTH).min(SCAN_BATCH_MAX);
        let version = self.snapshot.registration.version();
        let clock = self.snapshot.clock;
        let buffer = match direction {
            Direction::Forward => &mut self.front,
            Direction::Reverse => &mut self.back,
        };
        let guard = epoch::pin();
        let hiding = self.snapshot.shared.range_deletes.hiding();
        let bounds =
            (self.start.as_ref().map(Bytes::as_slice), self.end.as_ref().map(Bytes::as_slice));
        let last = self.snapshot.shared.index.batch(bounds, direction, limit, &guard, |walks| {
            let mut nodes: smallvec::SmallVec<[Option<&VersionNode>; SCAN_BATCH_MAX]> =
                smallvec::SmallVec::new();
            // Find each key's version and bring its value's bytes in right away: the loads of
            // one key depend on each other, those of different keys do not, so they overlap.
            // (Plain loads: the atomic increments of the clones below would not overlap.)
            nodes.extend(walks.iter_mut().map(|(_, versions)| {
                let node = versions.find(|node| node.version() <= version);
                std::hint::black_box(
                    node.and_then(VersionNode::value).and_then(|value| value.first().copied()),
                );
                node
            }));
            buffer.reserve(walks.len());
            for ((key, _), node) in walks.iter().zip(&nodes) {
                let node = node.filter(|node| !hiding.hides(key, node.version(), version));
                let value = node.and_then(|node| {
                    if node.has_expiry() {
                        node.live_value(clock.now_ms())
                    } else {
                        node.value()
                    }
                });
                if let Some(value) = value {
                    let entry = ((*key).clone(), value.clone());
                    match direction {
                        Direction::Forward => buffer.push_back(entry),
                        Direction::Reverse => buffer.push_front(entry),
                    }
                }
            }
            (walks.len() == limit).then(|| walks.last().map(|(key, _)| (*key).clone())).flatten()
        });
        match last {
            None => self.exhausted = true,
            Some(key) => match direction {
                Direction::Forward => self.start = Bound::Excluded(key),
                Direction::Reverse => self.end = Bound::Excluded(key),
            },
        }
    }
}

impl Iter<'_> {
    /// [`Iterator::next`] once the front buffer is empty: refills it, or takes from the
    /// back buffer once a batch has reached the other end.
    #[inline(never)]
    fn next_refilling(&mut self) -> Option<(Bytes, Bytes)> {
        while self.front.is_empty() && !self.exhausted {
            self.refill(Direction::Forward);
        }
        self.front.pop_front().or_else(|| self.back.pop_front())
    }

    /// [`DoubleEndedIterator::next_back`] once the back buffer is empty.
    #[inline(never)]
    fn next_back_refilling(&mut self) -> Option<(Bytes, Bytes)> {
        while self.back.is_empty() && !self.exhausted {
            self.refill(Direction::Reverse);
        }
        self.back.pop_back().or_else(|| self.front.pop_back())
    }
}

/// `next` and `next_back` are inlined into the caller's loop down to the buffer's pop, with
/// no call and no extra copy of the entry per key (docs/benchmarks.md, "Scans"); refilling
/// stays out of line.
impl Iterator for Iter<'_> {
    type Item = (Bytes, Bytes);

    #[inline]
    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        if let Some(entry) = self.front.pop_front() {
            return Some(entry);
        }
        self.next_refilling()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<(Bytes, Bytes)> {
        if let Some(entry) = self.back.pop_back() {
            return Some(entry);
        }
        self.next_back_refilling()
    }
}

#[cfg(test)]
mod tests {
    mod iteration {
        use std::collections::BTreeMap;
        use std::ops::Bound;

        use proptest::prelude::*;

        use crate::{Bytes, Database};

        fn bound(kind: u8, key: u8) -> Bound<Bytes> {
            match kind % 3 {
                0 => Bound::Included(Bytes::from(vec![key])),
                1 => Bound::Excluded(Bytes::from(vec![key])),
                _ => Bound::Unbounded,
            }
        }

        proptest! {
            /// Pulling from both ends of a range, in any order, yields exactly the model's
            /// entries in that range, each once, until the ends meet.
            #[test]
            fn both_ends_of_a_range_meet_without_loss_or_repeat(
                writes in proptest::collection::vec((0u8..24, proptest::option::of(0u8..4)), 0..48),
                (start_kind, start_key, end_kind, end_key) in (0u8..3, 0u8..24, 0u8..3, 0u8..24),
                pulls in proptest::collection::vec(any::<bool>(), 0..40),
            ) {
                let db = Database::in_memory().expect("opens");
                let mut model = BTreeMap::new();
                for (key, value) in writes {
                    match value {
                        Some(value) => {
                            db.put([key], [value]).expect("put");
                            model.insert(vec![key], vec![value]);
                        }
                        None => {
                            db.delete([key]).expect("delete");
                            model.remove(&vec![key]);
                        }
                    }
                }
                let (start, end) = (bound(start_kind, start_key), bound(end_kind, end_key));
                let mut expected: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> =
                    if crate::bounds::bounds_are_empty(&start, &end) {
                        Default::default()
                    } else {
                        let as_vec = |b: &Bound<Bytes>| b.as_ref().map(|k| k.to_vec());
                        model.range((as_vec(&start), as_vec(&end))).map(|(k, v)| (k.clone(), v.clone())).collect()
                    };
                let snapshot = db.snapshot();
                let mut iter = snapshot.scan(start, end);
                for from_back in pulls.into_iter().chain(std::iter::repeat_n(false, 30)) {
                    let got = if from_back { iter.next_back() } else { iter.next() };
                    let want = if from_back { expected.pop_back() } else { expected.pop_front() };
                    prop_assert_eq!(got.map(|(k, v)| (k.to_vec(), v.to_vec())), want);
                }
                prop_assert_eq!(iter.next(), None);
                prop_assert_eq!(iter.next_back(), None);
            }
        }
    }
}
