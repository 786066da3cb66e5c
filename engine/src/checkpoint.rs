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
//! Writes are gathered into writes of [`IO_CHUNK_BYTES`], and reads read that much at a
//! time (a block at least that long is read straight into its buffer).
//!
//! # Format
//!
//! Little-endian throughout. A header, blocks, an end block, a footer.
//!
//! Header, 48 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `INMEMCKP` |
//! | 8 | 4 | format version, 1 |
//! | 12 | 4 | zero |
//! | 16 | 8 | `V`, the checkpoint's version |
//! | 24 | 8 | `P`, the log position replay starts from |
//! | 32 | 8 | creation time, ms since the Unix epoch |
//! | 40 | 8 | xxh3-64 (seed 0) of bytes 0..40 |
//!
//! Block: `len` (4 bytes, at most [`BLOCK_LEN_MAX`]), entry count (4), `len` bytes of
//! entries, then xxh3-64 of the block's first `8 + len` bytes seeded with `V` (8). The end
//! block has `len` 0 and count 0 (and its checksum). An entry is whole in one block:
//!
//! | size | field |
//! |---|---|
//! | 4 | key length `k` |
//! | `k` | key |
//! | 4 | versions `n` (at least 1) |
//! | | `n` versions, oldest first, each as a write of the commit record (`record.rs`) without its key: an op byte, and for a put its expiry (8), value length (4) and value; preceded by its commit version (8) |
//!
//! Footer, 40 bytes: magic `INMEMEND` (8), keys (8), versions (8), blocks before the end
//! block (8), xxh3-64 of bytes 0..32 of the footer seeded with `V` (8). Nothing follows.

use std::io::IoSlice;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::bytes::Bytes;
use crate::clock;
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::record;
use crate::sync::epoch::{self, Owned};
use crate::sync::Ordering;
use crate::version::VersionNode;
use inmem_wal::io::{self as log_io, Io, LogFile, OpenFlags};
use inmem_wal::LogPosition;

/// The checkpoints' directory in a database directory.
pub(crate) const CHECKPOINT_DIR: &str = "checkpoints";
const MAGIC: [u8; 8] = *b"INMEMCKP";
const END_MAGIC: [u8; 8] = *b"INMEMEND";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 48;
const FOOTER_LEN: usize = 40;
/// Blocks are cut once they pass this many bytes of entries.
const BLOCK_TARGET: usize = 64 << 10;
/// The longest block a reader accepts (an entry larger than the target makes a block of
/// its own: one key's retained versions).
pub(crate) const BLOCK_LEN_MAX: u32 = 1 << 30;
/// Bytes gathered into one write of a checkpoint, and read ahead by one read.
pub(crate) const IO_CHUNK_BYTES: usize = 1 << 20;

// A block cut at the target fits a chunk with its head and checksum: the usual block is
// written with others in one write, not alone.
const _: () = assert!(BLOCK_TARGET + 16 < IO_CHUNK_BYTES);

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
        let version = snapshot.version().get();
        // Replay will start at `replay_from`: the log must hold everything before it, after
        // a crash too, before a checkpoint says so (in `Buffered` mode it may not be synced).
        log.wal
            .wait_durable_before(replay_from)
            .map_err(|error| Error::log("syncing the log a checkpoint covers", error))?;
        let checkpoints = Checkpoints::new(log.wal.io(), log.dir.join(CHECKPOINT_DIR));
        let written = checkpoints.write(self, version, replay_from.get())?;
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
            version: crate::CommitVersion::new(version),
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
        read_checkpoint(self.io.as_ref(), shared, path)
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
        version: u64,
        replay_from: u64,
    ) -> Result<CheckpointInfo> {
        self.create_dir()?;
        let path = self.dir.join(file_name(version));
        let temporary = path.with_extension("tmp");
        let file = match self.io.create(&temporary, OpenFlags::default()) {
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                self.remove(&temporary, "removing an unfinished checkpoint")?;
                self.io.create(&temporary, OpenFlags::default())
            }
            created => created,
        }
        .map_err(|error| Error::io("creating a checkpoint", &temporary, error))?;
        let written = fill(file.as_ref(), shared, version, replay_from)
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

/// Writes the checkpoint of `shared` at `version`, whose replay starts at `replay_from`,
/// into `file` (not synced); returns its length and what its blocks hold.
fn fill(
    file: &dyn LogFile,
    shared: &Shared,
    version: u64,
    replay_from: u64,
) -> std::io::Result<(u64, Counts)> {
    let mut out = Output { file, pending: Vec::new(), offset: 0 };
    out.put(&encode_header(version, replay_from))?;
    let counts = write_entries(&mut out, shared, version)?;
    out.put(&encode_footer(counts, version))?;
    let bytes = out.finish()?;
    debug_assert!(bytes >= (HEADER_LEN + 16 + FOOTER_LEN) as u64, "header, end, footer");
    Ok((bytes, counts))
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
    version: u64,
    replay_from: u64,
) -> Result<CheckpointInfo> {
    let Some(log) = &shared.log else {
        return Err(Error::InvalidOption { name: "durability", reason: "no log" });
    };
    Checkpoints::new(log.wal.io(), dir.to_path_buf()).write(shared, version, replay_from)
}

