//! The one I/O trait through which every byte of the log goes, and its backends.
//!
//! - [`UringIo`](uring::UringIo): io_uring; a write and the fdatasync after it are linked in
//!   one submission.
//! - [`SyncIo`](sync::SyncIo): pwritev + fdatasync, for kernels or sandboxes that refuse
//!   io_uring, with the same semantics.
//! - [`FaultIo`](fault::FaultIo): wraps another backend and injects short writes, EIO,
//!   ENOSPC and failed fsyncs at chosen points, for tests.
//!
//! A backend's file operations report what the system call did, short writes included; the
//! log's writer ([`write_all_durably`]) loops over them.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::Arc;

pub mod fault;
pub mod sync;
#[cfg(target_os = "linux")]
pub mod uring;

/// How a new segment file's space is reserved.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Preallocation {
    /// `fallocate`: fast to create, but the extents stay "unwritten" until first written,
    /// which can make each fdatasync update file-system metadata.
    Fallocate,
    /// Write zeroes over the whole file once, and sync it: slower to create, and no
    /// metadata to update on later writes.
    #[default]
    ZeroFill,
}

/// How a file is opened for writing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct OpenFlags {
    /// `O_DSYNC`: every write is durable when it returns (no separate fdatasync needed).
    pub dsync: bool,
}

/// Which backend a log uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring if the kernel allows it and it writes to the log's file system inline
    /// (measured when the log opens: [`select_backend`]), else the sync fallback.
    #[default]
    Auto,
    /// io_uring, or an error if it is unavailable.
    Uring,
    /// pwritev + fdatasync.
    Sync,
}

