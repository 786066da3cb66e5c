//! `wal_frame`: the write-ahead log's on-disk format (`inmem_wal::format`) over arbitrary
//! bytes: frame decoding, sealing, segment headers and segment file names.
//!
//! The input decodes (through `arbitrary`) into the parameters of a decode (position, seed,
//! payload limit, another seed and position), raw bytes to decode as a frame, a frame to
//! encode with the crate's own encoder and then damage (bit flips, a truncation), header
//! fields to encode, raw header bytes (placed at the start of a zeroed block, so that
//! short inputs reach every check), and a file name.
//!
//! Invariants checked:
//! - nothing panics, whatever the bytes;
//! - a frame that decodes has a length that fits the input, a payload within the limit,
//!   the length `frame_len` gives its payload, and the position it was decoded at;
//! - re-encoding a decoded frame's kind, position and payload with the same seed yields
//!   exactly the bytes it was decoded from (round trip);
//! - decoding the same bytes with another seed, or at another position, never validates
//!   (another position is `WrongPosition`);
//! - a frame the crate encodes decodes to its fields, and after bit flips or a truncation
//!   that change its bytes, never validates;
//! - `seal_frame` over arbitrary bytes seals exactly when they hold the whole frame their
//!   length field announces, and a sealed frame then fails only for its header or padding
//!   (never its checksum, position or length);
//! - a segment header decodes only from a block that re-encodes to the same bytes outside
//!   its two frontier slot sectors (which the writer rewrites, and which never invalidate
//!   the header); encoded
//!   fields decode back exactly when they are valid (number at least 1, size above the
//!   header, every position of the frame area below 2^64), and are refused as `BadFields`
//!   otherwise;
//! - a frontier slot's sector, whatever its bytes, decodes without panicking; one that
//!   decodes as valid re-encodes to the same bytes; the slot the crate encodes decodes
//!   back exactly when its sequence number is at least 1, its frontier lies in the
//!   segment and its step within its bounds; the scan's end is never past the segment, and never before the highest valid
//!   frontier (or the segment's end, with none);
//! - a segment file name parses only if it is the name of the position it parses to, and
//!   every position's name parses back to it.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inmem_wal::format::{
    decode_frame, encode_frame, frame_len, highest_frontier, parse_segment_file_name, seal_frame,
    segment_file_name, Damage, Decoded, FrameKind, FrontierSlot, HeaderError, SegmentHeader, Slot,
    FRONTIER_SLOT_OFFSETS, FRONTIER_STEP, FRONTIER_STEP_MAX, SEGMENT_HEADER_LEN, SEGMENT_SIZE_MAX,
    SLOT_SECTOR_LEN, TRAILER_LEN,
};
use inmem_wal::LogPosition;
use libfuzzer_sys::fuzz_target;

/// Payload bytes of the frame the target encodes, at most.
const PAYLOAD_MAX: usize = 512;
/// Bit flips applied to an encoded frame, at most.
const FLIPS_MAX: usize = 4;
/// Header bytes taken from the input, at most (the fields are 48; a little more reaches
/// the zero padding).
const HEADER_BYTES_MAX: usize = 64;

/// The payload limit of a decode: small ones that the input's lengths cross, or the
/// largest a frame can announce.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Limit {
    Small(u8),
    Medium(u16),
    Any,
}

impl Limit {
    fn bytes(self) -> u64 {
        match self {
            Limit::Small(limit) => u64::from(limit),
            Limit::Medium(limit) => u64::from(limit),
            Limit::Any => u64::from(u32::MAX),
        }
    }
}

/// A frame for the crate's encoder, and damage to apply to its bytes.
#[derive(Debug)]
struct EncodedFrame {
    kind: FrameKind,
    position: LogPosition,
    seed: u64,
    payload: Vec<u8>,
    /// Bit indexes (modulo the frame's bits) to flip.
    flips: Vec<u16>,
    /// The length to truncate the frame to (modulo its length plus one), if any.
    truncate: Option<u16>,
}

impl<'a> Arbitrary<'a> for EncodedFrame {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let kind = FrameKind::new(u8::arbitrary(u)?).unwrap_or(FrameKind::RECORD);
        let position = LogPosition::new(u64::arbitrary(u)?);
        let seed = u64::arbitrary(u)?;
        let len = u.int_in_range(0..=PAYLOAD_MAX)?;
        let payload = u.bytes(len)?.to_vec();
        let flips = (0..u.int_in_range(0..=FLIPS_MAX)?)
            .map(|_| u16::arbitrary(u))
            .collect::<arbitrary::Result<_>>()?;
        let truncate = Option::<u16>::arbitrary(u)?;
        Ok(EncodedFrame { kind, position, seed, payload, flips, truncate })
    }
}

