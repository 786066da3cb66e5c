//! The io_uring backend: the writes and fdatasyncs of a backend's files go through one ring,
//! and a write with the fdatasync after it is one submission of two linked entries
//! (`IO_LINK`), so the sync runs only if the write wrote every byte; a round that also
//! writes a frontier slot (`LogFile::write_pair`) links the slot's write between them.
//!
//! Directory operations, `size`, `preallocate` and reads (recovery only) use std and rustix,
//! exactly as the [sync backend](super::sync) does.
//!
//! # Buffer lifetime and concurrency
//!
//! No operation outlives the call that submits it: `Ring::run` holds the ring's mutex from
//! the push until every completion of its entries is reaped, and only then returns. So the
//! buffers an entry points to (borrowed by the caller for the whole call) outlive the
//! operation, no other thread can reap our completions or push entries of its own meanwhile,
//! and both queues are empty between operations. Nothing is ever in flight when the ring is
//! dropped, so dropping it needs no cancel-and-drain.
//!
//! If `io_uring_enter` fails with an unexpected error while entries are in flight, the process
//! aborts: returning (or unwinding) would free buffers the kernel may still read. If it fails
//! before the kernel consumed any entry, the ring is marked broken and never entered again, so
//! the stale entries are never submitted; later operations on it return an error.
//!
//! # Unsafe blocks
//!
//! 1. `Ring::run`: `SubmissionQueue::push_multiple`, the only push in the crate.

#![allow(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::sync::{open_file, preallocate, read_full, write_back, SyncIo};
use super::{total_len, uring_refused_by_switch, Io, LogFile, OpenFlags, Preallocation};
use crate::sync::{lock, Mutex};

/// Entries of the submission queue (the completion queue gets twice as many). One operation
/// uses at most [`CHAIN_LEN_MAX`] of them; the rest is headroom.
const RING_ENTRIES: u32 = 64;

/// The most entries one operation submits: a write, a frontier slot's write, and the
/// fdatasync after them.
const CHAIN_LEN_MAX: usize = 3;
const _: () = assert!(CHAIN_LEN_MAX <= RING_ENTRIES as usize);

/// The most iovecs one write may carry (Linux `UIO_MAXIOV`); a write given more writes only
/// the first ones, a short write the caller completes.
const IOV_MAX: usize = 1024;

/// How often an `io_uring_enter` refused with EAGAIN or EBUSY is retried when none of our
/// entries is in flight, before giving up; and how often a write that completed with EINTR or
/// EAGAIN (nothing written) is resubmitted.
const RETRY_MAX: u32 = 1000;

/// Errno values, as the kernel reports them in completions.
const ECANCELED: i32 = rustix::io::Errno::CANCELED.raw_os_error();
const EINTR: i32 = rustix::io::Errno::INTR.raw_os_error();
const EAGAIN: i32 = rustix::io::Errno::AGAIN.raw_os_error();
const EBUSY: i32 = rustix::io::Errno::BUSY.raw_os_error();

/// io_uring: a write and the fdatasync after it go in one submission, linked.
#[derive(Debug)]
pub struct UringIo {
    ring: Arc<Ring>,
}

impl UringIo {
    /// Sets up a ring and probes it: the kernel must support the opcodes this backend uses, and
    /// a no-op must go through the ring and complete.
    ///
    /// # Errors
    /// The error of `io_uring_setup` or of the probe, e.g. `EPERM` or `ENOSYS` where a
    /// sandbox refuses io_uring, or `Unsupported` if an opcode is missing; `EPERM` too,
    /// without a system call, where [`URING_SWITCH`](super::URING_SWITCH) says to refuse.
    pub fn new() -> io::Result<UringIo> {
        let ring = Ring::new()?;
        let [nop] = ring.run([RingOp::Nop])?;
        if nop < 0 {
            return Err(io::Error::from_raw_os_error(-nop));
        }
        Ok(UringIo { ring: Arc::new(ring) })
    }

    fn file(&self, file: File) -> Box<dyn LogFile> {
        Box::new(UringFile { file, ring: Arc::clone(&self.ring) })
    }
}

impl Io for UringIo {
    fn name(&self) -> String {
        "io_uring".into()
    }

    fn create(&self, path: &Path, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Ok(self.file(open_file(path, true, true, flags)?))
    }

