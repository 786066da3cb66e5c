//! The I/O backends, each against the same expectations: the sync backend always, io_uring
//! wherever the kernel allows it (skipped with a message where it does not), and the
//! fault-injecting wrapper over both.

#![allow(clippy::expect_used, reason = "a failed expectation fails the test, as it should")]

use std::io::{ErrorKind, IoSlice};
use std::path::Path;
use std::sync::Arc;

use inmem_wal::io::fault::{Fault, FaultIo, Op, EIO, ENOSPC};
use inmem_wal::io::sim::SimIo;
use inmem_wal::io::sync::SyncIo;
use inmem_wal::io::{
    backend, write_all_durably, write_round, BackendChoice, Io, LogFile, OpenFlags, Preallocation,
};
use inmem_wal::{Durability, FrameKind, LogPosition, Wal, WalOptions};

/// Every backend this machine offers.
fn backends() -> Vec<Arc<dyn Io>> {
    let mut all: Vec<Arc<dyn Io>> = vec![Arc::new(SyncIo::new())];
    match backend(BackendChoice::Uring) {
        Ok(uring) => all.push(uring),
        Err(error) => {
            eprintln!("skipping the io_uring backend: io_uring is refused here ({error})")
        }
    }
    all
}

/// Every backend, each wrapped in a [`FaultIo`].
fn faulty_backends() -> Vec<Arc<FaultIo>> {
    backends().into_iter().map(FaultIo::new).collect()
}

fn create(io: &dyn Io, path: &Path) -> Box<dyn LogFile> {
    io.create(path, OpenFlags::default()).unwrap_or_else(|error| {
        panic!("{}: create {}: {error}", io.name(), path.display());
    })
}

/// The whole content of `file`.
fn contents(file: &dyn LogFile) -> Vec<u8> {
    let size = usize::try_from(file.size().expect("size")).expect("small file");
    let mut buf = vec![0xAA; size];
    assert_eq!(file.read_at(&mut buf, 0).expect("read"), size);
    buf
}

#[test]
fn every_backend_on_this_machine_is_tested_and_auto_takes_the_one_measured_faster() {
    let names: Vec<String> = backends().iter().map(|io| io.name()).collect();
    if backend(BackendChoice::Uring).is_ok() {
        assert_eq!(names, ["sync", "io_uring"]);
        assert_eq!(backend(BackendChoice::Uring).expect("uring").name(), "io_uring");
    }
    // pwrite + fdatasync, whether io_uring is available or not (see AUTO_REASON).
    assert_eq!(backend(BackendChoice::Auto).expect("auto backend").name(), "sync");
    assert_eq!(backend(BackendChoice::Sync).expect("sync").name(), "sync");
}

#[test]
fn create_refuses_an_existing_file_and_open_finds_it() {
    for io in backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let file = create(&*io, &path);
        assert_eq!(file.size().expect("size"), 0, "{}", io.name());
        let again = io.create(&path, OpenFlags::default()).map(drop);
        assert_eq!(again.map_err(|e| e.kind()), Err(ErrorKind::AlreadyExists), "{}", io.name());
        assert!(io.open(&path, true, OpenFlags::default()).is_ok(), "{}", io.name());
        let missing = io.open(&dir.path().join("missing"), false, OpenFlags::default()).map(drop);
        assert_eq!(missing.map_err(|e| e.kind()), Err(ErrorKind::NotFound), "{}", io.name());
    }
}

#[test]
fn preallocation_of_either_kind_sizes_the_file_and_reads_back_as_zeroes() {
    const LEN: u64 = 3 << 20;
    for io in backends() {
        for how in [Preallocation::Fallocate, Preallocation::ZeroFill] {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = create(&*io, &dir.path().join("segment"));
            file.preallocate(LEN, how).expect("preallocate");
            assert_eq!(file.size().expect("size"), LEN, "{} {how:?}", io.name());
            let mut tail = [0xAA; 4096];
            assert_eq!(file.read_at(&mut tail, LEN - 4096).expect("read"), 4096);
            assert!(tail.iter().all(|&byte| byte == 0), "{} {how:?}", io.name());
        }
    }
}

