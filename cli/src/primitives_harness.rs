//! The primitives workload of `inmem crashtest --workload primitives` and its check: every
//! primitive written in one transaction, and, after a crash, every trace of it found whole.
//!
//! # The workload
//!
//! Writer `w` of cycle `c` owns the run [`writer_run`]`(seed, c, w)`. [`Writer::start`]
//! creates it in the [`RunIndex`] (Active) together with its state cell `counter` (version
//! 1, value 0). Each step `n` after that is **one** transaction, numbered
//! [`txn_number`]`(c, w, n)` like the transfers, that writes:
//!
//! - KV `k/<n>` = the txn number;
//! - event `n` of the run's log, type `step`, payload the txn number;
//! - the `counter` cell, by compare and swap from version `n + 1` to `n + 2`, value `n + 1`
//!   (so a cell at version `v` holds `v - 1`);
//! - trace `s<n>` (content the txn number, tags `step` and `root` or `child`, type by
//!   `n % 3`): a root when `n % 4 == 0`, else a child of `s<n-1>`;
//! - the run's status: Paused at `n % 10 == 5`, Active again at `n % 10 == 6`;
//! - task runs: task `k` ([`task_run`], a child of the writer's run) is created at step
//!   `8k` and finished at step `8k + 3`, Completed for an even `k`, Failed for an odd one.
//!
//! After the commit returns, the writer prints the step's [`StepAck`] line:
//! `prim <txn> <version> <run> <seq> <state version> <trace> <task>:<status>|-`.
//!
//! # The check
//!
//! [`check`] reads a recovered database. For every writer's run of every cycle so far, the
//! number of events `L` says how many steps are there, and everything must agree with it:
//! the chain verifies, the events are `0..L` of this writer, the type index holds `L`; the
//! KV keys are exactly `k/0..k/L-1`; the counter is at version `L + 1` with value `L`; the
//! traces are exactly `s0..s<L-1>`, each gettable with its parent, found by every index
//! (type, tag, time, parent) and no other trace is; the run's status and its tasks' are
//! those the first `L` steps leave, and the run index's parent and status indices name
//! exactly those runs. Any disagreement is a sign of a partly visible transaction
//! (`partial`). Then every acknowledged step must be among the `L`, its KV key at the
//! version its commit returned, its sequence, state version and trace as acknowledged, and
//! a task acknowledged as finished must be so (`lost`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use inmem::primitives::prelude::*;
use inmem::primitives::run_index::{RunIndex, RunQuery, RunStatus};
use inmem::primitives::state_cell::{CasOutcome, StateCell};
use inmem::primitives::trace::{TraceId, TraceSpec, TraceStore, TraceType, TraceView};
use inmem::primitives::{EventLog, KvStore, RunId, Value, ValueRef};

pub use crate::harness::txn_number;
use crate::harness::Violations;
use inmem::{Database, Transaction, TransactionOptions};

/// The most steps one writer commits in a cycle; then it waits to be killed. It bounds
/// what one listing of the check reads (the primitives' query limits are 10,000).
pub const STEPS_MAX: u64 = 2_000;

/// A task run is created every this many steps.
pub const TASK_EVERY: u64 = 8;

/// A task is finished this many steps after its creation.
const TASK_FINISH_AFTER: u64 = 3;

/// The writer's run is paused at step `PAUSE_EVERY * k + 5` and resumed at the next.
const PAUSE_EVERY: u64 = 10;

/// A trace is a root every this many steps; the others are children of the one before.
const TRACE_TREE_EVERY: u64 = 4;

/// The state cell every step increments.
pub const COUNTER: &str = "counter";

/// The type of every event.
pub const EVENT_TYPE: &str = "step";

/// The prefix of the KV keys.
const KV_PREFIX: &str = "k/";

/// Marks the last two bytes of the workload's run ids.
const RUN_MARK: [u8; 2] = [0xc5, 0x7e];

