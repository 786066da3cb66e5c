//! The flags of `inmem bench` and their validation into a [`Config`].
//!
//! clap refuses what is malformed (a non-number, an unknown workload); [`Config::from_args`]
//! refuses what is well-formed but unusable (zero keys, keys too short for the key count, a
//! value larger than the engine accepts), each with a [`BenchError`] that names the flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use inmem::wal::BackendChoice;

use super::dataset::KeyLayout;
use super::error::BenchError;

/// The default number of keys.
pub(crate) const KEYS_DEFAULT: u64 = 1_000_000;
/// At most this many keys: fill orders them through a permutation of `u32` indices.
pub(crate) const KEYS_MAX: u64 = u32::MAX as u64;
/// At most this many worker threads per run.
pub(crate) const THREADS_MAX: usize = 1024;
/// A prefix scan returns this many keys (one key group of the layout).
pub(crate) const SCAN_KEYS: usize = 100;
/// By default a scan run makes one scan per this many keys, so it reads ten times as many
/// entries as there are keys: long enough (seconds, at 1M keys) for a steady figure.
const KEYS_PER_DEFAULT_SCAN: u64 = 10;
/// By default a wal run makes this many commits: a few seconds at this machine's fsync
/// rate with one thread.
pub(crate) const WAL_OPS_DEFAULT: u64 = 20_000;
/// Payload bytes of each record the wal workload appends.
pub(crate) const WAL_RECORD_BYTES: usize = 128;
/// By default a hot-run run makes this many appends (about a second at one thread).
pub(crate) const HOT_RUN_OPS_DEFAULT: u64 = 200_000;
/// By default each measured window of `--during` lasts this many seconds.
pub(crate) const DURING_SECONDS_DEFAULT: u64 = 3;

/// Runs macro workloads on an embedded database (in memory, or on disk with --durability)
/// and prints throughput, latency percentiles and peak memory, one row (or one JSON line)
/// per workload run.
///
/// Each thread count starts from a fresh database; the workloads run in the order given on
/// it. Workloads other than fill first load --keys keys (unmeasured) if the database is
/// empty. The wal workload (not run by default) measures the write-ahead log alone, on
/// disk, after the others.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// Workloads to run, in order: repeat the flag or give a comma list.
    #[arg(long = "workload", value_enum, value_delimiter = ',',
          default_values_t = Workload::ALL)]
    pub workloads: Vec<Workload>,

    /// Number of keys loaded by fill (and by the unmeasured prefill of other workloads).
    #[arg(long, default_value_t = KEYS_DEFAULT)]
    pub keys: u64,

    /// Bytes per value; contents are pseudo-random from --seed.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,

    /// Bytes per key (at least 2; the first key-size - 1 bytes are the scan prefix).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,

    /// Worker threads; a comma list such as 1,2 runs every workload at each count.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize])]
    pub threads: Vec<usize>,

    /// Seed of the key order, the random choices and the value contents.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Operations per measured workload, split evenly over the threads
    /// [default: --keys for get, mixed and txn; --keys / 10 (at least 1) for scan;
    /// fill always inserts --keys keys].
    #[arg(long)]
    pub ops: Option<u64>,

    /// One JSON object per line and per workload run instead of a table; no progress bar.
    #[arg(long)]
    pub json: bool,

    /// Also run every workload on a bare data structure in the same process and report the
    /// ratio of the engine's ops/s to it (skipmap), or measure the raw durable-write rates
    /// of the disk the wal workload writes to (fsync).
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineKind>,

    /// wal: the log's I/O backend; a comma list such as uring,sync runs each thread count
    /// on each [default: auto].
    #[arg(long = "backend", value_enum, value_delimiter = ',')]
    pub backends: Vec<WalBackend>,

    /// Run the engine workloads on a database in a directory, logging its commits with
    /// this durability (a list such as `none,sync` runs each) [default: in memory, no
    /// directory].
    #[arg(long = "durability", value_enum, value_delimiter = ',')]
    pub durabilities: Vec<DurabilityArg>,

    /// wal, and --durability: an existing directory on the disk to measure; the log, the
    /// fsync baseline and each database write in a temporary directory made inside it and
    /// removed afterwards [default: the current directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Measure commit and get (or those of them --workload names) for --seconds each, on a
    /// fresh database per phase, while a driver thread runs this maintenance back to back
    /// (quiet: none); a comma list such as quiet,gc runs each phase, quiet first, and
    /// compares the others' p99.9 and max with it [default: not set: workloads run by
    /// count].
    #[arg(long = "during", value_enum, value_delimiter = ',')]
    pub during: Vec<Phase>,

    /// --during: how long each measured window lasts, in seconds [default: 3].
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// What the engine does beside the measured operations under `--during`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Phase {
    /// Nothing: no driver; the reference the other phases are compared with.
    Quiet,
    /// `Database::checkpoint` back to back (needs a log: on a database without one, in
    /// memory or `--durability none`, the phase runs on `buffered`).
    Checkpoint,
    /// `Database::collect_garbage` in a loop, on a database whose every key was first
    /// overwritten 5 times (5 superseded versions per key to reclaim).
    Gc,
    /// `Database::reap_expired` in a loop, on a database whose every key has an expiring
    /// twin that expired just before the window.
    Reap,
}

