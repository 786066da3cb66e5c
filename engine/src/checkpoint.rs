//! Checkpoints: every retained version at or below a version, in key order, in one file,
//! so that recovery replays only the log after it and the log before it can be deleted.
//!
//! # Taking one
//!
//! 1. Read the log's end `P`, then the last commit version handed out, `V`. Every record
//!    before `P` was appended by a commit that had its version before `P` was read, so at
//!    or below `V`: the checkpoint at `V` covers all of them.
//! 2. Wait until `V` is visible, take a snapshot at `V` (it keeps what it reads from the
//!    collector), and wait until the log is durable up to `P` (in `Buffered` mode it may
//!    not be yet: a crash must not leave a log that ends before the checkpoint's `P`).
//!    Write every key's versions at or below `V` that are still retained, oldest first,
//!    into `checkpoint-<V>.tmp`; fdatasync it, rename it to `checkpoint-<V>.ckpt`, fsync
//!    the directory. Writers and readers go on meanwhile. A failed write, fdatasync or
//!    rename removes the temporary file.
//! 3. Delete the checkpoints older than the previous one and fsync the directory, then the
//!    log segments wholly below the previous one's `P`: the previous checkpoint and the log
//!    since it stay, the fallback if this one is ever found damaged.
//!
//! The file's format is documented in `checkpoint/format.rs`; `checkpoint/writer.rs`
//! writes it and `checkpoint/reader.rs` reads it back.
//!
//! Recovery loads the newest checkpoint (or, if it is damaged, the one before it, and says
//! so in `Database::recovery`), then replays the log from its `P`, skipping versions at or
//! below its `V` (records after `P` may still be of such versions).
//!
//! # I/O
//!
//! Every file operation of taking a checkpoint (create, write, sync, rename, remove, list)
//! goes through the I/O backend of the database's log ([`inmem_wal::Wal::io`]), through
//! [`Checkpoints`]: a simulated disk (`inmem_wal::io::sim`) then records checkpoints with
//! the log, and the images of a power failure it builds hold both as a disk could leave
//! them. Reading goes through [`Checkpoints`] too; the path-only functions ([`list`],
//! [`remove_unfinished`], [`load`], [`read`]) are it on plain file-system calls, for
//! `inspect`, and for recovery in `durable.rs` until it hands its log's backend to
//! [`Checkpoints::new`] (the same files on the real backends, but not a simulated disk's).
//! Writes are gathered into writes of `format::IO_CHUNK_BYTES`, and reads read that much at a
//! time (a block at least that long is read straight into its buffer).
//!

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::sync::Ordering;
use crate::version::CommitVersion;
use format::Counts;
use inmem_wal::io::{self as log_io, Io, OpenFlags};
use inmem_wal::LogPosition;
use reader::read_checkpoint;

pub use format::CheckpointInfo;
#[cfg(all(test, not(loom)))]
use format::IO_CHUNK_BYTES;

/// The checkpoints' directory in a database directory.
pub(crate) const CHECKPOINT_DIR: &str = "checkpoints";
/// What a checkpoint wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Its version: every commit at or below it is in it.
    pub version: crate::CommitVersion,
    /// Its file.
    pub path: PathBuf,
    /// Keys in it.
    pub keys: u64,
    /// Versions in it (a key's retained history counts each).
    pub versions: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Log segments deleted after it.
    pub segments_deleted: usize,
}

impl Shared {
    /// Takes a checkpoint (see the module doc) and deletes what it makes unneeded.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a database without a log; [`Error::Io`] or
    /// [`Error::Log`] if writing it or deleting what it covers fails (the database is not
    /// poisoned: its log is intact), or [`Error::Log`] if syncing the log up to the position
    /// it records fails (the log then refuses every later commit, as after a failed commit).
    pub(crate) fn checkpoint(&self) -> Result<CheckpointReport> {
        let Some(log) = &self.log else {
            return Err(Error::InvalidOption {
                name: "durability",
                reason: "checkpoints need a database opened on a directory, with a log",
            });
        };
        let _one_at_a_time = log.checkpointing.lock();
        let replay_from = log.wal.end_position();
        let handed_out = self.sequencer.last_version();
        self.wait_visible(handed_out)?;
        let snapshot = self.snapshot();
        let version = snapshot.version();
        // Replay will start at `replay_from`: the log must hold everything before it, after
        // a crash too, before a checkpoint says so (in `Buffered` mode it may not be synced).
        log.wal
            .wait_durable_before(replay_from)
            .map_err(|error| Error::log("syncing the log a checkpoint covers", error))?;
        let checkpoints = Checkpoints::new(log.wal.io(), log.dir.join(CHECKPOINT_DIR));
        let written = checkpoints.write(self, version, replay_from)?;
        drop(snapshot);
        // The previous checkpoint stays, with the log since it: the fallback if this one
        // is ever found damaged. Older ones, and the log before the previous one, go; the
        // log only once their removal (and this one's rename) is durable.
        for (_, older_path) in checkpoints.list()?.into_iter().skip(2) {
            checkpoints.remove(&older_path, "removing an older checkpoint")?;
        }
        checkpoints.sync_dir()?;
        let previous = log.checkpointed_end.swap(replay_from.get(), Ordering::Relaxed);
        let segments_deleted = log
            .wal
            .delete_below(LogPosition::new(previous))
            .map_err(|error| Error::log("deleting segments a checkpoint covers", error))?;
        Ok(CheckpointReport {
            version,
            path: written.path,
            keys: written.keys,
            versions: written.versions,
            bytes: written.bytes,
            segments_deleted,
        })
    }

