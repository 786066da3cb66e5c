//! TraceStore: structured traces of a run (tool calls, decisions, queries, thoughts, errors
//! and custom types) with parent links, tags and metadata, and the indices to query them by
//! type, tag, time and parent (docs/architecture.md §9).
//!
//! # What it promises
//!
//! - A trace, once recorded, never changes; it has an id unique in its run ([`TraceId`]:
//!   16 bytes, a millisecond time then 80 random bits, or a custom id given by the caller,
//!   refused if taken).
//! - A child is recorded only under a parent that exists in the snapshot the recording
//!   transaction reads (or that the transaction itself recorded): [`Error::ParentMissing`]
//!   otherwise.
//! - Every index entry is a key written in the same transaction as its trace: a trace and
//!   all its entries commit together or not at all, and an operation that fails withdraws
//!   what it buffered, so no entry is ever orphaned or missing, even in a caller's
//!   transaction that goes on after the error.
//! - Every operation exists on [`TraceStore`] (one implicit transaction, retried on conflict)
//!   and on [`TraceTxn`] through [`TraceExt::traces`] (inside the caller's transaction).
//!   Reads see one snapshot; they return [`TraceView`]s over the stored bytes.
//! - Listings are in index order: creation time (ms), then id. They return at most
//!   `limit` traces (the first ones), `limit` at most [`QUERY_LIMIT_MAX`].
//!
//! # Stored format
//!
//! All keys are `run id (16) | TypeTag::Trace (0x04) | sub-tag (1) | ...`, built with
//! [`KeyBuf`]; `id` is the trace id's key form ([`TraceId::key_bytes`]: `0x01 | 16 random
//! bytes` or `0x02 | custom id`), always last and raw; `created` is the creation time in
//! ms, u64 big-endian (so entries order by time); `component(..)` is a
//! [`KeyBuf::push_component`] (escaped, terminated).
//!
//! | sub-tag | key after the sub-tag | value |
//! |---|---|---|
//! | 0x00 record | `id` | the record: a 36-byte header, then the sections (below) |
//! | 0x01 by type | `type code (1) [component(custom name)] \| created \| id` | empty |
//! | 0x02 by tag | `component(tag) \| created \| id` | empty |
//! | 0x03 by time | `created \| id` | empty |
//! | 0x04 by parent | `component(parent id) \| created \| id` | empty |
//!
//! Type codes: 0x01 tool_call, 0x02 decision, 0x03 query, 0x04 thought, 0x05 error, 0x80
//! custom (followed by the name component, which built-in types do not have). Every trace
//! has one record, one by-type and one by-time entry, one by-tag entry per distinct tag,
//! and one by-parent entry if it is a child: nothing else is stored under the Trace tag.
//!
//! The record's header (offsets in bytes, integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | created at, ms since the Unix epoch |
//! | 8 | 1 | record format, 1 |
//! | 9 | 1 | type code (as above) |
//! | 10 | 1 | has parent, 0 or 1 |
//! | 11 | 1 | reserved, 0 |
//! | 12 | 4 | parent id bytes (0 without a parent) |
//! | 16 | 4 | type name bytes (0 for a built-in type) |
//! | 20 | 4 | tag count |
//! | 24 | 4 | tags bytes |
//! | 28 | 4 | content bytes |
//! | 32 | 4 | metadata bytes |
//!
//! followed by the sections, each exactly as long as its field says, in this order, and
//! nothing else: the parent id's key form, the custom type's name (UTF-8), the tags (`u32
//! LE length | UTF-8` each), the content and the metadata (each an encoded [`Value`],
//! `value/encode.rs`). A record that does not follow this is [`Error::Corrupt`] (or
//! [`Error::Decode`] for a value section, with offsets from the start of the record); so is
//! an index entry whose trace is missing or disagrees with it.
//!
//! # Limits
//!
//! Custom ids are at most [`CUSTOM_ID_LEN_MAX`] bytes, type names [`TYPE_NAME_LEN_MAX`],
//! tags [`TAG_LEN_MAX`] bytes and [`TAGS_MAX`] per trace; trees are bounded by
//! [`TreeLimits`]. Keys over the engine's key limit (which is configurable) are refused
//! with the engine's `LimitExceeded`.

