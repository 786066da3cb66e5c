//! Opening a database on a directory: the recovery decision carried out, the checkpoint
//! loaded and the log replayed.
//!
//! Open first decides, changing nothing (`recovery.rs`, the table in `docs/recovery.md`):
//! which checkpoint it loads (the newest whole one; the one before for a damaged one,
//! except under `Strict`), and what the log's recovery does knowing what that checkpoint
//! covers. A refused open leaves the directory as it was. Then it carries the decision out:
//! loads the checkpoint (`checkpoint.rs`), if any, opens the log (cutting a torn tail after
//! salvaging it, setting damaged parts aside under `PointInTime`), and replays the log
//! from the position the checkpoint names, applying commits above its version in version order: each
//! at the version it was given, over a contiguous run from the checkpoint's version. A
//! record that arrives before its predecessor waits for it. Records whose predecessor never reached the log are not applied (they were never
//! acknowledged: a commit is acknowledged only once every earlier one is, in its mode).
//! Their versions are handed out again, so open first logs a reset record (`record.rs`)
//! that voids them, and makes it durable before the first new commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use inmem_wal::{Durability as LogDurability, LogPosition, Wal, WalOptions};

use crate::checkpoint;
use crate::dir::{Log, WAL_DIR};
use crate::error::{Error, Result};
use crate::load::{self, Loader};
use crate::options::{Durability, Options};
use crate::record::{self, DecodedCommit};
use crate::recovery::{self, Recovery};
use crate::shared::Shared;
use crate::sync::epoch::{self, Guard, Owned};
use crate::sync::{AtomicU64, Mutex};
use crate::version::CommitVersion;

/// Opens the log of `dir`, replays it into `shared` and returns the log (or `None` for
/// `Durability::None`) with the version recovered.
pub(crate) fn open_log(dir: &Path, options: &Options, wal_options: WalOptions) -> Result<Opened> {
    let mut wal_options = wal_options;
    wal_options.durability = match options.durability {
        Durability::Buffered { interval } => LogDurability::Buffered { interval },
        Durability::Sync | Durability::None => LogDurability::Sync,
    };
    wal_options.backend = options.io_backend;
    // Decide before changing anything (`recovery.rs`): a refused open leaves the
    // directory as it was.
    // Read through the log's given backend, if any (a simulated disk holds both), before
    // the log is open; else as the real backends see them.
    let checkpoint_dir = dir.join(checkpoint::CHECKPOINT_DIR);
    let checkpoints = match &wal_options.io {
        Some(io) => checkpoint::Checkpoints::new(std::sync::Arc::clone(io), checkpoint_dir),
        None => checkpoint::Checkpoints::on_file_system(checkpoint_dir),
    };
    let listed: Vec<PathBuf> = checkpoints.list()?.into_iter().map(|(_, path)| path).collect();
    let decision = recovery::decide(
        &dir.join(WAL_DIR),
        &listed,
        options.recovery,
        &wal_options,
        |path| checkpoints.replay_from(path),
        |path| {
            let shared = Shared::new(options.clone());
            let info = checkpoints.read(Some(&shared), path)?;
            Ok((info.covers(), shared))
        },
    )?;
    let recovery = decision.recovery();
    let recovery::Decision { checkpoint, log, log_options, .. } = decision;
    // A checkpoint left unfinished by a crash holds nothing the log does not.
    checkpoints.remove_unfinished()?;
    let wal = Wal::open_surveyed(log, log_options)
        .map_err(|error| Error::log("opening the log", error))?;
    let (base, shared) = match checkpoint {
        Some((covers, shared)) => (
            checkpoint::Loaded { version: covers.version, replay_from: covers.replay_from },
            shared,
        ),
        None => {
            let nothing =
                checkpoint::Loaded { version: CommitVersion::ZERO, replay_from: LogPosition::ZERO };
            (nothing, Shared::new(options.clone()))
        }
    };
    let replayed = replay(&shared, &wal, &dir.join(WAL_DIR), base)?;
    load::finish(&shared, load::threads());
    if options.durability == Durability::None {
        // Nothing this session commits is logged; the versions it hands out are never in
        // the log, and so never meet the orphans.
        wal.close().map_err(|error| Error::log("closing the log after recovery", error))?;
        return Ok(Opened { shared, log: None, version: replayed.version, recovery });
    }
    if replayed.orphans > 0 {
        wal.append_sync(record::RESET, &record::encode_reset(replayed.version))
            .map_err(|error| Error::log("logging the reset of unkept records", error))?;
    }
    let log = Log {
        wal,
        durability: options.durability,
        dir: dir.to_path_buf(),
        checkpointing: Mutex::new(()),
        checkpointed_end: AtomicU64::new(base.replay_from.get()),
    };
    Ok(Opened { shared, log: Some(log), version: replayed.version, recovery })
}

