//! KvStore: every operation on the handle and in a transaction, its error cases, run
//! isolation, versions and history, expiry, and the concurrent guarantees (scan pagination
//! under writes, increments and compare-and-set under contention).

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use inmem_engine::{Database, Limit, Options, Retention, TransactionOptions};
use inmem_primitives::kv::{KvExt, KvStore, ScanCursor, PAGE_LIMIT_MAX};
use inmem_primitives::{Error, KeyBuf, Result, RunId, TypeTag, Value, ValueRef};

fn store_with(options: Options) -> (Arc<Database>, KvStore) {
    let db = Arc::new(Database::with_options(options).expect("an in-memory database"));
    let kv = KvStore::new(db.clone());
    (db, kv)
}

fn store() -> (Arc<Database>, KvStore) {
    store_with(Options::default())
}

fn keys_of(kv: &KvStore, run: RunId, prefix: &str) -> Vec<Vec<u8>> {
    let keys = kv.keys(run, prefix, PAGE_LIMIT_MAX).expect("keys");
    keys.iter().map(|key| key.as_bytes().to_vec()).collect()
}

fn int_at(kv: &KvStore, run: RunId, key: &str) -> Option<i64> {
    kv.get(run, key).expect("get").map(|value| value.value().as_int().expect("an integer"))
}

#[test]
fn put_then_get_reads_the_value_in_place() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    let first = kv.put(run, "greeting", &Value::from("hello"))?;
    let value = kv.get(run, "greeting")?.expect("written");
    assert_eq!(value.value(), ValueRef::Str("hello"));
    assert_eq!(value.to_value(), Value::from("hello"));
    let second = kv.put(run, "greeting", &Value::from(vec![Value::from(1), Value::Null]))?;
    assert!(second > first, "each put is a later commit");
    let value = kv.get(run, "greeting")?.expect("overwritten");
    assert_eq!(value.to_value(), Value::from(vec![Value::from(1), Value::Null]));
    assert_eq!(kv.get(run, "missing")?, None);
    Ok(())
}

#[test]
fn delete_says_whether_the_key_existed_and_exists_follows() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    assert!(!kv.exists(run, "k")?);
    assert!(!kv.delete(run, "k")?, "nothing to delete");
    kv.put(run, "k", &Value::Null)?;
    assert!(kv.exists(run, "k")?, "a null value is a value");
    assert!(kv.delete(run, "k")?);
    assert!(!kv.exists(run, "k")?);
    assert_eq!(kv.get(run, "k")?, None);
    assert!(!kv.delete(run, "k")?, "deleted already");
    Ok(())
}

#[test]
fn the_empty_key_is_a_key_like_any_other() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    kv.put(run, "", &Value::from(0))?;
    kv.put(run, "a", &Value::from(1))?;
    assert_eq!(int_at(&kv, run, ""), Some(0));
    assert_eq!(keys_of(&kv, run, ""), [b"".to_vec(), b"a".to_vec()]);
    Ok(())
}

#[test]
fn keys_and_list_return_a_prefix_in_key_order_up_to_the_limit() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    for (index, key) in
        ["user/3", "user/1", "team/1", "user/2", "user\x00", "userz"].iter().enumerate()
    {
        kv.put(run, key, &Value::from(index as i64))?;
    }
    assert_eq!(
        keys_of(&kv, run, "user/"),
        [b"user/1".to_vec(), b"user/2".to_vec(), b"user/3".to_vec()]
    );
    let two = kv.keys(run, "user/", 2)?;
    assert_eq!(two.iter().map(|key| key.as_bytes()).collect::<Vec<_>>(), [b"user/1", b"user/2"]);
    assert!(kv.keys(run, "user/", 0)?.is_empty());
    assert_eq!(keys_of(&kv, run, "").len(), 6);
    assert!(keys_of(&kv, run, "nobody").is_empty());

    let listed = kv.list(run, "user", 3)?;
    let listed: Vec<(&[u8], Option<i64>)> =
        listed.iter().map(|entry| (entry.key.as_bytes(), entry.value.value().as_int())).collect();
    assert_eq!(listed, [(&b"user\x00"[..], Some(4)), (b"user/1", Some(1)), (b"user/2", Some(3))]);
    Ok(())
}

