//! The recovery rules of `wal/src/recovery.rs`, one by one, each on a real directory: what
//! every mode opens, cuts, salvages, sets aside or refuses, with the directory's names and
//! bytes compared before and after.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{first_of, offset_in, segment_of, segments, zero_close_trailer};

use inmem_wal::format::{
    decode_frame, segment_file_name, Damage, Decoded, HeaderError, SegmentHeader, Trailer,
    SEGMENT_HEADER_LEN, TRAILER_LEN,
};
use inmem_wal::{
    Durability, Error, FrameKind, LogPosition, RecoveryMode, Wal, WalOptions, DROPPED_SUFFIX,
    SALVAGE_INFIX,
};

const MODES: [RecoveryMode; 3] =
    [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime, RecoveryMode::Strict];
const REFUSING: [RecoveryMode; 2] = [RecoveryMode::TolerateTornTail, RecoveryMode::Strict];

/// Small segments: about thirty records each.
fn small() -> WalOptions {
    WalOptions::default().segment_size(8192).max_record_bytes(200)
}

/// One segment that holds a thousand records.
fn big() -> WalOptions {
    WalOptions::default().segment_size(1 << 20).max_record_bytes(200)
}

fn payload(index: usize) -> Vec<u8> {
    vec![(index % 251) as u8 + 1; 40 + index * 13 % 120]
}

fn payloads(indices: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    indices.map(payload).collect()
}

/// Appends `count` records one `append_sync` at a time (one batch each) and closes the log
/// cleanly, leaving a close trailer at its end; returns their positions and the end.
fn write_log(dir: &Path, options: &WalOptions, count: usize) -> (Vec<LogPosition>, LogPosition) {
    let wal = Wal::open(dir, options.clone()).expect("open");
    let positions =
        (0..count).map(|i| wal.append_sync(FrameKind::RECORD, &payload(i)).expect("append"));
    let positions: Vec<LogPosition> = positions.collect();
    let end = wal.end_position();
    wal.close().expect("close");
    (positions, end)
}

/// Flips the bits of one byte.
fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// A byte of the payload of the record at `position`: a flip there is a checksum mismatch.
fn flip_payload(dir: &Path, position: LogPosition) -> (PathBuf, usize) {
    let segment = segment_of(dir, position);
    let offset = offset_in(&segment, position);
    flip(&segment, offset + 24 + 10);
    (segment, offset)
}

/// Every file name in `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_str().unwrap().to_owned(), std::fs::read(&path).unwrap())
        })
        .collect()
}

/// Opens `dir` under `options`, expecting a refusal; checks that no file name or byte in
/// the directory changed; returns the error.
fn refused_unchanged(dir: &Path, options: &WalOptions) -> Error {
    let before = snapshot(dir);
    let error = Wal::open(dir, options.clone()).expect_err("the open is refused");
    assert_eq!(snapshot(dir), before, "{}: a refused open changed the directory", options.recovery);
    error
}

fn read_from(wal: &Wal, position: LogPosition) -> Vec<Vec<u8>> {
    let records = wal.read_from(position).expect("reader");
    records.map(|record| record.expect("record").payload).collect()
}

fn read_all(wal: &Wal) -> Vec<Vec<u8>> {
    read_from(wal, wal.first_position())
}

/// `<segment>.salvage-<offset>`.
fn salvage_path(segment: &Path, offset: usize) -> PathBuf {
    let name = segment.file_name().unwrap().to_str().unwrap();
    segment.with_file_name(format!("{name}{SALVAGE_INFIX}{offset}"))
}

/// `<segment>.dropped`.
fn dropped_path(segment: &Path) -> PathBuf {
    let name = segment.file_name().unwrap().to_str().unwrap();
    segment.with_file_name(format!("{name}{DROPPED_SUFFIX}"))
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// A crash image of a thousand records synced one by one into one segment, a payload byte
/// of the 500th flipped; returns the segment, the damaged frame's offset and position.
fn thousand_records_the_500th_flipped(dir: &Path) -> (PathBuf, usize, LogPosition) {
    let (positions, end) = write_log(dir, &big(), 1000);
    zero_close_trailer(dir, end);
    assert_eq!(segments(dir).len(), 1, "one segment");
    let (segment, offset) = flip_payload(dir, positions[499]);
    (segment, offset, positions[499])
}

#[test]
fn corruption_under_later_synced_frames_is_refused_by_tolerate_and_strict_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, offset, position) = thousand_records_the_500th_flipped(dir.path());
    for options in [big(), big().recovery(RecoveryMode::Strict)] {
        let error = refused_unchanged(dir.path(), &options);
        let expected = Error::Corrupt {
            path: segment.clone(),
            offset: offset as u64,
            position,
            damage: Damage::BadChecksum,
        };
        assert_eq!(error, expected, "{}", options.recovery);
        assert!(error.to_string().contains(&format!("offset {offset}")), "{error}");
        let verified = Wal::verify(dir.path(), &options).expect_err("verify predicts it");
        assert_eq!(verified, error, "{}", options.recovery);
    }
}

