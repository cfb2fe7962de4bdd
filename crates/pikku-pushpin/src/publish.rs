//! Sending to connections through Pushpin's HTTP publish API.
//!
//! A worker behind Pushpin has no socket to write to outside the answer to a request. To reach a connection
//! later it publishes to a GRIP channel the connection subscribed to when it opened: by convention the
//! worker subscribes every connection to `conn:<Connection-Id>` (the prefix is
//! [`PushpinPublisher::channel_prefix`]), so a channel id of the stores is one Pushpin channel.
//!
//! A publication is `POST {base}/publish/` with a JSON body of items, each naming a channel and a
//! `ws-message` format: `content` for text, `content-bin` (base64) for binary, `type: ping` (with empty content) for a ping, or
//! `action: close` with `code` and `reason` to close the connection.
//!
//! # What Pushpin cannot tell
//! Pushpin answers a publication as soon as it has queued it; it does not say whether any connection was
//! subscribed to the channel. A publisher therefore never learns that a connection is gone, and
//! [`PushpinPublisher`]'s [`PlatformSender::send`] never returns [`PlatformSendError::Gone`]: the stores learn
//! of closed connections from the `CLOSE` and `DISCONNECT` events Pushpin posts to the worker instead, and
//! from their sweep of quiet connections.
//!
//! # Limits
//! Pushpin refuses a publish body over its `push_in_http_max_body_size` (1 000 000 bytes by default) and
//! paces delivery to its `message_rate` (messages per second, 2500 by default); [`publish_many`] sends one
//! request however many items it is given.
//!
//! [`publish_many`]: PushpinPublisher::publish_many

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pikku_core::frame::OutFrame;
use pikku_core::store::{BoxFuture, PlatformSendError, PlatformSender};
use serde_json::{json, Value};

/// The channel prefix a connection's own channel gets by default: `conn:<channel id>`.
pub const DEFAULT_CHANNEL_PREFIX: &str = "conn:";

/// How long one publish request may take by default, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of an error response's body is kept in [`PublishError::Status`].
const ERROR_BODY_START: usize = 200;

/// The most of a response body read at all: Pushpin's answers are a few bytes.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// A [`PlatformSender`] over Pushpin's publish API.
///
/// Its HTTP client keeps idle connections for reuse (30 s), and cloning the publisher shares them. Pushpin
/// 1.36's publish API answers every request with `Connection: close`, though, so against it each
/// publication opens a connection of its own: batch with [`publish_many`](Self::publish_many) where many
/// frames go out at once.
///
/// ```no_run
/// use pikku::core::OutFrame;
/// use pikku_pushpin::PushpinPublisher;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let publisher = PushpinPublisher::new("http://127.0.0.1:5561")?;
/// publisher.publish("3f2a…", &OutFrame::text("hello")).await?;
/// publisher.close("3f2a…", 4000, "kicked").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PushpinPublisher {
    client: Client<HttpConnector, Full<Bytes>>,
    publish_uri: Uri,
    channel_prefix: String,
    timeout: Duration,
}

