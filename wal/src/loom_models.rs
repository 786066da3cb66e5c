//! loom models of the group-commit hand-off (`group.rs`), run with
//! `RUSTFLAGS="--cfg loom" cargo test -p inmem-wal --release loom`.
//!
//! The writer here is the real protocol with a fake disk: an atomic that says how far the
//! "disk" holds the log. The models check that no waiter is released before its position
//! is on the disk, that no wake-up is lost (loom reports a deadlock if a waiter sleeps
//! forever), and that after a failure nothing more is acknowledged.

use std::time::{Duration, Instant};

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;

use crate::error::Error;
use crate::format::FrameKind;
use crate::group::{GroupCommit, Policy, Work};
use crate::LogPosition;

fn policy() -> Policy {
    Policy {
        sync_every_batch: true,
        interval: Duration::ZERO,
        last_sync: Instant::now(),
        gather_records: 1,
        gather: Duration::ZERO,
    }
}

/// Runs the writer until it stops; fails the `fail_batch`-th batch (counting from 1).
fn writer(group: &GroupCommit, disk: &AtomicU64, fail_batch: Option<u32>) {
    let mut batches = 0;
    loop {
        match group.next_work(policy()) {
            Work::Stop => return,
            Work::Write(batch) => {
                batches += 1;
                if fail_batch == Some(batches) {
                    group.fail(Error::Closed);
                    return;
                }
                let end = batch.end();
                disk.store(end.get(), Ordering::SeqCst);
                group.finish(end, end, Some(batch.bytes));
            }
            Work::Sync { end } => {
                disk.store(end.get(), Ordering::SeqCst);
                group.finish(end, end, None);
            }
        }
    }
}

/// Appends and waits: the first committer as `Wal::append_sync` does (registered in the
/// append, lock-free wait), the second as `append` then `wait_durable`.
fn committer(index: usize, group: &GroupCommit, disk: &AtomicU64) -> Result<LogPosition, Error> {
    if index == 0 {
        let position = group.append(FrameKind::RECORD, b"x", true)?;
        group.wait_registered(position)?;
        return released(position, disk);
    }
    let position = group.append(FrameKind::RECORD, b"x", false)?;
    group.wait_durable(position)?;
    released(position, disk)
}

fn released(position: LogPosition, disk: &AtomicU64) -> Result<LogPosition, Error> {
    assert!(
        disk.load(Ordering::SeqCst) > position.get(),
        "a waiter was released before its record reached the disk"
    );
    Ok(position)
}

#[test]
fn loom_no_waiter_is_released_before_its_record_is_durable_and_none_sleeps_forever() {
    loom::model(|| {
        let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 1 << 20));
        let disk = Arc::new(AtomicU64::new(0));
        let committers: Vec<_> = (0..2)
            .map(|index| {
                let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
                loom::thread::spawn(move || committer(index, &group, &disk))
            })
            .collect();
        let writer_thread = {
            let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
            loom::thread::spawn(move || writer(&group, &disk, None))
        };
        let mut positions: Vec<_> = committers
            .into_iter()
            .map(|c| c.join().expect("committer").expect("acknowledged"))
            .collect();
        group.close();
        writer_thread.join().expect("writer");
        positions.sort();
        positions.dedup();
        assert_eq!(positions.len(), 2, "each append gets its own position");
    });
}

#[test]
fn loom_after_a_failed_write_nothing_more_is_acknowledged() {
    loom::model(|| {
        let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 1 << 20));
        let disk = Arc::new(AtomicU64::new(0));
        let committers: Vec<_> = (0..2)
            .map(|index| {
                let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
                loom::thread::spawn(move || committer(index, &group, &disk))
            })
            .collect();
        let writer_thread = {
            let (group, disk) = (Arc::clone(&group), Arc::clone(&disk));
            loom::thread::spawn(move || writer(&group, &disk, Some(1)))
        };
        // The first batch fails: nobody in it is acknowledged; a later append either made
        // it into a second batch (impossible: the writer stopped) or fails too.
        for committer in committers {
            let outcome = committer.join().expect("committer");
            assert!(outcome.is_err(), "an append was acknowledged after the log failed");
        }
        writer_thread.join().expect("writer");
        assert!(
            group.append(FrameKind::RECORD, b"y", false).is_err(),
            "a failed log takes appends"
        );
    });
}