#[test]
fn bytes_written_at_an_offset_read_back_and_reads_stop_at_the_end_of_the_file() {
    for io in backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        let bufs = [IoSlice::new(b"hello, "), IoSlice::new(b"log")];
        assert_eq!(file.write_at(&bufs, 100).expect("write"), 10, "{}", io.name());
        assert_eq!(file.size().expect("size"), 110);
        let mut buf = [0xAA; 16];
        assert_eq!(file.read_at(&mut buf, 100).expect("read"), 10, "{}", io.name());
        assert_eq!(&buf[..10], b"hello, log");
        assert_eq!(file.read_at(&mut buf, 96).expect("read"), 14);
        assert_eq!(&buf[..14], b"\0\0\0\0hello, log");
        assert_eq!(file.read_at(&mut buf, 110).expect("read at the end"), 0);
    }
}

#[test]
fn write_back_takes_any_range_within_the_file_system_limits_and_refuses_one_past_them() {
    for io in backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("checkpoint"));
        let data = vec![3u8; 100 << 10];
        assert_eq!(file.write_at(&[IoSlice::new(&data)], 0).expect("write"), data.len());
        let name = io.name();
        file.write_back(0, 32 << 10).unwrap_or_else(|e| panic!("{name}: {e}"));
        file.write_back(32 << 10, 68 << 10).unwrap_or_else(|e| panic!("{name}: {e}"));
        file.write_back(1 << 20, 4096).unwrap_or_else(|e| panic!("{name}: past the end: {e}"));
        let refused = file.write_back(u64::MAX - 1, 1).expect_err("an offset past i64::MAX");
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput, "{name}: {refused}");
        assert_eq!(contents(&*file), data, "{name}: written back as written");
    }
}

#[test]
fn write_and_sync_of_several_slices_writes_them_back_to_back() {
    for io in backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        file.preallocate(1 << 16, Preallocation::Fallocate).expect("preallocate");
        let big = vec![7u8; 5000];
        let bufs =
            [IoSlice::new(b"head"), IoSlice::new(&[]), IoSlice::new(&big), IoSlice::new(b"tail")];
        assert_eq!(file.write_and_sync(&bufs, 8).expect("write_and_sync"), 5008, "{}", io.name());
        let content = contents(&*file);
        assert_eq!(&content[..12], b"\0\0\0\0\0\0\0\0head", "{}", io.name());
        assert!(content[12..5012].iter().all(|&byte| byte == 7));
        assert_eq!(&content[5012..5016], b"tail");
        assert_eq!(file.write_and_sync(&[], 0).expect("an empty write still syncs"), 0);
    }
}

#[test]
fn files_opened_with_dsync_take_writes_and_syncs() {
    let flags = OpenFlags { dsync: true };
    for io in backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let file = io.create(&path, flags).expect("create with O_DSYNC");
        write_all_durably(&*file, &[IoSlice::new(b"durable")], 0, true).expect("write");
        drop(file);
        let file = io.open(&path, true, flags).expect("open with O_DSYNC");
        assert_eq!(contents(&*file), b"durable", "{}", io.name());
        let open_flags = open_flags_of(&path).expect("the open file is in /proc/self/fd");
        assert_eq!(open_flags & O_DSYNC, O_DSYNC, "{}: flags {open_flags:o}", io.name());
        assert_eq!(open_flags & O_SYNC_ONLY_BIT, 0, "{}: O_SYNC, not O_DSYNC", io.name());
    }
}

/// `O_DSYNC`, and the bit `O_SYNC` adds to it, as Linux numbers them (octal).
const O_DSYNC: u32 = 0o10000;
const O_SYNC_ONLY_BIT: u32 = 0o4000000;