    /// Takes a checkpoint if the log has grown by [`crate::Options::checkpoint_log_bytes`]
    /// since the last one. A failure is counted and left for the next round.
    pub(crate) fn checkpoint_if_due(&self) {
        let Some(log) = &self.log else { return };
        let every = self.options.checkpoint_log_bytes;
        let since = log.checkpointed_end.load(Ordering::Relaxed);
        if every == 0 || log.wal.end_position().get().saturating_sub(since) < every {
            return;
        }
        let counter = match self.checkpoint() {
            Ok(_) => &self.counters.checkpoints,
            Err(_) => &self.counters.checkpoint_failures,
        };
        crate::stats::Counters::add(counter, 1);
    }
}

/// A checkpoint file's name for version `version`.
fn file_name(version: u64) -> String {
    format!("checkpoint-{version:020}.ckpt")
}

/// The version in a checkpoint file's name.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a checkpoint's temporary name, `checkpoint-<V>.tmp`.
fn is_unfinished(name: &str) -> bool {
    name.strip_suffix(".tmp").is_some_and(|stem| parse_name(&format!("{stem}.ckpt")).is_some())
}

/// A database's checkpoints' directory, and the I/O backend every operation on its files
/// goes through: the log's ([`inmem_wal::Wal::io`]) for a database that is open.
pub(crate) struct Checkpoints {
    io: Arc<dyn Io>,
    dir: PathBuf,
}

impl Checkpoints {
    /// The checkpoints in `dir`, through `io`.
    pub(crate) fn new(io: Arc<dyn Io>, dir: PathBuf) -> Checkpoints {
        Checkpoints { io, dir }
    }

    /// The checkpoints in `dir`, through plain file-system calls (the log's default
    /// backend): for a directory looked at without its log open.
    pub(crate) fn on_file_system(dir: PathBuf) -> Checkpoints {
        Checkpoints { io: Arc::new(log_io::sync::SyncIo::new()), dir }
    }