/// A checkpoint's header (see the module doc).
fn encode_header(version: u64, replay_from: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&version.to_le_bytes());
    header[24..32].copy_from_slice(&replay_from.to_le_bytes());
    header[32..40].copy_from_slice(&clock::now_ms().to_le_bytes());
    let checksum = xxh3_64(&header[0..40]);
    header[40..48].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// What a checkpoint's blocks hold, as its footer counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    keys: u64,
    versions: u64,
    /// Blocks before the end block.
    blocks: u64,
}

/// A checkpoint's footer (see the module doc).
fn encode_footer(counts: Counts, version: u64) -> [u8; FOOTER_LEN] {
    let mut footer = [0u8; FOOTER_LEN];
    footer[0..8].copy_from_slice(&END_MAGIC);
    footer[8..16].copy_from_slice(&counts.keys.to_le_bytes());
    footer[16..24].copy_from_slice(&counts.versions.to_le_bytes());
    footer[24..32].copy_from_slice(&counts.blocks.to_le_bytes());
    let checksum = xxh3_64_with_seed(&footer[0..32], version);
    footer[32..40].copy_from_slice(&checksum.to_le_bytes());
    footer
}

/// Writes every key's retained versions at or below `version` of `shared`, in blocks,
/// then the end block; returns what they hold.
fn write_entries(out: &mut Output<'_>, shared: &Shared, version: u64) -> std::io::Result<Counts> {
    let mut counts = Counts::default();
    let mut block = Block::default();
    let mut failed = None;
    let guard = epoch::pin();
    // A version a range delete at or below `version` hides is left out: recovery from this
    // checkpoint does not replay that range delete (see `range_delete.rs`).
    let hiding = shared.range_deletes.hiding();
    let everything: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Unbounded, Bound::Unbounded);
    shared.index.scan(everything, &guard, |key, chain| {
        let mut retained: Vec<&VersionNode> = chain
            .nodes(&guard)
            .filter(|node| node.version() <= version)
            .take_while(|node| !hiding.hides(key, node.version(), version))
            .collect();
        if retained.is_empty() {
            return ControlFlow::Continue(());
        }
        retained.reverse();
        block.entry(key, &retained);
        counts.keys += 1;
        counts.versions += retained.len() as u64;
        if block.payload.len() >= BLOCK_TARGET {
            if let Err(error) = block.flush(out, version) {
                failed = Some(error);
                return ControlFlow::Break(());
            }
            counts.blocks += 1;
        }
        ControlFlow::Continue(())
    });
    drop(guard);
    if let Some(error) = failed {
        return Err(error);
    }
    if block.count > 0 {
        block.flush(out, version)?;
        counts.blocks += 1;
    }
    block.flush(out, version)?;
    Ok(counts)
}

/// A checkpoint file written front to back, in writes of about [`IO_CHUNK_BYTES`].
struct Output<'f> {
    file: &'f dyn LogFile,
    /// Bytes not yet written, to go at `offset`.
    pending: Vec<u8>,
    offset: u64,
}

impl Output<'_> {
    /// Appends `bytes`: gathered while they fit a chunk, else written with what was
    /// gathered in one vectored write (a long block is not copied).
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.pending.len() + bytes.len() <= IO_CHUNK_BYTES {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(IO_CHUNK_BYTES);
            }
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.write_out(bytes)
    }

    /// Writes what was gathered, then `bytes`.
    fn write_out(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let bufs = [IoSlice::new(&self.pending), IoSlice::new(bytes)];
        log_io::write_all_durably(self.file, &bufs, self.offset, false)?;
        self.offset += (self.pending.len() + bytes.len()) as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is left (not synced); returns the file's length.
    fn finish(mut self) -> std::io::Result<u64> {
        self.write_out(&[])?;
        Ok(self.offset)
    }
}

/// A block being filled.
#[derive(Default)]
struct Block {
    payload: Vec<u8>,
    count: u32,
}

impl Block {
    fn entry(&mut self, key: &[u8], oldest_first: &[&VersionNode]) {
        record::put_bytes(&mut self.payload, key);
        let n = u32::try_from(oldest_first.len()).unwrap_or(u32::MAX);
        self.payload.extend_from_slice(&n.to_le_bytes());
        for node in oldest_first {
            self.payload.extend_from_slice(&node.version().to_le_bytes());
            self.payload.push(record::op_of(node));
            record::put_value(&mut self.payload, node);
        }
        self.count += 1;
    }

