//! Lowercase hex, the text form of run ids, random trace ids and scan cursors: one writer
//! and one reader, which accepts exactly what the writer writes.

use std::fmt;

/// Writes `bytes` as two lowercase hex digits each.
pub(crate) fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
}

/// Why text is not lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HexError {
    /// An odd number of digits.
    OddLength,
    /// The byte at this offset is not a lowercase hex digit.
    NotHex { offset: usize },
}

/// Reads lowercase hex `text` into `out`, two digits a byte; `out` must be exactly half as
/// long as `text` (the caller checks the length it expects first).
pub(crate) fn decode_into(text: &[u8], out: &mut [u8]) -> Result<(), HexError> {
    if text.len() != 2 * out.len() {
        return Err(HexError::OddLength);
    }
    for ((index, pair), byte) in text.chunks_exact(2).enumerate().zip(out) {
        let offset = 2 * index;
        let [high, low] = *pair else { return Err(HexError::OddLength) };
        let high = digit(high).ok_or(HexError::NotHex { offset })?;
        let low = digit(low).ok_or(HexError::NotHex { offset: offset + 1 })?;
        *byte = high << 4 | low;
    }
    Ok(())
}

/// Reads lowercase hex `text` of any even length.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, HexError> {
    if text.len() % 2 != 0 {
        return Err(HexError::OddLength);
    }
    let mut bytes = vec![0; text.len() / 2];
    decode_into(text, &mut bytes)?;
    Ok(bytes)
}

fn digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_reads_lowercase_pairs_and_names_the_first_bad_digit() {
        assert_eq!(decode(b"00ff7a"), Ok(vec![0x00, 0xff, 0x7a]));
        assert_eq!(decode(b""), Ok(vec![]));
        assert_eq!(decode(b"abc"), Err(HexError::OddLength));
        assert_eq!(decode(b"0F"), Err(HexError::NotHex { offset: 1 }));
        assert_eq!(decode(b"00g0"), Err(HexError::NotHex { offset: 2 }));
        let mut out = [0; 2];
        assert_eq!(decode_into(b"abc", &mut out), Err(HexError::OddLength));
    }
}
