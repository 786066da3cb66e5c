//! An open transaction as the model follows it: what it read at, what it buffered, and what
//! a serializable one read.

use std::collections::BTreeSet;

use inmem_engine::{Error, Limit};

use crate::buffer::Buffer;
use crate::limits::check_limit;
use crate::span::Span;
use crate::Key;

/// An open transaction's read version, buffer and read set.
#[derive(Debug)]
pub struct TxnModel {
    /// The version its reads see.
    pub read_version: u64,
    /// Whether its commit validates its read set too.
    pub serializable: bool,
    /// What its commit applies.
    pub buffer: Buffer,
    /// The keys it read (serializable only): not those its buffer answered.
    pub read_keys: BTreeSet<Key>,
    /// The spans it scanned (serializable only).
    pub read_ranges: Vec<Span>,
}

impl TxnModel {
    /// A transaction that reads at `read_version` and has done nothing yet.
    pub fn new(read_version: u64, serializable: bool) -> TxnModel {
        TxnModel {
            read_version,
            serializable,
            buffer: Buffer::default(),
            read_keys: BTreeSet::new(),
            read_ranges: Vec::new(),
        }
    }

    /// Writes and range deletes, as `Transaction::write_count` counts them.
    pub fn write_count(&self) -> usize {
        self.buffer.write_count()
    }

    /// Records a read of `key` the buffer did not answer: a serializable transaction
    /// records each key once, within `reads_max` keys and ranges.
    pub(crate) fn record_key(&mut self, key: &[u8], reads_max: usize) -> Result<(), Error> {
        if !self.serializable || self.read_keys.contains(key) {
            return Ok(());
        }
        check_limit(Limit::TransactionReads, self.reads() + 1, reads_max)?;
        self.read_keys.insert(key.to_vec());
        Ok(())
    }

    /// Records a scan of `span`: a serializable transaction records each scan, within
    /// `reads_max` keys and ranges.
    pub(crate) fn record_span(&mut self, span: &Span, reads_max: usize) -> Result<(), Error> {
        if !self.serializable {
            return Ok(());
        }
        check_limit(Limit::TransactionReads, self.reads() + 1, reads_max)?;
        self.read_ranges.push(span.clone());
        Ok(())
    }

    /// Keys and ranges recorded.
    fn reads(&self) -> usize {
        self.read_keys.len() + self.read_ranges.len()
    }
}
