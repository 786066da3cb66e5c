//! Segment files: creation (preallocated, header written and synced, then renamed into
//! place), and removal.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{segment_file_name, SegmentHeader};
use crate::io::{write_all_durably, Io, LogFile};
use crate::options::WalOptions;

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
pub(crate) fn create_segment(
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
pub(crate) fn remove_segments(io: &dyn Io, dir: &Path, segments: &[SegmentMeta]) -> Result<()> {
    for segment in segments {
        io.remove(&segment.path).map_err(|e| Error::io("remove segment", &segment.path, e))?;
    }
    if !segments.is_empty() {
        io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}
