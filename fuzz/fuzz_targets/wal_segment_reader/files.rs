//! The files of `wal_segment_reader`: a log written as the log writer lays it out (with the
//! crate's own header and frame encoders), the input's mutations of it, and where the
//! first damaged byte lies.

use std::collections::BTreeMap;

use inmem_wal::format::{
    encode_frame, encode_trailer, frame_len, parse_segment_file_name, segment_file_name, FrameKind,
    FrontierSlot, SegmentHeader, Trailer, FRAME_ALIGN, FRONTIER_SLOT_OFFSETS, SEGMENT_HEADER_LEN,
    TRAILER_LEN,
};
use inmem_wal::LogPosition;

use crate::input::{Config, Mutation, NameChoice, Place, RecordSpec, Records};

/// The files of a log directory: name to content.
pub(crate) type Files = BTreeMap<String, Vec<u8>>;

/// A frame as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrittenFrame {
    /// The index of its segment in [`Written::segments`].
    pub(crate) segment: usize,
    /// Its file offset.
    pub(crate) offset: usize,
    pub(crate) position: LogPosition,
    pub(crate) kind: FrameKind,
    pub(crate) payload: Vec<u8>,
}

impl WrittenFrame {
    /// Where the frame ends in its file.
    pub(crate) fn end(&self) -> usize {
        self.offset + frame_len(self.payload.len())
    }
}

/// The log as written, before any damage.
#[derive(Debug)]
pub(crate) struct Written {
    /// The segment file names, oldest first.
    pub(crate) segments: Vec<String>,
    /// Every frame, in log order.
    pub(crate) frames: Vec<WrittenFrame>,
    /// The files.
    pub(crate) files: Files,
}

/// The payload of record `index`: recognisable, and different from its neighbours'.
fn payload(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as u8).wrapping_mul(31) ^ (i as u8)).collect()
}

/// Writes the records into one segment, or two if `config.spill` and the first fills up,
/// as the writer does when each record is its own synced batch: every frame stamped with
/// its own position (everything before it synced), a frame that does not fit before the
/// room kept for the trailer starts the next segment, and the full one is sealed. No close
/// trailer: the image a crash after the last sync leaves.
pub(crate) fn write_log(config: &Config, records: &Records) -> Written {
    let size = config.segment_size();
    let mut header = SegmentHeader {
        number: config.number.number(),
        first_position: config.first_position(),
        size,
    };
    let mut segments = vec![segment_file_name(header.first_position)];
    let mut contents = vec![header.encode()];
    let mut frames: Vec<WrittenFrame> = Vec::new();
    let mut position = header.first_position;
    for index in 0..records.count {
        let record = records.spec(index);
        let payload = payload(index, record.len(config.record_limit()));
        let len = frame_len(payload.len());
        let Some(next) = position.checked_add(len as u64) else { break };
        if contents.last().map_or(0, Vec::len) + len > size as usize - TRAILER_LEN {
            let Some(number) = header.number.checked_add(1) else { break };
            if !config.spill || segments.len() == 2 {
                break;
            }
            if let Some(full) = contents.last_mut() {
                full.extend_from_slice(&encode_trailer(Trailer::Seal, position, header.number));
            }
            header = SegmentHeader { number, first_position: position, size };
            segments.push(segment_file_name(position));
            contents.push(header.encode());
        }
        let segment = segments.len() - 1;
        let Some(bytes) = contents.last_mut() else { break };
        let offset = bytes.len();
        encode_frame(bytes, record.kind(), position, &payload, header.number, position);
        frames.push(WrittenFrame { segment, offset, position, kind: record.kind(), payload });
        position = next;
    }
    for bytes in &mut contents {
        bytes.resize(size as usize, 0);
    }
    let files = segments.iter().cloned().zip(contents).collect();
    Written { segments, frames, files }
}

/// The name of file `index` (modulo their count), if there is a file.
fn nth_name(files: &Files, index: u8) -> Option<String> {
    let count = files.len();
    (count > 0).then(|| files.keys().nth(usize::from(index) % count).cloned()).flatten()
}

