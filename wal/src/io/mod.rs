//! The one I/O trait through which every byte of the log goes, and its backends.
//!
//! - [`UringIo`](uring::UringIo): io_uring; a write and the fdatasync after it (and a
//!   frontier slot's write between them, when a round has one) are linked in one
//!   submission.
//! - [`SyncIo`](sync::SyncIo): pwritev + fdatasync, with the same semantics; what
//!   [`BackendChoice::Auto`] takes (measured faster for the log's writer, [`AUTO_REASON`]),
//!   and the fallback where the kernel refuses io_uring.
//! - [`FaultIo`](fault::FaultIo): wraps another backend and injects short writes, EIO,
//!   ENOSPC and failed fsyncs at chosen points, for tests.
//! - [`SimIo`](sim::SimIo): an in-memory disk that records every operation and builds the
//!   images a power failure could leave, for power-loss tests.
//!
//! Which backend a log uses, and why, is decided in one place ([`backend_in_use`]): `Uring`
//! is an explicit request (an error where the kernel refuses io_uring), `Auto` never fails
//! for want of io_uring. Setting [`URING_SWITCH`] (`INMEM_IO_URING=refuse`) makes every
//! io_uring setup fail as a refusing kernel's does, for tests.
//!
//! A backend's file operations report what the system call did, short writes included; the
//! log's writer ([`write_all_durably`]) loops over them.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IoSlice};
use std::path::Path;

pub use choice::{
    backend, backend_in_use, is_uring_refusal, uring_refused_by_switch, BackendChoice,
    BackendInUse, BackendReason, Preferred, AUTO_PREFERS, AUTO_REASON, URING_SWITCH,
    URING_SWITCH_REFUSE,
};

mod choice;
pub mod fault;
pub(crate) mod readonly;
pub mod sim;
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
    /// fdatasync run beside the log's writer (`group.rs`, the syncer thread): sharing
    /// nothing the writer's own submissions wait on. By default [`LogFile::sync_data`];
    /// io_uring makes it a plain system call rather than a submission to the ring, which
    /// would hold the ring, and so every write, for as long as the sync takes.
    fn sync_data_alone(&self) -> io::Result<()> {
        self.sync_data()
    }
    /// Writes `[offset, offset + len)` back to the disk and waits for it, without making
    /// it durable: no journal commit, no flush of the disk's cache (`sync_file_range(2)`).
    /// A file written in stretches, each written back before the next, leaves the disk at
    /// most a stretch of its dirty pages at any time, and one final [`LogFile::sync_data`]
    /// little left to do. By default (backends without it): [`LogFile::sync_data`].
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        self.sync_data()
    }
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
    /// One round of the log's writer that also writes a frontier slot
    /// (`format.rs`, "Frontier slots"): one vectored write of `bufs` at `offset`; if it
    /// wrote every byte, one write of `then` at `then_offset`; if that wrote every byte too
    /// and `sync`, fdatasync. Returns the bytes each write wrote (the second's 0 if it did
    /// not run); the sync ran if and only if both are whole and the result is `Ok`.
    /// io_uring submits the three linked, so the slot costs no extra system call.
    fn write_pair(
        &self,
        bufs: &[IoSlice<'_>],
        offset: u64,
        then: &[u8],
        then_offset: u64,
        sync: bool,
    ) -> io::Result<(usize, usize)> {
        let written = self.write_at(bufs, offset)?;
        if written < total_len(bufs) {
            return Ok((written, 0));
        }
        let second = self.write_at(&[IoSlice::new(then)], then_offset)?;
        if sync && second == then.len() {
            self.sync_data()?;
        }
        Ok((written, second))
    }
}

/// The total length of `bufs`.
pub fn total_len(bufs: &[IoSlice<'_>]) -> usize {
    bufs.iter().map(|buf| buf.len()).sum()
}

/// Overwrites `[from, to)` of `file` with zeros, in writes of at most 1 MiB (not synced).
///
/// # Errors
/// The first failed write.
pub fn write_zeros(file: &dyn LogFile, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; usize::try_from(to.saturating_sub(from).min(1 << 20)).unwrap_or(1 << 20)];
    let mut at = from;
    while at < to {
        let len = usize::try_from((to - at).min(zeros.len() as u64)).unwrap_or(zeros.len());
        write_all_durably(file, &[IoSlice::new(&zeros[..len])], at, false)?;
        at += len as u64;
    }
    Ok(())
}

/// Writes every byte of `bufs` at `offset` and, if `slot` is given, every byte of its
/// bytes at its offset (a frontier slot's sector), retrying short writes, and, if `sync`,
/// makes them durable: one [`LogFile::write_pair`] when nothing is short.
///
/// # Errors
/// The first failed write or sync; a write that makes no progress (`WriteZero`).
pub fn write_round(
    file: &dyn LogFile,
    bufs: &[IoSlice<'_>],
    mut offset: u64,
    slot: Option<(&[u8], u64)>,
    sync: bool,
) -> io::Result<()> {
    let Some((then, then_offset)) = slot else {
        return write_all_durably(file, bufs, offset, sync);
    };
    let mut owned: Vec<IoSlice<'_>> = bufs.iter().filter(|buf| !buf.is_empty()).copied().collect();
    let mut remaining: &mut [IoSlice<'_>] = &mut owned;
    if total_len(remaining) == 0 {
        return write_all_durably(file, &[IoSlice::new(then)], then_offset, sync);
    }
    loop {
        let want = total_len(remaining);
        let (written, second) = file.write_pair(remaining, offset, then, then_offset, sync)?;
        if written == want {
            if second == then.len() {
                return Ok(());
            }
            // The data is whole, the slot short: finish it (and sync) on its own.
            let rest = then.get(second..).unwrap_or_default();
            return write_all_durably(
                file,
                &[IoSlice::new(rest)],
                then_offset + second as u64,
                sync,
            );
        }
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the write made no progress"));
        }
        offset += written as u64;
        IoSlice::advance_slices(&mut remaining, written);
    }
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
