//! What a run reports, and how: a [`RunRecord`] per workload run, written as a table row or
//! as one JSON object per line, as soon as the run ends.
//!
//! [`RunRecord`] is the JSON schema. Fields every line has come first; fields that only
//! some workloads or modes have are `Option`s left out of the line when `None`, so later
//! workloads can add theirs without changing existing lines. The wal workload and the raw
//! fsync baseline leave out the key and value fields (they have no keys) and add theirs.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::{Config, Workload, WAL_RECORD_BYTES};
use super::error::BenchError;
use super::rss::{PeakRssReport, RssScope};
use super::runner::Measured;

/// One workload run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The workload's name.
    pub workload: &'static str,
    /// The store: `inmem` or the baseline's name.
    pub engine: &'static str,
    /// Worker threads.
    pub threads: usize,
    /// Operations measured.
    pub ops: u64,
    /// Wall time from the start barrier's release to the end of the last worker.
    pub seconds: f64,
    /// `ops / seconds`.
    pub ops_per_sec: f64,
    /// Median latency of one operation.
    pub p50_ns: u64,
    /// 99th percentile latency.
    pub p99_ns: u64,
    /// 99.9th percentile latency.
    pub p999_ns: u64,
    /// Longest latency.
    pub max_ns: u64,
    /// Peak resident memory; `null` when unknown.
    pub peak_rss_bytes: Option<u64>,
    /// What `peak_rss_bytes` covers.
    pub peak_rss_scope: RssScope,
    /// Resident memory when the run began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_start_bytes: Option<u64>,
    /// Keys loaded (not for wal and fsync lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// Bytes per key (not for wal and fsync lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_size: Option<usize>,
    /// Bytes per value (not for wal and fsync lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_size: Option<usize>,
    /// The benchmark's seed.
    pub seed: u64,
    /// txn: commits that failed with a conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    /// txn: re-runs after a conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    /// txn: transactions given up once retries ran out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborts: Option<u64>,
    /// Operations whose reads missed a loaded key because a concurrent overwrite hid it
    /// (only stores that allow it, the skiplist baseline; never zero when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed_reads: Option<u64>,
    /// The baseline the ratio is against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<&'static str>,
    /// This run's ops/s divided by the baseline's in the same workload and thread count
    /// (for wal: commits/s divided by `baseline_batch` x the raw fsyncs/s of that batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_vs_baseline: Option<f64>,
    /// wal with --baseline fsync: the raw batch (1 or 32) the ratio is against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_batch: Option<u64>,
    /// wal with --baseline fsync: the raw fsyncs/s of `baseline_batch` measured in slices
    /// interleaved with this run's (the ratio is commits/s over `baseline_batch` x this).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_fsyncs_per_sec: Option<f64>,
    /// wal: payload bytes per record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_bytes: Option<usize>,
    /// fsync: how the raw file was prepared and written: `overwrite` (the batch-1 and
    /// batch-32 rows), or one of the append modes (`append-fallocate`, `append-zeroed`,
    /// `append-dsync`, `append-direct`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// fsync: 4 KiB blocks written together in each durable write (before each fdatasync,
    /// or in one pwrite under O_DSYNC); 1 in every append mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// wal: commits made durable per second (= `ops_per_sec`); fsync: the commits per second
    /// this raw batch would allow (`batch` x `fsyncs_per_sec`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits_per_sec: Option<f64>,
    /// wal: fdatasyncs per second; fsync: durable writes per second (each with its
    /// fdatasync, or each an O_DSYNC pwrite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsyncs_per_sec: Option<f64>,
    /// wal: commits per fdatasync, as group commit batched them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits_per_fsync: Option<f64>,
    /// wal: the log's I/O backend (`io_uring` or `sync`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Engine runs with `--durability`: the database's (`none`, `buffered` or `sync`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<&'static str>,
    /// recover: the bytes the open read (the checkpoint's, or the log's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_bytes: Option<u64>,
    /// recover: those bytes per second, in MB (10^6 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_sec: Option<f64>,
    /// recover: nanoseconds from calling `Database::open` until a `get` of a recovered key
    /// returned its value (time to first get; open is synchronous, so the open's time and
    /// one get).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_get_ns: Option<u64>,
    /// primitives: the operation (`kv_get`, `kv_put`, `event_append`, `state_cas`,
    /// `trace_record` or `cross_txn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<&'static str>,
    /// primitives: the engine workload this operation is compared with (`get` for
    /// `kv_get`, `txn` for `cross_txn`), when it ran in the same invocation with the same
    /// durability and thread count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_workload: Option<&'static str>,
    /// primitives: this run's ops/s over that engine run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_vs_engine: Option<f64>,
    /// `--during`: the phase and what was measured in it (its fields are in the line
    /// itself, not in an object of their own).
    #[serde(flatten)]
    pub during: Option<DuringFigures>,
}

