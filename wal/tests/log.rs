//! The log through its public API: appends, durability, group commit, rotation, deletion,
//! reopening, and injected I/O faults.

#![allow(clippy::expect_used, clippy::unwrap_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test's own probes, outside the crate: no loom model to swap them in"
)]

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inmem_wal::io::fault::{Fault, FaultIo, Op, EIO, ENOSPC};
use inmem_wal::io::sync::SyncIo;
use inmem_wal::io::{uring_refused_by_switch, Io, LogFile, AUTO_PREFERS};
use inmem_wal::{
    BackendChoice, BackendReason, Durability, Error, FrameKind, LogPosition, Record, Wal,
    WalOptions,
};

mod common;

use common::{eventually, run_with_uring_refused, uring_or_skip};

/// Small segments, so that a few records rotate them.
fn small() -> WalOptions {
    WalOptions::default().segment_size(64 << 10).max_record_bytes(4 << 10)
}

fn payload(thread: usize, index: usize) -> Vec<u8> {
    let len = 1 + (thread * 131 + index * 17) % 700;
    let mut bytes = format!("{thread}:{index}:").into_bytes();
    bytes.resize(len.max(bytes.len()), (index % 251) as u8);
    bytes
}

fn read_all(wal: &Wal) -> Vec<Record> {
    wal.read_from(wal.first_position()).expect("reader").collect::<Result<_, _>>().expect("read")
}

#[test]
fn appended_records_read_back_in_order_with_their_positions_and_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).expect("open");
    let kind = FrameKind::new(7).unwrap();
    let mut written = Vec::new();
    for index in 0..50 {
        let body = payload(0, index);
        let position = wal.append_sync(kind, &body).expect("append");
        written.push((position, body));
    }
    let read = read_all(&wal);
    assert_eq!(read.len(), written.len());
    for (record, (position, body)) in read.iter().zip(&written) {
        assert_eq!((record.position, &record.payload, record.kind), (*position, body, kind));
    }
    assert!(written.windows(2).all(|pair| pair[0].0 < pair[1].0), "positions grow");
}

