//! Outbound frames and how values are encoded into them: a JSON string as its raw text, anything else as JSON.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ChannelError, SendError};

/// One frame on its way to a client, already encoded.
///
/// Cloning is cheap: the payload is a reference-counted `Bytes`, which is how one publication reaches every
/// subscriber with a single encode. Handlers rarely see frames; runners take them from a connection's
/// outbound queue, and [`EventHub::publish_frame`](crate::EventHub::publish_frame) sends a pre-encoded one.
///
/// ```
/// use pikku::Bytes;
/// use pikku::core::OutFrame;
///
/// let text = OutFrame::text("hello!");
/// assert_eq!(text, OutFrame::Text(Bytes::from_static(b"hello!")));
/// assert_eq!(text.len(), 6);
///
/// let copy = text.clone(); // shares the payload, no copy of the bytes
/// assert_eq!(copy, text);
///
/// assert!(OutFrame::Ping.is_empty());
/// assert_eq!(OutFrame::Binary(Bytes::from(vec![1, 2, 3])).len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutFrame {
    /// A text frame; the bytes are valid UTF-8.
    Text(Bytes),
    /// A binary frame.
    Binary(Bytes),
    /// A ping (heartbeat), sent by the server's sweep to quiet connections.
    Ping,
}

impl OutFrame {
    /// Payload length in bytes (0 for a ping), which is what counts against the outbound queue bound.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Text(b) | Self::Binary(b) => b.len(),
            Self::Ping => 0,
        }
    }

    /// Whether the payload is empty (always true for a ping).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A text frame holding `text` exactly, with no JSON quoting; a `&'static str` is not copied. Use
    /// [`encode_value`] to encode a value by the protocol's rules instead.
    ///
    /// ```
    /// use pikku::core::OutFrame;
    ///
    /// let frame = OutFrame::text(format!("{{\"n\":{}}}", 1));
    /// assert_eq!(frame, OutFrame::text("{\"n\":1}"));
    /// ```
    pub fn text(text: impl Into<Cow<'static, str>>) -> Self {
        match text.into() {
            Cow::Borrowed(s) => Self::Text(Bytes::from_static(s.as_bytes())),
            Cow::Owned(s) => Self::Text(Bytes::from(s.into_bytes())),
        }
    }
}

/// Encodes a value for the wire: a JSON string goes out as raw text (`""` for the empty string), anything else
/// as JSON text.
///
/// It is the encoding of [`Channel::send`](crate::Channel::send) and
/// [`EventHub::publish`](crate::EventHub::publish); use it to encode a value once and hand the frame to
/// [`EventHub::publish_frame`](crate::EventHub::publish_frame) for several topics.
///
/// ```
/// use pikku::core::{encode_value, OutFrame};
/// assert_eq!(encode_value(&"hello!").unwrap(), OutFrame::text("hello!"));
/// assert_eq!(encode_value(&"").unwrap(), OutFrame::text("\"\""));
/// assert_eq!(encode_value(&serde_json::json!({"a":1})).unwrap(), OutFrame::text("{\"a\":1}"));
/// ```
///
/// # Errors
/// The value's `Serialize` implementation failed.
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<OutFrame, SendError> {
    let json = serde_json::to_vec(value).map_err(SendError::Serialize)?;
    Ok(frame_from_json(json))
}

/// Encodes an already built JSON value, like [`encode_value`] but infallible: a string goes out as raw
/// text (`""` for the empty string), anything else as JSON text.
///
/// ```
/// use pikku::core::{encode_json, OutFrame};
/// use serde_json::json;
///
/// assert_eq!(encode_json(&json!("hello!")), OutFrame::text("hello!"));
/// assert_eq!(encode_json(&json!("")), OutFrame::text("\"\""));
/// assert_eq!(encode_json(&json!([1, 2])), OutFrame::text("[1,2]"));
/// ```
#[must_use]
pub fn encode_json(value: &Value) -> OutFrame {
    match value {
        Value::String(s) => string_frame(s),
        other => OutFrame::Text(Bytes::from(
            serde_json::to_vec(other).expect("a serde_json::Value always serializes"),
        )),
    }
}

fn string_frame(s: &str) -> OutFrame {
    if s.is_empty() {
        OutFrame::Text(Bytes::from_static(b"\"\""))
    } else {
        OutFrame::Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// Turns serialized JSON into a frame, unquoting it when it is a string.
pub(crate) fn frame_from_json(json: Vec<u8>) -> OutFrame {
    if json.first() == Some(&b'"') {
        // A JSON string: send its characters, unescaped.
        match serde_json::from_slice::<String>(&json) {
            Ok(s) if s.is_empty() => OutFrame::Text(Bytes::from_static(b"\"\"")),
            Ok(s) => OutFrame::Text(Bytes::from(s.into_bytes())),
            Err(_) => OutFrame::Text(Bytes::from(json)),
        }
    } else {
        OutFrame::Text(Bytes::from(json))
    }
}

/// Builds an error frame: `{"error","errorName"}`, plus the routing member when the message was
/// routed, `details` for validation errors and `debug` in development mode for internal errors.
///
/// The pipeline sends these frames itself; runners and tests use this to build the same frame.
///
/// ```
/// use pikku::core::frame::error_frame;
/// use pikku::ChannelError;
/// use pikku::core::OutFrame;
/// use serde_json::json;
///
/// # fn json_of(frame: &OutFrame) -> serde_json::Value {
/// #     match frame { OutFrame::Text(b) => serde_json::from_slice(b).unwrap(), other => panic!("{other:?}") }
/// # }
/// let err = ChannelError::forbidden("Permission denied");
/// let frame = error_frame(&err, Some(("action", "delete")), false);
/// assert_eq!(
///     json_of(&frame),
///     json!({"action": "delete", "error": "Permission denied", "errorName": "ForbiddenError"}),
/// );
///
/// // Internal errors hide their text, except in development mode.
/// let err = ChannelError::internal("db down");
/// assert_eq!(
///     json_of(&error_frame(&err, None, true)),
///     json!({"error": "Internal server error", "errorName": "InternalServerError", "debug": "db down"}),
/// );
/// ```
#[must_use]
pub fn error_frame(err: &ChannelError, routing: Option<(&str, &str)>, dev_mode: bool) -> OutFrame {
    let mut map = serde_json::Map::new();
    if let Some((key, value)) = routing {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    map.insert(
        "error".into(),
        Value::String(err.client_message().into_owned()),
    );
    map.insert("errorName".into(), Value::String(err.name().to_owned()));
    let details = err.details();
    if !details.is_empty() {
        map.insert(
            "details".into(),
            serde_json::to_value(details).expect("details always serialize"),
        );
    }
    if dev_mode && err.is_internal() {
        map.insert("debug".into(), Value::String(err.debug_text()));
    }
    encode_json(&Value::Object(map))
}