/// The cycle, writer and step of a [`txn_number`].
pub fn txn_parts(txn: u64) -> (u64, u64, u64) {
    ((txn >> 40).wrapping_sub(1), (txn >> 32) & 0xff, txn & 0xffff_ffff)
}

/// The run of writer `writer` in cycle `cycle`.
pub fn writer_run(seed: u64, cycle: u64, writer: u64) -> RunId {
    workload_run(seed, cycle, writer, 0)
}

/// Task `task` of writer `writer` in cycle `cycle`.
pub fn task_run(seed: u64, cycle: u64, writer: u64, task: u64) -> RunId {
    workload_run(seed, cycle, writer, task + 1)
}

/// `seed (folded to 32 bits) | cycle (32) | writer (16) | index (32) | RUN_MARK`, little
/// endian: distinct for every cycle, writer and index of a seed, never the all-zero
/// system run, and recognisable by [`is_workload_run`].
fn workload_run(seed: u64, cycle: u64, writer: u64, index: u64) -> RunId {
    let mut bytes = [0; RunId::LEN];
    let fields: [(&mut [u8], u64); 4] = {
        let (folded, rest) = bytes.split_at_mut(4);
        let (cycle_bytes, rest) = rest.split_at_mut(4);
        let (writer_bytes, rest) = rest.split_at_mut(2);
        let (index_bytes, mark) = rest.split_at_mut(4);
        mark.copy_from_slice(&RUN_MARK);
        [
            (folded, seed ^ (seed >> 32)),
            (cycle_bytes, cycle),
            (writer_bytes, writer),
            (index_bytes, index),
        ]
    };
    for (field, value) in fields {
        let len = field.len();
        field.copy_from_slice(&value.to_le_bytes()[..len]);
    }
    RunId::from_bytes(bytes)
}

/// Whether `run` is one of [`workload_run`]'s for `seed`.
fn is_workload_run(seed: u64, run: RunId) -> bool {
    let bytes = run.as_bytes();
    let folded = (seed ^ (seed >> 32)).to_le_bytes();
    bytes[..4] == folded[..4] && bytes[RunId::LEN - 2..] == RUN_MARK
}

/// The custom id of step `step`'s trace.
pub fn trace_name(step: u64) -> String {
    format!("s{step}")
}

/// The KV key of step `step`.
pub fn kv_key(step: u64) -> String {
    format!("{KV_PREFIX}{step}")
}

/// The type of step `step`'s trace.
fn trace_type(step: u64) -> TraceType {
    match step % 3 {
        0 => TraceType::Decision,
        1 => TraceType::ToolCall,
        _ => TraceType::Thought,
    }
}

/// The parent of step `step`'s trace, if it is a child.
fn trace_parent(step: u64) -> Option<u64> {
    (step % TRACE_TREE_EVERY != 0).then(|| step - 1)
}

/// The writer's run status once steps `0..steps` are done.
fn writer_status(steps: u64) -> RunStatus {
    match steps.checked_sub(1) {
        Some(last) if last % PAUSE_EVERY == 5 => RunStatus::Paused,
        _ => RunStatus::Active,
    }
}

/// The status a task ends with.
fn task_end(task: u64) -> RunStatus {
    if task % 2 == 0 {
        RunStatus::Completed
    } else {
        RunStatus::Failed
    }
}

/// Task `task`'s status once steps `0..steps` are done; `None` before it is created.
fn task_status(task: u64, steps: u64) -> Option<RunStatus> {
    let created = task * TASK_EVERY;
    if created >= steps {
        None
    } else if created + TASK_FINISH_AFTER < steps {
        Some(task_end(task))
    } else {
        Some(RunStatus::Active)
    }
}

/// The txn number as the values hold it.
fn txn_value(txn: u64) -> i64 {
    // txn_number's values are below 2^63 for any cycle a run can reach (2^23 of them).
    i64::try_from(txn).unwrap_or(i64::MAX)
}

