use proptest::prelude::*;

use super::*;

fn run() -> RunId {
    RunId::from_bytes(*b"0123456789abcdef")
}

fn component(bytes: &[u8]) -> Vec<u8> {
    KeyBuf::new(run(), TypeTag::Kv).push_component(bytes).finish().split_off(TAG_PREFIX_LEN)
}

#[test]
fn a_key_is_run_id_then_type_tag_then_suffix() {
    let key = KeyBuf::new(run(), TypeTag::Event).push_u8(9).push_u64(0x0102).push_bytes(b"xy");
    let expected = [&b"0123456789abcdef"[..], &[0x02, 9, 0, 0, 0, 0, 0, 0, 1, 2], b"xy"].concat();
    assert_eq!(key.as_slice(), expected.as_slice());
    assert_eq!(key.len(), expected.len());
    assert!(!key.is_empty());
    assert!(key.as_slice().starts_with(&tag_prefix(run(), TypeTag::Event)));
    assert!(key.as_slice().starts_with(&run_prefix(run())));
    assert_eq!(tag_prefix(run(), TypeTag::Event)[RUN_PREFIX_LEN], TypeTag::Event.byte());
    assert_eq!(key.finish(), expected);
}

#[test]
fn components_escape_zero_bytes_and_end_with_the_terminator() {
    assert_eq!(component(b""), [0x00, 0x01]);
    assert_eq!(component(b"a\x00b"), [b'a', 0x00, 0xFF, b'b', 0x00, 0x01]);
    assert_eq!(component(b"\x00\x00"), [0x00, 0xFF, 0x00, 0xFF, 0x00, 0x01]);
    assert_eq!(component(b"\xFF\x01"), [0xFF, 0x01, 0x00, 0x01], "only 0x00 is escaped");
}

#[test]
fn every_component_reads_back_and_the_reader_checks_the_end() {
    let key = KeyBuf::new(run(), TypeTag::Trace)
        .push_component(b"plain")
        .push_component(b"with\x00zero")
        .push_component("text".as_bytes())
        .push_u8(7)
        .push_u64(u64::MAX - 1)
        .push_bytes(b"last\x00raw")
        .finish();
    let parts = split_key(&key).expect("a well-formed key");
    assert_eq!((parts.run, parts.tag), (run(), TypeTag::Trace));
    let mut reader = parts.reader();
    assert!(matches!(reader.read_component(), Ok(Cow::Borrowed(b"plain"))), "no copy");
    assert!(matches!(reader.read_component(), Ok(Cow::Owned(c)) if c == b"with\x00zero"));
    assert_eq!(reader.read_component_str().as_deref(), Ok("text"));
    assert_eq!(reader.read_u8(), Ok(7));
    assert_eq!(reader.read_u64(), Ok(u64::MAX - 1));
    assert!(!reader.is_empty());
    assert_eq!(reader.clone().finish(), Err(DecodeError::new(key.len() - 8, TrailingBytes)));
    assert_eq!(reader.read_rest(), b"last\x00raw");
    assert!(reader.is_empty());
    assert_eq!(reader.read_u8(), Err(DecodeError::new(key.len(), UnexpectedEnd)));
    assert_eq!(reader.finish(), Ok(()));
}

use DecodeReason::{InvalidEscape, InvalidUtf8, TrailingBytes, UnexpectedEnd};

#[test]
fn bad_suffixes_are_errors_that_say_where() {
    let cases: [(&[u8], DecodeError); 5] = [
        (b"abc", DecodeError::new(3, UnexpectedEnd)),
        (b"abc\x00", DecodeError::new(4, UnexpectedEnd)),
        (b"abc\x00\x02", DecodeError::new(4, InvalidEscape)),
        (b"a\x00\xFF\x00\x00", DecodeError::new(4, InvalidEscape)),
        (b"\x00\xFF", DecodeError::new(2, UnexpectedEnd)),
    ];
    for (suffix, error) in cases {
        let mut reader = KeyReader::new(suffix);
        assert_eq!(reader.read_component(), Err(error), "{}", suffix.escape_ascii());
        assert_eq!(reader.remaining(), suffix, "a failed read consumes nothing");
    }
    let mut short = KeyReader::new(&[1, 2, 3]);
    assert_eq!(short.read_u64(), Err(DecodeError::new(3, UnexpectedEnd)));
    assert_eq!(short.read_u8(), Ok(1), "a failed read consumes nothing");
    let mut not_text = KeyReader::new(b"ok\x00\x01\xC3\x28\x00\x01");
    assert_eq!(not_text.read_component_str().as_deref(), Ok("ok"));
    assert_eq!(not_text.read_component_str(), Err(DecodeError::new(4, InvalidUtf8)));
    assert_eq!(not_text.remaining(), b"\xC3\x28\x00\x01");
}

