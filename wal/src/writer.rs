//! The log's worker: what writes and syncs the log, for whichever thread holds the writer
//! token (`group.rs`): a committer leading a batch, or the background writer thread.
//!
//! It seals each frame of a batch with the checksum seed of the segment it lands in, writes
//! the batch with one submission (write and fdatasync linked, on io_uring) and says how far
//! the log is written and durable. When the next frame does not fit in the current segment,
//! the part before it is written and synced, a new segment is created (header durable,
//! directory synced), the old one is sealed (a seal trailer, synced), and the rest goes
//! there: a segment's frames always end where the next segment begins, and a sealed
//! segment always has a successor. Once the open segment is half full, or as soon as it is
//! started by a rotation, the writer asks for a spare segment to be made ahead
//! (`segments.rs`), so that the rotation writes a header rather than a whole preallocated
//! segment while appenders wait.
//!
//! Every frame is stamped with the end of what was durable when its batch was written
//! (`format.rs`, "What a frame proves"), so recovery can tell a torn write from damage to
//! synced data.
//!
//! Every write also keeps the segment's frontier slots (`format.rs`, "Frontier slots"), so
//! that recovery reads only up to a bound near where the writer got: [`Frontier`] holds
//! the rules. A round that would write past the frontier last written first writes a slot
//! naming base + `S` (the base being the highest frontier known durable), into the slot
//! that does not hold the base, with the data and in the same submission (write, slot,
//! fdatasync, linked on io_uring): no extra sync. A write that would reach past base + `S`
//! is split, each part's round synced before the next passes it (a step: only batches
//! larger than `S`, or a `Buffered` log's writes that outrun its syncs, take one).
//!
//! Under `Buffered` the log's syncs are detached ([`DetachedSync`], run by the syncer
//! thread, `group.rs`) and start as soon as a slot is written, so that they complete
//! while the writer writes on within the step; each slot's step is sized to about a
//! quarter second of the rate the log wrote the step before ([`FRONTIER_STEP_RUNWAY`]),
//! so that a slow sync (80-150 ms seen) does not make the
//! writer stop at the frontier. Under `Sync` every slot is synced in its own round, and
//! the step stays the smallest. A close trailer is
//! written only when no slot write is unsynced and none is needed, so that a log that ends
//! in one has durable slots.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{
    encode_trailer, highest_frontier, seal_frame, FrontierSlot, SegmentHeader, Slot, Trailer,
    FRAME_HEADER_LEN, FRONTIER_SLOT_OFFSETS, FRONTIER_STEP, FRONTIER_STEP_MAX, SEGMENT_HEADER_LEN,
    SLOT_SECTOR_LEN, TRAILER_LEN,
};
use crate::group::{Batch, Done, Work, Worker};
use crate::io::{write_round, write_zeros, LogFile};
use crate::segments::Segments;
use crate::sync::{AtomicU64, Ordering};
use crate::{Durability, LogPosition};

/// The longest a batch waits for committers to join it under `Durability::Sync`.
pub(crate) const GATHER_MAX: Duration = Duration::from_micros(500);
/// The longest round in which a `Buffered` log's background writer gathers appends before
/// it writes them (a quarter of the sync interval, if that is shorter): at most a thousand
/// wake-ups of that thread a second, however many commits.
pub(crate) const BUFFERED_ROUND_MAX: Duration = Duration::from_millis(1);
/// A log whose syncs are detached gives a frontier slot the step it writes in this long, at
/// the rate it wrote the step before (within [`FRONTIER_STEP`]..=[`FRONTIER_STEP_MAX`]):
/// runway for the writes made while the slot's sync is in flight. The slowest syncs
/// measured on a busy virtual disk took 80-150 ms.
const FRONTIER_STEP_RUNWAY: Duration = Duration::from_millis(250);

