//! EventLog: every operation on the handle and in a transaction, its errors, run isolation,
//! concurrent appenders, the stored layout and hash framing as documented, and chain
//! verification against events tampered with through the engine's raw `Database::put`.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use inmem_engine::{Database, Limit, Limits};
use inmem_primitives::event_log::{
    event_hash, BreakReason, ChainBreak, ChainReport, EventHash, EventLog, EventLogExt,
    EVENT_TYPE_MAX, GENESIS_HASH,
};
use inmem_primitives::{
    engine_options, tag_prefix, Error, KeyBuf, RunId, TypeTag, Value, ValueRef,
};

fn open() -> (Arc<Database>, EventLog) {
    // With the primitives' options: the type index lives in the ordered index alone.
    let db = Arc::new(Database::with_options(engine_options()).expect("database"));
    (db.clone(), EventLog::new(db))
}

fn open_with(limits: Limits) -> (Arc<Database>, EventLog) {
    let options = engine_options().limits(limits);
    let db = Arc::new(Database::with_options(options).expect("database"));
    (db.clone(), EventLog::new(db))
}

/// The documented key of event `seq`: run id | 0x02 | 0x01 | seq (u64 BE).
fn event_key(run: RunId, seq: u64) -> Vec<u8> {
    KeyBuf::new(run, TypeTag::Event).push_u8(0x01).push_u64(seq).finish()
}

/// The documented key of the head record: run id | 0x02 | 0x00.
fn head_key(run: RunId) -> Vec<u8> {
    KeyBuf::new(run, TypeTag::Event).push_u8(0x00).finish()
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("after the epoch");
    u64::try_from(since.as_millis()).expect("ms fit in u64")
}

/// Appends `count` events "step" with payloads 0.. to `run`.
fn append_steps(log: &EventLog, run: RunId, count: i64) {
    for i in 0..count {
        log.append(run, "step", &Value::from(i)).expect("append");
    }
}

fn stored(db: &Database, key: &[u8]) -> Vec<u8> {
    db.get(key).expect("get").expect("stored").as_slice().to_vec()
}

fn broken(seq: u64, reason: BreakReason) -> ChainReport {
    ChainReport::Broken(ChainBreak { seq, reason })
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let field = bytes.get(offset..offset + 8).expect("in bounds");
    u64::from_le_bytes(field.try_into().expect("8 bytes"))
}

fn hash_at(bytes: &[u8], offset: usize) -> EventHash {
    bytes.get(offset..offset + 32).expect("in bounds").try_into().expect("32 bytes")
}

#[test]
fn append_returns_dense_sequences_from_zero_and_len_counts_them() {
    let (_db, log) = open();
    let run = RunId::random();
    assert_eq!(log.len(run).expect("len"), 0);
    assert!(log.is_empty(run).expect("is_empty"));
    for expected in 0..20 {
        assert_eq!(
            log.append(run, "step", &Value::from(expected as i64)).expect("append"),
            expected
        );
        assert_eq!(log.len(run).expect("len"), expected + 1);
    }
    assert!(!log.is_empty(run).expect("is_empty"));
}

#[test]
fn read_returns_the_event_fields_as_a_view_of_the_stored_record() {
    let (db, log) = open();
    let run = RunId::random();
    let before = now_ms();
    log.append(run, "tool_call", &Value::from("search the web for inmem")).expect("append");
    let payload = Value::Array(vec![Value::from(1), Value::from("two"), Value::Null]);
    log.append(run, "tool_result", &payload).expect("append");
    let after = now_ms();

    let first = log.read(run, 0).expect("read").expect("event 0");
    let second = log.read(run, 1).expect("read").expect("event 1");
    assert_eq!((first.seq(), first.event_type()), (0, "tool_call"));
    assert_eq!(first.payload(), ValueRef::Str("search the web for inmem"));
    assert_eq!((second.seq(), second.event_type()), (1, "tool_result"));
    assert_eq!(second.payload().to_owned(), payload);
    assert_eq!(second.payload_view().to_value(), payload);
    for event in [&first, &second] {
        assert!((before..=after).contains(&event.timestamp_ms()), "{event:?}");
    }
    assert!(first.timestamp_ms() <= second.timestamp_ms());
    assert_eq!(first.prev_hash(), &GENESIS_HASH);
    assert_eq!(second.prev_hash(), first.hash(), "each event links to the one before");
    assert_ne!(first.hash(), second.hash());
    assert_eq!(&first.compute_hash(run), first.hash());

    // Zero-copy: the payload's text lies inside the bytes the engine stores for the event.
    let record = first.stored().as_bytes().as_ptr_range();
    let text = first.payload().as_str().expect("a string").as_ptr();
    assert!(record.contains(&text), "the payload is borrowed from the stored record");
    assert_eq!(first.stored().as_bytes(), stored(&db, &event_key(run, 0)).as_slice());
}

