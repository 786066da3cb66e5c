//! [`RunStatus`] and the lifecycle it follows (docs/architecture.md §9).

use std::fmt;

/// Where a run is in its lifecycle; stored as one byte ([`RunStatus::byte`]).
///
/// The moves allowed ([`RunStatus::can_move_to`]):
///
/// | from | to |
/// |---|---|
/// | Active | Completed, Failed, Cancelled, Paused, Archived |
/// | Paused | Active, Cancelled, Archived |
/// | Completed, Failed, Cancelled | Archived |
/// | Archived | nothing: final |
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum RunStatus {
    /// Running: the status of a new run.
    Active = 1,
    /// Suspended; it may become active again.
    Paused = 2,
    /// Finished successfully.
    Completed = 3,
    /// Finished with an error (see [`crate::run_index::RunView::error`]).
    Failed = 4,
    /// Stopped before it finished.
    Cancelled = 5,
    /// Put away: final. Its data is kept (archiving is a soft delete).
    Archived = 6,
}

impl RunStatus {
    /// Every status, in the order of their bytes.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Active,
        RunStatus::Paused,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Archived,
    ];

    /// The status's byte, in stored records and in index keys.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// The status a stored byte names, if any.
    pub const fn from_byte(byte: u8) -> Option<RunStatus> {
        Some(match byte {
            1 => RunStatus::Active,
            2 => RunStatus::Paused,
            3 => RunStatus::Completed,
            4 => RunStatus::Failed,
            5 => RunStatus::Cancelled,
            6 => RunStatus::Archived,
            _ => return None,
        })
    }

    /// The status's name, as errors print it.
    pub const fn name(self) -> &'static str {
        match self {
            RunStatus::Active => "Active",
            RunStatus::Paused => "Paused",
            RunStatus::Completed => "Completed",
            RunStatus::Failed => "Failed",
            RunStatus::Cancelled => "Cancelled",
            RunStatus::Archived => "Archived",
        }
    }

    /// Whether the run is done: completed, failed, cancelled or archived. A finished run
    /// never becomes active again.
    pub const fn is_finished(self) -> bool {
        match self {
            RunStatus::Active | RunStatus::Paused => false,
            RunStatus::Completed
            | RunStatus::Failed
            | RunStatus::Cancelled
            | RunStatus::Archived => true,
        }
    }

    /// Whether a run may move from `self` to `to`: the one place the lifecycle is written
    /// down. Active -> Completed, Failed, Cancelled, Paused or Archived; Paused -> Active,
    /// Cancelled or Archived; Completed, Failed, Cancelled -> Archived; nothing else (no move
    /// to the same status, nothing finished comes back, Archived is final).
    ///
    /// Every arm names its statuses (there is no wildcard), so a status added later does
    /// not compile until its moves are decided here.
    ///
    /// ```
    /// use inmem_primitives::run_index::RunStatus;
    ///
    /// assert!(RunStatus::Paused.can_move_to(RunStatus::Active));
    /// assert!(!RunStatus::Completed.can_move_to(RunStatus::Active));
    /// assert!(!RunStatus::Active.can_move_to(RunStatus::Active));
    /// ```
    pub const fn can_move_to(self, to: RunStatus) -> bool {
        use RunStatus::{Active, Archived, Cancelled, Completed, Failed, Paused};
        match (self, to) {
            (Active, Completed | Failed | Cancelled | Paused | Archived) => true,
            (Active, Active) => false,
            (Paused, Active | Cancelled | Archived) => true,
            (Paused, Paused | Completed | Failed) => false,
            (Completed | Failed | Cancelled, Archived) => true,
            (Completed | Failed | Cancelled, Active | Paused | Completed | Failed | Cancelled) => {
                false
            }
            (Archived, Active | Paused | Completed | Failed | Cancelled | Archived) => false,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_byte() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::from_byte(status.byte()), Some(status));
        }
        let known = (0..=u8::MAX).filter(|&byte| RunStatus::from_byte(byte).is_some()).count();
        assert_eq!(known, RunStatus::ALL.len());
    }
}
