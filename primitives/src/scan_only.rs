//! Which of the primitives' keys readers only ever scan: the entries of their secondary
//! indexes (an event log's type index, a trace store's by-type, by-tag, by-time and
//! by-parent indexes, the run index's by-status, by-tag, by-created and by-parent indexes).
//! Each is an empty value under a key that a query finds by walking a prefix, never by a
//! point read, so the engine need not keep it in its hash index
//! ([`inmem_engine::Options::scan_only_keys`]); [`engine_options`] asks it not to.
//!
//! Records (KV values, events, heads, cells, traces, runs) stay in the hash index: they
//! are what point reads are for.

use inmem_engine::Options;

use crate::key::RUN_PREFIX_LEN;
use crate::tag::TypeTag;

/// Whether `key` is an entry of one of the built-in primitives' secondary indexes: a key
/// `run id | tag | sub-tag | ...` whose tag and sub-tag name one. Any other key (a record,
/// a custom primitive's key, a key of no primitive) is not.
///
/// ```
/// use inmem_primitives::{is_index_entry, KeyBuf, RunId, TypeTag};
///
/// let run = RunId::random();
/// let kv = KeyBuf::new(run, TypeTag::Kv).push_bytes(b"\x02 not a sub-tag").finish();
/// assert!(!is_index_entry(&kv));
/// ```
pub fn is_index_entry(key: &[u8]) -> bool {
    let (Some(&tag), Some(&sub_tag)) = (key.get(RUN_PREFIX_LEN), key.get(RUN_PREFIX_LEN + 1))
    else {
        return false;
    };
    match TypeTag::from_byte(tag) {
        Some(TypeTag::Event) => crate::event_log::is_index_sub_tag(sub_tag),
        Some(TypeTag::Trace) => crate::trace::is_index_sub_tag(sub_tag),
        Some(TypeTag::Run) => crate::run_index::is_index_sub_tag(sub_tag),
        _ => false,
    }
}

/// The engine's default options, with the primitives' index entries kept out of the hash
/// index ([`is_index_entry`]): what to open a database the primitives write with. Each
/// new event then inserts one hash-index entry instead of two, and each new trace one
/// instead of four or more; nothing else changes (the other options build on it as usual).
///
/// ```
/// use std::sync::Arc;
/// use inmem_engine::{Database, Durability};
/// use inmem_primitives::{engine_options, EventLog, RunId, Value};
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::open(dir.path(), engine_options().durability(Durability::Sync))?;
/// let events = EventLog::new(Arc::new(db));
/// let run = RunId::random();
/// events.append(run, "started", &Value::Null)?;
/// assert_eq!(events.read_by_type(run, "started")?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn engine_options() -> Options {
    Options::default().scan_only_keys(is_index_entry)
}
