//! RunIndex: records, the lifecycle, tags and metadata, queries over the index entries,
//! archive and the cascading delete, the transactional form, corrupt records and limits.

#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread;

use inmem_engine::{Database, Limit, TransactionOptions};
use inmem_primitives::run_index::{
    RunIndex, RunIndexExt, RunQuery, RunStatus, RunView, SYSTEM_RUN,
};
use inmem_primitives::{
    engine_options, run_prefix, tag_prefix, Error, KeyBuf, RunId, TypeTag, Value, ValueRef,
};

use RunStatus::{Active, Archived, Cancelled, Completed, Failed, Paused};

const NO_TAGS: [&str; 0] = [];

fn setup() -> (Arc<Database>, RunIndex) {
    // With the primitives' options: the index entries live in the ordered index alone.
    let db = Arc::new(Database::with_options(engine_options()).expect("in-memory database"));
    (db.clone(), RunIndex::new(db))
}

fn get(runs: &RunIndex, run: RunId) -> RunView {
    runs.get(run).expect("get").expect("the run exists")
}

fn ids(views: &[RunView]) -> Vec<RunId> {
    views.iter().map(RunView::id).collect()
}

fn tags_of(view: &RunView) -> Vec<&str> {
    view.tags().collect()
}

/// The key of a run's record, as `run_index/keys.rs` documents it.
fn record_key(run: RunId) -> Vec<u8> {
    KeyBuf::new(run, TypeTag::Run).push_u8(0x00).finish()
}

/// Every key under `prefix`, committed.
fn keys_under(db: &Database, prefix: &[u8]) -> BTreeSet<Vec<u8>> {
    db.snapshot().prefix(prefix).map(|(key, _)| key.to_vec()).collect()
}

/// The index entries stored, all of them.
fn stored_index(db: &Database) -> BTreeSet<Vec<u8>> {
    keys_under(db, &tag_prefix(SYSTEM_RUN, TypeTag::Run))
}

/// The index entries the records `views` should have, built from the layout documented in
/// `run_index/keys.rs` (independently of the module's own code).
fn expected_index(views: &[RunView]) -> BTreeSet<Vec<u8>> {
    let mut entries = BTreeSet::new();
    for view in views {
        let (run, created) = (view.id(), view.created_at_ms());
        let index = |sub: u8| KeyBuf::new(SYSTEM_RUN, TypeTag::Run).push_u8(sub);
        let finish = |key: KeyBuf| key.push_u64(created).push_bytes(run.as_bytes()).finish();
        entries.insert(finish(index(0x01).push_u8(view.status().byte())));
        entries.insert(finish(index(0x03)));
        if let Some(parent) = view.parent() {
            entries.insert(finish(index(0x04).push_bytes(parent.as_bytes())));
        }
        for tag in view.tags() {
            entries.insert(finish(index(0x02).push_component(tag.as_bytes())));
        }
    }
    entries
}

/// Every record stored, read back through the index's own `get`, checked against the
/// stored index entries: exactly the entries the records call for.
fn assert_index_matches_records(db: &Database, runs: &RunIndex) -> Vec<RunView> {
    let mut views = Vec::new();
    for key in keys_under(db, b"") {
        let run = RunId::from_bytes(key[..16].try_into().expect("16 bytes"));
        if run != SYSTEM_RUN && key == record_key(run) {
            views.push(get(runs, run));
        }
    }
    assert_eq!(stored_index(db), expected_index(&views), "index entries == records' entries");
    views
}

/// The statuses `status` can be reached from a new run through, and the path.
fn path_to(status: RunStatus) -> Vec<RunStatus> {
    // Every other status is one move from Active.
    if status == Active {
        vec![]
    } else {
        vec![status]
    }
}

/// A new run in `status`.
fn run_in(runs: &RunIndex, status: RunStatus) -> RunId {
    let run = runs.create(None, ["t"], &Value::from(1)).expect("create");
    for step in path_to(status) {
        runs.update_status(run, step).expect("a step from Active");
    }
    assert_eq!(get(runs, run).status(), status);
    run
}