#[test]
fn eight_concurrent_appenders_have_every_acknowledged_record_read_back_in_position_order() {
    // Waiters that yield before they sleep (the default) and waiters that sleep at once.
    let spinning = WalOptions::default().wait_spin;
    for (backend, spin) in [
        (BackendChoice::Sync, spinning),
        (BackendChoice::Uring, spinning),
        (BackendChoice::Sync, Duration::ZERO),
    ] {
        if backend == BackendChoice::Uring && !uring_or_skip("eight concurrent appenders") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let options = small().backend(backend).wait_spin(spin);
        let wal = Arc::new(Wal::open(dir.path(), options).expect("open"));
        let acknowledged: Vec<(LogPosition, Vec<u8>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|thread| {
                    let wal = Arc::clone(&wal);
                    scope.spawn(move || {
                        (0..300)
                            .map(|index| {
                                let body = payload(thread, index);
                                (wal.append_sync(FrameKind::RECORD, &body).expect("append"), body)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
        });
        let expected: BTreeMap<LogPosition, Vec<u8>> = acknowledged.into_iter().collect();
        assert_eq!(expected.len(), 8 * 300, "every append got its own position");
        let read = read_all(&wal);
        let read: Vec<(LogPosition, Vec<u8>)> =
            read.into_iter().map(|record| (record.position, record.payload)).collect();
        assert_eq!(read, expected.into_iter().collect::<Vec<_>>(), "{backend:?} {spin:?}");
        let stats = wal.stats();
        assert!(stats.segments_created >= 1, "the records span several segments");
        assert!(stats.batches <= stats.appends);
    }
}

#[test]
fn a_reopened_log_keeps_its_records_and_appends_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for round in 0..3 {
        let wal = Wal::open(dir.path(), small()).expect("open");
        assert_eq!(read_all(&wal).len(), expected.len(), "round {round}");
        for index in 0..40 {
            let body = payload(round, index);
            wal.append_sync(FrameKind::RECORD, &body).expect("append");
            expected.push(body);
        }
        wal.close().expect("close");
    }
    let wal = Wal::open(dir.path(), small()).expect("open");
    let read: Vec<Vec<u8>> = read_all(&wal).into_iter().map(|record| record.payload).collect();
    assert_eq!(read, expected);
    assert!(wal.recovery_report().cut.is_none(), "a closed log has no torn tail");
}

#[test]
fn segments_wholly_below_a_position_are_deleted_and_the_rest_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).expect("open");
    let positions: Vec<LogPosition> = (0..400)
        .map(|index| wal.append_sync(FrameKind::RECORD, &payload(1, index)).expect("append"))
        .collect();
    // Segments only: the spare segment (`spare.wal-spare`) may be made meanwhile.
    let segment_files = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".wal"))
            .count()
    };
    let before = segment_files();
    assert!(before >= 3, "several segments: {before}");
    let keep_from = positions[300];
    let deleted = wal.delete_below(keep_from).expect("delete");
    assert!(deleted >= 1);
    assert_eq!(segment_files(), before - deleted);
    assert!(wal.first_position() <= keep_from);
    let read = wal.read_from(keep_from).expect("reader").collect::<Result<Vec<_>, _>>();
    assert_eq!(read.expect("read").len(), 100);
    assert!(matches!(wal.read_from(LogPosition::ZERO), Err(Error::OutOfRange { .. })));
    drop(wal);
    // The deleted segments are missing unless the reopen says what else holds them.
    let missing = Wal::open(dir.path(), small()).expect_err("an earlier segment is missing");
    assert!(missing.to_string().contains("an earlier segment is missing"), "{missing}");
    let reopened =
        Wal::open(dir.path(), small().checkpointed(keep_from)).expect("reopen after deletion");
    assert_eq!(reopened.first_position(), read_all_first(&reopened));
}

fn read_all_first(wal: &Wal) -> LogPosition {
    read_all(wal).first().map(|record| record.position).unwrap()
}

#[test]
fn a_record_over_the_limit_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).expect("open");
    let error = wal.append(FrameKind::RECORD, &vec![0; (4 << 10) + 1]).unwrap_err();
    assert!(matches!(error, Error::RecordTooLarge { len: 4097, limit: 4096 }), "{error}");
    assert_eq!(wal.end_position(), wal.first_position());
    wal.append_sync(FrameKind::RECORD, &vec![1; 4 << 10]).expect("at the limit");
}

#[test]
fn options_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let too_big = WalOptions::default().segment_size(64 << 10).max_record_bytes(1 << 20);
    assert!(matches!(Wal::open(dir.path(), too_big), Err(Error::InvalidOptions(_))));
    let odd = WalOptions::default().segment_size(10_000);
    assert!(matches!(Wal::open(dir.path(), odd), Err(Error::InvalidOptions(_))));
}

#[test]
fn buffered_appends_become_durable_within_the_interval_without_anyone_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(20);
    let wal =
        Wal::open(dir.path(), small().durability(Durability::Buffered { interval })).expect("open");
    let position = wal.append(FrameKind::RECORD, b"buffered").expect("append");
    eventually("the buffered append is synced", || wal.durable_position() > position);
    assert!(wal.stats().fsyncs >= 1);
    let waited = wal.append(FrameKind::RECORD, b"waited for").expect("append");
    wal.wait_durable(waited).expect("a waiter gets a sync");
}

