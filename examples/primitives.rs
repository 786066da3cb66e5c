//! The primitives: a run with a key-value store, an event log, a state cell and a trace,
//! written together in one transaction, then deleted as a whole.
//!
//! Run with `cargo run --example primitives`.

use std::sync::Arc;

use inmem::primitives::prelude::*;
use inmem::primitives::{
    engine_options, CasOutcome, EventLog, KvStore, RunIndex, StateCell, TraceSpec, TraceStore,
    TraceType, Value,
};
use inmem::Database;

fn main() -> Result<(), inmem::primitives::Error> {
    // The primitives' options keep their secondary-index entries out of the hash index.
    let db = Arc::new(Database::with_options(engine_options())?);
    let runs = RunIndex::new(Arc::clone(&db));
    let kv = KvStore::new(Arc::clone(&db));
    let events = EventLog::new(Arc::clone(&db));
    let state = StateCell::new(Arc::clone(&db));
    let traces = TraceStore::new(Arc::clone(&db));

    // Every key of a primitive starts with the run's id: runs never see each other's data.
    let run = runs.create(None, ["example"], &Value::from("a demo run"))?;
    println!("run {run}");

    kv.put(run, "model", &Value::from("small"))?;
    println!("kv: steps = {}", kv.incr(run, "steps", 1)?);

    events.append(run, "started", &Value::Null)?;
    events.append(run, "step", &Value::from(1))?;
    println!(
        "events: {} appended, chain verified: {}",
        events.len(run)?,
        events.verify_chain(run)?.is_verified()
    );

    state.init(run, "phase", &Value::from("plan"))?;
    let moved = state.cas(run, "phase", 1, &Value::from("act"))?;
    println!("state: cas at version 1 -> {moved:?}");
    assert_eq!(moved, CasOutcome::Written(2));

    let call = traces.record(run, &TraceSpec::new(TraceType::ToolCall, "search").tag("web"))?;
    traces.record_child(run, &call, &TraceSpec::new(TraceType::Thought, "two hits"))?;
    println!(
        "traces: {} tagged web, {} children of the call",
        traces.query_by_tag(run, "web", 10)?.len(),
        traces.children(run, &call, 10)?.len()
    );

    // Any mix of primitives in one transaction: all of it commits, or none of it.
    db.transaction_typed(Default::default(), |txn| {
        txn.kv(run).put("result", &Value::from(42))?;
        txn.events(run).append("finished", &Value::from(42))?;
        txn.state(run).set("phase", &Value::from("done"))?;
        txn.runs().complete(run)
    })?;
    let status = runs.get(run)?.map(|record| record.status());
    println!("after the transaction: status {status:?}, {} events", events.len(run)?);

    // Deleting the run removes every key of it, in every primitive, in one transaction.
    runs.delete(run)?;
    println!(
        "after delete: kv model present: {}, events: {}",
        kv.get(run, "model")?.is_some(),
        events.len(run)?
    );
    Ok(())
}
