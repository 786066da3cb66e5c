//! `value_decode`: the value encoding of `inmem_primitives` (format version 1, documented in
//! `primitives/src/value/encode.rs`) over arbitrary bytes, through both decoders:
//! `Value::decode` (owned) and `ValueRef::parse` (in place, walked item by item).
//!
//! Invariants checked:
//! - nothing panics, whatever the bytes (in particular, walking a parsed value never meets
//!   bytes its parse did not accept);
//! - both decoders accept exactly the same inputs, and refuse the others with the same
//!   error, at an offset within the input;
//! - walking every nested item of an accepted input gives the decoded value: arrays and maps
//!   yield as many items as their length says (and as their iterators' exact sizes say),
//!   `ArrayRef::get` and `MapRef::get` find every item and entry, map keys ascend strictly,
//!   and strings and bytes are borrowed from the input, not copied;
//! - an accepted value nests at most `DEPTH_MAX` deep, and `try_encode` accepts it;
//! - the encoding is canonical: re-encoding a decoded value gives back exactly the input,
//!   and decoding that gives back the value (floats compared by their bits).

#![no_main]

use inmem_primitives::{Value, ValueRef, DEPTH_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let owned = Value::decode(data);
    let parsed = ValueRef::parse(data);
    let (owned, parsed) = match (owned, parsed) {
        (Ok(owned), Ok(parsed)) => (owned, parsed),
        (Err(owned), Err(parsed)) => {
            assert_eq!(owned, parsed, "both decoders refuse alike");
            assert!(owned.offset <= data.len(), "{owned} in {} bytes", data.len());
            return;
        }
        (owned, parsed) => panic!("the decoders disagree: {owned:?} and {parsed:?}"),
    };
    walk(parsed, &owned, data, 0);
    assert!(owned.depth() <= DEPTH_MAX);
    let encoded = owned.try_encode().expect("a decoded value is within the limits");
    assert_eq!(encoded, data, "one encoding per value, and the input was it");
    let again = Value::decode(&encoded).expect("an encoding decodes");
    assert!(same(&again, &owned), "{again:?} != {owned:?}");
});

/// Walks `value` (nested `depth` deep) against the owned decode of the same bytes.
fn walk(value: ValueRef<'_>, expected: &Value, input: &[u8], depth: usize) {
    let input_range = input.as_ptr_range();
    match (value, expected) {
        (ValueRef::Array(items), Value::Array(expected)) => {
            assert!(depth < DEPTH_MAX, "an array at nesting {}", depth + 1);
            assert_eq!(items.len(), expected.len());
            assert_eq!(items.iter().len(), expected.len(), "exact size");
            let mut walked = 0;
            for (index, (item, expected)) in items.iter().zip(expected).enumerate() {
                walk(item, expected, input, depth + 1);
                let got = items.get(index).map(|item| item.to_owned());
                assert!(got.is_some_and(|got| same(&got, expected)), "get({index})");
                walked += 1;
            }
            assert_eq!(walked, expected.len());
            assert_eq!(items.iter().count(), expected.len(), "no item past the length");
            assert!(items.get(expected.len()).is_none());
        }
        (ValueRef::Map(entries), Value::Map(expected)) => {
            assert!(depth < DEPTH_MAX, "a map at nesting {}", depth + 1);
            assert_eq!(entries.len(), expected.len());
            assert_eq!(entries.iter().len(), expected.len(), "exact size");
            let mut previous: Option<&str> = None;
            for ((key, item), (expected_key, expected)) in entries.iter().zip(expected) {
                assert_eq!(key, expected_key);
                assert!(previous.is_none_or(|previous| previous < key), "keys ascend");
                assert!(key.is_empty() || input_range.contains(&key.as_ptr()), "borrowed");
                previous = Some(key);
                walk(item, expected, input, depth + 1);
                let got = entries.get(key).map(|item| item.to_owned());
                assert!(got.is_some_and(|got| same(&got, expected)), "get({key:?})");
            }
            assert_eq!(entries.iter().count(), expected.len(), "no entry past the length");
        }
        (ValueRef::Str(text), Value::String(expected)) => {
            assert_eq!(text, expected);
            assert!(text.is_empty() || input_range.contains(&text.as_ptr()), "borrowed");
        }
        (ValueRef::Bytes(bytes), Value::Bytes(expected)) => {
            assert_eq!(bytes, expected.as_slice());
            assert!(bytes.is_empty() || input_range.contains(&bytes.as_ptr()), "borrowed");
        }
        (ValueRef::Float(number), Value::Float(expected)) => {
            assert_eq!(number.to_bits(), expected.to_bits());
        }
        (ValueRef::Null, Value::Null) => {}
        (ValueRef::Bool(flag), Value::Bool(expected)) => assert_eq!(flag, *expected),
        (ValueRef::Int(number), Value::Int(expected)) => assert_eq!(number, *expected),
        (value, expected) => panic!("{value:?} walked where {expected:?} was decoded"),
    }
}

/// Structural equality with floats compared by their bits (so a NaN equals itself).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}
