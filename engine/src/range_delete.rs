//! Range deletes: every key under a prefix deleted in one commit of constant size, then
//! replaced by tombstones in bounded steps.
//!
//! # Semantics
//!
//! A range delete of prefix `p` committed at version `V` deletes, for every reader at `V` or
//! later, every version older than `V` of every key starting with `p`. A version written at
//! `V` or later (by the same commit, or a later one) is not touched: the prefix is not
//! fenced off, it is emptied.
//!
//! # How it works
//!
//! 1. **Hide.** The commit installs `(p, V)` into the published set under the sequencer's
//!    lock, before `V` becomes visible, as it installs its versions into chains. Every read
//!    path (point reads, scans, history, checkpoints) asks [`Hiding::hides`] of the version
//!    it found: hidden if some `(p, V)` covers the key with `found < V <= snapshot`. With no
//!    range delete pending, that costs one atomic load.
//! 2. **Purge.** Maintenance walks `p`'s keys in steps of at most [`PURGE_KEYS_PER_STEP`]
//!    keys, and replaces each newest version older than `V` by a maintenance tombstone,
//!    through the reaper's conditional commit (`ttl.rs`): only if it is still the newest, so
//!    a user write always wins. Each step is its own commit and log record; the collector
//!    then forgets the dead keys as it forgets any deleted key.
//!    A key whose newest version is at `V` or later but that still holds older versions
//!    (kept by the retention policy, for history) is queued for the collector, which cuts
//!    every version of a key older than the newest range delete covering it at or below its
//!    horizon (`VersionChain::prune`), whatever `keep_last` says.
//! 3. **Retire.** When the walk reaches the prefix's end, it notes the last version handed
//!    out, `W`: every key under `p` then has a newest version at or below `W` that is a
//!    tombstone or was written at `V` or later. Once a collection pass with a horizon at or
//!    above `W` has finished, no reader older than `W` can exist and no chain holds a version
//!    older than `V` under `p` that a reader could reach, even through history: the entry
//!    hides nothing the chains do not already say, and it is retired.
//!
//! A writer racing with the delete: a transaction whose snapshot is older than `V` that
//! writes or (serializable) reads a key under `p`, or scans a range overlapping it, fails
//! validation with a conflict (`txn/validate.rs`), so that no write made without seeing the
//! delete survives it.
//!
//! # Durability
//!
//! The commit's log record carries the prefix (`record.rs`), recovery replays it into this
//! set, and the purge starts again from the prefix's first key (the keys it had purged are
//! tombstones in the log, and are skipped). A checkpoint at `C` leaves out every version a
//! range delete at or below `C` hides, so it needs no record of the range delete itself.

use std::ops::Bound;
use std::sync::Arc;

use crate::bounds::{bounds_are_empty, prefix_bounds};
use crate::bytes::Bytes;
use crate::sync::{ArcCell, AtomicU64, Mutex, Ordering};
use crate::version::CommitVersion;

/// Keys a purge step of a range delete walks at most: each step is one commit (one hold of
/// the sequencer's lock) of at most this many tombstones.
pub const PURGE_KEYS_PER_STEP: usize = 1024;

/// Purge steps the maintenance thread runs per round, at most: with the default interval,
/// about a million keys a second, each step a separate hold of the sequencer's lock.
pub(crate) const PURGE_STEPS_PER_ROUND: usize = 64;

/// A range delete still in effect; see [`crate::Database::range_deletes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingRangeDelete {
    /// Every key starting with it was deleted.
    pub prefix: Bytes,
    /// The commit that deleted them.
    pub version: CommitVersion,
    /// Keys replaced by tombstones so far, since the database was opened.
    pub keys_purged: u64,
    /// Whether every key has been walked; the range delete is then retired once no
    /// snapshot older than the walk's end remains.
    pub walked: bool,
}

/// One range delete, as readers check it.
#[derive(Debug, Clone)]
struct Entry {
    prefix: Bytes,
    version: u64,
}

impl Entry {
    fn covers(&self, key: &[u8]) -> bool {
        key.starts_with(self.prefix.as_slice())
    }
}

/// One range delete, as its purge goes.
struct Purge {
    entry: Entry,
    /// Where the walk goes on from: after this key (`None`: from the prefix's start).
    resume: Option<Bytes>,
    /// The last version handed out when the walk reached the prefix's end.
    walked_at: Option<u64>,
    purged: u64,
}

