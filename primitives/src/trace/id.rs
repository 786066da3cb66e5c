//! `TraceId`: the id of a trace, unique in its run: 16 bytes (a millisecond time, then 80
//! random bits), or a custom text id.

use crate::hex;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::key::KeyBuf;

/// The first byte of a random id's key form.
const RANDOM_KIND: u8 = 0x01;
/// The first byte of a custom id's key form.
const CUSTOM_KIND: u8 = 0x02;

/// The bytes of a random id.
const RANDOM_LEN: usize = 16;
/// Of which the first are the time it was made (see [`TraceId::random`]).
const TIME_LEN: usize = 6;

/// The longest custom id, in bytes.
pub const CUSTOM_ID_LEN_MAX: usize = 128;

// A random id is 16 random bytes written as 32 hex digits; a custom id of that form is
// refused (see `check_custom`), which needs the random form to fit in a custom id's length.
const _: () = assert!(2 * RANDOM_LEN <= CUSTOM_ID_LEN_MAX && RANDOM_KIND < CUSTOM_KIND);

/// The id of a trace, unique within its run.
///
/// Either 16 bytes, a millisecond time then 80 random bits ([`TraceId::random`], what
/// [`crate::trace::TraceStore::record`] gives a trace by default), written as 32 lowercase
/// hex digits, or a custom id
/// ([`TraceId::custom`]): 1 to [`CUSTOM_ID_LEN_MAX`] bytes of ASCII letters, digits and
/// `.` `_` `:` `/` `-`, that is not 32 lowercase hex digits (the text of a random id). So
/// every id has exactly one text form, and [`TraceId`]'s `FromStr` reads back what its
/// `Display` writes.
///
/// ```
/// use inmem_primitives::trace::TraceId;
///
/// let random = TraceId::random();
/// assert_eq!(random.to_string().len(), 32);
/// assert_eq!(random.to_string().parse::<TraceId>()?, random);
///
/// let custom = TraceId::custom("step-1/search")?;
/// assert_eq!(custom.to_string(), "step-1/search");
/// assert_eq!("step-1/search".parse::<TraceId>()?, custom);
/// assert!(TraceId::custom("").is_err());
/// assert!(TraceId::custom("no spaces").is_err());
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
///
/// Ids order as their key forms do: random ids (bytewise) before custom ids (bytewise).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceId(Repr);

/// The variants' order is the order of their kind bytes in keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Repr {
    Random([u8; RANDOM_LEN]),
    /// Passed `check_custom`.
    Custom(Box<str>),
}

impl TraceId {
    /// A new id: the time in ms since the Unix epoch (48 bits, most significant byte first),
    /// then 80 random bits, from a generator of the calling thread that the operating
    /// system seeds once (so an id costs no system call; see `random.rs`).
    ///
    /// The time first puts a run's traces, whose records are keyed by id, in about the
    /// order they were recorded: each new record lands next to the last ones instead of at
    /// a random place among them (in the engine's ordered index, a walk down a hot path
    /// rather than a cache miss per level). Eighty random bits keep ids made in one
    /// millisecond apart.
    ///
    /// # Panics
    /// If the operating system's random source fails when it seeds a thread's generator,
    /// which a working system never does; an id that is not random could collide with
    /// another trace's, so there is no fallback.
    pub fn random() -> TraceId {
        let mut bytes = [0; RANDOM_LEN];
        crate::random::thread_fill(&mut bytes[TIME_LEN..]);
        let ms = crate::clock::now_ms();
        for (i, byte) in bytes[..TIME_LEN].iter_mut().enumerate() {
            // Byte i of the 48-bit time, most significant first (no big-endian helper:
            // the workspace lints ask for explicit shifts).
            *byte = (ms >> (8 * (TIME_LEN - 1 - i))) as u8;
        }
        TraceId(Repr::Random(bytes))
    }

    /// The random-kind id made of `bytes`.
    pub const fn from_bytes(bytes: [u8; 16]) -> TraceId {
        TraceId(Repr::Random(bytes))
    }

    /// The custom id `text`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty id, a byte other than an ASCII letter, digit or
    /// `.` `_` `:` `/` `-`, or 32 lowercase hex digits (the form of a random id);
    /// [`Error::LimitExceeded`] for more than [`CUSTOM_ID_LEN_MAX`] bytes.
    pub fn custom(text: &str) -> Result<TraceId> {
        check_custom(text)?;
        Ok(TraceId(Repr::Custom(text.into())))
    }

    /// The 16 bytes of a random-kind id.
    pub fn as_random(&self) -> Option<&[u8; 16]> {
        match &self.0 {
            Repr::Random(bytes) => Some(bytes),
            Repr::Custom(_) => None,
        }
    }

    /// The text of a custom id.
    pub fn as_custom(&self) -> Option<&str> {
        match &self.0 {
            Repr::Random(_) => None,
            Repr::Custom(text) => Some(text),
        }
    }

    /// Whether this is a custom id.
    pub fn is_custom(&self) -> bool {
        matches!(self.0, Repr::Custom(_))
    }

    /// The id as it is written in keys: `0x01 | 16 bytes` for a random id, `0x02 | text`
    /// for a custom one.
    pub fn key_bytes(&self) -> Vec<u8> {
        let (kind, body) = self.key_parts();
        let mut bytes = Vec::with_capacity(1 + body.len());
        bytes.push(kind);
        bytes.extend_from_slice(body);
        bytes
    }