#[test]
fn buffered_appends_are_synced_before_more_than_the_queue_bound_is_left_unsynced() {
    let dir = tempfile::tempdir().unwrap();
    // An interval that never comes due during the test: only the byte bound syncs.
    let interval = Duration::from_secs(3600);
    let options = small().durability(Durability::Buffered { interval }).max_queued_bytes(4096);
    let wal = Wal::open(dir.path(), options).expect("open");
    let payload = [0x42_u8; 1000];
    let mut last = LogPosition::ZERO;
    for _ in 0..40 {
        last = wal.append(FrameKind::RECORD, &payload).expect("append");
        // Written but unsynced bytes never pass the bound plus the frame being taken.
        let unsynced = wal.end_position().get() - wal.durable_position().get();
        assert!(unsynced <= 4096 + 2 * 1024 + 4096, "{unsynced} bytes unsynced");
    }
    eventually("the byte bound syncs", || wal.stats().fsyncs >= 5);
    assert!(wal.durable_position() > LogPosition::ZERO);
    wal.wait_durable(last).expect("a waiter gets a sync");
}

/// A log over a fault-injecting sync backend, with `fault` armed once it is open.
fn faulty(dir: &std::path::Path, fault: Fault) -> (Wal, Arc<FaultIo>) {
    let inner: Arc<dyn Io> = Arc::new(SyncIo::new());
    let faults = FaultIo::new(inner);
    let io: Arc<dyn Io> = faults.clone();
    let wal = Wal::open(dir, small().io(io)).expect("open");
    faults.inject(fault);
    (wal, faults)
}

#[test]
fn each_injected_fault_fails_the_commit_and_nothing_after_it_is_acknowledged() {
    let faults = [
        Fault::error(Op::Sync, EIO),
        Fault::error(Op::Write, EIO),
        Fault::error(Op::Write, ENOSPC),
        Fault::short_write(0).sticky(),
    ];
    for fault in faults {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _faults) = faulty(dir.path(), fault);
        let ok = wal.append_sync(FrameKind::RECORD, b"before").map(|_| ());
        // The first commit meets the fault (a short write is retried, so only a sticky one
        // fails); whatever happened, the log must never acknowledge what it could not sync.
        let failed = ok.is_err();
        assert!(failed, "{fault:?}: the commit that met the fault was acknowledged");
        let later = wal.append_sync(FrameKind::RECORD, b"after");
        assert!(matches!(later, Err(Error::Failed { .. })), "{fault:?}: {later:?}");
        assert!(wal.durable_position() == wal.first_position(), "{fault:?}");
        assert!(wal.close().is_err(), "{fault:?}: close reports the failure");
        let reopened = Wal::open(dir.path(), small()).expect("reopen");
        for record in read_all(&reopened) {
            assert_eq!(record.payload, b"before", "{fault:?}: only what was written");
        }
    }
}

#[test]
fn a_single_short_write_is_retried_and_the_commit_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = faulty(dir.path(), Fault::short_write(5));
    wal.append_sync(FrameKind::RECORD, b"written in two parts").expect("append");
    assert_eq!(faults.fired(Op::Write), 1);
    drop(wal);
    let reopened = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(read_all(&reopened)[0].payload, b"written in two parts");
}

#[test]
fn a_failure_creating_the_next_segment_fails_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // No file can be created any more: not the spare ahead, nor the segment at rotation.
    let (wal, _faults) = faulty(dir.path(), Fault::error(Op::Create, ENOSPC).sticky());
    let outcome: Result<Vec<LogPosition>, Error> =
        (0..400).map(|index| wal.append_sync(FrameKind::RECORD, &payload(2, index))).collect();
    let error = outcome.unwrap_err();
    assert_eq!(error.raw_os_error(), Some(ENOSPC), "{error}");
    assert!(matches!(wal.append(FrameKind::RECORD, b"x"), Err(Error::Failed { .. })));
}

#[test]
fn a_spare_that_cannot_be_made_ahead_leaves_the_rotation_to_create_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    // One failure: the spare's creation, the first after the injection.
    let (wal, faults) = faulty(dir.path(), Fault::error(Op::Create, ENOSPC));
    let written: Vec<Vec<u8>> = (0..400).map(|index| payload(2, index)).collect();
    for record in &written {
        wal.append_sync(FrameKind::RECORD, record).expect("append");
    }
    assert_eq!(faults.fired(Op::Create), 1);
    let stats = wal.stats();
    assert!(stats.segments_created > stats.segments_from_spare, "{stats:?}");
    let read: Vec<Vec<u8>> = read_all(&wal).into_iter().map(|record| record.payload).collect();
    assert_eq!(read, written);
    wal.close().expect("close");
}