#[test]
fn a_page_limit_over_the_maximum_is_refused() {
    let (_db, kv) = store();
    let run = RunId::random();
    let over = PAGE_LIMIT_MAX + 1;
    let refused = |result: Result<()>| {
        matches!(result, Err(Error::LimitExceeded { actual, max, .. })
            if actual == over as u64 && max == PAGE_LIMIT_MAX as u64)
    };
    assert!(refused(kv.keys(run, "", over).map(drop)));
    assert!(refused(kv.list(run, "", over).map(drop)));
    assert!(refused(kv.scan(run, "", over, &ScanCursor::start()).map(drop)));
    assert!(refused(kv.history(run, "k", over, None).map(drop)));
    assert!(kv.keys(run, "", PAGE_LIMIT_MAX).is_ok(), "the maximum itself is allowed");
}

#[test]
fn scan_pages_through_every_key_once_with_a_cursor_carried_as_text() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    let expected: Vec<Vec<u8>> = (0..50).map(|n| format!("item/{n:03}").into_bytes()).collect();
    for key in &expected {
        kv.put(run, key, &Value::from(key.clone()))?;
    }
    kv.put(run, "other", &Value::Null)?;
    for limit in [1, 3, 7, 50, 51] {
        let (mut seen, mut text, mut pages) = (Vec::new(), ScanCursor::start().to_string(), 0);
        loop {
            let cursor: ScanCursor = text.parse().expect("a cursor's own text");
            let page = kv.scan(run, "item/", limit, &cursor)?;
            assert!(page.entries.len() <= limit);
            for entry in &page.entries {
                assert_eq!(entry.value.value(), ValueRef::Bytes(entry.key.as_bytes()));
                seen.push(entry.key.as_bytes().to_vec());
            }
            pages += 1;
            match page.next {
                Some(next) => text = next.to_string(),
                None => break,
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
        assert_eq!(pages, expected.len().div_ceil(limit), "no empty last page (limit {limit})");
    }
    Ok(())
}

#[test]
fn a_scan_of_limit_zero_keeps_its_position() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    let empty = kv.scan(run, "", 0, &ScanCursor::start())?;
    assert!(empty.entries.is_empty());
    assert_eq!(empty.next, None, "nothing follows in an empty store");
    kv.put(run, "a", &Value::Null)?;
    let page = kv.scan(run, "", 0, &ScanCursor::start())?;
    assert!(page.entries.is_empty());
    assert_eq!(page.next, Some(ScanCursor::start()), "`a` still follows the start");
    Ok(())
}

#[test]
fn a_cursor_outside_the_prefix_resumes_at_its_start_or_ends_the_scan() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    for key in ["a", "b/1", "b/2", "c"] {
        kv.put(run, key, &Value::Null)?;
    }
    let below = kv.scan(run, "b/", 10, &ScanCursor::after("a"))?;
    assert_eq!(below.entries.len(), 2, "a cursor below the prefix starts at its first key");
    let above = kv.scan(run, "b/", 10, &ScanCursor::after("c"))?;
    assert!(above.entries.is_empty() && above.next.is_none());
    let inside = kv.scan(run, "b/", 10, &ScanCursor::after("b/1"))?;
    assert_eq!(inside.entries.iter().map(|e| e.key.as_bytes()).collect::<Vec<_>>(), [b"b/2"]);
    Ok(())
}

#[test]
fn incr_starts_a_missing_key_at_zero_and_adds() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    assert_eq!(kv.incr(run, "n", 5)?, 5);
    assert_eq!(kv.incr(run, "n", -7)?, -2);
    assert_eq!(kv.incr(run, "n", 0)?, -2);
    assert_eq!(int_at(&kv, run, "n"), Some(-2));
    kv.put(run, "m", &Value::from(40))?;
    assert_eq!(kv.incr(run, "m", 2)?, 42, "a value put as an integer counts");
    Ok(())
}

