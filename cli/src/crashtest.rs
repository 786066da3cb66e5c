//! `inmem crashtest`: kills a committing process at random moments and checks what a
//! reopen recovers.
//!
//! The parent runs cycles. In each, it starts a child (this binary, `crashtest --child`)
//! on the directory; the child opens the database in `Sync` mode and commits transfers
//! from [`WRITERS`] threads, printing `ack <txn> <version>` on stdout once each commit
//! returns, while another thread takes a checkpoint every 5-50 ms. After a random delay
//! the parent kills it with SIGKILL, reopens the directory and checks, against every
//! commit acknowledged in any cycle so far:
//!
//! - recovery succeeds (`recovery_errors`), and no thread of the reopened database panics
//!   while it is checked (counted there too); a panic in the child stops it, which fails
//!   the run;
//! - every acknowledged transaction is present, at the version it was acknowledged with
//!   (`lost`);
//! - no transaction is partly visible (`partial`): the balances sum to zero, and each
//!   account's last writer is a transaction whose record is present and names it.
//!
//! The transfers and the check are `inmem_cli::harness`'s.
//!
//! With `--workload primitives`, the child's writers commit `inmem_cli::primitives_harness`'s
//! steps instead (KV, EventLog, StateCell, TraceStore and RunIndex written in one
//! transaction each) and print `prim ...` lines; the check is that module's: every event
//! chain verifies, each run's keys, counter, traces, trace indices and run statuses agree
//! with its events (`partial`), and every acknowledged step is there as acknowledged, tasks
//! acknowledged as finished included (`lost`). Beside the writers, one thread fills runs of
//! 20,000 events and deletes them, over and over (`inmem_cli::large_deletes`): no run
//! acknowledged deleted may be visible (`lost`), none partly there (`partial`), and once
//! the parent has finished the pending deletes, no key of theirs may be left in memory
//! (`partial`). The summary line is the same.
//!
//! `--backend uring|sync|auto` is the I/O backend of the log ([`inmem::Options::io_backend`])
//! in every child and every reopen; each child says which backend its log uses, the parent
//! checks that its reopens use the same, and prints it (`backend: io_uring: requested`) on
//! the line before the summary.

#![allow(
    clippy::disallowed_types,
    reason = "a crash harness outside the engine: no loom model to swap them in"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::{Args, ValueEnum};
use inmem::{Database, Options};
use inmem_cli::harness::{check, transfer, txn_number, Ack, Violations};
use inmem_cli::large_deletes;
use inmem_cli::primitives_harness::{self, Writer};

use crate::bench::WalBackend;

/// Committing threads in the child.
pub(crate) const WRITERS: u64 = 4;
/// How long the parent waits for a child to say it is ready, or to die once killed.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// Kills a process committing transactions at random moments, reopens its database and
/// checks that every acknowledged commit survived, whole.
///
/// Ends with `cycles=N acknowledged=A lost=0 partial=0 recovery_errors=0` and exit 0, or
/// a nonzero exit and the first violation in detail.
#[derive(Debug, Clone, Args)]
pub(crate) struct CrashtestArgs {
    /// Kill-and-recover cycles to run.
    #[arg(long, default_value_t = 20)]
    cycles: u64,
    /// The database directory (kept afterwards); default a temporary one, removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the kill delays and the transfers.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The longest a child runs before it is killed, in milliseconds (each delay is
    /// uniform between 0 and this).
    #[arg(long, default_value_t = 200)]
    kill_after_max_ms: u64,
    /// What the child commits: 4-key transfers, or steps writing every primitive.
    #[arg(long, value_enum, default_value_t = Workload::Transfers)]
    workload: Workload,
    /// The log's I/O backend in the children and the reopens: `uring` fails where the kernel
    /// refuses io_uring, `auto` takes the one measured faster.
    #[arg(long, value_enum, default_value_t = WalBackend::Auto)]
    backend: WalBackend,
    /// Run as the committing child of cycle `--cycle` (used by the parent).
    #[arg(long, hide = true)]
    child: bool,
    /// The cycle a child runs in (used by the parent).
    #[arg(long, hide = true, default_value_t = 0)]
    cycle: u64,
}

