//! Recovery: what [`crate::Wal::open`] does before the log takes appends, in two steps.
//!
//! 1. [`survey`] reads every segment and decides, changing nothing: what the log holds,
//!    which anomalies it has, and, under the recovery mode, either a refusal (an error
//!    naming the file and offset) or a plan. [`crate::Wal::verify`] is this step alone, so
//!    it predicts exactly what an open does.
//! 2. [`apply`] carries the plan out: bytes a cut removes are first copied to a salvage
//!    file beside their segment (synced), segments set aside are renamed, never deleted.
//!
//! The rules (the whole table is `docs/recovery.md`):
//!
//! - **Torn tail.** Damage at position `x` of the newest segment is a torn write only if
//!   no proof says `x` was synced: no valid frame after it is stamped past `x`
//!   (`format.rs`, "What a frame proves"), the checkpointed position is not past it, and
//!   nothing is written beyond what one write batch could leave. `TolerateTornTail` and
//!   `PointInTime` cut it (after salvaging it); `Strict` refuses it.
//! - **How far.** Written bytes after a segment's records are looked for only up to its
//!   scan's end: its highest valid frontier plus one step (`format.rs`, "Frontier slots",
//!   property P: nothing acknowledged lies past it), or its end if no slot is valid.
//! - **Covered.** Damage wholly below [`WalOptions::checkpointed`] loses nothing: it is
//!   reported and left in place (reading starts at the checkpointed position), except
//!   under `Strict`, which refuses it.
//! - **Anything else** (corruption below a proof, a zeroed region inside the log, a
//!   segment shorter than its header says, a bad header, a gap in the segments, a sealed
//!   newest segment whose successor is missing, a first segment missing, a log that ends
//!   before the checkpointed position) is refused by `TolerateTornTail` and `Strict`;
//!   `PointInTime` keeps the log before the first one and sets the rest aside. A log
//!   that starts after the checkpointed position, or ends before it, is refused by every
//!   mode: no prefix of it is whole.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{
    encode_trailer, highest_frontier, parse_segment_file_name, Damage, Decoded, HeaderError,
    SegmentHeader, Slot, Trailer, FRAME_ALIGN, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN, TRAILER_LEN,
};
use crate::io::{write_all_durably, write_zeros, Io, OpenFlags};
use crate::options::{RecoveryMode, WalOptions};
use crate::reader::SegmentBytes;
use crate::segments::{SegmentMeta, SPARE_FILE, UNFINISHED_SUFFIX};
use crate::zeroes::nonzero_span;
use crate::LogPosition;

/// The suffix of a segment set aside by `PointInTime`.
pub const DROPPED_SUFFIX: &str = ".dropped";
/// The infix of a salvage file: `<segment file>.salvage-<offset>` holds the bytes a cut
/// removed from that segment, from that file offset on.
pub const SALVAGE_INFIX: &str = ".salvage-";

/// What recovery found and did (or, from [`crate::Wal::verify`], would do).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode it ran in.
    pub mode: RecoveryMode,
    /// Segments kept.
    pub segments: usize,
    /// Valid records in them.
    pub records: u64,
    /// The first position the log can be read from: its first segment's start, or, when
    /// damage below the checkpointed position was found (`covered`), that position.
    pub first: LogPosition,
    /// Where the next record goes.
    pub end: LogPosition,
    /// The highest position proven synced (by a frame's stamp, a trailer, a segment's
    /// successor, or the checkpointed position).
    pub proven: LogPosition,
    /// The damaged tail cut off, if any, and where its bytes were salvaged.
    pub cut: Option<TailCut>,
    /// Segments set aside (renamed with a `.dropped` suffix) by `PointInTime`.
    pub dropped: Vec<PathBuf>,
    /// Unfinished segment files (`.tmp`, from a crash while creating one: a header and
    /// zeroes) removed. One holding anything more is set aside instead (`dropped`). A
    /// spare segment file that holds a header (a crash in the middle of a rotation) counts
    /// as one.
    pub removed_unfinished: Vec<PathBuf>,
    /// The spare segment file ([`crate::SPARE_FILE`], made ahead of a rotation), removed
    /// because it held only zeroes: nothing of the log, so not a finding ([`Self::is_clean`]
    /// does not count it).
    pub removed_spare: Option<PathBuf>,
    /// Anomalies that lose nothing: damage wholly below the checkpointed position (left
    /// in place), and, under `PointInTime`, a missing seal before an empty newest segment.
    pub covered: Vec<Error>,
    /// Under `PointInTime`: the anomaly where the kept log stops, if any.
    pub stopped_at: Option<Error>,
    /// A sealed newest segment whose successor is missing was kept, and a successor is
    /// created (`PointInTime`).
    pub successor_created: bool,
    /// A segment file shorter than its header says was extended back to its size
    /// (`PointInTime`), the bytes it had kept.
    pub extended: Option<PathBuf>,
    /// Each segment walked, with its frontier and how far recovery read it.
    pub frontiers: Vec<SegmentFrontier>,
}

/// A segment's frontier, as recovery read it (`format.rs`, "Frontier slots").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFrontier {
    /// The segment.
    pub path: PathBuf,
    /// The highest frontier of its valid slots; `None` if neither slot is valid, which no
    /// crash leaves (the slot holding the durable frontier is never rewritten): damage to
    /// its header block, which loses nothing, as the segment is then read to its end.
    pub frontier: Option<u64>,
    /// How many of its two slots are invalid (neither zeroes nor a valid slot): one is what
    /// a crash during a slot's write leaves (the other, durable, then bounds the scan), so
    /// it is reported here, not as damage.
    pub invalid_slots: usize,
    /// Where recovery stopped looking for written bytes: the frontier plus
    /// `FRONTIER_STEP`, or the segment's size.
    pub scan_end: u64,
    /// The segment's size.
    pub size: u64,
}

