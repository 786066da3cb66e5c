//! Across primitives: one transaction's KV put, event append, state cell writes and trace
//! commit at one version or not at all (the closure fails, or the commit conflicts); runs
//! are isolated in all five primitives; and `RunIndex::delete` removes every key of a run,
//! in every primitive, in one commit. Raw reads of the keyspace (`run_prefix`) check what
//! the primitives' own reads report.

#![allow(clippy::expect_used)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use inmem_engine::{CommitVersion, Database, Retention, Snapshot, Transaction};
use inmem_primitives::prelude::*;
use inmem_primitives::trace::TreeLimits;
use inmem_primitives::{
    engine_options, is_index_entry, prefix_end, run_prefix, tag_prefix, CasOutcome, ChainReport,
    Error, EventLog, KvStore, Result, RunId, RunIndex, RunQuery, RunView, ScanCursor, StateCell,
    TraceId, TraceSpec, TraceStore, TraceType, TypeTag, Value, ValueRef,
};

/// The KV keys, state cells and trace ids every populated run uses, whatever its name.
const SHARED_KEYS: [&str; 3] = ["a", "a/b", "b"];
const SHARED_CELLS: [&str; 2] = ["phase", "plan"];
const SHARED_TRACES: [&str; 2] = ["t-1", "t-2"];
/// The creation time of the first shared trace, in ms; the others follow, one ms apart.
const TRACE_TIME_MS: u64 = 1_000;

/// A database that keeps every version (so `snapshot_at` reaches any past commit), with a
/// handle on each primitive.
struct Fixture {
    db: Arc<Database>,
    kv: KvStore,
    events: EventLog,
    cells: StateCell,
    traces: TraceStore,
    runs: RunIndex,
}

impl Fixture {
    fn new() -> Fixture {
        let options = engine_options().retention(Retention::KeepAll);
        let db = Arc::new(Database::with_options(options).expect("an in-memory database"));
        Fixture {
            kv: KvStore::new(db.clone()),
            events: EventLog::new(db.clone()),
            cells: StateCell::new(db.clone()),
            traces: TraceStore::new(db.clone()),
            runs: RunIndex::new(db.clone()),
            db,
        }
    }

    /// Every key and value under `run`'s prefix, now.
    fn raw(&self, run: RunId) -> BTreeMap<Vec<u8>, Vec<u8>> {
        raw_in(&self.db.snapshot(), run)
    }

    /// Every key and value under `run`'s prefix as the snapshot at `version` reads it.
    fn raw_at(&self, run: RunId, version: CommitVersion) -> BTreeMap<Vec<u8>, Vec<u8>> {
        raw_in(&self.db.snapshot_at(version).expect("every version is kept"), run)
    }
}

/// Every key and value `snapshot` reads in `run`'s whole range, `run_prefix(run)` up to its
/// `prefix_end`: an engine scan, independent of the primitives' own reads.
fn raw_in(snapshot: &Snapshot<'_>, run: RunId) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let start = run_prefix(run).to_vec();
    let end = prefix_end(&start).map_or(Bound::Unbounded, Bound::Excluded);
    snapshot
        .range((Bound::Included(start), end))
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect()
}

fn trace_id(text: &str) -> TraceId {
    TraceId::custom(text).expect("a valid custom trace id")
}

fn str_of(value: ValueRef<'_>) -> String {
    value.as_str().expect("a string value").to_owned()
}

fn run_ids(views: &[RunView]) -> Vec<RunId> {
    views.iter().map(RunView::id).collect()
}

/// In `txn`, one write of each primitive to `run`, all named after `who`: a KV put, an
/// event append, a state cell init, a compare and swap of the shared cell "phase" (at the
/// version the transaction reads) and a set of "last", and a trace with a custom id and
/// the tag `who`. Returns the event's sequence.
fn write_four(txn: &mut Transaction<'_>, run: RunId, who: &str) -> Result<u64> {
    txn.kv(run).put(format!("key/{who}"), &Value::from(who))?;
    let seq = txn.events(run).append("step", &Value::from(who))?;
    txn.state(run).init(&format!("cell/{who}"), &Value::from(who))?;
    let phase = txn.state(run).read("phase")?.map_or(0, |view| view.version());
    let cas = txn.state(run).cas("phase", phase, &Value::from(who))?;
    assert_eq!(cas, CasOutcome::Written(phase + 1), "the transaction reads its own state");
    txn.state(run).set("last", &Value::from(who))?;
    let spec = TraceSpec::new(TraceType::Decision, who)
        .custom_id(format!("trace/{who}"))
        .tags([who, "cross"]);
    txn.traces(run).record(&spec)?;
    Ok(seq)
}

