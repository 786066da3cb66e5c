//! The benchmark's data: the key layout, the value contents and the fill order, all
//! derived from the seed so that the engine and the baseline see the same bytes.
//!
//! Key `i` of a `key_size`-byte layout:
//!
//! | bytes | content |
//! |---|---|
//! | `0 .. key_size - 1` | the group `i / 100`, big-endian, right-aligned, zero-padded |
//! | `key_size - 1` | `i % 100` |
//!
//! So byte order is numeric order, and the first `key_size - 1` bytes of a key (its group's
//! prefix) are shared by exactly the 100 keys of its group (fewer in the last group).

use super::args::SCAN_KEYS;
use super::error::BenchError;

/// How keys are laid out; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    key_size: usize,
    keys: u64,
}

/// Bytes the group number `group` needs, big-endian without leading zeros (at least 1).
fn group_bytes(group: u64) -> usize {
    let significant_bits = u64::BITS - group.leading_zeros();
    (significant_bits as usize).div_ceil(8).max(1)
}

impl KeyLayout {
    /// The layout of `keys` keys of `key_size` bytes.
    ///
    /// # Errors
    /// [`BenchError::KeySizeTooSmall`] if the prefix cannot number every group;
    /// [`BenchError::KeySizeTooLarge`] above the engine's key limit `key_bytes_max`.
    pub(crate) fn new(
        key_size: usize,
        keys: u64,
        key_bytes_max: usize,
    ) -> Result<KeyLayout, BenchError> {
        debug_assert!(keys > 0, "the key count is checked first");
        let last_group = (keys - 1) / SCAN_KEYS as u64;
        let key_size_min = group_bytes(last_group) + 1;
        if key_size < key_size_min {
            return Err(BenchError::KeySizeTooSmall { key_size, keys, key_size_min });
        }
        if key_size > key_bytes_max {
            return Err(BenchError::KeySizeTooLarge { key_size, max: key_bytes_max });
        }
        Ok(KeyLayout { key_size, keys })
    }

    /// Bytes per key.
    pub(crate) fn key_size(&self) -> usize {
        self.key_size
    }

    /// Bytes of a scan prefix.
    pub(crate) fn prefix_size(&self) -> usize {
        self.key_size - 1
    }

    /// Number of keys.
    pub(crate) fn keys(&self) -> u64 {
        self.keys
    }

    /// Number of key groups (scan prefixes).
    pub(crate) fn groups(&self) -> u64 {
        self.keys.div_ceil(SCAN_KEYS as u64)
    }

    /// How many keys share the prefix of `group`.
    pub(crate) fn group_len(&self, group: u64) -> usize {
        debug_assert!(group < self.groups());
        let first = group * SCAN_KEYS as u64;
        (self.keys - first).min(SCAN_KEYS as u64) as usize
    }

    /// Writes the prefix of `group` into `prefix` (`prefix_size` bytes).
    #[expect(
        clippy::big_endian_bytes,
        reason = "keys are big-endian so that byte order is numeric order (docs/architecture.md §2)"
    )]
    pub(crate) fn write_prefix(&self, group: u64, prefix: &mut [u8]) {
        assert_eq!(prefix.len(), self.prefix_size(), "a prefix buffer of the layout's size");
        debug_assert!(group < self.groups(), "only groups that the layout numbers");
        let be = group.to_be_bytes();
        let copied = prefix.len().min(be.len());
        let (padding, digits) = prefix.split_at_mut(prefix.len() - copied);
        padding.fill(0);
        digits.copy_from_slice(&be[be.len() - copied..]);
    }

    /// Writes key `index` into `key` (`key_size` bytes).
    pub(crate) fn write_key(&self, index: u64, key: &mut [u8]) {
        assert_eq!(key.len(), self.key_size, "a key buffer of the layout's size");
        debug_assert!(index < self.keys, "only keys that the layout holds");
        let (prefix, last) = key.split_at_mut(self.prefix_size());
        self.write_prefix(index / SCAN_KEYS as u64, prefix);
        last.fill((index % SCAN_KEYS as u64) as u8);
    }
}

/// Values are windows into one buffer of seeded random bytes, this many windows apart: each
/// value is pseudo-random, and no value is generated on the measured path.
const VALUE_WINDOWS: usize = 1021;

/// The pseudo-random contents values are cut from.
#[derive(Debug, Clone)]
pub(crate) struct ValuePool {
    bytes: Vec<u8>,
    value_size: usize,
}