#[test]
fn the_stored_record_and_the_hash_follow_the_documented_layout_and_framing() {
    let (db, log) = open();
    let run = RunId::random();
    log.append(run, "a", &Value::Null).expect("append");
    let payload = Value::from("payload");
    log.append(run, "observation", &payload).expect("append");

    let record = stored(&db, &event_key(run, 1));
    let encoded = payload.try_encode().expect("encode");
    assert_eq!(record.len(), 84 + "observation".len() + encoded.len());
    assert_eq!(u64_at(&record, 0), 1, "seq at 0");
    let timestamp_ms = u64_at(&record, 8);
    let prev = hash_at(&record, 16);
    let hash = hash_at(&record, 48);
    assert_eq!(record.get(80..84), Some(&11u32.to_le_bytes()[..]), "type length at 80");
    assert_eq!(record.get(84..95), Some(&b"observation"[..]), "type at 84");
    assert_eq!(record.get(95..), Some(encoded.as_slice()), "payload after the type");
    assert_eq!(prev, hash_at(&stored(&db, &event_key(run, 0)), 48));

    // The framing of the documentation, written out independently of the crate's code.
    let mut hasher =
        blake3::Hasher::new_derive_key("inmem-primitives 2025 event log event hash v1");
    hasher.update(run.as_bytes());
    hasher.update(&1u64.to_le_bytes());
    hasher.update(&timestamp_ms.to_le_bytes());
    hasher.update(&prev);
    hasher.update(&11u64.to_le_bytes());
    hasher.update(b"observation");
    hasher.update(&(encoded.len() as u64).to_le_bytes());
    hasher.update(&encoded);
    assert_eq!(*hasher.finalize().as_bytes(), hash);
    assert_eq!(event_hash(run, 1, timestamp_ms, &prev, "observation", &encoded), hash);

    let head = stored(&db, &head_key(run));
    assert_eq!(head.len(), 48);
    assert_eq!((u64_at(&head, 0), u64_at(&head, 8), hash_at(&head, 16)), (2, timestamp_ms, hash));
}

#[test]
fn the_hash_frames_every_field_unambiguously() {
    let run = RunId::from_bytes([1; 16]);
    let other_run = RunId::from_bytes([2; 16]);
    let payload = Value::from("xy").try_encode().expect("encode");
    let base = event_hash(run, 5, 1000, &GENESIS_HASH, "ab", &payload);
    assert_ne!(base, event_hash(other_run, 5, 1000, &GENESIS_HASH, "ab", &payload));
    assert_ne!(base, event_hash(run, 6, 1000, &GENESIS_HASH, "ab", &payload));
    assert_ne!(base, event_hash(run, 5, 1001, &GENESIS_HASH, "ab", &payload));
    assert_ne!(base, event_hash(run, 5, 1000, &[1; 32], "ab", &payload));
    assert_ne!(base, event_hash(run, 5, 1000, &GENESIS_HASH, "abx", &payload));
    // Moving bytes between the type and the payload changes the framing.
    let mut shifted = b"b".to_vec();
    shifted.extend_from_slice(&payload);
    assert_ne!(
        event_hash(run, 5, 1000, &GENESIS_HASH, "a", &shifted),
        event_hash(run, 5, 1000, &GENESIS_HASH, "ab", &payload)
    );
}

#[test]
fn read_of_a_sequence_never_appended_is_none() {
    let (_db, log) = open();
    let run = RunId::random();
    assert!(log.read(run, 0).expect("read").is_none());
    append_steps(&log, run, 3);
    assert!(log.read(run, 3).expect("read").is_none());
    assert!(log.read(run, u64::MAX).expect("read").is_none());
}

