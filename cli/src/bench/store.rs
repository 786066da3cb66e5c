//! The stores a workload runs on: the engine, and the bare skiplist it is compared with.
//!
//! Both implement [`Store`] with the same per-operation work, so that the ratio of their
//! throughputs is the engine's own cost: every read touches the value's length and first
//! byte (through `black_box`, so it cannot be optimized away), every write copies the key
//! and the value into the store, a scan touches each key and value it returns and stops at
//! the end of the prefix or after `limit` entries.

use std::hint::black_box;
use std::ops::Bound;

use crossbeam_skiplist::SkipMap;
use inmem::{Database, Options};

use super::error::BenchError;

/// Reads, then writes, of one transaction.
pub(crate) const TXN_READS: usize = 4;
/// Writes of one transaction, after its reads.
pub(crate) const TXN_WRITES: usize = 4;

/// The keys of one transaction: [`TXN_READS`] to read, then [`TXN_WRITES`] to write, in one
/// buffer so that choosing them allocates nothing.
#[derive(Debug, Clone)]
pub(crate) struct TxnKeys {
    bytes: Vec<u8>,
    key_size: usize,
}

impl TxnKeys {
    /// Room for the keys of one transaction.
    pub(crate) fn new(key_size: usize) -> TxnKeys {
        assert!(key_size > 0, "keys have at least one byte");
        TxnKeys { bytes: vec![0; key_size * (TXN_READS + TXN_WRITES)], key_size }
    }

    /// Every key, to be filled in: the reads first.
    pub(crate) fn slots_mut(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        self.bytes.chunks_exact_mut(self.key_size)
    }

    /// The keys to read.
    pub(crate) fn reads(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks_exact(self.key_size).take(TXN_READS)
    }

    /// The keys to write.
    pub(crate) fn writes(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks_exact(self.key_size).skip(TXN_READS)
    }
}

/// What one transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnOutcome {
    /// Reads that found their key, in the attempt that ended it.
    pub(crate) reads_found: usize,
    /// Runs of the transaction, the first included.
    pub(crate) attempts: u64,
    /// Whether it committed (it gives up on a conflict once the retry policy is exhausted).
    pub(crate) committed: bool,
}

/// A key-value store under benchmark.
pub(crate) trait Store: Sync + Sized {
    /// The name in reports.
    const NAME: &'static str;

    /// Whether a read always finds a loaded key, even while another thread overwrites it.
    /// The engine promises it (a read sees the newest committed version); a bare `SkipMap`
    /// does not (its `insert` removes the old entry before it links the new one), so its
    /// misses are reported rather than treated as lost data.
    const READS_SEE_OVERWRITTEN_KEYS: bool;

    /// An empty store.
    ///
    /// # Errors
    /// As the store's constructor.
    fn create(disk: Option<&Disk>) -> Result<Self, inmem::Error>;

    /// Whether it honours [`Disk`] (the engine does; the baseline stays in memory).
    const LOGS: bool = false;

    /// Writes `key` = `value`.
    ///
    /// # Errors
    /// The engine's error.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), inmem::Error>;

    /// Reads `key` and touches its value; whether it was found.
    ///
    /// # Errors
    /// The engine's error.
    fn get(&self, key: &[u8]) -> Result<bool, inmem::Error>;

    /// Reads up to `limit` entries whose keys start with `prefix`, touching each; how many.
    ///
    /// # Errors
    /// The engine's error.
    fn scan(&self, prefix: &[u8], limit: usize) -> Result<usize, inmem::Error>;

    /// Reads [`TxnKeys::reads`] and writes `value` to [`TxnKeys::writes`] in one
    /// transaction, if the store has any.
    ///
    /// # Errors
    /// The engine's error, other than a conflict.
    fn txn(&self, keys: &TxnKeys, value: &[u8]) -> Result<TxnOutcome, inmem::Error>;
}

/// Makes the read of a value observable, so that it is really done.
fn touch(value: &[u8]) {
    black_box((value.len(), value.first().copied()));
}

/// Where and how a store keeps its data on disk (`--durability`).
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    /// The directory a fresh temporary directory is made in for each store.
    pub(crate) parent: std::path::PathBuf,
    pub(crate) durability: inmem::Durability,
}

/// A database with `options`: in memory without `disk`, else opened with its
/// durability on a fresh temporary directory under its parent, returned with it (to be
/// dropped after the database, which removes it).
///
/// # Errors
/// [`inmem::Error::Io`] if the directory cannot be made; the engine's error from opening.
pub(crate) fn open_database(
    disk: Option<&Disk>,
    options: Options,
) -> Result<(Database, Option<tempfile::TempDir>), inmem::Error> {
    let Some(disk) = disk else {
        return Ok((Database::with_options(options)?, None));
    };
    let dir = tempfile::Builder::new().prefix("inmem-bench-db-").tempdir_in(&disk.parent).map_err(
        |error| inmem::Error::Io {
            context: "creating the benchmark's database directory in",
            path: disk.parent.clone(),
            source: inmem::engine::IoError::new(error),
        },
    )?;
    let db = Database::open(dir.path(), options.durability(disk.durability))?;
    Ok((db, Some(dir)))
}

