//! `--baseline fsync`: the raw rates of durable writes on the disk the wal workload writes
//! to, in the same run: the fastest durable write (overwrites), and the log's own write
//! pattern (appends) into files prepared the ways a segment can be.
//!
//! **Overwrites** (`mode` `overwrite`). A file in the benchmark's directory gets
//! [`GROUP_BLOCKS`] blocks of [`BLOCK_BYTES`] written and fsync'd once, unmeasured, so that
//! every measured write overwrites blocks that are allocated and written: no fdatasync has
//! any metadata to update. Then, timed one by one:
//!
//! - batch 1: a [`BLOCK_BYTES`] pwrite at offset 0 + fdatasync, `--ops` times: the fastest
//!   durable write, what one commit at a time can at best reach;
//! - batch 32: one pwrite of [`GROUP_BLOCKS`] blocks at offset 0 + fdatasync: the cost of
//!   a 32-commit group (each commit counted as a whole block, so the raw limit is, if
//!   anything, low), `--ops / 4` times but at least `min(--ops, 200)`: fewer than batch 1,
//!   as each writes 32 times the bytes, but enough for a steady figure where an fdatasync
//!   costs about the same whatever its size.
//!
//! **Appends** (batch 1, one row per [`AppendMode`]). What the log does: `--ops` blocks of
//! [`BLOCK_BYTES`] written one after another from offset 0, each made durable before the
//! next, into a file of exactly `--ops` blocks prepared (unmeasured, and synced) as:
//!
//! - `append-fallocate`: `fallocate`d to its size (its extents stay "unwritten" until
//!   written), each pwrite followed by an fdatasync, which may have to commit the
//!   extent's conversion to the file system's journal;
//! - `append-zeroed`: zero-filled and fsync'd, as the log prepares a segment (and as a
//!   recycled segment already is), each pwrite followed by an fdatasync;
//! - `append-dsync`: zero-filled, opened with `O_DSYNC`: each pwrite is durable when it
//!   returns, no separate fdatasync;
//! - `append-direct`: zero-filled, opened with `O_DIRECT | O_DSYNC`, written from a
//!   [`BLOCK_BYTES`]-aligned buffer: no page cache, no separate fdatasync.
//!
//! Each prepared file is removed before the next is made. Where the file system refuses
//! what a mode needs (`O_DIRECT`, refused with EINVAL; `fallocate`, with EOPNOTSUPP), the
//! mode's row is left out and stderr says so; any other error stops the benchmark.
//!
//! In every row, fsyncs/s are durable writes per second (under `O_DSYNC`, pwrites), and
//! each write changes its first bytes (a counter), so no layer can skip it as unchanged.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rustix::fs::{FallocateFlags, Mode, OFlags};

use super::args::{Config, Workload};
use super::error::BenchError;
use super::progress;
use super::report::{FsyncRun, RunRecord};
use super::rss::PeakRss;

/// Bytes of one raw write: a page, the smallest write a disk makes durable.
pub(crate) const BLOCK_BYTES: usize = 4096;
/// Blocks written together by the batch run: a 32-commit group.
pub(crate) const GROUP_BLOCKS: usize = 32;
/// The batch run makes `--ops` / this many fdatasyncs (128 KiB each).
const GROUP_RUN_DIVISOR: u64 = 4;
/// The batch run makes at least this many fdatasyncs (unless `--ops` is smaller), so its
/// percentiles mean something.
const GROUP_FSYNCS_MIN: u64 = 200;
/// Latencies are recorded up to this (an hour); longer ones as this.
const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// The `mode` of the overwrite rows.
pub(crate) const OVERWRITE_MODE: &str = "overwrite";
/// Bytes of zeroes written at a time when zero-filling an append file.
const ZERO_CHUNK_BYTES: usize = 1 << 20;
/// What every raw block holds beyond its counter.
const FILL_BYTE: u8 = 0xa5;
/// `O_DSYNC`, the kernel's value. rustix 1's `OFlags::DSYNC` is `O_SYNC` on Linux (its
/// raw-syscall backend defines it so), which would also make every write sync the file's
/// timestamps: not what the log would ask for.
#[cfg(target_os = "linux")]
const O_DSYNC: OFlags = OFlags::from_bits_retain(linux_raw_sys::general::O_DSYNC);
/// `O_DSYNC`.
#[cfg(not(target_os = "linux"))]
const O_DSYNC: OFlags = OFlags::DSYNC;

