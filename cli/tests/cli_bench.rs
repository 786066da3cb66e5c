//! `inmem bench` as a user runs it: the built binary with tiny sizes.
//!
//! Checks the shape and sanity of what it reports (every JSON line parses and carries the
//! documented fields, percentiles are ordered, both engines appear, txn lines carry
//! conflicts, wal lines carry the log's figures and backend, the fsync baseline its two
//! overwrite batches and its four append modes) and that unusable flags end in an error message and a nonzero exit, not a
//! panic. No timing is asserted: the machine may be busy. The wal tests write real files,
//! in a temporary directory of their own (given as --dir), checked empty afterwards.

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

/// The fields wal lines add.
const WAL_FIELDS: [&str; 5] =
    ["commits_per_sec", "fsyncs_per_sec", "commits_per_fsync", "backend", "record_bytes"];

/// The backends the log reports.
const BACKENDS: [&str; 2] = ["io_uring", "sync"];

/// The fsync baseline's append modes, in the order it reports them.
const APPEND_MODES: [&str; 4] =
    ["append-fallocate", "append-zeroed", "append-dsync", "append-direct"];

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

/// A directory for the wal tests, on the disk the tests build on (not /tmp, which may be
/// in memory).
fn wal_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cli-bench-wal-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|error| panic!("a temporary directory: {error}"))
}

fn assert_sane_timing(line: &Value) {
    assert!(u64_field(line, "ops") > 0, "{line}");
    assert!(f64_field(line, "seconds") > 0.0, "{line}");
    assert!(f64_field(line, "ops_per_sec") > 0.0, "{line}");
    let (p50, p99, p999) =
        (u64_field(line, "p50_ns"), u64_field(line, "p99_ns"), u64_field(line, "p999_ns"));
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "percentiles are ordered: {line}");
    assert!(p999 <= u64_field(line, "max_ns"), "{line}");
}

fn assert_left_nothing(dir: &tempfile::TempDir) {
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|error| panic!("{error}"))
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect();
    assert!(left.is_empty(), "the benchmark removes its files: {left:?}");
}