/// What a `--during` run adds to its record: the maintenance phase, the operations over
/// 20 ms, the comparison with the quiet phase, what the driver did and the setup's shape.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DuringFigures {
    /// The phase: `quiet`, `checkpoint`, `gc` or `reap`.
    pub phase: &'static str,
    /// Operations that took longer than 20 ms (to the histogram's 3 significant digits).
    pub over_20ms: u64,
    /// This run's p99.9 over that of the quiet run of the same workload, durability and
    /// thread count (phases other than quiet, when quiet ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_vs_quiet: Option<f64>,
    /// This run's longest operation over the quiet run's, as `p999_vs_quiet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_vs_quiet: Option<f64>,
    /// Calls the driver made in the window (gc passes, checkpoints, reap calls); not for
    /// quiet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_calls: Option<u64>,
    /// From the window's start to the end of the driver's last call, which may run past
    /// the window (the driver is stopped between calls); not for quiet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_seconds: Option<f64>,
    /// gc: versions the driver's passes reclaimed (the sum of their
    /// `GcReport::versions_pruned`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions_reclaimed: Option<u64>,
    /// checkpoint: bytes of the checkpoints the driver wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<u64>,
    /// reap: expired keys the driver's calls replaced by tombstones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_reaped: Option<u64>,
    /// gc: superseded versions in the database when the window started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_versions: Option<u64>,
    /// reap: keys whose value had expired, unreaped, when the window started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_keys: Option<u64>,
    /// The durability asked for (`memory` or `none`) when the run used another: a
    /// checkpoint needs a log, so that phase, and the quiet run it is compared with, ran
    /// on `buffered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked_durability: Option<&'static str>,
}

/// The service targets `--during` reports against: a p99.9 at most this many times the
/// quiet phase's...
pub(crate) const TARGET_P999_VS_QUIET: f64 = 2.0;
/// ...and no operation longer than this, in nanoseconds.
pub(crate) const TARGET_MAX_NS: u64 = 20_000_000;

/// What the log counted during one wal run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalCounts {
    /// Records appended.
    pub(crate) appends: u64,
    /// fdatasyncs of log data.
    pub(crate) fsyncs: u64,
}

/// One raw fsync baseline run: `fsyncs` writes of `batch` blocks, each made durable (by an
/// fdatasync, or by O_DSYNC), timed one by one.
pub(crate) struct FsyncRun {
    /// How the file was prepared and written (the record's `mode`).
    pub(crate) mode: &'static str,
    /// Blocks per write.
    pub(crate) batch: u64,
    /// Writes, each made durable.
    pub(crate) fsyncs: u64,
    /// Wall time of the whole run.
    pub(crate) elapsed: Duration,
    /// Each write (+ fdatasync), in nanoseconds.
    pub(crate) latency: Histogram<u64>,
}

impl FsyncRun {
    /// Adds `other`, a later run of the same mode and batch, to this one.
    ///
    /// # Errors
    /// [`BenchError::Histogram`] if the latencies cannot be merged.
    pub(crate) fn absorb(&mut self, other: &FsyncRun) -> Result<(), BenchError> {
        debug_assert_eq!((self.mode, self.batch), (other.mode, other.batch));
        self.fsyncs += other.fsyncs;
        self.elapsed += other.elapsed;
        self.latency.add(&other.latency).map_err(|e| BenchError::Histogram(format!("{e:?}")))
    }
}

impl RunRecord {
    /// The record of a finished run.
    pub(crate) fn new(
        config: &Config,
        engine: &'static str,
        workload: Workload,
        threads: usize,
        measured: &Measured,
        rss: PeakRssReport,
    ) -> RunRecord {
        let ops = config.ops_for(workload);
        let seconds = measured.elapsed.as_secs_f64();
        let latency = &measured.latency;
        let txn = (workload == Workload::Txn).then_some(measured.tally);
        RunRecord {
            workload: workload.name(),
            engine,
            threads,
            ops,
            seconds,
            ops_per_sec: per_second(ops, seconds),
            p50_ns: latency.quantile_ns(0.5),
            p99_ns: latency.quantile_ns(0.99),
            p999_ns: latency.quantile_ns(0.999),
            max_ns: latency.max_ns(),
            peak_rss_bytes: rss.peak_bytes,
            peak_rss_scope: rss.scope,
            rss_start_bytes: rss.start_bytes,
            keys: Some(config.keys),
            key_size: Some(config.layout.key_size()),
            value_size: Some(config.value_size),
            seed: config.seed,
            conflicts: txn.map(|tally| tally.conflicts),
            retries: txn.map(|tally| tally.retries),
            aborts: txn.map(|tally| tally.aborts),
            missed_reads: (measured.tally.wrong_ops > 0).then_some(measured.tally.wrong_ops),
            baseline: None,
            ratio_vs_baseline: None,
            baseline_batch: None,
            baseline_fsyncs_per_sec: None,
            record_bytes: None,
            mode: None,
            batch: None,
            commits_per_sec: None,
            fsyncs_per_sec: None,
            commits_per_fsync: None,
            backend: None,
            durability: None,
            recovered_bytes: None,
            mb_per_sec: None,
            first_get_ns: None,
            op: None,
            engine_workload: None,
            ratio_vs_engine: None,
            during: None,
        }
    }

