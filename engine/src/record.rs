//! The commit record: what one commit puts in the write-ahead log, and how recovery reads
//! it back.
//!
//! A record is encoded from the commit's version nodes before the commit enters the
//! sequencer, with a placeholder version; the sequencer's version is patched in (eight
//! bytes at offset 0) once it is known, after the sequencer's lock is released.
//!
//! # Format
//!
//! The payload of a log frame of kind [`COMMIT`] (the frame around it, with its length,
//! position and checksum, is the log's: `wal/src/format.rs`). Every integer is
//! little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | commit version (`u64`, at least 1) |
//! | 8 | 4 | number of writes `n` (`u32`, at least 1) |
//! | 12 | | `n` writes, back to back: first the range deletes, in strictly ascending prefix order, then the writes of single keys, in strictly ascending key order |
//!
//! Each write:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | operation: [`OP_PUT`], [`OP_DELETE`] (a user's), [`OP_REAP`] (a maintenance tombstone: the TTL reaper's, or a range delete's purge), [`OP_DELETE_PREFIX`] (a range delete: its key is the prefix; see `range_delete.rs`) |
//! | 1 | 4 | key length `k` (`u32`) |
//! | 5 | `k` | key bytes |
//! | puts only: `5 + k` | 8 | absolute expiry in ms since the Unix epoch (`u64`; 0: never) |
//! | puts only: `13 + k` | 4 | value length `m` (`u32`) |
//! | puts only: `17 + k` | `m` | value bytes |
//!
//! Nothing follows the last write. A frame of kind [`RESET`] carries one `u64`: the
//! version recovery stopped at when it found records it could not keep (a commit whose
//! predecessor never reached the log). Every record before the reset with a greater
//! version is void: the versions after it are handed out again.

use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::version::{CommitVersion, Origin, VersionNode};
use inmem_wal::{FrameKind, LogPosition};

/// The log frame kind of a commit record.
pub(crate) const COMMIT: FrameKind = match FrameKind::new(16) {
    Some(kind) => kind,
    None => unreachable!(),
};

/// The log frame kind of a reset (see the module doc).
pub(crate) const RESET: FrameKind = match FrameKind::new(17) {
    Some(kind) => kind,
    None => unreachable!(),
};

/// A put of a value.
pub(crate) const OP_PUT: u8 = 0;
/// A user's delete.
pub(crate) const OP_DELETE: u8 = 1;
/// A maintenance tombstone (the TTL reaper's, or a range delete's purge).
pub(crate) const OP_REAP: u8 = 2;
/// A range delete of every key starting with the write's key, older than its commit.
pub(crate) const OP_DELETE_PREFIX: u8 = 3;

/// Bytes of a record before its first write.
pub(crate) const HEADER_LEN: usize = 12;
/// Bytes of a write besides its key and value.
pub(crate) const WRITE_OVERHEAD: usize = 17;

/// Encodes a commit of `writes` (in key order) with version 0, to be patched by
/// [`set_version`].
pub(crate) fn encode<'a>(
    writes: impl Iterator<Item = (&'a [u8], &'a VersionNode)> + Clone,
) -> Vec<u8> {
    encode_with_prefixes(&[], writes)
}

/// Encodes a commit of range deletes of `prefixes` (in order) and `writes` (in key order)
/// with version 0, to be patched by [`set_version`].
pub(crate) fn encode_with_prefixes<'a>(
    prefixes: &[Bytes],
    writes: impl Iterator<Item = (&'a [u8], &'a VersionNode)> + Clone,
) -> Vec<u8> {
    // Sized exactly up front: a commit's record is built once, on the commit path.
    let len = prefixes.iter().fold(HEADER_LEN, |len, prefix| len + 5 + prefix.len());
    let len = writes.clone().fold(len, |len, (key, node)| {
        let value = node.value().map_or(0, |value| 12 + value.len());
        len + 5 + key.len() + value
    });
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut count: u32 = 0;
    for prefix in prefixes {
        count += 1;
        out.push(OP_DELETE_PREFIX);
        put_bytes(&mut out, prefix);
    }
    for (key, node) in writes {
        count += 1;
        out.push(op_of(node));
        put_bytes(&mut out, key);
        put_value(&mut out, node);
    }
    out[8..HEADER_LEN].copy_from_slice(&count.to_le_bytes());
    debug_assert_eq!(out.len(), len, "the record's size was computed exactly");
    out
}

/// The operation byte of `node`: a put, a user's delete or the reaper's tombstone.
pub(crate) fn op_of(node: &VersionNode) -> u8 {
    match (node.value(), node.origin()) {
        (Some(_), _) => OP_PUT,
        (None, Origin::User) => OP_DELETE,
        (None, Origin::Reaper) => OP_REAP,
    }
}

/// Writes what follows the operation byte of a put (its expiry and value); nothing for a
/// tombstone. Checkpoints store versions this way too.
pub(crate) fn put_value(out: &mut Vec<u8>, node: &VersionNode) {
    if let Some(value) = node.value() {
        out.extend_from_slice(&node.expires_at_ms().to_le_bytes());
        put_bytes(out, value.as_slice());
    }
}