#[test]
fn incr_past_i64_is_an_overflow_and_writes_nothing() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    kv.put(run, "n", &Value::from(i64::MAX - 1))?;
    assert_eq!(kv.incr(run, "n", 1)?, i64::MAX);
    assert_eq!(kv.incr(run, "n", 1), Err(Error::Overflow));
    assert_eq!(int_at(&kv, run, "n"), Some(i64::MAX), "unchanged");
    assert_eq!(kv.incr(run, "low", i64::MIN)?, i64::MIN);
    assert_eq!(kv.incr(run, "low", -1), Err(Error::Overflow));
    Ok(())
}

#[test]
fn incr_of_a_value_that_is_not_an_integer_is_refused() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    for (key, value) in [("s", Value::from("7")), ("f", Value::from(7.0)), ("z", Value::Null)] {
        kv.put(run, key, &value)?;
        assert_eq!(kv.incr(run, key, 1), Err(Error::NotAnInteger), "{key}");
        assert_eq!(kv.get(run, key)?.map(|view| view.to_value()), Some(value), "unchanged");
    }
    Ok(())
}

#[test]
fn cas_value_writes_only_on_a_match() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    let (one, two) = (Value::from(1), Value::from(2));
    assert!(!kv.cas_value(run, "c", Some(&one), &two)?, "absent is not 1");
    assert!(kv.cas_value(run, "c", None, &one)?, "absent, as expected");
    assert!(!kv.cas_value(run, "c", None, &two)?, "present now");
    assert!(!kv.cas_value(run, "c", Some(&two), &two)?, "1 is not 2");
    assert_eq!(int_at(&kv, run, "c"), Some(1));
    assert!(kv.cas_value(run, "c", Some(&one), &two)?);
    assert_eq!(int_at(&kv, run, "c"), Some(2));
    assert!(!kv.cas_value(run, "c", Some(&Value::from(2.0)), &one)?, "a float is not an int");

    // Values compare by encoding: bit for bit.
    kv.put(run, "f", &Value::from(f64::NAN))?;
    assert!(kv.cas_value(run, "f", Some(&Value::from(f64::NAN)), &Value::from(-0.0))?);
    assert!(!kv.cas_value(run, "f", Some(&Value::from(0.0)), &one)?, "0.0 is not -0.0");
    Ok(())
}

#[test]
fn an_oversized_key_is_the_engines_limit_error() -> Result<()> {
    let (_db, kv) = store();
    let run = RunId::random();
    let key_max = Options::default().limits.key_bytes_max;
    let longest = "k".repeat(key_max - 17);
    kv.put(run, &longest, &Value::Null)?;
    assert!(kv.exists(run, &longest)?, "the longest key fits");

    let oversized = "k".repeat(key_max - 16);
    let is_key_limit = |error: Error| {
        matches!(error, Error::Engine(inmem_engine::Error::LimitExceeded {
            limit: Limit::KeyBytes, actual, max,
        }) if actual == key_max as u64 + 1 && max == key_max as u64)
    };
    assert!(kv.put(run, &oversized, &Value::Null).is_err_and(is_key_limit));
    assert!(kv.get(run, &oversized).is_err_and(is_key_limit));
    assert!(kv.exists(run, &oversized).is_err_and(is_key_limit));
    assert!(kv.delete(run, &oversized).is_err_and(is_key_limit));
    assert!(kv.incr(run, &oversized, 1).is_err_and(is_key_limit));
    assert!(kv.cas_value(run, &oversized, None, &Value::Null).is_err_and(is_key_limit));
    assert!(kv.history(run, &oversized, 1, None).is_err_and(is_key_limit));
    Ok(())
}

#[test]
fn a_value_nested_too_deep_is_refused() {
    let (_db, kv) = store();
    let run = RunId::random();
    let deep =
        (0..=inmem_primitives::DEPTH_MAX).fold(Value::Null, |value, _| Value::from(vec![value]));
    assert!(matches!(kv.put(run, "deep", &deep), Err(Error::LimitExceeded { .. })));
    assert!(matches!(kv.cas_value(run, "deep", None, &deep), Err(Error::LimitExceeded { .. })));
}

