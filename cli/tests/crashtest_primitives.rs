//! The check `inmem crashtest --workload primitives` relies on (its CI run is in
//! `cli/tests/crashtest.rs`), shown to catch each kind of damage: a lost step, an event
//! without the rest of its step, a modified event, a missing trace index entry, a counter
//! write of its own, and a task whose acknowledged status is gone.

#![allow(clippy::expect_used)]

use std::sync::Arc;

use inmem::primitives::run_index::RunIndex;
use inmem::primitives::state_cell::StateCell;
use inmem::primitives::trace::{TraceId, TraceStore};
use inmem::primitives::{EventLog, KeyBuf, TypeTag, Value};
use inmem::Database;
use inmem_cli::harness::Violations;
use inmem_cli::primitives_harness::{
    check, trace_name, txn_number, writer_run, StepAck, Writer, COUNTER, EVENT_TYPE,
};

const SEED: u64 = 9;
const WRITERS: u64 = 2;
/// Steps per writer: past three tasks (created at 0, 8, 16, finished at 3, 11, 19) and two
/// pauses (at 5 and 15), and the next task created but not finished.
const STEPS: u64 = 26;

/// A database with `STEPS` steps of each of `WRITERS` writers of cycle 0, and their acks.
fn workload() -> (Arc<Database>, Vec<StepAck>) {
    let db = Arc::new(Database::in_memory().expect("an in-memory database"));
    let mut acks = Vec::new();
    for writer in 0..WRITERS {
        let mut steps = Writer::start(&db, SEED, 0, writer).expect("starts");
        for _ in 0..STEPS {
            acks.push(steps.step(&db).expect("commits").expect("below the step limit"));
        }
    }
    (db, acks)
}

fn checked(db: &Arc<Database>, acks: &[StepAck]) -> Violations {
    check(db, SEED, 1, WRITERS, acks)
}

#[test]
fn a_whole_workload_passes_the_check() {
    let (db, acks) = workload();
    assert_eq!(acks.len() as u64, WRITERS * STEPS);
    let found = checked(&db, &acks);
    assert_eq!((found.lost, found.partial), (0, 0), "{:?}", found.first);
    // A run that never started (writer 2 of this cycle) is not a violation either.
    let found = check(&db, SEED, 1, WRITERS + 1, &acks);
    assert_eq!((found.lost, found.partial), (0, 0), "{:?}", found.first);
}

#[test]
fn an_acknowledged_step_that_is_not_there_counts_as_lost() {
    let (db, mut acks) = workload();
    let mut phantom = acks.last().expect("acks").clone();
    phantom.txn = txn_number(0, WRITERS - 1, STEPS);
    phantom.seq = STEPS;
    phantom.state_version = STEPS + 2;
    phantom.trace = trace_name(STEPS);
    phantom.task = None;
    acks.push(phantom);
    let found = checked(&db, &acks);
    assert_eq!((found.lost, found.partial), (1, 0), "{:?}", found.first);
    assert!(found.first.is_some_and(|first| first.contains("is missing")));
}

#[test]
fn an_acknowledged_step_at_another_version_counts_as_lost() {
    let (db, mut acks) = workload();
    acks[3].version += 1;
    let found = checked(&db, &acks);
    assert_eq!((found.lost, found.partial), (1, 0), "{:?}", found.first);
}

#[test]
fn an_event_without_the_rest_of_its_step_counts_as_partial() {
    let (db, acks) = workload();
    let run = writer_run(SEED, 0, 0);
    let txn = i64::try_from(txn_number(0, 0, STEPS)).expect("fits");
    // The next step's event, with the right payload, but alone in its transaction.
    EventLog::new(db.clone()).append(run, EVENT_TYPE, &Value::from(txn)).expect("appends");
    let found = checked(&db, &acks);
    assert_eq!(found.lost, 0, "{:?}", found.first);
    // Its KV key, its counter write and its trace (three indices of it, too) are missing.
    assert!(found.partial >= 3, "{found:?}");
}

#[test]
fn a_modified_event_breaks_the_chain_and_counts_as_partial() {
    let (db, acks) = workload();
    let run = writer_run(SEED, 0, 1);
    // Event 7's key as event_log.rs lays it out; its timestamp (bytes 8..16) moved by 1 ms.
    let key = KeyBuf::new(run, TypeTag::Event).push_u8(0x01).push_u64(7).finish();
    let mut stored = db.get(&key).expect("reads").expect("event 7 exists").to_vec();
    stored[8] ^= 1;
    db.put(&key, &stored).expect("writes");
    let found = checked(&db, &acks);
    assert!(found.partial >= 1, "{found:?}");
    assert!(found.first.is_some_and(|first| first.contains("does not verify")));
}

#[test]
fn a_trace_missing_from_an_index_counts_as_partial() {
    let (db, acks) = workload();
    let run = writer_run(SEED, 0, 0);
    let id = TraceId::custom(&trace_name(5)).expect("a custom id");
    let view = TraceStore::new(db.clone()).get(run, &id).expect("reads").expect("recorded");
    // Its by-tag entry for "step", as trace.rs lays it out.
    let entry = KeyBuf::new(run, TypeTag::Trace)
        .push_u8(0x02)
        .push_component(b"step")
        .push_u64(view.created_at_ms())
        .push_bytes(&id.key_bytes())
        .finish();
    assert!(db.get(&entry).expect("reads").is_some(), "the entry is where trace.rs puts it");
    db.delete(&entry).expect("deletes");
    let found = checked(&db, &acks);
    assert_eq!(found.lost, 0, "{:?}", found.first);
    assert!(found.partial >= 1, "{found:?}");
    assert!(found.first.is_some_and(|first| first.contains("tag step index")));
}

#[test]
fn a_counter_write_of_its_own_counts_as_partial() {
    let (db, acks) = workload();
    let run = writer_run(SEED, 0, 1);
    StateCell::new(db.clone()).set(run, COUNTER, &Value::from(27)).expect("writes");
    let found = checked(&db, &acks);
    assert!(found.partial >= 1, "{found:?}");
    assert!(found.first.is_some_and(|first| first.contains("counter")));
}

#[test]
fn a_task_acknowledged_finished_that_is_not_counts_as_lost() {
    let (db, acks) = workload();
    let (task, status) = acks
        .iter()
        .find_map(|ack| ack.task.filter(|(_, status)| status.is_finished()))
        .expect("a task acknowledged as finished");
    RunIndex::new(db.clone()).archive(task).expect("archives");
    let found = checked(&db, &acks);
    assert!(found.lost >= 1, "{found:?}, the task was acknowledged {status}");
    assert!(found.partial >= 1, "the run index disagrees with the steps too: {found:?}");
}
