//! inmem-primitives: typed, run-scoped facades over the engine's keyspace
//! (docs/architecture.md §2, The keyspace, and §9, Primitives).
//!
//! # The primitives
//!
//! Each is a stateless handle over `Arc<inmem_engine::Database>` whose state lives entirely
//! in the keyspace, so the log, checkpoints and recovery carry it unchanged. Every operation
//! is scoped to a [`RunId`] and exists twice: on the handle (one implicit transaction,
//! retried on conflict where its meaning allows) and on a transaction through the extension
//! traits of [`prelude`], so that any mix of primitives commits or fails as one. Reads return
//! views over the stored bytes.
//!
//! | handle | file | tag | in a transaction |
//! |---|---|---|---|
//! | [`KvStore`] | `kv.rs` | 0x01 | `txn.kv(run)` |
//! | [`EventLog`] | `event_log.rs` | 0x02 | `txn.events(run)` |
//! | [`StateCell`] | `state_cell.rs` | 0x03 | `txn.state(run)` |
//! | [`TraceStore`] | `trace.rs` | 0x04 | `txn.traces(run)` |
//! | [`RunIndex`] | `run_index.rs` | 0x05 | `txn.runs()` |
//!
//! Primitives added outside the crate take a [`CustomTag`] and register with a
//! [`Registry`] (`registry.rs`), which runs their rebuild hook after open.
//!
//! # The foundation
//!
//! - `run_id.rs`: [`RunId`], the 16 random bytes that open every key of a run.
//! - `tag.rs`, `key.rs`: the key layout (run id, [`TypeTag`] or [`CustomTag`], suffix).
//!   [`KeyBuf`] builds keys from order-preserving components and [`KeyReader`] reads them
//!   back; [`run_prefix`], [`tag_prefix`] and [`prefix_end`] bound the ranges.
//! - `value.rs`: [`Value`] and its versioned binary encoding (documented byte by byte in
//!   `value/encode.rs`); [`ValueRef`] reads an encoding in place.
//! - `view.rs`: [`View`] and [`ValueView`], what reads return: a refcounted handle on the
//!   stored bytes with typed accessors; fixed headers read through bytemuck ([`U64Le`],
//!   [`U32Le`]).
//! - `scan_only.rs`: [`is_index_entry`], the keys of the primitives' secondary indexes,
//!   which [`engine_options`] keeps out of the engine's hash index.
//! - `random.rs`: random bytes for run and trace ids.
//! - `clock.rs`: the wall clock (ms since the Unix epoch) records are stamped with.
//! - `error.rs`: [`Error`], shared by the primitives, and [`DecodeError`], returned by every
//!   decoder of stored bytes.

#![forbid(unsafe_code)]

mod clock;
mod error;
pub mod event_log;
mod hex;
mod key;
pub mod kv;
mod random;
pub mod registry;
mod run_id;
pub mod run_index;
mod scan_only;
pub mod state_cell;
mod tag;
pub mod trace;
mod value;
mod view;

pub use crate::error::{DecodeError, DecodeReason, Error, Result};
pub use crate::key::{
    prefix_end, run_prefix, split_key, tag_prefix, KeyBuf, KeyParts, KeyReader, RUN_PREFIX_LEN,
    TAG_PREFIX_LEN,
};
pub use crate::run_id::{ParseRunIdError, RunId};
pub use crate::scan_only::{engine_options, is_index_entry};
pub use crate::tag::{CustomTag, KeyTag, TypeTag};
pub use crate::value::{
    ArrayIter, ArrayRef, MapIter, MapRef, Value, ValueRef, DEPTH_MAX, FORMAT_VERSION,
};
pub use crate::view::{U32Le, U64Le, ValueView, View};

pub use crate::event_log::{ChainReport, EventLog, EventLogExt, EventLogTxn, EventView};
pub use crate::kv::{KvEntry, KvExt, KvStore, KvTxn, KvVersion, ScanCursor, ScanPage};
pub use crate::registry::{Primitive, Registry};
pub use crate::run_index::{RunIndex, RunIndexExt, RunIndexTxn, RunQuery, RunStatus, RunView};
pub use crate::state_cell::{CasOutcome, StateCell, StateCellExt, StateCellTxn, StateView};
pub use crate::trace::{
    TraceExt, TraceId, TraceSpec, TraceStore, TraceTree, TraceTxn, TraceType, TraceView, TreeLimits,
};

/// The extension traits, to bring every primitive's transactional form into scope at once:
/// `use inmem_primitives::prelude::*;`.
pub mod prelude {
    pub use crate::{EventLogExt, KvExt, RunIndexExt, StateCellExt, TraceExt};
}
