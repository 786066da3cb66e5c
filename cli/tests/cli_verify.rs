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
fn a_clean_directory_verifies_and_inspects_with_each_segment_s_frontier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, segment) = database(dir.path());
    let verified = inmem(&["verify"], dir.path());
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert!(stdout(&verified).ends_with("no damage\n"), "{}", stdout(&verified));
    let inspected = inmem(&["inspect"], dir.path());
    assert!(inspected.status.success());
    let text = stdout(&inspected);
    assert!(text.contains("checkpoints (1):") && text.contains("segments (1):"), "{text}");
    assert!(text.contains("50 keys"), "{text}");
    // A segment starts with its first slot one step past its header: read up to one more.
    let name = segment.file_name().expect("name").to_string_lossy().into_owned();
    let step = inmem::wal::format::FRONTIER_STEP;
    let line =
        format!("frontier: {name}: {}; read up to offset {} of ", 4096 + step, 4096 + 2 * step);
    assert!(text.contains(&line), "inspect: {text}");
    assert!(stdout(&verified).contains(&line), "verify: {}", stdout(&verified));
    // With no valid slot, the segment is read to its end, and that is damage.
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[512..1024].fill(0);
    std::fs::write(&segment, bytes).expect("write");
    let before = std::fs::read(&segment).expect("read");
    let verified = inmem(&["verify"], dir.path());
    assert_eq!(verified.status.code(), Some(1));
    let text = stdout(&verified);
    let damaged = format!("DAMAGED: frontier: {name}: no valid frontier slot; read to its end");
    assert!(text.contains(&damaged), "{text}");
    assert_eq!(std::fs::read(&segment).expect("read"), before, "verify changes nothing");
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
    // Frames after the damage to come prove it synced: it is no torn tail.
    let buffered = Options::default()
        .checkpoint_log_bytes(0)
        .durability(inmem::Durability::Buffered { interval: std::time::Duration::from_secs(1) });
    let db = Database::open(dir.path(), buffered).expect("open");
    for index in 0u32..400 {
        db.put(index.to_le_bytes(), vec![7u8; 64 << 10]).expect("put");
    }
    db.close().expect("close");
    // Inside the first frame after the checkpoint (before it, the checkpoint covers it).
    let replay_from: u64 = stdout(&inmem(&["inspect"], dir.path()))
        .lines()
        .find_map(|line| line.trim().split("replay from position ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|position| position.parse().ok())
        .expect("the checkpoint's position");
    flip(&segment, usize::try_from(4096 + replay_from + 40).expect("fits"));
    let before = std::fs::read(&segment).expect("read");
    let verified = inmem(&["verify"], dir.path());
    assert_eq!(verified.status.code(), Some(1));
    let text = stdout(&verified);
    let name = segment.file_name().expect("name").to_string_lossy().into_owned();
    let offset = format!("offset {}", 4096 + replay_from);
    assert!(text.contains("DAMAGED: TolerateTornTail: refuses") && text.contains(&name), "{text}");
    assert!(text.contains(&offset), "{text}");
    assert!(text.contains("PointInTime: opens"), "{text}");
    assert!(text.contains(&format!("positions 0..{replay_from}")), "{text}");
    assert!(text.contains("stops the log at") && text.contains("copied first to"), "{text}");
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
    // As a crash leaves it (no close trailer), then the last frame's final byte (its
    // checksum), just before the end: nothing proves it was synced.
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[4096 + end..4096 + end + inmem::wal::format::TRAILER_LEN].fill(0);
    std::fs::write(&segment, bytes).expect("write");
    flip(&segment, 4096 + end - 1);
    let before = std::fs::read(&segment).expect("read");
    let verified = inmem(&["verify"], dir.path());
    assert_eq!(verified.status.code(), Some(1));
    let text = stdout(&verified);
    assert!(
        text.contains("TolerateTornTail: opens") && text.contains("cuts a torn tail"),
        "{text}"
    );
    assert!(text.contains("Strict: refuses"), "{text}");
    assert_eq!(std::fs::read(&segment).expect("read"), before, "verify cuts nothing");
}

#[test]
fn a_path_that_holds_no_database_is_refused_with_exit_2_by_verify_and_inspect() {
    let empty = tempfile::tempdir().expect("tempdir");
    let file = empty.path().join("a-file");
    std::fs::write(&file, b"not a database").expect("write");
    for path in [empty.path(), file.as_path(), &empty.path().join("missing")] {
        for command in ["verify", "inspect"] {
            let output = inmem(&[command], path);
            assert_eq!(output.status.code(), Some(2), "{command} {}", path.display());
            let error = String::from_utf8_lossy(&output.stderr);
            assert!(error.contains("holds no inmem database"), "{error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(!stdout(&output).contains("no damage"), "{command}");
        }
    }
}

#[test]
fn inspect_exits_1_on_damage_as_verify_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (checkpoint, _) = database(dir.path());
    assert_eq!(inmem(&["inspect"], dir.path()).status.code(), Some(0));
    flip(&checkpoint, 100);
    let inspected = inmem(&["inspect"], dir.path());
    assert_eq!(inspected.status.code(), Some(1), "{}", stdout(&inspected));
    assert!(stdout(&inspected).contains("damaged"), "{}", stdout(&inspected));
}
