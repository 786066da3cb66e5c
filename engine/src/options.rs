//! Database options: isolation, retention of old versions, limits, retry and maintenance.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::error::{Error, Result};

/// How a transaction is validated at commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Snapshot isolation: reads see the snapshot taken at `begin`; the commit fails if
    /// another transaction committed a write to a key this one writes after that snapshot
    /// (first committer wins). Allows write skew.
    #[default]
    Snapshot,
    /// Serializable: as `Snapshot`, and the commit also fails if another transaction
    /// committed a write to a key this one read, or into a range it scanned, after its
    /// snapshot. Rejects write skew and phantoms.
    Serializable,
}

/// Which superseded versions the engine keeps beyond what open snapshots need.
///
/// Whatever the policy, a version an open snapshot can read is kept while that snapshot is
/// open. [`crate::Snapshot`]s at old versions (`snapshot_at`) can be taken as far back as the
/// policy keeps whole states: always with `KeepAll`, for the duration with `KeepFor`, and
/// not below the oldest open snapshot with `KeepLast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep every version forever (memory grows with every write).
    KeepAll,
    /// Keep the newest `n` versions of each key, for `history`. Deleting a key ends its
    /// history: once no snapshot can read the versions before its tombstone, the key is
    /// forgotten.
    KeepLast(NonZeroUsize),
    /// Keep every version superseded less than this long ago, so `snapshot_at` and
    /// `history` reach back at least this far in time.
    KeepFor(Duration),
}

impl Default for Retention {
    /// Keep only the newest version of each key (plus what open snapshots read).
    fn default() -> Self {
        Retention::KeepLast(NonZeroUsize::MIN)
    }
}

/// Limits checked at the API edge, each failing with [`Error::LimitExceeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one key. Default 4 KiB.
    pub key_bytes_max: usize,
    /// Bytes in one value. Default 16 MiB.
    pub value_bytes_max: usize,
    /// Distinct keys one transaction may write. Default 100,000.
    pub transaction_writes_max: usize,
    /// Keys and ranges one serializable transaction may read. Default 100,000.
    pub transaction_reads_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            key_bytes_max: 4 * 1024,
            value_bytes_max: 16 * 1024 * 1024,
            transaction_writes_max: 100_000,
            transaction_reads_max: 100_000,
        }
    }
}

/// How [`crate::Database::transaction`] retries a closure whose commit conflicts.
///
/// A commit that lost a key retries holding the key's turn, at once, so that on a hot key
/// the losers commit in turn (see [`crate::Database::transaction`]). A retry that cannot
/// take a turn, or loses while holding it and after newcomers were told to let it pass,
/// waits before attempt `n` (from 1) a random time in
/// `[0, min(backoff_max, backoff_base * 2^n)]` ("full jitter"), so colliding transactions
/// spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs in total, the first included. Default 16.
    pub attempts_max: u32,
    /// Default 20 µs.
    pub backoff_base: Duration,
    /// Default 10 ms.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 16,
            backoff_base: Duration::from_micros(20),
            backoff_max: Duration::from_millis(10),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before attempt `attempt` (the first retry is attempt 1).
    #[cfg_attr(loom, allow(dead_code, reason = "loom models retry without waiting"))]
    pub(crate) fn backoff_cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.backoff_base.saturating_mul(factor).min(self.backoff_max)
    }
}

/// When a commit counts as done, for a database opened on a directory
/// ([`crate::Database::open`]).
///
/// | mode | `commit` returns after | lost on power failure |
/// |---|---|---|
/// | `None` | the commit is visible in memory; nothing is logged | every commit of the session |
/// | `Buffered { interval }` | the record is queued for the log; fsync'd at least every `interval` | at most about `interval` of commits |
/// | `Sync` | the record (and every earlier one) is fdatasync'd | nothing acknowledged |
///
/// Whatever the mode, what recovery keeps is a prefix of the commits in version order:
/// never a commit without every commit before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// No log: the directory's state is recovered at open, and this session's commits are
    /// lost when it ends.
    None,
    /// Commits are visible at once and logged in the background.
    Buffered {
        /// The longest a logged commit stays unsynced.
        interval: Duration,
    },
    /// Commits become visible, and `commit` returns, once durable (group commit).
    #[default]
    Sync,
}

impl Durability {
    /// This durability, or `floor` if that is stronger (`None` < `Buffered` < `Sync`).
    pub(crate) fn at_least(self, floor: Durability) -> Durability {
        let rank = |durability| match durability {
            Durability::None => 0,
            Durability::Buffered { .. } => 1,
            Durability::Sync => 2,
        };
        if rank(self) > rank(floor) {
            self
        } else {
            floor
        }
    }
}

