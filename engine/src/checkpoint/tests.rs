//! Checkpoints on the log's I/O backend: written, listed, read back and cleaned up through
//! it alone, in chunks, with damage reported as corruption at any cut.

use std::io::IoSlice;

use inmem_wal::io::fault::{FaultIo, Op};
use inmem_wal::io::sim::SimIo;

use super::*;
use crate::{Database, Options, Retention};

/// A path under a temporary directory that is never created on the real file system: a
/// file appearing there would have bypassed the simulated disk.
fn nowhere() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let dir = root.path().join("db").join(CHECKPOINT_DIR);
    (root, dir)
}

/// A database in memory with `keys` keys of three versions each (a tombstone last for
/// every seventh), values of `value_bytes`.
fn filled(keys: u32, value_bytes: usize) -> Database {
    let options = Options::default().retention(Retention::KeepAll);
    let db = Database::with_options(options).unwrap_or_else(|error| panic!("open: {error}"));
    for round in 0u8..3 {
        for key in 0..keys {
            let key = format!("key/{key:05}");
            if round == 2 && key.ends_with('7') {
                db.delete(&key).unwrap_or_else(|error| panic!("delete: {error}"));
            } else {
                db.put(&key, vec![round; value_bytes]).unwrap_or_else(|error| panic!("{error}"));
            }
        }
    }
    db
}