/// What [`open_log`] recovered.
pub(crate) struct Opened {
    pub(crate) shared: Shared,
    pub(crate) log: Option<Log>,
    pub(crate) version: CommitVersion,
    pub(crate) recovery: Recovery,
}

/// What a replay recovered.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The version of the last commit applied.
    pub(crate) version: CommitVersion,
    /// Commit records not applied, for want of a predecessor.
    pub(crate) orphans: usize,
}

/// Applies every commit of `wal` (in directory `wal_dir`) to `shared`, in version order,
/// as far as they run contiguously.
fn replay(
    shared: &Shared,
    wal: &Wal,
    wal_dir: &Path,
    base: checkpoint::Loaded,
) -> Result<Replayed> {
    let first = wal.first_position();
    if first > base.replay_from {
        let reason = format!(
            "the log starts at position {first}, after position {} where replay must start \
             (a deleted segment not covered by a checkpoint)",
            base.replay_from
        );
        let gap = inmem_wal::Error::Inconsistent { path: wal_dir.to_path_buf(), reason };
        return Err(Error::log("recovering", gap));
    }
    let reader =
        wal.read_from(base.replay_from).map_err(|error| Error::log("reading the log", error))?;
    let guard = epoch::pin();
    let mut replay = Replay {
        shared,
        loader: Loader::new(shared),
        base: base.version,
        applied: base.version,
        waiting: BTreeMap::new(),
    };
    let long =
        wal.end_position().get().saturating_sub(base.replay_from.get()) >= DECODE_AHEAD_BYTES_MIN;
    if long && load::threads() > 1 {
        replay.decoded_ahead(reader, &guard)?;
    } else {
        for record in reader {
            replay.record(decode(record), &guard)?;
        }
    }
    let Replay { loader, applied, waiting, .. } = replay;
    loader.finish();
    Ok(Replayed { version: applied, orphans: waiting.len() })
}

/// Logs shorter than this (from where replay starts) are read, decoded and applied in one
/// thread: starting another costs more than it saves.
const DECODE_AHEAD_BYTES_MIN: u64 = 4 << 20;
/// Records decoded ahead in one batch, and batches in flight: what the applying thread may
/// fall behind by.
const DECODED_BATCH_RECORDS: usize = 256;
const DECODED_BATCHES_QUEUED: usize = 4;

/// A log record, read, verified and decoded.
enum Decoded {
    Commit(DecodedCommit, LogPosition),
    Reset(CommitVersion, LogPosition),
    /// A record of a kind the engine does not write.
    Unknown(LogPosition),
}

/// Decodes a record the log read (or the error reading it).
fn decode(record: inmem_wal::Result<inmem_wal::Record>) -> Result<Decoded> {
    let record = record.map_err(|error| Error::log("reading the log", error))?;
    let position = record.position;
    if record.kind == record::COMMIT {
        Ok(Decoded::Commit(record::decode(&record.payload, position)?, position))
    } else if record.kind == record::RESET {
        Ok(Decoded::Reset(record::decode_reset(&record.payload, position)?, position))
    } else {
        Ok(Decoded::Unknown(position))
    }
}

/// A replay under way: commits applied in version order over a contiguous run from the
/// checkpoint's version, those that came before their predecessor waiting for it.
struct Replay<'s> {
    shared: &'s Shared,
    loader: Loader<'s>,
    /// The checkpoint's version: commits at or below it are in it already.
    base: CommitVersion,
    applied: CommitVersion,
    waiting: BTreeMap<CommitVersion, DecodedCommit>,
}