/// The open segment and what writes to it.
#[derive(Debug)]
pub(crate) struct Writer {
    /// What it shares with the log: the directory, backend, options, segment list and
    /// counters (not the group commit, which holds this writer).
    segments: Arc<Segments>,
    file: Box<dyn LogFile>,
    segment: SegmentHeader,
    /// The end of what is known durable.
    durable: LogPosition,
    /// The end of the furthest write attempted into the current segment (a file offset).
    attempted: u64,
    /// Whether the spare for the next rotation was asked for during this segment.
    spare_asked: bool,
    /// The current segment's frontier slots.
    frontier: Frontier,
    /// Under `Buffered`: the current segment opened a second time, for detached syncs
    /// (see [`DetachedSync`]).
    sync_file: Option<Arc<SyncFile>>,
    /// The end of what the detached syncs made durable, set by the syncer thread as each
    /// completes, before the log acknowledges anything by it: what a failed write voids
    /// ([`Writer::void_unsynced`]) starts past it even when the writer has yet to be told
    /// of the sync ([`Worker::detached_synced`]), so that no acknowledged record is zeroed.
    detached_durable: Arc<AtomicU64>,
}

/// The frontier slots of the segment being written, and the rules that keep property P
/// (`format.rs`, "Frontier slots").
#[derive(Debug)]
struct Frontier {
    /// The segment's number.
    segment: u64,
    /// The highest frontier known durable: its slot written, then synced. For a segment
    /// opened with no valid slot, the offset from which recovery found only zeroes (all it
    /// wrote lies below it; if the first slot write is lost too, recovery reads the whole
    /// segment again).
    base: u64,
    /// The step of the slot that holds `base` ([`FRONTIER_STEP`] if none does).
    base_step: u64,
    /// The slot that holds `base`, if one does.
    base_slot: Option<usize>,
    /// The frontier the latest slot write named, at least `base`: no byte is written at or
    /// past it.
    written: u64,
    /// The step the latest slot write carried.
    written_step: u64,
    /// The slot written since the last completed sync, if any.
    pending: Option<usize>,
    /// The sequence number of the latest slot written.
    sequence: u64,
    /// When the latest slot was written, and the frontier the writes then passed: the
    /// rate the next slot's step is sized by.
    last_slot: Option<(Instant, u64)>,
    /// Whether slots' steps follow the write rate (a log whose syncs are detached, so whose
    /// writes go on while a slot's sync is in flight); else every slot takes the smallest.
    runway: bool,
    /// The step the segment's first slot write carries: the one the previous segment's
    /// writes had reached.
    first_step: u64,
    /// The segment's size: no frontier is past it.
    size: u64,
}

/// A segment opened a second time, for detached syncs, and its path (for their errors).
#[derive(Debug)]
pub(crate) struct SyncFile {
    file: Box<dyn LogFile>,
    path: std::path::PathBuf,
}

/// A sync of the segment being written, run by the log's syncer thread while the writer
/// goes on writing (`group.rs`, [`Worker::detach_sync`]): the file, opened a second time
/// for it, and the slot the sync makes the base.
#[derive(Debug)]
pub(crate) struct DetachedSync {
    file: Arc<SyncFile>,
    segment: u64,
    /// The frontier the latest slot write named when the sync was asked for, its step and
    /// slot, if one is pending.
    slot: Option<(u64, u64, usize)>,
    /// What is durable once it completes.
    end: LogPosition,
    /// The writer's [`Writer::detached_durable`], raised to `end` once it completes.
    durable: Arc<AtomicU64>,
}

impl Frontier {
    /// The frontier of `segment`, whose slots are `slots` (as read at open, or as its
    /// creation wrote them, durable either way), written up to file offset `end`; its
    /// slots' steps follow the write rate if `runway`, starting at `first_step`.
    fn new(
        segment: &SegmentHeader,
        slots: &[Slot; 2],
        end: u64,
        runway: bool,
        first_step: u64,
    ) -> Frontier {
        let sequence = slots.iter().filter_map(|slot| slot.valid()).map(|s| s.sequence).max();
        let highest = highest_frontier(slots);
        let base_slot = highest.and_then(|high| slots.iter().position(|s| s.valid() == Some(high)));
        let base = highest.map_or(end, |high| high.frontier);
        let base_step = highest.map_or(FRONTIER_STEP, |high| high.step);
        Frontier {
            segment: segment.number,
            base,
            base_step,
            base_slot,
            written: base,
            written_step: base_step,
            pending: None,
            sequence: sequence.unwrap_or(0),
            last_slot: None,
            runway,
            first_step,
            size: segment.size,
        }
    }

