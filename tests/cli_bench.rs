//! `inmem bench` as a user runs it: the built binary with tiny sizes.
//!
//! Checks the shape and sanity of what it reports (every JSON line parses and carries the
//! documented fields, percentiles are ordered, both engines appear, txn lines carry
//! conflicts) and that unusable flags end in an error message and a nonzero exit, not a
//! panic. No timing is asserted: the machine may be busy.

use std::process::{Command, Output};

use serde_json::Value;

const WORKLOADS: [&str; 5] = ["fill", "get", "mixed", "scan", "txn"];

/// The fields every JSON line carries.
const REQUIRED_FIELDS: [&str; 11] = [
    "workload",
    "engine",
    "threads",
    "ops",
    "seconds",
    "ops_per_sec",
    "p50_ns",
    "p99_ns",
    "p999_ns",
    "peak_rss_bytes",
    "peak_rss_scope",
];

fn bench(flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inmem"))
        .arg("bench")
        .args(flags)
        .output()
        .unwrap_or_else(|error| panic!("the inmem binary runs: {error}"))
}

fn json_lines(output: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn u64_field(line: &Value, field: &str) -> u64 {
    line[field].as_u64().unwrap_or_else(|| panic!("{field} is an unsigned integer in {line}"))
}

fn f64_field(line: &Value, field: &str) -> f64 {
    line[field].as_f64().unwrap_or_else(|| panic!("{field} is a number in {line}"))
}

fn assert_sane_record(line: &Value) {
    for field in REQUIRED_FIELDS {
        assert!(line.get(field).is_some(), "{field} is missing from {line}");
    }
    assert!(["inmem", "skipmap"].contains(&line["engine"].as_str().unwrap_or_default()), "{line}");
    assert!(u64_field(line, "threads") > 0, "{line}");
    assert!(WORKLOADS.contains(&line["workload"].as_str().unwrap_or_default()), "{line}");
    assert!(u64_field(line, "ops") > 0, "{line}");
    assert!(f64_field(line, "seconds") > 0.0, "{line}");
    assert!(f64_field(line, "ops_per_sec") > 0.0, "{line}");
    let (p50, p99, p999) =
        (u64_field(line, "p50_ns"), u64_field(line, "p99_ns"), u64_field(line, "p999_ns"));
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "percentiles are ordered: {line}");
    assert!(p999 <= u64_field(line, "max_ns"), "{line}");
    let scope = line["peak_rss_scope"].as_str().unwrap_or_default();
    assert!(["run", "process", "unavailable"].contains(&scope), "{line}");
    if cfg!(target_os = "linux") {
        assert!(u64_field(line, "peak_rss_bytes") > 0, "{line}");
    }
}

#[test]
fn json_reports_every_workload_at_every_thread_count_for_both_engines() {
    let output = bench(&["--keys", "2000", "--threads", "1,2", "--json", "--baseline", "skipmap"]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2 * 2 * WORKLOADS.len(), "engines x thread counts x workloads");
    for line in &lines {
        assert_sane_record(line);
        assert_eq!(u64_field(line, "keys"), 2000);
    }
    for engine in ["inmem", "skipmap"] {
        for threads in [1, 2] {
            let runs: Vec<_> = lines
                .iter()
                .filter(|line| line["engine"] == engine && line["threads"] == threads)
                .map(|line| line["workload"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(runs, WORKLOADS, "{engine} at {threads} threads, in the default order");
        }
    }
    for line in lines.iter().filter(|line| line["workload"] == "txn") {
        assert!(line["conflicts"].is_u64() && line["retries"].is_u64(), "{line}");
    }
    for line in lines.iter().filter(|line| line["engine"] == "inmem") {
        assert!(f64_field(line, "ratio_vs_baseline") > 0.0, "{line}");
        assert_eq!(line["baseline"], "skipmap");
        assert!(line.get("missed_reads").is_none(), "the engine never misses a loaded key");
    }
    let single_threaded_txn =
        lines.iter().find(|line| line["workload"] == "txn" && line["threads"] == 1);
    assert_eq!(single_threaded_txn.map(|line| u64_field(line, "conflicts")), Some(0));
}

#[test]
fn default_operation_counts_follow_the_key_count_and_ops_overrides_them() {
    let output = bench(&["--keys", "1000", "--json"]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let ops: Vec<_> = json_lines(&output).iter().map(|line| u64_field(line, "ops")).collect();
    assert_eq!(ops, [1000, 1000, 1000, 100, 1000], "scan defaults to keys / 10");

    let output = bench(&["--keys", "500", "--ops", "64", "--workload", "scan,fill", "--json"]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    let runs: Vec<_> =
        lines.iter().map(|line| (line["workload"].clone(), u64_field(line, "ops"))).collect();
    assert_eq!(runs, [("scan".into(), 64), ("fill".into(), 500)], "fill always loads --keys");
    assert!(lines.iter().all(|line| line.get("ratio_vs_baseline").is_none()));
}

#[test]
fn the_table_has_a_row_per_run_and_the_ratios_under_it() {
    let output = bench(&["--keys", "300", "--value-size", "8", "--baseline", "skipmap"]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["workload", "engine", "threads", "ops/s", "p50", "p99", "p99.9", "peak RSS"] {
        assert!(header.contains(column), "{header}");
    }
    let rows = stdout.lines().filter(|line| {
        let mut cells = line.split_whitespace();
        WORKLOADS.contains(&cells.next().unwrap_or_default())
            && ["inmem", "skipmap"].contains(&cells.next().unwrap_or_default())
    });
    assert_eq!(rows.count(), 2 * WORKLOADS.len(), "{stdout}");
    assert!(stdout.contains("inmem / skipmap ops/s, threads 1: fill "), "{stdout}");
    assert!(output.stderr.is_empty(), "no progress bar when stderr is not a terminal");
}

fn assert_refused(flags: &[&str], message: &str) {
    let output = bench(flags);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{flags:?} must fail");
    assert!(stderr.contains(message), "{flags:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{flags:?} reports nothing");
}

#[test]
fn unusable_flags_end_in_an_error_message_not_a_panic() {
    assert_refused(&["--key-size", "1", "--keys", "100"], "--key-size 1 is too small");
    assert_refused(&["--key-size", "2", "--keys", "100000"], "need at least 3 bytes");
    assert_refused(&["--key-size", "5000", "--keys", "10"], "key limit");
    assert_refused(&["--keys", "0"], "--keys 0 is out of range");
    assert_refused(&["--keys", "10", "--threads", "0"], "--threads 0 is out of range");
    assert_refused(&["--keys", "10", "--ops", "0"], "--ops must be at least 1");
    assert_refused(&["--keys", "10", "--value-size", "100000000"], "value limit");
    assert_refused(&["--keys", "10", "--workload", "nosuch"], "invalid value 'nosuch'");
    assert_refused(&["--keys", "10", "--baseline", "btreemap"], "invalid value 'btreemap'");
    assert_refused(&["--keys", "ten"], "invalid value 'ten'");
}
