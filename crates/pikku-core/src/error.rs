//! Errors that handlers, middleware and permissions return, and the errors of the channel operations.
//!
//! A [`ChannelError`] is either a *client error* (its name and message reach the client, see [`ClientError`]) or an
//! *internal* error (the client reads `Internal server error`; the cause stays in the server log).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// The longest `details[].message` sent to a client, in characters, so an error never echoes a large input back.
pub const MAX_DETAIL_MESSAGE_CHARS: usize = 200;

/// One validation failure: where in the input, and what is wrong there.
///
/// `path` is a JSON Pointer into the handler input (`""` is the whole input). Build it with
/// [`ErrorDetail::new`], which caps the message; a struct literal does not.
///
/// ```
/// use pikku::ErrorDetail;
///
/// let detail = ErrorDetail::new("/items/0/name", "must not be empty");
/// assert_eq!(
///     serde_json::to_value(&detail).unwrap(),
///     serde_json::json!({"path": "/items/0/name", "message": "must not be empty"}),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    /// JSON Pointer to the offending value.
    pub path: String,
    /// What is wrong, at most [`MAX_DETAIL_MESSAGE_CHARS`] characters.
    pub message: String,
}

impl ErrorDetail {
    /// A detail at `path` with `message` capped to [`MAX_DETAIL_MESSAGE_CHARS`].
    ///
    /// ```
    /// let d = pikku::ErrorDetail::new("/title", "x".repeat(500));
    /// assert_eq!(d.message.chars().count(), 200);
    /// ```
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_DETAIL_MESSAGE_CHARS) {
            message.truncate(cut);
        }
        Self {
            path: path.into(),
            message,
        }
    }
}

/// An error whose name and message are safe to show to the client.
///
/// Implement it for application errors that clients should see; everything else becomes `InternalServerError`.
///
/// ```
/// use pikku::{ChannelError, ClientError};
///
/// #[derive(Debug)]
/// struct RoomFull;
/// impl std::fmt::Display for RoomFull {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("room is full") }
/// }
/// impl std::error::Error for RoomFull {}
/// impl ClientError for RoomFull {
///     fn name(&self) -> &str { "RoomFullError" }
///     fn status(&self) -> u16 { 409 }
/// }
///
/// let err: ChannelError = RoomFull.into();
/// assert_eq!(err.name(), "RoomFullError");
/// assert_eq!(err.client_message(), "room is full");
/// ```
pub trait ClientError: std::error::Error + Send + Sync + 'static {
    /// The error class sent as `errorName` (or `name` in an HTTP refusal), such as `RoomFullError`.
    fn name(&self) -> &str;
    /// The HTTP status used when the error refuses an upgrade (from upgrade middleware); error frames do not
    /// carry it. The embedded server answers 500 for a value that is not a valid HTTP status.
    fn status(&self) -> u16;
    /// The message the client reads; the `Display` text by default. Override it when `Display` holds more than
    /// the client should see.
    fn client_message(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    /// Validation details sent as `details`, if any (none by default).
    fn details(&self) -> &[ErrorDetail] {
        &[]
    }
}

/// The built-in client error classes of the protocol.
///
/// Use them with [`ChannelError::new`], or through the shorthand constructors ([`ChannelError::forbidden`], …).
///
/// ```
/// use pikku::ErrorClass;
///
/// assert_eq!(ErrorClass::Forbidden.name(), "ForbiddenError");
/// assert_eq!(ErrorClass::Forbidden.status(), 403);
/// assert_eq!(ErrorClass::ChannelRpc.status(), 502);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// `BadRequestError`, 400.
    BadRequest,
    /// `UnauthorizedError`, 401.
    Unauthorized,
    /// `ForbiddenError`, 403.
    Forbidden,
    /// `NotFoundError`, 404.
    NotFound,
    /// `UnprocessableContentError`, 422.
    UnprocessableContent,
    /// `TooManyRequestsError`, 429: the client is over a rate or connection limit.
    TooManyRequests,
    /// `ServiceUnavailableError`, 503.
    ServiceUnavailable,
    /// `ChannelRPCError`, 502: a reverse call failed.
    ChannelRpc,
}