    /// The furthest a round may write before the next sync: base + the base's step,
    /// within the segment.
    fn reach(&self) -> u64 {
        self.base.saturating_add(self.base_step).min(self.size)
    }

    /// The step for a slot written `now`: with `runway`, what the log writes in
    /// [`FRONTIER_STEP_RUNWAY`] at the rate it passed the last step (`first_step` for the
    /// segment's first slot), within [`FRONTIER_STEP`]..=[`FRONTIER_STEP_MAX`]; else the
    /// smallest, since every round that writes a slot syncs it before the next round, and
    /// the step only bounds what recovery reads.
    fn next_step(&self, now: Instant) -> u64 {
        if !self.runway {
            return FRONTIER_STEP;
        }
        let Some((at, from)) = self.last_slot else { return self.first_step };
        let bytes = u128::from(self.written.saturating_sub(from));
        let elapsed = now.saturating_duration_since(at).as_nanos().max(1);
        let step = bytes.saturating_mul(FRONTIER_STEP_RUNWAY.as_nanos()) / elapsed;
        u64::try_from(step).unwrap_or(u64::MAX).clamp(FRONTIER_STEP, FRONTIER_STEP_MAX)
    }

    /// The slot (its offset and sector) a round writing up to `end` (at most
    /// [`Frontier::reach`]) must write with its data: none while `end` is within the
    /// frontier last written; else the slot that does not hold the base, naming the reach.
    fn slot_for(
        &mut self,
        segment: &SegmentHeader,
        end: u64,
    ) -> Option<(u64, [u8; SLOT_SECTOR_LEN])> {
        if end <= self.written {
            return None;
        }
        let frontier = self.reach();
        debug_assert!(end <= frontier, "a round stays within base + S");
        let now = Instant::now();
        let step = self.next_step(now);
        let index = self.base_slot.map_or(0, |base| 1 - base);
        self.sequence = self.sequence.saturating_add(1);
        self.last_slot = Some((now, self.written));
        self.written = frontier;
        self.written_step = step;
        self.pending = Some(index);
        let slot = FrontierSlot { sequence: self.sequence, frontier, step };
        Some((FRONTIER_SLOT_OFFSETS[index], segment.encode_slot(slot)))
    }

    /// A sync completed: every slot write issued is durable, the latest is the base.
    fn synced(&mut self) {
        if let Some(index) = self.pending.take() {
            self.base_slot = Some(index);
        }
        self.base = self.written;
        self.base_step = self.written_step;
    }

    /// A detached sync completed: the slot pending when it was asked for, if any, is
    /// durable. A sync of another segment, or one a later sync of the writer's own
    /// overtook, changes nothing.
    fn detached_synced(&mut self, sync: &DetachedSync) {
        let Some((frontier, step, index)) = sync.slot else { return };
        if sync.segment != self.segment || frontier <= self.base {
            return;
        }
        // No later slot can have been written: passing `frontier` takes it as the base.
        debug_assert_eq!((self.written, self.pending), (frontier, Some(index)));
        self.base = frontier;
        self.base_step = step;
        self.base_slot = Some(index);
        self.pending = None;
    }
}

impl Worker for Writer {
    type Detached = DetachedSync;

    fn perform(&mut self, work: Work) -> Result<Done> {
        let outcome = match work {
            Work::Write { batch, sync } => self.write(batch, sync),
            Work::Sync { end } => match self.file.sync_data() {
                Ok(()) => {
                    self.frontier.synced();
                    self.segments.stats.fsync();
                    Ok(Done { written: end, durable: Some(end), buffer: None })
                }
                Err(error) => Err(self.error("fdatasync", error)),
            },
        };
        match &outcome {
            Ok(done) => self.durable = done.durable.unwrap_or(self.durable).max(self.durable),
            Err(_) => self.void_unsynced(),
        }
        outcome
    }