/// What the child commits, and so what the parent checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// Transfers between accounts (`inmem_cli::harness`), acknowledged as `ack` lines.
    Transfers,
    /// Every primitive in one transaction (`inmem_cli::primitives_harness`), acknowledged as
    /// `prim` lines.
    Primitives,
}

impl Workload {
    /// The name `--workload` takes.
    fn name(self) -> &'static str {
        match self {
            Workload::Transfers => "transfers",
            Workload::Primitives => "primitives",
        }
    }

    /// The options the child writes with and the parent reopens with: the primitives'
    /// for their workload, so that recovery rebuilds their index entries as they are
    /// kept (in the ordered index alone).
    fn options(self) -> Options {
        match self {
            Workload::Transfers => Options::default(),
            Workload::Primitives => inmem::primitives::engine_options(),
        }
    }
}

/// Runs the command.
pub(crate) fn run(args: &CrashtestArgs) -> ExitCode {
    watch_panics(args.child);
    if args.child {
        let options = args.workload.options().io_backend(args.backend.choice());
        let ran = args
            .dir
            .as_deref()
            .map(|dir| child(dir, args.cycle, args.seed, args.workload, options));
        return match ran {
            Some(Ok(())) => ExitCode::SUCCESS,
            Some(Err(error)) => {
                eprintln!("crashtest child: {error}");
                ExitCode::FAILURE
            }
            None => {
                eprintln!("crashtest child: --dir is required");
                ExitCode::FAILURE
            }
        };
    }
    match parent(args) {
        Ok(summary) => {
            println!("backend: {}", summary.backend);
            println!("{summary}");
            if summary.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a thread of this process panicked (see [`watch_panics`]).
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Makes a panic on any thread of this process count, once the default hook has printed
/// it: a child (a writer, the checkpointer, the engine's maintenance thread) exits with code
/// 101 at once, which the parent reports as a child that stopped on its own; the parent
/// notes it in [`PANICKED`] and fails the cycle after its check, a reopened database whose
/// threads panic being a failed recovery. Otherwise the process would go on without the
/// thread, and a run whose checkpoints stopped would still end with a clean summary.
fn watch_panics(child: bool) {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        // Relaxed: the flag guards no other memory; the parent only reads the flag itself.
        PANICKED.store(true, Ordering::Relaxed);
        if child {
            std::process::exit(101);
        }
    }));
}

/// The counts the run ends with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) cycles: u64,
    pub(crate) acknowledged: u64,
    pub(crate) lost: u64,
    pub(crate) partial: u64,
    pub(crate) recovery_errors: u64,
    /// The log's backend in the children and the reopens, and why (not on the summary line).
    pub(crate) backend: String,
}

impl Summary {
    fn clean(&self) -> bool {
        self.lost == 0 && self.partial == 0 && self.recovery_errors == 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cycles={} acknowledged={} lost={} partial={} recovery_errors={}",
            self.cycles, self.acknowledged, self.lost, self.partial, self.recovery_errors
        )
    }
}

fn parent(args: &CrashtestArgs) -> Result<Summary, String> {
    // A backend that cannot be set up here (io_uring, where the kernel refuses it) is
    // named at once, rather than as a child that never became ready.
    inmem::wal::io::backend(args.backend.choice()).map_err(|error| {
        format!("--backend {}: the log's backend cannot be set up: {error}", args.backend.name())
    })?;
    let temporary;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("inmem-crashtest-")
                .tempdir_in(".")
                .map_err(|error| format!("creating a temporary directory: {error}"))?;
            temporary.path().to_path_buf()
        }
    };
    match args.workload {
        Workload::Transfers => cycles(args, &dir, parse_ack, |db, acks, _| check(db, acks)),
        Workload::Primitives => primitives_cycles(args, &dir),
    }
}

