//! The WebSocket-over-HTTP event codec: the bodies Pushpin and the worker exchange, with content type
//! [`CONTENT_TYPE`] (`application/websocket-events`).
//!
//! Pushpin holds the client's WebSocket and turns what happens on it into HTTP `POST`s to the worker. Each
//! request body is a list of events, and the response body is the list of events the worker wants to happen on
//! the socket. An event is written like a chunk of HTTP chunked encoding: its type, and for an event with
//! content a space, the content length in hexadecimal, CRLF, the content and CRLF again:
//!
//! ```text
//! OPEN\r\n
//! TEXT 5\r\n
//! hello\r\n
//! CLOSE 2\r\n
//! \x03\xe8\r\n
//! ```
//!
//! # Parsing untrusted bodies
//! [`parse_events`] is strict: an unknown type, a malformed length, content that runs past the end of the
//! body or is not followed by CRLF, and a close payload that is not a code plus UTF-8 each fail with their own
//! [`EventsError`]. It is also bounded by [`ParseLimits`]: the body size is checked before anything else, and
//! a declared length is checked against the limit before any content is copied, so a body claiming a huge
//! event fails at once without allocating it.
//!
//! Pushpin leaves the length off a content event whose content is empty (a `PING\r\n` with no payload), so
//! the parser accepts both forms; [`encode_events`] always writes the length of content events.

mod error;

use std::io::Write as _;

use bytes::Bytes;

pub use error::{CloseProblem, EventsError};

/// The content type of WebSocket-over-HTTP request and response bodies.
pub const CONTENT_TYPE: &str = "application/websocket-events";

/// The longest type line the parser reads before giving up on finding its CRLF: the longest type name
/// (`DISCONNECT`), a space and sixteen hex digits fit with room to spare.
const MAX_TYPE_LINE: usize = 64;

/// The most hex digits a length may have: enough for any `u64`, so the value cannot overflow.
const MAX_LENGTH_DIGITS: usize = 16;

/// One event on a WebSocket held by Pushpin.
///
/// ```
/// use pikku_pushpin::events::WsEvent;
///
/// let close = WsEvent::Close { code: Some(1000), reason: "bye".into() };
/// assert_eq!(close.kind(), "CLOSE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// The client asks to connect (in a request) or the worker accepts (in the answer to that request).
    Open,
    /// A text message. The bytes are passed on as received; checking that they are UTF-8 is the caller's job.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping, with its payload.
    Ping(Bytes),
    /// A pong, with its payload.
    Pong(Bytes),
    /// A close: the close code when there is one, and the reason (empty when there is no code).
    Close {
        /// The close code, `None` for a close frame without a payload.
        code: Option<u16>,
        /// The close reason; only written when there is a code, as in the WebSocket protocol.
        reason: String,
    },
    /// The connection ended without a close handshake, or Pushpin no longer knows it.
    Disconnect,
}

impl WsEvent {
    /// The event's type as written on the wire: `OPEN`, `TEXT`, `BINARY`, `PING`, `PONG`, `CLOSE` or
    /// `DISCONNECT`.
    ///
    /// ```
    /// use pikku_pushpin::events::WsEvent;
    ///
    /// assert_eq!(WsEvent::Disconnect.kind(), "DISCONNECT");
    /// ```
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Text(_) => "TEXT",
            Self::Binary(_) => "BINARY",
            Self::Ping(_) => "PING",
            Self::Pong(_) => "PONG",
            Self::Close { .. } => "CLOSE",
            Self::Disconnect => "DISCONNECT",
        }
    }

    /// A text event holding `text`.
    ///
    /// ```
    /// use pikku_pushpin::events::WsEvent;
    ///
    /// assert_eq!(WsEvent::text("hi"), WsEvent::Text("hi".into()));
    /// ```
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(Bytes::from(text.into()))
    }

    /// Appends the event's wire form to `out`.
    ///
    /// ```
    /// use pikku_pushpin::events::WsEvent;
    ///
    /// let mut out = Vec::new();
    /// WsEvent::text("hello").encode_into(&mut out);
    /// assert_eq!(out, b"TEXT 5\r\nhello\r\n");
    /// ```
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Open | Self::Disconnect => {
                out.extend_from_slice(self.kind().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Self::Text(content)
            | Self::Binary(content)
            | Self::Ping(content)
            | Self::Pong(content) => {
                write_content(out, self.kind(), &[content]);
            }
            Self::Close { code: None, .. } => write_content(out, "CLOSE", &[]),
            Self::Close {
                code: Some(code),
                reason,
            } => write_content(out, "CLOSE", &[&code.to_be_bytes(), reason.as_bytes()]),
        }
    }
}