mod id;
mod kind;
mod record;
mod tree;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use inmem_engine::{Bytes, Database, Transaction, TransactionOptions};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::key::{prefix_end, KeyBuf, KeyReader};
use crate::run_id::RunId;
use crate::tag::TypeTag;
use crate::value::Value;
use record::RecordParts;
use tree::Node;

pub use id::{TraceId, CUSTOM_ID_LEN_MAX};
pub use kind::{TraceType, TYPE_NAME_LEN_MAX};
pub use record::{Tags, TraceView};
pub use tree::{TraceTree, TreeLimits, TREE_DEPTH_MAX, TREE_NODES_MAX};

/// What errors call a trace.
const TRACE: &str = "trace";

/// The sub-tag of trace records.
const RECORD: u8 = 0x00;
/// The sub-tag of the by-type index.
const BY_TYPE: u8 = 0x01;
/// The sub-tag of the by-tag index.
const BY_TAG: u8 = 0x02;
/// The sub-tag of the by-time index.
const BY_TIME: u8 = 0x03;
/// The sub-tag of the by-parent index.
const BY_PARENT: u8 = 0x04;

/// Whether `sub_tag` is that of an index entry, which readers only scan.
pub(crate) fn is_index_sub_tag(sub_tag: u8) -> bool {
    matches!(sub_tag, BY_TYPE | BY_TAG | BY_TIME | BY_PARENT)
}

/// The longest tag, in bytes.
pub const TAG_LEN_MAX: usize = 256;

/// The most distinct tags of one trace.
pub const TAGS_MAX: usize = 64;

/// The most traces one listing may ask for: bigger ones are refused with
/// [`Error::LimitExceeded`] rather than building a response of any size in one call.
pub const QUERY_LIMIT_MAX: usize = 10_000;

/// The structured traces of runs; a stateless handle over the database (all state lives in
/// the keyspace).
///
/// ```
/// use std::sync::Arc;
/// use inmem_engine::Database;
/// use inmem_primitives::trace::{TraceSpec, TraceStore, TraceType, TreeLimits};
/// use inmem_primitives::{RunId, Value, ValueRef};
///
/// let traces = TraceStore::new(Arc::new(Database::in_memory()?));
/// let run = RunId::random();
///
/// let plan = traces.record(run, &TraceSpec::new(TraceType::Decision, "search first"))?;
/// let call = traces.record_child(
///     run,
///     &plan,
///     &TraceSpec::new(TraceType::ToolCall, Value::from("search(\"rust\")"))
///         .tag("search")
///         .metadata(Value::from(12)),
/// )?;
///
/// let view = traces.get(run, &call)?.expect("just recorded");
/// assert_eq!(view.trace_type(), TraceType::ToolCall);
/// assert_eq!(view.parent(), Some(&plan));
/// assert_eq!(view.tags().collect::<Vec<_>>(), ["search"]);
/// assert_eq!(view.metadata(), ValueRef::Int(12));
///
/// assert_eq!(traces.query_by_tag(run, "search", 100)?.len(), 1);
/// assert_eq!(traces.children(run, &plan, 100)?[0].id(), &call);
/// let tree = traces.tree(run, &plan, TreeLimits::default())?.expect("recorded");
/// assert_eq!((tree.len(), tree.depth()), (2, 1));
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
#[derive(Clone)]
pub struct TraceStore {
    db: Arc<Database>,
}

impl TraceStore {
    /// A handle on the traces of `db`.
    pub fn new(db: Arc<Database>) -> Self {
        TraceStore { db }
    }