    /// The record of a finished wal run on `backend`, during which the log counted `counts`.
    pub(crate) fn wal(
        config: &Config,
        threads: usize,
        measured: &Measured,
        rss: PeakRssReport,
        backend: String,
        counts: WalCounts,
    ) -> RunRecord {
        let mut record = RunRecord::new(config, "inmem", Workload::Wal, threads, measured, rss);
        debug_assert_eq!(counts.appends, record.ops, "every commit is one append");
        record.keys = None;
        record.key_size = None;
        record.value_size = None;
        record.record_bytes = Some(WAL_RECORD_BYTES);
        record.commits_per_sec = Some(record.ops_per_sec);
        record.fsyncs_per_sec = Some(per_second(counts.fsyncs, record.seconds));
        record.commits_per_fsync =
            (counts.fsyncs > 0).then(|| counts.appends as f64 / counts.fsyncs as f64);
        record.backend = Some(backend);
        record
    }

    /// The record of a raw fsync baseline run.
    pub(crate) fn fsync(config: &Config, run: &FsyncRun, rss: PeakRssReport) -> RunRecord {
        let seconds = run.elapsed.as_secs_f64();
        let fsyncs_per_sec = per_second(run.fsyncs, seconds);
        RunRecord {
            workload: "fsync",
            engine: "raw",
            threads: 1,
            ops: run.fsyncs,
            seconds,
            ops_per_sec: fsyncs_per_sec,
            p50_ns: run.latency.value_at_quantile(0.5),
            p99_ns: run.latency.value_at_quantile(0.99),
            p999_ns: run.latency.value_at_quantile(0.999),
            max_ns: run.latency.max(),
            peak_rss_bytes: rss.peak_bytes,
            peak_rss_scope: rss.scope,
            rss_start_bytes: rss.start_bytes,
            keys: None,
            key_size: None,
            value_size: None,
            seed: config.seed,
            conflicts: None,
            retries: None,
            aborts: None,
            missed_reads: None,
            baseline: None,
            ratio_vs_baseline: None,
            baseline_batch: None,
            baseline_fsyncs_per_sec: None,
            record_bytes: None,
            mode: Some(run.mode),
            batch: Some(run.batch),
            commits_per_sec: Some(run.batch as f64 * fsyncs_per_sec),
            fsyncs_per_sec: Some(fsyncs_per_sec),
            commits_per_fsync: None,
            backend: None,
            durability: None,
            recovered_bytes: None,
            mb_per_sec: None,
            first_get_ns: None,
            op: None,
            engine_workload: None,
            ratio_vs_engine: None,
            during: None,
        }
    }

    /// Adds the ratio of this wal run's commits/s to the commits/s `raw`, overwrites of
    /// `raw.batch` blocks measured interleaved with it, would allow.
    pub(crate) fn compare_with_interleaved_fsync(&mut self, raw: &FsyncRun) {
        let fsyncs_per_sec = per_second(raw.fsyncs, raw.elapsed.as_secs_f64());
        self.baseline = Some("fsync");
        self.baseline_batch = Some(raw.batch);
        self.baseline_fsyncs_per_sec = Some(fsyncs_per_sec);
        let limit = fsyncs_per_sec * raw.batch as f64;
        if limit > 0.0 {
            self.ratio_vs_baseline = Some(self.ops_per_sec / limit);
        }
    }

    /// Adds the ratio of this run's throughput to `engine`'s, a run of the engine workload
    /// this primitive operation is compared with.
    pub(crate) fn compare_with_engine(&mut self, engine: &RunRecord) {
        self.engine_workload = Some(engine.workload);
        if engine.ops_per_sec > 0.0 {
            self.ratio_vs_engine = Some(self.ops_per_sec / engine.ops_per_sec);
        }
    }

    /// The record of a timed run: its ops are those measured, not a configured count.
    pub(crate) fn timed(
        config: &Config,
        workload: Workload,
        threads: usize,
        measured: &Measured,
        rss: PeakRssReport,
    ) -> RunRecord {
        let mut record = RunRecord::new(config, "inmem", workload, threads, measured, rss);
        record.ops = measured.latency.count();
        record.ops_per_sec = per_second(record.ops, record.seconds);
        record.missed_reads = None;
        record
    }

    /// Adds the ratios of this `--during` run's p99.9 and max to those of `quiet`, the
    /// quiet run of the same workload, durability and thread count.
    pub(crate) fn compare_with_quiet(&mut self, quiet: &RunRecord) {
        debug_assert_eq!((self.workload, self.threads), (quiet.workload, quiet.threads));
        let ratio = |this: u64, quiet: u64| (quiet > 0).then(|| this as f64 / quiet as f64);
        let (p999, max) = (ratio(self.p999_ns, quiet.p999_ns), ratio(self.max_ns, quiet.max_ns));
        if let Some(during) = &mut self.during {
            during.p999_vs_quiet = p999;
            during.max_vs_quiet = max;
        }
    }