    fn open(&self, path: &Path, writable: bool, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        Ok(self.file(open_file(path, false, writable, flags)?))
    }

    // Directory operations are the sync backend's: io_uring buys nothing for them.

    fn remove(&self, path: &Path) -> io::Result<()> {
        DIRECTORIES.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        DIRECTORIES.rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        DIRECTORIES.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        DIRECTORIES.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        DIRECTORIES.sync_dir(dir)
    }
}

/// The backend whose directory operations this one uses.
const DIRECTORIES: SyncIo = SyncIo {};

/// One operation of a chain, borrowing everything its entry points to for `'a`.
#[derive(Copy, Clone, Debug)]
enum RingOp<'a> {
    /// `IORING_OP_NOP`.
    Nop,
    /// `IORING_OP_WRITEV` of at most [`IOV_MAX`] buffers at `offset`.
    Write { fd: BorrowedFd<'a>, bufs: &'a [IoSlice<'a>], offset: u64 },
    /// `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC`.
    SyncData { fd: BorrowedFd<'a> },
}

impl RingOp<'_> {
    /// The submission entry: tagged with `index`, and linked to the next entry if `link`.
    fn entry(&self, index: usize, link: bool) -> squeue::Entry {
        let entry = match *self {
            RingOp::Nop => opcode::Nop::new().build(),
            RingOp::Write { fd, bufs, offset } => {
                assert!(bufs.len() <= IOV_MAX, "a write carries at most IOV_MAX buffers");
                // IoSlice is guaranteed ABI-compatible with iovec on Unix; at most IOV_MAX
                // buffers, so the count fits a u32.
                let count = u32::try_from(bufs.len()).unwrap_or(0);
                opcode::Writev::new(types::Fd(fd.as_raw_fd()), bufs.as_ptr().cast(), count)
                    .offset(offset)
                    .build()
            }
            RingOp::SyncData { fd } => opcode::Fsync::new(types::Fd(fd.as_raw_fd()))
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
        };
        let entry = entry.user_data(index as u64);
        if link {
            entry.flags(squeue::Flags::IO_LINK)
        } else {
            entry
        }
    }
}

/// A ring and whether it may still be entered.
struct RingState {
    uring: IoUring,
    /// Set when `io_uring_enter` failed before consuming our entries: they are still in the
    /// submission queue, and entering again would submit them with dangling buffers.
    broken: bool,
}

/// The ring shared by the files of one [`UringIo`].
struct Ring {
    state: Mutex<RingState>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("entries", &RING_ENTRIES).finish_non_exhaustive()
    }
}

/// What an `io_uring_enter` error means for the operation under way.
enum EnterOutcome {
    /// Retry the call.
    Retry,
    /// Give up: nothing of ours is in flight.
    Fail(io::Error),
}

impl Ring {
    /// Sets up the ring, with `COOP_TASKRUN` if the kernel knows it (we always enter the kernel
    /// to wait, so interrupting the task to run completions is wasted work).
    /// `SINGLE_ISSUER` is not used: the ring is set up by the thread that opens the log and used
    /// by its writer thread.
    fn new() -> io::Result<Ring> {
        if uring_refused_by_switch() {
            // What `io_uring_setup` returns where `kernel.io_uring_disabled` or a seccomp
            // filter refuses io_uring.
            return Err(io::Error::from_raw_os_error(rustix::io::Errno::PERM.raw_os_error()));
        }
        let uring = match IoUring::builder().setup_coop_taskrun().build(RING_ENTRIES) {
            Ok(uring) => uring,
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                IoUring::new(RING_ENTRIES)?
            }
            Err(error) => return Err(error),
        };
        let mut probe = Probe::new();
        // Kernels before 5.6 cannot be probed; the no-op in `UringIo::new` still is.
        if uring.submitter().register_probe(&mut probe).is_ok() {
            for (code, name) in [(opcode::Writev::CODE, "WRITEV"), (opcode::Fsync::CODE, "FSYNC")] {
                if !probe.is_supported(code) {
                    let message = format!("io_uring does not support IORING_OP_{name} here");
                    return Err(io::Error::new(io::ErrorKind::Unsupported, message));
                }
            }
        }
        Ok(Ring { state: Mutex::new(RingState { uring, broken: false }) })
    }

    /// Submits `ops` as one chain (each linked to the next) and waits for all their
    /// completions; returns their results (bytes or a negated errno), in order.
    ///
    /// Safe for every input: the borrows in `ops` outlive this call, and no entry outlives it
    /// (see the module doc).
    fn run<const N: usize>(&self, ops: [RingOp<'_>; N]) -> io::Result<[i32; N]> {
        const { assert!(N >= 1 && N <= CHAIN_LEN_MAX) };
        let entries: [squeue::Entry; N] =
            std::array::from_fn(|index| ops[index].entry(index, index + 1 < N));
        let mut state = lock(&self.state);
        if state.broken {
            return Err(io::Error::other(
                "the io_uring ring is unusable after a failed submission",
            ));
        }
        debug_assert!(state.uring.submission().is_empty(), "a previous operation left entries");
        debug_assert!(state.uring.completion().is_empty(), "a previous operation left completions");
        // SAFETY: every pointer in `entries` comes from `ops`, whose buffers, iovec arrays and
        // file descriptors are borrowed for this whole call. We return only once every entry
        // has completed (`reap_all` loops until all N completions are reaped, and aborts the
        // process rather than return while one is in flight), or without ever having entered
        // the kernel after the push, with the ring marked broken so the entries are never
        // submitted. The mutex guard held until then keeps other threads from reaping our
        // completions or pushing entries of their own.
        let pushed = unsafe { state.uring.submission().push_multiple(&entries) };
        if pushed.is_err() {
            // Nothing was pushed (push_multiple checks room first): the queue is not ours.
            return Err(io::Error::other("the io_uring submission queue is full"));
        }
        reap_all(&mut state)
    }
}

