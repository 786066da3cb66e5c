//! StateCell: named cells of a run, each holding one [`Value`] and a version counter
//! (docs/architecture.md §9).
//!
//! # What it promises
//!
//! - A cell's version is 1 when the cell is created (by [`StateCell::init`],
//!   [`StateCell::set`], or [`StateCell::cas`] against version 0) and grows by exactly one
//!   with every successful write; a write that does not happen (a mismatching compare and
//!   swap, a refused init) changes nothing.
//! - A deleted cell is gone: no record is kept. A cell created again under the same name
//!   is a new cell and starts again at version 1. A compare and swap that expected a
//!   version of the old cell can therefore match the new one (the ABA case); callers who
//!   delete and recreate cells under a name that others compare-and-swap keep a generation
//!   in the value itself.
//! - Every operation runs in a transaction: on the handle, one implicit transaction per
//!   call, retried on conflict as [`inmem_engine::Database::transaction_typed`] does (so
//!   that, under contention, [`StateCell::transition`] loses no update); through
//!   [`StateCellExt::state`], inside the caller's transaction, committing or failing with
//!   everything else in it.
//! - Reads return a [`StateView`]: the stored bytes, refcounted, with the header read
//!   through bytemuck and the value read in place.
//!
//! # Stored format
//!
//! One engine key per cell; nothing else is stored under the StateCell tag.
//!
//! ```text
//! key   = run id (16) | TypeTag::State (0x03) | cell name (UTF-8, raw: the rest of the key)
//! value = CellHeader (16) | encoded Value (value/encode.rs, from its format version byte)
//! ```
//!
//! | key offset | size | field |
//! |---|---|---|
//! | 0 | 16 | run id |
//! | 16 | 1 | type tag 0x03 |
//! | 17 | n ≥ 1 | cell name, UTF-8 bytes as given (not escaped, not terminated) |
//!
//! The value's layout is documented on `CellHeader`. Names order the cells bytewise, so
//! [`StateCell::list`] returns them in byte order. A record shorter than its header, with a
//! version of 0 or a key that is not UTF-8 is [`Error::Corrupt`]; a value that does not
//! decode is [`Error::Decode`] with an offset counted from the start of the stored value.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use inmem_engine::{Bytes, Database, Transaction, TransactionOptions};

use crate::clock::now_ms;
use crate::error::{DecodeError, Error, Result};
use crate::key::{tag_prefix, KeyBuf, TAG_PREFIX_LEN};
use crate::run_id::RunId;
use crate::tag::TypeTag;
use crate::value::{Value, ValueRef};
use crate::view::{U64Le, ValueView, View};

/// What errors call a state cell.
const CELL: &str = "state cell";

/// The version of a newly created cell.
const FIRST_VERSION: u64 = 1;

/// The version [`StateCell::cas`] expects of a cell that does not exist.
pub const ABSENT_VERSION: u64 = 0;

// An absent cell must never be mistaken for a stored one.
const _: () = assert!(ABSENT_VERSION < FIRST_VERSION);

/// A state cell's stored value: this header, then the cell's encoded [`Value`].
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | cell version, u64 LE, ≥ 1 |
/// | 8 | 8 | updated at, ms since the Unix epoch (wall clock of the writer), u64 LE |
/// | 16 | .. | the encoded `Value`, starting with its format version byte |
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct CellHeader {
    version: U64Le,
    updated_at_ms: U64Le,
}

/// The bytes of [`CellHeader`].
const HEADER_LEN: usize = size_of::<CellHeader>();

// The layout table above: two u64 fields, no padding, alignment 1.
const _: () = assert!(HEADER_LEN == 16 && align_of::<CellHeader>() == 1);