/// What a committed step printed: what the check must find of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepAck {
    /// The step's [`txn_number`].
    pub txn: u64,
    /// Its commit version.
    pub version: u64,
    /// The writer's run.
    pub run: RunId,
    /// The sequence of its event.
    pub seq: u64,
    /// The version of the counter cell it wrote.
    pub state_version: u64,
    /// The custom id of its trace.
    pub trace: String,
    /// A task run it created (Active) or finished, with the status it left.
    pub task: Option<(RunId, RunStatus)>,
}

impl StepAck {
    /// Reads a line written by this type's `Display`; `None` for any other line.
    pub fn parse(line: &str) -> Option<StepAck> {
        let mut words = line.strip_prefix("prim ")?.split(' ');
        let mut next = || words.next();
        let txn = next()?.parse().ok()?;
        let version = next()?.parse().ok()?;
        let run = next()?.parse().ok()?;
        let seq = next()?.parse().ok()?;
        let state_version = next()?.parse().ok()?;
        let trace = next()?.to_owned();
        let task = match next()? {
            "-" => None,
            task => {
                let (run, status) = task.split_once(':')?;
                let status = RunStatus::ALL.into_iter().find(|known| known.name() == status)?;
                Some((run.parse().ok()?, status))
            }
        };
        next().is_none().then_some(StepAck { txn, version, run, seq, state_version, trace, task })
    }
}

impl fmt::Display for StepAck {
    /// `prim <txn> <version> <run> <seq> <state version> <trace> <task>:<status>|-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prim {} {} {} {} {} {} ",
            self.txn, self.version, self.run, self.seq, self.state_version, self.trace
        )?;
        match &self.task {
            Some((run, status)) => write!(f, "{run}:{status}"),
            None => f.write_str("-"),
        }
    }
}

/// Why a step's transaction failed.
#[derive(Debug)]
enum StepError {
    /// A primitive's error, or the engine's.
    Primitive(inmem::primitives::Error),
    /// The counter was not at the version the writer's own steps left it at.
    Counter { expected: u64, current: Option<u64> },
}

impl From<inmem::primitives::Error> for StepError {
    fn from(error: inmem::primitives::Error) -> Self {
        StepError::Primitive(error)
    }
}

impl From<inmem::Error> for StepError {
    fn from(error: inmem::Error) -> Self {
        StepError::Primitive(error.into())
    }
}

impl inmem::engine::TransactionError for StepError {
    fn is_conflict(&self) -> bool {
        matches!(self, StepError::Primitive(error) if error.is_conflict())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Primitive(error) => write!(f, "{error}"),
            StepError::Counter { expected, current } => {
                write!(f, "the counter is at version {current:?}, not {expected}")
            }
        }
    }
}

/// One writer of the workload: its run, and the step it commits next.
#[derive(Debug)]
pub struct Writer {
    seed: u64,
    cycle: u64,
    writer: u64,
    run: RunId,
    next: u64,
}

impl Writer {
    /// Creates writer `writer`'s run of cycle `cycle` with its counter, in one transaction.
    ///
    /// # Errors
    /// The transaction's error (the run existing already among them), as text.
    pub fn start(db: &Database, seed: u64, cycle: u64, writer: u64) -> Result<Writer, String> {
        let run = writer_run(seed, cycle, writer);
        db.transaction_typed(TransactionOptions::default(), |txn| {
            txn.runs().create_with_id(run, None, ["crashtest", "writer"], &Value::Null)?;
            txn.state(run).init(COUNTER, &Value::from(0))
        })
        .map_err(|error| format!("starting writer {writer} of cycle {cycle}: {error}"))?;
        Ok(Writer { seed, cycle, writer, run, next: 0 })
    }

