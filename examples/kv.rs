//! An in-memory key-value store: puts, a snapshot that does not move, an atomic
//! transaction, a prefix scan and a range delete.
//!
//! Run with `cargo run --example kv`.

use inmem::{Bytes, Database};

fn main() -> Result<(), inmem::Error> {
    let db = Database::in_memory()?;

    // Each put is a commit of its own and returns its commit version.
    let first = db.put("fruit/apple", "red")?;
    db.put("fruit/banana", "yellow")?;
    db.put("veg/carrot", "orange")?;
    println!("first commit at version {first}");

    // A snapshot reads one version of the whole keyspace, whatever commits after it.
    let snapshot = db.snapshot();
    db.put("fruit/apple", "green")?;
    println!("snapshot sees apple = {}", text(snapshot.get("fruit/apple")?));
    println!("now           apple = {}", text(db.get("fruit/apple")?));

    // A transaction reads its own writes and commits atomically (retried on conflict).
    db.transaction(|txn| {
        let banana = txn.get("fruit/banana")?.unwrap_or_default();
        txn.put("fruit/banana", [banana.as_slice(), b" (ripe)"].concat())?;
        txn.delete("veg/carrot")
    })?;

    // Ordered prefix scans.
    for (key, value) in db.snapshot().prefix("fruit/") {
        println!("{} = {}", String::from_utf8_lossy(&key), String::from_utf8_lossy(&value));
    }

    // A range delete: every key under a prefix, in one commit.
    db.delete_prefix("fruit/")?;
    println!(
        "after delete_prefix: {} fruit, {} commits in all",
        db.snapshot().prefix("fruit/").count(),
        db.stats().commits
    );
    Ok(())
}

/// A value as text, or `(absent)`.
fn text(value: Option<Bytes>) -> String {
    value.map_or_else(|| "(absent)".to_owned(), |v| String::from_utf8_lossy(&v).into_owned())
}
