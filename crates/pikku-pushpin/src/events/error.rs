//! Why a WebSocket-over-HTTP body could not be parsed.

use std::fmt;

/// Why [`parse_events`](super::parse_events) rejected a body. Each variant carries the byte offset of the
/// event at fault (or of the missing CRLF), for logs.
///
/// ```
/// use pikku_pushpin::events::{parse_events, EventsError, ParseLimits};
///
/// let err = parse_events(b"SHOUT\r\n", &ParseLimits::default()).unwrap_err();
/// assert_eq!(err, EventsError::UnknownType { offset: 0, name: "SHOUT".into() });
/// assert_eq!(err.to_string(), "unknown event type 'SHOUT' at byte 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventsError {
    /// The body is larger than [`ParseLimits::max_body`](super::ParseLimits::max_body).
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body holds more than [`ParseLimits::max_events`](super::ParseLimits::max_events) events.
    TooManyEvents {
        /// The limit.
        max: usize,
    },
    /// The type is none of `OPEN`, `TEXT`, `BINARY`, `PING`, `PONG`, `CLOSE` and `DISCONNECT` (types are
    /// upper case).
    UnknownType {
        /// Where the event starts.
        offset: usize,
        /// The type as read (lossily decoded).
        name: String,
    },
    /// The length after the type is not 1 to 16 hex digits.
    BadLength {
        /// Where the event starts.
        offset: usize,
    },
    /// The declared length is larger than the body limit; nothing was read or allocated for it.
    ContentTooLarge {
        /// Where the event starts.
        offset: usize,
        /// The declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The body ends before the declared content and its closing CRLF.
    Truncated {
        /// Where the event starts.
        offset: usize,
        /// The bytes the event needs after its type line.
        declared: usize,
        /// The bytes left in the body.
        available: usize,
    },
    /// A type line without CRLF, or content not followed by CRLF.
    MissingCrlf {
        /// Where the CRLF was expected (the start of the type line, or the end of the content).
        offset: usize,
    },
    /// A `CLOSE` whose content is not a 2-byte code followed by a UTF-8 reason.
    BadClose {
        /// Where the event starts.
        offset: usize,
        /// What is wrong with the payload.
        problem: CloseProblem,
    },
    /// An `OPEN` or `DISCONNECT` with content, which neither event carries.
    UnexpectedContent {
        /// Where the event starts.
        offset: usize,
        /// `OPEN` or `DISCONNECT`.
        kind: &'static str,
    },
}

/// What is wrong with a `CLOSE` payload.
///
/// ```
/// use pikku_pushpin::events::CloseProblem;
///
/// assert_eq!(CloseProblem::ShortCode.to_string(), "a 1-byte payload cannot hold the 2-byte close code");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseProblem {
    /// One byte: too short for the code.
    ShortCode,
    /// The reason after the code is not UTF-8.
    ReasonNotUtf8,
}

impl fmt::Display for CloseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ShortCode => "a 1-byte payload cannot hold the 2-byte close code",
            Self::ReasonNotUtf8 => "the close reason is not UTF-8",
        })
    }
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLarge { len, max } => {
                write!(f, "events body of {len} bytes is over the limit of {max}")
            }
            Self::TooManyEvents { max } => write!(f, "events body holds more than {max} events"),
            Self::UnknownType { offset, name } => {
                write!(f, "unknown event type '{name}' at byte {offset}")
            }
            Self::BadLength { offset } => {
                write!(f, "event at byte {offset} has a malformed hex length")
            }
            Self::ContentTooLarge { offset, len, max } => {
                write!(f, "event at byte {offset} declares {len} bytes of content, over the limit of {max}")
            }
            Self::Truncated {
                offset,
                declared,
                available,
            } => write!(
                f,
                "event at byte {offset} needs {declared} more bytes but the body has {available}"
            ),
            Self::MissingCrlf { offset } => write!(f, "expected CRLF at byte {offset}"),
            Self::BadClose { offset, problem } => {
                write!(f, "CLOSE event at byte {offset}: {problem}")
            }
            Self::UnexpectedContent { offset, kind } => {
                write!(
                    f,
                    "{kind} event at byte {offset} carries content, which it never has"
                )
            }
        }
    }
}

impl std::error::Error for EventsError {}
