//! `--during`: the tail latency of 1-key commits and point reads while the engine does its
//! own maintenance (checkpoints, garbage collection, the TTL reaper), against a quiet
//! phase without it.
//!
//! For each durability, thread count, workload (commit, get) and phase, in that nesting:
//!
//! 1. a fresh database of `--keys` keys is opened with its maintenance thread idle
//!    ([`phase_options`]: an interval of an hour and no background checkpoints, in every
//!    phase, so that the phases differ only by the driver) and loaded, unmeasured, in
//!    transactions of [`SETUP_BATCH`] keys in fill's order; then the phase's own setup
//!    ([`Phase::Gc`]: every key overwritten [`GC_OVERWRITES`] times under an open
//!    snapshot, so that nothing is reclaimed before the window; [`Phase::Reap`]: as many
//!    keys again, each a loaded key with [`EXPIRING_SUFFIX`] appended, so that the workload
//!    reads and overwrites the same live keys as in quiet, written with a TTL that ends just
//!    before the window, none reaped yet, checked);
//! 2. the database is left until its maintenance thread has been idle for
//!    [`SETTLE_IDLE`] (the engine still wakes it after every 64Ki versions committed, as
//!    it will in the window: that is the engine's, and the same in every phase);
//! 3. the window: `--threads` workers run the workload for `--seconds` each from a common
//!    start ([`run_window`]), and a driver thread, started at the same instant, runs the
//!    phase's maintenance back to back until the last worker's window is over; it is then
//!    joined (a call under way finishes first: `driver_seconds` says how long it ran).
//!
//! Quiet runs first; every other phase's record carries the ratio of its p99.9 and max to
//! quiet's of the same workload, durability and thread count. A checkpoint needs a log, so
//! on a database without one (in memory, or `--durability none`) that phase runs on
//! `buffered` instead, after a quiet run on `buffered` of its own to compare with (both
//! rows say `asked_durability`); where `buffered` is among the durabilities asked for, the
//! phase is left to that session instead, and stderr says so.

#![allow(
    clippy::disallowed_types,
    reason = "a benchmark harness outside the engine: no loom model to swap them in"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use indicatif::ProgressBar;
use inmem::{Database, Options};

use super::args::{Config, DurabilityArg, DuringConfig, Phase, Workload};
use super::error::BenchError;
use super::progress;
use super::report::{DuringFigures, Report, RunRecord, TARGET_MAX_NS};
use super::rss::{PeakRss, PeakRssReport};
use super::runner::{run_window, Driver, Measured, RunPlan};
use super::store::{Disk, EngineStore};
use super::workloads::{commit, get, Dataset};

/// Keys written per transaction while setting a database up (one commit, and one log
/// record, each; at 100-byte values about 0.5 MiB).
const SETUP_BATCH: usize = 4096;
/// The gc phase's setup overwrites every key this many times, leaving as many superseded
/// versions per key for the driver to reclaim.
const GC_OVERWRITES: u64 = 5;
/// The maintenance thread's interval in every phase: longer than any run, so that it works
/// only when the engine wakes it early.
const MAINTENANCE_IDLE: Duration = Duration::from_secs(3_600);
/// A database counts as settled once its maintenance thread has run no collection pass
/// for this long...
const SETTLE_IDLE: Duration = Duration::from_millis(250);
/// ...checked this often...
const SETTLE_POLL: Duration = Duration::from_millis(25);
/// ...and is measured anyway after this long.
const SETTLE_MAX: Duration = Duration::from_secs(10);
/// How long a driver waits after a call that found nothing to do.
const IDLE_DRIVER_PAUSE: Duration = Duration::from_millis(1);
/// The byte appended to a loaded key to make the reap phase's expiring twin of it: the
/// twins sort among the live keys but are none of them, so the workload, which reads and
/// writes only live keys, never meets one (a commit that re-created a reaped key would be
/// an insert, dearer than the overwrites quiet measures).
const EXPIRING_SUFFIX: u8 = 0xff;
/// The reap phase's keys expire this long after their load was expected to end (at least).
const EXPIRY_MARGIN: Duration = Duration::from_millis(300);
/// The reap phase waits at most this long after its keys' deadline for the last of them
/// to expire.
const EXPIRY_WAIT_MAX: Duration = Duration::from_secs(2);
/// The reap phase's setup runs a collection pass itself after every this many writes:
/// half the 64Ki versions after which a commit wakes the maintenance thread early
/// (`LINKED_BEFORE_EARLY_COLLECTION` in the engine), whose count a pass resets. So that
/// thread never runs during that setup, and cannot reap keys that expire before it ends.
const SETUP_WRITES_PER_COLLECTION: u64 = 32 * 1024;

