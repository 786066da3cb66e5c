//! Power loss, simulated: the log of a database runs on a simulated disk that records every
//! write and sync, and every crash image it can build (unsynced writes dropped, kept, the
//! last one torn, only the last one kept), at crash points all through a workload of a few
//! hundred transfers, must open to a state that holds every transfer acknowledged before
//! the crash point, and none partly.

#![allow(clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use inmem::harness::{check, transfer, Ack};
use inmem::wal::io::sim::{CrashMode, SimIo};
use inmem::wal::io::Io;
use inmem::wal::WalOptions;
use inmem::{Database, Limits, Options};

const WRITERS: u64 = 4;
const TRANSFERS_PER_WRITER: u64 = 75;
/// Crash points tried, spread evenly over the workload's operations (and the last one).
const CRASH_POINTS: usize = 120;

fn options() -> Options {
    Options::default()
        .maintenance_interval(Duration::from_secs(3600))
        .checkpoint_log_bytes(0)
        .limits(Limits { key_bytes_max: 64, ..Limits::default() })
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
    // Each acknowledgement with the number of operations the disk had seen by then: its
    // sync is among them.
    let acks: Mutex<Vec<(usize, Ack)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (db, acks, sim) = (&db, &acks, &sim);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(writer);
                for n in 0..TRANSFERS_PER_WRITER {
                    let txn = (writer << 32) | (n + 1);
                    let version = transfer(db, &mut rng, txn).expect("transfer");
                    let at = sim.events();
                    acks.lock().expect("acks").push((at, Ack { txn, version }));
                }
            });
        }
    });
    drop(db);
    let acks = acks.into_inner().expect("acks");
    assert_eq!(acks.len() as u64, WRITERS * TRANSFERS_PER_WRITER);
    let total = sim.events();
    let step = (total / CRASH_POINTS).max(1);
    let points: Vec<usize> = (0..total).step_by(step).chain([total]).collect();
    let modes = [
        CrashMode::DropUnsynced,
        CrashMode::KeepUnsynced,
        CrashMode::TornLast { sectors: 1 },
        CrashMode::TornLast { sectors: 3 },
        CrashMode::OnlyLast,
    ];
    let mut images = 0;
    for &at in &points {
        let acknowledged: Vec<Ack> =
            acks.iter().filter(|(seen, _)| *seen <= at).map(|(_, ack)| *ack).collect();
        for mode in modes {
            let target = tempfile::tempdir().expect("tempdir");
            sim.crash_image(at, mode).write_to(&root, target.path()).expect("image");
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
            images += 1;
        }
    }
    assert!(images >= CRASH_POINTS * modes.len(), "{images} images");
}