impl RecoveryReport {
    /// Whether recovery found nothing to report: no cut, nothing set aside or removed, no
    /// damage, covered or not (a segment without a valid frontier slot included).
    pub fn is_clean(&self) -> bool {
        self.cut.is_none()
            && self.dropped.is_empty()
            && self.removed_unfinished.is_empty()
            && self.covered.is_empty()
            && self.stopped_at.is_none()
            && !self.successor_created
            && self.extended.is_none()
            && self.frontiers.iter().all(|segment| segment.frontier.is_some())
    }
}

/// A damaged tail cut off a segment, after its bytes were salvaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The segment.
    pub path: PathBuf,
    /// The file offset where the cut starts: the first damaged frame.
    pub offset: u64,
    /// The log position there.
    pub position: LogPosition,
    /// How many bytes after it were zeroed (after being copied to `salvage`).
    pub bytes: u64,
    /// What was wrong with the first frame cut (`None`: zeroes, written bytes after).
    pub damage: Option<Damage>,
    /// The file holding the bytes cut, byte for byte: `<segment>.salvage-<offset>`.
    pub salvage: PathBuf,
}

/// What [`survey`] decided.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The segments kept, oldest first (consecutive from the checkpointed position on).
    pub(crate) segments: Vec<SegmentMeta>,
    /// Where the next frame goes.
    pub(crate) end: LogPosition,
    /// Whether the newest kept segment is sealed: the next frame goes to a new segment.
    pub(crate) sealed: bool,
    /// Whether the newest kept segment's records end in a close trailer: everything in it
    /// was synced, its frontier slots included (`writer.rs`).
    pub(crate) closed: bool,
    pub(crate) report: RecoveryReport,
    actions: Vec<Action>,
}

/// A change [`apply`] makes.
#[derive(Debug)]
enum Action {
    RemoveUnfinished(PathBuf),
    /// Remove the spare segment file, all zeroes.
    RemoveSpare(PathBuf),
    /// Copy `[from, to)` of `segment` to a salvage file, durably, then zero it durably.
    Cut(TailCut),
    /// Rename a segment aside (`<path>.dropped`, or with a number after it if taken).
    SetAside {
        from: PathBuf,
        to: PathBuf,
    },
    /// Give a short segment file (`len` bytes) its size back, zeroes after its bytes.
    Extend {
        path: PathBuf,
        len: u64,
        size: u64,
    },
    /// Write the seal a finished segment lacks, where its records end (`at`).
    Seal {
        path: PathBuf,
        header: SegmentHeader,
        at: LogPosition,
    },
}

/// Reads the log in `dir` and decides what recovery under `options` does; changes nothing.
///
/// # Errors
/// The anomaly the mode refuses, naming file and offset; an I/O error reading.
pub(crate) fn survey(io: &dyn Io, dir: &Path, options: &WalOptions) -> Result<Plan> {
    let mode = options.recovery;
    let listed = list_segments(io, dir)?;
    if mode == RecoveryMode::Strict {
        if let Some(path) = listed.unfinished.first() {
            return Err(Error::Inconsistent {
                path: path.clone(),
                reason: "an unfinished segment (interrupted creation)".into(),
            });
        }
    }
    let headers = read_headers(io, &listed.segments, options)?;
    let mut survey = Survey {
        io,
        options,
        kept: Vec::new(),
        covered: Vec::new(),
        records: 0,
        proven: options.checkpointed,
        actions: Vec::new(),
        stop: None,
        sealed: false,
        extended: None,
        unsealed: None,
        taken: listed.names,
        readable_from: LogPosition::ZERO,
        frontiers: Vec::new(),
        closed: None,
    };
    let mut removed = Vec::new();
    for path in &listed.unfinished {
        if holds_more_than_a_header(io, path)? {
            // Not what a crash while creating a segment leaves: kept, renamed aside.
            let to = survey.free_name(path, DROPPED_SUFFIX);
            survey.actions.push(Action::SetAside { from: path.clone(), to });
        } else {
            survey.actions.push(Action::RemoveUnfinished(path.clone()));
            removed.push(path.clone());
        }
    }
    if let Some(path) = listed.spare {
        survey.actions.push(Action::RemoveSpare(path));
    }
    let mut end: Option<LogPosition> = None;
    let named = &listed.segments;
    // `PointInTime` stops at the first header it cannot read (and the checkpointed position
    // does not cover): the segment before it is walked as the newest.
    let covered =
        |index: usize| named.get(index + 1).is_some_and(|(next, _)| *next <= options.checkpointed);
    let stop_at = headers.iter().enumerate().position(|(index, h)| h.is_err() && !covered(index));
    for (index, ((first, path), header)) in named.iter().zip(headers).enumerate() {
        let next =
            named.get(index + 1).filter(|_| stop_at != Some(index + 1)).map(|(next, _)| *next);
        let at = Place { path, first: *first, next, index };
        match survey.segment(&at, header)? {
            Step::Next(segment_end) => end = Some(segment_end),
            Step::Stop { end: kept_end, from } => {
                end = kept_end.or(end);
                for (_, later) in named.iter().skip(from) {
                    let to = survey.free_name(later, DROPPED_SUFFIX);
                    survey.actions.push(Action::SetAside { from: later.clone(), to });
                }
                break;
            }
        }
    }
    let first = survey.kept.first().map(|s| s.header.first_position);
    let end = end.or(first).unwrap_or(options.checkpointed);
    survey.judge_unsealed(end)?;
    let first = first.unwrap_or(end);
    check_reach(dir, named, first, end, options.checkpointed)?;
    Ok(survey.into_plan(first, end, removed))
}

