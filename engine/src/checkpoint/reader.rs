//! Reading a checkpoint file back: every checksum and entry verified, its versions linked
//! into a keyspace (recovery) or dropped (inspection). Untrusted input throughout.
//!
//! Recovery links from one thread per core: this thread reads the blocks and verifies
//! their checksums, and hands them out in turn to the linking threads, each of which
//! decodes its blocks and links their versions ([`crate::load`]). A key is whole in one
//! block, so no key is linked by two threads. The damage reported is the first in the file,
//! as a reading in one thread would find it: a thread stops at its first damaged block,
//! this one at its first unreadable block, and only blocks before the earliest of these
//! matter (every block before a damaged one was read, handed out and decoded).

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed, Xxh3};

use super::format::{
    half, word, CheckpointInfo, BLOCK_LEN_MAX, END_MAGIC, FOOTER_LEN, FORMAT_VERSION, HEADER_LEN,
    IO_CHUNK_BYTES, MAGIC,
};
use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::load::{self, Loader};
use crate::record;
use crate::shared::Shared;
use crate::sync::epoch::{self, Owned};
use crate::version::{CommitVersion, VersionNode};
use inmem_wal::io::{Io, LogFile, OpenFlags};
use inmem_wal::LogPosition;

/// Checkpoints smaller than this are linked by one thread: starting more costs more than
/// they would save.
pub(super) const PARALLEL_BYTES_MIN: u64 = 4 << 20;
/// Blocks read ahead for each linking thread, at most: what a linking thread that falls
/// behind holds up (64 KiB each, usually).
const QUEUED_BLOCKS: usize = 8;

/// A verified block: its offset, entry count and payload.
type Block = (u64, u32, Vec<u8>);

/// What the blocks held: keys and versions.
type Linked = (u64, u64);

/// The first damaged block a linking thread found: its offset and what is wrong.
type Damaged = (u64, &'static str);

/// Reads the checkpoint at `path` through `io`, verifying every checksum and entry, and
/// links its versions into `into` if given: a keyspace nobody shares yet, through
/// [`Loader`]s on up to the given number of threads (one for a small checkpoint); the
/// caller ends the load with [`load::finish`]. Untrusted input: no length makes it allocate
/// more than the file holds, and nothing panics.
///
/// # Errors
/// [`Error::CorruptCheckpoint`] naming the file, the offset and what is wrong (the first
/// damage in the file); [`Error::Io`]. `into` then holds some of the versions: the caller
/// drops it.
pub(super) fn read_checkpoint(
    io: &dyn Io,
    into: Option<(&Shared, usize)>,
    path: &Path,
) -> Result<CheckpointInfo> {
    let file = io
        .open(path, false, OpenFlags::default())
        .map_err(|error| Error::io("opening the checkpoint", path, error))?;
    let size = file.size().map_err(|error| Error::io("reading the checkpoint", path, error))?;
    let mut input = Input { file, ahead: Vec::new(), start: 0, offset: 0, size, path };
    let (version, replay_from) = input.header()?;
    let (keys, versions, blocks) = match into {
        Some((shared, threads)) if threads > 1 && size >= PARALLEL_BYTES_MIN => {
            link_in_parallel(&mut input, version, shared, threads.min(load::LOAD_THREADS_MAX))?
        }
        _ => link_here(&mut input, version, into.map(|(shared, _)| shared))?,
    };
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
        version: CommitVersion::new(version),
        replay_from: LogPosition::new(replay_from),
        keys,
        versions,
        bytes: size,
    })
}

/// Where replay starts after the checkpoint at `path`, as its header says, if the header
/// can be read and verified and the checkpoint is large enough to load on several threads
/// (a smaller one loads faster than another thread starts); the rest of the file is not
/// read. Only a forecast: it is what [`read_checkpoint`] reports if the whole file turns
/// out whole.
pub(super) fn read_replay_from(io: &dyn Io, path: &Path) -> Option<LogPosition> {
    let file = io.open(path, false, OpenFlags::default()).ok()?;
    let size = file.size().ok().filter(|size| *size >= PARALLEL_BYTES_MIN)?;
    let mut input = Input { file, ahead: Vec::new(), start: 0, offset: 0, size, path };
    let (_, replay_from) = input.header().ok()?;
    Some(LogPosition::new(replay_from))
}

/// Reads, verifies and decodes every block up to the end block in this thread, linking
/// their versions into `into` if given: keys, versions and blocks.
fn link_here(
    input: &mut Input<'_>,
    version: u64,
    into: Option<&Shared>,
) -> Result<(u64, u64, u64)> {
    let guard = epoch::pin();
    let mut loader = into.map(Loader::new);
    let (mut keys, mut versions, mut blocks) = (0u64, 0u64, 0u64);
    let decoded = loop {
        let (at, count, payload) = match input.block(version) {
            Ok(Some(block)) => block,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        };
        let mut link = |key, node| {
            if let Some(loader) = loader.as_mut() {
                loader.link(key, Owned::new(node), &guard);
            }
        };
        match decode_block(&payload, count, version, &mut link) {
            Ok((block_keys, block_versions)) => {
                keys += block_keys;
                versions += block_versions;
                blocks += 1;
            }
            Err(reason) => break Err(input.corrupt(at, reason)),
        }
    };
    if let Some(loader) = loader {
        loader.finish();
    }
    decoded.map(|()| (keys, versions, blocks))
}

