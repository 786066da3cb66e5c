//! The checkpoint file's format (version 1), its constants, and the encoding of its
//! header and footer. The writer is `writer.rs`, the reader `reader.rs`.
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

use std::path::PathBuf;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::clock;
use crate::version::CommitVersion;
use inmem_wal::LogPosition;

pub(super) const MAGIC: [u8; 8] = *b"INMEMCKP";
pub(super) const END_MAGIC: [u8; 8] = *b"INMEMEND";
pub(super) const FORMAT_VERSION: u32 = 1;
pub(super) const HEADER_LEN: usize = 48;
pub(super) const FOOTER_LEN: usize = 40;
/// Blocks are cut once they pass this many bytes of entries.
pub(super) const BLOCK_TARGET: usize = 64 << 10;
/// The longest block a reader accepts (an entry larger than the target makes a block of
/// its own: one key's retained versions).
pub(super) const BLOCK_LEN_MAX: u32 = 1 << 30;
/// Bytes read ahead by one read of a checkpoint.
pub(crate) const IO_CHUNK_BYTES: usize = 1 << 20;
/// Bytes gathered into one write of a checkpoint; each write is synced
/// (`writer.rs`, `Output`).
pub(crate) const WRITE_CHUNK_BYTES: usize = 256 << 10;

// A block cut at the target fits a chunk with its head and checksum: the usual block is
// written with others in one write, not alone.
const _: () = assert!(BLOCK_TARGET + 16 < WRITE_CHUNK_BYTES);

/// A checkpoint's header (see the module doc).
pub(super) fn encode_header(version: CommitVersion, replay_from: LogPosition) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&version.get().to_le_bytes());
    header[24..32].copy_from_slice(&replay_from.get().to_le_bytes());
    header[32..40].copy_from_slice(&clock::now_ms().to_le_bytes());
    let checksum = xxh3_64(&header[0..40]);
    header[40..48].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// What a checkpoint's blocks hold, as its footer counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) keys: u64,
    pub(super) versions: u64,
    /// Blocks before the end block.
    pub(super) blocks: u64,
}

/// A checkpoint's footer (see the module doc).
pub(super) fn encode_footer(counts: Counts, version: u64) -> [u8; FOOTER_LEN] {
    let mut footer = [0u8; FOOTER_LEN];
    footer[0..8].copy_from_slice(&END_MAGIC);
    footer[8..16].copy_from_slice(&counts.keys.to_le_bytes());
    footer[16..24].copy_from_slice(&counts.versions.to_le_bytes());
    footer[24..32].copy_from_slice(&counts.blocks.to_le_bytes());
    let checksum = xxh3_64_with_seed(&footer[0..32], version);
    footer[32..40].copy_from_slice(&checksum.to_le_bytes());
    footer
}

/// What a checkpoint file holds, as [`crate::inspect`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The file.
    pub path: PathBuf,
    /// Its version: every commit at or below it is in it.
    pub version: CommitVersion,
    /// The log position replay starts from after it.
    pub replay_from: LogPosition,
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

/// The 8 bytes at the start of `bytes` (zeros if it is shorter).
pub(super) fn word(bytes: &[u8]) -> [u8; 8] {
    bytes.try_into().unwrap_or_default()
}

/// The 4 bytes at the start of `bytes` (zeros if it is shorter).
pub(super) fn half(bytes: &[u8]) -> [u8; 4] {
    bytes.try_into().unwrap_or_default()
}