#[derive(Debug)]
struct Input {
    position: LogPosition,
    seed: u64,
    limit: Limit,
    /// Another seed and position to decode the same bytes with.
    other_seed: u64,
    other_position: LogPosition,
    encoded: EncodedFrame,
    /// Fields for the header encoder.
    header: (u64, u64, u64),
    /// The start of a header block (the rest is zero), and one byte to poke into it.
    header_bytes: Vec<u8>,
    header_poke: Option<(u16, u8)>,
    /// A slot's fields for the slot encoder, and bytes to decode as a slot's sector.
    slot: (u64, u64, u64),
    slot_bytes: Vec<u8>,
    name: String,
    /// The bytes to decode as a frame: the rest of the input.
    bytes: Vec<u8>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let position = LogPosition::new(u64::arbitrary(u)?);
        let seed = u64::arbitrary(u)?;
        let limit = Limit::arbitrary(u)?;
        let other_seed = u64::arbitrary(u)?;
        let other_position = LogPosition::new(u64::arbitrary(u)?);
        let encoded = EncodedFrame::arbitrary(u)?;
        let header = <(u64, u64, u64)>::arbitrary(u)?;
        let header_len = u.int_in_range(0..=HEADER_BYTES_MAX)?;
        let header_bytes = u.bytes(header_len)?.to_vec();
        let header_poke = Option::<(u16, u8)>::arbitrary(u)?;
        let slot = <(u64, u64, u64)>::arbitrary(u)?;
        let slot_len = u.int_in_range(0..=SLOT_SECTOR_LEN + 8)?;
        let slot_bytes = u.bytes(slot_len)?.to_vec();
        let name_len = u.int_in_range(0..=32)?;
        let name = String::from_utf8_lossy(u.bytes(name_len)?).into_owned();
        let bytes = u.bytes(u.len())?.to_vec();
        Ok(Input {
            position,
            seed,
            limit,
            other_seed,
            other_position,
            encoded,
            header,
            header_bytes,
            header_poke,
            slot,
            slot_bytes,
            name,
            bytes,
        })
    }
}

/// Decodes `bytes` as the input says and checks what a decoded frame must satisfy.
fn check_decode(input: &Input, bytes: &[u8]) {
    let limit = input.limit.bytes();
    let Decoded::Frame(frame) = decode_frame(bytes, input.position, input.seed, limit) else {
        return;
    };
    assert!(frame.len <= bytes.len(), "a decoded frame is longer than its input");
    assert!(frame.payload.len() as u64 <= limit, "a decoded payload is over the limit");
    assert_eq!(frame.len, frame_len(frame.payload.len()), "a frame's length is not its payload's");
    assert_eq!(frame.position, input.position, "a frame decoded at another position");
    let mut again = Vec::new();
    assert!(frame.synced <= frame.position, "a frame stamped past its position decoded");
    encode_frame(&mut again, frame.kind, frame.position, frame.payload, input.seed, frame.synced);
    assert_eq!(again, bytes[..frame.len], "re-encoding a decoded frame changed its bytes");
    if input.other_seed != input.seed {
        let other = decode_frame(bytes, input.position, input.other_seed, limit);
        assert!(!matches!(other, Decoded::Frame(_)), "a frame validated under another seed");
    }
    if input.other_position != input.position {
        let other = decode_frame(bytes, input.other_position, input.seed, limit);
        assert!(
            matches!(other, Decoded::Damaged(Damage::WrongPosition { .. })),
            "a frame decoded at another position is {other:?}, not WrongPosition"
        );
    }
}

/// Encodes the input's frame, checks it reads back, damages it, and checks that the
/// damage never validates.
fn check_encoded(encoded: &EncodedFrame) {
    let EncodedFrame { kind, position, seed, payload, .. } = encoded;
    let limit = PAYLOAD_MAX as u64;
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, *kind, *position, payload, *seed, *position);
    assert_eq!(bytes.len(), frame_len(payload.len()), "an encoded frame has the wrong length");
    match decode_frame(&bytes, *position, *seed, limit) {
        Decoded::Frame(frame) => {
            assert_eq!(frame.kind, *kind, "an encoded frame reads back another kind");
            assert_eq!(frame.payload, payload.as_slice(), "an encoded frame reads back changed");
            assert_eq!(frame.len, bytes.len(), "an encoded frame reads back another length");
        }
        other => panic!("a frame the crate encoded does not decode: {other:?}"),
    }
    let original = bytes.clone();
    let bits = bytes.len() * 8;
    for &flip in &encoded.flips {
        let bit = usize::from(flip) % bits;
        bytes[bit / 8] ^= 1 << (bit % 8);
    }
    if let Some(len) = encoded.truncate {
        bytes.truncate(usize::from(len) % (original.len() + 1));
    }
    let decoded = decode_frame(&bytes, *position, *seed, limit);
    if bytes == original {
        assert!(matches!(decoded, Decoded::Frame(_)), "flips that cancel out broke a frame");
    } else {
        assert!(!matches!(decoded, Decoded::Frame(_)), "a damaged frame validated: {decoded:?}");
    }
}

