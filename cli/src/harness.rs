//! The crash tests' workload and its check, shared by `inmem crashtest` (process kills)
//! and the power-loss tests (crash images of a simulated disk).
//!
//! Each transfer `t` takes three distinct accounts `a`, `b`, `c` of [`ACCOUNTS`] and an
//! amount `x`, moves `2x` out of `a` and `x` into each of `b` and `c`, stamps the three
//! with `t`, and writes `txn/<t>` = the three account numbers: four keys in one
//! transaction. [`check`] then says, of a recovered database, whether every acknowledged
//! transfer is there at its version and whether any is partly visible (the balances must
//! sum to zero, and each account's last writer must be a present transfer that names it).

use inmem::Database;

/// Accounts the transfers move money between.
pub const ACCOUNTS: u32 = 16;

/// A commit that was acknowledged: its transfer and the version `commit` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The transfer's number.
    pub txn: u64,
    /// Its commit version.
    pub version: u64,
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Violations {
    /// Acknowledged transfers missing, or at another version.
    pub lost: u64,
    /// Signs of a partly visible transfer.
    pub partial: u64,
    /// The first violation, in detail.
    pub first: Option<String>,
}

impl Violations {
    /// Counts an acknowledged commit missing or other than acknowledged, described by
    /// `detail` if it is the first violation.
    pub fn lost(&mut self, detail: String) {
        self.lost += 1;
        self.note(detail);
    }

    /// Counts a sign of a partly visible transaction, described by `detail` if it is the
    /// first violation.
    pub fn partial(&mut self, detail: String) {
        self.partial += 1;
        self.note(detail);
    }

    fn note(&mut self, detail: String) {
        if self.first.is_none() {
            self.first = Some(detail);
        }
    }
}

/// The number of commit `n` of writer `writer` in cycle `cycle`, in both crash workloads
/// (the transfers and the primitives steps): never 0, and distinct for every cycle, writer
/// (below 256) and commit (below 2^32).
pub fn txn_number(cycle: u64, writer: u64, n: u64) -> u64 {
    ((cycle + 1) << 40) | (writer << 32) | n
}

/// An account's key.
pub fn account_key(account: u32) -> Vec<u8> {
    format!("acct/{account:02}").into_bytes()
}

/// A transaction record's key.
pub fn txn_key(txn: u64) -> Vec<u8> {
    format!("txn/{txn:016x}").into_bytes()
}

/// An account's value: balance and the last transaction that wrote it.
pub fn account_value(balance: i64, txn: u64) -> [u8; 16] {
    let mut value = [0; 16];
    value[..8].copy_from_slice(&balance.to_le_bytes());
    value[8..].copy_from_slice(&txn.to_le_bytes());
    value
}

/// Reads an account's value; absent is zero, never written.
pub fn read_account(value: Option<&[u8]>) -> Option<(i64, u64)> {
    let Some(value) = value else { return Some((0, 0)) };
    let balance = i64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let txn = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((balance, txn))
}

/// Commits transfer `txn` and returns its version.
pub fn transfer(db: &Database, rng: &mut fastrand::Rng, txn: u64) -> Result<u64, String> {
    let mut accounts = [0u32; 3];
    for index in 0..3 {
        accounts[index] = loop {
            let account = rng.u32(0..ACCOUNTS);
            if !accounts[..index].contains(&account) {
                break account;
            }
        };
    }
    let amount = rng.i64(1..1000);
    let committed = db
        .transaction_with(Default::default(), |tx| {
            let mut record = Vec::with_capacity(12);
            for (index, &account) in accounts.iter().enumerate() {
                let value = tx.get(account_key(account))?;
                let Some((balance, _)) = read_account(value.as_deref()) else {
                    return Err(inmem::Error::InvalidOption {
                        name: "crashtest",
                        reason: "an account value is malformed",
                    });
                };
                let moved = if index == 0 { -2 * amount } else { amount };
                tx.put(account_key(account), account_value(balance + moved, txn))?;
                record.extend_from_slice(&account.to_le_bytes());
            }
            tx.put(txn_key(txn), record)
        })
        .map_err(|error| format!("transfer {txn}: {error}"))?;
    Ok(committed.version.get())
}

/// Checks the recovered `db` against every acknowledged commit.
pub fn check(db: &Database, acks: &[Ack]) -> Violations {
    let mut found = Violations::default();
    let snapshot = db.snapshot();
    let visible = snapshot.version().get();
    for ack in acks {
        let history = db.history(txn_key(ack.txn), 1, None).unwrap_or_default();
        match history.first() {
            Some(record) if record.version.get() == ack.version => {}
            Some(record) => {
                found.lost(format!(
                    "acknowledged transaction {} at version {} is at version {} (visible {visible})",
                    ack.txn, ack.version, record.version
                ));
            }
            None => {
                found.lost(format!(
                    "acknowledged transaction {} at version {} is missing (visible {visible})",
                    ack.txn, ack.version
                ));
            }
        }
    }
    let mut sum: i64 = 0;
    for account in 0..ACCOUNTS {
        let value = snapshot.get(account_key(account)).ok().flatten();
        let Some((balance, last)) = read_account(value.as_deref()) else {
            found.partial(format!("account {account} holds a malformed value"));
            continue;
        };
        sum += balance;
        if last == 0 {
            continue;
        }
        let record = snapshot.get(txn_key(last)).ok().flatten();
        let names_it = record.as_deref().is_some_and(|record| {
            record.chunks_exact(4).any(|chunk| chunk == account.to_le_bytes())
        });
        if !names_it {
            found.partial(format!(
                "account {account} was last written by transaction {last}, whose record is \
                 missing or does not name it: a transaction is partly visible"
            ));
        }
    }
    if sum != 0 {
        found.partial(format!("the balances sum to {sum}, not 0: a transfer is partly visible"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use inmem::Options;

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
        let db = Database::open(dir.path(), Options::default())
            .unwrap_or_else(|error| panic!("open: {error}"));
        (dir, db)
    }

    #[test]
    fn acknowledged_transfers_pass_the_check() {
        let (_dir, db) = db();
        let mut rng = fastrand::Rng::with_seed(1);
        let acks: Vec<Ack> = (1..=50)
            .map(|txn| Ack { txn, version: transfer(&db, &mut rng, txn).unwrap_or(0) })
            .collect();
        let found = check(&db, &acks);
        assert_eq!((found.lost, found.partial), (0, 0), "{:?}", found.first);
    }

    #[test]
    fn a_missing_acknowledged_commit_counts_as_lost() {
        let (_dir, db) = db();
        let mut rng = fastrand::Rng::with_seed(2);
        let version = transfer(&db, &mut rng, 1).unwrap_or(0);
        let acks = [Ack { txn: 1, version }, Ack { txn: 2, version: version + 1 }];
        let found = check(&db, &acks);
        assert_eq!(found.lost, 1);
        assert!(found.first.is_some_and(|first| first.contains("transaction 2")));
    }

    #[test]
    fn a_partly_visible_transfer_is_found() {
        let (_dir, db) = db();
        let mut rng = fastrand::Rng::with_seed(3);
        transfer(&db, &mut rng, 1).unwrap_or(0);
        // One account moved without the rest of a transfer: money appears, and its
        // stamp names a transaction that does not exist.
        db.put(account_key(0), account_value(5, 99)).unwrap_or_default();
        let found = check(&db, &[]);
        assert!(found.partial >= 1, "{found:?}");
    }
}
