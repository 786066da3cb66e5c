//! RunIndex: the runs themselves, their metadata and lifecycle (docs/architecture.md §9).
//!
//! A run's record (status, creation and update times, parent, tags, metadata, error
//! message) is stored under the run's own id, and index entries for queries across runs
//! under the reserved [`SYSTEM_RUN`]; both are written in the same transaction, so an index
//! entry is never orphaned and never missing. The key layout is documented in
//! `run_index/keys.rs`, the record's in `run_index/record.rs`.
//!
//! - Status changes follow [`RunStatus::can_move_to`]; any other is
//!   [`Error::InvalidTransition`] and changes nothing.
//! - A run created under a parent needs the parent to exist ([`Error::ParentMissing`]).
//! - [`RunIndex::archive`] is soft: the status becomes Archived, every key is kept.
//! - [`RunIndex::delete`] cascades: the run, **every descendant** (children, their
//!   children, ...), every key of each in every primitive (the whole
//!   [`crate::run_prefix`] range) and their index entries go in one transaction, whatever
//!   the runs hold. Each run's keys go in one range delete of the engine
//!   ([`inmem_engine::Transaction::delete_prefix`]): one write, however many keys, so the
//!   commit is small and its memory bounded, and from that commit on no read of any
//!   primitive sees any of them. The engine's maintenance then replaces the keys by
//!   tombstones in steps of a bounded size, each its own commit, and frees them; a process
//!   killed meanwhile finishes after the next open ([`RunIndex::deletes_in_progress`] lists
//!   the runs still being purged). Deleting a run never leaves a child whose parent is
//!   missing. A deleted run's id may be created again at once: the new run sees none of
//!   the old one's keys.
//!
//! # Concurrency
//!
//! Every operation that changes a run writes its record, so two of them on one run
//! conflict and one is retried. Creating a child also rewrites its parent's record,
//! unchanged: a child created while its parent is deleted conflicts with the delete, and
//! the retry finds the parent missing. A transaction of any primitive that wrote into a
//! run's range from a snapshot older than the run's delete conflicts with it and is retried
//! (the engine's rule for range deletes), so no such key survives the delete. The handle's
//! [`RunIndex::delete`] runs serializable, so that a child created concurrently is found
//! or conflicts; through [`RunIndexTxn::delete`], that is the caller's choice of
//! isolation.

mod keys;
mod record;
mod status;

use std::collections::{BTreeSet, VecDeque};
use std::ops::{Bound, Range};
use std::sync::Arc;

use inmem_engine::{Bytes, Database, Isolation, Transaction, TransactionOptions};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::key::run_prefix;
use crate::run_id::RunId;
use crate::value::Value;
pub(crate) use keys::is_index_sub_tag;
use keys::{record_key, Index};
use record::RecordParts;

pub use keys::SYSTEM_RUN;
pub use record::{RunView, Tags};
pub use status::RunStatus;

/// Index entries read per scan of a query, between reads of the records they name.
const QUERY_PAGE: usize = 256;

/// Runs: create, read, move through their lifecycle, tag, query, archive and delete.
///
/// ```
/// use std::sync::Arc;
/// use inmem_engine::Database;
/// use inmem_primitives::run_index::{RunIndex, RunQuery, RunStatus};
/// use inmem_primitives::{Error, Value};
///
/// let runs = RunIndex::new(Arc::new(Database::in_memory()?));
/// let parent = runs.create(None, ["nightly"], &Value::from("crawl"))?;
/// let child = runs.create(Some(parent), ["nightly", "fetch"], &Value::Null)?;
///
/// let view = runs.get(child)?.expect("just created");
/// assert_eq!(view.status(), RunStatus::Active);
/// assert_eq!(view.parent(), Some(parent));
/// assert_eq!(view.tags().collect::<Vec<_>>(), ["fetch", "nightly"]);
///
/// runs.complete(child)?;
/// assert_eq!(
///     runs.update_status(child, RunStatus::Active),
///     Err(Error::InvalidTransition { from: "Completed", to: "Active" })
/// );
/// let done = runs.query(&RunQuery::new().status(RunStatus::Completed), 10)?;
/// assert_eq!(done.iter().map(|run| run.id()).collect::<Vec<_>>(), [child]);
///
/// assert_eq!(runs.delete(parent)?, [parent, child], "delete cascades to children");
/// assert_eq!(runs.get(child)?, None);
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
#[derive(Clone)]
pub struct RunIndex {
    db: Arc<Database>,
}

