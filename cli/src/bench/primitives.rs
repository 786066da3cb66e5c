//! The primitives workload: each primitive's operation in a measured run of its own, and
//! transactions that mix four primitives, on a fresh database per durability and thread
//! count.
//!
//! | op | one operation |
//! |---|---|
//! | `kv_get` | [`KvStore::get`] of a random key of one run loaded with `--keys` keys |
//! | `kv_put` | [`KvStore::put`] of a random key of that run (a `--value-size` bytes value) |
//! | `event_append` | [`EventLog::append`] to the worker's own run |
//! | `state_cas` | [`StateCell::cas`] of the worker's own cell, at the version it last wrote |
//! | `trace_record` | [`TraceStore::record`] of a tagged tool-call trace in the worker's run |
//! | `cross_txn` | one transaction: a KV put, an event append, a state cas and a trace record, all in the worker's run |
//!
//! Each worker writes the logs, cells and traces of a run of its own (runs are what
//! concurrent agents write in), so those operations measure the primitive's cost rather
//! than contention on one event log's head; the KV operations share one run, as the
//! engine's `get` workload shares one keyspace, so that the two compare. Results are
//! checked: every loaded key is found, event sequences are dense in each run, each cas
//! writes the version after the one it expected.
//!
//! `kv_get` and `cross_txn` rows carry the ratio of their ops/s to the engine's `get` and
//! `txn` rows of the same durability and thread count, when those ran earlier in the same
//! invocation (the primitives run after the engine workloads of each durability).

#![allow(
    clippy::disallowed_types,
    reason = "a benchmark harness outside the engine: no loom model to swap them in"
)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use inmem::primitives::prelude::*;
use inmem::primitives::{
    CasOutcome, EventLog, KvStore, RunId, StateCell, TraceSpec, TraceStore, TraceType, Value,
};
use inmem::{Database, TransactionOptions};

use super::args::{DurabilityArg, Workload};
use super::error::BenchError;
use super::progress;
use super::report::{Report, RunRecord};
use super::rss::PeakRss;
use super::runner::{run_threads, Measured, OpError, RunPlan, Worker};
use super::store::open_primitives_database;
use super::Session;

/// One of the workload's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrimitiveOp {
    KvGet,
    KvPut,
    EventAppend,
    StateCas,
    TraceRecord,
    CrossTxn,
}

impl PrimitiveOp {
    /// Every operation, in the order they run.
    const ALL: [PrimitiveOp; 6] = [
        PrimitiveOp::KvGet,
        PrimitiveOp::KvPut,
        PrimitiveOp::EventAppend,
        PrimitiveOp::StateCas,
        PrimitiveOp::TraceRecord,
        PrimitiveOp::CrossTxn,
    ];

    /// The name in reports (the JSON `op` field).
    pub(crate) fn name(self) -> &'static str {
        match self {
            PrimitiveOp::KvGet => "kv_get",
            PrimitiveOp::KvPut => "kv_put",
            PrimitiveOp::EventAppend => "event_append",
            PrimitiveOp::StateCas => "state_cas",
            PrimitiveOp::TraceRecord => "trace_record",
            PrimitiveOp::CrossTxn => "cross_txn",
        }
    }

    /// The engine workload this operation is compared with, if any.
    fn engine_workload(self) -> Option<Workload> {
        match self {
            PrimitiveOp::KvGet => Some(Workload::Get),
            PrimitiveOp::CrossTxn => Some(Workload::Txn),
            _ => None,
        }
    }
}

/// A primitive's error, with the operation it ended.
struct OpFailed {
    op: PrimitiveOp,
    source: inmem::primitives::Error,
}

impl OpError for OpFailed {
    fn into_bench(self, _plan: &RunPlan) -> BenchError {
        BenchError::Primitive { op: self.op.name(), source: self.source }
    }
}

/// The state cell every worker compare-and-sets in its run.
const CELL: &str = "counter";
/// The event type every append uses.
const EVENT_TYPE: &str = "step";
/// The tag every recorded trace carries.
const TRACE_TAG: &str = "bench";
/// Distinct values (and trace specs) the operations cycle through.
const VALUE_CHOICES: u64 = 64;
/// Keys of its own run that cross_txn's KV puts cycle through, per worker.
const CROSS_KEYS: u64 = 1024;

/// What one worker owns: its run, and what it expects of the run's log and cell.
struct Lane {
    run: RunId,
    /// The version of the worker's state cell (only this worker writes it).
    cell_version: AtomicU64,
    /// Events appended to the worker's run so far (only this worker appends).
    events: AtomicU64,
}

/// A database set up for one thread count: the handles, the shared KV run (loaded), a
/// lane per worker, the values.
struct Bench {
    db: Arc<Database>,
    kv: KvStore,
    events: EventLog,
    state: StateCell,
    traces: TraceStore,
    kv_run: RunId,
    lanes: Vec<Lane>,
    values: Vec<Value>,
    specs: Vec<TraceSpec>,
}

