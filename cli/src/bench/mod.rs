//! `inmem bench`: macro workloads on an in-memory [`inmem::Database`], optionally against a
//! bare `crossbeam_skiplist::SkipMap` baseline, reporting throughput, latency percentiles
//! and peak memory per workload run; and, when asked for, the write-ahead log on disk
//! (durable commits), optionally against the disk's raw fdatasync rate.
//!
//! | file | owns |
//! |---|---|
//! | `args.rs` | the flags, their validation, the default operation counts |
//! | `dataset.rs` | the key layout, the values, the fill order, the random streams' seeds |
//! | `store.rs` | the engine and the baseline behind one trait, with identical per-op work |
//! | `workloads.rs` | what one operation of each workload does and checks |
//! | `runner.rs` | threads, the start barrier, timing and histograms |
//! | `rss.rs` | the peak resident memory of one run |
//! | `report.rs` | the record of a run (the JSON schema), the table |
//! | `wal.rs` | the wal workload: its directory, a fresh log per run, the log's counters |
//! | `fsync.rs` | the raw durable-write baseline of the wal workload (overwrites, appends) |
//! | `primitives.rs` | the primitives workload: each primitive's operations, and transactions mixing them |
//! | `hot_run.rs` | the hot-run workload: event appends from every thread to one run |
//! | `during.rs` | `--during`: commit and get for a timed window while a driver thread runs the engine's maintenance, against a quiet phase |
//!
//! Order of a session: for each thread count, the engine runs every workload on a fresh
//! database, which is then dropped; then the baseline (if asked for) does the same on a
//! fresh skiplist. So at most one store is alive at a time. The engine goes first so that
//! its memory figures are not inflated by what the allocator kept of the baseline's (glibc
//! does not give freed memory back to the system at once; a later store starts with it, see
//! `rss_start_bytes`). Without a baseline each row is written as soon as it is measured;
//! with one, the thread count's rows are written once both stores ran, the engine's with
//! its ratio. Within one store, workloads run in the order given; a workload other than
//! fill on an empty store first loads every key (unmeasured), and fill on a loaded store
//! starts a fresh one.
//!
//! The wal workload, if asked for, runs after all of that: it has no keys and no store, so
//! it goes its own way (`wal.rs`), reusing the runner, the report and the RSS measurement.
//!
//! With `--during`, nothing of the above runs: `during.rs` measures commit and get (the
//! only workloads `--during` accepts) in timed windows, a fresh database per phase.

mod args;
mod dataset;
mod during;
mod error;
mod fsync;
mod hot_run;
mod primitives;
mod progress;
mod recover;
mod report;
mod rss;
mod runner;
mod store;
mod wal;
mod workloads;

use std::io::StdoutLock;

pub use args::BenchArgs;
pub(crate) use args::WalBackend;
pub use error::BenchError;

use args::{BaselineKind, Config, DurabilityArg, Workload};
use report::{Report, RunRecord};
use rss::PeakRss;
use runner::RunPlan;
use store::{Disk, EngineStore, SkipMapStore, Store};
use workloads::{run_workload, Dataset};

/// Runs `inmem bench` with `args`, writing the report to stdout.
///
/// # Errors
/// A [`BenchError`] for unusable flags, a failing store or an unwritable report.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    let config = Config::from_args(args)?;
    let progress = progress::wanted(config.json);
    let mut report = Report::new(std::io::stdout().lock(), config.json, config.baseline.is_some());
    if let Some(during) = &config.during {
        during::run(&config, during, progress, &mut report)?;
        return report.finish().map_err(BenchError::Output);
    }
    if !config.workloads.is_empty() || config.primitives || config.hot_run {
        run_engine(&config, progress, &mut report)?;
    }
    if let Some(wal) = &config.wal {
        wal::run(&config, wal, progress, &mut report)?;
    }
    if config.recover {
        recover::run(&config, &mut report)?;
    }
    report.finish().map_err(BenchError::Output)
}

/// Runs the engine workloads at every thread count, and the skiplist baseline if asked,
/// then the primitives and hot-run workloads if asked, for each durability in turn.
fn run_engine(
    config: &Config,
    progress: bool,
    report: &mut StdoutReport,
) -> Result<(), BenchError> {
    let data = Dataset::new(config.layout, config.value_size, config.seed)?;
    for &durability in &config.durabilities {
        let disk = durability.map(|durability| Disk {
            parent: config.disk_dir.clone(),
            durability: durability.durability(),
        });
        let session = Session { config, data: &data, progress, disk, durability };
        if !config.workloads.is_empty() {
            run_session(&session, report)?;
        }
        if config.primitives {
            primitives::run(&session, report)?;
        }
        if config.hot_run {
            hot_run::run(&session, report)?;
        }
    }
    Ok(())
}

