//! One measured run: worker threads started together, each with its own random stream and
//! latency histogram, merged when the last one is joined.
//!
//! Protocol: the coordinator holds the start gate closed while it spawns the workers, so
//! that a failed spawn can send the ones already running home before they reach the
//! barrier. Once all are spawned it opens the gate; the workers meet at a [`Barrier`] and
//! start together. The run lasts from the moment the barrier releases the first worker to
//! the moment the last one finishes (what the last join waits for); both instants are
//! taken by the workers themselves, because on a busy machine the coordinator may be
//! scheduled long after the barrier released it or the last worker ended. Operations are
//! split evenly: worker `t` of `n` runs a contiguous share of the global operation
//! indices.
//!
//! A timed run ([`run_window`], `--during`) instead has each worker run operations until
//! its own window, measured from its release by the barrier, is over; a driver thread, if
//! given, meets the workers at the same barrier, so that it starts with the window, and
//! runs until the last worker's window is over, when it is joined.

#![allow(
    clippy::disallowed_types,
    reason = "a benchmark harness outside the engine: no loom model to swap them in"
)]

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use super::args::Workload;
use super::dataset::{stream_seed, KeyLayout};
use super::error::BenchError;
use super::store::TxnKeys;

/// Latencies are recorded from 1 ns up to this, with 3 significant digits; longer ones are
/// recorded as this.
const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;

/// Workers report progress every this many operations, so the bar's shared counter is
/// touched rarely.
const PROGRESS_STEP: u64 = 4096;

/// In a timed run, the first worker moves the bar (whose length is the window in
/// milliseconds) every this many milliseconds.
const PROGRESS_STEP_MS: u64 = 100;

/// What one run is: which workload, by whom, how much.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunPlan {
    /// The store's name, for errors.
    pub(crate) engine: &'static str,
    /// The workload.
    pub(crate) workload: Workload,
    /// Worker threads.
    pub(crate) threads: usize,
    /// Operations, over all threads (0 for a timed run: [`run_window`]).
    pub(crate) ops: u64,
    /// The benchmark's seed.
    pub(crate) seed: u64,
    /// The key layout.
    pub(crate) layout: KeyLayout,
}

impl RunPlan {
    /// The global operation indices of worker `thread`: an even split, the first
    /// `ops % threads` workers taking one more.
    fn share(&self, thread: usize) -> Range<u64> {
        let threads = self.threads as u64;
        let (base, extra) = (self.ops / threads, self.ops % threads);
        let thread = thread as u64;
        let start = thread * base + thread.min(extra);
        let len = base + u64::from(thread < extra);
        start..start + len
    }
}

/// Operation counts that are not latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Operations whose result was wrong (a loaded key not found, a scan of the wrong size);
    /// for a transaction, one however many of its reads missed.
    pub(crate) wrong_ops: u64,
    /// Commits that failed with a conflict.
    pub(crate) conflicts: u64,
    /// Re-runs of a transaction after a conflict.
    pub(crate) retries: u64,
    /// Transactions given up after their last retry conflicted too.
    pub(crate) aborts: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.wrong_ops += other.wrong_ops;
        self.conflicts += other.conflicts;
        self.retries += other.retries;
        self.aborts += other.aborts;
    }
}

/// A histogram of per-operation latencies in nanoseconds, and when the last timed
/// operation ended (what a timed run checks its window against, so that it reads the
/// clock no more often than a run by count does).
pub(crate) struct Latency(Histogram<u64>, Option<Instant>);