impl ValuePool {
    /// A pool of `value_size`-byte values derived from `seed`.
    pub(crate) fn new(value_size: usize, seed: u64) -> ValuePool {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x7661_6c75_6573);
        let bytes =
            std::iter::repeat_with(|| rng.u8(..)).take(value_size + VALUE_WINDOWS).collect();
        ValuePool { bytes, value_size }
    }

    /// The value number `choice` (any number; values repeat every [`VALUE_WINDOWS`]).
    pub(crate) fn value(&self, choice: u64) -> &[u8] {
        let start = (choice % VALUE_WINDOWS as u64) as usize;
        &self.bytes[start..start + self.value_size]
    }
}

/// The key indices `0..keys` in a random order derived from `seed`.
///
/// # Errors
/// [`BenchError::OutOfMemory`] if the order cannot be allocated.
pub(crate) fn fill_order(keys: u64, seed: u64) -> Result<Vec<u32>, BenchError> {
    let keys_u32 =
        u32::try_from(keys).map_err(|_| BenchError::OutOfMemory { what: "fill order" })?;
    let mut order = Vec::new();
    order
        .try_reserve_exact(keys_u32 as usize)
        .map_err(|_| BenchError::OutOfMemory { what: "fill order" })?;
    order.extend(0..keys_u32);
    fastrand::Rng::with_seed(seed).shuffle(&mut order);
    Ok(order)
}

/// The seed of one thread's random stream in one run: distinct per workload, thread count
/// and thread, identical for the engine and the baseline.
pub(crate) fn stream_seed(seed: u64, workload: u64, threads: usize, thread: usize) -> u64 {
    let mut x = seed ^ workload.rotate_left(48) ^ (threads as u64).rotate_left(32) ^ thread as u64;
    // splitmix64's finalizer: nearby inputs give unrelated streams.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(layout: &KeyLayout, index: u64) -> Vec<u8> {
        let mut key = vec![0xAA; layout.key_size()];
        layout.write_key(index, &mut key);
        key
    }

    #[test]
    fn keys_are_the_group_big_endian_then_the_position_in_the_group() {
        let layout = KeyLayout::new(4, 1_000_000, 4096).unwrap();
        assert_eq!(key(&layout, 0), [0, 0, 0, 0]);
        assert_eq!(key(&layout, 99), [0, 0, 0, 99]);
        assert_eq!(key(&layout, 100), [0, 0, 1, 0]);
        assert_eq!(key(&layout, 25_601), [0, 1, 0, 1]);
    }

    #[test]
    fn byte_order_is_index_order_and_groups_share_a_prefix() {
        let layout = KeyLayout::new(16, 1234, 4096).unwrap();
        let keys: Vec<_> = (0..1234).map(|i| key(&layout, i)).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        let mut prefix = vec![0; layout.prefix_size()];
        layout.write_prefix(12, &mut prefix);
        let in_group = keys.iter().filter(|key| key.starts_with(&prefix)).count();
        assert_eq!(in_group, layout.group_len(12));
        assert_eq!(in_group, 34, "the last group holds the remainder");
        assert_eq!(layout.group_len(0), 100);
    }

    #[test]
    fn key_sizes_too_small_for_the_key_count_are_refused() {
        assert!(KeyLayout::new(1, 1, 4096).is_err(), "a key needs a prefix byte");
        assert!(KeyLayout::new(2, 25_600, 4096).is_ok(), "256 groups fit one byte");
        assert!(matches!(
            KeyLayout::new(2, 25_601, 4096),
            Err(BenchError::KeySizeTooSmall { key_size_min: 3, .. })
        ));
        assert!(matches!(KeyLayout::new(5000, 10, 4096), Err(BenchError::KeySizeTooLarge { .. })));
    }

    #[test]
    fn wide_prefixes_are_zero_padded() {
        let layout = KeyLayout::new(12, 10_000, 4096).unwrap();
        assert_eq!(key(&layout, 9_999), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99, 99]);
    }

    #[test]
    fn the_fill_order_is_a_seeded_permutation() {
        let order = fill_order(1000, 7).unwrap();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().copied().eq(0..1000));
        assert_eq!(order, fill_order(1000, 7).unwrap());
        assert_ne!(order, fill_order(1000, 8).unwrap());
    }

    #[test]
    fn values_have_the_requested_size_and_vary() {
        let pool = ValuePool::new(100, 42);
        assert_eq!(pool.value(5).len(), 100);
        assert_ne!(pool.value(0), pool.value(1));
        assert_eq!(ValuePool::new(0, 42).value(9).len(), 0);
    }
}