#[test]
fn point_in_time_keeps_the_records_before_corruption_and_salvages_the_segments_rest_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, offset, position) = thousand_records_the_500th_flipped(dir.path());
    let before = std::fs::read(&segment).unwrap();
    let wal = Wal::open(dir.path(), big().recovery(RecoveryMode::PointInTime)).expect("open");
    assert_eq!(read_all(&wal), payloads(0..499));
    let report = wal.recovery_report().clone();
    assert!(
        matches!(&report.stopped_at, Some(Error::Corrupt { offset: at, .. }) if *at == offset as u64),
        "{:?}",
        report.stopped_at
    );
    let cut = report.cut.expect("the segment's rest is cut");
    assert_eq!((&cut.path, cut.offset, cut.position), (&segment, offset as u64, position));
    assert_eq!(cut.salvage, salvage_path(&segment, offset));
    let end = offset + cut.bytes as usize;
    assert!(is_zero(&before[end..]), "the cut reaches the last written byte");
    assert_eq!(std::fs::read(&cut.salvage).unwrap(), before[offset..end]);
    let after = std::fs::read(&segment).unwrap();
    assert_eq!(after[..offset], before[..offset]);
    assert!(is_zero(&after[offset..]), "the rest is zeroed");
    assert!(report.dropped.is_empty(), "no later segment");
    let names: Vec<String> = snapshot(dir.path()).into_keys().collect();
    assert_eq!(names.len(), 2, "the segment and its salvage file: {names:?}");
}

#[test]
fn point_in_time_stopping_in_a_finished_segment_salvages_its_rest_and_sets_later_ones_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, end) = write_log(dir.path(), &small(), 100);
    zero_close_trailer(dir.path(), end);
    let files = segments(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    let damaged = positions.iter().position(|&p| p > first_of(&files[1])).unwrap() + 2;
    let (segment, offset) = flip_payload(dir.path(), positions[damaged]);
    assert_eq!(segment, files[1]);
    let before = snapshot(dir.path());
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::PointInTime)).expect("open");
    assert_eq!(read_all(&wal), payloads(0..damaged));
    let report = wal.recovery_report().clone();
    let cut = report.cut.expect("a cut");
    let original = &before[segment.file_name().unwrap().to_str().unwrap()];
    let salvaged = std::fs::read(&cut.salvage).unwrap();
    assert_eq!((cut.offset, salvaged.len()), (offset as u64, cut.bytes as usize));
    assert_eq!(salvaged, original[offset..offset + cut.bytes as usize], "the seal included");
    assert!(is_zero(&original[offset + cut.bytes as usize..]));
    let later: Vec<PathBuf> = files[2..].iter().map(|f| dropped_path(f)).collect();
    assert_eq!(report.dropped, later);
    for file in &files[2..] {
        assert!(!file.exists(), "{} was renamed", file.display());
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_eq!(std::fs::read(dropped_path(file)).unwrap(), before[name], "{name}");
    }
}

/// A crash image of `count` records synced one by one, the second half of the last frame
/// overwritten with garbage; returns the newest segment, the last frame's offset and the
/// segment's bytes.
fn torn_last_frame(dir: &Path, count: usize) -> (PathBuf, usize, Vec<u8>) {
    let (positions, end) = write_log(dir, &small(), count);
    zero_close_trailer(dir, end);
    let last = positions[count - 1];
    let segment = segment_of(dir, last);
    let offset = offset_in(&segment, last);
    let len = (end.get() - last.get()) as usize;
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offset + len / 2..offset + len].fill(0xab);
    std::fs::write(&segment, &bytes).unwrap();
    (segment, offset, bytes)
}

#[test]
fn a_torn_last_batch_is_salvaged_byte_for_byte_cut_and_the_log_then_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, offset, torn) = torn_last_frame(dir.path(), 20);
    let wal = Wal::open(dir.path(), small()).expect("a torn tail is cut");
    let cut = wal.recovery_report().cut.clone().expect("a cut");
    assert_eq!((&cut.path, cut.offset), (&segment, offset as u64));
    let end = offset + cut.bytes as usize;
    assert_eq!(cut.salvage, salvage_path(&segment, offset));
    assert_eq!(std::fs::read(&cut.salvage).unwrap(), torn[offset..end], "the bytes removed");
    assert!(is_zero(&torn[end..]), "nothing written is left after the cut");
    let after = std::fs::read(&segment).unwrap();
    assert_eq!(after[..offset], torn[..offset]);
    assert!(is_zero(&after[offset..]));
    assert_eq!(read_all(&wal), payloads(0..19));
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("reopen");
    assert!(wal.recovery_report().is_clean(), "{:?}", wal.recovery_report());
    assert_eq!(read_all(&wal), payloads(0..19));
}