/// How an append run's file is prepared and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendMode {
    /// fallocate'd file; pwrite + fdatasync.
    Fallocate,
    /// Zero-filled file; pwrite + fdatasync.
    Zeroed,
    /// Zero-filled file opened `O_DSYNC`; pwrite only.
    Dsync,
    /// Zero-filled file opened `O_DIRECT | O_DSYNC`, aligned buffer; pwrite only.
    Direct,
}

impl AppendMode {
    /// Every mode, in the order they are measured and reported.
    pub(crate) const ALL: [AppendMode; 4] =
        [AppendMode::Fallocate, AppendMode::Zeroed, AppendMode::Dsync, AppendMode::Direct];

    /// The mode's name, as the `mode` field and the table's notes give it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            AppendMode::Fallocate => "append-fallocate",
            AppendMode::Zeroed => "append-zeroed",
            AppendMode::Dsync => "append-dsync",
            AppendMode::Direct => "append-direct",
        }
    }

    /// The `open(2)` flags the measured writes go through, beyond write-only.
    fn open_flags(self) -> OFlags {
        match self {
            AppendMode::Fallocate | AppendMode::Zeroed => OFlags::empty(),
            AppendMode::Dsync => O_DSYNC,
            AppendMode::Direct => OFlags::DIRECT.union(O_DSYNC),
        }
    }

    /// Whether each write needs an fdatasync of its own to be durable.
    fn syncs_each_write(self) -> bool {
        self.open_flags().is_empty()
    }

    /// Whether `error`, met before any block was written durably, says that the file
    /// system refuses what this mode needs (rather than that the disk failed).
    fn refused_by(self, error: &io::Error) -> bool {
        let errno = error.raw_os_error();
        match self {
            AppendMode::Fallocate => errno == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()),
            AppendMode::Direct => errno == Some(rustix::io::Errno::INVAL.raw_os_error()),
            AppendMode::Zeroed | AppendMode::Dsync => false,
        }
    }

    /// What the file system refuses, for the note on stderr.
    fn needs(self) -> &'static str {
        match self {
            AppendMode::Fallocate => "fallocate",
            AppendMode::Direct => "O_DIRECT",
            AppendMode::Zeroed | AppendMode::Dsync => "the file's open flags",
        }
    }
}

/// Every raw row of one session, in the order they are reported.
pub(crate) struct Baseline {
    /// Overwrite batch 1: the limit of one commit at a time.
    pub(crate) single: RunRecord,
    /// Overwrite batch 32: the limit of a 32-commit group.
    pub(crate) grouped: RunRecord,
    /// One row per [`AppendMode`] the file system allows, in [`AppendMode::ALL`]'s order.
    pub(crate) appends: Vec<RunRecord>,
}

impl Baseline {
    /// Every row: the overwrites, then the appends.
    pub(crate) fn into_records(self) -> impl Iterator<Item = RunRecord> {
        [self.single, self.grouped].into_iter().chain(self.appends)
    }
}

/// Measures the overwrites (batch 1, batch 32) and then each append mode, in `dir`.
///
/// # Errors
/// [`BenchError::FsyncBaseline`] if a file cannot be made, prepared, written, synced or
/// removed (other than a mode the file system refuses, which is left out and said on
/// stderr), [`BenchError::Histogram`] if a latency histogram cannot be made.
pub(crate) fn measure(config: &Config, dir: &Path, progress: bool) -> Result<Baseline, BenchError> {
    let (single, grouped) = measure_overwrites(config, dir, progress)?;
    let mut appends = Vec::with_capacity(AppendMode::ALL.len());
    for mode in AppendMode::ALL {
        appends.extend(measure_append(config, dir, mode, progress)?);
    }
    Ok(Baseline { single, grouped, appends })
}

/// Measures batch 1 and batch 32 in `dir`; returns their records in that order.
fn measure_overwrites(
    config: &Config,
    dir: &Path,
    progress: bool,
) -> Result<(RunRecord, RunRecord), BenchError> {
    let mut overwrites = Overwrites::create(dir, "fsync-baseline")?;
    let ops = config.ops_for(Workload::Wal);
    let group_fsyncs = (ops / GROUP_RUN_DIVISOR).max(ops.min(GROUP_FSYNCS_MIN));
    let single = measure_batch(config, &mut overwrites, 1, ops, progress)?;
    let grouped = measure_batch(config, &mut overwrites, GROUP_BLOCKS, group_fsyncs, progress)?;
    overwrites.remove()?;
    Ok((single, grouped))
}

/// One measured run of `fsyncs` overwrites of `batch` blocks, as a record.
fn measure_batch(
    config: &Config,
    overwrites: &mut Overwrites,
    batch: usize,
    fsyncs: u64,
    progress: bool,
) -> Result<RunRecord, BenchError> {
    let bar = progress::bar(progress, fsyncs, format!("fsync batch {batch}"));
    let peak = PeakRss::start();
    let run = overwrites.run(batch, fsyncs, &bar);
    let rss = peak.finish();
    bar.finish_and_clear();
    Ok(RunRecord::fsync(config, &run?, rss))
}

