//! `--baseline fsync`: the raw rate of the fastest durable write on the disk the wal
//! workload writes to, in the same run.
//!
//! A file in the benchmark's directory gets [`GROUP_BLOCKS`] blocks of [`BLOCK_BYTES`]
//! written and fsync'd once, unmeasured, so that every measured write overwrites blocks
//! that are allocated and written: no fdatasync has any metadata to update. Then, timed one
//! by one:
//!
//! - batch 1: a [`BLOCK_BYTES`] pwrite at offset 0 + fdatasync, `--ops` times: the fastest
//!   durable write, what one commit at a time can at best reach;
//! - batch 32: one pwrite of [`GROUP_BLOCKS`] blocks at offset 0 + fdatasync: the cost of
//!   a 32-commit group (each commit counted as a whole block, so the raw limit is, if
//!   anything, low), `--ops / 4` times but at least `min(--ops, 200)`: fewer than batch 1,
//!   as each writes 32 times the bytes, but enough for a steady figure where an fdatasync
//!   costs about the same whatever its size.
//!
//! Each write changes its first bytes (a counter), so no layer can skip it as unchanged.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

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

/// Measures batch 1 and batch 32 in `dir`; returns their records in that order.
///
/// # Errors
/// [`BenchError::FsyncBaseline`] if the file cannot be made, written, synced or removed.
pub(crate) fn measure(
    config: &Config,
    dir: &Path,
    progress: bool,
) -> Result<(RunRecord, RunRecord), BenchError> {
    let path = dir.join("fsync-baseline");
    let failed = |source| BenchError::FsyncBaseline { path: path.clone(), source };
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path);
    let file = file.map_err(failed)?;
    let mut blocks = vec![0xa5_u8; BLOCK_BYTES * GROUP_BLOCKS];
    file.write_all_at(&blocks, 0).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    let ops = config.ops_for(Workload::Wal);
    let group_fsyncs = (ops / GROUP_RUN_DIVISOR).max(ops.min(GROUP_FSYNCS_MIN));
    let single = measure_batch(config, &file, &path, &mut blocks[..BLOCK_BYTES], ops, progress)?;
    let grouped = measure_batch(config, &file, &path, &mut blocks, group_fsyncs, progress)?;
    drop(file);
    std::fs::remove_file(&path).map_err(failed)?;
    Ok((single, grouped))
}

/// One measured run of `fsyncs` overwrites of `data`, as a record.
fn measure_batch(
    config: &Config,
    file: &File,
    path: &Path,
    data: &mut [u8],
    fsyncs: u64,
    progress: bool,
) -> Result<RunRecord, BenchError> {
    let label = format!("fsync batch {}", data.len() / BLOCK_BYTES);
    let bar = progress::bar(progress, fsyncs, label);
    let peak = PeakRss::start();
    let run = overwrite_and_sync(file, path, data, fsyncs, &bar);
    let rss = peak.finish();
    bar.finish_and_clear();
    Ok(RunRecord::fsync(config, &run?, rss))
}

/// Writes `data` at offset 0 of `file` (at `path`) and fdatasyncs it, `fsyncs` times, each
/// timed.
fn overwrite_and_sync(
    file: &File,
    path: &Path,
    data: &mut [u8],
    fsyncs: u64,
    bar: &ProgressBar,
) -> Result<FsyncRun, BenchError> {
    debug_assert!(data.len() % BLOCK_BYTES == 0 && !data.is_empty());
    let mut latency = Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, 3)
        .map_err(|error| BenchError::Histogram(format!("{error:?}")))?;
    let started = Instant::now();
    for count in 0..fsyncs {
        if let Some(counter) = data.get_mut(..8) {
            counter.copy_from_slice(&count.to_le_bytes());
        }
        let write_started = Instant::now();
        let synced = file.write_all_at(data, 0).and_then(|()| file.sync_data());
        let nanos = u64::try_from(write_started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        synced.map_err(|source| BenchError::FsyncBaseline { path: path.to_owned(), source })?;
        latency.saturating_record(nanos);
        bar.inc(1);
    }
    let elapsed: Duration = started.elapsed();
    let batch = (data.len() / BLOCK_BYTES) as u64;
    Ok(FsyncRun { batch, fsyncs, elapsed, latency })
}