/// Named cells of a run, each a [`Value`] with a version counter; a stateless handle over
/// the database (all state lives in the keyspace).
///
/// ```
/// use std::sync::Arc;
/// use inmem_engine::Database;
/// use inmem_primitives::state_cell::{CasOutcome, StateCell};
/// use inmem_primitives::{RunId, Value, ValueRef};
///
/// let cells = StateCell::new(Arc::new(Database::in_memory()?));
/// let run = RunId::random();
///
/// assert_eq!(cells.init(run, "phase", &Value::from("plan"))?, 1);
/// let view = cells.read(run, "phase")?.expect("just created");
/// assert_eq!((view.version(), view.value()), (1, ValueRef::Str("plan")));
///
/// // Compare and swap on the version: only one writer of version 1 wins.
/// assert_eq!(cells.cas(run, "phase", 1, &Value::from("act"))?, CasOutcome::Written(2));
/// assert_eq!(
///     cells.cas(run, "phase", 1, &Value::from("stale"))?,
///     CasOutcome::Mismatch { current: Some(2) }
/// );
///
/// // A transition computes the new value from the current one, retried on conflict.
/// cells.set(run, "steps", &Value::from(0))?;
/// let after = cells.transition(run, "steps", |steps| {
///     Ok(Value::from(steps.as_int().unwrap_or(0) + 1))
/// })?;
/// assert_eq!((after.version(), after.value()), (2, ValueRef::Int(1)));
/// assert_eq!(cells.list(run)?, ["phase", "steps"]);
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
#[derive(Clone)]
pub struct StateCell {
    db: Arc<Database>,
}

impl StateCell {
    /// A handle on the state cells of `db`.
    pub fn new(db: Arc<Database>) -> Self {
        StateCell { db }
    }

    /// Runs `f` in one implicit transaction, retried on conflict.
    fn transact<T>(&self, f: impl FnMut(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        self.db.transaction_typed(TransactionOptions::default(), f).map(|committed| committed.value)
    }

    /// Creates the cell `name` of `run` holding `value`, at version 1, if it does not exist.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if it does (nothing changes); [`Error::InvalidName`] for an
    /// empty name; [`Error::LimitExceeded`] for a value nested too deeply; the engine's
    /// `LimitExceeded` for a name or value over its limits.
    pub fn init(&self, run: RunId, name: &str, value: &Value) -> Result<u64> {
        self.transact(|txn| txn.state(run).init(name, value))
    }

    /// The cell `name` of `run`, if it exists.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Decode`] for a stored record that does not decode;
    /// [`Error::InvalidName`] for an empty name.
    pub fn read(&self, run: RunId, name: &str) -> Result<Option<StateView>> {
        self.transact(|txn| txn.state(run).read(name))
    }

    /// Writes `value` to the cell `name` if its version is `expected_version`
    /// ([`ABSENT_VERSION`], 0, for a cell that does not exist: it is then created at
    /// version 1). A mismatch is an outcome, not an error: it writes nothing and says the
    /// current version (`None` for an absent cell).
    ///
    /// # Errors
    /// As [`StateCell::set`].
    pub fn cas(
        &self,
        run: RunId,
        name: &str,
        expected_version: u64,
        value: &Value,
    ) -> Result<CasOutcome> {
        self.transact(|txn| txn.state(run).cas(name, expected_version, value))
    }

    /// Writes `value` to the cell `name`, whatever its version, creating it if absent;
    /// returns the cell's new version.
    ///
    /// # Errors
    /// [`Error::Overflow`] for a cell at version `u64::MAX`; [`Error::Corrupt`] for a stored
    /// record without a valid header; otherwise as [`StateCell::init`].
    pub fn set(&self, run: RunId, name: &str, value: &Value) -> Result<u64> {
        self.transact(|txn| txn.state(run).set(name, value))
    }

    /// Deletes the cell `name`; whether it existed. A cell created again under the name
    /// starts at version 1 (see the module doc).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name; the engine's errors.
    pub fn delete(&self, run: RunId, name: &str) -> Result<bool> {
        self.transact(|txn| txn.state(run).delete(name))
    }

    /// Whether the cell `name` exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name; the engine's errors.
    pub fn exists(&self, run: RunId, name: &str) -> Result<bool> {
        self.transact(|txn| txn.state(run).exists(name))
    }

    /// The names of `run`'s cells, in byte order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a stored key whose name is not UTF-8.
    pub fn list(&self, run: RunId) -> Result<Vec<String>> {
        self.transact(|txn| txn.state(run).list())
    }

    /// `run`'s cells with their views, in name byte order.
    ///
    /// # Errors
    /// As [`StateCell::list`] and [`StateCell::read`].
    pub fn entries(&self, run: RunId) -> Result<Vec<(String, StateView)>> {
        self.transact(|txn| txn.state(run).entries())
    }

    /// Replaces the value of the cell `name` by `f(current value)` and returns the cell as
    /// written. On conflict with a concurrent writer the transaction, and `f` with it, runs
    /// again on the newer value (bounded by the database's retry policy), so no update is
    /// lost: `f` must have no effects besides computing the value.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the cell does not exist; whatever `f` returns (nothing is
    /// written); the last conflict when attempts run out; otherwise as [`StateCell::set`].
    pub fn transition(
        &self,
        run: RunId,
        name: &str,
        mut f: impl FnMut(&ValueRef<'_>) -> Result<Value>,
    ) -> Result<StateView> {
        self.transact(|txn| txn.state(run).transition(name, &mut f))
    }
}

impl std::fmt::Debug for StateCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCell").finish_non_exhaustive()
    }
}