/// The `open(2)` flags of this process's open file at `path`, from `/proc/self/fdinfo`.
fn open_flags_of(path: &Path) -> Option<u32> {
    let target = std::fs::canonicalize(path).ok()?;
    for entry in std::fs::read_dir("/proc/self/fd").ok()? {
        let entry = entry.ok()?;
        if std::fs::read_link(entry.path()).ok().as_deref() != Some(target.as_path()) {
            continue;
        }
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(entry.file_name()));
        let line =
            info.ok()?.lines().find_map(|line| line.strip_prefix("flags:").map(str::to_owned));
        return u32::from_str_radix(line?.trim(), 8).ok();
    }
    None
}

#[test]
fn write_all_durably_completes_writes_cut_short_by_injected_faults() {
    for sync in [false, true] {
        for io in faulty_backends() {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = create(&*io, &dir.path().join("segment"));
            io.inject(Fault::short_write(3));
            io.inject(Fault::short_write(5));
            let bufs = [IoSlice::new(b"0123456789"), IoSlice::new(b"abcdef")];
            write_all_durably(&*file, &bufs, 4, sync).expect("write_all_durably");
            assert_eq!(io.calls(Op::Write), 3, "{} sync={sync}", io.name());
            assert_eq!(io.fired(Op::Write), 2);
            assert_eq!(io.calls(Op::Sync), u64::from(sync), "{}: one sync, at the end", io.name());
            assert_eq!(
                contents(&*file),
                [&[0u8; 4][..], b"0123456789abcdef"].concat(),
                "{}",
                io.name()
            );
            assert_eq!(io.armed(), 0);
        }
    }
}

#[test]
fn write_pair_writes_the_data_then_the_slot_and_syncs_only_when_asked() {
    let mut all = backends();
    all.extend(faulty_backends().into_iter().map(|io| io as Arc<dyn Io>));
    all.push(SimIo::new());
    for io in all {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let file = create(&*io, &path);
        file.preallocate(8192, Preallocation::Fallocate).expect("preallocate");
        let slot = [9u8; 512];
        for sync in [false, true] {
            let data = vec![u8::from(sync) + 1; 3000];
            let bufs = [IoSlice::new(&data[..1000]), IoSlice::new(&data[1000..])];
            let written = file.write_pair(&bufs, 4096, &slot, 512, sync).expect("write_pair");
            assert_eq!(written, (3000, 512), "{} sync {sync}", io.name());
            let content = contents(&*file);
            assert!(content[512..1024].iter().all(|&b| b == 9), "{}", io.name());
            assert_eq!(&content[4096..7096], &data[..], "{} sync {sync}", io.name());
            assert!(content[1024..4096].iter().all(|&b| b == 0), "{}", io.name());
        }
    }
}

#[test]
fn write_pair_syncs_after_both_writes_and_counts_each_on_a_faulty_backend() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        let written = file.write_pair(&[IoSlice::new(b"data")], 4096, b"slot", 512, true);
        assert_eq!(written.expect("write_pair"), (4, 4), "{}", io.name());
        assert_eq!((io.calls(Op::Write), io.calls(Op::Sync)), (2, 1), "{}", io.name());
        // A failed slot write: the data is written, the slot not, nothing synced.
        io.inject(Fault::error(Op::Write, EIO).after(1));
        let failed = file.write_pair(&[IoSlice::new(b"more")], 4100, b"SLOT", 512, true);
        assert_eq!(failed.map_err(|e| e.raw_os_error()), Err(Some(EIO)), "{}", io.name());
        assert_eq!((io.calls(Op::Write), io.calls(Op::Sync)), (4, 1), "{}", io.name());
        let content = contents(&*file);
        assert_eq!((&content[512..516], &content[4096..4104]), (&b"slot"[..], &b"datamore"[..]));
    }
}

#[test]
fn write_round_completes_a_short_data_write_and_a_short_slot_write() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        // The data cut short (then completed, the slot written with it), then the slot
        // write cut short (then completed on its own, and synced).
        io.inject(Fault::short_write(3));
        io.inject(Fault::short_write(2).after(2));
        let slot = Some((&b"SLOT"[..], 512));
        write_round(&*file, &[IoSlice::new(b"abcdefgh")], 4096, slot, true).expect("round");
        let content = contents(&*file);
        assert_eq!((&content[512..516], &content[4096..4104]), (&b"SLOT"[..], &b"abcdefgh"[..]));
        assert_eq!(io.fired(Op::Write), 2, "{}", io.name());
        assert_eq!(io.calls(Op::Sync), 1, "{}", io.name());
    }
}