impl fmt::Debug for PushpinPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushpinPublisher")
            .field("publish_uri", &self.publish_uri)
            .field("channel_prefix", &self.channel_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PushpinPublisher {
    /// A publisher for the Pushpin whose publish API is at `base` (its `push_in_http_addr` and
    /// `push_in_http_port`, e.g. `http://127.0.0.1:5561`); requests go to `{base}/publish/`.
    ///
    /// Must be called inside a Tokio runtime only when publishing; building it needs none.
    ///
    /// # Errors
    /// [`PublisherUrlError`] when `base` is not an `http://` URL (TLS is not compiled in: Pushpin's publish
    /// API is meant for a private network).
    ///
    /// ```
    /// use pikku_pushpin::PushpinPublisher;
    ///
    /// let publisher = PushpinPublisher::new("http://127.0.0.1:5561/").unwrap();
    /// assert_eq!(publisher.publish_url(), "http://127.0.0.1:5561/publish/");
    /// assert!(PushpinPublisher::new("https://pushpin.example/").is_err());
    /// ```
    pub fn new(base: &str) -> Result<Self, PublisherUrlError> {
        let base: Uri = base.parse().map_err(|_| PublisherUrlError::Invalid)?;
        if base.scheme_str() != Some("http") {
            return Err(PublisherUrlError::NotHttp);
        }
        let authority = base.authority().ok_or(PublisherUrlError::Invalid)?;
        let path = base.path().trim_end_matches('/');
        let publish_uri = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(format!("{path}/publish/"))
            .build()
            .map_err(|_| PublisherUrlError::Invalid)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Ok(Self {
            client,
            publish_uri,
            channel_prefix: DEFAULT_CHANNEL_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the prefix that turns a channel id into its Pushpin channel (default [`DEFAULT_CHANNEL_PREFIX`]).
    /// It must match the channel the worker subscribes each connection to.
    ///
    /// ```
    /// use pikku_pushpin::PushpinPublisher;
    ///
    /// let publisher = PushpinPublisher::new("http://127.0.0.1:5561").unwrap().channel_prefix("ws:");
    /// assert_eq!(publisher.connection_channel("abc"), "ws:abc");
    /// ```
    #[must_use]
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.channel_prefix = prefix.into();
        self
    }

    /// Sets how long one publish request may take, connecting included (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL publications are posted to.
    #[must_use]
    pub fn publish_url(&self) -> String {
        self.publish_uri.to_string()
    }

    /// The Pushpin channel of the connection `channel_id`: the prefix and the id.
    #[must_use]
    pub fn connection_channel(&self, channel_id: &str) -> String {
        format!("{}{channel_id}", self.channel_prefix)
    }

    /// Sends `frame` to the connection `channel_id`.
    ///
    /// # Errors
    /// A [`PublishError`] when the request fails or Pushpin does not answer with a 2xx status.
    ///
    /// # Cancel safety
    /// A dropped future may or may not have published the frame.
    pub async fn publish(&self, channel_id: &str, frame: &OutFrame) -> Result<(), PublishError> {
        self.publish_items(&[PublishItem::frame(
            self.connection_channel(channel_id),
            frame,
        )])
        .await
    }

    /// Sends each frame to its connection, all in one request, in order.
    ///
    /// # Errors
    /// As [`publish`](Self::publish); the items of a failed request may or may not have been published.
    ///
    /// # Cancel safety
    /// A dropped future may or may not have published the frames.
    pub async fn publish_many(&self, items: &[(&str, &OutFrame)]) -> Result<(), PublishError> {
        let items: Vec<PublishItem> = items
            .iter()
            .map(|(id, frame)| PublishItem::frame(self.connection_channel(id), frame))
            .collect();
        self.publish_items(&items).await
    }

    /// Closes the connection `channel_id` with a close frame holding `code` and `reason`.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    ///
    /// # Cancel safety
    /// A dropped future may or may not have published the close.
    pub async fn close(
        &self,
        channel_id: &str,
        code: u16,
        reason: &str,
    ) -> Result<(), PublishError> {
        self.publish_items(&[PublishItem::close(
            self.connection_channel(channel_id),
            code,
            reason,
        )])
        .await
    }

    /// Publishes `items` (each naming its Pushpin channel in full, prefix included) in one request.
    /// An empty list sends nothing.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    ///
    /// # Cancel safety
    /// A dropped future may or may not have published the items.
    pub async fn publish_items(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        if items.is_empty() {
            return Ok(());
        }
        let body = json!({ "items": items.iter().map(PublishItem::to_json).collect::<Vec<_>>() });
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.publish_uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            // The URI was validated by `new` and the header is static: building cannot fail.
            .map_err(|_| PublishError::Transport("could not build the request".into()))?;

        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| PublishError::Transport(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, PublishError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| PublishError::Timeout(self.timeout))??;
        if status.is_success() {
            tracing::trace!(items = items.len(), "published to pushpin");
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body);
            let body_start: String = text.chars().take(ERROR_BODY_START).collect();
            Err(PublishError::Status {
                status,
                body_start: body_start.trim_end().to_owned(),
            })
        }
    }
}

/// The error and its causes on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

impl PlatformSender for PushpinPublisher {
    /// Publishes `frame` to the connection's channel. Never [`PlatformSendError::Gone`]: see the module docs.
    fn send<'a>(
        &'a self,
        channel_id: &'a str,
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Result<(), PlatformSendError>> {
        Box::pin(async move {
            self.publish(channel_id, frame)
                .await
                .map_err(|e| PlatformSendError::failed("pushpin", e))
        })
    }

    /// As few publish requests as fit Pushpin's body limit for all recipients: a publication to many
    /// subscribers costs Pushpin a request per [`MAX_PUBLISH_BODY`] bytes of items, not one per subscriber. A
    /// failed request fails each of its recipients.
    fn send_to_each<'a>(
        &'a self,
        channel_ids: &'a [String],
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Vec<Result<(), PlatformSendError>>> {
        Box::pin(async move {
            // What one item may take in the JSON body: the frame escaped or in base64, the channel, the framing.
            let item_bytes = frame.len() * 2 + self.channel_prefix.len() + 96;
            let per_request = (MAX_PUBLISH_BODY / item_bytes.max(1)).max(1);
            let mut results = Vec::with_capacity(channel_ids.len());
            for chunk in channel_ids.chunks(per_request) {
                let items: Vec<PublishItem> = chunk
                    .iter()
                    .map(|id| PublishItem::frame(self.connection_channel(id), frame))
                    .collect();
                match self.publish_items(&items).await {
                    Ok(()) => results.extend(chunk.iter().map(|_| Ok(()))),
                    Err(err) => {
                        let failure = PlatformSendError::failed("pushpin", err);
                        results.extend(chunk.iter().map(|_| Err(failure.clone())));
                    }
                }
            }
            results
        })
    }
}

/// The most bytes of items one publish request carries, under Pushpin's default `push_in_http_max_body_size`
/// of 1 MB; a larger publication is split into several requests.
pub const MAX_PUBLISH_BODY: usize = 900_000;

/// One item of a publication: a Pushpin channel and what to do on the connections subscribed to it.
///
/// ```
/// use pikku::core::OutFrame;
/// use pikku_pushpin::publish::PublishItem;
///
/// let item = PublishItem::frame("conn:abc", &OutFrame::text("hi"));
/// assert_eq!(item.channel(), "conn:abc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishItem {
    channel: String,
    action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Send(OutFrame),
    Close { code: u16, reason: String },
}

impl PublishItem {
    /// Sends `frame` to every connection subscribed to `channel`.
    #[must_use]
    pub fn frame(channel: impl Into<String>, frame: &OutFrame) -> Self {
        Self {
            channel: channel.into(),
            action: Action::Send(frame.clone()),
        }
    }

    /// Closes every connection subscribed to `channel` with `code` and `reason`.
    #[must_use]
    pub fn close(channel: impl Into<String>, code: u16, reason: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            action: Action::Close {
                code,
                reason: reason.into(),
            },
        }
    }

    /// The Pushpin channel.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The item as the publish API reads it.
    ///
    /// ```
    /// use pikku::core::OutFrame;
    /// use pikku_pushpin::publish::PublishItem;
    ///
    /// assert_eq!(
    ///     PublishItem::frame("conn:1", &OutFrame::text("hi")).to_json(),
    ///     serde_json::json!({"channel": "conn:1", "formats": {"ws-message": {"content": "hi"}}}),
    /// );
    /// assert_eq!(
    ///     PublishItem::close("conn:1", 4000, "bye").to_json(),
    ///     serde_json::json!({
    ///         "channel": "conn:1",
    ///         "formats": {"ws-message": {"action": "close", "code": 4000, "reason": "bye"}},
    ///     }),
    /// );
    /// ```
    #[must_use]
    pub fn to_json(&self) -> Value {
        let message = match &self.action {
            // `OutFrame::Text` holds UTF-8 by its contract; a lossy decode only guards against a broken one.
            Action::Send(OutFrame::Text(text)) => {
                json!({ "content": String::from_utf8_lossy(text) })
            }
            Action::Send(OutFrame::Binary(bytes)) => {
                json!({ "content-bin": STANDARD.encode(bytes) })
            }
            // Pushpin 1.36 drops a ping without content ("filter error" in its log); empty content passes.
            Action::Send(OutFrame::Ping) => json!({ "type": "ping", "content": "" }),
            Action::Close { code, reason } => {
                json!({ "action": "close", "code": code, "reason": reason })
            }
        };
        json!({ "channel": self.channel, "formats": { "ws-message": message } })
    }
}

