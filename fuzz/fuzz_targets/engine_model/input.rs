//! The input of `engine_model`: a configuration and a bounded sequence of operations,
//! decoded from the fuzzer's bytes by `arbitrary`.

use std::num::NonZeroUsize;
use std::ops::Bound;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use inmem_engine::{Isolation, Limits, Options, Retention};

use inmem_model::{Key, Span, Value};

/// Operations per input, at most.
pub(crate) const OPS_MAX: usize = 64;
/// Keys written by one bulk operation, at most: enough for a scan to cross the iterator's
/// read-ahead batches and epoch re-pins (every 16 to 256 keys), also over runs of deleted
/// keys.
pub(crate) const BULK_KEYS_MAX: u8 = 80;
/// Value bytes chosen by the input; each value also starts with a stamp byte. Values cross
/// `Bytes::INLINE_CAPACITY` (22 today), so both representations are written and read.
pub(crate) const VALUE_BYTES_MAX: usize = 31;

/// The fixed keys: prefixes of one another, the empty key, and bytes at both edges.
pub(crate) const KEYS: [&[u8]; 8] =
    [b"", b"\x00", b"a", b"a\x00", b"ab", b"a\xff", b"m\x05", b"\xff\xff"];
/// Prefixes for scans, including one (`\xff`) whose upper bound is unbounded and one that
/// matches nothing.
pub(crate) const PREFIXES: [&[u8]; 8] = [b"", b"\x00", b"a", b"a\xff", b"ab", b"m", b"\xff", b"b"];
/// Prefixes for range deletes: those of scans (the empty one, which covers every key, and
/// `m`, the bulk family's), and whole keys, which cover themselves and their extensions
/// (`m\x05` is both a fixed key and one of the bulk family).
pub(crate) const RANGE_DELETE_PREFIXES: [&[u8]; 12] = [
    b"",
    b"\x00",
    b"a",
    b"a\xff",
    b"ab",
    b"m",
    b"\xff",
    b"b",
    b"a\x00",
    b"m\x05",
    b"m\x80",
    b"\xff\xff",
];

