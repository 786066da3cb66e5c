//! TraceStore: every operation and its errors, run isolation, and the invariant that the
//! index entries under a run's Trace tag are exactly those of its traces (checked against
//! the raw keyspace, with keys built from the layout documented in `trace.rs`).

#![expect(clippy::expect_used, reason = "the helpers fail the test on a broken setup")]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use inmem_engine::{Database, Limit, Limits};
use inmem_primitives::trace::{
    TraceExt, TraceId, TraceSpec, TraceStore, TraceTree, TraceType, TraceView, TreeLimits,
    QUERY_LIMIT_MAX, TAGS_MAX, TAG_LEN_MAX, TREE_DEPTH_MAX,
};
use inmem_primitives::{
    engine_options, tag_prefix, Error, KeyBuf, RunId, TypeTag, Value, ValueRef,
};

fn store() -> (Arc<Database>, TraceStore) {
    // With the primitives' options: the index entries live in the ordered index alone.
    let db = Arc::new(Database::with_options(engine_options()).expect("an in-memory database"));
    (db.clone(), TraceStore::new(db))
}

fn spec(trace_type: TraceType, content: &str) -> TraceSpec {
    TraceSpec::new(trace_type, content)
}

fn ids(views: &[TraceView]) -> Vec<TraceId> {
    views.iter().map(|view| view.id().clone()).collect()
}

fn now_ms() -> u64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    u64::try_from(elapsed.as_millis()).expect("ms fit in u64")
}

/// Every key under `run`'s Trace tag, with its value, read from the raw keyspace.
fn raw_trace_keys(db: &Database, run: RunId) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let snapshot = db.snapshot();
    snapshot
        .prefix(tag_prefix(run, TypeTag::Trace))
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect()
}

/// The keys a trace must have, built from the documented layout (not from the crate's own
/// key code): its record key, one by-type, one by-time, one per distinct tag, one by-parent.
fn expected_keys(run: RunId, view: &TraceView) -> BTreeSet<Vec<u8>> {
    let id = view.id().key_bytes();
    let created = view.created_at_ms();
    let key = || KeyBuf::new(run, TypeTag::Trace);
    let entry = |prefix: KeyBuf| prefix.push_u64(created).push_bytes(&id).finish();
    let mut keys = BTreeSet::new();
    keys.insert(key().push_u8(0x00).push_bytes(&id).finish());
    let by_type = match view.trace_type() {
        TraceType::ToolCall => key().push_u8(0x01).push_u8(0x01),
        TraceType::Decision => key().push_u8(0x01).push_u8(0x02),
        TraceType::Query => key().push_u8(0x01).push_u8(0x03),
        TraceType::Thought => key().push_u8(0x01).push_u8(0x04),
        TraceType::Error => key().push_u8(0x01).push_u8(0x05),
        TraceType::Custom(name) => {
            key().push_u8(0x01).push_u8(0x80).push_component(name.as_bytes())
        }
    };
    keys.insert(entry(by_type));
    keys.insert(entry(key().push_u8(0x03)));
    for tag in view.tags() {
        keys.insert(entry(key().push_u8(0x02).push_component(tag.as_bytes())));
    }
    if let Some(parent) = view.parent() {
        keys.insert(entry(key().push_u8(0x04).push_component(&parent.key_bytes())));
    }
    keys
}

/// Checks that the raw keys under `run`'s Trace tag are exactly those of `traces`: no
/// orphan, no missing entry, index values empty, records decoding as the traces.
fn assert_indices_match(db: &Database, run: RunId, traces: &[TraceId]) {
    let raw = raw_trace_keys(db, run);
    let mut expected = BTreeSet::new();
    let mut txn = db.begin();
    for id in traces {
        let view = txn.traces(run).get(id).expect("reads").expect("recorded");
        let record = KeyBuf::new(run, TypeTag::Trace).push_u8(0x00).push_bytes(&id.key_bytes());
        assert_eq!(raw.get(record.as_slice()).map(Vec::as_slice), Some(view.stored().as_bytes()));
        expected.extend(expected_keys(run, &view));
    }
    let actual: BTreeSet<Vec<u8>> = raw.keys().cloned().collect();
    assert_eq!(actual, expected, "exactly the index entries of the traces");
    for (key, value) in &raw {
        let is_record = key.get(17) == Some(&0x00);
        assert!(is_record || value.is_empty(), "index entries hold no value");
    }
}

