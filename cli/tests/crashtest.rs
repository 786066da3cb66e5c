//! `inmem crashtest` as CI runs it: 20 kill-and-recover cycles of a process committing
//! transfers, and 12 of one committing primitives steps (`--workload primitives`).

#![allow(clippy::expect_used)]

use std::process::Command;

/// Runs `inmem crashtest` with `flags` for `cycles` cycles on a temporary directory and
/// checks its summary line: that many cycles, something acknowledged, nothing lost or
/// partial, no recovery error.
fn assert_crashtest_passes(flags: &[&str], cycles: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_inmem"))
        .arg("crashtest")
        .args(flags)
        .args(["--cycles", &cycles.to_string(), "--kill-after-max-ms", "100", "--dir"])
        .arg(dir.path().join("db"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    let summary = stdout.lines().last().expect("a summary line");
    let fields: Vec<(&str, u64)> = summary
        .split(' ')
        .map(|field| {
            let (name, value) = field.split_once('=').expect("name=value");
            (name, value.parse().expect("a count"))
        })
        .collect();
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["cycles", "acknowledged", "lost", "partial", "recovery_errors"]);
    assert_eq!(fields[0].1, cycles);
    assert!(fields[1].1 > 0, "the children committed something: {summary}");
    assert_eq!((fields[2].1, fields[3].1, fields[4].1), (0, 0, 0), "{summary}\n{stderr}");
}

#[test]
fn twenty_killed_writers_lose_no_acknowledged_commit_and_leave_none_partial() {
    assert_crashtest_passes(&[], 20);
}

#[test]
fn twelve_killed_primitive_writers_lose_no_acknowledged_step_and_leave_none_partial() {
    assert_crashtest_passes(&["--workload", "primitives"], 12);
}