#[test]
fn a_value_stored_under_another_primitives_tag_is_not_visible_to_kv() -> Result<()> {
    let (db, kv) = store();
    let run = RunId::random();
    // The same suffix under the tags that sort right after kv's (0x01) in the same run: a
    // range end off by one would reach Event's (0x02).
    for tag in [TypeTag::Event, TypeTag::State, TypeTag::Run] {
        let key = KeyBuf::new(run, tag).push_bytes(b"shared");
        db.put(&key, Value::from("not kv").encode())?;
    }
    assert_eq!(kv.get(run, "shared")?, None);
    assert!(!kv.exists(run, "shared")?);
    assert!(!kv.delete(run, "shared")?);
    assert!(keys_of(&kv, run, "").is_empty());
    assert!(kv.scan(run, "", 10, &ScanCursor::start())?.next.is_none());

    kv.put(run, "shared", &Value::from("kv"))?;
    let state = KeyBuf::new(run, TypeTag::State).push_bytes(b"shared");
    let untouched = db.get(&state)?.expect("the state key");
    assert_eq!(Value::decode(&untouched), Ok(Value::from("not kv")));
    Ok(())
}

#[test]
fn stored_bytes_that_are_not_a_value_are_a_decode_error() -> Result<()> {
    let (db, kv) = store();
    let run = RunId::random();
    db.put(KeyBuf::new(run, TypeTag::Kv).push_bytes(b"bad"), b"\x09not a value")?;
    assert!(matches!(kv.get(run, "bad"), Err(Error::Decode(_))));
    assert!(matches!(kv.list(run, "", 10), Err(Error::Decode(_))));
    assert!(matches!(kv.incr(run, "bad", 1), Err(Error::Decode(_))));
    assert!(matches!(kv.cas_value(run, "bad", None, &Value::Null), Err(Error::Decode(_))));
    assert_eq!(keys_of(&kv, run, ""), [b"bad".to_vec()], "keys read no value");
    assert!(kv.exists(run, "bad")?);
    Ok(())
}

#[test]
fn two_runs_with_the_same_keys_never_see_each_other() -> Result<()> {
    let (_db, kv) = store();
    let (a, b) = (RunId::random(), RunId::random());
    kv.put(a, "k", &Value::from("a"))?;
    assert_eq!(kv.get(b, "k")?, None);
    kv.put(b, "k", &Value::from("b"))?;
    assert_eq!(kv.get(a, "k")?.map(|view| view.to_value()), Some(Value::from("a")));
    assert_eq!(kv.incr(a, "n", 1)?, 1);
    assert_eq!(kv.incr(b, "n", 10)?, 10, "b's counter starts at 0");
    assert!(kv.delete(a, "k")?);
    assert!(kv.exists(b, "k")?, "deleting a's key leaves b's");
    assert!(kv.cas_value(b, "k", Some(&Value::from("b")), &Value::from("b2"))?);
    assert!(!kv.cas_value(a, "k", Some(&Value::from("b2")), &Value::Null)?);
    Ok(())
}

#[test]
fn keys_list_and_scan_of_one_run_never_return_another_runs_keys() -> Result<()> {
    let (_db, kv) = store();
    // Adjacent run ids, and the extremes: a range bound off by one would leak here.
    let mut low = [0x40; 16];
    let run = RunId::from_bytes(low);
    low[15] = 0x3f;
    let below = RunId::from_bytes(low);
    low[15] = 0x41;
    let above = RunId::from_bytes(low);
    let (zero, ones) = (RunId::from_bytes([0; 16]), RunId::from_bytes([0xff; 16]));
    for (other, name) in [(below, "below"), (above, "above"), (zero, "zero"), (ones, "ones")] {
        for n in 0..5 {
            kv.put(other, format!("k/{n}"), &Value::from(name))?;
        }
    }
    for n in 0..3 {
        kv.put(run, format!("k/{n}"), &Value::from("run"))?;
    }
    for checked in [run, zero, ones] {
        let expected = if checked == run { 3 } else { 5 };
        assert_eq!(keys_of(&kv, checked, "").len(), expected);
        assert_eq!(kv.list(checked, "k/", 100)?.len(), expected);
    }
    let entries = kv.list(run, "", 100)?;
    assert!(entries.iter().all(|entry| entry.value.value() == ValueRef::Str("run")));
    let (mut cursor, mut seen) = (ScanCursor::start(), 0);
    loop {
        let page = kv.scan(run, "", 2, &cursor)?;
        assert!(page.entries.iter().all(|entry| entry.value.value() == ValueRef::Str("run")));
        seen += page.entries.len();
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen, 3);
    Ok(())
}