/// What a compare and swap did: [`StateCell::cas`], [`StateCellTxn::cas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CasOutcome {
    /// The cell had the expected version; the value is written at this new version.
    Written(u64),
    /// The cell did not have the expected version; nothing is written.
    Mismatch {
        /// The cell's version, or `None` if it does not exist.
        current: Option<u64>,
    },
}

impl CasOutcome {
    /// Whether the value was written.
    pub fn is_written(&self) -> bool {
        matches!(self, CasOutcome::Written(_))
    }

    /// The new version, if the value was written.
    pub fn written_version(&self) -> Option<u64> {
        match *self {
            CasOutcome::Written(version) => Some(version),
            CasOutcome::Mismatch { .. } => None,
        }
    }
}

/// A state cell as stored: its version, when it was written, and its value read in place.
/// Cloning it shares the stored bytes.
#[derive(Clone, PartialEq)]
pub struct StateView {
    /// Copied out of the stored bytes (16 bytes, read through bytemuck).
    header: CellHeader,
    /// The bytes after the header, checked once to be an encoded value.
    value: ValueView,
}

impl StateView {
    /// Reads the record stored at `key`: the header through bytemuck, the value checked
    /// once (and not copied).
    fn decode(key: &[u8], stored: Bytes) -> Result<StateView> {
        let stored = View::new(stored);
        let (header, body) = stored
            .split_header::<CellHeader>()
            .map_err(|_| Error::corrupt(key, "state cell record shorter than its header"))?;
        let header = *header;
        if header.version.get() < FIRST_VERSION {
            return Err(Error::corrupt(key, "state cell version 0"));
        }
        let value = ValueView::new(body)
            .map_err(|error| DecodeError::new(HEADER_LEN + error.offset, error.reason))?;
        Ok(StateView { header, value })
    }

    /// The cell's version: 1 when created, one more with every write.
    pub fn version(&self) -> u64 {
        self.header.version.get()
    }

    /// When the cell was last written, in ms since the Unix epoch (the writer's wall clock).
    pub fn updated_at_ms(&self) -> u64 {
        self.header.updated_at_ms.get()
    }

    /// The cell's value, read in place.
    pub fn value(&self) -> ValueRef<'_> {
        self.value.value()
    }

    /// An owned copy of the cell's value.
    pub fn to_value(&self) -> Value {
        self.value.to_value()
    }

    /// The cell's value as a view of its encoded bytes.
    pub fn value_view(&self) -> &ValueView {
        &self.value
    }
}

impl std::fmt::Debug for StateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView")
            .field("version", &self.version())
            .field("updated_at_ms", &self.updated_at_ms())
            .field("value", &self.value())
            .finish()
    }
}

