//! Recovery: what [`crate::Wal::open`] does before the log takes appends.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{
    parse_segment_file_name, Damage, Decoded, SegmentHeader, FRAME_ALIGN, FRAME_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::io::{write_zeros, Io, OpenFlags};
use crate::options::{RecoveryMode, WalOptions};
use crate::reader::SegmentBytes;
use crate::segment::{SegmentMeta, UNFINISHED_SUFFIX};
use crate::LogPosition;

/// What recovery found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode it ran in.
    pub mode: RecoveryMode,
    /// Segments kept.
    pub segments: usize,
    /// Valid records in them.
    pub records: u64,
    /// The first position the log holds.
    pub first: LogPosition,
    /// Where the next record goes.
    pub end: LogPosition,
    /// The damaged tail cut off, if any.
    pub cut: Option<TailCut>,
    /// Segments set aside (renamed with a `.dropped` suffix) by `PointInTime`.
    pub dropped: Vec<PathBuf>,
    /// Unfinished segment files (`.tmp`, from a crash while creating one) removed.
    pub removed_unfinished: Vec<PathBuf>,
}

/// A damaged tail cut off the newest segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The segment.
    pub path: PathBuf,
    /// The file offset where the cut starts: the first damaged frame.
    pub offset: u64,
    /// The log position there.
    pub position: LogPosition,
    /// How many bytes after it were zeroed.
    pub bytes: u64,
    /// What was wrong with the first frame cut.
    pub damage: Damage,
}

/// The log as recovery leaves it.
pub(crate) struct Recovered {
    /// The segments, oldest first, consecutive.
    pub(crate) segments: Vec<SegmentMeta>,
    /// Where the next frame goes (in the newest segment, or the first of a new one).
    pub(crate) end: LogPosition,
    pub(crate) report: RecoveryReport,
}