/// Runs every phase of `during` for every durability, thread count and workload of
/// `config`, writing each record as soon as it is measured.
///
/// # Errors
/// A [`BenchError`] if a database fails, a read misses a key that must be there, a thread
/// cannot run, or the report cannot be written.
pub(crate) fn run<W: std::io::Write>(
    config: &Config,
    during: &DuringConfig,
    progress: bool,
    report: &mut Report<W>,
) -> Result<(), BenchError> {
    let data = Dataset::new(config.layout, config.value_size, config.seed)?;
    let session = Session { config, during, data: &data, progress };
    let buffered_asked = config.durabilities.contains(&Some(DurabilityArg::Buffered));
    for &durability in &config.durabilities {
        let logless = matches!(durability, None | Some(DurabilityArg::None));
        for &threads in &config.threads {
            for &workload in &config.workloads {
                let mut quiet: Option<RunRecord> = None;
                for &phase in &during.phases {
                    let mut run = Run { workload, threads, phase, durability, asked: None };
                    if phase == Phase::Checkpoint && logless {
                        let asked = durability.map_or("memory", DurabilityArg::name);
                        if buffered_asked {
                            eprintln!(
                                "{workload} checkpoint with durability {asked}: left to the \
                                 buffered rows (a checkpoint needs a log)"
                            );
                            continue;
                        }
                        run.durability = Some(DurabilityArg::Buffered);
                        run.asked = Some(asked);
                        // A quiet run of its own on buffered to compare with, if quiet ran.
                        let reference = match quiet {
                            Some(_) => {
                                let record =
                                    session.measure(&Run { phase: Phase::Quiet, ..run })?;
                                report.write(record.clone()).map_err(BenchError::Output)?;
                                Some(record)
                            }
                            None => None,
                        };
                        let mut record = session.measure(&run)?;
                        if let Some(reference) = &reference {
                            record.compare_with_quiet(reference);
                        }
                        report.write(record).map_err(BenchError::Output)?;
                        continue;
                    }
                    let mut record = session.measure(&run)?;
                    match &quiet {
                        Some(quiet) => record.compare_with_quiet(quiet),
                        None if phase == Phase::Quiet => quiet = Some(record.clone()),
                        None => {}
                    }
                    report.write(record).map_err(BenchError::Output)?;
                }
            }
        }
    }
    Ok(())
}

/// The options of every phase's database: the maintenance thread idle unless woken
/// early, no background checkpoints (the durability comes from the phase's [`Disk`]).
fn phase_options() -> Options {
    Options::default().maintenance_interval(MAINTENANCE_IDLE).checkpoint_log_bytes(0)
}

/// One measured run: which workload, how many threads, in which phase, on what.
#[derive(Debug, Clone, Copy)]
struct Run {
    workload: Workload,
    threads: usize,
    phase: Phase,
    /// The database's durability; `None`: in memory.
    durability: Option<DurabilityArg>,
    /// The durability asked for (`memory` or `none`), when the run uses another.
    asked: Option<&'static str>,
}