#[test]
fn scan_returns_every_key_present_throughout_exactly_once_while_another_thread_writes() {
    let (_db, kv) = store();
    let run = RunId::random();
    let stable: BTreeSet<Vec<u8>> = (0..1500).map(|n| format!("k/{n:05}").into_bytes()).collect();
    for key in &stable {
        kv.put(run, key, &Value::from(0)).expect("put");
    }
    let done = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (kv, done, writes) = (kv.clone(), done.clone(), writes.clone());
        thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(7);
            while !done.load(Ordering::Relaxed) {
                let n = rng.u32(0..1500);
                // Keys between the stable ones come and go; stable ones change value.
                let volatile = format!("k/{n:05}x");
                kv.put(run, &volatile, &Value::from(1)).expect("put");
                kv.put(run, format!("k/{n:05}"), &Value::from(i64::from(n))).expect("put");
                kv.delete(run, format!("k/{:05}x", rng.u32(0..1500))).expect("delete");
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut cursor, mut seen, mut pages) = (ScanCursor::start(), Vec::new(), 0);
    loop {
        // Each page is a transaction of its own: let the writer commit before every page.
        let written = writes.load(Ordering::Relaxed);
        while writes.load(Ordering::Relaxed) == written && !writer.is_finished() {
            thread::yield_now();
        }
        let page = kv.scan(run, "k/", 7, &cursor).expect("scan");
        seen.extend(page.entries.iter().map(|entry| entry.key.as_bytes().to_vec()));
        pages += 1;
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    done.store(true, Ordering::Relaxed);
    writer.join().expect("the writer");

    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "strictly ascending: no repeat");
    let stable_seen: Vec<&Vec<u8>> = seen.iter().filter(|key| stable.contains(*key)).collect();
    assert_eq!(stable_seen.len(), stable.len(), "every stable key, once");
    assert!(pages > 1500 / 7, "small pages, each after a write");
}

#[test]
fn incr_from_8_threads_loses_no_update() {
    let (_db, kv) = store();
    let run = RunId::random();
    let (threads, rounds) = (8_i64, 1000);
    let barrier = Arc::new(Barrier::new(threads as usize));
    let workers: Vec<_> = (1..=threads)
        .map(|delta| {
            let (kv, barrier) = (kv.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..rounds {
                    kv.incr(run, "counter", delta).expect("incr retries its conflicts");
                    thread::yield_now();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker");
    }
    let expected = rounds * (1..=threads).sum::<i64>();
    assert_eq!(int_at(&kv, run, "counter"), Some(expected));
}

#[test]
fn cas_value_from_8_threads_succeeds_exactly_once_per_step() {
    let (_db, kv) = store();
    let run = RunId::random();
    let target = 1000;
    kv.put(run, "n", &Value::from(0)).expect("put");
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (kv, barrier) = (kv.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut successes = 0_i64;
                loop {
                    let current = int_at(&kv, run, "n").expect("set");
                    if current >= target {
                        return successes;
                    }
                    let (expected, next) = (Value::from(current), Value::from(current + 1));
                    if kv.cas_value(run, "n", Some(&expected), &next).expect("no error") {
                        successes += 1;
                    }
                    thread::yield_now();
                }
            })
        })
        .collect();
    let successes: i64 = workers.into_iter().map(|w| w.join().expect("a worker")).sum();
    assert_eq!(successes, target, "one success per step");
    assert_eq!(int_at(&kv, run, "n"), Some(target));
}

