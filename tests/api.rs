//! The rest of the engine's public API: limits, options, history, time travel at the edges,
//! iteration from both ends, transaction scans, the transaction helpers and their retries,
//! `Bytes`, and the counters of `stats()`.

#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use common::{drain_mixed, expected_mixed, open, open_quiet, owned, Entries, NO_MAINTENANCE};
use inmem_engine::{
    Bytes, CommitVersion, Committed, Database, Error, Isolation, Limit, Limits, Options, Retention,
    RetryPolicy, TransactionOptions,
};
use inmem_model::{Buffer, Span, State, Write};

fn limited(limits: Limits) -> Database {
    open(Options::default().limits(limits).maintenance_interval(NO_MAINTENANCE))
}

fn too_big(limit: Limit, actual: u64, max: u64) -> Error {
    Error::LimitExceeded { limit, actual, max }
}

fn get(db: &Database, key: &[u8]) -> Option<Vec<u8>> {
    db.get(key).expect("get").map(|value| value.to_vec())
}

// ----- limits -------------------------------------------------------------------------------

#[test]
fn an_oversized_key_is_refused_everywhere_with_its_size_and_the_limit() {
    let db = limited(Limits { key_bytes_max: 8, ..Limits::default() });
    let long = b"123456789";
    let refused = Err(too_big(Limit::KeyBytes, 9, 8));
    assert_eq!(db.put(long, b"v"), refused);
    assert_eq!(db.put_with_ttl(long, b"v", Duration::from_secs(1)), refused);
    assert_eq!(db.delete(long), refused);
    assert_eq!(db.get(long), refused.clone().map(|_: CommitVersion| None));
    assert_eq!(db.history(long, 1, None), refused.clone().map(|_| vec![]));
    assert_eq!(db.snapshot().get(long), refused.clone().map(|_| None));
    assert_eq!(db.snapshot().history(long, 1, None), refused.clone().map(|_| vec![]));
    let mut txn = db.begin();
    assert_eq!(txn.get(long), refused.clone().map(|_| None));
    assert_eq!(txn.put(long, b"v"), refused.clone().map(|_| ()));
    assert_eq!(txn.put_with_ttl(long, b"v", Duration::from_secs(1)), refused.clone().map(|_| ()));
    assert_eq!(txn.delete(long), refused.clone().map(|_| ()));
    assert_eq!(txn.write_count(), 0, "a refused write buffers nothing");

    txn.put(b"12345678", b"at the limit").expect("a key of exactly the limit is fine");
    assert!(txn.commit().is_ok(), "the transaction stays usable");
    assert_eq!(get(&db, b"12345678").as_deref(), Some(&b"at the limit"[..]));
    assert_eq!(db.stats().commits, 1, "nothing refused was committed");
}

#[test]
fn the_default_key_limit_is_four_kibibytes() {
    let db = open_quiet();
    assert_eq!(Limits::default().key_bytes_max, 4096);
    assert!(db.put(vec![b'k'; 4096], b"v").is_ok());
    assert_eq!(db.put(vec![b'k'; 4097], b"v"), Err(too_big(Limit::KeyBytes, 4097, 4096)));
}

#[test]
fn an_oversized_value_is_refused_with_its_size_and_the_limit() {
    let db = limited(Limits { value_bytes_max: 16, ..Limits::default() });
    let refused = Err(too_big(Limit::ValueBytes, 17, 16));
    assert_eq!(db.put(b"k", [0; 17]), refused);
    assert_eq!(db.put_with_ttl(b"k", [0; 17], Duration::from_secs(1)), refused);
    let mut txn = db.begin();
    assert_eq!(txn.put(b"k", [0; 17]), refused.clone().map(|_| ()));
    assert_eq!(txn.put_with_ttl(b"k", [0; 17], Duration::from_secs(1)), refused.map(|_| ()));
    txn.put(b"k", [7; 16]).expect("a value of exactly the limit is fine");
    txn.commit().expect("commit");
    assert_eq!(get(&db, b"k"), Some(vec![7; 16]));
    assert!(db.put(b"k", []).is_ok());
}

#[test]
fn a_transaction_writing_too_many_keys_is_refused() {
    let db = limited(Limits { transaction_writes_max: 4, ..Limits::default() });
    let mut txn = db.begin();
    for key in [&b"a"[..], b"b", b"c", b"d"] {
        txn.put(key, b"v").expect("within the limit");
    }
    txn.put(b"a", b"again").expect("rewriting a buffered key adds no write");
    txn.delete(b"b").expect("nor does deleting one");
    assert_eq!(txn.delete(b"e"), Err(too_big(Limit::TransactionWrites, 5, 4)));
    assert_eq!(txn.put(b"e", b"v"), Err(too_big(Limit::TransactionWrites, 5, 4)));
    assert_eq!(txn.write_count(), 4);
    txn.commit().expect("the transaction stays usable");
    assert_eq!(get(&db, b"a").as_deref(), Some(&b"again"[..]));
    assert_eq!(get(&db, b"b"), None);
    assert_eq!(get(&db, b"e"), None);
}