#[test]
fn record_and_get_return_every_field() {
    let (db, traces) = store();
    let run = RunId::random();
    let content = Value::Map(BTreeMap::from([("tool".to_string(), Value::from("search"))]));
    let spec = TraceSpec::new(TraceType::ToolCall, content.clone())
        .tags(["a", "b"])
        .tag("a")
        .metadata(Value::from(vec![Value::from(1), Value::Null]))
        .created_at_ms(1_700_000_000_000);
    let id = traces.record(run, &spec).unwrap();
    assert!(!id.is_custom() && id.as_random().is_some());
    let view = traces.get(run, &id).unwrap().expect("recorded");
    assert_eq!(view.id(), &id);
    assert_eq!(view.trace_type(), TraceType::ToolCall);
    assert_eq!(view.type_name(), "tool_call");
    assert_eq!(view.created_at_ms(), 1_700_000_000_000);
    assert_eq!(view.parent(), None);
    assert_eq!(view.tags().collect::<Vec<_>>(), ["a", "b"], "a repeated tag is kept once");
    assert!(view.has_tag("b") && !view.has_tag("c"));
    assert_eq!(view.content().to_owned(), content);
    assert_eq!(view.metadata().to_owned(), Value::from(vec![Value::from(1), Value::Null]));
    assert_eq!(traces.get(run, &TraceId::random()).unwrap(), None);
    assert_indices_match(&db, run, &[id]);
}

#[test]
fn a_view_reads_the_stored_bytes_without_copying_them() {
    let (_db, traces) = store();
    let run = RunId::random();
    let big = "x".repeat(1000);
    let id = traces.record(run, &TraceSpec::new(TraceType::Thought, big.as_str())).unwrap();
    let view = traces.get(run, &id).unwrap().expect("recorded");
    let stored = view.stored().stored().as_slice().as_ptr_range();
    let content = view.content_view().view().as_bytes().as_ptr_range();
    assert!(stored.start <= content.start && content.end <= stored.end, "one allocation");
    assert_eq!(view.content(), ValueRef::Str(&big));
    let ValueRef::Str(text) = view.content() else { panic!("a string") };
    assert!(stored.contains(&text.as_ptr()), "the string is borrowed from the stored bytes");
    assert_eq!(view.metadata(), ValueRef::Null, "no metadata given");
}

#[test]
fn every_trace_type_round_trips_and_when_defaults_to_now() {
    let (db, traces) = store();
    let run = RunId::random();
    let types = [
        TraceType::ToolCall,
        TraceType::Decision,
        TraceType::Query,
        TraceType::Thought,
        TraceType::Error,
        TraceType::custom("plan").unwrap(),
        TraceType::custom("with spaces and \u{fc}n\u{ef}code").unwrap(),
    ];
    let before = now_ms();
    let mut recorded = Vec::new();
    for trace_type in &types {
        let id = traces.record(run, &spec(trace_type.clone(), "c")).unwrap();
        let view = traces.get(run, &id).unwrap().expect("recorded");
        assert_eq!(&view.trace_type(), trace_type);
        assert_eq!(view.type_name(), trace_type.name());
        assert!((before..=now_ms()).contains(&view.created_at_ms()), "the wall clock");
        recorded.push(id);
    }
    assert_indices_match(&db, run, &recorded);
}

#[test]
fn a_custom_id_is_used_and_a_duplicate_is_already_exists() {
    let (db, traces) = store();
    let run = RunId::random();
    let id = traces.record(run, &spec(TraceType::Decision, "first").custom_id("step-1")).unwrap();
    assert_eq!(id, TraceId::custom("step-1").unwrap());
    assert_eq!(id.to_string(), "step-1");
    let again = traces.record(run, &spec(TraceType::Query, "second").custom_id("step-1"));
    assert_eq!(again, Err(Error::AlreadyExists { what: "trace" }));
    let view = traces.get(run, &id).unwrap().expect("recorded");
    assert_eq!(view.content(), ValueRef::Str("first"), "the first trace stays");
    assert!(traces.query_by_type(run, &TraceType::Query, 10).unwrap().is_empty());
    assert_indices_match(&db, run, &[id]);
}

