//! Version chains: one per key, newest version first.
//!
//! A chain is created once, in the commit sequencer, inside its key's entry of the ordered
//! index, and reached from the hash index through a counted handle (see `index.rs`); it
//! never moves. Its nodes are
//! linked by crossbeam-epoch atomics.
//!
//! # Protocol
//!
//! - **Install** (commit sequencer only, one thread at a time): the new node's `next` is set
//!   to the current head while the node is still private, then `head` is stored with
//!   `Release`. Readers load `head` and `next` with `Acquire`, so a reader that reaches a node
//!   sees all of its fields. Only committed versions are ever linked.
//! - **Read**: a reader at version `v` walks from the head and stops at the first node whose
//!   version is `<= v`. It never waits and never writes.
//! - **Prune** (garbage collector only, one at a time): given a horizon `h` that no
//!   registered reader is below (see `watermark.rs`), the collector keeps every node down to
//!   the newest one at or below `h` (and at least `keep_last` nodes), swaps the `next` of the
//!   last kept node to null, and retires what hung below it with `defer_destroy`. A reader
//!   at `v >= h` stops at or before the last kept node, so it never needs a cut node; a reader
//!   already walking the cut part (a history walk) holds a guard pinned before the cut, so
//!   the memory stays valid until it is done.
//! - **Drop**: when the last `Arc` of a chain goes, nothing can reach it any more; its nodes
//!   are freed directly.
//!
//! The committer writes only `head`; the collector writes only the `next` of linked nodes.
//! Neither writes what the other writes, so install and prune need no synchronization with
//! each other beyond the orderings above.
//!
//! # Unsafe code
//!
//! Each block is argued where it stands: `Nodes::next` (dereferencing a node pointer loaded
//! under a guard); `Retired` / `Released` (lists `prune` detached, freed only after the
//! epoch's grace period); `Drop for VersionChain` (freeing nodes of an unreachable
//! chain); and `prefetch` (a cache hint, which reads nothing).

#![allow(unsafe_code)]

use crate::sync::epoch::{self, Atomic, Guard, Owned, Shared};
use crate::sync::{AtomicU64, Ordering};
use crate::version::{Origin, VersionNode};

/// The versions of one key, newest first. The key itself is held by the index entry the
/// chain lives in (see `index.rs`).
///
/// Two words, so that a skiplist entry (chain, 32-byte key, reference count) keeps its
/// first tower pointer, which a scan loads at every step, in its first cache line.
pub(crate) struct VersionChain {
    head: Atomic<VersionNode>,
    /// Bookkeeping, in one word: [`CREATION_CLAIMED`]; the garbage collector's
    /// [`GC_QUEUED`], [`GC_WAITING`] and [`FORGOTTEN`]; and in the remaining bits the bytes
    /// open snapshots keep alive (see `gc.rs`).
    gc: AtomicU64,
}

/// Set while the chain is in the collector's queue.
const GC_QUEUED: u64 = 1 << 63;
/// Set while the chain waits in the collector's heap for the horizon to reach it.
const GC_WAITING: u64 = 1 << 62;
/// Set by the first caller that claims the chain's creation (`claim_creation`).
const CREATION_CLAIMED: u64 = 1 << 61;
/// Set, under the sequencer's lock, when the collector forgets the chain (dead for every
/// reader): from then on no version is installed into it, and the index unlinks it, after
/// the lock is released, or whoever meets it first does (see `index.rs`).
const FORGOTTEN: u64 = 1 << 60;
/// The bits left for the pinned bytes (saturating there: 1 EiB).
const GC_PINNED_BYTES: u64 = FORGOTTEN - 1;

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<VersionChain>() == 16, "see the type's documentation");

/// What one call of [`VersionChain::prune`] unlinked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub(crate) versions: u64,
    pub(crate) bytes: u64,
}

/// Superseded versions a chain keeps only because a snapshot might still read them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pinned {
    pub(crate) versions: u64,
    pub(crate) bytes: u64,
}

impl VersionChain {
    pub(crate) fn new() -> VersionChain {
        VersionChain { head: Atomic::null(), gc: AtomicU64::new(0) }
    }

    /// The versions, newest first, as a reader pinned by `guard` finds them.
    pub(crate) fn nodes<'a>(&'a self, guard: &'a Guard) -> Nodes<'a> {
        // Acquire: pairs with the Release store of `head` in `install`.
        Nodes { next: self.head.load(Ordering::Acquire, guard), guard }
    }