#[test]
fn cas_value_from_absent_by_8_threads_has_exactly_one_winner() {
    let (_db, kv) = store();
    for _ in 0..20 {
        let run = RunId::random();
        let barrier = Arc::new(Barrier::new(8));
        let workers: Vec<_> = (0..8_i64)
            .map(|id| {
                let (kv, barrier) = (kv.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    kv.cas_value(run, "leader", None, &Value::from(id)).expect("no error")
                })
            })
            .collect();
        let wins: Vec<bool> = workers.into_iter().map(|w| w.join().expect("a worker")).collect();
        assert_eq!(wins.iter().filter(|&&won| won).count(), 1);
        let winner = wins.iter().position(|&won| won).map(|id| id as i64);
        assert_eq!(int_at(&kv, run, "leader"), winner, "the winner's value is stored");
    }
}

#[test]
fn get_at_reads_the_value_of_each_older_version() -> Result<()> {
    let (db, kv) = store_with(Options::default().retention(Retention::KeepAll));
    let run = RunId::random();
    let before_any = db.visible_version();
    let versions: Vec<_> =
        (0..4).map(|n| kv.put(run, "k", &Value::from(n))).collect::<Result<_>>()?;
    kv.put(run, "other", &Value::Null)?;
    assert!(kv.delete(run, "k")?);
    assert_eq!(kv.get_at(run, "k", before_any)?, None, "not written yet");
    for (n, version) in versions.iter().enumerate() {
        let value = kv.get_at(run, "k", *version)?.map(|view| view.to_value());
        assert_eq!(value, Some(Value::from(n as i64)), "at {version}");
    }
    assert_eq!(kv.get_at(run, "k", db.visible_version())?, None, "deleted");
    assert_eq!(kv.get_at(RunId::random(), "k", versions[3])?, None, "another run");
    let future = inmem_engine::CommitVersion::new(db.visible_version().get() + 1);
    assert!(matches!(
        kv.get_at(run, "k", future),
        Err(Error::Engine(inmem_engine::Error::VersionNotVisible { .. }))
    ));
    Ok(())
}

#[test]
fn history_is_newest_first_with_deletions_as_versions_without_a_value() -> Result<()> {
    let (_db, kv) = store_with(Options::default().retention(Retention::KeepAll));
    let run = RunId::random();
    let v1 = kv.put(run, "k", &Value::from("one"))?;
    let v2 = kv.put(run, "k", &Value::from("two"))?;
    assert!(kv.delete(run, "k")?);
    let v4 = kv.put(run, "k", &Value::from("four"))?;

    let history = kv.history(run, "k", 10, None)?;
    let shown: Vec<Option<Value>> =
        history.iter().map(|entry| entry.value.as_ref().map(|view| view.to_value())).collect();
    assert_eq!(
        shown,
        [Some(Value::from("four")), None, Some(Value::from("two")), Some(Value::from("one"))]
    );
    assert_eq!(history[0].version, v4);
    assert!(history.windows(2).all(|pair| pair[0].version > pair[1].version));
    assert_eq!(history[2].version, v2);
    assert_eq!(history[3].version, v1);
    assert!(history.iter().all(|entry| entry.expires_at_ms.is_none()));

    let newest_two = kv.history(run, "k", 2, None)?;
    assert_eq!(
        newest_two.iter().map(|entry| entry.version).collect::<Vec<_>>(),
        [v4, history[1].version]
    );
    let before_v2 = kv.history(run, "k", 10, Some(v2))?;
    assert_eq!(before_v2.iter().map(|entry| entry.version).collect::<Vec<_>>(), [v1]);
    assert!(kv.history(run, "missing", 10, None)?.is_empty());
    assert!(kv.history(RunId::random(), "k", 10, None)?.is_empty(), "another run");
    Ok(())
}