/// As [`open_database`], with the primitives' engine options, for the rows of `workload`.
///
/// # Errors
/// [`BenchError::Engine`] naming `workload`'s setup.
pub(crate) fn open_primitives_database(
    disk: Option<&Disk>,
    workload: &'static str,
) -> Result<(Database, Option<tempfile::TempDir>), BenchError> {
    open_database(disk, inmem::primitives::engine_options()).map_err(|source| BenchError::Engine {
        engine: "inmem",
        workload,
        source,
    })
}

/// The engine with default options: in memory, or opened on a temporary directory with a
/// durability.
pub(crate) struct EngineStore {
    db: Database,
    /// Removed once the database is dropped (fields drop in order).
    _dir: Option<tempfile::TempDir>,
}

impl EngineStore {
    /// The engine with `options`: in memory, or opened on a temporary directory with the
    /// durability of `disk` (which replaces that of `options`).
    ///
    /// # Errors
    /// As [`open_database`].
    pub(crate) fn with_options(
        disk: Option<&Disk>,
        options: Options,
    ) -> Result<EngineStore, inmem::Error> {
        let (db, dir) = open_database(disk, options)?;
        Ok(EngineStore { db, _dir: dir })
    }

    /// The database.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }
}

impl Store for EngineStore {
    const NAME: &'static str = "inmem";
    const LOGS: bool = true;
    const READS_SEE_OVERWRITTEN_KEYS: bool = true;

    fn create(disk: Option<&Disk>) -> Result<Self, inmem::Error> {
        EngineStore::with_options(disk, Options::default())
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), inmem::Error> {
        self.db.put(key, value).map(drop)
    }

    fn get(&self, key: &[u8]) -> Result<bool, inmem::Error> {
        let value = self.db.get(key)?;
        if let Some(value) = &value {
            touch(value);
        }
        Ok(value.is_some())
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> Result<usize, inmem::Error> {
        let snapshot = self.db.snapshot();
        let mut count = 0;
        for (key, value) in snapshot.prefix(prefix).take(limit) {
            touch(&key);
            touch(&value);
            count += 1;
        }
        Ok(count)
    }

    fn txn(&self, keys: &TxnKeys, value: &[u8]) -> Result<TxnOutcome, inmem::Error> {
        let mut attempts = 0;
        let outcome = self.db.transaction(|txn| {
            attempts += 1;
            let mut reads_found = 0;
            for key in keys.reads() {
                if let Some(value) = txn.get(key)? {
                    touch(&value);
                    reads_found += 1;
                }
            }
            for key in keys.writes() {
                txn.put(key, value)?;
            }
            Ok(reads_found)
        });
        match outcome {
            Ok(reads_found) => Ok(TxnOutcome { reads_found, attempts, committed: true }),
            Err(error) if error.is_conflict() => {
                Ok(TxnOutcome { reads_found: TXN_READS, attempts, committed: false })
            }
            Err(error) => Err(error),
        }
    }
}

/// A bare `crossbeam_skiplist::SkipMap`: no versions, no snapshots, no isolation.
pub(crate) struct SkipMapStore {
    map: SkipMap<Vec<u8>, Vec<u8>>,
}

impl Store for SkipMapStore {
    const NAME: &'static str = "skipmap";
    const READS_SEE_OVERWRITTEN_KEYS: bool = false;

    fn create(_disk: Option<&Disk>) -> Result<Self, inmem::Error> {
        Ok(SkipMapStore { map: SkipMap::new() })
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), inmem::Error> {
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<bool, inmem::Error> {
        let entry = self.map.get(key);
        if let Some(entry) = &entry {
            touch(entry.value());
        }
        Ok(entry.is_some())
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> Result<usize, inmem::Error> {
        let mut count = 0;
        let entries = self
            .map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|entry| entry.key().starts_with(prefix))
            .take(limit);
        for entry in entries {
            touch(entry.key());
            touch(entry.value());
            count += 1;
        }
        Ok(count)
    }

    fn txn(&self, keys: &TxnKeys, value: &[u8]) -> Result<TxnOutcome, inmem::Error> {
        let mut reads_found = 0;
        for key in keys.reads() {
            if let Some(entry) = self.map.get(key) {
                touch(entry.value());
                reads_found += 1;
            }
        }
        for key in keys.writes() {
            self.map.insert(key.to_vec(), value.to_vec());
        }
        Ok(TxnOutcome { reads_found, attempts: 1, committed: true })
    }
}