/// Recovers the log in `dir` as `options.recovery` says.
pub(crate) fn recover(io: &dyn Io, dir: &Path, options: &WalOptions) -> Result<Recovered> {
    io.create_dir_all(dir).map_err(|e| Error::io("create log directory", dir, e))?;
    let mode = options.recovery;
    let mut report = RecoveryReport {
        mode,
        segments: 0,
        records: 0,
        first: LogPosition::ZERO,
        end: LogPosition::ZERO,
        cut: None,
        dropped: Vec::new(),
        removed_unfinished: Vec::new(),
    };
    let named = list_segments(io, dir, mode, &mut report)?;
    let (mut segments, mut stop) = read_headers(io, &named, mode)?;

    // Walk the frames of every segment; each but the newest must end exactly where the
    // next begins.
    let mut end = segments.first().map_or(LogPosition::ZERO, |s| s.header.first_position);
    let mut kept = segments.len();
    for index in 0..segments.len() {
        let segment = &segments[index];
        let limit = segments.get(index + 1).map(|next| next.header.first_position);
        let walk = walk_segment(io, segment, limit, options)?;
        report.records += walk.records;
        end = walk.end;
        let Some(stopped) = walk.stopped else { continue };
        let newest = limit.is_none();
        refuse_unless_cuttable(mode, newest, segment, &stopped, walk.end)?;
        // Cut: zero what lies after the last good frame, durably, before any new append:
        // every written byte of the segment (`PointInTime`), or of the window (the other
        // modes, which refuse written bytes beyond it), so that the segment's tail is clean
        // when the writer later finishes it.
        let cut_end = match (mode, stopped.beyond_window) {
            (RecoveryMode::PointInTime, Some((_, end))) => end,
            _ => stopped.in_window.map_or(stopped.offset, |(_, end)| end),
        };
        let zeroed = zero_tail(io, segment, stopped.offset, cut_end)?;
        if zeroed > 0 {
            report.cut = Some(TailCut {
                path: segment.path.clone(),
                offset: stopped.offset,
                position: walk.end,
                bytes: zeroed,
                // Zeroes, then written bytes: the frame's first block never reached the disk.
                damage: stopped.damage.unwrap_or(Damage::BadHeader),
            });
        }
        if !newest {
            // `segments` is a prefix of `named`: what follows this one is set aside.
            kept = index + 1;
            stop = Some(index + 1);
        }
        break;
    }
    segments.truncate(kept);
    if let Some(from) = stop {
        for (_, path) in named.iter().skip(from) {
            let mut aside = path.clone().into_os_string();
            aside.push(".dropped");
            io.rename(path, Path::new(&aside))
                .map_err(|e| Error::io("set segment aside", path, e))?;
            report.dropped.push(PathBuf::from(aside));
        }
        io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    report.segments = segments.len();
    report.first = segments.first().map_or(end, |s| s.header.first_position);
    report.end = end;
    Ok(Recovered { segments, end, report })
}

/// The segment files of `dir` by first position; removes (and reports) unfinished ones.
fn list_segments(
    io: &dyn Io,
    dir: &Path,
    mode: RecoveryMode,
    report: &mut RecoveryReport,
) -> Result<Vec<(LogPosition, PathBuf)>> {
    let mut named = Vec::new();
    let names = io.list_dir(dir).map_err(|e| Error::io("list log directory", dir, e))?;
    for name in names {
        let Some(name) = name.to_str() else { continue };
        let path = dir.join(name);
        if let Some(segment) = name.strip_suffix(UNFINISHED_SUFFIX) {
            if parse_segment_file_name(segment).is_some() {
                if mode == RecoveryMode::Strict {
                    return Err(Error::Inconsistent {
                        path,
                        reason: "an unfinished segment (interrupted creation)".into(),
                    });
                }
                io.remove(&path).map_err(|e| Error::io("remove unfinished segment", &path, e))?;
                report.removed_unfinished.push(path);
            }
            continue;
        }
        if let Some(first) = parse_segment_file_name(name) {
            named.push((first, path));
        }
    }
    if !report.removed_unfinished.is_empty() {
        io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    named.sort();

    Ok(named)
}

/// The headers of `named`, checked to follow each other; under `PointInTime`, the index
/// of the first that does not (where the log stops) instead of an error.
fn read_headers(
    io: &dyn Io,
    named: &[(LogPosition, PathBuf)],
    mode: RecoveryMode,
) -> Result<(Vec<SegmentMeta>, Option<usize>)> {
    let mut segments: Vec<SegmentMeta> = Vec::new();
    let mut stop: Option<usize> = None;
    for (index, (first, path)) in named.iter().enumerate() {
        let problem = match read_header(io, path) {
            Ok(header) if header.first_position != *first => Some(Error::Inconsistent {
                path: path.clone(),
                reason: format!("header says first position {}", header.first_position),
            }),
            Ok(header)
                if segments.last().is_some_and(|prev| {
                    prev.header.number.checked_add(1) != Some(header.number)
                }) =>
            {
                Some(Error::Inconsistent {
                    path: path.clone(),
                    reason: format!(
                        "segment number {} does not follow the previous one",
                        header.number
                    ),
                })
            }
            Ok(header) => {
                segments.push(SegmentMeta { path: path.clone(), header });
                None
            }
            Err(error) => Some(error),
        };
        if let Some(error) = problem {
            if mode != RecoveryMode::PointInTime {
                return Err(error);
            }
            stop = Some(index);
            break;
        }
    }

    Ok((segments, stop))
}

/// Whether `mode` lets recovery cut what stopped the walk of `segment`, or makes it an
/// error naming the file and offset.
fn refuse_unless_cuttable(
    mode: RecoveryMode,
    newest: bool,
    segment: &SegmentMeta,
    stopped: &Stopped,
    position: LogPosition,
) -> Result<()> {
    match (mode, newest) {
        (RecoveryMode::Strict, _) | (RecoveryMode::TolerateTornTail, false) => {
            if let Some(damage) = stopped.damage {
                return Err(Error::Corrupt {
                    path: segment.path.clone(),
                    offset: stopped.offset,
                    position,
                    damage,
                });
            }
            // The newest segment ends cleanly only with nothing written after its frames.
            let written = match (stopped.in_window, stopped.beyond_window) {
                (Some((first, _)), Some((_, end))) => Some((first, end)),
                (span, None) | (None, span) => span,
            };
            if newest {
                if let Some((first, end)) = written {
                    return Err(Error::Inconsistent {
                        path: segment.path.clone(),
                        reason: format!(
                            "written bytes at offsets {first}..{end}, after the end of the log \
                             at offset {}",
                            stopped.offset
                        ),
                    });
                }
            } else {
                return Err(Error::Inconsistent {
                    path: segment.path.clone(),
                    reason: format!("zeroed region at offset {} inside the log", stopped.offset),
                });
            }
        }
        (RecoveryMode::TolerateTornTail, true) => {
            if let Some(offset) = stopped.valid_after_window {
                return Err(Error::Corrupt {
                    path: segment.path.clone(),
                    offset: stopped.offset,
                    position,
                    damage: stopped.damage.unwrap_or(Damage::Truncated {
                        needed: FRAME_HEADER_LEN as u64,
                        available: offset - stopped.offset,
                    }),
                });
            }
            // One torn batch cannot reach past the window: written bytes there are other
            // damage, and left in place they would make the segment refused once finished.
            if let Some((first, end)) = stopped.beyond_window {
                return Err(Error::Inconsistent {
                    path: segment.path.clone(),
                    reason: format!(
                        "written bytes at offsets {first}..{end}, after the torn tail at offset \
                         {} and beyond what one write batch could leave (up to offset {})",
                        stopped.offset, stopped.window_end
                    ),
                });
            }
        }
        (RecoveryMode::PointInTime, _) => {}
    }
    Ok(())
}

fn read_header(io: &dyn Io, path: &Path) -> Result<SegmentHeader> {
    let mut bytes = SegmentBytes::open(io, path)?;
    let block = bytes.at(0, SEGMENT_HEADER_LEN as usize, path)?;
    SegmentHeader::decode(block)
        .map_err(|reason| Error::BadSegmentHeader { path: path.into(), reason })
}

/// Where a segment's frames stopped before their expected end.
struct Stopped {
    /// The file offset of the first frame that is not valid.
    offset: u64,
    /// What is wrong there (`None`: zeroes).
    damage: Option<Damage>,
    /// The first non-zero byte within the in-flight window after `offset`, and the end of
    /// the last one, if there are any.
    in_window: Option<(u64, u64)>,
    /// The end of the window: what one torn write batch may have left starts before it.
    window_end: u64,
    /// The first and the end of the last non-zero byte from the end of the window to the
    /// end of the segment, if there are any.
    beyond_window: Option<(u64, u64)>,
    /// The offset of a valid frame beyond the window, if there is one.
    valid_after_window: Option<u64>,
}

struct Walk {
    records: u64,
    end: LogPosition,
    stopped: Option<Stopped>,
}

fn walk_segment(
    io: &dyn Io,
    segment: &SegmentMeta,
    limit: Option<LogPosition>,
    options: &WalOptions,
) -> Result<Walk> {
    let path = &segment.path;
    let header = segment.header;
    let mut bytes = SegmentBytes::open(io, path)?;
    let mut position = header.first_position;
    let mut records = 0;
    loop {
        if limit.is_some_and(|limit| position >= limit) {
            if limit != Some(position) {
                return Err(Error::Inconsistent {
                    path: path.clone(),
                    reason: format!("frames end at {position}, past the next segment's start"),
                });
            }
            // What follows the last frame of a finished segment was never written.
            if let Some(offset) = header.offset_of(position) {
                if let Some((first, end)) = nonzero_span(&mut bytes, offset, header.size, path)? {
                    return Err(Error::Inconsistent {
                        path: path.clone(),
                        reason: format!(
                            "written bytes at offsets {first}..{end}, after the last frame"
                        ),
                    });
                }
            }
            return Ok(Walk { records, end: position, stopped: None });
        }
        let offset = header.offset_of(position).unwrap_or(header.size);
        let decoded = if offset >= header.size {
            Decoded::Zeroed
        } else {
            bytes.frame(&header, offset, position, options.max_record_bytes, path)?
        };
        let damage = match decoded {
            Decoded::Frame(frame) => {
                // No overflow: the frame ends inside the segment, whose positions all fit
                // in 64 bits (`SegmentHeader::decode` checks it).
                position = LogPosition::new(position.get() + frame.len as u64);
                records += 1;
                continue;
            }
            Decoded::Zeroed => None,
            Decoded::Damaged(damage) => Some(damage),
        };
        let window = options.max_queued_bytes.saturating_add(options.max_frame_len());
        let window_end = offset.saturating_add(window).min(header.size);
        let in_window = nonzero_span(&mut bytes, offset, window_end, path)?;
        let beyond_window = nonzero_span(&mut bytes, window_end, header.size, path)?;
        // A frame starts 8-byte aligned, with its first non-zero byte at most 7 bytes in.
        let valid_after_window = match beyond_window {
            Some((first, _)) => {
                let from = window_end.max(first - first % FRAME_ALIGN as u64);
                valid_frame_after(&mut bytes, &header, from, options, path)?
            }
            None => None,
        };
        let stopped =
            Stopped { offset, damage, in_window, window_end, beyond_window, valid_after_window };
        return Ok(Walk { records, end: position, stopped: Some(stopped) });
    }
}

/// The offset of the first non-zero byte in `[from, to)` and the end of the last one, or
/// `None` if all are zero (bytes past the end of the file count as zero).
fn nonzero_span(
    bytes: &mut SegmentBytes,
    from: u64,
    to: u64,
    path: &Path,
) -> Result<Option<(u64, u64)>> {
    let mut span: Option<(u64, u64)> = None;
    let mut at = from;
    while at < to {
        let len = usize::try_from((to - at).min(1 << 20)).unwrap_or(1 << 20);
        let chunk = bytes.at(at, len, path)?;
        if chunk.is_empty() {
            break;
        }
        if let Some(last) = chunk.iter().rposition(|&b| b != 0) {
            let first = chunk.iter().position(|&b| b != 0).map_or(last, |first| first);
            let start = span.map_or(at + first as u64, |(start, _)| start);
            span = Some((start, at + last as u64 + 1));
        }
        at += chunk.len() as u64;
    }
    Ok(span)
}

/// The offset of a frame that validates where it sits, at or after `from`.
fn valid_frame_after(
    bytes: &mut SegmentBytes,
    header: &SegmentHeader,
    from: u64,
    options: &WalOptions,
    path: &Path,
) -> Result<Option<u64>> {
    let mut offset = from.next_multiple_of(FRAME_ALIGN as u64);
    while offset + (FRAME_HEADER_LEN as u64) <= header.size {
        let Some(position) = header.position_at(offset) else { break };
        let head = bytes.at(offset, FRAME_HEADER_LEN, path)?;
        if head.len() < FRAME_HEADER_LEN {
            break;
        }
        // Cheap filter first: a frame names the position it sits at.
        if head[8..16] == position.get().to_le_bytes() {
            let decoded = bytes.frame(header, offset, position, options.max_record_bytes, path)?;
            if matches!(decoded, Decoded::Frame(_)) {
                return Ok(Some(offset));
            }
        }
        offset += FRAME_ALIGN as u64;
    }
    Ok(None)
}

/// Zeroes `[from, to)` of a segment durably; returns the bytes zeroed.
fn zero_tail(io: &dyn Io, segment: &SegmentMeta, from: u64, to: u64) -> Result<u64> {
    if to <= from {
        return Ok(0);
    }
    let path = &segment.path;
    let file = io
        .open(path, true, OpenFlags::default())
        .map_err(|e| Error::io("open segment to cut its tail", path, e))?;
    write_zeros(file.as_ref(), from, to).map_err(|e| Error::io("zero torn tail", path, e))?;
    file.sync_data().map_err(|e| Error::io("fdatasync", path, e))?;
    if let Some(dir) = path.parent() {
        io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(to - from)
}