/// The file and offset a place stands for, if its file exists.
fn resolve(files: &Files, written: &Written, place: Place) -> Option<(String, usize)> {
    let (name, offset) = match place {
        Place::Frame { index, delta } => {
            let frame = written.frames.get(usize::from(index) % written.frames.len().max(1))?;
            let name = written.segments[frame.segment].clone();
            (name, frame.offset.saturating_add_signed(isize::from(delta)))
        }
        Place::Offset { file, offset } => {
            let name = nth_name(files, file)?;
            let len = files.get(&name)?.len();
            (name, usize::from(offset) % (len + 1))
        }
        Place::FromEnd { file, back } => {
            let name = nth_name(files, file)?;
            let len = files.get(&name)?.len();
            (name, len.saturating_sub(usize::from(back)))
        }
    };
    let len = files.get(&name)?.len();
    Some((name, offset.min(len)))
}

/// Writes `bytes` at `offset` of `file`, extending it if needed.
fn write_at(file: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    let end = offset + bytes.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[offset..end].copy_from_slice(bytes);
}

/// The name a name choice stands for.
fn name_of(files: &Files, choice: NameChoice) -> String {
    let position = match choice {
        NameChoice::Near { file, delta } => {
            let first = nth_name(files, file)
                .and_then(|name| parse_segment_file_name(&name))
                .map_or(0, LogPosition::get);
            first.saturating_add_signed(i64::from(delta))
        }
        NameChoice::Raw(position) => position,
    };
    segment_file_name(LogPosition::new(position))
}

/// The header at the start of `file`, if it has a valid one.
fn header_of(file: &[u8]) -> Option<SegmentHeader> {
    SegmentHeader::decode(file).ok()
}

