//! The key index: from key bytes to the key's version chain.
//!
//! Two structures reach the same chains:
//! - an ordered, lock-free skiplist (`crossbeam_skiplist::base::SkipList`) whose entries
//!   hold the key and its chain inline, for range and prefix scans: a scan walks it under
//!   the caller's epoch guard and reads each chain where it stands, with no reference-count
//!   traffic and no pointer to chase per key;
//! - a lock-free hash index (papaya) from key to a counted handle on the skiplist entry
//!   ([`ChainRef`]), for point reads, so a `get` costs a hash and one or two cache misses
//!   instead of a walk down ~20 skiplist levels.
//!
//! Keys that readers only scan (the `scan_only_keys` option says which; secondary-index
//! entries, typically) are in the skiplist alone: creating one is one insert instead of
//! two, and the hash index neither holds nor, as it grows, moves an entry for it. A point
//! read of such a key searches the skiplist. Which keys those are is a pure function of the
//! key's bytes, fixed for the life of the index, so every lookup knows where to look.
//!
//! A committer inserts the chains of its new keys, empty, into both before it takes the
//! sequencer's lock (racing committers get the same chain: `get_or_insert`); only the
//! sequencer's lock holder installs versions into them, removes the empty chains a failed
//! commit created, and marks dead chains forgotten (see `gc.rs`). A forgotten chain is
//! unlinked from both structures afterwards, outside the lock (a removal from the skiplist
//! searches it, a few microseconds a key that no committer should wait behind), by the
//! collector ([`KeyIndex::unlink_forgotten`]), or by whichever thread meets it first in
//! [`KeyIndex::get_or_insert`], which must not hand it out. Everyone reads without locks. An
//! empty chain reads as absent, as does a chain whose versions are all newer than the
//! reader's snapshot, so the insert is invisible; a chain is in both before the commit that
//! gives it a version becomes visible, and forgotten only when no reader can see any of its
//! versions, so the two never disagree about anything a reader can observe, whether or not
//! it is unlinked yet. Because a removal may come between a committer's insert and its turn
//! at the lock, the lock holder checks that each chain is still linked, and not forgotten,
//! before installing into it (`is_linked`).
//!
//! A skiplist entry (key and chain) lives as long as it is linked or any `ChainRef` counts
//! it; once unlinked and uncounted, crossbeam-epoch frees it after every reader pinned
//! before has moved on, and its chain's versions with it.
//!
//! Under `cfg(loom)` the index is a `Mutex<BTreeMap>` with the same interface: neither
//! crossbeam-skiplist nor papaya is loom-instrumented, and the protocols the models check
//! (chains, the visible version, the horizon) do not depend on the index's internals.

use std::ops::{Bound, ControlFlow};

use crate::bytes::Bytes;
use crate::chain::{Nodes, VersionChain};
use crate::options::ScanOnlyKeys;
use crate::sync::epoch::Guard;

/// Which way a scan walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Forward,
    Reverse,
}

/// A key met by a scan, with the walk of its chain's versions already started.
pub(crate) type ChainWalk<'a> = (&'a Bytes, Nodes<'a>);

/// The most keys one scan batch reads.
pub(crate) const BATCH_KEYS_MAX: usize = 256;

/// A batch of walks, on the stack: a scan allocates nothing per batch.
pub(crate) type Batch<'a> = smallvec::SmallVec<[ChainWalk<'a>; BATCH_KEYS_MAX]>;

/// Key bounds of a scan.
pub(crate) type KeyBounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

#[cfg(not(loom))]
pub(crate) use lock_free::{ChainRef, KeyIndex, LoadedKeys};

#[cfg(loom)]
pub(crate) use model::{ChainRef, KeyIndex, LoadedKeys};

#[cfg(not(loom))]
#[allow(unsafe_code)]
mod lock_free {
    use std::ops::Deref;

    use super::*;
    use crossbeam_skiplist::base::{Entry, RefEntry, SkipList};

    use std::hash::BuildHasher as _;

    use crate::sync::{AtomicUsize, Mutex, Ordering};

    /// Hashes key bytes, once per operation on the hash index.
    type KeyHasher = foldhash::fast::RandomState;

    /// A key of the hash index with its hash, computed once when the key is inserted.
    ///
    /// The hash index hashes its keys again each time it grows (it moves every entry to a
    /// table twice the size), and a key's bytes live in an allocation of their own: without
    /// the stored hash, each move is a cache miss on those bytes and a hash of them. With it,
    /// a move reads the entry alone. (Measured: a third of the commit time of transactions
    /// that create keys went to those moves.)
    struct HashedKey {
        hash: u64,
        key: Bytes,
    }