/// Runs one durability's engine workloads at every thread count, with the baseline if asked.
fn run_session(session: &Session<'_>, report: &mut StdoutReport) -> Result<(), BenchError> {
    let config = session.config;
    for &threads in &config.threads {
        match config.baseline {
            None | Some(BaselineKind::Fsync) => {
                session.run_store::<EngineStore>(threads, Some(report))?;
            }
            Some(BaselineKind::Skipmap) => {
                let mut engine = session.run_store::<EngineStore>(threads, None)?;
                let baseline = session.run_store::<SkipMapStore>(threads, None)?;
                for (record, base) in engine.iter_mut().zip(&baseline) {
                    record.compare_with(base);
                }
                for record in engine.into_iter().chain(baseline) {
                    report.write(record).map_err(BenchError::Output)?;
                }
            }
        }
    }
    Ok(())
}

/// The report, written to stdout.
type StdoutReport = Report<StdoutLock<'static>>;

/// What every run of one invocation and durability shares.
struct Session<'a> {
    config: &'a Config,
    data: &'a Dataset,
    progress: bool,
    /// Where the engine's databases go, for a durability (the baseline stays in memory).
    disk: Option<Disk>,
    durability: Option<DurabilityArg>,
}

impl Session<'_> {
    /// Runs every workload at `threads` threads on fresh stores of type `S`; writes each
    /// run's record to `report` at once if given, else returns them in workload order.
    fn run_store<S: Store>(
        &self,
        threads: usize,
        mut report: Option<&mut StdoutReport>,
    ) -> Result<Vec<RunRecord>, BenchError> {
        let mut store: Option<S> = None;
        let mut loaded = false;
        let mut records = Vec::with_capacity(self.config.workloads.len());
        for &workload in &self.config.workloads {
            if workload == Workload::Fill && loaded {
                // Fill inserts into an empty store; drop the old one before making the next.
                drop(store.take());
                loaded = false;
            }
            let current = match store.take() {
                Some(current) => current,
                None => S::create(self.disk.as_ref()).map_err(|source| BenchError::Engine {
                    engine: S::NAME,
                    workload: "setup",
                    source,
                })?,
            };
            let current = store.insert(current);
            if !loaded && workload != Workload::Fill {
                self.prefill(current, threads)?;
            }
            let record = self.measure(current, workload, threads)?;
            loaded = true;
            match report.as_deref_mut() {
                Some(report) => report.write(record).map_err(BenchError::Output)?,
                None => records.push(record),
            }
        }
        Ok(records)
    }

    /// A run of `workload` on `S` at `threads` threads, as configured.
    fn plan<S: Store>(&self, workload: Workload, threads: usize) -> RunPlan {
        RunPlan {
            engine: S::NAME,
            workload,
            threads,
            ops: self.config.ops_for(workload),
            seed: self.config.seed,
            layout: self.config.layout,
        }
    }

    /// Loads every key, unmeasured.
    fn prefill<S: Store>(&self, store: &S, threads: usize) -> Result<(), BenchError> {
        let plan = self.plan::<S>(Workload::Fill, threads);
        let label = format!("{} prefill x{threads}", S::NAME);
        let bar = progress::bar(self.progress, plan.ops, label);
        let loaded = run_workload(store, self.data, &plan, &bar);
        bar.finish_and_clear();
        loaded.map(drop)
    }

    /// One measured run of `workload`.
    fn measure<S: Store>(
        &self,
        store: &S,
        workload: Workload,
        threads: usize,
    ) -> Result<RunRecord, BenchError> {
        let plan = self.plan::<S>(workload, threads);
        let label = format!("{} {workload} x{threads}", S::NAME);
        let bar = progress::bar(self.progress, plan.ops, label);
        let peak = PeakRss::start();
        let measured = run_workload(store, self.data, &plan, &bar);
        let rss = peak.finish();
        bar.finish_and_clear();
        let mut record = RunRecord::new(self.config, S::NAME, workload, threads, &measured?, rss);
        if S::LOGS {
            record.durability = self.durability.map(DurabilityArg::name);
        }
        Ok(record)
    }
}