    /// Adds the ratio of this run's throughput to `baseline`'s.
    pub(crate) fn compare_with(&mut self, baseline: &RunRecord) {
        debug_assert_eq!((self.workload, self.threads), (baseline.workload, baseline.threads));
        self.baseline = Some(baseline.engine);
        if baseline.ops_per_sec > 0.0 {
            self.ratio_vs_baseline = Some(self.ops_per_sec / baseline.ops_per_sec);
        }
    }
}

/// Where records go, and in which form.
pub(crate) struct Report<W: Write> {
    out: W,
    json: bool,
    with_ratio: bool,
    header_written: bool,
    records: Vec<RunRecord>,
}

impl<W: Write> Report<W> {
    /// A report to `out`: JSON lines if `json`, else a table, with a ratio column if
    /// `with_ratio`.
    pub(crate) fn new(out: W, json: bool, with_ratio: bool) -> Report<W> {
        Report { out, json, with_ratio, header_written: false, records: Vec::new() }
    }

    /// Writes one record.
    ///
    /// # Errors
    /// The writer's error.
    pub(crate) fn write(&mut self, record: RunRecord) -> std::io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, &record)?;
            writeln!(self.out)?;
        } else {
            // A --during invocation writes nothing but --during rows, which have columns of
            // their own (phase, max).
            let during = record.during.is_some();
            if !self.header_written {
                let header = match during {
                    true => during_header(),
                    false => table_header(self.with_ratio),
                };
                writeln!(self.out, "{header}")?;
                self.header_written = true;
            }
            let row = match during {
                true => during_row(&record),
                false => table_row(&record, self.with_ratio),
            };
            writeln!(self.out, "{row}")?;
        }
        self.out.flush()?;
        self.records.push(record);
        Ok(())
    }

    /// The records written so far, in order.
    pub(crate) fn records(&self) -> &[RunRecord] {
        &self.records
    }

    /// Ends the report: under a table, what the memory figures cover and the ratios.
    ///
    /// # Errors
    /// The writer's error.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        if self.json {
            return Ok(());
        }
        writeln!(self.out)?;
        writeln!(self.out, "{}", rss_note(&self.records))?;
        for line in ratio_summary(&self.records) {
            writeln!(self.out, "{line}")?;
        }
        if let Some(line) = targets_summary(&self.records) {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()
    }
}

/// Lays out the ten fixed columns of a table line.
fn columns(cells: [&str; 10]) -> String {
    let [workload, engine, threads, ops, seconds, ops_per_sec, p50, p99, p999, rss] = cells;
    format!(
        "{workload:<8}  {engine:<7}  {threads:>7}  {ops:>11}  {seconds:>8}  {ops_per_sec:>11}  \
         {p50:>8}  {p99:>8}  {p999:>8}  {rss:>10}"
    )
}

/// The table's header line.
fn table_header(with_ratio: bool) -> String {
    let mut line = columns([
        "workload", "engine", "threads", "ops", "seconds", "ops/s", "p50", "p99", "p99.9",
        "peak RSS",
    ]);
    if with_ratio {
        line.push_str(&format!("  {:>8}", "vs base"));
    }
    line.push_str("  notes");
    line
}

/// One record as a table line.
fn table_row(record: &RunRecord, with_ratio: bool) -> String {
    let mut line = columns([
        record.workload,
        record.engine,
        &record.threads.to_string(),
        &thousands(record.ops),
        &format!("{:.3}", record.seconds),
        &thousands(record.ops_per_sec.round() as u64),
        &nanos(record.p50_ns),
        &nanos(record.p99_ns),
        &nanos(record.p999_ns),
        &record.peak_rss_bytes.map_or_else(|| "?".to_owned(), mebibytes),
    ]);
    if with_ratio {
        let ratio =
            record.ratio_vs_baseline.map_or_else(String::new, |ratio| format!("{ratio:.2}x"));
        line.push_str(&format!("  {ratio:>8}"));
    }
    let notes = notes(record);
    if !notes.is_empty() {
        line.push_str("  ");
        line.push_str(&notes);
    }
    line.trim_end().to_owned()
}

/// Lays out the twelve fixed columns of a `--during` table line.
fn during_columns(cells: [&str; 12]) -> String {
    let [workload, phase, engine, threads, ops, seconds, ops_per_sec, p50, p99, p999, max, rss] =
        cells;
    format!(
        "{workload:<8}  {phase:<10}  {engine:<7}  {threads:>7}  {ops:>11}  {seconds:>8}  \
         {ops_per_sec:>11}  {p50:>8}  {p99:>8}  {p999:>8}  {max:>8}  {rss:>10}"
    )
}