/// Why a publication failed.
///
/// ```
/// use http::StatusCode;
/// use pikku_pushpin::PublishError;
///
/// let err = PublishError::Status { status: StatusCode::BAD_REQUEST, body_start: "Invalid format".into() };
/// assert_eq!(err.to_string(), "pushpin answered the publication with 400 Bad Request: Invalid format");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// Pushpin answered with a status other than 2xx.
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the response body (at most 200 characters), which says what Pushpin disliked.
        body_start: String,
    },
    /// The request could not be made: connection refused or reset, and the like (the cause's text).
    Transport(String),
    /// No answer within the publisher's timeout.
    Timeout(Duration),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, body_start } if body_start.is_empty() => {
                write!(f, "pushpin answered the publication with {status}")
            }
            Self::Status { status, body_start } => {
                write!(
                    f,
                    "pushpin answered the publication with {status}: {body_start}"
                )
            }
            Self::Transport(cause) => write!(f, "could not reach pushpin's publish API: {cause}"),
            Self::Timeout(after) => {
                write!(f, "pushpin's publish API did not answer within {after:?}")
            }
        }
    }
}

impl std::error::Error for PublishError {}

/// Why a publish API URL was refused.
///
/// ```
/// use pikku_pushpin::publish::PublisherUrlError;
///
/// assert_eq!(PublisherUrlError::NotHttp.to_string(), "the publish API URL must start with http://");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublisherUrlError {
    /// Not a URL with a host.
    Invalid,
    /// Not `http://`.
    NotHttp,
}