/// The range deletes in effect, published for readers, and their purges.
pub(crate) struct RangeDeletes {
    /// What readers check: every entry not yet retired.
    published: ArcCell<Vec<Entry>>,
    /// How many entries `published` holds: readers look no further when it is 0.
    published_len: AtomicU64,
    /// The purges, in installation order; the source `published` is built from. Its lock
    /// also serializes the writers of `published` (installs and retirements).
    purges: Mutex<Vec<Purge>>,
    /// Held by the one purge that runs at a time (the maintenance thread's, or a caller's).
    walker: Mutex<()>,
    /// The highest horizon a finished collection pass pruned with: every chain the purge
    /// queued before it was cut below the range deletes at or below it.
    collected: AtomicU64,
}

/// The range deletes a read applies: taken once per read (or per batch of a scan).
pub(crate) struct Hiding(Option<Arc<Vec<Entry>>>);

/// The next stretch of keys a purge walks.
pub(crate) struct Walk {
    pub(crate) prefix: Bytes,
    pub(crate) version: u64,
    pub(crate) from: Bound<Bytes>,
    pub(crate) to: Bound<Bytes>,
}

impl RangeDeletes {
    pub(crate) fn new() -> RangeDeletes {
        RangeDeletes {
            published: ArcCell::const_empty(),
            published_len: AtomicU64::new(0),
            purges: Mutex::new(Vec::new()),
            walker: Mutex::new(()),
            collected: AtomicU64::new(0),
        }
    }

    /// The range deletes a reader must apply. With none pending, one atomic load.
    #[inline]
    pub(crate) fn hiding(&self) -> Hiding {
        // Acquire: pairs with the Release store in `publish`, made before the range delete's
        // version became visible; a reader at or after that version sees the entry.
        if self.published_len.load(Ordering::Acquire) == 0 {
            return Hiding(None);
        }
        Hiding(self.published.load_full())
    }

    /// Puts range deletes of `prefixes` at `version` into effect. Under the sequencer's
    /// lock (or in recovery, before the database is shared), before `version` is visible.
    pub(crate) fn install(&self, prefixes: &[Bytes], version: CommitVersion) {
        if prefixes.is_empty() {
            return;
        }
        let version = version.get();
        let mut purges = self.purges.lock();
        purges.extend(prefixes.iter().map(|prefix| Purge {
            entry: Entry { prefix: prefix.clone(), version },
            resume: None,
            walked_at: None,
            purged: 0,
        }));
        self.publish(&purges);
    }

    fn publish(&self, purges: &[Purge]) {
        let entries: Vec<Entry> = purges.iter().map(|purge| purge.entry.clone()).collect();
        let len = entries.len() as u64;
        self.published.store((len > 0).then(|| Arc::new(entries)));
        // Release: see `hiding`.
        self.published_len.store(len, Ordering::Release);
    }

    /// The range deletes in effect, oldest first.
    pub(crate) fn pending(&self) -> Vec<PendingRangeDelete> {
        self.purges
            .lock()
            .iter()
            .map(|purge| PendingRangeDelete {
                prefix: purge.entry.prefix.clone(),
                version: CommitVersion::new(purge.entry.version),
                keys_purged: purge.purged,
                walked: purge.walked_at.is_some(),
            })
            .collect()
    }