impl Phase {
    /// The phase's name, as on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Quiet => "quiet",
            Phase::Checkpoint => "checkpoint",
            Phase::Gc => "gc",
            Phase::Reap => "reap",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A database's durability, as `--durability` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// A database in a directory that logs nothing.
    None,
    /// Commits visible at once, logged and synced at least every 10 ms.
    Buffered,
    /// Commits durable (group commit) when they return.
    Sync,
}

impl DurabilityArg {
    /// The name, as on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DurabilityArg::None => "none",
            DurabilityArg::Buffered => "buffered",
            DurabilityArg::Sync => "sync",
        }
    }

    /// The engine's durability.
    pub(crate) fn durability(self) -> inmem::Durability {
        match self {
            DurabilityArg::None => inmem::Durability::None,
            DurabilityArg::Buffered => {
                inmem::Durability::Buffered { interval: std::time::Duration::from_millis(10) }
            }
            DurabilityArg::Sync => inmem::Durability::Sync,
        }
    }
}

const AFTER_HELP: &str = "\
Workloads:
  fill   insert --keys keys in a seeded random order, one commit each
  get    uniform random point reads of existing keys
  commit (not in the default set) one Database::put of a random existing key per
         operation (a 1-key commit of a random value)
  mixed  50% reads, 50% updates of existing keys (YCSB-A-like)
  scan   prefix scans returning 100 keys each
  txn    transactions of 4 reads and 4 writes on random keys; reports conflicts and
         retries (Database::transaction retries a conflicting commit)
  wal    (not in the default set) appends of 128-byte records to the write-ahead log, each
         waited for until durable (Wal::append_sync); --ops commits (default 20,000) over
         the threads, on a fresh log (64 MiB segments) per thread count and backend
  recover (not in the default set) times Database::open of --keys keys on disk (under --dir),
         from a checkpoint (mode checkpoint) and from the log alone (mode log); ops/s are
         records/s, and the notes (JSON mb_per_sec, recovered_bytes) the bytes read per second
         and first_get (JSON first_get_ns) the time from calling open until a get of a
         recovered key returned

  hot-run (not in the default set) EventLog::append from every thread to one and the same
         run, so that every append competes for the run's head record: appends/s on one
         hot key (op=event_append; --ops appends, default 200,000, over the threads, on a
         fresh database per durability and thread count); conflicts counts the commits
         that lost a conflict, retries those run again, aborts the appends that returned a
         conflict (the log is checked afterwards: one event per append that returned, and
         a hash chain that verifies). Example: --workload hot-run --threads 1,8,32

  primitives (not in the default set) each primitive operation in a run of its own, on a
         fresh database per durability and thread count: kv_get and kv_put (uniform over
         --keys keys of one run, loaded first), event_append, state_cas and trace_record
         (each worker on a run of its own), and cross_txn (a KV put, an event append, a
         state cas and a trace record in one transaction); rows carry op=, and kv_get and
         cross_txn the ratio to the engine's get and txn rows of the same durability and
         thread count when those ran in the same invocation (JSON op, engine_workload,
         ratio_vs_engine)