impl fmt::Display for PublisherUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid => "the publish API URL is not a URL with a host",
            Self::NotHttp => "the publish API URL must start with http://",
        })
    }
}

impl std::error::Error for PublisherUrlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_encode_as_ws_messages() {
        let binary = PublishItem::frame(
            "conn:b",
            &OutFrame::Binary(Bytes::from_static(&[0, 1, 2, 255])),
        );
        assert_eq!(
            binary.to_json(),
            json!({"channel": "conn:b", "formats": {"ws-message": {"content-bin": "AAEC/w=="}}})
        );
        let ping = PublishItem::frame("conn:p", &OutFrame::Ping);
        assert_eq!(
            ping.to_json(),
            json!({"channel": "conn:p", "formats": {"ws-message": {"type": "ping", "content": ""}}})
        );
    }

    #[test]
    fn base_urls_keep_their_path() {
        let publisher = PushpinPublisher::new("http://127.0.0.1:5561/epcp").unwrap();
        assert_eq!(
            publisher.publish_url(),
            "http://127.0.0.1:5561/epcp/publish/"
        );
        assert_eq!(
            PushpinPublisher::new("not a url").unwrap_err(),
            PublisherUrlError::Invalid
        );
        assert_eq!(
            PushpinPublisher::new("/publish").unwrap_err(),
            PublisherUrlError::NotHttp
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_failure_never_gone() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let publisher = PushpinPublisher::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = publisher
            .publish("x", &OutFrame::text("hi"))
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Transport(_)), "{err}");
        let err = publisher
            .send("x", &OutFrame::text("hi"))
            .await
            .unwrap_err();
        assert!(matches!(err, PlatformSendError::Failed(_)), "{err}");
        assert!(publisher.publish_items(&[]).await.is_ok());
    }
}
