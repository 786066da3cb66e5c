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

#![allow(
    clippy::disallowed_types,
    reason = "a benchmark harness outside the engine: no loom model to swap them in"
)]

use std::ops::Range;
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

/// What one run is: which workload, by whom, how much.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunPlan {
    /// The store's name, for errors.
    pub(crate) engine: &'static str,
    /// The workload.
    pub(crate) workload: Workload,
    /// Worker threads.
    pub(crate) threads: usize,
    /// Operations, over all threads.
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

/// A histogram of per-operation latencies in nanoseconds.
pub(crate) struct Latency(Histogram<u64>);

impl Latency {
    pub(crate) fn new() -> Result<Latency, BenchError> {
        Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3)
            .map(Latency)
            .map_err(|error| BenchError::Histogram(format!("{error:?}")))
    }

    /// Runs `op` and records how long it took.
    pub(crate) fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = op();
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos);
        out
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
    assert!(plan.threads > 0, "a run has at least one worker");
    let barrier = Barrier::new(plan.threads);
    let gate = RwLock::new(false);
    thread::scope(|scope| {
        let opened = gate.write();
        let mut handles = Vec::with_capacity(plan.threads);
        for thread in 0..plan.threads {
            let mut worker = Worker::new(plan, thread)?;
            let (barrier, gate, op) = (&barrier, &gate, &op);
            let ops = plan.share(thread);
            let spawned = thread::Builder::new()
                .name(format!("bench-{}-{thread}", plan.workload))
                .spawn_scoped(scope, move || {
                    // Blocks until the coordinator has spawned everyone (or given up).
                    if !gate.read().is_ok_and(|open| *open) {
                        return Ok::<_, E>(None);
                    }
                    barrier.wait();
                    let started = Instant::now();
                    worker.run(ops, op, progress)?;
                    Ok(Some(WorkerRun { worker, started, finished: Instant::now() }))
                })
                .map_err(BenchError::Spawn)?;
            handles.push(spawned);
        }
        if let Ok(mut opened) = opened {
            *opened = true;
        }
        let joined: Vec<_> = handles.into_iter().map(thread::ScopedJoinHandle::join).collect();
        merge(plan, joined)
    })
}

/// A worker after its run, with when it started and finished.
struct WorkerRun {
    worker: Worker,
    started: Instant,
    finished: Instant,
}

type Joined<E> = thread::Result<Result<Option<WorkerRun>, E>>;

/// Merges the workers' figures, or returns the first failure.
fn merge<E: OpError>(plan: &RunPlan, joined: Vec<Joined<E>>) -> Result<Measured, BenchError> {
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
    debug_assert_eq!(latency.0.len(), plan.ops, "every operation's latency is recorded once");
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
}