With --durability none|buffered|sync the engine workloads (and primitives) run on a
database opened in a temporary directory under --dir with that durability, instead of in
memory.

Maintenance phases (--during quiet,checkpoint,gc,reap): commit and get (or those of them
--workload names) each run for a window of --seconds (default 3) rather than a count of
ops, by --threads threads, for each durability, thread count and phase, on a fresh
database of --keys keys of --value-size bytes loaded first (unmeasured, in transactions
of 4096 keys, in fill's order). Every phase's database is opened with its maintenance
thread idle (maintenance_interval 1 hour, checkpoint_log_bytes 0; the engine still wakes
it early after every 64Ki versions committed), so the phases differ only by a driver
thread that starts with the window and runs its maintenance back to back until the
window ends (pausing 1 ms after a call that found nothing to do; then it is joined):
  quiet       no driver: the reference
  checkpoint  Database::checkpoint (needs a log: in memory or with durability none the
              phase runs on buffered, with a quiet run on buffered of its own to compare
              with, both noted asked=; left out there if buffered is among --durability)
  gc          Database::collect_garbage; setup first overwrites every key 5 times while a
              snapshot keeps the collector from reclaiming anything, closed just before
              the window
  reap        Database::reap_expired; setup writes, beside the keys, an expiring twin of
              each (the key and a byte 0xff: the workload reads and writes only the live
              keys, as in quiet) with a TTL that ends before the window (running a
              collection pass every 32Ki writes, so that the engine's early round never
              reaps them first) and waits until only the live keys are readable
Rows are written as measured, quiet first, with a phase and a max column; each notes
over_20ms (ops slower than 20 ms), the others the ratio of p99.9 and max to quiet's of
the same workload, durability and thread count (vs quiet p99.9=..x max=..x) and what the
driver did: gc_passes and reclaimed (versions, from its GcReports), checkpoints and
bytes, reap_calls and reaped (keys), driver= (seconds to the end of its last call);
superseded= and expired= give the setup's shape. JSON adds phase, over_20ms,
p999_vs_quiet, max_vs_quiet, driver_calls, driver_seconds, versions_reclaimed,
checkpoint_bytes, keys_reaped, superseded_versions, expired_keys and asked_durability.
The targets of a latency-critical service: p99.9 at most 2x quiet's, no operation over
20 ms in a 3-second window.

Key i is (i / 100) big-endian in key-size - 1 bytes, then the byte i % 100, so each
prefix of key-size - 1 bytes holds 100 keys.

Latency is measured around each operation (a txn operation is one whole transaction,
retries included); threads start together at a barrier and the run is timed from the
barrier's release to the end of the last thread. Peak RSS is per run on Linux (VmHWM
after resetting it through /proc/self/clear_refs; it includes what the process held when
the run began, reported as rss_start_bytes); where that fails it is the process's peak
so far, and the JSON field peak_rss_scope says which.