#[test]
fn a_serializable_transaction_reading_too_much_is_refused() {
    let db = limited(Limits { transaction_reads_max: 3, ..Limits::default() });
    for key in [&b"a"[..], b"b", b"c", b"d"] {
        db.put(key, b"v").expect("put");
    }
    let serializable = TransactionOptions::default().isolation(Isolation::Serializable);
    let mut txn = db.begin_with(serializable);
    txn.get(b"a").expect("first read");
    txn.get(b"a").expect("a repeated read records nothing new");
    assert_eq!(txn.prefix(b"b").expect("second read: a scan").count(), 1);
    txn.put(b"own", b"v").expect("put");
    txn.get(b"own").expect("reading an own write records nothing");
    txn.get(b"c").expect("third read");
    assert_eq!(txn.get(b"d"), Err(too_big(Limit::TransactionReads, 4, 3)));
    assert_eq!(
        txn.range(&b"a"[..]..).map(|_| ()).err(),
        Some(too_big(Limit::TransactionReads, 4, 3))
    );
    assert!(txn.commit().is_ok(), "the transaction stays usable");

    let mut relaxed = db.begin();
    for key in [&b"a"[..], b"b", b"c", b"d", b"e"] {
        relaxed.get(key).expect("snapshot isolation keeps no read set");
    }
    assert_eq!(relaxed.prefix(b"").expect("scan").count(), 5);
}

// ----- options ------------------------------------------------------------------------------

#[test]
fn invalid_options_are_refused_with_the_name_of_the_option() {
    let retry = RetryPolicy::default();
    let cases = [
        (
            Options::default().limits(Limits { key_bytes_max: 0, ..Limits::default() }),
            "limits.key_bytes_max",
        ),
        (
            Options::default().limits(Limits { transaction_writes_max: 0, ..Limits::default() }),
            "limits.transaction_writes_max",
        ),
        (Options::default().retry(RetryPolicy { attempts_max: 0, ..retry }), "retry.attempts_max"),
        (
            Options::default().retry(RetryPolicy {
                backoff_base: Duration::from_millis(2),
                backoff_max: Duration::from_millis(1),
                ..retry
            }),
            "retry.backoff_base",
        ),
        (Options::default().maintenance_interval(Duration::ZERO), "maintenance_interval"),
    ];
    for (options, expected) in cases {
        match Database::with_options(options) {
            Err(error @ Error::InvalidOption { name, .. }) => {
                assert_eq!(name, expected);
                assert!(error.to_string().contains(expected), "{error}");
            }
            other => panic!("{expected}: expected InvalidOption, got {other:?}"),
        }
    }
}

#[test]
fn options_build_up_from_their_defaults() {
    let three = std::num::NonZeroUsize::new(3).expect("non-zero");
    let options = Options::default()
        .isolation(Isolation::Serializable)
        .retention(Retention::KeepLast(three))
        .maintenance_interval(Duration::from_millis(7));
    assert_eq!(Options::default().isolation, Isolation::Snapshot);
    assert_eq!(Options::default().retention, Retention::KeepLast(std::num::NonZeroUsize::MIN));
    let db = open(options.clone());
    assert_eq!(db.options().isolation, Isolation::Serializable);
    assert_eq!(db.options().retention, Retention::KeepLast(three));
    assert_eq!(db.options().maintenance_interval, Duration::from_millis(7));
    assert_eq!(db.options().limits, options.limits);
    assert_eq!(db.begin().isolation(), Isolation::Serializable);
}

// ----- history and time travel ---------------------------------------------------------------