#[test]
fn a_value_with_a_ttl_reads_as_absent_once_expired() -> Result<()> {
    let (_db, kv) = store_with(Options::default().retention(Retention::KeepAll));
    let run = RunId::random();
    let ttl = Duration::from_millis(40);
    kv.put_with_ttl(run, "session", &Value::from("token"), ttl)?;
    kv.put(run, "stays", &Value::from(1))?;
    assert!(kv.exists(run, "session")?, "live before its expiry");
    let history = kv.history(run, "session", 1, None)?;
    assert!(history[0].expires_at_ms.is_some(), "history shows the expiry");

    thread::sleep(ttl * 3);
    assert_eq!(kv.get(run, "session")?, None);
    assert!(!kv.exists(run, "session")?);
    assert_eq!(keys_of(&kv, run, ""), [b"stays".to_vec()]);
    assert_eq!(kv.incr(run, "session", 1)?, 1, "an expired counter starts again at 0");
    assert_eq!(int_at(&kv, run, "stays"), Some(1));
    Ok(())
}

#[test]
fn operations_in_one_transaction_commit_together() -> Result<()> {
    let (db, kv) = store_with(Options::default().retention(Retention::KeepAll));
    let run = RunId::random();
    kv.put(run, "old", &Value::from(0))?;
    let committed = db.transaction_typed(TransactionOptions::default(), |txn| {
        let mut store = txn.kv(run);
        store.put("a", &Value::from("a"))?;
        store.put_with_ttl("b", &Value::from("b"), Duration::from_secs(60))?;
        assert!(store.delete("old")?);
        assert!(store.cas_value("c", None, &Value::from(1))?);
        store.incr("n", 3)
    })?;
    assert_eq!(committed.value, 3);
    for key in ["a", "b", "c", "n", "old"] {
        let history = kv.history(run, key, 1, None)?;
        assert_eq!(history[0].version, committed.version, "{key} in the same commit");
    }
    assert!(!kv.exists(run, "old")?);
    Ok(())
}

#[test]
fn a_failed_operation_leaves_nothing_of_its_transaction() -> Result<()> {
    let (db, kv) = store();
    let run = RunId::random();
    kv.put(run, "n", &Value::from(i64::MAX))?;
    let outcome = db.transaction_typed(TransactionOptions::default(), |txn| {
        txn.kv(run).put("a", &Value::from("a"))?;
        txn.kv(run).incr("n", 1)
    });
    assert_eq!(outcome.map(|committed| committed.value), Err(Error::Overflow));
    assert_eq!(kv.get(run, "a")?, None, "the put before the overflow is not committed");
    Ok(())
}

#[test]
fn a_transaction_reads_its_own_kv_writes() -> Result<()> {
    let (db, kv) = store();
    let run = RunId::random();
    kv.put(run, "x/1", &Value::from(1))?;
    let mut txn = db.begin();
    let mut store = txn.kv(run);
    store.put("x/2", &Value::from(2))?;
    assert!(store.delete("x/1")?);
    assert_eq!(store.get("x/2")?.map(|view| view.to_value()), Some(Value::from(2)));
    assert!(!store.exists("x/1")?);
    let keys = store.keys("x/", 10)?;
    assert_eq!(keys.iter().map(|key| key.as_bytes()).collect::<Vec<_>>(), [b"x/2"]);
    assert_eq!(store.list("x/", 10)?.len(), 1);
    assert_eq!(store.scan("x/", 10, &ScanCursor::start())?.entries.len(), 1);
    assert_eq!(store.incr("x/2", 1)?, 3, "increments the pending write");
    assert!(kv.exists(run, "x/1")?, "nobody else sees it before commit");
    txn.commit()?;
    assert_eq!(keys_of(&kv, run, "x/"), [b"x/2".to_vec()]);
    assert_eq!(int_at(&kv, run, "x/2"), Some(3));
    Ok(())
}

#[test]
fn a_transactional_cas_that_conflicts_fails_its_commit_and_writes_nothing() -> Result<()> {
    let (db, kv) = store();
    let run = RunId::random();
    let mut txn = db.begin();
    assert!(txn.kv(run).cas_value("c", None, &Value::from(1))?);
    kv.put(run, "c", &Value::from(2))?;
    assert!(txn.commit().is_err_and(|error| error.is_conflict()));
    assert_eq!(int_at(&kv, run, "c"), Some(2));
    Ok(())
}
