//! EventLog: an append-only, hash-chained log of events per run (docs/architecture.md §9).
//!
//! Events of a run have dense sequence numbers from 0. Each holds a type, a payload
//! ([`Value`]), a timestamp, the previous event's hash and its own ([`event_hash`]), so
//! that [`EventLog::verify_chain`] finds any event that was modified, removed or reordered.
//! There is no update and no delete.
//!
//! Every operation exists twice: on [`EventLog`], in one implicit transaction of its own,
//! and on [`EventLogTxn`] (through [`EventLogExt::events`] on a [`Transaction`]), so that an
//! append commits or fails together with whatever else the transaction does. The handle's
//! methods only open the transaction and call the [`EventLogTxn`] method; each operation has
//! one implementation.
//!
//! # Layout
//!
//! All keys of a run's log start with `run id (16 bytes) | 0x02` ([`TypeTag::Event`]),
//! then a sub-tag byte:
//!
//! ```text
//! head   key = run id | 0x02 | 0x00
//!        value = len (u64 LE) | last timestamp ms (u64 LE) | last hash (32)      48 bytes
//! event  key = run id | 0x02 | 0x01 | seq (u64 BE)
//!        value = seq (u64 LE) | timestamp ms (u64 LE) | prev hash (32) | hash (32)
//!                | type len (u32 LE) | type (UTF-8) | payload (encoded Value)
//! index  key = run id | 0x02 | 0x02 | event type (escaped component) | seq (u64 BE)
//!        value = empty
//! ```
//!
//! | record | offset | size | content |
//! |---|---|---|---|
//! | head value | 0 | 8 | the number of events (the next sequence), u64 LE |
//! | head value | 8 | 8 | the last event's timestamp, u64 LE |
//! | head value | 16 | 32 | the last event's hash; zeros ([`GENESIS_HASH`]) when empty |
//! | event value | 0 | 8 | the sequence, u64 LE (equal to the key's) |
//! | event value | 8 | 8 | the timestamp, ms since the Unix epoch, u64 LE |
//! | event value | 16 | 32 | the previous event's hash ([`GENESIS_HASH`] for event 0) |
//! | event value | 48 | 32 | the event's hash ([`event_hash`]) |
//! | event value | 80 | 4 | the type's length in bytes, u32 LE |
//! | event value | 84 | type length | the type, UTF-8 |
//! | event value | 84 + type length | rest | the payload, an encoded [`Value`] |
//!
//! Sequences in keys are big-endian so that events order by sequence; the type in an
//! index key is an escaped, terminated component ([`crate::KeyBuf::push_component`]), so
//! that one type's entries are one range, ordered by sequence, and no type's range holds
//! another's (`"a"` and `"a\0b"` included). A run without events has no head key.
//!
//! # Appends serialize
//!
//! An append reads the head record, writes the event at the head's length, its index entry
//! and the new head, all in one transaction. Two concurrent appends to one run both write
//! the head key, so the engine's first-committer-wins validation lets one commit and makes
//! the other conflict; [`EventLog::append`] retries it on a fresh snapshot, where it takes
//! the next sequence. No two events get one sequence, and none is skipped. Appends to
//! different runs touch different keys and never conflict. A timestamp is never earlier
//! than the one before it in the run (a clock stepping back is clamped to the last one).
//!
//! # read_by_type
//!
//! Served by the type index: an entry per event, written in the transaction that appends
//! the event (so never missing, never orphaned), and read as one range of keys, so the
//! query costs the events of that type and not a scan of the log.
//!
//! # Verification
//!
//! [`EventLog::verify_chain`] reads the head and every event of the run from one snapshot,
//! recomputes each hash, checks each previous-hash link, the density of the sequences and
//! the head, and names the first sequence that fails ([`ChainReport`]).

mod format;
mod verify;

use std::collections::VecDeque;
use std::iter::FusedIterator;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use inmem_engine::{Database, Transaction, TransactionOptions};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::key::KeyBuf;
use crate::run_id::RunId;
use crate::tag::TypeTag;
use crate::value::Value;
use crate::view::U32Le;
use format::{
    encode_event, event_key, event_key_seq, events_end, head_key, type_index_key,
    type_index_key_seq, type_index_prefix, EventHeader, HeadRecord, SUB_EVENT,
};

pub(crate) use format::is_index_sub_tag;
pub use format::{event_hash, EventHash, EventView, EVENT_TYPE_MAX, GENESIS_HASH};
pub use verify::{BreakReason, ChainBreak, ChainReport};

