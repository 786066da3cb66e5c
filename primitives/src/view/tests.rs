use proptest::prelude::*;

use super::*;

/// The header of the module doc's example.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct CellHeader {
    version: U64Le,
    updated_at_ms: U64Le,
    flags: U32Le,
}

fn stored(header: &CellHeader, value: &Value) -> Bytes {
    let mut bytes = bytemuck::bytes_of(header).to_vec();
    value.encode_into(&mut bytes);
    Bytes::from(bytes)
}

#[test]
fn a_header_is_little_endian_bytes_at_the_front() {
    let header = CellHeader {
        version: U64Le::new(0x0102_0304_0506_0708),
        updated_at_ms: U64Le::from(9),
        flags: U32Le::new(0xAABB_CCDD),
    };
    let bytes = bytemuck::bytes_of(&header);
    assert_eq!(bytes.len(), 20, "no padding");
    assert_eq!(bytes[..8], [8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(bytes[8..16], [9, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes[16..], [0xDD, 0xCC, 0xBB, 0xAA]);
    assert_eq!(u64::from(header.updated_at_ms), 9);
    assert_eq!(format!("{:?}", header.flags), format!("{:?}", 0xAABB_CCDDu32));
}

#[test]
fn split_header_reads_the_header_and_views_the_rest_without_a_copy() {
    let header = CellHeader {
        version: U64Le::new(3),
        updated_at_ms: U64Le::new(1_700_000_000_000),
        flags: U32Le::default(),
    };
    let value = Value::from("a payload long enough to be shared, not inlined");
    let bytes = stored(&header, &value);
    let view = View::new(bytes.clone());
    let (read, body) = view.split_header::<CellHeader>().expect("long enough");
    assert_eq!(*read, header);
    assert_eq!(body.len(), bytes.len() - size_of::<CellHeader>());
    assert_eq!(body.as_bytes().as_ptr(), bytes[size_of::<CellHeader>()..].as_ptr(), "shared");
    assert_eq!(body.stored(), &bytes);
    assert_eq!(body.value().map(|value| value.to_owned()), Ok(value.clone()));
    let checked = ValueView::new(body).expect("an encoded value");
    assert_eq!(checked.value(), ValueRef::Str("a payload long enough to be shared, not inlined"));
    assert_eq!(checked.to_value(), value);
}

#[test]
fn bytes_too_short_for_the_header_are_a_decode_error() {
    let view = View::new(Bytes::from(&[1u8, 2, 3][..]));
    let error = view.split_header::<CellHeader>().err();
    assert_eq!(error, Some(DecodeError::new(3, DecodeReason::UnexpectedEnd)));
    let exact = View::new(Bytes::from(vec![0; size_of::<CellHeader>()]));
    let (_, rest) = exact.split_header::<CellHeader>().expect("exactly a header");
    assert!(rest.is_empty());
    assert_eq!(rest.value().err(), Some(DecodeError::new(0, DecodeReason::UnexpectedEnd)));
}

#[test]
fn slices_stay_within_the_view() {
    let view = View::from(Bytes::from("0123456789"));
    let middle = view.slice(2..8).expect("inside");
    assert_eq!(middle.as_bytes(), b"234567");
    assert_eq!(middle.slice(1..3).map(|inner| inner.as_bytes().to_vec()), Some(b"34".to_vec()));
    assert_eq!(middle.slice(0..7), None, "past the end of the slice, not of the bytes");
    #[expect(clippy::reversed_empty_ranges, reason = "the case under test")]
    let reversed = middle.slice(4..2);
    assert_eq!(reversed, None);
    assert_eq!(middle.slice(6..6).map(|empty| empty.len()), Some(0));
    assert_eq!(format!("{middle:?}"), "View(b\"234567\")");
    assert_eq!(middle, View::from(Bytes::from("234567")), "equal bytes, equal views");
}

#[test]
fn a_value_view_refuses_what_is_not_an_encoded_value() {
    let view = View::from(Bytes::from(&[1u8, 0x00, 0x00][..]));
    let error = ValueView::new(view).err();
    assert_eq!(error, Some(DecodeError::new(2, DecodeReason::TrailingBytes)));
    let good = ValueView::try_from(View::from(Bytes::from(Value::Int(5).encode()))).expect("ok");
    assert_eq!(good.value(), ValueRef::Int(5));
    assert_eq!(format!("{good:?}"), "ValueView(Int(5))");
}

proptest! {
    #[test]
    fn views_of_arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        start in any::<prop::sample::Index>(),
        end in any::<prop::sample::Index>(),
    ) {
        let view = View::new(Bytes::from(bytes.clone()));
        let (start, end) = (start.index(bytes.len() + 1), end.index(bytes.len() + 1));
        let slice = view.slice(start..end);
        prop_assert_eq!(slice.is_some(), start <= end);
        if let Some(slice) = slice {
            prop_assert_eq!(slice.as_bytes(), &bytes[start..end]);
        }
        match view.split_header::<CellHeader>() {
            Ok((header, rest)) => {
                let expected: CellHeader = bytemuck::pod_read_unaligned(&bytes[..20]);
                prop_assert_eq!(*header, expected, "the view agrees with an owned read");
                prop_assert_eq!(rest.as_bytes(), &bytes[20..]);
                let _ = rest.value();
            }
            Err(error) => prop_assert!(bytes.len() < 20 && error.offset == bytes.len()),
        }
        let _ = view.value();
    }
}