/// The header line of a `--during` table.
fn during_header() -> String {
    let mut line = during_columns([
        "workload", "phase", "engine", "threads", "ops", "seconds", "ops/s", "p50", "p99", "p99.9",
        "max", "peak RSS",
    ]);
    line.push_str("  notes");
    line
}

/// One `--during` record as a table line.
fn during_row(record: &RunRecord) -> String {
    let mut line = during_columns([
        record.workload,
        record.during.as_ref().map_or("?", |during| during.phase),
        record.engine,
        &record.threads.to_string(),
        &thousands(record.ops),
        &format!("{:.3}", record.seconds),
        &thousands(record.ops_per_sec.round() as u64),
        &nanos(record.p50_ns),
        &nanos(record.p99_ns),
        &nanos(record.p999_ns),
        &nanos(record.max_ns),
        &record.peak_rss_bytes.map_or_else(|| "?".to_owned(), mebibytes),
    ]);
    let notes = notes(record);
    if !notes.is_empty() {
        line.push_str("  ");
        line.push_str(&notes);
    }
    line.trim_end().to_owned()
}

/// What a `--during` row says beyond the columns.
fn during_notes(during: &DuringFigures, notes: &mut Vec<String>) {
    if let Some(asked) = during.asked_durability {
        notes.push(format!("(asked={asked}: checkpoint needs a log)"));
    }
    if let (Some(p999), Some(max)) = (during.p999_vs_quiet, during.max_vs_quiet) {
        notes.push(format!("vs quiet p99.9={p999:.2}x max={max:.2}x"));
    }
    notes.push(format!("over_20ms={}", thousands(during.over_20ms)));
    if let Some(calls) = during.driver_calls {
        let calls = thousands(calls);
        notes.push(match during.phase {
            "gc" => format!("gc_passes={calls}"),
            "checkpoint" => format!("checkpoints={calls}"),
            "reap" => format!("reap_calls={calls}"),
            _ => format!("driver_calls={calls}"),
        });
    }
    if let Some(reclaimed) = during.versions_reclaimed {
        notes.push(format!("reclaimed={}", thousands(reclaimed)));
    }
    if let Some(bytes) = during.checkpoint_bytes {
        notes.push(format!("bytes={}", mebibytes(bytes).replace(' ', "")));
    }
    if let Some(reaped) = during.keys_reaped {
        notes.push(format!("reaped={}", thousands(reaped)));
    }
    if let Some(seconds) = during.driver_seconds {
        notes.push(format!("driver={seconds:.2}s"));
    }
    if let Some(superseded) = during.superseded_versions {
        notes.push(format!("superseded={}", thousands(superseded)));
    }
    if let Some(expired) = during.expired_keys {
        notes.push(format!("expired={}", thousands(expired)));
    }
}

/// One line under a `--during` table: which rows miss the service targets (a p99.9 over
/// [`TARGET_P999_VS_QUIET`] x quiet's, an operation over [`TARGET_MAX_NS`]), or that none
/// does.
fn targets_summary(records: &[RunRecord]) -> Option<String> {
    let mut rows = 0;
    let mut missed = Vec::new();
    for record in records {
        let Some(during) = &record.during else { continue };
        rows += 1;
        let mut why = Vec::new();
        if let Some(ratio) = during.p999_vs_quiet.filter(|&ratio| ratio > TARGET_P999_VS_QUIET) {
            why.push(format!("p99.9 {ratio:.2}x quiet"));
        }
        if during.over_20ms > 0 {
            why.push(format!("over_20ms={}", thousands(during.over_20ms)));
        }
        if !why.is_empty() {
            let durability = record.durability.unwrap_or("memory");
            missed.push(format!(
                "{} {} {durability} x{} ({})",
                record.workload,
                during.phase,
                record.threads,
                why.join(", ")
            ));
        }
    }
    let targets = format!(
        "targets (p99.9 <= {TARGET_P999_VS_QUIET}x quiet's, no operation over {} ms)",
        TARGET_MAX_NS / 1_000_000
    );
    match (rows, missed.is_empty()) {
        (0, _) => None,
        (_, true) => Some(format!("{targets}: met by every row")),
        (_, false) => Some(format!(
            "{targets}: missed by {} of {rows} rows: {}",
            missed.len(),
            missed.join("; ")
        )),
    }
}