/// A file of [`GROUP_BLOCKS`] blocks, written and fsync'd once when made, that overwrite
/// runs rewrite from offset 0: no fdatasync of theirs has metadata to update.
pub(crate) struct Overwrites {
    file: File,
    path: PathBuf,
    blocks: Vec<u8>,
}

impl Overwrites {
    /// Makes the file `name` in `dir`.
    ///
    /// # Errors
    /// [`BenchError::FsyncBaseline`] if it cannot be made, written or synced.
    pub(crate) fn create(dir: &Path, name: &str) -> Result<Overwrites, BenchError> {
        let path = dir.join(name);
        let failed = |source| BenchError::FsyncBaseline { path: path.clone(), source };
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path);
        let file = file.map_err(failed)?;
        let blocks = vec![FILL_BYTE; BLOCK_BYTES * GROUP_BLOCKS];
        file.write_all_at(&blocks, 0).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        Ok(Overwrites { file, path, blocks })
    }

    /// Writes `batch` blocks (at most [`GROUP_BLOCKS`]) at offset 0 and fdatasyncs them,
    /// `fsyncs` times, each timed.
    ///
    /// # Errors
    /// [`BenchError::Histogram`] if no latency histogram can be made,
    /// [`BenchError::FsyncBaseline`] if a write or an fdatasync fails.
    pub(crate) fn run(
        &mut self,
        batch: usize,
        fsyncs: u64,
        bar: &ProgressBar,
    ) -> Result<FsyncRun, BenchError> {
        debug_assert!((1..=GROUP_BLOCKS).contains(&batch));
        let data = &mut self.blocks[..batch * BLOCK_BYTES];
        let mut latency = latency_histogram()?;
        let file = &self.file;
        let elapsed = time_each(data, fsyncs, &mut latency, bar, |data, _| {
            file.write_all_at(data, 0).and_then(|()| file.sync_data())
        })
        .map_err(|(_, source)| BenchError::FsyncBaseline { path: self.path.clone(), source })?;
        Ok(FsyncRun { mode: OVERWRITE_MODE, batch: batch as u64, fsyncs, elapsed, latency })
    }

    /// Closes and removes the file.
    ///
    /// # Errors
    /// [`BenchError::FsyncBaseline`] if it cannot be removed.
    pub(crate) fn remove(self) -> Result<(), BenchError> {
        drop(self.file);
        std::fs::remove_file(&self.path)
            .map_err(|source| BenchError::FsyncBaseline { path: self.path, source })
    }
}

/// Why an append run ends without a row.
enum Skip {
    /// The file system refuses what the mode needs: said on stderr, the session goes on.
    Refused(io::Error),
    /// Anything else: the session stops.
    Failed(BenchError),
}

impl From<BenchError> for Skip {
    fn from(error: BenchError) -> Skip {
        Skip::Failed(error)
    }
}

/// One measured append run of `mode` in `dir`, as a record; `None` (said on stderr) if the
/// file system refuses the mode.
fn measure_append(
    config: &Config,
    dir: &Path,
    mode: AppendMode,
    progress: bool,
) -> Result<Option<RunRecord>, BenchError> {
    let path = dir.join(format!("fsync-{}", mode.name()));
    let run = prepare_and_append(config, &path, mode, progress);
    let removed = match std::fs::remove_file(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        removed => removed,
    };
    let record = match run {
        Ok(record) => Some(record),
        Err(Skip::Refused(error)) => {
            eprintln!(
                "fsync baseline: {} unavailable: the file system of {} refuses {} ({error}); \
                 its row is left out",
                mode.name(),
                path.display(),
                mode.needs()
            );
            None
        }
        Err(Skip::Failed(error)) => return Err(error),
    };
    removed.map_err(|source| BenchError::FsyncBaseline { path, source })?;
    Ok(record)
}

