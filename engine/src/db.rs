//! The database's public handle and its background maintenance thread. The state they
//! share with every snapshot and transaction is `shared.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inmem_wal::{BackendInUse, WalOptions};

use crate::bytes::Bytes;
use crate::checkpoint::CheckpointReport;
use crate::clock;
use crate::dir::DirLock;
use crate::durable;
use crate::error::{Error, Result};
use crate::options::{Durability, Isolation, Options, RetryPolicy};
use crate::range_delete::{PendingRangeDelete, PURGE_STEPS_PER_ROUND};
use crate::recovery::Recovery;
use crate::shared::Shared;
use crate::snapshot::{Clock, Snapshot, VersionRecord};
use crate::stats::{Counters, GcReport, GcStats, OldestSnapshot, Stats};
use crate::sync::Ordering;
use crate::turns::{Turn, Turns};
use crate::txn::Transaction;
use crate::version::CommitVersion;

impl Shared {
    /// One maintenance round: collect garbage, reap expired keys, purge range deletes,
    /// checkpoint if due.
    #[cfg_attr(loom, expect(dead_code, reason = "loom models run no maintenance thread"))]
    fn maintain(&self) {
        self.refresh_clock();
        self.collect_garbage();
        self.reap_expired();
        self.purge_range_deletes(PURGE_STEPS_PER_ROUND);
        self.checkpoint_if_due();
    }
}

/// Per-transaction choices; the defaults come from the database's [`Options`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionOptions {
    /// The isolation of this transaction, instead of [`Options::isolation`].
    pub isolation: Option<Isolation>,
    /// The retry policy of [`Database::transaction_with`], instead of [`Options::retry`].
    pub retry: Option<RetryPolicy>,
    /// The durability of this transaction's commit, if stronger than the database's
    /// [`Options::durability`] (`Sync` in a `Buffered` database); a weaker one is ignored.
    pub durability: Option<Durability>,
}

impl TransactionOptions {
    /// Runs the transaction with `isolation`.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Retries the transaction's closure by `retry`.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Commits with `durability` if it is stronger than the database's.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}

/// An error type a transaction closure may return to [`Database::transaction_typed`]:
/// it takes the engine's errors, and says which of its values are conflicts to retry.
pub trait TransactionError: From<Error> {
    /// Whether the transaction may succeed if run again.
    fn is_conflict(&self) -> bool;
}

impl TransactionError for Error {
    fn is_conflict(&self) -> bool {
        Error::is_conflict(self)
    }
}

/// The result of a committed transaction closure, with the commit's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<T> {
    /// What the closure returned.
    pub value: T,
    /// The commit version; for a transaction that wrote nothing, the version it read at.
    pub version: CommitVersion,
}

/// An embedded MVCC key-value database.
///
/// Keys and values are byte strings; keys are ordered as bytes. Reads go through
/// [`Snapshot`]s and never block or wait for writers; writes go through optimistic
/// [`Transaction`]s. Share a `Database` between threads by reference or in an `Arc`.
///
/// ```
/// use inmem_engine::Database;
///
/// let db = Database::in_memory()?;
/// let v1 = db.put(b"user/1", b"ada")?;
/// let old = db.snapshot();
/// db.put(b"user/1", b"grace")?;
///
/// assert_eq!(db.get(b"user/1")?.as_deref(), Some(&b"grace"[..]));
/// assert_eq!(old.get(b"user/1")?.as_deref(), Some(&b"ada"[..]), "snapshots are stable");
/// assert_eq!(old.version(), v1);
/// # Ok::<(), inmem_engine::Error>(())
/// ```
pub struct Database {
    /// Held for its `Drop`, which stops the maintenance thread and waits for it.
    maintenance: Option<Maintenance>,
    pub(crate) shared: Arc<Shared>,
    /// What opening the directory recovered.
    recovery: Option<Recovery>,
    /// The directory's lock, for a database on one; dropped last.
    _lock: Option<DirLock>,
}

impl Database {
    /// An empty in-memory database with default [`Options`].
    ///
    /// # Errors
    /// [`Error::Io`] if the operating system refuses the maintenance thread.
    pub fn in_memory() -> Result<Database> {
        Database::with_options(Options::default())
    }

