//! How a log is opened.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{frame_len, FRAME_ALIGN, SEGMENT_HEADER_LEN, SEGMENT_SIZE_MAX, TRAILER_LEN};
use crate::io::{BackendChoice, Io, OpenFlags, Preallocation};
use crate::LogPosition;

/// When an appended record counts as durable without a caller waiting for it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every batch the writer writes is fdatasync'd before the next one (group commit).
    #[default]
    Sync,
    /// Batches are written as they come and fdatasync'd at least every `interval`, at once
    /// when someone waits for a position ([`crate::Wal::wait_durable`]), and before more than
    /// [`WalOptions::max_queued_bytes`] would be written and unsynced (so that what a crash
    /// can tear stays within what recovery may cut as a torn tail).
    Buffered {
        /// The longest time a written record may stay unsynced.
        interval: Duration,
    },
}

/// What recovery does with a damaged log (the whole table: `docs/recovery.md`).
///
/// No mode deletes a byte it does not keep: what a cut removes is first copied to a
/// salvage file beside the segment (`<segment>.salvage-<offset>`), and segments set aside
/// are renamed (`.dropped`). A refused open changes nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cuts a torn tail: damage at the end of the newest segment that no valid frame
    /// proves was ever synced (see [`crate::format`]), within what one write batch could
    /// leave; any other damage is an error that names file and offset.
    #[default]
    TolerateTornTail,
    /// Stops at the first damage anywhere, keeps what came before, and sets the rest
    /// aside (the damaged segment's remaining bytes to a salvage file, later segments
    /// renamed with a `.dropped` suffix); reports what it set aside.
    PointInTime,
    /// Any anomaly, a torn tail or damage a checkpoint covers included, is an error.
    Strict,
}

impl std::fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecoveryMode::TolerateTornTail => "TolerateTornTail",
            RecoveryMode::PointInTime => "PointInTime",
            RecoveryMode::Strict => "Strict",
        })
    }
}

/// Options of [`crate::Wal::open`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Size of each segment file, header included (default 64 MiB, at most 1 GiB).
    pub segment_size: u64,
    /// Longest record payload accepted (default 16 MiB + 64 KiB, room for one value at the
    /// engine's default limit and its key); must fit in a segment.
    pub max_record_bytes: u64,
    /// Appenders wait while this many bytes are queued and not yet written (default 8 MiB).
    /// It also bounds one write batch, and so how much of the newest segment's tail recovery
    /// may cut.
    pub max_queued_bytes: u64,
    /// When records become durable (default [`Durability::Sync`]).
    pub durability: Durability,
    /// What recovery does with damage (default [`RecoveryMode::TolerateTornTail`]).
    pub recovery: RecoveryMode,
    /// The position below which something else (a database's checkpoint) holds everything
    /// the log held (default zero: nothing). Recovery takes it as proof that the log was
    /// synced that far; damage wholly below it loses nothing (reported; refused only by
    /// `Strict`), a log whose first segment starts after it misses a segment, and one that
    /// ends before it misses its newest.
    pub checkpointed: LogPosition,
    /// Which I/O backend to use (default [`BackendChoice::Auto`], the one measured faster
    /// for this writer, never failing for want of io_uring; [`BackendChoice::Uring`] is an
    /// error where the kernel refuses io_uring). [`crate::Wal::backend`] says which and why.
    pub backend: BackendChoice,
    /// How new segments reserve their space.
    pub preallocation: Preallocation,
    /// Flags segments are opened with for writing.
    pub open_flags: OpenFlags,
    /// A backend to use instead of `backend` (a fault-injecting one, in tests).
    pub io: Option<Arc<dyn Io>>,
    /// The longest a caller waiting for durability yields its CPU, looking for the write it
    /// waits on to complete, before it sleeps; it never yields longer than the last two
    /// writes would take (default 1 ms; zero: sleep at once). A yield runs whatever else is runnable
    /// first, so the spin costs only CPU time nothing else wants; it saves the wake-up of a
    /// sleeping thread, which on a virtual machine is often that of an idle vCPU too.
    pub wait_spin: Duration,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_size: 64 << 20,
            max_record_bytes: (16 << 20) + (64 << 10),
            max_queued_bytes: 8 << 20,
            durability: Durability::Sync,
            recovery: RecoveryMode::TolerateTornTail,
            checkpointed: LogPosition::ZERO,
            backend: BackendChoice::Auto,
            preallocation: Preallocation::default(),
            open_flags: OpenFlags::default(),
            io: None,
            wait_spin: Duration::from_millis(1),
        }
    }
}

impl WalOptions {
    /// Sets [`WalOptions::segment_size`].
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> WalOptions {
        self.segment_size = bytes;
        self
    }

    /// Sets [`WalOptions::max_record_bytes`].
    #[must_use]
    pub fn max_record_bytes(mut self, bytes: u64) -> WalOptions {
        self.max_record_bytes = bytes;
        self
    }

    /// Sets [`WalOptions::max_queued_bytes`].
    #[must_use]
    pub fn max_queued_bytes(mut self, bytes: u64) -> WalOptions {
        self.max_queued_bytes = bytes;
        self
    }

    /// Sets [`WalOptions::durability`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> WalOptions {
        self.durability = durability;
        self
    }

    /// Sets [`WalOptions::recovery`].
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> WalOptions {
        self.recovery = mode;
        self
    }

    /// Sets [`WalOptions::checkpointed`].
    #[must_use]
    pub fn checkpointed(mut self, position: LogPosition) -> WalOptions {
        self.checkpointed = position;
        self
    }

    /// Sets [`WalOptions::backend`].
    #[must_use]
    pub fn backend(mut self, choice: BackendChoice) -> WalOptions {
        self.backend = choice;
        self
    }

    /// Sets [`WalOptions::wait_spin`].
    #[must_use]
    pub fn wait_spin(mut self, max: Duration) -> WalOptions {
        self.wait_spin = max;
        self
    }

    /// Sets [`WalOptions::io`]: every byte goes through `io`.
    #[must_use]
    pub fn io(mut self, io: Arc<dyn Io>) -> WalOptions {
        self.io = Some(io);
        self
    }

    /// The longest frame, padding included.
    pub(crate) fn max_frame_len(&self) -> u64 {
        let unpadded = self.max_record_bytes.saturating_add(frame_len(0) as u64);
        unpadded.checked_next_multiple_of(FRAME_ALIGN as u64).unwrap_or(u64::MAX)
    }

    /// Checks that the options can work together.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.segment_size < 2 * SEGMENT_HEADER_LEN
            || self.segment_size % 4096 != 0
            || self.segment_size > SEGMENT_SIZE_MAX
        {
            return Err(Error::InvalidOptions(format!(
                "segment_size {} must be a multiple of 4096, at least {} and at most {}",
                self.segment_size,
                2 * SEGMENT_HEADER_LEN,
                SEGMENT_SIZE_MAX
            )));
        }
        if self.max_record_bytes > u64::from(u32::MAX)
            || self.max_frame_len() > self.segment_size - SEGMENT_HEADER_LEN - TRAILER_LEN as u64
        {
            return Err(Error::InvalidOptions(format!(
                "max_record_bytes {} does not fit in a segment of {} bytes",
                self.max_record_bytes, self.segment_size
            )));
        }
        if self.max_queued_bytes == 0 {
            return Err(Error::InvalidOptions("max_queued_bytes must not be 0".into()));
        }
        if let Durability::Buffered { interval } = self.durability {
            if interval.is_zero() {
                return Err(Error::InvalidOptions("a buffered interval must not be 0".into()));
            }
        }
        Ok(())
    }
}
