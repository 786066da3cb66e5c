//! The system allocator, where it is glibc's: its fast bins turned off, once per process,
//! when the first database opens ([`crate::Options::tune_glibc_malloc`]).
//!
//! Why: the collector frees superseded versions on its own thread, millions at a time,
//! and glibc puts each freed chunk of up to 128 bytes (a version node, and a value of up
//! to about 110 bytes) on a *fast bin* of the arena it came from: a committer's. Nothing
//! sorts those chunks out until that arena next serves a large request, and then the
//! committer does, all of them at once, in `malloc_consolidate`: 1-key commits while 5M
//! versions were reclaimed stalled for 395-422 ms. With the fast bins off, a freed chunk is
//! coalesced as it is freed, by the thread that frees it, and the same commits took at
//! most 4.8-21.9 ms; the price is paid at each free, a p99 of 11-25 us against 3.5-4.2 us,
//! with as many commits in the window (docs/benchmarks.md, "Allocators: the engine turns
//! glibc's fast bins off"). A stall of 400 ms is an outage for a latency-critical service,
//! a p99 of 25 us is not.
//!
//! The setting is the process's, so an application can say no: the option, or glibc's own
//! tunable in the environment (`GLIBC_TUNABLES=glibc.malloc.mxfast=...`), which the engine
//! then leaves as the application set it. Under another global allocator (mimalloc, which
//! the README recommends, or jemalloc) glibc's malloc serves nobody and the call changes
//! nothing that matters.

use crate::options::Options;

/// Turns glibc's fast bins off if `options` asks for it (the default) and the process has
/// not yet done so, nor set glibc's tunable for them.
pub(crate) fn tune(options: &Options) {
    if options.tune_glibc_malloc {
        glibc::turn_fast_bins_off();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(loom)))]
#[allow(unsafe_code)]
mod glibc {
    use std::sync::Once;

    /// glibc's tunable for the fast bins' largest chunk: set in the environment, it is
    /// the application's choice.
    const MXFAST_TUNABLE: &str = "glibc.malloc.mxfast";

    pub(super) fn turn_fast_bins_off() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let chosen = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains(MXFAST_TUNABLE));
            if !chosen {
                // SAFETY: `mallopt` changes one of glibc's malloc parameters under its own
                // locks, from any thread; 0 is within `M_MXFAST`'s documented range. Chunks
                // already on fast bins stay valid and glibc still consolidates them. It
                // returns 0 only for a parameter or value out of range, and then changes
                // nothing: there is nothing to undo.
                unsafe { libc::mallopt(libc::M_MXFAST, 0) };
            }
        });
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(loom))))]
mod glibc {
    /// Not glibc: nothing to turn off.
    pub(super) fn turn_fast_bins_off() {}
}
