//! A backend that injects faults, for tests: [`FaultIo`] wraps any backend and makes chosen
//! calls fail (EIO, ENOSPC, any errno) or, for writes, write only a prefix.
//!
//! Faults are programmed with [`FaultIo::inject`]. Each [`Fault`] names an [`Op`], lets a
//! number of calls of that op pass first ([`Fault::after`]), then fires once, a chosen number
//! of times, or on every later call ([`Fault::sticky`]). Every call of every op is counted
//! ([`FaultIo::calls`]), faulted or not, and so is every fault that fired
//! ([`FaultIo::fired`]).
//!
//! ```
//! use std::io::IoSlice;
//! use inmem_wal::io::fault::{Fault, FaultIo, Op, EIO};
//! use inmem_wal::io::{backend, write_all_durably, BackendChoice, Io, OpenFlags};
//!
//! let dir = tempfile::tempdir()?;
//! let io = FaultIo::new(backend(BackendChoice::Sync)?);
//! io.inject(Fault::short_write(3));
//! io.inject(Fault::error(Op::Sync, EIO));
//! let file = io.create(&dir.path().join("segment"), OpenFlags::default())?;
//! // The short write is completed by a second write; then the sync fails.
//! let error = write_all_durably(&*file, &[IoSlice::new(b"hello")], 0, true).unwrap_err();
//! assert_eq!(error.raw_os_error(), Some(EIO));
//! assert_eq!((io.calls(Op::Write), io.calls(Op::Sync)), (2, 1));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Determinism and threads
//!
//! The plan (armed faults and counters) sits behind one mutex. Each call takes its decision
//! under it in one step, so the same sequence of calls always meets the same faults, whatever
//! thread makes them. `write_and_sync` holds the mutex across its inner I/O, so its write and
//! its sync are decided as one step too.
//!
//! It also keeps, for each file, the end of the furthest byte read ([`FaultIo::read_end`]):
//! how far a recovery looked.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{total_len, Io, LogFile, OpenFlags, Preallocation};
use crate::sync::{lock, Mutex};

/// `EIO`, the errno of a failed write or fsync.
pub const EIO: i32 = rustix::io::Errno::IO.raw_os_error();
/// `ENOSPC`, the errno of a full device (`io::ErrorKind::StorageFull`).
pub const ENOSPC: i32 = rustix::io::Errno::NOSPC.raw_os_error();

/// An operation faults can be injected into.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Io::create`].
    Create,
    /// [`Io::open`].
    Open,
    /// [`Io::remove`].
    Remove,
    /// [`Io::rename`].
    Rename,
    /// [`Io::create_dir_all`].
    CreateDir,
    /// [`Io::list_dir`].
    ListDir,
    /// [`Io::sync_dir`].
    SyncDir,
    /// [`LogFile::read_at`].
    Read,
    /// [`LogFile::preallocate`].
    Preallocate,
    /// [`LogFile::write_at`], and the write of [`LogFile::write_and_sync`].
    Write,
    /// [`LogFile::sync_data`], and the sync of [`LogFile::write_and_sync`] (which is
    /// attempted only after a write of every byte).
    Sync,
    /// [`LogFile::write_back`].
    WriteBack,
}

impl Op {
    /// Every op.
    pub const ALL: [Op; 12] = [
        Op::Create,
        Op::Open,
        Op::Remove,
        Op::Rename,
        Op::CreateDir,
        Op::ListDir,
        Op::SyncDir,
        Op::Read,
        Op::Preallocate,
        Op::Write,
        Op::Sync,
        Op::WriteBack,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What a fault does to the call it hits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The call fails with this errno (see [`EIO`], [`ENOSPC`]) without reaching the wrapped
    /// backend: nothing is created, written, allocated or synced.
    Error(i32),
    /// The write really writes its first `bytes` bytes (all of them if it has fewer) to the
    /// wrapped file and returns that count.
    ShortWrite {
        /// How many bytes the write is cut to.
        bytes: usize,
    },
}

/// A fault to inject: which op it hits, how many calls of it pass first, what it does and how
/// many calls it hits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    op: Op,
    effect: Effect,
    after: u64,
    times: Option<u64>,
}

impl Fault {
    /// The next call of `op` fails with `errno`.
    pub fn error(op: Op, errno: i32) -> Fault {
        Fault { op, effect: Effect::Error(errno), after: 0, times: Some(1) }
    }

    /// The next write writes only its first `bytes` bytes (see [`Effect::ShortWrite`]).
    pub fn short_write(bytes: usize) -> Fault {
        Fault { op: Op::Write, effect: Effect::ShortWrite { bytes }, after: 0, times: Some(1) }
    }

