//! Retries that hold: 32 threads on one run, for several seconds each, appending to its
//! event log, transitioning one state cell, incrementing one counter. No caller gets an
//! error (in particular no `Conflict`: the retry loop keeps the competitors on a hot key
//! few, see `engine/src/turns.rs`), and no update is lost.
//!
//! Each test runs its threads until a deadline or a cap on operations per thread, whichever
//! comes first; every error is counted rather than stopping the thread, so a failure shows
//! how many callers got one. The tests take turns (one lock), so each has the machine to
//! itself: 32 threads on one key, not 96 on three.

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use inmem_engine::Database;
use inmem_primitives::event_log::EventLog;
use inmem_primitives::kv::KvStore;
use inmem_primitives::state_cell::StateCell;
use inmem_primitives::{engine_options, Error, Result, RunId, Value, ValueRef};

const THREADS: usize = 32;
/// How long each test's threads keep going.
const DURATION: Duration = Duration::from_secs(3);
/// Operations per thread at most, so a fast machine does not build an unbounded log.
const OPERATIONS_MAX: u64 = 100_000;

/// One test at a time (see the module doc).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What the threads of one test did.
#[derive(Debug, Default)]
struct Tally {
    successes: AtomicU64,
    conflicts: AtomicU64,
    other_errors: AtomicU64,
    /// The sum of what successful operations added (the increments' deltas).
    added: AtomicU64,
}

impl Tally {
    fn count<T>(&self, outcome: &Result<T>) {
        let counter = match outcome {
            Ok(_) => &self.successes,
            Err(error) if error.is_conflict() => &self.conflicts,
            Err(_) => &self.other_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Asserts that no operation failed, naming the counts if some did.
    fn assert_no_errors(&self, what: &str, db: &Database) {
        let (conflicts, others) =
            (self.conflicts.load(Ordering::Relaxed), self.other_errors.load(Ordering::Relaxed));
        // Shown with --nocapture: what the retry loop did.
        println!(
            "{what}: {} succeeded, {conflicts} got Conflict, {others} another error; \
             {} commits lost a conflict and were retried",
            self.successes(),
            db.stats().conflicts,
        );
        assert_eq!(
            (conflicts, others),
            (0, 0),
            "{what}: {conflicts} callers got Conflict and {others} another error, of {} \
             operations ({} commits lost to a conflict and were retried)",
            self.successes() + conflicts + others,
            db.stats().conflicts,
        );
    }
}

/// Runs `operation(thread, i)` on `THREADS` threads, started together, each until the
/// deadline or `OPERATIONS_MAX`, counting outcomes in the returned tally.
fn hammer<T>(operation: impl Fn(usize, u64, &Tally) -> Result<T> + Sync) -> Tally {
    let tally = Tally::default();
    let start = Barrier::new(THREADS);
    let deadline = Instant::now() + DURATION;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (operation, tally, start) = (&operation, &tally, &start);
            scope.spawn(move || {
                start.wait();
                let mut i = 0;
                while i < OPERATIONS_MAX && Instant::now() < deadline {
                    tally.count(&operation(thread, i, tally));
                    i += 1;
                }
            });
        }
    });
    tally
}

fn database() -> Arc<Database> {
    Arc::new(Database::with_options(engine_options()).expect("an in-memory database"))
}

fn serialized() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn thirty_two_threads_appending_to_one_run_get_no_conflict_and_lose_no_event() {
    let _turn = serialized();
    let db = database();
    let log = EventLog::new(db.clone());
    let run = RunId::random();
    let tally = hammer(|thread, i, _| {
        let payload = Value::Array(vec![Value::from(thread as i64), Value::from(i as i64)]);
        log.append(run, "append", &payload)
    });
    tally.assert_no_errors("EventLog::append", &db);
    let appended = tally.successes();
    assert!(appended > 0);
    assert_eq!(log.len(run).expect("len"), appended, "one event per successful append");
    assert!(log.verify_chain(run).expect("verify").is_verified(), "the hash chain holds");
    // Each thread's events are all there, in the order it appended them.
    let mut next = [0_i64; THREADS];
    for event in log.iter(run) {
        let payload = event.expect("an event").payload().to_owned();
        let items = payload.as_array().expect("a [thread, i] payload");
        let (thread, i) = (items[0].as_int().expect("thread"), items[1].as_int().expect("i"));
        let expected = &mut next[usize::try_from(thread).expect("a thread number")];
        assert_eq!(i, *expected, "thread {thread}'s appends, in order and each once");
        *expected += 1;
    }
}

#[test]
fn thirty_two_threads_transitioning_one_cell_get_no_conflict_and_lose_no_transition() {
    let _turn = serialized();
    let db = database();
    let cells = StateCell::new(db.clone());
    let run = RunId::random();
    let initial = cells.init(run, "counter", &Value::from(0)).expect("init");
    let tally = hammer(|_, _, _| {
        cells.transition(run, "counter", |n| {
            n.as_int().and_then(|n| n.checked_add(1)).map(Value::from).ok_or(Error::NotAnInteger)
        })
    });
    tally.assert_no_errors("StateCell::transition", &db);
    let transitions = tally.successes();
    let view = cells.read(run, "counter").expect("read").expect("the cell");
    assert_eq!(view.value(), ValueRef::Int(transitions as i64), "every transition counted once");
    assert_eq!(view.version(), initial + transitions, "one version per transition");
}

#[test]
fn thirty_two_threads_incrementing_one_counter_get_no_conflict_and_lose_no_increment() {
    let _turn = serialized();
    let db = database();
    let kv = KvStore::new(db.clone());
    let run = RunId::random();
    let tally = hammer(|thread, _, tally| {
        let delta = thread as i64 + 1;
        let outcome = kv.incr(run, "counter", delta);
        if outcome.is_ok() {
            tally.added.fetch_add(delta as u64, Ordering::Relaxed);
        }
        outcome
    });
    tally.assert_no_errors("KvStore::incr", &db);
    let sum = tally.added.load(Ordering::Relaxed);
    let stored = kv.get(run, "counter").expect("get").expect("the counter");
    assert_eq!(stored.value(), ValueRef::Int(sum as i64), "the sum of the successful deltas");
}