#[test]
fn read_range_returns_exactly_the_events_in_range_and_below_len() {
    let (_db, log) = open();
    let run = RunId::random();
    append_steps(&log, run, 10);
    let seqs = |events: Vec<inmem_primitives::event_log::EventView>| -> Vec<u64> {
        events.iter().map(|event| event.seq()).collect()
    };
    assert_eq!(seqs(log.read_range(run, 2..5).expect("range")), vec![2, 3, 4]);
    assert_eq!(seqs(log.read_range(run, ..3).expect("range")), vec![0, 1, 2]);
    assert_eq!(seqs(log.read_range(run, 7..).expect("range")), vec![7, 8, 9]);
    assert_eq!(seqs(log.read_range(run, 8..=9).expect("range")), vec![8, 9]);
    assert_eq!(seqs(log.read_range(run, 8..100).expect("range")), vec![8, 9], "capped at len");
    assert_eq!(seqs(log.read_range(run, ..).expect("range")), (0..10).collect::<Vec<_>>());
    assert_eq!(seqs(log.read_range(run, ..=u64::MAX).expect("range")).len(), 10);
    assert!(log.read_range(run, 5..5).expect("range").is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = log.read_range(run, 6..2).expect("range");
    assert!(inverted.is_empty());
    assert!(log.read_range(run, 10..20).expect("range").is_empty());
    let excluded = (std::ops::Bound::Excluded(3), std::ops::Bound::Included(4));
    assert_eq!(seqs(log.read_range(run, excluded).expect("range")), vec![4]);
    let payloads: Vec<_> = log
        .read_range(run, 4..6)
        .expect("range")
        .iter()
        .map(|event| event.payload().to_owned())
        .collect();
    assert_eq!(payloads, vec![Value::from(4), Value::from(5)]);
    assert!(log.read_range(RunId::random(), ..).expect("range").is_empty());
}

#[test]
fn head_is_the_last_event_and_an_empty_log_has_none() {
    let (_db, log) = open();
    let run = RunId::random();
    assert!(log.head(run).expect("head").is_none());
    log.append(run, "first", &Value::from(1)).expect("append");
    let head = log.head(run).expect("head").expect("an event");
    assert_eq!((head.seq(), head.event_type()), (0, "first"));
    log.append(run, "second", &Value::from(2)).expect("append");
    let head = log.head(run).expect("head").expect("an event");
    assert_eq!((head.seq(), head.event_type(), head.payload()), (1, "second", ValueRef::Int(2)));
}

#[test]
fn iteration_walks_every_event_in_order_across_pages() {
    let (_db, log) = open();
    let run = RunId::random();
    append_steps(&log, run, 600);
    let all: Vec<_> = log.iter(run).collect::<Result<_, _>>().expect("iterate");
    assert_eq!(all.len(), 600);
    for (index, event) in all.iter().enumerate() {
        assert_eq!(event.seq(), index as u64);
        assert_eq!(event.payload(), ValueRef::Int(index as i64));
    }
    let part: Vec<u64> =
        log.iter_range(run, 250..520).map(|event| event.expect("event").seq()).collect();
    assert_eq!(part, (250..520).collect::<Vec<_>>());
    assert_eq!(log.iter_range(run, 590..).count(), 10);
    assert_eq!(log.iter(RunId::random()).count(), 0);
}

#[test]
fn iteration_yields_the_events_present_when_it_started() {
    let (_db, log) = open();
    let run = RunId::random();
    append_steps(&log, run, 300);
    let mut iter = log.iter(run);
    assert_eq!(iter.next().expect("first").expect("event").seq(), 0);
    append_steps(&log, run, 100);
    let rest: Vec<u64> = iter.map(|event| event.expect("event").seq()).collect();
    assert_eq!(rest, (1..300).collect::<Vec<_>>(), "later appends are not yielded");
    assert_eq!(log.iter(run).count(), 400);
}

#[test]
fn read_by_type_returns_the_events_of_that_type_only_in_order() {
    let (_db, log) = open();
    let run = RunId::random();
    let types = ["a", "ab", "a\0b", "b", "a", "ab", "a"];
    for (index, event_type) in types.iter().enumerate() {
        log.append(run, event_type, &Value::from(index as i64)).expect("append");
    }
    let of_type = |event_type: &str| -> Vec<u64> {
        let events = log.read_by_type(run, event_type).expect("read_by_type");
        assert!(events.iter().all(|event| event.event_type() == event_type));
        events.iter().map(|event| event.seq()).collect()
    };
    assert_eq!(of_type("a"), vec![0, 4, 6]);
    assert_eq!(of_type("ab"), vec![1, 5]);
    assert_eq!(of_type("a\0b"), vec![2], "an escaped zero byte does not merge types");
    assert_eq!(of_type("b"), vec![3]);
    assert!(of_type("c").is_empty());
    assert!(log.read_by_type(RunId::random(), "a").expect("read_by_type").is_empty());
    let payload = log.read_by_type(run, "b").expect("read_by_type");
    assert_eq!(payload.first().map(|event| event.payload()), Some(ValueRef::Int(3)));
}

#[test]
fn event_types_that_are_empty_or_too_long_are_refused_and_nothing_is_written() {
    let (_db, log) = open();
    let run = RunId::random();
    assert_eq!(
        log.append(run, "", &Value::Null),
        Err(Error::InvalidName { reason: "an event type is empty" })
    );
    let long = "x".repeat(EVENT_TYPE_MAX + 1);
    assert_eq!(
        log.append(run, &long, &Value::Null),
        Err(Error::LimitExceeded { what: "event type bytes", actual: 257, max: 256 })
    );
    assert!(matches!(log.read_by_type(run, ""), Err(Error::InvalidName { .. })));
    assert!(matches!(log.read_by_type(run, &long), Err(Error::LimitExceeded { .. })));
    assert_eq!(log.len(run).expect("len"), 0, "refused appends write nothing");

    let longest = "y".repeat(EVENT_TYPE_MAX);
    assert_eq!(log.append(run, &longest, &Value::Null).expect("longest type"), 0);
    // 128 two-byte characters: 256 bytes, at the limit.
    let wide = "\u{e9}".repeat(EVENT_TYPE_MAX / 2);
    assert_eq!(log.append(run, &wide, &Value::Null).expect("multibyte type"), 1);
    assert_eq!(log.read(run, 1).expect("read").expect("event").event_type(), wide);
    assert_eq!(log.read_by_type(run, &longest).expect("read_by_type").len(), 1);
    assert!(log.verify_chain(run).expect("verify").is_verified());
}

#[test]
fn a_payload_too_deep_or_too_large_is_refused_and_nothing_is_written() {
    let limits = Limits { value_bytes_max: 1024, ..Limits::default() };
    let (_db, log) = open_with(limits);
    let run = RunId::random();
    let mut deep = Value::Null;
    for _ in 0..=inmem_primitives::DEPTH_MAX {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        log.append(run, "deep", &deep),
        Err(Error::LimitExceeded { what: "value nesting depth", .. })
    ));
    let large = Value::Bytes(vec![7; 2000]);
    assert!(matches!(
        log.append(run, "large", &large),
        Err(Error::Engine(inmem_engine::Error::LimitExceeded { limit: Limit::ValueBytes, .. }))
    ));
    assert_eq!(log.len(run).expect("len"), 0);
    assert!(log.read(run, 0).expect("read").is_none());
    assert_eq!(log.append(run, "small", &Value::Bytes(vec![7; 100])).expect("append"), 0);
    assert!(log.verify_chain(run).expect("verify").is_verified());
}