/// Enters the kernel until all N entries just pushed are submitted and completed, and
/// returns their results by index.
fn reap_all<const N: usize>(state: &mut RingState) -> io::Result<[i32; N]> {
    let mut results = [None::<i32>; N];
    let mut reaped = 0;
    let mut retries = 0;
    while reaped < N {
        let entered = state.uring.submit_and_wait(N.saturating_sub(reaped));
        for cqe in state.uring.completion() {
            let index = usize::try_from(cqe.user_data()).unwrap_or(usize::MAX);
            match results.get_mut(index) {
                Some(slot @ None) => *slot = Some(cqe.result()),
                _ => abort_in_flight("a completion that is not one of ours"),
            }
            reaped += 1;
        }
        if reaped == N {
            break;
        }
        // Entries the kernel has taken but not completed; saturating, as nothing may panic
        // (and unwind) while entries are in flight.
        let unsubmitted = state.uring.submission().len();
        let in_flight = N.saturating_sub(reaped).saturating_sub(unsubmitted);
        if let Err(error) = entered {
            match enter_failed(error, in_flight, &mut retries) {
                EnterOutcome::Retry => {}
                EnterOutcome::Fail(error) => {
                    debug_assert_eq!(in_flight, 0);
                    if unsubmitted > 0 {
                        state.broken = true;
                    }
                    return Err(error);
                }
            }
        }
    }
    debug_assert!(state.uring.submission().is_empty());
    // Every slot was filled exactly once: N completions, each for a distinct index below N.
    Ok(results.map(|result| result.unwrap_or(-ECANCELED)))
}

/// Decides what an `io_uring_enter` error means while `in_flight` of our entries are
/// submitted but not completed.
#[cold]
fn enter_failed(error: io::Error, in_flight: usize, retries: &mut u32) -> EnterOutcome {
    let errno = error.raw_os_error();
    if errno == Some(EINTR) {
        return EnterOutcome::Retry;
    }
    if errno == Some(EAGAIN) || errno == Some(EBUSY) {
        // The kernel is short of memory or the completion queue is full; waiting cures both.
        *retries += 1;
        if in_flight > 0 || *retries < RETRY_MAX {
            std::thread::yield_now();
            return EnterOutcome::Retry;
        }
    }
    if in_flight > 0 {
        abort_in_flight("io_uring_enter failed while entries were in flight");
    }
    EnterOutcome::Fail(error)
}

/// Stops the process: an operation of ours is in flight and cannot be waited for, and
/// returning (or unwinding) would free buffers the kernel may still read.
#[cold]
fn abort_in_flight(what: &str) -> ! {
    eprintln!("inmem-wal io_uring: {what}; aborting, as in-flight buffers cannot be released");
    std::process::abort()
}

/// A file of the io_uring backend.
#[derive(Debug)]
struct UringFile {
    file: File,
    ring: Arc<Ring>,
}

