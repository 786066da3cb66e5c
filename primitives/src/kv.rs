//! KvStore: a run's keys and their [`Value`]s, with versions, expiry, counters and
//! compare-and-set (docs/architecture.md §9).
//!
//! Every operation exists twice: on [`KvStore`], in one implicit transaction of its own,
//! and on [`KvTxn`] (through [`KvExt::kv`] on a [`Transaction`]), so that it commits or
//! fails together with whatever else the transaction does. The handle's methods only open
//! the transaction and call the [`KvTxn`] method; each operation has one implementation.
//! The exceptions are [`KvStore::get`] and [`KvStore::exists`], one read of one key: they
//! read the newest committed version straight from the engine (what a transaction would
//! read first), without a transaction around it.
//!
//! # Layout
//!
//! One engine key per user key, holding the value's encoding and nothing else:
//!
//! ```text
//! key   = run id (16 bytes) | 0x01 (TypeTag::Kv) | user key (raw bytes, to the end)
//! value = encoded Value (format version byte first; see value/encode.rs)
//! ```
//!
//! | part | offset | size | content |
//! |---|---|---|---|
//! | key | 0 | 16 | the run id |
//! | key | 16 | 1 | `0x01`, [`TypeTag::Kv`] |
//! | key | 17 | rest | the user key, as given (any bytes, the empty key included) |
//! | value | 0 | all | the [`Value`]'s encoding ([`Value::try_encode`]) |
//!
//! The user key is the last component of the key, so it is stored raw ([`KeyBuf::push_bytes`]):
//! a run's keys order as the user keys do, bytewise, and the keys starting with a user
//! prefix are exactly the engine keys starting with `run id | 0x01 | prefix`. The value has
//! no header: its version is the engine's commit version and its expiry the engine's TTL.
//! A user key may be at most the engine's key limit less 17 bytes; a longer one is refused
//! with the engine's [`inmem_engine::Error::LimitExceeded`] (counting the whole key).
//!
//! # Isolation
//!
//! Every key opens with the run id and the tag, so two runs using the same user keys never
//! meet, and a listing or scan of one run (a range under its tag prefix) never reaches
//! another run's keys, nor another primitive's keys of the same run.
//!
//! # Pagination
//!
//! [`KvStore::scan`] reads one page per call, each in a transaction of its own, and
//! resumes strictly after the last key the previous page returned ([`ScanCursor`]). Keys
//! only grow from page to page, so a key present during the whole scan is returned exactly
//! once, whatever is written meanwhile; a key written or deleted during the scan may or may
//! not be.

mod cursor;

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use inmem_engine::{
    Bytes, CommitVersion, Committed, Database, RetryPolicy, Transaction, TransactionOptions,
};

use crate::error::{Error, Result};
use crate::key::{prefix_end, tag_prefix, KeyBuf, TAG_PREFIX_LEN};
use crate::run_id::RunId;
use crate::tag::TypeTag;
use crate::value::Value;
use crate::view::{ValueView, View};

pub use cursor::{ParseScanCursorError, ScanCursor};

/// The most entries one listing, scan page or history may ask for: bigger ones are refused
/// with [`Error::LimitExceeded`] rather than building a response of any size in one call.
pub const PAGE_LIMIT_MAX: usize = 10_000;

/// The key-value stores of all runs: each operation names the run whose keys it touches.
///
/// ```
/// use std::sync::Arc;
/// use inmem_engine::Database;
/// use inmem_primitives::kv::{KvExt, KvStore, ScanCursor};
/// use inmem_primitives::{RunId, Value, ValueRef};
///
/// let db = Arc::new(Database::in_memory()?);
/// let kv = KvStore::new(db.clone());
/// let run = RunId::random();
///
/// kv.put(run, "user/1", &Value::from("ada"))?;
/// let name = kv.get(run, "user/1")?.expect("just written");
/// assert_eq!(name.value(), ValueRef::Str("ada"), "read in place, no copy");
/// assert_eq!(kv.incr(run, "visits", 5)?, 5, "a missing counter starts at 0");
/// assert!(kv.cas_value(run, "visits", Some(&Value::from(5)), &Value::from(6))?);
///
/// // Several operations, committed as one.
/// db.transaction_typed(Default::default(), |txn| {
///     txn.kv(run).put("user/2", &Value::from("grace"))?;
///     txn.kv(run).incr("users", 2)
/// })?;
///
/// let page = kv.scan(run, "user/", 1, &ScanCursor::start())?;
/// assert_eq!(page.entries[0].key.as_bytes(), b"user/1");
/// let next = page.next.expect("user/2 follows");
/// let page = kv.scan(run, "user/", 1, &next)?;
/// assert_eq!(page.entries[0].key.as_bytes(), b"user/2");
/// assert_eq!(page.next, None, "the end");
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
#[derive(Clone)]
pub struct KvStore {
    db: Arc<Database>,
}