/// What a run holds before the transactions under test: the cell "phase" at version 1 and
/// one event ("setup", sequence 0).
fn seed(fx: &Fixture, run: RunId) {
    fx.cells.init(run, "phase", &Value::from("setup")).expect("init phase");
    assert_eq!(fx.events.append(run, "step", &Value::from("setup")).expect("append"), 0);
}

/// Every write of `write_four(.., who)` is visible, the event at `seq`.
fn assert_four_visible(fx: &Fixture, run: RunId, who: &str, seq: u64) {
    let value = fx.kv.get(run, format!("key/{who}")).expect("kv get").expect("the KV key");
    assert_eq!(value.value(), ValueRef::Str(who));
    let event = fx.events.read(run, seq).expect("read").expect("the event");
    assert_eq!((event.event_type(), event.payload()), ("step", ValueRef::Str(who)));
    let cell = fx.cells.read(run, &format!("cell/{who}")).expect("read").expect("the cell");
    assert_eq!((cell.version(), cell.value()), (1, ValueRef::Str(who)));
    let phase = fx.cells.read(run, "phase").expect("read").expect("phase");
    assert_eq!(phase.value(), ValueRef::Str(who), "the compare and swap");
    let last = fx.cells.read(run, "last").expect("read").expect("last");
    assert_eq!(last.value(), ValueRef::Str(who), "the set");
    let id = trace_id(&format!("trace/{who}"));
    let trace = fx.traces.get(run, &id).expect("get").expect("the trace");
    assert_eq!(trace.content(), ValueRef::Str(who));
    let tagged = fx.traces.query_by_tag(run, who, 10).expect("query by tag");
    assert_eq!(tagged.iter().map(|view| view.id().clone()).collect::<Vec<_>>(), [id]);
}

/// No write of `write_four(.., who)` is visible, nor any index entry of its trace.
fn assert_four_absent(fx: &Fixture, run: RunId, who: &str) {
    assert_eq!(fx.kv.get(run, format!("key/{who}")).expect("kv get"), None);
    assert_eq!(fx.cells.read(run, &format!("cell/{who}")).expect("read"), None);
    assert_eq!(fx.traces.get(run, &trace_id(&format!("trace/{who}"))).expect("get"), None);
    assert!(fx.traces.query_by_tag(run, who, 10).expect("query by tag").is_empty());
    let events = fx.events.read_range(run, ..).expect("read range");
    assert!(events.iter().all(|event| event.payload() != ValueRef::Str(who)), "no event");
}

#[test]
fn all_four_primitives_written_in_one_transaction_commit_at_one_version() {
    let fx = Fixture::new();
    let run = RunId::random();
    seed(&fx, run);
    let before = fx.db.visible_version();
    let raw_before = fx.raw(run);

    let committed = fx
        .db
        .transaction_typed(Default::default(), |txn| write_four(txn, run, "a"))
        .expect("commit");
    assert_eq!(committed.version.get(), before.get() + 1, "one commit");
    assert_eq!(committed.value, 1, "the event follows the seeded one");
    assert_four_visible(&fx, run, "a", 1);
    assert_eq!(fx.cells.read(run, "phase").expect("read").expect("phase").version(), 2);

    // The version just before the commit sees none of it: the run's whole range reads as
    // it did before, head record and old "phase" included.
    let previous = CommitVersion::new(committed.version.get() - 1);
    assert_eq!(fx.raw_at(run, previous), raw_before);
    assert_eq!(fx.kv.get_at(run, "key/a", previous).expect("get_at"), None);
    let at_commit = fx.kv.get_at(run, "key/a", committed.version).expect("get_at");
    assert_eq!(at_commit.expect("the key at its commit").value(), ValueRef::Str("a"));

    // ...and the commit's version holds new keys of each of the four.
    let raw_after = fx.raw_at(run, committed.version);
    assert_eq!(raw_after, fx.raw(run), "nothing else committed since");
    let new_keys: Vec<&Vec<u8>> =
        raw_after.keys().filter(|key| !raw_before.contains_key(*key)).collect();
    for tag in [TypeTag::Kv, TypeTag::Event, TypeTag::State, TypeTag::Trace] {
        let prefix = tag_prefix(run, tag);
        assert!(new_keys.iter().any(|key| key.starts_with(&prefix)), "a new {tag:?} key");
    }
}