/// Seals arbitrary bytes, and checks that the seal is exactly what `decode_frame` checks.
fn check_seal(input: &Input) {
    let mut bytes = input.bytes.clone();
    let announced = bytes.get(0..4).map(|word| {
        let word = [word[0], word[1], word[2], word[3]];
        frame_len(u32::from_le_bytes(word) as usize)
    });
    // Stamped with the position the frame names, which is never past it.
    let named = input.bytes.get(8..16).map_or(0, |word| {
        u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]])
    });
    let sealed = seal_frame(&mut bytes, input.seed, LogPosition::new(named));
    let whole = announced.filter(|&len| len <= bytes.len());
    assert_eq!(sealed, whole, "seal_frame disagrees with the length the frame announces");
    let Some(len) = sealed else {
        assert_eq!(bytes, input.bytes, "a failed seal changed the bytes");
        return;
    };
    assert_eq!(bytes[len..], input.bytes[len..], "a seal wrote past its frame");
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[8..16]);
    let position = LogPosition::new(u64::from_le_bytes(word));
    match decode_frame(&bytes, position, input.seed, u64::from(u32::MAX)) {
        Decoded::Frame(frame) => assert_eq!(frame.len, len, "a sealed frame has another length"),
        Decoded::Trailer(_) => assert_eq!(len, TRAILER_LEN, "a sealed trailer has another length"),
        Decoded::Zeroed | Decoded::Damaged(Damage::BadHeader | Damage::BadPadding) => {}
        Decoded::Damaged(damage) => panic!("a sealed frame fails for {damage:?}"),
    }
}

/// Decodes a block made of the input's header bytes, and encodes the input's fields.
fn check_header(input: &Input) {
    let mut block = vec![0; SEGMENT_HEADER_LEN as usize];
    block[..input.header_bytes.len()].copy_from_slice(&input.header_bytes);
    if let Some((index, byte)) = input.header_poke {
        let len = block.len();
        block[usize::from(index) % len] = byte;
    }
    for bytes in [&block[..], &input.bytes[..]] {
        if let Ok(header) = SegmentHeader::decode(bytes) {
            let encoded = header.encode();
            let outside_slots = |block: &[u8]| {
                let slots = FRONTIER_SLOT_OFFSETS[0] as usize
                    ..FRONTIER_SLOT_OFFSETS[1] as usize + SLOT_SECTOR_LEN;
                let (before, after) = (&block[..slots.start], &block[slots.end..encoded.len()]);
                [before.to_vec(), after.to_vec()].concat()
            };
            assert_eq!(
                outside_slots(&encoded),
                outside_slots(bytes),
                "a decoded header re-encodes differently"
            );
            check_slots(&header, bytes, input);
        }
    }
    let (number, first, size) = input.header;
    let header = SegmentHeader { number, first_position: LogPosition::new(first), size };
    let block = header.encode();
    assert_eq!(block.len() as u64, SEGMENT_HEADER_LEN, "an encoded header is not one block");
    check_slots(&header, &block, input);
    let decoded = SegmentHeader::decode(&block);
    let positions_fit = first.checked_add(size.saturating_sub(SEGMENT_HEADER_LEN)).is_some();
    let size_valid = size > SEGMENT_HEADER_LEN && size <= SEGMENT_SIZE_MAX && size % 4096 == 0;
    if number >= 1 && size_valid && positions_fit {
        assert_eq!(decoded, Ok(header), "valid header fields do not round trip");
    } else {
        assert_eq!(decoded, Err(HeaderError::BadFields), "invalid header fields are accepted");
    }
}

/// Decodes the slots of `block` and the input's slot bytes for `header`, and encodes the
/// input's slot.
fn check_slots(header: &SegmentHeader, block: &[u8], input: &Input) {
    let slots = header.decode_slots(block);
    let scan_end = header.scan_end(&slots);
    assert!(scan_end <= header.size.max(SEGMENT_HEADER_LEN), "a scan past the segment");
    match highest_frontier(&slots) {
        Some(highest) => {
            assert!(scan_end >= highest.frontier.min(header.size), "a scan short of M")
        }
        None => assert_eq!(scan_end, header.size, "no valid slot, yet a bounded scan"),
    }
    if let Slot::Valid(slot) = header.decode_slot(&input.slot_bytes) {
        assert_eq!(
            header.encode_slot(slot)[..],
            input.slot_bytes[..],
            "a slot re-encodes differently"
        );
    }
    let (sequence, frontier, step) = input.slot;
    let slot = FrontierSlot { sequence, frontier, step };
    let decoded = header.decode_slot(&header.encode_slot(slot));
    if sequence >= 1
        && (SEGMENT_HEADER_LEN..=header.size).contains(&frontier)
        && (FRONTIER_STEP..=FRONTIER_STEP_MAX).contains(&step)
    {
        assert_eq!(decoded, Slot::Valid(slot), "a valid slot does not round trip");
    } else {
        assert_eq!(decoded, Slot::Invalid, "an invalid slot is accepted");
    }
}

/// Checks that segment names and positions map one to one.
fn check_names(input: &Input) {
    if let Some(position) = parse_segment_file_name(&input.name) {
        assert_eq!(segment_file_name(position), input.name, "a name parses to another's position");
    }
    let name = segment_file_name(input.position);
    assert_eq!(parse_segment_file_name(&name), Some(input.position), "a name does not parse back");
}

fuzz_target!(|input: Input| {
    check_decode(&input, &input.bytes);
    check_encoded(&input.encoded);
    check_seal(&input);
    check_header(&input);
    check_names(&input);
});