    /// An empty in-memory database.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] if an option is out of range.
    pub fn with_options(options: Options) -> Result<Database> {
        options.validate()?;
        crate::allocator::tune(&options);
        Database::start(Shared::new(options), None)
    }

    /// Opens the database in directory `dir` (created if missing): recovers what its log
    /// holds, then logs commits as [`Options::durability`] says.
    ///
    /// ```
    /// use inmem_engine::{Database, Durability, Options};
    ///
    /// let dir = std::env::temp_dir().join(format!("inmem-doc-open-{}", std::process::id()));
    /// let db = Database::open(&dir, Options::default())?;
    /// let version = db.put(b"config/mode", b"fast")?; // durable when it returns
    /// drop(db);
    ///
    /// let db = Database::open(&dir, Options::default().durability(Durability::Sync))?;
    /// assert_eq!(db.get(b"config/mode")?.as_deref(), Some(&b"fast"[..]));
    /// assert_eq!(db.visible_version(), version);
    /// # drop(db);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), inmem_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle has it open; [`Error::Log`] for a log that
    /// cannot be opened or is damaged beyond what [`Options::recovery`] accepts (its
    /// source, the log's error, names the file and offset); [`Error::CorruptRecord`];
    /// [`Error::Io`] naming the file or directory, of kind
    /// [`std::io::ErrorKind::NotADirectory`] if `dir` is a file or anything else than a
    /// directory; [`Error::InvalidOption`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Database> {
        Database::open_with_log_options(dir, options, WalOptions::default())
    }

    /// As [`Database::open`], with the log's own options (segment size, a fault-injecting
    /// backend in tests); their durability, recovery mode and backend choice are replaced
    /// by the database's ([`Options::io_backend`]; a backend given as
    /// [`inmem_wal::WalOptions::io`] is used as given).
    ///
    /// # Errors
    /// As [`Database::open`].
    pub fn open_with_log_options(
        dir: impl AsRef<Path>,
        options: Options,
        log_options: WalOptions,
    ) -> Result<Database> {
        options.validate()?;
        crate::allocator::tune(&options);
        let one_key = options.limits.key_bytes_max as u64
            + (crate::record::HEADER_LEN + crate::record::WRITE_OVERHEAD) as u64;
        if log_options.max_record_bytes < one_key {
            return Err(Error::InvalidOption {
                name: "log max_record_bytes",
                reason: "must hold a commit of one key of limits.key_bytes_max bytes",
            });
        }
        let dir = dir.as_ref();
        if std::fs::metadata(dir).is_ok_and(|meta| !meta.is_dir()) {
            let error = crate::error::not_a_directory();
            return Err(Error::io("opening the database directory", dir, error));
        }
        std::fs::create_dir_all(dir)
            .map_err(|error| Error::io("creating the database directory", dir, error))?;
        let lock = DirLock::acquire(dir)?;
        let opened = durable::open_log(dir, &options, log_options)?;
        let mut shared = opened.shared;
        shared.recovered_at(opened.version);
        shared.log = opened.log;
        let mut db = Database::start(shared, Some(lock))?;
        db.recovery = Some(opened.recovery);
        Ok(db)
    }

    fn start(shared: Shared, lock: Option<DirLock>) -> Result<Database> {
        let interval = shared.options.maintenance_interval;
        let shared = Arc::new(shared);
        let maintenance = Maintenance::start(&shared, interval)?;
        Ok(Database { maintenance, shared, recovery: None, _lock: lock })
    }

    /// What opening the directory recovered (`None` for a database in memory): the
    /// checkpoint loaded, damaged newer ones passed over, and the log's recovery report.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Closes the database: stops its maintenance, and makes everything its log holds
    /// durable (dropping it does the same, without reporting an error).
    ///
    /// # Errors
    /// [`Error::Log`] if the last sync fails.
    pub fn close(mut self) -> Result<()> {
        drop(self.maintenance.take());
        let log = Arc::get_mut(&mut self.shared).and_then(|shared| shared.log.take());
        match log {
            Some(log) => log.wal.close().map_err(|error| Error::log("closing the log", error)),
            None => Ok(()),
        }
    }

    /// The I/O backend of the database's log and why it is that one (requested, chosen by
    /// `Auto`, Auto's fallback where the kernel refused io_uring), as
    /// [`inmem_wal::Wal::backend`] reports it; displays as `sync: chosen by Auto`. `None` in
    /// memory and under [`Durability::None`] (nothing is logged).
    pub fn log_backend(&self) -> Option<&BackendInUse> {
        self.shared.log.as_ref().map(|log| log.wal.backend())
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// The newest version a new snapshot reads.
    pub fn visible_version(&self) -> CommitVersion {
        self.shared.visible.load()
    }

    /// A snapshot of the newest visible state. Cheap: one atomic load and a registration.
    ///
    /// While it is open, the versions it reads are kept; see [`Stats::oldest_snapshot`].
    pub fn snapshot(&self) -> Snapshot<'_> {
        self.shared.snapshot()
    }

    /// A snapshot of the state exactly as it was at `version` (time travel).
    ///
    /// # Errors
    /// [`Error::VersionNotVisible`] for a version above the visible one;
    /// [`Error::SnapshotTooOld`] for one older than the retention policy keeps whole.
    pub fn snapshot_at(&self, version: CommitVersion) -> Result<Snapshot<'_>> {
        let visible = self.shared.visible.load();
        if version > visible {
            return Err(Error::VersionNotVisible { requested: version, visible });
        }
        let now_ms = self.shared.refresh_clock();
        self.shared.snapshot_registered(Some(version.get()), Clock::Fixed(now_ms))
    }

    /// The newest value of `key`, or `None` if it is absent, deleted or expired.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a key longer than the key limit.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.shared.check_key(key)?;
        let snapshot = self.shared.snapshot_registered(None, Clock::Live)?;
        Ok(snapshot.read(key))
    }

    /// The versions of `key`, newest first: at most `limit`, each older than `before` if
    /// given. Deletions appear as versions without a value.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a key longer than the key limit.
    pub fn history(
        &self,
        key: impl AsRef<[u8]>,
        limit: usize,
        before: Option<CommitVersion>,
    ) -> Result<Vec<VersionRecord>> {
        self.snapshot().history(key, limit, before)
    }

    /// Writes `key` = `value` in a transaction of its own and returns its commit version.
    ///
    /// A blind write (it reads nothing), so it never conflicts.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for an oversized key or value; [`Error::Poisoned`].
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<CommitVersion> {
        self.blind_write(key.as_ref(), Some(value.as_ref()), None)
    }

    /// As [`Database::put`], with the value expiring `ttl` from now.
    ///
    /// # Errors
    /// As [`Database::put`].
    pub fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<CommitVersion> {
        self.blind_write(key.as_ref(), Some(value.as_ref()), Some(ttl))
    }

    /// Deletes `key` in a transaction of its own and returns its commit version.
    ///
    /// # Errors
    /// As [`Database::put`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<CommitVersion> {
        self.blind_write(key.as_ref(), None, None)
    }

    /// Deletes every key starting with `prefix` in a transaction of its own, in one write
    /// however many keys that is, and returns its commit version; see
    /// [`Transaction::delete_prefix`].
    ///
    /// A blind write (it reads nothing), so it never conflicts itself.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a prefix longer than the key limit; [`Error::Poisoned`].
    pub fn delete_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<CommitVersion> {
        self.shared.delete_prefix_blind(prefix.as_ref())
    }

    /// The range deletes still in effect, oldest first: those whose keys the maintenance
    /// thread is still replacing by tombstones, or that wait for older snapshots to go.
    /// Whatever it says, their keys already read as deleted.
    pub fn range_deletes(&self) -> Vec<PendingRangeDelete> {
        self.shared.range_deletes.pending()
    }

    /// Runs the purge of pending range deletes now, for at most `steps` steps of at most
    /// [`PURGE_KEYS_PER_STEP`](crate::PURGE_KEYS_PER_STEP) keys each (the maintenance
    /// thread runs a few every [`Options::maintenance_interval`]), and retires those it
    /// finished once no older snapshot remains (after a [`Database::collect_garbage`]
    /// pass has seen that). Returns how many keys it replaced by tombstones.
    ///
    /// ```
    /// use inmem_engine::Database;
    ///
    /// let db = Database::in_memory()?;
    /// for i in 0..5000u32 {
    ///     db.put(format!("old/{i}"), b"x")?;
    /// }
    /// db.delete_prefix(b"old/")?;
    /// while !db.range_deletes().is_empty() {
    ///     db.purge_range_deletes(usize::MAX);
    ///     db.collect_garbage();
    /// }
    /// assert_eq!(db.stats().keys, 0, "every key is gone from memory");
    /// # Ok::<(), inmem_engine::Error>(())
    /// ```
    pub fn purge_range_deletes(&self, steps: usize) -> u64 {
        self.shared.purge_range_deletes(steps)
    }

    fn blind_write(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<CommitVersion> {
        self.shared.write_blind(key, value, ttl)
    }

    /// Begins a transaction with the database's default isolation.
    pub fn begin(&self) -> Transaction<'_> {
        self.begin_with(TransactionOptions::default())
    }

    /// Begins a transaction with per-transaction options.
    pub fn begin_with(&self, options: TransactionOptions) -> Transaction<'_> {
        let isolation = options.isolation.unwrap_or(self.shared.options.isolation);
        Transaction::new(self.shared.snapshot(), isolation, options.durability)
    }

    /// Runs `f` in a transaction and commits it, running it again when the commit conflicts,
    /// at most [`RetryPolicy::attempts_max`] times. A transaction that lost a key retries
    /// holding the key's turn (losers queue for it), and if it loses again the key's other
    /// writers let it commit first, so that under contention the losers commit in turn
    /// rather than lose again until their attempts run out; other retries wait a jittered
    /// backoff. A transaction that has not conflicted takes no lock for this, and waits
    /// (before its commit) only where a loser starves on the turn of a key it writes. `f`
    /// runs again only after a conflict. `f` must have no effects besides its
    /// transaction, and should not block on anything that a concurrent caller of
    /// `transaction` may hold while it waits (such a wait for a turn gives up after a
    /// second, and the call retries with backoff alone).
    ///
    /// # Errors
    /// The error `f` returns, or the last [`Error::Conflict`] when attempts run out.
    pub fn transaction<T>(&self, f: impl FnMut(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        self.transaction_with(TransactionOptions::default(), f).map(|committed| committed.value)
    }

    /// As [`Database::transaction`], with per-transaction options, also returning the commit
    /// version.
    ///
    /// # Errors
    /// As [`Database::transaction`].
    pub fn transaction_with<T>(
        &self,
        options: TransactionOptions,
        f: impl FnMut(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<Committed<T>> {
        self.transaction_typed(options, f)
    }

    /// As [`Database::transaction_with`], for a closure with its own error type `E`: a
    /// layer above the engine (the primitives) keeps its typed errors, and a conflict,
    /// from the closure or the commit, is retried all the same (one from the closure, which
    /// names no key, with backoff).
    ///
    /// # Errors
    /// The error `f` returns, or the commit's (converted), or the last conflict when
    /// attempts run out.
    pub fn transaction_typed<T, E: TransactionError>(
        &self,
        options: TransactionOptions,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, E>,
    ) -> Result<Committed<T>, E> {
        let retry = options.retry.unwrap_or(self.shared.options.retry);
        let turns = &self.shared.turns;
        // The turn this call holds, from its first lost commit until it returns, and whether
        // it may still wait for one (not after a wait gave up).
        let (mut turn, mut may_wait): (Option<Turn<'_>>, bool) = (None, true);
        let mut attempt = 0;
        loop {
            let mut txn = self.begin_with(options);
            let value = match f(&mut txn) {
                Ok(value) => value,
                Err(error) if error.is_conflict() && attempt + 1 < retry.attempts_max => {
                    attempt += 1;
                    backoff(&retry, attempt);
                    continue;
                }
                Err(error) => return Err(error),
            };
            // A newcomer's one load; it hashes its keys only while some turn starves.
            if turn.is_none() && may_wait && turns.starving() {
                if let Some(key_hash) = turns.starving_on(txn.written_keys()) {
                    // Let the loser starving on the key's turn commit first, then commit: most
                    // likely this loses the key, and queues for its turn as a loser.
                    may_wait = turns.wait_passed(key_hash);
                }
            }
            match txn.commit() {
                Ok(version) => return Ok(Committed { value, version }),
                Err(Error::Conflict { key }) if attempt + 1 < retry.attempts_max => {
                    attempt += 1;
                    lost(turns, &key, (&mut turn, &mut may_wait), &retry, attempt);
                }
                Err(error) => return Err(E::from(error)),
            }
        }
    }

    /// Size and activity counters; cheap enough to poll.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let counters = &shared.counters;
        let now_ms = clock::now_ms();
        let oldest_snapshot = shared.registry.oldest_reader().map(|oldest| OldestSnapshot {
            version: CommitVersion::new(oldest.version),
            age: Duration::from_millis(now_ms.saturating_sub(oldest.created_ms)),
            pinned_bytes: Counters::get(&counters.pinned_bytes),
        });
        Stats {
            visible_version: self.visible_version(),
            keys: Counters::get(&counters.keys),
            live_versions: Counters::get(&counters.versions),
            live_bytes: Counters::get(&counters.bytes),
            commits: Counters::get(&counters.commits),
            conflicts: Counters::get(&counters.conflicts),
            open_snapshots: shared.registry.open_readers(),
            oldest_snapshot,
            oldest_available: CommitVersion::new(shared.registry.published_horizon()),
            gc: GcStats {
                passes: Counters::get(&counters.gc_passes),
                versions_pruned: Counters::get(&counters.versions_pruned),
                versions_freed: Counters::get(&counters.versions_freed),
                bytes_pruned: Counters::get(&counters.bytes_pruned),
                keys_removed: Counters::get(&counters.keys_removed),
            },
            expirations_reaped: Counters::get(&counters.expirations_reaped),
            background_checkpoints: Counters::get(&counters.checkpoints),
            background_checkpoint_failures: Counters::get(&counters.checkpoint_failures),
            log: shared.log.as_ref().map(|log| log.wal.stats()),
        }
    }

    /// Writes a checkpoint: every retained version up to the newest visible one, in one
    /// file, so that reopening replays only the log after it. The previous checkpoint and
    /// the log since it are kept (the fallback if this one is ever found damaged); older
    /// checkpoints and the log before the previous one are deleted. Writers and readers go
    /// on meanwhile.
    /// [`Options::checkpoint_log_bytes`] has the maintenance thread do it as the log grows.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a database without a log (in memory, or
    /// `Durability::None`); [`Error::Io`] or [`Error::Log`] if writing or deleting fails.
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        self.shared.checkpoint()
    }

    /// Runs a garbage-collection pass now (the maintenance thread runs them every
    /// [`Options::maintenance_interval`]). Never blocks a reader.
    pub fn collect_garbage(&self) -> GcReport {
        self.shared.collect_garbage()
    }

    /// Replaces every version that has expired by a tombstone now (the maintenance thread
    /// does this every [`Options::maintenance_interval`]) and returns how many it replaced.
    pub fn reap_expired(&self) -> u64 {
        self.shared.reap_expired()
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("visible_version", &self.visible_version())
            .finish_non_exhaustive()
    }
}

/// After a commit lost `key`, before retry `attempt`: takes the key's turn (trading the
/// turn held for another key, if any) and retries at once. Holding the key's turn already,
/// it marks the turn starving, so that newcomers let it pass, and retries at once; if it
/// was starving already (it lost to a writer that does not look at turns), or the turn
/// cannot be had, it retries after a backoff.
#[cold]
fn lost<'t>(
    turns: &'t Turns,
    key: &[u8],
    (turn, may_wait): (&mut Option<Turn<'t>>, &mut bool),
    retry: &RetryPolicy,
    attempt: u32,
) {
    let key_hash = Turns::turn_of(key);
    if let Some(held) = turn.as_ref().filter(|held| held.is_for(key_hash)) {
        if !held.starve() {
            backoff(retry, attempt);
        }
        return;
    }
    if !*may_wait {
        backoff(retry, attempt);
        return;
    }
    // Never hold one turn while waiting for another.
    *turn = None;
    *turn = turns.wait(key_hash);
    *may_wait = turn.is_some();
    if turn.is_none() {
        backoff(retry, attempt);
    }
}

/// Waits before retry `attempt`: a uniformly random time up to the policy's cap.
#[cold]
#[cfg(not(loom))]
fn backoff(retry: &RetryPolicy, attempt: u32) {
    let cap = retry.backoff_cap(attempt);
    let wait = Duration::from_nanos(fastrand::u64(0..=cap.as_nanos().min(u64::MAX as u128) as u64));
    if wait < Duration::from_micros(50) {
        // Shorter than the scheduler's sleep granularity: yield instead of oversleeping.
        let start = std::time::Instant::now();
        while start.elapsed() < wait {
            std::thread::yield_now();
        }
    } else {
        std::thread::sleep(wait);
    }
}

/// Under loom, a retry only yields: the model explores every interleaving anyway, and
/// random sleeps would make executions unrepeatable.
#[cold]
#[cfg(loom)]
fn backoff(_retry: &RetryPolicy, _attempt: u32) {
    loom::thread::yield_now();
}

/// The background thread that collects garbage and reaps expired keys: a round every
/// maintenance interval, or sooner when commits wake it (see `txn/commit.rs`).
struct Maintenance {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    #[cfg(not(loom))]
    fn start(shared: &Arc<Shared>, interval: Duration) -> Result<Option<Maintenance>> {
        let worker = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("inmem-maintenance".into())
            .spawn(move || {
                let _dart = PoisonOnPanic(&worker);
                loop {
                    // A spurious or early wake-up only runs a round sooner.
                    std::thread::park_timeout(interval);
                    // Relaxed: the unpark that follows the store orders it before this load.
                    if worker.stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    worker.maintain();
                }
            })
            .map_err(|error| Error::io("starting the maintenance thread", "", error))?;
        // Set once, by the only thread that starts maintenance for this database.
        let _ = shared.maintenance_thread.set(thread.thread().clone());
        Ok(Some(Maintenance { shared: Arc::clone(shared), thread: Some(thread) }))
    }

    /// Loom models drive maintenance by hand: a free-running thread cannot be modelled.
    #[cfg(loom)]
    fn start(_shared: &Arc<Shared>, _interval: Duration) -> Result<Option<Maintenance>> {
        Ok(None)
    }
}

impl Drop for Database {
    /// Stops the maintenance thread (waiting for a pass under way), then frees here what
    /// the collector left to the epoch, so that no thread that pins later, in this process,
    /// frees it instead.
    fn drop(&mut self) {
        drop(self.maintenance.take());
        self.shared.free_garbage_left_to_the_epoch();
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A panicked maintenance thread already poisoned the database; nothing to add.
            let _ = thread.join();
        }
    }
}

