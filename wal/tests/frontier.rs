//! The frontier slots (`format.rs`, "Frontier slots"): recovery reads a segment only up to
//! `M + S`, and the writer keeps property P, so that what it misses was never acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{eventually, offset_in, segments, zero_close_trailer};
use inmem_wal::format::{
    highest_frontier, SegmentHeader, Slot, FRONTIER_SLOT_OFFSETS, FRONTIER_STEP, FRONTIER_STEP_MAX,
    SEGMENT_HEADER_LEN, SLOT_SECTOR_LEN,
};
use inmem_wal::io::fault::FaultIo;
use inmem_wal::io::sim::{CrashMode, SimIo};
use inmem_wal::io::{backend, Io, LogFile};
use inmem_wal::{
    BackendChoice, Durability, Error, FrameKind, LogPosition, RecoveryMode, Wal, WalOptions,
};

const SEGMENT: u64 = 8 << 20;

fn options() -> WalOptions {
    WalOptions::default().segment_size(SEGMENT).max_record_bytes(4 << 20).max_queued_bytes(1 << 20)
}

/// The `index`th record: 64 KiB of a byte of its own, so that 17 of them pass the frontier a
/// segment is created with.
fn record(index: usize) -> Vec<u8> {
    vec![u8::try_from(index % 251).unwrap() + 1; 64 << 10]
}

/// Appends `count` records, each synced; returns their positions and the end.
fn write_log(dir: &Path, count: usize) -> (Vec<LogPosition>, LogPosition) {
    let wal = Wal::open(dir, options()).unwrap();
    let positions = (0..count).map(|i| wal.append_sync(FrameKind::RECORD, &record(i)).unwrap());
    let positions: Vec<_> = positions.collect();
    let end = wal.end_position();
    wal.close().unwrap();
    (positions, end)
}

fn header_and_slots(segment: &Path) -> (SegmentHeader, [Slot; 2]) {
    let bytes = std::fs::read(segment).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let slots = header.decode_slots(&bytes[..SEGMENT_HEADER_LEN as usize]);
    (header, slots)
}

/// The index of the valid slot with the highest frontier.
fn newest_slot(slots: &[Slot; 2]) -> usize {
    let highest = highest_frontier(slots).unwrap();
    slots.iter().position(|slot| slot.valid() == Some(highest)).unwrap()
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

fn zero_slot(segment: &Path, index: usize) {
    let at = FRONTIER_SLOT_OFFSETS[index] as usize;
    edit(segment, |bytes| bytes[at..at + SLOT_SECTOR_LEN].fill(0));
}

fn read_all(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_from(wal.first_position()).unwrap().map(|r| r.unwrap().payload).collect()
}

#[test]
fn a_segment_is_created_with_one_slot_one_step_past_its_header() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let segment = &segments(dir.path())[0];
    let (header, slots) = header_and_slots(segment);
    assert_eq!(slots[1], Slot::Empty);
    let first = slots[0].valid().unwrap();
    assert_eq!((first.sequence, first.frontier), (1, SEGMENT_HEADER_LEN + FRONTIER_STEP));
    assert_eq!(header.scan_end(&slots), SEGMENT_HEADER_LEN + 2 * FRONTIER_STEP);
}

#[test]
fn the_writer_alternates_slots_one_step_at_a_time_and_never_writes_past_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    // 40 records of 64 KiB: about 2.5 steps.
    let (_, end) = write_log(dir.path(), 40);
    let segment = &segments(dir.path())[0];
    let (_, slots) = header_and_slots(segment);
    let (a, b) = (slots[0].valid().unwrap(), slots[1].valid().unwrap());
    assert_eq!(a.sequence.abs_diff(b.sequence), 1, "{slots:?}");
    assert_eq!(a.frontier.abs_diff(b.frontier), FRONTIER_STEP, "{slots:?}");
    let highest = a.frontier.max(b.frontier);
    let written_end = offset_in(segment, end) as u64;
    assert!(written_end < highest && highest <= written_end + 2 * FRONTIER_STEP, "{slots:?}");
    let bytes = std::fs::read(segment).unwrap();
    assert!(bytes[highest as usize..].iter().all(|&b| b == 0), "nothing past the frontier");
}