With --baseline skipmap, each thread count runs on the engine and then on a crossbeam
SkipMap<Vec<u8>, Vec<u8>> (same keys, values, operations and seeds; a txn there is 4 gets
and 4 inserts without isolation), each store dropped before the next one is made. The
rows of a thread count are printed once both ran, inmem first, each inmem row with the
ratio inmem ops/s / skipmap ops/s: the column 'vs base' in the table, the field
ratio_vs_baseline (and baseline: \"skipmap\") in JSON. A store that runs after another
starts with the memory the allocator kept of the first (rss_start_bytes).

JSON fields: workload, engine, threads, ops, seconds, ops_per_sec, p50_ns, p99_ns,
p999_ns, max_ns, peak_rss_bytes (null if unknown), peak_rss_scope (run, process or
unavailable), rss_start_bytes, keys, key_size, value_size, seed; txn lines add conflicts,
retries and aborts; inmem lines under --baseline add ratio_vs_baseline; skipmap lines
add missed_reads when a multi-threaded mixed or txn read missed a key that a concurrent
insert was replacing (SkipMap::insert removes the old entry before linking the new one;
the engine must never miss, and a miss there fails the run).

The wal workload runs after the others, in a temporary directory inside --dir (default:
the current directory, so on its disk; /tmp may be in memory), removed afterwards. Its
ops/s are commits/s; its notes give fsyncs/s (fdatasyncs of log data), commits/fsync (how
many commits a group commit made durable per fdatasync) and the backend (io_uring or
sync: pwritev + fdatasync). JSON adds commits_per_sec, fsyncs_per_sec, commits_per_fsync,
backend and record_bytes, and leaves out keys, key_size and value_size.

With --baseline fsync, the same directory first gets the raw rate of the fastest durable
write: a 4 KiB pwrite + fdatasync overwriting an already written block of a file (batch
1, as many as --ops), and one 128 KiB pwrite (32 such blocks) + fdatasync of already
written blocks (batch 32, --ops / 4 of them, at least min(--ops, 200)), the limit of a
32-commit group (mode overwrite). Then the log's own write pattern, --ops 4 KiB blocks
appended one after another, each made durable, into a file of that size prepared four
ways (mode): append-fallocate (fallocated; pwrite + fdatasync), append-zeroed
(zero-filled and fsync'd, as the log's segments are; pwrite + fdatasync), append-dsync
(zero-filled, opened O_DSYNC; pwrite only) and append-direct (zero-filled, opened
O_DIRECT|O_DSYNC, aligned buffer; pwrite only). A mode the file system refuses
(O_DIRECT or fallocate) is left out, and stderr says so. All these rows have workload
fsync, engine raw, ops = durable writes, ops/s = fsyncs/s (durable writes/s); the notes
give mode and batch; JSON adds mode, batch, fsyncs_per_sec and commits_per_sec (batch x
fsyncs/s). Under the table, each append mode's rate over append-zeroed's. A wal
run at 1 thread gets the ratio of its commits/s to a batch-1 fsyncs/s, and one at 32 or
more threads to 32 x a batch-32 fsyncs/s (column 'vs base'; JSON ratio_vs_baseline,
baseline \"fsync\" and baseline_batch), measured not by the rows above but by raw
overwrites interleaved with the run: it is cut into 5 slices, each preceded by as many
durable writes of the batch as the slice has commits over the batch (at least 20), so
that both sides of the ratio see the disk as it is then (note raw_fsyncs/s; JSON
baseline_fsyncs_per_sec).";

/// A named workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Workload {
    /// Inserts every key once, in a seeded random order.
    Fill,
    /// Uniform random point reads of existing keys.
    Get,
    /// 50% point reads, 50% updates of existing keys.
    Mixed,
    /// Prefix scans of one 100-key group each.
    Scan,
    /// Transactions of 4 reads and 4 writes on random keys.
    Txn,
    /// Appends of 128-byte records to the write-ahead log, each waited for until durable.
    Wal,
    /// Opens of a database of --keys keys, from a checkpoint and from the log alone.
    Recover,
    /// The primitives' operations (KV get and put, event append, state cas, trace record)
    /// and transactions mixing four primitives, each run on its own.
    Primitives,
    /// Event appends from every thread to one run's log.
    HotRun,
    /// One `Database::put` of a random existing key per operation: a 1-key commit. (Last,
    /// so that the other workloads' random streams, seeded by the position, stay as they
    /// were.)
    Commit,
}

impl Workload {
    /// Every workload on the in-memory engine, in the default order (all but wal).
    pub const ALL: [Workload; 5] =
        [Workload::Fill, Workload::Get, Workload::Mixed, Workload::Scan, Workload::Txn];

    /// Whether it runs apart from the engine sessions (on the log, or on databases of its
    /// own): wal, recover, primitives and hot-run.
    pub(crate) fn is_apart(self) -> bool {
        matches!(self, Workload::Wal | Workload::Recover | Workload::Primitives | Workload::HotRun)
    }

    /// The workload's name, as on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Fill => "fill",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Scan => "scan",
            Workload::Txn => "txn",
            Workload::Wal => "wal",
            Workload::Recover => "recover",
            Workload::Primitives => "primitives",
            Workload::HotRun => "hot-run",
            Workload::Commit => "commit",
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to compare the measured workloads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineKind {
    /// A bare `crossbeam_skiplist::SkipMap<Vec<u8>, Vec<u8>>` (the engine workloads).
    Skipmap,
    /// The raw rates of 4 KiB durable writes on the same disk (the wal workload):
    /// overwrites, and appends into files prepared four ways.
    Fsync,
}

/// The write-ahead log's I/O backend, as `--backend` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WalBackend {
    /// The log's default: the backend measured faster for its writer (today pwritev +
    /// fdatasync).
    Auto,
    /// io_uring, or an error if the kernel refuses it.
    Uring,
    /// pwritev + fdatasync.
    Sync,
}

impl WalBackend {
    /// The backend's name, as on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WalBackend::Auto => "auto",
            WalBackend::Uring => "uring",
            WalBackend::Sync => "sync",
        }
    }

    /// The log's option for this backend.
    pub(crate) fn choice(self) -> BackendChoice {
        match self {
            WalBackend::Auto => BackendChoice::Auto,
            WalBackend::Uring => BackendChoice::Uring,
            WalBackend::Sync => BackendChoice::Sync,
        }
    }
}