    /// Runs `f` in one implicit transaction, retried on conflict.
    fn transact<T>(&self, f: impl FnMut(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        self.db.transaction_typed(TransactionOptions::default(), f).map(|committed| committed.value)
    }

    /// Records a trace of `run` as `spec` says, with its index entries; returns its id.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] for a custom id another trace of the run has;
    /// [`Error::InvalidName`] or [`Error::LimitExceeded`] for an invalid custom id, type
    /// name or tag, too many tags, or a value nested too deeply; the engine's
    /// `LimitExceeded` for a key or record over its limits. Nothing is written then.
    pub fn record(&self, run: RunId, spec: &TraceSpec) -> Result<TraceId> {
        self.transact(|txn| txn.traces(run).record(spec))
    }

    /// As [`TraceStore::record`], as a child of the trace `parent` of `run`.
    ///
    /// # Errors
    /// [`Error::ParentMissing`] if `run` has no trace `parent`; otherwise as
    /// [`TraceStore::record`].
    pub fn record_child(&self, run: RunId, parent: &TraceId, spec: &TraceSpec) -> Result<TraceId> {
        self.transact(|txn| txn.traces(run).record_child(parent, spec))
    }

    /// The trace `id` of `run`, if it exists.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Decode`] for a stored record that does not decode.
    pub fn get(&self, run: RunId, id: &TraceId) -> Result<Option<TraceView>> {
        self.transact(|txn| txn.traces(run).get(id))
    }

    /// The first `limit` traces of `run` of the type `trace_type`, by creation time then id.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a `limit` over [`QUERY_LIMIT_MAX`]; an invalid custom
    /// type name as [`TraceType::check`] says; [`Error::Corrupt`] or [`Error::Decode`] for
    /// stored bytes that do not decode, or an index entry without its trace.
    pub fn query_by_type(
        &self,
        run: RunId,
        trace_type: &TraceType,
        limit: usize,
    ) -> Result<Vec<TraceView>> {
        self.transact(|txn| txn.traces(run).query_by_type(trace_type, limit))
    }

    /// The first `limit` traces of `run` tagged `tag`, by creation time then id.
    ///
    /// # Errors
    /// As [`TraceStore::query_by_type`], for an invalid tag too.
    pub fn query_by_tag(&self, run: RunId, tag: &str, limit: usize) -> Result<Vec<TraceView>> {
        self.transact(|txn| txn.traces(run).query_by_tag(tag, limit))
    }

    /// The first `limit` traces of `run` created within `range` (ms since the Unix epoch),
    /// by creation time then id.
    ///
    /// # Errors
    /// As [`TraceStore::query_by_type`].
    pub fn query_by_time(
        &self,
        run: RunId,
        range: impl RangeBounds<u64>,
        limit: usize,
    ) -> Result<Vec<TraceView>> {
        let (start, end) = (range.start_bound().cloned(), range.end_bound().cloned());
        self.transact(|txn| txn.traces(run).query_by_time((start, end), limit))
    }

    /// The first `limit` children of the trace `parent` of `run`, by creation time then id.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `run` has no trace `parent`; otherwise as
    /// [`TraceStore::query_by_type`].
    pub fn children(&self, run: RunId, parent: &TraceId, limit: usize) -> Result<Vec<TraceView>> {
        self.transact(|txn| txn.traces(run).children(parent, limit))
    }

    /// The trace `root` of `run` with all its descendants, read in one snapshot; `None` if
    /// there is no trace `root`.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] if the tree goes deeper or holds more traces than `limits`
    /// allow (what: "trace tree depth" or "trace tree nodes"; no partial tree is returned),
    /// or if `limits` are over [`TREE_DEPTH_MAX`] or [`TREE_NODES_MAX`]; otherwise as
    /// [`TraceStore::query_by_type`].
    pub fn tree(
        &self,
        run: RunId,
        root: &TraceId,
        limits: TreeLimits,
    ) -> Result<Option<TraceTree>> {
        self.transact(|txn| txn.traces(run).tree(root, limits))
    }
}

impl std::fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceStore").finish_non_exhaustive()
    }
}

/// What to record: a trace's type and content, and optionally a custom id, tags, metadata
/// and a creation time.
///
/// ```
/// use inmem_primitives::trace::{TraceSpec, TraceType};
/// use inmem_primitives::Value;
///
/// let spec = TraceSpec::new(TraceType::Query, "what is MVCC?")
///     .custom_id("q-1")
///     .tags(["llm", "docs"])
///     .metadata(Value::from("gpt"));
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    trace_type: TraceType,
    content: Value,
    custom_id: Option<String>,
    tags: Vec<String>,
    metadata: Value,
    created_at_ms: Option<u64>,
}