    fn detach_sync(&mut self, end: LogPosition) -> Option<DetachedSync> {
        let frontier = &self.frontier;
        Some(DetachedSync {
            file: Arc::clone(self.sync_file.as_ref()?),
            segment: self.segment.number,
            slot: frontier.pending.map(|index| (frontier.written, frontier.written_step, index)),
            end,
            durable: Arc::clone(&self.detached_durable),
        })
    }

    fn run_detached(sync: &DetachedSync) -> Result<()> {
        let SyncFile { file, path } = &*sync.file;
        file.sync_data_alone().map_err(|e| Error::io("fdatasync", path, e))?;
        sync.durable.fetch_max(sync.end.get(), Ordering::SeqCst);
        Ok(())
    }

    fn detached_synced(&mut self, sync: &DetachedSync) {
        self.frontier.detached_synced(sync);
        self.durable = self.durable.max(sync.end);
        self.segments.stats.fsync();
    }

    fn abandon(&mut self) {
        self.void_unsynced();
    }

    fn sync_wanted(&self) -> bool {
        self.frontier.pending.is_some()
    }
}

impl Writer {
    /// The writer of `segment`, open as `file`, with its frontier slots `slots` durable,
    /// whose log is durable up to `durable`.
    ///
    /// # Errors
    /// Under `Buffered`, opening the segment a second time for detached syncs failed.
    pub(crate) fn new(
        segments: Arc<Segments>,
        file: Box<dyn LogFile>,
        segment: SegmentHeader,
        slots: &[Slot; 2],
        durable: LogPosition,
    ) -> Result<Writer> {
        let attempted = SEGMENT_HEADER_LEN
            + (durable.max(segment.first_position).get() - segment.first_position.get());
        let runway = matches!(segments.options.durability, Durability::Buffered { .. });
        let frontier = Frontier::new(&segment, slots, attempted, runway, FRONTIER_STEP);
        let mut writer = Writer {
            segments,
            file,
            segment,
            durable,
            attempted,
            spare_asked: false,
            frontier,
            sync_file: None,
            detached_durable: Arc::new(AtomicU64::new(0)),
        };
        writer.sync_file = writer.open_sync_file()?;
        Ok(writer)
    }

    /// Under `Buffered`, the current segment opened a second time, for detached syncs:
    /// opened before anything is written to it, so that its syncs report every write-back
    /// error of what is written after (Linux reports such an error once to each open file,
    /// so a sync on a file shared with the writer's own syncs could miss one).
    fn open_sync_file(&self) -> Result<Option<Arc<SyncFile>>> {
        if !self.frontier.runway {
            return Ok(None);
        }
        let path = self.path();
        let file = self.segments.io.open(&path, false, self.segments.options.open_flags);
        let file = file.map_err(|e| Error::io("open segment for syncs", &path, e))?;
        Ok(Some(Arc::new(SyncFile { file, path })))
    }

    /// The current segment's path.
    fn path(&self) -> std::path::PathBuf {
        self.segments.dir.join(crate::format::segment_file_name(self.segment.first_position))
    }

    /// After a failed write or sync (the log then fails): overwrites with zeros, and
    /// syncs, what was written into the segment since the last successful sync, so that a
    /// reopen does not find records that were never acknowledged (the reader stops at a
    /// zeroed region). Best effort: if this fails too, a reopen may find them (they were
    /// never acknowledged, so keeping them breaks no promise), or a torn tail to cut.
    fn void_unsynced(&mut self) {
        let detached = LogPosition::new(self.detached_durable.load(Ordering::SeqCst));
        self.durable = self.durable.max(detached);
        let from = self.offset_of(self.durable.max(self.segment.first_position));
        let len = self.attempted.saturating_sub(from);
        if len == 0 {
            return;
        }
        if write_zeros(self.file.as_ref(), from, from + len).is_ok() {
            let _ = self.file.sync_data();
        }
    }

