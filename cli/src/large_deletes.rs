//! The large deletes of `inmem crashtest --workload primitives`: runs far larger than one
//! transaction may write, filled and deleted over and over while the child is killed, and
//! the check that no deleted run is visible, no run is partly there, and no key of a
//! finished delete is left in memory.
//!
//! # The workload
//!
//! Beside the step writers, one thread of the child fills and deletes big runs, one after
//! another: big run `i` of cycle `c` ([`big_run`]) is created in one transaction with
//! [`BIG_KV`] KV keys, [`BIG_CELLS`] state cells and [`BIG_TRACES`] traces, then given
//! [`BIG_EVENTS`] events in transactions of [`BIG_EVENT_CHUNK`]; the thread prints
//! `big <c> <i> filled`, deletes the run ([`RunIndex::delete`]: one commit, whatever its
//! size) and prints `big <c> <i> deleted`, then goes on with run `i + 1`. The engine
//! purges each deleted run in the background, so kills land in fills, deletes and purges.
//!
//! # The check
//!
//! For every big run that may exist (those of each cycle up to one past the last
//! acknowledged delete): if its record is there, the run is whole, as its first
//! transaction and a whole number of event chunks leave it (all of them once `filled` was
//! acknowledged), and its event chain verifies; if not, a raw engine scan of its prefix is
//! empty (`partial` otherwise). A run acknowledged `deleted` must be absent (`lost`: an
//! acknowledged delete undone). Then the check finishes every pending range delete and
//! checks that no key of an absent big run is left in memory, not even as a tombstone.

use std::fmt;
use std::sync::Arc;

use inmem::primitives::prelude::*;
use inmem::primitives::run_index::RunIndex;
use inmem::primitives::trace::{TraceSpec, TraceType};
use inmem::primitives::{run_prefix, EventLog, KeyBuf, KvStore, RunId, TypeTag, Value};

use crate::harness::Violations;
use crate::primitives_harness::StepAck;
use inmem::{Database, TransactionOptions};

/// Events of a big run.
pub const BIG_EVENTS: u64 = 20_000;
/// Events per transaction of a big run's fill.
pub const BIG_EVENT_CHUNK: u64 = 5_000;
/// KV keys of a big run, written with its record.
pub const BIG_KV: u64 = 1_000;
/// State cells of a big run, written with its record.
pub const BIG_CELLS: u64 = 100;
/// Traces of a big run, written with its record.
pub const BIG_TRACES: u64 = 100;

/// Marks the last two bytes of big run ids (the step writers' runs carry another mark).
const BIG_MARK: [u8; 2] = [0xb1, 0x6d];

/// Big run `index` of cycle `cycle`: `seed (folded to 32 bits) | cycle (32) | index (64) |
/// 0 (16) | BIG_MARK`, little endian.
pub fn big_run(seed: u64, cycle: u64, index: u64) -> RunId {
    let mut bytes = [0; RunId::LEN];
    bytes[..4].copy_from_slice(&(seed ^ (seed >> 32)).to_le_bytes()[..4]);
    bytes[4..8].copy_from_slice(&cycle.to_le_bytes()[..4]);
    bytes[8..12].copy_from_slice(&index.to_le_bytes()[..4]);
    bytes[RunId::LEN - 2..].copy_from_slice(&BIG_MARK);
    RunId::from_bytes(bytes)
}

/// What a big run's thread acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigAck {
    /// The cycle of the run.
    pub cycle: u64,
    /// The run's index in its cycle ([`big_run`]).
    pub index: u64,
    /// `false`: filled; `true`: deleted.
    pub deleted: bool,
}

impl BigAck {
    /// Parses a `big <cycle> <index> filled|deleted` line.
    pub fn parse(line: &str) -> Option<BigAck> {
        let mut words = line.strip_prefix("big ")?.split(' ');
        let cycle = words.next()?.parse().ok()?;
        let index = words.next()?.parse().ok()?;
        let deleted = match words.next()? {
            "filled" => false,
            "deleted" => true,
            _ => return None,
        };
        words.next().is_none().then_some(BigAck { cycle, index, deleted })
    }
}