/// A log of `count` records whose newest slot names a frontier a step past the one before
/// it, with that newest slot zeroed (its write lost, as a lying disk may) and every byte
/// from where records stop to the older slot's frontier zeroed: the records left lie
/// past the older frontier, within one step of it.
fn lost_slot_and_a_zeroed_region(dir: &Path) -> (PathBuf, u64) {
    let (positions, end) = write_log(dir, 40);
    zero_close_trailer(dir, end);
    let segment = segments(dir).pop().unwrap();
    let (_, slots) = header_and_slots(&segment);
    let newest = newest_slot(&slots);
    let older = slots[1 - newest].valid().unwrap().frontier;
    zero_slot(&segment, newest);
    let from = offset_in(&segment, positions[5]);
    assert!(
        offset_in(&segment, end) as u64 > older + (64 << 10),
        "records past the older frontier"
    );
    edit(&segment, |bytes| bytes[from..older as usize].fill(0));
    (segment, from as u64)
}

#[test]
fn frames_past_a_zeroed_region_within_one_step_of_the_frontier_are_found_though_the_newest_slot_was_lost(
) {
    let dir = tempfile::tempdir().unwrap();
    let (segment, from) = lost_slot_and_a_zeroed_region(dir.path());
    let before = std::fs::read(&segment).unwrap();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let error = Wal::open(dir.path(), options().recovery(mode)).expect_err("refused");
        assert!(
            matches!(&error, Error::Inconsistent { path, reason }
                if *path == segment && reason.contains(&format!("zeroed region at offset {from}"))),
            "{mode}: {error}"
        );
        assert_eq!(std::fs::read(&segment).unwrap(), before, "{mode}: nothing changed");
    }
    // PointInTime keeps what came before the zeroed region and salvages the rest.
    let wal = Wal::open(dir.path(), options().recovery(RecoveryMode::PointInTime)).unwrap();
    assert_eq!(read_all(&wal).len(), 5);
    let cut = wal.recovery_report().cut.clone().unwrap();
    assert_eq!(cut.offset, from);
    assert!(cut.offset + cut.bytes > from + FRONTIER_STEP / 2, "{cut:?}");
}

#[test]
fn a_torn_newest_slot_counts_as_invalid_and_the_older_one_bounds_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), 40);
    zero_close_trailer(dir.path(), end);
    let segment = segments(dir.path()).pop().unwrap();
    let (header, slots) = header_and_slots(&segment);
    let newest = newest_slot(&slots);
    let older = slots[1 - newest].valid().unwrap().frontier;
    // Half a slot: its first 12 bytes written, the rest still the old slot's.
    let at = FRONTIER_SLOT_OFFSETS[newest] as usize;
    edit(&segment, |bytes| bytes[at + 12..at + 24].fill(0xA5));
    let (_, torn) = header_and_slots(&segment);
    assert_eq!(torn[newest], Slot::Invalid);
    assert_eq!(header.scan_end(&torn), older + FRONTIER_STEP);
    let wal = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(read_all(&wal), (0..40).map(record).collect::<Vec<_>>());
    let report = wal.recovery_report().clone();
    let frontier = report.frontiers.iter().find(|f| f.path == segment).unwrap();
    assert_eq!(
        (frontier.frontier, frontier.invalid_slots, frontier.scan_end),
        (Some(older), 1, older + FRONTIER_STEP)
    );
    assert!(report.is_clean(), "a torn slot is what a crash leaves: {report:?}");
    // The writer goes on with the older slot as its base, and rewrites the torn one.
    for i in 40..60 {
        wal.append_sync(FrameKind::RECORD, &record(i)).unwrap();
    }
    wal.close().unwrap();
    let (_, slots) = header_and_slots(&segment);
    assert!(slots.iter().all(|slot| slot.valid().is_some()), "{slots:?}");
    let wal = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(read_all(&wal).len(), 60);
}

#[test]
fn a_segment_with_no_valid_slot_is_read_to_its_end_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), 3);
    zero_close_trailer(dir.path(), end);
    let segment = segments(dir.path()).pop().unwrap();
    zero_slot(&segment, 0);
    // Written bytes near the segment's end, far past any frontier: found, as version 2 did.
    edit(&segment, |bytes| bytes[SEGMENT as usize - 100] = 1);
    let error = Wal::open(dir.path(), options()).expect_err("refused");
    assert!(error.to_string().contains("written bytes at offsets"), "{error}");
    edit(&segment, |bytes| bytes[SEGMENT as usize - 100] = 0);
    let wal = Wal::open(dir.path(), options()).unwrap();
    let report = wal.recovery_report().clone();
    let frontier = report.frontiers.iter().find(|f| f.path == segment).unwrap();
    assert_eq!((frontier.frontier, frontier.scan_end), (None, SEGMENT));
    assert!(!report.is_clean(), "no valid slot is damage to the header block");
    // The writer starts a frontier from where the records end.
    for i in 3..30 {
        wal.append_sync(FrameKind::RECORD, &record(i)).unwrap();
    }
    wal.close().unwrap();
    let (_, slots) = header_and_slots(&segment);
    assert!(highest_frontier(&slots).is_some(), "{slots:?}");
    assert_eq!(read_all(&Wal::open(dir.path(), options()).unwrap()).len(), 30);
}

