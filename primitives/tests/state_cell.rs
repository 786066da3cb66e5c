//! StateCell: every operation and error case, versions, run isolation, the transactional
//! form, the stored format, and contention.

#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{SystemTime, UNIX_EPOCH};

use inmem_engine::{Database, Limit, Options};
use inmem_primitives::state_cell::{CasOutcome, StateCell, StateCellExt, ABSENT_VERSION};
use inmem_primitives::{
    DecodeReason, Error, KeyBuf, Result, RunId, TypeTag, Value, ValueRef, DEPTH_MAX,
};

fn cells() -> Result<(Arc<Database>, StateCell)> {
    let db = Arc::new(Database::in_memory()?);
    Ok((db.clone(), StateCell::new(db)))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// The engine key of a cell, as the module doc lays it out.
fn raw_key(run: RunId, name: &[u8]) -> Vec<u8> {
    KeyBuf::new(run, TypeTag::State).push_bytes(name).finish()
}

/// A stored record as the module doc lays it out: version, updated at, encoded value.
fn raw_record(version: u64, updated_at_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut record = version.to_le_bytes().to_vec();
    record.extend_from_slice(&updated_at_ms.to_le_bytes());
    record.extend_from_slice(value);
    record
}

fn version_of(cells: &StateCell, run: RunId, name: &str) -> Result<Option<u64>> {
    Ok(cells.read(run, name)?.map(|view| view.version()))
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
}

#[test]
fn init_creates_a_cell_at_version_one_and_refuses_an_existing_one() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    assert_eq!(cells.init(run, "phase", &Value::from("plan"))?, 1);
    assert_eq!(
        cells.init(run, "phase", &Value::from("other")),
        Err(Error::AlreadyExists { what: "state cell" })
    );
    let view = cells.read(run, "phase")?.ok_or(Error::NotFound { what: "phase" })?;
    assert_eq!(
        (view.version(), view.value()),
        (1, ValueRef::Str("plan")),
        "refused init wrote nothing"
    );
    Ok(())
}

#[test]
fn reading_an_absent_cell_gives_none() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    assert!(cells.read(run, "missing")?.is_none());
    assert!(!cells.exists(run, "missing")?);
    Ok(())
}

#[test]
fn a_view_reads_version_time_and_value_in_place() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let value = Value::from(vec![Value::from("a"), Value::from(2), Value::from(vec![1u8, 2, 3])]);
    let before = now_ms();
    cells.init(run, "cell", &value)?;
    let after = now_ms();
    let view = cells.read(run, "cell")?.ok_or(Error::NotFound { what: "cell" })?;
    assert_eq!(view.version(), 1);
    assert!(
        (before..=after).contains(&view.updated_at_ms()),
        "written between {before} and {after}"
    );
    assert_eq!(view.to_value(), value);
    assert_eq!(view.value().to_owned(), value);
    assert_eq!(view.value_view().to_value(), value);
    let clone = view.clone();
    assert_eq!(clone, view, "a clone shares and equals the stored bytes");
    let debug = format!("{view:?}");
    assert!(debug.contains("version: 1"), "{debug}");
    Ok(())
}

#[test]
fn set_creates_an_absent_cell_and_adds_one_to_the_version_per_write() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    assert_eq!(cells.set(run, "n", &Value::from(0))?, 1, "created at version 1");
    for expected in 2..=20 {
        assert_eq!(cells.set(run, "n", &Value::from(expected))?, expected as u64);
    }
    let view = cells.read(run, "n")?.ok_or(Error::NotFound { what: "n" })?;
    assert_eq!((view.version(), view.value()), (20, ValueRef::Int(20)));
    Ok(())
}