    /// `key` with the id's key form ([`TraceId::key_bytes`]) appended, as its last part.
    pub(crate) fn push_to(&self, key: KeyBuf) -> KeyBuf {
        let (kind, body) = self.key_parts();
        key.push_u8(kind).push_bytes(body)
    }

    /// The key form's kind byte and the bytes after it.
    fn key_parts(&self) -> (u8, &[u8]) {
        match &self.0 {
            Repr::Random(random) => (RANDOM_KIND, random),
            Repr::Custom(text) => (CUSTOM_KIND, text.as_bytes()),
        }
    }

    /// The id whose key form ([`TraceId::key_bytes`]) is exactly `bytes`, if any.
    pub fn from_key_bytes(bytes: &[u8]) -> Option<TraceId> {
        match bytes.split_first()? {
            (&RANDOM_KIND, rest) => Some(TraceId(Repr::Random(rest.try_into().ok()?))),
            (&CUSTOM_KIND, rest) => {
                let text = std::str::from_utf8(rest).ok()?;
                TraceId::custom(text).ok()
            }
            _ => None,
        }
    }
}

/// Checks the rules of [`TraceId::custom`].
fn check_custom(text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::InvalidName { reason: "empty trace id" });
    }
    if text.len() > CUSTOM_ID_LEN_MAX {
        return Err(Error::LimitExceeded {
            what: "custom trace id bytes",
            actual: text.len() as u64,
            max: CUSTOM_ID_LEN_MAX as u64,
        });
    }
    let allowed = |byte: &u8| byte.is_ascii_alphanumeric() || b"._:/-".contains(byte);
    if !text.as_bytes().iter().all(allowed) {
        return Err(Error::InvalidName {
            reason: "a custom trace id is ASCII letters, digits and . _ : / - only",
        });
    }
    if parse_random(text).is_some() {
        return Err(Error::InvalidName {
            reason: "a custom trace id of 32 lowercase hex digits reads as a random id",
        });
    }
    Ok(())
}

/// The random id whose text is `text`: exactly 32 lowercase hex digits.
fn parse_random(text: &str) -> Option<TraceId> {
    let digits = text.as_bytes();
    if digits.len() != 2 * RANDOM_LEN {
        return None;
    }
    let mut bytes = [0; RANDOM_LEN];
    hex::decode_into(digits, &mut bytes).ok()?;
    Some(TraceId(Repr::Random(bytes)))
}

impl FromStr for TraceId {
    type Err = Error;

    /// 32 lowercase hex digits are a random id; any other text must be a valid custom id.
    ///
    /// # Errors
    /// As [`TraceId::custom`].
    fn from_str(text: &str) -> Result<TraceId> {
        match parse_random(text) {
            Some(id) => Ok(id),
            None => TraceId::custom(text),
        }
    }
}

impl fmt::Display for TraceId {
    /// 32 lowercase hex digits for a random id, the text for a custom one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Random(bytes) => hex::write(f, bytes),
            Repr::Custom(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_open_with_the_time_they_were_made_and_differ_within_a_millisecond() {
        let now_ms = crate::clock::now_ms;
        let time_of = |id: &TraceId| {
            let Repr::Random(bytes) = &id.0 else { unreachable!("a random id") };
            bytes[..TIME_LEN].iter().fold(0u64, |time, &byte| time << 8 | u64::from(byte))
        };
        let before = now_ms();
        let ids: Vec<TraceId> = (0..1000).map(|_| TraceId::random()).collect();
        let after = now_ms();
        for id in &ids {
            assert!((before..=after).contains(&time_of(id)), "{id}");
        }
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "no two alike");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = TraceId::random();
        assert!(ids.iter().all(|id| *id < later), "a later millisecond orders after");
    }

    #[test]
    fn key_form_round_trips_and_orders_as_ids_do() {
        let ids = [
            TraceId::from_bytes([0; 16]),
            TraceId::random(),
            TraceId::from_bytes([0xff; 16]),
            TraceId::custom("0").unwrap(),
            TraceId::custom("a/b").unwrap(),
            TraceId::custom("b").unwrap(),
        ];
        for id in &ids {
            assert_eq!(TraceId::from_key_bytes(&id.key_bytes()).as_ref(), Some(id));
            assert_eq!(id.to_string().parse::<TraceId>().as_ref(), Ok(id));
        }
        for pair in ids.windows(2) {
            let [a, b] = pair else { continue };
            assert!(a <= b);
            assert!(a.key_bytes() <= b.key_bytes());
        }
    }

    #[test]
    fn bad_key_forms_are_refused() {
        assert_eq!(TraceId::from_key_bytes(b""), None);
        assert_eq!(TraceId::from_key_bytes(b"\x01short"), None);
        assert_eq!(TraceId::from_key_bytes(b"\x02"), None, "empty custom id");
        assert_eq!(TraceId::from_key_bytes(b"\x02a b"), None);
        assert_eq!(TraceId::from_key_bytes(b"\x03abc"), None);
        let hex = [b"\x02".as_slice(), &[b'a'; 32]].concat();
        assert_eq!(TraceId::from_key_bytes(&hex), None, "a random id's text as a custom id");
    }
}