pub(super) fn contents(io: &dyn Io, path: &Path) -> Vec<u8> {
    let file = io.open(path, false, OpenFlags::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut bytes = vec![0u8; file.size().map_or(0, |size| size as usize)];
    assert_eq!(file.read_at(&mut bytes, 0).ok(), Some(bytes.len()));
    bytes
}

pub(super) fn put_file(io: &dyn Io, path: &Path, bytes: &[u8]) {
    let file = io.create(path, OpenFlags::default()).unwrap_or_else(|e| panic!("{e}"));
    log_io::write_all_durably(file.as_ref(), &[IoSlice::new(bytes)], 0, true)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The file's bytes without the creation time and the header checksum over it.
fn timeless(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[32..48].fill(0);
    bytes
}

#[test]
fn a_checkpoint_is_written_listed_and_read_back_through_the_given_io_alone() {
    let (_root, dir) = nowhere();
    let sim = SimIo::new();
    let checkpoints = Checkpoints::new(sim.clone(), dir.clone());
    let db = filled(300, 40);
    let version = db.visible_version();
    let written = checkpoints
        .write(&db.shared, version, LogPosition::new(77))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (written.keys, written.versions, written.replay_from),
        (300, 900, LogPosition::new(77))
    );
    assert!(!dir.exists(), "nothing reached the real file system");
    let listed = checkpoints.list().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, [(version.get(), dir.join(file_name(version.get())))]);
    let bytes = contents(sim.as_ref(), &written.path);
    assert_eq!(bytes.len() as u64, written.bytes);

    // Loaded into an empty keyspace and written again, it is the same file.
    let empty = Database::with_options(Options::default().retention(Retention::KeepAll))
        .unwrap_or_else(|e| panic!("{e}"));
    let loaded =
        checkpoints.read(Some(&empty.shared), &written.path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((loaded.version, loaded.replay_from), (version, LogPosition::new(77)));
    let again = Checkpoints::new(sim.clone(), dir.with_file_name("again"))
        .write(&empty.shared, version, LogPosition::new(77))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(timeless(&contents(sim.as_ref(), &again.path)), timeless(&bytes));
}

#[test]
fn a_checkpoint_is_written_and_read_in_chunks_not_per_record() {
    let (_root, dir) = nowhere();
    let faults = FaultIo::new(SimIo::new());
    let checkpoints = Checkpoints::new(faults.clone(), dir);
    // About 3 MiB in 64 KiB blocks, and one key whose versions make a 6 MiB block: read
    // straight into its buffer, written without a copy.
    let db = filled(1000, 1024);
    db.put("huge", vec![9u8; 2 << 20]).unwrap_or_else(|e| panic!("{e}"));
    db.put("huge", vec![8u8; 4 << 20]).unwrap_or_else(|e| panic!("{e}"));
    let version = db.visible_version();
    let written =
        checkpoints.write(&db.shared, version, LogPosition::ZERO).unwrap_or_else(|e| panic!("{e}"));
    assert!(written.bytes > 8 << 20, "{written:?}");
    let writes = faults.calls(Op::Write);
    let write_chunks = written.bytes / format::WRITE_CHUNK_BYTES as u64 + 2;
    assert!(writes <= write_chunks, "{writes} writes for {} bytes", written.bytes);
    let chunks = written.bytes / IO_CHUNK_BYTES as u64 + 2;
    // Written back as it is written, in slices of WRITE_BACK_SLICE once a stretch of
    // STRETCH_BYTES is written; synced once, at the end.
    let write_backs = faults.calls(Op::WriteBack);
    let stretches = written.bytes / writer::STRETCH_BYTES;
    let slices_max = written.bytes / writer::WRITE_BACK_SLICE + stretches;
    assert!(
        (stretches..=slices_max).contains(&write_backs) && write_backs > 0,
        "{write_backs} write-backs for {} bytes",
        written.bytes
    );
    assert_eq!(faults.calls(Op::Sync), 1, "one sync, at the end");
    assert_eq!(faults.calls(Op::Rename), 1);
    let read = checkpoints.read(None, &written.path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((read.keys, read.versions, read.bytes), (1001, 3002, written.bytes));
    let reads = faults.calls(Op::Read);
    assert!(reads <= chunks, "{reads} reads for {} bytes", written.bytes);
}

#[test]
fn a_checkpoint_cut_anywhere_is_corrupt_and_names_its_file() {
    let sim = SimIo::new();
    let (_root, dir) = nowhere();
    let checkpoints = Checkpoints::new(sim.clone(), dir.clone());
    let small = filled(20, 8);
    let version = small.visible_version();
    let written = checkpoints
        .write(&small.shared, version, LogPosition::ZERO)
        .unwrap_or_else(|e| panic!("{e}"));
    let whole = contents(sim.as_ref(), &written.path);
    // Every cut of a small one; cuts around the chunk boundaries of one of 3 chunks.
    let large = filled(2600, 1024);
    let big = Checkpoints::new(sim.clone(), dir.with_file_name("large"))
        .write(&large.shared, large.visible_version(), LogPosition::ZERO)
        .unwrap_or_else(|e| panic!("{e}"));
    let large_whole = contents(sim.as_ref(), &big.path);
    assert!(large_whole.len() > 3 * IO_CHUNK_BYTES, "{}", large_whole.len());
    let around = |at: usize| at - 1..at + 2;
    let large_cuts = around(IO_CHUNK_BYTES).chain(around(2 * IO_CHUNK_BYTES));
    let cuts = (0..whole.len())
        .map(|cut| &whole[..cut])
        .chain(large_cuts.map(|cut| &large_whole[..cut]))
        .chain([&large_whole[..large_whole.len() - 1]]);
    for (index, cut) in cuts.enumerate() {
        let path = dir.join(format!("cut-{index}"));
        put_file(sim.as_ref(), &path, cut);
        match checkpoints.read(None, &path) {
            Err(Error::CorruptCheckpoint { path: named, offset, .. }) => {
                assert_eq!(named, path);
                assert!(offset <= cut.len() as u64, "cut at {}: offset {offset}", cut.len());
            }
            other => panic!("cut at {} of {}: {other:?}", cut.len(), whole.len()),
        }
    }
}

#[test]
fn an_unfinished_checkpoint_is_replaced_by_a_new_attempt_and_removed_at_open() {
    let sim = SimIo::new();
    let (_root, dir) = nowhere();
    let checkpoints = Checkpoints::new(sim.clone(), dir.clone());
    let db = filled(10, 8);
    let version = db.visible_version();
    let temporary = dir.join(file_name(version.get())).with_extension("tmp");
    put_file(sim.as_ref(), &temporary, b"half a checkpoint");
    let written =
        checkpoints.write(&db.shared, version, LogPosition::ZERO).unwrap_or_else(|e| panic!("{e}"));
    checkpoints.read(None, &written.path).unwrap_or_else(|e| panic!("{e}"));
    let other = dir.join(file_name(version.get() + 5)).with_extension("tmp");
    put_file(sim.as_ref(), &other, b"another");
    put_file(sim.as_ref(), &dir.join("notes.tmp"), b"not a checkpoint's");
    checkpoints.remove_unfinished().unwrap_or_else(|e| panic!("{e}"));
    let mut names = sim.list_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    names.sort();
    assert_eq!(names, [file_name(version.get()).as_str(), "notes.tmp"], "only the unfinished go");
}

#[test]
fn a_failed_write_sync_or_rename_removes_the_temporary_file_and_the_error_names_it() {
    use inmem_wal::io::fault::{Fault, EIO, ENOSPC};
    // Over one stretch of STRETCH_BYTES, so that a write-back comes before the sync.
    let db = filled(300, 1024);
    let version = db.visible_version();
    let cases = [
        (Fault::error(Op::Write, ENOSPC), ENOSPC, "writing a checkpoint"),
        (Fault::error(Op::WriteBack, EIO), EIO, "writing a checkpoint"),
        (Fault::error(Op::Sync, EIO), EIO, "syncing a checkpoint"),
        (Fault::error(Op::Rename, EIO), EIO, "renaming into place a checkpoint"),
    ];
    for (fault, errno, doing) in cases {
        let (_root, dir) = nowhere();
        let faults = FaultIo::new(SimIo::new());
        let checkpoints = Checkpoints::new(faults.clone(), dir.clone());
        faults.inject(fault);
        let temporary = dir.join(file_name(version.get())).with_extension("tmp");
        match checkpoints.write(&db.shared, version, LogPosition::ZERO) {
            Err(Error::Io { context, path, source }) => {
                assert_eq!((context, &path), (doing, &temporary));
                assert_eq!(source.io_error().raw_os_error(), Some(errno), "{doing}");
            }
            other => panic!("{doing}: {other:?}"),
        }
        assert_eq!(faults.fired(fault.op()), 1, "{doing}");
        let left = faults.list_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(left.is_empty(), "{doing}: {left:?} left behind");
        // The next attempt finds the directory as it was before the failed one.
        let written = checkpoints
            .write(&db.shared, version, LogPosition::ZERO)
            .unwrap_or_else(|e| panic!("{e}"));
        let listed = faults.list_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed, [written.path.file_name().unwrap_or_default()], "{doing}");
    }

    // Once renamed, the checkpoint is whole and synced: a failed sync of the directory
    // (the second sync_dir, after the database directory's) names the directory and
    // leaves the checkpoint, and no temporary file.
    let (_root, dir) = nowhere();
    let faults = FaultIo::new(SimIo::new());
    let checkpoints = Checkpoints::new(faults.clone(), dir.clone());
    faults.inject(Fault::error(Op::SyncDir, EIO).after(1));
    match checkpoints.write(&db.shared, version, LogPosition::ZERO) {
        Err(Error::Io { context: "syncing the checkpoints' directory", path, .. }) => {
            assert_eq!(path, dir);
        }
        other => panic!("{other:?}"),
    }
    let left = faults.list_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, [file_name(version.get()).as_str()]);
}