#[test]
fn an_append_that_fails_midway_leaves_no_part_of_itself_in_the_transaction() {
    // Three writes per append (event, index entry, head): with room for two, the head's
    // write fails after the other two were buffered.
    let limits = Limits { transaction_writes_max: 2, ..Limits::default() };
    let (db, log) = open_with(limits);
    let run = RunId::random();
    let mut txn = db.begin();
    let error = txn.events(run).append("step", &Value::Null).expect_err("over the write limit");
    assert!(matches!(
        error,
        Error::Engine(inmem_engine::Error::LimitExceeded { limit: Limit::TransactionWrites, .. })
    ));
    assert_eq!(txn.events(run).len().expect("len"), 0);
    assert!(txn.events(run).read(0).expect("read").is_none());
    assert!(txn.events(run).read_by_type("step").expect("read_by_type").is_empty());
    txn.commit().expect("commit what is left");
    assert_eq!(log.len(run).expect("len"), 0);
    assert!(log.read(run, 0).expect("read").is_none());
    assert!(log.read_by_type(run, "step").expect("read_by_type").is_empty());
    assert_eq!(
        log.verify_chain(run).expect("verify"),
        ChainReport::Verified { len: 0, head_hash: None }
    );
    assert!(matches!(log.append(run, "step", &Value::Null), Err(Error::Engine(_))));
}