#[test]
fn wal_json_lines_carry_the_logs_figures_and_backend() {
    let dir = wal_dir();
    let path = dir.path().to_str().unwrap_or_default();
    let output =
        bench(&["--workload", "wal", "--ops", "200", "--threads", "1,2", "--json", "--dir", path]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    let threads: Vec<_> = lines.iter().map(|line| u64_field(line, "threads")).collect();
    assert_eq!(threads, [1, 2], "one line per thread count: {lines:?}");
    for line in &lines {
        for field in REQUIRED_FIELDS.iter().chain(&WAL_FIELDS) {
            assert!(line.get(field).is_some(), "{field} is missing from {line}");
        }
        assert_eq!(
            (line["workload"].as_str(), line["engine"].as_str()),
            (Some("wal"), Some("inmem"))
        );
        assert_sane_timing(line);
        assert_eq!(u64_field(line, "ops"), 200);
        assert_eq!(u64_field(line, "record_bytes"), 128);
        assert_eq!(f64_field(line, "commits_per_sec"), f64_field(line, "ops_per_sec"));
        assert!(f64_field(line, "fsyncs_per_sec") > 0.0, "{line}");
        assert!(f64_field(line, "commits_per_fsync") >= 1.0, "{line}");
        assert!(BACKENDS.contains(&line["backend"].as_str().unwrap_or_default()), "{line}");
        assert!(line.get("keys").is_none() && line.get("ratio_vs_baseline").is_none(), "{line}");
    }
    assert_left_nothing(&dir);
}

#[test]
fn wal_runs_on_each_backend_asked_for() {
    let dir = wal_dir();
    let path = dir.path().to_str().unwrap_or_default();
    let output =
        bench(&["--workload", "wal", "--ops", "50", "--backend", "sync", "--json", "--dir", path]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let backends: Vec<_> = json_lines(&output)
        .iter()
        .map(|line| line["backend"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(backends, [Some("sync".to_owned())]);
    assert_left_nothing(&dir);
}

#[test]
fn the_fsync_baseline_adds_its_two_batches_and_the_ratios() {
    let dir = wal_dir();
    let path = dir.path().to_str().unwrap_or_default();
    let flags = ["--workload", "wal", "--ops", "64", "--threads", "1,32", "--baseline", "fsync"];
    let output = bench(&[&flags[..], &["--json", "--dir", path]].concat());
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    let overwrites: Vec<_> = lines
        .iter()
        .filter(|line| line["workload"] != "fsync" || line["mode"] == "overwrite")
        .collect();
    let runs: Vec<_> = overwrites
        .iter()
        .map(|line| (line["workload"].as_str().unwrap_or_default(), u64_field(line, "threads")))
        .collect();
    assert_eq!(runs, [("wal", 1), ("wal", 32), ("fsync", 1), ("fsync", 1)]);
    let batches: Vec<_> = overwrites.iter().filter_map(|line| line["batch"].as_u64()).collect();
    assert_eq!(batches, [1, 32]);
    for line in lines.iter().filter(|line| line["workload"] == "fsync") {
        assert_sane_timing(line);
        assert!(f64_field(line, "fsyncs_per_sec") > 0.0, "{line}");
        let batch = u64_field(line, "batch") as f64;
        let limit = f64_field(line, "commits_per_sec") / f64_field(line, "fsyncs_per_sec");
        assert!((limit - batch).abs() < 1e-6, "commits_per_sec is batch x fsyncs_per_sec: {line}");
    }
    for (line, batch) in lines.iter().take(2).zip([1, 32]) {
        assert_eq!(line["baseline"], "fsync");
        assert_eq!(u64_field(line, "baseline_batch"), batch);
        assert!(f64_field(line, "ratio_vs_baseline") > 0.0, "{line}");
        let limit = f64_field(line, "baseline_fsyncs_per_sec") * batch as f64;
        let ratio = f64_field(line, "commits_per_sec") / limit;
        assert!((ratio - f64_field(line, "ratio_vs_baseline")).abs() < 1e-9, "{line}");
    }

    let output = bench(&[&flags[..], &["--dir", path]].concat());
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("commits/fsync="), "{stdout}");
    assert!(stdout.contains("mode=overwrite batch=32 x32="), "{stdout}");
    assert!(stdout.contains("raw fsyncs/s (batch 1, interleaved), threads 1: "), "{stdout}");
    assert!(
        stdout.contains("(32 x raw fsyncs/s of batch 32, interleaved), threads 32: "),
        "{stdout}"
    );
    assert_left_nothing(&dir);
}

#[test]
fn the_fsync_baseline_appends_into_files_prepared_four_ways() {
    let dir = wal_dir();
    let path = dir.path().to_str().unwrap_or_default();
    let flags = ["--workload", "wal", "--baseline", "fsync", "--ops", "50", "--json", "--dir"];
    let output = bench(&[&flags[..], &[path]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    let lines = json_lines(&output);
    let appends: Vec<_> = lines
        .iter()
        .filter(|line| line["workload"] == "fsync" && line["mode"] != "overwrite")
        .collect();
    let modes: Vec<_> =
        appends.iter().map(|line| line["mode"].as_str().unwrap_or_default()).collect();
    // Only O_DIRECT may be refused (by the file system), and only if the run said so.
    let direct_refused = stderr.contains("append-direct unavailable");
    let expected = if direct_refused { &APPEND_MODES[..3] } else { &APPEND_MODES[..] };
    assert_eq!(modes, expected, "stderr: {stderr}");
    for line in appends {
        assert_eq!((line["engine"].as_str(), u64_field(line, "threads")), (Some("raw"), 1));
        assert_sane_timing(line);
        assert_eq!(u64_field(line, "ops"), 50, "one durable write per block: {line}");
        assert_eq!(u64_field(line, "batch"), 1, "{line}");
        assert!(f64_field(line, "fsyncs_per_sec") > 0.0, "{line}");
    }
    let overwrites: Vec<_> = lines
        .iter()
        .filter(|line| line["mode"] == "overwrite")
        .map(|line| u64_field(line, "batch"))
        .collect();
    assert_eq!(overwrites, [1, 32], "the overwrite rows stay");
    assert_left_nothing(&dir);
}

#[test]
fn unusable_wal_flags_end_in_an_error_message_not_a_panic() {
    let dir = wal_dir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap_or_else(|error| panic!("{error}"));
    let file = file.to_str().unwrap_or_default();
    assert_refused(&["--workload", "wal", "--ops", "10", "--dir", file], "(--dir)");
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap_or_default();
    assert_refused(&["--workload", "wal", "--ops", "10", "--dir", missing], "(--dir)");
    assert_refused(&["--baseline", "fsync"], "--baseline fsync applies only with --workload wal");
    assert_refused(&["--backend", "sync"], "--backend applies only with --workload wal");
    assert_refused(&["--workload", "wal", "--baseline", "skipmap"], "an engine workload");
    assert_refused(&["--workload", "wal", "--backend", "posix"], "invalid value 'posix'");
}

#[test]
fn durable_runs_carry_their_durability_and_leave_nothing_behind() {
    let dir = wal_dir();
    let dir_arg = dir.path().to_str().expect("a UTF-8 path");
    let output = bench(&[
        "--workload",
        "fill,get,txn",
        "--keys",
        "300",
        "--durability",
        "none,buffered,sync",
        "--threads",
        "1,4",
        "--json",
        "--dir",
        dir_arg,
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3 * 2 * 3, "a line per durability, thread count and workload");
    for line in &lines {
        assert_sane_record(line);
    }
    let modes: Vec<&str> =
        lines.iter().map(|line| line["durability"].as_str().unwrap_or("?")).collect();
    for mode in ["none", "buffered", "sync"] {
        assert_eq!(modes.iter().filter(|&&m| m == mode).count(), 6, "{modes:?}");
    }
    assert_left_nothing(&dir);
    assert_refused(&["--workload", "wal", "--durability", "sync"], "--durability applies only");
}

#[test]
fn recover_times_an_open_from_a_checkpoint_and_from_the_log() {
    let dir = wal_dir();
    let dir_arg = dir.path().to_str().expect("a UTF-8 path");
    let output = bench(&["--workload", "recover", "--keys", "500", "--json", "--dir", dir_arg]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    let modes: Vec<&str> = lines.iter().map(|line| line["mode"].as_str().unwrap_or("?")).collect();
    assert_eq!(modes, ["checkpoint", "log"]);
    for line in &lines {
        assert_sane_timing(line);
        assert_eq!(line["workload"], "recover");
        assert_eq!(u64_field(line, "ops"), 500, "every key recovered: {line}");
        assert!(u64_field(line, "recovered_bytes") > 500 * 100, "{line}");
        assert!(f64_field(line, "mb_per_sec") > 0.0, "{line}");
        // The first get comes after the open returned (`seconds`: the open's own time;
        // the histogram's `max_ns` is rounded up).
        assert!(
            u64_field(line, "first_get_ns") as f64 >= f64_field(line, "seconds") * 1e9,
            "{line}"
        );
    }
    assert_left_nothing(&dir);
}

/// The primitives workload's operations, in the order it reports them.
const PRIMITIVE_OPS: [&str; 6] =
    ["kv_get", "kv_put", "event_append", "state_cas", "trace_record", "cross_txn"];

#[test]
fn primitives_report_each_operation_with_its_ratio_to_the_engine_workload_it_matches() {
    let output = bench(&[
        "--workload",
        "get,txn,primitives",
        "--keys",
        "2000",
        "--ops",
        "3000",
        "--threads",
        "1,3",
        "--json",
    ]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    for threads in [1, 3] {
        let of_threads = |workload: &str| -> Vec<&Value> {
            lines
                .iter()
                .filter(|line| {
                    line["workload"] == workload && u64_field(line, "threads") == threads
                })
                .collect()
        };
        let engine_rate = |workload: &str| {
            let rows = of_threads(workload);
            assert_eq!(rows.len(), 1, "one {workload} row at {threads} threads");
            f64_field(rows[0], "ops_per_sec")
        };
        let (get, txn) = (engine_rate("get"), engine_rate("txn"));
        let rows = of_threads("primitives");
        let ops: Vec<&str> = rows.iter().map(|line| line["op"].as_str().unwrap_or("?")).collect();
        assert_eq!(ops, PRIMITIVE_OPS, "every operation once, in order, at {threads} threads");
        for line in &rows {
            assert_sane_timing(line);
            assert_eq!(u64_field(line, "ops"), 3000, "{line}");
            assert_eq!(line["engine"], "inmem", "{line}");
            let rate = f64_field(line, "ops_per_sec");
            match line["op"].as_str() {
                Some("kv_get") => {
                    assert_eq!(line["engine_workload"], "get", "{line}");
                    let ratio = f64_field(line, "ratio_vs_engine");
                    assert!((ratio - rate / get).abs() <= 1e-9 * ratio.max(1.0), "{line}");
                }
                Some("cross_txn") => {
                    assert_eq!(line["engine_workload"], "txn", "{line}");
                    let ratio = f64_field(line, "ratio_vs_engine");
                    assert!((ratio - rate / txn).abs() <= 1e-9 * ratio.max(1.0), "{line}");
                }
                _ => assert!(line.get("ratio_vs_engine").is_none(), "{line}"),
            }
        }
    }
}

#[test]
fn primitives_run_on_durable_databases_too_and_leave_nothing_behind() {
    let dir = wal_dir();
    let dir_arg = dir.path().to_str().expect("a UTF-8 path");
    let output = bench(&[
        "--workload",
        "primitives",
        "--keys",
        "300",
        "--ops",
        "200",
        "--durability",
        "none,sync",
        "--threads",
        "2",
        "--json",
        "--dir",
        dir_arg,
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2 * PRIMITIVE_OPS.len(), "a line per durability and operation");
    for (line, durability) in lines.iter().zip(["none"; 6].into_iter().chain(["sync"; 6])) {
        assert_sane_timing(line);
        assert_eq!(line["durability"], durability, "{line}");
        assert!(line.get("ratio_vs_engine").is_none(), "no engine row to compare with: {line}");
    }
    assert_left_nothing(&dir);
}

/// The phases of `--during`, quiet first, as its rows come.
const PHASES: [&str; 4] = ["quiet", "gc", "checkpoint", "reap"];

/// The fields every `--during` line adds, and those the non-quiet ones add too.
const DURING_FIELDS: [&str; 2] = ["phase", "over_20ms"];
const DRIVEN_FIELDS: [&str; 4] =
    ["p999_vs_quiet", "max_vs_quiet", "driver_calls", "driver_seconds"];

#[test]
fn during_reports_each_workload_in_each_phase_with_what_the_driver_did() {
    let dir = wal_dir();
    let dir_arg = dir.path().to_str().expect("a UTF-8 path");
    let output = bench(&[
        "--during",
        "quiet,gc,checkpoint,reap",
        "--keys",
        "2000",
        "--seconds",
        "1",
        "--durability",
        "buffered",
        "--json",
        "--dir",
        dir_arg,
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = json_lines(&output);
    let rows: Vec<_> = lines
        .iter()
        .map(|line| {
            (line["workload"].as_str().unwrap_or("?"), line["phase"].as_str().unwrap_or("?"))
        })
        .collect();
    let expected: Vec<_> = ["commit", "get"]
        .into_iter()
        .flat_map(|workload| PHASES.map(|phase| (workload, phase)))
        .collect();
    assert_eq!(rows, expected, "one line per workload and phase, quiet first");
    for line in &lines {
        assert_sane_timing(line);
        assert_eq!(line["durability"], "buffered", "{line}");
        assert_eq!(u64_field(line, "keys"), 2000, "{line}");
        assert!(f64_field(line, "seconds") >= 1.0, "a window of --seconds: {line}");
        for field in DURING_FIELDS {
            assert!(line.get(field).is_some(), "{field} is missing from {line}");
        }
        let driven = line["phase"] != "quiet";
        for field in DRIVEN_FIELDS {
            assert_eq!(line.get(field).is_some(), driven, "{field} in {line}");
        }
        if driven {
            assert!(f64_field(line, "p999_vs_quiet") > 0.0, "{line}");
            assert!(f64_field(line, "max_vs_quiet") > 0.0, "{line}");
            assert!(u64_field(line, "driver_calls") > 0, "{line}");
        }
    }
    let row = |workload: &str, phase: &str| {
        lines
            .iter()
            .find(|line| line["workload"] == workload && line["phase"] == phase)
            .unwrap_or_else(|| panic!("{workload} {phase}"))
    };
    for workload in ["commit", "get"] {
        let gc = row(workload, "gc");
        assert_eq!(u64_field(gc, "superseded_versions"), 5 * 2000, "5 overwrites a key: {gc}");
        let reap = row(workload, "reap");
        assert_eq!(u64_field(reap, "expired_keys"), 2000, "every key expired: {reap}");
        let checkpoint = row(workload, "checkpoint");
        assert!(u64_field(checkpoint, "checkpoint_bytes") > 0, "{checkpoint}");
    }
    // Without commits in the window the engine never wakes its maintenance thread, so the
    // driver alone reclaims every superseded version and reaps every expired key. (With
    // commits, the engine's own early round races the driver for them: 2,000 keys may all
    // go to it, so the commit rows promise only that the driver ran.)
    assert_eq!(u64_field(row("get", "gc"), "versions_reclaimed"), 5 * 2000);
    assert_eq!(u64_field(row("get", "reap"), "keys_reaped"), 2000);
    assert_left_nothing(&dir);
}

#[test]
fn during_tables_add_the_phase_the_max_and_the_comparison_with_quiet() {
    let output =
        bench(&["--during", "gc,quiet", "--workload", "get", "--keys", "500", "--seconds", "1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["workload", "phase", "ops/s", "p99.9", "max", "notes"] {
        assert!(header.contains(column), "{header}");
    }
    let rows: Vec<_> = lines.take_while(|line| !line.is_empty()).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows[0].starts_with("get       quiet "), "quiet first: {stdout}");
    assert!(rows[1].starts_with("get       gc "), "{stdout}");
    assert!(rows[1].contains("vs quiet p99.9="), "{stdout}");
    assert!(rows[1].contains(" max="), "{stdout}");
    assert!(rows[1].contains("reclaimed="), "{stdout}");
    assert!(stdout.contains("targets (p99.9 <= 2x quiet's, no operation over 20 ms)"), "{stdout}");
}

#[test]
fn unusable_during_flags_end_in_an_error_message_not_a_panic() {
    assert_refused(&["--seconds", "2"], "--seconds applies only with --during");
    assert_refused(&["--during", "gc", "--ops", "5"], "--ops does not apply with --during");
    assert_refused(&["--during", "gc", "--seconds", "0"], "--seconds must be at least 1");
    assert_refused(&["--during", "gc", "--workload", "get,scan"], "not scan");
    assert_refused(&["--during", "compaction"], "invalid value 'compaction'");
}