#[derive(Debug)]
pub(crate) struct Input {
    pub(crate) config: Config,
    pub(crate) ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let config = Config::arbitrary(u)?;
        let mut ops = Vec::new();
        while ops.len() < OPS_MAX && !u.is_empty() {
            match Op::arbitrary(u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Ok(Input { config, ops })
    }
}

#[derive(Arbitrary, Debug)]
pub(crate) struct Config {
    /// 0, 1: `KeepAll`; 2: `KeepLast(1)`; 3: `KeepLast(2)` (modulo 4). Bit 2 set: the keys
    /// that start with "a" are scan-only ([`scan_only_keys`]), so that one run meets both
    /// index paths.
    pub(crate) retention: u8,
    pub(crate) serializable_by_default: bool,
    /// Each limit is tight when its byte is below 32 (one input in eight).
    pub(crate) tight_keys: u8,
    pub(crate) tight_values: u8,
    pub(crate) tight_transactions: u8,
    /// Below 64 (one input in four): a collection pass after every operation, so that
    /// passes meet every state a sequence goes through.
    pub(crate) collect_after_each_op: u8,
}

impl Config {
    pub(crate) fn retention(&self) -> Retention {
        match self.retention % 4 {
            0 | 1 => Retention::KeepAll,
            2 => Retention::KeepLast(NonZeroUsize::MIN),
            _ => Retention::KeepLast(NonZeroUsize::MIN.saturating_add(1)),
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if self.tight_keys < 32 {
            limits.key_bytes_max = 1;
        }
        if self.tight_values < 32 {
            limits.value_bytes_max = 4;
        }
        if self.tight_transactions < 32 {
            limits.transaction_writes_max = 3;
            limits.transaction_reads_max = 3;
        }
        limits
    }

    pub(crate) fn options(&self) -> Options {
        let isolation = if self.serializable_by_default {
            Isolation::Serializable
        } else {
            Isolation::Snapshot
        };
        let options = Options::default()
            .isolation(isolation)
            .retention(self.retention())
            .limits(self.limits())
            .maintenance_interval(Duration::from_secs(3600));
        if self.retention & 4 != 0 {
            options.scan_only_keys(scan_only_keys)
        } else {
            options
        }
    }
}

/// The scan-only keys of the inputs that ask for them: `a`, `a\0`, `ab` and `a\xff` of
/// [`KEYS`], half of the keys a put may write.
fn scan_only_keys(key: &[u8]) -> bool {
    key.starts_with(b"a")
}

/// One of the 8 fixed keys.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct KeyChoice(pub(crate) u8);

impl KeyChoice {
    pub(crate) fn key(self) -> Key {
        KEYS[usize::from(self.0) % KEYS.len()].to_vec()
    }
}

/// One of the prefixes of [`RANGE_DELETE_PREFIXES`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct PrefixChoice(pub(crate) u8);

impl PrefixChoice {
    pub(crate) fn prefix(self) -> Key {
        RANGE_DELETE_PREFIXES[usize::from(self.0) % RANGE_DELETE_PREFIXES.len()].to_vec()
    }
}

/// Up to `VALUE_BYTES_MAX` bytes chosen by the input.
#[derive(Debug, Clone)]
pub(crate) struct SmallValue(pub(crate) Vec<u8>);

impl<'a> Arbitrary<'a> for SmallValue {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.int_in_range(0..=VALUE_BYTES_MAX)?;
        Ok(SmallValue(u.bytes(len)?.to_vec()))
    }
}

impl SmallValue {
    /// The value written: a stamp (the operation's index), so that values of different
    /// writes differ, then the input's bytes.
    pub(crate) fn stamped(&self, stamp: usize) -> Value {
        let mut value = vec![stamp as u8];
        value.extend_from_slice(&self.0);
        value
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum BoundChoice {
    Unbounded,
    Included(KeyChoice),
    Excluded(KeyChoice),
}

impl BoundChoice {
    pub(crate) fn bound(self) -> Bound<Key> {
        match self {
            BoundChoice::Unbounded => Bound::Unbounded,
            BoundChoice::Included(key) => Bound::Included(key.key()),
            BoundChoice::Excluded(key) => Bound::Excluded(key.key()),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum RangeChoice {
    Prefix(u8),
    Bounds(BoundChoice, BoundChoice),
}

impl RangeChoice {
    pub(crate) fn range(self) -> Span {
        match self {
            RangeChoice::Prefix(prefix) => {
                Span::Prefix(PREFIXES[usize::from(prefix) % PREFIXES.len()].to_vec())
            }
            RangeChoice::Bounds(start, end) => Span::Range(start.bound(), end.bound()),
        }
    }
}

/// Who scans: a held snapshot, a transaction, or a snapshot of the newest state taken for
/// the scan.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum Scanner {
    Snapshot(u8),
    Transaction(u8),
    Fresh,
}

/// A one-shot write, a range delete, a purge step or a collection pass in the middle of a
/// scan, before step `at_step`:
/// the scan must go on reading its snapshot, whatever is added to or removed from the index
/// around its position.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct Interruption {
    pub(crate) at_step: u8,
    pub(crate) action: Interrupt,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum Interrupt {
    Put(KeyChoice),
    Delete(KeyChoice),
    /// Of the key `m·byte`, one of the bulk family.
    PutBulkKey(u8),
    DeleteBulkKey(u8),
    CollectGarbage,
    /// `Database::delete_prefix`.
    DeletePrefix(PrefixChoice),
    /// `Database::purge_range_deletes(1)`.
    PurgeRangeDeletes,
}

#[derive(Arbitrary, Debug, Clone)]
pub(crate) enum Op {
    /// 0: the database's default isolation; 1: snapshot; otherwise serializable.
    Begin {
        slot: u8,
        isolation: u8,
    },
    Get {
        slot: u8,
        key: KeyChoice,
    },
    Put {
        slot: u8,
        key: KeyChoice,
        value: SmallValue,
        ttl: bool,
    },
    Delete {
        slot: u8,
        key: KeyChoice,
    },
    /// Writes (or deletes) `count` keys `m·(start + i * step)` in one transaction.
    Bulk {
        slot: u8,
        start: u8,
        count: u8,
        step: u8,
        delete: bool,
    },
    Commit {
        slot: u8,
    },
    Rollback {
        slot: u8,
    },
    DbGet {
        key: KeyChoice,
    },
    DbPut {
        key: KeyChoice,
        value: SmallValue,
        ttl: bool,
    },
    DbDelete {
        key: KeyChoice,
    },
    Snapshot {
        slot: u8,
    },
    /// At version `version % (visible + 2)`: sometimes one beyond the visible version.
    SnapshotAt {
        slot: u8,
        version: u8,
    },
    DropSnapshot {
        slot: u8,
    },
    SnapshotGet {
        slot: u8,
        key: KeyChoice,
    },
    /// Bit `i % 16` of `pattern` says whether step `i` calls `next_back` (1) or `next` (0).
    Scan {
        scanner: Scanner,
        range: RangeChoice,
        pattern: u16,
        interruption: Option<Interruption>,
    },
    /// Through snapshot `slot`, or the database if there is no such slot.
    History {
        slot: u8,
        key: KeyChoice,
        limit: u8,
        before: Option<u8>,
    },
    CollectGarbage,
    ReapExpired,
    /// `Transaction::delete_prefix`.
    DeletePrefix {
        slot: u8,
        prefix: PrefixChoice,
    },
    /// `Database::delete_prefix`.
    DbDeletePrefix {
        prefix: PrefixChoice,
    },
    /// `Database::purge_range_deletes(steps % 4)`.
    PurgeRangeDeletes {
        steps: u8,
    },
}

/// Key `m·byte`, of the family written in bulk.
pub(crate) fn bulk_key(byte: u8) -> Key {
    vec![b'm', byte]
}