impl fmt::Display for BigAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.deleted { "deleted" } else { "filled" };
        write!(f, "big {} {} {what}", self.cycle, self.index)
    }
}

/// A line the primitives workload's child acknowledges with.
#[derive(Debug, Clone)]
pub enum Ack {
    /// A step writer's.
    Step(StepAck),
    /// The big runs' thread's.
    Big(BigAck),
}

impl Ack {
    /// Parses either kind of line.
    pub fn parse(line: &str) -> Option<Ack> {
        StepAck::parse(line).map(Ack::Step).or_else(|| BigAck::parse(line).map(Ack::Big))
    }
}

/// Fills and deletes big runs of `cycle` one after another, printing each acknowledgment
/// with `say`; returns only on an error.
///
/// # Errors
/// The first failed transaction, as text.
pub fn fill_and_delete(
    db: &Arc<Database>,
    seed: u64,
    cycle: u64,
    mut say: impl FnMut(BigAck) -> Result<(), String>,
) -> Result<(), String> {
    let runs = RunIndex::new(Arc::clone(db));
    for index in 0u64.. {
        let run = big_run(seed, cycle, index);
        fill(db, run).map_err(|error| format!("filling big run {index}: {error}"))?;
        say(BigAck { cycle, index, deleted: false })?;
        runs.delete(run).map_err(|error| format!("deleting big run {index}: {error}"))?;
        say(BigAck { cycle, index, deleted: true })?;
    }
    Ok(())
}

fn kv_name(i: u64) -> String {
    format!("b/{i}")
}

/// Creates `run` with its KV keys, cells and traces, then its events in chunks.
fn fill(db: &Database, run: RunId) -> inmem::primitives::Result<()> {
    let options = TransactionOptions::default();
    db.transaction_typed(options, |txn| {
        txn.runs().create_with_id(run, None, ["crashtest", "big"], &Value::Null)?;
        for i in 0..BIG_KV {
            txn.kv(run).put(kv_name(i), &Value::from(i as i64))?;
        }
        for i in 0..BIG_CELLS {
            txn.state(run).set(&format!("c{i}"), &Value::from(i as i64))?;
        }
        for i in 0..BIG_TRACES {
            txn.traces(run).record(&TraceSpec::new(TraceType::Thought, format!("t{i}")))?;
        }
        Ok::<_, inmem::primitives::Error>(())
    })?;
    let payload = Value::from("an event of a big run, to be deleted");
    for _ in 0..BIG_EVENTS / BIG_EVENT_CHUNK {
        db.transaction_typed(options, |txn| {
            let mut events = txn.events(run);
            for _ in 0..BIG_EVENT_CHUNK {
                events.append("big", &payload)?;
            }
            Ok::<_, inmem::primitives::Error>(())
        })?;
    }
    Ok(())
}

/// Checks the big runs of `cycles` cycles against `acks` (see the module doc), then
/// finishes every pending range delete and checks that the absent runs left no key.
/// Returns whether a range delete was pending when the check began: the child was killed
/// before its purge finished.
pub fn check(
    db: &Arc<Database>,
    seed: u64,
    cycles: u64,
    acks: &[BigAck],
    found: &mut Violations,
) -> bool {
    let pending_at_open = !db.range_deletes().is_empty();
    let runs = RunIndex::new(Arc::clone(db));
    let events = EventLog::new(Arc::clone(db));
    let kv = KvStore::new(Arc::clone(db));
    let mut absent = Vec::new();
    for cycle in 0..cycles {
        let of_cycle = |deleted: bool| {
            acks.iter().filter(move |ack| ack.cycle == cycle && ack.deleted == deleted)
        };
        let deletes = of_cycle(true).count() as u64;
        for index in 0..=deletes {
            let run = big_run(seed, cycle, index);
            let filled = of_cycle(false).any(|ack| ack.index == index);
            let deleted = of_cycle(true).any(|ack| ack.index == index);
            match runs.get(run) {
                Ok(Some(_)) if deleted => {
                    found
                        .lost(format!("big run {index} of cycle {cycle} was deleted, and is back"));
                }
                Ok(Some(_)) => whole(&events, &kv, run, filled, found),
                Ok(None) => {
                    let keys = db.snapshot().prefix(run_prefix(run)).count();
                    if keys > 0 {
                        found.partial(format!(
                            "big run {index} of cycle {cycle} has no record but {keys} keys"
                        ));
                    }
                    absent.push(run);
                }
                Err(error) => found.partial(format!("reading big run {index}: {error}")),
            }
        }
    }
    finish_deletes(db, found);
    for run in absent {
        let left = (0..BIG_KV).find(|&i| {
            let key = KeyBuf::new(run, TypeTag::Kv).push_bytes(kv_name(i).as_bytes()).finish();
            !db.history(key, 1, None).unwrap_or_default().is_empty()
        });
        if let Some(i) = left {
            found.partial(format!("{} of deleted big run {run} is still in memory", kv_name(i)));
        }
    }
    pending_at_open
}