#[test]
fn history_lists_versions_newest_first_and_pages_with_before() {
    let db = open_quiet();
    db.put(b"other", b"x").expect("put");
    let mut written = Vec::new();
    for n in 0..5 {
        written.push((db.put(b"k", format!("v{n}")).expect("put"), Some(format!("v{n}"))));
    }
    written.push((db.delete(b"k").expect("delete"), None));
    written.push((db.put(b"k", b"back").expect("put"), Some("back".to_string())));
    written.reverse();

    let all = db.history(b"k", 100, None).expect("history");
    let seen: Vec<_> = all
        .iter()
        .map(|record| {
            (record.version, record.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
        })
        .collect();
    assert_eq!(seen, written, "newest first; the deletion is a version without a value");
    assert!(all.iter().all(|record| !record.reaped && record.expires_at_ms.is_none()));

    let mut pages = Vec::new();
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = db.history(b"k", 3, before).expect("history");
        let Some(last) = page.last() else { break };
        if let Some(before) = before {
            assert!(page.iter().all(|record| record.version < before), "only older versions");
        }
        before = Some(last.version);
        pages.push(page.len());
        paged.extend(page.iter().map(|record| record.version));
    }
    assert_eq!(pages, [3, 3, 1], "pagination with `before` visits every version once");
    assert_eq!(paged, written.iter().map(|(version, _)| *version).collect::<Vec<_>>());

    assert_eq!(db.history(b"k", 0, None).expect("history"), []);
    assert_eq!(db.history(b"absent", 10, None).expect("history"), []);
    let oldest = written.last().map(|(version, _)| *version).expect("written");
    assert_eq!(db.history(b"k", 10, Some(oldest)).expect("history"), []);
}

#[test]
fn a_snapshot_reports_only_the_history_it_can_see() {
    let db = open_quiet();
    let first = db.put(b"k", b"1").expect("put");
    let snapshot = db.snapshot();
    db.put(b"k", b"2").expect("put");
    let history = snapshot.history(b"k", 10, None).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].version, first);
    assert_eq!(db.history(b"k", 10, None).expect("history").len(), 2);
}

#[test]
fn snapshot_at_a_future_version_is_not_visible() {
    let db = open_quiet();
    assert_eq!(db.visible_version(), CommitVersion::ZERO);
    let empty = db.snapshot_at(CommitVersion::ZERO).expect("the empty state is visible");
    assert_eq!(empty.prefix(b"").count(), 0);
    let version = db.put(b"k", b"v").expect("put");
    assert_eq!(version, CommitVersion::new(1), "versions start at 1");
    let future = CommitVersion::new(2);
    assert_eq!(
        db.snapshot_at(future).map(|snapshot| snapshot.version()),
        Err(Error::VersionNotVisible { requested: future, visible: version })
    );
    assert_eq!(db.snapshot_at(version).expect("visible").version(), version);
    assert_eq!(empty.get(b"k").expect("get"), None, "the old snapshot still sees nothing");
}

#[test]
fn commit_versions_grow_by_one_per_commit() {
    let db = open_quiet();
    let mut versions = vec![db.put(b"a", b"1").expect("put"), db.delete(b"a").expect("delete")];
    let mut txn = db.begin();
    txn.put(b"b", b"2").expect("put");
    versions.push(txn.commit().expect("commit"));
    versions.push(db.delete(b"never-written").expect("a no-op delete still commits"));
    let expected: Vec<_> = (1..=4).map(CommitVersion::new).collect();
    assert_eq!(versions, expected);
    assert_eq!(db.visible_version(), CommitVersion::new(4));
    assert_eq!(db.snapshot().version(), CommitVersion::new(4));
    assert_eq!(db.begin().read_version(), CommitVersion::new(4));
}

// ----- iteration ----------------------------------------------------------------------------

/// Several hundred keys of varied lengths (more than one scan chunk), some deleted again.
fn populate(db: &Database, rng: &mut fastrand::Rng) -> State {
    let mut model = State::new();
    for _ in 0..1_500 {
        let len = rng.usize(0..5);
        let key: Vec<u8> = (0..len).map(|_| rng.u8(b'a'..=b'h')).collect();
        if rng.u8(0..5) == 0 {
            db.delete(&key).expect("delete");
            model.remove(&key);
        } else {
            let value = rng.u64(..).to_le_bytes().to_vec();
            db.put(&key, &value).expect("put");
            model.insert(key, value);
        }
    }
    model
}

fn random_bound(rng: &mut fastrand::Rng) -> Bound<Vec<u8>> {
    let len = rng.usize(0..4);
    let point: Vec<u8> = (0..len).map(|_| rng.u8(b'a'..=b'i')).collect();
    match rng.u8(0..3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(point),
        _ => Bound::Excluded(point),
    }
}

fn random_ends(rng: &mut fastrand::Rng) -> u64 {
    match rng.u8(0..4) {
        0 => 0,
        1 => u64::MAX,
        _ => rng.u64(..),
    }
}

fn entries(span: &Span, state: &State) -> Entries {
    span.entries(state)
}

