//! Frames round-trip through their encoding, for any payload, kind, position and seed, and
//! nothing but the exact bytes, position and seed they were sealed with decodes.

#![allow(clippy::expect_used, reason = "a failed expectation fails the test, as it should")]

use inmem_wal::format::{
    decode_frame, encode_frame, frame_len, Damage, Decoded, FrameKind, FRAME_ALIGN,
};
use inmem_wal::LogPosition;
use proptest::prelude::*;

/// The payload limit the decoder is given.
const MAX_PAYLOAD: u64 = 4096;

fn kind() -> impl Strategy<Value = FrameKind> {
    (1u8..=u8::MAX).prop_map(|code| FrameKind::new(code).expect("a non-zero code"))
}

/// Frame positions are 8-byte aligned, and far from 2^64.
fn position() -> impl Strategy<Value = LogPosition> {
    (0u64..(1 << 56)).prop_map(|slot| LogPosition::new(slot * FRAME_ALIGN as u64))
}

proptest! {
    #[test]
    fn any_frame_decodes_to_exactly_what_was_encoded(
        payload in prop::collection::vec(any::<u8>(), 0..2048),
        kind in kind(),
        position in position(),
        seed in any::<u64>(),
    ) {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, kind, position, &payload, seed, position);
        prop_assert_eq!(bytes.len(), frame_len(payload.len()));
        prop_assert_eq!(bytes.len() % FRAME_ALIGN, 0);
        let Decoded::Frame(frame) = decode_frame(&bytes, position, seed, MAX_PAYLOAD) else {
            return Err(TestCaseError::fail("an encoded frame does not decode"));
        };
        prop_assert_eq!(frame.kind, kind);
        prop_assert_eq!(frame.position, position);
        prop_assert_eq!(frame.payload, &payload[..]);
        prop_assert_eq!(frame.len, bytes.len());
    }

    #[test]
    fn frames_back_to_back_decode_in_order_each_at_its_own_position(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..12),
        start in position(),
        seed in any::<u64>(),
    ) {
        let mut bytes = Vec::new();
        let mut positions = Vec::new();
        for payload in &payloads {
            positions.push(LogPosition::new(start.get() + bytes.len() as u64));
            let at = *positions.last().expect("pushed");
            encode_frame(&mut bytes, FrameKind::RECORD, at, payload, seed, at);
        }
        let mut offset = 0;
        for (payload, position) in payloads.iter().zip(&positions) {
            let Decoded::Frame(frame) =
                decode_frame(&bytes[offset..], *position, seed, MAX_PAYLOAD)
            else {
                return Err(TestCaseError::fail("a frame of the run does not decode"));
            };
            prop_assert_eq!(frame.payload, &payload[..]);
            offset += frame.len;
        }
        prop_assert_eq!(offset, bytes.len());
        prop_assert_eq!(decode_frame(&bytes[offset..], LogPosition::new(start.get() + offset as u64), seed, MAX_PAYLOAD), Decoded::Zeroed);
    }

    #[test]
    fn another_seed_another_position_or_a_cut_never_decodes(
        payload in prop::collection::vec(any::<u8>(), 0..512),
        position in position(),
        seed in any::<u64>(),
        other_seed in any::<u64>(),
        cut in 1usize..64,
    ) {
        prop_assume!(other_seed != seed);
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, FrameKind::RECORD, position, &payload, seed, position);
        prop_assert_eq!(
            decode_frame(&bytes, position, other_seed, MAX_PAYLOAD),
            Decoded::Damaged(Damage::BadChecksum)
        );
        let elsewhere = LogPosition::new(position.get() + FRAME_ALIGN as u64);
        let is_wrong_position = matches!(
            decode_frame(&bytes, elsewhere, seed, MAX_PAYLOAD),
            Decoded::Damaged(Damage::WrongPosition { .. })
        );
        prop_assert!(is_wrong_position);
        let kept = bytes.len().saturating_sub(cut);
        let is_frame = matches!(decode_frame(&bytes[..kept], position, seed, MAX_PAYLOAD), Decoded::Frame(_));
        prop_assert!(!is_frame, "a frame cut by {} bytes still decodes", cut);
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_frame_never_decodes_as_a_frame(
        payload in prop::collection::vec(any::<u8>(), 0..256),
        position in position(),
        seed in any::<u64>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, FrameKind::RECORD, position, &payload, seed, position);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let is_frame = matches!(decode_frame(&bytes, position, seed, MAX_PAYLOAD), Decoded::Frame(_));
        prop_assert!(!is_frame, "bit {} flipped and the frame still decodes", bit);
    }
}