#[test]
fn strict_refuses_a_torn_last_batch_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, offset, _) = torn_last_frame(dir.path(), 20);
    let error = refused_unchanged(dir.path(), &small().recovery(RecoveryMode::Strict));
    assert!(
        matches!(&error, Error::Corrupt { path, offset: at, .. } if *path == segment && *at == offset as u64),
        "{error}"
    );
}

#[test]
fn a_valid_frame_of_the_same_batch_after_damage_proves_nothing_and_the_batch_is_cut_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).expect("open");
    for index in 0..10 {
        wal.append_sync(FrameKind::RECORD, &payload(index)).expect("append");
    }
    let batch: Vec<LogPosition> = (10..13)
        .map(|index| wal.append_to_wait(FrameKind::RECORD, &payload(index)).expect("append"))
        .collect();
    wal.wait_durable(batch[2]).expect("one batch of three");
    let end = wal.end_position();
    wal.close().expect("close");
    zero_close_trailer(dir.path(), end);
    let segment = segment_of(dir.path(), batch[0]);
    let bytes = std::fs::read(&segment).unwrap();
    for &position in &batch {
        let decoded = decode_frame(&bytes[offset_in(&segment, position)..], position, 1, 200);
        let Decoded::Frame(frame) = decoded else { panic!("{decoded:?}") };
        assert_eq!(frame.synced, batch[0], "the batch's frames are stamped with its start");
    }
    let (_, offset) = flip_payload(dir.path(), batch[1]);
    let damaged = std::fs::read(&segment).unwrap();
    let wal = Wal::open(dir.path(), small()).expect("a torn tail");
    let cut = wal.recovery_report().cut.clone().expect("a cut");
    assert_eq!((cut.offset, cut.position), (offset as u64, batch[1]));
    let cut_end = (cut.offset + cut.bytes) as usize;
    assert!(cut_end > offset_in(&segment, batch[2]), "the batch's last frame is cut too");
    assert!(is_zero(&damaged[cut_end..]), "and every written byte after it");
    assert_eq!(read_all(&wal), payloads(0..11));
}

#[test]
fn a_flipped_byte_in_the_last_record_of_a_closed_log_is_refused_as_its_close_trailer_proves_it() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, end) = write_log(dir.path(), &small(), 20);
    let (segment, offset) = flip_payload(dir.path(), positions[19]);
    let error = refused_unchanged(dir.path(), &small());
    let expected = Error::Corrupt {
        path: segment,
        offset: offset as u64,
        position: positions[19],
        damage: Damage::BadChecksum,
    };
    assert_eq!(error, expected);
    // Without the close trailer nothing proves it synced: the same damage is a torn tail.
    zero_close_trailer(dir.path(), end);
    let wal = Wal::open(dir.path(), small()).expect("a torn tail");
    assert_eq!(wal.recovery_report().cut.as_ref().map(|cut| cut.offset), Some(offset as u64));
}

#[test]
fn a_flipped_byte_in_the_close_trailer_is_cut_as_a_torn_tail_losing_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), &small(), 20);
    let segment = segment_of(dir.path(), end);
    let offset = offset_in(&segment, end);
    flip(&segment, offset + 26);
    let damaged = std::fs::read(&segment).unwrap();
    let wal = Wal::open(dir.path(), small()).expect("a torn tail");
    let cut = wal.recovery_report().cut.clone().expect("the trailer is cut");
    assert_eq!((cut.offset, cut.position), (offset as u64, end));
    assert!(cut.bytes as usize <= TRAILER_LEN, "only the trailer: {}", cut.bytes);
    let salvaged = std::fs::read(&cut.salvage).unwrap();
    assert_eq!(salvaged, damaged[offset..offset + cut.bytes as usize]);
    assert_eq!(read_all(&wal), payloads(0..20));
}

#[test]
fn every_finished_segment_is_sealed_where_its_records_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), &small(), 100);
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for pair in files.windows(2) {
        let bytes = std::fs::read(&pair[0]).unwrap();
        let header = SegmentHeader::decode(&bytes).unwrap();
        let next = first_of(&pair[1]);
        let at = offset_in(&pair[0], next);
        let decoded = decode_frame(&bytes[at..], next, header.frame_seed(), 200);
        assert_eq!(decoded, Decoded::Trailer(Trailer::Seal), "{}", pair[0].display());
        assert!(is_zero(&bytes[at + TRAILER_LEN..]), "nothing after the seal");
    }
    let newest = files.last().unwrap();
    let bytes = std::fs::read(newest).unwrap();
    let seed = SegmentHeader::decode(&bytes).unwrap().frame_seed();
    let decoded = decode_frame(&bytes[offset_in(newest, end)..], end, seed, 200);
    assert_eq!(decoded, Decoded::Trailer(Trailer::Close), "the newest is closed, not sealed");
}

