//! What one commit applies: a transaction's buffered writes and range deletes (a one-shot
//! write or range delete is a buffer of one).

use std::collections::{BTreeMap, BTreeSet};

use inmem_engine::{Error, Limit};

use crate::limits::check_limit;
use crate::{Key, State, Value};

/// One buffered write of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The value put, or `None` for a delete.
    pub value: Option<Value>,
    /// Whether the put has a TTL. The harnesses' TTLs outlast a run, so it reads like any
    /// put; `history` reports its expiry.
    pub ttl: bool,
}

impl Write {
    /// A put of `value`, without a TTL.
    pub fn put(value: Value) -> Write {
        Write { value: Some(value), ttl: false }
    }

    /// A delete.
    pub fn delete() -> Write {
        Write { value: None, ttl: false }
    }
}

/// Buffered writes by key: the last write of a key replaces the earlier ones.
pub type Writes = BTreeMap<Key, Write>;

/// The writes and range deletes one commit applies.
#[derive(Debug, Clone, Default)]
pub struct Buffer {
    /// The writes, by key.
    pub writes: Writes,
    /// The range deletes' prefixes, none starting with another.
    pub prefixes: BTreeSet<Key>,
}

impl Buffer {
    /// Whether there is nothing to commit: such a commit takes no version.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.prefixes.is_empty()
    }

    /// Writes and range deletes, as `Transaction::write_count` counts them.
    pub fn write_count(&self) -> usize {
        self.writes.len() + self.prefixes.len()
    }

    /// Whether a range delete of the buffer covers `key` (a write of it since wins).
    pub fn hides(&self, key: &[u8]) -> bool {
        self.prefixes.iter().any(|prefix| key.starts_with(prefix))
    }

    /// Buffers `write` of `key`: a key not written yet counts against `writes_max`.
    pub fn write(&mut self, key: &[u8], write: Write, writes_max: usize) -> Result<(), Error> {
        if !self.writes.contains_key(key) {
            check_limit(Limit::TransactionWrites, self.write_count() + 1, writes_max)?;
        }
        self.writes.insert(key.to_vec(), write);
        Ok(())
    }

    /// Buffers a range delete of `prefix`: drops the writes under it; adds nothing if an
    /// earlier one covers it, and replaces those it covers, so that only a new range delete
    /// counts against `writes_max`.
    pub fn delete_prefix(&mut self, prefix: &[u8], writes_max: usize) -> Result<(), Error> {
        self.writes.retain(|key, _| !key.starts_with(prefix));
        if self.hides(prefix) {
            return Ok(());
        }
        self.prefixes.retain(|longer| !longer.starts_with(prefix));
        check_limit(Limit::TransactionWrites, self.write_count() + 1, writes_max)?;
        self.prefixes.insert(prefix.to_vec());
        Ok(())
    }

    /// Applies the buffer to `state`: the range deletes remove every key under their
    /// prefixes, then the writes apply, so a key the same buffer writes survives them.
    pub fn apply_to(&self, state: &mut State) {
        state.retain(|key, _| !self.hides(key));
        for (key, write) in &self.writes {
            match &write.value {
                Some(value) => state.insert(key.clone(), value.clone()),
                None => state.remove(key),
            };
        }
    }
}
