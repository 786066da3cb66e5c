//! Versions: the commit clock's newtype and the node each committed write becomes.
//!
//! A [`VersionNode`] is built by a committing transaction before it enters the commit
//! sequencer, receives its commit version inside the sequencer, and is then linked at the
//! head of its key's chain (see `chain.rs`). From the moment it is linked, every field but
//! `next` is immutable; `next` is written once before linking and afterwards only by the
//! garbage collector, which may cut it to null.

use std::fmt;

use crate::bytes::Bytes;
use crate::sync::epoch::Atomic;

/// A commit version: a commit's place in the engine's one total order of commits.
///
/// Versions start at 1; [`CommitVersion::ZERO`] is the state of an empty database, before
/// any commit.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitVersion(u64);

impl CommitVersion {
    /// The version of an empty database.
    pub const ZERO: CommitVersion = CommitVersion(0);

    /// Wraps a raw version number.
    pub const fn new(version: u64) -> CommitVersion {
        CommitVersion(version)
    }

    /// The raw version number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version after this one: the next commit's.
    pub(crate) const fn next(self) -> CommitVersion {
        CommitVersion(self.0 + 1)
    }
}

impl fmt::Display for CommitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who wrote a version: a user transaction, or the engine's own maintenance.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A user transaction.
    User,
    /// The TTL reaper, replacing an expired value by a tombstone. Such a write changes
    /// nothing a reader can observe (the value already read as absent), so it never makes a
    /// user transaction conflict.
    Reaper,
}

/// Expiry time meaning "never expires".
pub(crate) const NEVER_EXPIRES: u64 = 0;

/// What a version holds. A tombstone's origin is a variant rather than a field, so it
/// lives in the niche of the value's `Bytes` and costs no byte of its own.
enum Content {
    /// A value; values are written by user transactions only.
    Value(Bytes),
    /// A user's delete.
    UserTombstone,
    /// The TTL reaper's tombstone.
    ReaperTombstone,
}

/// One committed version of one key: a value or a tombstone, newest first in its chain.
///
/// 56 bytes, so that with the allocator's header a node takes a 64-byte chunk (an `Origin`
/// field beside the value made it 64, and its chunk 80): one node per write, and most of
/// what a new key allocates besides its skiplist entry.
pub(crate) struct VersionNode {
    /// The commit version; 0 only while the node is being prepared, before the sequencer
    /// assigns it.
    version: u64,
    /// Absolute wall-clock expiry in milliseconds since the Unix epoch, or [`NEVER_EXPIRES`].
    expires_at_ms: u64,
    /// The value, or which tombstone.
    content: Content,
    /// The next older version of the same key.
    pub(crate) next: Atomic<VersionNode>,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<VersionNode>() == 56, "see the type's documentation");

impl VersionNode {
    /// A value written by a user transaction, not yet versioned.
    pub(crate) fn put(value: Bytes, expires_at_ms: u64) -> VersionNode {
        VersionNode {
            version: 0,
            expires_at_ms,
            content: Content::Value(value),
            next: Atomic::null(),
        }
    }

    /// A tombstone, not yet versioned.
    pub(crate) fn tombstone(origin: Origin) -> VersionNode {
        let content = match origin {
            Origin::User => Content::UserTombstone,
            Origin::Reaper => Content::ReaperTombstone,
        };
        VersionNode { version: 0, expires_at_ms: NEVER_EXPIRES, content, next: Atomic::null() }
    }

    /// Assigns the commit version. Called by the sequencer, before the node is linked.
    pub(crate) fn set_version(&mut self, version: CommitVersion) {
        debug_assert_eq!(self.version, 0, "a node is versioned once");
        assert!(version > CommitVersion::ZERO, "commit versions start at 1");
        self.version = version.get();
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn value(&self) -> Option<&Bytes> {
        match &self.content {
            Content::Value(value) => Some(value),
            Content::UserTombstone | Content::ReaperTombstone => None,
        }
    }

    pub(crate) fn is_tombstone(&self) -> bool {
        self.value().is_none()
    }

    pub(crate) fn origin(&self) -> Origin {
        match self.content {
            Content::Value(_) | Content::UserTombstone => Origin::User,
            Content::ReaperTombstone => Origin::Reaper,
        }
    }

    pub(crate) fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    pub(crate) fn has_expiry(&self) -> bool {
        self.expires_at_ms != NEVER_EXPIRES
    }

    /// Whether a value has expired at wall-clock time `now_ms`.
    pub(crate) fn is_expired_at(&self, now_ms: u64) -> bool {
        self.has_expiry() && self.expires_at_ms <= now_ms
    }

    /// The value as a reader at wall-clock time `now_ms` sees it: `None` for a tombstone or
    /// an expired value.
    pub(crate) fn live_value(&self, now_ms: u64) -> Option<&Bytes> {
        if self.is_expired_at(now_ms) {
            return None;
        }
        self.value()
    }

    /// The payload bytes this version accounts for (its value; keys are counted per chain).
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.value().map_or(0, |v| v.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_value_reads_as_absent_from_its_expiry_on() {
        let node = VersionNode::put(Bytes::from("v"), 1_000);
        assert_eq!(node.live_value(999).map(|v| v.as_slice()), Some(&b"v"[..]));
        assert!(node.live_value(1_000).is_none());
        assert!(node.live_value(5_000).is_none());
    }

    #[test]
    fn a_value_without_expiry_never_expires() {
        let node = VersionNode::put(Bytes::from("v"), NEVER_EXPIRES);
        assert!(!node.is_expired_at(u64::MAX));
    }

    #[test]
    fn a_tombstone_reads_as_absent_and_carries_no_payload() {
        let node = VersionNode::tombstone(Origin::User);
        assert!(node.is_tombstone());
        assert!(node.live_value(0).is_none());
        assert_eq!(node.payload_bytes(), 0);
    }

    #[test]
    fn each_kind_of_version_keeps_its_origin() {
        assert_eq!(VersionNode::put(Bytes::from("v"), NEVER_EXPIRES).origin(), Origin::User);
        assert_eq!(VersionNode::tombstone(Origin::User).origin(), Origin::User);
        let reaped = VersionNode::tombstone(Origin::Reaper);
        assert_eq!((reaped.origin(), reaped.is_tombstone()), (Origin::Reaper, true));
    }
}
