//! The log's segments: [`Segments`], the state the log (`log.rs`) and its writer
//! (`writer.rs`) share, and the segment files themselves: creation (preallocated, header
//! written and synced, then renamed into place) and removal.
//!
//! [`Segments`] holds the log's directory, backend and options, the list of its segments
//! and its counters. The log holds it beside the group commit (`group.rs`), whose writer
//! token is the writer; the writer holds it to create segments and count its work. It
//! holds neither of them: no reference cycle, and the writer does not know the log.
//!
//! # The spare segment
//!
//! Creating a segment preallocates it (by default writing zeroes over all of it and
//! syncing them), which takes as long as writing the segment's size. Done when the writer
//! rotates, that is a stall of every appender behind it. So once the open segment is half
//! full, or as soon as a rotation started it (a log that fills whole segments: at
//! 100 MB/s of log a spare asked for at half was not ready in time), the writer asks for a
//! *spare*: a thread makes the file [`SPARE_FILE`], preallocated
//! as segments are (zeroes written a chunk at a time, each chunk synced, so that the log's
//! own syncs never queue behind a segment's worth of them) and synced, and no more. A
//! rotation then takes the spare, writes the new segment's header into it (synced),
//! renames it into place and syncs the directory: a header's write, not the segment's.
//!
//! The spare holds zeroes and nothing else until a rotation renames it; the log never
//! writes a record to it under its spare name. So recovery (`recovery.rs`) removes a spare
//! that is all zeroes, treats one that holds more as an unfinished segment (a crash
//! between a rotation's header write and its rename leaves a header and zeroes), and a
//! clean close removes the spare it made.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::format::{segment_file_name, SegmentHeader, Slot};
use crate::io::{write_all_durably, write_zeros, Io, LogFile, Preallocation};
use crate::options::WalOptions;
use crate::stats::Counters;
use crate::sync::{lock, Mutex, MutexGuard};
use crate::LogPosition;

/// What the log and its writer share.
#[derive(Debug)]
pub(crate) struct Segments {
    pub(crate) io: Arc<dyn Io>,
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    pub(crate) stats: Counters,
    /// The segments, oldest first; the writer appends, `delete_below` removes from the front.
    list: Mutex<Vec<SegmentMeta>>,
    /// The spare segment, ready or being made.
    spare: Mutex<Spare>,
}

/// The spare segment file (see the module documentation).
#[derive(Debug, Default)]
struct Spare {
    /// The spare, made and synced, open for writing.
    ready: Option<Box<dyn LogFile>>,
    /// The thread making it, if one was started and not yet joined.
    making: Option<JoinHandle<()>>,
}

/// The name of the spare segment file in a log's directory.
pub const SPARE_FILE: &str = "spare.wal-spare";

impl Segments {
    /// The shared state of the log in `dir`, whose segments are `list` (oldest first).
    pub(crate) fn new(
        io: Arc<dyn Io>,
        dir: PathBuf,
        options: WalOptions,
        list: Vec<SegmentMeta>,
    ) -> Segments {
        let spare = Mutex::new(Spare::default());
        Segments { io, dir, options, stats: Counters::default(), list: Mutex::new(list), spare }
    }

    /// The segments, oldest first.
    pub(crate) fn list(&self) -> MutexGuard<'_, Vec<SegmentMeta>> {
        lock(&self.list)
    }

    /// Creates the segment `header` describes ([`create_segment`]) and returns it open for
    /// writing; [`Segments::add`] lists it.
    pub(crate) fn create(&self, header: SegmentHeader) -> Result<(SegmentMeta, Box<dyn LogFile>)> {
        create_segment(self.io.as_ref(), &self.dir, header, &self.options)
    }

    /// Lists `segment`, the newest.
    pub(crate) fn add(&self, segment: SegmentMeta) {
        self.list().push(segment);
    }

    /// Starts making the spare segment on a thread of its own, unless it is ready or being
    /// made. A spare that cannot be made is no error: the rotation that finds none creates
    /// its segment itself, and reports what fails.
    pub(crate) fn prepare_spare(self: &Arc<Self>) {
        let mut spare = lock(&self.spare);
        if spare.ready.is_some()
            || spare.making.as_ref().is_some_and(|making| !making.is_finished())
        {
            return;
        }
        if let Some(finished) = spare.making.take() {
            // It ended without a spare (a failed creation); its panic, if any, is a bug
            // the next rotation's own creation will meet too.
            let _ = finished.join();
        }
        let segments = Arc::clone(self);
        let started = std::thread::Builder::new().name("inmem-wal-spare".into()).spawn(move || {
            let made = create_spare(segments.io.as_ref(), &segments.dir, &segments.options);
            lock(&segments.spare).ready = made.ok();
        });
        // A thread that cannot start leaves the rotation to create its segment itself.
        spare.making = started.ok();
    }

    /// Creates the segment `header` describes from the spare if one is ready or being made
    /// (waiting for it: that is never longer than making one from nothing), else from
    /// nothing ([`Segments::create`]); returns it open for writing. [`Segments::add`]
    /// lists it.
    pub(crate) fn create_from_spare(
        &self,
        header: SegmentHeader,
    ) -> Result<(SegmentMeta, Box<dyn LogFile>)> {
        let Some(file) = self.take_spare() else {
            return self.create(header);
        };
        let spare = self.dir.join(SPARE_FILE);
        let created = install_segment(self.io.as_ref(), &self.dir, file, &spare, header)?;
        self.stats.spare_used();
        Ok(created)
    }

    /// The ready spare, after the thread making it (if any) has ended.
    fn take_spare(&self) -> Option<Box<dyn LogFile>> {
        let making = lock(&self.spare).making.take();
        if let Some(making) = making {
            let _ = making.join();
        }
        lock(&self.spare).ready.take()
    }

    /// Waits for a spare being made, then removes the spare file: for a clean close, so
    /// that the next open finds none to check. Best effort: a spare left behind is all
    /// zeroes, and the next open removes it.
    pub(crate) fn remove_spare(&self) {
        if self.take_spare().is_some() {
            let _ = self.io.remove(&self.dir.join(SPARE_FILE));
        }
    }

    /// Deletes the segments whose records all lie below `position` (never the newest), then
    /// syncs the directory; returns how many it deleted.
    pub(crate) fn delete_below(&self, position: LogPosition) -> Result<usize> {
        let doomed: Vec<SegmentMeta> = {
            let mut segments = self.list();
            let whole = segments
                .windows(2)
                .take_while(|pair| pair[1].header.first_position <= position)
                .count();
            segments.drain(..whole).collect()
        };
        remove_segments(self.io.as_ref(), &self.dir, &doomed)?;
        Ok(doomed.len())
    }
}

