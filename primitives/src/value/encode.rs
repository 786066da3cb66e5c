//! The value encoding, format version 1, and its encoder. The decoder is `read.rs`.
//!
//! # Layout
//!
//! ```text
//! encoding = version:u8 value                         version = 1
//! value    = tag:u8 payload
//! entry    = key_len:uleb128 key:[u8; key_len] value  (key: UTF-8)
//! ```
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version: 1 ([`super::FORMAT_VERSION`]) |
//! | 1 | 1 | tag of the value (table below) |
//! | 2 | by tag | payload of the value |
//!
//! | tag | value | payload after the tag byte |
//! |---|---|---|
//! | 0x00 | Null | none |
//! | 0x01 | Bool(false) | none |
//! | 0x02 | Bool(true) | none |
//! | 0x03 | Int | 8 bytes: the `i64`, little-endian two's complement |
//! | 0x04 | Float | 8 bytes: the `f64`'s IEEE 754 bits, little-endian |
//! | 0x05 | String | `len:uleb128`, then `len` bytes of UTF-8 |
//! | 0x06 | Bytes | `len:uleb128`, then `len` bytes |
//! | 0x07 | Array | `count:uleb128`, `size:uleb128`, then `size` bytes: `count` values |
//! | 0x08 | Map | `count:uleb128`, `size:uleb128`, then `size` bytes: `count` entries |
//!
//! `uleb128` is an unsigned integer below 2^64 in 7-bit groups, least significant first,
//! the high bit of a byte set when another byte follows: 0 is `00`, 127 is `7F`, 128 is
//! `80 01`, at most 10 bytes. Lengths are in bytes. A container announces its byte size as
//! well as its count, so that a reader steps over it without walking it.
//!
//! One form per value, and the decoder accepts no other:
//! - every uleb128 is in its shortest form (no final `00` byte after the first);
//! - a container's items fill exactly its announced size;
//! - a map's keys are strictly ascending in byte order (which is `String`'s order), so no
//!   key repeats;
//! - nothing follows the top value;
//! - arrays and maps nest at most [`super::DEPTH_MAX`] deep.
//!
//! Floats are kept bit for bit (a NaN's payload, the sign of a zero): they are data, and
//! re-encoding a decoded value gives back its bytes.
//!
//! # Example
//!
//! `{"a": [1, true]}` encodes to 19 bytes:
//!
//! ```text
//! 01                          format version 1
//! 08 01 0F                    map: 1 entry, 15 bytes of entries
//!    01 61                    key: 1 byte, "a"
//!    07 02 0A                 array: 2 items, 10 bytes of items
//!       03 01 00 00 00 00 00 00 00    Int 1
//!       02                            Bool(true)
//! ```

use super::{Value, FORMAT_VERSION};

/// Tags of the kinds of values (the table in the module doc).
pub(super) mod tag {
    pub(crate) const NULL: u8 = 0x00;
    pub(crate) const FALSE: u8 = 0x01;
    pub(crate) const TRUE: u8 = 0x02;
    pub(crate) const INT: u8 = 0x03;
    pub(crate) const FLOAT: u8 = 0x04;
    pub(crate) const STRING: u8 = 0x05;
    pub(crate) const BYTES: u8 = 0x06;
    pub(crate) const ARRAY: u8 = 0x07;
    pub(crate) const MAP: u8 = 0x08;
}

// Lengths are written as u64: no target of Rust has a wider usize.
const _: () = assert!(usize::BITS <= u64::BITS);

/// Appends `value`'s encoding to `out`.
///
/// Two walks over the value: the first measures every container's items (in the order the
/// second meets the containers), so that the second writes each size before the items,
/// and `out` grows once, by exactly the encoding's length.
pub(super) fn encode_into(value: &Value, out: &mut Vec<u8>) {
    let mut sizes = Vec::new();
    let value_bytes = measure(value, &mut sizes);
    let start = out.len();
    out.reserve(1 + value_bytes);
    out.push(FORMAT_VERSION);
    let mut sizes = sizes.into_iter();
    write(value, &mut sizes, out);
    debug_assert!(sizes.next().is_none(), "every measured size was written");
    debug_assert_eq!(out.len() - start, 1 + value_bytes, "the measure was exact");
}

/// The bytes of `value`'s encoding (tag and payload); pushes the size of the items of every
/// container in it to `sizes`, in pre-order.
fn measure(value: &Value, sizes: &mut Vec<usize>) -> usize {
    let sized = |len: usize| uleb128_len(len as u64) + len;
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) => 1 + 8,
        Value::String(text) => 1 + sized(text.len()),
        Value::Bytes(bytes) => 1 + sized(bytes.len()),
        Value::Array(items) => {
            let slot = sizes.len();
            sizes.push(0);
            let size = items.iter().map(|item| measure(item, sizes)).sum();
            container_len(items.len(), size, slot, sizes)
        }
        Value::Map(entries) => {
            let slot = sizes.len();
            sizes.push(0);
            let size =
                entries.iter().map(|(key, item)| sized(key.len()) + measure(item, sizes)).sum();
            container_len(entries.len(), size, slot, sizes)
        }
    }
}

fn container_len(count: usize, size: usize, slot: usize, sizes: &mut [usize]) -> usize {
    if let Some(measured) = sizes.get_mut(slot) {
        *measured = size;
    }
    1 + uleb128_len(count as u64) + uleb128_len(size as u64) + size
}

/// Writes `value`'s tag and payload, taking each container's size from `sizes`.
fn write(value: &Value, sizes: &mut impl Iterator<Item = usize>, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(tag::NULL),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Int(number) => {
            out.push(tag::INT);
            out.extend_from_slice(&number.to_le_bytes());
        }
        Value::Float(number) => {
            out.push(tag::FLOAT);
            out.extend_from_slice(&number.to_bits().to_le_bytes());
        }
        Value::String(text) => write_sized(tag::STRING, text.as_bytes(), out),
        Value::Bytes(bytes) => write_sized(tag::BYTES, bytes, out),
        Value::Array(items) => {
            write_container_header(tag::ARRAY, items.len(), sizes, out);
            for item in items {
                write(item, sizes, out);
            }
        }
        Value::Map(entries) => {
            write_container_header(tag::MAP, entries.len(), sizes, out);
            for (key, item) in entries {
                write_uleb128(key.len() as u64, out);
                out.extend_from_slice(key.as_bytes());
                write(item, sizes, out);
            }
        }
    }
}

fn write_sized(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    write_uleb128(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn write_container_header(
    tag: u8,
    count: usize,
    sizes: &mut impl Iterator<Item = usize>,
    out: &mut Vec<u8>,
) {
    let Some(size) = sizes.next() else {
        unreachable!("`measure` met every container `write` meets, in the same order")
    };
    out.push(tag);
    write_uleb128(count as u64, out);
    write_uleb128(size as u64, out);
}

/// The bytes of `number` in uleb128: one per started group of 7 bits, at least one.
pub(super) const fn uleb128_len(number: u64) -> usize {
    let bits = u64::BITS - (number | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

pub(super) fn write_uleb128(mut number: u64, out: &mut Vec<u8>) {
    loop {
        let group = (number & 0x7F) as u8;
        number >>= 7;
        if number == 0 {
            out.push(group);
            return;
        }
        out.push(group | 0x80);
    }
}