impl Replay<'_> {
    /// Takes the next record of the log, in log order.
    fn record(&mut self, decoded: Result<Decoded>, guard: &Guard) -> Result<()> {
        let corrupt = |position: LogPosition, reason| Error::CorruptRecord {
            position: position.get(),
            reason,
        };
        match decoded? {
            Decoded::Commit(commit, position) => {
                if commit.version <= self.base {
                    // In the checkpoint already: logged after the position it starts replay at.
                    return Ok(());
                }
                if commit.version <= self.applied || self.waiting.contains_key(&commit.version) {
                    return Err(corrupt(position, "a version logged twice"));
                }
                if self.waiting.is_empty() && commit.version == self.applied.next() {
                    // In order, as records mostly are: no need to wait in the map.
                    self.apply(commit, guard);
                    return Ok(());
                }
                self.waiting.insert(commit.version, commit);
                while let Some(next) = self.waiting.remove(&self.applied.next()) {
                    self.apply(next, guard);
                }
                Ok(())
            }
            Decoded::Reset(version, position) => {
                if version != self.applied {
                    return Err(corrupt(
                        position,
                        "a reset to another version than the one recovered",
                    ));
                }
                self.waiting.clear();
                Ok(())
            }
            Decoded::Unknown(position) => Err(corrupt(position, "an unknown record kind")),
        }
    }

    /// Links a recovered commit's versions: the next in version order.
    fn apply(&mut self, commit: DecodedCommit, guard: &Guard) {
        debug_assert_eq!(commit.version, self.applied.next(), "applied in version order");
        self.shared.range_deletes.install(&commit.prefixes, commit.version);
        for (key, node) in commit.writes {
            self.loader.link(key, Owned::new(node), guard);
        }
        self.applied = commit.version;
    }

    /// Takes the records of `reader` read and decoded ahead by another thread, in batches,
    /// so that reading, verifying and decoding the log overlaps with linking it. The
    /// records arrive in log order and the decoding thread stops after the first error, so
    /// the outcome is the one thread's.
    fn decoded_ahead(&mut self, reader: inmem_wal::LogReader, guard: &Guard) -> Result<()> {
        std::thread::scope(|scope| {
            let (batches, decoded) = sync_channel::<Vec<Result<Decoded>>>(DECODED_BATCHES_QUEUED);
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(DECODED_BATCH_RECORDS);
                for record in reader {
                    let record = decode(record);
                    let failed = record.is_err();
                    batch.push(record);
                    if failed || batch.len() == DECODED_BATCH_RECORDS {
                        let full = std::mem::replace(
                            &mut batch,
                            Vec::with_capacity(DECODED_BATCH_RECORDS),
                        );
                        // The applying thread stopped at an error: nothing more is needed.
                        if batches.send(full).is_err() || failed {
                            return;
                        }
                    }
                }
                let _ = batches.send(batch);
            });
            for batch in decoded {
                for record in batch {
                    self.record(record, guard)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::expect_used, reason = "a failed expectation in a test helper fails the test")]
mod tests {
    use super::*;
    use crate::bytes::Bytes;
    use crate::version::VersionNode;
    use crate::Database;

    /// Appends a commit record of `key` = `value` at `version` to the log in `dir`.
    fn log_commit(wal: &Wal, version: u64, key: &[u8], value: &[u8]) {
        let node = VersionNode::put(Bytes::copy_from(value), 0);
        let mut payload = record::encode([(key, &node)].into_iter());
        record::set_version(&mut payload, CommitVersion::new(version));
        wal.append_sync(record::COMMIT, &payload).expect("append");
    }

    fn raw_log(dir: &Path) -> Wal {
        Wal::open(dir.join(WAL_DIR), WalOptions::default()).expect("open log")
    }

    #[test]
    fn records_out_of_version_order_are_applied_in_order_and_orphans_are_voided() {
        let dir = tempfile::tempdir().unwrap();
        let wal = raw_log(dir.path());
        // 1, then 3 before 2 (as two committers may append), then 5 whose 4 never came.
        log_commit(&wal, 1, b"k", b"one");
        log_commit(&wal, 3, b"k", b"three");
        log_commit(&wal, 2, b"k", b"two");
        log_commit(&wal, 5, b"k", b"five");
        wal.close().expect("close");

        let options = Options::default().retention(crate::Retention::KeepAll);
        let db = Database::open(dir.path(), options.clone()).expect("open");
        assert_eq!(db.visible_version().get(), 3, "applied 1, 2, 3; 5 lacks 4");
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"three"[..]));
        let history: Vec<_> = db.history(b"k", 10, None).unwrap();
        let values: Vec<_> =
            history.iter().map(|v| v.value.as_ref().map(|b| b.as_slice().to_vec())).collect();
        assert_eq!(values, [Some(b"three".to_vec()), Some(b"two".to_vec()), Some(b"one".to_vec())]);
        // Version 4 is handed out again; the reset logged at open voids the old 5.
        assert_eq!(db.put(b"k", b"four").unwrap().get(), 4);
        drop(db);

        let db = Database::open(dir.path(), options).expect("reopen");
        assert_eq!(db.visible_version().get(), 4);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"four"[..]));
        assert_eq!(db.put(b"k", b"five again").unwrap().get(), 5);
    }

    /// Appends, without waiting, a commit record of `key` = `value` at `version`.
    fn log_commit_unsynced(wal: &Wal, version: u64, key: &[u8], value: &[u8]) -> LogPosition {
        let node = VersionNode::put(Bytes::copy_from(value), 0);
        let mut payload = record::encode([(key, &node)].into_iter());
        record::set_version(&mut payload, CommitVersion::new(version));
        wal.append(record::COMMIT, &payload).expect("append")
    }

    #[test]
    fn a_long_log_decoded_ahead_is_replayed_as_one_thread_replays_it() {
        // Several MiB of log, so that another thread reads and decodes it ahead: records
        // out of version order at many places (every 1000th pair swapped), then orphans
        // (a gap), then, in a second directory, a version logged twice at the very end.
        let value = [7u8; 200];
        let versions = 30_000u64;
        let order = |n: u64| {
            if n % 1000 == 2 {
                n + 1
            } else if n % 1000 == 3 {
                n - 1
            } else {
                n
            }
        };
        for twice in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let wal = raw_log(dir.path());
            for n in 1..=versions {
                let key = format!("key/{:06}", order(n) % 7000);
                log_commit_unsynced(&wal, order(n), key.as_bytes(), &value);
            }
            let last = if twice {
                log_commit_unsynced(&wal, versions - 5, b"again", b"twice")
            } else {
                log_commit_unsynced(&wal, versions + 2, b"orphan", b"no predecessor")
            };
            assert!(wal.end_position().get() > DECODE_AHEAD_BYTES_MIN, "a long log");
            wal.close().expect("close");
            let opened = Database::open(dir.path(), Options::default());
            if twice {
                let error = opened.expect_err("refused");
                assert!(
                    matches!(error, Error::CorruptRecord { position, reason: "a version logged twice" } if position == last.get()),
                    "{error}"
                );
                continue;
            }
            let db = opened.expect("open");
            assert_eq!(db.visible_version().get(), versions, "the orphan is not applied");
            assert_eq!(db.stats().keys, 7000);
            let newest = |n: u64| db.history(format!("key/{n:06}"), 1, None).unwrap()[0].version;
            // Version 28002 (logged after 28003) wrote key 2 last, 28003 key 3.
            assert_eq!(newest(2).get(), 28_002);
            assert_eq!(newest(3).get(), 28_003);
            assert_eq!(db.history(b"key/000003", 8, None).unwrap().len(), 5, "3, ..., 28003");
            assert!(db.get(b"orphan").unwrap().is_none());
            assert_eq!(db.get(b"key/000005").unwrap().as_deref(), Some(&value[..]));
        }
    }

    #[test]
    fn records_a_checkpoint_covers_are_skipped_by_replay() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Options::default()).expect("open");
        for value in [&b"1"[..], b"2", b"3"] {
            db.put(b"k", value).expect("put");
        }
        // A checkpoint at 3 whose replay starts at the log's beginning: all of the log's
        // records are at or below its version.
        let checkpoints = dir.path().join(checkpoint::CHECKPOINT_DIR);
        checkpoint::write(&db.shared, &checkpoints, CommitVersion::new(3), LogPosition::ZERO)
            .expect("checkpoint");
        drop(db);
        let db = Database::open(dir.path(), Options::default()).expect("reopen");
        assert_eq!(db.visible_version().get(), 3);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(db.put(b"k", b"4").unwrap().get(), 4);
    }

    #[test]
    fn a_version_logged_twice_is_an_error_naming_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let wal = raw_log(dir.path());
        log_commit(&wal, 1, b"a", b"x");
        let second = wal.end_position().get();
        log_commit(&wal, 1, b"b", b"y");
        wal.close().expect("close");
        let error = Database::open(dir.path(), Options::default()).expect_err("refused");
        assert!(
            matches!(error, Error::CorruptRecord { position, reason: "a version logged twice" } if position == second),
            "{error}"
        );
    }

    #[test]
    fn a_record_of_an_unknown_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = raw_log(dir.path());
        let kind = inmem_wal::FrameKind::new(99).unwrap();
        wal.append_sync(kind, b"?").expect("append");
        wal.close().expect("close");
        let error = Database::open(dir.path(), Options::default()).expect_err("refused");
        assert!(matches!(error, Error::CorruptRecord { reason: "an unknown record kind", .. }));
    }
}