/// A closed log of 100 records whose newest segment was deleted; returns the positions,
/// the sealed segment now newest, and the deleted one's first position.
fn newest_segment_deleted(dir: &Path) -> (Vec<LogPosition>, PathBuf, LogPosition) {
    let (positions, _) = write_log(dir, &small(), 100);
    let mut files = segments(dir);
    let deleted = files.pop().unwrap();
    std::fs::remove_file(&deleted).unwrap();
    (positions, files.pop().unwrap(), first_of(&deleted))
}

#[test]
fn a_sealed_newest_segment_is_refused_as_missing_its_successor_except_by_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sealed, _) = newest_segment_deleted(dir.path());
    for mode in REFUSING {
        let error = refused_unchanged(dir.path(), &small().recovery(mode));
        assert!(
            matches!(&error, Error::Inconsistent { path, reason }
                if *path == sealed && reason.contains("the segment after it is missing")),
            "{mode}: {error}"
        );
    }
}

#[test]
fn point_in_time_keeps_a_sealed_newest_segment_whole_and_creates_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, _, missing) = newest_segment_deleted(dir.path());
    let kept = positions.iter().filter(|&&p| p < missing).count();
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::PointInTime)).expect("open");
    let report = wal.recovery_report().clone();
    assert!(report.successor_created, "{report:?}");
    assert_eq!(report.end, missing);
    assert_eq!(read_all(&wal), payloads(0..kept));
    let successor = dir.path().join(segment_file_name(missing));
    assert!(successor.exists(), "the successor is created");
    let after = wal.append_sync(FrameKind::RECORD, b"after the reopen").expect("append");
    assert_eq!(after, missing, "into the successor");
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::Strict)).expect("reopen");
    assert!(wal.recovery_report().is_clean(), "{:?}", wal.recovery_report());
    let mut expected = payloads(0..kept);
    expected.push(b"after the reopen".to_vec());
    assert_eq!(read_all(&wal), expected);
}

/// A closed log of 100 records whose segment `from_newest` before the newest (0: the newest)
/// is truncated where a record of it starts; returns the positions, the segment and the
/// index of that record.
fn segment_cut_short(dir: &Path, from_newest: usize) -> (Vec<LogPosition>, PathBuf, usize) {
    let (positions, _) = write_log(dir, &small(), 100);
    let files = segments(dir);
    assert!(files.len() >= 3, "{files:?}");
    let segment = files[files.len() - 1 - from_newest].clone();
    let first = first_of(&segment);
    let cut = positions.iter().position(|&p| p > first).unwrap() + 3;
    assert_eq!(segment_of(dir, positions[cut]), segment, "the cut record is in it");
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(offset_in(&segment, positions[cut]) as u64).unwrap();
    (positions, segment, cut)
}

#[test]
fn a_newest_or_middle_segment_cut_short_at_a_frame_boundary_is_refused_by_tolerate_and_strict() {
    for from_newest in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let (_, segment, _) = segment_cut_short(dir.path(), from_newest);
        for mode in REFUSING {
            let error = refused_unchanged(dir.path(), &small().recovery(mode));
            assert!(
                matches!(&error, Error::Inconsistent { path, reason }
                    if *path == segment && reason.contains("cut short")),
                "{from_newest} from the newest, {mode}: {error}"
            );
        }
    }
}

#[test]
fn point_in_time_keeps_the_records_of_a_newest_segment_cut_short_and_gives_it_its_size_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_, segment, cut) = segment_cut_short(dir.path(), 0);
    let short = std::fs::read(&segment).unwrap();
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::PointInTime)).expect("open");
    let report = wal.recovery_report().clone();
    assert_eq!(report.extended, Some(segment.clone()));
    assert_eq!(report.cut, None);
    let extended = std::fs::read(&segment).unwrap();
    assert_eq!(extended.len(), 8192);
    assert!(extended[..short.len()] == short[..], "the header and records it held are kept");
    assert!(is_zero(&extended[short.len()..]));
    assert_eq!(read_all(&wal), payloads(0..cut));
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("the log reopens");
    assert_eq!(read_all(&wal), payloads(0..cut));
}

#[test]
fn point_in_time_keeps_the_records_of_a_middle_segment_cut_short_and_gives_it_its_size_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_, segment, cut) = segment_cut_short(dir.path(), 1);
    let short = std::fs::read(&segment).unwrap();
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::PointInTime)).expect("open");
    let report = wal.recovery_report().clone();
    assert_eq!(read_all(&wal), payloads(0..cut));
    assert_eq!(report.dropped.len(), 1, "the newest is set aside");
    assert_eq!(report.extended, Some(segment.clone()));
    let extended = std::fs::read(&segment).unwrap();
    assert_eq!(extended.len(), 8192);
    assert!(extended[..short.len()] == short[..], "the header and records it held are kept");
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("the log reopens");
    assert_eq!(read_all(&wal), payloads(0..cut));
}