#[test]
fn runs_are_isolated() {
    let (db, log) = open();
    let (a, b) = (RunId::random(), RunId::random());
    append_steps(&log, a, 5);
    log.append(b, "step", &Value::from("b's")).expect("append");
    log.append(b, "other", &Value::Null).expect("append");
    assert_eq!((log.len(a).expect("len"), log.len(b).expect("len")), (5, 2));
    assert_eq!(log.read_by_type(a, "step").expect("by type").len(), 5);
    assert_eq!(log.read_by_type(b, "step").expect("by type").len(), 1);
    assert!(log.read_by_type(a, "other").expect("by type").is_empty());
    assert_eq!(log.read(b, 0).expect("read").expect("event").payload(), ValueRef::Str("b's"));
    assert!(log.read(b, 2).expect("read").is_none());
    assert_eq!(log.iter(b).count(), 2);
    assert!(log.verify_chain(a).expect("verify").is_verified());
    assert!(log.verify_chain(b).expect("verify").is_verified());
    assert_ne!(
        log.read(a, 0).expect("read").expect("event").hash(),
        log.read(b, 0).expect("read").expect("event").hash()
    );
    let snapshot = db.snapshot();
    let keys: Vec<_> = snapshot.prefix(tag_prefix(a, TypeTag::Event)).map(|(key, _)| key).collect();
    assert_eq!(keys.len(), 5 + 5 + 1, "a's events, index entries and head");
    assert!(keys.iter().all(|key| key.starts_with(a.as_bytes())));
}

