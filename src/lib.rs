//! inmem: an embeddable, lock-free, MVCC storage engine: in-memory first, durable through
//! a group-commit write-ahead log.
//!
//! This facade re-exports the layers (see docs/architecture.md §1, Layers):
//! - [`engine`]: the MVCC keyspace: version chains, snapshots, transactions, GC, TTL;
//! - [`wal`]: the write-ahead log;
//! - [`primitives`]: typed, run-scoped facades over the keyspace.
//!
//! The engine's main types are also available at the root.
//!
//! ```
//! let db = inmem::Database::in_memory()?;
//! let version = db.put(b"greeting", b"hello")?;
//! assert_eq!(db.snapshot_at(version)?.get(b"greeting")?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), inmem::Error>(())
//! ```

#![forbid(unsafe_code)]

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use inmem_engine as engine;
pub use inmem_primitives as primitives;
pub use inmem_wal as wal;

pub use inmem_engine::{
    BackendChoice, Bytes, CommitVersion, Committed, Database, Durability, Error, Isolation, Limits,
    Options, RecoveryMode, Result, Retention, RetryPolicy, Snapshot, Stats, Transaction,
    TransactionOptions,
};