/// A failing last step of a transaction, and the error it must surface as.
type Failure = (&'static str, fn(&mut Transaction<'_>, RunId) -> Result<()>, Error);

#[test]
fn an_error_after_writing_all_four_leaves_none_of_them() {
    let failures: [Failure; 3] = [
        (
            "init of an existing cell",
            |txn, run| txn.state(run).init("phase", &Value::Null).map(drop),
            Error::AlreadyExists { what: "state cell" },
        ),
        (
            "trace child of a missing parent",
            |txn, run| {
                let spec = TraceSpec::new(TraceType::Thought, "orphan");
                txn.traces(run).record_child(&trace_id("missing"), &spec).map(drop)
            },
            Error::ParentMissing,
        ),
        (
            "explicit error",
            |_, _| Err(Error::NotFound { what: "test abort" }),
            Error::NotFound { what: "test abort" },
        ),
    ];
    for (case, fail, expected) in failures {
        let fx = Fixture::new();
        let run = RunId::random();
        seed(&fx, run);
        let (version, raw_before) = (fx.db.visible_version(), fx.raw(run));
        let head = fx.events.head(run).expect("head").expect("the seeded event");

        let attempts = Cell::new(0);
        let outcome = fx.db.transaction_typed(Default::default(), |txn| {
            attempts.set(attempts.get() + 1);
            write_four(txn, run, "x")?;
            fail(txn, run)
        });
        assert_eq!(outcome.map(|committed| committed.value), Err(expected), "{case}");
        assert_eq!(attempts.get(), 1, "{case}: an error that is no conflict is not retried");

        assert_eq!(fx.db.visible_version(), version, "{case}: nothing committed");
        assert_eq!(fx.raw(run), raw_before, "{case}: the run's keys are untouched");
        assert_four_absent(&fx, run, "x");
        assert_eq!(fx.events.len(run).expect("len"), 1, "{case}");
        let head_after = fx.events.head(run).expect("head").expect("the seeded event");
        assert_eq!((head_after.seq(), head_after.hash()), (0, head.hash()), "{case}");
        let phase = fx.cells.read(run, "phase").expect("read").expect("phase");
        assert_eq!((phase.version(), phase.value()), (1, ValueRef::Str("setup")), "{case}");
        assert_eq!(fx.cells.list(run).expect("list"), ["phase"], "{case}");
        assert!(fx.kv.keys(run, "", 100).expect("keys").is_empty(), "{case}");
        let by_type = fx.traces.query_by_type(run, &TraceType::Decision, 100).expect("query");
        assert!(by_type.is_empty(), "{case}");
        assert!(fx.traces.query_by_tag(run, "cross", 100).expect("query").is_empty(), "{case}");
        assert!(fx.traces.query_by_time(run, .., 100).expect("query").is_empty(), "{case}");
    }
}

/// The log of `run` is `payloads`, in order, with dense sequences from 0 and a chain that
/// verifies up to its head.
fn assert_log_is(fx: &Fixture, run: RunId, payloads: &[&str]) {
    let events = fx.events.read_range(run, ..).expect("read range");
    let seqs: Vec<u64> = events.iter().map(|event| event.seq()).collect();
    let expected_seqs: Vec<u64> = (0..payloads.len() as u64).collect();
    assert_eq!(seqs, expected_seqs, "dense sequences from 0");
    let read: Vec<String> = events.iter().map(|event| str_of(event.payload())).collect();
    assert_eq!(read, payloads);
    assert_eq!(fx.events.len(run).expect("len"), payloads.len() as u64);
    let head = fx.events.head(run).expect("head").map(|event| *event.hash());
    let len = payloads.len() as u64;
    assert_eq!(
        fx.events.verify_chain(run).expect("verify"),
        ChainReport::Verified { len, head_hash: head }
    );
}

