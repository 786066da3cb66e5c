//! inmem-engine: the MVCC keyspace at the heart of inmem.
//!
//! Keys map to chains of committed versions, newest first. Readers go through snapshots and
//! never take a lock or wait for a writer; transactions are optimistic (snapshot isolation,
//! serializable on request); a background thread collects old versions and reaps expired
//! ones.
//!
//! # The life of a version
//!
//! | step | where | what happens |
//! |---|---|---|
//! | buffered | `txn/write_set.rs` | a transaction's write, invisible to everyone else |
//! | prepared | `txn/mod.rs` | turned into a `VersionNode` (`version.rs`) before the sequencer |
//! | validated | `txn/validate.rs` | first committer wins (SI), read set re-checked (serializable) |
//! | versioned, linked | `txn/commit.rs`, `chain.rs` | next commit version, linked at its chain's head |
//! | visible | `visible.rs` | the visible version advances over a contiguous prefix of commits |
//! | read | `snapshot.rs`, `index.rs` | newest version at or below a snapshot's version |
//! | pruned | `gc.rs`, `watermark.rs` | unlinked once no registered reader can read it |
//! | freed | `chain.rs` | through crossbeam-epoch, once no pinned reader can reach it |
//!
//! # Example
//!
//! ```
//! use inmem_engine::{Database, Error};
//!
//! let db = Database::in_memory()?;
//! db.put(b"acct/alice", 100u64.to_le_bytes())?;
//! db.put(b"acct/bob", 0u64.to_le_bytes())?;
//!
//! // Move 30 from alice to bob, atomically; retried automatically on conflict.
//! db.transaction(|txn| {
//!     let read = |value: Option<inmem_engine::Bytes>| {
//!         u64::from_le_bytes(value.as_deref().and_then(|v| v.try_into().ok()).unwrap_or_default())
//!     };
//!     let alice = read(txn.get(b"acct/alice")?);
//!     let bob = read(txn.get(b"acct/bob")?);
//!     txn.put(b"acct/alice", (alice - 30).to_le_bytes())?;
//!     txn.put(b"acct/bob", (bob + 30).to_le_bytes())?;
//!     Ok(())
//! })?;
//!
//! let snapshot = db.snapshot();
//! let total: u64 = snapshot
//!     .prefix(b"acct/")
//!     .map(|(_, value)| u64::from_le_bytes(value.as_slice().try_into().unwrap_or_default()))
//!     .sum();
//! assert_eq!(total, 100);
//! # Ok::<(), Error>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod allocator;
mod bounds;
mod bytes;
mod chain;
mod checkpoint;
mod clock;
mod db;
mod dir;
mod durable;
mod error;
mod expiry;
mod gate;
mod gc;
mod gc_state;
mod index;
mod inspection;
mod load;
mod options;
mod range_delete;
mod record;
mod recovery;
mod sequencer;
mod shared;
mod snapshot;
mod stats;
mod sync;
mod ttl;
mod turns;
mod txn;
mod version;
mod visible;
mod watermark;

#[cfg(all(test, loom))]
mod loom_models;

pub use crate::bytes::Bytes;
pub use crate::checkpoint::{CheckpointInfo, CheckpointReport};
pub use crate::db::{Committed, Database, TransactionError, TransactionOptions};
pub use crate::error::{Error, IoError, Limit, Result};
pub use crate::inspection::{inspect, inspect_with_log_options, Inspection};
pub use crate::options::{
    BackendChoice, BackendInUse, BackendReason, Durability, Isolation, Limits, Options,
    RecoveryMode, Retention, RetryPolicy, ScanOnlyKeys,
};
pub use crate::range_delete::{PendingRangeDelete, PURGE_KEYS_PER_STEP};
pub use crate::recovery::Recovery;
pub use crate::snapshot::{Iter, Snapshot, VersionRecord};
pub use crate::stats::{GcReport, GcStats, OldestSnapshot, Stats};
pub use crate::txn::{Transaction, TxnIter};
pub use crate::version::CommitVersion;

/// The public types can be shared and moved between threads as documented.
const _: () = {
    const fn shared_between_threads<T: Send + Sync>() {}
    const fn moved_between_threads<T: Send>() {}
    shared_between_threads::<Database>();
    shared_between_threads::<Snapshot<'static>>();
    shared_between_threads::<Bytes>();
    moved_between_threads::<Transaction<'static>>();
    moved_between_threads::<Iter<'static>>();
    shared_between_threads::<Error>();
};