/// The events one page of an [`EventIter`] reads, in one transaction.
const ITER_PAGE: u64 = 256;

/// A run's append-only event log.
///
/// ```
/// use std::sync::Arc;
/// use inmem_engine::Database;
/// use inmem_primitives::event_log::{EventLog, EventLogExt};
/// use inmem_primitives::{RunId, Value, ValueRef};
///
/// let db = Arc::new(Database::in_memory()?);
/// let log = EventLog::new(db.clone());
/// let run = RunId::random();
///
/// assert_eq!(log.append(run, "tool_call", &Value::from("search"))?, 0);
/// assert_eq!(log.append(run, "tool_result", &Value::from(3))?, 1);
///
/// let event = log.read(run, 1)?.expect("appended");
/// assert_eq!((event.seq(), event.event_type()), (1, "tool_result"));
/// assert_eq!(event.payload(), ValueRef::Int(3));
/// assert_eq!(event.prev_hash(), log.read(run, 0)?.expect("appended").hash());
/// assert_eq!(log.len(run)?, 2);
/// assert!(log.verify_chain(run)?.is_verified());
///
/// // The same operations inside a transaction, atomic with anything else in it.
/// db.transaction_typed(Default::default(), |txn| {
///     let mut events = txn.events(run);
///     events.append("decision", &Value::from(true))?;
///     events.append("decision", &Value::from(false))?;
///     Ok::<_, inmem_primitives::Error>(())
/// })?;
/// assert_eq!(log.read_by_type(run, "decision")?.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct EventLog {
    db: Arc<Database>,
}

impl EventLog {
    /// The event logs of `db`'s runs.
    pub fn new(db: Arc<Database>) -> Self {
        EventLog { db }
    }

    /// Runs `f` on `run`'s log in a transaction of its own, retried on conflict.
    fn with_txn<T>(
        &self,
        run: RunId,
        mut f: impl FnMut(&mut EventLogTxn<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.db
            .transaction_typed(TransactionOptions::default(), |txn| f(&mut txn.events(run)))
            .map(|committed| committed.value)
    }

    /// Appends an event to `run`'s log and returns its sequence; retried on conflict with
    /// concurrent appenders, so it fails with a conflict only when the database's retry
    /// policy runs out. See [`EventLogTxn::append`].
    ///
    /// # Errors
    /// As [`EventLogTxn::append`]; [`Error::Engine`] for a conflict when retries run out.
    pub fn append(&self, run: RunId, event_type: &str, payload: &Value) -> Result<u64> {
        self.with_txn(run, |events| events.append(event_type, payload))
    }

    /// Event `seq` of `run`, if there is one. See [`EventLogTxn::read`].
    ///
    /// # Errors
    /// As [`EventLogTxn::read`].
    pub fn read(&self, run: RunId, seq: u64) -> Result<Option<EventView>> {
        self.with_txn(run, |events| events.read(seq))
    }

    /// The events of `run` with sequences in `range`, in order. See
    /// [`EventLogTxn::read_range`].
    ///
    /// # Errors
    /// As [`EventLogTxn::read_range`].
    pub fn read_range(&self, run: RunId, range: impl RangeBounds<u64>) -> Result<Vec<EventView>> {
        let (start, end) = seq_bounds(&range);
        self.with_txn(run, |events| events.read_range(start..end))
    }

    /// The last event of `run`, if it has any.
    ///
    /// # Errors
    /// As [`EventLogTxn::head`].
    pub fn head(&self, run: RunId) -> Result<Option<EventView>> {
        self.with_txn(run, |events| events.head())
    }

    /// The number of events of `run` (the next event's sequence).
    ///
    /// # Errors
    /// As [`EventLogTxn::len`].
    pub fn len(&self, run: RunId) -> Result<u64> {
        self.with_txn(run, |events| events.len())
    }

    /// Whether `run` has no events.
    ///
    /// # Errors
    /// As [`EventLogTxn::len`].
    pub fn is_empty(&self, run: RunId) -> Result<bool> {
        self.with_txn(run, |events| events.is_empty())
    }

    /// The events of `run` of type `event_type`, in sequence order. See
    /// [`EventLogTxn::read_by_type`].
    ///
    /// # Errors
    /// As [`EventLogTxn::read_by_type`].
    pub fn read_by_type(&self, run: RunId, event_type: &str) -> Result<Vec<EventView>> {
        self.with_txn(run, |events| events.read_by_type(event_type))
    }

    /// Checks `run`'s chain from one snapshot. See [`EventLogTxn::verify_chain`].
    ///
    /// # Errors
    /// As [`EventLogTxn::verify_chain`].
    pub fn verify_chain(&self, run: RunId) -> Result<ChainReport> {
        self.with_txn(run, |events| events.verify_chain())
    }

    /// An iterator over every event of `run`; see [`EventLog::iter_range`].
    pub fn iter(&self, run: RunId) -> EventIter {
        self.iter_range(run, ..)
    }

    /// An iterator over the events of `run` with sequences in `range`, in order.
    ///
    /// It reads 256 events at a time, each page in a transaction of
    /// its own, so memory stays bounded however long the log. Its end is fixed when it
    /// reads its first page: the events it yields are those in `range` that existed then
    /// (events never change once appended, so the pages agree with each other); events
    /// appended later are not yielded. After an error it yields nothing more.
    pub fn iter_range(&self, run: RunId, range: impl RangeBounds<u64>) -> EventIter {
        let (next, end) = seq_bounds(&range);
        EventIter { log: self.clone(), run, next, end, end_fixed: false, page: VecDeque::new() }
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

/// The operations of [`EventLog`] on a transaction: `txn.events(run).append(..)`.
pub trait EventLogExt<'db> {
    /// `run`'s event log as this transaction sees it.
    fn events<'t>(&'t mut self, run: RunId) -> EventLogTxn<'t, 'db>;
}

impl<'db> EventLogExt<'db> for Transaction<'db> {
    fn events<'t>(&'t mut self, run: RunId) -> EventLogTxn<'t, 'db> {
        EventLogTxn { txn: self, run }
    }
}