impl TraceSpec {
    /// A trace of `trace_type` holding `content`, with a random id, no tags, null metadata,
    /// created when it is recorded.
    pub fn new(trace_type: TraceType, content: impl Into<Value>) -> Self {
        TraceSpec {
            trace_type,
            content: content.into(),
            custom_id: None,
            tags: Vec::new(),
            metadata: Value::Null,
            created_at_ms: None,
        }
    }

    /// Records the trace under the custom id `id` (checked as [`TraceId::custom`] when it
    /// is recorded) instead of a random one.
    #[must_use]
    pub fn custom_id(mut self, id: impl Into<String>) -> Self {
        self.custom_id = Some(id.into());
        self
    }

    /// Adds the tag `tag` (a tag given twice is kept once).
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds the tags `tags`.
    #[must_use]
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: impl Into<Value>) -> Self {
        self.metadata = metadata.into();
        self
    }

    /// Sets the creation time, in ms since the Unix epoch (for traces imported from
    /// elsewhere), instead of the wall clock when the trace is recorded.
    #[must_use]
    pub fn created_at_ms(mut self, created_at_ms: u64) -> Self {
        self.created_at_ms = Some(created_at_ms);
        self
    }
}

/// The traces inside a caller's transaction, so that they commit or fail with everything
/// else in it.
///
/// ```
/// use inmem_engine::Database;
/// use inmem_primitives::trace::{TraceExt, TraceSpec, TraceType};
/// use inmem_primitives::RunId;
///
/// let db = Database::in_memory()?;
/// let run = RunId::random();
/// let mut txn = db.begin();
/// let parent = txn.traces(run).record(&TraceSpec::new(TraceType::Thought, "plan"))?;
/// let child = txn.traces(run).record_child(&parent, &TraceSpec::new(TraceType::Query, "q"))?;
/// assert!(txn.traces(run).get(&child)?.is_some(), "the transaction sees its own traces");
/// txn.rollback();
/// let mut txn = db.begin();
/// assert!(txn.traces(run).get(&parent)?.is_none(), "neither, or both");
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
pub trait TraceExt<'db> {
    /// The traces of `run`, read and written through this transaction.
    fn traces(&mut self, run: RunId) -> TraceTxn<'_, 'db>;
}

impl<'db> TraceExt<'db> for Transaction<'db> {
    fn traces(&mut self, run: RunId) -> TraceTxn<'_, 'db> {
        TraceTxn { txn: self, run }
    }
}

/// The traces of one run inside a transaction; see [`TraceExt::traces`]. The operations
/// are those of [`TraceStore`], with the same errors; none retries (retrying is for
/// whoever runs the transaction), and traces become visible when it commits.
pub struct TraceTxn<'t, 'db> {
    txn: &'t mut Transaction<'db>,
    run: RunId,
}

impl TraceTxn<'_, '_> {
    /// As [`TraceStore::record`].
    ///
    /// # Errors
    /// As [`TraceStore::record`].
    pub fn record(&mut self, spec: &TraceSpec) -> Result<TraceId> {
        self.insert(None, spec)
    }

    /// As [`TraceStore::record_child`]: the parent must exist as this transaction sees it.
    ///
    /// # Errors
    /// As [`TraceStore::record_child`].
    pub fn record_child(&mut self, parent: &TraceId, spec: &TraceSpec) -> Result<TraceId> {
        if self.txn.get(record_key(self.run, parent))?.is_none() {
            return Err(Error::ParentMissing);
        }
        self.insert(Some(parent), spec)
    }

    /// As [`TraceStore::get`].
    ///
    /// # Errors
    /// As [`TraceStore::get`].
    pub fn get(&mut self, id: &TraceId) -> Result<Option<TraceView>> {
        let key = record_key(self.run, id);
        match self.txn.get(&key)? {
            Some(stored) => TraceView::decode(&key, id.clone(), stored).map(Some),
            None => Ok(None),
        }
    }