impl ErrorClass {
    /// The class name sent to clients as `errorName` (see the type-level example).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequestError",
            Self::Unauthorized => "UnauthorizedError",
            Self::Forbidden => "ForbiddenError",
            Self::NotFound => "NotFoundError",
            Self::UnprocessableContent => "UnprocessableContentError",
            Self::TooManyRequests => "TooManyRequestsError",
            Self::ServiceUnavailable => "ServiceUnavailableError",
            Self::ChannelRpc => "ChannelRPCError",
        }
    }

    /// The HTTP status of the class, used when an error of this class refuses an upgrade.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::UnprocessableContent => 422,
            Self::TooManyRequests => 429,
            Self::ServiceUnavailable => 503,
            Self::ChannelRpc => 502,
        }
    }
}

/// What handlers, middleware and permissions return when they fail.
///
/// Build client errors with the constructors ([`ChannelError::forbidden`], …) or from any [`ClientError`];
/// wrap anything else with [`ChannelError::internal`]. The client sees `Internal server error` for internal
/// errors, and the cause goes to the server log.
///
/// ```
/// use pikku::ChannelError;
/// let err = ChannelError::forbidden("Permission denied");
/// assert_eq!((err.name(), err.client_message().as_ref()), ("ForbiddenError", "Permission denied"));
/// assert!(ChannelError::internal(std::io::Error::other("disk")).is_internal());
/// ```
///
/// `?` converts [`ClientError`]s, [`SendError`], [`HubError`] and [`RpcError`](crate::RpcError) by itself; any
/// other error needs an explicit `map_err(ChannelError::internal)`, so internal text never reaches a client by
/// accident:
///
/// ```
/// use pikku::{Channel, ChannelError, Ctx, Params};
///
/// async fn read_motd(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> Result<String, ChannelError> {
///     let text = std::fs::read_to_string("/etc/motd").map_err(ChannelError::internal)?;
///     Ok(text)
/// }
/// ```
pub struct ChannelError {
    repr: Repr,
}

enum Repr {
    Builtin {
        class: ErrorClass,
        message: Cow<'static, str>,
        details: Vec<ErrorDetail>,
    },
    Client(Box<dyn ClientError>),
    Internal(Box<dyn std::error::Error + Send + Sync + 'static>),
    Panic(String),
}

impl ChannelError {
    /// A client error of a built-in class, with `message` as the text the client reads.
    ///
    /// ```
    /// use pikku::{ChannelError, ErrorClass};
    ///
    /// let err = ChannelError::new(ErrorClass::ServiceUnavailable, format!("Retry in {} s", 30));
    /// assert_eq!(err.name(), "ServiceUnavailableError");
    /// assert_eq!(err.status(), 503);
    /// assert_eq!(err.client_message(), "Retry in 30 s");
    /// ```
    pub fn new(class: ErrorClass, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            repr: Repr::Builtin {
                class,
                message: message.into(),
                details: Vec::new(),
            },
        }
    }