/// The state cell operations inside a caller's transaction, so that they commit or fail
/// with everything else in it.
///
/// ```
/// use inmem_engine::Database;
/// use inmem_primitives::state_cell::StateCellExt;
/// use inmem_primitives::{RunId, Value};
///
/// let db = Database::in_memory()?;
/// let run = RunId::random();
/// let mut txn = db.begin();
/// txn.state(run).init("a", &Value::from(1))?;
/// txn.state(run).init("b", &Value::from(2))?;
/// txn.rollback();
/// let mut txn = db.begin();
/// assert!(txn.state(run).list()?.is_empty(), "neither, or both");
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
pub trait StateCellExt<'db> {
    /// The state cells of `run`, read and written through this transaction.
    fn state(&mut self, run: RunId) -> StateCellTxn<'_, 'db>;
}

impl<'db> StateCellExt<'db> for Transaction<'db> {
    fn state(&mut self, run: RunId) -> StateCellTxn<'_, 'db> {
        StateCellTxn { txn: self, run }
    }
}

/// The state cells of one run inside a transaction; see [`StateCellExt::state`]. The
/// operations are those of [`StateCell`], with the same errors; none retries (retrying is
/// for whoever runs the transaction), and writes become visible when it commits.
pub struct StateCellTxn<'t, 'db> {
    txn: &'t mut Transaction<'db>,
    run: RunId,
}

impl StateCellTxn<'_, '_> {
    /// As [`StateCell::init`].
    ///
    /// # Errors
    /// As [`StateCell::init`].
    pub fn init(&mut self, name: &str, value: &Value) -> Result<u64> {
        let key = cell_key(self.run, name)?;
        if self.txn.get(&key)?.is_some() {
            return Err(Error::AlreadyExists { what: CELL });
        }
        self.write(&key, FIRST_VERSION, value)?;
        Ok(FIRST_VERSION)
    }

    /// As [`StateCell::read`].
    ///
    /// # Errors
    /// As [`StateCell::read`].
    pub fn read(&mut self, name: &str) -> Result<Option<StateView>> {
        let key = cell_key(self.run, name)?;
        self.txn.get(&key)?.map(|stored| StateView::decode(&key, stored)).transpose()
    }

    /// As [`StateCell::cas`].
    ///
    /// # Errors
    /// As [`StateCell::cas`].
    pub fn cas(&mut self, name: &str, expected_version: u64, value: &Value) -> Result<CasOutcome> {
        let key = cell_key(self.run, name)?;
        let current = self.stored_version(&key)?;
        if current.unwrap_or(ABSENT_VERSION) != expected_version {
            return Ok(CasOutcome::Mismatch { current });
        }
        let version = next_version(current)?;
        self.write(&key, version, value)?;
        Ok(CasOutcome::Written(version))
    }

    /// As [`StateCell::set`].
    ///
    /// # Errors
    /// As [`StateCell::set`].
    pub fn set(&mut self, name: &str, value: &Value) -> Result<u64> {
        let key = cell_key(self.run, name)?;
        let version = next_version(self.stored_version(&key)?)?;
        self.write(&key, version, value)?;
        Ok(version)
    }

    /// As [`StateCell::delete`].
    ///
    /// # Errors
    /// As [`StateCell::delete`].
    pub fn delete(&mut self, name: &str) -> Result<bool> {
        let key = cell_key(self.run, name)?;
        let existed = self.txn.get(&key)?.is_some();
        if existed {
            self.txn.delete(&key)?;
        }
        Ok(existed)
    }

    /// As [`StateCell::exists`].
    ///
    /// # Errors
    /// As [`StateCell::exists`].
    pub fn exists(&mut self, name: &str) -> Result<bool> {
        let key = cell_key(self.run, name)?;
        Ok(self.txn.get(&key)?.is_some())
    }

    /// As [`StateCell::list`].
    ///
    /// # Errors
    /// As [`StateCell::list`].
    pub fn list(&mut self) -> Result<Vec<String>> {
        let prefix = tag_prefix(self.run, TypeTag::State);
        self.txn.prefix(prefix)?.map(|(key, _)| cell_name(&key)).collect()
    }