/// Poisons the database if the maintenance thread unwinds.
#[cfg_attr(loom, expect(dead_code, reason = "loom models run no maintenance thread"))]
struct PoisonOnPanic<'a>(&'a Shared);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sequencer::LINKED_BEFORE_EARLY_COLLECTION;

    #[test]
    fn dropping_a_database_frees_what_its_collector_left_to_the_epoch() {
        let options = Options::default().maintenance_interval(Duration::from_secs(3600));
        let db = Database::with_options(options).expect("opens");
        for round in 0..3_u32 {
            for key in 0..1000_u32 {
                db.put(key.to_le_bytes(), round.to_le_bytes()).expect("put");
            }
        }
        // A pass that forgets no key hands what it pruned to the epoch and returns. (The
        // maintenance thread may have run one first: its park may return spuriously, and
        // then that pass pruned them; the passes together pruned all 2000.)
        db.collect_garbage();
        assert_eq!(db.stats().gc.versions_pruned, 2000);
        let released = Arc::downgrade(&db.shared.gc.released);
        drop(db);
        assert!(
            released.upgrade().is_none(),
            "a deferred function still holds the pruned versions, for another thread to free"
        );
    }

    #[test]
    fn many_commits_wake_the_collector_before_its_interval() {
        let options = Options::default().maintenance_interval(Duration::from_secs(3600));
        let db = Database::with_options(options).expect("opens");
        for round in 0..LINKED_BEFORE_EARLY_COLLECTION {
            db.put(b"hot", round.to_le_bytes()).expect("put");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db.stats().gc.passes == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no collection pass within 10 s of the wake-up"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        while db.stats().live_versions > 1 {
            assert!(std::time::Instant::now() < deadline, "superseded versions were not collected");
            db.put(b"hot", b"again").expect("put");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn dropping_the_database_stops_its_maintenance_thread() {
        let db = Database::in_memory().expect("opens");
        let thread = db.shared.maintenance_thread.get().expect("started").clone();
        let weak = Arc::downgrade(&db.shared);
        drop(db);
        assert!(
            weak.upgrade().is_none(),
            "the thread held the last handle and let it go: {thread:?}"
        );
    }
}
