//! What the criterion benches share: their measurement settings and how they load data.

use std::time::Duration;

use criterion::Criterion;
use inmem_engine::Database;

/// Value size of every prefilled key.
pub const VALUE_BYTES: usize = 100;
/// Keys written per prefill transaction.
const PREFILL_BATCH: usize = 10_000;

/// Short measurements, so that `cargo bench` of every file takes a few minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(40)
}

/// A new in-memory database holding `keys`, each with a `VALUE_BYTES` value, loaded in
/// transactions of `PREFILL_BATCH` writes.
pub fn prefilled<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = K>) -> Database {
    let db = Database::in_memory().expect("opens");
    let value = [0xA5u8; VALUE_BYTES];
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let mut txn = db.begin();
        for key in keys.by_ref().take(PREFILL_BATCH) {
            txn.put(key, value).expect("prefill put");
        }
        txn.commit().expect("prefill commit");
    }
    db
}