/// Refuses a log that starts after the checkpointed position or ends before it: no prefix
/// of it holds what the checkpoint does not.
fn check_reach(
    dir: &Path,
    named: &[(LogPosition, PathBuf)],
    first: LogPosition,
    end: LogPosition,
    checkpointed: LogPosition,
) -> Result<()> {
    if first > checkpointed {
        let path = named.first().map_or_else(|| dir.to_path_buf(), |(_, path)| path.clone());
        return Err(Error::Inconsistent {
            path,
            reason: format!(
                "the log starts at position {first}, after position {checkpointed} from \
                 which it must be replayed: an earlier segment is missing"
            ),
        });
    }
    if end < checkpointed {
        return Err(Error::Inconsistent {
            path: named.last().map_or_else(|| dir.to_path_buf(), |(_, path)| path.clone()),
            reason: format!(
                "the log ends at position {end}, before position {checkpointed} that a \
                 checkpoint says it reached: its newest segment is missing or cut short"
            ),
        });
    }
    Ok(())
}

/// Every segment's header, checked against its name and the one before it, before any
/// frame is read: a missing or misnamed segment is the first thing to know. A header
/// error the mode refuses is returned at once; one it tolerates is left for the walk.
fn read_headers(
    io: &dyn Io,
    named: &[(LogPosition, PathBuf)],
    options: &WalOptions,
) -> Result<Vec<Result<SegmentHeader>>> {
    let mode = options.recovery;
    let mut headers = Vec::with_capacity(named.len());
    let mut previous: Option<u64> = None;
    for (index, (first, path)) in named.iter().enumerate() {
        let header = read_checked_header(io, path, *first, previous);
        previous = header.as_ref().ok().map(|header| header.number);
        let next = named.get(index + 1).map(|(next, _)| *next);
        let covered = next.is_some_and(|next| next <= options.checkpointed);
        if let Err(error) = &header {
            // A log of another format version is refused whole, in every mode.
            let other_version = matches!(
                error,
                Error::BadSegmentHeader { reason: HeaderError::UnsupportedVersion { .. }, .. }
            );
            let refused = match mode {
                RecoveryMode::Strict => true,
                RecoveryMode::TolerateTornTail => !covered,
                RecoveryMode::PointInTime => false,
            };
            if refused || other_version {
                return Err(error.clone());
            }
        }
        headers.push(header);
    }
    Ok(headers)
}

/// Carries `plan` out; returns the log's segments, end and report.
///
/// # Errors
/// An I/O error; what was done before it is durable and consistent.
pub(crate) fn apply(io: &dyn Io, dir: &Path, plan: Plan) -> Result<Plan> {
    io.create_dir_all(dir).map_err(|e| Error::io("create log directory", dir, e))?;
    let mut changed_dir = false;
    for action in &plan.actions {
        match action {
            Action::RemoveUnfinished(path) => {
                io.remove(path).map_err(|e| Error::io("remove unfinished segment", path, e))?;
                changed_dir = true;
            }
            Action::RemoveSpare(path) => {
                io.remove(path).map_err(|e| Error::io("remove the spare segment", path, e))?;
                changed_dir = true;
            }
            Action::Cut(cut) => {
                let to = cut.offset + cut.bytes;
                salvage_and_zero(io, dir, &cut.path, cut.offset, to, &cut.salvage)?;
            }
            Action::SetAside { from, to } => {
                io.rename(from, to).map_err(|e| Error::io("set segment aside", from, e))?;
                changed_dir = true;
            }
            Action::Extend { path, len, size } => {
                // Zeroes from the file's end on: the bytes it holds stay as they are.
                let file = io
                    .open(path, true, OpenFlags::default())
                    .map_err(|e| Error::io("open short segment", path, e))?;
                write_zeros(file.as_ref(), *len, *size)
                    .map_err(|e| Error::io("extend short segment", path, e))?;
                file.sync_data().map_err(|e| Error::io("fdatasync", path, e))?;
            }
            Action::Seal { path, header, at } => {
                // Written where only zeroes are: the seal a crash kept from being written.
                let file = io
                    .open(path, true, OpenFlags::default())
                    .map_err(|e| Error::io("open segment to seal it", path, e))?;
                let trailer = encode_trailer(Trailer::Seal, *at, header.frame_seed());
                let offset = header.offset_of(*at).unwrap_or(header.size);
                write_all_durably(file.as_ref(), &[std::io::IoSlice::new(&trailer)], offset, true)
                    .map_err(|e| Error::io("write and fdatasync a seal", path, e))?;
            }
        }
    }
    if changed_dir {
        io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(plan)
}

/// `path` with `suffix` after its name: `<segment>.dropped`, `<segment>.salvage-<offset>`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Copies `[from, to)` of `segment` to `salvage` (through a temporary name, synced, the
/// directory synced), then zeroes it in the segment, durably.
fn salvage_and_zero(
    io: &dyn Io,
    dir: &Path,
    segment: &Path,
    from: u64,
    to: u64,
    salvage: &Path,
) -> Result<()> {
    let source = io
        .open(segment, true, OpenFlags::default())
        .map_err(|e| Error::io("open segment to cut its tail", segment, e))?;
    // A temporary file left by a crash during an earlier attempt holds a partial copy.
    let temporary = with_suffix(salvage, ".tmp");
    let copy = match io.create(&temporary, OpenFlags::default()) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            io.remove(&temporary)
                .map_err(|e| Error::io("remove stale salvage file", &temporary, e))?;
            io.create(&temporary, OpenFlags::default())
        }
        created => created,
    }
    .map_err(|e| Error::io("create salvage file", &temporary, e))?;
    let mut buffer = vec![0u8; usize::try_from((to - from).min(1 << 20)).unwrap_or(1 << 20)];
    let mut at = from;
    while at < to {
        let want = usize::try_from((to - at).min(buffer.len() as u64)).unwrap_or(buffer.len());
        let read = source
            .read_at(&mut buffer[..want], at)
            .map_err(|e| Error::io("read segment to salvage", segment, e))?;
        if read == 0 {
            break;
        }
        write_all_durably(
            copy.as_ref(),
            &[std::io::IoSlice::new(&buffer[..read])],
            at - from,
            false,
        )
        .map_err(|e| Error::io("write salvage file", &temporary, e))?;
        at += read as u64;
    }
    copy.sync_data().map_err(|e| Error::io("fdatasync", &temporary, e))?;
    drop(copy);
    io.rename(&temporary, salvage).map_err(|e| Error::io("rename salvage file", salvage, e))?;
    io.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    write_zeros(source.as_ref(), from, to).map_err(|e| Error::io("zero torn tail", segment, e))?;
    source.sync_data().map_err(|e| Error::io("fdatasync", segment, e))?;
    Ok(())
}