#[test]
fn an_invalid_custom_id_is_refused_and_writes_nothing() {
    let (db, traces) = store();
    let run = RunId::random();
    let hex = "0123456789abcdef0123456789abcdef";
    let long = "x".repeat(129);
    for bad in ["", "has space", "tab\t", "na\u{ef}ve", hex, long.as_str()] {
        let result = traces.record(run, &spec(TraceType::Thought, "c").custom_id(bad));
        assert!(
            matches!(result, Err(Error::InvalidName { .. } | Error::LimitExceeded { .. })),
            "{bad:?}: {result:?}"
        );
        assert!(TraceId::custom(bad).is_err());
    }
    assert!(matches!(
        traces.record(run, &spec(TraceType::Thought, "c").custom_id(long)),
        Err(Error::LimitExceeded { what: "custom trace id bytes", actual: 129, max: 128 })
    ));
    assert_eq!(hex.parse::<TraceId>().map(|id| id.is_custom()), Ok(false), "a random id");
    assert!("x".repeat(128).parse::<TraceId>().is_ok_and(|id| id.is_custom()));
    assert!(raw_trace_keys(&db, run).is_empty());
}

#[test]
fn invalid_types_and_tags_are_refused_and_write_nothing() {
    let (db, traces) = store();
    let run = RunId::random();
    let too_many: Vec<String> = (0..=TAGS_MAX).map(|n| format!("t{n}")).collect();
    let cases = [
        spec(TraceType::Custom(String::new()), "c"),
        spec(TraceType::Custom("decision".into()), "c"),
        spec(TraceType::Custom("x".repeat(129)), "c"),
        spec(TraceType::Thought, "c").tag(""),
        spec(TraceType::Thought, "c").tag("x".repeat(TAG_LEN_MAX + 1)),
        spec(TraceType::Thought, "c").tags(too_many),
    ];
    for case in &cases {
        let result = traces.record(run, case);
        assert!(
            matches!(result, Err(Error::InvalidName { .. } | Error::LimitExceeded { .. })),
            "{case:?}: {result:?}"
        );
    }
    let exactly_max: Vec<String> = (0..TAGS_MAX).map(|n| format!("t{n}")).collect();
    let mut deep = Value::Null;
    for _ in 0..65 {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        traces.record(run, &TraceSpec::new(TraceType::Thought, deep)),
        Err(Error::LimitExceeded { what: "value nesting depth", .. })
    ));
    assert!(raw_trace_keys(&db, run).is_empty());
    let id = traces.record(run, &spec(TraceType::Thought, "c").tags(exactly_max)).unwrap();
    assert_indices_match(&db, run, &[id]);
}

#[test]
fn a_child_needs_its_parent_in_the_same_run() {
    let (db, traces) = store();
    let (run, other) = (RunId::random(), RunId::random());
    let missing = traces.record_child(run, &TraceId::random(), &spec(TraceType::Query, "q"));
    assert_eq!(missing, Err(Error::ParentMissing));
    let parent = traces.record(other, &spec(TraceType::Decision, "d")).unwrap();
    let elsewhere = traces.record_child(run, &parent, &spec(TraceType::Query, "q"));
    assert_eq!(elsewhere, Err(Error::ParentMissing), "a parent of another run");
    assert!(raw_trace_keys(&db, run).is_empty());

    let child = traces.record_child(other, &parent, &spec(TraceType::Query, "q")).unwrap();
    let view = traces.get(other, &child).unwrap().expect("recorded");
    assert_eq!(view.parent(), Some(&parent));
    assert_indices_match(&db, other, &[parent, child]);
}

#[test]
fn a_parent_must_be_in_the_recording_snapshot() {
    let (db, traces) = store();
    let run = RunId::random();
    let mut txn = db.begin();
    let parent = traces.record(run, &spec(TraceType::Decision, "later")).unwrap();
    let result = txn.traces(run).record_child(&parent, &spec(TraceType::Query, "q"));
    assert_eq!(result, Err(Error::ParentMissing), "committed after the snapshot");
    drop(txn);
    let mut txn = db.begin();
    let own = txn.traces(run).record(&spec(TraceType::Thought, "own")).unwrap();
    let child = txn.traces(run).record_child(&own, &spec(TraceType::Query, "q")).unwrap();
    txn.commit().unwrap();
    assert_indices_match(&db, run, &[parent, own, child]);
}