#[test]
fn cas_writes_only_at_the_expected_version() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "c", &Value::from("v1"))?;
    assert_eq!(cells.cas(run, "c", 1, &Value::from("v2"))?, CasOutcome::Written(2));
    for stale in [0, 1, 3, u64::MAX] {
        let outcome = cells.cas(run, "c", stale, &Value::from("stale"))?;
        assert_eq!(outcome, CasOutcome::Mismatch { current: Some(2) }, "expected {stale}");
        assert!(!outcome.is_written());
        assert_eq!(outcome.written_version(), None);
    }
    let view = cells.read(run, "c")?.ok_or(Error::NotFound { what: "c" })?;
    assert_eq!(
        (view.version(), view.value()),
        (2, ValueRef::Str("v2")),
        "mismatches wrote nothing"
    );
    let outcome = cells.cas(run, "c", 2, &Value::from("v3"))?;
    assert!(outcome.is_written());
    assert_eq!(outcome.written_version(), Some(3));
    Ok(())
}

#[test]
fn cas_against_version_zero_creates_an_absent_cell_and_else_reports_it_absent() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    assert_eq!(
        cells.cas(run, "c", 1, &Value::from(1))?,
        CasOutcome::Mismatch { current: None },
        "no cell has version 1"
    );
    assert!(!cells.exists(run, "c")?, "a mismatch creates nothing");
    assert_eq!(cells.cas(run, "c", ABSENT_VERSION, &Value::from(1))?, CasOutcome::Written(1));
    assert_eq!(
        cells.cas(run, "c", ABSENT_VERSION, &Value::from(2))?,
        CasOutcome::Mismatch { current: Some(1) },
        "the cell exists now"
    );
    Ok(())
}

#[test]
fn every_successful_write_adds_exactly_one_to_the_version() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let mut expected = cells.init(run, "c", &Value::from(0))?;
    for round in 0..30_u64 {
        let before = version_of(&cells, run, "c")?;
        assert_eq!(before, Some(expected));
        expected = match round % 4 {
            0 => cells.set(run, "c", &Value::from(round as i64))?,
            1 => cells
                .cas(run, "c", expected, &Value::from(round as i64))?
                .written_version()
                .ok_or(Error::NotFound { what: "written version" })?,
            2 => cells.transition(run, "c", |_| Ok(Value::from(round as i64)))?.version(),
            _ => {
                // Failed writes in between change nothing.
                assert!(cells.init(run, "c", &Value::Null).is_err());
                assert!(!cells.cas(run, "c", expected + 1, &Value::Null)?.is_written());
                assert!(cells.transition(run, "c", |_| Err(Error::Overflow)).is_err());
                cells.set(run, "c", &Value::from(round as i64))?
            }
        };
        assert_eq!(Some(expected), before.map(|version| version + 1), "round {round}");
    }
    assert_eq!(version_of(&cells, run, "c")?, Some(31));
    Ok(())
}

#[test]
fn delete_says_whether_the_cell_existed() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    assert!(!cells.delete(run, "c")?, "nothing to delete");
    cells.init(run, "c", &Value::from(1))?;
    assert!(cells.exists(run, "c")?);
    assert!(cells.delete(run, "c")?);
    assert!(!cells.exists(run, "c")?);
    assert!(cells.read(run, "c")?.is_none());
    assert!(!cells.delete(run, "c")?, "deleted already");
    assert!(cells.list(run)?.is_empty());
    Ok(())
}

#[test]
fn a_cell_deleted_and_created_again_starts_at_version_one() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "c", &Value::from(1))?;
    cells.set(run, "c", &Value::from(2))?;
    cells.set(run, "c", &Value::from(3))?;
    assert_eq!(version_of(&cells, run, "c")?, Some(3));
    cells.delete(run, "c")?;
    assert_eq!(cells.init(run, "c", &Value::from("new"))?, 1, "init after delete");
    cells.delete(run, "c")?;
    assert_eq!(cells.set(run, "c", &Value::from("new"))?, 1, "set after delete");
    cells.delete(run, "c")?;
    assert_eq!(cells.cas(run, "c", 3, &Value::Null)?, CasOutcome::Mismatch { current: None });
    assert_eq!(cells.cas(run, "c", 0, &Value::Null)?, CasOutcome::Written(1), "cas after delete");
    Ok(())
}