impl RunIndex {
    /// The run index of `db`.
    pub fn new(db: Arc<Database>) -> Self {
        RunIndex { db }
    }

    /// Runs `f` in one transaction with `options`, retried on conflict.
    fn run<T>(
        &self,
        options: TransactionOptions,
        mut f: impl FnMut(&mut RunIndexTxn<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let committed = self.db.transaction_typed(options, |txn| f(&mut txn.runs()))?;
        Ok(committed.value)
    }

    /// Creates an Active run with a new random id; see [`RunIndexTxn::create_with_id`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::create_with_id`].
    pub fn create<S: AsRef<str>>(
        &self,
        parent: Option<RunId>,
        tags: impl IntoIterator<Item = S>,
        metadata: &Value,
    ) -> Result<RunId> {
        let run = RunId::random();
        self.create_with_id(run, parent, tags, metadata)?;
        Ok(run)
    }

    /// Creates the Active run `run`; see [`RunIndexTxn::create_with_id`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::create_with_id`].
    pub fn create_with_id<S: AsRef<str>>(
        &self,
        run: RunId,
        parent: Option<RunId>,
        tags: impl IntoIterator<Item = S>,
        metadata: &Value,
    ) -> Result<()> {
        let tags: Vec<S> = tags.into_iter().collect();
        self.run(TransactionOptions::default(), |txn| {
            txn.create_with_id(run, parent, tags.iter().map(AsRef::as_ref), metadata)
        })
    }

    /// The record of `run`, or `None` if there is no such run.
    ///
    /// # Errors
    /// As [`RunIndexTxn::get`].
    pub fn get(&self, run: RunId) -> Result<Option<RunView>> {
        self.run(TransactionOptions::default(), |txn| txn.get(run))
    }

    /// Moves `run` to `status`; see [`RunIndexTxn::update_status`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn update_status(&self, run: RunId, status: RunStatus) -> Result<()> {
        self.run(TransactionOptions::default(), |txn| txn.update_status(run, status))
    }

    /// Moves `run` to Completed.
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn complete(&self, run: RunId) -> Result<()> {
        self.run(TransactionOptions::default(), |txn| txn.complete(run))
    }

    /// Moves `run` to Failed with the error message `error`.
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn fail(&self, run: RunId, error: &str) -> Result<()> {
        self.run(TransactionOptions::default(), |txn| txn.fail(run, error))
    }

    /// Moves `run` to Archived, keeping all its data.
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn archive(&self, run: RunId) -> Result<()> {
        self.run(TransactionOptions::default(), |txn| txn.archive(run))
    }

    /// Adds `tags` to `run`; see [`RunIndexTxn::add_tags`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::add_tags`].
    pub fn add_tags<S: AsRef<str>>(
        &self,
        run: RunId,
        tags: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        let tags: Vec<S> = tags.into_iter().collect();
        self.run(TransactionOptions::default(), |txn| {
            txn.add_tags(run, tags.iter().map(AsRef::as_ref))
        })
    }

    /// Removes `tags` from `run`; see [`RunIndexTxn::remove_tags`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::remove_tags`].
    pub fn remove_tags<S: AsRef<str>>(
        &self,
        run: RunId,
        tags: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        let tags: Vec<S> = tags.into_iter().collect();
        self.run(TransactionOptions::default(), |txn| {
            txn.remove_tags(run, tags.iter().map(AsRef::as_ref))
        })
    }

