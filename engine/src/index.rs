//! The key index: from key bytes to the key's version chain.
//!
//! Two structures reach the same chains:
//! - an ordered, lock-free skiplist (`crossbeam_skiplist::base::SkipList`) for range and
//!   prefix scans, walked under the caller's epoch guard, so a scan pays no reference-count
//!   traffic per key;
//! - a lock-free hash index (papaya) for point reads, so a `get` costs a hash and one or two
//!   cache misses instead of a walk down ~20 skiplist levels.
//!
//! Both are written only by the commit sequencer (insert of a new key, removal of a dead one)
//! and read by everyone without locks. A chain is inserted into both before the commit that
//! creates it becomes visible, and removed from both only when no reader can see any of its
//! versions (see `gc.rs`), so the two never disagree about anything a reader can observe.
//!
//! Under `cfg(loom)` the index is a `Mutex<BTreeMap>` with the same interface: neither
//! crossbeam-skiplist nor papaya is loom-instrumented, and the protocols the models check
//! (chains, the visible version, the horizon) do not depend on the index's internals.

use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use crate::chain::VersionChain;
use crate::sync::epoch::Guard;

/// Which way a scan walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Forward,
    Reverse,
}

/// A chain met by a scan, with the walk of its versions already started.
pub(crate) type ChainWalk<'a> = (&'a VersionChain, crate::chain::Nodes<'a>);

/// Key bounds of a scan.
pub(crate) type KeyBounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

#[cfg(not(loom))]
pub(crate) use lock_free::KeyIndex;

#[cfg(loom)]
pub(crate) use model::KeyIndex;

#[cfg(not(loom))]
mod lock_free {
    use super::*;
    use crossbeam_skiplist::base::SkipList;

    /// Keys up to this many bytes are stored inside the index entries.
    const INLINE_KEY_BYTES_MAX: usize = 30;

    /// A key as the indexes store it: short keys inline, so that comparing one during a
    /// skiplist descent or a hash probe reads the entry itself instead of chasing a pointer to
    /// the key's bytes (one cache miss per skiplist level saved); longer keys share the chain's
    /// buffer. Ordered, compared and hashed exactly as the key's bytes.
    #[derive(Clone)]
    pub(crate) enum IndexKey {
        Inline { len: u8, bytes: [u8; INLINE_KEY_BYTES_MAX] },
        Shared(crate::bytes::Bytes),
    }

    const _: () = assert!(INLINE_KEY_BYTES_MAX <= u8::MAX as usize, "the inline length is a u8");

    impl IndexKey {
        pub(crate) fn new(key: &crate::bytes::Bytes) -> IndexKey {
            let mut bytes = [0; INLINE_KEY_BYTES_MAX];
            match bytes.get_mut(..key.len()) {
                Some(prefix) => {
                    prefix.copy_from_slice(key);
                    IndexKey::Inline { len: key.len() as u8, bytes }
                }
                None => IndexKey::Shared(key.clone()),
            }
        }

        pub(crate) fn as_slice(&self) -> &[u8] {
            match self {
                IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
                IndexKey::Shared(bytes) => bytes,
            }
        }
    }

    impl std::borrow::Borrow<[u8]> for IndexKey {
        fn borrow(&self) -> &[u8] {
            self.as_slice()
        }
    }

    impl PartialEq for IndexKey {
        fn eq(&self, other: &Self) -> bool {
            self.as_slice() == other.as_slice()
        }
    }

    impl Eq for IndexKey {}

    impl PartialOrd for IndexKey {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for IndexKey {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.as_slice().cmp(other.as_slice())
        }
    }