    impl std::hash::Hash for HashedKey {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            state.write_u64(self.hash);
        }
    }

    impl PartialEq for HashedKey {
        fn eq(&self, other: &HashedKey) -> bool {
            self.hash == other.hash && self.key.as_slice() == other.key.as_slice()
        }
    }

    impl Eq for HashedKey {}

    /// A key looked up in the hash index, with its hash. Not `Eq`: it compares with stored
    /// keys only through `Equivalent`.
    struct Probe<'k> {
        hash: u64,
        key: &'k [u8],
    }

    impl std::hash::Hash for Probe<'_> {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            state.write_u64(self.hash);
        }
    }

    impl papaya::Equivalent<HashedKey> for Probe<'_> {
        fn equivalent(&self, stored: &HashedKey) -> bool {
            self.hash == stored.hash && self.key == stored.key.as_slice()
        }
    }

    /// The hash index's hasher: the hash a [`HashedKey`] or [`Probe`] carries, as it is.
    #[derive(Clone, Default)]
    struct StoredHash;

    impl std::hash::BuildHasher for StoredHash {
        type Hasher = StoredHashHasher;

        fn build_hasher(&self) -> StoredHashHasher {
            StoredHashHasher(0)
        }
    }

    /// What [`StoredHash`] builds: it keeps the one `u64` written to it.
    struct StoredHashHasher(u64);

    impl std::hash::Hasher for StoredHashHasher {
        fn write(&mut self, bytes: &[u8]) {
            // Only `write_u64` is called (by the two `Hash` impls above); anything else is
            // folded in so that the hasher stays a hasher.
            for &byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(byte);
            }
        }

        fn write_u64(&mut self, hash: u64) {
            self.0 = hash;
        }

        fn finish(&self) -> u64 {
            self.0
        }
    }

    /// Entries the hash index retires per thread before it reclaims them as a batch.
    ///
    /// Reclaiming a batch starts with a process-wide memory barrier (seize's `membarrier`
    /// strategy, which lets every read skip a fence): an interrupt on every core running
    /// one of the process's threads, a few microseconds each on a virtual machine. At
    /// seize's default of 32, a collection pass forgetting a million keys interrupted the
    /// reading and committing threads some 30,000 times; at this size, about 250 times,
    /// for at most this many removed entries a thread holds on to a little longer. The
    /// price, measured (docs/benchmarks.md): about 0.8 MiB more resident per thread that
    /// writes (32 threads filling 200,000 keys peaked at 142 MiB against 118), and a
    /// slower p99.9 there.
    const RETIRE_BATCH: usize = 4096;

    /// Slots of the hash table in one window of [`KeyIndex::hash_loaded`]: 8 KiB of entry
    /// pointers and 1 KiB of metadata bytes, which stay in the first-level cache while the
    /// window's keys are inserted.
    pub(super) const WINDOW_SLOTS: usize = 1024;

    /// Fewer windows than this per thread are filled by fewer threads: a thread costs more
    /// to start than it would save.
    pub(super) const HASH_WINDOWS_PER_THREAD_MIN: usize = 16;

    /// Fewer windows than this (a table under 600 KiB, about 48,000 keys, that the
    /// second-level cache holds) are filled without sorting the keys first.
    pub(super) const HASH_WINDOWS_SORTED_MIN: usize = 64;

    /// How many keys ahead [`KeyIndex::hash_loaded`]'s inserts start loading the skiplist
    /// entry they copy a key from.
    const PREFETCH_AHEAD: usize = 8;

    /// The slots of the table papaya allocates for `keys` keys reserved in an empty map
    /// (`papaya::raw::probe::entries_for`: a load of at most three quarters, rounded up to
    /// a power of two). It only decides how [`KeyIndex::hash_loaded`] orders its inserts.
    pub(super) fn table_slots(keys: usize) -> usize {
        (keys.saturating_mul(8) / 6).next_power_of_two().max(WINDOW_SLOTS)
    }

    /// Which window of a table of `windows` windows the slot of `hash` lies in: papaya
    /// starts a key's probe at its hash's low bits (`hash & mask`), as many as the table
    /// has slots.
    pub(super) fn slot_window(hash: u64, windows: usize) -> usize {
        (hash as usize & (windows * WINDOW_SLOTS - 1)) / WINDOW_SLOTS
    }

    /// Runs `work` on each of `parts`, each on a thread of its own: the first on the calling
    /// thread, the others on scoped threads; returns once all are done.
    fn each_on_a_thread<P: Send>(parts: impl IntoIterator<Item = P>, work: impl Fn(P) + Sync) {
        let mut parts = parts.into_iter();
        let here = parts.next();
        std::thread::scope(|scope| {
            for part in parts {
                let work = &work;
                scope.spawn(move || work(part));
            }
            if let Some(here) = here {
                work(here);
            }
        });
    }

    /// The ordered index and the hash index over the same chains.
    ///
    /// Field order matters: `hashed` and `loaded` hold `ChainRef`s into `ordered`, and
    /// fields drop in declaration order, so every handle they hold is released first.
    ///
    /// The skiplist is boxed because handles point into it (a `RefEntry` holds a reference
    /// to its skiplist): the index is built, and filled by recovery, before the database's
    /// shared state is moved to where it lives, and the skiplist must not move with it.
    pub(crate) struct KeyIndex {
        key_hasher: KeyHasher,
        /// The keys kept out of the hash index ([`crate::Options::scan_only_keys`]).
        scan_only: Option<ScanOnlyKeys>,
        hashed: papaya::HashMap<HashedKey, ChainRef, StoredHash>,
        /// The keys recovery linked into the skiplist alone, handed over by each loader
        /// when it is done, until [`KeyIndex::hash_loaded`] hashes them.
        loaded: Mutex<Vec<LoadedKeys>>,
        ordered: Box<SkipList<Bytes, VersionChain>>,
    }

    /// The keys one recovery thread created, with their hashes, waiting to be put into the
    /// hash index ([`KeyIndex::hash_loaded`]); scan-only keys are left out.
    #[derive(Default)]
    pub(crate) struct LoadedKeys(Vec<(u64, ChainRef)>);

    /// Pins the hash index for point reads: the chains it returns stay valid while it lives.
    pub(crate) struct IndexGuard<'i>(papaya::LocalGuard<'i>);

    /// A counted handle on one key's skiplist entry: it keeps the key and its chain alive,
    /// even after the entry is removed from the index, until the last handle is dropped.
    ///
    /// Handles live only inside the database's shared state (the hash index, the
    /// collector's queues, the reaper's heap, and the commit path while it runs), all of
    /// which are dropped before the skiplist (`Shared` declares its index last; `KeyIndex`
    /// declares the skiplist last), and the skiplist never moves while they live (it is
    /// boxed, so moving the index or the shared state does not move it). That is the
    /// invariant that lets a handle be `'static`.
    pub(crate) struct ChainRef(Option<RefEntry<'static, Bytes, VersionChain>>);

    impl ChainRef {
        /// Takes over the count of `entry`, an entry of `ordered`.
        fn new(entry: RefEntry<'_, Bytes, VersionChain>) -> ChainRef {
            // SAFETY: the only thing the lifetime protects is the skiplist `entry` points
            // into: a `RefEntry` keeps a reference to its skiplist and counts its node. Every
            // `ChainRef` is dropped before that skiplist (see the type's documentation), so
            // the skiplist outlives the handle, as the shorter lifetime required.
            let entry = unsafe {
                std::mem::transmute::<
                    RefEntry<'_, Bytes, VersionChain>,
                    RefEntry<'static, Bytes, VersionChain>,
                >(entry)
            };
            ChainRef(Some(entry))
        }

        /// Takes the handle's count, leaving a handle that holds nothing: it may only be
        /// dropped.
        fn take(&mut self) -> ChainRef {
            ChainRef(self.0.take())
        }

        fn entry(&self) -> &RefEntry<'static, Bytes, VersionChain> {
            match &self.0 {
                Some(entry) => entry,
                None => unreachable!("a handle holds its entry until it is dropped"),
            }
        }

        /// The key.
        pub(crate) fn key(&self) -> &Bytes {
            self.entry().key()
        }

        /// Whether `self` and `other` are handles on the same chain.
        pub(crate) fn same_chain(&self, other: &VersionChain) -> bool {
            std::ptr::eq(&**self, other)
        }
    }

    impl Deref for ChainRef {
        type Target = VersionChain;

        fn deref(&self) -> &VersionChain {
            self.entry().value()
        }
    }

    impl Clone for ChainRef {
        fn clone(&self) -> ChainRef {
            ChainRef(Some(self.entry().clone()))
        }
    }

    impl Drop for ChainRef {
        fn drop(&mut self) {
            if let Some(entry) = self.0.take() {
                // Pins only if this was the last count, to hand the entry to the epoch.
                entry.release_with_pin(crate::sync::epoch::pin);
            }
        }
    }

    impl KeyIndex {
        pub(crate) fn new(scan_only: Option<ScanOnlyKeys>) -> KeyIndex {
            KeyIndex {
                key_hasher: KeyHasher::default(),
                scan_only,
                hashed: papaya::HashMap::builder()
                    .hasher(StoredHash)
                    .collector(seize::Collector::new().batch_size(RETIRE_BATCH))
                    .build(),
                loaded: Mutex::new(Vec::new()),
                ordered: Box::new(SkipList::new(crate::sync::epoch::default_collector().clone())),
            }
        }

        pub(crate) fn guard(&self) -> IndexGuard<'_> {
            IndexGuard(self.hashed.guard())
        }

        /// Whether `key` is in the hash index (every key is in the skiplist).
        fn hashes(&self, key: &[u8]) -> bool {
            !self.scan_only.is_some_and(|scan_only| scan_only(key))
        }

        /// The chain of `key`: through the hash index, or for a scan-only key through the
        /// skiplist.
        pub(crate) fn get<'g>(
            &'g self,
            key: &[u8],
            index_guard: &'g IndexGuard<'_>,
            guard: &'g Guard,
        ) -> Option<&'g VersionChain> {
            if self.hashes(key) {
                self.hashed.get(&self.probe(key), &index_guard.0).map(|chain| &**chain)
            } else {
                self.ordered.get(key, guard).map(|entry| entry.value())
            }
        }

        /// `key` with its hash, to look it up in the hash index.
        fn probe<'k>(&self, key: &'k [u8]) -> Probe<'k> {
            Probe { hash: self.key_hasher.hash_one(key), key }
        }

        /// A new handle on the chain of `key`.
        pub(crate) fn get_ref(
            &self,
            key: &[u8],
            index_guard: &IndexGuard<'_>,
            guard: &Guard,
        ) -> Option<ChainRef> {
            if self.hashes(key) {
                self.hashed.get(&self.probe(key), &index_guard.0).cloned()
            } else {
                self.ordered.get(key, guard).and_then(|entry| entry.pin()).map(ChainRef::new)
            }
        }

        /// The chain of `key`, created empty (in both indexes) if the index holds none; and
        /// whether this call created it. Any thread may call it, racing with itself and
        /// with removals: callers racing on one key get the same chain, but a removal under
        /// the sequencer may unlink the chain returned at any moment, so a committer checks
        /// [`KeyIndex::is_linked`] under the sequencer before it installs a version.
        ///
        /// A hash-index entry may be stale: a caller that found a skiplist entry an instant
        /// before a removal unlinked it may put it back into the hash index after the
        /// removal took it out. Such an entry points at a dead chain (removals take only
        /// chains whose newest version is a tombstone no reader can see past), so reads
        /// through it find nothing, as they should; this call drops it when it meets it.
        /// Once a chain holds a committed version, the hash index maps its key to it:
        /// the version was installed into a chain this call returned linked, after its
        /// hash-index entry was in place, and only removals of unlinked chains or of dead
        /// ones change that entry.
        ///
        /// A scan-only key goes into the skiplist alone; of the callers that race to create
        /// it, the one that claims the new chain first created it.
        pub(crate) fn get_or_insert(&self, key: &Bytes, guard: &Guard) -> (ChainRef, bool) {
            if !self.hashes(key.as_slice()) {
                let chain = self.ordered_get_or_insert(key, guard);
                let created = chain.claim_creation();
                return (chain, created);
            }
            let hashed = self.hashed.guard();
            let probe = self.probe(key.as_slice());
            if let Some(held) = self.hashed.get(&probe, &hashed) {
                if !held.entry().is_removed() && !held.is_forgotten() {
                    return (held.clone(), false);
                }
                let stale = held.clone();
                let _ = self.hashed.remove_if(&probe, |_, held| held.same_chain(&stale), &hashed);
            }
            let chain = self.ordered_get_or_insert(key, guard);
            let stored = HashedKey { hash: probe.hash, key: key.clone() };
            match self.hashed.try_insert(stored, chain.clone(), &hashed) {
                // One caller's insert succeeds per chain: that caller created it. A stale
                // chain put back (see above) is not new: it has versions.
                Ok(_) => {
                    let created = chain.head_ptr(guard).is_null();
                    (chain, created)
                }
                Err(occupied) => (occupied.current.clone(), false),
            }
        }

        /// The skiplist's chain of `key`, created empty if it holds none; a forgotten
        /// chain met on the way is unlinked first (see the module's documentation).
        fn ordered_get_or_insert(&self, key: &Bytes, guard: &Guard) -> ChainRef {
            loop {
                let entry = self.ordered.get_or_insert(key.clone(), VersionChain::new(), guard);
                if !entry.value().is_forgotten() {
                    return ChainRef::new(entry);
                }
                // Unlinked once, by this thread or the collector; the next round finds
                // the key absent, or a new chain some other caller inserted meanwhile.
                entry.remove(guard);
            }
        }

        /// The chain of `key` in the skiplist alone, found or created empty, and whether
        /// this call created it; a chain it creates for a hashed key goes to `loaded`, with
        /// the key's hash. Recovery only, on an index nobody else uses yet: it fills the
        /// skiplist (from several threads, each with its own keys), then the hash index
        /// from what the threads hand over ([`KeyIndex::add_loaded`],
        /// [`KeyIndex::hash_loaded`]), rather than growing the hash table (and moving every
        /// entry) a size at a time as keys arrive.
        pub(crate) fn load(
            &self,
            key: Bytes,
            guard: &Guard,
            loaded: &mut LoadedKeys,
        ) -> (ChainRef, bool) {
            let hashed = self.hashes(key.as_slice());
            let hash = if hashed { self.key_hasher.hash_one(key.as_slice()) } else { 0 };
            let chain = ChainRef::new(self.ordered.get_or_insert(key, VersionChain::new(), guard));
            let created = chain.claim_creation();
            if created && hashed {
                loaded.0.push((hash, chain.clone()));
            }
            (chain, created)
        }

        /// The chain of `key` in the skiplist, if any: [`KeyIndex::get_ref`] while recovery
        /// fills the index (before [`KeyIndex::hash_loaded`]).
        pub(crate) fn loaded(&self, key: &[u8], guard: &Guard) -> Option<ChainRef> {
            self.ordered.get(key, guard).and_then(|entry| entry.pin()).map(ChainRef::new)
        }

        /// Takes the keys a recovery thread created, for [`KeyIndex::hash_loaded`].
        pub(crate) fn add_loaded(&self, loaded: LoadedKeys) {
            if !loaded.0.is_empty() {
                self.loaded.lock().push(loaded);
            }
        }

        /// Puts every key recovery created ([`KeyIndex::load`], handed over with
        /// [`KeyIndex::add_loaded`]) into the hash index, once every thread that created
        /// keys is done: the table is sized once for all of them, and `threads` threads fill
        /// it. Recovery only, before the index is shared.
        ///
        /// An insert costs two cache misses where its key's slot lies in the table (the
        /// slot's metadata byte and its pointer, in two arrays), at a random place for each
        /// key; a million keys' table is far larger than the caches. So the keys are first
        /// sorted, where they were handed over, by the window of the table their slots lie in
        /// ([`slot_window`]); each thread then inserts the keys of a range of windows, one
        /// window after the other, which stay in cache while they fill. Where a key lands is
        /// the table's business: the sort only orders the inserts, so a table laid out
        /// otherwise costs speed, never correctness.
        pub(crate) fn hash_loaded(&self, threads: usize) {
            debug_assert!(self.hashed.is_empty(), "the hash index is filled once, from empty");
            let mut loaded = std::mem::take(&mut *self.loaded.lock());
            let keys: usize = loaded.iter().map(|keys| keys.0.len()).sum();
            if keys == 0 {
                return;
            }
            self.hashed.reserve(keys, &self.hashed.guard());
            let windows = table_slots(keys) / WINDOW_SLOTS;
            let threads = threads.clamp(1, (windows / HASH_WINDOWS_PER_THREAD_MIN).max(1));
            if windows < HASH_WINDOWS_SORTED_MIN {
                self.insert_loaded(loaded.iter_mut().map(|keys| keys.0.as_mut_slice()));
                return;
            }
            let window = |(hash, _): &(u64, ChainRef)| slot_window(*hash, windows);
            // Runs of keys, each sorted by one thread: every thread sorts about as many.
            let run_len = keys.div_ceil(threads);
            let mut runs: Vec<&mut [(u64, ChainRef)]> =
                loaded.iter_mut().flat_map(|keys| keys.0.chunks_mut(run_len)).collect();
            let per_thread = runs.len().div_ceil(threads);
            each_on_a_thread(runs.chunks_mut(per_thread), |runs| {
                for run in runs {
                    run.sort_unstable_by_key(window);
                }
            });
            // Thread `t` inserts the keys of windows `t * windows / threads` up to the next
            // thread's first: from each sorted run, the stretch that holds those windows.
            let mut stretches: Vec<Vec<&mut [(u64, ChainRef)]>> =
                (0..threads).map(|_| Vec::with_capacity(runs.len())).collect();
            for run in runs {
                let mut rest = run;
                for (thread, stretch) in stretches.iter_mut().enumerate() {
                    let end = (thread + 1) * windows / threads;
                    let below = rest.partition_point(|key| window(key) < end);
                    let (mine, after) = std::mem::take(&mut rest).split_at_mut(below);
                    stretch.push(mine);
                    rest = after;
                }
            }
            each_on_a_thread(stretches, |stretch| self.insert_loaded(stretch));
            debug_assert_eq!(self.hashed.len(), keys, "every created key, once");
        }

        /// Inserts the keys of `stretches` into the hash index, taking their handles (what
        /// is left behind holds nothing). Nothing else inserts meanwhile, so every insert
        /// adds its key.
        fn insert_loaded<'k>(
            &self,
            stretches: impl IntoIterator<Item = &'k mut [(u64, ChainRef)]>,
        ) {
            let hashed = self.hashed.guard();
            for stretch in stretches {
                for at in 0..stretch.len() {
                    // The key is copied from its skiplist entry: start loading the entry of
                    // a key a few inserts ahead, so that its miss overlaps these inserts.
                    if let Some((_, ahead)) = stretch.get(at + PREFETCH_AHEAD) {
                        let key = std::ptr::from_ref(ahead.key()).cast::<u8>();
                        crate::chain::prefetch(key);
                        crate::chain::prefetch(key.wrapping_add(std::mem::size_of::<Bytes>() - 1));
                    }
                    let Some((hash, chain)) = stretch.get_mut(at) else { break };
                    let chain = chain.take();
                    let stored = HashedKey { hash: *hash, key: chain.key().clone() };
                    self.hashed.insert(stored, chain, &hashed);
                }
            }
        }

        /// How many keys the hash index holds.
        #[cfg(test)]
        pub(crate) fn hashed_len_for_tests(&self) -> usize {
            self.hashed.len()
        }

        /// Whether `chain` is still in the index and not forgotten. Stable under the
        /// sequencer's lock, which every removal and every forgetting holds.
        pub(crate) fn is_linked(&self, chain: &ChainRef) -> bool {
            !chain.is_forgotten() && !chain.entry().is_removed()
        }

        /// Unlinks a chain the collector forgot (under the sequencer's lock, before) from
        /// both structures, whichever of them still holds it: any thread, no lock. Another
        /// thread may be unlinking it too ([`KeyIndex::get_or_insert`]); each structure
        /// removes it once, and a new chain of the same key is never touched.
        pub(crate) fn unlink_forgotten(&self, chain: &ChainRef, guard: &Guard) {
            debug_assert!(chain.is_forgotten(), "only forgotten chains are unlinked unlocked");
            if self.hashes(chain.key().as_slice()) {
                self.unhash(chain);
            }
            chain.entry().remove(guard);
        }

        /// Takes `chain`'s entry out of the hash index if the index still maps its key to
        /// it (never a newer chain of the same key); returns whether it did.
        fn unhash(&self, chain: &ChainRef) -> bool {
            let hashed = self.hashed.guard();
            let probe = self.probe(chain.key().as_slice());
            let removed = self.hashed.remove_if(&probe, |_, held| held.same_chain(chain), &hashed);
            matches!(removed, Ok(Some(_)))
        }

        /// Removes `chain` if the index still maps its key to it. Commit sequencer only.
        ///
        /// The hash index forgets it first (its handle is released when papaya reclaims the
        /// entry, after every reader pinned on it has moved on), then the skiplist unlinks
        /// it; the entry is freed when the last handle is gone and the epoch allows. A
        /// scan-only key's chain is only unlinked.
        pub(crate) fn remove(&self, chain: &ChainRef, guard: &Guard) -> bool {
            if !self.hashes(chain.key().as_slice()) {
                return chain.entry().remove(guard);
            }
            self.unhash(chain) && chain.entry().remove(guard)
        }

        /// Walks the first `limit` keys in `bounds` (in `direction`) under one guard, without
        /// touching reference counts, starting each chain's walk of its versions (loading its
        /// head, which sits in the skiplist entry itself) as it goes, and hands the batch to
        /// `read`. The loads `read` makes next are independent of one another, so their cache
        /// misses overlap instead of each waiting on the one before. Walking forward, it also
        /// prefetches the entries ahead that each entry's tower links to
        /// (`prefetch_successors`), so the walk's own misses overlap too.
        pub(crate) fn batch<R>(
            &self,
            bounds: KeyBounds<'_>,
            direction: Direction,
            limit: usize,
            guard: &Guard,
            read: impl FnOnce(&mut [ChainWalk<'_>]) -> R,
        ) -> R {
            fn start<'a: 'g, 'g>(
                entry: Entry<'a, 'g, Bytes, VersionChain>,
                guard: &'g Guard,
            ) -> ChainWalk<'g> {
                let nodes = entry.value().nodes(guard);
                nodes.prefetch();
                (entry.key(), nodes)
            }
            let range = self.ordered.range::<[u8], _>(bounds, guard);
            let start = |entry| start(entry, guard);
            debug_assert!(limit <= BATCH_KEYS_MAX, "a batch stays on the stack");
            let mut batch = Batch::new();
            match direction {
                Direction::Forward => batch.extend(range.take(limit).map(|entry| {
                    prefetch_successors(&entry);
                    start(entry)
                })),
                // A backward step is a search from the top (the towers only point forward),
                // so there is nothing ahead to prefetch.
                Direction::Reverse => batch.extend(range.rev().take(limit).map(start)),
            }
            read(&mut batch)
        }

        /// Visits the keys in `bounds` with their chains, in key order, until `visit` breaks.
        pub(crate) fn scan(
            &self,
            bounds: KeyBounds<'_>,
            guard: &Guard,
            mut visit: impl FnMut(&Bytes, &VersionChain) -> ControlFlow<()>,
        ) {
            for entry in self.ordered.range::<[u8], _>(bounds, guard) {
                if visit(entry.key(), entry.value()).is_break() {
                    return;
                }
            }
        }
    }

    /// Where crossbeam-skiplist keeps the parts of an entry that `prefetch_successors` reads.
    ///
    /// An entry is a `crossbeam_skiplist::base::Node<Bytes, VersionChain>`, private to that
    /// crate but declared `#[repr(C)]` with its fields in this order: the value, the key, one
    /// word that holds the reference count and, in its low `HEIGHT_BITS` bits, the tower's
    /// height minus one (fixed at allocation), and the tower: `height` tagged pointers (one word
    /// each) to the next entry at each level, allocated with the node. The version is pinned
    /// with `=` in the workspace's Cargo.toml, and the test
    /// `node_layout_is_the_one_prefetch_successors_reads` checks all of this against real
    /// entries, so an upgrade that changes it fails a test instead of reading the wrong words.
    mod node_layout {
        use crate::bytes::Bytes;
        use crate::chain::VersionChain;
        use crate::sync::AtomicUsize;

        const WORD: usize = std::mem::size_of::<AtomicUsize>();
        const _: () = assert!(std::mem::align_of::<AtomicUsize>() == WORD);

        /// The value comes first, at offset 0; the key follows it.
        pub(super) const KEY: usize =
            std::mem::size_of::<VersionChain>().next_multiple_of(std::mem::align_of::<Bytes>());
        pub(super) const REFS_AND_HEIGHT: usize =
            (KEY + std::mem::size_of::<Bytes>()).next_multiple_of(WORD);
        pub(super) const TOWER: usize = REFS_AND_HEIGHT + WORD;
        pub(super) const HEIGHT_BITS: u32 = 5;
        pub(super) const LINK: usize = WORD;
    }

    /// The words of an entry's node that `prefetch_successors` reads.
    struct NodeWords<'e> {
        node: *const u8,
        height: usize,
        _entry: std::marker::PhantomData<&'e ()>,
    }

    impl<'e> NodeWords<'e> {
        fn of(entry: &'e Entry<'_, '_, Bytes, VersionChain>) -> NodeWords<'e> {
            // The value is the node's first field, so its address is the node's. A pointer to
            // the whole node (not only to the value, which is all `entry.value()` may reach)
            // takes back the provenance crossbeam-epoch exposed when it stored the node's
            // address in the links that lead to it (its atomics hold addresses as integers).
            let address = std::ptr::from_ref(entry.value()).addr();
            debug_assert_eq!(
                std::ptr::from_ref(entry.key()).addr(),
                address + node_layout::KEY,
                "the entry's layout is the one node_layout describes"
            );
            let node = std::ptr::with_exposed_provenance(address);
            // SAFETY: the word at REFS_AND_HEIGHT lies inside every node (see `node_layout`).
            let refs_and_height = unsafe { Self::word(node, node_layout::REFS_AND_HEIGHT) };
            let height = (refs_and_height & ((1 << node_layout::HEIGHT_BITS) - 1)) + 1;
            NodeWords { node, height, _entry: std::marker::PhantomData }
        }

        /// The word at `offset` in the node at `node`.
        ///
        /// # Safety
        /// `node` points to the node of an entry that lives for the call, and the word at
        /// `offset` lies inside that node, below its tower's height.
        unsafe fn word(node: *const u8, offset: usize) -> usize {
            // SAFETY: the entry keeps its node allocated while it lives, and the word lies
            // inside it (the caller's contract); the node's words at these offsets are aligned
            // atomics, written and read only atomically, as here.
            let word = unsafe { &*node.wrapping_add(offset).cast::<AtomicUsize>() };
            word.load(Ordering::Relaxed)
        }

        /// The reference count and the height, as one word.
        #[cfg(test)]
        fn refs_and_height(&self) -> usize {
            // SAFETY: as in `of`.
            unsafe { Self::word(self.node, node_layout::REFS_AND_HEIGHT) }
        }

        /// The tower's link at `level` (below the height): a tagged address.
        fn link(&self, level: usize) -> usize {
            assert!(level < self.height, "a tower has `height` links");
            // SAFETY: the tower holds `height` words after REFS_AND_HEIGHT, and `level` is below
            // it (asserted); `self` borrows the entry, which lives meanwhile.
            unsafe { Self::word(self.node, node_layout::TOWER + level * node_layout::LINK) }
        }
    }

    /// Asks the CPU to start loading the entries that `entry`'s tower links to above level 0:
    /// the next entry of height at least 2, of height at least 3, and so on, which lie about 2,
    /// 4, 8... entries ahead. A forward walk reaches each entry through the one before it, one
    /// dependent cache miss after another; with these in flight, the entries of height 2 and
    /// more are mostly in cache by the time the walk gets to them, so their misses overlap with
    /// the walk's instead of following them (docs/benchmarks.md, "Scans"). A hint only: what
    /// is loaded is never dereferenced.
    fn prefetch_successors(entry: &Entry<'_, '_, Bytes, VersionChain>) {
        let words = NodeWords::of(entry);
        for level in 1..words.height {
            // A tagged address: its low bits may mark a removal, which moves it by less than a
            // cache line. It may lead to an entry removed since, which a prefetch does not mind.
            crate::chain::prefetch(std::ptr::without_provenance::<u8>(words.link(level)));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::sync::epoch;

        /// The scan-only keys of the tests: those that start with "s".
        fn starts_with_s(key: &[u8]) -> bool {
            key.starts_with(b"s")
        }

        #[test]
        fn racing_inserts_of_one_key_get_one_chain_and_one_of_them_created_it() {
            racing_inserts_get_one_chain_and_one_creator(&KeyIndex::new(None), "k");
        }

        #[test]
        fn racing_inserts_of_one_scan_only_key_get_one_chain_and_one_of_them_created_it() {
            let index = KeyIndex::new(Some(starts_with_s));
            racing_inserts_get_one_chain_and_one_creator(&index, "s");
            assert!(index.hashed.is_empty(), "kept out of the hash index");
            assert_eq!(index.ordered.len(), 1);
        }

        fn racing_inserts_get_one_chain_and_one_creator(index: &KeyIndex, key: &str) {
            let key = Bytes::from(key);
            let results: Vec<(ChainRef, bool)> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| index.get_or_insert(&key, &epoch::pin())))
                    .collect();
                racers.into_iter().map(|racer| racer.join().expect("no panic")).collect()
            });
            let first = &results[0].0;
            assert!(results.iter().all(|(chain, _)| chain.same_chain(first)), "one chain");
            assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "one creator");
            let guard = epoch::pin();
            assert!(!index.get_or_insert(&key, &guard).1, "found, not created");
        }

        #[test]
        fn a_removed_chain_put_back_into_the_hash_index_is_dropped_for_a_new_one() {
            // The race `get_or_insert` documents, played in order: a racer found the skiplist
            // entry, a removal took the chain out of both indexes, the racer put it back into
            // the hash index.
            let index = KeyIndex::new(None);
            let guard = epoch::pin();
            let key = Bytes::from("k");
            let (old, _) = index.get_or_insert(&key, &guard);
            assert!(index.remove(&old, &guard));
            let stored = HashedKey { hash: index.probe(b"k").hash, key: key.clone() };
            assert!(index.hashed.try_insert(stored, old.clone(), &index.hashed.guard()).is_ok());
            assert!(index
                .get(b"k", &index.guard(), &guard)
                .is_some_and(|held| old.same_chain(held)));

            let (new, created) = index.get_or_insert(&key, &guard);
            assert!(created, "a new chain");
            assert!(!new.same_chain(&old));
            assert!(index.is_linked(&new) && !index.is_linked(&old));
            assert!(index
                .get(b"k", &index.guard(), &guard)
                .is_some_and(|held| new.same_chain(held)));
        }

        #[test]
        fn scan_only_keys_are_read_and_removed_through_the_skiplist_alone() {
            let index = KeyIndex::new(Some(starts_with_s));
            let guard = epoch::pin();
            let (scanned, created) = index.get_or_insert(&Bytes::from("s1"), &guard);
            let (hashed, _) = index.get_or_insert(&Bytes::from("h1"), &guard);
            assert!(created);
            assert_eq!(index.hashed.len(), 1, "only the other key is hashed");
            let found = index
                .get(b"s1", &index.guard(), &guard)
                .is_some_and(|held| scanned.same_chain(held));
            assert!(found);
            let handle = index.get_ref(b"s1", &index.guard(), &guard).expect("linked");
            assert!(handle.same_chain(&scanned));
            assert!(index.get(b"s2", &index.guard(), &guard).is_none());
            assert!(index.remove(&scanned, &guard));
            assert!(!index.is_linked(&scanned) && index.is_linked(&hashed));
            assert!(index.get(b"s1", &index.guard(), &guard).is_none());
            assert!(index.get_ref(b"s1", &index.guard(), &guard).is_none());
            assert!(!index.remove(&scanned, &guard), "removed once");
            let (again, created) = index.get_or_insert(&Bytes::from("s1"), &guard);
            assert!(created && !again.same_chain(&scanned), "a new chain after the removal");
        }

        /// The words `prefetch_successors` reads are what `node_layout` says they are: for
        /// every entry of a real skiplist, a height, a reference count of at least one per
        /// level the node is linked at, and at each level a link to the next entry that tall.
        #[test]
        fn node_layout_is_the_one_prefetch_successors_reads() {
            let index = KeyIndex::new(None);
            let guard = epoch::pin();
            for key in 0..2000u32 {
                let _ = index.get_or_insert(&Bytes::copy_from(&key.to_le_bytes()), &guard);
            }
            let entries: Vec<_> = index.ordered.iter(&guard).collect();
            assert_eq!(entries.len(), 2000);
            let words: Vec<NodeWords<'_>> = entries.iter().map(NodeWords::of).collect();
            let address = |i: usize| std::ptr::from_ref(entries[i].value()).addr();
            let tag = std::mem::align_of::<usize>() - 1;
            assert!(words.iter().any(|w| w.height >= 4), "some towers are tall");
            for (i, w) in words.iter().enumerate() {
                assert!((1..=1 << node_layout::HEIGHT_BITS).contains(&w.height));
                assert!(w.refs_and_height() >> node_layout::HEIGHT_BITS >= w.height);
                for level in 0..w.height {
                    let next = (i + 1..words.len()).find(|&j| words[j].height > level);
                    assert_eq!(
                        w.link(level) & !tag,
                        next.map_or(0, address),
                        "entry {i} level {level}"
                    );
                }
            }
        }
    }
}

