//! What the server sends: [`Frame`]s, call [`Reply`]s and the [`Close`] that ends a connection.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ClientError;

/// A frame from the server that no call consumed: onConnect output, default-handler replies, hub events,
/// pushes, unrouted error frames, and routed replies nobody was waiting for.
///
/// ```
/// use pikku_client::Frame;
/// use serde_json::json;
///
/// // `txt hello!` is not JSON, `{"defaultGot":1}` is.
/// assert_eq!(Frame::from_text("hello!"), Frame::Text("hello!".into()));
/// assert_eq!(Frame::from_text(r#"{"defaultGot":1}"#), Frame::Json(json!({"defaultGot": 1})));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame that is not JSON, exactly as received (`txt hello!`).
    Text(String),
    /// A text frame holding JSON, parsed (`{"topic":"news","data":…}`, but also `123` or `"x"`).
    Json(Value),
    /// A binary frame.
    Binary(Bytes),
}

impl Frame {
    /// Classifies a text frame: [`Frame::Json`] when it parses as JSON, else [`Frame::Text`].
    #[must_use]
    pub fn from_text(text: &str) -> Frame {
        match serde_json::from_str(text) {
            Ok(value) => Frame::Json(value),
            Err(_) => Frame::Text(text.to_owned()),
        }
    }

    /// The JSON value, for a [`Frame::Json`].
    #[must_use]
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Frame::Json(value) => Some(value),
            _ => None,
        }
    }

    /// The raw text, for a [`Frame::Text`].
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Frame::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, for a [`Frame::Binary`].
    #[must_use]
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Frame::Binary(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// The reply frame that answered a [`Route::call`](crate::Route::call) (the result, with the routing member).
///
/// [`value`](Reply::value) reads the handler's result back out of the frame: the `result` member of a wrapped
/// reply (`{"action":"prim","result":"valid"}` → `"valid"`), `null` for a reply that holds only the routing
/// member (`{"action":"logout"}`, a handler without output), and otherwise the object minus the routing member
/// (`{"n":1,"action":"obj"}` → `{"n":1}`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pikku_client::ClientError> {
/// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
/// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
/// use serde_json::json;
///
/// let actions = client.route("action");
/// let reply = actions.call("echoIn", &json!({"a": 1})).await?; // `{"got":{"a":1},"action":"echoIn"}`
/// assert_eq!(reply.frame()["action"], "echoIn");
/// assert_eq!(reply.value(), json!({"got": {"a": 1}}));
///
/// let reply = actions.call("prim", &()).await?; // `{"action":"prim","result":"valid"}`
/// assert_eq!(reply.into_value(), "valid");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    key: Arc<str>,
    frame: Map<String, Value>,
}

impl Reply {
    pub(crate) fn new(key: Arc<str>, frame: Map<String, Value>) -> Reply {
        Reply { key, frame }
    }

    /// The whole frame as received, routing member included.
    #[must_use]
    pub fn frame(&self) -> &Map<String, Value> {
        &self.frame
    }

    /// The handler's result (see the type's docs for the three shapes).
    ///
    /// A handler returning an object whose only member is `result` cannot be told from a wrapped value; the
    /// protocol has the same ambiguity.
    #[must_use]
    pub fn value(&self) -> Value {
        self.clone().into_value()
    }

    /// The handler's result, consuming the reply.
    #[must_use]
    pub fn into_value(mut self) -> Value {
        self.frame.remove(&*self.key);
        if self.frame.is_empty() {
            return Value::Null;
        }
        if self.frame.len() == 1 {
            if let Some(result) = self.frame.remove("result") {
                return result;
            }
        }
        Value::Object(self.frame)
    }

    /// Deserializes the handler's result into `T`.
    ///
    /// # Errors
    /// [`ClientError::Decode`] when the result does not fit `T`.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        serde_json::from_value(self.into_value()).map_err(ClientError::Decode)
    }
}

/// How a connection ended: the close frame's code and reason.
///
/// Code 1005 means the server's close frame carried no code; 1006 means no close frame arrived at all (the
/// reason then describes the failure, e.g. a reset connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The close code, e.g. 1000 (normal), 1001 (`going away`, `idle timeout`), 1008 (`slow consumer`).
    pub code: u16,
    /// The close reason, often empty.
    pub reason: String,
}

impl Close {
    /// Whether this close says the link went away for now, so that a client with
    /// [`reconnect`](crate::ClientBuilder::reconnect) set comes back: the default of
    /// [`ClientBuilder::reconnect_if`](crate::ClientBuilder::reconnect_if).
    ///
    /// True for 1001 (the server shuts down, or an idle timeout), 1005 (a close frame without a code), 1006 (no
    /// close frame: a reset or lost connection), 1011 (a server error), 1012 (service restart), 1013 (try again
    /// later) and 1014 (bad gateway). False for the closes that mean the server wants this client gone, which a
    /// reconnect would only repeat: 1000 (the application closed the channel), 1008 (a policy: slow consumer,
    /// rate limit, frame timeout), the protocol and data errors 1002, 1003, 1007, 1009 and 1010, and the
    /// application's own codes 3000–4999.
    ///
    /// ```
    /// use pikku_client::Close;
    ///
    /// let going_away = Close { code: 1001, reason: "going away".into() };
    /// assert!(going_away.is_retryable());
    /// let slow = Close { code: 1008, reason: "slow consumer".into() };
    /// assert!(!slow.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self.code, 1001 | 1005 | 1006 | 1011 | 1012 | 1013 | 1014)
    }

    /// A connection that ended without a close frame (code 1006).
    pub(crate) fn abnormal(reason: impl fmt::Display) -> Close {
        Close {
            code: 1006,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "code {}", self.code)
        } else {
            write!(f, "code {} ({})", self.code, self.reason)
        }
    }
}