impl Latency {
    pub(crate) fn new() -> Result<Latency, BenchError> {
        Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3)
            .map(|histogram| Latency(histogram, None))
            .map_err(|error| BenchError::Histogram(format!("{error:?}")))
    }

    /// Runs `op` and records how long it took.
    pub(crate) fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = op();
        let end = Instant::now();
        let nanos = u64::try_from(end.duration_since(start).as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos);
        self.1 = Some(end);
        out
    }

    /// When the last timed operation ended, or now if none was timed yet.
    fn last_end(&self) -> Instant {
        self.1.unwrap_or_else(Instant::now)
    }

    /// Operations recorded.
    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// Operations that took longer than `ns` nanoseconds (to the histogram's precision of
    /// 3 significant digits).
    pub(crate) fn count_over_ns(&self, ns: u64) -> u64 {
        if self.0.max() <= ns {
            return 0;
        }
        self.0.count_between(ns.saturating_add(1), self.0.max())
    }

    /// The latency at `quantile` (0 to 1), in nanoseconds.
    pub(crate) fn quantile_ns(&self, quantile: f64) -> u64 {
        self.0.value_at_quantile(quantile)
    }

    /// The longest latency, in nanoseconds.
    pub(crate) fn max_ns(&self) -> u64 {
        self.0.max()
    }
}

/// One worker's state: its random stream, buffers for the keys it builds, its latencies.
pub(crate) struct Worker {
    /// The worker's random stream.
    pub(crate) rng: fastrand::Rng,
    /// A key being built.
    pub(crate) key: Vec<u8>,
    /// A scan prefix being built.
    pub(crate) prefix: Vec<u8>,
    /// The keys of a transaction being built.
    pub(crate) txn_keys: TxnKeys,
    /// The latency of each operation.
    pub(crate) latency: Latency,
    /// Everything else counted.
    pub(crate) tally: Tally,
    /// The worker's number, `0..plan.threads`: the index of whatever it owns alone.
    pub(crate) thread: usize,
}

impl Worker {
    fn new(plan: &RunPlan, thread: usize) -> Result<Worker, BenchError> {
        let key_size = plan.layout.key_size();
        let seed = stream_seed(plan.seed, plan.workload as u64, plan.threads, thread);
        Ok(Worker {
            rng: fastrand::Rng::with_seed(seed),
            key: vec![0; key_size],
            prefix: vec![0; plan.layout.prefix_size()],
            txn_keys: TxnKeys::new(key_size),
            latency: Latency::new()?,
            tally: Tally::default(),
            thread,
        })
    }

    /// Runs `op` on every index of `ops`, ticking `progress` now and then.
    fn run<F, E>(&mut self, ops: Range<u64>, op: &F, progress: &ProgressBar) -> Result<(), E>
    where
        F: Fn(&mut Worker, u64) -> Result<(), E>,
    {
        debug_assert_eq!(self.latency.0.len(), 0, "a worker runs once");
        let mut unreported = 0;
        for index in ops {
            op(self, index)?;
            unreported += 1;
            if unreported == PROGRESS_STEP {
                progress.inc(unreported);
                unreported = 0;
            }
        }
        progress.inc(unreported);
        Ok(())
    }

    /// Runs `op` on index after index until an operation ends at or after `deadline`
    /// (`window` after `started`); the first worker moves `progress` by the milliseconds
    /// gone.
    fn run_until<F, E>(
        &mut self,
        started: Instant,
        window: Duration,
        op: &F,
        progress: &ProgressBar,
    ) -> Result<(), E>
    where
        F: Fn(&mut Worker, u64) -> Result<(), E>,
    {
        debug_assert_eq!(self.latency.0.len(), 0, "a worker runs once");
        let deadline = started + window;
        let mut next_tick_ms = PROGRESS_STEP_MS;
        for index in 0.. {
            op(self, index)?;
            let end = self.latency.last_end();
            if end >= deadline {
                break;
            }
            if self.thread == 0 {
                let gone_ms =
                    u64::try_from(end.duration_since(started).as_millis()).unwrap_or(u64::MAX);
                if gone_ms >= next_tick_ms {
                    progress.set_position(gone_ms);
                    next_tick_ms = gone_ms + PROGRESS_STEP_MS;
                }
            }
        }
        Ok(())
    }
}

