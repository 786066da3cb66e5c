//! The recover workload: how fast [`Database::open`] brings back a database of `--keys`
//! keys, from a checkpoint (`mode` `checkpoint`) and from the log alone (`mode` `log`).
//!
//! Each mode fills a fresh database in a temporary directory under `--dir` (`Buffered`, so
//! that the fill is quick; unmeasured), checkpoints it (checkpoint mode only), closes it,
//! and times one open. The row's ops are the keys recovered, ops/s records per second,
//! `mb_per_sec` the checkpoint's or the log's bytes per second, and `first_get_ns` the time
//! from calling open until a `get` of a recovered key returned its value.

use std::time::{Duration, Instant};

use inmem::{Database, Durability, Options};

use super::args::{Config, Workload};
use super::dataset::ValuePool;
use super::error::BenchError;
use super::report::{Report, RunRecord};
use super::rss::PeakRss;
use super::runner::{Latency, Measured, Tally};

/// What a recovery reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Checkpoint,
    Log,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Checkpoint => "checkpoint",
            Source::Log => "log",
        }
    }
}

/// Runs both modes, writing a row for each.
///
/// # Errors
/// A [`BenchError`] if the database fails, recovers the wrong number of keys, or the
/// report cannot be written.
pub(crate) fn run<W: std::io::Write>(
    config: &Config,
    report: &mut Report<W>,
) -> Result<(), BenchError> {
    for source in [Source::Checkpoint, Source::Log] {
        let record = measure(config, source)?;
        report.write(record).map_err(BenchError::Output)?;
    }
    Ok(())
}

fn measure(config: &Config, source: Source) -> Result<RunRecord, BenchError> {
    let failed = |workload: &'static str| {
        move |source| BenchError::Engine { engine: "inmem", workload, source }
    };
    let dir = tempfile::Builder::new()
        .prefix("inmem-bench-recover-")
        .tempdir_in(&config.disk_dir)
        .map_err(|source| BenchError::BenchDir { path: config.disk_dir.clone(), source })?;
    let options = Options::default()
        .durability(Durability::Buffered { interval: Duration::from_millis(10) })
        .checkpoint_log_bytes(0)
        // The setup's checkpoint is not measured: written as fast as the disk takes it.
        .checkpoint_write_rate(0);
    let db = Database::open(dir.path(), options.clone()).map_err(failed("recover setup"))?;
    let values = ValuePool::new(config.value_size, config.seed);
    let mut key = vec![0u8; config.layout.key_size()];
    for index in 0..config.keys {
        config.layout.write_key(index, &mut key);
        db.put(&key, values.value(index)).map_err(failed("recover setup"))?;
    }
    if source == Source::Checkpoint {
        db.checkpoint().map_err(failed("recover setup"))?;
    }
    db.close().map_err(failed("recover setup"))?;
    let inspection = inmem::engine::inspect(dir.path()).map_err(failed("recover setup"))?;
    let bytes = match source {
        Source::Checkpoint => {
            inspection.checkpoints.first().and_then(|c| c.as_ref().ok()).map(|c| c.bytes)
        }
        Source::Log => inspection
            .prediction(inmem::RecoveryMode::TolerateTornTail)
            .as_ref()
            .ok()
            .map(|recovery| recovery.log.end.get() - recovery.log.first.get()),
    }
    .unwrap_or(0);

    let peak = PeakRss::start();
    let mut latency = Latency::new()?;
    let started = Instant::now();
    let db = latency.time(|| Database::open(dir.path(), options)).map_err(failed("recover"))?;
    let elapsed = started.elapsed();
    // A key recovered from the middle of the key space: the time to first get runs from
    // the call to open until its value is back.
    config.layout.write_key(config.keys / 2, &mut key);
    let found = db.get(&key).map_err(failed("recover"))?;
    let first_get = started.elapsed();
    let rss = peak.finish();
    if found.as_deref() != Some(values.value(config.keys / 2)) {
        return Err(BenchError::WrongResults {
            engine: "inmem",
            workload: "recover",
            wrong_ops: 1,
        });
    }
    let recovered = db.stats().keys;
    drop(db);
    if recovered != config.keys {
        return Err(BenchError::WrongResults {
            engine: "inmem",
            workload: "recover",
            wrong_ops: config.keys.abs_diff(recovered),
        });
    }
    let measured = Measured { elapsed, latency, tally: Tally::default() };
    let mut record = RunRecord::new(config, "inmem", Workload::Recover, 1, &measured, rss);
    record.mode = Some(source.name());
    record.recovered_bytes = Some(bytes);
    record.mb_per_sec = Some(bytes as f64 / 1e6 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE));
    record.first_get_ns = Some(u64::try_from(first_get.as_nanos()).unwrap_or(u64::MAX));
    Ok(record)
}
