//! Commit validation as the model predicts it: first committer wins (docs/architecture.md
//! §4, The commit path; `engine/src/txn/validate.rs`).

use std::collections::BTreeSet;

use inmem_engine::{CommitVersion, Error};

use crate::model::Model;
use crate::span::Overlap;
use crate::txn::TxnModel;
use crate::Key;

/// What the model says a transaction's commit must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No writes and no range deletes: commits at its read version.
    Empty,
    /// Commits at the next version.
    Commits,
    /// Conflicts only if the engine cannot tell a scanned range that holds no key under a
    /// newer range delete's prefix from one that does (see [`Overlap::EngineOnly`]); then
    /// on one of these.
    MayConflict(BTreeSet<Key>),
    /// Conflicts, naming one of these keys.
    Conflicts(BTreeSet<Key>),
}

impl Model {
    /// Whether `key` changed after `read_version`: its chain holds a user write newer than
    /// that (a delete of a key without a chain linked nothing, so it is none; the purge's
    /// tombstones change nothing a reader observes), or a range delete committed after it
    /// covers the key.
    pub fn changed_since(&self, key: &[u8], read_version: u64) -> bool {
        let newest_user = self.chain(key).iter().rev().find(|w| !w.reaped);
        newest_user.is_some_and(|w| w.version > read_version)
            || self.range_deletes_since(read_version).any(|r| r.covers(key))
    }

    /// Predicts `txn`'s commit, in the order the engine validates: the written keys in key
    /// order (the first that changed is the conflict), then, if serializable, the keys it
    /// read and those in the spans it scanned, and the spans that overlap a newer range
    /// delete's prefix (named by the prefix). The transaction's own range deletes are
    /// validated as nothing.
    pub fn verdict(&self, txn: &TxnModel) -> Verdict {
        if txn.buffer.is_empty() {
            return Verdict::Empty;
        }
        let read_version = txn.read_version;
        let changed = |key: &Key| self.changed_since(key, read_version);
        if let Some(key) = txn.buffer.writes.keys().find(|key| changed(key)) {
            return Verdict::Conflicts(BTreeSet::from([key.clone()]));
        }
        if !txn.serializable {
            return Verdict::Commits;
        }
        let scanned =
            self.written_keys().filter(|key| txn.read_ranges.iter().any(|r| r.contains(key)));
        let mut candidates: BTreeSet<Key> =
            txn.read_keys.iter().chain(scanned).filter(|key| changed(key)).cloned().collect();
        let mut certain = !candidates.is_empty();
        for range_delete in self.range_deletes_since(read_version) {
            for span in &txn.read_ranges {
                match span.overlaps_prefix(&range_delete.prefix) {
                    Overlap::Yes => {
                        candidates.insert(range_delete.prefix.clone());
                        certain = true;
                    }
                    Overlap::EngineOnly => {
                        candidates.insert(range_delete.prefix.clone());
                    }
                    Overlap::No => {}
                }
            }
        }
        match (certain, candidates.is_empty()) {
            (true, _) => Verdict::Conflicts(candidates),
            (false, true) => Verdict::Commits,
            (false, false) => Verdict::MayConflict(candidates),
        }
    }

    /// Checks `outcome`, what the engine's commit of `txn` returned, against
    /// [`Model::verdict`], and follows it: a commit takes the next version, a conflict is
    /// counted. Returns the verdict it checked by, or what disagrees.
    pub fn check_commit(
        &mut self,
        txn: &TxnModel,
        outcome: &Result<CommitVersion, Error>,
    ) -> Result<Verdict, String> {
        let verdict = self.verdict(txn);
        match (outcome, &verdict) {
            (Ok(version), Verdict::Empty) => {
                if version.get() != txn.read_version {
                    return Err(format!(
                        "a commit without writes returned {version:?}, not its read version {}",
                        txn.read_version
                    ));
                }
            }
            (Ok(version), Verdict::Commits | Verdict::MayConflict(_)) => {
                let expected = self.commit(&txn.buffer);
                if version.get() != expected {
                    return Err(format!(
                        "committed at {version:?}, not at the next version {expected}"
                    ));
                }
            }
            (
                Err(Error::Conflict { key }),
                Verdict::Conflicts(keys) | Verdict::MayConflict(keys),
            ) => {
                if !keys.contains(key.as_slice()) {
                    return Err(format!("conflict on {key:?}, expected one of {keys:?}"));
                }
                self.count_conflict();
            }
            (got, verdict) => {
                return Err(format!(
                    "commit returned {got:?}, the model says {verdict:?} ({txn:?})"
                ));
            }
        }
        Ok(verdict)
    }
}
