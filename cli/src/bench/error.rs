//! Everything that stops `inmem bench`, as one enum the command prints and exits on.

use std::fmt;
use std::path::PathBuf;

/// Why `inmem bench` stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// `--keys` is zero or above the supported maximum.
    KeysOutOfRange {
        /// What was asked for.
        keys: u64,
        /// The largest key count supported.
        max: u64,
    },
    /// `--key-size` cannot number `keys` keys in 100-key groups.
    KeySizeTooSmall {
        /// What was asked for.
        key_size: usize,
        /// The key count.
        keys: u64,
        /// The smallest key size that works for this key count.
        key_size_min: usize,
    },
    /// `--key-size` is above the engine's key limit.
    KeySizeTooLarge {
        /// What was asked for.
        key_size: usize,
        /// The engine's limit.
        max: usize,
    },
    /// `--value-size` is above the engine's value limit.
    ValueSizeTooLarge {
        /// What was asked for.
        value_size: usize,
        /// The engine's limit.
        max: usize,
    },
    /// A `--threads` entry is zero or above the supported maximum.
    ThreadsOutOfRange {
        /// The offending entry.
        threads: usize,
        /// The largest thread count supported.
        max: usize,
    },
    /// `--ops 0`.
    ZeroOps,
    /// No workload to run.
    NoWorkload,
    /// A flag that only applies to workloads that are not being run.
    FlagNeedsWorkload {
        /// The flag, as given.
        flag: &'static str,
        /// What it needs to be run.
        needs: &'static str,
    },
    /// A flag that has no meaning with `--during` (whose runs last `--seconds` each).
    NotWithDuring {
        /// The flag, as given.
        flag: &'static str,
    },
    /// `--during` with a workload other than commit and get.
    DuringWorkload {
        /// The workload's name.
        workload: &'static str,
    },
    /// `--seconds 0`.
    ZeroSeconds,
    /// The temporary directory of the wal workload cannot be made (or removed).
    BenchDir {
        /// Where it was to be made.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The write-ahead log returned an error.
    Wal {
        /// What the benchmark asked of it.
        doing: &'static str,
        /// The backend asked for (`auto`, `uring` or `sync`).
        backend: &'static str,
        /// The log's error.
        source: inmem::wal::Error,
    },
    /// A write or fdatasync of the raw fsync baseline failed.
    FsyncBaseline {
        /// The file written.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An allocation the benchmark needs failed.
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
    },
    /// The engine returned an error.
    Engine {
        /// The engine under test.
        engine: &'static str,
        /// The workload that was running.
        workload: &'static str,
        /// The engine's error.
        source: inmem::Error,
    },
    /// A primitive returned an error (the primitives workload).
    Primitive {
        /// The operation that was running (`kv_get`, `cross_txn`, ...).
        op: &'static str,
        /// The primitive's error.
        source: inmem::primitives::Error,
    },
    /// Reads of keys that must exist found nothing, a scan found the wrong number of keys,
    /// an event append or a cas returned another sequence or version than the one that must
    /// come next: the store lost or invented data.
    WrongResults {
        /// The engine under test.
        engine: &'static str,
        /// The workload that was running.
        workload: &'static str,
        /// How many operations saw a wrong result.
        wrong_ops: u64,
    },
    /// A worker thread could not be started.
    Spawn(std::io::Error),
    /// A worker thread panicked.
    WorkerPanicked {
        /// The workload that was running.
        workload: &'static str,
    },
    /// Latency histograms could not be created or merged.
    Histogram(String),
    /// Writing the report failed.
    Output(std::io::Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::KeysOutOfRange { keys, max } => {
                write!(f, "--keys {keys} is out of range: give 1 to {max}")
            }
            BenchError::KeySizeTooSmall { key_size, keys, key_size_min } => write!(
                f,
                "--key-size {key_size} is too small for {keys} keys: they need at least \
                 {key_size_min} bytes (key-size - 1 bytes number the 100-key groups, one byte \
                 the key within its group)"
            ),
            BenchError::KeySizeTooLarge { key_size, max } => {
                write!(f, "--key-size {key_size} is above the engine's key limit of {max} bytes")
            }
            BenchError::ValueSizeTooLarge { value_size, max } => write!(
                f,
                "--value-size {value_size} is above the engine's value limit of {max} bytes"
            ),
            BenchError::ThreadsOutOfRange { threads, max } => {
                write!(f, "--threads {threads} is out of range: give 1 to {max}")
            }
            BenchError::ZeroOps => f.write_str("--ops must be at least 1"),
            BenchError::NoWorkload => f.write_str("no workload given"),
            BenchError::FlagNeedsWorkload { flag, needs } => {
                write!(f, "{flag} applies only with {needs}")
            }
            BenchError::NotWithDuring { flag } => {
                write!(f, "{flag} does not apply with --during (its runs last --seconds each)")
            }
            BenchError::DuringWorkload { workload } => {
                write!(f, "--during measures the commit and get workloads only, not {workload}")
            }
            BenchError::ZeroSeconds => f.write_str("--seconds must be at least 1"),
            BenchError::BenchDir { path, source } => write!(
                f,
                "cannot use {} for the wal benchmark's files (--dir): {source}",
                path.display()
            ),
            BenchError::Wal { doing, backend, source } => {
                write!(f, "the log (--backend {backend}) failed to {doing}: {source}")
            }
            BenchError::FsyncBaseline { path, source } => {
                write!(f, "fsync baseline: writing {} failed: {source}", path.display())
            }
            BenchError::OutOfMemory { what } => write!(f, "out of memory allocating the {what}"),
            BenchError::Engine { engine, workload, source } => {
                write!(f, "{engine} failed during {workload}: {source}")
            }
            BenchError::Primitive { op, source } => {
                write!(f, "inmem's primitives failed during {op}: {source}")
            }
            BenchError::WrongResults { engine, workload, wrong_ops } => write!(
                f,
                "{engine} returned wrong results during {workload}: {wrong_ops} operations \
                 missed keys that were loaded (or a scan found the wrong number of keys, an \
                 event append a sequence out of order, a cas another version than the next)"
            ),
            BenchError::Spawn(error) => write!(f, "cannot start a worker thread: {error}"),
            BenchError::WorkerPanicked { workload } => {
                write!(f, "a worker thread panicked during {workload}")
            }
            BenchError::Histogram(reason) => write!(f, "latency histogram: {reason}"),
            BenchError::Output(error) => write!(f, "cannot write the report: {error}"),
        }
    }
}

impl BenchError {
    /// Whether the report's reader went away (`inmem bench | head`): a reason to stop, not a
    /// failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, BenchError::Output(error) if error.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Engine { source, .. } => Some(source),
            BenchError::Primitive { source, .. } => Some(source),
            BenchError::Wal { source, .. } => Some(source),
            BenchError::Spawn(error)
            | BenchError::Output(error)
            | BenchError::BenchDir { source: error, .. }
            | BenchError::FsyncBaseline { source: error, .. } => Some(error),
            _ => None,
        }
    }
}