#[test]
fn transition_writes_the_closures_value_from_the_current_one() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "list", &Value::from(vec![Value::from(1)]))?;
    let written = cells.transition(run, "list", |current| {
        let mut items: Vec<Value> = current
            .as_array()
            .map(|items| items.iter().map(|item| item.to_owned()).collect())
            .unwrap_or_default();
        items.push(Value::from(2));
        Ok(Value::Array(items))
    })?;
    let expected = Value::from(vec![Value::from(1), Value::from(2)]);
    assert_eq!((written.version(), written.to_value()), (2, expected.clone()));
    let read = cells.read(run, "list")?.ok_or(Error::NotFound { what: "list" })?;
    assert_eq!(read, written, "what transition returns is what is stored");
    assert_eq!(read.to_value(), expected);
    Ok(())
}

#[test]
fn transition_of_an_absent_cell_is_not_found_and_calls_nothing() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let mut calls = 0;
    let outcome = cells.transition(run, "missing", |_| {
        calls += 1;
        Ok(Value::Null)
    });
    assert_eq!(outcome.err(), Some(Error::NotFound { what: "state cell" }));
    assert_eq!(calls, 0);
    assert!(!cells.exists(run, "missing")?, "nothing created");
    Ok(())
}

#[test]
fn a_transition_whose_closure_fails_writes_nothing_and_returns_its_error() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "n", &Value::from(i64::MAX))?;
    let outcome = cells.transition(run, "n", |current| {
        current.as_int().and_then(|n| n.checked_add(1)).map(Value::from).ok_or(Error::Overflow)
    });
    assert_eq!(outcome.err(), Some(Error::Overflow));
    let view = cells.read(run, "n")?.ok_or(Error::NotFound { what: "n" })?;
    assert_eq!((view.version(), view.value()), (1, ValueRef::Int(i64::MAX)));
    Ok(())
}

#[test]
fn list_returns_only_the_runs_cells_in_name_order() -> Result<()> {
    let (db, cells) = cells()?;
    let (run, other) = (RunId::random(), RunId::random());
    for name in ["b", "a", "a\u{0}z", "ab", "\u{e9}t\u{e9}"] {
        cells.set(run, name, &Value::from(name))?;
    }
    cells.set(other, "a", &Value::Null)?;
    cells.set(other, "other-only", &Value::Null)?;
    // Keys of another primitive of the same run, just before and after the StateCell tag.
    db.put(KeyBuf::new(run, TypeTag::Event).push_bytes(b"zz").finish(), b"x")?;
    db.put(KeyBuf::new(run, TypeTag::Trace).push_bytes(b"00").finish(), b"x")?;
    assert_eq!(cells.list(run)?, ["a", "a\u{0}z", "ab", "b", "\u{e9}t\u{e9}"]);
    assert_eq!(cells.list(other)?, ["a", "other-only"]);
    assert!(cells.list(RunId::random())?.is_empty());
    cells.delete(run, "ab")?;
    assert_eq!(
        cells.list(run)?,
        ["a", "a\u{0}z", "b", "\u{e9}t\u{e9}"],
        "deleted cells are not listed"
    );
    Ok(())
}

#[test]
fn entries_pair_each_name_with_its_view() -> Result<()> {
    let (_db, cells) = cells()?;
    let (run, other) = (RunId::random(), RunId::random());
    cells.set(run, "x", &Value::from(1))?;
    cells.set(run, "x", &Value::from(2))?;
    cells.set(run, "y", &Value::from("why"))?;
    cells.set(other, "z", &Value::Null)?;
    let entries: Vec<(String, u64, Value)> = cells
        .entries(run)?
        .into_iter()
        .map(|(name, view)| (name, view.version(), view.to_value()))
        .collect();
    assert_eq!(
        entries,
        [("x".to_string(), 2, Value::from(2)), ("y".to_string(), 1, Value::from("why"))]
    );
    Ok(())
}

#[test]
fn runs_with_the_same_cell_names_never_see_each_other() -> Result<()> {
    let (_db, cells) = cells()?;
    let (a, b) = (RunId::random(), RunId::random());
    cells.init(a, "phase", &Value::from("a"))?;
    assert!(!cells.exists(b, "phase")?);
    assert_eq!(cells.init(b, "phase", &Value::from("b"))?, 1, "b's cell is its own");
    cells.set(a, "phase", &Value::from("a2"))?;
    cells.set(a, "phase", &Value::from("a3"))?;
    let (view_a, view_b) = (cells.read(a, "phase")?, cells.read(b, "phase")?);
    assert_eq!(view_a.map(|view| (view.version(), view.to_value())), Some((3, Value::from("a3"))));
    assert_eq!(view_b.map(|view| (view.version(), view.to_value())), Some((1, Value::from("b"))));
    assert_eq!(cells.cas(b, "phase", 3, &Value::Null)?, CasOutcome::Mismatch { current: Some(1) });
    assert!(cells.delete(b, "phase")?);
    assert!(cells.exists(a, "phase")?, "deleting b's cell leaves a's");
    Ok(())
}