/// The primitives workload's cycles; prints a line on its large deletes before the summary.
fn primitives_cycles(args: &CrashtestArgs, dir: &Path) -> Result<Summary, String> {
    let big_acks = std::cell::Cell::new((0usize, 0usize));
    let mid_purge = std::cell::Cell::new(0u64);
    let summary = cycles(args, dir, large_deletes::Ack::parse, |db, acks, cycles| {
        let (mut steps, mut bigs) = (Vec::new(), Vec::new());
        for ack in acks {
            match ack {
                large_deletes::Ack::Step(step) => steps.push(step.clone()),
                large_deletes::Ack::Big(big) => bigs.push(*big),
            }
        }
        let mut found = primitives_harness::check(db, args.seed, cycles, WRITERS, &steps);
        if large_deletes::check(db, args.seed, cycles, &bigs, &mut found) {
            mid_purge.set(mid_purge.get() + 1);
        }
        let deleted = bigs.iter().filter(|ack| ack.deleted).count();
        big_acks.set((bigs.len() - deleted, deleted));
        found
    })?;
    let (filled, deleted) = big_acks.get();
    println!(
        "large deletes: runs of {} events filled={filled} deleted={deleted}, reopened with \
         their purge unfinished after {} kills",
        large_deletes::BIG_EVENTS,
        mid_purge.get()
    );
    Ok(summary)
}

/// Runs the cycles: a child killed, a reopen, `check(db, acks so far, cycles so far)`;
/// `parse` reads the child's acknowledgment lines.
fn cycles<A: Send + 'static>(
    args: &CrashtestArgs,
    dir: &Path,
    parse: fn(&str) -> Option<A>,
    check: impl Fn(&Arc<Database>, &[A], u64) -> Violations,
) -> Result<Summary, String> {
    let exe = std::env::current_exe().map_err(|error| format!("finding this binary: {error}"))?;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut acks: Vec<A> = Vec::new();
    let mut summary = Summary::default();
    let backend = args.backend;
    for cycle in 0..args.cycles {
        let delay = Duration::from_millis(rng.u64(0..=args.kill_after_max_ms));
        let workload = args.workload;
        let child = ChildRun { exe: &exe, dir, cycle, seed: args.seed, workload, backend };
        let (child_acks, child_backend) = child.run(delay, parse)?;
        acks.extend(child_acks);
        summary.cycles = cycle + 1;
        summary.acknowledged = acks.len() as u64;
        let db = match Database::open(dir, workload.options().io_backend(backend.choice())) {
            Ok(db) => Arc::new(db),
            Err(error) => {
                summary.recovery_errors += 1;
                eprintln!("cycle {cycle}: recovery failed: {error}");
                return Ok(summary);
            }
        };
        summary.backend = db.log_backend().map(ToString::to_string).unwrap_or_default();
        if child_backend != summary.backend {
            let reopen = &summary.backend;
            return Err(format!(
                "cycle {cycle}: the child logged over {child_backend}, the reopen over {reopen}"
            ));
        }
        let violations = check(&db, &acks, cycle + 1);
        summary.lost = violations.lost;
        summary.partial = violations.partial;
        if let Some(first) = violations.first {
            eprintln!("cycle {cycle}: {first}");
            return Ok(summary);
        }
        if PANICKED.load(Ordering::Relaxed) {
            summary.recovery_errors += 1;
            eprintln!("cycle {cycle}: a thread panicked while the reopened database was open");
            return Ok(summary);
        }
    }
    Ok(summary)
}

/// One cycle's child, as the parent starts it.
struct ChildRun<'a> {
    exe: &'a Path,
    dir: &'a Path,
    cycle: u64,
    seed: u64,
    workload: Workload,
    backend: WalBackend,
}

impl ChildRun<'_> {
    /// Runs the child for `delay` (once it is ready), kills it, and returns what it
    /// acknowledged, read from its lines by `parse`, and the backend its log used.
    fn run<A: Send + 'static>(
        &self,
        delay: Duration,
        parse: fn(&str) -> Option<A>,
    ) -> Result<(Vec<A>, String), String> {
        let cycle = self.cycle;
        let mut child = Command::new(self.exe)
            .args(["crashtest", "--child", "--cycle", &cycle.to_string()])
            .args(["--workload", self.workload.name(), "--backend", self.backend.name()])
            .args(["--seed", &self.seed.to_string(), "--dir"])
            .arg(self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("starting the child: {error}"))?;
        let stdout = child.stdout.take().ok_or("the child has no stdout")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            let mut backend = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(name) = line.strip_prefix(BACKEND_LINE) {
                    backend = name.to_string();
                } else if line == "ready" {
                    let _ = ready_tx.send(());
                } else if let Some(ack) = parse(&line) {
                    acks.push(ack);
                }
            }
            (acks, backend)
        });
        let ready = ready_rx.recv_timeout(CHILD_DEADLINE);
        if ready.is_ok() {
            std::thread::sleep(delay);
        }
        // SIGKILL: the child gets no chance to flush or close anything.
        let _ = child.kill();
        let status = child.wait().map_err(|error| format!("waiting for the child: {error}"))?;
        let (acks, backend) =
            reader.join().map_err(|_| "the child's reader panicked".to_string())?;
        if ready.is_err() {
            return Err(format!("cycle {cycle}: the child never became ready ({status})"));
        }
        // A child killed by the signal has no exit code; one that exited made an error.
        if status.code().is_some() {
            return Err(format!("cycle {cycle}: the child stopped on its own ({status})"));
        }
        Ok((acks, backend))
    }
}

