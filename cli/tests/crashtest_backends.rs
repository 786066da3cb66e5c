//! `inmem crashtest --backend`: the children and the reopens log over the backend asked
//! for, and the report says which; io_uring is skipped with a message where it is refused,
//! and asking for it there is an error that names it.

#![allow(clippy::expect_used)]

use std::process::{Command, Output};

use inmem::wal::io::{backend, URING_SWITCH, URING_SWITCH_REFUSE};
use inmem::wal::BackendChoice;

/// Runs `inmem crashtest --backend <backend>` for a few short cycles, with `env` set.
fn crashtest(backend: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    Command::new(env!("CARGO_BIN_EXE_inmem"))
        .args(["crashtest", "--backend", backend, "--cycles", "4", "--kill-after-max-ms", "60"])
        .arg("--dir")
        .arg(dir.path().join("db"))
        .envs(env.iter().copied())
        .output()
        .expect("runs")
}

/// Checks that the run passed and that the line before its summary names `expected`.
fn assert_passed_over(output: &Output, expected: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\nstdout: {stdout}\nstderr: {stderr}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    let [.., backend, summary] = lines.as_slice() else { panic!("no report: {stdout}") };
    assert_eq!(*backend, format!("backend: {expected}"));
    assert!(summary.contains(" lost=0 partial=0 recovery_errors=0"), "{summary}");
}

#[test]
fn killed_writers_over_pwritev_and_fdatasync_lose_nothing_and_the_report_names_the_backend() {
    assert_passed_over(&crashtest("sync", &[]), "sync: requested");
}

#[test]
fn killed_writers_over_io_uring_lose_nothing_and_the_report_names_the_backend() {
    if let Err(error) = backend(BackendChoice::Uring) {
        eprintln!("skipping the crash test over io_uring: io_uring is refused here ({error})");
        return;
    }
    assert_passed_over(&crashtest("uring", &[]), "io_uring: requested");
}

#[test]
fn auto_logs_over_the_backend_measured_faster_even_where_io_uring_is_refused() {
    let refused = [(URING_SWITCH, URING_SWITCH_REFUSE)];
    assert_passed_over(&crashtest("auto", &refused), "sync: chosen by Auto");
}

#[test]
fn asking_for_io_uring_where_it_is_refused_is_an_error_naming_it() {
    let output = crashtest("uring", &[(URING_SWITCH, URING_SWITCH_REFUSE)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "no report: {}", String::from_utf8_lossy(&output.stdout));
    assert!(
        stderr.contains("--backend uring: the log's backend cannot be set up")
            && stderr.contains("Operation not permitted"),
        "{stderr}"
    );
}
