//! A durable database: commit on a directory, close, reopen, and see what recovery did.
//!
//! Run with `cargo run --example durable`. The database lives in a temporary directory,
//! removed at the end.

use inmem::{Database, Durability, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // `Sync`: a commit returns once its log record is on stable storage (group commit).
    let options = Options::default().durability(Durability::Sync);

    let db = Database::open(dir.path(), options.clone())?;
    let backend = db.log_backend().map(ToString::to_string).unwrap_or_default();
    println!("opened {} (log backend: {backend})", dir.path().display());
    db.put("order/1", "paid")?;
    db.put("order/2", "shipped")?;
    let checkpoint = db.checkpoint()?; // also taken in the background as the log grows
    println!("checkpoint at version {}", checkpoint.version);
    db.put("order/3", "paid")?;
    db.delete("order/1")?;
    let last = db.visible_version();
    db.close()?; // dropping the database closes it too, without reporting an error

    // Reopening loads the checkpoint and replays the log after it.
    let db = Database::open(dir.path(), options)?;
    let recovery = db.recovery().ok_or("a database on a directory reports its recovery")?;
    println!(
        "reopened at version {} (was {last}): checkpoint version {}, {} log records in {} \
         segment(s), clean: {}",
        db.visible_version(),
        recovery.checkpoint_version,
        recovery.log.records,
        recovery.log.segments,
        recovery.is_clean(),
    );
    for (key, value) in db.snapshot().prefix("order/") {
        println!("{} = {}", String::from_utf8_lossy(&key), String::from_utf8_lossy(&value));
    }
    Ok(())
}
