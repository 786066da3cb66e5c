//! The hot-run workload: every worker appends to the event log of one and the same run
//! ([`EventLog::append`]), so that every append competes for the run's head record. It
//! measures appends/s on a contended key and what the retry loop does there: commits lost
//! to a conflict and run again (`retries`), and appends that came back with a conflict
//! (`aborts`; the engine's retry loop is meant to keep this at zero, see
//! `engine/src/turns.rs`).
//!
//! Each thread count runs on a fresh database (per durability). An aborted append is
//! counted, not fatal, so the figures show how many callers were refused; any other error
//! ends the run. Afterwards the log is checked: as many events as appends that returned a
//! sequence, each sequence returned once, and a hash chain that verifies.

use std::sync::Arc;

use inmem::primitives::{EventLog, RunId, Value};
use inmem::Database;

use super::args::{DurabilityArg, Workload};
use super::error::BenchError;
use super::progress;
use super::report::{Report, RunRecord};
use super::rss::PeakRss;
use super::runner::{run_threads, OpError, RunPlan};
use super::store::open_primitives_database;
use super::Session;

/// The name of the operation in reports (the JSON `op` field).
const OP: &str = "event_append";
/// The event type every append uses.
const EVENT_TYPE: &str = "step";

/// An append's error other than a conflict.
struct AppendFailed(inmem::primitives::Error);

impl OpError for AppendFailed {
    fn into_bench(self, _plan: &RunPlan) -> BenchError {
        BenchError::Primitive { op: OP, source: self.0 }
    }
}

/// Runs the workload at every thread count of `session`, each on a fresh database.
///
/// # Errors
/// [`BenchError::Engine`] if the database cannot be made, [`BenchError::Primitive`] if an
/// append fails with an error other than a conflict (or the check afterwards fails to
/// read), [`BenchError::WrongResults`] if the log does not hold exactly the appends that
/// returned, [`BenchError::Output`] if the report cannot be written.
pub(crate) fn run<W: std::io::Write>(
    session: &Session<'_>,
    report: &mut Report<W>,
) -> Result<(), BenchError> {
    for &threads in &session.config.threads {
        let (db, dir) = open_primitives_database(session.disk.as_ref(), "hot-run setup")?;
        let record = measure(session, Arc::new(db), threads)?;
        report.write(record).map_err(BenchError::Output)?;
        // The database (dropped in `measure`) before its directory.
        drop(dir);
    }
    Ok(())
}

/// One measured run at `threads` threads on `db`, checked.
fn measure(
    session: &Session<'_>,
    db: Arc<Database>,
    threads: usize,
) -> Result<RunRecord, BenchError> {
    let config = session.config;
    let ops = config.ops_for(Workload::HotRun);
    let plan = RunPlan {
        engine: "inmem",
        workload: Workload::HotRun,
        threads,
        ops,
        seed: config.seed,
        layout: config.layout,
    };
    let log = EventLog::new(db.clone());
    let mut run = [0; RunId::LEN];
    run[..8].copy_from_slice(&config.seed.to_le_bytes());
    let run = RunId::from_bytes(run);
    let payload = Value::Bytes(session.data.values.value(0).to_vec());
    let conflicts_before = db.stats().conflicts;
    let bar = progress::bar(session.progress, ops, format!("hot-run x{threads}"));
    let peak = PeakRss::start();
    let measured = run_threads(&plan, &bar, |w, _| {
        match w.latency.time(|| log.append(run, EVENT_TYPE, &payload)) {
            Ok(_) => Ok(()),
            Err(error) if error.is_conflict() => {
                w.tally.aborts += 1;
                Ok(())
            }
            Err(error) => Err(AppendFailed(error)),
        }
    });
    let rss = peak.finish();
    bar.finish_and_clear();
    let measured = measured?;
    let conflicts = db.stats().conflicts - conflicts_before;
    let aborts = measured.tally.aborts;
    let appended = ops - aborts;
    let read = |error| BenchError::Primitive { op: "hot-run check", source: error };
    let len = log.len(run).map_err(read)?;
    let verified = log.verify_chain(run).map_err(read)?.is_verified();
    if len != appended || !verified {
        return Err(BenchError::WrongResults {
            engine: "inmem",
            workload: Workload::HotRun.name(),
            wrong_ops: len.abs_diff(appended).max(1),
        });
    }
    let mut record = RunRecord::new(config, "inmem", Workload::HotRun, threads, &measured, rss);
    record.op = Some(OP);
    record.durability = session.durability.map(DurabilityArg::name);
    record.conflicts = Some(conflicts);
    record.retries = Some(conflicts.saturating_sub(aborts));
    record.aborts = Some(aborts);
    Ok(record)
}