#[test]
fn an_empty_name_is_refused_by_every_operation() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let refused = Error::InvalidName { reason: "empty" };
    assert_eq!(cells.init(run, "", &Value::Null).err(), Some(refused.clone()));
    assert_eq!(cells.read(run, "").err(), Some(refused.clone()));
    assert_eq!(cells.cas(run, "", 0, &Value::Null).err(), Some(refused.clone()));
    assert_eq!(cells.set(run, "", &Value::Null).err(), Some(refused.clone()));
    assert_eq!(cells.delete(run, "").err(), Some(refused.clone()));
    assert_eq!(cells.exists(run, "").err(), Some(refused.clone()));
    assert_eq!(cells.transition(run, "", |_| Ok(Value::Null)).err(), Some(refused));
    assert!(cells.list(run)?.is_empty());
    Ok(())
}

#[test]
fn a_name_over_the_engines_key_limit_gives_its_limit_error() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let key_bytes_max = Options::default().limits.key_bytes_max;
    let fits = "n".repeat(key_bytes_max - 17);
    assert_eq!(cells.set(run, &fits, &Value::Null)?, 1, "a key of exactly the limit");
    let too_long = "n".repeat(key_bytes_max - 16);
    let is_key_limit = |outcome: Result<_>| {
        matches!(
            outcome,
            Err(Error::Engine(inmem_engine::Error::LimitExceeded { limit: Limit::KeyBytes, .. }))
        )
    };
    assert!(is_key_limit(cells.set(run, &too_long, &Value::Null).map(drop)));
    assert!(is_key_limit(cells.init(run, &too_long, &Value::Null).map(drop)));
    assert!(is_key_limit(cells.read(run, &too_long).map(drop)));
    assert!(is_key_limit(cells.cas(run, &too_long, 0, &Value::Null).map(drop)));
    assert!(is_key_limit(cells.exists(run, &too_long).map(drop)));
    assert!(is_key_limit(cells.delete(run, &too_long).map(drop)));
    assert_eq!(cells.list(run)?, [fits]);
    Ok(())
}

#[test]
fn a_value_nested_too_deeply_is_refused_and_nothing_is_written() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let too_deep = nested(DEPTH_MAX + 1);
    let refused = |outcome: Result<_>| matches!(outcome, Err(Error::LimitExceeded { .. }));
    assert!(refused(cells.init(run, "c", &too_deep).map(drop)));
    assert!(refused(cells.set(run, "c", &too_deep).map(drop)));
    assert!(refused(cells.cas(run, "c", 0, &too_deep).map(drop)));
    assert!(!cells.exists(run, "c")?);
    cells.init(run, "c", &nested(DEPTH_MAX))?;
    assert!(refused(cells.transition(run, "c", |_| Ok(too_deep.clone())).map(drop)));
    assert_eq!(version_of(&cells, run, "c")?, Some(1));
    Ok(())
}

#[test]
fn a_value_over_the_engines_value_limit_gives_its_limit_error() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let value_bytes_max = Options::default().limits.value_bytes_max;
    let outcome = cells.set(run, "big", &Value::Bytes(vec![0; value_bytes_max]));
    assert!(matches!(
        outcome,
        Err(Error::Engine(inmem_engine::Error::LimitExceeded { limit: Limit::ValueBytes, .. }))
    ));
    assert!(!cells.exists(run, "big")?);
    Ok(())
}