/// Checks that the big run `run`, whose record is there, is whole.
fn whole(events: &EventLog, kv: &KvStore, run: RunId, filled: bool, found: &mut Violations) {
    let len = events.len(run).unwrap_or(u64::MAX);
    let chunks_whole = len % BIG_EVENT_CHUNK == 0 && len <= BIG_EVENTS;
    let chain = events.verify_chain(run).map(|report| report.is_verified()).unwrap_or(false);
    let listed = kv.keys(run, "b/", BIG_KV as usize + 1);
    let kv_keys = listed.map(|keys| keys.len() as u64).unwrap_or(0);
    if !chunks_whole || !chain || kv_keys != BIG_KV {
        found.partial(format!(
            "big run {run} is partly there: {len} events (chain valid: {chain}), {kv_keys} KV keys"
        ));
    } else if filled && len != BIG_EVENTS {
        found.lost(format!("big run {run} was acknowledged filled, and has {len} events"));
    }
}

/// Runs the purge of every pending range delete to its end, with collection passes.
fn finish_deletes(db: &Database, found: &mut Violations) {
    for _ in 0..100_000 {
        if db.range_deletes().is_empty() {
            db.collect_garbage();
            return;
        }
        db.purge_range_deletes(64);
        db.collect_garbage();
    }
    found.partial(format!("range deletes never finished: {:?}", db.range_deletes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_acks_round_trip_and_other_lines_do_not_parse() {
        for deleted in [false, true] {
            let ack = BigAck { cycle: 3, index: 17, deleted };
            assert_eq!(BigAck::parse(&ack.to_string()), Some(ack));
        }
        assert_eq!(BigAck::parse("big 3 17 purged"), None);
        assert_eq!(BigAck::parse("big 3 17 filled extra"), None);
        assert!(matches!(Ack::parse("big 1 2 deleted"), Some(Ack::Big(_))));
        assert!(Ack::parse("ready").is_none());
    }

    #[test]
    fn big_runs_are_distinct_per_cycle_and_index() {
        assert_ne!(big_run(1, 0, 1), big_run(1, 1, 0));
        assert_ne!(big_run(1, 0, 0), big_run(2, 0, 0));
    }

    #[test]
    fn a_filled_then_deleted_big_run_passes_and_a_half_deleted_one_does_not() {
        let db = Arc::new(Database::with_options(inmem::primitives::engine_options()).unwrap());
        let mut acks = Vec::new();
        let mut stop_after = 3; // filled 0, deleted 0, filled 1
        let stopped = fill_and_delete(&db, 5, 0, |ack| {
            acks.push(ack);
            stop_after -= 1;
            if stop_after == 0 {
                Err("stop".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(stopped, Err("stop".to_string()));
        let mut found = Violations::default();
        check(&db, 5, 1, &acks, &mut found);
        assert_eq!((found.lost, found.partial), (0, 0), "{:?}", found.first);

        // Run 1 is whole; take one KV key out behind the run index's back.
        let run = big_run(5, 0, 1);
        db.delete(KeyBuf::new(run, TypeTag::Kv).push_bytes(b"b/7").finish()).unwrap();
        let mut found = Violations::default();
        check(&db, 5, 1, &acks, &mut found);
        assert_eq!(found.partial, 1, "{:?}", found.first);
    }
}