#[test]
fn a_log_missing_its_first_segment_is_refused_by_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, _) = write_log(dir.path(), &small(), 100);
    let files = segments(dir.path());
    std::fs::remove_file(&files[0]).unwrap();
    // Replay from the start, or from a record of the missing segment.
    for checkpointed in [LogPosition::ZERO, positions[10]] {
        for mode in MODES {
            let options = small().recovery(mode).checkpointed(checkpointed);
            let error = refused_unchanged(dir.path(), &options);
            assert!(
                matches!(&error, Error::Inconsistent { path, reason }
                    if *path == files[1] && reason.contains("an earlier segment is missing")),
                "{mode} {checkpointed}: {error}"
            );
        }
    }
}

#[test]
fn a_log_missing_its_first_segment_opens_checkpointed_at_or_after_the_second_segments_start() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, _) = write_log(dir.path(), &small(), 100);
    let files = segments(dir.path());
    std::fs::remove_file(&files[0]).unwrap();
    let second = first_of(&files[1]);
    let later = positions[positions.len() - 5];
    for mode in MODES {
        for checkpointed in [second, later] {
            let options = small().recovery(mode).checkpointed(checkpointed);
            let wal = Wal::open(dir.path(), options).expect("open");
            assert!(wal.recovery_report().is_clean(), "{mode} {checkpointed}");
            let from = positions.iter().position(|&p| p == checkpointed).unwrap();
            assert_eq!(read_from(&wal, checkpointed), payloads(from..100), "{mode}");
        }
    }
}

/// Opens `dir` with damage below `checkpointed` in each mode but `Strict`: it opens, reports
/// exactly `expected` as covered, changes nothing, and reads back every record from
/// `checkpointed` on (`from`: its index); `Strict` refuses.
fn covered_damage_opens(dir: &Path, checkpointed: LogPosition, from: usize, expected: &Error) {
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
        // (Each open's clean close may add a close trailer: compared while it is open.)
        let before = snapshot(dir);
        let wal = Wal::open(dir, small().recovery(mode).checkpointed(checkpointed)).expect("open");
        assert_eq!(wal.recovery_report().covered, std::slice::from_ref(expected), "{mode}");
        assert_eq!(wal.recovery_report().cut, None, "{mode}");
        assert_eq!(snapshot(dir), before, "{mode}: covered damage is left in place");
        assert_eq!(read_from(&wal, checkpointed), payloads(from..100), "{mode}");
        // Below the checkpointed position nothing is readable: the log starts there.
        assert_eq!(wal.first_position(), checkpointed, "{mode}");
        assert_eq!(read_all(&wal), payloads(from..100), "{mode}");
    }
    let strict = small().recovery(RecoveryMode::Strict).checkpointed(checkpointed);
    assert_eq!(&refused_unchanged(dir, &strict), expected);
}

#[test]
fn damage_in_an_older_segment_below_checkpointed_is_covered_reported_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, _) = write_log(dir.path(), &small(), 100);
    let (segment, offset) = flip_payload(dir.path(), positions[5]);
    assert_eq!(segment, segments(dir.path())[0]);
    let expected = Error::Corrupt {
        path: segment,
        offset: offset as u64,
        position: positions[5],
        damage: Damage::BadChecksum,
    };
    let second = first_of(&segments(dir.path())[1]);
    let from = positions.iter().position(|&p| p > second).unwrap() + 1;
    covered_damage_opens(dir.path(), positions[from], from, &expected);
}

#[test]
fn damage_in_the_newest_segment_below_checkpointed_is_covered_reported_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, end) = write_log(dir.path(), &small(), 100);
    zero_close_trailer(dir.path(), end);
    let (segment, offset) = flip_payload(dir.path(), positions[95]);
    assert_eq!(&segment, segments(dir.path()).last().unwrap());
    let expected = Error::Corrupt {
        path: segment,
        offset: offset as u64,
        position: positions[95],
        damage: Damage::BadChecksum,
    };
    covered_damage_opens(dir.path(), positions[97], 97, &expected);
}

#[test]
fn a_checkpointed_position_past_the_end_of_a_closed_log_is_refused_by_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), &small(), 100);
    let past = LogPosition::new(end.get() + 800);
    for mode in MODES {
        let error = refused_unchanged(dir.path(), &small().recovery(mode).checkpointed(past));
        let says = format!("ends at position {end}, before position {past}");
        assert!(error.to_string().contains(&says), "{mode}: {error}");
    }
}

#[test]
fn a_checkpointed_position_past_the_end_of_a_crashed_log_is_refused_by_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), &small(), 100);
    zero_close_trailer(dir.path(), end);
    let past = LogPosition::new(end.get() + 800);
    for mode in MODES {
        let error = refused_unchanged(dir.path(), &small().recovery(mode).checkpointed(past));
        let says = format!("ends at position {end}, before position {past}");
        assert!(error.to_string().contains(&says), "{mode}: {error}");
    }
}