#[test]
fn the_stored_record_is_the_documented_header_then_the_encoded_value() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "c", &Value::from("one"))?;
    cells.set(run, "c", &Value::from("two"))?;
    let view = cells.read(run, "c")?.ok_or(Error::NotFound { what: "c" })?;
    let stored = db.get(raw_key(run, b"c"))?.ok_or(Error::NotFound { what: "raw record" })?;
    assert_eq!(&*stored, &raw_record(2, view.updated_at_ms(), &Value::from("two").encode())[..]);
    // And a record written by hand to that layout reads back.
    let by_hand = raw_record(7, 1_234, &Value::from(42).encode());
    db.put(raw_key(run, b"hand"), by_hand)?;
    let view = cells.read(run, "hand")?.ok_or(Error::NotFound { what: "hand" })?;
    assert_eq!((view.version(), view.updated_at_ms(), view.value()), (7, 1_234, ValueRef::Int(42)));
    assert_eq!(cells.set(run, "hand", &Value::Null)?, 8);
    Ok(())
}

#[test]
fn a_record_shorter_than_its_header_is_corrupt() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    let key = raw_key(run, b"short");
    db.put(&key, [1, 0, 0, 0, 0, 0, 0, 0, 9])?;
    let corrupt =
        Error::Corrupt { key: key.clone(), reason: "state cell record shorter than its header" };
    assert_eq!(cells.read(run, "short").err(), Some(corrupt.clone()));
    assert_eq!(cells.set(run, "short", &Value::Null).err(), Some(corrupt.clone()));
    assert_eq!(cells.cas(run, "short", 1, &Value::Null).err(), Some(corrupt.clone()));
    assert_eq!(cells.transition(run, "short", |_| Ok(Value::Null)).err(), Some(corrupt.clone()));
    assert_eq!(cells.entries(run).err(), Some(corrupt));
    assert!(cells.exists(run, "short")?, "it exists, corrupt");
    assert!(cells.delete(run, "short")?, "and a corrupt cell can be deleted");
    Ok(())
}

#[test]
fn a_record_at_version_zero_is_corrupt() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    let key = raw_key(run, b"zero");
    db.put(&key, raw_record(0, 0, &Value::Null.encode()))?;
    let corrupt = Error::Corrupt { key, reason: "state cell version 0" };
    assert_eq!(cells.read(run, "zero").err(), Some(corrupt.clone()));
    assert_eq!(cells.set(run, "zero", &Value::Null).err(), Some(corrupt.clone()));
    assert_eq!(cells.cas(run, "zero", 0, &Value::Null).err(), Some(corrupt));
    Ok(())
}

#[test]
fn a_value_that_does_not_decode_is_a_decode_error_at_its_offset_in_the_record() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    // Format version 1, then a tag no value has.
    db.put(raw_key(run, b"bad"), raw_record(1, 0, &[1, 0xEE]))?;
    let Err(Error::Decode(error)) = cells.read(run, "bad") else {
        return Err(Error::NotFound { what: "a decode error" });
    };
    assert_eq!((error.offset, error.reason), (17, DecodeReason::UnknownTag(0xEE)));
    db.put(raw_key(run, b"empty"), raw_record(1, 0, &[]))?;
    let Err(Error::Decode(error)) = cells.read(run, "empty") else {
        return Err(Error::NotFound { what: "a decode error" });
    };
    assert_eq!((error.offset, error.reason), (16, DecodeReason::UnexpectedEnd));
    // A write replaces the value without reading it.
    assert_eq!(cells.set(run, "bad", &Value::from(1))?, 2);
    Ok(())
}

#[test]
fn a_stored_name_that_is_not_utf8_is_corrupt_in_a_listing() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    let key = raw_key(run, b"\xff\xfe");
    db.put(&key, raw_record(1, 0, &Value::Null.encode()))?;
    let corrupt = Error::Corrupt { key, reason: "state cell name is not UTF-8" };
    assert_eq!(cells.list(run).err(), Some(corrupt.clone()));
    assert_eq!(cells.entries(run).err(), Some(corrupt));
    Ok(())
}