#[test]
fn eight_threads_appending_to_one_run_get_dense_unique_sequences_and_a_valid_chain() {
    const THREADS: i64 = 8;
    const PER_THREAD: i64 = 100;
    let (_db, log) = open();
    let run = RunId::random();
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let log = log.clone();
            std::thread::spawn(move || -> Vec<u64> {
                let event_type = format!("thread-{thread}");
                (0..PER_THREAD)
                    .map(|i| {
                        let payload = Value::Array(vec![Value::from(thread), Value::from(i)]);
                        log.append(run, &event_type, &payload).expect("append")
                    })
                    .collect()
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for handle in handles {
        let seqs = handle.join().expect("thread");
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "one thread's appends in order");
        for seq in seqs {
            assert!(all.insert(seq), "sequence {seq} given twice");
        }
    }
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(all, (0..total).collect::<BTreeSet<_>>(), "dense from 0, no gaps");
    assert_eq!(log.len(run).expect("len"), total);
    assert_eq!(log.verify_chain(run).expect("verify").first_broken(), None);
    for thread in 0..THREADS {
        let events = log.read_by_type(run, &format!("thread-{thread}")).expect("by type");
        let numbers: Vec<_> = events
            .iter()
            .map(|event| event.payload().to_owned())
            .map(|payload| payload.as_array().and_then(|items| items.get(1)?.as_int()))
            .collect();
        assert_eq!(numbers, (0..PER_THREAD).map(Some).collect::<Vec<_>>());
    }
}

#[test]
fn verify_chain_accepts_an_intact_log_and_an_empty_one() {
    let (_db, log) = open();
    let run = RunId::random();
    assert_eq!(
        log.verify_chain(run).expect("verify"),
        ChainReport::Verified { len: 0, head_hash: None }
    );
    append_steps(&log, run, 10);
    let last = *log.head(run).expect("head").expect("event").hash();
    let report = log.verify_chain(run).expect("verify");
    assert_eq!(report, ChainReport::Verified { len: 10, head_hash: Some(last) });
    assert!(report.is_verified());
}

/// A log of 8 events, its database and run.
fn tamper_setup() -> (Arc<Database>, EventLog, RunId) {
    let (db, log) = open();
    let run = RunId::random();
    append_steps(&log, run, 8);
    (db, log, run)
}

/// The stored record of event `seq` with its payload replaced by `payload`.
fn with_payload(db: &Database, run: RunId, seq: u64, payload: &Value) -> Vec<u8> {
    let record = stored(db, &event_key(run, seq));
    let type_len = u32::from_le_bytes(record.get(80..84).expect("header").try_into().expect("4"));
    let mut changed = record.get(..84 + type_len as usize).expect("type").to_vec();
    changed.extend_from_slice(&payload.try_encode().expect("encode"));
    changed
}

#[test]
fn a_modified_payload_breaks_the_chain_at_that_event() {
    let (db, log, run) = tamper_setup();
    db.put(event_key(run, 3), with_payload(&db, run, 3, &Value::from(333))).expect("put");
    let report = log.verify_chain(run).expect("verify");
    assert_eq!(report.first_broken(), Some(3));
    assert!(
        matches!(
            report,
            ChainReport::Broken(ChainBreak { reason: BreakReason::HashMismatch { .. }, .. })
        ),
        "{report:?}"
    );
    // The record itself still reads: only the chain shows the change.
    let event = log.read(run, 3).expect("read").expect("event");
    assert_eq!(event.payload(), ValueRef::Int(333));
    assert_ne!(&event.compute_hash(run), event.hash());
}

#[test]
fn a_modified_and_rehashed_event_breaks_the_chain_at_the_next_event() {
    let (db, log, run) = tamper_setup();
    let mut record = with_payload(&db, run, 3, &Value::from("forged"));
    let (timestamp_ms, prev) = (u64_at(&record, 8), hash_at(&record, 16));
    let payload = Value::from("forged").try_encode().expect("encode");
    let forged = event_hash(run, 3, timestamp_ms, &prev, "step", &payload);
    record.get_mut(48..80).expect("hash field").copy_from_slice(&forged);
    db.put(event_key(run, 3), &record).expect("put");
    let report = log.verify_chain(run).expect("verify");
    let ChainReport::Broken(ChainBreak {
        seq: 4,
        reason: BreakReason::PrevHashMismatch { expected, .. },
    }) = report
    else {
        panic!("expected a broken link at 4, got {report:?}");
    };
    assert_eq!(expected, forged);
}

#[test]
fn a_rehashed_last_event_breaks_the_chain_at_the_head() {
    let (db, log, run) = tamper_setup();
    let mut record = with_payload(&db, run, 7, &Value::from("forged"));
    let (timestamp_ms, prev) = (u64_at(&record, 8), hash_at(&record, 16));
    let payload = Value::from("forged").try_encode().expect("encode");
    let forged = event_hash(run, 7, timestamp_ms, &prev, "step", &payload);
    record.get_mut(48..80).expect("hash field").copy_from_slice(&forged);
    db.put(event_key(run, 7), &record).expect("put");
    let report = log.verify_chain(run).expect("verify");
    let ChainReport::Broken(ChainBreak { seq: 7, reason: BreakReason::HeadMismatch { last, .. } }) =
        report
    else {
        panic!("expected the head not to match event 7, got {report:?}");
    };
    assert_eq!(last, forged);
}

#[test]
fn a_deleted_event_is_named_missing() {
    let (db, log, run) = tamper_setup();
    db.delete(event_key(run, 5)).expect("delete");
    assert_eq!(log.verify_chain(run).expect("verify"), broken(5, BreakReason::Missing));
    assert!(log.read(run, 5).expect("read").is_none());
    assert!(matches!(log.read_range(run, 4..7), Err(Error::Corrupt { .. })));
    assert!(matches!(log.iter(run).collect::<Result<Vec<_>, _>>(), Err(Error::Corrupt { .. })));

    let (db, log, run) = tamper_setup();
    db.delete(event_key(run, 7)).expect("delete the last event");
    assert_eq!(log.verify_chain(run).expect("verify"), broken(7, BreakReason::Missing));
    assert!(matches!(log.head(run), Err(Error::Corrupt { .. })));
    assert!(matches!(log.read_range(run, 6..), Err(Error::Corrupt { .. })));
    assert!(matches!(log.read_by_type(run, "step"), Err(Error::Corrupt { .. })));

    let (db, log, run) = tamper_setup();
    db.delete(event_key(run, 0)).expect("delete the first event");
    assert_eq!(log.verify_chain(run).expect("verify"), broken(0, BreakReason::Missing));
}

#[test]
fn swapped_events_break_the_chain_at_the_first_of_them() {
    let (db, log, run) = tamper_setup();
    let (two, six) = (stored(&db, &event_key(run, 2)), stored(&db, &event_key(run, 6)));
    db.put(event_key(run, 2), &six).expect("put");
    db.put(event_key(run, 6), &two).expect("put");
    assert_eq!(
        log.verify_chain(run).expect("verify"),
        broken(2, BreakReason::SequenceMismatch { stored: 6 })
    );
    assert!(matches!(log.read(run, 2), Err(Error::Corrupt { .. })));

    // Swapped with their sequence fields rewritten too: the links show the reorder.
    let (db, log, run) = tamper_setup();
    let (mut two, mut three) = (stored(&db, &event_key(run, 2)), stored(&db, &event_key(run, 3)));
    two.get_mut(..8).expect("seq").copy_from_slice(&3u64.to_le_bytes());
    three.get_mut(..8).expect("seq").copy_from_slice(&2u64.to_le_bytes());
    db.put(event_key(run, 2), &three).expect("put");
    db.put(event_key(run, 3), &two).expect("put");
    let report = log.verify_chain(run).expect("verify");
    assert!(
        matches!(
            report,
            ChainReport::Broken(ChainBreak {
                seq: 2,
                reason: BreakReason::PrevHashMismatch { .. }
            })
        ),
        "{report:?}"
    );
}

#[test]
fn an_event_from_another_run_does_not_verify() {
    let (db, log, run) = tamper_setup();
    let other = RunId::random();
    append_steps(&log, other, 1);
    // Same sequence, type and payload, genesis link: only the run differs (and the time).
    db.put(event_key(run, 0), stored(&db, &event_key(other, 0))).expect("put");
    let report = log.verify_chain(run).expect("verify");
    assert!(
        matches!(
            report,
            ChainReport::Broken(ChainBreak { seq: 0, reason: BreakReason::HashMismatch { .. } })
        ),
        "{report:?}"
    );
}

#[test]
fn damaged_records_and_heads_are_reported_not_panicked_on() {
    let (db, log, run) = tamper_setup();
    db.put(event_key(run, 4), b"short").expect("put");
    let report = log.verify_chain(run).expect("verify");
    assert!(
        matches!(
            report,
            ChainReport::Broken(ChainBreak { seq: 4, reason: BreakReason::Malformed(_) })
        ),
        "{report:?}"
    );
    assert!(matches!(log.read(run, 4), Err(Error::Decode(_))));

    // A type length past the end of the record.
    let (db, log, run) = tamper_setup();
    let mut record = stored(&db, &event_key(run, 1));
    record.get_mut(80..84).expect("type length").copy_from_slice(&1000u32.to_le_bytes());
    db.put(event_key(run, 1), &record).expect("put");
    assert_eq!(log.verify_chain(run).expect("verify").first_broken(), Some(1));
    assert!(matches!(log.read(run, 1), Err(Error::Decode(_))));

    // An event past the head record's length.
    let (db, log, run) = tamper_setup();
    let forged = event_hash(run, 8, 0, &[9; 32], "step", &Value::Null.encode());
    let mut extra = stored(&db, &event_key(run, 7));
    extra.get_mut(..8).expect("seq").copy_from_slice(&8u64.to_le_bytes());
    extra.get_mut(48..80).expect("hash").copy_from_slice(&forged);
    db.put(event_key(run, 8), &extra).expect("put");
    assert_eq!(log.verify_chain(run).expect("verify"), broken(8, BreakReason::PastHead { len: 8 }));
    assert_eq!(log.len(run).expect("len"), 8, "the head is the length");

    // The head record deleted, or not 48 bytes.
    let (db, log, run) = tamper_setup();
    db.delete(head_key(run)).expect("delete");
    assert_eq!(log.verify_chain(run).expect("verify"), broken(0, BreakReason::PastHead { len: 0 }));
    db.put(head_key(run), b"garbage").expect("put");
    assert_eq!(log.verify_chain(run).expect("verify"), broken(0, BreakReason::HeadMalformed));
    assert!(matches!(log.len(run), Err(Error::Corrupt { .. })));
    assert!(matches!(log.append(run, "step", &Value::Null), Err(Error::Corrupt { .. })));

    // A key in the event range that is not an event key.
    let (db, log, run) = tamper_setup();
    let mut odd = event_key(run, 3);
    odd.push(0);
    db.put(&odd, b"x").expect("put");
    let report = log.verify_chain(run).expect("verify");
    assert!(
        matches!(
            report,
            ChainReport::Broken(ChainBreak { seq: 4, reason: BreakReason::MalformedKey(_) })
        ),
        "{report:?}"
    );
}

#[test]
fn an_append_in_a_rolled_back_or_failed_transaction_leaves_no_event_and_no_head_change() {
    let (db, log) = open();
    let run = RunId::random();
    append_steps(&log, run, 2);
    let head_before = stored(&db, &head_key(run));

    let mut txn = db.begin();
    assert_eq!(txn.events(run).append("draft", &Value::from("x")).expect("append"), 2);
    assert_eq!(txn.events(run).len().expect("len"), 3, "the transaction sees its append");
    let head = txn.events(run).head().expect("head").expect("event");
    assert_eq!((head.seq(), head.event_type()), (2, "draft"));
    assert_eq!(log.len(run).expect("len"), 2, "nobody else does");
    txn.rollback();

    let failed = db.transaction_typed(Default::default(), |txn| {
        txn.events(run).append("draft", &Value::from("y"))?;
        Err::<(), _>(Error::NotFound { what: "something the closure needed" })
    });
    assert_eq!(failed, Err(Error::NotFound { what: "something the closure needed" }));

    assert_eq!(log.len(run).expect("len"), 2);
    assert!(log.read(run, 2).expect("read").is_none());
    assert!(log.read_by_type(run, "draft").expect("by type").is_empty());
    assert_eq!(stored(&db, &head_key(run)), head_before, "the head record is unchanged");
    assert!(log.verify_chain(run).expect("verify").is_verified());
    assert_eq!(log.append(run, "step", &Value::Null).expect("append"), 2, "no gap left behind");
}

#[test]
fn appends_in_one_transaction_commit_together_with_its_other_writes() {
    let (db, log) = open();
    let run = RunId::random();
    let committed = db
        .transaction_typed(Default::default(), |txn| {
            let mut events = txn.events(run);
            let first = events.append("a", &Value::from(1))?;
            let second = events.append("b", &Value::from(2))?;
            assert_eq!(events.read(first)?.map(|event| event.seq()), Some(0));
            assert_eq!(events.read_range(..)?.len(), 2);
            assert_eq!(events.read_by_type("b")?.len(), 1);
            assert!(events.verify_chain()?.is_verified(), "verifies its own appends");
            txn.put(b"other", b"write")?;
            Ok::<_, Error>((first, second))
        })
        .expect("commit");
    assert_eq!(committed.value, (0, 1));
    let snapshot = db.snapshot_at(committed.version).expect("snapshot");
    assert!(snapshot.get(b"other").expect("get").is_some());
    assert!(snapshot.get(event_key(run, 1)).expect("get").is_some());
    assert!(log.verify_chain(run).expect("verify").is_verified());
}

#[test]
fn concurrent_transactional_appends_to_one_run_conflict() {
    let (db, log) = open();
    let run = RunId::random();
    let mut first = db.begin();
    let mut second = db.begin();
    assert_eq!(first.events(run).append("x", &Value::Null).expect("append"), 0);
    assert_eq!(second.events(run).append("y", &Value::Null).expect("append"), 0);
    first.commit().expect("the first committer wins");
    let error = Error::from(second.commit().expect_err("the second conflicts"));
    assert!(error.is_conflict());
    assert_eq!(log.len(run).expect("len"), 1);
    assert_eq!(log.read(run, 0).expect("read").expect("event").event_type(), "x");

    // Appends to different runs touch different keys and both commit.
    let (a, b) = (RunId::random(), RunId::random());
    let mut first = db.begin();
    let mut second = db.begin();
    first.events(a).append("x", &Value::Null).expect("append");
    second.events(b).append("x", &Value::Null).expect("append");
    first.commit().expect("commit");
    second.commit().expect("no conflict across runs");
}

#[test]
fn timestamps_never_go_backwards_within_a_run() {
    let (db, log) = open();
    let run = RunId::random();
    append_steps(&log, run, 1);
    // A head whose last event is an hour ahead, as if the clock had since stepped back.
    let mut head = stored(&db, &head_key(run));
    let ahead = now_ms() + 3_600_000;
    head.get_mut(8..16).expect("timestamp").copy_from_slice(&ahead.to_le_bytes());
    db.put(head_key(run), &head).expect("put");
    log.append(run, "later", &Value::Null).expect("append");
    assert_eq!(log.read(run, 1).expect("read").expect("event").timestamp_ms(), ahead);
    assert!(log.verify_chain(run).expect("verify").is_verified());
    append_steps(&log, run, 50);
    let events = log.read_range(run, ..).expect("range");
    assert!(events.windows(2).all(|pair| pair[0].timestamp_ms() <= pair[1].timestamp_ms()));
}