    impl std::hash::Hash for IndexKey {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.as_slice().hash(state);
        }
    }

    type Hasher = foldhash::fast::RandomState;

    /// The ordered index and the hash index over the same chains.
    pub(crate) struct KeyIndex {
        hashed: papaya::HashMap<IndexKey, Arc<VersionChain>, Hasher>,
        ordered: SkipList<IndexKey, Arc<VersionChain>>,
    }

    /// Pins the hash index for point reads: the chains it returns stay valid while it lives.
    pub(crate) struct IndexGuard<'i>(papaya::LocalGuard<'i>);

    type Entry<'a, 'g> = crossbeam_skiplist::base::Entry<'a, 'g, IndexKey, Arc<VersionChain>>;

    impl KeyIndex {
        pub(crate) fn new() -> KeyIndex {
            KeyIndex {
                hashed: papaya::HashMap::builder().hasher(Hasher::default()).build(),
                ordered: SkipList::new(crate::sync::epoch::default_collector().clone()),
            }
        }

        pub(crate) fn guard(&self) -> IndexGuard<'_> {
            IndexGuard(self.hashed.guard())
        }

        /// The chain of `key`, through the hash index.
        pub(crate) fn get<'g>(
            &'g self,
            key: &[u8],
            guard: &'g IndexGuard<'_>,
        ) -> Option<&'g Arc<VersionChain>> {
            self.hashed.get(key, &guard.0)
        }

        /// The chain of `key`, as an owned handle.
        pub(crate) fn get_arc(
            &self,
            key: &[u8],
            guard: &IndexGuard<'_>,
        ) -> Option<Arc<VersionChain>> {
            self.get(key, guard).cloned()
        }

        /// Adds the chain of a key the index does not hold. Commit sequencer only.
        pub(crate) fn insert(&self, chain: Arc<VersionChain>, guard: &Guard) {
            let key = IndexKey::new(chain.key());
            self.ordered.insert(key.clone(), Arc::clone(&chain), guard).release(guard);
            let hashed = self.hashed.guard();
            let previous = self.hashed.insert(key, chain, &hashed);
            debug_assert!(previous.is_none(), "a key's chain is created once");
        }

        /// Removes `chain` if the index still maps its key to it. Commit sequencer only.
        ///
        /// The hash index forgets it first, then the skiplist, whose epoch-deferred release of
        /// its `Arc` keeps the chain alive for every reader pinned before the removal.
        pub(crate) fn remove(&self, chain: &VersionChain, guard: &Guard) -> bool {
            let hashed = self.hashed.guard();
            let removed = self.hashed.remove_if(
                chain.key().as_slice(),
                |_, held| std::ptr::eq(Arc::as_ptr(held), chain),
                &hashed,
            );
            if !matches!(removed, Ok(Some(_))) {
                return false;
            }
            if let Some(entry) = self.ordered.get(chain.key().as_slice(), guard) {
                debug_assert!(
                    std::ptr::eq(Arc::as_ptr(entry.value()), chain),
                    "both indexes hold one chain"
                );
                entry.remove();
            }
            true
        }

        /// Walks the first `limit` keys in `bounds` (in `direction`) under one guard, without
        /// touching reference counts, starting each chain's walk of its versions (loading its
        /// head) as it goes, and hands the batch to `read`. The head loads are independent
        /// of the skiplist's own pointer chase, so their cache misses overlap it, and so do
        /// the loads `read` makes next, instead of each waiting on the one before.
        pub(crate) fn batch<R>(
            &self,
            bounds: KeyBounds<'_>,
            direction: Direction,
            limit: usize,
            guard: &Guard,
            read: impl FnOnce(&mut [ChainWalk<'_>]) -> R,
        ) -> R {
            fn start<'a: 'g, 'g>(entry: Entry<'a, 'g>, guard: &'g Guard) -> ChainWalk<'g> {
                let chain: &'g VersionChain = entry.value();
                (chain, chain.nodes(guard))
            }
            let range = self.ordered.range::<[u8], _>(bounds, guard);
            let start = |entry| start(entry, guard);
            // The range's size hint is unbounded: size the batch up front.
            let mut batch = Vec::with_capacity(limit);
            match direction {
                Direction::Forward => batch.extend(range.take(limit).map(start)),
                Direction::Reverse => batch.extend(range.rev().take(limit).map(start)),
            }
            read(&mut batch)
        }

        /// Visits the chains whose keys fall in `bounds`, in key order, until `visit` breaks.
        pub(crate) fn scan(
            &self,
            bounds: KeyBounds<'_>,
            direction: Direction,
            guard: &Guard,
            mut visit: impl FnMut(&VersionChain) -> ControlFlow<()>,
        ) {
            let range = self.ordered.range::<[u8], _>(bounds, guard);
            let mut walk =
                |entry: crossbeam_skiplist::base::Entry<'_, '_, IndexKey, Arc<VersionChain>>| {
                    visit(entry.value())
                };
            let _ = match direction {
                Direction::Forward => range.map(&mut walk).find(ControlFlow::is_break),
                Direction::Reverse => range.rev().map(&mut walk).find(ControlFlow::is_break),
            };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::bytes::Bytes;

        #[test]
        fn index_keys_order_and_hash_as_their_bytes_inline_or_not() {
            let keys: Vec<Bytes> = [&b""[..], b"a", b"ab", &[0xFF; 30], &[0xFF; 31], &[0x00; 40]]
                .into_iter()
                .map(Bytes::copy_from)
                .collect();
            for a in &keys {
                let index_a = IndexKey::new(a);
                assert_eq!(index_a.as_slice(), a.as_slice());
                assert_eq!(
                    matches!(index_a, IndexKey::Inline { .. }),
                    a.len() <= INLINE_KEY_BYTES_MAX
                );
                for b in &keys {
                    assert_eq!(index_a.cmp(&IndexKey::new(b)), a.cmp(b));
                }
            }
        }
    }
}