/// What a log directory holds.
struct Listed {
    /// The segment files by first position.
    segments: Vec<(LogPosition, PathBuf)>,
    /// The unfinished ones (`.tmp`).
    unfinished: Vec<PathBuf>,
    /// The spare segment file, if there is one holding only zeroes.
    spare: Option<PathBuf>,
    /// Every name in it: salvage and set-aside names are chosen among those not taken.
    names: BTreeSet<OsString>,
}

/// Whether the unfinished segment file at `path` holds any non-zero byte after its first
/// [`SEGMENT_HEADER_LEN`] bytes: a segment is renamed into place before any record is
/// written to it, so one being created holds a header and zeroes, and removing it loses
/// nothing.
fn holds_more_than_a_header(io: &dyn Io, path: &Path) -> Result<bool> {
    holds_nonzero_from(io, path, SEGMENT_HEADER_LEN)
}

/// Whether the file at `path` holds any non-zero byte at or after offset `from`.
fn holds_nonzero_from(io: &dyn Io, path: &Path, from: u64) -> Result<bool> {
    let mut bytes = SegmentBytes::open(io, path)?;
    let len = bytes.len(path)?;
    Ok(nonzero_span(&mut bytes, from, len, path)?.is_some())
}

/// The segment files of `dir`, and its spare segment file, checked.
fn list_segments(io: &dyn Io, dir: &Path) -> Result<Listed> {
    let names = match io.list_dir(dir) {
        Ok(names) => names,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(Error::io("list log directory", dir, error)),
    };
    let mut listed = Listed {
        segments: Vec::new(),
        unfinished: Vec::new(),
        spare: None,
        names: BTreeSet::new(),
    };
    for name in names {
        if let Some(text) = name.to_str() {
            let path = dir.join(text);
            if text == SPARE_FILE {
                listed.spare = Some(path);
            } else if let Some(segment) = text.strip_suffix(UNFINISHED_SUFFIX) {
                if parse_segment_file_name(segment).is_some() {
                    listed.unfinished.push(path);
                }
            } else if let Some(first) = parse_segment_file_name(text) {
                listed.segments.push((first, path));
            }
        }
        listed.names.insert(name);
    }
    if let Some(path) = listed.spare.take() {
        if holds_nonzero_from(io, &path, 0)? {
            // Renamed into place only after its header is written: a spare with a header
            // is a rotation a crash interrupted, an unfinished segment.
            listed.unfinished.push(path);
        } else {
            listed.spare = Some(path);
        }
    }
    listed.segments.sort();
    listed.unfinished.sort();
    Ok(listed)
}

/// What walking one segment came to.
enum Step {
    /// The segment is kept whole; the log goes on (its records end at this position).
    Next(LogPosition),
    /// The log stops in or before this segment (`PointInTime`): it ends at `end` (`None`:
    /// where the previous segment ended), and the segments from index `from` are set aside.
    Stop { end: Option<LogPosition>, from: usize },
}

/// A segment being walked: its file, the position its name gives, the next segment's,
/// and its index among the segments.
struct Place<'p> {
    path: &'p Path,
    first: LogPosition,
    next: Option<LogPosition>,
    index: usize,
}

/// The state of a survey as it walks the segments.
struct Survey<'a> {
    io: &'a dyn Io,
    options: &'a WalOptions,
    kept: Vec<SegmentMeta>,
    covered: Vec<Error>,
    records: u64,
    proven: LogPosition,
    actions: Vec<Action>,
    /// The anomaly `PointInTime` stopped at.
    stop: Option<Error>,
    /// The newest kept segment is sealed: the open adds a successor (`PointInTime`, when
    /// the one after it is missing or set aside).
    sealed: bool,
    extended: Option<PathBuf>,
    /// A finished segment without its seal (the error, the segment, where its records
    /// end), to judge once the newest is walked.
    unsealed: Option<(Error, SegmentMeta, LogPosition)>,
    /// The names in the directory, and those the plan gives files.
    taken: BTreeSet<OsString>,
    /// Where the log can be read from: the checkpointed position once damage below it is
    /// found, else its first segment's start.
    readable_from: LogPosition,
    /// Each segment walked, with its frontier.
    frontiers: Vec<SegmentFrontier>,
    /// The segment whose records end in a close trailer with nothing after it, if any.
    closed: Option<PathBuf>,
}