/// Reads the node of operation `op` (what [`put_value`] wrote after it), unversioned, or
/// says what is wrong.
pub(crate) fn read_node(
    op: u8,
    reader: &mut Reader<'_>,
) -> std::result::Result<VersionNode, &'static str> {
    match op {
        OP_PUT => {
            let expires = reader.u64().ok_or("a put cut short")?;
            let value = reader.bytes().ok_or("a value longer than the bytes left")?;
            Ok(VersionNode::put(Bytes::copy_from(value), expires))
        }
        OP_DELETE => Ok(VersionNode::tombstone(Origin::User)),
        OP_REAP => Ok(VersionNode::tombstone(Origin::Reaper)),
        _ => Err("an unknown operation"),
    }
}

/// Writes a length-prefixed byte string. Lengths fit in `u32`: keys and values are
/// bounded by the engine's limits, which are far below 4 GiB.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Patches the commit version into an encoded record.
pub(crate) fn set_version(record: &mut [u8], version: CommitVersion) {
    record[..8].copy_from_slice(&version.get().to_le_bytes());
}

/// A decoded commit record.
pub(crate) struct DecodedCommit {
    pub(crate) version: CommitVersion,
    /// Prefixes of range deletes, in strictly ascending order.
    pub(crate) prefixes: Vec<Bytes>,
    /// Keys and their versioned nodes, in strictly ascending key order.
    pub(crate) writes: Vec<(Bytes, VersionNode)>,
}

/// Decodes a commit record read from the log at `position`. Untrusted input: every length
/// is checked against what is left, so nothing allocates more than the record holds, and
/// no input panics.
///
/// # Errors
/// [`Error::CorruptRecord`] saying what is wrong.
pub(crate) fn decode(payload: &[u8], position: LogPosition) -> Result<DecodedCommit> {
    let corrupt = |reason: &'static str| Error::CorruptRecord { position: position.get(), reason };
    let mut reader = Reader::new(payload);
    let version = reader.u64().ok_or_else(|| corrupt("shorter than its header"))?;
    let count = reader.u32().ok_or_else(|| corrupt("shorter than its header"))?;
    let version = CommitVersion::new(version);
    if version == CommitVersion::ZERO {
        return Err(corrupt("commit version 0"));
    }
    if count == 0 {
        return Err(corrupt("a commit of no writes"));
    }
    // Each write takes at least 5 bytes: the count cannot promise more writes than that.
    if u64::from(count) * 5 > reader.bytes.len() as u64 {
        return Err(corrupt("more writes than bytes"));
    }
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut writes: Vec<(Bytes, VersionNode)> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let op = reader.u8().ok_or_else(|| corrupt("a write cut short"))?;
        let key = reader.bytes().ok_or_else(|| corrupt("a key longer than the record"))?;
        if op == OP_DELETE_PREFIX {
            if !writes.is_empty() {
                return Err(corrupt("a range delete after a key's write"));
            }
            if prefixes.last().is_some_and(|previous| previous.as_slice() >= key) {
                return Err(corrupt("range deletes not in strictly ascending order"));
            }
            prefixes.push(Bytes::copy_from(key));
            continue;
        }
        let mut node = read_node(op, &mut reader).map_err(corrupt)?;
        if let Some((previous, _)) = writes.last() {
            if previous.as_slice() >= key {
                return Err(corrupt("keys not in strictly ascending order"));
            }
        }
        node.set_version(version);
        writes.push((Bytes::copy_from(key), node));
    }
    if !reader.bytes.is_empty() {
        return Err(corrupt("bytes after the last write"));
    }
    Ok(DecodedCommit { version, prefixes, writes })
}

/// Encodes a reset record's payload.
pub(crate) fn encode_reset(version: CommitVersion) -> [u8; 8] {
    version.get().to_le_bytes()
}

/// Decodes a reset record read at `position`.
///
/// # Errors
/// [`Error::CorruptRecord`] unless it is exactly eight bytes.
pub(crate) fn decode_reset(payload: &[u8], position: LogPosition) -> Result<CommitVersion> {
    let bytes: [u8; 8] = payload.try_into().map_err(|_| Error::CorruptRecord {
        position: position.get(),
        reason: "a reset of the wrong length",
    })?;
    Ok(CommitVersion::new(u64::from_le_bytes(bytes)))
}

