//! Opening a database turns glibc's malloc fast bins off for the process, unless its
//! options say not to (`Options::tune_glibc_malloc`; why: `engine/src/allocator.rs`).
//!
//! One test in its own process: the setting is the process's, and once made it stays.

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(clippy::expect_used)]
#![allow(unsafe_code)]

use inmem_engine::{Database, Options};

/// Chunks freed on this thread per measurement: far more than glibc's per-thread cache
/// keeps of one size (7), so that without a cache the rest go where glibc puts them.
const CHUNKS: usize = 1_000;

/// How many more chunks sit on fast bins, over every arena, after this thread allocates
/// and frees [`CHUNKS`] chunks of 48 bytes.
fn fast_bin_chunks_after_freeing() -> usize {
    // SAFETY: `mallinfo2` only reads glibc's statistics, under its own locks.
    let before = unsafe { libc::mallinfo2() }.smblks;
    let chunks: Vec<*mut libc::c_void> = (0..CHUNKS)
        .map(|_| {
            // SAFETY: a plain allocation, checked below and freed once.
            let chunk = unsafe { libc::malloc(48) };
            assert!(!chunk.is_null(), "malloc failed");
            chunk
        })
        .collect();
    for chunk in chunks {
        // SAFETY: each was returned by `malloc` above and is freed once.
        unsafe { libc::free(chunk) };
    }
    // SAFETY: as above.
    let after = unsafe { libc::mallinfo2() }.smblks;
    after.saturating_sub(before)
}

#[test]
fn opening_a_database_turns_glibcs_fast_bins_off_unless_told_not_to() {
    assert!(
        std::env::var("GLIBC_TUNABLES").map_or(true, |t| !t.contains("mxfast")),
        "run without glibc's mxfast tunable: the engine leaves it as set"
    );
    let untouched =
        Database::with_options(Options::default().tune_glibc_malloc(false)).expect("opens");
    let on = fast_bin_chunks_after_freeing();
    assert!(on >= CHUNKS / 2, "fast bins in use before the engine turns them off: {on}");
    drop(untouched);

    let tuned = Database::in_memory().expect("opens");
    let off = fast_bin_chunks_after_freeing();
    assert_eq!(off, 0, "{off} freed chunks were left on fast bins");
    drop(tuned);
}
