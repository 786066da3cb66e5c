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
//! - recovery succeeds (`recovery_errors`);
//! - every acknowledged transaction is present, at the version it was acknowledged with
//!   (`lost`);
//! - no transaction is partly visible (`partial`): the balances sum to zero, and each
//!   account's last writer is a transaction whose record is present and names it.
//!
//! The transfers and the check are `inmem::harness`'s.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;
use inmem::harness::{check, transfer, Ack};
use inmem::{Database, Options};

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
    /// Run as the committing child of cycle `--cycle` (used by the parent).
    #[arg(long, hide = true)]
    child: bool,
    /// The cycle a child runs in (used by the parent).
    #[arg(long, hide = true, default_value_t = 0)]
    cycle: u64,
}

/// Runs the command.
pub(crate) fn run(args: &CrashtestArgs) -> ExitCode {
    if args.child {
        return match args.dir.as_deref().map(|dir| child(dir, args.cycle, args.seed)) {
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

/// The counts the run ends with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) cycles: u64,
    pub(crate) acknowledged: u64,
    pub(crate) lost: u64,
    pub(crate) partial: u64,
    pub(crate) recovery_errors: u64,
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
    let exe = std::env::current_exe().map_err(|error| format!("finding this binary: {error}"))?;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut acks: Vec<Ack> = Vec::new();
    let mut summary = Summary::default();
    for cycle in 0..args.cycles {
        let delay = Duration::from_millis(rng.u64(0..=args.kill_after_max_ms));
        acks.extend(run_child(&exe, &dir, cycle, args.seed, delay)?);
        summary.cycles = cycle + 1;
        summary.acknowledged = acks.len() as u64;
        let db = match Database::open(&dir, Options::default()) {
            Ok(db) => db,
            Err(error) => {
                summary.recovery_errors += 1;
                eprintln!("cycle {cycle}: recovery failed: {error}");
                return Ok(summary);
            }
        };
        let violations = check(&db, &acks);
        summary.lost = violations.lost;
        summary.partial = violations.partial;
        if let Some(first) = violations.first {
            eprintln!("cycle {cycle}: {first}");
            return Ok(summary);
        }
    }
    Ok(summary)
}

/// Runs one child for `delay` (once it is ready), kills it, and returns what it
/// acknowledged.
fn run_child(
    exe: &Path,
    dir: &Path,
    cycle: u64,
    seed: u64,
    delay: Duration,
) -> Result<Vec<Ack>, String> {
    let mut child = Command::new(exe)
        .args(["crashtest", "--child", "--cycle", &cycle.to_string()])
        .args(["--seed", &seed.to_string(), "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| format!("starting the child: {error}"))?;
    let stdout = child.stdout.take().ok_or("the child has no stdout")?;
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "ready" {
                let _ = ready_tx.send(());
            } else if let Some(ack) = parse_ack(&line) {
                acks.push(ack);
            }
        }
        acks
    });
    let ready = ready_rx.recv_timeout(CHILD_DEADLINE);
    if ready.is_ok() {
        std::thread::sleep(delay);
    }
    // SIGKILL: the child gets no chance to flush or close anything.
    let _ = child.kill();
    let status = child.wait().map_err(|error| format!("waiting for the child: {error}"))?;
    let acks = reader.join().map_err(|_| "the child's reader panicked".to_string())?;
    if ready.is_err() {
        return Err(format!("cycle {cycle}: the child never became ready ({status})"));
    }
    // A child killed by the signal has no exit code; one that exited made an error.
    if status.code().is_some() {
        return Err(format!("cycle {cycle}: the child stopped on its own ({status})"));
    }
    Ok(acks)
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    let txn = words.next()?.parse().ok()?;
    let version = words.next()?.parse().ok()?;
    Some(Ack { txn, version })
}

/// The child: commits transfers from [`WRITERS`] threads until it is killed.
fn child(dir: &Path, cycle: u64, seed: u64) -> Result<(), String> {
    let db = Database::open(dir, Options::default()).map_err(|error| error.to_string())?;
    // Stdout is line-buffered: each line reaches the pipe whole, under stdout's own lock.
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
        let workers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let db = &db;
                scope.spawn(move || -> Result<(), String> {
                    let mut rng = fastrand::Rng::with_seed(seed ^ (cycle << 8) ^ writer);
                    for n in 0u64.. {
                        let txn = ((cycle + 1) << 40) | (writer << 32) | n;
                        let version = transfer(db, &mut rng, txn)?;
                        writeln!(std::io::stdout().lock(), "ack {txn} {version}")
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a writer panicked".to_string())??;
        }
        Ok(())
    })
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
