//! loom models of the group-commit hand-off (`group.rs`), run with
//! `RUSTFLAGS="--cfg loom" cargo test -p inmem-wal --release loom`.
//!
//! The hand-off here is the real protocol with a fake disk: an atomic that says how far the
//! "disk" holds the log. Committers lead batches and the background writer runs beside
//! them. The models check that no waiter is released before its position is on the disk,
//! that no wake-up is lost (loom reports a deadlock if a waiter sleeps forever), and that
//! after a failure nothing more is acknowledged; and, under `Buffered`, that a caller
//! writing its own record ([`GroupCommit::wait_written`]) is released only once it is
//! written and leaves nothing unsynced when the log closes, and that a sync detached to
//! the syncer thread ([`GroupCommit::run_syncer`]) releases a waiter only once it made the
//! waiter's record durable, and after failing, nothing more.

use std::time::Duration;

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;

use crate::error::{Error, Result};
use crate::format::FrameKind;
use crate::group::{Done, GroupCommit, Pacing, Work, Worker};
use crate::LogPosition;

/// `Durability::Sync`, without gathering (loom has no timed waits; for the same reason the
/// `Buffered` round, a timed sleep, is checked by `group.rs`'s own tests instead).
const PACING: Pacing = Pacing {
    sync_every_batch: true,
    interval: Duration::ZERO,
    gather_max: Duration::ZERO,
    wait_spin: Duration::ZERO,
    buffered_round: Duration::ZERO,
    detached_syncs: false,
};

/// `Durability::Buffered`, without rounds and with a zero interval (no timed sleep): every
/// unsynced write is the background writer's to sync at once.
const BUFFERED: Pacing = Pacing { sync_every_batch: false, ..PACING };

/// A fake disk: an atomic that says how far it holds the log. Fails the `fail_batch`-th
/// batch (counting from 1).
struct Disk {
    disk: Arc<AtomicU64>,
    fail_batch: Option<u32>,
    batches: u32,
}

impl Worker for Disk {
    type Detached = ();

    fn perform(&mut self, work: Work) -> Result<Done> {
        match work {
            Work::Write { batch, sync } => {
                self.batches += 1;
                if self.fail_batch == Some(self.batches) {
                    return Err(Error::Closed);
                }
                let end = batch.end();
                self.disk.store(end.get(), Ordering::SeqCst);
                Ok(Done { written: end, durable: sync.then_some(end), buffer: Some(batch.bytes) })
            }
            Work::Sync { end } => {
                self.disk.store(end.get(), Ordering::SeqCst);
                Ok(Done { written: end, durable: Some(end), buffer: None })
            }
        }
    }
}

/// A hand-off over a fake disk, with its background writer running.
fn log(
    fail_batch: Option<u32>,
) -> (Arc<GroupCommit<Disk>>, Arc<AtomicU64>, loom::thread::JoinHandle<()>) {
    paced(fail_batch, PACING)
}

fn paced(
    fail_batch: Option<u32>,
    pacing: Pacing,
) -> (Arc<GroupCommit<Disk>>, Arc<AtomicU64>, loom::thread::JoinHandle<()>) {
    let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 1 << 20, pacing));
    let disk = Arc::new(AtomicU64::new(0));
    group.install(Disk { disk: Arc::clone(&disk), fail_batch, batches: 0 });
    let background = {
        let group = Arc::clone(&group);
        loom::thread::spawn(move || group.run_background())
    };
    (group, disk, background)
}

/// Appends and waits: the first committer as `Wal::append_sync` does (registered in the
/// append, lock-free wait), the second as `append` then `wait_durable`.
fn committer(index: usize, group: &GroupCommit<Disk>, disk: &AtomicU64) -> Result<LogPosition> {
    if index == 0 {
        let position = group.append(FrameKind::RECORD, b"x", true)?;
        group.wait_registered(position)?;
        return released(position, disk);
    }
    let position = group.append(FrameKind::RECORD, b"x", false)?;
    group.wait_durable(position)?;
    released(position, disk)
}

fn released(position: LogPosition, disk: &AtomicU64) -> Result<LogPosition> {
    assert!(
        disk.load(Ordering::SeqCst) > position.get(),
        "a waiter was released before its record reached the disk"
    );
    Ok(position)
}

#[test]
fn loom_no_waiter_is_released_before_its_record_is_durable_and_none_sleeps_forever() {
    loom::model(|| {
        let (group, disk, background) = log(None);
        let committers: Vec<_> = (0..2)
            .map(|index| {
                let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
                loom::thread::spawn(move || committer(index, &group, &disk))
            })
            .collect();
        let mut positions: Vec<_> = committers
            .into_iter()
            .map(|c| c.join().expect("committer").expect("acknowledged"))
            .collect();
        group.close();
        background.join().expect("background writer");
        positions.sort();
        positions.dedup();
        assert_eq!(positions.len(), 2, "each append gets its own position");
    });
}

#[test]
fn loom_after_a_failed_write_nothing_more_is_acknowledged() {
    loom::model(|| {
        let (group, disk, background) = log(Some(1));
        let committers: Vec<_> = (0..2)
            .map(|index| {
                let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
                loom::thread::spawn(move || committer(index, &group, &disk))
            })
            .collect();
        // The first batch fails, whoever writes it: nobody in it is acknowledged, and a
        // later append either fails or (queued before the failure) is never written.
        for committer in committers {
            let outcome = committer.join().expect("committer");
            assert!(outcome.is_err(), "an append was acknowledged after the log failed");
        }
        background.join().expect("background writer");
        assert!(
            group.append(FrameKind::RECORD, b"y", false).is_err(),
            "a failed log takes appends"
        );
    });
}