/// A cursor over untrusted bytes; every read says `None` rather than run past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|bytes| bytes.try_into().ok()).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes)
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::version::NEVER_EXPIRES;
    use proptest::prelude::*;

    fn node(op: u8, value: &[u8], expires: u64) -> VersionNode {
        match op {
            OP_PUT => VersionNode::put(Bytes::copy_from(value), expires),
            OP_DELETE => VersionNode::tombstone(Origin::User),
            _ => VersionNode::tombstone(Origin::Reaper),
        }
    }

    proptest! {
        #[test]
        fn records_round_trip(
            writes in proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..40),
                (0u8..3, proptest::collection::vec(any::<u8>(), 0..60), any::<u64>()),
                1..12,
            ),
            version in 1u64..,
        ) {
            let nodes: Vec<(Vec<u8>, VersionNode)> = writes
                .iter()
                .map(|(key, (op, value, expires))| (key.clone(), node(*op, value, *expires)))
                .collect();
            let mut record = encode(nodes.iter().map(|(key, node)| (key.as_slice(), node)));
            set_version(&mut record, CommitVersion::new(version));
            let decoded = decode(&record, LogPosition::new(7)).expect("decodes");
            prop_assert_eq!(decoded.version, CommitVersion::new(version));
            prop_assert!(decoded.prefixes.is_empty());
            prop_assert_eq!(decoded.writes.len(), nodes.len());
            for ((key, expected), (got_key, got)) in nodes.iter().zip(&decoded.writes) {
                prop_assert_eq!(key.as_slice(), got_key.as_slice());
                prop_assert_eq!(got.version(), version);
                prop_assert_eq!(expected.value(), got.value());
                prop_assert_eq!(expected.origin(), got.origin());
                if expected.value().is_some() {
                    prop_assert_eq!(expected.expires_at_ms(), got.expires_at_ms());
                } else {
                    prop_assert_eq!(got.expires_at_ms(), NEVER_EXPIRES);
                }
            }
        }

        #[test]
        fn records_with_range_deletes_round_trip(
            prefixes in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..20), 1..5),
            keys in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..20), 0..5),
            version in 1u64..,
        ) {
            let prefixes: Vec<Bytes> = prefixes.iter().map(|prefix| Bytes::copy_from(prefix)).collect();
            let put = node(OP_PUT, b"v", 0);
            let mut record = encode_with_prefixes(&prefixes, keys.iter().map(|key| (key.as_slice(), &put)));
            set_version(&mut record, CommitVersion::new(version));
            let decoded = decode(&record, LogPosition::new(1)).expect("decodes");
            prop_assert_eq!(decoded.version, CommitVersion::new(version));
            prop_assert_eq!(&decoded.prefixes, &prefixes);
            prop_assert_eq!(decoded.writes.len(), keys.len());
        }

        #[test]
        fn arbitrary_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(decoded) = decode(&bytes, LogPosition::new(0)) {
                prop_assert!(decoded.version > CommitVersion::ZERO);
                prop_assert!(!decoded.writes.is_empty() || !decoded.prefixes.is_empty());
            }
        }

        #[test]
        fn every_truncation_of_a_record_is_refused(cut in 0usize..1000) {
            let nodes = [
                (b"alpha".to_vec(), node(OP_PUT, b"one", 0)),
                (b"beta".to_vec(), node(OP_DELETE, b"", 0)),
                (b"gamma".to_vec(), node(OP_PUT, b"three", 99)),
            ];
            let mut record = encode(nodes.iter().map(|(key, node)| (key.as_slice(), node)));
            set_version(&mut record, CommitVersion::new(5));
            let cut = cut % record.len();
            let refused = matches!(decode(&record[..cut], LogPosition::new(3)), Err(Error::CorruptRecord { position: 3, .. }));
            prop_assert!(refused, "a record cut to {} bytes decoded", cut);
        }
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        let reason = |bytes: &[u8]| match decode(bytes, LogPosition::new(9)) {
            Err(Error::CorruptRecord { position: 9, reason }) => reason,
            Err(other) => panic!("expected CorruptRecord, got {other:?}"),
            Ok(_) => panic!("a malformed record decoded"),
        };
        let mut zero_version = encode([(&b"k"[..], &node(OP_PUT, b"v", 0))].into_iter());
        assert_eq!(reason(&zero_version), "commit version 0");
        set_version(&mut zero_version, CommitVersion::new(1));
        zero_version.push(0);
        assert_eq!(reason(&zero_version), "bytes after the last write");
        let a = node(OP_PUT, b"1", 0);
        let mut unordered = encode([(&b"b"[..], &a), (&b"a"[..], &a)].into_iter());
        set_version(&mut unordered, CommitVersion::new(1));
        assert_eq!(reason(&unordered), "keys not in strictly ascending order");
        let mut huge_count = vec![1, 0, 0, 0, 0, 0, 0, 0];
        huge_count.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(reason(&huge_count), "more writes than bytes");
        let prefixes = [Bytes::from("b"), Bytes::from("a")];
        let mut unordered = encode_with_prefixes(&prefixes, std::iter::empty());
        set_version(&mut unordered, CommitVersion::new(1));
        assert_eq!(reason(&unordered), "range deletes not in strictly ascending order");
        let mut late = encode([(&b"a"[..], &a)].into_iter());
        late.extend_from_slice(&[OP_DELETE_PREFIX, 1, 0, 0, 0, b'p']);
        late[8..12].copy_from_slice(&2u32.to_le_bytes());
        set_version(&mut late, CommitVersion::new(1));
        assert_eq!(reason(&late), "a range delete after a key's write");
        let position = LogPosition::ZERO;
        let reset = encode_reset(CommitVersion::new(42));
        assert_eq!(decode_reset(&reset, position).ok(), Some(CommitVersion::new(42)));
        assert!(decode_reset(&[1, 2, 3], position).is_err());
    }
}