    /// The lock one purge holds while it runs.
    pub(crate) fn walker(&self) -> crate::sync::MutexGuard<'_, ()> {
        self.walker.lock()
    }

    /// Notes that a collection pass with horizon `horizon` finished.
    pub(crate) fn collected_to(&self, horizon: u64) {
        // Relaxed: read by the purge, which holds no other data of the pass.
        self.collected.fetch_max(horizon, Ordering::Relaxed);
    }

    /// Retires every walked range delete whose walk ended at or below the horizon of the
    /// last finished collection pass: no reader can read below it, and that pass cut the
    /// versions the range delete hides from every chain that kept them; returns how many.
    pub(crate) fn retire_collected(&self) -> usize {
        self.retire(self.collected.load(Ordering::Relaxed))
    }

    /// Retires every walked range delete whose walk ended at or below `horizon`; returns
    /// how many.
    pub(crate) fn retire(&self, horizon: u64) -> usize {
        let mut purges = self.purges.lock();
        let before = purges.len();
        purges.retain(|purge| purge.walked_at.is_none_or(|walked_at| walked_at > horizon));
        let retired = before - purges.len();
        if retired > 0 {
            self.publish(&purges);
        }
        retired
    }

    /// Where the oldest unfinished walk goes on, if any walk is unfinished.
    pub(crate) fn next_walk(&self) -> Option<Walk> {
        let purges = self.purges.lock();
        let purge = purges.iter().find(|purge| purge.walked_at.is_none())?;
        let (start, to) = prefix_bounds(&purge.entry.prefix);
        let from = purge.resume.clone().map_or(start, Bound::Excluded);
        Some(Walk { prefix: purge.entry.prefix.clone(), version: purge.entry.version, from, to })
    }

    /// Records a walked stretch of `walk`: `purged` tombstones written, and either the last
    /// key walked (`Some`) or the end of the prefix (`None`) with `last_version`, the last
    /// version handed out once every tombstone of the walk was committed.
    pub(crate) fn walked(
        &self,
        walk: &Walk,
        purged: u64,
        last: Option<Bytes>,
        last_version: CommitVersion,
    ) {
        let mut purges = self.purges.lock();
        let Some(purge) = purges.iter_mut().find(|purge| {
            purge.walked_at.is_none()
                && purge.entry.version == walk.version
                && purge.entry.prefix == walk.prefix
        }) else {
            return;
        };
        purge.purged += purged;
        match last {
            Some(key) => purge.resume = Some(key),
            None => purge.walked_at = Some(last_version.get()),
        }
    }
}

impl Hiding {
    /// Whether a reader at `snapshot` that found `key`'s newest version at or below it to
    /// be `found` must treat the key as deleted.
    #[inline]
    pub(crate) fn hides(&self, key: &[u8], found: u64, snapshot: u64) -> bool {
        match &self.0 {
            None => false,
            Some(entries) => entries.iter().any(|entry| {
                found < entry.version && entry.version <= snapshot && entry.covers(key)
            }),
        }
    }

    /// The newest range delete covering `key` at or below `horizon` (0: none): the
    /// collector keeps no version of the key older than it.
    pub(crate) fn floor_at(&self, key: &[u8], horizon: u64) -> u64 {
        self.covering(key).filter(|&version| version <= horizon).max().unwrap_or(0)
    }

    /// The oldest range delete covering `key` above `horizon`: the horizon at which the
    /// collector can cut the key's versions older than it.
    pub(crate) fn next_floor(&self, key: &[u8], horizon: u64) -> Option<u64> {
        self.covering(key).filter(|&version| version > horizon).min()
    }

    fn covering<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
        let entries = self.0.iter().flat_map(|entries| entries.iter());
        entries.filter(move |entry| entry.covers(key)).map(|entry| entry.version)
    }

    /// Whether a range delete committed after `read_version` covers `key`.
    pub(crate) fn covers_newer(&self, key: &[u8], read_version: u64) -> bool {
        self.newer(read_version).any(|entry| entry.covers(key))
    }

    /// The prefix of a range delete committed after `read_version` that overlaps the key
    /// range from `start` to `end`, if any.
    pub(crate) fn overlapping_newer(
        &self,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        read_version: u64,
    ) -> Option<Bytes> {
        self.newer(read_version)
            .find(|entry| {
                let (prefix_start, prefix_end) = prefix_bounds(&entry.prefix);
                let lower = higher_start(start, &prefix_start);
                let upper = lower_end(end, &prefix_end);
                !bounds_are_empty(lower, upper)
            })
            .map(|entry| entry.prefix.clone())
    }

    fn newer(&self, read_version: u64) -> impl Iterator<Item = &Entry> {
        self.0.iter().flat_map(|entries| entries.iter()).filter(move |e| e.version > read_version)
    }
}

/// The later of two start bounds (on a tie, the exclusive one).
fn higher_start<'b>(a: &'b Bound<Bytes>, b: &'b Bound<Bytes>) -> &'b Bound<Bytes> {
    tighter(a, b, std::cmp::Ordering::Greater)
}