#[test]
fn create_then_get_returns_the_record_as_given() {
    let (_db, runs) = setup();
    let metadata = Value::from_iter([("model".to_string(), Value::from("small"))]);
    let run = runs.create(None, ["b", "a", "b"], &metadata).unwrap();
    let view = get(&runs, run);
    assert_eq!(view.id(), run);
    assert_eq!(view.status(), Active);
    assert_eq!(view.parent(), None);
    assert_eq!(tags_of(&view), ["a", "b"], "tags are a set, in byte order");
    assert_eq!(view.tag_count(), 2);
    assert!(view.has_tag("a") && !view.has_tag("c"));
    assert_eq!(view.metadata_view().to_value(), metadata);
    assert_eq!(
        view.metadata().as_map().and_then(|map| map.get("model")),
        Some(ValueRef::Str("small"))
    );
    assert_eq!(view.error(), None);
    assert_eq!(view.created_at_ms(), view.updated_at_ms());
    assert!(view.created_at_ms() > 1_600_000_000_000, "wall clock ms");

    let child = runs.create(Some(run), NO_TAGS, &Value::Null).unwrap();
    let child = get(&runs, child);
    assert_eq!(child.parent(), Some(run));
    assert_eq!(child.tag_count(), 0);
    assert_eq!(child.metadata(), ValueRef::Null);
    assert_eq!(runs.get(RunId::random()).unwrap(), None, "an unknown run is None");
}

#[test]
fn create_with_id_refuses_an_existing_run_and_the_system_run() {
    let (db, runs) = setup();
    let run = RunId::random();
    runs.create_with_id(run, None, ["x"], &Value::from(1)).unwrap();
    let before = db.get(record_key(run)).unwrap();
    assert_eq!(
        runs.create_with_id(run, None, ["y"], &Value::from(2)),
        Err(Error::AlreadyExists { what: "run" })
    );
    assert_eq!(db.get(record_key(run)).unwrap(), before, "the record is untouched");
    assert!(matches!(
        runs.create_with_id(SYSTEM_RUN, None, NO_TAGS, &Value::Null),
        Err(Error::InvalidName { .. })
    ));
    assert_eq!(runs.get(SYSTEM_RUN).unwrap(), None);
    assert_index_matches_records(&db, &runs);
}

#[test]
fn a_missing_parent_is_parent_missing_and_writes_nothing() {
    let (db, runs) = setup();
    let version = db.visible_version();
    assert_eq!(runs.create(Some(RunId::random()), ["t"], &Value::Null), Err(Error::ParentMissing));
    let run = RunId::random();
    assert_eq!(
        runs.create_with_id(run, Some(RunId::random()), NO_TAGS, &Value::Null),
        Err(Error::ParentMissing)
    );
    assert_eq!(db.visible_version(), version, "nothing committed");
    assert!(keys_under(&db, b"").is_empty());
}

#[test]
fn empty_tags_and_too_deep_metadata_are_refused() {
    let (db, runs) = setup();
    assert!(matches!(runs.create(None, ["ok", ""], &Value::Null), Err(Error::InvalidName { .. })));
    let mut deep = Value::Null;
    for _ in 0..=inmem_primitives::DEPTH_MAX {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(runs.create(None, NO_TAGS, &deep), Err(Error::LimitExceeded { .. })));
    let run = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    assert!(matches!(runs.add_tags(run, [""]), Err(Error::InvalidName { .. })));
    assert!(matches!(runs.update_metadata(run, &deep), Err(Error::LimitExceeded { .. })));
    assert_eq!(assert_index_matches_records(&db, &runs).len(), 1);
}

#[test]
fn a_tag_too_long_for_a_key_is_the_engines_limit_error_and_writes_nothing() {
    let (db, runs) = setup();
    let long = "t".repeat(5000);
    let refused = runs.create(None, [long.as_str()], &Value::Null);
    assert!(
        matches!(
            refused,
            Err(Error::Engine(inmem_engine::Error::LimitExceeded { limit: Limit::KeyBytes, .. }))
        ),
        "{refused:?}"
    );
    assert!(keys_under(&db, b"").is_empty());
    let run = runs.create(None, ["short"], &Value::Null).unwrap();
    assert!(matches!(runs.add_tags(run, [long.as_str()]), Err(Error::Engine(_))));
    assert_eq!(tags_of(&get(&runs, run)), ["short"]);
    assert!(runs.query(&RunQuery::new().tag(long), 10).unwrap().is_empty());
}