/// Rewrites the header of `segment` as format version `version` would have it (its
/// fields, checksum included).
fn make_version(segment: &Path, version: u32) {
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[0..40]);
    bytes[40..48].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(segment, bytes).unwrap();
}

#[test]
fn a_version_1_2_or_3_segment_header_is_refused_naming_its_version_and_the_one_this_build_reads() {
    for version in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &small(), 5);
        let segment = segments(dir.path()).pop().unwrap();
        make_version(&segment, version);
        for mode in REFUSING {
            let error = refused_unchanged(dir.path(), &small().recovery(mode));
            assert!(
                matches!(&error, Error::BadSegmentHeader {
                    path, reason: HeaderError::UnsupportedVersion { found } }
                    if *path == segment && *found == version),
                "{mode}: {error}"
            );
            let message = error.to_string();
            assert!(message.contains(&format!("format version {version}")), "{message}");
            assert!(message.contains("this build reads only version 4"), "{message}");
        }
    }
}

/// A way to damage a log, and the modes that refuse it.
type Damaging = (&'static str, fn(&Path) -> WalOptions, &'static [RecoveryMode]);

fn corruption_below_a_stamp(dir: &Path) -> WalOptions {
    let (positions, end) = write_log(dir, &small(), 60);
    zero_close_trailer(dir, end);
    flip_payload(dir, positions[40]);
    small()
}

fn a_torn_tail(dir: &Path) -> WalOptions {
    torn_last_frame(dir, 20);
    small()
}

fn a_sealed_newest_segment(dir: &Path) -> WalOptions {
    newest_segment_deleted(dir);
    small()
}

fn the_newest_segment_cut_short(dir: &Path) -> WalOptions {
    segment_cut_short(dir, 0);
    small()
}

fn the_first_segment_missing(dir: &Path) -> WalOptions {
    write_log(dir, &small(), 100);
    std::fs::remove_file(&segments(dir)[0]).unwrap();
    small()
}

fn a_checkpoint_past_the_end(dir: &Path) -> WalOptions {
    let (_, end) = write_log(dir, &small(), 10);
    small().checkpointed(LogPosition::new(end.get() + 8))
}

fn a_version_1_header(dir: &Path) -> WalOptions {
    write_log(dir, &small(), 10);
    make_version(&segments(dir)[0], 1);
    small()
}

#[test]
fn a_refused_open_changes_no_file_name_or_byte_in_the_directory() {
    let cases: [Damaging; 7] = [
        ("corruption below a stamp", corruption_below_a_stamp, &REFUSING),
        ("a torn tail", a_torn_tail, &[RecoveryMode::Strict]),
        ("a sealed newest segment", a_sealed_newest_segment, &REFUSING),
        ("the newest segment cut short", the_newest_segment_cut_short, &REFUSING),
        ("the first segment missing", the_first_segment_missing, &MODES),
        ("a checkpoint past the end", a_checkpoint_past_the_end, &MODES),
        ("a version 1 header", a_version_1_header, &REFUSING),
    ];
    for (what, damage, modes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let options = damage(dir.path());
        let before = snapshot(dir.path());
        for &mode in modes {
            let options = options.clone().recovery(mode);
            let error = Wal::open(dir.path(), options.clone()).expect_err(what);
            assert_eq!(snapshot(dir.path()), before, "{what}, {mode}: {error}");
            assert_eq!(Wal::verify(dir.path(), &options).expect_err(what), error, "{what}");
        }
    }
}

#[test]
fn buffered_frames_are_stamped_monotonically_at_most_their_position_and_past_a_synced_wait() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_secs(3600);
    let wal =
        Wal::open(dir.path(), big().durability(Durability::Buffered { interval })).expect("open");
    let mut positions: Vec<LogPosition> =
        (0..20).map(|i| wal.append(FrameKind::RECORD, &payload(i)).expect("append")).collect();
    let waited = positions[10];
    wal.wait_durable(waited).expect("durable");
    let synced = wal.durable_position();
    assert!(synced > waited);
    let after_wait = positions.len();
    positions.extend((20..40).map(|i| wal.append(FrameKind::RECORD, &payload(i)).expect("append")));
    // What is on disk (the page cache, which a crash of the process leaves) once the last
    // frame is written, unsynced.
    let segment = dir.path().join(segment_file_name(LogPosition::ZERO));
    let last = *positions.last().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let bytes = loop {
        let bytes = std::fs::read(&segment).unwrap();
        let at = offset_in(&segment, last);
        if matches!(decode_frame(&bytes[at..], last, 1, 200), Decoded::Frame(_)) {
            break bytes;
        }
        assert!(std::time::Instant::now() < deadline, "the last frame is never written");
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut stamps = Vec::new();
    for &position in &positions {
        let decoded = decode_frame(&bytes[offset_in(&segment, position)..], position, 1, 200);
        let Decoded::Frame(frame) = decoded else { panic!("{position}: {decoded:?}") };
        assert!(frame.synced <= position, "{position} stamped {}", frame.synced);
        stamps.push(frame.synced);
    }
    assert!(stamps.windows(2).all(|pair| pair[0] <= pair[1]), "monotone: {stamps:?}");
    for (position, stamp) in positions[after_wait..].iter().zip(&stamps[after_wait..]) {
        assert!(*stamp >= synced && *stamp > waited, "{position} stamped {stamp}");
    }
    drop(wal);
}

