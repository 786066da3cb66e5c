//! Deleting runs far larger than one transaction may write: 600,000 events with KV, state
//! and trace keys beside them, deleted completely in one small commit and purged in bounded
//! steps; and the id free to use again at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use inmem_engine::{Database, Options};
use inmem_primitives::event_log::{EventLog, EventLogExt};
use inmem_primitives::kv::{KvExt, KvStore};
use inmem_primitives::run_index::RunIndex;
use inmem_primitives::state_cell::StateCellExt;
use inmem_primitives::trace::{TraceExt, TraceSpec, TraceType};
use inmem_primitives::{engine_options, run_prefix, RunId, Value};

const EVENTS: u64 = 600_000;
const PER_TRANSACTION: u64 = 10_000;

fn quiet_db() -> Arc<Database> {
    let options: Options = engine_options().maintenance_interval(Duration::from_secs(3600));
    Arc::new(Database::with_options(options).unwrap())
}

/// Fills `run` with `events` events, and a thousand KV keys, state cells and traces.
fn fill(db: &Database, run: RunId, events: u64) {
    let payload = Value::from("a payload of some forty bytes, as events go");
    for start in (0..events).step_by(PER_TRANSACTION as usize) {
        db.transaction_typed(Default::default(), |txn| {
            let mut log = txn.events(run);
            for _ in start..(start + PER_TRANSACTION).min(events) {
                log.append("step", &payload)?;
            }
            Ok::<_, inmem_primitives::Error>(())
        })
        .unwrap();
    }
    db.transaction_typed(Default::default(), |txn| {
        for i in 0..1000i64 {
            txn.kv(run).put(format!("key-{i}"), &Value::from(i))?;
            txn.state(run).set(&format!("cell-{i}"), &Value::from(i))?;
            let spec = TraceSpec::new(TraceType::Thought, format!("thought {i}")).tag("t");
            txn.traces(run).record(&spec)?;
        }
        Ok::<_, inmem_primitives::Error>(())
    })
    .unwrap();
}

fn raw_keys_of(db: &Database, run: RunId) -> usize {
    db.snapshot().prefix(run_prefix(run)).count()
}

#[test]
fn a_run_of_600_000_events_with_kv_state_and_traces_is_deleted_completely() {
    let db = quiet_db();
    let runs = RunIndex::new(Arc::clone(&db));
    let bystander = runs.create(None, ["kept"], &Value::Null).unwrap();
    fill(&db, bystander, 100);
    let keys_without_the_run = db.stats().keys;
    let bystander_keys = raw_keys_of(&db, bystander);

    let run = runs.create(None, ["huge"], &Value::from("600k events")).unwrap();
    let child = runs.create(Some(run), ["huge"], &Value::Null).unwrap();
    fill(&db, run, EVENTS);
    fill(&db, child, 1000);
    assert_eq!(EventLog::new(Arc::clone(&db)).len(run).unwrap(), EVENTS);
    assert!(raw_keys_of(&db, run) > 2 * EVENTS as usize);

    assert_eq!(runs.delete(run).unwrap(), [run, child]);

    for doomed in [run, child] {
        assert_eq!(raw_keys_of(&db, doomed), 0, "a raw engine scan of the prefix is empty");
        assert_eq!(runs.get(doomed).unwrap(), None);
    }
    assert_eq!(EventLog::new(Arc::clone(&db)).len(run).unwrap(), 0);
    assert_eq!(KvStore::new(Arc::clone(&db)).get(run, "key-7").unwrap(), None);
    assert_eq!(
        runs.list(10).unwrap().iter().map(|view| view.id()).collect::<Vec<_>>(),
        [bystander]
    );
    let mut in_progress = runs.deletes_in_progress();
    in_progress.sort();
    let mut doomed = [run, child];
    doomed.sort();
    assert_eq!(in_progress, doomed);

    // The purge: bounded steps, each its own commit, until the engine holds none of it.
    let mut steps = 0;
    while !runs.deletes_in_progress().is_empty() {
        let purged = db.purge_range_deletes(1);
        assert!(purged <= inmem_engine::PURGE_KEYS_PER_STEP as u64, "a step is bounded");
        db.collect_garbage();
        steps += 1;
        assert!(steps < 10_000, "the purge never finished: {:?}", db.range_deletes());
    }
    assert_eq!(db.stats().keys, keys_without_the_run, "every key of both runs is freed");
    assert_eq!(raw_keys_of(&db, bystander), bystander_keys, "another run keeps every key");
    assert_eq!(EventLog::new(Arc::clone(&db)).len(bystander).unwrap(), 100);
}

#[test]
fn a_deleted_runs_id_can_be_created_again_at_once_and_sees_none_of_the_old_keys() {
    let db = quiet_db();
    let runs = RunIndex::new(Arc::clone(&db));
    let run = runs.create(None, ["first"], &Value::Null).unwrap();
    fill(&db, run, 5000);
    runs.delete(run).unwrap();
    assert_eq!(runs.deletes_in_progress(), [run], "not purged yet");

    runs.create_with_id(run, None, ["second"], &Value::Null).unwrap();
    let view = runs.get(run).unwrap().expect("created again");
    assert_eq!(view.tags().collect::<Vec<_>>(), ["second"]);
    let events = EventLog::new(Arc::clone(&db));
    assert_eq!(events.len(run).unwrap(), 0, "the old events stay deleted");
    assert_eq!(events.append(run, "fresh", &Value::Null).unwrap(), 0);
    while !runs.deletes_in_progress().is_empty() {
        db.purge_range_deletes(usize::MAX);
        db.collect_garbage();
    }
    assert_eq!(events.len(run).unwrap(), 1, "the purge leaves the new run's keys alone");
    assert!(runs.get(run).unwrap().is_some());
}

#[test]
fn a_large_delete_finishes_after_a_reopen_at_any_point_of_its_purge() {
    for steps_before_closing in [0, 5] {
        let dir = tempfile::tempdir().unwrap();
        let options = engine_options().maintenance_interval(Duration::from_secs(3600));
        let db = Arc::new(Database::open(dir.path(), options.clone()).unwrap());
        let runs = RunIndex::new(Arc::clone(&db));
        let run = runs.create(None, ["big"], &Value::Null).unwrap();
        fill(&db, run, 30_000);
        runs.delete(run).unwrap();
        db.purge_range_deletes(steps_before_closing);
        drop(runs);
        drop(db);

        let db = Arc::new(Database::open(dir.path(), options).unwrap());
        let runs = RunIndex::new(Arc::clone(&db));
        assert_eq!(raw_keys_of(&db, run), 0);
        assert_eq!(runs.get(run).unwrap(), None);
        assert_eq!(runs.deletes_in_progress(), [run], "the purge resumes after the open");
        while !runs.deletes_in_progress().is_empty() {
            db.purge_range_deletes(usize::MAX);
            db.collect_garbage();
        }
        assert_eq!(db.stats().keys, 0);
    }
}
