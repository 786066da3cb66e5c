//! The reference model of the engine's MVCC behaviour: what a database driven on one thread
//! must answer, for the property test (`tests/mvcc_model.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/engine_model.rs`) to compare with what it does answer.
//!
//! The model ([`Model`]) keeps:
//! - the committed state after every version, so that a reader at any version can be
//!   checked (docs/architecture.md §3, MVCC);
//! - every committed write of every key, and which of them its version chain holds: a put
//!   creates the chain if there is none, a delete links a tombstone only into a chain that
//!   exists (a key without one has nothing to hide), and a collection pass forgets a chain
//!   whose newest version is a tombstone at or below its horizon;
//! - every range delete and its purge (§8, Range deletes);
//! - the oldest version `snapshot_at` still accepts, and the conflicts counted.
//!
//! Beside it, a [`TxnModel`] follows one open transaction: its read version, its
//! [`Buffer`] of writes and range deletes, and (serializable) its read set. From these
//! [`Model::verdict`] predicts a commit as §4, The commit path, states first committer wins.
//!
//! The model holds no engine handle: each harness calls the engine and the model with the
//! same operation and compares. It checks the API's limits too, so that an operation the
//! engine must refuse is predicted with its exact error. `KeepFor` retention is not
//! modelled (it depends on the clock).

mod buffer;
mod committed;
mod limits;
mod model;
mod span;
mod txn;
mod verdict;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use buffer::{Buffer, Write, Writes};
pub use committed::{CommittedWrite, RangeDelete};
pub use model::{Model, MAINTENANCE_COMMIT_KEYS_MAX};
pub use span::{Overlap, Span};
pub use txn::TxnModel;
pub use verdict::Verdict;

/// A key as the model holds it.
pub type Key = Vec<u8>;
/// A value as the model holds it.
pub type Value = Vec<u8>;
/// The visible state at one version: every live key and its value.
pub type State = BTreeMap<Key, Value>;
/// Entries in key order, as a scan yields them.
pub type Entries = Vec<(Key, Value)>;