    /// Lets `calls` calls of the op pass (counted from the injection) before the fault fires.
    #[must_use]
    pub fn after(self, calls: u64) -> Fault {
        Fault { after: calls, ..self }
    }

    /// The fault hits `calls` calls in a row once it fires, instead of one.
    ///
    /// # Panics
    /// If `calls` is zero.
    #[must_use]
    pub fn times(self, calls: u64) -> Fault {
        assert!(calls > 0, "a fault hits at least one call");
        Fault { times: Some(calls), ..self }
    }

    /// The fault hits every call of the op from the first it fires on (a dead disk).
    #[must_use]
    pub fn sticky(self) -> Fault {
        Fault { times: None, ..self }
    }

    /// The op it hits.
    pub fn op(&self) -> Op {
        self.op
    }

    /// What it does.
    pub fn effect(&self) -> Effect {
        self.effect
    }
}

/// A fault in the plan.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    /// Calls of the op still to let pass.
    pass_left: u64,
    /// Calls still to hit; `None` for all of them.
    hits_left: Option<u64>,
}

/// The faults to come and the calls made, shared by a [`FaultIo`] and its files.
#[derive(Debug, Default)]
struct Plan {
    /// In injection order: when several are due, the earliest injected fires.
    armed: Vec<Armed>,
    calls: [u64; Op::ALL.len()],
    fired: [u64; Op::ALL.len()],
    /// The end of the furthest byte read of each file.
    read_ends: BTreeMap<PathBuf, u64>,
}

impl Plan {
    /// Records a call of `op`; returns the effect of the fault that hits it, if any.
    ///
    /// Every armed fault of `op` counts the call; one that has let all its calls pass is due,
    /// and the earliest due one fires.
    fn call(&mut self, op: Op) -> Option<Effect> {
        self.calls[op.index()] += 1;
        let mut effect = None;
        for armed in self.armed.iter_mut().filter(|armed| armed.fault.op == op) {
            if armed.pass_left > 0 {
                armed.pass_left -= 1;
            } else if effect.is_none() {
                effect = Some(armed.fault.effect);
                armed.hits_left = armed.hits_left.map(|hits| hits - 1);
            }
        }
        if effect.is_some() {
            self.fired[op.index()] += 1;
            self.armed.retain(|armed| armed.hits_left != Some(0));
        }
        effect
    }

    /// Whether the next call of `op` would meet a fault.
    fn is_due(&self, op: Op) -> bool {
        self.armed.iter().any(|armed| armed.fault.op == op && armed.pass_left == 0)
    }

    /// Records a call of `op` that must not fault: none is due.
    fn call_unfaulted(&mut self, op: Op) {
        let effect = self.call(op);
        debug_assert!(effect.is_none(), "{op:?} met a fault that was not due");
    }
}

/// `Err(errno)` if `effect` is an error.
fn check(effect: Option<Effect>) -> io::Result<()> {
    match effect {
        Some(Effect::Error(errno)) => Err(io::Error::from_raw_os_error(errno)),
        Some(Effect::ShortWrite { .. }) | None => Ok(()),
    }
}

/// A backend that wraps another and injects the faults it is given; see the module doc.
#[derive(Debug)]
pub struct FaultIo {
    inner: Arc<dyn Io>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultIo {
    /// Wraps `inner`, with no fault armed. The `Arc` is both the backend (it coerces to
    /// `Arc<dyn Io>`) and the handle that programs it.
    pub fn new(inner: Arc<dyn Io>) -> Arc<FaultIo> {
        Arc::new(FaultIo { inner, plan: Arc::default() })
    }

    /// Arms `fault`; its [`after`](Fault::after) counts calls from now on.
    pub fn inject(&self, fault: Fault) {
        let armed = Armed { fault, pass_left: fault.after, hits_left: fault.times };
        lock(&self.plan).armed.push(armed);
    }

    /// Disarms every fault (counters are kept).
    pub fn clear(&self) {
        lock(&self.plan).armed.clear();
    }

    /// How many calls of `op` were made, through this backend and its files, faulted or not.
    pub fn calls(&self, op: Op) -> u64 {
        lock(&self.plan).calls[op.index()]
    }

    /// How many calls of `op` a fault hit.
    pub fn fired(&self, op: Op) -> u64 {
        lock(&self.plan).fired[op.index()]
    }

    /// How many injected faults are still armed (sticky ones stay armed for good).
    pub fn armed(&self) -> usize {
        lock(&self.plan).armed.len()
    }

    fn call(&self, op: Op) -> io::Result<()> {
        check(lock(&self.plan).call(op))
    }

    /// The end of the furthest byte read of the file at `path` (as it was opened or
    /// created), if any was read: what a recovery looked at.
    pub fn read_end(&self, path: &Path) -> Option<u64> {
        lock(&self.plan).read_ends.get(path).copied()
    }

    fn wrap(&self, path: &Path, inner: Box<dyn LogFile>) -> Box<dyn LogFile> {
        Box::new(FaultFile { inner, path: path.to_path_buf(), plan: Arc::clone(&self.plan) })
    }
}

impl Io for FaultIo {
    fn name(&self) -> String {
        format!("fault({})", self.inner.name())
    }