#[test]
fn of_two_transactions_writing_one_cell_the_second_to_commit_conflicts_and_leaves_nothing() {
    let fx = Fixture::new();
    let run = RunId::random();
    seed(&fx, run);
    let mut a = fx.db.begin();
    let mut b = fx.db.begin();
    assert_eq!(write_four(&mut a, run, "a").expect("A writes"), 1);
    assert_eq!(write_four(&mut b, run, "b").expect("B writes"), 1, "B read the same head");
    assert!(b.kv(run).get("key/b").expect("get").is_some(), "B sees its own writes");

    let committed = a.commit().expect("A commits first");
    let error = b.commit().expect_err("B wrote what A wrote since B began");
    assert!(error.is_conflict(), "a conflict, not {error:?}");
    assert_eq!(fx.db.visible_version(), committed, "B committed nothing");

    assert_four_visible(&fx, run, "a", 1);
    assert_four_absent(&fx, run, "b");
    let phase = fx.cells.read(run, "phase").expect("read").expect("phase");
    assert_eq!((phase.version(), phase.value()), (2, ValueRef::Str("a")), "one cas won");
    let cells = fx.cells.list(run).expect("list");
    assert_eq!(cells, ["cell/a", "last", "phase"]);
    assert_eq!(fx.traces.query_by_tag(run, "cross", 10).expect("query").len(), 1);
    assert_log_is(&fx, run, &["setup", "a"]);

    // The next append takes the next sequence: no gap where B's event would have been.
    assert_eq!(fx.events.append(run, "step", &Value::from("c")).expect("append"), 2);
    assert_log_is(&fx, run, &["setup", "a", "c"]);
}

#[test]
fn a_conflict_on_one_kv_key_discards_the_losers_writes_to_every_other_primitive() {
    let fx = Fixture::new();
    let run = RunId::random();
    seed(&fx, run);
    let raw_before = fx.raw(run);
    let mut a = fx.db.begin();
    let mut b = fx.db.begin();
    assert_eq!(a.kv(run).incr("counter", 1).expect("A increments"), 1);
    // B overlaps A on "counter" only: its event, cells and trace touch nothing A wrote.
    assert_eq!(b.kv(run).incr("counter", 10).expect("B increments"), 10);
    write_four(&mut b, run, "b").expect("B writes");

    a.commit().expect("A commits first");
    let error = b.commit().expect_err("B's counter changed since B began");
    let counter_key = [&tag_prefix(run, TypeTag::Kv)[..], b"counter"].concat();
    assert!(
        matches!(&error, inmem_engine::Error::Conflict { key } if key.as_slice() == counter_key),
        "a conflict on the counter, not {error:?}"
    );

    let counter = fx.kv.get(run, "counter").expect("get").expect("A's counter");
    assert_eq!(counter.value(), ValueRef::Int(1));
    assert_four_absent(&fx, run, "b");
    let phase = fx.cells.read(run, "phase").expect("read").expect("phase");
    assert_eq!((phase.version(), phase.value()), (1, ValueRef::Str("setup")));
    assert_eq!(fx.cells.list(run).expect("list"), ["phase"]);
    assert_log_is(&fx, run, &["setup"]);
    let mut raw_after = fx.raw(run);
    raw_after.remove(&counter_key).expect("A's counter is stored");
    assert_eq!(raw_after, raw_before, "A added the counter, B nothing");
}

