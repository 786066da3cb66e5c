//! The read set: what a serializable transaction read, re-checked at commit.
//!
//! Point reads record keys; scans record their whole requested range (conservatively: a
//! scan stopped early still protects the rest of its range), so that a commit into the
//! range after the snapshot (a phantom) is a conflict too.

use std::collections::HashSet;
use std::ops::Bound;

use crate::bytes::Bytes;
use crate::error::{Error, Limit, Result};

/// Keys and ranges a serializable transaction read from its snapshot.
#[derive(Debug, Default)]
pub(crate) struct ReadSet {
    keys: HashSet<Bytes>,
    ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
}

impl ReadSet {
    pub(crate) fn record_key(&mut self, key: &[u8], reads_max: usize) -> Result<()> {
        if self.keys.contains(key) {
            return Ok(());
        }
        self.check_room(reads_max)?;
        self.keys.insert(Bytes::copy_from(key));
        Ok(())
    }

    pub(crate) fn record_range(
        &mut self,
        start: Bound<Bytes>,
        end: Bound<Bytes>,
        reads_max: usize,
    ) -> Result<()> {
        self.check_room(reads_max)?;
        self.ranges.push((start, end));
        Ok(())
    }

    fn check_room(&self, reads_max: usize) -> Result<()> {
        let recorded = self.keys.len() + self.ranges.len();
        if recorded >= reads_max {
            return Err(Error::LimitExceeded {
                limit: Limit::TransactionReads,
                actual: recorded as u64 + 1,
                max: reads_max as u64,
            });
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.keys.iter()
    }

    pub(crate) fn ranges(&self) -> &[(Bound<Bytes>, Bound<Bytes>)] {
        &self.ranges
    }
}
