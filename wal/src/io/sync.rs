//! The fallback backend: pwritev + fdatasync, through std and rustix.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::{Io, LogFile, OpenFlags, Preallocation};

/// pwritev + fdatasync: the backend for kernels or sandboxes that refuse io_uring.
#[derive(Debug, Default)]
pub struct SyncIo {}

impl SyncIo {
    /// The backend.
    pub fn new() -> SyncIo {
        SyncIo {}
    }
}

/// The `open(2)` flags `flags` stands for.
pub(crate) fn custom_flags(flags: OpenFlags) -> i32 {
    let mut custom = 0;
    if flags.dsync {
        custom |= O_DSYNC;
    }
    // The flags are small positive bit masks: they fit in an i32.
    i32::try_from(custom).unwrap_or(0)
}

/// The kernel's `O_DSYNC` (data and the metadata needed to read it back, not timestamps).
/// Not rustix's `OFlags::DSYNC`, which is `O_SYNC` on Linux.
#[cfg(target_os = "linux")]
const O_DSYNC: u32 = linux_raw_sys::general::O_DSYNC;
#[cfg(not(target_os = "linux"))]
const O_DSYNC: u32 = rustix::fs::OFlags::DSYNC.bits();

/// Opens `path` as the log opens its files.
pub(crate) fn open_file(
    path: &Path,
    create: bool,
    writable: bool,
    flags: OpenFlags,
) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(writable || create).create_new(create);
    if writable || create {
        options.custom_flags(custom_flags(flags));
    }
    options.open(path)
}

/// Reads at `offset` until `buf` is full or the file ends (retrying interruptions); returns
/// the bytes read. Both backends read this way (reads are recovery's, not the ring's).
pub(crate) fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Reserves `len` bytes of `file` as `how` says.
pub(crate) fn preallocate(file: &File, len: u64, how: Preallocation) -> io::Result<()> {
    match how {
        Preallocation::Fallocate => {
            rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len)?;
            Ok(())
        }
        Preallocation::ZeroFill => {
            const CHUNK: usize = 1 << 20;
            let zeroes = vec![0u8; CHUNK];
            let mut offset = 0;
            while offset < len {
                let chunk = usize::try_from((len - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
                file.write_all_at(&zeroes[..chunk], offset)?;
                offset += chunk as u64;
            }
            file.sync_all()
        }
    }
}

impl Io for SyncIo {
    fn name(&self) -> String {
        "sync".into()
    }

    fn create(&self, path: &Path, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(SyncFile { file: open_file(path, true, true, flags)? }))
    }

    fn open(&self, path: &Path, writable: bool, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(SyncFile { file: open_file(path, false, writable, flags)? }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?.map(|entry| entry.map(|entry| entry.file_name())).collect()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A file of the sync backend.
#[derive(Debug)]
struct SyncFile {
    file: File,
}

impl LogFile for SyncFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_full(&self.file, buf, offset)
    }

    fn preallocate(&self, len: u64, how: Preallocation) -> io::Result<()> {
        preallocate(&self.file, len, how)
    }

    fn write_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        loop {
            match rustix::io::pwritev(&self.file, bufs, offset) {
                Ok(written) => return Ok(written),
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        write_back(&self.file, offset, len)
    }
}

/// `sync_file_range(2)` of `[offset, offset + len)` with `WAIT_BEFORE | WRITE |
/// WAIT_AFTER`: the range's dirty pages written back and waited for (see
/// [`LogFile::write_back`]).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let invalid = |_| io::Error::new(io::ErrorKind::InvalidInput, "a range past i64::MAX");
    let offset = i64::try_from(offset).map_err(invalid)?;
    let len = i64::try_from(len).map_err(invalid)?;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    loop {
        // SAFETY: a plain system call on a descriptor `file` keeps open for the call; it
        // takes no pointer and touches no memory of this process.
        let done = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
        if done == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Elsewhere: fdatasync (see [`LogFile::write_back`]).
#[cfg(not(target_os = "linux"))]
pub(crate) fn write_back(file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    file.sync_data()
}