    /// Writes the block (an end block if empty) and empties it.
    fn flush(&mut self, out: &mut Output<'_>, seed: u64) -> std::io::Result<()> {
        let len = u32::try_from(self.payload.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a key's versions pass 4 GiB")
        })?;
        let mut head = [0u8; 8];
        head[0..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&self.count.to_le_bytes());
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed);
        hasher.update(&head);
        hasher.update(&self.payload);
        out.put(&head)?;
        out.put(&self.payload)?;
        out.put(&hasher.digest().to_le_bytes())?;
        self.payload.clear();
        self.count = 0;
        Ok(())
    }
}

/// A checkpoint loaded into the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) version: u64,
    pub(crate) replay_from: u64,
}

/// What a checkpoint file holds, as [`crate::inspect`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The file.
    pub path: PathBuf,
    /// Its version: every commit at or below it is in it.
    pub version: u64,
    /// The log position replay starts from after it.
    pub replay_from: u64,
    /// Keys in it.
    pub keys: u64,
    /// Versions in it.
    pub versions: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

impl CheckpointInfo {
    /// What recovery's decision needs of it: what it covers.
    pub(crate) fn covers(&self) -> crate::recovery::Covers {
        crate::recovery::Covers {
            path: self.path.clone(),
            version: self.version,
            replay_from: self.replay_from,
        }
    }
}

/// Reads the checkpoint at `path` through `io`, verifying every checksum and entry, and
/// links its versions into `shared` if given. Untrusted input: no length makes it allocate
/// more than the file holds, and nothing panics.
///
/// # Errors
/// [`Error::CorruptCheckpoint`] naming the file, the offset and what is wrong; [`Error::Io`].
fn read_checkpoint(io: &dyn Io, shared: Option<&Shared>, path: &Path) -> Result<CheckpointInfo> {
    let file = io
        .open(path, false, OpenFlags::default())
        .map_err(|error| Error::io("opening the checkpoint", path, error))?;
    let size = file.size().map_err(|error| Error::io("reading the checkpoint", path, error))?;
    let mut input = Input { file, ahead: Vec::new(), start: 0, offset: 0, size, path };
    let header: [u8; HEADER_LEN] = input.array("the header is cut short")?;
    if header[0..8] != MAGIC {
        return Err(input.corrupt(0, "not a checkpoint (bad magic)"));
    }
    if u64::from_le_bytes(word(&header[40..48])) != xxh3_64(&header[0..40]) {
        return Err(input.corrupt(0, "the header's checksum does not match"));
    }
    if u32::from_le_bytes(half(&header[8..12])) != FORMAT_VERSION {
        return Err(input.corrupt(8, "an unknown format version"));
    }
    let version = u64::from_le_bytes(word(&header[16..24]));
    let replay_from = u64::from_le_bytes(word(&header[24..32]));
    let (mut keys, mut versions, mut blocks) = (0u64, 0u64, 0u64);
    let guard = epoch::pin();
    loop {
        let at = input.offset;
        let head: [u8; 8] = input.array("a block header is cut short")?;
        let len = u32::from_le_bytes(half(&head[0..4]));
        let count = u32::from_le_bytes(half(&head[4..8]));
        if len > BLOCK_LEN_MAX || u64::from(len) + 8 > input.size.saturating_sub(input.offset) {
            return Err(input.corrupt(at, "a block longer than the file"));
        }
        let payload = input.bytes(len as usize, "a block is cut short")?;
        let checksum: [u8; 8] = input.array("a block's checksum is cut short")?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(version);
        hasher.update(&head);
        hasher.update(&payload);
        if hasher.digest() != u64::from_le_bytes(checksum) {
            return Err(input.corrupt(at, "a block's checksum does not match"));
        }
        if len == 0 {
            if count != 0 {
                return Err(input.corrupt(at, "an empty block with entries"));
            }
            break;
        }
        let (block_keys, block_versions) = apply_block(shared, &payload, count, version, &guard)
            .map_err(|reason| input.corrupt(at, reason))?;
        keys += block_keys;
        versions += block_versions;
        blocks += 1;
    }
    let at = input.offset;
    let footer: [u8; FOOTER_LEN] = input.array("the footer is cut short")?;
    if footer[0..8] != END_MAGIC
        || u64::from_le_bytes(word(&footer[32..40])) != xxh3_64_with_seed(&footer[0..32], version)
    {
        return Err(input.corrupt(at, "the footer is damaged"));
    }
    let counts =
        [&footer[8..16], &footer[16..24], &footer[24..32]].map(|b| u64::from_le_bytes(word(b)));
    if counts != [keys, versions, blocks] {
        return Err(input.corrupt(at, "the footer's counts do not match the blocks"));
    }
    if input.offset != input.size {
        return Err(input.corrupt(input.offset, "bytes after the footer"));
    }
    Ok(CheckpointInfo {
        path: path.to_path_buf(),
        version,
        replay_from,
        keys,
        versions,
        bytes: size,
    })
}