/// A run's event log inside a transaction (see [`EventLogExt::events`]): reads see the
/// transaction's own appends, and appends become visible when, and only if, it commits.
pub struct EventLogTxn<'t, 'db> {
    txn: &'t mut Transaction<'db>,
    run: RunId,
}

impl EventLogTxn<'_, '_> {
    /// Appends an event of type `event_type` with `payload` and returns its sequence: the
    /// log's length before it. The event's timestamp is now (ms since the Unix epoch), or
    /// the previous event's if the clock went back; its previous hash is the last event's.
    ///
    /// Writes the event, its type index entry and the head record; the head record is what
    /// makes a concurrent append to the run conflict (see the module doc). If an error
    /// stops the append after a write, the writes it made are undone (replaced by deletes
    /// of the keys, which did not exist), so the transaction holds no part of it.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty type; [`Error::LimitExceeded`] for a type longer
    /// than [`EVENT_TYPE_MAX`] bytes or a payload nested deeper than [`crate::DEPTH_MAX`];
    /// [`Error::Engine`] for a record over the engine's value limit or a transaction over
    /// its write limit; [`Error::Corrupt`] for a head record that does not decode.
    pub fn append(&mut self, event_type: &str, payload: &Value) -> Result<u64> {
        check_event_type(event_type)?;
        let payload = payload.try_encode()?;
        let head = self.head_record()?;
        let seq = head.len.get();
        let len = seq.checked_add(1).ok_or(Error::LimitExceeded {
            what: "events in a run",
            actual: u64::MAX,
            max: u64::MAX - 1,
        })?;
        let timestamp_ms = now_ms().max(head.last_timestamp_ms.get());
        let hash = event_hash(self.run, seq, timestamp_ms, &head.last_hash, event_type, &payload);
        let header = EventHeader {
            seq: seq.into(),
            timestamp_ms: timestamp_ms.into(),
            prev_hash: head.last_hash,
            hash,
            // At most EVENT_TYPE_MAX, checked above.
            type_len: U32Le::new(event_type.len() as u32),
        };
        let new_head =
            HeadRecord { len: len.into(), last_timestamp_ms: timestamp_ms.into(), last_hash: hash };
        let event_key = event_key(self.run, seq);
        let index_key = type_index_key(self.run, event_type, seq);
        // The event first: the write most likely to fail (on the value limit), before any.
        self.txn.put(&event_key, encode_event(&header, event_type, &payload))?;
        let rest = self
            .txn
            .put(&index_key, b"")
            .and_then(|()| self.txn.put(head_key(self.run), bytemuck::bytes_of(&new_head)));
        if let Err(error) = rest {
            self.undo(&[&event_key, &index_key]);
            return Err(error.into());
        }
        Ok(seq)
    }