/// Where a segment's frames stopped before their expected end.
struct Stopped {
    /// The file offset of the first frame that is not valid.
    offset: u64,
    /// What is there: a damaged frame, zeroes (`None`).
    damage: Option<Damage>,
    /// The first and the end of the last non-zero byte after `offset`, within what one
    /// write batch could leave.
    in_window: Option<(u64, u64)>,
    /// Beyond it, to the end of the segment.
    beyond_window: Option<(u64, u64)>,
    /// The end of the window.
    window_end: u64,
    /// The highest `synced` stamp of a valid frame after `offset`.
    proof_after: Option<LogPosition>,
}

impl Stopped {
    /// The end of the last written byte after the stop (the stop itself if none).
    fn written_end(&self) -> u64 {
        self.beyond_window.or(self.in_window).map_or(self.offset, |(_, end)| end)
    }

    /// Whether anything is written after the stop.
    fn written(&self) -> bool {
        self.in_window.is_some() || self.beyond_window.is_some()
    }
}

/// How a segment's walk ended.
enum Walked {
    /// Records reach the next segment's first position exactly; `sealed` says whether a
    /// seal follows; `written_after`: non-zero bytes after that (and the seal).
    AtLimit { sealed: bool, written_after: Option<(u64, u64)> },
    /// A trailer at `position` (before the limit, if any).
    Trailer { trailer: Trailer, position: LogPosition, written_after: Option<(u64, u64)> },
    /// No valid frame at `position`.
    Stopped { position: LogPosition, stopped: Stopped },
    /// Records run past the next segment's first position.
    Overran { position: LogPosition },
}

/// A segment whose header is valid, as it is walked.
struct Walking<'p> {
    at: &'p Place<'p>,
    header: SegmentHeader,
    /// Its frontier slots.
    slots: [Slot; 2],
    /// The file's length.
    len: u64,
    /// Wholly below the checkpointed position: its damage loses nothing.
    covered: bool,
}

impl Walking<'_> {
    fn path(&self) -> &Path {
        self.at.path
    }

    fn meta(&self) -> SegmentMeta {
        SegmentMeta { path: self.at.path.to_path_buf(), header: self.header, slots: self.slots }
    }

    fn inconsistent(&self, reason: String) -> Error {
        Error::Inconsistent { path: self.at.path.to_path_buf(), reason }
    }
}

