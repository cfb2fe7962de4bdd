//! The text of one NOTIFY: a hub envelope inline, or a reference to a row that holds it.
//!
//! A NOTIFY payload is text of fewer than 8,000 bytes, and envelopes are binary, so a message is one tag
//! character followed by:
//!
//! - `i` then the envelope in standard base64 (with padding), when the whole text fits in [`INLINE_LIMIT`];
//! - `r` then the publishing node's id in 32 hex digits, then the decimal id of the payload table's row that
//!   holds the envelope.
//!
//! Base64 costs a third more than the bytes but is the densest form that is always valid text; the node id in
//! a reference lets a node skip fetching its own payloads.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use pikku_core::hub::NodeId;

use crate::channel::push_hex;
use crate::error::PostgresError;

/// The longest NOTIFY text the driver sends, in bytes: envelopes whose inline form is longer go by reference.
///
/// PostgreSQL refuses payloads of 8,000 bytes or more; the margin leaves room for later tags.
pub const INLINE_LIMIT: usize = 7_900;

/// The largest envelope, in bytes, that still travels inline: its base64 form plus the tag fit in
/// [`INLINE_LIMIT`].
///
/// ```
/// assert_eq!(pikku_postgres::MAX_INLINE_ENVELOPE, 5_922);
/// ```
pub const MAX_INLINE_ENVELOPE: usize = (INLINE_LIMIT - 1) / 4 * 3;

const INLINE: char = 'i';
const REFERENCE: char = 'r';
const NODE_HEX_DIGITS: usize = 32;

/// A received hub message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// The envelope's bytes.
    Inline(Bytes),
    /// Row `id` of the payload table holds the envelope that `origin` published.
    Reference { origin: NodeId, id: i64 },
}

/// The inline text for `envelope`, or `None` when it must go by reference.
pub(crate) fn inline_text(envelope: &[u8]) -> Option<String> {
    if envelope.len() > MAX_INLINE_ENVELOPE {
        return None;
    }
    let mut text = String::with_capacity(1 + envelope.len().div_ceil(3) * 4);
    text.push(INLINE);
    STANDARD.encode_string(envelope, &mut text);
    debug_assert!(text.len() <= INLINE_LIMIT);
    Some(text)
}

/// The start of a reference text from `origin`; the row id is appended by the statement that stores the row.
pub(crate) fn reference_head(origin: NodeId) -> String {
    let mut text = String::with_capacity(1 + NODE_HEX_DIGITS + 20);
    text.push(REFERENCE);
    for byte in origin.to_bytes() {
        push_hex(&mut text, byte);
    }
    text
}

/// Reads a received NOTIFY text.
pub(crate) fn parse(text: &str) -> Result<Message, PostgresError> {
    let mut chars = text.chars();
    match chars.next() {
        Some(INLINE) => STANDARD
            .decode(chars.as_str())
            .map(|bytes| Message::Inline(Bytes::from(bytes)))
            .map_err(|_| PostgresError::BadNotification("inline message is not base64")),
        Some(REFERENCE) => {
            let rest = chars.as_str();
            let (node, id) = rest
                .split_at_checked(NODE_HEX_DIGITS)
                .ok_or(PostgresError::BadNotification("reference too short"))?;
            let origin = u128::from_str_radix(node, 16)
                .map_err(|_| PostgresError::BadNotification("reference node id is not hex"))?;
            let id = id
                .parse()
                .map_err(|_| PostgresError::BadNotification("reference row id is not a number"))?;
            Ok(Message::Reference {
                origin: NodeId::from_bytes(origin.to_be_bytes()),
                id,
            })
        }
        _ => Err(PostgresError::BadNotification("unknown message tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_messages_round_trip_up_to_the_limit() {
        for len in [0, 1, 2, 3, 100, MAX_INLINE_ENVELOPE] {
            let envelope: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let text = inline_text(&envelope).expect("fits inline");
            assert!(text.len() <= INLINE_LIMIT);
            assert_eq!(parse(&text).unwrap(), Message::Inline(envelope.into()));
        }
        assert_eq!(inline_text(&vec![0; MAX_INLINE_ENVELOPE + 1]), None);
    }

    #[test]
    fn the_limit_is_the_largest_that_fits() {
        let next = MAX_INLINE_ENVELOPE + 1;
        assert!(1 + next.div_ceil(3) * 4 > INLINE_LIMIT);
    }

    #[test]
    fn references_round_trip() {
        let origin = NodeId::random();
        let text = format!("{}{}", reference_head(origin), 9_876_543_210_i64);
        assert_eq!(
            parse(&text).unwrap(),
            Message::Reference {
                origin,
                id: 9_876_543_210
            }
        );
    }

    #[test]
    fn foreign_text_is_an_error() {
        for text in [
            "",
            "hello",
            "i***",
            "r123",
            "rzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1",
            "ä",
        ] {
            assert!(
                matches!(parse(text), Err(PostgresError::BadNotification(_))),
                "{text:?}"
            );
        }
        let head = reference_head(NodeId::random());
        assert!(parse(&format!("{head}x")).is_err());
        assert!(parse(&head).is_err());
    }
}