#[test]
fn a_crash_between_creating_a_segment_and_sealing_its_predecessor_is_sealed_by_an_open_and_stays_openable(
) {
    let dir = tempfile::tempdir().unwrap();
    let (positions, _) = write_log(dir.path(), &small(), 40);
    let files = segments(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    // The newest holds its header only; the seal of the one before it was never written.
    let mut newest = std::fs::read(&files[1]).unwrap();
    newest[SEGMENT_HEADER_LEN as usize..].fill(0);
    std::fs::write(&files[1], newest).unwrap();
    let second = first_of(&files[1]);
    let seal = offset_in(&files[0], second);
    let mut older = std::fs::read(&files[0]).unwrap();
    older[seal..seal + TRAILER_LEN].fill(0);
    std::fs::write(&files[0], older).unwrap();
    let kept = positions.iter().filter(|&&p| p < second).count();
    // Strict changes nothing, so it refuses to write the missing seal.
    let error = refused_unchanged(dir.path(), &small().recovery(RecoveryMode::Strict));
    assert!(error.to_string().contains("not sealed"), "{error}");
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
        let wal = Wal::open(dir.path(), small().recovery(mode)).expect("open");
        assert_eq!(read_all(&wal), payloads(0..kept), "{mode}");
    }
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::Strict)).expect("now sealed");
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("open");
    wal.append_sync(FrameKind::RECORD, b"into the newest").expect("append");
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), small()).expect("the log stays openable");
    assert_eq!(read_all(&wal).len(), kept + 1);
}

#[test]
fn a_second_point_in_time_cut_at_the_same_offset_keeps_the_first_salvage_file() {
    let dir = tempfile::tempdir().unwrap();
    let options = big().recovery(RecoveryMode::PointInTime);
    let (positions, _) = write_log(dir.path(), &options, 40);
    let (segment, offset) = flip_payload(dir.path(), positions[20]);
    let wal = Wal::open(dir.path(), options.clone()).expect("open");
    let first = wal.recovery_report().cut.clone().expect("a cut");
    let first_salvage = std::fs::read(&first.salvage).unwrap();
    assert_eq!(first.offset, offset as u64);
    // The log goes on from the cut with other records, and the same frame is damaged again.
    for index in 20..40 {
        wal.append_sync(FrameKind::RECORD, &payload(index + 100)).expect("append");
    }
    wal.close().expect("close");
    assert_eq!(flip_payload(dir.path(), positions[20]), (segment, offset));
    let wal = Wal::open(dir.path(), options).expect("open");
    assert_eq!(wal.recovery_report().cut.as_ref().map(|cut| cut.offset), Some(offset as u64));
    let kept = snapshot(dir.path()).into_values().any(|bytes| bytes == first_salvage);
    assert!(kept, "the bytes the first cut salvaged are gone");
}

#[test]
fn a_second_point_in_time_setting_aside_a_segment_of_the_same_name_keeps_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let options = small().recovery(RecoveryMode::PointInTime);
    // Records of one size: the segments roll over at the same positions every time.
    let append = |wal: &Wal, count: usize, fill: u8| -> Vec<LogPosition> {
        let record = |_| wal.append_sync(FrameKind::RECORD, &[fill; 100]).expect("append");
        (0..count).map(record).collect()
    };
    let wal = Wal::open(dir.path(), options.clone()).expect("open");
    let positions = append(&wal, 40, 0x11);
    wal.close().expect("close");
    let later = segments(dir.path())[1].clone();
    flip_payload(dir.path(), positions[20]);
    let wal = Wal::open(dir.path(), options.clone()).expect("open");
    assert_eq!(wal.recovery_report().dropped, [dropped_path(&later)]);
    let first_aside = std::fs::read(dropped_path(&later)).unwrap();
    // The log goes on from record 20 with other records, and rolls over at the same place.
    assert_eq!(append(&wal, 20, 0x22), positions[20..40]);
    wal.close().expect("close");
    assert!(later.exists(), "a new segment of the same name");
    flip_payload(dir.path(), positions[25]);
    let wal = Wal::open(dir.path(), options).expect("open");
    assert_eq!(wal.recovery_report().dropped.len(), 1);
    let kept = snapshot(dir.path()).into_values().any(|bytes| bytes == first_aside);
    assert!(kept, "the segment the first open set aside is gone");
}