impl Survey<'_> {
    /// Records an anomaly: `covered` ones are reported (or refused by `Strict`); others
    /// are refused, except by `PointInTime`, which stops there (the caller stops walking).
    /// Returns whether the walk goes on.
    fn anomaly(&mut self, error: Error, covered: bool) -> Result<bool> {
        match (self.options.recovery, covered) {
            (RecoveryMode::Strict, _) | (RecoveryMode::TolerateTornTail, false) => Err(error),
            (_, true) => {
                // The log is readable from the checkpointed position on, not before.
                self.readable_from = self.options.checkpointed;
                self.covered.push(error);
                Ok(true)
            }
            (RecoveryMode::PointInTime, false) => {
                self.stop = Some(error);
                Ok(false)
            }
        }
    }

    /// `path` with `suffix` after its name, or, if a file of that name exists or is
    /// planned, with `suffix-2`, `suffix-3`..: nothing recovery sets aside ever replaces an
    /// earlier one.
    fn free_name(&mut self, path: &Path, suffix: &str) -> PathBuf {
        let mut candidate = with_suffix(path, suffix);
        let mut number = 2u32;
        while candidate.file_name().is_some_and(|name| self.taken.contains(name)) {
            candidate = with_suffix(path, &format!("{suffix}-{number}"));
            number = number.saturating_add(1);
        }
        if let Some(name) = candidate.file_name() {
            self.taken.insert(name.to_owned());
        }
        candidate
    }

    /// Walks the segment at `at`, whose header was read and checked.
    fn segment(&mut self, at: &Place<'_>, header: Result<SegmentHeader>) -> Result<Step> {
        let covered = at.next.is_some_and(|next| next <= self.options.checkpointed);
        let header = match header {
            Ok(header) => header,
            Err(error) => {
                return if self.anomaly(error, covered)? {
                    Ok(Step::Next(at.next.unwrap_or(at.first)))
                } else {
                    Ok(Step::Stop { end: None, from: at.index })
                };
            }
        };
        let mut bytes = SegmentBytes::open(self.io, at.path)?;
        let len = bytes.len(at.path)?;
        let block = bytes.at(0, SEGMENT_HEADER_LEN as usize, at.path)?;
        let slots = header.decode_slots(block);
        let scan_end = header.scan_end(&slots);
        self.frontiers.push(SegmentFrontier {
            path: at.path.to_path_buf(),
            frontier: highest_frontier(&slots).map(|slot| slot.frontier),
            invalid_slots: slots.iter().filter(|slot| **slot == Slot::Invalid).count(),
            scan_end,
            size: header.size,
        });
        let segment = Walking { at, header, slots, len, covered };
        // Existing proves its predecessor synced to its first position.
        self.proven = self.proven.max(header.first_position);
        let mut start = header.first_position;
        loop {
            match self.walk(&mut bytes, &header, scan_end, start, at.next, at.path)? {
                Walked::AtLimit { sealed, written_after } => {
                    return self.at_limit(&segment, sealed, written_after);
                }
                Walked::Overran { position } => {
                    self.sealed = false;
                    let reason = format!("frames end at {position}, past the next segment's start");
                    self.anomaly(segment.inconsistent(reason), false)?;
                    self.kept.push(segment.meta());
                    return Ok(Step::Stop { end: Some(position), from: at.index + 1 });
                }
                Walked::Trailer { trailer, position, written_after } => {
                    return self.at_trailer(&segment, trailer, position, written_after);
                }
                Walked::Stopped { position, stopped } => {
                    // Damage a checkpoint covers: read on from where replay starts. (Zeroes
                    // with nothing after them are no damage but the log's end.)
                    let checkpointed = self.options.checkpointed;
                    let damaged = stopped.written() || stopped.damage.is_some();
                    if position < checkpointed && damaged {
                        let error = self.damage_error(at.path, position, &stopped);
                        self.anomaly(error, true)?;
                        let resumes = at.next.is_none_or(|next| next > checkpointed)
                            && header.offset_of(checkpointed).is_some();
                        if resumes {
                            start = checkpointed;
                            continue;
                        }
                        self.kept.push(segment.meta());
                        return Ok(Step::Next(at.next.unwrap_or(position)));
                    }
                    return self.at_stop(&segment, position, &stopped);
                }
            }
        }
    }

    /// Records reached the next segment's first position.
    fn at_limit(
        &mut self,
        segment: &Walking<'_>,
        sealed: bool,
        written_after: Option<(u64, u64)>,
    ) -> Result<Step> {
        let at = segment.at;
        let header = segment.header;
        let limit = at.next.unwrap_or(header.first_position);
        self.kept.push(segment.meta());
        // If the log stops after this segment, its successor is made anew.
        self.sealed = sealed;
        if let Some((from, to)) = written_after {
            let reason = format!("written bytes at offsets {from}..{to}, after the last frame");
            if !self.anomaly(segment.inconsistent(reason), segment.covered)? {
                return Ok(self.stop_in(at, limit, from, to, None));
            }
        }
        if !sealed && !segment.covered {
            let offset = header.offset_of(limit).unwrap_or(header.size);
            let reason = format!(
                "not sealed, but a segment follows it (its seal at offset {offset} is missing)"
            );
            self.unsealed = Some((segment.inconsistent(reason), segment.meta(), limit));
        }
        self.short_file(segment, limit)
    }

    /// A trailer where the segment's records end.
    fn at_trailer(
        &mut self,
        segment: &Walking<'_>,
        trailer: Trailer,
        position: LogPosition,
        written_after: Option<(u64, u64)>,
    ) -> Result<Step> {
        let at = segment.at;
        self.kept.push(segment.meta());
        self.sealed = false;
        self.proven = self.proven.max(position);
        let offset = segment.header.offset_of(position).unwrap_or(segment.header.size);
        let problem = if let Some((from, to)) = written_after {
            Some(format!("written bytes at offsets {from}..{to}, after its trailer"))
        } else if at.next.is_some() {
            Some(format!(
                "records end at offset {offset} (position {position}), before the next \
                 segment's start"
            ))
        } else if trailer == Trailer::Seal {
            Some(format!(
                "sealed at offset {offset} (position {position}), but the segment after it is \
                 missing"
            ))
        } else {
            None
        };
        if problem.is_none() && trailer == Trailer::Close && at.next.is_none() {
            self.closed = Some(at.path.to_path_buf());
        }
        if let Some(reason) = problem {
            if !self.anomaly(segment.inconsistent(reason), segment.covered)? {
                if at.next.is_none() && written_after.is_none() {
                    // Nothing is lost but the successor: keep it all, add one.
                    self.sealed = true;
                    return Ok(Step::Stop { end: Some(position), from: at.index + 1 });
                }
                let to = written_after.map_or(offset, |(_, to)| to);
                return Ok(self.stop_in(at, position, offset, to, None));
            }
        }
        self.short_file(segment, position)
    }

    /// No valid frame at `position`, above the checkpointed position: the log's end, a
    /// torn tail, or damage.
    fn at_stop(
        &mut self,
        segment: &Walking<'_>,
        position: LogPosition,
        stopped: &Stopped,
    ) -> Result<Step> {
        let at = segment.at;
        self.kept.push(segment.meta());
        self.sealed = false;
        if let Some(proof) = stopped.proof_after {
            self.proven = self.proven.max(proof);
        }
        let newest = at.next.is_none();
        if stopped.offset >= segment.len && segment.len < segment.header.size {
            // Records stop where the file does: it was cut short.
            return self.short_file(segment, position);
        }
        if newest && !stopped.written() && stopped.damage.is_none() {
            // Zeroes and nothing after them: the log ends here.
            return self.short_file(segment, position);
        }
        if newest && position >= self.proven && stopped.beyond_window.is_none() {
            // A torn tail: nothing proves it was ever synced.
            if self.options.recovery == RecoveryMode::Strict {
                return Err(self.damage_error(at.path, position, stopped));
            }
            if let Some((_, to)) = stopped.in_window {
                self.cut(position, stopped.offset, to, stopped.damage, at.path);
            }
            return self.short_file(segment, position);
        }
        let error = self.damage_error(at.path, position, stopped);
        self.anomaly(error, false)?;
        let to = stopped.written_end();
        Ok(self.stop_in(at, position, stopped.offset, to, stopped.damage))
    }

    /// The log stops at `position` (file offset `from`) in the segment at `at`: what is
    /// written from there to `to` is salvaged and zeroed; later segments go aside.
    fn stop_in(
        &mut self,
        at: &Place<'_>,
        position: LogPosition,
        from: u64,
        to: u64,
        damage: Option<Damage>,
    ) -> Step {
        self.cut(position, from, to, damage, at.path);
        Step::Stop { end: Some(position), from: at.index + 1 }
    }

    /// Plans the cut of `[from, to)` of the segment at `path` (from position `position`),
    /// its bytes salvaged first.
    fn cut(
        &mut self,
        position: LogPosition,
        from: u64,
        to: u64,
        damage: Option<Damage>,
        path: &Path,
    ) {
        if to > from {
            let salvage = self.free_name(path, &format!("{SALVAGE_INFIX}{from}"));
            self.actions.push(Action::Cut(TailCut {
                path: path.to_path_buf(),
                offset: from,
                position,
                bytes: to - from,
                damage,
                salvage,
            }));
        }
    }

    /// Checks the segment's file length against its header, once its records are walked
    /// to `end`: a file cut short is an anomaly (`PointInTime` gives it its size back,
    /// keeping what it holds, and the log stops there).
    fn short_file(&mut self, segment: &Walking<'_>, end: LogPosition) -> Result<Step> {
        let (len, size) = (segment.len, segment.header.size);
        if len >= size {
            return Ok(Step::Next(end));
        }
        let reason =
            format!("the file is {len} bytes, its header says {size}: cut short at offset {len}");
        if self.anomaly(segment.inconsistent(reason), segment.covered)? {
            return Ok(Step::Next(end));
        }
        let path = segment.path().to_path_buf();
        self.actions.push(Action::Extend { path: path.clone(), len, size });
        self.extended = Some(path);
        Ok(Step::Stop { end: Some(end), from: segment.at.index + 1 })
    }

    /// Judges the finished segment found without its seal, once the log's end is known:
    /// a crash between creating the newest segment and sealing this one leaves the newest
    /// empty, and the open writes the seal (`Strict`, which changes nothing, refuses it);
    /// otherwise it is damage (which `PointInTime` reports, writing the seal too: nothing
    /// is lost).
    fn judge_unsealed(&mut self, end: LogPosition) -> Result<()> {
        let Some((error, segment, at)) = self.unsealed.take() else { return Ok(()) };
        if self.stop.is_some() {
            return Ok(());
        }
        let newest_first = self.kept.last().map(|s| s.header.first_position);
        let crash_state = newest_first == Some(end);
        match self.options.recovery {
            // Strict changes nothing, and so refuses even the crash state (as it does an
            // unfinished segment).
            RecoveryMode::Strict => return Err(error),
            RecoveryMode::TolerateTornTail if !crash_state => return Err(error),
            RecoveryMode::PointInTime if !crash_state => self.covered.push(error),
            RecoveryMode::TolerateTornTail | RecoveryMode::PointInTime => {}
        }
        self.actions.push(Action::Seal { path: segment.path, header: segment.header, at });
        Ok(())
    }

    /// The plan: the segments kept, the actions, the report.
    fn into_plan(self, first: LogPosition, end: LogPosition, unfinished: Vec<PathBuf>) -> Plan {
        let mut report = RecoveryReport {
            mode: self.options.recovery,
            segments: self.kept.len(),
            records: self.records,
            first: first.max(self.readable_from).min(end),
            end,
            proven: self.proven.min(end),
            cut: None,
            dropped: Vec::new(),
            removed_unfinished: unfinished,
            removed_spare: None,
            covered: self.covered,
            stopped_at: self.stop,
            successor_created: self.sealed,
            extended: self.extended,
            frontiers: self.frontiers,
        };
        for action in &self.actions {
            match action {
                Action::Cut(cut) => report.cut = Some(cut.clone()),
                Action::SetAside { to, .. } => report.dropped.push(to.clone()),
                Action::RemoveSpare(path) => report.removed_spare = Some(path.clone()),
                Action::RemoveUnfinished(_) | Action::Extend { .. } | Action::Seal { .. } => {}
            }
        }
        let closed = self.closed.is_some()
            && self.kept.last().map(|segment| &segment.path) == self.closed.as_ref();
        let cuts = self.actions.iter().any(|action| matches!(action, Action::Cut(_)));
        Plan {
            segments: self.kept,
            end,
            sealed: self.sealed,
            closed: closed && !cuts,
            report,
            actions: self.actions,
        }
    }

    /// The error for damage at `position` of the segment at `path`.
    fn damage_error(&self, path: &Path, position: LogPosition, stopped: &Stopped) -> Error {
        if let Some((first, end)) = stopped.beyond_window {
            if position >= self.proven {
                return Error::Inconsistent {
                    path: path.to_path_buf(),
                    reason: format!(
                        "written bytes at offsets {first}..{end}, after damage at offset {} \
                         (log position {position}) and beyond what one write batch could \
                         leave (up to offset {})",
                        stopped.offset, stopped.window_end
                    ),
                };
            }
        }
        match stopped.damage {
            Some(damage) => Error::Corrupt {
                path: path.to_path_buf(),
                offset: stopped.offset,
                position,
                damage,
            },
            None => {
                let written = match (stopped.in_window, stopped.beyond_window) {
                    (Some((first, _)), Some((_, end))) => Some((first, end)),
                    (span, None) | (None, span) => span,
                };
                let after = written.map_or(String::new(), |(first, end)| {
                    format!(", and written bytes at offsets {first}..{end} after it")
                });
                Error::Inconsistent {
                    path: path.to_path_buf(),
                    reason: format!(
                        "zeroed region at offset {} (log position {position}) inside the log{after}",
                        stopped.offset
                    ),
                }
            }
        }
    }

    /// Walks the frames of a segment from `start` (a frame's position).
    fn walk(
        &mut self,
        bytes: &mut SegmentBytes,
        header: &SegmentHeader,
        scan_end: u64,
        start: LogPosition,
        limit: Option<LogPosition>,
        path: &Path,
    ) -> Result<Walked> {
        let options = self.options;
        let mut position = start;
        loop {
            if let Some(limit) = limit {
                if position > limit {
                    return Ok(Walked::Overran { position });
                }
                if position == limit {
                    let offset = header.offset_of(position).unwrap_or(header.size);
                    let decoded = if offset >= header.size {
                        Decoded::Zeroed
                    } else {
                        bytes.frame(header, offset, position, options.max_record_bytes, path)?
                    };
                    let sealed = matches!(decoded, Decoded::Trailer(Trailer::Seal));
                    let after = if sealed { offset + TRAILER_LEN as u64 } else { offset };
                    let written_after = nonzero_span(bytes, after, scan_end, path)?;
                    return Ok(Walked::AtLimit { sealed, written_after });
                }
            }
            let offset = header.offset_of(position).unwrap_or(header.size);
            let decoded = if offset >= header.size {
                Decoded::Zeroed
            } else {
                bytes.frame(header, offset, position, options.max_record_bytes, path)?
            };
            let damage = match decoded {
                Decoded::Frame(frame) => {
                    // No overflow: the frame ends inside the segment, whose positions all
                    // fit in 64 bits (`SegmentHeader::decode` checks it).
                    position = LogPosition::new(position.get() + frame.len as u64);
                    self.records += 1;
                    continue;
                }
                Decoded::Trailer(trailer) => {
                    let after = offset + TRAILER_LEN as u64;
                    let written_after = nonzero_span(bytes, after, scan_end, path)?;
                    return Ok(Walked::Trailer { trailer, position, written_after });
                }
                Decoded::Zeroed => None,
                Decoded::Damaged(damage) => Some(damage),
            };
            let window = options.max_queued_bytes.saturating_add(options.max_frame_len());
            // Only up to the scan's end: nothing the writer wrote past it was acknowledged
            // (`format.rs`, "Frontier slots").
            let window_end = offset.saturating_add(window).min(scan_end);
            let in_window = nonzero_span(bytes, offset, window_end, path)?;
            let beyond_window = nonzero_span(bytes, window_end, scan_end, path)?;
            let proof_after = match in_window.or(beyond_window) {
                Some((first, _)) => {
                    let from = offset.max(first - first % FRAME_ALIGN as u64);
                    let from = from.max(offset + 1);
                    highest_proof_after(bytes, header, from, scan_end, options, path)?
                }
                None => None,
            };
            let stopped =
                Stopped { offset, damage, in_window, beyond_window, window_end, proof_after };
            return Ok(Walked::Stopped { position, stopped });
        }
    }
}