/// Validated settings of the wal workload.
#[derive(Debug, Clone)]
pub(crate) struct WalConfig {
    /// The backends to run each thread count on, in order.
    pub(crate) backends: Vec<WalBackend>,
    /// Where the temporary directory goes; `None` for the current directory.
    pub(crate) dir: Option<PathBuf>,
}

/// Validated settings of `--during`.
#[derive(Debug, Clone)]
pub(crate) struct DuringConfig {
    /// The phases, quiet first (if asked for), each once, the others in the order given.
    pub(crate) phases: Vec<Phase>,
    /// How long each measured window lasts (`--seconds`).
    pub(crate) window: Duration,
}

/// Validated settings of one `inmem bench` invocation.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The engine workloads, in order (wal is not among them).
    pub(crate) workloads: Vec<Workload>,
    /// The wal workload, if asked for.
    pub(crate) wal: Option<WalConfig>,
    pub(crate) keys: u64,
    pub(crate) layout: KeyLayout,
    pub(crate) value_size: usize,
    pub(crate) threads: Vec<usize>,
    pub(crate) seed: u64,
    pub(crate) ops: Option<u64>,
    pub(crate) json: bool,
    pub(crate) baseline: Option<BaselineKind>,
    /// Each engine session's durability, in order; `None`: in memory.
    pub(crate) durabilities: Vec<Option<DurabilityArg>>,
    /// Where databases with a durability are made (in a temporary directory each).
    pub(crate) disk_dir: PathBuf,
    /// Whether the recover workload was asked for.
    pub(crate) recover: bool,
    /// Whether the primitives workload was asked for.
    pub(crate) primitives: bool,
    /// Whether the hot-run workload was asked for.
    pub(crate) hot_run: bool,
    /// `--during`: the maintenance phases to measure commit and get in (then `workloads`
    /// holds those two, or the one of them asked for, and nothing else runs).
    pub(crate) during: Option<DuringConfig>,
}

