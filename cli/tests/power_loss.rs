//! Power loss, simulated: the log of a database runs on a simulated disk that records every
//! write and sync, and every crash image it can build (unsynced writes dropped, kept, the
//! last one torn, only the last one kept), at crash points all through a workload of a few
//! hundred transfers, must open to a state that holds every transfer acknowledged before
//! the crash point, and none partly. Checkpoints go through the same disk: a second
//! workload takes them while it runs, and its crash points include every operation made
//! while one was being taken.

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use inmem::engine::CheckpointReport;
use inmem::wal::format::segment_file_name;
use inmem::wal::io::sim::{CrashMode, SimIo};
use inmem::wal::io::Io;
use inmem::wal::{LogPosition, WalOptions};
use inmem::{Database, Limits, Options};
use inmem_cli::harness::{check, transfer, Ack};

const WRITERS: u64 = 4;
const TRANSFERS_PER_WRITER: u64 = 75;
/// Crash points tried, spread evenly over the workload's operations (and the last one).
const CRASH_POINTS: usize = 120;
const MODES: [CrashMode; 5] = [
    CrashMode::DropUnsynced,
    CrashMode::KeepUnsynced,
    CrashMode::TornLast { sectors: 1 },
    CrashMode::TornLast { sectors: 3 },
    CrashMode::OnlyLast,
];

fn options() -> Options {
    Options::default()
        .maintenance_interval(Duration::from_secs(3600))
        .checkpoint_log_bytes(0)
        .limits(Limits { key_bytes_max: 64, ..Limits::default() })
}

/// Runs `transfers_per_writer` transfers on each of [`WRITERS`] threads, started together;
/// before each, a writer waits while `hold()` says so, and after each it counts it in
/// `acked`. Returns each acknowledgement with the number of operations the disk had seen
/// by then (its sync is among them).
fn transfers(
    db: &Database,
    sim: &SimIo,
    transfers_per_writer: u64,
    acked: &AtomicUsize,
    hold: &(dyn Fn() -> bool + Sync),
) -> Vec<(usize, Ack)> {
    let acks: Mutex<Vec<(usize, Ack)>> = Mutex::new(Vec::new());
    let start = Barrier::new(WRITERS as usize);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (acks, start) = (&acks, &start);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(writer);
                start.wait();
                for n in 0..transfers_per_writer {
                    while hold() {
                        std::thread::yield_now();
                    }
                    let txn = (writer << 32) | (n + 1);
                    let version = transfer(db, &mut rng, txn).expect("transfer");
                    let at = sim.events();
                    acks.lock().expect("acks").push((at, Ack { txn, version }));
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let acks = acks.into_inner().expect("acks");
    assert_eq!(acks.len() as u64, WRITERS * transfers_per_writer);
    acks
}

/// `count` crash points spread evenly over `total` operations, and the last one.
fn spread(total: usize, count: usize) -> Vec<usize> {
    let step = (total / count).max(1);
    (0..total).step_by(step).chain([total]).collect()
}

/// What the crash images opened to.
#[derive(Debug, Default)]
struct Opened {
    images: usize,
    /// Images that opened from a checkpoint (rather than the log alone).
    from_checkpoint: usize,
}

/// Opens the image of every crash point in `points` under every mode, and checks that it
/// holds every transfer acknowledged by then and none partly, and that no checkpoint in it
/// is damaged.
fn open_every_image(sim: &SimIo, root: &Path, acks: &[(usize, Ack)], points: &[usize]) -> Opened {
    let total = sim.events();
    let mut opened = Opened::default();
    for &at in points {
        let acknowledged: Vec<Ack> =
            acks.iter().filter(|(seen, _)| *seen <= at).map(|(_, ack)| *ack).collect();
        for mode in MODES {
            let target = tempfile::tempdir().expect("tempdir");
            sim.crash_image(at, mode).write_to(root, target.path()).expect("image");
            let db = Database::open(target.path(), options()).unwrap_or_else(|error| {
                panic!("crash at operation {at}/{total}, {mode:?}: recovery failed: {error}")
            });
            let found = check(&db, &acknowledged);
            assert!(
                found.lost == 0 && found.partial == 0,
                "crash at operation {at}/{total}, {mode:?}, {} acknowledged: lost {} partial {}: {}",
                acknowledged.len(),
                found.lost,
                found.partial,
                found.first.unwrap_or_default()
            );
            let recovery = db.recovery().expect("a database on a directory");
            assert!(
                recovery.damaged_checkpoints.is_empty(),
                "crash at operation {at}/{total}, {mode:?}: a damaged checkpoint: {:?}",
                recovery.damaged_checkpoints
            );
            opened.images += 1;
            opened.from_checkpoint += usize::from(recovery.checkpoint.is_some());
        }
    }
    opened
}

#[test]
fn every_crash_image_keeps_every_acknowledged_transfer_and_none_partly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("db");
    let sim = SimIo::new();
    let io: Arc<dyn Io> = sim.clone();
    // Small segments, so that the workload rotates through several.
    let log = WalOptions::default().io(io).segment_size(32 << 10).max_record_bytes(8 << 10);
    let db = Database::open_with_log_options(&root, options(), log).expect("open");
    let acks = transfers(&db, &sim, TRANSFERS_PER_WRITER, &AtomicUsize::new(0), &|| false);
    drop(db);
    let points = spread(sim.events(), CRASH_POINTS);
    let opened = open_every_image(&sim, &root, &acks, &points);
    assert!(opened.images >= CRASH_POINTS * MODES.len(), "{opened:?}");
}