    /// As [`TraceStore::query_by_type`].
    ///
    /// # Errors
    /// As [`TraceStore::query_by_type`].
    pub fn query_by_type(
        &mut self,
        trace_type: &TraceType,
        limit: usize,
    ) -> Result<Vec<TraceView>> {
        check_limit(limit)?;
        trace_type.check()?;
        let prefix = type_prefix(self.run, trace_type);
        self.listing(prefix, limit, |view| view.trace_type() == *trace_type)
    }

    /// As [`TraceStore::query_by_tag`].
    ///
    /// # Errors
    /// As [`TraceStore::query_by_tag`].
    pub fn query_by_tag(&mut self, tag: &str, limit: usize) -> Result<Vec<TraceView>> {
        check_limit(limit)?;
        check_tag(tag)?;
        let prefix =
            KeyBuf::new(self.run, TypeTag::Trace).push_u8(BY_TAG).push_component(tag.as_bytes());
        self.listing(prefix, limit, |view| view.has_tag(tag))
    }

    /// As [`TraceStore::query_by_time`].
    ///
    /// # Errors
    /// As [`TraceStore::query_by_time`].
    pub fn query_by_time(
        &mut self,
        range: impl RangeBounds<u64>,
        limit: usize,
    ) -> Result<Vec<TraceView>> {
        check_limit(limit)?;
        let Some((first, last)) = inclusive(&range) else {
            return Ok(Vec::new());
        };
        let index = KeyBuf::new(self.run, TypeTag::Trace).push_u8(BY_TIME);
        let id_offset = index.len() + size_of::<u64>();
        let start = index.clone().push_u64(first).finish();
        let end = prefix_end(index.push_u64(last).as_slice());
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        let entries = self.index_entries((Bound::Included(start), end), id_offset, limit)?;
        self.resolve(entries, |_| true)
    }

    /// As [`TraceStore::children`].
    ///
    /// # Errors
    /// As [`TraceStore::children`].
    pub fn children(&mut self, parent: &TraceId, limit: usize) -> Result<Vec<TraceView>> {
        check_limit(limit)?;
        if self.txn.get(record_key(self.run, parent))?.is_none() {
            return Err(Error::NotFound { what: TRACE });
        }
        self.children_unchecked(parent, limit)
    }

    /// As [`TraceStore::tree`]: read breadth first, without recursion.
    ///
    /// # Errors
    /// As [`TraceStore::tree`].
    pub fn tree(&mut self, root: &TraceId, limits: TreeLimits) -> Result<Option<TraceTree>> {
        limits.check()?;
        let Some(trace) = self.get(root)? else {
            return Ok(None);
        };
        let mut nodes = vec![Node { trace, parent: None, depth: 0 }];
        if nodes.len() > limits.nodes_max {
            return Err(limits.too_large(nodes.len()));
        }
        let mut next = 0;
        while let Some(node) = nodes.get(next) {
            let (id, depth) = (node.trace.id().clone(), node.depth);
            // One more than there is room for, to tell a full tree from one too large.
            let room = limits.nodes_max - nodes.len() + 1;
            let children = self.children_unchecked(&id, room)?;
            if !children.is_empty() && depth >= limits.depth_max {
                return Err(limits.too_deep(depth + 1));
            }
            if nodes.len() + children.len() > limits.nodes_max {
                return Err(limits.too_large(nodes.len() + children.len()));
            }
            let parent = Some(next);
            nodes.extend(children.into_iter().map(|trace| Node {
                trace,
                parent,
                depth: depth + 1,
            }));
            next += 1;
        }
        Ok(tree::assemble(nodes))
    }

    /// The first `limit` children of `parent`, whether or not it exists.
    fn children_unchecked(&mut self, parent: &TraceId, limit: usize) -> Result<Vec<TraceView>> {
        let prefix = KeyBuf::new(self.run, TypeTag::Trace)
            .push_u8(BY_PARENT)
            .push_component(&parent.key_bytes());
        self.listing(prefix, limit, |view| view.parent() == Some(parent))
    }

