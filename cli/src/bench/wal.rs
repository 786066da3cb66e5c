//! The wal workload: appends of [`WAL_RECORD_BYTES`]-byte records to the write-ahead log,
//! each waited for until durable ([`Wal::append_sync`]), on real files.
//!
//! Everything is written under one temporary directory made inside `--dir` (default: the
//! current directory, so the figures are those of its disk; `/tmp` may be in memory) and
//! removed at the end, error or not. Each thread count and backend gets a fresh log in its
//! own subdirectory, removed after its run, so no run recovers or appends to another's log.
//! With `--baseline fsync` the raw rates ([`super::fsync`]) are measured first in the same
//! directory; their rows (the two overwrite batches, then the append modes) follow the wal
//! rows. The ratio a wal row carries is not to those, though, but to raw overwrites
//! interleaved with the row's own run, slice by slice (see [`measure`]), so that a disk
//! whose speed drifts during the session moves both sides of the ratio alike.
//!
//! Commits per fsync and fsyncs/s come from the log's own counters ([`Wal::stats`]), read
//! just before and just after the measured run, so the fdatasync of the segment's
//! preallocation at open is not counted.

#![allow(
    clippy::disallowed_types,
    reason = "a benchmark harness outside the engine: no loom model to swap them in"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use indicatif::ProgressBar;
use inmem::wal::{FrameKind, Wal, WalOptions};

use super::args::{BaselineKind, Config, WalBackend, WalConfig, Workload, WAL_RECORD_BYTES};
use super::error::BenchError;
use super::fsync;
use super::progress;
use super::report::{FsyncRun, Report, RunRecord, WalCounts};
use super::rss::PeakRss;
use super::runner::{run_threads, Measured, RunPlan};

/// `statfs` magic of tmpfs: fdatasync there is free, so its figures say nothing of a disk.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Runs the wal workload as `wal` says, and the fsync baseline if asked, writing each
/// record to `report`.
///
/// # Errors
/// [`BenchError::BenchDir`] if the temporary directory cannot be made or removed,
/// [`BenchError::Wal`] if the log fails, [`BenchError::FsyncBaseline`] if a raw write
/// fails, [`BenchError::Output`] if the report cannot be written.
pub(crate) fn run<W: Write>(
    config: &Config,
    wal: &WalConfig,
    progress: bool,
    report: &mut Report<W>,
) -> Result<(), BenchError> {
    let parent = wal.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = tempfile::Builder::new()
        .prefix("inmem-bench-")
        .tempdir_in(&parent)
        .map_err(|source| BenchError::BenchDir { path: parent.clone(), source })?;
    warn_if_in_memory(dir.path());
    let baseline = match config.baseline {
        Some(BaselineKind::Fsync) => Some(fsync::measure(config, dir.path(), progress)?),
        Some(BaselineKind::Skipmap) | None => None,
    };
    let mut interleaved = match baseline {
        Some(_) => Some(fsync::Overwrites::create(dir.path(), "fsync-interleaved")?),
        None => None,
    };
    for &threads in &config.threads {
        for &backend in &wal.backends {
            let pairing = interleaved.as_mut().and_then(|raw| Pairing::for_threads(raw, threads));
            let record = measure(config, dir.path(), backend, threads, pairing, progress)?;
            report.write(record).map_err(BenchError::Output)?;
        }
    }
    if let Some(raw) = interleaved {
        raw.remove()?;
    }
    for record in baseline.into_iter().flat_map(fsync::Baseline::into_records) {
        report.write(record).map_err(BenchError::Output)?;
    }
    dir.close().map_err(|source| BenchError::BenchDir { path: parent, source })
}

/// Says on stderr when `dir` is in memory, where the figures would mean nothing.
#[allow(clippy::useless_conversion, reason = "f_type is i64 on x86_64, narrower elsewhere")]
fn warn_if_in_memory(dir: &Path) {
    let in_memory = rustix::fs::statfs(dir).is_ok_and(|fs| i64::from(fs.f_type) == TMPFS_MAGIC);
    if in_memory {
        eprintln!(
            "warning: {} is on tmpfs (memory), where fdatasync costs nothing; give --dir a \
             directory on the disk to measure",
            dir.display()
        );
    }
}

/// Slices a wal run is cut into when raw overwrites are interleaved with it.
const INTERLEAVED_SLICES: u64 = 5;
/// Raw fsyncs in each interleaved slice, at least (so that a slice's rate means something
/// even when the wal slice is short).
const INTERLEAVED_RAW_MIN: u64 = 20;

/// Raw overwrites to interleave with a wal run, and the batch that is its limit.
struct Pairing<'a> {
    raw: &'a mut fsync::Overwrites,
    batch: usize,
}

