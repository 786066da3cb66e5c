//! `inmem verify` and `inmem inspect` on database directories, clean and damaged: what
//! they report, their exit codes, and that they change nothing.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use inmem::{Database, Options};

fn inmem(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inmem")).args(args).arg(dir).output().expect("runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A database with a checkpoint and commits after it; returns the checkpoint's path and
/// the segment's.
fn database(dir: &Path) -> (PathBuf, PathBuf) {
    let db = Database::open(dir, Options::default().checkpoint_log_bytes(0)).expect("open");
    for index in 0u32..50 {
        db.put(index.to_le_bytes(), [5u8; 100]).expect("put");
    }
    let checkpoint = db.checkpoint().expect("checkpoint").path;
    for index in 0u32..50 {
        db.put(index.to_le_bytes(), [6u8; 100]).expect("put");
    }
    db.close().expect("close");
    let segment = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|entry| entry.expect("entry").path())
        .next()
        .expect("a segment");
    (checkpoint, segment)
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_clean_directory_verifies_and_inspects() {
    let dir = tempfile::tempdir().expect("tempdir");
    database(dir.path());
    let verified = inmem(&["verify"], dir.path());
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert!(stdout(&verified).ends_with("no damage\n"), "{}", stdout(&verified));
    let inspected = inmem(&["inspect"], dir.path());
    assert!(inspected.status.success());
    let text = stdout(&inspected);
    assert!(text.contains("checkpoints (1):") && text.contains("segments (1):"), "{text}");
    assert!(text.contains("50 keys"), "{text}");
}

#[test]
fn a_damaged_checkpoint_is_reported_with_its_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (checkpoint, _) = database(dir.path());
    flip(&checkpoint, 100);
    let before = std::fs::read(&checkpoint).expect("read");
    let verified = inmem(&["verify"], dir.path());
    assert_eq!(verified.status.code(), Some(1));
    let text = stdout(&verified);
    assert!(text.contains("DAMAGED") && text.contains(&checkpoint.display().to_string()), "{text}");
    assert!(text.contains("at offset 48"), "the first block: {text}");
    assert_eq!(std::fs::read(&checkpoint).expect("read"), before, "verify changes nothing");
}

#[test]
fn damage_inside_the_log_is_reported_with_what_point_in_time_recovery_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, segment) = database(dir.path());
    // An open with default options may cut up to 24 MiB of the tail as torn (8 MiB queued
    // and a 16 MiB record): write more than that after the damage to come.
    let buffered = Options::default()
        .checkpoint_log_bytes(0)
        .durability(inmem::Durability::Buffered { interval: std::time::Duration::from_secs(1) });
    let db = Database::open(dir.path(), buffered).expect("open");
    for index in 0u32..400 {
        db.put(index.to_le_bytes(), vec![7u8; 64 << 10]).expect("put");
    }
    db.close().expect("close");
    // Inside an early frame: far more than a batch from the end.
    flip(&segment, 4096 + 40);
    let before = std::fs::read(&segment).expect("read");
    let verified = inmem(&["verify"], dir.path());
    assert_eq!(verified.status.code(), Some(1));
    let text = stdout(&verified);
    let name = segment.file_name().expect("name").to_string_lossy().into_owned();
    assert!(text.contains("DAMAGED") && text.contains(&name), "{text}");
    assert!(text.contains("PointInTime would keep positions 0.."), "{text}");
    assert_eq!(std::fs::read(&segment).expect("read"), before, "verify changes nothing");
}

#[test]
fn a_torn_tail_is_reported_and_left_for_an_open_to_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, segment) = database(dir.path());
    let inspected = stdout(&inmem(&["inspect"], dir.path()));
    let end: usize = inspected
        .lines()
        .find_map(|line| line.strip_prefix("log: positions 0.."))
        .and_then(|rest| rest.split(',').next())
        .and_then(|end| end.parse().ok())
        .expect("the log's end");
    // The last frame's final byte (its checksum), just before the end.
    flip(&segment, 4096 + end - 1);
    let before = std::fs::read(&segment).expect("read");
    let verified = inmem(&["verify"], dir.path());
    assert_eq!(verified.status.code(), Some(1));
    assert!(stdout(&verified).contains("torn tail"), "{}", stdout(&verified));
    assert_eq!(std::fs::read(&segment).expect("read"), before, "verify cuts nothing");
}
