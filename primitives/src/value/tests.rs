use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::error::DecodeReason::{self, *};

fn map(entries: &[(&str, Value)]) -> Value {
    entries.iter().map(|(key, value)| (key.to_string(), value.clone())).collect()
}

/// `depth` arrays nested in each other around a null.
fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
}

fn error(offset: usize, reason: DecodeReason) -> Result<Value, DecodeError> {
    Err(DecodeError::new(offset, reason))
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

#[test]
fn the_documented_example_encodes_to_the_documented_bytes() {
    let value = map(&[("a", Value::Array(vec![Value::from(1), Value::from(true)]))]);
    let expected = [
        0x01, 0x08, 0x01, 0x0F, 0x01, b'a', 0x07, 0x02, 0x0A, 0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ];
    assert_eq!(value.encode(), expected);
    assert_eq!(Value::decode(&expected), Ok(value));
}

#[test]
fn every_kind_encodes_to_its_tag_and_payload() {
    let cases: [(Value, &[u8]); 10] = [
        (Value::Null, &[1, 0x00]),
        (Value::Bool(false), &[1, 0x01]),
        (Value::Bool(true), &[1, 0x02]),
        (Value::Int(-2), &[1, 0x03, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        (Value::Float(1.0), &[1, 0x04, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F]),
        (Value::from("hi"), &[1, 0x05, 2, b'h', b'i']),
        (Value::from(&b"\x00"[..]), &[1, 0x06, 1, 0]),
        (Value::Array(vec![]), &[1, 0x07, 0, 0]),
        (Value::Map(BTreeMap::new()), &[1, 0x08, 0, 0]),
        (map(&[("", Value::Null)]), &[1, 0x08, 1, 2, 0, 0x00]),
    ];
    for (value, bytes) in cases {
        assert_eq!(value.encode(), bytes, "{value:?}");
        assert_eq!(Value::decode(bytes).as_ref(), Ok(&value));
    }
    let mut out = vec![0xAA];
    Value::Null.encode_into(&mut out);
    assert_eq!(out, [0xAA, 1, 0x00], "encode_into appends");
}

#[test]
fn lengths_are_uleb128_in_their_shortest_form() {
    for (len, header) in [(0usize, &[0x00][..]), (127, &[0x7F]), (128, &[0x80, 0x01])] {
        let bytes = Value::Bytes(vec![7; len]).encode();
        assert_eq!(&bytes[2..2 + header.len()], header, "len {len}");
        assert_eq!(bytes.len(), 2 + header.len() + len);
    }
    for number in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
        let mut out = Vec::new();
        encode::write_uleb128(number, &mut out);
        assert_eq!(out.len(), encode::uleb128_len(number), "{number}");
    }
    assert_eq!(encode::uleb128_len(u64::MAX), 10);
    assert_eq!(Value::decode(&[1, 0x06, 0x80, 0x00]), error(2, NonCanonicalLength), "overlong 0");
    assert_eq!(Value::decode(&[1, 0x06, 0x81, 0x00, 7]), error(2, NonCanonicalLength));
    let too_wide = [1, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
    assert_eq!(Value::decode(&too_wide), error(2, NonCanonicalLength), "over 64 bits");
    let eleven = [1, 0x06, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00];
    assert_eq!(Value::decode(&eleven), error(2, NonCanonicalLength), "over 10 bytes");
    assert_eq!(Value::decode(&[1, 0x06, 0x80]), error(3, UnexpectedEnd));
}

#[test]
fn malformed_encodings_are_errors_that_say_where_and_why() {
    let past_end = |length, remaining| LengthPastEnd { length, remaining };
    let cases: [(&[u8], Result<Value, DecodeError>); 14] = [
        (&[], error(0, UnexpectedEnd)),
        (&[2, 0x00], error(0, UnknownVersion(2))),
        (&[1], error(1, UnexpectedEnd)),
        (&[1, 0x09], error(1, UnknownTag(0x09))),
        (&[1, 0x03, 1, 2, 3], error(5, UnexpectedEnd)),
        (&[1, 0x05, 3, b'a'], error(2, past_end(3, 1))),
        (&[1, 0x05, 3, b'a', 0xC3, 0x28], error(4, InvalidUtf8)),
        (&[1, 0x00, 0x00], error(2, TrailingBytes)),
        (&[1, 0x07, 3, 2, 0, 0], error(2, past_end(3, 2))),
        (&[1, 0x07, 1, 2, 0, 0], error(5, ContainerSizeMismatch)),
        (&[1, 0x07, 2, 1, 0, 0], error(2, past_end(2, 1))),
        (&[1, 0x07, 1, 1, 0x03], error(5, UnexpectedEnd)),
        (&[1, 0x08, 3, 4, 1, b'b', 0, 0], error(2, past_end(3, 4))),
        (&[1, 0x08, 1, 2, 1, b'b'], error(6, UnexpectedEnd)),
    ];
    for (bytes, expected) in cases {
        assert_eq!(Value::decode(bytes), expected, "{}", bytes.escape_ascii());
        assert_eq!(ValueRef::parse(bytes).err(), expected.err(), "parse agrees");
    }
}

#[test]
fn map_keys_must_ascend_strictly() {
    let entries = |a: u8, b: u8| vec![1, 0x08, 2, 6, 1, a, 0x00, 1, b, 0x00];
    assert_eq!(
        Value::decode(&entries(b'a', b'b')),
        Ok(map(&[("a", Value::Null), ("b", Value::Null)]))
    );
    assert_eq!(Value::decode(&entries(b'b', b'a')), error(7, MapKeysNotAscending));
    assert_eq!(Value::decode(&entries(b'a', b'a')), error(7, MapKeysNotAscending), "duplicate");
    let prefix_first = map(&[("ab", Value::Null), ("a", Value::Null)]);
    let bytes = prefix_first.encode();
    assert_eq!(bytes[4..6], [1, b'a'], "a shorter key that is a prefix comes first");
}

#[test]
fn nesting_decodes_up_to_depth_max_and_no_deeper() {
    assert_eq!(nested(0).depth(), 0);
    assert_eq!(map(&[("a", nested(2))]).depth(), 3);
    let deepest = nested(DEPTH_MAX);
    assert_eq!(deepest.depth(), DEPTH_MAX);
    assert_eq!(Value::decode(&deepest.try_encode().expect("at the limit")), Ok(deepest));
    let too_deep = nested(DEPTH_MAX + 1);
    let bytes = too_deep.encode();
    // The innermost array, `07 01 01 00`, ends the encoding.
    let innermost_at = bytes.len() - 4;
    assert_eq!(bytes[innermost_at..], [0x07, 0x01, 0x01, 0x00]);
    assert_eq!(Value::decode(&bytes), error(innermost_at, TooDeep));
    assert_eq!(ValueRef::parse(&bytes).err(), Some(DecodeError::new(innermost_at, TooDeep)));
    assert_eq!(
        too_deep.try_encode(),
        Err(Error::LimitExceeded { what: "value nesting depth", actual: 65, max: 64 })
    );
    assert_eq!(nested(1_000).depth(), 1_000);
}

#[test]
fn a_huge_announced_length_is_refused_before_any_allocation() {
    let mut bytes = vec![1, 0x06];
    encode::write_uleb128(1 << 62, &mut bytes);
    let remaining = 0;
    assert_eq!(Value::decode(&bytes), error(2, LengthPastEnd { length: 1 << 62, remaining }));
    let mut array = vec![1, 0x07];
    encode::write_uleb128(u64::MAX, &mut array);
    array.extend([2, 0, 0]);
    let past_end = LengthPastEnd { length: u64::MAX, remaining: 2 };
    assert_eq!(Value::decode(&array), error(2, past_end), "a count over the items' bytes");
}

#[test]
fn a_value_ref_borrows_its_payload_from_the_encoding() {
    let value = map(&[
        ("bytes", Value::from(&b"raw"[..])),
        ("list", Value::Array(vec![1.into(), "two".into(), 3.5.into(), Value::Null])),
        ("text", "hello".into()),
    ]);
    let bytes = value.encode();
    let range = bytes.as_ptr_range();
    let view = ValueRef::parse(&bytes).expect("a valid encoding");
    let entries = view.as_map().expect("a map");
    assert_eq!(entries.len(), 3);
    let text = entries.get("text").and_then(|text| text.as_str()).expect("a string");
    assert_eq!(text, "hello");
    assert!(range.contains(&text.as_ptr()), "the text is read in place");
    let raw = entries.get("bytes").and_then(|raw| raw.as_bytes()).expect("bytes");
    assert!(range.contains(&raw.as_ptr()), "the bytes are read in place");
    assert_eq!(entries.get("absent"), None);
    assert_eq!(entries.get("a"), None, "before the first key");
    let list = entries.get("list").and_then(|list| list.as_array()).expect("an array");
    assert_eq!(list.len(), 4);
    assert_eq!(list.iter().len(), 4, "exact size");
    assert_eq!(list.get(1), Some(ValueRef::Str("two")));
    assert_eq!(list.get(2).and_then(|f| f.as_float()), Some(3.5));
    assert_eq!(list.get(4), None);
    let kinds: Vec<&str> = list.iter().map(|item| item.kind()).collect();
    assert_eq!(kinds, ["int", "string", "float", "null"]);
    let keys: Vec<&str> = entries.iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["bytes", "list", "text"], "in key order");
    assert_eq!(view.to_owned(), value);
    assert_eq!(format!("{:?}", list), "[Int(1), Str(\"two\"), Float(3.5), Null]");
}

#[test]
fn accessors_answer_only_for_their_kind() {
    let int = Value::from(7u8);
    assert_eq!((int.as_int(), int.as_float(), int.kind()), (Some(7), None, "int"));
    assert_eq!(Value::from(Some("x")).as_str(), Some("x"));
    assert!(Value::from(None::<i64>).is_null());
    assert_eq!(Value::from(vec![0u8, 1]).as_bytes(), Some(&[0u8, 1][..]));
    assert_eq!(Value::from(2.5f32).as_float(), Some(2.5));
    assert_eq!(Value::from(false).as_bool(), Some(false));
    let array: Value = [Value::from(1), Value::from(2)].into_iter().collect();
    assert_eq!(array.as_array().map(<[Value]>::len), Some(2));
    assert_eq!(map(&[("k", Value::Null)]).as_map().map(BTreeMap::len), Some(1));
    assert_eq!(Value::default(), Value::Null);
}

fn any_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        any::<u64>().prop_map(|bits| Value::Float(f64::from_bits(bits))),
        ".{0,12}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Value::Bytes),
    ];
    scalar.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..8).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn every_value_round_trips_through_its_encoding(value in any_value()) {
        let bytes = value.encode();
        let decoded = Value::decode(&bytes).expect("an encoding decodes");
        prop_assert!(same(&decoded, &value), "{decoded:?} != {value:?}");
        prop_assert_eq!(decoded.encode(), bytes.clone(), "one encoding per value");
        let view = ValueRef::parse(&bytes).expect("and parses");
        prop_assert!(same(&view.to_owned(), &value));
    }

    #[test]
    fn arbitrary_bytes_decode_only_if_they_are_the_canonical_encoding(
        bytes in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(7), Just(8), Just(0x80), any::<u8>()], 0..40)
    ) {
        match Value::decode(&bytes) {
            Ok(value) => prop_assert_eq!(value.encode(), bytes),
            Err(error) => prop_assert!(error.offset <= bytes.len()),
        }
    }

    #[test]
    fn damaged_encodings_decode_only_if_still_canonical(
        value in any_value(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = value.encode();
        for (index, byte) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= byte;
        }
        for damaged in [&bytes[..], &bytes[..cut.index(bytes.len())]] {
            if let Ok(decoded) = Value::decode(damaged) {
                prop_assert_eq!(decoded.encode(), damaged);
            }
        }
    }
}