    /// The newest version.
    pub(crate) fn head<'a>(&'a self, guard: &'a Guard) -> Option<&'a VersionNode> {
        self.nodes(guard).next()
    }

    /// The newest version at or below `version`: what a snapshot at `version` reads.
    pub(crate) fn read_at<'a>(&'a self, version: u64, guard: &'a Guard) -> Option<&'a VersionNode> {
        self.nodes(guard).find(|node| node.version() <= version)
    }

    /// The version of the newest write by a user transaction, or 0. Validation compares this
    /// with a transaction's read version; writes by the engine's maintenance never conflict.
    pub(crate) fn newest_user_version(&self, guard: &Guard) -> u64 {
        self.nodes(guard).find(|node| node.origin() == Origin::User).map_or(0, VersionNode::version)
    }

    /// Links a committed node as the newest version and returns whether the key had versions
    /// before.
    ///
    /// Only the commit sequencer calls this, one thread at a time, with a node whose version
    /// is above every version in the chain.
    pub(crate) fn install(&self, node: Owned<VersionNode>, guard: &Guard) -> bool {
        // Acquire: the sequencer's lock already orders us after the previous installer; the
        // ordering keeps the chain-level loom models honest without that lock.
        let head = self.head.load(Ordering::Acquire, guard);
        let had_versions = !head.is_null();
        if let Some(newest) = (Nodes { next: head, guard }).next() {
            assert!(newest.version() < node.version(), "versions only grow along a chain");
        }
        // Relaxed: the node is still private; the Release store below publishes it whole.
        node.next.store(head, Ordering::Relaxed);
        let node = node.into_shared(guard);
        // Release: pairs with the Acquire loads in `nodes`.
        self.head.store(node, Ordering::Release);
        had_versions
    }

    /// Unlinks the versions no reader at or above `horizon` can read, keeping at least
    /// `keep_last` versions but none older than `floor` (the newest range delete covering
    /// the key at or below `horizon`, or 0: no reader can see those versions any more, not
    /// even through history), and hands them to `retired`.
    ///
    /// Only the garbage collector calls this, one pass at a time, with a horizon no
    /// registered reader is below.
    pub(crate) fn prune(
        &self,
        horizon: u64,
        keep_last: usize,
        floor: u64,
        guard: &Guard,
        retired: &mut Retired,
    ) -> Pruned {
        debug_assert!(keep_last >= 1, "the newest version is never pruned");
        debug_assert!(floor <= horizon, "a floor only from a range delete below the horizon");
        let Some(last_kept) = self.cut_point(horizon, keep_last, floor, guard) else {
            return Pruned::default();
        };
        // AcqRel: we read the detached nodes below. Readers racing with this swap see either
        // the old pointer (the nodes stay valid until their guards drop) or null.
        let detached = last_kept.next.swap(Shared::null(), Ordering::AcqRel, guard);
        let mut pruned = Pruned::default();
        for node in (Nodes { next: detached, guard }) {
            debug_assert!(node.version() < last_kept.version(), "the cut keeps the newer side");
            pruned.versions += 1;
            pruned.bytes += node.payload_bytes();
        }
        if !detached.is_null() {
            // The swap made the list unreachable: the committer only ever writes `head`, and
            // this collector is the only writer of a linked node's `next`.
            retired.lists.push(detached.as_raw());
            retired.versions += pruned.versions;
        }
        pruned
    }

    /// The superseded versions that a horizon of `horizon_free` would let `prune` free but
    /// that remain because the actual horizon is lower (open snapshots hold it back).
    /// Called by the collector right after `prune`.
    pub(crate) fn pinned(&self, horizon_free: u64, keep_last: usize, guard: &Guard) -> Pinned {
        let Some(last_kept) = self.cut_point(horizon_free, keep_last, 0, guard) else {
            return Pinned::default();
        };
        let mut pinned = Pinned::default();
        let beyond = last_kept.next.load(Ordering::Acquire, guard);
        for node in (Nodes { next: beyond, guard }) {
            pinned.versions += 1;
            pinned.bytes += node.payload_bytes();
        }
        pinned
    }

    /// The lowest horizon at which `prune` would free this chain's oldest version (the
    /// version just above it), or `None` if the chain holds no more than `keep_last`
    /// versions and so has nothing a higher horizon could free.
    pub(crate) fn frees_oldest_at(&self, keep_last: usize, guard: &Guard) -> Option<u64> {
        let mut newer = None;
        let mut count = 0;
        for node in self.nodes(guard) {
            count += 1;
            if node.next.load(Ordering::Acquire, guard).is_null() {
                break;
            }
            newer = Some(node.version());
        }
        newer.filter(|_| count > keep_last)
    }