/// How a child's line naming its log's backend starts.
const BACKEND_LINE: &str = "backend ";

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    let txn = words.next()?.parse().ok()?;
    let version = words.next()?.parse().ok()?;
    Some(Ack { txn, version })
}

/// The child: opens the database with `options` and commits `workload`'s transactions from
/// [`WRITERS`] threads until it is killed.
fn child(
    dir: &Path,
    cycle: u64,
    seed: u64,
    workload: Workload,
    options: Options,
) -> Result<(), String> {
    let db = Arc::new(Database::open(dir, options).map_err(|error| error.to_string())?);
    let backend = db.log_backend().map(ToString::to_string).unwrap_or_default();
    // Stdout is line-buffered: each line reaches the pipe whole, under stdout's own lock.
    writeln!(std::io::stdout().lock(), "{BACKEND_LINE}{backend}").map_err(|e| e.to_string())?;
    writeln!(std::io::stdout().lock(), "ready").map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        // Checkpoints all along, so that kills land in them too.
        let db_ref = &db;
        scope.spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed ^ (cycle << 8) ^ 0xc0ffee);
            loop {
                std::thread::sleep(Duration::from_millis(rng.u64(5..50)));
                if let Err(error) = db_ref.checkpoint() {
                    eprintln!("crashtest child: checkpoint: {error}");
                    std::process::exit(1);
                }
            }
        });
        if workload == Workload::Primitives {
            // Big runs filled and deleted beside the steps, so kills land in large deletes
            // and their purges too.
            let db = Arc::clone(&db);
            scope.spawn(move || {
                let said = large_deletes::fill_and_delete(&db, seed, cycle, |ack| {
                    writeln!(std::io::stdout().lock(), "{ack}").map_err(|e| e.to_string())
                });
                if let Err(error) = said {
                    eprintln!("crashtest child: {error}");
                    std::process::exit(1);
                }
            });
        }
        let workers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let db = &db;
                scope.spawn(move || match workload {
                    Workload::Transfers => commit_transfers(db, cycle, seed, writer),
                    Workload::Primitives => commit_steps(db, cycle, seed, writer),
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a writer panicked".to_string())??;
        }
        Ok(())
    })
}

/// Writer `writer`'s transfers, each acknowledged once committed; never returns `Ok`.
fn commit_transfers(db: &Database, cycle: u64, seed: u64, writer: u64) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed ^ (cycle << 8) ^ writer);
    for n in 0u64.. {
        let txn = txn_number(cycle, writer, n);
        let version = transfer(db, &mut rng, txn)?;
        writeln!(std::io::stdout().lock(), "ack {txn} {version}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writer `writer`'s primitives steps, each acknowledged once committed; after the last
/// one it waits to be killed.
fn commit_steps(db: &Database, cycle: u64, seed: u64, writer: u64) -> Result<(), String> {
    let mut steps = Writer::start(db, seed, cycle, writer)?;
    while let Some(ack) = steps.step(db)? {
        writeln!(std::io::stdout().lock(), "{ack}").map_err(|e| e.to_string())?;
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_parse_and_other_lines_do_not() {
        assert_eq!(parse_ack("ack 7 12"), Some(Ack { txn: 7, version: 12 }));
        assert_eq!(parse_ack("ready"), None);
        assert_eq!(parse_ack("ack 7"), None);
    }
}