#[test]
fn rotations_take_the_spare_made_ahead_and_a_clean_close_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).expect("open");
    let written: Vec<Vec<u8>> = (0..400).map(|index| payload(1, index)).collect();
    for record in &written {
        wal.append_sync(FrameKind::RECORD, record).expect("append");
    }
    let stats = wal.stats();
    assert!(stats.segments_created >= 2, "{stats:?}");
    assert_eq!(stats.segments_from_spare, stats.segments_created, "every rotation had its spare");
    wal.close().expect("close");
    assert!(!dir.path().join(inmem_wal::SPARE_FILE).exists(), "a clean close removes it");
    let reopened = Wal::open(dir.path(), small()).expect("reopen");
    assert!(reopened.recovery_report().is_clean(), "{:?}", reopened.recovery_report());
    assert_eq!(reopened.recovery_report().removed_spare, None);
    let read: Vec<Vec<u8>> = read_all(&reopened).into_iter().map(|record| record.payload).collect();
    assert_eq!(read, written);
}

#[test]
fn the_backend_in_use_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sync = Wal::open(dir.path(), small().backend(BackendChoice::Sync)).expect("open");
    assert_eq!(sync.backend_name(), "sync");
    drop(sync);
    if !uring_or_skip("the_backend_in_use_is_reported") {
        return;
    }
    let uring = Wal::open(dir.path(), small().backend(BackendChoice::Uring)).expect("open");
    assert_eq!(uring.backend_name(), "io_uring");
}

#[test]
fn the_log_says_why_it_uses_its_backend() {
    let dir = tempfile::tempdir().unwrap();
    // Auto takes the backend measured faster (AUTO_PREFERS): pwritev + fdatasync, with or
    // without io_uring.
    assert_eq!(AUTO_PREFERS, inmem_wal::io::Preferred::Sync);
    let auto = Wal::open(dir.path(), small()).expect("open");
    assert_eq!(auto.backend().to_string(), "sync: chosen by Auto");
    assert_eq!(auto.backend_reason(), &BackendReason::ChosenByAuto);
    drop(auto);
    let sync = Wal::open(dir.path(), small().backend(BackendChoice::Sync)).expect("reopen");
    assert_eq!(sync.backend().to_string(), "sync: requested");
    drop(sync);
    let io: Arc<dyn Io> = Arc::new(SyncIo::new());
    let given = Wal::open(dir.path(), small().io(io)).expect("reopen");
    assert_eq!(given.backend().to_string(), "sync: given by WalOptions::io");
    drop(given);
    if !uring_or_skip("the_log_says_why_it_uses_its_backend") {
        return;
    }
    let explicit = Wal::open(dir.path(), small().backend(BackendChoice::Uring)).expect("reopen");
    assert_eq!(explicit.backend().to_string(), "io_uring: requested");
}