/// One version of a key, as [`KvStore::history`] reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KvVersion {
    /// The commit that wrote it.
    pub version: CommitVersion,
    /// The value, or `None` for a deletion (by [`KvStore::delete`] or by expiry).
    pub value: Option<ValueView>,
    /// When the value expires (milliseconds since the Unix epoch), if it does.
    pub expires_at_ms: Option<u64>,
}

/// A key and its value, as [`KvStore::list`] and [`KvStore::scan`] return them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KvEntry {
    /// The user key (without run id and tag), viewed in the stored key.
    pub key: View,
    /// The value, viewed in the stored bytes.
    pub value: ValueView,
}

/// One page of a [`KvStore::scan`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScanPage {
    /// The entries, in key order: at most the limit asked for.
    pub entries: Vec<KvEntry>,
    /// Where the next page starts, or `None` if the scan reached the prefix's end.
    pub next: Option<ScanCursor>,
}

impl KvStore {
    /// The key-value store of `db`.
    pub fn new(db: Arc<Database>) -> Self {
        KvStore { db }
    }

    /// Runs `operation` on `run`'s keys in a transaction of its own, retried on conflict.
    fn within<T>(
        &self,
        run: RunId,
        mut operation: impl FnMut(&mut KvTxn<'_, '_>) -> Result<T>,
    ) -> Result<Committed<T>> {
        self.db.transaction_typed(TransactionOptions::default(), |txn| operation(&mut txn.kv(run)))
    }

    /// The value of `key`, or `None` if it is absent, deleted or expired.
    ///
    /// # Errors
    /// [`Error::Engine`] for an oversized key; [`Error::Decode`] if the stored bytes are not
    /// an encoded value.
    pub fn get(&self, run: RunId, key: impl AsRef<[u8]>) -> Result<Option<ValueView>> {
        // A read of one key needs no transaction: the engine's own read of the newest
        // committed version is the same read, without a read set or a commit.
        let stored = with_kv_key(run, key.as_ref(), |key| self.db.get(key))?;
        stored.map(value_view).transpose()
    }

    /// Writes `key` = `value` and returns the commit's version.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a value nested too deeply; [`Error::Engine`] for an
    /// oversized key or value.
    pub fn put(&self, run: RunId, key: impl AsRef<[u8]>, value: &Value) -> Result<CommitVersion> {
        Ok(self.within(run, |kv| kv.put(key.as_ref(), value))?.version)
    }

    /// As [`KvStore::put`], with the value expiring `ttl` from now: from then on it reads as
    /// absent, and the engine eventually replaces it by a deletion.
    ///
    /// # Errors
    /// As [`KvStore::put`].
    pub fn put_with_ttl(
        &self,
        run: RunId,
        key: impl AsRef<[u8]>,
        value: &Value,
        ttl: Duration,
    ) -> Result<CommitVersion> {
        Ok(self.within(run, |kv| kv.put_with_ttl(key.as_ref(), value, ttl))?.version)
    }