#[test]
fn a_cell_at_the_last_version_overflows_instead_of_wrapping() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    db.put(raw_key(run, b"old"), raw_record(u64::MAX, 0, &Value::from(1).encode()))?;
    assert_eq!(cells.set(run, "old", &Value::Null).err(), Some(Error::Overflow));
    assert_eq!(cells.cas(run, "old", u64::MAX, &Value::Null).err(), Some(Error::Overflow));
    assert_eq!(cells.transition(run, "old", |_| Ok(Value::Null)).err(), Some(Error::Overflow));
    let view = cells.read(run, "old")?.ok_or(Error::NotFound { what: "old" })?;
    assert_eq!((view.version(), view.value()), (u64::MAX, ValueRef::Int(1)), "nothing written");
    Ok(())
}

#[test]
fn operations_in_one_transaction_see_each_other_and_commit_together() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    let mut txn = db.begin();
    {
        let mut state = txn.state(run);
        assert_eq!(state.init("a", &Value::from(1))?, 1);
        assert_eq!(state.read("a")?.map(|view| view.version()), Some(1), "read your writes");
        assert_eq!(state.set("a", &Value::from(2))?, 2);
        assert_eq!(state.cas("a", 2, &Value::from(3))?, CasOutcome::Written(3));
        assert_eq!(state.cas("a", 2, &Value::from(9))?, CasOutcome::Mismatch { current: Some(3) });
        let view = state.transition("a", |n| Ok(Value::from(n.as_int().unwrap_or(0) * 10)))?;
        assert_eq!((view.version(), view.value()), (4, ValueRef::Int(30)));
        assert_eq!(state.init("b", &Value::from("b"))?, 1);
        assert!(state.exists("b")?);
        assert_eq!(state.list()?, ["a", "b"]);
        assert!(state.delete("b")?);
        assert!(!state.exists("b")?);
        assert_eq!(state.init("c", &Value::Null)?, 1);
    }
    assert!(cells.list(run)?.is_empty(), "nothing is visible before commit");
    txn.commit()?;
    let entries: Vec<(String, u64)> =
        cells.entries(run)?.into_iter().map(|(name, view)| (name, view.version())).collect();
    assert_eq!(entries, [("a".to_string(), 4), ("c".to_string(), 1)]);
    Ok(())
}

#[test]
fn a_rolled_back_transaction_leaves_no_cell() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "kept", &Value::from(1))?;
    let mut txn = db.begin();
    txn.state(run).init("new", &Value::from(1))?;
    txn.state(run).set("kept", &Value::from(2))?;
    txn.state(run).delete("kept")?;
    txn.rollback();
    assert_eq!(cells.list(run)?, ["kept"]);
    assert_eq!(version_of(&cells, run, "kept")?, Some(1));
    Ok(())
}

#[test]
fn two_transactions_casing_the_same_version_cannot_both_commit() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "c", &Value::from(0))?;
    let (mut first, mut second) = (db.begin(), db.begin());
    assert_eq!(first.state(run).cas("c", 1, &Value::from("first"))?, CasOutcome::Written(2));
    assert_eq!(second.state(run).cas("c", 1, &Value::from("second"))?, CasOutcome::Written(2));
    first.commit()?;
    let outcome = second.commit().map_err(Error::from);
    assert!(outcome.as_ref().is_err_and(Error::is_conflict), "{outcome:?}");
    let view = cells.read(run, "c")?.ok_or(Error::NotFound { what: "c" })?;
    assert_eq!((view.version(), view.value()), (2, ValueRef::Str("first")));
    Ok(())
}

#[test]
fn a_state_cell_write_commits_or_fails_with_the_transactions_other_writes() -> Result<()> {
    let (db, cells) = cells()?;
    let run = RunId::random();
    cells.init(run, "c", &Value::from(0))?;
    let outcome: Result<u64> = db
        .transaction_typed(Default::default(), |txn| {
            txn.put(b"plain-key", b"v")?;
            txn.state(run).set("c", &Value::from(1))?;
            txn.state(run).init("c", &Value::from(2))
        })
        .map(|committed| committed.value);
    assert_eq!(outcome, Err(Error::AlreadyExists { what: "state cell" }));
    assert_eq!(db.get(b"plain-key")?, None, "the failed closure committed nothing");
    assert_eq!(version_of(&cells, run, "c")?, Some(1));
    Ok(())
}

const THREADS: usize = 8;