#[test]
fn snapshot_scans_match_a_btreemap_forward_reverse_and_from_both_ends() {
    let db = open_quiet();
    let mut rng = fastrand::Rng::with_seed(7);
    let model = populate(&db, &mut rng);
    let snapshot = db.snapshot();
    let all: Entries = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(all.len() > 300, "more keys than one scan chunk");
    assert_eq!(owned(snapshot.prefix(b"")), all);
    assert!(owned(snapshot.prefix(b"").rev()).into_iter().eq(all.iter().rev().cloned()));
    for _ in 0..400 {
        let ends = random_ends(&mut rng);
        let (start, end) = (random_bound(&mut rng), random_bound(&mut rng));
        let span = Span::Range(start.clone(), end.clone());
        let got = drain_mixed(snapshot.range((start, end)), ends);
        assert_eq!(got, expected_mixed(&entries(&span, &model), ends), "{span:?} {ends:#x}");

        let prefix: Vec<u8> = (0..rng.usize(0..3)).map(|_| rng.u8(b'a'..=b'i')).collect();
        let got = drain_mixed(snapshot.prefix(&prefix), ends);
        let span = Span::Prefix(prefix);
        assert_eq!(got, expected_mixed(&entries(&span, &model), ends), "{span:?} {ends:#x}");
    }
}

#[test]
fn alternating_ends_of_a_long_scan_meet_exactly_once() {
    let db = open_quiet();
    for n in 0..1_000u32 {
        db.put(format!("{n:04}"), n.to_le_bytes()).expect("put");
    }
    let snapshot = db.snapshot();
    for pattern in [0xAAAA_AAAA_AAAA_AAAA, 0x5555_5555_5555_5555, 0xFFFF_0000_FFFF_0000] {
        let mut iter = snapshot.prefix(b"");
        let mut seen = Vec::new();
        let mut step = 0u32;
        loop {
            let from_back = pattern & (1u64 << (step % 64)) != 0;
            let item = if from_back { iter.next_back() } else { iter.next() };
            let Some((key, _)) = item else { break };
            seen.push(std::str::from_utf8(&key).expect("ascii").parse::<u32>().expect("a number"));
            step += 1;
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..1_000).collect::<Vec<_>>(), "each key once, none lost in the middle");
    }
}

/// Keys around the length up to which the index stores keys inline, sharing long prefixes.
#[test]
fn long_keys_read_and_scan_like_short_ones() {
    let db = open_quiet();
    let mut model = State::new();
    for len in 20..45usize {
        for last in [b'a', b'b'] {
            let mut key = vec![b'p'; len];
            key.push(last);
            let value = format!("{len}{}", last as char).into_bytes();
            db.put(&key, &value).expect("put");
            model.insert(key, value);
        }
    }
    let snapshot = db.snapshot();
    let all: Entries = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(owned(snapshot.prefix(b"ppp")), all);
    for (key, value) in &model {
        assert_eq!(snapshot.get(key).expect("get").as_deref(), Some(value.as_slice()));
        let span = Span::Prefix(key.clone());
        assert_eq!(owned(snapshot.prefix(key)), entries(&span, &model), "prefix {}", key.len());
        let range = Span::Range(Bound::Excluded(key.clone()), Bound::Unbounded);
        let got = owned(snapshot.range((Bound::Excluded(key.clone()), Bound::Unbounded)).rev());
        assert!(got.into_iter().eq(entries(&range, &model).into_iter().rev()));
    }
}

#[test]
fn inverted_and_empty_ranges_are_empty() {
    let db = open_quiet();
    for key in [&b"a"[..], b"b", b"c"] {
        db.put(key, b"v").expect("put");
    }
    let snapshot = db.snapshot();
    let mut txn = db.begin();
    txn.put(b"b", b"own").expect("put");
    txn.put(b"bb", b"own").expect("put");
    let a = b"a".to_vec();
    let c = b"c".to_vec();
    let ranges = [
        (Bound::Included(c.clone()), Bound::Included(a.clone())),
        (Bound::Included(c.clone()), Bound::Excluded(a.clone())),
        (Bound::Excluded(c.clone()), Bound::Unbounded),
        (Bound::Included(a.clone()), Bound::Excluded(a.clone())),
        (Bound::Excluded(a.clone()), Bound::Excluded(a.clone())),
        (Bound::Excluded(a.clone()), Bound::Included(a.clone())),
        (Bound::Excluded(b"b".to_vec()), Bound::Excluded(b"b\0".to_vec())),
    ];
    for range in ranges {
        assert_eq!(snapshot.range(range.clone()).count(), 0, "{range:?}");
        assert_eq!(snapshot.range(range.clone()).rev().count(), 0, "{range:?}");
        assert_eq!(txn.range(range.clone()).expect("scan").count(), 0, "{range:?}");
        assert_eq!(txn.range(range.clone()).expect("scan").rev().count(), 0, "{range:?}");
    }
    assert_eq!(snapshot.range(&b"b"[..]..=&b"b"[..]).count(), 1, "a one-key range");
}