    /// The last node `prune` keeps: the first node, from the newest, that is at or below
    /// `horizon` and either at least the `keep_last`-th or the last before a version older
    /// than `floor`.
    fn cut_point<'a>(
        &'a self,
        horizon: u64,
        keep_last: usize,
        floor: u64,
        guard: &'a Guard,
    ) -> Option<&'a VersionNode> {
        let mut nodes = self.nodes(guard).enumerate().peekable();
        while let Some((index, node)) = nodes.next() {
            let next_below_floor = nodes.peek().is_some_and(|(_, next)| next.version() < floor);
            if node.version() <= horizon && (index + 1 >= keep_last || next_below_floor) {
                return Some(node);
            }
        }
        None
    }

    /// Whether the key is deleted for every reader at or above `horizon`: its newest version
    /// is a tombstone at or below `horizon` (or it has no version at all). Returns the head
    /// pointer observed, for the sequencer to check that nothing was installed since.
    pub(crate) fn dead_head(&self, horizon: u64, guard: &Guard) -> Option<*const VersionNode> {
        match self.head(guard) {
            None => Some(std::ptr::null()),
            Some(head) if head.is_tombstone() && head.version() <= horizon => {
                Some(head as *const VersionNode)
            }
            Some(_) => None,
        }
    }

    /// The head pointer, for identity checks.
    pub(crate) fn head_ptr(&self, guard: &Guard) -> *const VersionNode {
        self.head(guard).map_or(std::ptr::null(), |head| head as *const VersionNode)
    }

    /// The number of versions and their payload bytes, for accounting.
    pub(crate) fn footprint(&self, guard: &Guard) -> Pruned {
        let mut total = Pruned::default();
        for node in self.nodes(guard) {
            total.versions += 1;
            total.bytes += node.payload_bytes();
        }
        total
    }

    /// Marks the chain as queued for the collector; returns `true` if it was not already.
    ///
    /// AcqRel on both sides (here and in [`VersionChain::take_gc_queued`]): if this RMW
    /// finds the mark set, it precedes the collector's clearing RMW, which therefore
    /// synchronizes with it, so the collector's later walk sees the version installed just
    /// before. (The collector's other RMWs of the same word only add orderings.)
    pub(crate) fn mark_gc_queued(&self) -> bool {
        self.gc.fetch_or(GC_QUEUED, Ordering::AcqRel) & GC_QUEUED == 0
    }

    /// Whether this call is the first to claim the chain's creation: exactly one of any
    /// number of racing callers is. The index claims every chain it hands out, so that of
    /// the committers that race to create a key, one counts it and may remove it again.
    /// Relaxed: only the flag's own order matters.
    #[cfg_attr(
        loom,
        allow(dead_code, reason = "under loom the index is a locked map, which claims no chains")
    )]
    pub(crate) fn claim_creation(&self) -> bool {
        self.gc.load(Ordering::Relaxed) & CREATION_CLAIMED == 0
            && self.gc.fetch_or(CREATION_CLAIMED, Ordering::Relaxed) & CREATION_CLAIMED == 0
    }

    /// Marks the chain forgotten (see [`FORGOTTEN`]); returns `true` if this call did.
    /// Under the sequencer's lock only, so that a committer holding it sees a stable
    /// answer. Release/Acquire with [`VersionChain::is_forgotten`]: a thread outside the
    /// lock that sees the mark also sees the dead head the collector saw.
    pub(crate) fn forget(&self) -> bool {
        self.gc.fetch_or(FORGOTTEN, Ordering::AcqRel) & FORGOTTEN == 0
    }

    /// Whether the collector forgot the chain (see [`FORGOTTEN`]).
    pub(crate) fn is_forgotten(&self) -> bool {
        self.gc.load(Ordering::Acquire) & FORGOTTEN != 0
    }

    /// Clears the queued mark before the collector processes the chain.
    pub(crate) fn take_gc_queued(&self) {
        self.gc.fetch_and(!GC_QUEUED, Ordering::AcqRel);
    }

    /// Sets or clears the waiting mark; returns whether it was set. Collector only, one pass
    /// at a time; Relaxed: no other memory hangs on it.
    pub(crate) fn set_gc_waiting(&self, waiting: bool) -> bool {
        let old = if waiting {
            self.gc.fetch_or(GC_WAITING, Ordering::Relaxed)
        } else {
            self.gc.fetch_and(!GC_WAITING, Ordering::Relaxed)
        };
        old & GC_WAITING != 0
    }

    /// Records the bytes open snapshots keep alive in this chain; returns the previous
    /// record. Collector only, one pass at a time; Relaxed, as above.
    pub(crate) fn swap_gc_pinned_bytes(&self, bytes: u64) -> u64 {
        let bytes = bytes.min(GC_PINNED_BYTES);
        let mut old = self.gc.load(Ordering::Relaxed);
        loop {
            let new = (old & !GC_PINNED_BYTES) | bytes;
            match self.gc.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return old & GC_PINNED_BYTES,
                Err(actual) => old = actual,
            }
        }
    }
}