/// Links the entries of one verified block; returns its keys and versions, or what is
/// wrong with it.
fn apply_block(
    shared: Option<&Shared>,
    payload: &[u8],
    count: u32,
    checkpoint_version: u64,
    guard: &epoch::Guard,
) -> std::result::Result<(u64, u64), &'static str> {
    let mut reader = record::Reader::new(payload);
    let mut versions = 0u64;
    let mut state = shared.map(|shared| shared.sequencer.lock());
    for _ in 0..count {
        let key = reader.bytes().ok_or("a key longer than its block")?;
        let n = reader.u32().ok_or("an entry cut short")?;
        if n == 0 {
            return Err("a key with no versions");
        }
        let mut previous = 0u64;
        for _ in 0..n {
            let version = reader.u64().ok_or("a version cut short")?;
            if version <= previous || version > checkpoint_version {
                return Err("versions out of order or above the checkpoint's");
            }
            previous = version;
            let op = reader.u8().ok_or("a version cut short")?;
            let mut node = record::read_node(op, &mut reader)?;
            node.set_version(version);
            if let (Some(shared), Some(state)) = (shared, state.as_mut()) {
                shared.link(state, Bytes::copy_from(key), Owned::new(node), guard);
            }
            versions += 1;
        }
    }
    if !reader.is_empty() {
        return Err("bytes after the block's last entry");
    }
    Ok((u64::from(count), versions))
}

fn word(bytes: &[u8]) -> [u8; 8] {
    bytes.try_into().unwrap_or_default()
}

fn half(bytes: &[u8]) -> [u8; 4] {
    bytes.try_into().unwrap_or_default()
}

/// A checkpoint file read front to back, [`IO_CHUNK_BYTES`] at a time.
struct Input<'p> {
    file: Box<dyn LogFile>,
    /// Bytes read ahead; those from `start` on are not consumed yet.
    ahead: Vec<u8>,
    start: usize,
    /// The offset of the next byte to consume.
    offset: u64,
    size: u64,
    path: &'p Path,
}

impl Input<'_> {
    fn corrupt(&self, offset: u64, reason: &'static str) -> Error {
        Error::CorruptCheckpoint { path: self.path.to_path_buf(), offset, reason }
    }

    fn array<const N: usize>(&mut self, short: &'static str) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.fill(&mut bytes, short)?;
        Ok(bytes)
    }

    /// `len` bytes; the caller has checked that the file holds them.
    fn bytes(&mut self, len: usize, short: &'static str) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; len];
        self.fill(&mut bytes, short)?;
        Ok(bytes)
    }

    /// Fills `bytes` from the bytes read ahead, then from the file: a rest of a chunk or
    /// more straight into `bytes`, a shorter one through a read of a chunk ahead.
    fn fill(&mut self, bytes: &mut [u8], short: &'static str) -> Result<()> {
        let mut filled = 0;
        while filled < bytes.len() {
            let ahead = self.ahead.get(self.start..).unwrap_or_default();
            if !ahead.is_empty() {
                let n = ahead.len().min(bytes.len() - filled);
                bytes[filled..filled + n].copy_from_slice(&ahead[..n]);
                self.start += n;
                filled += n;
                continue;
            }
            let at = self.offset + filled as u64;
            let rest = &mut bytes[filled..];
            let direct = rest.len() >= IO_CHUNK_BYTES;
            let read = if direct { self.file.read_at(rest, at) } else { self.read_ahead(at) };
            match read {
                Ok(0) => return Err(self.corrupt(self.offset, short)),
                Ok(n) if direct => filled += n,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Error::io("reading the checkpoint", self.path, error)),
            }
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Reads ahead from `at`: a chunk, or the rest of the file if shorter (at least a
    /// byte, so that a read at the end finds it).
    fn read_ahead(&mut self, at: u64) -> std::io::Result<usize> {
        let rest = usize::try_from(self.size.saturating_sub(at)).unwrap_or(usize::MAX);
        self.ahead.resize(rest.clamp(1, IO_CHUNK_BYTES), 0);
        self.start = 0;
        let read = self.file.read_at(&mut self.ahead, at);
        self.ahead.truncate(read.as_ref().map_or(0, |n| *n));
        read
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