    /// Records a trace (under `parent`, already checked to exist): its record and every
    /// index entry, or, on an error, nothing.
    fn insert(&mut self, parent: Option<&TraceId>, spec: &TraceSpec) -> Result<TraceId> {
        spec.trace_type.check()?;
        let tags = distinct_tags(&spec.tags)?;
        let id = match &spec.custom_id {
            Some(text) => TraceId::custom(text)?,
            None => TraceId::random(),
        };
        let created_at_ms = spec.created_at_ms.unwrap_or_else(now_ms);
        let record = record::encode(&RecordParts {
            created_at_ms,
            trace_type: &spec.trace_type,
            parent,
            tags: &tags,
            content: &spec.content,
            metadata: &spec.metadata,
        })?;
        let key = record_key(self.run, &id);
        if self.txn.get(&key)?.is_some() {
            return Err(Error::AlreadyExists { what: TRACE });
        }
        let mut writes = Vec::with_capacity(3 + tags.len() + usize::from(parent.is_some()));
        writes.push((key, record));
        let index = IndexKeys { run: self.run, id: &id, created_at_ms };
        writes.push((index.by_type(&spec.trace_type), Vec::new()));
        writes.push((index.by_time(), Vec::new()));
        writes.extend(tags.iter().map(|tag| (index.by_tag(tag), Vec::new())));
        writes.extend(parent.map(|parent| (index.by_parent(parent), Vec::new())));
        self.put_all(&writes)?;
        Ok(id)
    }

    /// Buffers every write, or none: on an error, the writes already buffered are
    /// withdrawn (as deletes of keys that did not exist, which read as absent) before the
    /// error is returned, so that a caller's transaction that goes on holds no part of a
    /// trace.
    fn put_all(&mut self, writes: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (done, (key, value)) in writes.iter().enumerate() {
            if let Err(error) = self.txn.put(key, value) {
                for (key, _) in writes.iter().take(done) {
                    // Cannot fail: the key passed the engine's checks when it was put, and
                    // replacing a buffered write adds none.
                    self.txn.delete(key)?;
                }
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// The traces of the index entries under `prefix` (whose keys end in `created | id`),
    /// at most `limit`; `matches` checks that each agrees with its entry.
    fn listing(
        &mut self,
        prefix: KeyBuf,
        limit: usize,
        matches: impl Fn(&TraceView) -> bool,
    ) -> Result<Vec<TraceView>> {
        let id_offset = prefix.len() + size_of::<u64>();
        let start = Bound::Included(prefix.as_slice().to_vec());
        let end = prefix_end(prefix.as_slice()).map_or(Bound::Unbounded, Bound::Excluded);
        let entries = self.index_entries((start, end), id_offset, limit)?;
        self.resolve(entries, matches)
    }

    /// The first `limit` index entries in `range`, each with its creation time and id (the
    /// id starting at `id_offset`, after the creation time).
    fn index_entries(
        &mut self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        id_offset: usize,
        limit: usize,
    ) -> Result<Vec<(Bytes, u64, TraceId)>> {
        let time_offset = id_offset - size_of::<u64>();
        self.txn
            .range(range)?
            .take(limit)
            .map(|(key, _)| {
                let mut reader = KeyReader::new(key.get(time_offset..).unwrap_or_default());
                let created_at_ms = reader.read_u64().ok();
                let id = TraceId::from_key_bytes(reader.read_rest());
                match (created_at_ms, id) {
                    (Some(created_at_ms), Some(id)) => Ok((key, created_at_ms, id)),
                    _ => Err(Error::corrupt(&key, "trace index entry without a valid id")),
                }
            })
            .collect()
    }

    /// The trace of each index entry, checked to exist and to agree with it.
    fn resolve(
        &mut self,
        entries: Vec<(Bytes, u64, TraceId)>,
        matches: impl Fn(&TraceView) -> bool,
    ) -> Result<Vec<TraceView>> {
        let mut traces = Vec::with_capacity(entries.len());
        for (key, created_at_ms, id) in entries {
            let Some(trace) = self.get(&id)? else {
                return Err(Error::corrupt(&key, "trace index entry without its trace"));
            };
            if trace.created_at_ms() != created_at_ms || !matches(&trace) {
                return Err(Error::corrupt(&key, "trace index entry disagrees with its trace"));
            }
            traces.push(trace);
        }
        Ok(traces)
    }
}

impl std::fmt::Debug for TraceTxn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceTxn").field("run", &self.run).finish_non_exhaustive()
    }
}

/// The key of the record of the trace `id` of `run`.
fn record_key(run: RunId, id: &TraceId) -> Vec<u8> {
    id.push_to(KeyBuf::new(run, TypeTag::Trace).push_u8(RECORD)).finish()
}

/// The prefix of the by-type entries of `trace_type`.
fn type_prefix(run: RunId, trace_type: &TraceType) -> KeyBuf {
    let key = KeyBuf::new(run, TypeTag::Trace).push_u8(BY_TYPE).push_u8(trace_type.code());
    match trace_type {
        TraceType::Custom(name) => key.push_component(name.as_bytes()),
        _ => key,
    }
}

/// The index keys of one trace (see the module doc).
struct IndexKeys<'a> {
    run: RunId,
    id: &'a TraceId,
    created_at_ms: u64,
}

