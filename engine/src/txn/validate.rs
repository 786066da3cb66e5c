//! Commit-time validation, inside the sequencer.
//!
//! Snapshot isolation (first committer wins): a commit fails if any key it writes has a
//! user-written version newer than its read version. Serializable adds the read set: every
//! key it read, and every range it scanned, must have no user-written version newer than its
//! read version either. A range delete committed after the read version (`range_delete.rs`)
//! changes every key under its prefix: a commit that writes or read one, or scanned a range
//! overlapping it, fails too. Versions written by the engine's maintenance (the TTL reaper's
//! tombstones, a range delete's purge) change nothing a reader could observe and never
//! cause a conflict.

use std::ops::{Bound, ControlFlow};

use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::index::ChainRef;
use crate::range_delete::Hiding;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::sync::epoch::Guard;
use crate::txn::read_set::ReadSet;

/// What a commit must prove before it takes a version.
pub(crate) enum Validation<'a> {
    /// Nothing: a write that read nothing (a one-shot put or delete) is serializable at
    /// whatever point it commits.
    Blind,
    /// Snapshot isolation at `read_version`.
    Snapshot { read_version: u64 },
    /// Serializable at `read_version`, with what the transaction read.
    Serializable { read_version: u64, reads: &'a ReadSet },
}

/// A key a commit writes or read, with the chain it resolved for it before the sequencer's
/// lock if any (`None` for a read, and for a delete of a key that had none).
pub(crate) type WrittenKey<'w> = (&'w Bytes, Option<&'w ChainRef>);

impl Shared {
    /// Checks `validation` for a commit that writes `writes`. Called under the sequencer's
    /// lock.
    pub(crate) fn validate<'w>(
        &self,
        writes: impl Iterator<Item = WrittenKey<'w>>,
        validation: &Validation<'_>,
        guard: &Guard,
    ) -> Result<()> {
        let (read_version, reads) = match *validation {
            Validation::Blind => return Ok(()),
            Validation::Snapshot { read_version } => (read_version, None),
            Validation::Serializable { read_version, reads } => (read_version, Some(reads)),
        };
        let hiding = self.range_deletes.hiding();
        let conflict = self.first_changed_key(writes, read_version, &hiding, guard).or_else(|| {
            reads.and_then(|reads| self.first_changed_read(reads, read_version, &hiding, guard))
        });
        match conflict {
            None => Ok(()),
            Some(key) => Err(self.conflict(key)),
        }
    }

    /// The first of `keys` that has a user version newer than `read_version`.
    ///
    /// A chain resolved before the lock and still linked is the key's chain (a key has one
    /// linked chain, and under the lock none is removed), so it is read as it is, without a
    /// second lookup. One that was unlinked meanwhile, or a key without one (a read, or a
    /// delete of a key that had none), is looked up: a commit may have created the key's
    /// chain since.
    fn first_changed_key<'w>(
        &self,
        keys: impl Iterator<Item = WrittenKey<'w>>,
        read_version: u64,
        hiding: &Hiding,
        guard: &Guard,
    ) -> Option<Bytes> {
        let index_guard = self.index.guard();
        for (key, resolved) in keys {
            if hiding.covers_newer(key, read_version) {
                return Some(key.clone());
            }
            let newest = match resolved.filter(|chain| self.index.is_linked(chain)) {
                Some(chain) => chain.newest_user_version(guard),
                None => self
                    .index
                    .get(key, &index_guard, guard)
                    .map_or(0, |chain| chain.newest_user_version(guard)),
            };
            if newest > read_version {
                return Some(key.clone());
            }
        }
        None
    }

    fn first_changed_read(
        &self,
        reads: &ReadSet,
        read_version: u64,
        hiding: &Hiding,
        guard: &Guard,
    ) -> Option<Bytes> {
        let keys = reads.keys().map(|key| (key, None));
        if let Some(key) = self.first_changed_key(keys, read_version, hiding, guard) {
            return Some(key);
        }
        reads.ranges().iter().find_map(|(start, end)| {
            hiding
                .overlapping_newer(start, end, read_version)
                .or_else(|| self.first_changed_in(start, end, read_version, guard))
        })
    }

    fn first_changed_in(
        &self,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        read_version: u64,
        guard: &Guard,
    ) -> Option<Bytes> {
        if crate::bounds::bounds_are_empty(start, end) {
            return None;
        }
        let bounds = (start.as_ref().map(Bytes::as_slice), end.as_ref().map(Bytes::as_slice));
        let mut changed = None;
        self.index.scan(bounds, guard, |key, chain| {
            if chain.newest_user_version(guard) > read_version {
                changed = Some(key.clone());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        changed
    }

    #[cold]
    fn conflict(&self, key: Bytes) -> Error {
        Counters::add(&self.counters.conflicts, 1);
        Error::Conflict { key }
    }
}