    /// Replaces the metadata of `run` by `metadata`.
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_metadata`].
    pub fn update_metadata(&self, run: RunId, metadata: &Value) -> Result<()> {
        self.run(TransactionOptions::default(), |txn| txn.update_metadata(run, metadata))
    }

    /// At most `limit` runs matching `query`; see [`RunIndexTxn::query`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::query`].
    pub fn query(&self, query: &RunQuery, limit: usize) -> Result<Vec<RunView>> {
        self.run(TransactionOptions::default(), |txn| txn.query(query, limit))
    }

    /// At most `limit` runs, oldest first.
    ///
    /// # Errors
    /// As [`RunIndexTxn::query`].
    pub fn list(&self, limit: usize) -> Result<Vec<RunView>> {
        self.run(TransactionOptions::default(), |txn| txn.list(limit))
    }

    /// The runs created under `run`, oldest first.
    ///
    /// # Errors
    /// As [`RunIndexTxn::children`].
    pub fn children(&self, run: RunId) -> Result<Vec<RunView>> {
        self.run(TransactionOptions::default(), |txn| txn.children(run))
    }

    /// Deletes `run`, its descendants and every key of theirs, in one serializable
    /// transaction; see [`RunIndexTxn::delete`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::delete`].
    pub fn delete(&self, run: RunId) -> Result<Vec<RunId>> {
        let serializable = TransactionOptions::default().isolation(Isolation::Serializable);
        self.run(serializable, |txn| txn.delete(run))
    }

    /// The deleted runs whose keys the engine is still purging from memory, oldest delete
    /// first. They are already absent from every read; this says only that the work of
    /// freeing them is not done (it goes on in the background, and after a restart).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use inmem_engine::Database;
    /// use inmem_primitives::run_index::RunIndex;
    /// use inmem_primitives::Value;
    ///
    /// let db = Arc::new(Database::in_memory()?);
    /// let runs = RunIndex::new(Arc::clone(&db));
    /// let run = runs.create(None, ["batch"], &Value::Null)?;
    /// runs.delete(run)?;
    /// assert_eq!(runs.get(run)?, None, "gone for every reader at once");
    /// while !runs.deletes_in_progress().is_empty() {
    ///     db.purge_range_deletes(usize::MAX); // the maintenance thread does this too
    ///     db.collect_garbage();
    /// }
    /// # Ok::<(), inmem_primitives::Error>(())
    /// ```
    pub fn deletes_in_progress(&self) -> Vec<RunId> {
        let mut runs: Vec<RunId> = self
            .db
            .range_deletes()
            .iter()
            .filter_map(|pending| <[u8; RunId::LEN]>::try_from(pending.prefix.as_slice()).ok())
            .map(RunId::from_bytes)
            .collect();
        runs.dedup();
        runs
    }
}

/// What [`RunIndex::query`] looks for: runs matching every criterion given (none: every
/// run).
///
/// ```
/// use inmem_primitives::run_index::{RunQuery, RunStatus};
///
/// let since = 1_700_000_000_000; // ms since the Unix epoch
/// let recent_failures = RunQuery::new().status(RunStatus::Failed).created(since..u64::MAX);
/// assert_eq!(recent_failures.tag, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunQuery {
    /// Runs with this status.
    pub status: Option<RunStatus>,
    /// Runs carrying this tag.
    pub tag: Option<String>,
    /// Runs created in this range of ms since the Unix epoch (start included, end not).
    pub created: Option<Range<u64>>,
    /// Runs created under this parent.
    pub parent: Option<RunId>,
}

impl RunQuery {
    /// A query for every run.
    pub fn new() -> RunQuery {
        RunQuery::default()
    }

    /// Only runs with `status`.
    #[must_use]
    pub fn status(mut self, status: RunStatus) -> RunQuery {
        self.status = Some(status);
        self
    }

    /// Only runs carrying `tag`.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> RunQuery {
        self.tag = Some(tag.into());
        self
    }

    /// Only runs created in `range`, in ms since the Unix epoch.
    #[must_use]
    pub fn created(mut self, range: Range<u64>) -> RunQuery {
        self.created = Some(range);
        self
    }

    /// Only runs created under `parent`.
    #[must_use]
    pub fn parent(mut self, parent: RunId) -> RunQuery {
        self.parent = Some(parent);
        self
    }

    /// The index a query scans: the most selective one of its criteria.
    fn index(&self) -> Index<'_> {
        match (self.parent, &self.tag, self.status) {
            (Some(parent), _, _) => Index::Parent(parent),
            (None, Some(tag), _) => Index::Tag(tag),
            (None, None, Some(status)) => Index::Status(status),
            (None, None, None) => Index::Created,
        }
    }

    /// Whether `run` matches every criterion.
    fn matches(&self, run: &RunView) -> bool {
        self.status.is_none_or(|status| run.status() == status)
            && self.tag.as_deref().is_none_or(|tag| run.has_tag(tag))
            && self.created.as_ref().is_none_or(|range| range.contains(&run.created_at_ms()))
            && self.parent.is_none_or(|parent| run.parent() == Some(parent))
    }
}

/// The run index in a transaction: `txn.runs()`.
pub trait RunIndexExt<'db> {
    /// The run index's operations, in this transaction.
    fn runs(&mut self) -> RunIndexTxn<'_, 'db>;
}

