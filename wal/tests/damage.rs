//! Recovery of damaged logs: torn tails of every length, a bit flip in every byte, damage
//! in the middle of the log, and the three recovery modes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;

use common::{segments, zero_close_trailer};

use inmem_wal::format::{Damage, FRONTIER_SLOT_OFFSETS, SLOT_SECTOR_LEN};
use inmem_wal::{Error, FrameKind, LogPosition, RecoveryMode, Wal, WalOptions};

/// Two segments' worth of a small log; the window (one batch) covers a whole segment.
fn options() -> WalOptions {
    WalOptions::default().segment_size(8192).max_record_bytes(200).max_queued_bytes(4096)
}

fn record(index: usize) -> Vec<u8> {
    vec![index as u8 ^ 0x5a; 40 + index * 7 % 120]
}

/// Writes `count` records and leaves the log as a crash after the last one's sync would:
/// closed, its close trailer zeroed. Returns their positions and the segment files.
fn write_log(dir: &Path, count: usize) -> (Vec<LogPosition>, Vec<PathBuf>) {
    let wal = Wal::open(dir, options()).expect("open");
    let positions: Vec<LogPosition> = (0..count)
        .map(|i| wal.append_sync(FrameKind::RECORD, &record(i)).expect("append"))
        .collect();
    let end = wal.end_position();
    wal.close().expect("close");
    zero_close_trailer(dir, end);
    (positions, segments(dir))
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
    let frame_len = (record(59).len() + 32) as u64; // the padding after it carries nothing
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
                    // A flip in a frontier slot loses nothing and is reported with the
                    // segment's frontier (read to its end if no slot is left valid).
                    let in_slot = FRONTIER_SLOT_OFFSETS.iter().any(|&slot| {
                        (slot..slot + SLOT_SECTOR_LEN as u64).contains(&(offset as u64))
                    });
                    let report = wal.recovery_report();
                    let frontier = report.frontiers.iter().find(|f| &f.path == file);
                    if in_slot {
                        assert!(
                            frontier.is_some_and(|f| f.invalid_slots == 1),
                            "file {which} offset {offset}: {report:?}"
                        );
                        drop(wal);
                        continue;
                    }
                    assert!(
                        report.cut.is_some(),
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

/// Minimum-size segments, one frame per write batch: the window recovery may cut after a
/// torn frame is about one frame long, far less than a segment.
fn small_window_options() -> WalOptions {
    WalOptions::default().segment_size(8192).max_record_bytes(1000).max_queued_bytes(8)
}

/// Appends records of `len` bytes until the log has rotated into a new segment; returns
/// the payloads appended.
fn append_past_a_rotation(wal: &Wal, len: usize) -> Vec<Vec<u8>> {
    let first_segment = wal.end_position();
    let mut appended = Vec::new();
    while appended.len() < 64 {
        let payload = vec![0xc3 ^ appended.len() as u8; len];
        wal.append_sync(FrameKind::RECORD, &payload).expect("append");
        appended.push(payload);
        if wal.end_position().get() - first_segment.get() > 4096 {
            break;
        }
    }
    appended
}

#[test]
fn written_bytes_beyond_one_batch_after_a_torn_frame_are_refused_or_all_cut_never_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small_window_options()).expect("open");
    let positions: Vec<LogPosition> = (0..13)
        .map(|i| wal.append_sync(FrameKind::RECORD, &[i as u8 + 1; 258]).expect("append"))
        .collect();
    wal.close().expect("close");
    let segment = dir.path().join("00000000000000000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    // Frame 9 of 13 is damaged; frames 10 to 12 run past what one batch could have left.
    let damaged = offset_in_segment(&segment, positions[9]);
    bytes[damaged as usize + 40] ^= 0x04;
    std::fs::write(&segment, &bytes).unwrap();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let error = Wal::open(dir.path(), small_window_options().recovery(mode)).unwrap_err();
        assert!(error.to_string().contains("00000000000000000000.wal"), "{mode:?}: {error}");
        assert_eq!(std::fs::read(&segment).unwrap(), bytes, "{mode:?} changed the segment");
    }
    let options = small_window_options().recovery(RecoveryMode::PointInTime);
    let wal = Wal::open(dir.path(), options.clone()).expect("point in time keeps the prefix");
    let cut = wal.recovery_report().cut.clone().expect("a cut");
    assert_eq!(cut.offset, damaged);
    // The last frame is 24 + 258 + 8 bytes, padded to 296; the close trailer's 32 follow.
    assert_eq!(
        cut.offset + cut.bytes,
        offset_in_segment(&segment, positions[12]) + 296 + 32,
        "to the last written byte"
    );
    assert_eq!(read_back(&wal).len(), 9);
    let appended = append_past_a_rotation(&wal, 1000);
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), small_window_options()).expect("the finished segment is clean");
    let read = read_back(&wal);
    assert_eq!(read.len(), 9 + appended.len());
    assert_eq!(read[9..], appended[..]);
}