#[test]
fn an_open_never_reads_past_the_frontier_plus_one_step() {
    for count in [0, 100] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), options()).unwrap();
        for i in 0..count {
            wal.append_sync(FrameKind::RECORD, format!("key {i}").as_bytes()).unwrap();
        }
        wal.close().unwrap();
        let segment = segments(dir.path()).pop().unwrap();
        let bound = SEGMENT_HEADER_LEN + 2 * FRONTIER_STEP;
        // Written bytes past the bound are never read: they cannot be the writer's.
        edit(&segment, |bytes| bytes[bound as usize..bound as usize + 8].fill(0xEE));
        for crashed in [false, true] {
            let io = FaultIo::new(backend(BackendChoice::Sync).unwrap());
            let wal = Wal::open(dir.path(), options().io(io.clone())).unwrap();
            assert_eq!(read_all(&wal).len(), count, "{count} records");
            let report = wal.recovery_report().clone();
            assert!(report.is_clean(), "{report:?}");
            let furthest = io.read_end(&segment).unwrap_or(0);
            assert!(furthest <= bound && furthest < SEGMENT, "{count}: read up to {furthest}");
            assert_eq!(report.frontiers[0].scan_end, bound);
            wal.close().unwrap();
            if !crashed {
                // The next round opens it as a crash leaves it: no close trailer.
                let end = Wal::open(dir.path(), options()).unwrap().end_position();
                zero_close_trailer(dir.path(), end);
            }
        }
    }
}

#[test]
fn a_record_larger_than_the_step_advances_the_frontier_in_synced_steps() {
    for durability in
        [Durability::Sync, Durability::Buffered { interval: std::time::Duration::from_secs(60) }]
    {
        let dir = tempfile::tempdir().unwrap();
        let options = options().durability(durability).max_queued_bytes(8 << 20);
        let wal = Wal::open(dir.path(), options.clone()).unwrap();
        let big = vec![7u8; 3 << 20];
        let position = wal.append(FrameKind::RECORD, &big).unwrap();
        for i in 0..40 {
            wal.append(FrameKind::RECORD, &record(i)).unwrap();
        }
        wal.wait_durable(position).unwrap();
        let stats = wal.stats();
        wal.close().unwrap();
        assert!(stats.frontier_steps >= 2, "{durability:?}: {stats:?}");
        let segment = segments(dir.path()).pop().unwrap();
        let (header, slots) = header_and_slots(&segment);
        let bytes = std::fs::read(&segment).unwrap();
        let scan_end = header.scan_end(&slots) as usize;
        assert!(bytes[scan_end..].iter().all(|&b| b == 0), "{durability:?}");
        let wal = Wal::open(dir.path(), options).unwrap();
        let read = read_all(&wal);
        assert_eq!((read.len(), &read[0]), (41, &big), "{durability:?}");
    }
}