/// What a row says beyond the columns.
fn notes(record: &RunRecord) -> String {
    let mut notes = Vec::new();
    if let Some(op) = record.op {
        notes.push(format!("op={op}"));
    }
    if let Some(durability) = record.durability {
        notes.push(format!("durability={durability}"));
    }
    if let Some(during) = &record.during {
        during_notes(during, &mut notes);
    }
    if let (Some(workload), Some(ratio)) = (record.engine_workload, record.ratio_vs_engine) {
        notes.push(format!("vs {workload}={ratio:.2}x"));
    }
    if let Some(mode) = record.mode {
        notes.push(format!("mode={mode}"));
    }
    if let Some(mb) = record.mb_per_sec {
        notes.push(format!("MB/s={mb:.1}"));
    }
    if let Some(ns) = record.first_get_ns {
        notes.push(format!("first_get={}", nanos(ns)));
    }
    if let Some(batch) = record.batch {
        notes.push(format!("batch={batch}"));
        if let (true, Some(commits)) = (batch > 1, record.commits_per_sec) {
            notes.push(format!("x{batch}={} commits/s", thousands(commits.round() as u64)));
        }
    }
    if let (Some(fsyncs), Some(backend)) = (record.fsyncs_per_sec, &record.backend) {
        notes.push(format!("fsyncs/s={}", thousands(fsyncs.round() as u64)));
        if let Some(per_fsync) = record.commits_per_fsync {
            notes.push(format!("commits/fsync={per_fsync:.2}"));
        }
        notes.push(format!("backend={backend}"));
        if let Some(raw) = record.baseline_fsyncs_per_sec {
            notes.push(format!("raw_fsyncs/s={}", thousands(raw.round() as u64)));
        }
    }
    if let (Some(conflicts), Some(retries), Some(aborts)) =
        (record.conflicts, record.retries, record.aborts)
    {
        notes.push(format!("conflicts={conflicts} retries={retries} aborts={aborts}"));
    }
    if let Some(missed) = record.missed_reads {
        notes.push(format!("missed_reads={missed}"));
    }
    if record.peak_rss_scope != RssScope::Run {
        notes.push(format!("rss={}", record.peak_rss_scope.name()));
    }
    notes.join(" ")
}

/// The line under the table that says what the peak RSS column covers.
fn rss_note(records: &[RunRecord]) -> &'static str {
    let scope_of_all = |scope| records.iter().all(|record| record.peak_rss_scope == scope);
    if scope_of_all(RssScope::Run) {
        "peak RSS: per run (VmHWM after resetting it through /proc/self/clear_refs); it \
         includes what the process\n\
         held when the run began, such as memory the allocator kept of an earlier store \
         (rss_start_bytes in --json)"
    } else if scope_of_all(RssScope::Unavailable) {
        "peak RSS: unavailable (/proc/self/status cannot be read)"
    } else {
        "peak RSS: where marked rss=process, the process's peak so far (resetting VmHWM \
         through\n/proc/self/clear_refs failed); where marked rss=unavailable, unknown"
    }
}

/// One line per thread count with the engine's ratios to the baseline, then one per wal
/// run with its ratio to the raw fsync limit, then one with the raw append modes' ratios
/// to each other.
fn ratio_summary(records: &[RunRecord]) -> Vec<String> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut wal_lines = Vec::new();
    for record in records {
        let (Some(ratio), Some(baseline)) = (record.ratio_vs_baseline, record.baseline) else {
            continue;
        };
        if let Some(batch) = record.baseline_batch {
            let limit = match batch {
                1 => "raw fsyncs/s (batch 1, interleaved)".to_owned(),
                _ => format!("({batch} x raw fsyncs/s of batch {batch}, interleaved)"),
            };
            let backend = record.backend.as_deref().unwrap_or("?");
            wal_lines.push(format!(
                "{} {} commits/s ({backend}) / {limit}, threads {}: {ratio:.2}x",
                record.engine, record.workload, record.threads
            ));
            continue;
        }
        let entry = format!("{} {ratio:.2}x", record.workload);
        match lines.iter_mut().find(|(threads, _)| *threads == record.threads) {
            Some((_, line)) => line.push_str(&format!(", {entry}")),
            None => lines.push((
                record.threads,
                format!(
                    "{} / {baseline} ops/s, threads {}: {entry}",
                    record.engine, record.threads
                ),
            )),
        }
    }
    lines
        .into_iter()
        .map(|(_, line)| line)
        .chain(wal_lines)
        .chain(append_summary(records))
        .collect()
}

/// The mode of the raw append rows that the others are compared with: what the log does
/// today (pwrite + fdatasync into zero-filled segments).
const APPEND_REFERENCE_MODE: &str = "append-zeroed";

/// One line with each raw append mode's durable writes/s over those of
/// [`APPEND_REFERENCE_MODE`], if that row and another append row are there.
fn append_summary(records: &[RunRecord]) -> Option<String> {
    let appends: Vec<_> = records
        .iter()
        .filter(|record| record.mode.is_some_and(|mode| mode.starts_with("append-")))
        .collect();
    let reference = appends.iter().find(|record| record.mode == Some(APPEND_REFERENCE_MODE))?;
    let base = reference.fsyncs_per_sec.filter(|&rate| rate > 0.0)?;
    let ratios: Vec<_> = appends
        .iter()
        .filter(|record| record.mode != Some(APPEND_REFERENCE_MODE))
        .filter_map(|record| {
            let (mode, rate) = (record.mode?, record.fsyncs_per_sec?);
            Some(format!("{mode} {:.2}x", rate / base))
        })
        .collect();
    (!ratios.is_empty()).then(|| {
        format!(
            "raw appends, durable writes/s / those of {APPEND_REFERENCE_MODE} (the log's \
             pwrite + fdatasync): {}",
            ratios.join(", ")
        )
    })
}