/// Applies one mutation to `files`.
pub(crate) fn mutate(files: &mut Files, written: &Written, config: &Config, mutation: &Mutation) {
    match mutation {
        Mutation::Truncate(place) => {
            if let Some((name, offset)) = resolve(files, written, *place) {
                files.entry(name).and_modify(|file| file.truncate(offset));
            }
        }
        Mutation::Extend { file, len, fill } => {
            let len = usize::from(*len) % (config.segment_size() as usize + 1);
            if let Some(name) = nth_name(files, *file) {
                files.entry(name).and_modify(|file| file.resize(file.len() + len, *fill));
            }
        }
        Mutation::FlipBit { at, bit } => {
            if let Some((name, offset)) = resolve(files, written, *at) {
                files.entry(name).and_modify(|file| match file.get_mut(offset) {
                    Some(byte) => *byte ^= 1 << (bit % 8),
                    None => file.push(1 << (bit % 8)),
                });
            }
        }
        Mutation::Overwrite { at, bytes } => {
            if let Some((name, offset)) = resolve(files, written, *at) {
                files.entry(name).and_modify(|file| write_at(file, offset, &bytes.0));
            }
        }
        Mutation::Zero { at, len } => {
            if let Some((name, offset)) = resolve(files, written, *at) {
                files.entry(name).and_modify(|file| {
                    let end = offset.saturating_add(usize::from(*len)).min(file.len());
                    file[offset..end].fill(0);
                });
            }
        }
        Mutation::CopyFrame { frame, to } => {
            let Some(frame) = written.frames.get(usize::from(*frame) % written.frames.len().max(1))
            else {
                return;
            };
            let source = &written.files[&written.segments[frame.segment]];
            let bytes = source[frame.offset..frame.end()].to_vec();
            if let Some((name, offset)) = resolve(files, written, *to) {
                let offset = offset - offset % FRAME_ALIGN;
                files.entry(name).and_modify(|file| write_at(file, offset, &bytes));
            }
        }
        Mutation::ForgeFrame { at, kind, len, position, seed } => {
            let Some((name, offset)) = resolve(files, written, *at) else { return };
            let offset = offset - offset % FRAME_ALIGN;
            let Some(file) = files.get_mut(&name) else { return };
            let header = header_of(file);
            let sits_at = header.and_then(|h| h.position_at(offset as u64)).map_or(0, |p| p.get());
            let position = LogPosition::new(position.unwrap_or(sits_at));
            let seed = seed.unwrap_or(header.map_or(0, |h| h.frame_seed()));
            let kind = FrameKind::new(*kind).unwrap_or(FrameKind::RECORD);
            let spec = RecordSpec { kind: kind.code(), len: *len };
            let mut frame = Vec::new();
            encode_frame(
                &mut frame,
                kind,
                position,
                &payload(offset, spec.len(config.record_limit())),
                seed,
                position,
            );
            write_at(file, offset, &frame);
        }
        Mutation::RewriteHeader { file, number, first, size } => {
            let Some(name) = nth_name(files, *file) else { return };
            let Some(bytes) = files.get_mut(&name) else { return };
            let old = header_of(bytes);
            let header = SegmentHeader {
                number: number.or(old.map(|h| h.number)).unwrap_or(0),
                first_position: LogPosition::new(
                    first.or(old.map(|h| h.first_position.get())).unwrap_or(0),
                ),
                size: size.or(old.map(|h| h.size)).unwrap_or(0),
            };
            write_at(bytes, 0, &header.encode());
        }
        Mutation::Remove { file } => {
            if let Some(name) = nth_name(files, *file) {
                files.remove(&name);
            }
        }
        Mutation::Rename { file, to } => {
            let to = name_of(files, *to);
            if files.contains_key(&to) {
                return;
            }
            if let Some(bytes) = nth_name(files, *file).and_then(|name| files.remove(&name)) {
                files.insert(to, bytes);
            }
        }
        Mutation::AddSegment { name, header, file, number_delta, bytes } => {
            let name = name_of(files, *name);
            if files.contains_key(&name) {
                return;
            }
            let mut content = Vec::new();
            if *header {
                let number = nth_name(files, *file)
                    .and_then(|name| header_of(&files[&name]))
                    .map_or(1, |h| h.number)
                    .saturating_add_signed(i64::from(*number_delta));
                let first = parse_segment_file_name(&name).unwrap_or(LogPosition::ZERO);
                let size = config.segment_size();
                content = SegmentHeader { number, first_position: first, size }.encode();
                content.resize(size as usize, 0);
            }
            write_at(&mut content, SEGMENT_HEADER_LEN as usize * usize::from(*header), &bytes.0);
            files.insert(name, content);
        }
        Mutation::AddUnfinished { name, bytes } => {
            let name = format!("{}.tmp", name_of(files, *name));
            files.entry(name).or_insert_with(|| bytes.0.clone());
        }
        Mutation::WriteSlot { file, second, sequence, frontier, step } => {
            let Some(name) = nth_name(files, *file) else { return };
            let Some(bytes) = files.get_mut(&name) else { return };
            let header = header_of(bytes).unwrap_or(SegmentHeader {
                number: 0,
                first_position: LogPosition::ZERO,
                size: config.segment_size(),
            });
            let slot = FrontierSlot { sequence: *sequence, frontier: *frontier, step: *step };
            let offset = FRONTIER_SLOT_OFFSETS[usize::from(*second)] as usize;
            write_at(bytes, offset, &header.encode_slot(slot));
        }
    }
}

/// Where the first damaged byte lies, in log order: the index of a written segment and an
/// offset in it (`(segments, 0)` if nothing written was damaged). A segment that is gone,
/// renamed, or preceded by a segment file that was not written is damaged from its start;
/// a file cut shorter or made longer is damaged where its length changed.
pub(crate) fn first_damage(written: &Written, files: &Files) -> (usize, usize) {
    for (index, name) in written.segments.iter().enumerate() {
        let original = &written.files[name];
        let first = parse_segment_file_name(name);
        let stranger_before = files.keys().any(|other| {
            !written.files.contains_key(other)
                && parse_segment_file_name(other).is_some_and(|p| Some(p) < first)
        });
        let Some(now) = files.get(name).filter(|_| !stranger_before) else {
            return (index, 0);
        };
        let same = original.iter().zip(now).position(|(a, b)| a != b);
        if let Some(offset) = same {
            return (index, offset);
        }
        if now.len() != original.len() {
            return (index, now.len().min(original.len()));
        }
    }
    (written.segments.len(), 0)
}

/// The frames written entirely before the first damaged byte.
pub(crate) fn intact_frames<'w>(written: &'w Written, files: &Files) -> &'w [WrittenFrame] {
    let (segment, offset) = first_damage(written, files);
    let intact = written
        .frames
        .iter()
        .take_while(|f| f.segment < segment || (f.segment == segment && f.end() <= offset))
        .count();
    &written.frames[..intact]
}