    fn create(&self, path: &Path, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        self.call(Op::Create)?;
        Ok(self.wrap(path, self.inner.create(path, flags)?))
    }

    fn open(&self, path: &Path, writable: bool, flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        self.call(Op::Open)?;
        Ok(self.wrap(path, self.inner.open(path, writable, flags)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.call(Op::Remove)?;
        self.inner.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.call(Op::Rename)?;
        self.inner.rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.call(Op::CreateDir)?;
        self.inner.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.call(Op::ListDir)?;
        self.inner.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.call(Op::SyncDir)?;
        self.inner.sync_dir(dir)
    }
}

/// A file of a [`FaultIo`]: its reads, preallocations, writes and syncs go through the plan.
#[derive(Debug)]
struct FaultFile {
    inner: Box<dyn LogFile>,
    path: PathBuf,
    plan: Arc<Mutex<Plan>>,
}

impl FaultFile {
    /// The write `effect` makes of `bufs` at `offset`.
    fn write_with(
        &self,
        effect: Option<Effect>,
        bufs: &[IoSlice<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        match effect {
            None => self.inner.write_at(bufs, offset),
            Some(Effect::Error(errno)) => Err(io::Error::from_raw_os_error(errno)),
            Some(Effect::ShortWrite { bytes }) => {
                let prefix = prefix(bufs, bytes);
                if prefix.is_empty() {
                    return Ok(0);
                }
                let written = self.inner.write_at(&prefix, offset)?;
                debug_assert!(written <= bytes);
                Ok(written)
            }
        }
    }
}

/// The first `bytes` bytes of `bufs` (all of them if they hold fewer), without empty slices.
fn prefix<'b>(bufs: &'b [IoSlice<'_>], bytes: usize) -> Vec<IoSlice<'b>> {
    let mut left = bytes;
    let mut prefix = Vec::new();
    for buf in bufs {
        if left == 0 {
            break;
        }
        let take = buf.len().min(left);
        if take > 0 {
            prefix.push(IoSlice::new(&buf[..take]));
            left -= take;
        }
    }
    debug_assert_eq!(total_len(&prefix), bytes.min(total_len(bufs)));
    prefix
}

impl LogFile for FaultFile {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        check(lock(&self.plan).call(Op::Read))?;
        let read = self.inner.read_at(buf, offset)?;
        if read > 0 {
            let end = offset.saturating_add(read as u64);
            let mut plan = lock(&self.plan);
            let furthest = plan.read_ends.entry(self.path.clone()).or_insert(0);
            *furthest = (*furthest).max(end);
        }
        Ok(read)
    }

    fn preallocate(&self, len: u64, how: Preallocation) -> io::Result<()> {
        check(lock(&self.plan).call(Op::Preallocate))?;
        self.inner.preallocate(len, how)
    }

    fn write_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        let effect = lock(&self.plan).call(Op::Write);
        self.write_with(effect, bufs, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        check(lock(&self.plan).call(Op::Sync))?;
        self.inner.sync_data()
    }

    fn sync_data_alone(&self) -> io::Result<()> {
        check(lock(&self.plan).call(Op::Sync))?;
        self.inner.sync_data_alone()
    }

    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        check(lock(&self.plan).call(Op::WriteBack))?;
        self.inner.write_back(offset, len)
    }

    /// A fault on the write means no sync; a fault on the sync hits only after a write of
    /// every byte. With neither due, the wrapped file's own `write_and_sync` runs (so an
    /// io_uring backend still links the two).
    fn write_and_sync(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        let total = total_len(bufs);
        let mut plan = lock(&self.plan);
        let write = plan.call(Op::Write);
        if write.is_none() && !plan.is_due(Op::Sync) {
            let written = self.inner.write_and_sync(bufs, offset)?;
            if written == total {
                plan.call_unfaulted(Op::Sync);
            }
            return Ok(written);
        }
        let written = self.write_with(write, bufs, offset)?;
        if written < total {
            return Ok(written);
        }
        check(plan.call(Op::Sync))?;
        drop(plan);
        self.inner.sync_data()?;
        Ok(written)
    }

    /// Each of the two writes is a call of [`Op::Write`], the sync one of [`Op::Sync`]:
    /// with no fault due on any of them, the wrapped file's own `write_pair` runs (so an
    /// io_uring backend still links the three).
    fn write_pair(
        &self,
        bufs: &[IoSlice<'_>],
        offset: u64,
        then: &[u8],
        then_offset: u64,
        sync: bool,
    ) -> io::Result<(usize, usize)> {
        let total = total_len(bufs);
        let mut plan = lock(&self.plan);
        let write = plan.call(Op::Write);
        if write.is_none() && !plan.is_due(Op::Write) && !(sync && plan.is_due(Op::Sync)) {
            let (written, second) = self.inner.write_pair(bufs, offset, then, then_offset, sync)?;
            if written == total {
                plan.call_unfaulted(Op::Write);
                if sync && second == then.len() {
                    plan.call_unfaulted(Op::Sync);
                }
            }
            return Ok((written, second));
        }
        let written = self.write_with(write, bufs, offset)?;
        if written < total {
            return Ok((written, 0));
        }
        let effect = plan.call(Op::Write);
        let second = self.write_with(effect, &[IoSlice::new(then)], then_offset)?;
        if !sync || second < then.len() {
            return Ok((written, second));
        }
        check(plan.call(Op::Sync))?;
        drop(plan);
        self.inner.sync_data()?;
        Ok((written, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(plan: &mut Plan, op: Op, calls: usize) -> Vec<Option<Effect>> {
        (0..calls).map(|_| plan.call(op)).collect()
    }

    fn armed(plan: &mut Plan, fault: Fault) {
        plan.armed.push(Armed { fault, pass_left: fault.after, hits_left: fault.times });
    }

    const EIO_EFFECT: Option<Effect> = Some(Effect::Error(EIO));

    #[test]
    fn a_fault_fires_once_after_letting_its_calls_pass() {
        let mut plan = Plan::default();
        armed(&mut plan, Fault::error(Op::Sync, EIO).after(2));
        assert_eq!(effects(&mut plan, Op::Sync, 4), [None, None, EIO_EFFECT, None]);
        assert_eq!((plan.calls[Op::Sync.index()], plan.fired[Op::Sync.index()]), (4, 1));
        assert!(plan.armed.is_empty());
    }

    #[test]
    fn a_fault_only_counts_calls_of_its_own_op() {
        let mut plan = Plan::default();
        armed(&mut plan, Fault::error(Op::Sync, EIO).after(1));
        assert_eq!(effects(&mut plan, Op::Write, 3), [None, None, None]);
        assert_eq!(effects(&mut plan, Op::Sync, 2), [None, EIO_EFFECT]);
    }

    #[test]
    fn a_fault_with_times_hits_that_many_calls_in_a_row() {
        let mut plan = Plan::default();
        armed(&mut plan, Fault::error(Op::Write, EIO).times(2));
        assert_eq!(effects(&mut plan, Op::Write, 3), [EIO_EFFECT, EIO_EFFECT, None]);
    }

    #[test]
    fn a_sticky_fault_hits_every_later_call_and_stays_armed() {
        let mut plan = Plan::default();
        armed(&mut plan, Fault::error(Op::Write, ENOSPC).after(1).sticky());
        let full = Some(Effect::Error(ENOSPC));
        assert_eq!(effects(&mut plan, Op::Write, 4), [None, full, full, full]);
        assert_eq!(plan.armed.len(), 1);
    }

    #[test]
    fn when_two_faults_are_due_the_earliest_injected_fires_first() {
        let mut plan = Plan::default();
        armed(&mut plan, Fault::short_write(1));
        armed(&mut plan, Fault::error(Op::Write, EIO));
        let short = Some(Effect::ShortWrite { bytes: 1 });
        assert_eq!(effects(&mut plan, Op::Write, 3), [short, EIO_EFFECT, None]);
    }

    #[test]
    #[should_panic(expected = "at least one call")]
    fn a_fault_that_hits_zero_calls_is_refused() {
        let _ = Fault::error(Op::Write, EIO).times(0);
    }

    #[test]
    fn a_prefix_cuts_across_slices_and_drops_empty_ones() {
        let bufs = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        let cut = prefix(&bufs, 3);
        let bytes: Vec<u8> = cut.iter().flat_map(|buf| buf.iter().copied()).collect();
        assert_eq!((cut.len(), bytes.as_slice()), (2, &b"abc"[..]));
        assert_eq!(total_len(&prefix(&bufs, 99)), 5);
        assert!(prefix(&bufs, 0).is_empty());
    }
}