#[test]
fn transition_under_eight_threads_loses_no_update() -> Result<()> {
    const INCREMENTS: usize = 500;
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let initial = cells.init(run, "counter", &Value::from(0))?;
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (cells, start) = (cells.clone(), &start);
                scope.spawn(move || -> Result<()> {
                    start.wait();
                    for _ in 0..INCREMENTS {
                        cells.transition(run, "counter", |n| {
                            n.as_int()
                                .and_then(|n| n.checked_add(1))
                                .map(Value::from)
                                .ok_or(Error::NotAnInteger)
                        })?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker.join().map_err(|_| Error::NotFound { what: "a worker that did not panic" })?
        })
    })?;
    let total = (THREADS * INCREMENTS) as u64;
    let view = cells.read(run, "counter")?.ok_or(Error::NotFound { what: "counter" })?;
    assert_eq!(view.value(), ValueRef::Int(total as i64), "every increment counted once");
    assert_eq!(view.version(), initial + total, "one version per write");
    Ok(())
}

#[test]
fn cas_contention_under_eight_threads_advances_the_version_once_per_success() -> Result<()> {
    const ATTEMPTS: usize = 500;
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let initial = cells.init(run, "c", &Value::from(0))?;
    let successes = AtomicU64::new(0);
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (cells, successes, start) = (cells.clone(), &successes, &start);
                scope.spawn(move || -> Result<()> {
                    start.wait();
                    for attempt in 0..ATTEMPTS {
                        let seen =
                            version_of(&cells, run, "c")?.ok_or(Error::NotFound { what: "c" })?;
                        let value = Value::from(vec![
                            Value::from(thread as i64),
                            Value::from(attempt as i64),
                        ]);
                        match cells.cas(run, "c", seen, &value)? {
                            CasOutcome::Written(version) => {
                                assert_eq!(version, seen + 1);
                                successes.fetch_add(1, Ordering::Relaxed);
                            }
                            CasOutcome::Mismatch { current } => {
                                let current = current.ok_or(Error::NotFound { what: "c" })?;
                                assert!(current > seen, "only a newer write makes a mismatch");
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker.join().map_err(|_| Error::NotFound { what: "a worker that did not panic" })?
        })
    })?;
    let successes = successes.load(Ordering::Relaxed);
    assert!(successes >= 1);
    assert_eq!(version_of(&cells, run, "c")?, Some(initial + successes));
    Ok(())
}

#[test]
fn concurrent_inits_create_the_cell_exactly_once() -> Result<()> {
    let (_db, cells) = cells()?;
    let run = RunId::random();
    let outcomes: Vec<Result<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let cells = cells.clone();
                scope.spawn(move || cells.init(run, "once", &Value::from(thread as i64)))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or(Err(Error::NotFound { what: "a worker that did not panic" }))
            })
            .collect()
    });
    let created = outcomes.iter().filter(|outcome| outcome == &&Ok(1)).count();
    let refused = outcomes
        .iter()
        .filter(|outcome| outcome == &&Err(Error::AlreadyExists { what: "state cell" }))
        .count();
    assert_eq!((created, refused), (1, THREADS - 1), "{outcomes:?}");
    assert_eq!(version_of(&cells, run, "once")?, Some(1));
    Ok(())
}

#[test]
fn cells_and_their_versions_survive_a_reopen() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|_| Error::NotFound { what: "a temporary directory" })?;
    let run = RunId::random();
    {
        let cells = StateCell::new(Arc::new(Database::open(dir.path(), Options::default())?));
        cells.init(run, "c", &Value::from("a"))?;
        cells.set(run, "c", &Value::from("b"))?;
        cells.set(run, "gone", &Value::Null)?;
        cells.delete(run, "gone")?;
    }
    let cells = StateCell::new(Arc::new(Database::open(dir.path(), Options::default())?));
    let view = cells.read(run, "c")?.ok_or(Error::NotFound { what: "c" })?;
    assert_eq!((view.version(), view.value()), (2, ValueRef::Str("b")));
    assert_eq!(cells.list(run)?, ["c"]);
    assert_eq!(cells.set(run, "c", &Value::from("c"))?, 3);
    Ok(())
}
