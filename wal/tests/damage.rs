//! Recovery of damaged logs: torn tails of every length, a bit flip in every byte, damage
//! in the middle of the log, and the three recovery modes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use inmem_wal::{Error, FrameKind, LogPosition, RecoveryMode, Wal, WalOptions};

/// Two segments' worth of a small log; the window (one batch) covers a whole segment.
fn options() -> WalOptions {
    WalOptions::default().segment_size(8192).max_record_bytes(200).max_queued_bytes(4096)
}

fn record(index: usize) -> Vec<u8> {
    vec![index as u8 ^ 0x5a; 40 + index * 7 % 120]
}

/// Writes `count` records, closes the log; returns their positions and the segment files.
fn write_log(dir: &Path, count: usize) -> (Vec<LogPosition>, Vec<PathBuf>) {
    let wal = Wal::open(dir, options()).expect("open");
    let positions = (0..count)
        .map(|i| wal.append_sync(FrameKind::RECORD, &record(i)).expect("append"))
        .collect();
    wal.close().expect("close");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    (positions, files)
}

fn read_back(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_from(wal.first_position())
        .expect("reader")
        .map(|record| record.expect("record").payload)
        .collect()
}

fn offset_in_segment(segment: &Path, position: LogPosition) -> u64 {
    let name = segment.file_stem().unwrap().to_str().unwrap();
    4096 + position.get() - name.parse::<u64>().unwrap()
}

#[test]
fn a_torn_last_frame_of_every_length_is_cut_durably_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, files) = write_log(dir.path(), 60);
    let newest = files.last().unwrap().clone();
    let last = *positions.last().unwrap();
    let start = offset_in_segment(&newest, last);
    let original = std::fs::read(&newest).unwrap();
    let frame_len = (record(59).len() + 24) as u64; // the padding after it carries nothing
    for kept in 0..frame_len {
        for filler in [0u8, 0xab] {
            let mut torn = original.clone();
            for byte in &mut torn[(start + kept) as usize..(start + frame_len) as usize] {
                *byte = filler;
            }
            std::fs::write(&newest, &torn).unwrap();
            let wal = Wal::open(dir.path(), options()).expect("a torn tail is recoverable");
            let read = read_back(&wal);
            assert_eq!(read.len(), 59, "kept {kept} filler {filler}");
            assert!(read.iter().enumerate().all(|(i, r)| *r == record(i)));
            let something_written = kept > 0 || filler != 0;
            assert_eq!(wal.recovery_report().cut.is_some(), something_written, "kept {kept}");
            drop(wal);
            let again = Wal::open(dir.path(), options()).expect("reopen");
            assert!(again.recovery_report().cut.is_none(), "the cut was made durable");
            again.append_sync(FrameKind::RECORD, b"after the cut").expect("append");
            drop(again);
            let last = read_back(&Wal::open(dir.path(), options()).expect("reopen"));
            assert_eq!(last.len(), 60);
            assert_eq!(last[59], b"after the cut");
        }
    }
    std::fs::write(&newest, &original).unwrap();
}

#[test]
fn a_bit_flip_in_any_byte_is_cut_as_a_torn_tail_or_reported_never_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = write_log(dir.path(), 50);
    assert_eq!(files.len(), 2, "the log spans two segments");
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let restore = || {
        for (file, bytes) in files.iter().zip(&originals) {
            std::fs::write(file, bytes).unwrap();
        }
    };
    let (mut errors, mut cuts) = (0, 0);
    for (which, file) in files.iter().enumerate() {
        for offset in 0..originals[which].len() {
            restore();
            let mut flipped = originals[which].clone();
            flipped[offset] ^= 1 << (offset % 8);
            std::fs::write(file, &flipped).unwrap();
            match Wal::open(dir.path(), options()) {
                Err(error) => {
                    let message = error.to_string();
                    let name = file.file_name().unwrap().to_str().unwrap();
                    assert!(message.contains(name), "file {which} offset {offset}: {message}");
                    errors += 1;
                }
                Ok(wal) => {
                    let read = read_back(&wal);
                    assert!(
                        read.iter().enumerate().all(|(i, r)| *r == record(i)),
                        "file {which} offset {offset}: a damaged record was read as valid"
                    );
                    assert!(
                        wal.recovery_report().cut.is_some(),
                        "file {which} offset {offset}: the flip passed silently"
                    );
                    assert_eq!(which, 1, "only the newest segment's tail may be cut");
                    cuts += 1;
                }
            }
        }
    }
    restore();
    assert!(errors > 0 && cuts > 0, "errors {errors} cuts {cuts}");
}

#[test]
fn damage_in_the_middle_of_the_log_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, files) = write_log(dir.path(), 50);
    let first = &files[0];
    let offset = offset_in_segment(first, positions[3]) + 20;
    let mut bytes = std::fs::read(first).unwrap();
    bytes[offset as usize] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();
    let error = Wal::open(dir.path(), options()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(first.file_name().unwrap().to_str().unwrap()), "{message}");
    assert!(message.contains(&format!("offset {}", offset - 20)), "{message}");
    // Strict refuses too, and PointInTime keeps the three records before the damage.
    let strict = Wal::open(dir.path(), options().recovery(RecoveryMode::Strict));
    assert!(strict.is_err());
    let wal = Wal::open(dir.path(), options().recovery(RecoveryMode::PointInTime)).expect("open");
    assert_eq!(read_back(&wal).len(), 3);
    assert_eq!(wal.recovery_report().dropped.len(), 1, "the later segment is set aside");
    assert!(wal.recovery_report().dropped[0].exists(), "set aside, not deleted");
}

#[test]
fn strict_refuses_a_torn_tail_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, files) = write_log(dir.path(), 10);
    let newest = files.last().unwrap();
    let start = offset_in_segment(newest, *positions.last().unwrap()) as usize;
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[start + 30] ^= 0x10;
    std::fs::write(newest, &bytes).unwrap();
    let error = Wal::open(dir.path(), options().recovery(RecoveryMode::Strict)).unwrap_err();
    assert!(error.to_string().contains(&format!("offset {start}")), "{error}");
    assert_eq!(std::fs::read(newest).unwrap(), bytes, "strict modifies nothing");
}

#[test]
fn an_unfinished_segment_file_is_removed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    let leftover = dir.path().join("00000000000000999999.wal.tmp");
    std::fs::write(&leftover, b"half made").unwrap();
    let wal = Wal::open(dir.path(), options()).expect("open");
    assert_eq!(wal.recovery_report().removed_unfinished, vec![leftover.clone()]);
    assert!(!leftover.exists());
    assert_eq!(read_back(&wal).len(), 5);
}

#[test]
fn a_huge_length_field_is_damage_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, files) = write_log(dir.path(), 3);
    let newest = files.last().unwrap();
    let start = offset_in_segment(newest, positions[2]) as usize;
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[start..start + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(newest, &bytes).unwrap();
    let wal = Wal::open(dir.path(), options()).expect("a torn tail");
    assert_eq!(read_back(&wal).len(), 2);
    assert!(wal.recovery_report().cut.is_some());
}