/// The outcome of a run: the wall time and every worker's figures merged.
pub(crate) struct Measured {
    /// From the barrier's release of the first worker to the end of the last one.
    pub(crate) elapsed: Duration,
    /// Every operation's latency.
    pub(crate) latency: Latency,
    /// Every worker's counts, summed.
    pub(crate) tally: Tally,
}

impl Measured {
    /// Adds `other`, a later run of the same workload, to this one: wall times add up,
    /// latencies and counts merge.
    ///
    /// # Errors
    /// [`BenchError::Histogram`] if the latencies cannot be merged.
    pub(crate) fn absorb(&mut self, other: Measured) -> Result<(), BenchError> {
        self.elapsed += other.elapsed;
        self.latency
            .0
            .add(&other.latency.0)
            .map_err(|e| BenchError::Histogram(format!("{e:?}")))?;
        self.tally.add(other.tally);
        Ok(())
    }
}

/// An error an operation can end a run with: the engine's, or a primitive's.
pub(crate) trait OpError: Send {
    /// The benchmark's error for this one, met while running `plan`.
    fn into_bench(self, plan: &RunPlan) -> BenchError;
}

impl OpError for inmem::Error {
    fn into_bench(self, plan: &RunPlan) -> BenchError {
        BenchError::Engine { engine: plan.engine, workload: plan.workload.name(), source: self }
    }
}

/// Runs `op` for every operation index of `plan` on `plan.threads` threads.
///
/// # Errors
/// The first error an operation returned ([`OpError::into_bench`]);
/// [`BenchError::Spawn`] or [`BenchError::WorkerPanicked`] if a worker cannot run.
pub(crate) fn run_threads<F, E>(
    plan: &RunPlan,
    progress: &ProgressBar,
    op: F,
) -> Result<Measured, BenchError>
where
    F: Fn(&mut Worker, u64) -> Result<(), E> + Sync,
    E: OpError,
{
    let measured = run_workers::<F, E, ()>(plan, Span::Ops, progress, op, None)?;
    Ok(measured.0)
}

/// A thread that runs beside a timed run's workers ([`run_window`]): given the flag that
/// turns true once the last worker's window is over, it returns what it did.
pub(crate) type Driver<'a, T> = &'a (dyn Fn(&AtomicBool) -> T + Sync);

/// Counts down the workers still in their window; the last one out (however it leaves:
/// done, failed or panicking) raises the driver's stop flag.
struct Leaving<'a> {
    running: &'a AtomicUsize,
    stop: &'a AtomicBool,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        // AcqRel/Release: the driver that sees the flag sees every worker done.
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.stop.store(true, Ordering::Release);
        }
    }
}

/// Runs `op` on `plan.threads` threads, each for `window` from the barrier's release, and
/// `driver` (if any) on one more thread from the same release until the last worker's
/// window is over; returns the workers' figures and what the driver returned.
///
/// # Errors
/// As [`run_threads`]; [`BenchError::WorkerPanicked`] if the driver panicked too.
pub(crate) fn run_window<F, E, T>(
    plan: &RunPlan,
    window: Duration,
    progress: &ProgressBar,
    op: F,
    driver: Option<Driver<'_, T>>,
) -> Result<(Measured, Option<T>), BenchError>
where
    F: Fn(&mut Worker, u64) -> Result<(), E> + Sync,
    E: OpError,
    T: Send,
{
    run_workers(plan, Span::Window(window), progress, op, driver)
}

/// How long each worker of a run works.
#[derive(Clone, Copy)]
enum Span {
    /// Its share of `plan.ops` operations ([`run_threads`]).
    Ops,
    /// For this long from the barrier's release ([`run_window`]).
    Window(Duration),
}