#[test]
fn a_prefix_of_high_bytes_has_no_upper_bound() {
    let db = open_quiet();
    for key in [&b"\xfe"[..], b"\xff", b"\xff\xff", b"\xff\xff\x00", b"\xff\xff\xff\xff"] {
        db.put(key, b"v").expect("put");
    }
    let snapshot = db.snapshot();
    let keys = |prefix: &[u8]| -> Vec<Vec<u8>> {
        snapshot.prefix(prefix).map(|(key, _)| key.to_vec()).collect()
    };
    assert_eq!(keys(b"\xff\xff").len(), 3);
    assert_eq!(keys(b"\xff").len(), 4);
    assert_eq!(keys(b"").len(), 5);
    assert_eq!(keys(b"\xfe").len(), 1);
}

#[test]
fn transaction_scans_merge_own_writes_and_deletes() {
    let db = open_quiet();
    let mut rng = fastrand::Rng::with_seed(11);
    let committed = populate(&db, &mut rng);
    let mut txn = db.begin();
    let mut buffer = Buffer::default();
    for _ in 0..150 {
        let key: Vec<u8> = (0..rng.usize(0..4)).map(|_| rng.u8(b'a'..=b'h')).collect();
        if rng.bool() {
            txn.delete(&key).expect("delete");
            buffer.writes.insert(key, Write::delete());
        } else {
            let value = vec![rng.u8(..); rng.usize(0..3)];
            txn.put(&key, &value).expect("put");
            buffer.writes.insert(key, Write::put(value));
        }
    }
    db.put(b"zz-after-begin", b"invisible").expect("put");
    let mut seen = committed.clone();
    buffer.apply_to(&mut seen);
    let all: Entries = seen.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(owned(txn.prefix(b"").expect("scan")), all);
    assert!(owned(txn.prefix(b"").expect("scan").rev()).into_iter().eq(all.iter().rev().cloned()));
    for _ in 0..300 {
        let ends = random_ends(&mut rng);
        let (start, end) = (random_bound(&mut rng), random_bound(&mut rng));
        let span = Span::Range(start.clone(), end.clone());
        let got = drain_mixed(txn.range((start, end)).expect("scan"), ends);
        assert_eq!(got, expected_mixed(&entries(&span, &seen), ends), "{span:?} {ends:#x}");
        let prefix: Vec<u8> = (0..rng.usize(0..3)).map(|_| rng.u8(b'a'..=b'i')).collect();
        let got = drain_mixed(txn.prefix(&prefix).expect("scan"), ends);
        let span = Span::Prefix(prefix);
        assert_eq!(got, expected_mixed(&entries(&span, &seen), ends), "{span:?} {ends:#x}");
    }
    drop(txn);
    assert_eq!(owned(db.snapshot().prefix(b"")).len(), committed.len() + 1, "nothing leaked");
}

// ----- transactions -------------------------------------------------------------------------

#[test]
fn a_transaction_reads_its_own_writes_and_nobody_else_does_before_commit() {
    let db = open_quiet();
    db.put(b"k", b"committed").expect("put");
    let mut txn = db.begin();
    txn.put(b"k", b"mine").expect("put");
    txn.put(b"new", b"mine").expect("put");
    assert_eq!(txn.get(b"k").expect("get").as_deref(), Some(&b"mine"[..]));
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"committed"[..]), "no dirty read");
    assert_eq!(get(&db, b"new"), None);
    let mut other = db.begin();
    assert_eq!(other.get(b"new").expect("get"), None, "nor in another transaction");
    txn.delete(b"k").expect("delete");
    assert_eq!(txn.get(b"k").expect("get"), None, "its own delete");
    let version = txn.commit().expect("commit");
    assert_eq!(get(&db, b"k"), None);
    assert_eq!(get(&db, b"new").as_deref(), Some(&b"mine"[..]));
    assert_eq!(other.get(b"new").expect("get"), None, "an older snapshot still does not");
    assert!(other.read_version() < version);
}

#[test]
fn a_rolled_back_or_dropped_transaction_leaves_no_trace() {
    let db = open_quiet();
    db.put(b"k", b"v").expect("put");
    let before = db.stats();
    let mut txn = db.begin();
    txn.put(b"k", b"changed").expect("put");
    txn.put(b"new", b"v").expect("put");
    txn.delete(b"k").expect("delete");
    txn.rollback();
    {
        let mut txn = db.begin();
        txn.put(b"dropped", b"v").expect("put");
    }
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&db, b"new"), None);
    assert_eq!(get(&db, b"dropped"), None);
    let after = db.stats();
    assert_eq!(after, before, "no commit, no key, no version, no open snapshot");
}