    /// Replaces this transaction's writes of `keys` (keys that did not exist) by deletes.
    #[cold]
    fn undo(&mut self, keys: &[&KeyBuf]) {
        for key in keys {
            // A key this transaction wrote is in its write set, so its delete replaces the
            // write and cannot fail on the write limit; a key it could not write needs
            // no undo, and its delete fails the same way (that error is the append's).
            let _ = self.txn.delete(key);
        }
    }

    /// The head record, or the empty one for a run without events.
    fn head_record(&mut self) -> Result<HeadRecord> {
        let key = head_key(self.run);
        match self.txn.get(&key)? {
            None => Ok(HeadRecord::EMPTY),
            Some(stored) => HeadRecord::decode(&key, &stored),
        }
    }

    /// Event `seq`, if there is one: a view of its stored record (one engine read).
    ///
    /// # Errors
    /// [`Error::Decode`] for a record that does not decode; [`Error::Corrupt`] for a
    /// record that holds another sequence.
    pub fn read(&mut self, seq: u64) -> Result<Option<EventView>> {
        let key = event_key(self.run, seq);
        match self.txn.get(&key)? {
            None => Ok(None),
            Some(stored) => decode_event(key.as_slice(), seq, stored).map(Some),
        }
    }

    /// The events with sequences in `range`, in order: exactly those in
    /// `range` below the log's length, each present.
    ///
    /// # Errors
    /// As [`EventLogTxn::read`]; [`Error::Corrupt`] for an event missing below the log's
    /// length.
    pub fn read_range(&mut self, range: impl RangeBounds<u64>) -> Result<Vec<EventView>> {
        let (start, end) = seq_bounds(&range);
        let len = self.len()?;
        self.read_range_within(start, end.min(len))
    }

    /// The events `start..end`, which must all exist (`end` is at most the length).
    fn read_range_within(&mut self, start: u64, end: u64) -> Result<Vec<EventView>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let count = end - start;
        let mut events = Vec::with_capacity(count.min(ITER_PAGE) as usize);
        let bounds = event_key(self.run, start).finish()..event_key(self.run, end).finish();
        for (key, stored) in self.txn.range(bounds)? {
            let expected = start + events.len() as u64;
            let seq = event_key_seq(&key)?;
            if seq != expected {
                return Err(missing(self.run, expected));
            }
            events.push(decode_event(&key, seq, stored)?);
        }
        if (events.len() as u64) < count {
            return Err(missing(self.run, start + events.len() as u64));
        }
        Ok(events)
    }

    /// The last event, if there is any.
    ///
    /// # Errors
    /// As [`EventLogTxn::read`]; [`Error::Corrupt`] if the head record does not decode or
    /// its last event is missing.
    pub fn head(&mut self) -> Result<Option<EventView>> {
        let Some(last) = self.len()?.checked_sub(1) else {
            return Ok(None);
        };
        match self.read(last)? {
            Some(event) => Ok(Some(event)),
            None => Err(missing(self.run, last)),
        }
    }

    /// The number of events (the next event's sequence), from the head record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the head record does not decode.
    pub fn len(&mut self) -> Result<u64> {
        Ok(self.head_record()?.len.get())
    }

    /// Whether the log has no events.
    ///
    /// # Errors
    /// As [`EventLogTxn::len`].
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The events of type `event_type`, in sequence order, through the type index (one
    /// range of index keys, then one read per event).
    ///
    /// # Errors
    /// As [`EventLogTxn::append`] for an invalid type; as [`EventLogTxn::read`];
    /// [`Error::Corrupt`] for an index entry whose event is missing or of another type.
    pub fn read_by_type(&mut self, event_type: &str) -> Result<Vec<EventView>> {
        check_event_type(event_type)?;
        let prefix = type_index_prefix(self.run, event_type);
        let mut entries = Vec::new();
        for (key, _) in self.txn.prefix(&prefix)? {
            entries.push((type_index_key_seq(&key)?, key));
        }
        let mut events = Vec::with_capacity(entries.len());
        for (seq, key) in entries {
            let Some(event) = self.read(seq)? else {
                return Err(Error::corrupt(key, "a type index entry without its event"));
            };
            if event.event_type() != event_type {
                return Err(Error::corrupt(key, "a type index entry for an event of another type"));
            }
            events.push(event);
        }
        Ok(events)
    }

    /// Verifies the chain as this transaction sees it: reads the head record and every
    /// event, recomputes each event's hash ([`EventView::compute_hash`]), checks that each
    /// event's previous hash is the hash of the event before it, that the sequences run
    /// densely from 0 to the head's length with each record at its own key, and that the
    /// head's last hash is the last event's; reports the first sequence where any fails.
    /// A damaged record is reported, not returned as an error.
    ///
    /// # Errors
    /// Only the engine's ([`Error::Engine`]), e.g. a serializable read set over its limit.
    pub fn verify_chain(&mut self) -> Result<ChainReport> {
        let key = head_key(self.run);
        let head = match self.txn.get(&key)? {
            None => HeadRecord::EMPTY,
            Some(stored) => match HeadRecord::decode(&key, &stored) {
                Ok(head) => head,
                Err(_) => {
                    let reason = BreakReason::HeadMalformed;
                    return Ok(ChainReport::Broken(ChainBreak { seq: 0, reason }));
                }
            },
        };
        let start = KeyBuf::new(self.run, TypeTag::Event).push_u8(SUB_EVENT).finish();
        let events = self.txn.range(start..events_end(self.run).finish())?;
        Ok(verify::verify(self.run, head, events))
    }
}

