//! The log's segments: [`Segments`], the state the log (`log.rs`) and its writer
//! (`writer.rs`) share, and the segment files themselves: creation (preallocated, header
//! written and synced, then renamed into place) and removal.
//!
//! [`Segments`] holds the log's directory, backend and options, the list of its segments
//! and its counters. The log holds it beside the group commit (`group.rs`), whose writer
//! token is the writer; the writer holds it to create segments and count its work. It
//! holds neither of them: no reference cycle, and the writer does not know the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{segment_file_name, SegmentHeader};
use crate::io::{write_all_durably, Io, LogFile};
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
}

impl Segments {
    /// The shared state of the log in `dir`, whose segments are `list` (oldest first).
    pub(crate) fn new(
        io: Arc<dyn Io>,
        dir: PathBuf,
        options: WalOptions,
        list: Vec<SegmentMeta>,
    ) -> Segments {
        Segments { io, dir, options, stats: Counters::default(), list: Mutex::new(list) }
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
    let path = dir.join(&name);
    let unfinished = dir.join(format!("{name}{UNFINISHED_SUFFIX}"));
    let file = io
        .create(&unfinished, options.open_flags)
        .map_err(|e| Error::io("create segment", &unfinished, e))?;
    file.preallocate(header.size, options.preallocation)
        .map_err(|e| Error::io("preallocate segment", &unfinished, e))?;
    let block = header.encode();
    write_all_durably(file.as_ref(), &[std::io::IoSlice::new(&block)], 0, true)
        .map_err(|e| Error::io("write segment header", &unfinished, e))?;
    io.rename(&unfinished, &path).map_err(|e| Error::io("rename segment", &path, e))?;
    io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok((SegmentMeta { path, header }, file))
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
