//! The io_uring backend.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use super::{Io, LogFile, OpenFlags};

/// io_uring: a write and the fdatasync after it go in one submission, linked.
#[derive(Debug)]
pub struct UringIo {}

impl UringIo {
    /// Sets up a ring; fails if the kernel refuses io_uring.
    ///
    /// # Errors
    /// The error of `io_uring_setup`.
    pub fn new() -> io::Result<UringIo> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring backend being built"))
    }
}

impl Io for UringIo {
    fn name(&self) -> String {
        "io_uring".into()
    }
    fn create(&self, _path: &Path, _flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn open(&self, _path: &Path, _w: bool, _flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn remove(&self, _path: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn list_dir(&self, _dir: &Path) -> io::Result<Vec<OsString>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
