//! The log: [`Wal`]. It opens a log (recovery, then the newest segment, or a new one),
//! hands appends and waits to the group commit (`group.rs`), whose writer token is the
//! [`Writer`], and reads and deletes segments through the state it shares with that writer
//! (`segments.rs`).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::format::{FrameKind, SegmentHeader, Slot};
use crate::group::{panic_message, GroupCommit, Pacing};
use crate::io::{self, BackendInUse, BackendReason, Io, LogFile};
use crate::options::{Durability, WalOptions};
use crate::reader::LogReader;
use crate::recovery::{self as recover, RecoveryReport};
use crate::segments::Segments;
use crate::stats::WalStats;
use crate::writer::{Writer, BUFFERED_ROUND_MAX, GATHER_MAX};
use crate::LogPosition;

/// A write-ahead log in a directory: records go in, durable positions come out.
///
/// Many threads may append and wait at once; one thread at a time writes. A committer
/// waiting for its record ([`Wal::append_sync`], [`Wal::wait_durable`]) that finds nobody
/// writing writes and syncs everything queued itself, on its own thread; a background
/// writer thread, started by [`Wal::open`] and stopped by [`Wal::close`] (or drop), does
/// what nobody waits for: [`Wal::append`]s, `Buffered` syncs, the final flush.
#[derive(Debug)]
pub struct Wal {
    /// The hand-off between appenders, waiters and the writer, which holds `segments` too.
    group: Arc<GroupCommit<Writer>>,
    segments: Arc<Segments>,
    writer: Option<JoinHandle<()>>,
    /// Under `Buffered`, the thread that runs the writer's syncs beside it.
    syncer: Option<JoinHandle<()>>,
    report: RecoveryReport,
    backend: BackendInUse,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, recovering it first as
    /// `options.recovery` says.
    ///
    /// # Errors
    /// Damage recovery may not cut, I/O errors, invalid options, an unavailable backend.
    pub fn open(dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal> {
        let survey = Wal::survey(dir, &options)?;
        Wal::open_surveyed(survey, options)
    }

    /// Reads the log in `dir` and decides what opening it under `options` does, changing
    /// nothing: [`Survey::report`] says what an open would keep, cut (and salvage), set
    /// aside or remove; [`Wal::open_surveyed`] then opens it without reading it again.
    ///
    /// # Errors
    /// As [`Wal::open`]: the anomaly the recovery mode refuses, naming file and offset.
    pub fn survey(dir: impl AsRef<Path>, options: &WalOptions) -> Result<Survey> {
        let dir = dir.as_ref().to_path_buf();
        options.validate()?;
        let (inner, _) = backend_for(options, &dir)?;
        // Read-only by construction: a survey changes nothing, whatever it finds.
        let io = crate::io::readonly::ReadOnlyIo { inner };
        let plan = recover::survey(&io, &dir, options)?;
        Ok(Survey { plan, dir, key: SurveyKey::of(options) })
    }

    /// Opens the log `survey` looked at, carrying out what it decided. The directory must
    /// not have changed since (a database holds its lock meanwhile); `options` must be
    /// those of the survey (else it is taken again).
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_surveyed(survey: Survey, options: WalOptions) -> Result<Wal> {
        let Survey { plan, dir, .. } = if survey.key == SurveyKey::of(&options) {
            survey
        } else {
            Wal::survey(&survey.dir, &options)?
        };
        let (io, reason) = backend_for(&options, &dir)?;
        let backend = BackendInUse { name: io.name(), reason };
        let recovered = recover::apply(io.as_ref(), &dir, plan)?;
        let end = recovered.end;
        let report = recovered.report;
        let newest = recovered.segments.last().cloned();
        let segments = Arc::new(Segments::new(io, dir, options, recovered.segments));
        let options = &segments.options;
        let (file, header, slots): (Box<dyn LogFile>, SegmentHeader, [Slot; 2]) = match newest {
            Some(last) if !recovered.sealed => {
                let file = segments
                    .io
                    .open(&last.path, true, options.open_flags)
                    .map_err(|e| Error::io("open segment", &last.path, e))?;
                if !recovered.closed {
                    // What recovery read may have come from the page cache of a process
                    // that crashed before syncing it: made durable before anything is
                    // written after it, the frontier slots the writer starts from included
                    // (`writer.rs`), and the records new frames are stamped as durable.
                    file.sync_data().map_err(|e| Error::io("fdatasync", &last.path, e))?;
                }
                (file, last.header, last.slots)
            }
            last => {
                // A new log, or one whose newest segment is sealed: the next one is made.
                let number = last.map_or(Some(1), |last| last.header.number.checked_add(1));
                let number = number.ok_or(Error::Exhausted { what: "segment numbers" })?;
                let header =
                    SegmentHeader { number, first_position: end, size: options.segment_size };
                let (meta, file) = segments.create(header)?;
                let slots = meta.slots;
                segments.add(meta);
                (file, header, slots)
            }
        };
        let group = Arc::new(GroupCommit::new(end, options.max_queued_bytes, pacing(options)));
        group.install(Writer::new(Arc::clone(&segments), file, header, &slots, end)?);
        let writer =
            spawn_log_thread("inmem-wal-writer", &segments.dir, &group, |g| g.run_background())?;
        let syncer = match options.durability {
            Durability::Buffered { .. } => {
                let syncer =
                    spawn_log_thread("inmem-wal-syncer", &segments.dir, &group, |g| g.run_syncer());
                match syncer {
                    Ok(syncer) => Some(syncer),
                    Err(error) => {
                        // The writer thread stops once the log is closed.
                        group.close();
                        let _ = writer.join();
                        return Err(error);
                    }
                }
            }
            Durability::Sync => None,
        };
        Ok(Wal { group, segments, writer: Some(writer), syncer, report, backend })
    }

    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The I/O backend in use (`"io_uring"`, `"sync"`, or a wrapper's name).
    pub fn backend_name(&self) -> String {
        self.segments.io.name()
    }

    /// The I/O backend the log's files go through: the one [`WalOptions::io`] gave, or
    /// the one [`WalOptions::backend`] chose. Files kept beside the log (a database's
    /// checkpoints) go through it too, so that a simulated or fault-injecting backend
    /// sees them as well.
    pub fn io(&self) -> Arc<dyn Io> {
        Arc::clone(&self.segments.io)
    }

    /// The backend the log uses and why: requested, chosen by
    /// [`crate::BackendChoice::Auto`] (measured faster, [`crate::io::AUTO_REASON`]), Auto's
    /// fallback where the kernel refused io_uring (with the kernel's error), or given by
    /// [`WalOptions::io`]. Displays as `sync: chosen by Auto`.
    pub fn backend(&self) -> &BackendInUse {
        &self.backend
    }

    /// Why the log uses its backend ([`Wal::backend`]'s reason).
    pub fn backend_reason(&self) -> &BackendReason {
        &self.backend.reason
    }

    /// Hands a record to the log; returns its position without waiting for it to be
    /// durable. Waits only while the queue is full ([`WalOptions::max_queued_bytes`]).
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`], [`Error::Failed`] after an I/O failure, [`Error::Closed`].
    pub fn append(&self, kind: FrameKind, payload: &[u8]) -> Result<LogPosition> {
        self.queue(kind, payload, false)
    }

    /// As [`Wal::append`], for a caller that goes on to [`Wal::wait_durable`] for the
    /// record: it becomes durable as that wait leads it there (the waiter writes it, or
    /// joins a batch being written), so the background writer is not woken for it. A
    /// record appended so and never waited for is still written, by the next write of
    /// anyone, or when the log closes.
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn append_to_wait(&self, kind: FrameKind, payload: &[u8]) -> Result<LogPosition> {
        self.queue(kind, payload, true)
    }

    fn queue(&self, kind: FrameKind, payload: &[u8], then_wait: bool) -> Result<LogPosition> {
        let limit = self.segments.options.max_record_bytes;
        if payload.len() as u64 > limit {
            return Err(Error::RecordTooLarge { len: payload.len() as u64, limit });
        }
        let position = self.group.append(kind, payload, then_wait)?;
        self.segments.stats.append(crate::format::frame_len(payload.len()) as u64);
        Ok(position)
    }

    /// Returns once the record at `position` (and everything before it) is durable.
    ///
    /// # Errors
    /// [`Error::Failed`] if the write or fsync that should have made it durable failed;
    /// [`Error::OutOfRange`] for a position never appended.
    pub fn wait_durable(&self, position: LogPosition) -> Result<()> {
        self.group.wait_durable(position)
    }

    /// Returns once the record at `position`, appended with [`Wal::append_to_wait`], is
    /// written to the file, synced or not: the caller writes it itself if nobody else is
    /// writing, so no thread is woken for it. Under [`Durability::Sync`] that write is
    /// synced too; under [`Durability::Buffered`] it is synced with the interval, as an
    /// [`Wal::append`]ed record would be.
    ///
    /// For a stream of appends whose caller would rather spend its own time writing them
    /// than have the background writer woken (and take a core) for each: the engine's
    /// TTL reaper.
    ///
    /// ```
    /// # fn main() -> inmem_wal::Result<()> {
    /// use std::time::Duration;
    /// use inmem_wal::{Durability, FrameKind, Wal, WalOptions};
    ///
    /// let dir = tempfile::tempdir().expect("a temporary directory");
    /// let options = WalOptions {
    ///     durability: Durability::Buffered { interval: Duration::from_millis(10) },
    ///     ..WalOptions::default()
    /// };
    /// let wal = Wal::open(dir.path(), options)?;
    /// let position = wal.append_to_wait(FrameKind::RECORD, b"tombstones")?;
    /// wal.wait_written(position)?;
    /// assert_eq!(wal.stats().batches, 1, "written, by this thread");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Wal::wait_durable`].
    pub fn wait_written(&self, position: LogPosition) -> Result<()> {
        self.group.wait_written(position)
    }

    /// Returns once everything appended before `end` (a [`Wal::end_position`] read
    /// earlier) is durable: the records of other appenders included.
    ///
    /// # Errors
    /// As [`Wal::wait_durable`].
    pub fn wait_durable_before(&self, end: LogPosition) -> Result<()> {
        match end.get().checked_sub(1) {
            None => Ok(()),
            // Any offset inside the last frame stands for it: durable past it means durable
            // through `end`, the frame's end.
            Some(last) => self.group.wait_durable(LogPosition::new(last)),
        }
    }

    /// [`Wal::append`], then [`Wal::wait_durable`].
    ///
    /// # Errors
    /// As both.
    pub fn append_sync(&self, kind: FrameKind, payload: &[u8]) -> Result<LogPosition> {
        let position = self.queue(kind, payload, true)?;
        self.group.wait_registered(position)?;
        Ok(position)
    }

    /// The end of what is durable: every record before it is on stable storage.
    pub fn durable_position(&self) -> LogPosition {
        self.group.durable()
    }

    /// Checks the log in `dir` as opening it under `options.recovery` would, changing
    /// nothing: the report says what an open would cut (a torn tail), set aside
    /// (`PointInTime`) or remove (unfinished segments).
    ///
    /// # Errors
    /// As [`Wal::open`]: damage the recovery mode does not accept, naming file and offset.
    pub fn verify(dir: impl AsRef<Path>, options: &WalOptions) -> Result<RecoveryReport> {
        Ok(Wal::survey(dir, options)?.plan.report)
    }

    /// The longest record payload it accepts ([`WalOptions::max_record_bytes`]).
    pub fn max_record_bytes(&self) -> u64 {
        self.segments.options.max_record_bytes
    }

    /// The position the next record will get.
    pub fn end_position(&self) -> LogPosition {
        self.group.end()
    }

    /// The first position the log still holds.
    pub fn first_position(&self) -> LogPosition {
        let segments = self.segments.list();
        let first =
            segments.first().map_or(LogPosition::ZERO, |segment| segment.header.first_position);
        // Below where recovery found the log readable (damage a checkpoint covers), nothing is.
        first.max(self.report.first)
    }

    /// Reads the durable records from `position` (a record's position, or
    /// [`Wal::first_position`]) on, up to the durable end at the time of the call.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a position the log does not hold.
    pub fn read_from(&self, position: LogPosition) -> Result<LogReader> {
        let end = self.durable_position();
        let segments = self.segments.list().clone();
        let first = segments.first().map_or(end, |segment| segment.header.first_position);
        let first = first.max(self.report.first);
        if position < first || position > end {
            return Err(Error::OutOfRange { position, first, end });
        }
        LogReader::new(
            Arc::clone(&self.segments.io),
            segments,
            position,
            end,
            self.segments.options.max_record_bytes,
        )
    }

    /// Deletes the segments whose records all lie below `position` (never the newest), then
    /// syncs the directory; returns how many it deleted.
    ///
    /// # Errors
    /// An I/O error removing a file or syncing the directory.
    pub fn delete_below(&self, position: LogPosition) -> Result<usize> {
        self.segments.delete_below(position)
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        self.segments.stats.snapshot()
    }

    /// Writes and syncs everything appended, stops the writer, and reports whether the log
    /// ended healthy.
    ///
    /// # Errors
    /// [`Error::Failed`] if a write or sync failed at any point.
    pub fn close(mut self) -> Result<()> {
        self.stop();
        match self.group.failure() {
            Some(cause) => Err(Error::Failed { cause: Box::new(cause) }),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        self.group.close();
        for thread in [self.writer.take(), self.syncer.take()].into_iter().flatten() {
            // Each fails the log itself if it panics; this is a last resort.
            if thread.join().is_err() {
                self.group.fail(Error::Closed);
            }
        }
        // A log that ended healthy, everything synced, proves it with a close trailer.
        if let Some(mut writer) = self.group.retire() {
            if self.group.failure().is_none() {
                writer.close_trailer(self.group.end());
            }
        }
        self.segments.remove_spare();
    }
}

/// What recovery of a log would do, decided without changing anything ([`Wal::survey`]).
#[derive(Debug)]
pub struct Survey {
    plan: recover::Plan,
    dir: PathBuf,
    key: SurveyKey,
}

impl Survey {
    /// What an open would find and do.
    pub fn report(&self) -> &RecoveryReport {
        &self.plan.report
    }
}

/// The options a survey's decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SurveyKey {
    recovery: crate::RecoveryMode,
    checkpointed: LogPosition,
    max_record_bytes: u64,
    max_queued_bytes: u64,
}

impl SurveyKey {
    fn of(options: &WalOptions) -> SurveyKey {
        SurveyKey {
            recovery: options.recovery,
            checkpointed: options.checkpointed,
            max_record_bytes: options.max_record_bytes,
            max_queued_bytes: options.max_queued_bytes,
        }
    }
}

/// The backend `options` ask for (for the log in `dir`), and why it is the one.
fn backend_for(options: &WalOptions, dir: &Path) -> Result<(Arc<dyn Io>, BackendReason)> {
    if let Some(io) = &options.io {
        return Ok((Arc::clone(io), BackendReason::Given));
    }
    io::backend_in_use(options.backend).map_err(|source| Error::BackendUnavailable {
        // Only io_uring can fail to be set up (`Uring`, or `Auto` preferring it).
        backend: "io_uring",
        path: dir.to_path_buf(),
        source: Arc::new(source),
    })
}

/// Starts one of the log's threads, named `name`, running `run`: a panic there is a bug,
/// and it fails the log rather than leave waiters asleep forever.
fn spawn_log_thread(
    name: &str,
    dir: &Path,
    group: &Arc<GroupCommit<Writer>>,
    run: fn(&GroupCommit<Writer>),
) -> Result<JoinHandle<()>> {
    let group = Arc::clone(group);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| run(&group))) {
                let message = panic_message(panic.as_ref());
                group.fail(Error::WriterPanicked { message });
            }
        })
        .map_err(|e| Error::io("start a thread of the log in", dir, e))
}

/// How the writer paces batches under the log's durability.
fn pacing(options: &WalOptions) -> Pacing {
    let (sync_every_batch, interval) = match options.durability {
        Durability::Sync => (true, std::time::Duration::ZERO),
        Durability::Buffered { interval } => (false, interval),
    };
    Pacing {
        sync_every_batch,
        interval,
        gather_max: GATHER_MAX,
        wait_spin: options.wait_spin,
        buffered_round: BUFFERED_ROUND_MAX.min(interval / 4),
        detached_syncs: !sync_every_batch,
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop();
    }
}
