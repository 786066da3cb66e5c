//! Checkpoints: every retained version at or below a version, in key order, in one file,
//! so that recovery replays only the log after it and the log before it can be deleted.
//!
//! # Taking one
//!
//! 1. Read the log's end `P`, then the last commit version handed out, `V`. Every record
//!    before `P` was appended by a commit that had its version before `P` was read, so at
//!    or below `V`: the checkpoint at `V` covers all of them.
//! 2. Wait until `V` is visible, take a snapshot at `V` (it keeps what it reads from the
//!    collector), and write every key's versions at or below `V` that are still retained,
//!    oldest first, into `checkpoint-<V>.tmp`; fsync it, rename it to
//!    `checkpoint-<V>.ckpt`, fsync the directory. Writers and readers go on meanwhile.
//! 3. Delete the checkpoints older than the previous one, then the log segments wholly
//!    below the previous one's `P`: the previous checkpoint and the log since it stay, the
//!    fallback if this one is ever found damaged.
//!
//! Recovery loads the newest checkpoint (or, if it is damaged, the one before it, and says
//! so in `Database::recovery`), then replays the log from its `P`, skipping versions at or
//! below its `V` (records after `P` may still be of such versions).
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

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::bytes::Bytes;
use crate::clock;
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::record;
use crate::sync::epoch::{self, Owned};
use crate::sync::Ordering;
use crate::version::VersionNode;
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
    /// poisoned: its log is intact).
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
        let dir = log.dir.join(CHECKPOINT_DIR);
        let (path, keys, versions, bytes) = write(self, &dir, version, replay_from.get())?;
        drop(snapshot);
        // The previous checkpoint stays, with the log since it: the fallback if this one
        // is ever found damaged. Older ones, and the log before the previous one, go.
        for (_, older_path) in list(&dir)?.into_iter().skip(2) {
            std::fs::remove_file(&older_path)
                .map_err(|error| Error::io("removing an older checkpoint", &error))?;
        }
        sync_dir(&dir)?;
        let previous = log.checkpointed_end.swap(replay_from.get(), Ordering::Relaxed);
        let segments_deleted = log
            .wal
            .delete_below(LogPosition::new(previous))
            .map_err(|error| Error::log("deleting segments a checkpoint covers", &error))?;
        Ok(CheckpointReport {
            version: crate::CommitVersion::new(version),
            path,
            keys,
            versions,
            bytes,
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

/// The checkpoints in `dir`, newest first.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found: Vec<(u64, PathBuf)> = entries(dir)?
        .into_iter()
        .filter_map(|path| {
            let version = path.file_name().and_then(|name| name.to_str()).and_then(parse_name)?;
            Some((version, path))
        })
        .collect();
    found.sort_unstable_by_key(|(version, _)| std::cmp::Reverse(*version));
    Ok(found)
}

/// Removes checkpoint files left unfinished by a crash while writing one.
pub(crate) fn remove_unfinished(dir: &Path) -> Result<()> {
    for path in entries(dir)? {
        let unfinished = path.extension().is_some_and(|ext| ext == "tmp")
            && path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .is_some_and(|stem| parse_name(&format!("{stem}.ckpt")).is_some());
        if unfinished {
            std::fs::remove_file(&path)
                .map_err(|error| Error::io("removing an unfinished checkpoint", &error))?;
        }
    }
    Ok(())
}

/// The paths in the checkpoints' directory `dir`; none if it does not exist yet.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io("listing checkpoints", &error)),
    };
    listing
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|error| Error::io("listing checkpoints", &error))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| Error::io("syncing the checkpoints' directory", &error))
}