impl<'db> RunIndexExt<'db> for Transaction<'db> {
    fn runs(&mut self) -> RunIndexTxn<'_, 'db> {
        RunIndexTxn { txn: self }
    }
}

/// The run index's operations in a transaction: they commit or fail with everything else
/// the transaction does.
///
/// ```
/// use inmem_engine::Database;
/// use inmem_primitives::run_index::{RunIndexExt, RunStatus};
/// use inmem_primitives::Value;
///
/// let db = Database::in_memory()?;
/// let mut txn = db.begin();
/// let run = txn.runs().create(None, ["batch"], &Value::Null)?;
/// txn.runs().update_status(run, RunStatus::Paused)?;
/// txn.commit()?;
/// let view = db.begin().runs().get(run)?.expect("committed");
/// assert_eq!(view.status(), RunStatus::Paused);
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
pub struct RunIndexTxn<'t, 'db> {
    txn: &'t mut Transaction<'db>,
}

impl RunIndexTxn<'_, '_> {
    /// Creates an Active run with a new random id; see [`RunIndexTxn::create_with_id`].
    ///
    /// # Errors
    /// As [`RunIndexTxn::create_with_id`].
    pub fn create<S: AsRef<str>>(
        &mut self,
        parent: Option<RunId>,
        tags: impl IntoIterator<Item = S>,
        metadata: &Value,
    ) -> Result<RunId> {
        let run = RunId::random();
        self.create_with_id(run, parent, tags, metadata)?;
        Ok(run)
    }

    /// Creates the run `run`: Active, created and updated now, under `parent` if given,
    /// with `tags` (each once) and `metadata`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for [`SYSTEM_RUN`] (reserved) or an empty tag;
    /// [`Error::AlreadyExists`] if `run` exists; [`Error::ParentMissing`] if `parent` does
    /// not; [`Error::LimitExceeded`] for metadata nested too deep; the engine's
    /// `LimitExceeded` for a tag too long for a key, or a record too large for a value.
    pub fn create_with_id<S: AsRef<str>>(
        &mut self,
        run: RunId,
        parent: Option<RunId>,
        tags: impl IntoIterator<Item = S>,
        metadata: &Value,
    ) -> Result<()> {
        if run == SYSTEM_RUN {
            return Err(Error::InvalidName { reason: "the all-zero run id is reserved" });
        }
        let tags: Vec<S> = tags.into_iter().collect();
        let tags = tag_set(tags.iter().map(AsRef::as_ref))?;
        let metadata = metadata.try_encode()?;
        if self.txn.get(record_key(run))?.is_some() {
            return Err(Error::AlreadyExists { what: "run" });
        }
        if let Some(parent) = parent {
            let parent_key = record_key(parent);
            let Some(parent_record) = self.txn.get(&parent_key)? else {
                return Err(Error::ParentMissing);
            };
            // Rewritten as it is, so that a concurrent delete of the parent conflicts with
            // this creation (see the module doc).
            self.txn.put(&parent_key, &parent_record)?;
        }
        let now = now_ms();
        let parts = RecordParts {
            status: RunStatus::Active,
            created_at_ms: now,
            updated_at_ms: now,
            parent,
            tags: tags.into_iter().collect(),
            metadata: &metadata,
            error: None,
        };
        self.write(run, None, Some(&parts))
    }

    /// The record of `run`, or `None` if there is no such run.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a stored record that does not decode; the engine's errors.
    pub fn get(&mut self, run: RunId) -> Result<Option<RunView>> {
        let key = record_key(run);
        let record = self.txn.get(&key)?;
        record.map(|bytes| RunView::parse(run, &key, bytes)).transpose()
    }

    /// Moves `run` to `status`, if [`RunStatus::can_move_to`] allows it.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing run; [`Error::InvalidTransition`] for a move the
    /// lifecycle does not allow (nothing is written); as [`RunIndexTxn::get`].
    pub fn update_status(&mut self, run: RunId, status: RunStatus) -> Result<()> {
        let view = self.require(run)?;
        let old = view.parts();
        check_move(old.status, status)?;
        let new = RecordParts { status, ..old.clone() };
        self.rewrite(run, &old, new)
    }

    /// Moves `run` to Completed.
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn complete(&mut self, run: RunId) -> Result<()> {
        self.update_status(run, RunStatus::Completed)
    }