#[test]
fn queries_by_type_and_tag_return_matches_in_time_order() {
    let (db, traces) = store();
    let run = RunId::random();
    let record = |trace_type: TraceType, at: u64, tags: &[&str]| {
        let spec = spec(trace_type, "c").created_at_ms(at).tags(tags.iter().copied());
        traces.record(run, &spec).unwrap()
    };
    let late_call = record(TraceType::ToolCall, 30, &["io"]);
    let thought = record(TraceType::Thought, 10, &["io", "slow"]);
    let early_call = record(TraceType::ToolCall, 20, &["slow"]);
    let custom = record(TraceType::custom("plan").unwrap(), 5, &["io"]);
    let tool_calls = traces.query_by_type(run, &TraceType::ToolCall, 100).unwrap();
    assert_eq!(ids(&tool_calls), [early_call.clone(), late_call.clone()]);
    let plans = traces.query_by_type(run, &TraceType::custom("plan").unwrap(), 100).unwrap();
    assert_eq!(ids(&plans), std::slice::from_ref(&custom));
    assert!(traces.query_by_type(run, &TraceType::custom("pla").unwrap(), 100).unwrap().is_empty());
    assert!(traces.query_by_type(run, &TraceType::Error, 100).unwrap().is_empty());
    let io = traces.query_by_tag(run, "io", 100).unwrap();
    assert_eq!(ids(&io), [custom.clone(), thought.clone(), late_call.clone()]);
    assert_eq!(
        ids(&traces.query_by_tag(run, "slow", 100).unwrap()),
        [thought.clone(), early_call.clone()]
    );
    assert!(traces.query_by_tag(run, "i", 100).unwrap().is_empty(), "no prefix match");
    assert_eq!(ids(&traces.query_by_tag(run, "io", 2).unwrap()), [custom.clone(), thought.clone()]);
    assert!(traces.query_by_tag(run, "io", 0).unwrap().is_empty());
    assert!(matches!(traces.query_by_tag(run, "", 1), Err(Error::InvalidName { .. })));
    assert!(matches!(
        traces.query_by_tag(run, "io", QUERY_LIMIT_MAX + 1),
        Err(Error::LimitExceeded { what: "trace query limit", .. })
    ));
    assert_indices_match(&db, run, &[late_call, thought, early_call, custom]);
}

#[test]
fn time_range_queries_honour_their_bounds() {
    let (_db, traces) = store();
    let run = RunId::random();
    for ms in [0, 10, 20, 20, 30, u64::MAX] {
        traces.record(run, &spec(TraceType::Thought, "t").created_at_ms(ms)).unwrap();
    }
    let times =
        |views: Vec<TraceView>| views.iter().map(TraceView::created_at_ms).collect::<Vec<_>>();
    assert_eq!(times(traces.query_by_time(run, 10..=20, 100).unwrap()), [10, 20, 20]);
    assert_eq!(times(traces.query_by_time(run, 10..20, 100).unwrap()), [10]);
    assert_eq!(times(traces.query_by_time(run, 11..30, 100).unwrap()), [20, 20]);
    assert_eq!(times(traces.query_by_time(run, ..=10, 100).unwrap()), [0, 10]);
    assert_eq!(times(traces.query_by_time(run, 30.., 100).unwrap()), [30, u64::MAX]);
    assert_eq!(times(traces.query_by_time(run, .., 100).unwrap()).len(), 6);
    assert_eq!(times(traces.query_by_time(run, .., 2).unwrap()), [0, 10]);
    assert!(traces.query_by_time(run, 21..30, 100).unwrap().is_empty());
    assert!(
        traces
            .query_by_time(run, (Bound::Included(20), Bound::Excluded(10)), 100)
            .unwrap()
            .is_empty(),
        "reversed"
    );
    assert!(traces.query_by_time(run, 0..0, 100).unwrap().is_empty());
    let equal = traces.query_by_time(run, 20..=20, 100).unwrap();
    let mut sorted = ids(&equal);
    sorted.sort();
    assert_eq!(ids(&equal), sorted, "equal times order by id");
}