    /// The writer's run.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// Commits the next step and returns what to acknowledge; `None` once [`STEPS_MAX`]
    /// steps are done.
    ///
    /// # Errors
    /// The transaction's error, as text.
    pub fn step(&mut self, db: &Database) -> Result<Option<StepAck>, String> {
        if self.next >= STEPS_MAX {
            return Ok(None);
        }
        let txn = txn_number(self.cycle, self.writer, self.next);
        let committed = db
            .transaction_typed(TransactionOptions::default(), |tx| self.write_step(tx, txn))
            .map_err(|error| format!("step {txn}: {error}"))?;
        let StepWritten { seq, state_version, task } = committed.value;
        let ack = StepAck {
            txn,
            version: committed.version.get(),
            run: self.run,
            seq,
            state_version,
            trace: trace_name(self.next),
            task,
        };
        self.next += 1;
        Ok(Some(ack))
    }

    /// Step `self.next`'s writes, in `tx`; returns its event's sequence, the counter's new
    /// version, and the task it moved.
    fn write_step(&self, tx: &mut Transaction<'_>, txn: u64) -> Result<StepWritten, StepError> {
        let (run, step) = (self.run, self.next);
        let named = Value::from(txn_value(txn));
        tx.kv(run).put(kv_key(step), &named)?;
        let seq = tx.events(run).append(EVENT_TYPE, &named)?;
        let count = Value::from(txn_value(step + 1));
        let state_version = match tx.state(run).cas(COUNTER, step + 1, &count)? {
            CasOutcome::Written(version) => version,
            CasOutcome::Mismatch { current } => {
                return Err(StepError::Counter { expected: step + 1, current });
            }
        };
        let spec = TraceSpec::new(trace_type(step), named)
            .custom_id(trace_name(step))
            .tag("step")
            .tag(if trace_parent(step).is_some() { "child" } else { "root" });
        match trace_parent(step) {
            Some(parent) => tx.traces(run).record_child(&trace_id(parent)?, &spec)?,
            None => tx.traces(run).record(&spec)?,
        };
        match step % PAUSE_EVERY {
            5 => tx.runs().update_status(run, RunStatus::Paused)?,
            6 => tx.runs().update_status(run, RunStatus::Active)?,
            _ => {}
        }
        let task = step / TASK_EVERY;
        let task_id = task_run(self.seed, self.cycle, self.writer, task);
        let moved = match step % TASK_EVERY {
            0 => {
                tx.runs().create_with_id(
                    task_id,
                    Some(run),
                    ["crashtest", "task"],
                    &Value::Null,
                )?;
                Some((task_id, RunStatus::Active))
            }
            TASK_FINISH_AFTER => {
                match task_end(task) {
                    RunStatus::Completed => tx.runs().complete(task_id)?,
                    _ => tx.runs().fail(task_id, "failed on purpose")?,
                }
                Some((task_id, task_end(task)))
            }
            _ => None,
        };
        Ok(StepWritten { seq, state_version, task: moved })
    }
}

/// What a step's transaction wrote that its acknowledgment names.
struct StepWritten {
    seq: u64,
    state_version: u64,
    task: Option<(RunId, RunStatus)>,
}

/// The trace id of step `step`.
fn trace_id(step: u64) -> Result<TraceId, inmem::primitives::Error> {
    TraceId::custom(&trace_name(step))
}

/// Checks the recovered `db` against the workload of `cycles` cycles of `writers` writers
/// with `seed`, and against every acknowledged step (see the module doc).
pub fn check(
    db: &Arc<Database>,
    seed: u64,
    cycles: u64,
    writers: u64,
    acks: &[StepAck],
) -> Violations {
    let mut checker = Checker::new(db, seed);
    for cycle in 0..cycles {
        for writer in 0..writers {
            checker.writer_run(cycle, writer);
        }
    }
    checker.status_indices();
    for ack in acks {
        checker.ack(ack);
    }
    checker.found
}

/// What the check found of one writer's run.
#[derive(Debug, Clone, Copy)]
struct RunFound {
    /// Its steps: the length of its event log.
    steps: u64,
    /// The version of its counter, if it has one.
    counter: Option<u64>,
}

