//! A database's durability over each I/O backend of its log: commits from several threads
//! and a checkpoint, then a reopen, over pwritev + fdatasync, over io_uring (skipped with a
//! message where the kernel refuses it) and over `Auto`; what the database says of its
//! backend; and an explicit io_uring request where io_uring is refused
//! (`INMEM_IO_URING=refuse`).

#![allow(clippy::expect_used)]

mod common;

use common::{assert_newest_versions, put_concurrently, NO_MAINTENANCE};
use inmem_engine::{BackendChoice, BackendReason, Database, Durability, Error, Options};
use inmem_wal::io::{backend, uring_refused_by_switch, URING_SWITCH, URING_SWITCH_REFUSE};

fn over(choice: BackendChoice) -> Options {
    Options::default().maintenance_interval(NO_MAINTENANCE).io_backend(choice)
}

/// Commits from 8 threads, a checkpoint, more commits, a drop; then a reopen over the same
/// backend and one over the other finds every acknowledged commit at its version, and the
/// database reports the backend `choice` should give (`name`, `reason`).
fn commits_survive_a_reopen_over(choice: BackendChoice, name: &str, reason: &BackendReason) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path(), over(choice)).expect("open");
    let backend = db.log_backend().expect("a database on a directory has a log");
    assert_eq!((backend.name.as_str(), &backend.reason), (name, reason));
    let value = |index: u32| index.to_le_bytes().repeat(8);
    let mut acknowledged = put_concurrently(&db, 8, 50, value, || {});
    db.checkpoint().expect("checkpoint");
    let after = put_concurrently(&db, 4, 50, |index| vec![7; index as usize], || {});
    acknowledged.retain(|(key, _)| !after.iter().any(|(later, _)| later == key));
    acknowledged.extend(after);
    let newest = acknowledged.iter().map(|(_, version)| *version).max().expect("commits");
    drop(db);

    let db = Database::open(dir.path(), over(choice)).expect("reopen");
    assert_eq!(db.log_backend().map(|backend| backend.name.as_str()), Some(name));
    assert_eq!(db.visible_version(), newest);
    assert_newest_versions(&db, &acknowledged);
    let more = db.put(b"after reopen", b"1").expect("put");
    drop(db);
    // The files do not depend on the backend that wrote them.
    let other = if name == "io_uring" { BackendChoice::Sync } else { choice };
    let db = Database::open(dir.path(), over(other)).expect("reopen over the other backend");
    assert_eq!(db.visible_version(), more);
    assert_newest_versions(&db, &acknowledged);
}

#[test]
fn commits_and_a_checkpoint_survive_a_reopen_over_pwritev_and_fdatasync() {
    commits_survive_a_reopen_over(BackendChoice::Sync, "sync", &BackendReason::Requested);
}

#[test]
fn commits_and_a_checkpoint_survive_a_reopen_over_io_uring() {
    if let Err(error) = backend(BackendChoice::Uring) {
        eprintln!("skipping the database over io_uring: io_uring is refused here ({error})");
        return;
    }
    commits_survive_a_reopen_over(BackendChoice::Uring, "io_uring", &BackendReason::Requested);
}

#[test]
fn commits_and_a_checkpoint_survive_a_reopen_over_auto_which_takes_the_backend_measured_faster() {
    // pwritev + fdatasync (inmem_wal::io::AUTO_REASON), io_uring allowed or not.
    commits_survive_a_reopen_over(BackendChoice::Auto, "sync", &BackendReason::ChosenByAuto);
}

#[test]
fn only_a_database_that_logs_has_a_log_backend() {
    assert!(Database::in_memory().expect("in memory").log_backend().is_none());
    let dir = tempfile::tempdir().expect("tempdir");
    let unlogged = over(BackendChoice::Sync).durability(Durability::None);
    assert!(Database::open(dir.path(), unlogged).expect("open").log_backend().is_none());
    let db = Database::open(dir.path(), over(BackendChoice::Sync)).expect("open");
    assert_eq!(db.log_backend().expect("logs").to_string(), "sync: requested");
}

/// Where io_uring is refused (here by `INMEM_IO_URING=refuse`, in a child process if this
/// one allows it), a database asked for it fails to open with the log's typed error, which
/// names the backend and carries the kernel's error, and leaves no log behind; `Auto` opens
/// over pwritev + fdatasync.
#[test]
fn a_database_asked_for_io_uring_where_it_is_refused_fails_to_open_naming_the_backend() {
    let name = "a_database_asked_for_io_uring_where_it_is_refused_fails_to_open_naming_the_backend";
    if !uring_refused_by_switch() {
        return run_with_uring_refused(name);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let error = Database::open(dir.path(), over(BackendChoice::Uring)).expect_err("refused");
    let Error::Log { source: inmem_wal::Error::BackendUnavailable { backend, source, .. }, .. } =
        &error
    else {
        panic!("not the log's BackendUnavailable: {error:?}");
    };
    assert_eq!(*backend, "io_uring");
    assert_eq!(source.raw_os_error(), Some(rustix::io::Errno::PERM.raw_os_error()));
    assert!(error.to_string().contains("io_uring"), "{error}");
    assert!(!dir.path().join("wal").exists(), "a refused open creates no log");
    let db = Database::open(dir.path(), over(BackendChoice::Auto)).expect("Auto opens");
    assert_eq!(db.log_backend().expect("logs").to_string(), "sync: chosen by Auto");
    db.put(b"k", b"v").expect("put");
}

/// Runs test `name` of this binary again, alone, in a child process whose io_uring setups
/// are refused (`INMEM_IO_URING=refuse`), and fails unless it ran there and passed.
fn run_with_uring_refused(name: &str) {
    let exe = std::env::current_exe().expect("this test binary");
    let output = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(URING_SWITCH, URING_SWITCH_REFUSE)
        .output()
        .expect("run the test in a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} with io_uring refused: {}\n{stdout}{stderr}",
        output.status
    );
}