impl Bench {
    /// Loads `session`'s keys into one run of `db` and gives each of `threads` workers a
    /// run with an initialized cell.
    fn set_up(session: &Session<'_>, db: Database, threads: usize) -> Result<Bench, BenchError> {
        let db = Arc::new(db);
        let seed = session.config.seed;
        let values: Vec<Value> = (0..VALUE_CHOICES)
            .map(|choice| Value::Bytes(session.data.values.value(choice).to_vec()))
            .collect();
        let specs = values
            .iter()
            .map(|value| TraceSpec::new(TraceType::ToolCall, value.clone()).tag(TRACE_TAG))
            .collect();
        let bench = Bench {
            kv: KvStore::new(db.clone()),
            events: EventLog::new(db.clone()),
            state: StateCell::new(db.clone()),
            traces: TraceStore::new(db.clone()),
            db,
            kv_run: run_id(seed, u64::MAX),
            lanes: Vec::new(),
            values,
            specs,
        };
        let lanes = (0..threads)
            .map(|thread| {
                let run = run_id(seed, thread as u64);
                let version = bench
                    .state
                    .init(run, CELL, &Value::Int(0))
                    .map_err(|source| BenchError::Primitive { op: "setup", source })?;
                Ok(Lane { run, cell_version: AtomicU64::new(version), events: AtomicU64::new(0) })
            })
            .collect::<Result<_, BenchError>>()?;
        let mut bench = Bench { lanes, ..bench };
        bench.load(session, threads)?;
        Ok(bench)
    }

    /// Writes every key of the layout into the KV run, unmeasured, as the engine's own
    /// workloads load theirs: in fill's order, one put per key. A transaction of many puts
    /// allocates its keys' values, then their index entries, then their versions, each
    /// batch apart, where one put each allocates a key's pieces side by side; loaded in
    /// batches of 256, `kv_get` ran at 0.68x-0.82x of `get` instead of 0.82x-0.89x.
    fn load(&mut self, session: &Session<'_>, threads: usize) -> Result<(), BenchError> {
        let keys = session.data.layout.keys();
        let plan = plan(session, threads, keys);
        let bar = progress::bar(session.progress, plan.ops, format!("primitives load x{threads}"));
        let loaded = run_threads(&plan, &bar, |w, index| {
            let key_index = session.data.fill_key(index);
            session.data.layout.write_key(key_index, &mut w.key);
            let value = self.value(key_index);
            // Timed as the runner expects of every operation, though nothing reports it.
            let written = w.latency.time(|| self.kv.put(self.kv_run, &w.key, value));
            written.map(drop).map_err(|source| OpFailed { op: PrimitiveOp::KvPut, source })
        });
        bar.finish_and_clear();
        loaded.map(drop)
    }

    /// The value number `choice` (any number).
    fn value(&self, choice: u64) -> &Value {
        &self.values[(choice % VALUE_CHOICES) as usize]
    }

    /// A trace spec of the value number `choice`.
    fn spec(&self, choice: u64) -> &TraceSpec {
        &self.specs[(choice % VALUE_CHOICES) as usize]
    }

    /// Runs `op` once on worker `w`'s behalf: picks its inputs, times the call, checks
    /// the result (a wrong one is counted in `w.tally.wrong_ops`).
    fn op(
        &self,
        session: &Session<'_>,
        op: PrimitiveOp,
        w: &mut Worker,
    ) -> inmem::primitives::Result<()> {
        let lane = &self.lanes[w.thread];
        let choice = w.rng.u64(..);
        match op {
            PrimitiveOp::KvGet => {
                session.data.layout.write_key(w.rng.u64(0..session.data.layout.keys()), &mut w.key);
                let found = w.latency.time(|| self.kv.get(self.kv_run, &w.key))?;
                // The same touch as the engine's get (store.rs): the value's length and first
                // byte; the view was checked to be an encoded value when it was made.
                let found = found.is_some_and(|view| {
                    let stored = view.view().as_bytes();
                    std::hint::black_box((stored.len(), stored.first().copied())).0 > 0
                });
                w.tally.wrong_ops += u64::from(!found);
            }
            PrimitiveOp::KvPut => {
                session.data.layout.write_key(w.rng.u64(0..session.data.layout.keys()), &mut w.key);
                let value = self.value(choice);
                w.latency.time(|| self.kv.put(self.kv_run, &w.key, value))?;
            }
            PrimitiveOp::EventAppend => {
                let value = self.value(choice);
                let seq = w.latency.time(|| self.events.append(lane.run, EVENT_TYPE, value))?;
                w.tally.wrong_ops += u64::from(!lane.appended(seq));
            }
            PrimitiveOp::StateCas => {
                let expected = lane.cell_version.load(Relaxed);
                let value = Value::Int(choice as i64);
                let outcome =
                    w.latency.time(|| self.state.cas(lane.run, CELL, expected, &value))?;
                w.tally.wrong_ops += u64::from(!lane.cas_written(expected, outcome));
            }
            PrimitiveOp::TraceRecord => {
                let spec = self.spec(choice);
                w.latency.time(|| self.traces.record(lane.run, spec))?;
            }
            PrimitiveOp::CrossTxn => {
                let key = (choice % CROSS_KEYS).to_le_bytes();
                let expected = lane.cell_version.load(Relaxed);
                let (value, spec, counter) = (self.value(choice), self.spec(choice), choice as i64);
                let committed = w.latency.time(|| {
                    self.db.transaction_typed(TransactionOptions::default(), |txn| {
                        txn.kv(lane.run).put(key, value)?;
                        let seq = txn.events(lane.run).append(EVENT_TYPE, value)?;
                        let cas = txn.state(lane.run).cas(CELL, expected, &Value::Int(counter))?;
                        txn.traces(lane.run).record(spec)?;
                        Ok::<_, inmem::primitives::Error>((seq, cas))
                    })
                })?;
                let (seq, cas) = committed.value;
                let right = lane.appended(seq) & lane.cas_written(expected, cas);
                w.tally.wrong_ops += u64::from(!right);
            }
        }
        Ok(())
    }
}

