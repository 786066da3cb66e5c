//! Writes the format fixture: the small database directory `tests/format_fixture.rs`
//! opens, checking exactly what it recovers (that test also calls [`write`] to check this
//! build still writes the same layout). Run it only to write a new fixture after a
//! deliberate format change (see `docs/format.md`):
//!
//! ```sh
//! cargo run --example format_fixture -- tests/fixtures/log-v<L>-checkpoint-v<C>
//! ```
//!
//! The directory holds a checkpoint and a log tail after it, written with `Durability::Sync`:
//! puts, deletes, values with a time to live (one that never expires in practice, one that
//! has expired before anyone reads it) and a range delete with a put after it.

use std::path::Path;
use std::time::Duration;

use inmem::wal::WalOptions;
use inmem::{CommitVersion, Database, Durability, Options};

/// The options the fixture is written and read with: no background maintenance while it is
/// written (so nothing but the commits below reaches the log) and no automatic checkpoint.
pub fn options() -> Options {
    Options::default()
        .durability(Durability::Sync)
        .maintenance_interval(Duration::from_secs(3600))
        .checkpoint_log_bytes(0)
}

/// Small segments, so that the fixture is small.
pub fn log_options() -> WalOptions {
    WalOptions::default().segment_size(32 << 10).max_record_bytes(8 << 10)
}

/// A time to live of about a hundred years.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: format_fixture <new directory>")?;
    if Path::new(&dir).exists() {
        return Err(format!("{dir} exists: remove it first").into());
    }
    let (checkpoint, last) = write(Path::new(&dir))?;
    println!("wrote {dir}: checkpoint at version {checkpoint}, last version {last}");
    Ok(())
}

/// Writes the fixture's commits into a new database at `dir` and closes it; returns the
/// checkpoint's version and the last commit's. `tests/format_fixture.rs` also calls it, to
/// check that this build still writes the fixture's layout.
pub fn write(dir: &Path) -> Result<(CommitVersion, CommitVersion), Box<dyn std::error::Error>> {
    let db = Database::open_with_log_options(dir, options(), log_options())?;

    // Before the checkpoint (versions 1-6).
    db.put("a/1", "one")?;
    db.put("a/2", "two")?;
    db.put("b/1", "bee")?;
    db.put_with_ttl("ttl/long", "lives", FOREVER)?;
    db.delete("a/2")?;
    db.transaction(|txn| {
        txn.put("r/1", "r-one")?;
        txn.put("r/2", "r-two")
    })?;
    let checkpoint = db.checkpoint()?;

    // The log tail after it (versions 7-14).
    db.put("a/1", "uno")?;
    db.delete("b/1")?;
    db.put_with_ttl("ttl/tail", "also lives", FOREVER)?;
    db.put_with_ttl("ttl/gone", "expired", Duration::from_millis(1))?;
    db.put("r/3", "r-three")?;
    db.delete_prefix("r/")?;
    db.put("r/4", "r-four")?;
    db.transaction(|txn| {
        txn.put("c/1", "see")?;
        txn.put("c/2", "sea")
    })?;
    let last = db.visible_version();
    db.close()?;
    Ok((checkpoint.version, last))
}