#[test]
fn point_in_time_walks_the_segment_before_an_unreadable_one_as_the_newest_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, _) = write_log(dir.path(), &small(), 20);
    assert_eq!(segments(dir.path()).len(), 1);
    // An empty file named for a position inside the segment's records.
    let bogus = dir.path().join(inmem_wal::format::segment_file_name(positions[5]));
    std::fs::write(&bogus, b"").unwrap();
    for mode in REFUSING {
        refused_unchanged(dir.path(), &small().recovery(mode));
    }
    let wal = Wal::open(dir.path(), small().recovery(RecoveryMode::PointInTime)).expect("open");
    assert_eq!(read_all(&wal), payloads(0..20), "every record of the readable segment");
    let mut aside = bogus.into_os_string();
    aside.push(inmem_wal::DROPPED_SUFFIX);
    assert_eq!(wal.recovery_report().dropped, [PathBuf::from(aside)]);
}

#[test]
fn an_unfinished_segment_holding_more_than_a_header_is_set_aside_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &small(), 5);
    let header_only = dir.path().join("00000000000000999999.wal.tmp");
    std::fs::write(&header_only, vec![0x11u8; SEGMENT_HEADER_LEN as usize]).unwrap();
    let more = dir.path().join("00000000000000888888.wal.tmp");
    let mut bytes = vec![0u8; 8192];
    bytes[5000] = 1;
    std::fs::write(&more, &bytes).unwrap();
    refused_unchanged(dir.path(), &small().recovery(RecoveryMode::Strict));
    let wal = Wal::open(dir.path(), small()).expect("open");
    let report = wal.recovery_report().clone();
    assert_eq!(report.removed_unfinished, std::slice::from_ref(&header_only));
    let mut aside = more.clone().into_os_string();
    aside.push(inmem_wal::DROPPED_SUFFIX);
    assert_eq!(report.dropped, [PathBuf::from(&aside)]);
    assert!(!header_only.exists() && !more.exists());
    assert_eq!(std::fs::read(&aside).unwrap(), bytes, "kept byte for byte");
    assert_eq!(read_all(&wal), payloads(0..5));
}

/// A spare segment file (made ahead of a rotation) holding `bytes`, beside a closed log of
/// five records.
fn log_with_spare(dir: &Path, bytes: &[u8]) -> PathBuf {
    write_log(dir, &small(), 5);
    let spare = dir.join(inmem_wal::SPARE_FILE);
    std::fs::write(&spare, bytes).unwrap();
    spare
}

#[test]
fn a_spare_segment_of_zeroes_is_removed_by_every_mode_and_is_no_finding() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let spare = log_with_spare(dir.path(), &[0u8; 8192]);
        let verified = Wal::verify(dir.path(), &small().recovery(mode)).expect("verify");
        assert_eq!(verified.removed_spare.as_ref(), Some(&spare), "{mode}");
        assert!(spare.exists(), "{mode}: verify changes nothing");
        let wal = Wal::open(dir.path(), small().recovery(mode)).expect("open");
        let report = wal.recovery_report();
        assert_eq!(report.removed_spare.as_ref(), Some(&spare), "{mode}");
        assert!(report.is_clean(), "{mode}: a spare of zeroes holds nothing of the log");
        assert!(!spare.exists(), "{mode}");
        assert_eq!(read_all(&wal), payloads(0..5), "{mode}");
    }
}

#[test]
fn a_spare_segment_holding_a_header_is_an_unfinished_segment() {
    // A crash between a rotation's header write and its rename.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 8192];
    bytes[..SEGMENT_HEADER_LEN as usize].fill(0x11);
    let spare = log_with_spare(dir.path(), &bytes);
    refused_unchanged(dir.path(), &small().recovery(RecoveryMode::Strict));
    let wal = Wal::open(dir.path(), small()).expect("open");
    let report = wal.recovery_report();
    assert_eq!(report.removed_unfinished, std::slice::from_ref(&spare));
    assert_eq!(report.removed_spare, None);
    assert!(!spare.exists());
    assert_eq!(read_all(&wal), payloads(0..5));
}

#[test]
fn a_spare_segment_holding_more_than_a_header_is_set_aside_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 8192];
    bytes[6000] = 7;
    let spare = log_with_spare(dir.path(), &bytes);
    refused_unchanged(dir.path(), &small().recovery(RecoveryMode::Strict));
    let wal = Wal::open(dir.path(), small()).expect("open");
    let mut aside = spare.clone().into_os_string();
    aside.push(inmem_wal::DROPPED_SUFFIX);
    assert_eq!(wal.recovery_report().dropped, [PathBuf::from(&aside)]);
    assert_eq!(std::fs::read(&aside).unwrap(), bytes, "kept byte for byte");
    assert_eq!(read_all(&wal), payloads(0..5));
}