/// Every image a power failure could leave while a log is written, whatever its records'
/// sizes and its durability: property P, in its strong form (the simulated disk never lies:
/// no byte at all lies past `M + S`), and in its weak form with the newest slot lost after
/// its sync reported success (no synced byte lies past `M + S`).
#[test]
fn every_crash_image_keeps_property_p_even_with_the_newest_slot_lost() {
    let buffered = Durability::Buffered { interval: std::time::Duration::from_secs(60) };
    for (durability, queued) in [(Durability::Sync, 1 << 20), (buffered, 4 << 20)] {
        let sim = SimIo::new();
        let dir = Path::new("/sim/wal");
        let options = WalOptions::default()
            .segment_size(4 << 20)
            .max_record_bytes(1536 << 10)
            .max_queued_bytes(queued)
            .durability(durability)
            .io(sim.clone());
        let wal = Wal::open(dir, options).unwrap();
        for i in 0..24usize {
            let len = [100, 40 << 10, 300 << 10, 1200 << 10][i % 4];
            let payload = vec![u8::try_from(i).unwrap() + 1; len];
            if i % 7 == 6 {
                wal.append_sync(FrameKind::RECORD, &payload).unwrap();
            } else {
                wal.append(FrameKind::RECORD, &payload).unwrap();
            }
        }
        drop(wal);
        let events = sim.events();
        let mut checked = 0;
        for at in (0..=events).step_by(3) {
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::KeepUnsynced,
                CrashMode::TornLast { sectors: 0 },
                CrashMode::TornLast { sectors: 1 },
                CrashMode::OnlyLast,
                // Every slot write since the last sync lost, the data kept.
                CrashMode::DropUnsyncedIn { from: 0, to: SEGMENT_HEADER_LEN },
            ] {
                let image = sim.crash_image(at, mode);
                for (path, bytes) in &image.files {
                    if path.extension().is_none_or(|ext| ext != "wal") {
                        continue;
                    }
                    let Ok(header) = SegmentHeader::decode(bytes) else { continue };
                    let block = &bytes[..SEGMENT_HEADER_LEN as usize];
                    let slots = header.decode_slots(block);
                    let scan_end = header.scan_end(&slots) as usize;
                    let past = bytes.get(scan_end..).unwrap_or_default();
                    assert!(past.iter().all(|&b| b == 0), "{durability:?} {at} {mode:?} {path:?}");
                    if mode == CrashMode::DropUnsynced {
                        // Only synced bytes: the newest slot lost as well.
                        if let Some(highest) = highest_frontier(&slots) {
                            let newest = slots.iter().position(|s| s.valid() == Some(highest));
                            let mut lost = slots;
                            lost[newest.unwrap()] = Slot::Empty;
                            if highest_frontier(&lost).is_some() {
                                let scan_end = header.scan_end(&lost) as usize;
                                let past = bytes.get(scan_end..).unwrap_or_default();
                                assert!(
                                    past.iter().all(|&b| b == 0),
                                    "{durability:?} {at}: synced bytes past M + S with the newest slot lost"
                                );
                            }
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}

#[test]
fn records_past_the_frontier_plus_a_step_are_kept_and_the_writer_steps_up_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_log(dir.path(), 45);
    zero_close_trailer(dir.path(), end);
    let segment = segments(dir.path()).pop().unwrap();
    let (header, _) = header_and_slots(&segment);
    // Both slots as if two slot writes had been lost: the frontier a segment starts with.
    let low = header.encode_slot(inmem_wal::format::FrontierSlot {
        sequence: 1,
        frontier: SEGMENT_HEADER_LEN + FRONTIER_STEP,
        step: FRONTIER_STEP,
    });
    edit(&segment, |bytes| {
        let at = FRONTIER_SLOT_OFFSETS[0] as usize;
        bytes[at..at + SLOT_SECTOR_LEN].copy_from_slice(&low);
    });
    zero_slot(&segment, 1);
    assert!(offset_in(&segment, end) as u64 > SEGMENT_HEADER_LEN + 2 * FRONTIER_STEP);
    let wal = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(read_all(&wal).len(), 45, "the records are walked past the scan's bound");
    wal.append_sync(FrameKind::RECORD, &record(45)).unwrap();
    let stats = wal.stats();
    wal.close().unwrap();
    assert!(stats.frontier_steps >= 1, "{stats:?}");
    let (header, slots) = header_and_slots(&segment);
    let bytes = std::fs::read(&segment).unwrap();
    assert!(bytes[header.scan_end(&slots) as usize..].iter().all(|&b| b == 0));
    assert_eq!(read_all(&Wal::open(dir.path(), options()).unwrap()).len(), 46);
}

#[test]
fn a_busy_buffered_log_takes_larger_steps_and_a_sync_log_keeps_the_smallest() {
    let buffered = Durability::Buffered { interval: std::time::Duration::from_millis(10) };
    for durability in [Durability::Sync, buffered] {
        let dir = tempfile::tempdir().unwrap();
        let options = options().segment_size(64 << 20).max_queued_bytes(4 << 20);
        let wal = Wal::open(dir.path(), options.clone().durability(durability)).unwrap();
        // 24 MiB as fast as the log takes it: far more than a step in a quarter second.
        let mut last = LogPosition::ZERO;
        for i in 0..384 {
            last = wal.append(FrameKind::RECORD, &record(i)).unwrap();
        }
        wal.wait_durable(last).unwrap();
        // Crashed, not closed: the slots are as the writes left them.
        let end = wal.end_position();
        drop(wal);
        zero_close_trailer(dir.path(), end);
        let segment = segments(dir.path()).pop().unwrap();
        let (header, slots) = header_and_slots(&segment);
        let steps: Vec<u64> = slots.iter().filter_map(|s| s.valid()).map(|s| s.step).collect();
        let highest = highest_frontier(&slots).unwrap();
        if durability == Durability::Sync {
            assert!(steps.iter().all(|&step| step == FRONTIER_STEP), "{slots:?}");
        } else {
            assert!(steps.iter().any(|&step| step > FRONTIER_STEP), "{slots:?}");
            assert!(steps.iter().all(|&step| step <= FRONTIER_STEP_MAX), "{slots:?}");
        }
        // Recovery reads up to the highest frontier plus its own step, and finds it all.
        let wal = Wal::open(dir.path(), options).unwrap();
        let report = wal.recovery_report().clone();
        let frontier = report.frontiers.iter().find(|f| f.path == segment).unwrap();
        assert_eq!(frontier.scan_end, (highest.frontier + highest.step).min(header.size));
        assert_eq!(read_all(&wal).len(), 384, "{durability:?}");
    }
}

/// How long a detached sync takes in the power-loss test of detached syncs.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(2);

/// Every image a power failure could leave while a `Buffered` log writes, its syncs
/// detached to the syncer thread (and slow) and its segments rotating: each record a
/// `wait_durable` returned for before the failure is recovered, whole.
#[test]
fn every_crash_image_keeps_each_record_a_buffered_wait_acknowledged() {
    let sim = SimIo::new();
    let dir = Path::new("/sim/wal");
    let buffered = Durability::Buffered { interval: std::time::Duration::from_millis(1) };
    let options = WalOptions::default()
        .segment_size(256 << 10)
        .max_record_bytes(64 << 10)
        .max_queued_bytes(64 << 10)
        .durability(buffered);
    // Detached syncs (`LogFile::sync_data_alone`) take a while, as a real disk's do: the
    // writes go on meanwhile, and a sync covers only what was written before it started
    // (the simulated sync happens at the end of the wait).
    let cues = Cues { sync_delay: SLOW_SYNC, ..Cues::default() };
    let slow = Choreo { inner: sim.clone(), cues: Arc::new(cues) }.io();
    let wal = Wal::open(dir, options.clone().io(slow)).unwrap();
    let payload = |i: usize| vec![u8::try_from(i % 251).unwrap() + 1; 6000 + i * 7];
    // (events recorded when the wait returned, records acknowledged)
    let mut acknowledged = Vec::new();
    for round in 0..60 {
        // A record, then a pause in which the interval passes and the syncer takes a sync
        // of it; a second record, written while that sync is in flight; a pause in which
        // the sync completes (it does not cover the second record); then a wait for the
        // second record.
        wal.append(FrameKind::RECORD, &payload(2 * round)).unwrap();
        std::thread::sleep(SLOW_SYNC * 3 / 4);
        let position = wal.append(FrameKind::RECORD, &payload(2 * round + 1)).unwrap();
        std::thread::sleep(SLOW_SYNC * 2);
        wal.wait_durable(position).unwrap();
        acknowledged.push((sim.events(), 2 * round + 2));
    }
    let stats = wal.stats();
    drop(wal);
    assert!(stats.segments_created >= 3, "{stats:?}");
    let events = sim.events();
    let mut checked = 0;
    for at in (0..=events).step_by(events / 60 + 1).chain([events]) {
        let Some(&(_, owed)) = acknowledged.iter().rev().find(|(seen, _)| *seen <= at) else {
            continue;
        };
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::TornLast { sectors: 1 },
            CrashMode::DropUnsyncedIn { from: 0, to: SEGMENT_HEADER_LEN },
        ] {
            let target = tempfile::tempdir().unwrap();
            sim.crash_image(at, mode).write_to(dir, target.path()).unwrap();
            let wal = Wal::open(target.path(), options.clone())
                .unwrap_or_else(|error| panic!("{at} {mode:?}: {error}"));
            let read = read_all(&wal);
            assert!(read.len() >= owed, "{at} {mode:?}: {} of {owed} acknowledged", read.len());
            for (i, record) in read.iter().enumerate().take(owed) {
                assert_eq!(record, &payload(i), "{at} {mode:?}: record {i}");
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

/// A disk whose detached syncs (`LogFile::sync_data_alone`) take `sync_delay`, and, if
/// `gate_syncs`, wait at a gate the test opens; and which fails the next write to a
/// segment once armed, after the test releases it.
#[derive(Debug)]
struct Choreo {
    inner: Arc<dyn Io>,
    cues: Arc<Cues>,
}

#[derive(Debug, Default)]
#[allow(clippy::disallowed_types, reason = "a test's cues, with no loom model")]
struct Cues {
    sync_delay: std::time::Duration,
    gate_syncs: bool,
    sync_gate_open: std::sync::atomic::AtomicBool,
    syncs_waiting: std::sync::atomic::AtomicU32,
    fail_armed: std::sync::atomic::AtomicBool,
    writes_waiting: std::sync::atomic::AtomicU32,
    fail_released: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct ChoreoFile {
    inner: Box<dyn LogFile>,
    segment: bool,
    cues: Arc<Cues>,
}

impl Choreo {
    /// The backend: `inner`'s, each file wrapped with the cues.
    fn io(self) -> Arc<dyn Io> {
        let Choreo { inner, cues } = self;
        let wrap = move |path: &Path, inner: Box<dyn LogFile>| -> Box<dyn LogFile> {
            // A segment is created under a temporary name (`.wal.tmp`), then renamed.
            let segment = path.to_string_lossy().contains(".wal");
            Box::new(ChoreoFile { inner, segment, cues: Arc::clone(&cues) })
        };
        Arc::new(common::WrapIo { name: "choreo", inner, wrap })
    }
}

impl LogFile for ChoreoFile {
    pass_through_file_reads!();
    fn write_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.segment && self.cues.fail_armed.swap(false, SeqCst) {
            self.cues.writes_waiting.fetch_add(1, SeqCst);
            eventually("the failing write released", || self.cues.fail_released.load(SeqCst));
            return Err(std::io::Error::other("injected write failure"));
        }
        self.inner.write_at(bufs, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_data_alone(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        std::thread::sleep(self.cues.sync_delay);
        if self.cues.gate_syncs {
            self.cues.syncs_waiting.fetch_add(1, SeqCst);
            let cues = &self.cues;
            eventually("the sync gate opened", || cues.sync_gate_open.load(SeqCst));
        }
        self.inner.sync_data_alone()
    }
}

#[test]
fn a_failed_write_never_zeroes_what_a_detached_sync_made_durable_and_the_log_acknowledged() {
    use std::sync::atomic::Ordering::SeqCst;
    let sim = SimIo::new();
    let dir = Path::new("/sim/wal");
    // The failed write comes after a detached sync the writer has not yet been told of (it
    // held the token throughout) made a record durable, and the log acknowledged it.
    let cues = Arc::new(Cues { gate_syncs: true, ..Cues::default() });
    let io = Choreo { inner: sim.clone(), cues: Arc::clone(&cues) }.io();
    let buffered = Durability::Buffered { interval: std::time::Duration::from_millis(1) };
    let options = WalOptions::default().durability(buffered);
    let wal = Arc::new(Wal::open(dir, options.clone().io(io)).unwrap());
    // A is written, and a detached sync of it held at the gate.
    let a = wal.append(FrameKind::RECORD, b"acknowledged").unwrap();
    eventually("a detached sync", || cues.syncs_waiting.load(SeqCst) > 0);
    // B's write takes the token and waits, armed to fail.
    cues.fail_armed.store(true, SeqCst);
    wal.append(FrameKind::RECORD, b"never acknowledged").unwrap();
    eventually("B written", || cues.writes_waiting.load(SeqCst) > 0);
    // The sync completes while the writer holds the token: A is acknowledged...
    let waiter = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.wait_durable(a))
    };
    cues.sync_gate_open.store(true, SeqCst);
    waiter.join().unwrap().expect("A acknowledged");
    // ...and then B's write fails: the log voids what it wrote unsynced, not A.
    cues.fail_released.store(true, SeqCst);
    let failed = wal.wait_durable(LogPosition::new(wal.end_position().get() - 1));
    assert!(failed.is_err(), "{failed:?}");
    drop(wal);
    let target = tempfile::tempdir().unwrap();
    sim.crash_image(sim.events(), CrashMode::DropUnsynced).write_to(dir, target.path()).unwrap();
    let reopened = Wal::open(target.path(), options).unwrap();
    assert_eq!(read_all(&reopened).first().map(Vec::as_slice), Some(&b"acknowledged"[..]));
}
