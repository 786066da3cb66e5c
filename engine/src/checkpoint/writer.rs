//! Writing a checkpoint file: every key's retained versions in blocks, gathered into large
//! writes.

use std::io::IoSlice;
use std::ops::{Bound, ControlFlow};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

use super::format::{
    encode_footer, encode_header, Counts, BLOCK_TARGET, FOOTER_LEN, HEADER_LEN, WRITE_CHUNK_BYTES,
};
use crate::index::KeyIndex;
use crate::range_delete::Hiding;
use crate::record;
use crate::sync::{epoch, AtomicBool, Ordering};
use crate::version::{CommitVersion, VersionNode};
use inmem_wal::io::{self as log_io, LogFile};
use inmem_wal::LogPosition;

/// Bytes a checkpoint writes before it writes them back to the disk (the stretch its I/O
/// budget paces). A sync of the log may have to wait for other files' dirty data to reach
/// the disk (ext4 in `data=ordered` mode writes back data before the journal commit that
/// the log's fdatasync waits for), so a checkpoint that left its whole file dirty until the
/// end would stall every commit synced meanwhile. Written back as it goes
/// ([`LogFile::write_back`]: no journal commit, no flush of the disk's cache, which an
/// fdatasync of each stretch cost), it leaves at most a stretch for them to wait on; the
/// file is synced once, at its end, before it is renamed into place.
pub(super) const STRETCH_BYTES: u64 = WRITE_CHUNK_BYTES as u64;

/// Bytes written back to the disk at a time, each waited for before the next: a log sync
/// that comes meanwhile waits behind at most this much of a checkpoint, not a whole
/// stretch.
pub(super) const WRITE_BACK_SLICE: u64 = 32 * 1024;

/// Writes the checkpoint of `index` at `version` (leaving out what `hiding` hides), whose
/// replay starts at `replay_from`, into `file` (written back every [`STRETCH_BYTES`],
/// not synced: the caller syncs it), as `pace` allows; returns its length and what its
/// blocks hold.
pub(super) fn fill(
    file: &dyn LogFile,
    index: &KeyIndex,
    hiding: &Hiding,
    (version, replay_from): (CommitVersion, LogPosition),
    pace: Pace<'_>,
) -> std::io::Result<(u64, Counts)> {
    let mut out = Output { file, pending: Vec::new(), offset: 0, in_stretch: 0, pace };
    out.put(&encode_header(version, replay_from))?;
    let version = version.get();
    let counts = write_entries(&mut out, index, hiding, version)?;
    out.put(&encode_footer(counts, version))?;
    let bytes = out.finish()?;
    debug_assert!(bytes >= (HEADER_LEN + 16 + FOOTER_LEN) as u64, "header, end, footer");
    Ok((bytes, counts))
}

/// Writes every key's retained versions at or below `version` of `index`, in blocks,
/// then the end block; returns what they hold.
fn write_entries(
    out: &mut Output<'_>,
    index: &KeyIndex,
    hiding: &Hiding,
    version: u64,
) -> std::io::Result<Counts> {
    let mut counts = Counts::default();
    let mut block = Block::default();
    let mut failed = None;
    let guard = epoch::pin();
    // A version a range delete at or below `version` hides is left out: recovery from this
    // checkpoint does not replay that range delete (see `range_delete.rs`).
    let everything: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Unbounded, Bound::Unbounded);
    index.scan(everything, &guard, |key, chain| {
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

/// A checkpoint file written front to back, in writes of about [`WRITE_CHUNK_BYTES`],
/// written back every [`STRETCH_BYTES`], paced.
struct Output<'f> {
    file: &'f dyn LogFile,
    /// Bytes not yet written, to go at `offset`.
    pending: Vec<u8>,
    offset: u64,
    /// Bytes written since the last write-back.
    in_stretch: u64,
    pace: Pace<'f>,
}

/// A checkpoint's I/O budget: each stretch written back takes at least its bytes over
/// `bytes_per_sec`, so that a checkpoint never takes more of the disk than that from the
/// log, however fast the disk would take it (0: no budget). Once `hurry` is set (the
/// database is closing, and waits for the checkpoint), the rest goes unpaced.
pub(super) struct Pace<'h> {
    bytes_per_sec: u64,
    hurry: &'h AtomicBool,
    /// When the stretch being written began.
    since: Instant,
}

impl Pace<'_> {
    /// A budget of `bytes_per_sec` (0: none), lifted once `hurry` is set.
    pub(super) fn new(bytes_per_sec: u64, hurry: &AtomicBool) -> Pace<'_> {
        Pace { bytes_per_sec, hurry, since: Instant::now() }
    }

    /// After a stretch of `bytes` is written and written back: waits out what is left of its
    /// share of time, then starts the next stretch.
    fn stretch_done(&mut self, bytes: u64) {
        if let Some(left) = self.wait_after(bytes, self.since.elapsed()) {
            std::thread::sleep(left);
        }
        self.since = Instant::now();
    }

    /// How long to wait after a stretch of `bytes` that took `took`: what is left of its
    /// share of time under the budget, if anything.
    fn wait_after(&self, bytes: u64, took: Duration) -> Option<Duration> {
        // Relaxed: a flag read on its own; a late look only paces one more stretch.
        if self.bytes_per_sec == 0 || self.hurry.load(Ordering::Relaxed) {
            return None;
        }
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(self.bytes_per_sec);
        let share = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        share.checked_sub(took).filter(|left| !left.is_zero())
    }
}

impl Output<'_> {
    /// Appends `bytes`: gathered while they fit a chunk, else written with what was
    /// gathered in one vectored write (a long block is not copied).
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.pending.len() + bytes.len() <= WRITE_CHUNK_BYTES {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(WRITE_CHUNK_BYTES);
            }
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.write_out(bytes)
    }

    /// Writes what was gathered, then `bytes`.
    fn write_out(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let bufs = [IoSlice::new(&self.pending), IoSlice::new(bytes)];
        let written = (self.pending.len() + bytes.len()) as u64;
        log_io::write_all_durably(self.file, &bufs, self.offset, false)?;
        self.offset += written;
        self.in_stretch += written;
        if self.in_stretch >= STRETCH_BYTES {
            let end = self.offset;
            let mut from = end - self.in_stretch;
            while from < end {
                let len = (end - from).min(WRITE_BACK_SLICE);
                self.file.write_back(from, len)?;
                from += len;
            }
            self.pace.stretch_done(self.in_stretch);
            self.in_stretch = 0;
        }
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
        let mut hasher = Xxh3::with_seed(seed);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_waits_out_its_share_of_the_budget_unless_unpaced_or_hurried() {
        let calm = AtomicBool::new(false);
        let paced = Pace::new(1 << 20, &calm);
        let stretch = 256 << 10; // a quarter of a second's budget
        assert_eq!(paced.wait_after(stretch, Duration::ZERO), Some(Duration::from_millis(250)));
        assert_eq!(
            paced.wait_after(stretch, Duration::from_millis(100)),
            Some(Duration::from_millis(150)),
            "only what is left of its share"
        );
        assert_eq!(paced.wait_after(stretch, Duration::from_millis(300)), None, "it took longer");
        assert_eq!(Pace::new(0, &calm).wait_after(stretch, Duration::ZERO), None, "no budget");
        let closing = AtomicBool::new(true);
        assert_eq!(Pace::new(1 << 20, &closing).wait_after(stretch, Duration::ZERO), None);
    }
}
