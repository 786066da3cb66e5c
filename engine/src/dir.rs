//! A database directory: its layout, its lock, and the handle on its log.
//!
//! # Directory layout
//!
//! | path | what |
//! |---|---|
//! | `LOCK` | empty; held with an exclusive `flock` while a handle has the database open |
//! | `wal/` | the write-ahead log's segments (`wal/src/format.rs` documents them) |
//! | `checkpoints/` | `checkpoint-<version>.ckpt` files (`checkpoint/format.rs` documents them): the newest and the one before it |
//!

use std::fs::File;
use std::path::{Path, PathBuf};

use inmem_wal::Wal;

use crate::error::{Error, Result};
use crate::options::Durability;
use crate::sync::{AtomicU64, Mutex};

/// The lock file's name in a database directory.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// The log's directory in a database directory.
pub(crate) const WAL_DIR: &str = "wal";

/// The database directory's lock: held as long as this is alive.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, creating the lock file if needed.
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle holds it; [`Error::Io`].
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| Error::io("opening the database's lock file", &path, error))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Locked { path }),
            Err(errno) => Err(Error::io("locking the database's lock file", path, errno.into())),
        }
    }
}

/// The log of a database whose durability is `Buffered` or `Sync`.
pub(crate) struct Log {
    pub(crate) wal: Wal,
    /// The database's durability: `Buffered` or `Sync`.
    pub(crate) durability: Durability,
    /// The database's directory.
    pub(crate) dir: PathBuf,
    /// Held while a checkpoint is taken: one at a time.
    pub(crate) checkpointing: Mutex<()>,
    /// Where replay starts after the newest checkpoint (0 without one).
    pub(crate) checkpointed_end: AtomicU64,
}