/// Reads and verifies every block up to the end block in this thread, and hands them out in
/// turn to `threads` threads that decode them and link their versions into `into` (see the
/// module doc): keys, versions and blocks, or the first damage in the file.
fn link_in_parallel(
    input: &mut Input<'_>,
    version: u64,
    into: &Shared,
    threads: usize,
) -> Result<(u64, u64, u64)> {
    debug_assert!(threads > 1);
    std::thread::scope(|scope| {
        let mut queues = Vec::with_capacity(threads);
        let mut linking = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (queue, blocks) = sync_channel::<Block>(QUEUED_BLOCKS);
            queues.push(queue);
            linking.push(scope.spawn(move || link_blocks(&blocks, version, into)));
        }
        let mut blocks = 0u64;
        let read = loop {
            match input.block(version) {
                Ok(Some(block)) => {
                    let queue = usize::try_from(blocks).map_or(0, |n| n % threads);
                    blocks += 1;
                    // A thread that stopped at damage takes no more blocks: those after it
                    // do not matter.
                    if queues[queue].send(block).is_err() {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        drop(queues);
        let (mut keys, mut versions) = (0u64, 0u64);
        let mut damaged: Option<Damaged> = None;
        for thread in linking {
            match thread.join() {
                Ok(Ok((thread_keys, thread_versions))) => {
                    keys += thread_keys;
                    versions += thread_versions;
                }
                Ok(Err(found)) => damaged = Some(damaged.map_or(found, |first| first.min(found))),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        // A block a thread decoded was read before anything this thread failed to read.
        if let Some((at, reason)) = damaged {
            return Err(input.corrupt(at, reason));
        }
        read.map(|()| (keys, versions, blocks))
    })
}

/// A linking thread: decodes the blocks it is handed, in order, and links their versions,
/// until the reader is done or a block is damaged.
fn link_blocks(
    blocks: &Receiver<Block>,
    version: u64,
    into: &Shared,
) -> std::result::Result<Linked, Damaged> {
    let guard = epoch::pin();
    let mut loader = Loader::new(into);
    let mut link = |key, node| loader.link(key, Owned::new(node), &guard);
    let (mut keys, mut versions) = (0u64, 0u64);
    let linked = loop {
        let Ok((at, count, payload)) = blocks.recv() else { break Ok((keys, versions)) };
        match decode_block(&payload, count, version, &mut link) {
            Ok((block_keys, block_versions)) => {
                keys += block_keys;
                versions += block_versions;
            }
            Err(reason) => break Err((at, reason)),
        }
    };
    loader.finish();
    linked
}

/// Decodes the entries of one verified block, handing each version to `link` (in key
/// order, each key's oldest first): its key and version counts, or what is wrong with it.
fn decode_block(
    payload: &[u8],
    count: u32,
    checkpoint_version: u64,
    link: &mut dyn FnMut(Bytes, VersionNode),
) -> std::result::Result<Linked, &'static str> {
    let mut reader = record::Reader::new(payload);
    let mut versions = 0u64;
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
            node.set_version(CommitVersion::new(version));
            link(Bytes::copy_from(key), node);
            versions += 1;
        }
    }
    if !reader.is_empty() {
        return Err("bytes after the block's last entry");
    }
    Ok((u64::from(count), versions))
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
    /// The file's header, verified: the checkpoint's version and where replay starts.
    fn header(&mut self) -> Result<(u64, u64)> {
        let header: [u8; HEADER_LEN] = self.array("the header is cut short")?;
        if header[0..8] != MAGIC {
            return Err(self.corrupt(0, "not a checkpoint (bad magic)"));
        }
        if u64::from_le_bytes(word(&header[40..48])) != xxh3_64(&header[0..40]) {
            return Err(self.corrupt(0, "the header's checksum does not match"));
        }
        if u32::from_le_bytes(half(&header[8..12])) != FORMAT_VERSION {
            return Err(self.corrupt(8, "an unknown format version"));
        }
        let version = u64::from_le_bytes(word(&header[16..24]));
        let replay_from = u64::from_le_bytes(word(&header[24..32]));
        Ok((version, replay_from))
    }

    /// The next block, verified against its checksum (seeded with the checkpoint's
    /// `version`): its offset, entry count and payload; `None` at the end block.
    fn block(&mut self, version: u64) -> Result<Option<(u64, u32, Vec<u8>)>> {
        let at = self.offset;
        let head: [u8; 8] = self.array("a block header is cut short")?;
        let len = u32::from_le_bytes(half(&head[0..4]));
        let count = u32::from_le_bytes(half(&head[4..8]));
        if len > BLOCK_LEN_MAX || u64::from(len) + 8 > self.size.saturating_sub(self.offset) {
            return Err(self.corrupt(at, "a block longer than the file"));
        }
        let payload = self.bytes(len as usize, "a block is cut short")?;
        let checksum: [u8; 8] = self.array("a block's checksum is cut short")?;
        let mut hasher = Xxh3::with_seed(version);
        hasher.update(&head);
        hasher.update(&payload);
        if hasher.digest() != u64::from_le_bytes(checksum) {
            return Err(self.corrupt(at, "a block's checksum does not match"));
        }
        if len == 0 {
            if count != 0 {
                return Err(self.corrupt(at, "an empty block with entries"));
            }
            return Ok(None);
        }
        Ok(Some((at, count, payload)))
    }

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