impl Config {
    /// Checks the flags against each other and against the engine's limits.
    ///
    /// # Errors
    /// A [`BenchError`] naming the first flag that cannot be used.
    pub(crate) fn from_args(args: &BenchArgs) -> Result<Config, BenchError> {
        if args.keys == 0 || args.keys > KEYS_MAX {
            return Err(BenchError::KeysOutOfRange { keys: args.keys, max: KEYS_MAX });
        }
        let limits = inmem::Limits::default();
        if args.value_size > limits.value_bytes_max {
            return Err(BenchError::ValueSizeTooLarge {
                value_size: args.value_size,
                max: limits.value_bytes_max,
            });
        }
        let layout = KeyLayout::new(args.key_size, args.keys, limits.key_bytes_max)?;
        if args.threads.is_empty() {
            return Err(BenchError::ThreadsOutOfRange { threads: 0, max: THREADS_MAX });
        }
        if let Some(&threads) = args.threads.iter().find(|&&t| t == 0 || t > THREADS_MAX) {
            return Err(BenchError::ThreadsOutOfRange { threads, max: THREADS_MAX });
        }
        if args.ops == Some(0) {
            return Err(BenchError::ZeroOps);
        }
        if args.workloads.is_empty() {
            return Err(BenchError::NoWorkload);
        }
        let during = during_config(args)?;
        let workloads: Vec<Workload> = match during {
            Some(_) => during_workloads(&args.workloads)?,
            None => args.workloads.iter().copied().filter(|&w| !w.is_apart()).collect(),
        };
        let primitives = args.workloads.contains(&Workload::Primitives);
        let hot_run = args.workloads.contains(&Workload::HotRun);
        let wal = wal_config(args, !workloads.is_empty(), primitives || hot_run)?;
        Ok(Config {
            workloads,
            wal,
            keys: args.keys,
            layout,
            value_size: args.value_size,
            threads: args.threads.clone(),
            seed: args.seed,
            ops: args.ops,
            json: args.json,
            baseline: args.baseline,
            durabilities: if args.durabilities.is_empty() {
                vec![None]
            } else {
                args.durabilities.iter().copied().map(Some).collect()
            },
            disk_dir: args.dir.clone().unwrap_or_else(|| PathBuf::from(".")),
            recover: args.workloads.contains(&Workload::Recover),
            primitives,
            hot_run,
            during,
        })
    }

    /// How many operations a measured run of `workload` performs.
    pub(crate) fn ops_for(&self, workload: Workload) -> u64 {
        match (workload, self.ops) {
            (Workload::Fill, _) => self.keys,
            (_, Some(ops)) => ops,
            (Workload::Scan, None) => (self.keys / KEYS_PER_DEFAULT_SCAN).max(1),
            (
                Workload::Get
                | Workload::Commit
                | Workload::Mixed
                | Workload::Txn
                | Workload::Primitives,
                None,
            ) => self.keys,
            (Workload::Wal, None) => WAL_OPS_DEFAULT,
            (Workload::HotRun, None) => HOT_RUN_OPS_DEFAULT,
            (Workload::Recover, _) => self.keys,
        }
    }
}

/// The wal workload's settings if `--workload wal` was given; refuses its flags without it,
/// and a baseline that has nothing to compare with.
fn wal_config(
    args: &BenchArgs,
    engine_workloads: bool,
    primitive_workloads: bool,
) -> Result<Option<WalConfig>, BenchError> {
    let wal = args.workloads.contains(&Workload::Wal);
    let misplaced = match args.baseline {
        Some(BaselineKind::Fsync) if !wal => Some(("--baseline fsync", "--workload wal")),
        Some(BaselineKind::Skipmap) if !engine_workloads => Some((
            "--baseline skipmap",
            "an engine workload (fill, get, commit, mixed, scan or txn)",
        )),
        _ if !wal && !args.backends.is_empty() => Some(("--backend", "--workload wal")),
        _ if !wal
            && args.dir.is_some()
            && args.durabilities.is_empty()
            && !args.workloads.contains(&Workload::Recover)
            && !args.during.contains(&Phase::Checkpoint) =>
        {
            Some(("--dir", "--workload wal or recover, --durability, or --during checkpoint"))
        }
        _ if !engine_workloads && !primitive_workloads && !args.durabilities.is_empty() => Some((
            "--durability",
            "an engine workload (fill, get, commit, mixed, scan or txn), primitives or hot-run",
        )),
        _ => None,
    };
    if let Some((flag, needs)) = misplaced {
        return Err(BenchError::FlagNeedsWorkload { flag, needs });
    }
    if !wal {
        return Ok(None);
    }
    let mut backends = args.backends.clone();
    if backends.is_empty() {
        backends.push(WalBackend::Auto);
    }
    Ok(Some(WalConfig { backends, dir: args.dir.clone() }))
}