    /// Moves `run` to Failed and records `error`, the message it failed with (kept when
    /// the run is archived).
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn fail(&mut self, run: RunId, error: &str) -> Result<()> {
        let view = self.require(run)?;
        let old = view.parts();
        check_move(old.status, RunStatus::Failed)?;
        let new = RecordParts { status: RunStatus::Failed, error: Some(error), ..old.clone() };
        self.rewrite(run, &old, new)
    }

    /// Moves `run` to Archived: a soft delete, which keeps every key of the run.
    ///
    /// # Errors
    /// As [`RunIndexTxn::update_status`].
    pub fn archive(&mut self, run: RunId) -> Result<()> {
        self.update_status(run, RunStatus::Archived)
    }

    /// Adds `tags` to `run` (those it carries already are left alone).
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing run; [`Error::InvalidName`] for an empty tag; the
    /// engine's `LimitExceeded` for a tag too long for a key.
    pub fn add_tags<S: AsRef<str>>(
        &mut self,
        run: RunId,
        tags: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        let added: Vec<S> = tags.into_iter().collect();
        let added = tag_set(added.iter().map(AsRef::as_ref))?;
        let view = self.require(run)?;
        let old = view.parts();
        let mut tags: BTreeSet<&str> = old.tags.iter().copied().collect();
        tags.extend(added);
        if tags.len() == old.tags.len() {
            return Ok(());
        }
        let new = RecordParts { tags: tags.into_iter().collect(), ..old.clone() };
        self.rewrite(run, &old, new)
    }

    /// Removes `tags` from `run` (those it does not carry are ignored).
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing run; as [`RunIndexTxn::get`].
    pub fn remove_tags<S: AsRef<str>>(
        &mut self,
        run: RunId,
        tags: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        let removed: Vec<S> = tags.into_iter().collect();
        let removed: BTreeSet<&str> = removed.iter().map(AsRef::as_ref).collect();
        let view = self.require(run)?;
        let old = view.parts();
        let tags: Vec<&str> =
            old.tags.iter().copied().filter(|tag| !removed.contains(tag)).collect();
        if tags.len() == old.tags.len() {
            return Ok(());
        }
        let new = RecordParts { tags, ..old.clone() };
        self.rewrite(run, &old, new)
    }

    /// Replaces the metadata of `run` by `metadata`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing run; [`Error::LimitExceeded`] for metadata nested
    /// too deep; the engine's `LimitExceeded` for a record too large for a value.
    pub fn update_metadata(&mut self, run: RunId, metadata: &Value) -> Result<()> {
        let metadata = metadata.try_encode()?;
        let view = self.require(run)?;
        let old = view.parts();
        let new = RecordParts { metadata: &metadata, ..old.clone() };
        self.rewrite(run, &old, new)
    }