    /// `BadRequestError` (400) with `message`: the request is malformed or makes no sense.
    ///
    /// ```
    /// let err = pikku::ChannelError::bad_request("Unknown topic kind");
    /// assert_eq!((err.name(), err.status()), ("BadRequestError", 400));
    /// ```
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::BadRequest, message)
    }

    /// `UnauthorizedError` (401) with `message`: a session is needed. From upgrade middleware it refuses the
    /// upgrade with 401.
    ///
    /// ```
    /// let err = pikku::ChannelError::unauthorized("Missing or invalid token");
    /// assert_eq!((err.name(), err.status()), ("UnauthorizedError", 401));
    /// ```
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Unauthorized, message)
    }

    /// `ForbiddenError` (403) with `message`: the session may not do this.
    ///
    /// ```
    /// let err = pikku::ChannelError::forbidden("Account disabled");
    /// assert_eq!((err.name(), err.status()), ("ForbiddenError", 403));
    /// ```
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Forbidden, message)
    }

    /// `NotFoundError` (404) with `message`: what the message names does not exist.
    ///
    /// ```
    /// let err = pikku::ChannelError::not_found("No such room");
    /// assert_eq!((err.name(), err.status()), ("NotFoundError", 404));
    /// ```
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::NotFound, message)
    }

    /// `UnprocessableContentError` (422) with `message` and validation `details`, sent as the frame's `details`
    /// member (omitted when empty). Use it for checks that types and `garde` cannot express.
    ///
    /// ```
    /// use pikku::{ChannelError, ErrorDetail};
    ///
    /// let err = ChannelError::unprocessable(
    ///     "Invalid message data",
    ///     vec![ErrorDetail::new("/end", "must be after /start")],
    /// );
    /// assert_eq!(err.status(), 422);
    /// assert_eq!(err.details()[0].path, "/end");
    /// ```
    pub fn unprocessable(message: impl Into<Cow<'static, str>>, details: Vec<ErrorDetail>) -> Self {
        Self {
            repr: Repr::Builtin {
                class: ErrorClass::UnprocessableContent,
                message: message.into(),
                details,
            },
        }
    }

    /// `TooManyRequestsError` (429) with `message`: this client is over a limit. The pipeline sends
    /// `Rate limit exceeded` when a connection goes over its [`RateLimit`](crate::RateLimit); the server refuses
    /// upgrades beyond `max_connections_per_ip` with it.
    ///
    /// ```
    /// let err = pikku::ChannelError::too_many_requests("Rate limit exceeded");
    /// assert_eq!((err.name(), err.status()), ("TooManyRequestsError", 429));
    /// ```
    pub fn too_many_requests(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::TooManyRequests, message)
    }

    /// `ServiceUnavailableError` (503) with `message`: try again later.
    ///
    /// ```
    /// let err = pikku::ChannelError::service_unavailable("Maintenance");
    /// assert_eq!((err.name(), err.status()), ("ServiceUnavailableError", 503));
    /// ```
    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::ServiceUnavailable, message)
    }

    /// The JSON body of an HTTP refusal of this error, as every runner writes it when an upgrade (or a
    /// gateway's connect event) is refused: `{"name", "message", "errorId"[, "details"]}`, with the client
    /// message only (an internal error says `Internal server error`). `error_id` is what the runner logged.
    ///
    /// ```
    /// use pikku::ChannelError;
    ///
    /// let body = ChannelError::not_found("Channel not found: /x").refusal_body("e-1");
    /// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    /// assert_eq!(json, serde_json::json!({"name": "NotFoundError", "message": "Channel not found: /x", "errorId": "e-1"}));
    /// ```
    #[must_use]
    pub fn refusal_body(&self, error_id: &str) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        body.insert("name".into(), self.name().into());
        body.insert("message".into(), self.client_message().into_owned().into());
        body.insert("errorId".into(), error_id.into());
        if !self.details().is_empty() {
            body.insert(
                "details".into(),
                serde_json::to_value(self.details()).expect("details always serialize"),
            );
        }
        serde_json::to_vec(&body).expect("a JSON map always serializes")
    }

    /// An unexpected failure: the client reads `Internal server error` (`InternalServerError`, 500); `cause` is
    /// logged on the server at error level, and sent as `debug` only in development mode. Accepts any error type
    /// or a string.
    ///
    /// ```
    /// use pikku::ChannelError;
    ///
    /// let err = ChannelError::internal(std::io::Error::other("disk full"));
    /// assert_eq!(err.client_message(), "Internal server error");
    /// assert_eq!(err.debug_text(), "disk full");
    /// ```
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            repr: Repr::Internal(cause.into()),
        }
    }

    /// A caught panic, with its payload text for the log.
    pub(crate) fn panic(message: String) -> Self {
        Self {
            repr: Repr::Panic(message),
        }
    }

    /// Whether the client sees this error as `InternalServerError` (it was made with
    /// [`internal`](Self::internal), or a handler panicked). Logging middleware uses it to pick a level.
    ///
    /// ```
    /// use pikku::ChannelError;
    ///
    /// assert!(ChannelError::internal("boom").is_internal());
    /// assert!(!ChannelError::forbidden("no").is_internal());
    /// ```
    #[must_use]
    pub fn is_internal(&self) -> bool {
        matches!(self.repr, Repr::Internal(_) | Repr::Panic(_))
    }

    /// The error class name (`errorName`): the built-in class, the [`ClientError::name`], or
    /// `InternalServerError`.
    #[must_use]
    pub fn name(&self) -> &str {
        match &self.repr {
            Repr::Builtin { class, .. } => class.name(),
            Repr::Client(e) => e.name(),
            Repr::Internal(_) | Repr::Panic(_) => "InternalServerError",
        }
    }

    /// The HTTP status used when this error refuses an upgrade (500 for internal errors).
    #[must_use]
    pub fn status(&self) -> u16 {
        match &self.repr {
            Repr::Builtin { class, .. } => class.status(),
            Repr::Client(e) => e.status(),
            Repr::Internal(_) | Repr::Panic(_) => 500,
        }
    }

    /// The message the client reads (the frame's `error` member, or `message` in an HTTP refusal);
    /// `Internal server error` for internal errors.
    #[must_use]
    pub fn client_message(&self) -> Cow<'_, str> {
        match &self.repr {
            Repr::Builtin { message, .. } => Cow::Borrowed(message.as_ref()),
            Repr::Client(e) => e.client_message(),
            Repr::Internal(_) | Repr::Panic(_) => Cow::Borrowed("Internal server error"),
        }
    }

    /// Validation details (empty unless this is a validation error or a [`ClientError`] that has some). See
    /// [`unprocessable`](Self::unprocessable).
    #[must_use]
    pub fn details(&self) -> &[ErrorDetail] {
        match &self.repr {
            Repr::Builtin { details, .. } => details,
            Repr::Client(e) => e.details(),
            Repr::Internal(_) | Repr::Panic(_) => &[],
        }
    }

    /// The text logged on the server: the message, the client error's `Display`, the internal cause, or
    /// `panic: …` for a caught panic. For internal errors it is also sent as `debug` in development mode.
    ///
    /// ```
    /// use pikku::ChannelError;
    ///
    /// assert_eq!(ChannelError::internal("db down").debug_text(), "db down");
    /// assert_eq!(ChannelError::not_found("No such room").debug_text(), "No such room");
    /// ```
    #[must_use]
    pub fn debug_text(&self) -> String {
        match &self.repr {
            Repr::Builtin { message, .. } => message.to_string(),
            Repr::Client(e) => e.to_string(),
            Repr::Internal(e) => e.to_string(),
            Repr::Panic(msg) => format!("panic: {msg}"),
        }
    }
}