/// Writes the shared names in `run` with values naming `who`, one name of its own per
/// primitive (`only/<who>`), `events` events, and the run's record tagged "shared" and
/// `who`.
fn populate(fx: &Fixture, run: RunId, who: &str, events: u64) {
    fx.runs.create_with_id(run, None, ["shared", who], &Value::from(who)).expect("create run");
    let own = format!("only/{who}");
    for key in SHARED_KEYS.into_iter().chain([own.as_str()]) {
        fx.kv.put(run, key, &Value::from(format!("{who}:{key}"))).expect("put");
    }
    for name in SHARED_CELLS.into_iter().chain([own.as_str()]) {
        assert_eq!(fx.cells.init(run, name, &Value::from(who)).expect("init"), 1);
    }
    for seq in 0..events {
        let payload = Value::from(format!("{who}:{seq}"));
        assert_eq!(fx.events.append(run, "step", &payload).expect("append"), seq);
    }
    for (at, id) in (TRACE_TIME_MS..).zip(SHARED_TRACES) {
        let spec = TraceSpec::new(TraceType::Thought, who)
            .custom_id(id)
            .tags(["shared", who])
            .created_at_ms(at);
        fx.traces.record(run, &spec).expect("record");
    }
}

/// `run`'s keys are exactly the shared ones and its own, with its own values, however
/// they are read.
fn assert_kv_own(fx: &Fixture, run: RunId, who: &str, other: &str) {
    let own = format!("only/{who}");
    let mut expected: Vec<String> =
        SHARED_KEYS.iter().map(|key| key.to_string()).chain([own]).collect();
    expected.sort();
    for key in &expected {
        let value = fx.kv.get(run, key).expect("get").expect("a key of the run");
        assert_eq!(str_of(value.value()), format!("{who}:{key}"));
    }
    assert_eq!(fx.kv.get(run, format!("only/{other}")).expect("get"), None);
    assert!(!fx.kv.exists(run, format!("only/{other}")).expect("exists"));
    let keys: Vec<String> = fx
        .kv
        .keys(run, "", 100)
        .expect("keys")
        .iter()
        .map(|key| String::from_utf8(key.as_bytes().to_vec()).expect("UTF-8 keys"))
        .collect();
    assert_eq!(keys, expected, "keys");
    let listed: Vec<(String, String)> = fx
        .kv
        .list(run, "", 100)
        .expect("list")
        .iter()
        .map(|entry| {
            let key = String::from_utf8(entry.key.as_bytes().to_vec()).expect("UTF-8 keys");
            (key, str_of(entry.value.value()))
        })
        .collect();
    let expected_list: Vec<(String, String)> =
        expected.iter().map(|key| (key.clone(), format!("{who}:{key}"))).collect();
    assert_eq!(listed, expected_list, "list");
    let mut scanned = Vec::new();
    let mut cursor = ScanCursor::start();
    loop {
        let page = fx.kv.scan(run, "", 1, &cursor).expect("scan");
        scanned.extend(page.entries.iter().map(|entry| entry.key.as_bytes().to_vec()));
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let expected_bytes: Vec<Vec<u8>> = expected.iter().map(|key| key.clone().into()).collect();
    assert_eq!(scanned, expected_bytes, "a scan page by page");
}

/// `run`'s log holds its own `events` events only.
fn assert_events_own(fx: &Fixture, run: RunId, who: &str, events: u64) {
    let payloads: Vec<String> = (0..events).map(|seq| format!("{who}:{seq}")).collect();
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    assert_log_is(fx, run, &payloads);
    let by_type = fx.events.read_by_type(run, "step").expect("read by type");
    let typed: Vec<String> = by_type.iter().map(|event| str_of(event.payload())).collect();
    assert_eq!(typed, payloads, "read by type");
    let iterated: Vec<String> =
        fx.events.iter(run).map(|event| str_of(event.expect("iterate").payload())).collect();
    assert_eq!(iterated, payloads, "iteration");
    assert_eq!(fx.events.read(run, events).expect("read"), None, "nothing past its own");
}

/// `run`'s cells are exactly the shared ones and its own, each holding `who`.
fn assert_cells_own(fx: &Fixture, run: RunId, who: &str, other: &str) {
    let own = format!("only/{who}");
    let mut expected: Vec<String> =
        SHARED_CELLS.iter().map(|name| name.to_string()).chain([own]).collect();
    expected.sort();
    assert_eq!(fx.cells.list(run).expect("list"), expected);
    for (name, view) in fx.cells.entries(run).expect("entries") {
        assert_eq!((view.version(), view.value()), (1, ValueRef::Str(who)), "cell {name}");
    }
    assert_eq!(fx.cells.read(run, &format!("only/{other}")).expect("read"), None);
}

/// `run`'s traces are the shared ids with `who`'s content, by every query.
fn assert_traces_own(fx: &Fixture, run: RunId, who: &str, other: &str) {
    let expected: Vec<TraceId> = SHARED_TRACES.iter().map(|id| trace_id(id)).collect();
    let check = |views: Vec<inmem_primitives::TraceView>, how: &str| {
        let ids: Vec<TraceId> = views.iter().map(|view| view.id().clone()).collect();
        assert_eq!(ids, expected, "{how}");
        assert!(views.iter().all(|view| view.content() == ValueRef::Str(who)), "{how}");
    };
    for id in &expected {
        let trace = fx.traces.get(run, id).expect("get").expect("a trace of the run");
        assert_eq!(trace.content(), ValueRef::Str(who));
    }
    check(fx.traces.query_by_type(run, &TraceType::Thought, 100).expect("query"), "by type");
    check(fx.traces.query_by_tag(run, "shared", 100).expect("query"), "by shared tag");
    check(fx.traces.query_by_tag(run, who, 100).expect("query"), "by own tag");
    check(fx.traces.query_by_time(run, .., 100).expect("query"), "by time");
    let first = fx.traces.query_by_time(run, TRACE_TIME_MS..=TRACE_TIME_MS, 100).expect("query");
    assert_eq!(first.len(), 1, "one trace at the first time, the run's own");
    assert!(fx.traces.query_by_tag(run, other, 100).expect("query").is_empty());
}

/// Every primitive of `run` holds its own data and none of `other`'s.
fn assert_run_sees_only_its_own(fx: &Fixture, run: RunId, who: &str, other: &str, events: u64) {
    assert_kv_own(fx, run, who, other);
    assert_events_own(fx, run, who, events);
    assert_cells_own(fx, run, who, other);
    assert_traces_own(fx, run, who, other);
    let view = fx.runs.get(run).expect("get run").expect("the run's record");
    assert_eq!(view.metadata(), ValueRef::Str(who));
    let mut tags = vec!["shared", who];
    tags.sort_unstable();
    assert_eq!(view.tags().collect::<Vec<_>>(), tags);
    let own = fx.runs.query(&RunQuery::new().tag(who), 10).expect("query");
    assert_eq!(run_ids(&own), [run], "the run's own tag names it only");
}

#[test]
fn two_runs_with_the_same_names_see_only_their_own_data_in_every_primitive() {
    let fx = Fixture::new();
    let (one, two) = (RunId::random(), RunId::random());
    populate(&fx, one, "one", 3);
    populate(&fx, two, "two", 2);

    assert_run_sees_only_its_own(&fx, one, "one", "two", 3);
    assert_run_sees_only_its_own(&fx, two, "two", "one", 2);
    // The run index is across runs: a tag both carry finds both (in creation order, ties
    // by run id: created in the same ms, they may come in either order).
    let shared = fx.runs.query(&RunQuery::new().tag("shared"), 10).expect("query");
    let mut found = run_ids(&shared);
    found.sort_unstable();
    let mut both = vec![one, two];
    both.sort_unstable();
    assert_eq!(found, both);
    let child_query = fx.runs.query(&RunQuery::new().parent(one), 10).expect("query");
    assert!(child_query.is_empty());

    // In the raw keyspace, the runs' ranges are disjoint and each holds only its own run's
    // keys: the same names under another run id.
    let (raw_one, raw_two) = (fx.raw(one), fx.raw(two));
    assert!(raw_one.keys().all(|key| key.starts_with(&run_prefix(one))));
    assert!(raw_two.keys().all(|key| key.starts_with(&run_prefix(two))));
    let suffixes = |raw: &BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<Vec<u8>> {
        raw.keys().map(|key| key[RunId::LEN..].to_vec()).collect()
    };
    let (suffixes_one, suffixes_two) = (suffixes(&raw_one), suffixes(&raw_two));
    let common = suffixes_one.iter().filter(|suffix| suffixes_two.contains(suffix)).count();
    assert!(common >= SHARED_KEYS.len() + SHARED_CELLS.len(), "same names, other run");
}

/// Every primitive of `run` is empty, as each reads it.
fn assert_run_empty(fx: &Fixture, run: RunId) {
    for key in SHARED_KEYS.into_iter().chain(["only/doomed", "key"]) {
        assert_eq!(fx.kv.get(run, key).expect("get"), None, "kv {key}");
    }
    assert!(fx.kv.keys(run, "", 100).expect("keys").is_empty());
    assert!(fx.kv.list(run, "", 100).expect("list").is_empty());
    let page = fx.kv.scan(run, "", 100, &ScanCursor::start()).expect("scan");
    assert!(page.entries.is_empty() && page.next.is_none());

    assert_eq!(fx.events.len(run).expect("len"), 0);
    assert!(fx.events.is_empty(run).expect("is_empty"));
    assert_eq!(fx.events.head(run).expect("head"), None);
    assert_eq!(fx.events.read(run, 0).expect("read"), None);
    assert!(fx.events.read_range(run, ..).expect("read range").is_empty());
    assert!(fx.events.read_by_type(run, "step").expect("read by type").is_empty());
    assert_eq!(fx.events.iter(run).count(), 0);
    let empty = ChainReport::Verified { len: 0, head_hash: None };
    assert_eq!(fx.events.verify_chain(run).expect("verify"), empty);

    assert!(fx.cells.list(run).expect("list").is_empty());
    assert!(fx.cells.entries(run).expect("entries").is_empty());
    for name in SHARED_CELLS {
        assert_eq!(fx.cells.read(run, name).expect("read"), None, "cell {name}");
    }

    for id in SHARED_TRACES.into_iter().chain(["child"]) {
        assert_eq!(fx.traces.get(run, &trace_id(id)).expect("get"), None, "trace {id}");
    }
    for trace_type in [TraceType::Thought, TraceType::Query] {
        assert!(fx.traces.query_by_type(run, &trace_type, 100).expect("query").is_empty());
    }
    for tag in ["shared", "doomed", "child"] {
        assert!(fx.traces.query_by_tag(run, tag, 100).expect("query").is_empty(), "{tag}");
    }
    assert!(fx.traces.query_by_time(run, .., 100).expect("query").is_empty());
    let root = trace_id(SHARED_TRACES[0]);
    assert_eq!(fx.traces.children(run, &root, 100), Err(Error::NotFound { what: "trace" }));
    assert!(fx.traces.tree(run, &root, TreeLimits::default()).expect("tree").is_none());
    assert_eq!(fx.runs.get(run).expect("get run"), None);
}

#[test]
fn run_index_delete_empties_every_primitive_of_the_run_and_its_child_in_one_commit() {
    let fx = Fixture::new();
    let (doomed, kept) = (RunId::random(), RunId::random());
    populate(&fx, doomed, "doomed", 3);
    populate(&fx, kept, "kept", 2);
    let child = fx.runs.create(Some(doomed), ["child"], &Value::Null).expect("create child");
    fx.kv.put(child, "key", &Value::from("child")).expect("put");
    fx.events.append(child, "step", &Value::from("child")).expect("append");
    fx.cells.init(child, "phase", &Value::from("child")).expect("init");
    let spec = TraceSpec::new(TraceType::Query, "child").custom_id("child").tag("child");
    fx.traces.record_child(doomed, &trace_id(SHARED_TRACES[0]), &spec).expect("record");
    fx.traces.record(child, &spec).expect("record");

    let raw_doomed = fx.raw(doomed);
    for tag in [TypeTag::Kv, TypeTag::Event, TypeTag::State, TypeTag::Trace, TypeTag::Run] {
        let prefix = tag_prefix(doomed, tag);
        assert!(raw_doomed.keys().any(|key| key.starts_with(&prefix)), "{tag:?} keys");
    }
    let (raw_child, raw_kept) = (fx.raw(child), fx.raw(kept));
    let before = fx.db.visible_version();
    let pinned = fx.db.snapshot();

    assert_eq!(fx.runs.delete(doomed).expect("delete"), [doomed, child]);
    let deleted_at = fx.db.visible_version();
    assert_eq!(deleted_at.get(), before.get() + 1, "the delete is one commit");

    // An engine scan of each deleted run's whole range finds nothing; the kept run's range
    // is as it was, byte for byte.
    assert_eq!(fx.raw(doomed).len(), 0, "keys left in the deleted run");
    assert_eq!(fx.raw(child).len(), 0, "keys left in the deleted child");
    assert_eq!(fx.raw(kept), raw_kept);
    assert_run_empty(&fx, doomed);
    assert_run_empty(&fx, child);
    assert_run_sees_only_its_own(&fx, kept, "kept", "doomed", 2);
    let shared = fx.runs.query(&RunQuery::new().tag("shared"), 10).expect("query");
    assert_eq!(run_ids(&shared), [kept]);
    assert!(fx.runs.query(&RunQuery::new().tag("child"), 10).expect("query").is_empty());
    assert_eq!(run_ids(&fx.runs.list(10).expect("list")), [kept]);
    assert_eq!(fx.runs.children(doomed), Err(Error::NotFound { what: "run" }));

    // Before the delete's commit, everything is still there: for the snapshot opened
    // before it, and at the version just before it.
    assert_eq!(raw_in(&pinned, doomed), raw_doomed);
    assert_eq!(raw_in(&pinned, child), raw_child);
    assert_eq!(fx.raw_at(doomed, before), raw_doomed);
    assert_eq!(fx.raw_at(child, before), raw_child);
    let old = fx.kv.get_at(doomed, "a", before).expect("get_at").expect("the old value");
    assert_eq!(old.value(), ValueRef::Str("doomed:a"));
}

/// Every key the five primitives wrote, in the run's range and in the run index's: each
/// is a secondary-index entry (an empty value, found by scans) exactly when
/// `is_index_entry` says so, which is what the engine is told (`engine_options`) to keep
/// out of its hash index. The index entries read back through queries (scans of the ordered
/// index), and the records through point reads.
#[test]
fn the_keys_kept_out_of_the_hash_index_are_the_index_entries_and_only_those() {
    let fx = Fixture::new();
    let run = fx.runs.create(None, ["nightly"], &Value::from("meta")).expect("create");
    let child = fx.runs.create(Some(run), ["child"], &Value::Null).expect("create child");
    seed(&fx, run);
    fx.db.transaction_typed(Default::default(), |txn| write_four(txn, run, "ada")).expect("four");
    let parent = trace_id("trace/ada");
    let spec = TraceSpec::new(TraceType::Thought, "why").custom_id("trace/why");
    fx.traces.record_child(run, &parent, &spec).expect("record child");
    fx.runs.update_status(child, inmem_primitives::RunStatus::Paused).expect("pause");

    let mut keys = raw_in(&fx.db.snapshot(), run);
    keys.extend(raw_in(&fx.db.snapshot(), inmem_primitives::run_index::SYSTEM_RUN));
    let entries: Vec<&Vec<u8>> = keys.keys().filter(|key| is_index_entry(key)).collect();
    assert!(entries.len() >= 10, "the events', traces' and runs' index entries: {entries:?}");
    for (key, value) in &keys {
        assert_eq!(is_index_entry(key), value.is_empty(), "key {key:02x?}");
    }

    assert_eq!(fx.events.read_by_type(run, "step").expect("by type").len(), 2);
    assert_eq!(fx.traces.query_by_tag(run, "cross", 10).expect("by tag").len(), 1);
    assert_eq!(fx.traces.children(run, &parent, 10).expect("children").len(), 1);
    let paused = RunQuery::default().status(inmem_primitives::RunStatus::Paused);
    assert_eq!(run_ids(&fx.runs.query(&paused, 10).expect("query")), [child]);
    assert_four_visible(&fx, run, "ada", 1);
}