#[test]
fn a_short_write_within_write_and_sync_writes_the_prefix_and_skips_the_sync() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        io.inject(Fault::short_write(2));
        let written = file.write_and_sync(&[IoSlice::new(b"abcd")], 0).expect("write_and_sync");
        assert_eq!(written, 2, "{}", io.name());
        assert_eq!((io.calls(Op::Write), io.calls(Op::Sync)), (1, 0), "{}", io.name());
        assert_eq!(contents(&*file), b"ab");
    }
}

#[test]
fn a_short_write_of_zero_bytes_makes_write_all_durably_fail_with_write_zero() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        io.inject(Fault::short_write(0));
        let result = write_all_durably(&*file, &[IoSlice::new(b"abcd")], 0, true);
        assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::WriteZero), "{}", io.name());
        assert_eq!(io.calls(Op::Sync), 0);
        assert_eq!(file.size().expect("size"), 0);
    }
}

#[test]
fn an_injected_eio_on_sync_fails_write_all_durably_after_the_bytes_were_written() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        io.inject(Fault::error(Op::Sync, EIO).after(1));
        write_all_durably(&*file, &[IoSlice::new(b"first")], 0, true).expect("first sync");
        let error = write_all_durably(&*file, &[IoSlice::new(b"second")], 5, true)
            .expect_err("the second sync fails");
        assert_eq!(error.raw_os_error(), Some(EIO), "{}", io.name());
        assert_eq!((io.calls(Op::Sync), io.fired(Op::Sync)), (2, 1), "{}", io.name());
        // The write itself went through; only its durability is unknown.
        assert_eq!(contents(&*file), b"firstsecond");
        assert!(file.sync_data().is_ok(), "{}: the fault fired once", io.name());
    }
}

#[test]
fn an_injected_eio_on_write_fails_write_all_durably_without_a_sync() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        io.inject(Fault::error(Op::Write, EIO));
        let error = write_all_durably(&*file, &[IoSlice::new(b"lost")], 0, true)
            .expect_err("the write fails");
        assert_eq!(error.raw_os_error(), Some(EIO), "{}", io.name());
        assert_eq!((io.calls(Op::Write), io.calls(Op::Sync)), (1, 0), "{}", io.name());
        assert_eq!(file.size().expect("size"), 0, "nothing reached the file");
    }
}

#[test]
fn a_sticky_sync_failure_fails_every_later_sync() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        io.inject(Fault::error(Op::Sync, EIO).sticky());
        for offset in 0..3 {
            let result = write_all_durably(&*file, &[IoSlice::new(b"x")], offset, true);
            assert_eq!(result.map_err(|e| e.raw_os_error()), Err(Some(EIO)), "{}", io.name());
        }
        assert_eq!(file.sync_data().map_err(|e| e.raw_os_error()), Err(Some(EIO)));
        assert_eq!((io.fired(Op::Sync), io.armed()), (4, 1), "{}", io.name());
        io.clear();
        assert!(file.sync_data().is_ok(), "{}: cleared", io.name());
    }
}

#[test]
fn enospc_on_create_reports_storage_full_and_leaves_no_file() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        io.inject(Fault::error(Op::Create, ENOSPC));
        let result = io.create(&path, OpenFlags::default()).map(drop);
        assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::StorageFull), "{}", io.name());
        assert!(!path.exists(), "{}", io.name());
        assert!(io.create(&path, OpenFlags::default()).is_ok(), "the fault fired once");
        assert_eq!((io.calls(Op::Create), io.fired(Op::Create)), (2, 1));
    }
}