    /// At most `limit` runs matching every criterion of `query`, in creation order (ties
    /// by run id). One index is scanned (parent's, else tag's, else status's, else creation
    /// time's), bounded by the creation time range, and the other criteria are checked on
    /// the records.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an index entry whose record is missing or disagrees with it,
    /// or a record that does not decode; the engine's errors.
    pub fn query(&mut self, query: &RunQuery, limit: usize) -> Result<Vec<RunView>> {
        let mut found = Vec::new();
        if limit == 0 || query.created.as_ref().is_some_and(Range::is_empty) {
            return Ok(found);
        }
        let (mut from, to) = query.index().bounds(query.created.as_ref());
        loop {
            let page: Vec<Bytes> =
                self.txn.range((from, to.clone()))?.take(QUERY_PAGE).map(|(key, _)| key).collect();
            for key in &page {
                let run = self.indexed(key, query)?;
                if query.matches(&run) {
                    found.push(run);
                    if found.len() == limit {
                        return Ok(found);
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == QUERY_PAGE => from = Bound::Excluded(last.to_vec()),
                _ => return Ok(found),
            }
        }
    }

    /// At most `limit` runs, oldest first.
    ///
    /// # Errors
    /// As [`RunIndexTxn::query`].
    pub fn list(&mut self, limit: usize) -> Result<Vec<RunView>> {
        self.query(&RunQuery::new(), limit)
    }

    /// The runs created under `run`, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing run; as [`RunIndexTxn::query`].
    pub fn children(&mut self, run: RunId) -> Result<Vec<RunView>> {
        self.require(run)?;
        self.query(&RunQuery::new().parent(run), usize::MAX)
    }

    /// Deletes `run` and every descendant of it (children, their children, ...): every key
    /// of each in every primitive (its whole [`crate::run_prefix`] range, the record
    /// included, as one range delete of the engine whatever the number of keys) and their
    /// index entries. Returns the runs deleted, `run` first, then its descendants breadth
    /// first.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing run; the engine's `LimitExceeded` if the runs to
    /// delete are so many that their records and index entries (a handful of writes per
    /// run, whatever its data) are more than one transaction may write; as
    /// [`RunIndexTxn::query`].
    pub fn delete(&mut self, run: RunId) -> Result<Vec<RunId>> {
        let root = self.require(run)?;
        let mut seen = BTreeSet::from([run]);
        let mut pending = VecDeque::from([root]);
        let mut doomed = Vec::new();
        while let Some(view) = pending.pop_front() {
            for child in self.query(&RunQuery::new().parent(view.id()), usize::MAX)? {
                if seen.insert(child.id()) {
                    pending.push_back(child);
                }
            }
            doomed.push(view);
        }
        for view in &doomed {
            self.txn.delete_prefix(run_prefix(view.id()))?;
            // After the range delete, so that the record's own delete stays a write of its
            // key: a transaction that rewrote the record meanwhile conflicts with this one
            // under snapshot isolation too.
            self.write(view.id(), Some(&view.parts()), None)?;
        }
        Ok(doomed.iter().map(RunView::id).collect())
    }

    /// The record of `run`.
    fn require(&mut self, run: RunId) -> Result<RunView> {
        self.get(run)?.ok_or(Error::NotFound { what: "run" })
    }

    /// The record an index entry of `query`'s index names, checked to agree with it.
    fn indexed(&mut self, key: &[u8], query: &RunQuery) -> Result<RunView> {
        let (created_at_ms, run) = keys::read_entry(key)?;
        let view = self
            .get(run)?
            .ok_or_else(|| Error::corrupt(key, "run index entry without its run record"))?;
        let agrees = created_at_ms == view.created_at_ms()
            && match query.index() {
                Index::Status(status) => view.status() == status,
                Index::Tag(tag) => view.has_tag(tag),
                Index::Created => true,
                Index::Parent(parent) => view.parent() == Some(parent),
            };
        if !agrees {
            return Err(Error::corrupt(key, "run index entry disagrees with its run record"));
        }
        Ok(view)
    }

    /// Writes `new` over the record `old` of `run`, updated now (never earlier than it was).
    fn rewrite(&mut self, run: RunId, old: &RecordParts<'_>, new: RecordParts<'_>) -> Result<()> {
        let new = RecordParts { updated_at_ms: now_ms().max(old.updated_at_ms), ..new };
        self.write(run, Some(old), Some(&new))
    }

    /// Replaces the record `old` of `run` (`None`: there is none) by `new` (`None`: delete
    /// it), with exactly the index entries that change: the one place records and index
    /// entries are written, so they cannot drift apart.
    fn write(
        &mut self,
        run: RunId,
        old: Option<&RecordParts<'_>>,
        new: Option<&RecordParts<'_>>,
    ) -> Result<()> {
        let entries = |parts: Option<&RecordParts<'_>>| -> BTreeSet<Vec<u8>> {
            parts.map(|parts| keys::entries(run, parts)).unwrap_or_default().into_iter().collect()
        };
        let (before, after) = (entries(old), entries(new));
        for stale in before.difference(&after) {
            self.txn.delete(stale)?;
        }
        for fresh in after.difference(&before) {
            self.txn.put(fresh, [])?;
        }
        match new {
            Some(parts) => self.txn.put(record_key(run), parts.encode()?)?,
            None => self.txn.delete(record_key(run))?,
        }
        Ok(())
    }
}

/// `tags` as a set, each checked to be a tag.
fn tag_set<'a>(tags: impl IntoIterator<Item = &'a str>) -> Result<BTreeSet<&'a str>> {
    tags.into_iter()
        .map(|tag| match tag.is_empty() {
            true => Err(Error::InvalidName { reason: "a run tag is empty" }),
            false => Ok(tag),
        })
        .collect()
}

/// The error of a move the lifecycle does not allow.
fn check_move(from: RunStatus, to: RunStatus) -> Result<()> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(Error::InvalidTransition { from: from.name(), to: to.name() })
    }
}