/// The check's handles and what it found so far.
struct Checker {
    seed: u64,
    events: EventLog,
    kv: KvStore,
    cells: StateCell,
    traces: TraceStore,
    runs: RunIndex,
    /// The writers' runs, by run id.
    found_runs: BTreeMap<RunId, RunFound>,
    /// The status every run of the workload must have, writers' and tasks'.
    statuses: BTreeMap<RunId, RunStatus>,
    /// The status the tasks found have.
    recovered: BTreeMap<RunId, RunStatus>,
    found: Violations,
}

/// Traces any one listing may return: one more than a writer records, to see extras.
const LISTING_MAX: usize = STEPS_MAX as usize + 1;

impl Checker {
    fn new(db: &Arc<Database>, seed: u64) -> Checker {
        Checker {
            seed,
            events: EventLog::new(db.clone()),
            kv: KvStore::new(db.clone()),
            cells: StateCell::new(db.clone()),
            traces: TraceStore::new(db.clone()),
            runs: RunIndex::new(db.clone()),
            found_runs: BTreeMap::new(),
            statuses: BTreeMap::new(),
            recovered: BTreeMap::new(),
            found: Violations::default(),
        }
    }

    /// The value of a read, or `None` after noting its error as a partial sign (a
    /// recovered database whose reads fail holds something half written or corrupt).
    fn read<T>(&mut self, what: &str, read: inmem::primitives::Result<T>) -> Option<T> {
        read.map_err(|error| self.found.partial(format!("reading {what}: {error}"))).ok()
    }

    /// Checks writer `writer`'s run of cycle `cycle`.
    fn writer_run(&mut self, cycle: u64, writer: u64) {
        let run = writer_run(self.seed, cycle, writer);
        let Some(steps) = self.events(run, cycle, writer) else { return };
        let record = self.runs.get(run);
        let Some(record) = self.read(&format!("run {run}"), record) else { return };
        let counter = self.cells.read(run, COUNTER);
        let counter = self.read(&format!("the counter of {run}"), counter).map(|view| {
            view.map(|view| {
                let count = txn_value(view.version().saturating_sub(1));
                (view.version(), view.value() == ValueRef::Int(count))
            })
        });
        self.kv(run, cycle, writer, steps);
        self.traces(run, cycle, writer, steps);
        let Some(record) = record else {
            if steps > 0 || counter.flatten().is_some() {
                self.found.partial(format!("run {run} has steps or a counter, but no record"));
            }
            return;
        };
        match counter.flatten() {
            Some((version, true)) if version == steps + 1 => {}
            other => self.found.partial(format!(
                "run {run} has {steps} events, but its counter (version, consistent) is \
                 {other:?}, not at version {}",
                steps + 1
            )),
        }
        let status = writer_status(steps);
        if record.status() != status {
            self.found.partial(format!(
                "run {run} is {}, not {status} as its {steps} steps leave it",
                record.status()
            ));
        }
        self.statuses.insert(run, status);
        self.tasks(run, cycle, writer, steps);
        let counter = counter.flatten().map(|(version, _)| version);
        self.found_runs.insert(run, RunFound { steps, counter });
    }

    /// Checks `run`'s event log: it verifies, holds events `0..L` of this writer, and its
    /// type index holds them all. Returns `L`, or `None` if the log cannot be read.
    fn events(&mut self, run: RunId, cycle: u64, writer: u64) -> Option<u64> {
        let report = self.events.verify_chain(run);
        let report = self.read(&format!("the chain of {run}"), report)?;
        if !report.is_verified() {
            self.found.partial(format!("the event chain of {run} does not verify: {report:?}"));
        }
        let events = self.events.read_range(run, ..);
        let events = self.read(&format!("the events of {run}"), events)?;
        for (index, event) in (0u64..).zip(&events) {
            let txn = txn_value(txn_number(cycle, writer, index));
            if event.seq() != index
                || event.event_type() != EVENT_TYPE
                || event.payload() != ValueRef::Int(txn)
            {
                self.found
                    .partial(format!("event {index} of {run} is not step {index}'s: {event:?}"));
            }
        }
        let steps = events.len() as u64;
        let by_type = self.events.read_by_type(run, EVENT_TYPE);
        let by_type = self.read(&format!("the type index of {run}"), by_type)?;
        if by_type.len() != events.len() {
            self.found.partial(format!(
                "the type index of {run} holds {} events, its log {steps}",
                by_type.len()
            ));
        }
        Some(steps)
    }