impl fmt::Debug for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelError")
            .field("name", &self.name())
            .field("message", &self.debug_text())
            .finish()
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.debug_text())
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Client(e) => Some(&**e),
            Repr::Internal(e) => Some(&**e),
            Repr::Builtin { .. } | Repr::Panic(_) => None,
        }
    }
}

impl<E: ClientError> From<E> for ChannelError {
    fn from(err: E) -> Self {
        Self {
            repr: Repr::Client(Box::new(err)),
        }
    }
}

/// Why a [`send`](crate::Channel::send) did not go out.
///
/// With `?` it becomes an internal [`ChannelError`]; match on it when a failed send is expected, for example in a
/// task that streams to a client until it leaves.
///
/// ```
/// use pikku::{Channel, Ctx, Params, SendError};
///
/// async fn stream(_ctx: Ctx<(), ()>, ch: Channel<Params, u64>, _in: ()) {
///     for n in 0u64.. {
///         match ch.send(n) {
///             Ok(()) => {}
///             Err(SendError::Backpressure) => continue, // `Drop` policy: skip this one
///             Err(_) => break,                          // closed: the client is gone
///         }
///         tokio::task::yield_now().await;
///     }
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The channel is closed (or was closed by this send under the `Close` slow-consumer policy).
    Closed,
    /// The outbound queue is full and the `Drop` slow-consumer policy discarded the frame.
    Backpressure,
    /// The value could not be serialized; nothing was sent.
    Serialize(serde_json::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("channel is closed"),
            Self::Backpressure => f.write_str("outbound queue is full; frame dropped"),
            Self::Serialize(e) => write!(f, "could not serialize the value: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Serialize(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SendError> for ChannelError {
    fn from(err: SendError) -> Self {
        ChannelError::internal(err)
    }
}

/// Why an event-hub operation failed.
///
/// Propagated from a handler with `?`, `InvalidTopic` and `TooManySubscriptions` become `BadRequestError`s the
/// client can read; the others become internal errors.
///
/// ```
/// use pikku::{ChannelError, EventHub, HubError};
/// use pikku::core::HubLimits;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let hub = EventHub::new(HubLimits::default());
/// let err = hub.subscribe("", "some-id").await.unwrap_err();
/// assert_eq!(err, HubError::InvalidTopic);
/// assert_eq!(ChannelError::from(err).client_message(), "Invalid topic");
///
/// let err = hub.subscribe("news", "no-such-id").await.unwrap_err();
/// assert_eq!(err, HubError::ChannelNotOpen("no-such-id".into()));
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HubError {
    /// The channel id is not an open channel of this process.
    ChannelNotOpen(String),
    /// The topic is empty or longer than [`HubLimits::max_topic_bytes`](crate::HubLimits::max_topic_bytes).
    InvalidTopic,
    /// The channel already holds
    /// [`HubLimits::max_subscriptions_per_channel`](crate::HubLimits::max_subscriptions_per_channel)
    /// subscriptions, or the hub its total.
    TooManySubscriptions,
    /// The published value did not serialize; nothing was sent.
    Serialize(std::sync::Arc<serde_json::Error>),
    /// The broker link failed; for a publish, local subscribers were served and other nodes were not.
    Backend(BackendError),
}

impl PartialEq for HubError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::ChannelNotOpen(a), Self::ChannelNotOpen(b)) => a == b,
            (Self::InvalidTopic, Self::InvalidTopic)
            | (Self::TooManySubscriptions, Self::TooManySubscriptions) => true,
            (Self::Serialize(a), Self::Serialize(b)) => a.to_string() == b.to_string(),
            (Self::Backend(a), Self::Backend(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for HubError {}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelNotOpen(id) => write!(f, "channel '{id}' is not open"),
            Self::InvalidTopic => f.write_str("invalid topic"),
            Self::TooManySubscriptions => f.write_str("too many subscriptions"),
            Self::Serialize(e) => write!(f, "published value did not serialize: {e}"),
            Self::Backend(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for HubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Serialize(e) => Some(&**e),
            Self::Backend(e) => Some(e),
            _ => None,
        }
    }
}

