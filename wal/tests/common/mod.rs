//! Helpers the log's integration tests share: finding segment files and frames in them,
//! making the image a crash right after the last sync leaves, and skipping or refusing
//! io_uring.

#![allow(dead_code, reason = "each test file uses some")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use inmem_wal::format::{SEGMENT_HEADER_LEN, TRAILER_LEN};
use inmem_wal::io::{backend, URING_SWITCH, URING_SWITCH_REFUSE};
use inmem_wal::{BackendChoice, LogPosition};

/// Polls `done` until it holds, failing the test after 30 s.
pub fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether io_uring can be set up here; where it cannot (a kernel or sandbox that refuses
/// it, or `INMEM_IO_URING=refuse`), says on stderr that `what` is skipped and why.
pub fn uring_or_skip(what: &str) -> bool {
    match backend(BackendChoice::Uring) {
        Ok(_) => true,
        Err(error) => {
            eprintln!("skipping {what} over io_uring: io_uring is refused here ({error})");
            false
        }
    }
}

/// Runs test `name` of this test binary again, alone, in a child process whose io_uring
/// setups are refused (`INMEM_IO_URING=refuse`), and fails unless it ran there and passed.
pub fn run_with_uring_refused(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(URING_SWITCH, URING_SWITCH_REFUSE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} with io_uring refused: {}\n{stdout}{stderr}",
        output.status
    );
}

/// The segment files of `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    files
}

/// The first position of `segment`, from its name.
pub fn first_of(segment: &Path) -> LogPosition {
    LogPosition::new(segment.file_stem().unwrap().to_str().unwrap().parse().unwrap())
}

/// The file offset of `position` in `segment`.
pub fn offset_in(segment: &Path, position: LogPosition) -> usize {
    (SEGMENT_HEADER_LEN + position.get() - first_of(segment).get()) as usize
}

/// The segment of `dir` that holds `position`.
pub fn segment_of(dir: &Path, position: LogPosition) -> PathBuf {
    segments(dir).into_iter().rev().find(|segment| first_of(segment) <= position).unwrap()
}

/// What a crash right after the last sync leaves: the close trailer at `end` zeroed, so
/// that only the frames' stamps prove what was synced.
pub fn zero_close_trailer(dir: &Path, end: LogPosition) {
    let newest = segment_of(dir, end);
    let offset = offset_in(&newest, end);
    let mut bytes = std::fs::read(&newest).unwrap();
    let trailer = &mut bytes[offset..offset + TRAILER_LEN];
    assert!(trailer.iter().any(|&b| b != 0), "a close trailer at {end}");
    trailer.fill(0);
    std::fs::write(&newest, bytes).unwrap();
}

/// A backend that passes every operation to `inner` and wraps each file it opens or
/// creates with `wrap` (its path, the inner file): the tests' probes and scripted disks.
pub struct WrapIo<F> {
    pub name: &'static str,
    pub inner: std::sync::Arc<dyn inmem_wal::io::Io>,
    pub wrap: F,
}

type FileBox = Box<dyn inmem_wal::io::LogFile>;

impl<F> std::fmt::Debug for WrapIo<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapIo").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<F> inmem_wal::io::Io for WrapIo<F>
where
    F: Fn(&Path, FileBox) -> FileBox + Send + Sync,
{
    fn name(&self) -> String {
        self.name.into()
    }
    fn create(&self, path: &Path, flags: inmem_wal::io::OpenFlags) -> std::io::Result<FileBox> {
        Ok((self.wrap)(path, self.inner.create(path, flags)?))
    }
    fn open(
        &self,
        path: &Path,
        writable: bool,
        flags: inmem_wal::io::OpenFlags,
    ) -> std::io::Result<FileBox> {
        Ok((self.wrap)(path, self.inner.open(path, writable, flags)?))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        self.inner.list_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

/// Inside an `impl LogFile` of a test's wrapping file (a struct with an `inner` file): the
/// operations it passes through unchanged.
#[macro_export]
macro_rules! pass_through_file_reads {
    () => {
        fn size(&self) -> std::io::Result<u64> {
            self.inner.size()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.inner.read_at(buf, offset)
        }
        fn preallocate(&self, len: u64, how: inmem_wal::io::Preallocation) -> std::io::Result<()> {
            self.inner.preallocate(len, how)
        }
    };
}