    /// Checks that `run`'s KV keys are exactly those of its `steps` steps, each naming its
    /// step's transaction.
    fn kv(&mut self, run: RunId, cycle: u64, writer: u64, steps: u64) {
        let entries = self.kv.list(run, KV_PREFIX, LISTING_MAX);
        let Some(entries) = self.read(&format!("the keys of {run}"), entries) else { return };
        let mut expected: BTreeMap<String, i64> = (0..steps)
            .map(|step| (kv_key(step), txn_value(txn_number(cycle, writer, step))))
            .collect();
        for entry in &entries {
            let key = String::from_utf8_lossy(entry.key.as_bytes()).into_owned();
            match expected.remove(&key) {
                Some(txn) if entry.value.value() == ValueRef::Int(txn) => {}
                Some(_) => {
                    self.found.partial(format!("key {key} of {run} names another transaction"))
                }
                None => self.found.partial(format!(
                    "key {key} of {run} is there, but its step's event is not ({steps} events)"
                )),
            }
        }
        if let Some((key, _)) = expected.first_key_value() {
            let detail = format!("{run} has {steps} events, but not key {key}");
            self.found.partial(detail);
        }
    }

    /// Checks that `run`'s traces are exactly those of its `steps` steps, that each is
    /// gettable as recorded, and that every index finds exactly the traces it should.
    fn traces(&mut self, run: RunId, cycle: u64, writer: u64, steps: u64) {
        for step in 0..steps {
            let Some(id) = self.read("a trace id", trace_id(step)) else { return };
            let view = self.traces.get(run, &id);
            let Some(view) = self.read(&format!("trace {id} of {run}"), view) else { continue };
            let txn = txn_value(txn_number(cycle, writer, step));
            let parent = trace_parent(step).map(trace_id).transpose().ok().flatten();
            let whole = view.as_ref().is_some_and(|view| {
                view.content() == ValueRef::Int(txn)
                    && view.trace_type() == trace_type(step)
                    && view.parent() == parent.as_ref()
                    && view.has_tag("step")
            });
            if !whole {
                self.found.partial(format!("trace {id} of {run} is missing or not step {step}'s"));
            }
        }
        let all: BTreeSet<u64> = (0..steps).collect();
        let roots: BTreeSet<u64> =
            all.iter().copied().filter(|s| trace_parent(*s).is_none()).collect();
        let children: BTreeSet<u64> = all.difference(&roots).copied().collect();
        let listings = [
            ("tag step", self.traces.query_by_tag(run, "step", LISTING_MAX), all.clone()),
            ("tag root", self.traces.query_by_tag(run, "root", LISTING_MAX), roots),
            ("tag child", self.traces.query_by_tag(run, "child", LISTING_MAX), children),
            ("time", self.traces.query_by_time(run, .., LISTING_MAX), all.clone()),
        ];
        for (index, listing, expected) in listings {
            self.trace_listing(run, index, listing, &expected);
        }
        for code in 0..3 {
            let kind = trace_type(code);
            let listing = self.traces.query_by_type(run, &kind, LISTING_MAX);
            let expected = all.iter().copied().filter(|step| step % 3 == code).collect();
            self.trace_listing(run, &format!("type {kind}"), listing, &expected);
        }
        for step in 0..steps {
            let Some(id) = self.read("a trace id", trace_id(step)) else { return };
            let listing = self.traces.children(run, &id, LISTING_MAX);
            let child = step + 1;
            let expected = (child < steps && trace_parent(child).is_some())
                .then_some(child)
                .into_iter()
                .collect();
            self.trace_listing(run, &format!("children of {id}"), listing, &expected);
        }
    }