    /// Deletes `key`; whether it existed (deleting an absent key writes nothing).
    ///
    /// # Errors
    /// [`Error::Engine`] for an oversized key.
    pub fn delete(&self, run: RunId, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.within(run, |kv| kv.delete(key.as_ref()))?.value)
    }

    /// Whether `key` has a value (not deleted, not expired).
    ///
    /// # Errors
    /// [`Error::Engine`] for an oversized key.
    pub fn exists(&self, run: RunId, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(with_kv_key(run, key.as_ref(), |key| self.db.get(key))?.is_some())
    }

    /// The value `key` had at commit `version` (as a snapshot at that version reads it),
    /// or `None` if it had none then.
    ///
    /// # Errors
    /// [`inmem_engine::Error::SnapshotTooOld`] for a version the database's retention no
    /// longer keeps, [`inmem_engine::Error::VersionNotVisible`] for one not committed yet
    /// (both as [`Error::Engine`]); otherwise as [`KvStore::get`].
    pub fn get_at(
        &self,
        run: RunId,
        key: impl AsRef<[u8]>,
        version: CommitVersion,
    ) -> Result<Option<ValueView>> {
        let snapshot = self.db.snapshot_at(version)?;
        let stored = snapshot.get(kv_key(run, key.as_ref()))?;
        stored.map(value_view).transpose()
    }

    /// The versions of `key` the database retains, newest first: at most `limit`, each
    /// older than `before` if given. A deletion is a version without a value.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a `limit` over [`PAGE_LIMIT_MAX`]; otherwise as
    /// [`KvStore::get`].
    pub fn history(
        &self,
        run: RunId,
        key: impl AsRef<[u8]>,
        limit: usize,
        before: Option<CommitVersion>,
    ) -> Result<Vec<KvVersion>> {
        check_page(limit)?;
        let records = self.db.history(kv_key(run, key.as_ref()), limit, before)?;
        records
            .into_iter()
            .map(|record| {
                Ok(KvVersion {
                    version: record.version,
                    value: record.value.map(value_view).transpose()?,
                    expires_at_ms: record.expires_at_ms,
                })
            })
            .collect()
    }

    /// The first keys (at most `limit`) that start with `prefix`, in key order.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a `limit` over [`PAGE_LIMIT_MAX`].
    pub fn keys(&self, run: RunId, prefix: impl AsRef<[u8]>, limit: usize) -> Result<Vec<View>> {
        Ok(self.within(run, |kv| kv.keys(prefix.as_ref(), limit))?.value)
    }

    /// As [`KvStore::keys`], with the values.
    ///
    /// # Errors
    /// As [`KvStore::keys`]; [`Error::Decode`] if a stored value is not an encoded value.
    pub fn list(&self, run: RunId, prefix: impl AsRef<[u8]>, limit: usize) -> Result<Vec<KvEntry>> {
        Ok(self.within(run, |kv| kv.list(prefix.as_ref(), limit))?.value)
    }

    /// One page of the entries that start with `prefix`: at most `limit` of them, in key
    /// order, strictly after `cursor`; and the cursor of the next page, if any entry
    /// follows. Start with [`ScanCursor::start`]; see the module doc for what a scan sees
    /// of concurrent writes. A `limit` of 0 returns no entry, and the same position as
    /// `next` if any entry follows it.
    ///
    /// # Errors
    /// As [`KvStore::list`].
    pub fn scan(
        &self,
        run: RunId,
        prefix: impl AsRef<[u8]>,
        limit: usize,
        cursor: &ScanCursor,
    ) -> Result<ScanPage> {
        Ok(self.within(run, |kv| kv.scan(prefix.as_ref(), limit, cursor))?.value)
    }

    /// Adds `delta` to the integer at `key` (a missing key counts as 0) and returns the
    /// sum. Atomic: retried on conflict, so concurrent increments never lose one. The
    /// result never expires, whatever the previous value's time-to-live.
    ///
    /// # Errors
    /// [`Error::NotAnInteger`] if the stored value is not an [`Value::Int`];
    /// [`Error::Overflow`] if the sum does not fit in `i64` (nothing is written); an
    /// engine conflict once the database's retry policy gives up.
    pub fn incr(&self, run: RunId, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        Ok(self.within(run, |kv| kv.incr(key.as_ref(), delta))?.value)
    }

    /// Writes `new` at `key` if its current value is `expected` (`None`: if it has none);
    /// whether it did. Values compare by their encoding: bit for bit, so a NaN matches the
    /// same NaN and `0.0` does not match `-0.0`. Not retried: `false` also when another
    /// transaction wrote `key` between the read and the commit.
    ///
    /// # Errors
    /// As [`KvStore::put`]; [`Error::Decode`] if the stored bytes are not an encoded value.
    pub fn cas_value(
        &self,
        run: RunId,
        key: impl AsRef<[u8]>,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool> {
        let retry = RetryPolicy { attempts_max: 1, ..self.db.options().retry };
        let options = TransactionOptions::default().retry(retry);
        let outcome = self
            .db
            .transaction_typed(options, |txn| txn.kv(run).cas_value(key.as_ref(), expected, new));
        match outcome {
            Ok(committed) => Ok(committed.value),
            Err(error) if error.is_conflict() => Ok(false),
            Err(error) => Err(error),
        }
    }
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore").finish_non_exhaustive()
    }
}