impl std::fmt::Debug for EventLogTxn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLogTxn").field("run", &self.run).finish_non_exhaustive()
    }
}

/// An iterator over a run's events, read a page at a time; see [`EventLog::iter_range`].
pub struct EventIter {
    log: EventLog,
    run: RunId,
    /// The sequence of the next event to read from the log.
    next: u64,
    /// The exclusive end: the range's until the first page, then capped at the length.
    end: u64,
    /// Whether `end` has been capped at the log's length (by the first page).
    end_fixed: bool,
    /// Events read and not yet yielded.
    page: VecDeque<EventView>,
}

impl EventIter {
    /// Reads the next page; an empty page means the end.
    fn fill(&mut self) -> Result<()> {
        let (next, end, end_fixed) = (self.next, self.end, self.end_fixed);
        let (end, events) = self.log.with_txn(self.run, |events| {
            let end = if end_fixed { end } else { end.min(events.len()?) };
            let page_end = end.min(next.saturating_add(ITER_PAGE));
            Ok((end, events.read_range_within(next, page_end)?))
        })?;
        (self.end, self.end_fixed) = (end, true);
        self.next += events.len() as u64;
        self.page.extend(events);
        Ok(())
    }
}

impl Iterator for EventIter {
    type Item = Result<EventView>;

    fn next(&mut self) -> Option<Result<EventView>> {
        if let Some(event) = self.page.pop_front() {
            return Some(Ok(event));
        }
        if self.next >= self.end {
            return None;
        }
        if let Err(error) = self.fill() {
            self.end = self.next;
            return Some(Err(error));
        }
        self.page.pop_front().map(Ok)
    }
}

impl FusedIterator for EventIter {}

impl std::fmt::Debug for EventIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventIter")
            .field("run", &self.run)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Refuses event types that are empty or longer than [`EVENT_TYPE_MAX`] bytes.
fn check_event_type(event_type: &str) -> Result<()> {
    if event_type.is_empty() {
        return Err(Error::InvalidName { reason: "an event type is empty" });
    }
    if event_type.len() > EVENT_TYPE_MAX {
        return Err(Error::LimitExceeded {
            what: "event type bytes",
            actual: event_type.len() as u64,
            max: EVENT_TYPE_MAX as u64,
        });
    }
    Ok(())
}

/// The record `stored` of event `seq` at `key`, checked to hold that sequence.
fn decode_event(key: &[u8], seq: u64, stored: inmem_engine::Bytes) -> Result<EventView> {
    let event = EventView::decode(stored)?;
    if event.seq() != seq {
        return Err(Error::corrupt(key, "an event record holds another sequence"));
    }
    Ok(event)
}

/// The error for event `seq` of `run` missing below the log's length.
#[cold]
fn missing(run: RunId, seq: u64) -> Error {
    Error::corrupt(event_key(run, seq), "an event below the log's length is missing")
}

/// `range` as `start..end`, end exclusive (`u64::MAX` for an unbounded end: no sequence
/// reaches it, since a log's length is at most `u64::MAX`).
fn seq_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}