/// The lifecycle of docs/architecture.md §9 (`RunStatus::can_move_to`), written as the list
/// of allowed moves.
const ALLOWED: [(RunStatus, RunStatus); 11] = [
    (Active, Completed),
    (Active, Failed),
    (Active, Cancelled),
    (Active, Paused),
    (Active, Archived),
    (Paused, Active),
    (Paused, Cancelled),
    (Paused, Archived),
    (Completed, Archived),
    (Failed, Archived),
    (Cancelled, Archived),
];

#[test]
fn can_move_to_matches_the_lifecycle_table_for_every_pair() {
    let mut checked = 0;
    for from in RunStatus::ALL {
        for to in RunStatus::ALL {
            let allowed = ALLOWED.contains(&(from, to));
            assert_eq!(from.can_move_to(to), allowed, "{from} -> {to}");
            if from == to || from == Archived || (from.is_finished() && !to.is_finished()) {
                assert!(!allowed, "{from} -> {to}: same, from Archived, or finished coming back");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 36);
}

#[test]
fn every_allowed_transition_is_applied_and_indexed() {
    let (db, runs) = setup();
    for (from, to) in ALLOWED {
        let run = run_in(&runs, from);
        runs.update_status(run, to).unwrap();
        let view = get(&runs, run);
        assert_eq!(view.status(), to, "{from} -> {to}");
        assert!(view.updated_at_ms() >= view.created_at_ms());
        let found = runs.query(&RunQuery::new().status(to), usize::MAX).unwrap();
        assert!(ids(&found).contains(&run));
        let stale = runs.query(&RunQuery::new().status(from), usize::MAX).unwrap();
        assert!(!ids(&stale).contains(&run), "no stale status entry for {from}");
    }
    assert_index_matches_records(&db, &runs);
}

#[test]
fn invalid_transitions_are_typed_errors_and_change_nothing() {
    let (db, runs) = setup();
    for from in RunStatus::ALL {
        for to in RunStatus::ALL.into_iter().filter(|&to| !from.can_move_to(to)) {
            let run = run_in(&runs, from);
            let (record, index, version) =
                (db.get(record_key(run)).unwrap(), stored_index(&db), db.visible_version());
            let expected = Err(Error::InvalidTransition { from: from.name(), to: to.name() });
            assert_eq!(runs.update_status(run, to), expected, "{from} -> {to}");
            let shortcut = if to == Completed {
                Some(runs.complete(run))
            } else if to == Failed {
                Some(runs.fail(run, "boom"))
            } else if to == Archived {
                Some(runs.archive(run))
            } else {
                None
            };
            if let Some(shortcut) = shortcut {
                assert_eq!(shortcut, expected, "{from} -> {to} by its own operation");
            }
            assert_eq!(db.get(record_key(run)).unwrap(), record, "record unchanged");
            assert_eq!(stored_index(&db), index, "index unchanged");
            assert_eq!(db.visible_version(), version, "nothing committed");
        }
    }
    let missing = RunId::random();
    assert_eq!(runs.update_status(missing, Completed), Err(Error::NotFound { what: "run" }));
    assert_index_matches_records(&db, &runs);
}

#[test]
fn complete_fail_and_archive_set_the_status_and_keep_the_error() {
    let (db, runs) = setup();
    let done = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    runs.complete(done).unwrap();
    assert_eq!(get(&runs, done).status(), Completed);
    assert_eq!(get(&runs, done).error(), None);

    let broken = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    runs.fail(broken, "tool timed out after 30 s").unwrap();
    let view = get(&runs, broken);
    assert_eq!((view.status(), view.error()), (Failed, Some("tool timed out after 30 s")));
    runs.archive(broken).unwrap();
    let view = get(&runs, broken);
    assert_eq!((view.status(), view.error()), (Archived, Some("tool timed out after 30 s")));

    let quiet = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    runs.fail(quiet, "").unwrap();
    assert_eq!(get(&runs, quiet).error(), Some(""), "an empty message is still a message");
    assert_index_matches_records(&db, &runs);
}

#[test]
fn add_and_remove_tags_update_the_tag_index() {
    let (db, runs) = setup();
    let run = runs.create(None, ["a"], &Value::Null).unwrap();
    let other = runs.create(None, ["a", "ab"], &Value::Null).unwrap();
    runs.add_tags(run, ["c", "a", "b"]).unwrap();
    assert_eq!(tags_of(&get(&runs, run)), ["a", "b", "c"]);
    runs.remove_tags(run, ["a", "zzz"]).unwrap();
    assert_eq!(tags_of(&get(&runs, run)), ["b", "c"]);
    let tagged = |tag: &str| ids(&runs.query(&RunQuery::new().tag(tag), 10).unwrap());
    assert_eq!(tagged("a"), [other], "no stale tag entry");
    assert_eq!(tagged("ab"), [other], "a tag that extends another is another tag");
    assert_eq!(tagged("b"), [run]);
    let version = db.visible_version();
    runs.add_tags(run, ["b"]).unwrap();
    runs.remove_tags(run, ["a"]).unwrap();
    assert_eq!(db.visible_version(), version, "changing nothing writes nothing");
    assert_eq!(runs.add_tags(RunId::random(), ["x"]), Err(Error::NotFound { what: "run" }));
    assert_index_matches_records(&db, &runs);
}

#[test]
fn update_metadata_replaces_it_and_keeps_everything_else() {
    let (db, runs) = setup();
    let parent = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    let run = runs.create(Some(parent), ["t"], &Value::from("first")).unwrap();
    runs.update_status(run, Paused).unwrap();
    let before = get(&runs, run);
    runs.update_metadata(run, &Value::from(vec![1_u8, 2, 3])).unwrap();
    let after = get(&runs, run);
    assert_eq!(after.metadata(), ValueRef::Bytes(&[1, 2, 3]));
    assert_eq!(after.status(), Paused);
    assert_eq!(after.parent(), Some(parent));
    assert_eq!(tags_of(&after), ["t"]);
    assert_eq!(after.created_at_ms(), before.created_at_ms());
    assert!(after.updated_at_ms() >= before.updated_at_ms());
    assert_eq!(
        runs.update_metadata(RunId::random(), &Value::Null),
        Err(Error::NotFound { what: "run" })
    );
    assert_index_matches_records(&db, &runs);
}

/// Runs with a spread of statuses, tags and parents, created a few ms apart.
fn populate(runs: &RunIndex) -> Vec<RunView> {
    let root = runs.create(None, ["root"], &Value::Null).expect("create");
    for index in 0..24_u32 {
        let tags = match index % 3 {
            0 => vec!["even-ish", "x"],
            1 => vec!["x"],
            _ => vec![],
        };
        let parent = (index % 4 == 0).then_some(root);
        let run = runs.create(parent, tags, &Value::from(i64::from(index))).expect("populate");
        match index % 5 {
            0 => runs.complete(run).expect("populate"),
            1 => runs.fail(run, "no").expect("populate"),
            2 => runs.update_status(run, Paused).expect("populate"),
            _ => {}
        }
        if index % 6 == 0 {
            thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    runs.list(usize::MAX).expect("populate")
}

/// What `query` should return from `all`: the matches in (created, id) order.
fn model(all: &[RunView], keep: impl Fn(&RunView) -> bool) -> Vec<RunId> {
    let mut matching: Vec<&RunView> = all.iter().filter(|view| keep(view)).collect();
    matching.sort_by_key(|view| (view.created_at_ms(), view.id()));
    matching.into_iter().map(RunView::id).collect()
}

#[test]
fn query_by_status() {
    let (_db, runs) = setup();
    let all = populate(&runs);
    for status in RunStatus::ALL {
        let found = runs.query(&RunQuery::new().status(status), usize::MAX).unwrap();
        assert_eq!(ids(&found), model(&all, |view| view.status() == status), "{status}");
    }
    assert!(!runs.query(&RunQuery::new().status(Failed), 100).unwrap().is_empty());
}

#[test]
fn query_by_tag() {
    let (_db, runs) = setup();
    let all = populate(&runs);
    for tag in ["x", "even-ish", "root", "absent", "even"] {
        let found = runs.query(&RunQuery::new().tag(tag), usize::MAX).unwrap();
        assert_eq!(ids(&found), model(&all, |view| view.has_tag(tag)), "{tag}");
    }
}

#[test]
fn query_by_created_time_range() {
    let (_db, runs) = setup();
    let all = populate(&runs);
    let times: BTreeSet<u64> = all.iter().map(RunView::created_at_ms).collect();
    let (first, last) = (*times.first().unwrap(), *times.last().unwrap());
    assert!(first < last, "runs were created over several ms");
    for range in [first..last, first + 1..last + 1, 0..u64::MAX, last..last, last + 1..u64::MAX] {
        let found = runs.query(&RunQuery::new().created(range.clone()), usize::MAX).unwrap();
        let expected = model(&all, |view| range.contains(&view.created_at_ms()));
        assert_eq!(ids(&found), expected, "{range:?}");
    }
}

#[test]
fn query_by_parent() {
    let (_db, runs) = setup();
    let all = populate(&runs);
    let root = all.iter().find(|view| view.has_tag("root")).unwrap().id();
    let found = runs.query(&RunQuery::new().parent(root), usize::MAX).unwrap();
    assert_eq!(ids(&found), model(&all, |view| view.parent() == Some(root)));
    assert_eq!(found.len(), 6);
    assert!(runs.query(&RunQuery::new().parent(found[0].id()), 10).unwrap().is_empty());
}

#[test]
fn query_with_several_criteria_matches_all_of_them() {
    let (_db, runs) = setup();
    let all = populate(&runs);
    let root = all.iter().find(|view| view.has_tag("root")).unwrap().id();
    let middle = all[all.len() / 2].created_at_ms();
    for status in RunStatus::ALL {
        let query = RunQuery::new().status(status).tag("x").created(0..middle + 1);
        let expected = model(&all, |view| {
            view.status() == status && view.has_tag("x") && view.created_at_ms() <= middle
        });
        assert_eq!(ids(&runs.query(&query, usize::MAX).unwrap()), expected, "{status}");
        let query = RunQuery::new().status(status).parent(root).tag("even-ish");
        let expected = model(&all, |view| {
            view.status() == status && view.parent() == Some(root) && view.has_tag("even-ish")
        });
        assert_eq!(ids(&runs.query(&query, usize::MAX).unwrap()), expected, "{status}");
    }
}

#[test]
fn query_respects_the_limit_in_creation_order_across_pages() {
    let (_db, runs) = setup();
    for index in 0..700 {
        let tags = if index % 2 == 0 { vec!["even"] } else { vec!["odd"] };
        let run = runs.create(None, tags, &Value::Null).unwrap();
        if index % 7 == 0 {
            runs.complete(run).unwrap();
        }
    }
    let all = runs.list(usize::MAX).unwrap();
    assert_eq!(all.len(), 700);
    let in_order = model(&all, |_| true);
    assert_eq!(ids(&all), in_order, "oldest first, ties by id");
    let evens = model(&all, |view| view.has_tag("even"));
    assert_eq!(ids(&runs.query(&RunQuery::new().tag("even"), 300).unwrap()), evens[..300]);
    // The status index holds every run; only 1 in 7 of them is both completed and even:
    // the query reads several pages of entries to find its matches.
    let query = RunQuery::new().status(Completed).tag("even");
    let expected = model(&all, |view| view.status() == Completed && view.has_tag("even"));
    assert_eq!(ids(&runs.query(&query, usize::MAX).unwrap()), expected);
    assert_eq!(ids(&runs.query(&query, 10).unwrap()), expected[..10]);
    assert!(runs.query(&query, 0).unwrap().is_empty());
    assert_eq!(ids(&runs.list(5).unwrap()), in_order[..5]);
}

#[test]
fn list_returns_every_run_oldest_first() {
    let (_db, runs) = setup();
    let first = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    thread::sleep(std::time::Duration::from_millis(2));
    let second = runs.create(Some(first), NO_TAGS, &Value::Null).unwrap();
    thread::sleep(std::time::Duration::from_millis(2));
    let third = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    runs.archive(first).unwrap();
    assert_eq!(ids(&runs.list(10).unwrap()), [first, second, third]);
    assert_eq!(ids(&runs.list(2).unwrap()), [first, second]);
    assert!(runs.list(0).unwrap().is_empty());
}

#[test]
fn children_are_the_direct_children_only() {
    let (_db, runs) = setup();
    let root = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    let a = runs.create(Some(root), NO_TAGS, &Value::Null).unwrap();
    let b = runs.create(Some(root), NO_TAGS, &Value::Null).unwrap();
    let grandchild = runs.create(Some(a), NO_TAGS, &Value::Null).unwrap();
    let children: BTreeSet<RunId> = ids(&runs.children(root).unwrap()).into_iter().collect();
    assert_eq!(children, BTreeSet::from([a, b]));
    assert_eq!(ids(&runs.children(a).unwrap()), [grandchild]);
    assert!(runs.children(grandchild).unwrap().is_empty());
    assert_eq!(runs.children(RunId::random()), Err(Error::NotFound { what: "run" }));
}

/// Writes raw keys of `run` under other primitives' tags, as they would.
fn write_data(db: &Database, run: RunId) -> BTreeSet<Vec<u8>> {
    let keys = [
        KeyBuf::new(run, TypeTag::Kv).push_component(b"user").push_bytes(b"name").finish(),
        KeyBuf::new(run, TypeTag::Event).push_u64(0).finish(),
        KeyBuf::new(run, TypeTag::State).push_bytes(b"cell").finish(),
        KeyBuf::new(run, TypeTag::Trace).push_u8(0x01).push_u64(9).finish(),
        KeyBuf::new(run, TypeTag::Json).push_bytes(b"doc").finish(),
        KeyBuf::new(run, TypeTag::Vector).push_bytes(b"embeddings").finish(),
        KeyBuf::new(run, TypeTag::Run).push_u8(0x7f).finish(),
    ];
    for key in &keys {
        db.put(key, b"payload").expect("put");
    }
    keys.into_iter().collect()
}

#[test]
fn archive_keeps_every_key_of_the_run() {
    let (db, runs) = setup();
    let run = runs.create(None, ["keep"], &Value::from("meta")).unwrap();
    let data = write_data(&db, run);
    runs.archive(run).unwrap();
    let view = get(&runs, run);
    assert_eq!((view.status(), view.metadata()), (Archived, ValueRef::Str("meta")));
    assert_eq!(tags_of(&view), ["keep"]);
    let kept = keys_under(&db, &run_prefix(run));
    assert!(kept.is_superset(&data) && kept.contains(&record_key(run)));
    assert_eq!(kept.len(), data.len() + 1);
    assert_eq!(ids(&runs.query(&RunQuery::new().status(Archived), 10).unwrap()), [run]);
    assert_eq!(
        runs.update_status(run, Active),
        Err(Error::InvalidTransition { from: "Archived", to: "Active" })
    );
}

#[test]
fn delete_removes_every_key_under_the_run_prefix_and_no_other_run_key() {
    let (db, runs) = setup();
    let run = runs.create(None, ["shared"], &Value::Null).unwrap();
    let other = runs.create(None, ["shared"], &Value::Null).unwrap();
    write_data(&db, run);
    let other_data = write_data(&db, other);
    let before_other = keys_under(&db, &run_prefix(other));

    assert_eq!(runs.delete(run).unwrap(), [run]);
    assert!(keys_under(&db, &run_prefix(run)).is_empty(), "every key of the run is gone");
    assert_eq!(runs.get(run).unwrap(), None);
    assert_eq!(keys_under(&db, &run_prefix(other)), before_other, "the other run is intact");
    assert!(before_other.is_superset(&other_data));
    assert_eq!(ids(&runs.query(&RunQuery::new().tag("shared"), 10).unwrap()), [other]);
    assert_eq!(ids(&runs.list(10).unwrap()), [other]);
    assert_index_matches_records(&db, &runs);
    assert_eq!(runs.delete(run), Err(Error::NotFound { what: "run" }));
}

#[test]
fn delete_cascades_to_every_descendant_and_leaves_the_rest() {
    let (db, runs) = setup();
    let keep = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    let root = runs.create(Some(keep), NO_TAGS, &Value::Null).unwrap();
    let a = runs.create(Some(root), ["a"], &Value::Null).unwrap();
    let b = runs.create(Some(root), NO_TAGS, &Value::Null).unwrap();
    let grandchild = runs.create(Some(a), NO_TAGS, &Value::Null).unwrap();
    let sibling = runs.create(Some(keep), NO_TAGS, &Value::Null).unwrap();
    for run in [keep, root, a, b, grandchild, sibling] {
        write_data(&db, run);
    }
    runs.fail(b, "x").unwrap();

    let deleted = runs.delete(root).unwrap();
    assert_eq!(deleted[0], root, "the run first, then its descendants");
    let deleted: BTreeSet<RunId> = deleted.into_iter().collect();
    assert_eq!(deleted, BTreeSet::from([root, a, b, grandchild]));
    for run in [root, a, b, grandchild] {
        assert!(keys_under(&db, &run_prefix(run)).is_empty(), "{run} is gone");
    }
    for run in [keep, sibling] {
        assert_eq!(keys_under(&db, &run_prefix(run)).len(), 8, "{run} keeps record and data");
    }
    assert_eq!(ids(&runs.children(keep).unwrap()), [sibling]);
    let views = assert_index_matches_records(&db, &runs);
    assert_eq!(views.len(), 2);
}

#[test]
fn index_entries_match_records_after_a_series_of_updates() {
    let (db, runs) = setup();
    let mut rng = fastrand::Rng::with_seed(0x5eed_0001);
    let tags = ["alpha", "beta", "gamma", "delta\0zero", ""];
    let mut live: Vec<RunId> = Vec::new();
    for step in 0..400 {
        let pick = |rng: &mut fastrand::Rng, live: &[RunId]| {
            live.get(rng.usize(..live.len().max(1))).copied()
        };
        let outcome = match rng.u8(..8) {
            0 | 1 => {
                let parent = if rng.bool() { pick(&mut rng, &live) } else { None };
                let chosen: Vec<&str> = tags.iter().copied().filter(|_| rng.bool()).collect();
                runs.create(parent, chosen, &Value::from(step)).map(|run| live.push(run))
            }
            2 | 3 => match pick(&mut rng, &live) {
                Some(run) => runs.update_status(run, RunStatus::ALL[rng.usize(..6)]),
                None => Ok(()),
            },
            4 => match pick(&mut rng, &live) {
                Some(run) => runs.add_tags(run, [tags[rng.usize(..tags.len())]]),
                None => Ok(()),
            },
            5 => match pick(&mut rng, &live) {
                Some(run) => runs.remove_tags(run, [tags[rng.usize(..tags.len())]]),
                None => Ok(()),
            },
            6 => match pick(&mut rng, &live) {
                Some(run) => runs.fail(run, "failed"),
                None => Ok(()),
            },
            _ => match pick(&mut rng, &live) {
                Some(run) if rng.u8(..4) == 0 => runs.delete(run).map(|deleted| {
                    live.retain(|run| !deleted.contains(run));
                }),
                Some(run) => runs.update_metadata(run, &Value::from(-step)),
                None => Ok(()),
            },
        };
        match outcome {
            Ok(()) | Err(Error::InvalidTransition { .. } | Error::InvalidName { .. }) => {}
            Err(error) => panic!("step {step}: {error}"),
        }
        if step % 50 == 0 {
            assert_index_matches_records(&db, &runs);
        }
    }
    let views = assert_index_matches_records(&db, &runs);
    let expected: BTreeSet<RunId> = live.iter().copied().collect();
    assert_eq!(views.iter().map(RunView::id).collect::<BTreeSet<_>>(), expected);
    for view in &views {
        if let Some(parent) = view.parent() {
            assert!(expected.contains(&parent), "no run outlives its parent");
        }
    }
}

#[test]
fn operations_in_one_transaction_commit_or_fail_together() {
    let (db, runs) = setup();
    let kv_key = |run| KeyBuf::new(run, TypeTag::Kv).push_bytes(b"k").finish();

    let mut txn = db.begin();
    let run = txn.runs().create(None, ["txn"], &Value::Null).unwrap();
    txn.put(kv_key(run), b"v").unwrap();
    txn.runs().add_tags(run, ["more"]).unwrap();
    txn.runs().update_status(run, Paused).unwrap();
    let seen = txn.runs().query(&RunQuery::new().tag("more"), 10).unwrap();
    assert_eq!(ids(&seen), [run], "the transaction sees its own writes");
    assert_eq!(runs.get(run).unwrap(), None, "nobody else does");
    txn.rollback();
    assert!(keys_under(&db, b"").is_empty(), "rolled back: nothing at all");

    let committed = db.transaction_typed(TransactionOptions::default(), |txn| {
        let run = txn.runs().create(None, ["txn"], &Value::Null)?;
        txn.put(kv_key(run), b"v")?;
        let child = txn.runs().create(Some(run), NO_TAGS, &Value::Null)?;
        txn.runs().complete(child)?;
        Ok::<_, Error>((run, child))
    });
    let (run, child) = committed.unwrap().value;
    assert_eq!(get(&runs, child).status(), Completed);
    assert_eq!(db.get(kv_key(run)).unwrap().as_deref(), Some(&b"v"[..]));

    let version = db.visible_version();
    let failed = db.transaction_typed(TransactionOptions::default(), |txn| {
        txn.runs().add_tags(run, ["late"])?;
        txn.put(kv_key(child), b"w")?;
        txn.runs().update_status(child, Active)
    });
    assert_eq!(
        failed.map(|c| c.value),
        Err(Error::InvalidTransition { from: "Completed", to: "Active" })
    );
    assert_eq!(db.visible_version(), version, "the failed operation took the others with it");
    assert_eq!(tags_of(&get(&runs, run)), ["txn"]);

    let mut txn = db.begin();
    assert_eq!(txn.runs().delete(run).unwrap(), [run, child]);
    txn.commit().unwrap();
    assert!(keys_under(&db, b"").is_empty(), "the delete took both runs and their index");
}

#[test]
fn a_corrupt_record_is_an_error_not_a_panic() {
    let (db, runs) = setup();
    let parent = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    let run = runs.create(Some(parent), ["a", "b"], &Value::from("m")).unwrap();
    runs.fail(run, "why").unwrap();
    let good = db.get(record_key(run)).unwrap().unwrap().to_vec();
    let is_corrupt =
        |result: Result<Option<RunView>, Error>| matches!(result, Err(Error::Corrupt { .. }));
    for len in 0..good.len() {
        db.put(record_key(run), &good[..len]).unwrap();
        assert!(is_corrupt(runs.get(run)), "truncated to {len} bytes");
    }
    let mut longer = good.clone();
    longer.push(0);
    db.put(record_key(run), &longer).unwrap();
    assert!(is_corrupt(runs.get(run)), "a trailing byte");
    for at in 0..4 {
        let mut flipped = good.clone();
        flipped[at] ^= 0x80;
        db.put(record_key(run), &flipped).unwrap();
        assert!(is_corrupt(runs.get(run)), "byte {at} flipped");
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2000 {
        let mut noisy = good.clone();
        let at = rng.usize(..noisy.len());
        noisy[at] = rng.u8(..);
        db.put(record_key(run), &noisy).unwrap();
        let _ = runs.get(run); // never panics
    }
    db.put(record_key(run), &good).unwrap();
    assert_eq!(get(&runs, run).error(), Some("why"), "the good record reads again");

    // An index entry whose record is gone is reported, not skipped.
    db.delete(record_key(run)).unwrap();
    let query = runs.query(&RunQuery::new().tag("a"), 10);
    assert!(matches!(query, Err(Error::Corrupt { .. })), "{query:?}");
}

#[test]
fn concurrent_moves_of_one_run_serialize() {
    let (_db, runs) = setup();
    let run = runs.create(None, NO_TAGS, &Value::Null).unwrap();
    let outcomes: Vec<Result<(), Error>> = thread::scope(|scope| {
        let workers: Vec<_> = [Completed, Failed, Cancelled, Paused]
            .into_iter()
            .map(|to| {
                let runs = runs.clone();
                scope.spawn(move || runs.update_status(run, to))
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap()).collect()
    });
    let moved = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    for outcome in &outcomes {
        assert!(matches!(outcome, Ok(()) | Err(Error::InvalidTransition { .. })), "{outcome:?}");
    }
    // Paused then one of the finished statuses is the longest valid sequence.
    assert!((1..=2).contains(&moved), "{outcomes:?}");
}

#[test]
fn children_created_while_the_parent_is_deleted_are_never_orphaned() {
    for round in 0..20 {
        let (db, runs) = setup();
        let parent = runs.create(None, NO_TAGS, &Value::Null).unwrap();
        let created: BTreeMap<RunId, ()> = thread::scope(|scope| {
            let makers: Vec<_> = (0..3)
                .map(|_| {
                    let runs = runs.clone();
                    scope.spawn(move || {
                        let mut made = Vec::new();
                        for _ in 0..40 {
                            match runs.create(Some(parent), NO_TAGS, &Value::Null) {
                                Ok(child) => made.push(child),
                                Err(Error::ParentMissing) => break,
                                Err(error) if error.is_conflict() => {}
                                Err(error) => panic!("{error}"),
                            }
                        }
                        made
                    })
                })
                .collect();
            thread::sleep(std::time::Duration::from_micros(200 * (round % 5)));
            runs.delete(parent).unwrap();
            makers.into_iter().flat_map(|maker| maker.join().unwrap()).map(|c| (c, ())).collect()
        });
        assert_eq!(runs.get(parent).unwrap(), None);
        for child in created.keys() {
            assert_eq!(
                runs.get(*child).unwrap(),
                None,
                "a child made before the delete went with it"
            );
        }
        assert!(assert_index_matches_records(&db, &runs).is_empty(), "round {round}");
    }
}