/// File-system operations on the log's directory.
pub trait Io: Send + Sync + fmt::Debug {
    /// The backend's name, as reported to users: `"io_uring"`, `"sync"`, or a wrapper's.
    fn name(&self) -> String;
    /// Creates a new file (failing if it exists), open for reading and writing.
    fn create(&self, path: &Path, flags: OpenFlags) -> io::Result<Box<dyn LogFile>>;
    /// Opens an existing file, for reading and, if `writable`, writing.
    fn open(&self, path: &Path, writable: bool, flags: OpenFlags) -> io::Result<Box<dyn LogFile>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates a directory and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of a directory.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// fsyncs a directory, making creations, renames and removals in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file of the log.
pub trait LogFile: Send + Sync + fmt::Debug {
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `offset` into `buf`; fewer bytes than asked only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Reserves `len` bytes for the file, as `how` says.
    fn preallocate(&self, len: u64, how: Preallocation) -> io::Result<()>;
    /// One vectored write at `offset`; may write fewer bytes than given.
    fn write_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// One vectored write at `offset`, then, if every byte was written, fdatasync; returns
    /// the bytes written (the sync ran if and only if that is all of them and `Ok`).
    /// io_uring submits both at once, linked.
    fn write_and_sync(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        let written = self.write_at(bufs, offset)?;
        if written == total_len(bufs) {
            self.sync_data()?;
        }
        Ok(written)
    }
}

/// The total length of `bufs`.
pub fn total_len(bufs: &[IoSlice<'_>]) -> usize {
    bufs.iter().map(|buf| buf.len()).sum()
}

/// Writes every byte of `bufs` at `offset` (retrying short writes) and, if `sync`, makes
/// them durable. A write that makes no progress is an error (`WriteZero`), not a loop.
pub fn write_all_durably(
    file: &dyn LogFile,
    bufs: &[IoSlice<'_>],
    mut offset: u64,
    sync: bool,
) -> io::Result<()> {
    let mut owned: Vec<IoSlice<'_>> = bufs.iter().filter(|buf| !buf.is_empty()).copied().collect();
    let mut remaining: &mut [IoSlice<'_>] = &mut owned;
    loop {
        let want = total_len(remaining);
        if want == 0 {
            return if sync { file.sync_data() } else { Ok(()) };
        }
        let written = if sync {
            file.write_and_sync(remaining, offset)?
        } else {
            file.write_at(remaining, offset)?
        };
        if written == want {
            return Ok(());
        }
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the write made no progress"));
        }
        offset += written as u64;
        IoSlice::advance_slices(&mut remaining, written);
    }
}

/// A backend and why it was chosen.
#[derive(Clone, Debug)]
pub struct SelectedBackend {
    /// The backend.
    pub io: Arc<dyn Io>,
    /// Why this one, in words (with the figures measured, for `Auto`).
    pub reason: String,
}

/// A ring write must cost no more than this many pwrites (plus [`PUNT_SLACK`]) for `Auto`
/// to keep io_uring: a write the kernel cannot do inline is punted to a kernel worker, which
/// costs a thread hand-off (tens of µs) where a pwrite into the page cache costs one or two.
const PUNT_FACTOR: u32 = 3;
/// Slack added to the pwrite cost before comparing, so that scheduling noise on two
/// sub-microsecond figures does not decide.
const PUNT_SLACK: std::time::Duration = std::time::Duration::from_micros(5);

/// The backend `choice` asks for, for a log in `dir`. `Auto` takes io_uring only if the
/// kernel allows it and it writes to `dir`'s file system inline: it times a few 4 KiB
/// writes through the ring against pwrites of the same block in a scratch file (removed
/// after) and keeps the sync backend if the ring's writes are punted to kernel workers (on
/// ext4, for one, buffered writes cannot be issued without blocking, so every ring write
/// pays a thread hand-off, and the log's one-batch-at-a-time commits are slower for it).
///
/// # Errors
/// `Uring` when io_uring is unavailable. The measurement's own I/O errors are not errors:
/// `Auto` then keeps io_uring and says why.
pub fn select_backend(choice: BackendChoice, dir: &Path) -> io::Result<SelectedBackend> {
    let chosen =
        |io: Arc<dyn Io>| SelectedBackend { io, reason: "as WalOptions::backend asks".to_owned() };
    match choice {
        BackendChoice::Sync | BackendChoice::Uring => backend(choice).map(chosen),
        #[cfg(not(target_os = "linux"))]
        BackendChoice::Auto => Ok(SelectedBackend {
            io: Arc::new(sync::SyncIo::new()),
            reason: "io_uring is Linux only".to_owned(),
        }),
        #[cfg(target_os = "linux")]
        BackendChoice::Auto => Ok(select_measured(dir)),
    }
}

/// What `Auto` found for each file system (by device number), so that a process opening
/// many logs measures each file system once.
#[cfg(target_os = "linux")]
static MEASURED: std::sync::Mutex<Vec<(u64, bool, String)>> = std::sync::Mutex::new(Vec::new());

#[cfg(target_os = "linux")]
fn select_measured(dir: &Path) -> SelectedBackend {
    let device = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::metadata(dir))
        .map(|metadata| std::os::unix::fs::MetadataExt::dev(&metadata));
    let Ok(device) = device else { return measure(dir) };
    let earlier = MEASURED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(known, _, _)| *known == device)
        .map(|(_, uring, reason)| (*uring, reason.clone()));
    match earlier {
        Some((false, reason)) => {
            return SelectedBackend { io: Arc::new(sync::SyncIo::new()), reason };
        }
        Some((true, reason)) => {
            if let Ok(uring) = uring::UringIo::new() {
                return SelectedBackend { io: Arc::new(uring), reason };
            }
        }
        None => {}
    }
    let selected = measure(dir);
    let uring = selected.io.name() == "io_uring";
    let mut measured = MEASURED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !measured.iter().any(|(known, _, _)| *known == device) {
        measured.push((device, uring, selected.reason.clone()));
    }
    selected
}

/// Sets up io_uring and times its writes in `dir` (see [`select_backend`]).
#[cfg(target_os = "linux")]
fn measure(dir: &Path) -> SelectedBackend {
    let uring = match uring::UringIo::new() {
        Ok(uring) => uring,
        Err(error) => {
            return SelectedBackend {
                io: Arc::new(sync::SyncIo::new()),
                reason: format!("io_uring is unavailable here ({error})"),
            }
        }
    };
    match uring.time_writes(dir) {
        Ok(times) if ring_writes_are_punted(times) => SelectedBackend {
            io: Arc::new(sync::SyncIo::new()),
            reason: format!(
                "io_uring punts writes to this file system to kernel workers: {:?} a 4 KiB \
                 write through the ring, {:?} a pwrite",
                times.ring, times.pwrite
            ),
        },
        Ok(times) => SelectedBackend {
            io: Arc::new(uring),
            reason: format!(
                "io_uring writes inline here: {:?} a 4 KiB write through the ring, {:?} a \
                 pwrite",
                times.ring, times.pwrite
            ),
        },
        Err(error) => SelectedBackend {
            io: Arc::new(uring),
            reason: format!("io_uring, unmeasured ({error})"),
        },
    }
}

/// Whether ring writes cost so much more than pwrites that the kernel must be punting them
/// to its workers.
#[cfg(target_os = "linux")]
fn ring_writes_are_punted(times: uring::WriteTimes) -> bool {
    times.ring > times.pwrite * PUNT_FACTOR + PUNT_SLACK
}

/// The backend `choice` asks for, by availability alone (no measurement; see
/// [`select_backend`]): io_uring is probed (a ring is set up) and, for `Auto`, replaced by
/// the sync backend if the kernel refuses it.
///
/// # Errors
/// `Uring` when io_uring is unavailable.
pub fn backend(choice: BackendChoice) -> io::Result<Arc<dyn Io>> {
    match choice {
        BackendChoice::Sync => Ok(Arc::new(sync::SyncIo::new())),
        #[cfg(target_os = "linux")]
        BackendChoice::Uring => Ok(Arc::new(uring::UringIo::new()?)),
        #[cfg(target_os = "linux")]
        BackendChoice::Auto => match uring::UringIo::new() {
            Ok(uring) => Ok(Arc::new(uring)),
            Err(_) => Ok(Arc::new(sync::SyncIo::new())),
        },
        #[cfg(not(target_os = "linux"))]
        BackendChoice::Uring => {
            Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring is Linux only"))
        }
        #[cfg(not(target_os = "linux"))]
        BackendChoice::Auto => Ok(Arc::new(sync::SyncIo::new())),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use super::*;

    fn times(ring_us: f64, pwrite_us: f64) -> uring::WriteTimes {
        uring::WriteTimes {
            ring: Duration::from_secs_f64(ring_us / 1e6),
            pwrite: Duration::from_secs_f64(pwrite_us / 1e6),
        }
    }

    #[test]
    fn ring_writes_costing_a_thread_hand_off_count_as_punted_and_near_pwrite_ones_do_not() {
        // ext4 buffered writes on this machine: ~80 µs through the ring, ~1.4 µs by pwrite.
        assert!(ring_writes_are_punted(times(80.0, 1.4)));
        assert!(ring_writes_are_punted(times(30.0, 4.0)));
        // Inline ring writes cost about a pwrite, plus the ring's own sub-µs overhead.
        assert!(!ring_writes_are_punted(times(2.0, 1.4)));
        assert!(!ring_writes_are_punted(times(6.0, 1.0)));
        // Noise on tiny figures does not decide.
        assert!(!ring_writes_are_punted(times(4.0, 0.2)));
    }
}