/// Transfers each writer makes in the workload with checkpoints.
const CHECKPOINTED_TRANSFERS_PER_WRITER: u64 = 40;
/// A checkpoint is due each time this many more transfers are acknowledged.
const TRANSFERS_PER_CHECKPOINT: usize = 20;
/// How far past a due checkpoint the writers may go before they wait for it: they go on
/// while it is taken, but checkpoints stay spread over the run.
const TRANSFERS_AHEAD_OF_CHECKPOINT: usize = 8;
/// Checkpoints taken.
const CHECKPOINTS: usize = 7;
/// Crash points spread over the whole run, besides those while checkpoints were taken.
const CHECKPOINTED_CRASH_POINTS: usize = 40;

// The last checkpoint is due before the writers are done.
const _: () = assert!(
    CHECKPOINTS * TRANSFERS_PER_CHECKPOINT + TRANSFERS_AHEAD_OF_CHECKPOINT
        < (WRITERS * CHECKPOINTED_TRANSFERS_PER_WRITER) as usize
);

/// Sets its flag when dropped, unwinding included: a thread that fails lets the others
/// stop waiting for it.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Takes [`CHECKPOINTS`] checkpoints of `db`, each once `acked` reaches its multiple of
/// [`TRANSFERS_PER_CHECKPOINT`], counting them in `taken`; gives up once `stop` is set.
/// Returns each report with the range of the disk's operations made while it was taken.
fn take_checkpoints(
    db: &Database,
    sim: &SimIo,
    acked: &AtomicUsize,
    taken: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<(Range<usize>, CheckpointReport)> {
    let _stop_writers_waiting = SetOnDrop(stop);
    let mut reports = Vec::new();
    while reports.len() < CHECKPOINTS && !stop.load(Ordering::Relaxed) {
        if acked.load(Ordering::Relaxed) < (reports.len() + 1) * TRANSFERS_PER_CHECKPOINT {
            std::thread::yield_now();
            continue;
        }
        let before = sim.events();
        let report = db.checkpoint().expect("checkpoint");
        reports.push((before..sim.events() + 1, report));
        taken.store(reports.len(), Ordering::Relaxed);
    }
    reports
}

#[test]
fn crash_images_across_checkpoints_keep_every_acknowledged_transfer_and_no_damaged_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("db");
    let sim = SimIo::new();
    let io: Arc<dyn Io> = sim.clone();
    // The smallest segments, so that the checkpoints have log to delete.
    let log = WalOptions::default().io(io).segment_size(8 << 10).max_record_bytes(2 << 10);
    let db = Database::open_with_log_options(&root, options(), log).expect("open");
    let (acked, taken, stop) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false));
    let hold = || {
        let taken = taken.load(Ordering::Relaxed);
        let due = (taken + 1) * TRANSFERS_PER_CHECKPOINT + TRANSFERS_AHEAD_OF_CHECKPOINT;
        taken < CHECKPOINTS && acked.load(Ordering::Relaxed) >= due && !stop.load(Ordering::Relaxed)
    };
    let (acks, checkpoints) = std::thread::scope(|scope| {
        let checkpointer = scope.spawn(|| take_checkpoints(&db, &sim, &acked, &taken, &stop));
        let _stop_checkpointer = SetOnDrop(&stop);
        let acks = transfers(&db, &sim, CHECKPOINTED_TRANSFERS_PER_WRITER, &acked, &hold);
        (acks, checkpointer.join().expect("checkpointer"))
    });
    drop(db);
    assert_eq!(checkpoints.len(), CHECKPOINTS);
    // The checkpoints let the log's first segments go: images past that point hold no
    // log from the start, and must open from a checkpoint.
    let first_segment = segment_file_name(LogPosition::ZERO);
    let log_files = sim.list_dir(&root.join("wal")).expect("the log's directory");
    assert!(!log_files.iter().any(|name| *name == *first_segment), "{log_files:?}");
    // Every operation made while a checkpoint was taken, and some of all the others.
    let mut points = spread(sim.events(), CHECKPOINTED_CRASH_POINTS);
    points.extend(checkpoints.iter().flat_map(|(window, _)| window.clone()));
    points.sort_unstable();
    points.dedup();
    let opened = open_every_image(&sim, &root, &acks, &points);
    let windows: Vec<usize> = checkpoints.iter().map(|(window, _)| window.len()).collect();
    let during = acks
        .iter()
        .filter(|(seen, _)| checkpoints.iter().any(|(window, _)| window.contains(seen)))
        .count();
    println!(
        "{} operations; checkpoints' operation windows {windows:?}; {during} transfers \
         acknowledged while one was taken; {opened:?}",
        sim.events()
    );
    assert!(opened.from_checkpoint > 0, "{opened:?}");
}

