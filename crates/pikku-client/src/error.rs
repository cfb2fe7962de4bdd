//! [`ClientError`]: everything a connection, a send or a call can fail with.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::frame::Close;

/// Why a connection, a send or a call failed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
/// # let url = server.url("/secure");
/// use pikku_client::{Client, ClientError};
///
/// // url: "ws://127.0.0.1:4002/secure", whose upgrade middleware wants `Authorization: Bearer …`.
/// match Client::connect(&url).await {
///     Err(ClientError::Refused { status: 401, body }) => {
///         let body = body.expect("a pikku server explains its refusals");
///         assert_eq!(body["message"], "Missing or invalid token");
///     }
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL does not parse, or is not a `ws://` URL.
    InvalidUrl(String),
    /// A request header has an invalid name or value, or is one the upgrade sets itself (`Host`, `Upgrade`, …).
    InvalidHeader(String),
    /// The TCP connection could not be opened (name resolution included).
    Connect(std::io::Error),
    /// No accepted upgrade within the connect timeout.
    ConnectTimeout(Duration),
    /// A routed call got no reply within the call timeout
    /// ([`ClientBuilder::call_timeout`](crate::ClientBuilder::call_timeout)); its reply, if it comes later, is
    /// discarded so later calls to the route still get theirs.
    CallTimeout(Duration),
    /// The server refused the upgrade with an HTTP response (a JSON body `{name, message, errorId}`).
    Refused {
        /// The HTTP status, e.g. 404 for an unknown channel path.
        status: u16,
        /// The JSON body (`{"name","message","errorId"[,"details"]}` from a pikku server), when the response
        /// carried one that arrived with its head.
        body: Option<Value>,
    },
    /// The upgrade failed otherwise (a malformed response, a wrong `Sec-WebSocket-Accept`, …).
    Handshake(TransportError),
    /// The connection is closed; holds the close frame the server sent (code 1006 when none arrived).
    Closed(Close),
    /// The connection dropped while this call was waiting for its reply, and the client is reconnecting
    /// ([`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)); holds how the link ended. The message
    /// may or may not have been handled: the server cannot answer it on the new connection, so the call is not
    /// retried. Calls made after the drop wait for the new connection instead.
    ///
    /// ```
    /// use pikku_client::{ClientError, Close};
    ///
    /// let err = ClientError::Disconnected(Close { code: 1001, reason: "going away".into() });
    /// assert_eq!(err.to_string(), "connection lost before the reply (code 1001 (going away)); reconnecting");
    /// ```
    Disconnected(Close),
    /// The server answered a call with an error frame (one with a top-level `errorName`).
    Remote {
        /// The error class, e.g. `UnauthorizedError`, `UnprocessableContentError`, `ChannelRPCError`.
        name: String,
        /// The client-safe message (the frame's `error` member).
        message: String,
        /// Validation failures, one per offending input member; empty for other errors.
        details: Vec<ErrorDetail>,
    },
    /// A value to send did not serialize, or routed input was not an object (or unit).
    Encode(serde_json::Error),
    /// A reply did not deserialize into the requested type.
    Decode(serde_json::Error),
    /// The frame queue was full and this many unrouted frames were dropped (see
    /// [`ClientBuilder::frame_capacity`](crate::ClientBuilder::frame_capacity)); later frames still arrive.
    Lagged(u64),
}

impl ClientError {
    /// Reads an error frame: `Some` when `frame` has a string `errorName` at top level.
    pub(crate) fn from_error_frame(frame: &serde_json::Map<String, Value>) -> Option<Self> {
        let name = frame.get("errorName")?.as_str()?.to_owned();
        let message = frame
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let details = frame
            .get("details")
            .and_then(|details| Vec::<ErrorDetail>::deserialize(details).ok())
            .unwrap_or_default();
        Some(ClientError::Remote {
            name,
            message,
            details,
        })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            ClientError::InvalidHeader(why) => write!(f, "invalid request header: {why}"),
            ClientError::Connect(err) => write!(f, "cannot connect: {err}"),
            ClientError::ConnectTimeout(after) => {
                write!(f, "no WebSocket upgrade within {after:?}")
            }
            ClientError::CallTimeout(after) => write!(f, "no reply within {after:?}"),
            ClientError::Refused { status, body } => {
                write!(f, "upgrade refused with HTTP {status}")?;
                match body.as_ref().and_then(|b| b.get("message")?.as_str()) {
                    Some(message) => write!(f, ": {message}"),
                    None => Ok(()),
                }
            }
            ClientError::Handshake(err) => write!(f, "WebSocket upgrade failed: {err}"),
            ClientError::Closed(close) => write!(f, "connection closed: {close}"),
            ClientError::Disconnected(close) => {
                write!(
                    f,
                    "connection lost before the reply ({close}); reconnecting"
                )
            }
            ClientError::Remote { name, message, .. } => write!(f, "{name}: {message}"),
            ClientError::Encode(err) => write!(f, "cannot encode the message: {err}"),
            ClientError::Decode(err) => write!(f, "cannot decode the reply: {err}"),
            ClientError::Lagged(n) => write!(f, "the frame queue was full: {n} frame(s) dropped"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(err) => Some(err),
            ClientError::Handshake(err) => Some(err),
            ClientError::Encode(err) | ClientError::Decode(err) => Some(err),
            _ => None,
        }
    }
}

/// One validation failure of an error frame's `details`: where (a JSON Pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// A JSON Pointer into the handler input (`""` is the whole input), e.g. `/title`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// A failure of the WebSocket transport; its text and [`source`](std::error::Error::source) say what
/// happened. Opaque, so that the transport library can change without breaking matches on [`ClientError`].
#[derive(Debug)]
pub struct TransportError(pub(crate) tokio_websockets::Error);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