impl Run {
    /// The label of its progress bars.
    fn label(&self, what: &str) -> String {
        let durability = self.durability.map_or("memory", DurabilityArg::name);
        format!("{} {} {durability} x{} {what}", self.workload, self.phase, self.threads)
    }
}

/// What every run of one invocation shares.
struct Session<'a> {
    config: &'a Config,
    during: &'a DuringConfig,
    data: &'a Dataset,
    progress: bool,
}

/// The shape of a database when its window starts, as the record reports it.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// gc: superseded versions.
    superseded_versions: Option<u64>,
    /// reap: keys whose value expired and is not reaped yet.
    expired_keys: Option<u64>,
}

/// What a driver did in the window.
#[derive(Debug, Clone, Copy)]
struct DriverTally {
    /// Calls made (each finished).
    calls: u64,
    /// gc: versions reclaimed; checkpoint: bytes written; reap: keys reaped.
    amount: u64,
    /// When it started (with the window).
    started: Instant,
    /// When its last call ended.
    ended: Instant,
}

impl DriverTally {
    fn new() -> DriverTally {
        let now = Instant::now();
        DriverTally { calls: 0, amount: 0, started: now, ended: now }
    }

    /// Counts a call that has just ended, having done `amount`.
    fn called(&mut self, amount: u64) {
        self.calls += 1;
        self.amount = self.amount.saturating_add(amount);
        self.ended = Instant::now();
    }
}

/// A driver's outcome: its tally, or the engine's error that stopped it.
type Driven = Result<DriverTally, inmem::Error>;

/// A driver's loop: `call` back to back until `stop` says the last worker's window is
/// over (a call under way finishes first), or until a call fails; each call returns what
/// it did ([`DriverTally::amount`]). After a call that did nothing (all garbage collected,
/// all expired keys reaped) it waits [`IDLE_DRIVER_PAUSE`] before the next: calling again
/// at once would only measure a thread spinning on an empty queue, which no maintenance
/// does.
fn drive(stop: &AtomicBool, mut call: impl FnMut() -> inmem::Result<u64>) -> Driven {
    let mut tally = DriverTally::new();
    // Acquire: pairs with the release of the last worker out (`runner::Leaving`).
    while !stop.load(Ordering::Acquire) {
        let amount = call()?;
        tally.called(amount);
        if amount == 0 {
            std::thread::sleep(IDLE_DRIVER_PAUSE);
        }
    }
    Ok(tally)
}