    /// Checks that a trace listing of `run` by `index` found exactly the traces of
    /// `expected` steps, each gettable.
    fn trace_listing(
        &mut self,
        run: RunId,
        index: &str,
        listing: inmem::primitives::Result<Vec<TraceView>>,
        expected: &BTreeSet<u64>,
    ) {
        let what = format!("the {index} index of {run}'s traces");
        let Some(listing) = self.read(&what, listing) else { return };
        let mut found = BTreeSet::new();
        for view in &listing {
            let step = view.id().as_custom().and_then(|name| name.strip_prefix('s')?.parse().ok());
            let gettable =
                self.traces.get(run, view.id()).is_ok_and(|got| got.as_ref() == Some(view));
            match step {
                Some(step) if gettable => {
                    found.insert(step);
                }
                _ => {
                    self.found.partial(format!("{what} found {}, not gettable as found", view.id()))
                }
            }
        }
        if found != *expected || listing.len() != expected.len() {
            let missing: Vec<_> = expected.difference(&found).take(3).collect();
            let extra: Vec<_> = found.difference(expected).take(3).collect();
            self.found.partial(format!(
                "{what} found {} traces, not {}: missing steps {missing:?}, extra steps {extra:?}",
                listing.len(),
                expected.len()
            ));
        }
    }

    /// Checks the tasks of `run` after `steps` steps: those created are there, under it,
    /// with the status the steps leave them in, the next one is not, and the parent index
    /// names exactly them.
    fn tasks(&mut self, run: RunId, cycle: u64, writer: u64, steps: u64) {
        let created = steps.div_ceil(TASK_EVERY);
        let mut expected = BTreeSet::new();
        for task in 0..=created {
            let id = task_run(self.seed, cycle, writer, task);
            let view = self.runs.get(id);
            let Some(view) = self.read(&format!("task {id}"), view) else { continue };
            let found = view.as_ref().map(|view| (view.status(), view.parent()));
            if let Some(view) = &view {
                self.recovered.insert(id, view.status());
            }
            let status = task_status(task, steps);
            if found != status.map(|status| (status, Some(run))) {
                self.found.partial(format!(
                    "task {task} of {run} (status, parent) is {found:?}, not {status:?} after \
                     {steps} steps"
                ));
            }
            if let Some(status) = status {
                self.statuses.insert(id, status);
                expected.insert(id);
            }
        }
        let listing = self.runs.query(&RunQuery::new().parent(run), usize::MAX);
        let what = format!("the parent index of {run}");
        let Some(listing) = self.read(&what, listing) else { return };
        let found: BTreeSet<RunId> = listing.iter().map(|view| view.id()).collect();
        if found != expected || listing.len() != expected.len() {
            self.found.partial(format!(
                "{what} names {} runs, not its {} tasks",
                listing.len(),
                expected.len()
            ));
        }
    }

    /// Checks that the run index's status index names exactly the workload's runs of each
    /// status (runs of other seeds aside).
    fn status_indices(&mut self) {
        for status in
            [RunStatus::Active, RunStatus::Paused, RunStatus::Completed, RunStatus::Failed]
        {
            let listing = self.runs.query(&RunQuery::new().status(status), usize::MAX);
            let what = format!("the {status} index");
            let Some(listing) = self.read(&what, listing) else { continue };
            let found: BTreeSet<RunId> = listing
                .iter()
                .map(|view| view.id())
                .filter(|&run| is_workload_run(self.seed, run))
                .collect();
            let expected: BTreeSet<RunId> = self
                .statuses
                .iter()
                .filter(|(_, &expected)| expected == status)
                .map(|(&run, _)| run)
                .collect();
            if found != expected {
                let missing: Vec<_> = expected.difference(&found).take(3).collect();
                let extra: Vec<_> = found.difference(&expected).take(3).collect();
                self.found.partial(format!("{what}: missing {missing:?}, extra {extra:?}"));
            }
        }
    }