impl IndexKeys<'_> {
    fn finish(&self, prefix: KeyBuf) -> Vec<u8> {
        self.id.push_to(prefix.push_u64(self.created_at_ms)).finish()
    }

    fn by_type(&self, trace_type: &TraceType) -> Vec<u8> {
        self.finish(type_prefix(self.run, trace_type))
    }

    fn by_tag(&self, tag: &str) -> Vec<u8> {
        let prefix = KeyBuf::new(self.run, TypeTag::Trace).push_u8(BY_TAG);
        self.finish(prefix.push_component(tag.as_bytes()))
    }

    fn by_time(&self) -> Vec<u8> {
        self.finish(KeyBuf::new(self.run, TypeTag::Trace).push_u8(BY_TIME))
    }

    fn by_parent(&self, parent: &TraceId) -> Vec<u8> {
        let prefix = KeyBuf::new(self.run, TypeTag::Trace).push_u8(BY_PARENT);
        self.finish(prefix.push_component(&parent.key_bytes()))
    }
}

/// Checks a tag: 1 to [`TAG_LEN_MAX`] bytes.
fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() {
        return Err(Error::InvalidName { reason: "empty trace tag" });
    }
    if tag.len() > TAG_LEN_MAX {
        return Err(Error::LimitExceeded {
            what: "trace tag bytes",
            actual: tag.len() as u64,
            max: TAG_LEN_MAX as u64,
        });
    }
    Ok(())
}

/// The distinct tags of `tags`, each checked, in the order of their first occurrence.
fn distinct_tags(tags: &[String]) -> Result<Vec<&str>> {
    let mut distinct: Vec<&str> = Vec::with_capacity(tags.len().min(TAGS_MAX));
    for tag in tags {
        check_tag(tag)?;
        if !distinct.contains(&tag.as_str()) {
            if distinct.len() == TAGS_MAX {
                return Err(Error::LimitExceeded {
                    what: "trace tags",
                    actual: TAGS_MAX as u64 + 1,
                    max: TAGS_MAX as u64,
                });
            }
            distinct.push(tag);
        }
    }
    Ok(distinct)
}

/// Checks a listing's limit against [`QUERY_LIMIT_MAX`].
fn check_limit(limit: usize) -> Result<()> {
    if limit > QUERY_LIMIT_MAX {
        return Err(Error::LimitExceeded {
            what: "trace query limit",
            actual: limit as u64,
            max: QUERY_LIMIT_MAX as u64,
        });
    }
    Ok(())
}

/// The first and last ms of `range`, if it holds any.
fn inclusive(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let first = match range.start_bound() {
        Bound::Included(&first) => first,
        Bound::Excluded(&first) => first.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end_bound() {
        Bound::Included(&last) => last,
        Bound::Excluded(&last) => last.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}