#[test]
fn children_are_listed_in_time_order_and_need_their_parent() {
    let (_db, traces) = store();
    let run = RunId::random();
    let root = traces.record(run, &spec(TraceType::Decision, "root")).unwrap();
    let child = |at: u64| {
        let spec = spec(TraceType::ToolCall, "c").created_at_ms(at);
        traces.record_child(run, &root, &spec).unwrap()
    };
    let (second, first, third) = (child(200), child(100), child(300));
    let grandchild = traces.record_child(run, &first, &spec(TraceType::Query, "g")).unwrap();
    assert_eq!(ids(&traces.children(run, &root, 100).unwrap()), [first.clone(), second, third]);
    assert_eq!(ids(&traces.children(run, &first, 100).unwrap()), std::slice::from_ref(&grandchild));
    assert!(traces.children(run, &grandchild, 100).unwrap().is_empty());
    assert_eq!(traces.children(run, &TraceId::random(), 1), Err(Error::NotFound { what: "trace" }));
}

/// The shape of a tree as (content, children) pairs.
fn shape(tree: &TraceTree) -> (String, Vec<(String, usize)>) {
    let content = |view: &TraceView| view.content().as_str().unwrap_or_default().to_string();
    let children =
        tree.children().iter().map(|child| (content(child.trace()), child.len())).collect();
    (content(tree.trace()), children)
}

#[test]
fn a_tree_of_depth_3_is_read_whole_and_in_order() {
    let (_db, traces) = store();
    let run = RunId::random();
    let record = |parent: Option<&TraceId>, name: &str, at: u64| {
        let spec = spec(TraceType::Thought, name).created_at_ms(at);
        match parent {
            Some(parent) => traces.record_child(run, parent, &spec).unwrap(),
            None => traces.record(run, &spec).unwrap(),
        }
    };
    let root = record(None, "root", 1);
    let b = record(Some(&root), "b", 3);
    let a = record(Some(&root), "a", 2);
    let a1 = record(Some(&a), "a1", 4);
    let a1x = record(Some(&a1), "a1x", 5);
    let b1 = record(Some(&b), "b1", 6);
    record(None, "unrelated", 7);
    let tree = traces.tree(run, &root, TreeLimits::default()).unwrap().expect("recorded");
    assert_eq!((tree.len(), tree.depth()), (6, 3));
    assert_eq!(shape(&tree), ("root".into(), vec![("a".into(), 3), ("b".into(), 2)]));
    let [sub_a, sub_b] = tree.children() else { panic!("two children") };
    assert_eq!(sub_a.children()[0].trace().id(), &a1);
    assert_eq!(sub_a.children()[0].children()[0].trace().id(), &a1x);
    assert_eq!(sub_b.children()[0].trace().id(), &b1);
    let order: Vec<TraceId> = tree.iter().map(|view| view.id().clone()).collect();
    assert_eq!(order, [root.clone(), a.clone(), a1.clone(), a1x.clone(), b.clone(), b1]);
    let leaf = traces.tree(run, &a1x, TreeLimits::default()).unwrap().expect("recorded");
    assert_eq!((leaf.len(), leaf.depth()), (1, 0));
    assert_eq!(traces.tree(run, &TraceId::random(), TreeLimits::default()).unwrap(), None);
}