#[test]
fn enospc_on_preallocate_reports_storage_full_and_allocates_nothing() {
    for how in [Preallocation::Fallocate, Preallocation::ZeroFill] {
        for io in faulty_backends() {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = create(&*io, &dir.path().join("segment"));
            io.inject(Fault::error(Op::Preallocate, ENOSPC));
            let result = file.preallocate(1 << 20, how);
            assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::StorageFull), "{how:?}");
            assert_eq!(file.size().expect("size"), 0, "{} {how:?}", io.name());
        }
    }
}

#[test]
fn injected_errors_on_directory_operations_leave_the_directory_unchanged() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        drop(create(&*io, &from));
        for op in [Op::Rename, Op::Remove, Op::ListDir, Op::SyncDir, Op::Open, Op::CreateDir] {
            io.inject(Fault::error(op, EIO));
        }
        assert!(io.rename(&from, &to).is_err() && from.exists() && !to.exists());
        assert!(io.remove(&from).is_err() && from.exists());
        assert!(io.list_dir(dir.path()).is_err());
        assert!(io.sync_dir(dir.path()).is_err());
        assert!(io.open(&from, false, OpenFlags::default()).is_err());
        assert!(io.create_dir_all(&dir.path().join("sub")).is_err());
        assert!(!dir.path().join("sub").exists(), "{}", io.name());
        for op in [Op::Rename, Op::Remove, Op::ListDir, Op::SyncDir, Op::Open, Op::CreateDir] {
            assert_eq!((io.calls(op), io.fired(op)), (1, 1), "{} {op:?}", io.name());
        }
    }
}

#[test]
fn an_injected_read_error_surfaces_from_read_at() {
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        io.inject(Fault::error(Op::Read, EIO));
        let mut buf = [0u8; 4];
        assert_eq!(file.read_at(&mut buf, 0).map_err(|e| e.raw_os_error()), Err(Some(EIO)));
        assert_eq!(file.read_at(&mut buf, 0).expect("second read"), 0, "{}", io.name());
    }
}

#[test]
fn rename_replaces_the_target_and_remove_list_dir_and_sync_dir_see_the_result() {
    for io in backends() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("log").join("segments");
        io.create_dir_all(&dir).expect("create_dir_all");
        io.create_dir_all(&dir).expect("create_dir_all of an existing directory");
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        write_all_durably(&*create(&*io, &a), &[IoSlice::new(b"new")], 0, true).expect("a");
        write_all_durably(&*create(&*io, &b), &[IoSlice::new(b"old")], 0, true).expect("b");
        drop(create(&*io, &c));
        io.rename(&a, &b).expect("rename over b");
        io.remove(&c).expect("remove");
        io.sync_dir(&dir).expect("sync_dir");
        let names = io.list_dir(&dir).expect("list_dir");
        assert_eq!(names, ["b"], "{}", io.name());
        let renamed = io.open(&b, false, OpenFlags::default()).expect("open b");
        assert_eq!(contents(&*renamed), b"new", "{}", io.name());
        let missing = io.remove(&c).map_err(|e| e.kind());
        assert_eq!(missing, Err(ErrorKind::NotFound), "{}", io.name());
    }
}

#[test]
fn fault_io_is_named_after_the_backend_it_wraps() {
    let names: Vec<String> = faulty_backends().iter().map(|io| io.name()).collect();
    assert_eq!(names[0], "fault(sync)");
    if let Some(uring) = names.get(1) {
        assert_eq!(uring, "fault(io_uring)");
    }
}

/// Set in the child process that runs a test under a file-size limit.
const FSIZE_CHILD: &str = "INMEM_WAL_FSIZE_LIMITED_CHILD";