    fn write(&mut self, mut batch: Batch, sync: bool) -> Result<Done> {
        let end = batch.end();
        let mut from = 0;
        let mut at = 0;
        let mut position = batch.start;
        while at < batch.bytes.len() {
            let Some(payload_len) = frame_payload_len(&batch.bytes[at..]) else {
                return Err(Error::InvalidOptions("a queued frame is malformed".into()));
            };
            let len = crate::format::frame_len(payload_len);
            if self.offset_of(position) + len as u64 > self.records_end() {
                // The frame does not fit: finish this segment, durably, and start the next.
                self.write_slice(&batch.bytes[from..at], batch_position(&batch, from), true)?;
                // Synced: what a failed rotation voids starts here, and later frames say so.
                self.durable = position;
                self.rotate(position)?;
                from = at;
            }
            let sealed =
                seal_frame(&mut batch.bytes[at..], self.segment.frame_seed(), self.durable);
            debug_assert_eq!(sealed, Some(len));
            at += len;
            position = LogPosition::new(position.get() + len as u64);
        }
        self.write_slice(&batch.bytes[from..], batch_position(&batch, from), sync)?;
        self.segments.stats.batch();
        if !self.spare_asked && self.attempted > self.segment.size / 2 {
            self.spare_asked = true;
            self.segments.prepare_spare();
        }
        Ok(Done { written: end, durable: sync.then_some(end), buffer: Some(batch.bytes) })
    }

    /// Writes `bytes`, the frames from `position` on, into the current segment.
    fn write_slice(&mut self, bytes: &[u8], position: LogPosition, sync: bool) -> Result<()> {
        if bytes.is_empty() && !sync {
            return Ok(());
        }
        let offset = self.offset_of(position);
        debug_assert!(offset + bytes.len() as u64 <= self.segment.size, "a batch fits its segment");
        self.put(bytes, offset, sync, if sync { "write and fdatasync" } else { "write" })
    }

    /// Writes `bytes` at file `offset` of the current segment, and syncs if `sync`, within
    /// the frontier: a part that would pass base + `S` is preceded by a synced round (a
    /// step) up to there.
    fn put(&mut self, bytes: &[u8], offset: u64, sync: bool, op: &'static str) -> Result<()> {
        let end = offset + bytes.len() as u64;
        let mut at = offset;
        loop {
            let reach = self.frontier.reach();
            let rest = &bytes[usize::try_from(at - offset).unwrap_or(bytes.len())..];
            if end <= reach {
                return self.round(rest, at, sync, op);
            }
            // A step: every byte up to the reach, and the slot naming it, made durable
            // before any byte passes it. (Records recovered past the reach, which only a
            // lost slot write and a crash together leave, take empty steps up to them.)
            let part = usize::try_from(reach.saturating_sub(at)).unwrap_or(0).min(rest.len());
            let from = at.min(reach);
            self.round(&rest[..part], from, true, "write and fdatasync up to the frontier")?;
            self.segments.stats.frontier_step();
            at += part as u64;
        }
    }

    /// One round: `bytes` at file `offset` (within [`Frontier::reach`]), the slot it needs,
    /// and an fdatasync if `sync`.
    fn round(&mut self, bytes: &[u8], offset: u64, sync: bool, op: &'static str) -> Result<()> {
        let end = offset + bytes.len() as u64;
        if !bytes.is_empty() {
            self.attempted = self.attempted.max(end);
        }
        let slot = self.frontier.slot_for(&self.segment, end);
        // An O_DSYNC file makes each write durable before it returns: no fdatasync to add.
        let dsync = self.segments.options.open_flags.dsync;
        let fdatasync = sync && !dsync;
        let slot_write = slot.as_ref().map(|(at, sector)| (&sector[..], *at));
        write_round(self.file.as_ref(), &[IoSlice::new(bytes)], offset, slot_write, fdatasync)
            .map_err(|e| self.error(op, e))?;
        if slot.is_some() {
            self.segments.stats.frontier_slot();
        }
        if sync || dsync {
            self.frontier.synced();
        }
        if sync {
            self.segments.stats.fsync();
        }
        Ok(())
    }

