//! `TraceType`: what a trace records, and its code in stored records and keys.

use std::fmt;

use crate::error::{Error, Result};

/// The longest custom type name, in bytes.
pub const TYPE_NAME_LEN_MAX: usize = 128;

/// The code of a custom type, in records and keys; built-in types have codes 1 to 5.
pub(crate) const CUSTOM_CODE: u8 = 0x80;

/// The built-in types, their codes (as stored) and names.
const BUILT_IN: [(TraceType, u8, &str); 5] = [
    (TraceType::ToolCall, 0x01, "tool_call"),
    (TraceType::Decision, 0x02, "decision"),
    (TraceType::Query, 0x03, "query"),
    (TraceType::Thought, 0x04, "thought"),
    (TraceType::Error, 0x05, "error"),
];

/// What a trace records.
///
/// Every type has a name ([`TraceType::name`]): the built-in ones `tool_call`, `decision`,
/// `query`, `thought` and `error`, a custom one its own. A custom name is 1 to
/// [`TYPE_NAME_LEN_MAX`] bytes without control characters, and is not a built-in name
/// (so that a name means one type); [`TraceType::from_name`] maps names back to types.
///
/// ```
/// use inmem_primitives::trace::TraceType;
///
/// assert_eq!(TraceType::from_name("decision")?, TraceType::Decision);
/// assert_eq!(TraceType::from_name("plan")?, TraceType::Custom("plan".into()));
/// assert!(TraceType::custom("decision").is_err(), "a built-in name");
/// assert_eq!(TraceType::ToolCall.name(), "tool_call");
/// # Ok::<(), inmem_primitives::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TraceType {
    /// A call of a tool: its name, arguments, result.
    ToolCall,
    /// A choice made, with its reasons.
    Decision,
    /// A query sent (to a model, a search engine, a database) and its answer.
    Query,
    /// An intermediate thought or note.
    Thought,
    /// An error met.
    Error,
    /// Any other type, by name.
    Custom(String),
}

impl TraceType {
    /// The custom type `name`.
    ///
    /// # Errors
    /// As [`TraceType::check`].
    pub fn custom(name: impl Into<String>) -> Result<TraceType> {
        let trace_type = TraceType::Custom(name.into());
        trace_type.check()?;
        Ok(trace_type)
    }

    /// The type named `name`: a built-in one for a built-in name, else a custom one.
    ///
    /// # Errors
    /// As [`TraceType::check`], for a custom name.
    pub fn from_name(name: &str) -> Result<TraceType> {
        match BUILT_IN.iter().find(|(_, _, built_in)| *built_in == name) {
            Some((trace_type, _, _)) => Ok(trace_type.clone()),
            None => TraceType::custom(name),
        }
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        match self {
            TraceType::Custom(name) => name,
            built_in => BUILT_IN
                .iter()
                .find(|(trace_type, _, _)| trace_type == built_in)
                .map_or("", |(_, _, name)| name),
        }
    }

    /// Checks that a custom type's name follows the rules above (a built-in type always
    /// does). Records are checked before they are written.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name, a control character or a built-in name;
    /// [`Error::LimitExceeded`] for a name over [`TYPE_NAME_LEN_MAX`] bytes.
    pub fn check(&self) -> Result<()> {
        let TraceType::Custom(name) = self else {
            return Ok(());
        };
        if name.is_empty() {
            return Err(Error::InvalidName { reason: "empty trace type name" });
        }
        if name.len() > TYPE_NAME_LEN_MAX {
            return Err(Error::LimitExceeded {
                what: "trace type name bytes",
                actual: name.len() as u64,
                max: TYPE_NAME_LEN_MAX as u64,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(Error::InvalidName { reason: "a control character in a trace type name" });
        }
        if BUILT_IN.iter().any(|(_, _, built_in)| built_in == name) {
            return Err(Error::InvalidName {
                reason: "a custom trace type named like a built-in one",
            });
        }
        Ok(())
    }

    /// The type's code in records and keys.
    pub(crate) fn code(&self) -> u8 {
        match self {
            TraceType::Custom(_) => CUSTOM_CODE,
            built_in => BUILT_IN
                .iter()
                .find(|(trace_type, _, _)| trace_type == built_in)
                .map_or(CUSTOM_CODE, |(_, code, _)| *code),
        }
    }

    /// The built-in type of `code`, if any.
    pub(crate) fn built_in(code: u8) -> Option<(TraceType, &'static str)> {
        BUILT_IN
            .iter()
            .find(|(_, built_in, _)| *built_in == code)
            .map(|(trace_type, _, name)| (trace_type.clone(), *name))
    }
}

impl fmt::Display for TraceType {
    /// The type's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_one_to_one() {
        for (trace_type, code, name) in &BUILT_IN {
            assert_eq!(trace_type.code(), *code);
            assert_ne!(*code, CUSTOM_CODE);
            assert_eq!(trace_type.name(), *name);
            assert_eq!(TraceType::built_in(*code), Some((trace_type.clone(), *name)));
            assert_eq!(TraceType::from_name(name).as_ref(), Ok(trace_type));
        }
        assert_eq!(TraceType::built_in(CUSTOM_CODE), None);
        assert_eq!(TraceType::custom("x").map(|t| t.code()), Ok(CUSTOM_CODE));
    }

    #[test]
    fn bad_custom_names_are_refused() {
        assert!(matches!(TraceType::custom(""), Err(Error::InvalidName { .. })));
        assert!(matches!(TraceType::custom("a\nb"), Err(Error::InvalidName { .. })));
        assert!(matches!(TraceType::custom("error"), Err(Error::InvalidName { .. })));
        assert!(matches!(
            TraceType::custom("x".repeat(TYPE_NAME_LEN_MAX + 1)),
            Err(Error::LimitExceeded { .. })
        ));
        assert!(TraceType::custom("x".repeat(TYPE_NAME_LEN_MAX)).is_ok());
    }
}
