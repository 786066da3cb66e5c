//! What the model records of the committed history, besides the states: each write of a
//! key, and each range delete with its purge.

use crate::{Key, Value};

/// One committed write of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedWrite {
    /// Its commit version.
    pub version: u64,
    /// The value put, or `None` for a tombstone.
    pub value: Option<Value>,
    /// Whether the put has a TTL.
    pub ttl: bool,
    /// A maintenance tombstone of a range delete's purge: it changes nothing a reader
    /// observes, so it is never a conflict; `history` flags it `reaped`.
    pub reaped: bool,
}

/// A committed range delete, and its purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDelete {
    /// The keys it deletes: those that start with this.
    pub prefix: Key,
    /// Its commit version.
    pub version: u64,
    /// Keys its purge replaced by tombstones.
    pub purged: u64,
    /// The last version handed out when its purge's walk ended, once it has.
    pub walked_at: Option<u64>,
    /// Retired: walked, and the published horizon passed the walk's end.
    pub retired: bool,
}

impl RangeDelete {
    /// Whether it deletes `key`.
    pub fn covers(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix)
    }
}
