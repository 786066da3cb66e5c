//! The maintenance gate: at most one maintenance task (a collection pass, a slice of the
//! TTL reaper's or of a range delete's purge) runs at a time, whichever thread calls it
//! (the maintenance thread, or an application calling `collect_garbage` or `reap_expired`).
//!
//! Why: maintenance is work the foreground does not wait for, and each task wants a whole
//! core while it runs. Two at once (the maintenance thread collecting what an application's
//! `reap_expired` just tombstoned, say) take both cores of a small machine and leave the
//! committing thread to be descheduled, sometimes while a task holds the sequencer's
//! lock. Behind the gate, a second task sleeps until the first one's slice ends; a task
//! with more to do hands the gate over between slices ([`MaintenanceGate::hand_over`]),
//! so a long reap and the collector take turns rather than one starving the other.

use crate::sync::{unlock_fair, Mutex, MutexGuard};

/// See the module's documentation.
pub(crate) struct MaintenanceGate {
    lock: Mutex<()>,
}

/// One maintenance task's turn at the gate, until dropped or handed over.
pub(crate) struct GateTurn<'g>(MutexGuard<'g, ()>);

impl MaintenanceGate {
    pub(crate) fn new() -> MaintenanceGate {
        MaintenanceGate { lock: Mutex::new(()) }
    }

    /// Waits for the gate (sleeping, not spinning, while another task's slice runs).
    pub(crate) fn enter(&self) -> GateTurn<'_> {
        GateTurn(self.lock.lock())
    }
}

impl GateTurn<'_> {
    /// Ends this turn, letting a waiting task's slice run before this task's next one.
    pub(crate) fn hand_over(self) {
        unlock_fair(self.0);
    }
}