impl Session<'_> {
    /// Sets up a fresh database for `run`, measures its window and returns its record.
    fn measure(&self, run: &Run) -> Result<RunRecord, BenchError> {
        let config = self.config;
        let failed = |workload: &'static str| {
            move |source| BenchError::Engine { engine: "inmem", workload, source }
        };
        let disk = run.durability.map(|durability| Disk {
            parent: config.disk_dir.clone(),
            durability: durability.durability(),
        });
        let store = EngineStore::with_options(disk.as_ref(), phase_options())
            .map_err(failed("during setup"))?;
        let db = store.db();
        let (shape, pin) = self.set_up(db, run)?;
        settle(db);
        // The gc phase's snapshot kept the collector off the superseded versions until now.
        drop(pin);

        let (measured, driven, rss) = self.window(&store, run)?;
        let driven = driven.transpose().map_err(failed("during driver"))?;
        // The workload reads only live keys, in every phase: a miss is lost data.
        if measured.tally.wrong_ops > 0 {
            return Err(BenchError::WrongResults {
                engine: "inmem",
                workload: run.workload.name(),
                wrong_ops: measured.tally.wrong_ops,
            });
        }
        let mut record = RunRecord::timed(config, run.workload, run.threads, &measured, rss);
        record.durability = run.durability.map(DurabilityArg::name);
        let amount = |phase: Phase| {
            driven.filter(|_| run.phase == phase).map(|tally: DriverTally| tally.amount)
        };
        record.during = Some(DuringFigures {
            phase: run.phase.name(),
            over_20ms: measured.latency.count_over_ns(TARGET_MAX_NS),
            p999_vs_quiet: None,
            max_vs_quiet: None,
            driver_calls: driven.map(|tally| tally.calls),
            driver_seconds: driven
                .map(|tally| tally.ended.duration_since(tally.started).as_secs_f64()),
            versions_reclaimed: amount(Phase::Gc),
            checkpoint_bytes: amount(Phase::Checkpoint),
            keys_reaped: amount(Phase::Reap),
            superseded_versions: shape.superseded_versions,
            expired_keys: shape.expired_keys,
            asked_durability: run.asked,
        });
        // The database goes (and then its directory) here, unmeasured.
        drop(store);
        Ok(record)
    }

    /// The measured window of `run` on `store`, with its phase's driver beside it: the
    /// workers' figures, what the driver did (none for quiet) and the peak memory.
    fn window(
        &self,
        store: &EngineStore,
        run: &Run,
    ) -> Result<(Measured, Option<Driven>, PeakRssReport), BenchError> {
        let plan = RunPlan {
            engine: "inmem",
            workload: run.workload,
            threads: run.threads,
            ops: 0,
            seed: self.config.seed,
            layout: self.config.layout,
        };
        let window = self.during.window;
        let bar = progress::window_bar(self.progress, window, run.label("window"));
        let (data, db) = (self.data, store.db());
        let gc = |stop: &AtomicBool| drive(stop, || Ok(db.collect_garbage().versions_pruned));
        let checkpoint = |stop: &AtomicBool| drive(stop, || Ok(db.checkpoint()?.bytes));
        let reap = |stop: &AtomicBool| drive(stop, || Ok(db.reap_expired()));
        let driver: Option<Driver<'_, Driven>> = match run.phase {
            Phase::Quiet => None,
            Phase::Gc => Some(&gc),
            Phase::Checkpoint => Some(&checkpoint),
            Phase::Reap => Some(&reap),
        };
        let peak = PeakRss::start();
        let measured = match run.workload {
            Workload::Commit => {
                run_window(&plan, window, &bar, |w, _| commit(store, data, w), driver)
            }
            _ => run_window(&plan, window, &bar, |w, _| get(store, data, w), driver),
        };
        let rss = peak.finish();
        bar.finish_and_clear();
        let (measured, driven) = measured?;
        Ok((measured, driven, rss))
    }

    /// Loads `db` as `run`'s phase needs it; returns its shape, and for gc the snapshot
    /// that keeps the superseded versions from the collector until the window starts.
    fn set_up<'db>(
        &self,
        db: &'db Database,
        run: &Run,
    ) -> Result<(Shape, Option<inmem::Snapshot<'db>>), BenchError> {
        let keys = self.config.keys;
        let failed =
            |source| BenchError::Engine { engine: "inmem", workload: "during setup", source };
        let passes = match run.phase {
            Phase::Gc => 1 + GC_OVERWRITES,
            Phase::Reap => 2,
            Phase::Quiet | Phase::Checkpoint => 1,
        };
        let bar = progress::bar(self.progress, keys * passes, run.label("setup"));
        let mut shape = Shape::default();
        let mut pin = None;
        let started = Instant::now();
        self.write_all(db, 0, None, &bar).map_err(failed)?;
        let load = started.elapsed();
        match run.phase {
            Phase::Quiet | Phase::Checkpoint => {}
            Phase::Gc => {
                pin = Some(db.snapshot());
                for pass in 1..passes {
                    self.write_all(db, pass, None, &bar).map_err(failed)?;
                }
                let stats = db.stats();
                shape.superseded_versions = Some(stats.live_versions - stats.keys);
            }
            Phase::Reap => {
                // Writes with a TTL take longer than plain ones (each queues an expiry).
                let expire_at = SystemTime::now() + load * 2 + EXPIRY_MARGIN;
                self.write_all(db, 0, Some(expire_at), &bar).map_err(failed)?;
                // Every key expires at `expire_at` (or 1 ms after its write, if the load
                // ran late; no maintenance round reaped it meanwhile, see `write_all`):
                // wait for it, and then for the stragglers (a writer descheduled between
                // reading the clock and the engine's reading it, in `put_with_ttl`).
                let wait = expire_at.duration_since(SystemTime::now()).unwrap_or_default();
                std::thread::sleep(wait + Duration::from_millis(2));
                shape.expired_keys = Some(wait_for_expiry(db, keys));
            }
        }
        bar.finish_and_clear();
        Ok((shape, pin))
    }

    /// Writes every key once, in fill's order, [`SETUP_BATCH`] to a transaction, with value
    /// number `key + pass`; if `expire_at` is given, every key's expiring twin instead (the
    /// key and [`EXPIRING_SUFFIX`]), expiring then (at least 1 ms after the write), with a
    /// collection pass after every
    /// [`SETUP_WRITES_PER_COLLECTION`] writes, so that the engine never wakes its
    /// maintenance thread to reap keys that expire before the setup ends.
    fn write_all(
        &self,
        db: &Database,
        pass: u64,
        expire_at: Option<SystemTime>,
        bar: &ProgressBar,
    ) -> inmem::Result<()> {
        let data = self.data;
        let key_size = data.layout.key_size();
        let mut key = vec![0; key_size + usize::from(expire_at.is_some())];
        if expire_at.is_some() {
            key[key_size] = EXPIRING_SUFFIX;
        }
        let keys = data.layout.keys();
        let mut start = 0;
        let mut since_collection = 0;
        while start < keys {
            let end = keys.min(start + SETUP_BATCH as u64);
            db.transaction(|txn| {
                for index in start..end {
                    let key_index = data.fill_key(index);
                    data.layout.write_key(key_index, &mut key[..key_size]);
                    let value = data.values.value(key_index.wrapping_add(pass));
                    match expire_at {
                        Some(at) => {
                            // Per key: the engine adds the TTL to its clock at this call.
                            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                            txn.put_with_ttl(&key, value, left.max(Duration::from_millis(1)))?;
                        }
                        None => txn.put(&key, value)?,
                    }
                }
                Ok(())
            })?;
            bar.inc(end - start);
            since_collection += end - start;
            if expire_at.is_some() && since_collection >= SETUP_WRITES_PER_COLLECTION {
                db.collect_garbage();
                since_collection = 0;
            }
            start = end;
        }
        Ok(())
    }
}