#[cfg(loom)]
mod model {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bytes::Bytes;
    use crate::sync::Mutex;

    /// A `Mutex<BTreeMap>` standing in for both indexes under loom.
    pub(crate) struct KeyIndex {
        chains: Mutex<BTreeMap<Bytes, Arc<VersionChain>>>,
    }

    /// Nothing to pin: the map hands out owned `Arc`s.
    pub(crate) struct IndexGuard<'i>(std::marker::PhantomData<&'i ()>);

    impl KeyIndex {
        pub(crate) fn new() -> KeyIndex {
            KeyIndex { chains: Mutex::new(BTreeMap::new()) }
        }

        pub(crate) fn guard(&self) -> IndexGuard<'_> {
            IndexGuard(std::marker::PhantomData)
        }

        pub(crate) fn get(&self, key: &[u8], _guard: &IndexGuard<'_>) -> Option<Arc<VersionChain>> {
            self.chains.lock().get(key).cloned()
        }

        pub(crate) fn get_arc(
            &self,
            key: &[u8],
            guard: &IndexGuard<'_>,
        ) -> Option<Arc<VersionChain>> {
            self.get(key, guard)
        }

        pub(crate) fn insert(&self, chain: Arc<VersionChain>, _guard: &Guard) {
            let previous = self.chains.lock().insert(chain.key().clone(), chain);
            debug_assert!(previous.is_none(), "a key's chain is created once");
        }

        pub(crate) fn remove(&self, chain: &VersionChain, _guard: &Guard) -> bool {
            let mut chains = self.chains.lock();
            match chains.get(chain.key().as_slice()) {
                Some(held) if std::ptr::eq(Arc::as_ptr(held), chain) => {
                    chains.remove(chain.key().as_slice());
                    true
                }
                _ => false,
            }
        }

        pub(crate) fn batch<R>(
            &self,
            bounds: KeyBounds<'_>,
            direction: Direction,
            limit: usize,
            guard: &Guard,
            read: impl FnOnce(&mut [ChainWalk<'_>]) -> R,
        ) -> R {
            let held: Vec<Arc<VersionChain>> = {
                let chains = self.chains.lock();
                let range = chains.range::<[u8], _>(bounds).map(|(_, chain)| Arc::clone(chain));
                match direction {
                    Direction::Forward => range.take(limit).collect(),
                    Direction::Reverse => range.rev().take(limit).collect(),
                }
            };
            let mut batch: Vec<ChainWalk<'_>> =
                held.iter().map(|chain| (&**chain, chain.nodes(guard))).collect();
            read(&mut batch)
        }

        pub(crate) fn scan(
            &self,
            bounds: KeyBounds<'_>,
            direction: Direction,
            _guard: &Guard,
            mut visit: impl FnMut(&VersionChain) -> ControlFlow<()>,
        ) {
            let mut chains: Vec<Arc<VersionChain>> = self
                .chains
                .lock()
                .range::<[u8], _>(bounds)
                .map(|(_, chain)| Arc::clone(chain))
                .collect();
            if direction == Direction::Reverse {
                chains.reverse();
            }
            for chain in chains {
                if visit(&chain).is_break() {
                    return;
                }
            }
        }
    }
}
