//! Optimistic transactions: snapshot reads, buffered writes, validation at commit.
//!
//! A transaction reads from the snapshot taken when it began, overlaid with its own
//! buffered writes (read-your-writes). Nothing it writes is shared before commit; a
//! transaction dropped without commit leaves no trace. At commit, the sequencer validates
//! it (see `validate.rs`), gives it the next commit version and links its writes.

pub(crate) mod commit;
mod read_set;
pub(crate) mod validate;
mod write_set;

use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use crate::bounds::{owned_bound, prefix_bounds};
use crate::bytes::Bytes;
use crate::clock;
use crate::error::Result;
use crate::options::{Durability, Isolation};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::version::{CommitVersion, NEVER_EXPIRES};
use read_set::ReadSet;
use validate::Validation;
use write_set::{PendingWrite, WriteSet};

pub use write_set::TxnIter;

/// An optimistic transaction; see [`crate::Database::begin`] and
/// [`crate::Database::transaction`].
///
/// ```
/// use inmem_engine::Database;
///
/// let db = Database::in_memory()?;
/// db.put(b"a", b"1")?;
/// let mut txn = db.begin();
/// txn.put(b"b", b"2")?;
/// assert_eq!(txn.get(b"b")?.as_deref(), Some(&b"2"[..]), "reads see the transaction's writes");
/// assert_eq!(db.get(b"b")?, None, "nobody else does, before commit");
/// let keys: Vec<_> = txn.prefix(b"")?.map(|(key, _)| key).collect();
/// assert_eq!(keys.len(), 2);
/// txn.commit()?;
/// assert!(db.get(b"b")?.is_some());
/// # Ok::<(), inmem_engine::Error>(())
/// ```
pub struct Transaction<'db> {
    snapshot: Snapshot<'db>,
    isolation: Isolation,
    durability: Option<Durability>,
    writes: WriteSet,
    reads: ReadSet,
}