/// The same simulated disk, reopened: the database finds its checkpoints through the disk
/// it was given (not the machine's file system), loads the newest, and replays the log
/// after it.
#[test]
fn a_database_reopened_on_the_same_simulated_disk_recovers_from_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("db");
    let sim = SimIo::new();
    let log = || {
        let io: Arc<dyn Io> = sim.clone();
        WalOptions::default().io(io).segment_size(8 << 10).max_record_bytes(2 << 10)
    };
    let mut acks = Vec::new();
    {
        let db = Database::open_with_log_options(&root, options(), log()).expect("open");
        let mut rng = fastrand::Rng::with_seed(7);
        for txn in 1..=60u64 {
            let version = transfer(&db, &mut rng, txn).expect("transfer");
            acks.push(Ack { txn, version });
            if txn % 20 == 0 {
                db.checkpoint().expect("checkpoint");
            }
        }
    }
    let db = Database::open_with_log_options(&root, options(), log()).expect("reopen");
    let recovery = db.recovery().expect("a durable database reports its recovery");
    assert!(recovery.checkpoint.is_some(), "opened from a checkpoint: {recovery:?}");
    assert!(recovery.checkpoint_version.get() > 0);
    let found = check(&db, &acks);
    assert_eq!((found.lost, found.partial), (0, 0), "{found:?}");
}