/// The key-value operations on a [`Transaction`]: `txn.kv(run).put(..)`.
pub trait KvExt<'db> {
    /// The key-value store of `run`, inside this transaction.
    fn kv(&mut self, run: RunId) -> KvTxn<'_, 'db>;
}

impl<'db> KvExt<'db> for Transaction<'db> {
    fn kv(&mut self, run: RunId) -> KvTxn<'_, 'db> {
        KvTxn { txn: self, run }
    }
}

/// The key-value store of one run inside a transaction (see [`KvExt::kv`]): reads see the
/// transaction's own writes, and writes become visible when it commits, with everything
/// else it wrote. The operations are those of [`KvStore`], with the same errors.
pub struct KvTxn<'t, 'db> {
    txn: &'t mut Transaction<'db>,
    run: RunId,
}

impl KvTxn<'_, '_> {
    /// As [`KvStore::get`].
    ///
    /// # Errors
    /// As [`KvStore::get`].
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<ValueView>> {
        let stored = self.txn.get(kv_key(self.run, key.as_ref()))?;
        stored.map(value_view).transpose()
    }

    /// As [`KvStore::put`]; the version is the transaction's commit's.
    ///
    /// # Errors
    /// As [`KvStore::put`], and the engine's limit on writes per transaction.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: &Value) -> Result<()> {
        let encoded = value.try_encode()?;
        Ok(self.txn.put(kv_key(self.run, key.as_ref()), encoded)?)
    }

    /// As [`KvStore::put_with_ttl`]; the time-to-live counts from this call.
    ///
    /// # Errors
    /// As [`KvTxn::put`].
    pub fn put_with_ttl(
        &mut self,
        key: impl AsRef<[u8]>,
        value: &Value,
        ttl: Duration,
    ) -> Result<()> {
        let encoded = value.try_encode()?;
        Ok(self.txn.put_with_ttl(kv_key(self.run, key.as_ref()), encoded, ttl)?)
    }

    /// As [`KvStore::delete`].
    ///
    /// # Errors
    /// As [`KvTxn::put`].
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = kv_key(self.run, key.as_ref());
        let existed = self.txn.get(&key)?.is_some();
        if existed {
            self.txn.delete(&key)?;
        }
        Ok(existed)
    }

    /// As [`KvStore::exists`].
    ///
    /// # Errors
    /// As [`KvStore::exists`].
    pub fn exists(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.txn.get(kv_key(self.run, key.as_ref()))?.is_some())
    }

    /// As [`KvStore::keys`].
    ///
    /// # Errors
    /// As [`KvStore::keys`].
    pub fn keys(&mut self, prefix: impl AsRef<[u8]>, limit: usize) -> Result<Vec<View>> {
        let mut keys = Vec::new();
        self.walk(prefix.as_ref(), &ScanCursor::start(), limit, |key, _| {
            keys.push(user_key(key)?);
            Ok(())
        })?;
        Ok(keys)
    }

    /// As [`KvStore::list`].
    ///
    /// # Errors
    /// As [`KvStore::list`].
    pub fn list(&mut self, prefix: impl AsRef<[u8]>, limit: usize) -> Result<Vec<KvEntry>> {
        Ok(self.scan(prefix, limit, &ScanCursor::start())?.entries)
    }

    /// As [`KvStore::scan`], reading at the transaction's snapshot.
    ///
    /// # Errors
    /// As [`KvStore::scan`].
    pub fn scan(
        &mut self,
        prefix: impl AsRef<[u8]>,
        limit: usize,
        cursor: &ScanCursor,
    ) -> Result<ScanPage> {
        let mut entries: Vec<KvEntry> = Vec::new();
        let more = self.walk(prefix.as_ref(), cursor, limit, |key, value| {
            entries.push(KvEntry { key: user_key(key)?, value: value_view(value)? });
            Ok(())
        })?;
        let next = more.then(|| match entries.last() {
            Some(last) => ScanCursor::after(last.key.as_bytes()),
            None => cursor.clone(),
        });
        debug_assert!(entries.len() <= limit);
        Ok(ScanPage { entries, next })
    }

    /// As [`KvStore::incr`], without the retry: a conflict fails the transaction's commit.
    ///
    /// # Errors
    /// As [`KvStore::incr`].
    pub fn incr(&mut self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        let key = kv_key(self.run, key.as_ref());
        let current = match self.txn.get(&key)? {
            None => 0,
            Some(stored) => value_view(stored)?.value().as_int().ok_or(Error::NotAnInteger)?,
        };
        let sum = current.checked_add(delta).ok_or(Error::Overflow)?;
        self.txn.put(&key, Value::Int(sum).encode())?;
        Ok(sum)
    }

    /// As [`KvStore::cas_value`]; a conflict fails the transaction's commit.
    ///
    /// # Errors
    /// As [`KvStore::cas_value`].
    pub fn cas_value(
        &mut self,
        key: impl AsRef<[u8]>,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool> {
        let key = kv_key(self.run, key.as_ref());
        let current = self.txn.get(&key)?.map(value_view).transpose()?;
        let matches = match (&current, expected) {
            (None, None) => true,
            (Some(current), Some(expected)) => {
                current.view().as_bytes() == expected.try_encode()?.as_slice()
            }
            _ => false,
        };
        if matches {
            self.txn.put(&key, new.try_encode()?)?;
        }
        Ok(matches)
    }

    /// Calls `visit` with the first `limit` entries (engine key, stored value) that start
    /// with `prefix`, strictly after `cursor`; whether more follow.
    fn walk(
        &mut self,
        prefix: &[u8],
        cursor: &ScanCursor,
        limit: usize,
        mut visit: impl FnMut(Bytes, Bytes) -> Result<()>,
    ) -> Result<bool> {
        check_page(limit)?;
        let prefix_key = kv_key(self.run, prefix).finish();
        let end = prefix_end(&prefix_key).map_or(Bound::Unbounded, Bound::Excluded);
        // A cursor below the prefix resumes at the prefix's first key; one above its end
        // gives an empty range, which the engine reads as nothing.
        let start = match cursor.key() {
            Some(after) if after >= prefix => Bound::Excluded(kv_key(self.run, after).finish()),
            _ => Bound::Included(prefix_key),
        };
        let mut entries = self.txn.range((start, end))?;
        for (key, value) in entries.by_ref().take(limit) {
            visit(key, value)?;
        }
        Ok(entries.next().is_some())
    }
}