#[test]
fn a_tree_over_its_limits_is_a_limit_error() {
    let (_db, traces) = store();
    let run = RunId::random();
    let root = traces.record(run, &spec(TraceType::Thought, "r")).unwrap();
    let child = traces.record_child(run, &root, &spec(TraceType::Thought, "c")).unwrap();
    traces.record_child(run, &child, &spec(TraceType::Thought, "g")).unwrap();
    traces.record_child(run, &root, &spec(TraceType::Thought, "c2")).unwrap();
    let limits = |depth_max, nodes_max| TreeLimits { depth_max, nodes_max };
    assert_eq!(
        traces.tree(run, &root, limits(1, 100)),
        Err(Error::LimitExceeded { what: "trace tree depth", actual: 2, max: 1 })
    );
    assert_eq!(
        traces.tree(run, &root, limits(10, 3)),
        Err(Error::LimitExceeded { what: "trace tree nodes", actual: 4, max: 3 })
    );
    assert_eq!(traces.tree(run, &root, limits(2, 4)).unwrap().map(|tree| tree.len()), Some(4));
    assert!(matches!(
        traces.tree(run, &root, limits(TREE_DEPTH_MAX + 1, 4)),
        Err(Error::LimitExceeded { what: "trace tree depth limit", .. })
    ));
    assert!(matches!(
        traces.tree(run, &root, limits(2, 0)),
        Err(Error::LimitExceeded { what: "trace tree nodes", .. })
    ));
}

#[test]
fn runs_are_isolated() {
    let (db, traces) = store();
    let (a, b) = (RunId::random(), RunId::random());
    let in_a =
        traces.record(a, &spec(TraceType::Decision, "a").custom_id("same").tag("t")).unwrap();
    let in_b = traces.record(b, &spec(TraceType::Query, "b").custom_id("same").tag("t")).unwrap();
    assert_eq!(in_a, in_b, "the same custom id in two runs");
    assert_eq!(traces.get(a, &in_a).unwrap().map(|v| v.trace_type()), Some(TraceType::Decision));
    assert_eq!(traces.get(b, &in_b).unwrap().map(|v| v.trace_type()), Some(TraceType::Query));
    assert_eq!(traces.query_by_tag(a, "t", 100).unwrap().len(), 1);
    assert!(traces.query_by_type(a, &TraceType::Query, 100).unwrap().is_empty());
    assert_eq!(traces.query_by_time(b, .., 100).unwrap().len(), 1);
    let child = traces.record_child(b, &in_b, &spec(TraceType::Thought, "c")).unwrap();
    assert!(traces.children(a, &in_a, 100).unwrap().is_empty());
    assert_eq!(traces.tree(a, &in_a, TreeLimits::default()).unwrap().map(|t| t.len()), Some(1));
    for (run, keys) in [(a, raw_trace_keys(&db, a)), (b, raw_trace_keys(&db, b))] {
        assert!(keys.keys().all(|key| key.starts_with(run.as_bytes())));
    }
    assert_indices_match(&db, a, &[in_a]);
    assert_indices_match(&db, b, &[in_b, child]);
}

#[test]
fn index_entries_are_exactly_those_of_the_traces() {
    let (db, traces) = store();
    let run = RunId::random();
    let mut recorded = Vec::new();
    // Random ids (whose 0x00 bytes are escaped in by-parent keys), custom ids, a tag with
    // a 0x00 byte, custom types, children, equal times: every kind of entry.
    let spec0 = spec(TraceType::Decision, "root").tags(["x", "a\u{0}b", "x"]);
    let root = traces.record(run, &spec0).unwrap();
    recorded.push(root.clone());
    for n in 0..20_u64 {
        let parent = recorded.get(fastrand::usize(..recorded.len())).cloned().expect("some");
        let trace_type = match n % 3 {
            0 => TraceType::ToolCall,
            1 => TraceType::custom(format!("kind{}", n % 2)).unwrap(),
            _ => TraceType::Error,
        };
        let mut spec = spec(trace_type, "c").created_at_ms(n % 4).tag(format!("t{}", n % 5));
        if n % 4 == 0 {
            spec = spec.custom_id(format!("custom-{n}"));
        }
        let id = if n % 2 == 0 {
            traces.record_child(run, &parent, &spec).unwrap()
        } else {
            traces.record(run, &spec).unwrap()
        };
        recorded.push(id);
    }
    assert_indices_match(&db, run, &recorded);
    let everything = traces.query_by_time(run, .., QUERY_LIMIT_MAX).unwrap();
    assert_eq!(everything.len(), recorded.len());
}

