//! Wall-clock time in milliseconds, the unit of expiry times.

use std::time::Duration;
#[cfg(not(loom))]
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock set before 1970 reads as 0.
#[cfg(not(loom))]
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, saturating_ms)
}

/// A fixed time under loom, which replays executions and needs every branch to repeat.
#[cfg(loom)]
pub(crate) fn now_ms() -> u64 {
    1_700_000_000_000
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub(crate) fn saturating_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