impl<'a> Pairing<'a> {
    /// The pairing of a run of `threads` committers: batch 1 for one, batch 32 for 32 or
    /// more; other thread counts have no raw limit to compare with.
    fn for_threads(raw: &'a mut fsync::Overwrites, threads: usize) -> Option<Pairing<'a>> {
        let batch = match threads {
            1 => 1,
            t if t >= fsync::GROUP_BLOCKS => fsync::GROUP_BLOCKS,
            _ => return None,
        };
        Some(Pairing { raw, batch })
    }
}

/// One measured run: `threads` threads committing to a fresh log on `backend` in a new
/// subdirectory of `root`, removed afterwards.
///
/// With a `pairing`, the run is cut into [`INTERLEAVED_SLICES`] slices, each preceded by
/// raw overwrites of the pairing's batch (as many durable writes as the slice has commits
/// over the batch, at least [`INTERLEAVED_RAW_MIN`]), and the record's ratio is to that
/// raw rate: both sides see the disk as it is at the moment, which on a shared disk
/// drifts by 2x within seconds. The log stays open across slices; only the slices are
/// timed.
fn measure(
    config: &Config,
    root: &Path,
    backend: WalBackend,
    threads: usize,
    mut pairing: Option<Pairing<'_>>,
    progress: bool,
) -> Result<RunRecord, BenchError> {
    let failed = |doing| move |source| BenchError::Wal { doing, backend: backend.name(), source };
    let dir = root.join(format!("wal-{}-x{threads}", backend.name()));
    let options = WalOptions::default().backend(backend.choice());
    let log = Wal::open(&dir, options).map_err(failed("open"))?;
    let ops = config.ops_for(Workload::Wal);
    let slices = if pairing.is_some() { INTERLEAVED_SLICES.min(ops).max(1) } else { 1 };
    let payload = record_payload(config.seed);
    // run_threads stops on an engine error; the log's own error is kept here to report.
    let first_error: Mutex<Option<inmem::wal::Error>> = Mutex::new(None);
    let label = format!("wal {} x{threads}", backend.name());
    let bar = progress::bar(progress, ops, label);
    let before = log.stats();
    let peak = PeakRss::start();
    let mut slice = |index: u64| -> Result<(Measured, Option<FsyncRun>), BenchError> {
        let slice_ops = ops / slices + u64::from(index < ops % slices);
        let raw = match pairing.as_mut() {
            Some(pairing) => {
                let fsyncs = slice_ops.div_ceil(pairing.batch as u64).max(INTERLEAVED_RAW_MIN);
                Some(pairing.raw.run(pairing.batch, fsyncs, &ProgressBar::hidden())?)
            }
            None => None,
        };
        let plan = RunPlan {
            engine: "inmem",
            workload: Workload::Wal,
            threads,
            ops: slice_ops,
            seed: config.seed,
            layout: config.layout,
        };
        let run = run_threads(&plan, &bar, |worker, _| {
            let appended = worker.latency.time(|| log.append_sync(FrameKind::RECORD, &payload));
            appended.map(drop).map_err(|error| keep_first(&first_error, error))
        });
        let kept = first_error.lock().unwrap_or_else(PoisonError::into_inner).take();
        let run = match (run, kept) {
            (Err(BenchError::Engine { .. }), Some(source)) => Err(failed("append")(source)),
            (run, _) => run,
        }?;
        Ok((run, raw))
    };
    let (mut measured, mut raw) = slice(0)?;
    for index in 1..slices {
        let (more, more_raw) = slice(index)?;
        measured.absorb(more)?;
        if let (Some(total), Some(more_raw)) = (raw.as_mut(), &more_raw) {
            total.absorb(more_raw)?;
        }
    }
    let rss = peak.finish();
    let after = log.stats();
    bar.finish_and_clear();
    let name = log.backend_name();
    log.close().map_err(failed("close"))?;
    std::fs::remove_dir_all(&dir).map_err(|source| BenchError::BenchDir { path: dir, source })?;
    let counts =
        WalCounts { appends: after.appends - before.appends, fsyncs: after.fsyncs - before.fsyncs };
    let mut record = RunRecord::wal(config, threads, &measured, rss, name, counts);
    if let Some(raw) = &raw {
        record.compare_with_interleaved_fsync(raw);
    }
    Ok(record)
}

/// Keeps `error` if it is the first, and returns what stops the worker.
#[cold]
fn keep_first(first: &Mutex<Option<inmem::wal::Error>>, error: inmem::wal::Error) -> inmem::Error {
    let stop = inmem::Error::Log { context: "wal append_sync", source: error.clone() };
    first.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(error);
    stop
}

/// The payload every commit appends: bytes that vary (not all zero, so nothing downstream
/// can treat them as a hole), the same for every run of one seed.
fn record_payload(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..WAL_RECORD_BYTES).map(|_| rng.u8(..)).collect()
}