#[test]
fn a_rolled_back_record_leaves_neither_trace_nor_index_entry() {
    let (db, traces) = store();
    let run = RunId::random();
    let kept = traces.record(run, &spec(TraceType::Decision, "kept").tag("t")).unwrap();
    let before = raw_trace_keys(&db, run);
    let mut txn = db.begin();
    let parent = txn.traces(run).record(&spec(TraceType::Thought, "p").tag("t")).unwrap();
    let child = txn.traces(run).record_child(&kept, &spec(TraceType::Query, "c")).unwrap();
    assert!(txn.traces(run).get(&child).unwrap().is_some());
    assert_eq!(txn.traces(run).query_by_tag("t", 10).unwrap().len(), 2, "its own writes");
    txn.rollback();
    assert_eq!(raw_trace_keys(&db, run), before);
    assert_eq!(traces.get(run, &parent).unwrap(), None);
    assert!(traces.children(run, &kept, 10).unwrap().is_empty());
    assert_indices_match(&db, run, &[kept]);
}

#[test]
fn a_record_refused_by_the_engine_midway_withdraws_what_it_buffered() {
    let limits = Limits { key_bytes_max: 64, ..Limits::default() };
    let db = Arc::new(Database::with_options(engine_options().limits(limits)).unwrap());
    let run = RunId::random();
    let mut txn = db.begin();
    txn.put(b"other", b"write").unwrap();
    // The record, by-type and by-time keys fit in 64 bytes; the by-tag key does not.
    let spec = spec(TraceType::Thought, "c").tag("a-tag-long-enough-to-overflow-the-key");
    let result = txn.traces(run).record(&spec);
    assert!(matches!(
        result,
        Err(Error::Engine(inmem_engine::Error::LimitExceeded { limit: Limit::KeyBytes, .. }))
    ));
    txn.commit().unwrap();
    assert!(raw_trace_keys(&db, run).is_empty(), "no part of the trace");
    assert!(db.get(b"other").unwrap().is_some(), "the transaction's other writes commit");
}

#[test]
fn traces_commit_with_the_rest_of_a_transaction() {
    let (db, traces) = store();
    let run = RunId::random();
    let id = db
        .transaction_typed(Default::default(), |txn| {
            txn.put(b"side", b"effect")?;
            txn.traces(run).record(&spec(TraceType::Thought, "t"))
        })
        .unwrap()
        .value;
    assert!(db.get(b"side").unwrap().is_some());
    assert!(traces.get(run, &id).unwrap().is_some());
}

#[test]
fn concurrent_records_of_one_custom_id_let_exactly_one_win() {
    let (db, traces) = store();
    let run = RunId::random();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let traces = traces.clone();
                scope.spawn(move || {
                    let spec = spec(TraceType::Thought, &n.to_string()).custom_id("only");
                    traces.record(run, &spec)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("no panic")).collect()
    });
    let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let lost = outcomes
        .iter()
        .filter(|outcome| **outcome == Err(Error::AlreadyExists { what: "trace" }))
        .count();
    assert_eq!((won, lost), (1, 7), "{outcomes:?}");
    assert_indices_match(&db, run, &[TraceId::custom("only").unwrap()]);
}

#[test]
fn an_orphan_or_stale_index_entry_is_reported_as_corrupt() {
    let (db, traces) = store();
    let run = RunId::random();
    let ghost = TraceId::random();
    let orphan = KeyBuf::new(run, TypeTag::Trace)
        .push_u8(0x02)
        .push_component(b"t")
        .push_u64(5)
        .push_bytes(&ghost.key_bytes())
        .finish();
    db.put(&orphan, b"").unwrap();
    assert!(matches!(traces.query_by_tag(run, "t", 10), Err(Error::Corrupt { .. })));
    let id = traces.record(run, &spec(TraceType::Thought, "c").created_at_ms(7)).unwrap();
    let stale = KeyBuf::new(run, TypeTag::Trace)
        .push_u8(0x01)
        .push_u8(0x05)
        .push_u64(7)
        .push_bytes(&id.key_bytes())
        .finish();
    db.put(&stale, b"").unwrap();
    assert!(matches!(traces.query_by_type(run, &TraceType::Error, 10), Err(Error::Corrupt { .. })));
    let record = KeyBuf::new(run, TypeTag::Trace).push_u8(0x00).push_bytes(&id.key_bytes());
    db.put(record.as_slice(), b"short").unwrap();
    assert!(matches!(traces.get(run, &id), Err(Error::Corrupt { .. })));
}