/// Writes the checkpoint of `shared` at `version`, whose replay starts at `replay_from`, into
/// `dir`; returns its path, keys, versions and bytes.
pub(crate) fn write(
    shared: &Shared,
    dir: &Path,
    version: u64,
    replay_from: u64,
) -> Result<(PathBuf, u64, u64, u64)> {
    std::fs::create_dir_all(dir)
        .map_err(|error| Error::io("creating the checkpoints' directory", &error))?;
    let path = dir.join(file_name(version));
    let temporary = path.with_extension("tmp");
    let io = |error: std::io::Error| Error::io("writing a checkpoint", &error);
    let file = File::create(&temporary).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&version.to_le_bytes());
    header[24..32].copy_from_slice(&replay_from.to_le_bytes());
    header[32..40].copy_from_slice(&clock::now_ms().to_le_bytes());
    let checksum = xxh3_64(&header[0..40]);
    header[40..48].copy_from_slice(&checksum.to_le_bytes());
    out.write_all(&header).map_err(io)?;

    let (mut keys, mut versions, mut blocks, mut bytes) = (0u64, 0u64, 0u64, HEADER_LEN as u64);
    let mut block = Block::default();
    let mut failed = None;
    let guard = epoch::pin();
    let everything: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Unbounded, Bound::Unbounded);
    shared.index.scan(everything, &guard, |key, chain| {
        let mut retained: Vec<&VersionNode> =
            chain.nodes(&guard).filter(|node| node.version() <= version).collect();
        if retained.is_empty() {
            return ControlFlow::Continue(());
        }
        retained.reverse();
        block.entry(key, &retained);
        keys += 1;
        versions += retained.len() as u64;
        if block.payload.len() >= BLOCK_TARGET {
            match block.flush(&mut out, version) {
                Ok(written) => {
                    bytes += written;
                    blocks += 1;
                }
                Err(error) => {
                    failed = Some(error);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    drop(guard);
    if let Some(error) = failed {
        return Err(io(error));
    }
    if block.count > 0 {
        bytes += block.flush(&mut out, version).map_err(io)?;
        blocks += 1;
    }
    bytes += block.flush(&mut out, version).map_err(io)?;
    let mut footer = [0u8; FOOTER_LEN];
    footer[0..8].copy_from_slice(&END_MAGIC);
    footer[8..16].copy_from_slice(&keys.to_le_bytes());
    footer[16..24].copy_from_slice(&versions.to_le_bytes());
    footer[24..32].copy_from_slice(&blocks.to_le_bytes());
    let checksum = xxh3_64_with_seed(&footer[0..32], version);
    footer[32..40].copy_from_slice(&checksum.to_le_bytes());
    out.write_all(&footer).map_err(io)?;
    bytes += FOOTER_LEN as u64;
    let file = out.into_inner().map_err(|error| io(error.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temporary, &path).map_err(io)?;
    sync_dir(dir)?;
    Ok((path, keys, versions, bytes))
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

    /// Writes the block (an end block if empty) and empties it; returns its bytes.
    fn flush(&mut self, out: &mut impl Write, seed: u64) -> std::io::Result<u64> {
        let len = u32::try_from(self.payload.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a key's versions pass 4 GiB")
        })?;
        let mut head = [0u8; 8];
        head[0..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&self.count.to_le_bytes());
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed);
        hasher.update(&head);
        hasher.update(&self.payload);
        out.write_all(&head)?;
        out.write_all(&self.payload)?;
        out.write_all(&hasher.digest().to_le_bytes())?;
        let written = 16 + self.payload.len() as u64;
        self.payload.clear();
        self.count = 0;
        Ok(written)
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

/// Loads the checkpoint at `path` into `shared`, verifying every checksum.
///
/// # Errors
/// As [`read`].
pub(crate) fn load(shared: &Shared, path: &Path) -> Result<Loaded> {
    let info = read(Some(shared), path)?;
    Ok(Loaded { version: info.version, replay_from: info.replay_from })
}

/// Reads the checkpoint at `path`, verifying every checksum and entry, and links its
/// versions into `shared` if given. Untrusted input: no length makes it allocate more than
/// the file holds, and nothing panics.
///
/// # Errors
/// [`Error::CorruptCheckpoint`] naming the file, the offset and what is wrong; [`Error::Io`].
pub(crate) fn read(shared: Option<&Shared>, path: &Path) -> Result<CheckpointInfo> {
    let file = File::open(path).map_err(|error| Error::io("opening a checkpoint", &error))?;
    let size = file.metadata().map_err(|error| Error::io("reading a checkpoint", &error))?.len();
    let mut input =
        Input { reader: BufReader::with_capacity(1 << 20, file), offset: 0, size, path };
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

/// A checkpoint file read front to back.
struct Input<'p> {
    reader: BufReader<File>,
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

    fn fill(&mut self, bytes: &mut [u8], short: &'static str) -> Result<()> {
        match self.reader.read_exact(bytes) {
            Ok(()) => {
                self.offset += bytes.len() as u64;
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.corrupt(self.offset, short))
            }
            Err(error) => Err(Error::io("reading a checkpoint", &error)),
        }
    }
}