    /// The checkpoints, newest first.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory exists and cannot be listed.
    pub(crate) fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut found: Vec<(u64, PathBuf)> = self
            .names()?
            .into_iter()
            .filter_map(|name| Some((parse_name(&name)?, self.dir.join(name))))
            .collect();
        found.sort_unstable_by_key(|(version, _)| std::cmp::Reverse(*version));
        Ok(found)
    }

    /// Removes the checkpoint files left unfinished by a crash while writing one. Not
    /// synced: one that a crash brings back is removed again at the next open.
    ///
    /// # Errors
    /// [`Error::Io`] if listing or removing fails.
    pub(crate) fn remove_unfinished(&self) -> Result<()> {
        for name in self.names()? {
            if is_unfinished(&name) {
                self.remove(&self.dir.join(name), "removing an unfinished checkpoint")?;
            }
        }
        Ok(())
    }

    /// The names in the directory; none if it does not exist yet.
    fn names(&self) -> Result<Vec<String>> {
        let names = match self.io.list_dir(&self.dir) {
            Ok(names) => names,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Error::io("listing the checkpoints in", &self.dir, error)),
        };
        // A name that is not UTF-8 is no checkpoint's: left alone.
        Ok(names.into_iter().filter_map(|name| name.into_string().ok()).collect())
    }

    /// Removes the file at `path` (durable once [`Checkpoints::sync_dir`] returns).
    fn remove(&self, path: &Path, context: &'static str) -> Result<()> {
        self.io.remove(path).map_err(|error| Error::io(context, path, error))
    }

    /// Makes the creations, renames and removals in the directory durable.
    fn sync_dir(&self) -> Result<()> {
        self.io
            .sync_dir(&self.dir)
            .map_err(|error| Error::io("syncing the checkpoints' directory", &self.dir, error))
    }

    /// Creates the directory if needed, and makes its name durable in the database's
    /// directory (a checkpoint in a directory a crash could take away covers nothing).
    fn create_dir(&self) -> Result<()> {
        self.io
            .create_dir_all(&self.dir)
            .map_err(|error| Error::io("creating the checkpoints' directory", &self.dir, error))?;
        match self.dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self
                .io
                .sync_dir(parent)
                .map_err(|error| Error::io("syncing the database's directory", parent, error)),
            _ => Ok(()),
        }
    }

    /// Reads the checkpoint at `path` (see [`read_checkpoint`]).
    ///
    /// # Errors
    /// As [`read_checkpoint`].
    pub(crate) fn read(&self, shared: Option<&Shared>, path: &Path) -> Result<CheckpointInfo> {
        let into = shared.map(|shared| (shared, crate::load::threads()));
        read_checkpoint(self.io.as_ref(), into, path)
    }

    /// Where replay starts after the checkpoint at `path`, from its header alone, if that
    /// can be read (see [`reader::read_replay_from`]).
    pub(crate) fn replay_from(&self, path: &Path) -> Option<LogPosition> {
        reader::read_replay_from(self.io.as_ref(), path)
    }

    /// Writes the checkpoint of `shared` at `version`, whose replay starts at
    /// `replay_from`: into a temporary file, synced, then renamed into place and the
    /// directory synced. A temporary file of the same version left by a failed attempt is
    /// replaced.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file if any step fails; the checkpoints already in place
    /// are untouched. A failed write, sync or rename removes the temporary file (best
    /// effort: one left behind is removed at the next open), so that a full disk keeps none
    /// of its space. Once renamed, the file is whole and synced, and a failed sync of the
    /// directory leaves it in place (it may have replaced a checkpoint of the same version).
    pub(crate) fn write(
        &self,
        shared: &Shared,
        version: CommitVersion,
        replay_from: LogPosition,
    ) -> Result<CheckpointInfo> {
        self.create_dir()?;
        let path = self.dir.join(file_name(version.get()));
        let temporary = path.with_extension("tmp");
        let file = match self.io.create(&temporary, OpenFlags::default()) {
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                self.remove(&temporary, "removing an unfinished checkpoint")?;
                self.io.create(&temporary, OpenFlags::default())
            }
            created => created,
        }
        .map_err(|error| Error::io("creating a checkpoint", &temporary, error))?;
        let hiding = shared.range_deletes.hiding();
        let rate = shared.options.checkpoint_write_bytes_per_sec;
        let pace = writer::Pace::new(rate, &shared.stopping);
        let covers = (version, replay_from);
        let written = writer::fill(file.as_ref(), &shared.index, &hiding, covers, pace)
            .map_err(|error| Error::io("writing a checkpoint", &temporary, error))
            .and_then(|written| match file.sync_data() {
                Ok(()) => Ok(written),
                Err(error) => Err(Error::io("syncing a checkpoint", &temporary, error)),
            });
        drop(file);
        let renamed = written.and_then(|written| match self.io.rename(&temporary, &path) {
            Ok(()) => Ok(written),
            Err(error) => Err(Error::io("renaming into place a checkpoint", &temporary, error)),
        });
        let (bytes, counts) = match renamed {
            Ok(written) => written,
            Err(error) => {
                // Best effort: the error that stopped the checkpoint is the one to report.
                let _ = self.io.remove(&temporary);
                return Err(error);
            }
        };
        self.sync_dir()?;
        let Counts { keys, versions, .. } = counts;
        Ok(CheckpointInfo { path, version, replay_from, keys, versions, bytes })
    }
}

/// The checkpoints in `dir`, newest first, listed through plain file-system calls
/// ([`Checkpoints::on_file_system`]).
///
/// # Errors
/// As [`Checkpoints::list`].
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    Checkpoints::on_file_system(dir.to_path_buf()).list()
}

/// [`read_checkpoint`] of the file at `path`, through plain file-system calls: for a
/// directory looked at without its log open ([`crate::inspect`]).
///
/// # Errors
/// As [`read_checkpoint`].
pub(crate) fn read(shared: Option<&Shared>, path: &Path) -> Result<CheckpointInfo> {
    Checkpoints::on_file_system(containing(path)).read(shared, path)
}

/// The directory a checkpoint's `path` is in.
fn containing(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// [`Checkpoints::write`] into `dir`, through the I/O backend of `shared`'s log.
///
/// # Errors
/// [`Error::InvalidOption`] for a database without a log; as [`Checkpoints::write`].
#[cfg(all(test, not(loom)))]
pub(crate) fn write(
    shared: &Shared,
    dir: &Path,
    version: CommitVersion,
    replay_from: LogPosition,
) -> Result<CheckpointInfo> {
    let Some(log) = &shared.log else {
        return Err(Error::InvalidOption { name: "durability", reason: "no log" });
    };
    Checkpoints::new(log.wal.io(), dir.to_path_buf()).write(shared, version, replay_from)
}

/// A checkpoint loaded into the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) version: CommitVersion,
    pub(crate) replay_from: LogPosition,
}

mod format;
mod reader;
mod writer;

#[cfg(all(test, not(loom)))]
mod load_tests;
#[cfg(all(test, not(loom)))]
mod tests;