impl<'db> Transaction<'db> {
    pub(crate) fn new(
        snapshot: Snapshot<'db>,
        isolation: Isolation,
        durability: Option<Durability>,
    ) -> Transaction<'db> {
        let (writes, reads) = (WriteSet::default(), ReadSet::default());
        Transaction { snapshot, isolation, durability, writes, reads }
    }

    fn shared(&self) -> &'db Shared {
        self.snapshot.shared()
    }

    /// The version of the snapshot this transaction reads.
    pub fn read_version(&self) -> CommitVersion {
        self.snapshot.version()
    }

    /// The isolation this transaction is validated with.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// How many distinct keys the transaction has written so far, each range delete
    /// counting as one.
    pub fn write_count(&self) -> usize {
        self.writes.len()
    }

    /// The keys the transaction has written so far, in order (the retry loop's turns look
    /// them up).
    pub(crate) fn written_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.writes.keys()
    }

    /// The value of `key` as this transaction sees it: its own write if it wrote the key,
    /// else its snapshot's.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for an oversized key, or a read set over its limit.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.shared().check_key(key)?;
        if let Some(write) = self.writes.get(key) {
            return Ok(write.live_value(self.snapshot.now_ms()).cloned());
        }
        if self.writes.hides(key) {
            return Ok(None);
        }
        if self.isolation == Isolation::Serializable {
            self.reads.record_key(key, self.shared().options.limits.transaction_reads_max)?;
        }
        Ok(self.snapshot.read(key))
    }

    /// Buffers `key` = `value`.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for an oversized key or value, or too many writes.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.put_inner(key.as_ref(), value.as_ref(), None)
    }

    /// Buffers `key` = `value`, expiring `ttl` after this call. Once expired, the value
    /// reads as absent, and the reaper eventually replaces it by a tombstone.
    ///
    /// # Errors
    /// As [`Transaction::put`].
    pub fn put_with_ttl(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.put_inner(key.as_ref(), value.as_ref(), Some(ttl))
    }

    pub(crate) fn put_inner(
        &mut self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let shared = self.shared();
        shared.check_key(key)?;
        shared.check_value(value)?;
        let write = PendingWrite::put(Bytes::copy_from(value), expiry_from(ttl));
        self.writes.insert(key, write, shared.options.limits.transaction_writes_max)
    }

    /// Buffers a delete of `key` (deleting an absent key is not an error).
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for an oversized key, or too many writes.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        let shared = self.shared();
        shared.check_key(key)?;
        self.writes.insert(
            key,
            PendingWrite::delete(),
            shared.options.limits.transaction_writes_max,
        )
    }

    /// Buffers a range delete: every key starting with `prefix` (the prefix itself
    /// included) is deleted at this transaction's commit, in one write, however many keys
    /// that is. Writes the transaction made under `prefix` before are dropped; writes it
    /// makes after are kept. The keys' memory is reclaimed in the background, in bounded
    /// steps (see [`crate::Database::range_deletes`]).
    ///
    /// A concurrent transaction that wrote, read or scanned a key under `prefix` from a
    /// snapshot older than this commit fails with [`crate::Error::Conflict`] (it is retried
    /// by [`crate::Database::transaction`]), so no write made without seeing the delete
    /// survives it.
    ///
    /// ```
    /// use inmem_engine::Database;
    ///
    /// let db = Database::in_memory()?;
    /// for i in 0..1000u32 {
    ///     db.put(format!("run7/event/{i:04}"), b"...")?;
    /// }
    /// db.put(b"run8/event/0000", b"kept")?;
    /// let mut txn = db.begin();
    /// txn.delete_prefix(b"run7/")?;
    /// assert_eq!(txn.write_count(), 1);
    /// txn.commit()?;
    /// assert_eq!(db.snapshot().prefix(b"run7/").count(), 0);
    /// assert_eq!(db.snapshot().prefix(b"run").count(), 1);
    /// # Ok::<(), inmem_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for a prefix longer than the key limit, or too many
    /// writes.
    pub fn delete_prefix(&mut self, prefix: impl AsRef<[u8]>) -> Result<()> {
        let prefix = prefix.as_ref();
        let shared = self.shared();
        shared.check_key(prefix)?;
        self.writes.delete_prefix(prefix, shared.options.limits.transaction_writes_max)
    }

    /// The entries with keys in `range` as this transaction sees them, in key order;
    /// `.rev()` walks backwards.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] for a serializable read set over its limit.
    pub fn range<K: AsRef<[u8]>>(&mut self, range: impl RangeBounds<K>) -> Result<TxnIter<'_>> {
        self.scan(owned_bound(range.start_bound()), owned_bound(range.end_bound()))
    }

    /// The entries whose keys start with `prefix`, as this transaction sees them.
    ///
    /// # Errors
    /// As [`Transaction::range`].
    pub fn prefix(&mut self, prefix: impl AsRef<[u8]>) -> Result<TxnIter<'_>> {
        let (start, end) = prefix_bounds(prefix.as_ref());
        self.scan(start, end)
    }

    fn scan(&mut self, start: Bound<Bytes>, end: Bound<Bytes>) -> Result<TxnIter<'_>> {
        if self.isolation == Isolation::Serializable {
            let reads_max = self.shared().options.limits.transaction_reads_max;
            self.reads.record_range(start.clone(), end.clone(), reads_max)?;
        }
        let committed = self.snapshot.scan(start.clone(), end.clone());
        Ok(TxnIter::new(committed, &self.writes, &start, &end, self.snapshot.now_ms()))
    }

    /// Commits: validates against what committed since the snapshot, takes a commit version,
    /// and makes the writes visible atomically. A transaction that wrote nothing commits
    /// trivially at its read version.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if validation fails (nothing becomes visible);
    /// [`crate::Error::Poisoned`].
    pub fn commit(self) -> Result<CommitVersion> {
        let Transaction { snapshot, isolation, durability, writes, reads } = self;
        if writes.is_empty() {
            return Ok(snapshot.version());
        }
        let read_version = snapshot.version().get();
        let validation = match isolation {
            Isolation::Snapshot => Validation::Snapshot { read_version },
            Isolation::Serializable => Validation::Serializable { read_version, reads: &reads },
        };
        // The snapshot stays registered until the commit is done, so the collector keeps
        // everything validation compares against.
        let (prefixes, nodes) = writes.into_parts();
        snapshot.shared().commit(prefixes, nodes, validation, durability)
    }

    /// Discards the transaction (as dropping it does).
    pub fn rollback(self) {}
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("read_version", &self.read_version())
            .field("isolation", &self.isolation)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

/// The absolute expiry for a time-to-live from now.
fn expiry_from(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => NEVER_EXPIRES,
        Some(ttl) => clock::now_ms().saturating_add(clock::saturating_ms(ttl)).max(1),
    }
}

impl Shared {
    /// A one-shot write that reads nothing, committed without validation.
    pub(crate) fn write_blind(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CommitVersion> {
        self.check_key(key)?;
        let write = match value {
            Some(value) => {
                self.check_value(value)?;
                PendingWrite::put(Bytes::copy_from(value), expiry_from(ttl))
            }
            None => PendingWrite::delete(),
        };
        let node = crate::sync::epoch::Owned::new(write.into_node());
        self.commit(Vec::new(), vec![(Bytes::copy_from(key), node)], Validation::Blind, None)
    }

    /// A one-shot range delete of `prefix`, committed without validation.
    pub(crate) fn delete_prefix_blind(&self, prefix: &[u8]) -> Result<CommitVersion> {
        self.check_key(prefix)?;
        self.commit(vec![Bytes::copy_from(prefix)], Vec::new(), Validation::Blind, None)
    }
}