/// The header of the segment at `path`, checked against its name (`first`) and the number
/// of the segment before it (`previous`, if that one's header was valid).
fn read_checked_header(
    io: &dyn Io,
    path: &Path,
    first: LogPosition,
    previous: Option<u64>,
) -> Result<SegmentHeader> {
    let header = read_header(io, path)?;
    if header.first_position != first {
        return Err(Error::Inconsistent {
            path: path.to_path_buf(),
            reason: format!("header says first position {}", header.first_position),
        });
    }
    if previous.is_some_and(|number| number.checked_add(1) != Some(header.number)) {
        return Err(Error::Inconsistent {
            path: path.to_path_buf(),
            reason: format!(
                "segment number {} does not follow the previous one: a segment is missing",
                header.number
            ),
        });
    }
    Ok(header)
}

fn read_header(io: &dyn Io, path: &Path) -> Result<SegmentHeader> {
    let mut bytes = SegmentBytes::open(io, path)?;
    let block = bytes.at(0, SEGMENT_HEADER_LEN as usize, path)?;
    SegmentHeader::decode(block)
        .map_err(|reason| Error::BadSegmentHeader { path: path.into(), reason })
}

/// The highest `synced` stamp of any frame (or trailer) that validates where it sits,
/// starting at or after `from` and before `scan_end` in the segment.
fn highest_proof_after(
    bytes: &mut SegmentBytes,
    header: &SegmentHeader,
    from: u64,
    scan_end: u64,
    options: &WalOptions,
    path: &Path,
) -> Result<Option<LogPosition>> {
    let mut highest: Option<LogPosition> = None;
    let mut offset = from.next_multiple_of(FRAME_ALIGN as u64);
    while offset + (FRAME_HEADER_LEN as u64) <= scan_end {
        let Some(position) = header.position_at(offset) else { break };
        let head = bytes.at(offset, FRAME_HEADER_LEN, path)?;
        if head.len() < FRAME_HEADER_LEN {
            break;
        }
        // Cheap filter first: a frame names the position it sits at.
        if head[8..16] == position.get().to_le_bytes() {
            match bytes.frame(header, offset, position, options.max_record_bytes, path)? {
                Decoded::Frame(frame) => {
                    highest = highest.max(Some(frame.synced));
                    offset += frame.len as u64;
                    continue;
                }
                Decoded::Trailer(_) => highest = highest.max(Some(position)),
                Decoded::Zeroed | Decoded::Damaged(_) => {}
            }
        }
        offset += FRAME_ALIGN as u64;
    }
    Ok(highest)
}