/// [`run_threads`] and [`run_window`]: `op` on `plan.threads` threads for `span`, and
/// `driver` (if any) on one more thread from the same barrier until the last worker is done.
fn run_workers<F, E, T>(
    plan: &RunPlan,
    span: Span,
    progress: &ProgressBar,
    op: F,
    driver: Option<Driver<'_, T>>,
) -> Result<(Measured, Option<T>), BenchError>
where
    F: Fn(&mut Worker, u64) -> Result<(), E> + Sync,
    E: OpError,
    T: Send,
{
    assert!(plan.threads > 0, "a run has at least one worker");
    let barrier = Barrier::new(plan.threads + usize::from(driver.is_some()));
    let gate = RwLock::new(false);
    let running = AtomicUsize::new(plan.threads);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let opened = gate.write();
        let mut handles = Vec::with_capacity(plan.threads);
        for thread in 0..plan.threads {
            let mut worker = Worker::new(plan, thread)?;
            let (barrier, gate, op) = (&barrier, &gate, &op);
            let leaving = Leaving { running: &running, stop: &stop };
            let spawned = thread::Builder::new()
                .name(format!("bench-{}-{thread}", plan.workload))
                .spawn_scoped(scope, move || {
                    let _leaving = leaving;
                    if !gate.read().is_ok_and(|open| *open) {
                        return Ok::<_, E>(None);
                    }
                    barrier.wait();
                    let started = Instant::now();
                    match span {
                        Span::Ops => worker.run(plan.share(thread), op, progress)?,
                        Span::Window(window) => worker.run_until(started, window, op, progress)?,
                    }
                    Ok(Some(WorkerRun { worker, started, finished: Instant::now() }))
                })
                .map_err(BenchError::Spawn)?;
            handles.push(spawned);
        }
        let driven = match driver {
            Some(driver) => {
                let (barrier, gate, stop) = (&barrier, &gate, &stop);
                let spawned = thread::Builder::new()
                    .name(format!("bench-{}-driver", plan.workload))
                    .spawn_scoped(scope, move || {
                        if !gate.read().is_ok_and(|open| *open) {
                            return None;
                        }
                        barrier.wait();
                        Some(driver(stop))
                    })
                    .map_err(BenchError::Spawn)?;
                Some(spawned)
            }
            None => None,
        };
        if let Ok(mut opened) = opened {
            *opened = true;
        }
        let joined: Vec<_> = handles.into_iter().map(thread::ScopedJoinHandle::join).collect();
        let driven = match driven.map(thread::ScopedJoinHandle::join) {
            None => None,
            Some(Ok(Some(driven))) => Some(driven),
            Some(Ok(None)) => {
                return Err(BenchError::Spawn(std::io::Error::other("the driver was not started")))
            }
            Some(Err(_panic)) => {
                return Err(BenchError::WorkerPanicked { workload: plan.workload.name() })
            }
        };
        let ops = match span {
            Span::Ops => Some(plan.ops),
            Span::Window(_) => None,
        };
        Ok((merge(plan, joined, ops)?, driven))
    })
}

/// A worker after its run, with when it started and finished.
struct WorkerRun {
    worker: Worker,
    started: Instant,
    finished: Instant,
}

type Joined<E> = thread::Result<Result<Option<WorkerRun>, E>>;

