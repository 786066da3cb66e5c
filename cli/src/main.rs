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
/// frees to the owning thread's pages. docs/benchmarks.md, "Allocators", has the runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