    /// Checks one acknowledged step against what the runs' checks found.
    fn ack(&mut self, ack: &StepAck) {
        let (cycle, writer, step) = txn_parts(ack.txn);
        let run = writer_run(self.seed, cycle, writer);
        let found = self.found_runs.get(&run).copied();
        let Some(found) = found.filter(|found| ack.run == run && step < found.steps) else {
            let steps = found.map(|found| found.steps);
            self.found.lost(format!(
                "acknowledged step {} (txn {}) of {} is missing: the run has {steps:?} steps",
                step, ack.txn, ack.run
            ));
            return;
        };
        let history = self.kv.history(run, kv_key(step), 2, None);
        let versions: Vec<u64> = self
            .read(&format!("the history of {}", kv_key(step)), history)
            .unwrap_or_default()
            .iter()
            .map(|version| version.version.get())
            .collect();
        let as_acknowledged = versions == [ack.version]
            && ack.seq == step
            && ack.state_version == step + 2
            && found.counter.is_some_and(|counter| counter >= ack.state_version)
            && ack.trace == trace_name(step);
        if !as_acknowledged {
            self.found.lost(format!(
                "acknowledged {ack} is recovered otherwise: key versions {versions:?}, counter \
                 at {:?}",
                found.counter
            ));
        }
        if let Some((task, status)) = ack.task {
            let now = self.recovered.get(&task).copied();
            // A task acknowledged as created may have finished since, by a later step.
            let finished_since = status == RunStatus::Active
                && matches!(now, Some(RunStatus::Completed | RunStatus::Failed));
            let kept = now == Some(status) || finished_since;
            if !kept {
                self.found.lost(format!("task {task} was acknowledged {status}, and is {now:?}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_round_trip_and_other_lines_do_not_parse() {
        let run = writer_run(7, 3, 1);
        let mut ack = StepAck {
            txn: txn_number(3, 1, 16),
            version: 99,
            run,
            seq: 16,
            state_version: 18,
            trace: trace_name(16),
            task: Some((task_run(7, 3, 1, 2), RunStatus::Active)),
        };
        assert_eq!(StepAck::parse(&ack.to_string()), Some(ack.clone()));
        ack.task = None;
        assert_eq!(StepAck::parse(&ack.to_string()), Some(ack.clone()));
        assert_eq!(StepAck::parse("ack 7 12"), None);
        assert_eq!(StepAck::parse(&format!("{ack} extra")), None);
        assert_eq!(txn_parts(ack.txn), (3, 1, 16));
    }

    #[test]
    fn workload_runs_are_distinct_and_recognised() {
        let runs: BTreeSet<RunId> = (0..3)
            .flat_map(|cycle| {
                (0..3).flat_map(move |writer| (0..3).map(move |task| (cycle, writer, task)))
            })
            .flat_map(|(cycle, writer, task)| {
                [writer_run(5, cycle, writer), task_run(5, cycle, writer, task)]
            })
            .collect();
        assert_eq!(runs.len(), 9 + 27);
        assert!(runs.iter().all(|&run| is_workload_run(5, run)));
        assert!(!is_workload_run(6, writer_run(5, 0, 0)));
        assert!(!is_workload_run(5, RunId::from_bytes([0; RunId::LEN])));
    }

    #[test]
    fn statuses_follow_the_steps() {
        assert_eq!(writer_status(0), RunStatus::Active);
        assert_eq!(writer_status(6), RunStatus::Paused);
        assert_eq!(writer_status(7), RunStatus::Active);
        assert_eq!(task_status(1, 8), None);
        assert_eq!(task_status(1, 9), Some(RunStatus::Active));
        // Task 1: created by step 8, finished by step 11 (the twelfth).
        assert_eq!(task_status(1, 11), Some(RunStatus::Active));
        assert_eq!(task_status(1, 12), Some(RunStatus::Failed));
        assert_eq!(task_status(0, 4), Some(RunStatus::Completed));
    }
}