pub use inmem_wal::{BackendChoice, BackendInUse, BackendReason, RecoveryMode};

/// Tells the keys that are only ever scanned from the rest; see [`Options::scan_only_keys`].
/// A pure function of the key's bytes.
pub type ScanOnlyKeys = fn(&[u8]) -> bool;

/// Options of a [`crate::Database`].
///
/// ```
/// use std::time::Duration;
/// use inmem_engine::{Isolation, Options, Retention};
///
/// let options = Options::default()
///     .isolation(Isolation::Serializable)
///     .retention(Retention::KeepFor(Duration::from_secs(60)));
/// assert_eq!(options.isolation, Isolation::Serializable);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The isolation of transactions that do not ask for another. Default `Snapshot`.
    pub isolation: Isolation,
    /// Which old versions are kept. Default: the newest of each key.
    pub retention: Retention,
    /// Size limits.
    pub limits: Limits,
    /// Retry of conflicting transactions in [`crate::Database::transaction`].
    pub retry: RetryPolicy,
    /// How often the background thread collects garbage, reaps expired keys and purges
    /// range deletes. Default 50 ms.
    pub maintenance_interval: Duration,
    /// When commits count as done, for a database on a directory. Default `Sync`.
    pub durability: Durability,
    /// What opening a directory does with a damaged log. Default `TolerateTornTail`.
    pub recovery: RecoveryMode,
    /// The maintenance thread checkpoints once the log has grown this many bytes since the
    /// last checkpoint (0: never; [`crate::Database::checkpoint`] still does). Default
    /// 64 MiB.
    pub checkpoint_log_bytes: u64,
    /// The most bytes a second a checkpoint writes (0: as fast as the disk takes them).
    /// A checkpoint shares the disk with the log: unpaced, back-to-back checkpoints of a
    /// large keyspace take most of its bandwidth, and the log's syncs wait behind them.
    /// Each 32 KiB it writes back is an interrupt on the core that takes the disk's, and
    /// a reader running there waits for it. Default 16 MiB/s (a checkpoint of 1,000,000
    /// keys of 100 B, about 140 MB, takes about 9 s; at 64 MiB/s, gets during back-to-back
    /// checkpoints had a p99.9 3.5-5.5x quiet, at 16 MiB/s 0.8-1.3x). A database being
    /// closed or dropped lifts the budget for the background checkpoint it waits for.
    pub checkpoint_write_bytes_per_sec: u64,
    /// The keys kept out of the hash index; see [`Options::scan_only_keys`]. Default: none.
    pub scan_only_keys: Option<ScanOnlyKeys>,
    /// The I/O backend of a database's log. Default `Auto`: the one measured faster for the
    /// log's writer (today pwritev + fdatasync), never failing for want of io_uring; `Uring`
    /// fails the open where the kernel refuses io_uring ([`crate::Error::Log`] whose source
    /// is [`inmem_wal::Error::BackendUnavailable`]). [`crate::Database::log_backend`] says
    /// which backend the log uses and why.
    pub io_backend: BackendChoice,
    /// Whether opening a database turns glibc's malloc fast bins off for the process, on
    /// Linux with glibc. Default `true`. The collector frees versions on its own thread,
    /// and glibc leaves such frees on fast bins for the allocating thread, a committer, to
    /// sort out all at once later: under the system allocator, 1-key commits while 5M
    /// versions were reclaimed stalled for 395-422 ms, and at most 4.8-21.9 ms with the
    /// fast bins off (whose price is a p99 of 11-25 us against 3.5-4.2 us: each free
    /// coalesces). It is done once per process, at the first database opened with this on,
    /// and not at all if the environment sets glibc's own tunable
    /// (`GLIBC_TUNABLES=glibc.malloc.mxfast=...`). Under another global allocator (the
    /// README recommends mimalloc) it changes nothing that matters. Set it to `false` to
    /// leave glibc's malloc as the application configured it.
    pub tune_glibc_malloc: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            isolation: Isolation::default(),
            retention: Retention::default(),
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            maintenance_interval: Duration::from_millis(50),
            durability: Durability::default(),
            recovery: RecoveryMode::default(),
            checkpoint_log_bytes: 64 << 20,
            checkpoint_write_bytes_per_sec: 16 << 20,
            scan_only_keys: None,
            io_backend: BackendChoice::Auto,
            tune_glibc_malloc: true,
        }
    }
}