/// A failure of an event-hub backend: which backend, and its own error as the [`source`](std::error::Error::source).
///
/// ```
/// use pikku::core::error::BackendError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let err = BackendError::new("redis", io);
/// assert_eq!(err.backend(), "redis");
/// assert_eq!(err.to_string(), "event hub backend 'redis' failed: connection refused");
/// assert!(err.downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct BackendError {
    backend: &'static str,
    source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
}

impl BackendError {
    /// Wraps a backend's own error.
    pub fn new(
        backend: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            backend,
            source: std::sync::Arc::new(source),
        }
    }

    /// Keeps the text of an error only lent to us (with its causes), when it cannot be moved.
    pub(crate) fn from_report(
        backend: &'static str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) -> Self {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            text.push_str(": ");
            text.push_str(&e.to_string());
            cause = e.source();
        }
        Self::new(backend, Reported(text))
    }

    /// The backend's name (`"redis"`, `"nats"`, ...).
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The backend's own error, if it is an `E`.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.downcast_ref::<E>()
    }
}

impl PartialEq for BackendError {
    /// Same backend and same message: errors of other crates rarely compare, their text does.
    fn eq(&self, other: &Self) -> bool {
        self.backend == other.backend && self.source.to_string() == other.source.to_string()
    }
}

impl Eq for BackendError {}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event hub backend '{}' failed: {}",
            self.backend, self.source
        )
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// An error known by its text only.
#[derive(Debug)]
struct Reported(String);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