impl Lane {
    /// Whether `seq` is the next sequence of the lane's log; counts it.
    fn appended(&self, seq: u64) -> bool {
        self.events.fetch_add(1, Relaxed) == seq
    }

    /// Whether a cas that expected `expected` wrote the version after it; keeps the
    /// version the cell has now.
    fn cas_written(&self, expected: u64, outcome: CasOutcome) -> bool {
        match outcome {
            CasOutcome::Written(version) => {
                self.cell_version.store(version, Relaxed);
                version == expected + 1
            }
            CasOutcome::Mismatch { current } => {
                self.cell_version.store(current.unwrap_or(expected), Relaxed);
                false
            }
        }
    }
}

/// The run id of lane `lane` (`u64::MAX`: the shared KV run), derived from the seed so that
/// every invocation with it writes the same keys.
fn run_id(seed: u64, lane: u64) -> RunId {
    let mut bytes = [0; RunId::LEN];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&lane.to_le_bytes());
    RunId::from_bytes(bytes)
}

/// A run of `ops` operations of the primitives workload at `threads` threads.
fn plan(session: &Session<'_>, threads: usize, ops: u64) -> RunPlan {
    RunPlan {
        engine: "inmem",
        workload: Workload::Primitives,
        threads,
        ops,
        seed: session.config.seed,
        layout: session.config.layout,
    }
}

/// Runs every operation at every thread count of `session`, each thread count on a fresh
/// database, writing each record to `report` with its ratio to the engine's matching row.
///
/// # Errors
/// [`BenchError::Engine`] if the database cannot be made, [`BenchError::Primitive`] if an
/// operation fails, [`BenchError::WrongResults`] if one returned a wrong result,
/// [`BenchError::Output`] if the report cannot be written.
pub(crate) fn run<W: std::io::Write>(
    session: &Session<'_>,
    report: &mut Report<W>,
) -> Result<(), BenchError> {
    for &threads in &session.config.threads {
        let (db, dir) = open_primitives_database(session.disk.as_ref(), "primitives setup")?;
        let bench = Bench::set_up(session, db, threads)?;
        for op in PrimitiveOp::ALL {
            let mut record = measure(session, &bench, op, threads)?;
            let engine = op.engine_workload().and_then(|workload| {
                report.records().iter().rev().find(|engine| {
                    engine.workload == workload.name()
                        && engine.engine == "inmem"
                        && engine.op.is_none()
                        && engine.threads == threads
                        && engine.durability == record.durability
                })
            });
            if let Some(engine) = engine {
                record.compare_with_engine(engine);
            }
            report.write(record).map_err(BenchError::Output)?;
        }
        // The database before its directory.
        drop(bench);
        drop(dir);
    }
    Ok(())
}

/// One measured run of `op` on `bench`.
fn measure(
    session: &Session<'_>,
    bench: &Bench,
    op: PrimitiveOp,
    threads: usize,
) -> Result<RunRecord, BenchError> {
    let ops = session.config.ops_for(Workload::Primitives);
    let plan = plan(session, threads, ops);
    let label = format!("primitives {} x{threads}", op.name());
    let bar = progress::bar(session.progress, ops, label);
    let peak = PeakRss::start();
    let measured: Result<Measured, BenchError> = run_threads(&plan, &bar, |w, _| {
        bench.op(session, op, w).map_err(|source| OpFailed { op, source })
    });
    let rss = peak.finish();
    bar.finish_and_clear();
    let measured = measured?;
    if measured.tally.wrong_ops > 0 {
        return Err(BenchError::WrongResults {
            engine: "inmem",
            workload: op.name(),
            wrong_ops: measured.tally.wrong_ops,
        });
    }
    let config = session.config;
    let mut record = RunRecord::new(config, "inmem", Workload::Primitives, threads, &measured, rss);
    record.op = Some(op.name());
    record.durability = session.durability.map(DurabilityArg::name);
    Ok(record)
}