/// A segment of the log: its file and its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    /// Its frontier slots, as read at open or written at its creation.
    pub(crate) slots: [Slot; 2],
}

/// The suffix of a segment file being created: recovery removes any it finds.
pub(crate) const UNFINISHED_SUFFIX: &str = ".tmp";

/// Creates the segment `header` describes in `dir` and returns it open for writing.
///
/// The file is made under a temporary name, preallocated, given its header, synced, and
/// only then renamed into place, and the directory synced: a file with a segment's name
/// always has a durable, valid header.
fn create_segment(
    io: &dyn Io,
    dir: &Path,
    header: SegmentHeader,
    options: &WalOptions,
) -> Result<(SegmentMeta, Box<dyn LogFile>)> {
    let name = segment_file_name(header.first_position);
    let unfinished = dir.join(format!("{name}{UNFINISHED_SUFFIX}"));
    let file = io
        .create(&unfinished, options.open_flags)
        .map_err(|e| Error::io("create segment", &unfinished, e))?;
    file.preallocate(header.size, options.preallocation)
        .map_err(|e| Error::io("preallocate segment", &unfinished, e))?;
    install_segment(io, dir, file, &unfinished, header)
}

/// Makes `file`, preallocated and named `from` (an unfinished segment, or the spare), the
/// segment `header` describes: its header written and synced, then the file renamed to
/// the segment's name and the directory synced.
fn install_segment(
    io: &dyn Io,
    dir: &Path,
    file: Box<dyn LogFile>,
    from: &Path,
    header: SegmentHeader,
) -> Result<(SegmentMeta, Box<dyn LogFile>)> {
    let path = dir.join(segment_file_name(header.first_position));
    // The header carries the segment's first frontier slot (`format.rs`, "Frontier slots").
    let block = header.encode();
    let slots = header.decode_slots(&block);
    write_all_durably(file.as_ref(), &[std::io::IoSlice::new(&block)], 0, true)
        .map_err(|e| Error::io("write segment header", from, e))?;
    io.rename(from, &path).map_err(|e| Error::io("rename segment", &path, e))?;
    io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok((SegmentMeta { path, header, slots }, file))
}

/// Makes the spare segment file in `dir`: preallocated as a segment is and synced, with
/// no header; returns it open for writing. A spare file already there (one a failed
/// attempt left, all zeroes: recovery removes any other) is replaced.
fn create_spare(io: &dyn Io, dir: &Path, options: &WalOptions) -> Result<Box<dyn LogFile>> {
    let path = dir.join(SPARE_FILE);
    let file = match io.create(&path, options.open_flags) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            io.remove(&path).map_err(|e| Error::io("remove a stale spare segment", &path, e))?;
            io.create(&path, options.open_flags)
        }
        created => created,
    }
    .map_err(|e| Error::io("create the spare segment", &path, e))?;
    let made = match options.preallocation {
        Preallocation::ZeroFill => zero_fill_paced(file.as_ref(), options.segment_size),
        how => file.preallocate(options.segment_size, how),
    }
    .and_then(|()| file.sync_data())
    .and_then(|()| io.sync_dir(dir));
    if let Err(error) = made {
        drop(file);
        // Best effort: the error that stopped it is the one to report.
        let _ = io.remove(&path);
        return Err(Error::io("preallocate the spare segment", &path, error));
    }
    Ok(file)
}

/// Bytes of zeroes the spare's maker writes between two syncs.
const SPARE_FILL_CHUNK: usize = 1 << 20;

/// Writes zeroes over the first `len` bytes of `file`, syncing after each
/// [`SPARE_FILL_CHUNK`]: at most that much of it is ever waiting to be written back, so a
/// sync of the log, which the file system may make wait for other files' dirty data (ext4
/// in `data=ordered` mode), never waits behind a whole segment of zeroes.
fn zero_fill_paced(file: &dyn LogFile, len: u64) -> std::io::Result<()> {
    for from in (0..len).step_by(SPARE_FILL_CHUNK) {
        write_zeros(file, from, (from + SPARE_FILL_CHUNK as u64).min(len))?;
        file.sync_data()?;
    }
    Ok(())
}

/// Removes `segments` (oldest first, so that a crash part way leaves a consecutive log),
/// then syncs the directory.
fn remove_segments(io: &dyn Io, dir: &Path, segments: &[SegmentMeta]) -> Result<()> {
    for segment in segments {
        io.remove(&segment.path).map_err(|e| Error::io("remove segment", &segment.path, e))?;
    }
    if !segments.is_empty() {
        io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}