#[test]
fn a_conflicting_commit_names_the_key_and_makes_none_of_its_writes_visible() {
    let db = open_quiet();
    db.put(b"b", b"0").expect("put");
    let mut txn = db.begin();
    for key in [&b"a"[..], b"b", b"c"] {
        txn.put(key, b"mine").expect("put");
    }
    db.put(b"b", b"theirs").expect("put");
    assert_eq!(txn.commit(), Err(Error::Conflict { key: Bytes::from("b") }));
    assert_eq!(get(&db, b"a"), None);
    assert_eq!(get(&db, b"b").as_deref(), Some(&b"theirs"[..]));
    assert_eq!(get(&db, b"c"), None);
    let stats = db.stats();
    assert_eq!((stats.commits, stats.conflicts, stats.keys), (2, 1, 1));
}

#[test]
fn transaction_with_returns_the_closure_value_and_the_commit_version() {
    let db = open_quiet();
    db.put(b"k", b"v").expect("put");
    let committed = db
        .transaction_with(TransactionOptions::default(), |txn| {
            txn.put(b"k", b"w")?;
            Ok("done")
        })
        .expect("commits");
    assert_eq!(committed, Committed { value: "done", version: CommitVersion::new(2) });
    assert_eq!(db.visible_version(), committed.version);
    let read_only =
        db.transaction_with(TransactionOptions::default(), |txn| txn.get(b"k")).expect("commits");
    assert_eq!(read_only.version, CommitVersion::new(2), "a read-only commit takes no version");
    assert_eq!(read_only.value.as_deref(), Some(&b"w"[..]));
    let value = db.transaction(|txn| Ok(txn.read_version())).expect("commits");
    assert_eq!(value, CommitVersion::new(2));
    assert_eq!(db.stats().commits, 2);
}

#[test]
fn transaction_returns_the_closure_error_without_retrying_it() {
    let db = open(
        Options::default()
            .limits(Limits { key_bytes_max: 4, ..Limits::default() })
            .maintenance_interval(NO_MAINTENANCE),
    );
    let mut runs = 0;
    let outcome = db.transaction(|txn| {
        runs += 1;
        txn.put(b"ok", b"v")?;
        txn.put(b"too long", b"v")
    });
    assert_eq!(outcome, Err(too_big(Limit::KeyBytes, 8, 4)));
    assert_eq!(runs, 1, "only conflicts are retried");
    assert_eq!(get(&db, b"ok"), None, "the failed closure's writes are dropped");
    assert_eq!(db.stats().commits, 0);
}

fn quick_retries(attempts_max: u32) -> RetryPolicy {
    RetryPolicy {
        attempts_max,
        backoff_base: Duration::from_micros(1),
        backoff_max: Duration::from_micros(10),
    }
}

#[test]
fn transaction_retries_a_conflict_until_it_commits() {
    let db = open_quiet();
    db.put(b"counter", 0u64.to_le_bytes()).expect("put");
    let mut runs = 0;
    let outcome = db.transaction(|txn| {
        runs += 1;
        let value = txn.get(b"counter")?.expect("present");
        let counter = u64::from_le_bytes(value.as_slice().try_into().expect("8 bytes"));
        if runs < 3 {
            // Another writer gets there first (twice).
            db.put(b"counter", (counter + 10).to_le_bytes())?;
        }
        txn.put(b"counter", (counter + 1).to_le_bytes())
    });
    assert_eq!(outcome, Ok(()));
    assert_eq!(runs, 3);
    assert_eq!(get(&db, b"counter"), Some(21u64.to_le_bytes().to_vec()), "no update is lost");
    assert_eq!(db.stats().conflicts, 2);
}

#[test]
fn transaction_gives_up_after_its_attempts_with_the_last_conflict() {
    let db = open(Options::default().retry(quick_retries(5)).maintenance_interval(NO_MAINTENANCE));
    let mut runs = 0;
    let outcome = db.transaction(|txn| {
        runs += 1;
        txn.get(b"hot")?;
        db.put(b"hot", format!("interference {runs}"))?;
        txn.put(b"hot", b"mine")
    });
    assert_eq!(outcome, Err(Error::Conflict { key: Bytes::from("hot") }));
    assert!(outcome.is_err_and(|error| error.is_conflict()));
    assert_eq!(runs, 5, "attempts_max counts every run, the first included");
    assert_eq!(db.stats().conflicts, 5);
    assert_eq!(get(&db, b"hot").as_deref(), Some(&b"interference 5"[..]));

    let once = TransactionOptions::default().retry(quick_retries(1));
    let mut runs = 0;
    let outcome = db.transaction_with(once, |txn| {
        runs += 1;
        txn.get(b"hot")?;
        db.put(b"hot", b"again")?;
        txn.put(b"hot", b"mine")
    });
    assert!(outcome.is_err_and(|error| error.is_conflict()));
    assert_eq!(runs, 1, "a per-transaction retry policy overrides the database's");
}