/// Runs test `name` of this binary again in a child whose file-size limit (`ulimit -f 8`: 4 or
/// 8 KiB, depending on the shell's unit) makes large writes at offset 0 short. The limit binds
/// the child's own output too, so that goes to pipes, and the child ignores SIGXFSZ: a write
/// past the limit fails with `EFBIG` and a message instead of killing it silently.
fn run_under_file_size_limit(name: &str) {
    let exe = std::env::current_exe().expect("current exe");
    let output = std::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ && ulimit -f 8 && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(FSIZE_CHILD, "1")
        .output()
        .expect("spawn the test under a file-size limit");
    assert!(
        output.status.success(),
        "the child running {name} failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn a_write_cut_short_by_the_kernel_is_reported_short_and_unsynced() {
    if std::env::var_os(FSIZE_CHILD).is_none() {
        return run_under_file_size_limit(
            "a_write_cut_short_by_the_kernel_is_reported_short_and_unsynced",
        );
    }
    let data = vec![1u8; 1 << 16];
    for io in faulty_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = create(&*io, &dir.path().join("segment"));
        let written = file.write_and_sync(&[IoSlice::new(&data)], 0).expect("write_and_sync");
        assert!(written > 0 && written < data.len(), "{}: wrote {written}", io.name());
        assert_eq!(file.size().expect("size"), written as u64, "{}", io.name());
        assert_eq!((io.calls(Op::Write), io.calls(Op::Sync)), (1, 0), "{}", io.name());
    }
}

#[test]
fn files_sharing_one_backend_write_from_several_threads_at_once() {
    const THREADS: u8 = 4;
    const WRITES: u64 = 20;
    for io in backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (io, dir) = (&io, dir.path());
                scope.spawn(move || {
                    let file = create(&**io, &dir.join(format!("segment-{thread}")));
                    for write in 0..WRITES {
                        let record = [thread; 64];
                        let sync = write % 2 == 0;
                        write_all_durably(&*file, &[IoSlice::new(&record)], write * 64, sync)
                            .expect("write");
                    }
                });
            }
        });
        for thread in 0..THREADS {
            let file = io
                .open(&dir.path().join(format!("segment-{thread}")), false, OpenFlags::default())
                .expect("open");
            let content = contents(&*file);
            assert_eq!(content.len() as u64, WRITES * 64, "{}", io.name());
            assert!(content.iter().all(|&byte| byte == thread), "{}", io.name());
        }
    }
}

#[test]
fn a_second_read_only_opening_syncs_alone_beside_the_first_ones_writes() {
    for io in backends() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("segment");
        let writer = create(io.as_ref(), &path);
        let syncs = io.open(&path, false, OpenFlags::default()).expect("open a second time");
        writer.write_at(&[IoSlice::new(b"first")], 0).expect("write");
        // The second opening syncs on its own thread while the first writes on.
        std::thread::scope(|scope| {
            let sync = scope.spawn(|| syncs.sync_data_alone());
            writer.write_at(&[IoSlice::new(b"second")], 5).expect("write beside the sync");
            sync.join().expect("syncer").unwrap_or_else(|e| panic!("{}: {e}", io.name()));
        });
        writer.sync_data().expect("sync");
        assert_eq!(contents(writer.as_ref()), b"firstsecond", "{}", io.name());
    }
}

#[test]
fn a_buffered_log_on_every_backend_syncs_beside_its_writes_and_reopens_whole() {
    let buffered = Durability::Buffered { interval: std::time::Duration::from_millis(1) };
    for io in backends() {
        let name = io.name();
        let dir = tempfile::tempdir().expect("dir");
        let options = WalOptions::default().segment_size(1 << 20).max_record_bytes(64 << 10);
        let options = options.durability(buffered);
        let wal = Wal::open(dir.path(), options.clone().io(Arc::clone(&io))).expect("open");
        let mut last = LogPosition::ZERO;
        for i in 0..400u32 {
            last = wal.append(FrameKind::RECORD, &[u8::try_from(i % 200).unwrap(); 5000]).unwrap();
            if i % 50 == 49 {
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        }
        wal.wait_durable(last).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stats = wal.stats();
        assert!(stats.fsyncs >= 2 && stats.segments_created >= 1, "{name}: {stats:?}");
        wal.close().expect("close");
        let wal = Wal::open(dir.path(), options.io(io)).expect("reopen");
        let records = wal.read_from(wal.first_position()).expect("read").count();
        assert_eq!(records, 400, "{name}");
    }
}