    /// As [`StateCell::entries`].
    ///
    /// # Errors
    /// As [`StateCell::entries`].
    pub fn entries(&mut self) -> Result<Vec<(String, StateView)>> {
        let prefix = tag_prefix(self.run, TypeTag::State);
        self.txn
            .prefix(prefix)?
            .map(|(key, stored)| Ok((cell_name(&key)?, StateView::decode(&key, stored)?)))
            .collect()
    }

    /// As [`StateCell::transition`], calling `f` once: a conflict surfaces at the commit
    /// of this transaction, and running it again is for whoever runs it.
    ///
    /// # Errors
    /// As [`StateCell::transition`].
    pub fn transition(
        &mut self,
        name: &str,
        f: impl FnOnce(&ValueRef<'_>) -> Result<Value>,
    ) -> Result<StateView> {
        let key = cell_key(self.run, name)?;
        let Some(stored) = self.txn.get(&key)? else {
            return Err(Error::NotFound { what: CELL });
        };
        let current = StateView::decode(&key, stored)?;
        let value = f(&current.value())?;
        let version = next_version(Some(current.version()))?;
        let written = self.write(&key, version, &value)?;
        StateView::decode(&key, written)
    }

    /// The version of the record at `key`, if any, from its header alone (the value is
    /// about to be replaced, so it is not checked).
    fn stored_version(&mut self, key: &[u8]) -> Result<Option<u64>> {
        let Some(stored) = self.txn.get(key)? else {
            return Ok(None);
        };
        let header = stored
            .get(..HEADER_LEN)
            .and_then(|bytes| bytemuck::try_from_bytes::<CellHeader>(bytes).ok())
            .ok_or_else(|| Error::corrupt(key, "state cell record shorter than its header"))?;
        match header.version.get() {
            ABSENT_VERSION => Err(Error::corrupt(key, "state cell version 0")),
            version => Ok(Some(version)),
        }
    }

    /// Buffers the record of the cell at `key`: `version`, now, `value` (see `CellHeader`);
    /// returns the bytes written.
    fn write(&mut self, key: &[u8], version: u64, value: &Value) -> Result<Bytes> {
        debug_assert!(version >= FIRST_VERSION, "a stored cell has a version of at least 1");
        let encoded = value.try_encode()?;
        let header =
            CellHeader { version: U64Le::new(version), updated_at_ms: U64Le::new(now_ms()) };
        let mut stored = Vec::with_capacity(HEADER_LEN + encoded.len());
        stored.extend_from_slice(bytemuck::bytes_of(&header));
        stored.extend_from_slice(&encoded);
        self.txn.put(key, &stored)?;
        Ok(Bytes::from(stored))
    }
}

impl std::fmt::Debug for StateCellTxn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCellTxn").field("run", &self.run).finish_non_exhaustive()
    }
}

/// The key of the cell `name` of `run` (see the module doc).
fn cell_key(run: RunId, name: &str) -> Result<Vec<u8>> {
    if name.is_empty() {
        return Err(Error::InvalidName { reason: "empty" });
    }
    Ok(KeyBuf::with_capacity(run, TypeTag::State, name.len()).push_bytes(name.as_bytes()).finish())
}

/// The cell name of a key found under the StateCell tag.
fn cell_name(key: &[u8]) -> Result<String> {
    let name = key.get(TAG_PREFIX_LEN..).unwrap_or_default();
    match std::str::from_utf8(name) {
        Ok(name) if !name.is_empty() => Ok(name.to_owned()),
        Ok(_) => Err(Error::corrupt(key, "state cell key without a name")),
        Err(_) => Err(Error::corrupt(key, "state cell name is not UTF-8")),
    }
}

/// The version a write gives a cell now at `current` (`None`: absent).
fn next_version(current: Option<u64>) -> Result<u64> {
    match current {
        None => Ok(FIRST_VERSION),
        Some(version) => version.checked_add(1).ok_or(Error::Overflow),
    }
}