/// The earlier of two end bounds (on a tie, the exclusive one).
fn lower_end<'b>(a: &'b Bound<Bytes>, b: &'b Bound<Bytes>) -> &'b Bound<Bytes> {
    tighter(a, b, std::cmp::Ordering::Less)
}

/// Of two bounds on the same side, the one that admits fewer keys: `a` if its key compares
/// to `b`'s as `a_tighter` (or, on equal keys, if it excludes its own), else `b`; an
/// unbounded side never wins.
fn tighter<'b>(
    a: &'b Bound<Bytes>,
    b: &'b Bound<Bytes>,
    a_tighter: std::cmp::Ordering,
) -> &'b Bound<Bytes> {
    match (a, b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            match x.cmp(y) {
                order if order == a_tighter => a,
                std::cmp::Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
                _ => b,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn set(entries: &[(&str, u64)]) -> RangeDeletes {
        let deletes = RangeDeletes::new();
        for &(prefix, version) in entries {
            deletes.install(&[Bytes::from(prefix)], CommitVersion::new(version));
        }
        deletes
    }

    #[test]
    fn a_range_delete_hides_older_versions_of_covered_keys_from_readers_at_or_after_it() {
        let deletes = set(&[("ab", 10)]);
        let hiding = deletes.hiding();
        assert!(hiding.hides(b"abc", 9, 10));
        assert!(hiding.hides(b"ab", 3, 12), "the prefix itself is a covered key");
        assert!(!hiding.hides(b"abc", 9, 9), "a reader before the delete sees the key");
        assert!(!hiding.hides(b"abc", 10, 10), "a version written by the delete's commit stays");
        assert!(!hiding.hides(b"abc", 11, 12), "a later version stays");
        assert!(!hiding.hides(b"ac", 1, 12), "a key outside the prefix stays");
        assert!(!RangeDeletes::new().hiding().hides(b"abc", 1, 99));
    }

    #[test]
    fn validation_sees_only_range_deletes_after_the_read_version() {
        let hiding = set(&[("ab", 10)]).hiding();
        assert!(hiding.covers_newer(b"abz", 9));
        assert!(!hiding.covers_newer(b"abz", 10));
        assert!(!hiding.covers_newer(b"b", 9));
        let key = |k: &str| Bytes::from(k);
        let overlapping = |start, end| hiding.overlapping_newer(&start, &end, 9);
        assert_eq!(
            overlapping(Bound::Included(key("a")), Bound::Excluded(key("b"))),
            Some(key("ab"))
        );
        assert_eq!(overlapping(Bound::Included(key("abq")), Bound::Unbounded), Some(key("ab")));
        assert_eq!(overlapping(Bound::Unbounded, Bound::Excluded(key("ab"))), None);
        assert_eq!(overlapping(Bound::Unbounded, Bound::Included(key("ab"))), Some(key("ab")));
        assert_eq!(overlapping(Bound::Included(key("ac")), Bound::Unbounded), None);
        assert_eq!(hiding.overlapping_newer(&Bound::Unbounded, &Bound::Unbounded, 10), None);
    }

    #[test]
    fn a_walked_range_delete_retires_once_the_horizon_passes_the_walks_end() {
        let deletes = set(&[("a", 5), ("b", 6)]);
        let walk = deletes.next_walk().expect("unwalked");
        assert_eq!((walk.prefix.as_slice(), walk.version), (&b"a"[..], 5));
        deletes.walked(&walk, 3, Some(Bytes::from("a7")), CommitVersion::ZERO);
        let walk = deletes.next_walk().expect("unwalked");
        assert_eq!(walk.from, Bound::Excluded(Bytes::from("a7")), "goes on after the last key");
        deletes.walked(&walk, 2, None, CommitVersion::new(20));
        assert_eq!(deletes.next_walk().map(|walk| walk.version), Some(6));
        let pending = deletes.pending();
        assert_eq!((pending[0].keys_purged, pending[0].walked), (5, true));
        assert_eq!(deletes.retire(19), 0, "a reader below the walk's end may remain");
        assert_eq!(deletes.retire(20), 1);
        assert!(deletes.hiding().hides(b"b1", 1, 6), "the other one stays");
        assert!(!deletes.hiding().hides(b"a1", 1, 6));
    }
}
