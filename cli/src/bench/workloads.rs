//! The operations of each workload, written once for every [`Store`].
//!
//! Each operation picks its keys and value from the worker's random stream first, then
//! times only the store call; results are checked against what the layout says must be
//! there (every loaded key exists, a scan returns its group's keys), so a store that loses
//! data fails the run instead of looking fast. The one exception is a store that does not
//! promise reads racing an overwrite find the key (the skiplist baseline): its misses are
//! counted and reported as `missed_reads`.

use indicatif::ProgressBar;

use super::args::{Workload, SCAN_KEYS};
use super::dataset::{fill_order, KeyLayout, ValuePool};
use super::error::BenchError;
use super::runner::{run_threads, Measured, RunPlan, Worker};
use super::store::{Store, TXN_READS};

/// What every run reads: the layout, the values and the fill order.
pub(crate) struct Dataset {
    /// The key layout.
    pub(crate) layout: KeyLayout,
    /// The values.
    pub(crate) values: ValuePool,
    /// The order fill inserts keys in.
    order: Vec<u32>,
}

impl Dataset {
    /// The data of `layout.keys()` keys of `value_size`-byte values, from `seed`.
    ///
    /// # Errors
    /// [`BenchError::OutOfMemory`] if the fill order cannot be allocated.
    pub(crate) fn new(
        layout: KeyLayout,
        value_size: usize,
        seed: u64,
    ) -> Result<Dataset, BenchError> {
        let order = fill_order(layout.keys(), seed)?;
        Ok(Dataset { layout, values: ValuePool::new(value_size, seed), order })
    }
}

impl Dataset {
    /// The key inserted at position `index` of the fill order.
    pub(crate) fn fill_key(&self, index: u64) -> u64 {
        self.order.get(index as usize).map_or(index, |&key_index| u64::from(key_index))
    }
}

/// Runs `plan` on `store`.
///
/// # Errors
/// As [`run_threads`]; [`BenchError::WrongResults`] if the store returned wrong results
/// (other than the misses [`Store::READS_SEE_OVERWRITTEN_KEYS`] allows, which are counted).
pub(crate) fn run_workload<S: Store>(
    store: &S,
    data: &Dataset,
    plan: &RunPlan,
    progress: &ProgressBar,
) -> Result<Measured, BenchError> {
    debug_assert!(plan.workload != Workload::Fill || plan.ops == data.layout.keys());
    let measured = match plan.workload {
        Workload::Fill => run_threads(plan, progress, |w, index| fill(store, data, w, index)),
        Workload::Get => run_threads(plan, progress, |w, _| get(store, data, w)),
        Workload::Commit => run_threads(plan, progress, |w, _| commit(store, data, w)),
        Workload::Mixed => run_threads(plan, progress, |w, _| mixed(store, data, w)),
        Workload::Scan => run_threads(plan, progress, |w, _| scan(store, data, w)),
        Workload::Txn => run_threads(plan, progress, |w, _| txn(store, data, w)),
        Workload::Wal | Workload::Recover | Workload::Primitives | Workload::HotRun => {
            unreachable!("wal, recover, primitives and hot-run run apart (Config keeps them out)")
        }
    }?;
    let overwrites_race_reads = plan.threads > 1 && !S::READS_SEE_OVERWRITTEN_KEYS;
    let may_miss =
        overwrites_race_reads && matches!(plan.workload, Workload::Mixed | Workload::Txn);
    if measured.tally.wrong_ops > 0 && !may_miss {
        return Err(BenchError::WrongResults {
            engine: S::NAME,
            workload: plan.workload.name(),
            wrong_ops: measured.tally.wrong_ops,
        });
    }
    Ok(measured)
}

/// Inserts the key at position `index` of the fill order.
fn fill<S: Store>(store: &S, data: &Dataset, w: &mut Worker, index: u64) -> inmem::Result<()> {
    let key_index = data.fill_key(index);
    data.layout.write_key(key_index, &mut w.key);
    let value = data.values.value(key_index);
    w.latency.time(|| store.put(&w.key, value))
}

/// Reads a random loaded key; a miss counts as a wrong result.
pub(crate) fn get<S: Store>(store: &S, data: &Dataset, w: &mut Worker) -> inmem::Result<()> {
    data.layout.write_key(w.rng.u64(0..data.layout.keys()), &mut w.key);
    let found = w.latency.time(|| store.get(&w.key))?;
    w.tally.wrong_ops += u64::from(!found);
    Ok(())
}

/// Overwrites a random loaded key with a random value, in a commit of its own.
pub(crate) fn commit<S: Store>(store: &S, data: &Dataset, w: &mut Worker) -> inmem::Result<()> {
    data.layout.write_key(w.rng.u64(0..data.layout.keys()), &mut w.key);
    let value = data.values.value(w.rng.u64(..));
    w.latency.time(|| store.put(&w.key, value))
}

/// Reads or (as often) overwrites a random loaded key.
fn mixed<S: Store>(store: &S, data: &Dataset, w: &mut Worker) -> inmem::Result<()> {
    data.layout.write_key(w.rng.u64(0..data.layout.keys()), &mut w.key);
    if w.rng.bool() {
        let found = w.latency.time(|| store.get(&w.key))?;
        w.tally.wrong_ops += u64::from(!found);
    } else {
        let value = data.values.value(w.rng.u64(..));
        w.latency.time(|| store.put(&w.key, value))?;
    }
    Ok(())
}

/// Scans the keys of a random group.
fn scan<S: Store>(store: &S, data: &Dataset, w: &mut Worker) -> inmem::Result<()> {
    let group = w.rng.u64(0..data.layout.groups());
    data.layout.write_prefix(group, &mut w.prefix);
    let count = w.latency.time(|| store.scan(&w.prefix, SCAN_KEYS))?;
    w.tally.wrong_ops += u64::from(count != data.layout.group_len(group));
    Ok(())
}

/// Reads four random keys and writes four random keys in one transaction.
fn txn<S: Store>(store: &S, data: &Dataset, w: &mut Worker) -> inmem::Result<()> {
    for slot in w.txn_keys.slots_mut() {
        data.layout.write_key(w.rng.u64(0..data.layout.keys()), slot);
    }
    let value = data.values.value(w.rng.u64(..));
    let outcome = w.latency.time(|| store.txn(&w.txn_keys, value))?;
    debug_assert!(outcome.attempts >= 1, "a transaction runs at least once");
    let retries = outcome.attempts - 1;
    w.tally.retries += retries;
    w.tally.conflicts += retries + u64::from(!outcome.committed);
    w.tally.aborts += u64::from(!outcome.committed);
    w.tally.wrong_ops += u64::from(outcome.reads_found != TXN_READS);
    Ok(())
}
