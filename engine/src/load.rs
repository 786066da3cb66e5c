//! Linking recovered versions into a keyspace that nobody shares yet: the checkpoint's
//! (from several threads at once) and the log's.
//!
//! A commit links its versions under the sequencer's lock, through both indexes. Recovery
//! links a million of them before the database is shared, so it does it the cheap way,
//! with the same outcome:
//!
//! - into the skiplist alone ([`KeyIndex::load`](crate::index::KeyIndex::load)); the hash
//!   index is filled once at the end, sized for every key ([`finish`]);
//! - each [`Loader`] keeps what a commit hands to maintenance under the lock (chains for
//!   the collector, versions with an expiry for the reaper, the counters) and hands it over
//!   once, in [`Loader::finish`];
//! - several loaders may run at once, one per thread, as long as no key is linked by two
//!   of them: each chain then has one writer, as the sequencer's lock would ensure, and the
//!   threads' join orders everything they wrote before the database is shared. (A
//!   checkpoint's keys are in order and each key is whole in one block, so loaders given
//!   disjoint blocks link disjoint keys.)

use crate::bytes::Bytes;
use crate::expiry::Expiry;
use crate::index::{ChainRef, LoadedKeys};
use crate::options::Retention;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::sync::epoch::{Guard, Owned};
use crate::version::VersionNode;

/// The most threads recovery runs at once.
pub(crate) const LOAD_THREADS_MAX: usize = 16;

/// How many threads recovery runs: one per core, at most [`LOAD_THREADS_MAX`]. Asked once:
/// the answer takes reading several files of the cgroup file system.
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(LOAD_THREADS_MAX)
    })
}

/// Links recovered versions into a keyspace not shared yet (see the module doc); one per
/// thread.
pub(crate) struct Loader<'s> {
    shared: &'s Shared,
    gc_queue: Vec<ChainRef>,
    expiries: Vec<Expiry>,
    /// The keys this loader created, for the hash index.
    loaded: LoadedKeys,
    keys: u64,
    versions: u64,
    bytes: u64,
}

impl<'s> Loader<'s> {
    pub(crate) fn new(shared: &'s Shared) -> Loader<'s> {
        Loader {
            shared,
            gc_queue: Vec::new(),
            expiries: Vec::new(),
            loaded: LoadedKeys::default(),
            keys: 0,
            versions: 0,
            bytes: 0,
        }
    }

    /// Links `node` as the newest version of `key`, creating the key's chain if it has
    /// none; a tombstone of a key without a chain is dropped (nothing to hide), as a
    /// commit's is. `node`'s version is above every version the key has.
    pub(crate) fn link(&mut self, key: Bytes, node: Owned<VersionNode>, guard: &Guard) {
        let index = &self.shared.index;
        let tombstone = node.is_tombstone();
        let chain = if tombstone {
            let Some(chain) = index.loaded(key.as_slice(), guard) else { return };
            chain
        } else {
            let key_bytes = key.len() as u64;
            let (chain, created) = index.load(key, guard, &mut self.loaded);
            if created {
                self.keys += 1;
                self.bytes += key_bytes;
            }
            chain
        };
        debug_assert!(node.version() > 0, "only committed versions are linked");
        self.versions += 1;
        self.bytes += node.payload_bytes();
        let expiry = node.has_expiry().then(|| (node.expires_at_ms(), node.version()));
        let had_versions = chain.install(node, guard);
        if let Some((at_ms, version)) = expiry {
            self.expiries.push(Expiry { at_ms, version, chain: chain.clone() });
        }
        // As `Shared::install` does for a commit: a lone tombstone is queued too, so that
        // the collector forgets its key.
        let collectable = had_versions || tombstone;
        if collectable
            && self.shared.options.retention != Retention::KeepAll
            && chain.mark_gc_queued()
        {
            self.gc_queue.push(chain);
        }
    }

    /// Hands what was linked to maintenance and the counters, under the sequencer's lock.
    pub(crate) fn finish(self) {
        self.shared.index.add_loaded(self.loaded);
        let counters = &self.shared.counters;
        Counters::add(&counters.keys, self.keys);
        Counters::add(&counters.versions, self.versions);
        Counters::add(&counters.bytes, self.bytes);
        let mut state = self.shared.sequencer.lock();
        state.gc_queue.extend(self.gc_queue);
        state.expiries.extend(self.expiries);
        state.linked_since_collection += self.versions;
    }
}

/// Ends a load: once every [`Loader`] has finished, fills the hash index from the
/// skiplist, with `threads` threads.
pub(crate) fn finish(shared: &Shared, threads: usize) {
    shared.index.hash_loaded(threads);
}
