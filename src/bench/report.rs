//! What a run reports, and how: a [`RunRecord`] per workload run, written as a table row or
//! as one JSON object per line, as soon as the run ends.
//!
//! [`RunRecord`] is the JSON schema. Fields every line has come first; fields that only
//! some workloads or modes have are `Option`s left out of the line when `None`, so later
//! workloads can add theirs without changing existing lines.

use std::io::Write;

use serde::Serialize;

use super::args::{Config, Workload};
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
    /// Keys loaded.
    pub keys: u64,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
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
    /// This run's ops/s divided by the baseline's in the same workload and thread count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_vs_baseline: Option<f64>,
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
            ops_per_sec: if seconds > 0.0 { ops as f64 / seconds } else { 0.0 },
            p50_ns: latency.quantile_ns(0.5),
            p99_ns: latency.quantile_ns(0.99),
            p999_ns: latency.quantile_ns(0.999),
            max_ns: latency.max_ns(),
            peak_rss_bytes: rss.peak_bytes,
            peak_rss_scope: rss.scope,
            rss_start_bytes: rss.start_bytes,
            keys: config.keys,
            key_size: config.layout.key_size(),
            value_size: config.value_size,
            seed: config.seed,
            conflicts: txn.map(|tally| tally.conflicts),
            retries: txn.map(|tally| tally.retries),
            aborts: txn.map(|tally| tally.aborts),
            missed_reads: (measured.tally.wrong_ops > 0).then_some(measured.tally.wrong_ops),
            baseline: None,
            ratio_vs_baseline: None,
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
            if !self.header_written {
                writeln!(self.out, "{}", table_header(self.with_ratio))?;
                self.header_written = true;
            }
            writeln!(self.out, "{}", table_row(&record, self.with_ratio))?;
        }
        self.out.flush()?;
        self.records.push(record);
        Ok(())
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

/// What a row says beyond the columns.
fn notes(record: &RunRecord) -> String {
    let mut notes = Vec::new();
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

/// One line per thread count with the engine's ratios to the baseline.
fn ratio_summary(records: &[RunRecord]) -> Vec<String> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for record in records {
        let (Some(ratio), Some(baseline)) = (record.ratio_vs_baseline, record.baseline) else {
            continue;
        };
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
    lines.into_iter().map(|(_, line)| line).collect()
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
            keys: 1_000_000,
            key_size: 16,
            value_size: 100,
            seed: 42,
            conflicts: Some(3),
            retries: Some(3),
            aborts: Some(0),
            missed_reads: None,
            baseline: Some("skipmap"),
            ratio_vs_baseline: Some(0.5),
        };
        let row = table_row(&record, true);
        assert_eq!(header.find("vs base").map(|at| at + 7), row.find("0.50x").map(|at| at + 5));
        assert!(row.ends_with("conflicts=3 retries=3 aborts=0"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["p999_ns"], 20_000);
        assert_eq!(json["peak_rss_scope"], "run");
        assert!(json.get("rss_start_bytes").is_none(), "None fields are left out");
    }
}