/// Where io_uring is refused (here through `INMEM_IO_URING=refuse`, in a child process if
/// this one allows it), asking for it is an error naming the backend and the kernel's
/// error, before anything is written; `Auto` and `Sync` open as ever.
#[test]
fn io_uring_refused_makes_an_explicit_request_a_typed_error_and_auto_unaffected() {
    if !uring_refused_by_switch() {
        return run_with_uring_refused(
            "io_uring_refused_makes_an_explicit_request_a_typed_error_and_auto_unaffected",
        );
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("wal");
    let error = Wal::open(&dir, small().backend(BackendChoice::Uring)).expect_err("refused");
    let Error::BackendUnavailable { backend, path, source } = &error else {
        panic!("not BackendUnavailable: {error:?}");
    };
    assert_eq!((*backend, path.as_path()), ("io_uring", dir.as_path()));
    // EPERM: what a kernel that disables io_uring returns from `io_uring_setup`.
    let eperm = rustix::io::Errno::PERM.raw_os_error();
    assert_eq!((source.raw_os_error(), error.raw_os_error()), (Some(eperm), Some(eperm)));
    let message = error.to_string();
    assert!(message.contains("io_uring") && message.contains("os error 1"), "{message}");
    assert!(!dir.exists(), "a refused open creates nothing");
    let auto = Wal::open(&dir, small()).expect("Auto opens without io_uring");
    assert_eq!(auto.backend().to_string(), "sync: chosen by Auto");
    auto.append_sync(FrameKind::RECORD, b"durable").expect("append");
    drop(auto);
    let sync = Wal::open(&dir, small().backend(BackendChoice::Sync)).expect("Sync opens");
    assert_eq!(read_all(&sync).len(), 1);
}

/// The sync backend, recording which thread makes each write, and whose files'
/// `write_and_sync` panics once `armed` is set (a stand-in for a bug in the writer's path)
/// and waits while a test holds `gate` for writing (a write that takes as long as it likes).
#[derive(Debug)]
struct ProbeIo {
    inner: SyncIo,
    armed: Arc<std::sync::atomic::AtomicBool>,
    gate: Gate,
    writers: Writers,
}

/// Held for writing by a test to keep the log's writes from completing.
type Gate = Arc<std::sync::RwLock<()>>;

/// The threads that made the writes, in order.
type Writers = Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>;

impl ProbeIo {
    fn new() -> ProbeIo {
        ProbeIo {
            inner: SyncIo::new(),
            armed: Arc::default(),
            gate: Arc::default(),
            writers: Arc::default(),
        }
    }

    /// The backend: the sync backend's, each file a [`ProbeFile`].
    fn io(self) -> Arc<dyn Io> {
        let ProbeIo { inner, armed, gate, writers } = self;
        let wrap = move |_: &Path, inner: Box<dyn LogFile>| -> Box<dyn LogFile> {
            let (armed, writers, gate) =
                (Arc::clone(&armed), Arc::clone(&writers), Arc::clone(&gate));
            Box::new(ProbeFile { inner, armed, gate, writers })
        };
        Arc::new(common::WrapIo { name: "probe", inner: Arc::new(inner), wrap })
    }
}

#[derive(Debug)]
struct ProbeFile {
    inner: Box<dyn LogFile>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    gate: Gate,
    writers: Writers,
}

impl ProbeFile {
    fn record_writer(&self) {
        self.writers.lock().unwrap().push(std::thread::current().id());
    }
}

impl LogFile for ProbeFile {
    pass_through_file_reads!();
    fn write_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> std::io::Result<usize> {
        self.record_writer();
        self.inner.write_at(bufs, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn write_and_sync(&self, bufs: &[IoSlice<'_>], offset: u64) -> std::io::Result<usize> {
        self.record_writer();
        assert!(!self.armed.load(std::sync::atomic::Ordering::SeqCst), "injected writer panic");
        let _open = self.gate.read().unwrap();
        self.inner.write_and_sync(bufs, offset)
    }
}

#[test]
fn a_panic_while_writing_fails_the_waiters_instead_of_leaving_them_asleep() {
    let dir = tempfile::tempdir().unwrap();
    let probe = ProbeIo::new();
    let armed = Arc::clone(&probe.armed);
    let io = probe.io();
    let wal = Wal::open(dir.path(), small().io(io)).expect("open");
    wal.append_sync(FrameKind::RECORD, b"before").expect("a write before the panic");
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let error = wal.append_sync(FrameKind::RECORD, b"during").expect_err("the writer panicked");
    match error {
        Error::Failed { cause } => assert!(
            matches!(&*cause, Error::WriterPanicked { message } if message.contains("injected")),
            "{cause}"
        ),
        other => panic!("expected Failed(WriterPanicked), got {other}"),
    }
    assert!(matches!(wal.append(FrameKind::RECORD, b"after"), Err(Error::Failed { .. })));
}

/// A log over [`ProbeIo`] in `dir`, the writers it records from after the open on, and
/// its gate.
fn probed_log(dir: &Path) -> (Wal, Writers, Gate) {
    let probe = ProbeIo::new();
    let (writers, gate) = (Arc::clone(&probe.writers), Arc::clone(&probe.gate));
    let io = probe.io();
    let wal = Wal::open(dir, small().io(io)).expect("open");
    writers.lock().unwrap().clear();
    (wal, writers, gate)
}

#[test]
fn committers_that_queue_behind_a_write_share_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, writers, gate) = probed_log(dir.path());
    let held = gate.write().unwrap();
    let positions: Vec<LogPosition> = std::thread::scope(|scope| {
        let first = scope.spawn(|| wal.append_sync(FrameKind::RECORD, b"first").expect("commit"));
        eventually("the first commit is being written", || writers.lock().unwrap().len() == 1);
        let queued: Vec<_> = (0..7)
            .map(|index| {
                let wal = &wal;
                scope.spawn(move || wal.append_sync(FrameKind::RECORD, &payload(1, index)))
            })
            .collect();
        eventually("seven more commits are queued", || wal.stats().appends == 8);
        drop(held);
        let mut positions = vec![first.join().unwrap()];
        positions.extend(queued.into_iter().map(|q| q.join().unwrap().expect("commit")));
        positions
    });
    assert!(positions.iter().all(|&position| wal.durable_position() > position));
    assert_eq!(writers.lock().unwrap().len(), 2, "the seven queued commits made one write");
    let stats = wal.stats();
    assert_eq!((stats.batches, stats.fsyncs), (2, 2), "{stats:?}");
}

#[test]
fn a_lone_committer_writes_and_syncs_its_own_record_on_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, writers, _gate) = probed_log(dir.path());
    for index in 0..20 {
        let position = wal.append_sync(FrameKind::RECORD, &payload(0, index)).expect("commit");
        assert!(wal.durable_position() > position, "acknowledged before durable");
    }
    let writers = writers.lock().unwrap().clone();
    assert_eq!(writers.len(), 20, "one write per commit: {writers:?}");
    let me = std::thread::current().id();
    assert!(writers.iter().all(|&writer| writer == me), "a write was handed off: {writers:?}");
    assert_eq!(wal.stats().fsyncs, 20, "one fdatasync per commit");
}