impl std::fmt::Debug for KvTxn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvTxn").field("run", &self.run).finish_non_exhaustive()
    }
}

/// The engine key of `key` in `run` (the layout in the module doc).
fn kv_key(run: RunId, key: &[u8]) -> KeyBuf {
    KeyBuf::with_capacity(run, TypeTag::Kv, key.len()).push_bytes(key)
}

/// Engine keys up to this long are built on the stack by [`with_kv_key`].
const STACK_KEY_BYTES: usize = 128;

/// Calls `f` with the engine key of `run`'s user key `key`: built on the stack when it is
/// short (a point read then allocates nothing for its key), else as [`kv_key`].
fn with_kv_key<T>(run: RunId, key: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    let len = TAG_PREFIX_LEN + key.len();
    if len > STACK_KEY_BYTES {
        return f(kv_key(run, key).as_slice());
    }
    let mut bytes = [0; STACK_KEY_BYTES];
    bytes[..TAG_PREFIX_LEN].copy_from_slice(&tag_prefix(run, TypeTag::Kv));
    bytes[TAG_PREFIX_LEN..len].copy_from_slice(key);
    f(&bytes[..len])
}

/// The user key of an engine key read from the kv range, viewed in place.
fn user_key(key: Bytes) -> Result<View> {
    // The range read starts at the run's kv prefix, so every key it returns holds it.
    debug_assert_eq!(key.get(TAG_PREFIX_LEN - 1), Some(&TypeTag::Kv.byte()));
    let stored = View::new(key);
    stored.slice(TAG_PREFIX_LEN..stored.len()).ok_or_else(|| {
        Error::corrupt(stored.as_bytes(), "a kv key shorter than its run id and tag")
    })
}

/// A stored value, checked once to be an encoded [`Value`].
fn value_view(stored: Bytes) -> Result<ValueView> {
    Ok(ValueView::new(View::new(stored))?)
}

/// Refuses a page of more than [`PAGE_LIMIT_MAX`] entries.
fn check_page(limit: usize) -> Result<()> {
    if limit > PAGE_LIMIT_MAX {
        return Err(Error::LimitExceeded {
            what: "kv page entries",
            actual: limit as u64,
            max: PAGE_LIMIT_MAX as u64,
        });
    }
    Ok(())
}