/// The bytes a write completion reports, or its error.
fn write_result(result: i32, total: usize) -> io::Result<usize> {
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result));
    }
    let written = usize::try_from(result).unwrap_or(0);
    assert!(written <= total, "the kernel wrote {written} bytes of {total}");
    Ok(written)
}

/// Whether a write completion says nothing was written and the write may be resubmitted.
fn is_retryable(result: i32) -> bool {
    result == -EINTR || result == -EAGAIN
}

impl LogFile for UringFile {
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
        let bufs = bufs.get(..IOV_MAX).unwrap_or(bufs);
        let fd = self.file.as_fd();
        let mut attempts = 0;
        loop {
            let [write] = self.ring.run([RingOp::Write { fd, bufs, offset }])?;
            attempts += 1;
            if !is_retryable(write) || attempts >= RETRY_MAX {
                return write_result(write, total_len(bufs));
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let [sync] = self.ring.run([RingOp::SyncData { fd: self.file.as_fd() }])?;
        if sync < 0 {
            return Err(io::Error::from_raw_os_error(-sync));
        }
        Ok(())
    }

    fn sync_data_alone(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A system call of its own rather than a ring entry: it runs on a checkpoint's
    /// thread, once a stretch, and waits anyway.
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        write_back(&self.file, offset, len)
    }

    /// The write and the fdatasync in one submission, linked: the kernel starts the sync only
    /// if the write wrote every byte, and cancels it (`-ECANCELED`) otherwise.
    fn write_and_sync(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        if bufs.len() > IOV_MAX {
            // Only the first IOV_MAX buffers can go: a short write, so no sync.
            return self.write_at(bufs, offset);
        }
        let total = total_len(bufs);
        let fd = self.file.as_fd();
        let mut attempts = 0;
        let (write, sync) = loop {
            let [write, sync] =
                self.ring.run([RingOp::Write { fd, bufs, offset }, RingOp::SyncData { fd }])?;
            attempts += 1;
            if !is_retryable(write) || attempts >= RETRY_MAX {
                break (write, sync);
            }
        };
        let written = write_result(write, total)?;
        if written < total {
            // The short write severed the link: the sync was cancelled, or (on kernels that do
            // not sever on short writes) ran on a prefix; either way the caller must go on.
            debug_assert!(sync == -ECANCELED || sync >= 0, "unexpected sync result {sync}");
            return Ok(written);
        }
        if sync < 0 {
            return Err(io::Error::from_raw_os_error(-sync));
        }
        Ok(written)
    }

    /// The write, the slot's write and (if `sync`) the fdatasync in one submission, linked:
    /// each starts only if the one before wrote every byte.
    fn write_pair(
        &self,
        bufs: &[IoSlice<'_>],
        offset: u64,
        then: &[u8],
        then_offset: u64,
        sync: bool,
    ) -> io::Result<(usize, usize)> {
        if bufs.len() > IOV_MAX {
            // Only the first IOV_MAX buffers can go: a short write, nothing after it.
            return Ok((self.write_at(bufs, offset)?, 0));
        }
        let total = total_len(bufs);
        let fd = self.file.as_fd();
        let slot = [IoSlice::new(then)];
        let data = RingOp::Write { fd, bufs, offset };
        let second = RingOp::Write { fd, bufs: &slot, offset: then_offset };
        let mut attempts = 0;
        let (write, slot_write, synced) = loop {
            let (write, slot_write, synced) = if sync {
                let [write, slot_write, synced] =
                    self.ring.run([data, second, RingOp::SyncData { fd }])?;
                (write, slot_write, synced)
            } else {
                let [write, slot_write] = self.ring.run([data, second])?;
                (write, slot_write, 0)
            };
            attempts += 1;
            if !is_retryable(write) || attempts >= RETRY_MAX {
                break (write, slot_write, synced);
            }
        };
        let written = write_result(write, total)?;
        if written < total {
            // The short write severed the link: what follows was cancelled (or, on kernels
            // that do not sever on short writes, ran); either way the caller goes on.
            return Ok((written, 0));
        }
        if is_retryable(slot_write) {
            // Nothing of the slot written, and the sync cancelled: the caller writes it.
            return Ok((written, 0));
        }
        let second = write_result(slot_write, then.len())?;
        if second < then.len() {
            return Ok((written, second));
        }
        if synced < 0 {
            return Err(io::Error::from_raw_os_error(-synced));
        }
        Ok((written, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uring_or_skip() -> Option<UringIo> {
        match UringIo::new() {
            Ok(io) => Some(io),
            Err(error) => {
                eprintln!("skipping this test over io_uring: io_uring is refused here ({error})");
                None
            }
        }
    }

    #[test]
    fn a_nop_chain_completes_and_leaves_both_queues_empty() {
        let Some(io) = uring_or_skip() else { return };
        for _ in 0..(2 * RING_ENTRIES) {
            let [nop] = io.ring.run([RingOp::Nop]).expect("nop");
            assert_eq!(nop, 0);
        }
        let [first, second] = io.ring.run([RingOp::Nop, RingOp::Nop]).expect("linked nops");
        assert_eq!((first, second), (0, 0));
        let mut state = lock(&io.ring.state);
        assert!(state.uring.submission().is_empty());
        assert!(state.uring.completion().is_empty());
    }

    /// Set in the child process that runs a test under a file-size limit.
    const FSIZE_CHILD: &str = "INMEM_WAL_FSIZE_LIMITED_CHILD";

    /// Runs test `name` of this binary again in a child whose file-size limit (`ulimit -f 8`:
    /// 4 or 8 KiB, depending on the shell's unit) makes large writes at offset 0 short.
    ///
    /// The limit binds every write of the child, its own output too: that goes to pipes
    /// (an inherited log file already past the limit would refuse it), and the child ignores
    /// SIGXFSZ (the disposition survives `exec`), so that any write past the limit fails with
    /// `EFBIG` and a message instead of killing it silently.
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
    fn a_short_write_severs_the_link_and_cancels_the_sync() {
        if std::env::var_os(FSIZE_CHILD).is_none() {
            return run_under_file_size_limit(
                "io::uring::tests::a_short_write_severs_the_link_and_cancels_the_sync",
            );
        }
        let Some(io) = uring_or_skip() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("f"))
            .expect("create");
        let data = vec![1u8; 1 << 16];
        let bufs = [IoSlice::new(&data)];
        let fd = file.as_fd();
        let [write, sync] = io
            .ring
            .run([RingOp::Write { fd, bufs: &bufs, offset: 0 }, RingOp::SyncData { fd }])
            .expect("run");
        assert!(write > 0 && (write as usize) < data.len(), "not a short write: {write}");
        assert_eq!(sync, -ECANCELED);
        let file = UringFile { file, ring: Arc::clone(&io.ring) };
        assert_eq!(file.write_and_sync(&bufs, 0).expect("write_and_sync"), write as usize);
    }

    #[test]
    fn a_write_of_more_than_iov_max_buffers_is_short_and_unsynced() {
        let Some(io) = uring_or_skip() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let file = io.create(&dir.path().join("f"), OpenFlags::default()).expect("create");
        let byte = [7u8];
        let bufs = vec![IoSlice::new(&byte); IOV_MAX + 3];
        assert_eq!(file.write_and_sync(&bufs, 0).expect("write"), IOV_MAX);
        assert_eq!(file.write_at(&bufs, 0).expect("write"), IOV_MAX);
        assert_eq!(file.size().expect("size"), IOV_MAX as u64);
    }

    #[test]
    fn a_write_to_a_read_only_file_fails_with_ebadf_and_cancels_its_sync() {
        let Some(io) = uring_or_skip() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        drop(io.create(&path, OpenFlags::default()).expect("create"));
        let read_only = File::open(&path).expect("open");
        let bufs = [IoSlice::new(b"abc")];
        let fd = read_only.as_fd();
        let [write, sync] = io
            .ring
            .run([RingOp::Write { fd, bufs: &bufs, offset: 0 }, RingOp::SyncData { fd }])
            .expect("run");
        assert_eq!((write, sync), (-rustix::io::Errno::BADF.raw_os_error(), -ECANCELED));
        let file = io.open(&path, false, OpenFlags::default()).expect("open");
        let error = file.write_and_sync(&bufs, 0).expect_err("read-only");
        assert_eq!(error.raw_os_error(), Some(rustix::io::Errno::BADF.raw_os_error()));
        // The ring is still usable afterwards.
        let [nop] = io.ring.run([RingOp::Nop]).expect("nop");
        assert_eq!(nop, 0);
    }
}