#[test]
fn an_append_to_wait_for_is_left_to_its_waiter_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, writers, _gate) = probed_log(dir.path());
    let position = wal.append_to_wait(FrameKind::RECORD, b"mine").expect("append");
    // The background writer is not woken for it (an unwaited append is written within
    // moments: the next test): it waits for its waiter.
    std::thread::sleep(Duration::from_millis(100));
    assert!(wal.durable_position() <= position, "written before anyone waited");
    assert!(writers.lock().unwrap().is_empty());
    wal.wait_durable(position).expect("durable");
    let me = std::thread::current().id();
    assert_eq!(writers.lock().unwrap().clone(), [me], "the waiter wrote it itself");
}

#[test]
fn an_append_nobody_waits_for_is_made_durable_by_the_background_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, writers, _gate) = probed_log(dir.path());
    let position = wal.append(FrameKind::RECORD, b"unwaited").expect("append");
    eventually("the unwaited append is durable", || wal.durable_position() > position);
    let writers = writers.lock().unwrap().clone();
    let me = std::thread::current().id();
    assert!(!writers.is_empty() && writers.iter().all(|&w| w != me), "{writers:?}");
    // A waiter for a record the background made durable returns at once.
    wal.wait_durable(position).expect("durable");
    assert_eq!(read_all(&wal).last().map(|r| r.payload.clone()), Some(b"unwaited".to_vec()));
}
