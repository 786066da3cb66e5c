//! The wall clock the primitives stamp their records with.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in ms since the Unix epoch (0 for a clock set before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}