impl From<HubError> for ChannelError {
    fn from(err: HubError) -> Self {
        match err {
            HubError::InvalidTopic => ChannelError::bad_request("Invalid topic"),
            HubError::TooManySubscriptions => ChannelError::bad_request("Too many subscriptions"),
            other => ChannelError::internal(other),
        }
    }
}

/// Why a channel definition could not be registered. Raised at startup, never at runtime.
///
/// [`App::channel`](crate::App::channel) panics with it; [`App::try_channel`](crate::App::try_channel) returns it
/// with the location of the offending call. Its `Display` text says what to change.
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params, RegistrationError};
///
/// async fn a(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) {}
///
/// let channel = ChannelRoute::new("events", "/events").route("action", "pikku-rpc", a);
/// let (err, _location) = App::new(()).try_channel(channel).unwrap_err();
/// assert!(matches!(err, RegistrationError::InvalidRouteValue { .. }));
/// assert_eq!(
///     err.to_string(),
///     "channel 'events': route value 'pikku-rpc' under 'action' must be non-empty and must not start with 'pikku-'",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Two channels share a name.
    DuplicateChannelName(String),
    /// Two channels have routes of the same shape (the same literals and params in the same places), so the
    /// second could never be reached.
    DuplicateRoute {
        /// The channel registered first.
        first: String,
        /// The channel registered second.
        second: String,
    },
    /// The route pattern is malformed: it must start with `/`, have no empty segment, and use whole-segment params
    /// `:name` or `{name}` with non-empty `[A-Za-z0-9_]` names, each name once; wildcards are not supported.
    InvalidRoute {
        /// The pattern.
        route: String,
        /// What is wrong.
        reason: String,
    },
    /// A route value is empty or starts with the reserved `pikku-` prefix (kept for the protocol's own frames).
    InvalidRouteValue {
        /// The channel.
        channel: String,
        /// The routing property.
        property: String,
        /// The value.
        value: String,
    },
    /// The same (property, value) route was registered twice on a channel.
    DuplicateMessageRoute {
        /// The channel.
        channel: String,
        /// The routing property.
        property: String,
        /// The value.
        value: String,
    },
    /// The app [requires schemas](crate::App::require_schemas) and a handler's type has none.
    Undescribed {
        /// What lacks a schema: `"<channel>: <what>"`, as [`AppDescription::undescribed`] lists it.
        ///
        /// [`AppDescription::undescribed`]: crate::describe::AppDescription::undescribed
        missing: String,
    },
    /// A stateless runner was given a channel whose handlers use socket state that is not
    /// [persisted](crate::ChannelRoute::persist_socket_state): the state would be lost after every event.
    SocketStateNotPersisted {
        /// The channel.
        channel: String,
        /// The socket-state type.
        state_type: String,
    },
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateChannelName(name) => {
                write!(f, "a channel named '{name}' is already registered; channel names must be unique")
            }
            Self::DuplicateRoute { first, second } => write!(
                f,
                "channels '{first}' and '{second}' have routes of the same shape; change one of the paths"
            ),
            Self::InvalidRoute { route, reason } => write!(f, "invalid channel route '{route}': {reason}"),
            Self::InvalidRouteValue {
                channel,
                property,
                value,
            } => write!(
                f,
                "channel '{channel}': route value '{value}' under '{property}' must be non-empty and must not start with 'pikku-'"
            ),
            Self::DuplicateMessageRoute {
                channel,
                property,
                value,
            } => write!(f, "channel '{channel}': route '{property}:{value}' is registered twice"),
            Self::Undescribed { missing } => write!(
                f,
                "the app requires schemas, and {missing} has none: register the handler with `typed(..)`"
            ),
            Self::SocketStateNotPersisted { channel, state_type } => write!(
                f,
                "channel '{channel}' keeps socket state of type `{state_type}`, which a stateless runner loses after \
                 every event: call `.persist_socket_state()` on the channel (the type must implement \
                 Serialize and Deserialize)"
            ),
        }
    }
}

impl std::error::Error for RegistrationError {}