#[test]
fn loom_a_caller_writing_its_own_record_is_released_once_it_is_written() {
    loom::model(|| {
        let (group, disk, background) = paced(None, BUFFERED);
        // One caller writes its own record, the other waits for its to be durable.
        let writers: Vec<_> = (0..2)
            .map(|index| {
                let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
                loom::thread::spawn(move || {
                    let position = group.append(FrameKind::RECORD, b"x", true)?;
                    if index == 0 {
                        group.wait_written(position)?;
                    } else {
                        group.wait_registered(position)?;
                    }
                    released(position, &disk)
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("caller").expect("written");
        }
        group.close();
        background.join().expect("background writer");
        assert_eq!(group.durable(), group.end(), "the log closed with writes unsynced");
    });
}

/// A fake disk that tells written from durable, whose `Buffered` syncs are detached
/// ([`Worker::detach_sync`]) and run by the syncer thread beside the writes. Fails the
/// detached syncs if `fail_detached`.
struct SplitDisk {
    written: Arc<AtomicU64>,
    durable: Arc<AtomicU64>,
    fail_detached: bool,
}

/// A detached sync of a [`SplitDisk`]: what it makes durable.
#[derive(Debug)]
struct SplitSync {
    written: Arc<AtomicU64>,
    durable: Arc<AtomicU64>,
    end: u64,
    fail: bool,
}

impl Worker for SplitDisk {
    type Detached = SplitSync;

    fn perform(&mut self, work: Work) -> Result<Done> {
        let (end, sync, buffer) = work.into_parts();
        self.written.fetch_max(end.get(), Ordering::SeqCst);
        if sync {
            self.durable.fetch_max(end.get(), Ordering::SeqCst);
        }
        Ok(Done { written: end, durable: sync.then_some(end), buffer })
    }

    fn detach_sync(&mut self, end: LogPosition) -> Option<SplitSync> {
        Some(SplitSync {
            written: Arc::clone(&self.written),
            durable: Arc::clone(&self.durable),
            end: end.get(),
            fail: self.fail_detached,
        })
    }

    fn run_detached(sync: &SplitSync) -> Result<()> {
        assert!(
            sync.written.load(Ordering::SeqCst) >= sync.end,
            "a detached sync was asked to make durable what was never written"
        );
        if sync.fail {
            return Err(Error::Closed);
        }
        sync.durable.fetch_max(sync.end, Ordering::SeqCst);
        Ok(())
    }
}

/// `Buffered` with detached syncs and a zero interval: every write is the syncer's to sync
/// at once.
const DETACHED: Pacing = Pacing { detached_syncs: true, ..BUFFERED };

/// A hand-off over a split disk, with its background writer and syncer running.
#[allow(clippy::type_complexity, reason = "a model's parts, used once each")]
fn detached(
    fail_detached: bool,
) -> (Arc<GroupCommit<SplitDisk>>, Arc<AtomicU64>, [loom::thread::JoinHandle<()>; 2]) {
    let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 1 << 20, DETACHED));
    let durable = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    group.install(SplitDisk { written, durable: Arc::clone(&durable), fail_detached });
    let background = {
        let group = Arc::clone(&group);
        loom::thread::spawn(move || group.run_background())
    };
    let syncer = {
        let group = Arc::clone(&group);
        loom::thread::spawn(move || group.run_syncer())
    };
    (group, durable, [background, syncer])
}

/// One run of a log whose syncs are detached: an append nobody waits for (the background
/// writer writes it, the syncer syncs it), and one whose caller waits for it to be durable,
/// then the log closed; the waiter's outcome.
fn detached_run(fail_detached: bool) -> (Arc<GroupCommit<SplitDisk>>, u64, Result<LogPosition>) {
    let (group, durable, threads) = detached(fail_detached);
    group.append(FrameKind::RECORD, b"x", false).expect("append");
    let waiter = {
        let (group, durable) = (Arc::clone(&group), Arc::clone(&durable));
        loom::thread::spawn(move || {
            let position = group.append(FrameKind::RECORD, b"y", false)?;
            group.wait_durable(position)?;
            released(position, &durable)
        })
    };
    let outcome = waiter.join().expect("waiter");
    group.close();
    for thread in threads {
        thread.join().expect("a log thread");
    }
    let on_disk = durable.load(Ordering::SeqCst);
    (group, on_disk, outcome)
}

#[test]
fn loom_a_detached_sync_releases_waiters_only_for_what_it_made_durable() {
    loom::model(|| {
        let (group, on_disk, outcome) = detached_run(false);
        outcome.expect("durable");
        assert_eq!(group.durable(), group.end(), "the log closed with writes unsynced");
        assert_eq!(on_disk, group.end().get());
    });
}

#[test]
fn loom_after_a_failed_detached_sync_nothing_more_is_acknowledged() {
    loom::model(|| {
        // The waiter is acknowledged only if a sync made its record durable first
        // (`released` checks it).
        let (group, on_disk, _) = detached_run(true);
        if group.failure().is_some() {
            assert!(group.durable().get() <= on_disk, "published past what the disk holds");
            let more = group.append(FrameKind::RECORD, b"z", false);
            assert!(more.is_err(), "a failed log takes appends");
        }
    });
}