#[test]
fn a_stray_byte_far_past_the_end_of_the_newest_segment_is_refused_not_left_to_break_it_later() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small_window_options()).expect("open");
    wal.append_sync(FrameKind::RECORD, b"the only record").expect("append");
    wal.close().expect("close");
    let segment = dir.path().join("00000000000000000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8191] = 0x55;
    std::fs::write(&segment, &bytes).unwrap();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let error = Wal::open(dir.path(), small_window_options().recovery(mode)).unwrap_err();
        assert!(matches!(error, Error::Inconsistent { .. }), "{mode:?}: {error}");
        assert!(error.to_string().contains("8191"), "{mode:?}: names the offset: {error}");
    }
    let options = small_window_options().recovery(RecoveryMode::PointInTime);
    let wal = Wal::open(dir.path(), options).expect("point in time");
    assert_eq!(wal.recovery_report().cut.as_ref().map(|cut| cut.offset + cut.bytes), Some(8192));
    let appended = append_past_a_rotation(&wal, 1000);
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), small_window_options().recovery(RecoveryMode::Strict))
        .expect("after a rotation the finished segment is clean");
    assert_eq!(read_back(&wal).len(), 1 + appended.len());
}

/// A segment file of `size` bytes whose header says `header_size`, holding frames of
/// `payload_len`-byte payloads from `first` on, the last one wherever `frames` ends.
fn handmade_segment(first: u64, header_size: u64, frames: usize, payload_len: usize) -> Vec<u8> {
    use inmem_wal::format::{encode_frame, SegmentHeader};
    let header =
        SegmentHeader { number: 1, first_position: LogPosition::new(first), size: header_size };
    let mut bytes = header.encode();
    let mut position = first;
    for index in 0..frames {
        let start = bytes.len();
        let payload = vec![index as u8 + 1; payload_len];
        let at = LogPosition::new(position);
        encode_frame(&mut bytes, FrameKind::RECORD, at, &payload, 1, at);
        position += (bytes.len() - start) as u64;
    }
    bytes
}

#[test]
fn a_frame_running_past_its_segments_size_is_damage_even_if_the_file_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("00000000000000000000.wal");
    // 17 frames of 232 bytes fill 3944 of the 4096 frame bytes; the 18th runs 80 past.
    let mut bytes = handmade_segment(0, 8192, 18, 200);
    bytes.resize(12288, 0);
    std::fs::write(&segment, &bytes).unwrap();
    let options = || WalOptions::default().segment_size(8192).max_record_bytes(200);
    let strict = Wal::open(dir.path(), options().recovery(RecoveryMode::Strict)).unwrap_err();
    assert!(
        matches!(strict, Error::Corrupt { offset: 8040, damage: Damage::Truncated { .. }, .. }),
        "{strict}"
    );
    let wal = Wal::open(dir.path(), options()).expect("a torn tail");
    assert_eq!(
        wal.recovery_report().end,
        LogPosition::new(17 * 232),
        "the log ends in its segment"
    );
    assert_eq!(read_back(&wal).len(), 17);
    wal.append_sync(FrameKind::RECORD, b"into the next segment").expect("append");
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), options().recovery(RecoveryMode::Strict)).expect("reopen");
    assert_eq!(read_back(&wal).len(), 18);
}

#[test]
fn a_segment_whose_positions_would_pass_2_to_the_64_is_refused_not_an_overflow() {
    use inmem_wal::format::{segment_file_name, HeaderError};
    let dir = tempfile::tempdir().unwrap();
    let first = u64::MAX - 30;
    let path = dir.path().join(segment_file_name(LogPosition::new(first)));
    std::fs::write(&path, handmade_segment(first, 8192, 0, 0)).unwrap();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let error = Wal::open(dir.path(), options().recovery(mode)).unwrap_err();
        assert!(
            matches!(error, Error::BadSegmentHeader { reason: HeaderError::BadFields, .. }),
            "{mode:?}: {error}"
        );
    }
    let wal = Wal::open(dir.path(), options().recovery(RecoveryMode::PointInTime)).expect("open");
    assert_eq!(wal.recovery_report().dropped.len(), 1, "the segment is set aside");
    assert!(read_back(&wal).is_empty());
}

#[test]
fn a_segment_after_one_numbered_u64_max_is_inconsistent_not_an_overflow() {
    use inmem_wal::format::{segment_file_name, SegmentHeader};
    let dir = tempfile::tempdir().unwrap();
    for (number, first) in [(u64::MAX, 0), (1, 4096)] {
        let header = SegmentHeader { number, first_position: LogPosition::new(first), size: 8192 };
        let mut bytes = header.encode();
        bytes.resize(8192, 0);
        std::fs::write(dir.path().join(segment_file_name(LogPosition::new(first))), bytes).unwrap();
    }
    let error = Wal::open(dir.path(), options()).unwrap_err();
    assert!(matches!(error, Error::Inconsistent { .. }), "{error}");
    assert!(error.to_string().contains("00000000000000004096.wal"), "{error}");
}
