//! The `inmem` command-line tool.
//!
//! `inmem bench` runs macro workloads on an in-memory database (see `cli/src/bench/`);
//! `inmem crashtest` kills a committing process and checks what recovery keeps (see
//! `cli/src/crashtest.rs`); `inmem verify` and `inmem inspect` look at a database directory
//! without changing it (`cli/src/inspect.rs`). Errors
//! are printed to stderr as one `error: ...` line with a nonzero exit; malformed flags are
//! reported by clap (exit 2). A reader that closes the pipe early (`| head`) just stops it.

#![deny(unsafe_code)]

mod bench;
mod crashtest;
mod inspect;

/// mimalloc, not the system allocator: under glibc's, a thread committing while the
/// collector frees millions of versions stalls for hundreds of milliseconds in
/// `malloc_consolidate`, sorting out chunks another thread freed into its arena; mimalloc
/// frees to the owning thread's pages. Its purging is turned off ([`keep_freed_memory`]).
/// docs/benchmarks.md, "Allocators", has the runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`; the Rust bindings name no constant
/// for it): how long freed memory waits before it is returned to the OS, in milliseconds;
/// negative: never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the memory the process frees for its next allocations instead of returning it to
/// the OS. mimalloc returns freed memory (`madvise`, which splits its huge pages and
/// interrupts every core to flush their TLBs) once its delay has passed, on whichever thread
/// allocates next: a thread committing while the collector freed 5M versions spent 20-45 ms
/// at a time doing so (docs/benchmarks.md, "Allocators: mimalloc's purge"). The price: the
/// process keeps the most memory it ever held, as a database sized for its data does anyway.
#[allow(unsafe_code, reason = "an FFI call to set an allocator option; see the SAFETY note")]
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's table of options (an atomic
    // store); it has no preconditions and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// inmem: an embeddable, lock-free, MVCC storage engine.
#[derive(Debug, Parser)]
#[command(name = "inmem", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark the engine: throughput, latency percentiles and peak memory per workload.
    Bench(bench::BenchArgs),
    /// Kill a process committing transactions at random moments and check, after each
    /// reopen, that every acknowledged commit survived whole.
    Crashtest(crashtest::CrashtestArgs),
    /// Check every checkpoint and log segment of a database directory, changing nothing,
    /// and print what an open in each recovery mode would do (docs/recovery.md); exit 1
    /// on damage, 2 for a path that holds no database.
    Verify(inspect::DirArgs),
    /// Print a database directory's segments, checkpoints, log positions and versions, and
    /// what an open in each recovery mode would do; exit 1 on damage, 2 for no database.
    Inspect(inspect::DirArgs),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Crashtest(args) => return crashtest::run(args),
        Command::Verify(args) => return inspect::verify(args),
        Command::Inspect(args) => return inspect::inspect_dir(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option's number is mimalloc's purge delay: it starts at the documented default
    /// (or what `MIMALLOC_PURGE_DELAY` says), and reads back as "never" once set.
    #[test]
    #[allow(unsafe_code, reason = "FFI calls to read allocator options")]
    fn keep_freed_memory_sets_mimallocs_purge_delay_to_never() {
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(1000);
        // SAFETY: `mi_option_get` reads an integer option; no preconditions.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, expected, "option {MI_OPTION_PURGE_DELAY} is not purge_delay");
        keep_freed_memory();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, -1);
    }
}