/// Waits (at most [`EXPIRY_WAIT_MAX`]) until only the `live` keys are readable, and
/// returns how many keys have expired and are not reaped: those no snapshot reads, less
/// those the reaper already replaced by a tombstone. (`Stats` counts every key with a
/// version and the reaped ones, not the expired ones, so a scan finds what is readable.)
fn wait_for_expiry(db: &Database, live: u64) -> u64 {
    let give_up = Instant::now() + EXPIRY_WAIT_MAX;
    loop {
        let readable = db.snapshot().range::<&[u8]>(..).count() as u64;
        if readable <= live || Instant::now() >= give_up {
            let stats = db.stats();
            return stats.keys.saturating_sub(readable).saturating_sub(stats.expirations_reaped);
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// Waits until the maintenance thread has run no collection pass for [`SETTLE_IDLE`] (at
/// most [`SETTLE_MAX`]): the setup's commits wake it early, and the window should not
/// start with a round of it that the setup caused.
fn settle(db: &Database) {
    let give_up = Instant::now() + SETTLE_MAX;
    let mut passes = db.stats().gc.passes;
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < SETTLE_IDLE && Instant::now() < give_up {
        std::thread::sleep(SETTLE_POLL);
        let now = db.stats().gc.passes;
        if now != passes {
            passes = now;
            idle_since = Instant::now();
        }
    }
}