#[test]
fn deleting_an_absent_key_is_not_an_error() {
    let db = open_quiet();
    let version = db.delete(b"absent").expect("delete");
    assert_eq!(version, CommitVersion::new(1));
    assert_eq!(get(&db, b"absent"), None);
    let mut txn = db.begin();
    txn.delete(b"absent").expect("delete");
    assert_eq!(txn.get(b"absent").expect("get"), None);
    txn.commit().expect("commit");
    let stats = db.stats();
    assert_eq!((stats.keys, stats.live_versions), (0, 0), "no key is created to hold a tombstone");
    assert_eq!(db.history(b"absent", 10, None).expect("history"), []);
}

#[test]
fn the_empty_key_and_the_empty_value_are_ordinary() {
    let db = open_quiet();
    db.put(b"", b"empty key").expect("put");
    db.put(b"a", b"").expect("put");
    assert_eq!(get(&db, b"").as_deref(), Some(&b"empty key"[..]));
    assert_eq!(get(&db, b"a"), Some(vec![]), "an empty value is present, not absent");
    let snapshot = db.snapshot();
    let keys: Vec<Bytes> = snapshot.prefix(b"").map(|(key, _)| key).collect();
    assert_eq!(keys, [Bytes::from(""), Bytes::from("a")], "the empty key sorts first");
    assert_eq!(snapshot.range::<&[u8]>(..).count(), 2);
    assert_eq!(snapshot.range(..&b"a"[..]).count(), 1);
    db.delete(b"").expect("delete");
    assert_eq!(get(&db, b""), None);
    assert_eq!(db.stats().keys, 2);
}

// ----- Bytes --------------------------------------------------------------------------------

#[test]
fn bytes_compare_hash_and_print_as_their_contents() {
    let a = Bytes::from("abc");
    assert_eq!(a, Bytes::copy_from(b"abc"));
    assert_eq!(a, Bytes::from(vec![b'a', b'b', b'c']));
    assert_eq!(a, Bytes::from(&b"abc"[..]));
    assert_eq!(a, b"abc");
    assert_eq!(a, &b"abc"[..]);
    assert_eq!(a.len(), 3);
    assert!(!a.is_empty() && Bytes::default().is_empty());
    assert_eq!(a.as_slice(), b"abc");
    assert_eq!(&a[1..], b"bc", "derefs to a slice");
    assert!(Bytes::from("ab") < a && a < Bytes::from("abd") && Bytes::from("") < Bytes::from("\0"));
    assert_eq!(format!("{:?}", Bytes::from(&[b'a', 0, 0xFF][..])), "b\"a\\x00\\xff\"");
    let set: std::collections::HashSet<Bytes> = [Bytes::from("x"), Bytes::from("y")].into();
    assert!(set.contains(&b"x"[..]), "looked up by slice");
    let map: BTreeMap<Bytes, u8> = [(Bytes::from("k"), 1)].into();
    assert_eq!(map.get(&b"k"[..]), Some(&1));
}

#[test]
fn reads_share_the_stored_bytes_instead_of_copying_them() {
    let db = open_quiet();
    db.put(b"k", vec![9u8; 1024]).expect("put");
    let first = db.get(b"k").expect("get").expect("present");
    let second = db.snapshot().get(b"k").expect("get").expect("present");
    let scanned = db.snapshot().prefix(b"k").next().map(|(_, value)| value).expect("present");
    assert_eq!(first.as_ptr(), second.as_ptr());
    assert_eq!(first.as_ptr(), scanned.as_ptr());
    let clone = first.clone();
    assert_eq!(clone.as_ptr(), first.as_ptr(), "a clone shares the buffer");
}

// ----- stats ------------------------------------------------------------------------------