/// The `--during` settings if it was given; refuses `--seconds` without it, and the flags
/// that have no meaning with it.
fn during_config(args: &BenchArgs) -> Result<Option<DuringConfig>, BenchError> {
    if args.during.is_empty() {
        return match args.seconds {
            Some(_) => Err(BenchError::FlagNeedsWorkload { flag: "--seconds", needs: "--during" }),
            None => Ok(None),
        };
    }
    if args.ops.is_some() {
        return Err(BenchError::NotWithDuring { flag: "--ops" });
    }
    if args.baseline.is_some() {
        return Err(BenchError::NotWithDuring { flag: "--baseline" });
    }
    let seconds = args.seconds.unwrap_or(DURING_SECONDS_DEFAULT);
    if seconds == 0 {
        return Err(BenchError::ZeroSeconds);
    }
    let mut phases = Vec::with_capacity(args.during.len());
    if args.during.contains(&Phase::Quiet) {
        phases.push(Phase::Quiet);
    }
    for &phase in &args.during {
        if !phases.contains(&phase) {
            phases.push(phase);
        }
    }
    Ok(Some(DuringConfig { phases, window: Duration::from_secs(seconds) }))
}

/// The workloads `--during` measures: commit and get when `--workload` was left at its
/// default, else those asked for, each once, in order; anything else is refused.
fn during_workloads(asked: &[Workload]) -> Result<Vec<Workload>, BenchError> {
    if asked == Workload::ALL {
        return Ok(vec![Workload::Commit, Workload::Get]);
    }
    let mut workloads = Vec::with_capacity(2);
    for &workload in asked {
        if !matches!(workload, Workload::Commit | Workload::Get) {
            return Err(BenchError::DuringWorkload { workload: workload.name() });
        }
        if !workloads.contains(&workload) {
            workloads.push(workload);
        }
    }
    Ok(workloads)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn config(flags: &[&str]) -> Result<Config, BenchError> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied()))
            .map_err(|error| BenchError::Output(std::io::Error::other(error.to_string())))?;
        Config::from_args(&cli.bench)
    }

    #[test]
    fn defaults_run_every_workload_on_a_million_keys() {
        let config = config(&[]).unwrap();
        assert_eq!(config.workloads, Workload::ALL);
        assert_eq!(config.keys, KEYS_DEFAULT);
        assert_eq!(config.threads, [1]);
        assert_eq!(config.ops_for(Workload::Fill), KEYS_DEFAULT);
        assert_eq!(config.ops_for(Workload::Get), KEYS_DEFAULT);
        assert_eq!(config.ops_for(Workload::Scan), KEYS_DEFAULT / 10);
    }

    #[test]
    fn workloads_and_threads_take_lists_and_repeats() {
        let config =
            config(&["--workload", "get,scan", "--workload", "txn", "--threads", "1,2"]).unwrap();
        assert_eq!(config.workloads, [Workload::Get, Workload::Scan, Workload::Txn]);
        assert_eq!(config.threads, [1, 2]);
    }

    #[test]
    fn ops_override_every_workload_but_fill() {
        let config = config(&["--ops", "7", "--keys", "500"]).unwrap();
        assert_eq!(config.ops_for(Workload::Scan), 7);
        assert_eq!(config.ops_for(Workload::Txn), 7);
        assert_eq!(config.ops_for(Workload::Fill), 500);
    }

    #[test]
    fn unusable_flags_are_refused_with_the_flag_named() {
        assert!(matches!(config(&["--keys", "0"]), Err(BenchError::KeysOutOfRange { .. })));
        assert!(matches!(config(&["--threads", "1,0"]), Err(BenchError::ThreadsOutOfRange { .. })));
        assert!(matches!(config(&["--ops", "0"]), Err(BenchError::ZeroOps)));
        assert!(matches!(
            config(&["--value-size", "999999999"]),
            Err(BenchError::ValueSizeTooLarge { .. })
        ));
        assert!(matches!(
            config(&["--key-size", "2", "--keys", "25601"]),
            Err(BenchError::KeySizeTooSmall { .. })
        ));
    }

    #[test]
    fn wal_runs_only_when_asked_for_and_apart_from_the_engine_workloads() {
        assert!(config(&[]).unwrap().wal.is_none());
        let both = config(&["--workload", "get,wal", "--backend", "uring,sync"]).unwrap();
        assert_eq!(both.workloads, [Workload::Get]);
        let wal = both.wal.as_ref().unwrap();
        assert_eq!(wal.backends, [WalBackend::Uring, WalBackend::Sync]);
        assert_eq!(both.ops_for(Workload::Wal), WAL_OPS_DEFAULT);
        let only_wal = config(&["--workload", "wal", "--ops", "9"]).unwrap();
        assert!(only_wal.workloads.is_empty());
        assert_eq!(only_wal.wal.as_ref().unwrap().backends, [WalBackend::Auto]);
        assert_eq!(only_wal.ops_for(Workload::Wal), 9);
    }

    #[test]
    fn wal_flags_and_baselines_need_a_workload_they_apply_to() {
        for flags in [
            &["--baseline", "fsync"][..],
            &["--backend", "sync"],
            &["--dir", "."],
            &["--workload", "wal", "--baseline", "skipmap"],
        ] {
            assert!(
                matches!(config(flags), Err(BenchError::FlagNeedsWorkload { .. })),
                "{flags:?}"
            );
        }
        assert!(config(&["--workload", "wal", "--baseline", "fsync"]).is_ok());
    }

    #[test]
    fn during_measures_commit_and_get_for_a_window_with_quiet_first() {
        assert!(config(&[]).unwrap().during.is_none());
        let config = config(&["--during", "gc,quiet,gc", "--seconds", "2"]).unwrap();
        let during = config.during.as_ref().unwrap();
        assert_eq!(during.phases, [Phase::Quiet, Phase::Gc]);
        assert_eq!(during.window, Duration::from_secs(2));
        assert_eq!(config.workloads, [Workload::Commit, Workload::Get]);
        let get_only = super::tests::config(&["--during", "reap", "--workload", "get"]).unwrap();
        assert_eq!(get_only.workloads, [Workload::Get]);
        assert_eq!(
            get_only.during.as_ref().map(|during| during.window),
            Some(Duration::from_secs(DURING_SECONDS_DEFAULT))
        );
        let dir = super::tests::config(&["--during", "checkpoint", "--dir", "."]).unwrap();
        assert_eq!(dir.disk_dir, PathBuf::from("."));
    }

    #[test]
    fn during_refuses_what_it_cannot_measure() {
        for (flags, refused) in [
            (&["--seconds", "2"][..], "needs --during"),
            (&["--during", "gc", "--ops", "5"], "--ops"),
            (&["--during", "gc", "--baseline", "skipmap"], "--baseline"),
            (&["--during", "gc", "--seconds", "0"], "zero seconds"),
            (&["--during", "gc", "--workload", "get,scan"], "scan"),
            (&["--during", "gc", "--workload", "wal"], "wal"),
        ] {
            let refusal = config(flags);
            let expected = match refused {
                "needs --during" => {
                    matches!(refusal, Err(BenchError::FlagNeedsWorkload { flag: "--seconds", .. }))
                }
                "zero seconds" => matches!(refusal, Err(BenchError::ZeroSeconds)),
                "--ops" | "--baseline" => {
                    matches!(refusal, Err(BenchError::NotWithDuring { flag }) if flag == refused)
                }
                _ => matches!(
                    refusal,
                    Err(BenchError::DuringWorkload { workload }) if workload == refused
                ),
            };
            assert!(expected, "{flags:?}: {refusal:?}");
        }
    }
}