impl Options {
    /// Sets the default isolation.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Sets the retention policy.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the maintenance interval.
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Sets the durability of a database on a directory.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets how much the log grows between background checkpoints (0: never).
    pub fn checkpoint_log_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_log_bytes = bytes;
        self
    }

    /// Sets the most bytes a second a checkpoint writes
    /// ([`Options::checkpoint_write_bytes_per_sec`]; 0: unpaced).
    pub fn checkpoint_write_rate(mut self, bytes_per_sec: u64) -> Self {
        self.checkpoint_write_bytes_per_sec = bytes_per_sec;
        self
    }

    /// Sets the I/O backend of a database's log ([`Options::io_backend`]).
    pub fn io_backend(mut self, choice: BackendChoice) -> Self {
        self.io_backend = choice;
        self
    }

    /// Sets whether opening the database turns glibc's malloc fast bins off
    /// ([`Options::tune_glibc_malloc`]).
    ///
    /// ```
    /// use inmem_engine::{Database, Options};
    ///
    /// // This application configures glibc's malloc itself.
    /// let db = Database::with_options(Options::default().tune_glibc_malloc(false))?;
    /// # drop(db);
    /// # Ok::<(), inmem_engine::Error>(())
    /// ```
    pub fn tune_glibc_malloc(mut self, tune: bool) -> Self {
        self.tune_glibc_malloc = tune;
        self
    }

    /// Sets the recovery mode of a database on a directory.
    pub fn recovery(mut self, recovery: RecoveryMode) -> Self {
        self.recovery = recovery;
        self
    }

    /// Keeps the keys `scan_only` accepts out of the hash index: each such key is stored in
    /// the ordered index alone, so writing a new one inserts into one index instead of two
    /// (and holds no hash-index entry, nor its share of the table's regrowth), while a point
    /// read of one walks the ordered index instead of hashing. Meant for keys that readers
    /// only scan, such as secondary-index entries; reads, scans and writes of every key
    /// behave the same either way.
    ///
    /// `scan_only` must be a pure function of the key's bytes. It shapes in-memory
    /// structures only, so a directory may be opened with one function today and another
    /// tomorrow.
    ///
    /// ```
    /// use inmem_engine::{Database, Options};
    ///
    /// let db = Database::with_options(Options::default().scan_only_keys(|key| key.starts_with(b"idx/")))?;
    /// db.put("idx/by-name/ada", "")?;
    /// db.put("user/ada", "Ada")?;
    /// assert!(db.get("idx/by-name/ada")?.is_some());
    /// assert_eq!(db.snapshot().prefix("idx/").count(), 1);
    /// # Ok::<(), inmem_engine::Error>(())
    /// ```
    pub fn scan_only_keys(mut self, scan_only: ScanOnlyKeys) -> Self {
        self.scan_only_keys = Some(scan_only);
        self
    }

    /// Refuses values the engine cannot work with.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |name, reason| Err(Error::InvalidOption { name, reason });
        if self.limits.key_bytes_max == 0 {
            return invalid("limits.key_bytes_max", "must be at least 1");
        }
        if self.limits.transaction_writes_max == 0 {
            return invalid("limits.transaction_writes_max", "must be at least 1");
        }
        if self.limits.transaction_reads_max == 0 {
            return invalid("limits.transaction_reads_max", "must be at least 1");
        }
        if self.retry.attempts_max == 0 {
            return invalid("retry.attempts_max", "must be at least 1");
        }
        if self.retry.backoff_base > self.retry.backoff_max {
            return invalid("retry.backoff_base", "must not exceed retry.backoff_max");
        }
        if self.maintenance_interval.is_zero() {
            return invalid("maintenance_interval", "must be above zero");
        }
        if self.durability == (Durability::Buffered { interval: Duration::ZERO }) {
            return invalid("durability", "a buffered interval must be above zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Options::default().validate(), Ok(()));
    }

    #[test]
    fn a_zero_attempt_retry_policy_is_refused() {
        let options =
            Options::default().retry(RetryPolicy { attempts_max: 0, ..RetryPolicy::default() });
        assert!(matches!(
            options.validate(),
            Err(Error::InvalidOption { name: "retry.attempts_max", .. })
        ));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff_cap(1), Duration::from_micros(40));
        assert_eq!(policy.backoff_cap(3), Duration::from_micros(160));
        assert_eq!(policy.backoff_cap(60), policy.backoff_max);
    }
}