impl Drop for VersionChain {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other reference to the chain exists, so no reader can
        // be walking it; its nodes are reachable only from here (pruned ones were detached
        // and handed to the epoch). Nothing else is protected by this guard.
        let guard = unsafe { epoch::unprotected() };
        let mut cursor = self.head.load(Ordering::Relaxed, guard);
        while !cursor.is_null() {
            // SAFETY: as above; each node is owned by exactly one link of this chain and
            // freed once, after its `next` is read.
            let node = unsafe { cursor.into_owned() };
            cursor = node.next.load(Ordering::Relaxed, guard);
            drop(node);
        }
    }
}

/// Version lists `prune` detached: unreachable for new readers, but possibly still read by
/// readers pinned before the detach. Dropped as is, it leaks them (a bug costs memory, never
/// a use after free); `release_after_readers` is the way to free them.
#[derive(Default)]
pub(crate) struct Retired {
    lists: Vec<*const VersionNode>,
    versions: u64,
}

// SAFETY: a `Retired` exclusively owns the lists it holds (nothing links to them any more),
// and version nodes are `Send`, so the lists may be freed from any thread.
unsafe impl Send for Retired {}

impl Retired {
    /// Hands the lists to the epoch: once every guard pinned before now has been dropped,
    /// they are moved to `released`, for the collector to free. One deferred function per
    /// collection pass however many versions it detached (crossbeam collects a bounded
    /// number of them per pin, and one per version could outpace it), and the freeing
    /// happens on the collector's thread, never on a reader's.
    pub(crate) fn release_after_readers(
        self,
        guard: &Guard,
        released: &std::sync::Arc<crate::sync::Mutex<Vec<Released>>>,
    ) {
        if self.lists.is_empty() {
            return;
        }
        let released = std::sync::Arc::clone(released);
        guard.defer(move || {
            // SAFETY: crossbeam-epoch runs a deferred function only once every guard that was
            // pinned when it was deferred has been dropped, and every list in `self` was
            // detached before that, so no reader can still be on any of its nodes.
            let freeable = unsafe { Released::new(self) };
            released.lock().push(freeable);
        });
    }
}

/// Detached version lists no reader can reach or hold: dropping it frees them.
pub(crate) struct Released(Retired);

impl Released {
    /// How many versions dropping this frees.
    pub(crate) fn versions(&self) -> u64 {
        self.0.versions
    }

    /// # Safety
    /// No reader may hold a reference to any node of `retired`: every guard pinned before
    /// its lists were detached must have been dropped.
    unsafe fn new(retired: Retired) -> Released {
        Released(retired)
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        // SAFETY: nothing else can reach these nodes (see `Released::new`); no guard needed.
        let guard = unsafe { epoch::unprotected() };
        for &head in &self.0.lists {
            let mut cursor = head;
            while !cursor.is_null() {
                // SAFETY: `cursor` came from a detached list this value exclusively owns (see
                // `Released::new`); each node is freed once, after its `next` is read.
                let node = unsafe { Owned::from_raw(cursor.cast_mut()) };
                cursor = node.next.load(Ordering::Relaxed, guard).as_raw();
                drop(node);
            }
        }
    }
}

/// The versions of a chain, newest first; see [`VersionChain::nodes`].
pub(crate) struct Nodes<'a> {
    next: Shared<'a, VersionNode>,
    guard: &'a Guard,
}