#[test]
fn split_key_refuses_short_keys_and_unknown_tags() {
    let short = [0u8; TAG_PREFIX_LEN - 1];
    assert_eq!(split_key(&short), Err(DecodeError::new(16, UnexpectedEnd)));
    assert_eq!(split_key(b"short"), Err(DecodeError::new(5, UnexpectedEnd)));
    let mut unknown = tag_prefix(run(), TypeTag::Kv);
    unknown[RUN_PREFIX_LEN] = 0x08;
    assert_eq!(split_key(&unknown), Err(DecodeError::new(16, DecodeReason::UnknownTypeTag(8))));
    let bare = tag_prefix(run(), TypeTag::Run);
    let parts = split_key(&bare).expect("a key with an empty suffix");
    assert_eq!(parts.suffix, b"");
    let mut reader = parts.reader();
    assert_eq!(reader.read_u8(), Err(DecodeError::new(TAG_PREFIX_LEN, UnexpectedEnd)));
}

#[test]
fn prefix_end_is_the_smallest_key_above_the_prefix() {
    assert_eq!(prefix_end(b""), None);
    assert_eq!(prefix_end(b"\xFF\xFF"), None);
    assert_eq!(prefix_end(b"a"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"a\xFF"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\x00\xFE\xFF"), Some(b"\x00\xFF".to_vec()));
    let end = prefix_end(&tag_prefix(run(), TypeTag::Kv)).expect("a tag prefix has an end");
    assert_eq!(end, tag_prefix(run(), TypeTag::Event), "the next tag starts where Kv ends");
}

#[test]
fn a_component_prefix_starts_exactly_the_keys_whose_component_starts_with_it() {
    let prefix = KeyBuf::new(run(), TypeTag::Kv).push_component_prefix(b"a\x00").finish();
    let key = |c: &[u8]| KeyBuf::new(run(), TypeTag::Kv).push_component(c).push_u64(1).finish();
    for inside in [&b"a\x00"[..], b"a\x00\x00", b"a\x00b"] {
        assert!(key(inside).starts_with(&prefix), "{}", inside.escape_ascii());
    }
    for outside in [&b"a"[..], b"a\x01", b"b\x00", b""] {
        assert!(!key(outside).starts_with(&prefix), "{}", outside.escape_ascii());
    }
}

/// Bytes rich in the ones the encoding treats specially.
fn component_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(0u8), Just(1), Just(0xFF), any::<u8>()];
    proptest::collection::vec(byte, 0..12)
}

proptest! {
    #[test]
    fn component_encoding_preserves_order_and_round_trips(
        a in component_bytes(),
        b in component_bytes(),
        tail_a in any::<u64>(),
        tail_b in any::<u64>(),
    ) {
        let key = |c: &[u8], tail: u64| {
            KeyBuf::new(run(), TypeTag::State).push_component(c).push_u64(tail).finish()
        };
        let (key_a, key_b) = (key(&a, tail_a), key(&b, tail_b));
        if a != b {
            prop_assert_eq!(key_a.cmp(&key_b), a.cmp(&b), "whatever follows the component");
        } else {
            prop_assert_eq!(key_a.cmp(&key_b), tail_a.cmp(&tail_b));
        }
        let parts = split_key(&key_a).expect("a built key splits");
        let mut reader = parts.reader();
        prop_assert_eq!(reader.read_component().expect("reads back"), &a[..]);
        prop_assert_eq!(reader.read_u64(), Ok(tail_a));
        prop_assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn u64_components_order_numerically(a in any::<u64>(), b in any::<u64>()) {
        let key = |n| KeyBuf::new(run(), TypeTag::Event).push_u64(n).finish();
        prop_assert_eq!(key(a).cmp(&key(b)), a.cmp(&b));
    }

    #[test]
    fn prefix_end_bounds_exactly_the_keys_with_the_prefix(
        prefix in proptest::collection::vec(prop_oneof![Just(0xFFu8), any::<u8>()], 0..6),
        key in proptest::collection::vec(prop_oneof![Just(0xFFu8), any::<u8>()], 0..8),
    ) {
        let below_end = prefix_end(&prefix).is_none_or(|end| key < end);
        let at_or_above_start = key >= prefix;
        prop_assert_eq!(key.starts_with(&prefix), at_or_above_start && below_end);
    }

    #[test]
    fn reading_arbitrary_suffixes_never_panics(suffix in component_bytes()) {
        let mut reader = KeyReader::new(&suffix);
        loop {
            let before = reader.remaining();
            let Ok(read) = reader.read_component() else { break };
            // A component read back re-encodes to exactly the bytes it was read from.
            let consumed = before.len() - reader.remaining().len();
            let encoded = component(&read);
            prop_assert_eq!(&before[..consumed], encoded.as_slice());
        }
        let _ = reader.read_u64();
        let _ = split_key(&suffix);
    }
}