/// `count / seconds`, or 0 for an instant run.
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// `1234567` as `1,234,567`.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A latency with a unit that keeps it short.
fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// Bytes in MiB.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(nanos(850), "850ns");
        assert_eq!(nanos(12_340), "12.3us");
        assert_eq!(nanos(4_500_000), "4.5ms");
        assert_eq!(nanos(2_000_000_000), "2.00s");
        assert_eq!(mebibytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn header_and_rows_line_up() {
        let header = table_header(true);
        let record = RunRecord {
            workload: "txn",
            engine: "inmem",
            threads: 2,
            ops: 1_000_000,
            seconds: 1.5,
            ops_per_sec: 666_666.7,
            p50_ns: 900,
            p99_ns: 5_000,
            p999_ns: 20_000,
            max_ns: 1_000_000,
            peak_rss_bytes: Some(300 << 20),
            peak_rss_scope: RssScope::Run,
            rss_start_bytes: None,
            keys: Some(1_000_000),
            key_size: Some(16),
            value_size: Some(100),
            seed: 42,
            conflicts: Some(3),
            retries: Some(3),
            aborts: Some(0),
            missed_reads: None,
            baseline: Some("skipmap"),
            ratio_vs_baseline: Some(0.5),
            baseline_batch: None,
            baseline_fsyncs_per_sec: None,
            record_bytes: None,
            mode: None,
            batch: None,
            commits_per_sec: None,
            fsyncs_per_sec: None,
            commits_per_fsync: None,
            backend: None,
            durability: None,
            recovered_bytes: None,
            mb_per_sec: None,
            first_get_ns: None,
            op: None,
            engine_workload: None,
            ratio_vs_engine: None,
            during: None,
        };
        let row = table_row(&record, true);
        assert_eq!(header.find("vs base").map(|at| at + 7), row.find("0.50x").map(|at| at + 5));
        assert!(row.ends_with("conflicts=3 retries=3 aborts=0"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["p999_ns"], 20_000);
        assert_eq!(json["peak_rss_scope"], "run");
        assert!(json.get("rss_start_bytes").is_none(), "None fields are left out");
    }

    fn config() -> Config {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: super::super::BenchArgs,
        }
        let cli = Cli::try_parse_from(["bench", "--workload", "wal"]).unwrap();
        Config::from_args(&cli.bench).unwrap()
    }

    fn fsync_run(batch: u64, fsyncs_per_sec: u64) -> FsyncRun {
        let mut latency = Histogram::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        latency.record(50_000).unwrap();
        let elapsed = Duration::from_secs(1);
        FsyncRun { mode: "overwrite", batch, fsyncs: fsyncs_per_sec, elapsed, latency }
    }

    fn fsync_record(batch: u64, fsyncs_per_sec: u64) -> RunRecord {
        let rss =
            PeakRssReport { peak_bytes: Some(1 << 20), scope: RssScope::Run, start_bytes: None };
        RunRecord::fsync(&config(), &fsync_run(batch, fsyncs_per_sec), rss)
    }

    fn wal_record(threads: usize, commits_per_sec: f64) -> RunRecord {
        let mut record = fsync_record(1, 1);
        record.workload = "wal";
        record.engine = "inmem";
        record.threads = threads;
        record.ops_per_sec = commits_per_sec;
        record.batch = None;
        record.commits_per_sec = Some(commits_per_sec);
        record.fsyncs_per_sec = Some(commits_per_sec / 4.0);
        record.commits_per_fsync = Some(4.0);
        record.backend = Some("sync".into());
        record
    }

    #[test]
    fn fsync_rows_give_the_batch_and_the_commit_rate_it_allows() {
        let grouped = fsync_record(32, 1_000);
        assert_eq!(grouped.commits_per_sec, Some(32_000.0));
        assert_eq!(grouped.ops_per_sec, 1_000.0);
        let row = table_row(&grouped, false);
        assert!(row.ends_with("mode=overwrite batch=32 x32=32,000 commits/s"), "{row}");
        let json = serde_json::to_value(&grouped).unwrap();
        assert_eq!((json["workload"].as_str(), json["batch"].as_u64()), (Some("fsync"), Some(32)));
        assert_eq!(json["mode"], "overwrite");
        assert_eq!(json["p50_ns"], 50_015, "the histogram's bucket of 50us");
        assert!(json.get("keys").is_none() && json.get("value_size").is_none(), "{json}");
    }

    #[test]
    fn wal_runs_compare_with_the_raw_overwrites_interleaved_with_them() {
        let mut runs = [wal_record(1, 900.0), wal_record(2, 1_500.0), wal_record(32, 16_000.0)];
        runs[0].compare_with_interleaved_fsync(&fsync_run(1, 1_000));
        runs[2].compare_with_interleaved_fsync(&fsync_run(32, 1_000));
        let ratios: Vec<_> = runs.iter().map(|run| run.ratio_vs_baseline).collect();
        assert_eq!(ratios, [Some(0.9), None, Some(0.5)]);
        assert_eq!(runs[2].baseline_batch, Some(32));
        assert_eq!(runs[2].baseline_fsyncs_per_sec, Some(1_000.0));
        let row = table_row(&runs[2], true);
        assert!(row.ends_with("commits/fsync=4.00 backend=sync raw_fsyncs/s=1,000"), "{row}");
        assert!(!table_row(&runs[1], true).contains("raw_fsyncs/s"), "no pairing, no figure");
        let json = serde_json::to_value(&runs[0]).unwrap();
        assert_eq!(json["baseline_fsyncs_per_sec"], 1_000.0);
        let summary = ratio_summary(&runs);
        assert_eq!(
            summary,
            [
                "inmem wal commits/s (sync) / raw fsyncs/s (batch 1, interleaved), threads 1: \
                 0.90x",
                "inmem wal commits/s (sync) / (32 x raw fsyncs/s of batch 32, interleaved), \
                 threads 32: 0.50x",
            ]
        );
    }

    #[test]
    fn append_modes_are_compared_with_the_zero_filled_one() {
        let mut appends: Vec<_> = [("append-fallocate", 500), ("append-zeroed", 1_000)]
            .into_iter()
            .chain([("append-direct", 1_500)])
            .map(|(mode, rate)| {
                let mut record = fsync_record(1, rate);
                record.mode = Some(mode);
                record
            })
            .collect();
        assert!(table_row(&appends[0], false).ends_with("mode=append-fallocate batch=1"));
        let summary = ratio_summary(&appends);
        assert_eq!(
            summary,
            ["raw appends, durable writes/s / those of append-zeroed (the log's pwrite + \
              fdatasync): append-fallocate 0.50x, append-direct 1.50x"]
        );
        appends.remove(1);
        assert!(ratio_summary(&appends).is_empty(), "no reference, no line");
    }

    fn during_record(phase: &'static str, p999_ns: u64, max_ns: u64) -> RunRecord {
        let mut record = fsync_record(1, 1);
        record.workload = "commit";
        record.engine = "inmem";
        record.mode = None;
        record.batch = None;
        record.commits_per_sec = None;
        record.fsyncs_per_sec = None;
        record.durability = Some("sync");
        record.p999_ns = p999_ns;
        record.max_ns = max_ns;
        let over_20ms = u64::from(max_ns > TARGET_MAX_NS);
        record.during = Some(DuringFigures { phase, over_20ms, ..DuringFigures::default() });
        record
    }

    #[test]
    fn during_rows_have_a_max_column_and_compare_with_quiet() {
        let quiet = during_record("quiet", 100_000, 1_000_000);
        let mut gc = during_record("gc", 250_000, 30_000_000);
        if let Some(during) = &mut gc.during {
            during.driver_calls = Some(12);
            during.versions_reclaimed = Some(5_000_000);
            during.superseded_versions = Some(5_000_000);
        }
        gc.compare_with_quiet(&quiet);
        let figures = gc.during.clone().unwrap_or_default();
        assert_eq!((figures.p999_vs_quiet, figures.max_vs_quiet), (Some(2.5), Some(30.0)));
        let header = during_header();
        let row = during_row(&gc);
        assert_eq!(header.find("  max").map(|at| at + 5), row.find("30.0ms").map(|at| at + 6));
        assert!(row.starts_with("commit    gc          inmem"), "{row}");
        assert!(
            row.ends_with(
                "durability=sync vs quiet p99.9=2.50x max=30.00x over_20ms=1 gc_passes=12 \
                 reclaimed=5,000,000 superseded=5,000,000"
            ),
            "{row}"
        );
        assert!(during_row(&quiet).ends_with("durability=sync over_20ms=0"));
        let json = serde_json::to_value(&gc).unwrap();
        assert_eq!(json["phase"], "gc", "the figures are in the line itself: {json}");
        assert_eq!(json["p999_vs_quiet"], 2.5);
        assert_eq!(json["versions_reclaimed"], 5_000_000);
        assert!(json.get("during").is_none() && json.get("keys_reaped").is_none(), "{json}");
        assert!(serde_json::to_value(&quiet).unwrap().get("p999_vs_quiet").is_none());
        assert_eq!(
            targets_summary(&[quiet.clone(), gc]).as_deref(),
            Some(
                "targets (p99.9 <= 2x quiet's, no operation over 20 ms): missed by 1 of 2 rows: \
                 commit gc sync x1 (p99.9 2.50x quiet, over_20ms=1)"
            )
        );
        assert_eq!(
            targets_summary(&[quiet]).as_deref(),
            Some("targets (p99.9 <= 2x quiet's, no operation over 20 ms): met by every row")
        );
        assert_eq!(targets_summary(&[fsync_record(1, 1)]), None, "no --during rows, no line");
    }
}