impl Nodes<'_> {
    /// Asks the CPU to start loading the next version it will visit, without waiting for
    /// it: a scan calls this for each key as it walks the index, so those cache misses
    /// overlap with the walk's own instead of following them.
    #[cfg_attr(loom, allow(dead_code, reason = "the loom index model does not prefetch"))]
    pub(crate) fn prefetch(&self) {
        prefetch(self.next.as_raw());
    }
}

/// Asks the CPU to start loading the cache line at `address` into every cache level, without
/// waiting for it. Only a hint: `address` may be anything, null or dangling included, and
/// nothing is read into the program. A no-op where the target has no such instruction in
/// its baseline.
#[cfg_attr(loom, allow(dead_code, reason = "the loom index model does not prefetch"))]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and never reads into the program;
    // any address is allowed. SSE, which it needs, is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

impl<'a> Iterator for Nodes<'a> {
    type Item = &'a VersionNode;

    fn next(&mut self) -> Option<&'a VersionNode> {
        // SAFETY: `self.next` was loaded under `self.guard` from a chain's head or from the
        // `next` of a node reached the same way, and the chain is borrowed for 'a. A node is
        // freed only (1) through `defer_destroy` after `prune` detached it, which
        // crossbeam-epoch delays until every guard pinned before the detach is dropped; our
        // guard was pinned before we loaded any pointer leading here, and a pointer loaded
        // after the detach cannot lead into the detached part; or (2) by the chain's `Drop`,
        // which cannot run while the chain is borrowed.
        let node = unsafe { self.next.as_ref() }?;
        // Acquire: pairs with the Release publication of the node this points to.
        self.next = node.next.load(Ordering::Acquire, self.guard);
        Some(node)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::bytes::Bytes;
    use crate::version::{CommitVersion, NEVER_EXPIRES};

    fn node(version: u64, value: &str) -> Owned<VersionNode> {
        let mut node = VersionNode::put(Bytes::from(value), NEVER_EXPIRES);
        node.set_version(CommitVersion::new(version));
        Owned::new(node)
    }

    fn tombstone(version: u64) -> Owned<VersionNode> {
        let mut node = VersionNode::tombstone(Origin::User);
        node.set_version(CommitVersion::new(version));
        Owned::new(node)
    }

    fn versions(chain: &VersionChain) -> Vec<u64> {
        let guard = epoch::pin();
        chain.nodes(&guard).map(VersionNode::version).collect()
    }

    /// Prunes and hands what was detached to the epoch, as a collection pass does.
    fn prune(chain: &VersionChain, horizon: u64, keep_last: usize) -> Pruned {
        let guard = epoch::pin();
        let mut retired = Retired::default();
        let pruned = chain.prune(horizon, keep_last, 0, &guard, &mut retired);
        retired.release_after_readers(
            &guard,
            &std::sync::Arc::new(crate::sync::Mutex::new(Vec::new())),
        );
        pruned
    }

    fn chain_of(versions: &[u64]) -> VersionChain {
        let chain = VersionChain::new();
        let guard = epoch::pin();
        for &v in versions {
            chain.install(node(v, &format!("v{v}")), &guard);
        }
        chain
    }

    #[test]
    fn a_reader_sees_the_newest_version_at_or_below_its_own() {
        let chain = chain_of(&[2, 5, 9]);
        let guard = epoch::pin();
        let read = |at| chain.read_at(at, &guard).map(VersionNode::version);
        assert_eq!(read(1), None);
        assert_eq!(read(2), Some(2));
        assert_eq!(read(4), Some(2));
        assert_eq!(read(5), Some(5));
        assert_eq!(read(100), Some(9));
    }

    #[test]
    fn install_reports_whether_the_key_had_versions() {
        let chain = VersionChain::new();
        let guard = epoch::pin();
        assert!(!chain.install(node(1, "a"), &guard));
        assert!(chain.install(node(2, "b"), &guard));
    }

    #[test]
    #[should_panic(expected = "versions only grow")]
    fn install_refuses_a_version_that_does_not_grow() {
        let chain = chain_of(&[5]);
        let guard = epoch::pin();
        chain.install(node(5, "again"), &guard);
    }

    #[test]
    fn prune_keeps_everything_a_reader_at_the_horizon_can_read() {
        let chain = chain_of(&[1, 2, 3, 4, 5]);
        let guard = epoch::pin();
        let pruned = prune(&chain, 3, 1);
        assert_eq!(pruned, Pruned { versions: 2, bytes: 4 });
        assert_eq!(versions(&chain), vec![5, 4, 3]);
        assert_eq!(chain.read_at(3, &guard).map(VersionNode::version), Some(3));
    }