#[test]
fn stats_count_commits_conflicts_keys_versions_bytes_and_open_snapshots() {
    let db = open_quiet();
    let empty = db.stats();
    assert_eq!(
        (empty.commits, empty.conflicts, empty.keys, empty.live_versions, empty.live_bytes),
        (0, 0, 0, 0, 0)
    );
    assert_eq!((empty.open_snapshots, empty.oldest_snapshot), (0, None));
    assert_eq!(empty.visible_version, CommitVersion::ZERO);

    db.put(b"ab", b"1234").expect("put");
    db.put(b"ab", b"12").expect("put");
    db.put(b"cde", b"").expect("put");
    db.delete(b"cde").expect("delete");
    let stats = db.stats();
    assert_eq!(stats.commits, 4);
    assert_eq!(stats.keys, 2, "a deleted key counts until it is forgotten");
    assert_eq!(stats.live_versions, 4, "tombstones included");
    assert_eq!(stats.live_bytes, 2 + 3 + 4 + 2, "keys once, values per version");
    assert_eq!(stats.visible_version, CommitVersion::new(4));

    let snapshot = db.snapshot();
    let txn = db.begin();
    let stats = db.stats();
    assert_eq!(stats.open_snapshots, 2, "a transaction counts as a reader");
    assert_eq!(stats.oldest_snapshot.map(|oldest| oldest.version), Some(snapshot.version()));
    drop((snapshot, txn));
    assert_eq!(db.stats().open_snapshots, 0);

    let mut loser = db.begin();
    loser.put(b"ab", b"x").expect("put");
    db.put(b"ab", b"y").expect("put");
    assert!(loser.commit().is_err());
    let stats = db.stats();
    assert_eq!((stats.commits, stats.conflicts), (5, 1));
    db.collect_garbage();
    let stats = db.stats();
    assert_eq!((stats.keys, stats.live_versions, stats.live_bytes), (1, 1, 2 + 1));
    assert_eq!(stats.gc.passes, 1);
    assert_eq!(stats.gc.keys_removed, 1);
}

#[test]
fn snapshots_beyond_the_registration_slots_are_all_counted_and_honoured() {
    let db = open_quiet();
    let snapshots: Vec<_> = (0..300u64)
        .map(|n| {
            db.put(b"k", n.to_le_bytes()).expect("put");
            db.snapshot()
        })
        .collect();
    db.collect_garbage();
    let stats = db.stats();
    assert_eq!(stats.open_snapshots, 300);
    assert_eq!(stats.oldest_snapshot.map(|oldest| oldest.version), Some(CommitVersion::new(1)));
    for (n, snapshot) in (0..300u64).zip(&snapshots) {
        let value = snapshot.get(b"k").expect("get").expect("present");
        assert_eq!(value.as_slice(), n.to_le_bytes(), "snapshot {n} reads its own version");
    }
    let mut snapshots = snapshots;
    let mut rng = fastrand::Rng::with_seed(3);
    while !snapshots.is_empty() {
        let dropped = snapshots.swap_remove(rng.usize(..snapshots.len()));
        drop(dropped);
        db.collect_garbage();
        let oldest = snapshots.iter().map(|snapshot| snapshot.version()).min();
        let stats = db.stats();
        assert_eq!(stats.open_snapshots, snapshots.len() as u64);
        assert_eq!(stats.oldest_snapshot.map(|oldest| oldest.version), oldest);
        if let Some(oldest) = snapshots.iter().min_by_key(|snapshot| snapshot.version()) {
            let value = oldest.get(b"k").expect("get").expect("present");
            assert_eq!(value.as_slice(), (oldest.version().get() - 1).to_le_bytes());
        }
    }
    assert_eq!(db.stats().live_versions, 1);
}

#[test]
fn the_facade_reexports_the_engine() {
    let db: inmem::Database = inmem::Database::in_memory().expect("opens");
    let version: inmem::CommitVersion = db.put(b"greeting", b"hello").expect("put");
    let snapshot: inmem::Snapshot<'_> = db.snapshot_at(version).expect("visible");
    let value: Option<inmem::Bytes> = snapshot.get(b"greeting").expect("get");
    assert_eq!(value.as_deref(), Some(&b"hello"[..]));
    let options = inmem::Options::default().isolation(inmem::Isolation::Serializable);
    let db = inmem::Database::with_options(options).expect("valid");
    let txn: inmem::Transaction<'_> = db.begin_with(inmem::TransactionOptions::default());
    assert_eq!(txn.isolation(), inmem::Isolation::Serializable);
    let error: inmem::Error = inmem::engine::Error::Poisoned;
    assert!(!error.is_conflict());
}

#[test]
fn a_commit_that_conflicts_leaves_none_of_the_keys_it_would_have_created() {
    let db = open_quiet();
    db.put(b"shared", b"0").expect("put");
    let keys_before = db.stats().keys;
    let mut loser = db.begin();
    loser.get(b"shared").expect("read");
    loser.put(b"shared", b"loser").expect("write");
    for n in 0..50u32 {
        loser.put(format!("new/{n:02}"), b"loser").expect("write");
    }
    db.put(b"shared", b"winner").expect("the other commit");
    let error = loser.commit().expect_err("first committer wins");
    assert!(error.is_conflict(), "{error}");
    assert_eq!(db.stats().keys, keys_before, "the loser's new keys are not in the index");
    assert_eq!(db.snapshot().prefix(b"new/").count(), 0);
    // The keys can be created afterwards, by a commit that succeeds.
    db.put(b"new/07", b"later").expect("put");
    assert_eq!(db.stats().keys, keys_before + 1);
    assert_eq!(get(&db, b"new/07").as_deref(), Some(&b"later"[..]));
}
