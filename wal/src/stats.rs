//! What the log counts: [`WalStats`], and the counters behind it that the log (appends)
//! and its writer (batches, syncs, segments) bump.

use crate::sync::{AtomicU64, Ordering};

/// Counters of a log since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalStats {
    /// Records appended.
    pub appends: u64,
    /// Bytes appended (frames, padding included).
    pub bytes: u64,
    /// Write batches.
    pub batches: u64,
    /// fdatasyncs of segment data.
    pub fsyncs: u64,
    /// Segments created.
    pub segments_created: u64,
    /// Of those, segments made from a spare prepared ahead (`segments.rs`), so that the
    /// rotation wrote only a header.
    pub segments_from_spare: u64,
    /// Frontier slots written (`format.rs`, "Frontier slots"): about one per
    /// `FRONTIER_STEP` bytes of log, each in the round of the data that passed the frontier.
    pub frontier_slots: u64,
    /// Steps: synced rounds a write took before passing base + `FRONTIER_STEP` (a batch
    /// larger than the step, or a `Buffered` log's unsynced writes reaching it).
    pub frontier_steps: u64,
}

/// The live counters of [`WalStats`], bumped `Relaxed`: each is a tally, ordering nothing.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    appends: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    segments_created: AtomicU64,
    segments_from_spare: AtomicU64,
    frontier_slots: AtomicU64,
    frontier_steps: AtomicU64,
}

impl Counters {
    /// An appended record whose frame is `frame_len` bytes long.
    pub(crate) fn append(&self, frame_len: u64) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(frame_len, Ordering::Relaxed);
    }

    /// A write batch.
    pub(crate) fn batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// An fdatasync (or a write made durable by `O_DSYNC`).
    pub(crate) fn fsync(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// A segment created by rotation.
    pub(crate) fn segment_created(&self) {
        self.segments_created.fetch_add(1, Ordering::Relaxed);
    }

    /// A segment made from the spare.
    pub(crate) fn spare_used(&self) {
        self.segments_from_spare.fetch_add(1, Ordering::Relaxed);
    }

    /// A frontier slot written.
    pub(crate) fn frontier_slot(&self) {
        self.frontier_slots.fetch_add(1, Ordering::Relaxed);
    }

    /// A step of the frontier: a synced round before a write passes base + `S`.
    pub(crate) fn frontier_step(&self) {
        self.frontier_steps.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> WalStats {
        WalStats {
            appends: self.appends.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            segments_created: self.segments_created.load(Ordering::Relaxed),
            segments_from_spare: self.segments_from_spare.load(Ordering::Relaxed),
            frontier_slots: self.frontier_slots.load(Ordering::Relaxed),
            frontier_steps: self.frontier_steps.load(Ordering::Relaxed),
        }
    }
}