    #[test]
    fn prune_keeps_the_last_n_versions_when_asked() {
        let chain = chain_of(&[1, 2, 3, 4, 5]);
        prune(&chain, 5, 3);
        assert_eq!(versions(&chain), vec![5, 4, 3]);
        prune(&chain, 5, 1);
        assert_eq!(versions(&chain), vec![5]);
    }

    #[test]
    fn prune_below_every_version_frees_nothing() {
        let chain = chain_of(&[4, 5]);
        assert_eq!(prune(&chain, 3, 1), Pruned::default());
        assert_eq!(versions(&chain), vec![5, 4]);
    }

    #[test]
    fn pinned_counts_what_a_higher_horizon_would_free() {
        let chain = chain_of(&[1, 2, 3, 4]);
        let guard = epoch::pin();
        prune(&chain, 2, 1);
        let pinned = chain.pinned(4, 1, &guard);
        assert_eq!(pinned, Pinned { versions: 2, bytes: 4 });
        assert_eq!(chain.pinned(2, 1, &guard), Pinned::default());
    }

    #[test]
    fn the_oldest_version_is_freed_once_the_horizon_reaches_the_one_above_it() {
        let chain = chain_of(&[3, 7, 9]);
        let guard = epoch::pin();
        assert_eq!(chain.frees_oldest_at(1, &guard), Some(7));
        assert_eq!(chain.frees_oldest_at(2, &guard), Some(7));
        assert_eq!(chain.frees_oldest_at(3, &guard), None, "nothing beyond what is kept");
        prune(&chain, 7, 1);
        assert_eq!(versions(&chain), vec![9, 7]);
        assert_eq!(chain.frees_oldest_at(1, &guard), Some(9));
        prune(&chain, 9, 1);
        assert_eq!(chain.frees_oldest_at(1, &guard), None);
    }

    #[test]
    fn a_floor_cuts_the_versions_keep_last_would_keep_below_it() {
        let chain = VersionChain::new();
        let guard = epoch::pin();
        for version in [2, 5, 9] {
            chain.install(node(version, "v"), &guard);
        }
        let mut retired = Retired::default();
        let pruned = chain.prune(9, 3, 0, &guard, &mut retired);
        assert_eq!(pruned.versions, 0, "keep_last keeps all three");
        let pruned = chain.prune(9, 3, 6, &guard, &mut retired);
        assert_eq!(pruned.versions, 2, "but none older than the floor");
        assert_eq!(versions(&chain), [9]);
        let released = std::sync::Arc::new(crate::sync::Mutex::new(Vec::new()));
        retired.release_after_readers(&guard, &released);
    }

    #[test]
    fn a_chain_is_dead_once_a_tombstone_at_or_below_the_horizon_heads_it() {
        let chain = chain_of(&[1]);
        let guard = epoch::pin();
        chain.install(tombstone(2), &guard);
        assert!(chain.dead_head(1, &guard).is_none());
        assert_eq!(chain.dead_head(2, &guard), Some(chain.head_ptr(&guard)));
    }

    #[test]
    fn the_collector_marks_the_creation_claim_and_the_pinned_bytes_share_a_word_without_clobbering()
    {
        let chain = VersionChain::new();
        assert!(chain.claim_creation());
        assert!(chain.mark_gc_queued());
        assert!(!chain.mark_gc_queued(), "queued once");
        assert!(!chain.set_gc_waiting(true));
        assert_eq!(chain.swap_gc_pinned_bytes(1234), 0);
        assert_eq!(chain.swap_gc_pinned_bytes(u64::MAX), 1234);
        assert_eq!(chain.swap_gc_pinned_bytes(7), GC_PINNED_BYTES, "saturates");
        assert!(chain.set_gc_waiting(false));
        chain.take_gc_queued();
        assert!(chain.mark_gc_queued(), "the marks survived the byte counts");
        assert!(!chain.claim_creation(), "the claim survived the marks and the byte counts");
        assert_eq!(chain.swap_gc_pinned_bytes(0), 7);
    }

    #[test]
    fn writes_by_the_reaper_are_not_user_writes() {
        let chain = chain_of(&[3]);
        let guard = epoch::pin();
        let mut reaped = VersionNode::tombstone(Origin::Reaper);
        reaped.set_version(CommitVersion::new(7));
        chain.install(Owned::new(reaped), &guard);
        assert_eq!(chain.newest_user_version(&guard), 3);
    }
}