/// Prepares the file at `path` for `mode`, then appends `--ops` blocks to it, each timed.
fn prepare_and_append(
    config: &Config,
    path: &Path,
    mode: AppendMode,
    progress: bool,
) -> Result<RunRecord, Skip> {
    let classify = |error: io::Error, durable_blocks: u64| {
        if durable_blocks == 0 && mode.refused_by(&error) {
            Skip::Refused(error)
        } else {
            Skip::Failed(BenchError::FsyncBaseline { path: path.to_owned(), source: error })
        }
    };
    let blocks = config.ops_for(Workload::Wal);
    let len = blocks.saturating_mul(BLOCK_BYTES as u64);
    prepare(path, mode, len).map_err(|error| classify(error, 0))?;
    let flags = OFlags::WRONLY | OFlags::CLOEXEC | mode.open_flags();
    let opened = rustix::fs::open(path, flags, Mode::empty());
    let file = File::from(opened.map_err(|errno| classify(errno.into(), 0))?);
    // O_DIRECT needs the buffer aligned as the block: cut one out of a buffer a block longer.
    let mut buffer = vec![FILL_BYTE; 2 * BLOCK_BYTES];
    let start = buffer.as_ptr().addr().wrapping_neg() % BLOCK_BYTES;
    let block = &mut buffer[start..start + BLOCK_BYTES];
    let mut latency = latency_histogram()?;
    let bar = progress::bar(progress, blocks, format!("fsync {}", mode.name()));
    let peak = PeakRss::start();
    let run = time_each(block, blocks, &mut latency, &bar, |block, count| {
        file.write_all_at(block, count * BLOCK_BYTES as u64)?;
        if mode.syncs_each_write() {
            file.sync_data()?;
        }
        Ok(())
    });
    let rss = peak.finish();
    bar.finish_and_clear();
    let elapsed = run.map_err(|(count, error)| classify(error, count))?;
    let run = FsyncRun { mode: mode.name(), batch: 1, fsyncs: blocks, elapsed, latency };
    Ok(RunRecord::fsync(config, &run, rss))
}

/// Makes the file at `path`, `len` bytes long, prepared as `mode` says, and makes that
/// durable (data and metadata), so that no measured write pays for the preparation.
fn prepare(path: &Path, mode: AppendMode, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    if mode == AppendMode::Fallocate {
        rustix::fs::fallocate(&file, FallocateFlags::empty(), 0, len)?;
    } else {
        let zeroes = vec![0_u8; ZERO_CHUNK_BYTES];
        let mut offset = 0;
        while offset < len {
            let left = usize::try_from(len - offset).unwrap_or(usize::MAX);
            let chunk = left.min(ZERO_CHUNK_BYTES);
            file.write_all_at(&zeroes[..chunk], offset)?;
            offset += chunk as u64;
        }
    }
    file.sync_all()
}

/// A histogram for write latencies in nanoseconds.
fn latency_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, 3)
        .map_err(|error| BenchError::Histogram(format!("{error:?}")))
}

/// Calls `write(data, count)` for each `count` in `0..writes`, with `data`'s first bytes
/// set to `count` beforehand, timing each call into `latency`; returns the wall time of
/// them all, or the count at which `write` failed and its error.
fn time_each(
    data: &mut [u8],
    writes: u64,
    latency: &mut Histogram<u64>,
    bar: &ProgressBar,
    mut write: impl FnMut(&[u8], u64) -> io::Result<()>,
) -> Result<Duration, (u64, io::Error)> {
    let started = Instant::now();
    for count in 0..writes {
        if let Some(counter) = data.get_mut(..8) {
            counter.copy_from_slice(&count.to_le_bytes());
        }
        let write_started = Instant::now();
        let written = write(data, count);
        let nanos = u64::try_from(write_started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        written.map_err(|error| (count, error))?;
        latency.saturating_record(nanos);
        bar.inc(1);
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_mode_needs_counts_as_refused() {
        let einval = io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error());
        let eopnotsupp = io::Error::from_raw_os_error(rustix::io::Errno::OPNOTSUPP.raw_os_error());
        let eio = io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(AppendMode::Direct.refused_by(&einval));
        assert!(AppendMode::Fallocate.refused_by(&eopnotsupp));
        for mode in AppendMode::ALL {
            assert!(!mode.refused_by(&eio), "{mode:?}: a failing disk stops the run");
        }
        assert!(!AppendMode::Dsync.refused_by(&einval) && !AppendMode::Zeroed.refused_by(&einval));
    }

    #[test]
    fn only_the_buffered_modes_fdatasync_and_direct_adds_o_direct() {
        let syncing = AppendMode::ALL.map(AppendMode::syncs_each_write);
        assert_eq!(syncing, [true, true, false, false]);
        assert!(AppendMode::Direct.open_flags().contains(OFlags::DIRECT | O_DSYNC));
        assert!(!AppendMode::Dsync.open_flags().contains(OFlags::DIRECT));
        #[cfg(target_os = "linux")]
        assert_eq!(O_DSYNC.bits(), linux_raw_sys::general::O_DSYNC, "O_DSYNC, not O_SYNC");
    }
}
