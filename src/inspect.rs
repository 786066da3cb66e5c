//! `inmem verify DIR` and `inmem inspect DIR`: what a database directory holds, checked
//! without changing it (`inmem::engine::inspect`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use inmem::engine::{inspect, Inspection};
use inmem::wal::RecoveryReport;

/// The directory to look at.
#[derive(Debug, Clone, Args)]
pub(crate) struct DirArgs {
    /// The database directory.
    dir: PathBuf,
}

/// `inmem verify`: one line per checkpoint and one for the log; exit 1 on any damage.
pub(crate) fn verify(args: &DirArgs) -> ExitCode {
    let inspection = match inspect(&args.dir) {
        Ok(inspection) => inspection,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
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
            Err(error) => println!(
                "DAMAGED: {error}; an open passes over it for the checkpoint before it (if that \
                 one and the log since it are whole), else fails"
            ),
        }
    }
    match &inspection.log {
        Ok(report) => print_log_verdict(report),
        Err(error) => {
            println!("DAMAGED: {error}");
            if let Some(Ok(kept)) = &inspection.point_in_time {
                println!(
                    "  recovery mode PointInTime would keep positions {}..{} ({} records){}",
                    kept.first,
                    kept.end,
                    kept.records,
                    lost_by(kept)
                );
            }
        }
    }
    if inspection.is_damaged() {
        ExitCode::FAILURE
    } else {
        println!("no damage");
        ExitCode::SUCCESS
    }
}

fn print_log_verdict(report: &RecoveryReport) {
    for unfinished in &report.removed_unfinished {
        println!("DAMAGED: unfinished segment {} (an open removes it)", unfinished.display());
    }
    match &report.cut {
        Some(cut) => println!(
            "DAMAGED: torn tail in {} at offset {} (log position {}): {}; an open cuts {} bytes \
             (commits in them were never acknowledged in Sync mode)",
            cut.path.display(),
            cut.offset,
            cut.position,
            cut.damage,
            cut.bytes
        ),
        None => println!(
            "ok: log, {} segments, {} records, positions {}..{}",
            report.segments, report.records, report.first, report.end
        ),
    }
}

fn lost_by(report: &RecoveryReport) -> String {
    let mut lost = String::new();
    if let Some(cut) = &report.cut {
        lost.push_str(&format!(
            "; it cuts {} bytes of {} from offset {}",
            cut.bytes,
            cut.path.display(),
            cut.offset
        ));
    }
    for dropped in &report.dropped {
        let name = dropped.display().to_string();
        lost.push_str(&format!("; it sets aside {}", name.trim_end_matches(".dropped")));
    }
    lost
}

/// `inmem inspect`: segments, checkpoints, positions and versions.
pub(crate) fn inspect_dir(args: &DirArgs) -> ExitCode {
    match inspect(&args.dir) {
        Ok(inspection) => {
            print_inspection(&args.dir, &inspection);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_inspection(dir: &Path, inspection: &Inspection) {
    println!("database {}", dir.display());
    println!("segments ({}):", inspection.segments.len());
    for (path, size) in &inspection.segments {
        let name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
        println!("  {name}  {size} bytes");
    }
    match &inspection.log {
        Ok(report) => println!(
            "log: positions {}..{}, {} records{}",
            report.first,
            report.end,
            report.records,
            report.cut.as_ref().map_or(String::new(), |cut| format!(
                ", a torn tail of {} bytes at position {}",
                cut.bytes, cut.position
            ))
        ),
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
    match inspection.checkpoints.first() {
        Some(Ok(newest)) => println!(
            "an open loads version {} from the newest checkpoint, then replays the log from \
             position {}",
            newest.version, newest.replay_from
        ),
        Some(Err(_)) => println!(
            "the newest checkpoint is damaged: an open falls back to the one before it, if any"
        ),
        None => println!("an open replays the whole log (no checkpoint)"),
    }
}
