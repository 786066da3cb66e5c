//! `inmem verify DIR` and `inmem inspect DIR`: what a database directory holds, checked
//! without changing it (`inmem::engine::inspect`), and what an open in each recovery mode
//! would do with it (the decision `Database::open` carries out; docs/recovery.md).
//!
//! Exit codes, both commands: 0 when nothing is damaged, 1 on any damage, 2 for a path that
//! holds no database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use inmem::engine::{inspect, Inspection, Recovery};
use inmem::wal::{RecoveryReport, SegmentFrontier};
use inmem::RecoveryMode;

/// The directory to look at.
#[derive(Debug, Clone, Args)]
pub(crate) struct DirArgs {
    /// The database directory.
    dir: PathBuf,
}

/// The exit code of a path that holds no database.
const NOT_A_DATABASE: u8 = 2;

/// Inspects `dir`, or says why it cannot be (and returns the exit code).
fn inspected(dir: &Path) -> Result<Inspection, ExitCode> {
    let holds_database = ["wal", "checkpoints"].iter().any(|sub| dir.join(sub).is_dir());
    if !dir.is_dir() || !holds_database {
        eprintln!(
            "error: {} holds no inmem database (no wal/ or checkpoints/ directory in it)",
            dir.display()
        );
        return Err(ExitCode::from(NOT_A_DATABASE));
    }
    inspect(dir).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

/// `inmem verify`: a line per checkpoint, then what an open in each mode would do; exit 1
/// on any damage.
pub(crate) fn verify(args: &DirArgs) -> ExitCode {
    let inspection = match inspected(&args.dir) {
        Ok(inspection) => inspection,
        Err(code) => return code,
    };
    for checkpoint in &inspection.checkpoints {
        match checkpoint {
            Ok(info) => println!(
                "ok: checkpoint {} (version {}, {} keys, {} versions)",
                info.path.display(),
                info.version,
                info.keys,
                info.versions
            ),
            Err(error) => println!("DAMAGED: {error}"),
        }
    }
    for line in frontier_lines(&inspection) {
        println!("{line}");
    }
    print_predictions(&inspection);
    exit(&inspection, || println!("no damage"))
}

/// The frontiers of the log's segments, as an open would read them (from the first mode
/// whose open succeeds): a line each, naming the segment (`inmem_wal::format`, "Frontier
/// slots").
fn frontier_lines(inspection: &Inspection) -> Vec<String> {
    let Some(recovery) = inspection.predictions.iter().find_map(|(_, p)| p.as_ref().ok()) else {
        return Vec::new();
    };
    recovery.log.frontiers.iter().map(frontier_line).collect()
}

fn frontier_line(segment: &SegmentFrontier) -> String {
    let name = segment.path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    let torn = match segment.invalid_slots {
        0 => String::new(),
        n => format!(", {n} invalid slot(s)"),
    };
    match segment.frontier {
        Some(frontier) => format!(
            "frontier: {name}: {frontier}{torn}; read up to offset {} of {}",
            segment.scan_end, segment.size
        ),
        None => format!(
            "DAMAGED: frontier: {name}: no valid frontier slot{torn}; read to its end ({} bytes)",
            segment.size
        ),
    }
}

/// The exit code for what `inspection` found; `clean` runs when nothing is damaged.
fn exit(inspection: &Inspection, clean: impl FnOnce()) -> ExitCode {
    if inspection.is_damaged() {
        ExitCode::FAILURE
    } else {
        clean();
        ExitCode::SUCCESS
    }
}

/// One line (and its details) per recovery mode: what an open would do.
fn print_predictions(inspection: &Inspection) {
    for (mode, predicted) in &inspection.predictions {
        match predicted {
            Ok(recovery) => {
                let verdict = if recovery.is_clean() { "ok" } else { "DAMAGED" };
                println!("{verdict}: {mode}: opens: {}", describe(recovery));
                for line in details(recovery) {
                    println!("  {line}");
                }
            }
            Err(error) => println!("DAMAGED: {mode}: refuses: {error}"),
        }
    }
}

/// What an open that succeeds loads and replays.
fn describe(recovery: &Recovery) -> String {
    let log = &recovery.log;
    let from = match &recovery.checkpoint {
        Some(path) => format!(
            "loads checkpoint {} (version {}), then replays the log",
            path.display(),
            recovery.checkpoint_version
        ),
        None => "replays the whole log (no checkpoint)".to_owned(),
    };
    format!(
        "{from}: {} segments, {} records, positions {}..{}",
        log.segments, log.records, log.first, log.end
    )
}

/// What an open that succeeds changes or skips, a line each.
fn details(recovery: &Recovery) -> Vec<String> {
    let mut lines = Vec::new();
    for error in &recovery.damaged_checkpoints {
        lines.push(format!("passes over the damaged checkpoint: {error}"));
    }
    lines.extend(log_details(&recovery.log));
    lines
}

fn log_details(report: &RecoveryReport) -> Vec<String> {
    let mut lines = Vec::new();
    for unfinished in &report.removed_unfinished {
        lines.push(format!("removes the unfinished segment {}", unfinished.display()));
    }
    for covered in &report.covered {
        lines.push(format!("skips damage a checkpoint covers (nothing lost): {covered}"));
    }
    if let Some(stop) = &report.stopped_at {
        lines.push(format!("stops the log at: {stop}"));
    }
    if let Some(cut) = &report.cut {
        let what = match (&report.stopped_at, cut.damage) {
            (Some(_), _) => "the damaged rest".to_owned(),
            (None, Some(damage)) => format!("a torn tail ({damage})"),
            (None, None) => "a torn tail".to_owned(),
        };
        lines.push(format!(
            "cuts {what} of {} at offset {} (log position {}): {} bytes, copied first to {}",
            cut.path.display(),
            cut.offset,
            cut.position,
            cut.bytes,
            cut.salvage.display()
        ));
    }
    for dropped in &report.dropped {
        let name = dropped.display().to_string();
        let original = name.trim_end_matches(inmem::wal::DROPPED_SUFFIX);
        lines.push(format!("sets aside {original} (renamed {name})"));
    }
    if let Some(extended) = &report.extended {
        lines.push(format!("gives {} its size back", extended.display()));
    }
    if report.successor_created {
        lines.push("creates the missing next segment".to_owned());
    }
    lines
}

/// `inmem inspect`: segments, checkpoints, positions and versions; exit 1 on damage.
pub(crate) fn inspect_dir(args: &DirArgs) -> ExitCode {
    match inspected(&args.dir) {
        Ok(inspection) => {
            print_inspection(&args.dir, &inspection);
            exit(&inspection, || {})
        }
        Err(code) => code,
    }
}

fn print_inspection(dir: &Path, inspection: &Inspection) {
    println!("database {}", dir.display());
    println!("segments ({}):", inspection.segments.len());
    for (path, size) in &inspection.segments {
        let name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
        println!("  {name}  {size} bytes");
    }
    for line in frontier_lines(inspection) {
        println!("  {line}");
    }
    match inspection.prediction(RecoveryMode::TolerateTornTail) {
        Ok(recovery) => {
            let log = &recovery.log;
            println!(
                "log: positions {}..{}, {} records, proven synced up to {}",
                log.first, log.end, log.records, log.proven
            );
        }
        Err(error) => println!("log: damaged: {error}"),
    }
    println!("checkpoints ({}):", inspection.checkpoints.len());
    for checkpoint in &inspection.checkpoints {
        match checkpoint {
            Ok(info) => println!(
                "  version {}  replay from position {}  {} keys  {} versions  {} bytes",
                info.version, info.replay_from, info.keys, info.versions, info.bytes
            ),
            Err(error) => println!("  damaged: {error}"),
        }
    }
    print_predictions(inspection);
}
