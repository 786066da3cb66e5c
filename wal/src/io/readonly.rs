//! A backend that reads through another and changes nothing: recovery run over it reports
//! what it would cut, set aside or remove, without doing it ([`crate::Wal::verify`]).

use std::ffi::OsString;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::Arc;

use super::{total_len, Io, LogFile, OpenFlags, Preallocation};

/// Reads through `inner`; every change (writes, syncs, creations, renames, removals) is
/// accepted and dropped.
#[derive(Debug)]
pub(crate) struct ReadOnlyIo {
    pub(crate) inner: Arc<dyn Io>,
}

impl Io for ReadOnlyIo {
    fn name(&self) -> String {
        format!("read-only {}", self.inner.name())
    }
    fn create(&self, path: &Path, _flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: a read-only check creates nothing", path.display()),
        ))
    }
    fn open(&self, path: &Path, _writable: bool, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(ReadOnlyFile { inner: self.inner.open(path, false, flags)? }))
    }
    fn remove(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Ok(())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        match self.inner.list_dir(dir) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            listed => listed,
        }
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct ReadOnlyFile {
    inner: Box<dyn LogFile>,
}

impl LogFile for ReadOnlyFile {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn preallocate(&self, _len: u64, _how: Preallocation) -> io::Result<()> {
        Ok(())
    }
    fn write_at(&self, bufs: &[IoSlice<'_>], _offset: u64) -> io::Result<usize> {
        Ok(total_len(bufs))
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
}