/// Merges the workers' figures, or returns the first failure; `ops`, if given, is how many
/// operations they must have recorded.
fn merge<E: OpError>(
    plan: &RunPlan,
    joined: Vec<Joined<E>>,
    ops: Option<u64>,
) -> Result<Measured, BenchError> {
    let mut latency = Latency::new()?;
    let mut tally = Tally::default();
    let mut span: Option<(Instant, Instant)> = None;
    for outcome in joined {
        let run = match outcome {
            Err(_panic) => {
                return Err(BenchError::WorkerPanicked { workload: plan.workload.name() })
            }
            Ok(Err(error)) => return Err(error.into_bench(plan)),
            Ok(Ok(None)) => {
                // Workers are sent home only when a spawn failed, which returned before this.
                return Err(BenchError::Spawn(std::io::Error::other("a worker was not started")));
            }
            Ok(Ok(Some(run))) => run,
        };
        latency
            .0
            .add(&run.worker.latency.0)
            .map_err(|e| BenchError::Histogram(format!("{e:?}")))?;
        tally.add(run.worker.tally);
        span = Some(span.map_or((run.started, run.finished), |(started, finished)| {
            (started.min(run.started), finished.max(run.finished))
        }));
    }
    debug_assert!(
        ops.is_none_or(|ops| latency.0.len() == ops),
        "every operation's latency is recorded once"
    );
    let elapsed = span.map_or(Duration::ZERO, |(started, finished)| finished - started);
    Ok(Measured { elapsed, latency, tally })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(threads: usize, ops: u64) -> RunPlan {
        let layout = KeyLayout::new(16, 1000, 4096).unwrap();
        RunPlan { engine: "test", workload: Workload::Get, threads, ops, seed: 1, layout }
    }

    #[test]
    fn operations_are_split_evenly_and_completely() {
        let plan = plan(3, 10);
        let shares: Vec<_> = (0..3).map(|thread| plan.share(thread)).collect();
        assert_eq!(shares, [0..4, 4..7, 7..10]);
        let plan = super::tests::plan(4, 2);
        let lens: Vec<_> = (0..4).map(|thread| plan.share(thread).count()).collect();
        assert_eq!(lens, [1, 1, 0, 0]);
    }

    #[test]
    fn every_operation_is_run_once_and_timed() {
        let plan = plan(2, 1000);
        let seen = std::sync::atomic::AtomicU64::new(0);
        let measured = run_threads(&plan, &ProgressBar::hidden(), |worker, index| {
            seen.fetch_add(index + 1, std::sync::atomic::Ordering::Relaxed);
            worker.latency.time(|| ());
            Ok::<(), inmem::Error>(())
        })
        .unwrap();
        assert_eq!(seen.into_inner(), 1000 * 1001 / 2);
        assert_eq!(measured.latency.0.len(), 1000);
    }

    #[test]
    fn an_operation_error_names_the_engine_and_workload() {
        let plan = plan(2, 10);
        let failed = run_threads(&plan, &ProgressBar::hidden(), |_, _| Err(inmem::Error::Poisoned));
        assert!(matches!(failed, Err(BenchError::Engine { engine: "test", workload: "get", .. })));
    }

    #[test]
    fn a_timed_run_lasts_its_window_and_its_driver_runs_until_the_end() {
        let plan = plan(2, 0);
        let window = Duration::from_millis(50);
        // Before the common start: every worker's window begins after this, and the driver
        // is stopped only once the last one is over.
        let called = Instant::now();
        let driver = |stop: &AtomicBool| {
            let mut calls = 0_u64;
            while !stop.load(Ordering::Acquire) {
                calls += 1;
                thread::yield_now();
            }
            (calls, Instant::now())
        };
        let (measured, driven) = run_window(
            &plan,
            window,
            &ProgressBar::hidden(),
            |worker, _| {
                worker.latency.time(thread::yield_now);
                Ok::<(), inmem::Error>(())
            },
            Some(&driver),
        )
        .unwrap();
        assert!(measured.elapsed >= window, "{:?}", measured.elapsed);
        assert!(measured.latency.count() >= 2, "each worker times at least one operation");
        let (calls, stopped) = driven.unwrap();
        let driven_for = stopped.duration_since(called);
        assert!(calls > 0 && driven_for >= window, "{calls} calls in {driven_for:?}");
        let quiet = run_window(
            &plan,
            window,
            &ProgressBar::hidden(),
            |_, _| Err(inmem::Error::Poisoned),
            None::<Driver<'_, ()>>,
        );
        assert!(matches!(quiet, Err(BenchError::Engine { .. })), "an error ends the run");
    }
}