    /// Makes the frontier cover `end` with no slot write unsynced: slot-only rounds,
    /// synced, until it does.
    fn settle(&mut self, end: u64) -> Result<()> {
        let end = end.min(self.segment.size);
        while self.frontier.written < end || self.frontier.pending.is_some() {
            let target = end.min(self.frontier.reach());
            self.round(&[], target, true, "write and fdatasync a frontier slot")?;
        }
        Ok(())
    }

    /// The end of the room for record frames in the current segment: the rest is kept for
    /// its trailer.
    fn records_end(&self) -> u64 {
        self.segment.size - TRAILER_LEN as u64
    }

    /// Writes `trailer` where the current segment's records end, at `end`, and syncs it.
    fn write_trailer(&mut self, trailer: Trailer, end: LogPosition) -> Result<()> {
        let bytes = encode_trailer(trailer, end, self.segment.frame_seed());
        let offset = self.offset_of(end);
        debug_assert!(offset + bytes.len() as u64 <= self.segment.size, "room kept for it");
        if trailer == Trailer::Close {
            // A log that ends in a close trailer has durable slots: recovery trusts them
            // without a sync of its own (`log.rs`).
            self.settle(offset + bytes.len() as u64)?;
        }
        self.put(&bytes, offset, true, "write and fdatasync a trailer")
    }

    /// After a clean close, with everything up to `end` durable: writes a close trailer,
    /// so that recovery can prove every record of the log was synced. Best effort: without
    /// it the last batch is only unproved, never lost.
    pub(crate) fn close_trailer(&mut self, end: LogPosition) {
        if self.durable == end {
            let _ = self.write_trailer(Trailer::Close, end);
        }
    }

    /// Starts a new segment whose first frame is at `first` (everything before it durable:
    /// `self.durable` is `first`), and seals the current one.
    fn rotate(&mut self, first: LogPosition) -> Result<()> {
        let number = self.segment.number.checked_add(1);
        let number = number.ok_or(Error::Exhausted { what: "segment numbers" })?;
        let header = SegmentHeader {
            number,
            first_position: first,
            size: self.segments.options.segment_size,
        };
        if first.checked_add(header.capacity()).is_none() {
            return Err(Error::Exhausted { what: "positions" });
        }
        let (meta, file) = self.segments.create_from_spare(header)?;
        // Sealed only once the successor is durable, and before anything is written to it.
        self.write_trailer(Trailer::Seal, first)?;
        // The new segment's first slot takes the step this one's writes had reached.
        let (runway, first_step) = (self.frontier.runway, self.frontier.written_step);
        self.frontier = Frontier::new(&header, &meta.slots, SEGMENT_HEADER_LEN, runway, first_step);
        self.segments.add(meta);
        self.segments.stats.segment_created();
        self.file = file;
        self.segment = header;
        self.attempted = SEGMENT_HEADER_LEN;
        self.sync_file = self.open_sync_file()?;
        // A log that fills whole segments asks for the next spare at once: made from the
        // middle of the segment, it was not ready for a log writing 100 MB/s, and the
        // rotation waited 46-97 ms for it.
        self.spare_asked = true;
        self.segments.prepare_spare();
        Ok(())
    }

    fn offset_of(&self, position: LogPosition) -> u64 {
        SEGMENT_HEADER_LEN + (position.get() - self.segment.first_position.get())
    }

    fn error(&self, op: &'static str, error: std::io::Error) -> Error {
        Error::io(op, self.path(), error)
    }
}

/// The payload length in the header of the frame that starts `bytes`.
fn frame_payload_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..FRAME_HEADER_LEN)?;
    let mut word = [0; 4];
    word.copy_from_slice(&header[..4]);
    usize::try_from(u32::from_le_bytes(word)).ok()
}

fn batch_position(batch: &Batch, offset: usize) -> LogPosition {
    LogPosition::new(batch.start.get() + offset as u64)
}