/// Writes `KIND <hex length>\r\n<parts...>\r\n`.
fn write_content(out: &mut Vec<u8>, kind: &str, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(kind.len() + 20 + len);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{kind} {len:x}\r\n");
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes `events` as a response (or request) body.
///
/// ```
/// use pikku_pushpin::events::{encode_events, WsEvent};
///
/// let body = encode_events(&[WsEvent::Open, WsEvent::text("c:{}")]);
/// assert_eq!(body, b"OPEN\r\nTEXT 4\r\nc:{}\r\n");
/// ```
#[must_use]
pub fn encode_events(events: &[WsEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        event.encode_into(&mut out);
    }
    out
}

/// How much one body may hold. Pushpin itself keeps at most about 200 KB of unacknowledged messages per
/// connection, so the defaults leave room.
///
/// ```
/// use pikku_pushpin::events::ParseLimits;
///
/// let limits = ParseLimits { max_body: 64 * 1024, ..ParseLimits::default() };
/// assert_eq!(limits.max_events, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// The most events one body may hold. Default 1024.
    pub max_events: usize,
    /// The largest body in bytes, which also bounds each event's content. Default 1 MiB.
    pub max_body: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_events: 1024,
            max_body: 1024 * 1024,
        }
    }
}

/// Parses a WebSocket-over-HTTP body into its events, in order.
///
/// An empty body holds no events.
///
/// # Errors
/// An [`EventsError`] saying what is wrong and at which byte offset; see the variants.
///
/// ```
/// use pikku_pushpin::events::{parse_events, ParseLimits, WsEvent};
///
/// let events = parse_events(b"OPEN\r\nTEXT 2\r\nhi\r\nPING\r\n", &ParseLimits::default()).unwrap();
/// assert_eq!(events, [WsEvent::Open, WsEvent::text("hi"), WsEvent::Ping("".into())]);
/// ```
pub fn parse_events(body: &[u8], limits: &ParseLimits) -> Result<Vec<WsEvent>, EventsError> {
    if body.len() > limits.max_body {
        return Err(EventsError::BodyTooLarge {
            len: body.len(),
            max: limits.max_body,
        });
    }
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        if events.len() == limits.max_events {
            return Err(EventsError::TooManyEvents {
                max: limits.max_events,
            });
        }
        let (event, next) = parse_one(body, pos, limits)?;
        events.push(event);
        pos = next;
    }
    Ok(events)
}

/// Parses the event starting at `start`; returns it and the offset after it.
fn parse_one(
    body: &[u8],
    start: usize,
    limits: &ParseLimits,
) -> Result<(WsEvent, usize), EventsError> {
    let rest = &body[start..];
    let window = &rest[..rest.len().min(MAX_TYPE_LINE)];
    let line_len = find_crlf(window).ok_or(EventsError::MissingCrlf { offset: start })?;
    let line = &rest[..line_len];
    let content_start = start + line_len + 2;

    let (name, content) = match line.iter().position(|&b| b == b' ') {
        None => (line, None),
        Some(space) => {
            let len = parse_hex_length(&line[space + 1..])
                .ok_or(EventsError::BadLength { offset: start })?;
            if len > limits.max_body as u64 {
                return Err(EventsError::ContentTooLarge {
                    offset: start,
                    len,
                    max: limits.max_body,
                });
            }
            // The cast is lossless: `len` is at most `max_body`, a `usize`.
            let len = len as usize;
            let available = body.len() - content_start;
            if len > available {
                return Err(EventsError::Truncated {
                    offset: start,
                    declared: len,
                    available,
                });
            }
            let end = content_start + len;
            match body.get(end..end + 2) {
                Some(b"\r\n") => {}
                Some(_) => return Err(EventsError::MissingCrlf { offset: end }),
                None => {
                    return Err(EventsError::Truncated {
                        offset: start,
                        declared: len + 2,
                        available,
                    })
                }
            }
            (&line[..space], Some(&body[content_start..end]))
        }
    };
    let next = match content {
        Some(c) => content_start + c.len() + 2,
        None => content_start,
    };
    let content = content.unwrap_or_default();
    let copy = || Bytes::copy_from_slice(content);
    let event = match name {
        b"OPEN" | b"DISCONNECT" if !content.is_empty() => {
            return Err(EventsError::UnexpectedContent {
                offset: start,
                kind: if name == b"OPEN" {
                    "OPEN"
                } else {
                    "DISCONNECT"
                },
            })
        }
        b"OPEN" => WsEvent::Open,
        b"DISCONNECT" => WsEvent::Disconnect,
        b"TEXT" => WsEvent::Text(copy()),
        b"BINARY" => WsEvent::Binary(copy()),
        b"PING" => WsEvent::Ping(copy()),
        b"PONG" => WsEvent::Pong(copy()),
        b"CLOSE" => parse_close(content).map_err(|problem| EventsError::BadClose {
            offset: start,
            problem,
        })?,
        other => {
            return Err(EventsError::UnknownType {
                offset: start,
                name: String::from_utf8_lossy(other).into_owned(),
            })
        }
    };
    Ok((event, next))
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Hex digits only: no sign, no spaces, no `0x`, at least one digit and at most [`MAX_LENGTH_DIGITS`].
fn parse_hex_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_LENGTH_DIGITS {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let value = (d as char).to_digit(16)?;
        Some((acc << 4) | u64::from(value))
    })
}

fn parse_close(content: &[u8]) -> Result<WsEvent, CloseProblem> {
    match content {
        [] => Ok(WsEvent::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(CloseProblem::ShortCode),
        [hi, lo, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| CloseProblem::ReasonNotUtf8)?;
            Ok(WsEvent::Close {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason: reason.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests;
