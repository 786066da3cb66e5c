//! `RunId`: the 16 bytes that open every key of a run.
//!
//! A run id is 128 random bits from the operating system's random source, so ids made by
//! different processes and machines do not collide in practice. Its text form is 32
//! lowercase hex digits, one form per id, so that the text of an id can itself be compared
//! and stored.

use crate::hex::{self, HexError};
use std::fmt;
use std::str::FromStr;

/// The id of a run: 16 bytes, ordered as bytes (the order of its keys in the keyspace).
///
/// ```
/// use inmem_primitives::RunId;
///
/// let run = RunId::random();
/// let text = run.to_string();
/// assert_eq!(text.len(), 32);
/// assert_eq!(text.parse::<RunId>(), Ok(run));
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId([u8; RunId::LEN]);

impl RunId {
    /// The bytes of a run id.
    pub const LEN: usize = 16;

    /// A new run id of 128 random bits from the operating system.
    ///
    /// # Panics
    /// If the operating system's random source fails, which a working system never does
    /// (as `getrandom`'s documentation says); an id that is not random could collide with
    /// another run's and mix their data, so there is no fallback.
    pub fn random() -> RunId {
        let mut bytes = [0; RunId::LEN];
        crate::random::os_fill(&mut bytes);
        RunId(bytes)
    }

    /// The run id made of `bytes`.
    pub const fn from_bytes(bytes: [u8; RunId::LEN]) -> RunId {
        RunId(bytes)
    }

    /// The id's bytes, as they open its keys.
    pub const fn as_bytes(&self) -> &[u8; RunId::LEN] {
        &self.0
    }
}

impl fmt::Display for RunId {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, &self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

/// Text that is not a run id; see [`RunId`]'s `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseRunIdError {
    /// The text is not 32 bytes long.
    #[error("a run id is 32 hex digits, not {len} bytes")]
    Length {
        /// The text's length in bytes.
        len: usize,
    },
    /// A byte of the text is not a lowercase hex digit.
    #[error("byte {offset} of a run id is not a lowercase hex digit")]
    NotHex {
        /// The offset of the byte.
        offset: usize,
    },
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    /// Parses exactly 32 lowercase hex digits (the form `Display` writes, and no other).
    fn from_str(text: &str) -> Result<RunId, ParseRunIdError> {
        let digits = text.as_bytes();
        if digits.len() != 2 * RunId::LEN {
            return Err(ParseRunIdError::Length { len: digits.len() });
        }
        let mut bytes = [0; RunId::LEN];
        hex::decode_into(digits, &mut bytes).map_err(|error| match error {
            HexError::OddLength => ParseRunIdError::Length { len: digits.len() },
            HexError::NotHex { offset } => ParseRunIdError::NotHex { offset },
        })?;
        Ok(RunId(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_32_lowercase_hex_digits_and_parses_back() {
        let run = RunId::from_bytes([
            0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76, 0x98,
            0xba, 0xff,
        ]);
        assert_eq!(run.to_string(), "000123456789abcdef1032547698baff");
        assert_eq!(format!("{run:?}"), "RunId(000123456789abcdef1032547698baff)");
        assert_eq!("000123456789abcdef1032547698baff".parse(), Ok(run));
        for _ in 0..100 {
            let random = RunId::random();
            assert_eq!(random.to_string().parse(), Ok(random));
        }
    }

    #[test]
    fn text_of_another_form_is_refused_with_where() {
        assert_eq!("".parse::<RunId>(), Err(ParseRunIdError::Length { len: 0 }));
        assert_eq!(
            "000123456789abcdef1032547698baff0".parse::<RunId>(),
            Err(ParseRunIdError::Length { len: 33 })
        );
        assert_eq!(
            "000123456789ABCDEF1032547698baff".parse::<RunId>(),
            Err(ParseRunIdError::NotHex { offset: 12 }),
            "uppercase is another form"
        );
        assert_eq!(
            "00012345678g".repeat(3).get(..32).map(str::parse::<RunId>),
            Some(Err(ParseRunIdError::NotHex { offset: 11 }))
        );
        // 31 ASCII bytes and a two-byte character: 33 bytes, not 32 digits.
        assert_eq!(
            format!("{}\u{e9}", "0".repeat(31)).parse::<RunId>(),
            Err(ParseRunIdError::Length { len: 33 })
        );
        assert_eq!(
            format!("{}\u{e9}", "0".repeat(30)).parse::<RunId>(),
            Err(ParseRunIdError::NotHex { offset: 30 })
        );
    }

    #[test]
    fn random_ids_differ_and_order_is_byte_order() {
        let (a, b) = (RunId::random(), RunId::random());
        assert_ne!(a, b, "128 random bits do not repeat");
        assert_eq!(a.cmp(&b), a.as_bytes().cmp(b.as_bytes()));
        let low = RunId::from_bytes([0; 16]);
        let high = RunId::from_bytes([0xff; 16]);
        assert!(low < a && a < high);
    }
}