#[cfg(loom)]
mod model {
    use std::collections::BTreeMap;
    use std::ops::Deref;
    use std::sync::Arc;

    use super::*;
    use crate::sync::Mutex;

    /// Nothing: a key loaded is in the one map at once.
    #[derive(Default)]
    pub(crate) struct LoadedKeys;

    /// A `Mutex<BTreeMap>` standing in for both indexes under loom.
    pub(crate) struct KeyIndex {
        chains: Mutex<BTreeMap<Bytes, ChainRef>>,
    }

    /// Nothing to pin: the map hands out counted handles.
    pub(crate) struct IndexGuard<'i>(std::marker::PhantomData<&'i ()>);

    /// A counted handle on a key and its chain.
    #[derive(Clone)]
    pub(crate) struct ChainRef(Arc<(Bytes, VersionChain)>);

    impl ChainRef {
        pub(crate) fn key(&self) -> &Bytes {
            &self.0 .0
        }

        pub(crate) fn same_chain(&self, other: &VersionChain) -> bool {
            std::ptr::eq(&**self, other)
        }
    }

    impl Deref for ChainRef {
        type Target = VersionChain;

        fn deref(&self) -> &VersionChain {
            &self.0 .1
        }
    }

    impl KeyIndex {
        /// Every key is in the one map, scan-only or not.
        pub(crate) fn new(_scan_only: Option<ScanOnlyKeys>) -> KeyIndex {
            KeyIndex { chains: Mutex::new(BTreeMap::new()) }
        }

        pub(crate) fn guard(&self) -> IndexGuard<'_> {
            IndexGuard(std::marker::PhantomData)
        }

        pub(crate) fn get(
            &self,
            key: &[u8],
            _index_guard: &IndexGuard<'_>,
            _guard: &Guard,
        ) -> Option<ChainRef> {
            self.chains.lock().get(key).cloned()
        }

        pub(crate) fn get_ref(
            &self,
            key: &[u8],
            index_guard: &IndexGuard<'_>,
            guard: &Guard,
        ) -> Option<ChainRef> {
            self.get(key, index_guard, guard)
        }

        pub(crate) fn get_or_insert(&self, key: &Bytes, _guard: &Guard) -> (ChainRef, bool) {
            let mut chains = self.chains.lock();
            if let Some(held) = chains.get(key.as_slice()).filter(|held| !held.is_forgotten()) {
                return (held.clone(), false);
            }
            let chain = ChainRef(Arc::new((key.clone(), VersionChain::new())));
            chains.insert(key.clone(), chain.clone());
            (chain, true)
        }

        /// One map: the key is in it at once, and `loaded` stays empty.
        pub(crate) fn load(
            &self,
            key: Bytes,
            guard: &Guard,
            _loaded: &mut LoadedKeys,
        ) -> (ChainRef, bool) {
            self.get_or_insert(&key, guard)
        }

        pub(crate) fn add_loaded(&self, _loaded: LoadedKeys) {}

        pub(crate) fn loaded(&self, key: &[u8], guard: &Guard) -> Option<ChainRef> {
            self.get(key, &self.guard(), guard)
        }

        /// One map: nothing to fill.
        pub(crate) fn hash_loaded(&self, _threads: usize) {}

        pub(crate) fn is_linked(&self, chain: &ChainRef) -> bool {
            !chain.is_forgotten()
                && self
                    .chains
                    .lock()
                    .get(chain.key().as_slice())
                    .is_some_and(|held| held.same_chain(chain))
        }

        pub(crate) fn unlink_forgotten(&self, chain: &ChainRef, guard: &Guard) {
            self.remove(chain, guard);
        }

        pub(crate) fn remove(&self, chain: &ChainRef, _guard: &Guard) -> bool {
            let mut chains = self.chains.lock();
            match chains.get(chain.key().as_slice()) {
                Some(held) if held.same_chain(chain) => {
                    chains.remove(chain.key().as_slice()).is_some()
                }
                _ => false,
            }
        }

        fn collect(&self, bounds: KeyBounds<'_>) -> Vec<ChainRef> {
            self.chains.lock().range::<[u8], _>(bounds).map(|(_, chain)| chain.clone()).collect()
        }

        pub(crate) fn batch<R>(
            &self,
            bounds: KeyBounds<'_>,
            direction: Direction,
            limit: usize,
            guard: &Guard,
            read: impl FnOnce(&mut [ChainWalk<'_>]) -> R,
        ) -> R {
            let mut held = self.collect(bounds);
            if direction == Direction::Reverse {
                held.reverse();
            }
            held.truncate(limit);
            let mut batch: Batch<'_> =
                held.iter().map(|chain| (chain.key(), chain.nodes(guard))).collect();
            read(&mut batch)
        }

        pub(crate) fn scan(
            &self,
            bounds: KeyBounds<'_>,
            _guard: &Guard,
            mut visit: impl FnMut(&Bytes, &VersionChain) -> ControlFlow<()>,
        ) {
            for chain in self.collect(bounds) {
                if visit(chain.key(), &chain).is_break() {
                    return;
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::epoch;

    #[test]
    fn a_removed_chain_stays_readable_through_a_handle_until_the_handle_goes() {
        let index = KeyIndex::new(None);
        let guard = epoch::pin();
        let (chain, created) = index.get_or_insert(&Bytes::from("k"), &guard);
        assert!(created);
        assert!(index.get(b"k", &index.guard(), &guard).is_some_and(|held| chain.same_chain(held)));
        assert!(index.is_linked(&chain));
        assert!(index.remove(&chain, &guard));
        assert!(!index.is_linked(&chain));
        assert!(index.get(b"k", &index.guard(), &guard).is_none());
        assert!(!index.remove(&chain, &guard), "removed once");
        assert_eq!(chain.key(), &Bytes::from("k"));
        assert!(chain.head(&guard).is_none());
    }

    /// Loads `keys` keys (every tenth scan-only) as three recovery threads would, each
    /// creating its share (the third none), hashes them with `threads` threads, and checks
    /// that the hash index maps each point key, once, to the skiplist's chain.
    fn load_and_hash(keys: u32, threads: usize) {
        fn scan_only(key: &[u8]) -> bool {
            key.starts_with(b"scan/")
        }
        let index = KeyIndex::new(Some(scan_only));
        let guard = epoch::pin();
        let key = |n: u32| {
            let kind = if n % 10 == 0 { "scan" } else { "point" };
            Bytes::copy_from(format!("{kind}/{n:08}").as_bytes())
        };
        let mut loaders: [LoadedKeys; 3] = Default::default();
        for n in 0..keys {
            let (_, created) = index.load(key(n), &guard, &mut loaders[(n % 2) as usize]);
            assert!(created);
        }
        if keys > 1 {
            assert!(!index.load(key(1), &guard, &mut loaders[2]).1, "found, not created again");
        }
        assert!(index.loaded(b"point/none", &guard).is_none());
        assert!(index.get(b"point/00000001", &index.guard(), &guard).is_none(), "not yet");
        for loaded in loaders {
            index.add_loaded(loaded);
        }
        index.hash_loaded(threads);
        let index_guard = index.guard();
        let point_keys = (0..keys).filter(|n| n % 10 != 0).count();
        assert_eq!(index.hashed_len_for_tests(), point_keys, "the point keys, each once");
        let chains = (0..keys).filter(|&n| {
            let key = key(n);
            let found = index.get(key.as_slice(), &index_guard, &guard);
            let ordered = index.loaded(key.as_slice(), &guard);
            found.zip(ordered).is_some_and(|(found, ordered)| ordered.same_chain(found))
        });
        assert_eq!(chains.count(), keys as usize, "every key reaches its one chain");
        assert!(index.get(b"point/none", &index_guard, &guard).is_none());
    }

    #[test]
    fn a_few_keys_loaded_into_the_skiplist_are_hashed_at_once() {
        load_and_hash(3000, 4);
        load_and_hash(0, 4);
    }

    #[test]
    fn many_keys_loaded_into_the_skiplist_are_hashed_by_window_by_several_threads() {
        // Enough point keys for four threads, each with its windows of the table.
        let keys = 70_000;
        let windows = lock_free::table_slots(63_000) / lock_free::WINDOW_SLOTS;
        assert!(windows >= 4 * lock_free::HASH_WINDOWS_PER_THREAD_MIN, "{windows} windows");
        load_and_hash(keys, 4);
        load_and_hash(keys, 1);
    }

    #[test]
    fn scans_see_keys_in_order_from_either_end() {
        let index = KeyIndex::new(None);
        let guard = epoch::pin();
        for key in ["b", "a", "c"] {
            let _ = index.get_or_insert(&Bytes::from(key), &guard);
        }
        let all = (Bound::Unbounded, Bound::Unbounded);
        let keys = |direction| {
            index.batch(all, direction, 10, &guard, |walks| {
                walks.iter().map(|(key, _)| (*key).clone()).collect::<Vec<_>>()
            })
        };
        assert_eq!(
            keys(Direction::Forward),
            [Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
        );
        assert_eq!(
            keys(Direction::Reverse),
            [Bytes::from("c"), Bytes::from("b"), Bytes::from("a")]
        );
    }
}
