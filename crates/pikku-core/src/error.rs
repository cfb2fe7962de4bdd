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
/// `path` is a JSON Pointer into the handler input (`""` is the whole input).
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
    /// let d = pikku_core::ErrorDetail::new("/title", "x".repeat(500));
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
/// use pikku_core::{ChannelError, ClientError};
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
    /// The error class sent as `errorName` (or `name` in an HTTP refusal).
    fn name(&self) -> &str;
    /// The HTTP status used when the error refuses an upgrade.
    fn status(&self) -> u16;
    /// The message the client reads; the `Display` text by default.
    fn client_message(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    /// Validation details, if any.
    fn details(&self) -> &[ErrorDetail] {
        &[]
    }
}

/// The built-in client error classes of the protocol (protocol §4.4, semantics §10).
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
    /// `ServiceUnavailableError`, 503.
    ServiceUnavailable,
    /// `ChannelRPCError`: a reverse call failed.
    ChannelRpc,
}

impl ErrorClass {
    /// The class name sent to clients.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequestError",
            Self::Unauthorized => "UnauthorizedError",
            Self::Forbidden => "ForbiddenError",
            Self::NotFound => "NotFoundError",
            Self::UnprocessableContent => "UnprocessableContentError",
            Self::ServiceUnavailable => "ServiceUnavailableError",
            Self::ChannelRpc => "ChannelRPCError",
        }
    }

    /// The HTTP status of the class.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::UnprocessableContent => 422,
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
/// use pikku_core::ChannelError;
/// let err = ChannelError::forbidden("Permission denied");
/// assert_eq!((err.name(), err.client_message().as_ref()), ("ForbiddenError", "Permission denied"));
/// assert!(ChannelError::internal(std::io::Error::other("disk")).is_internal());
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
    /// A client error of a built-in class.
    pub fn new(class: ErrorClass, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            repr: Repr::Builtin {
                class,
                message: message.into(),
                details: Vec::new(),
            },
        }
    }

    /// `BadRequestError` with `message`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::BadRequest, message)
    }

    /// `UnauthorizedError` with `message`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Unauthorized, message)
    }

    /// `ForbiddenError` with `message`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Forbidden, message)
    }

    /// `NotFoundError` with `message`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::NotFound, message)
    }

    /// `UnprocessableContentError` with `message` and validation `details`.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>, details: Vec<ErrorDetail>) -> Self {
        Self {
            repr: Repr::Builtin {
                class: ErrorClass::UnprocessableContent,
                message: message.into(),
                details,
            },
        }
    }

    /// `ServiceUnavailableError` with `message`.
    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::ServiceUnavailable, message)
    }

    /// An unexpected failure: the client reads `Internal server error`.
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

    /// Whether the client sees this error as `InternalServerError`.
    #[must_use]
    pub fn is_internal(&self) -> bool {
        matches!(self.repr, Repr::Internal(_) | Repr::Panic(_))
    }

    /// The error class name (`errorName`).
    #[must_use]
    pub fn name(&self) -> &str {
        match &self.repr {
            Repr::Builtin { class, .. } => class.name(),
            Repr::Client(e) => e.name(),
            Repr::Internal(_) | Repr::Panic(_) => "InternalServerError",
        }
    }

    /// The HTTP status used when this error refuses an upgrade.
    #[must_use]
    pub fn status(&self) -> u16 {
        match &self.repr {
            Repr::Builtin { class, .. } => class.status(),
            Repr::Client(e) => e.status(),
            Repr::Internal(_) | Repr::Panic(_) => 500,
        }
    }

    /// The message the client reads.
    #[must_use]
    pub fn client_message(&self) -> Cow<'_, str> {
        match &self.repr {
            Repr::Builtin { message, .. } => Cow::Borrowed(message.as_ref()),
            Repr::Client(e) => e.client_message(),
            Repr::Internal(_) | Repr::Panic(_) => Cow::Borrowed("Internal server error"),
        }
    }

    /// Validation details (empty unless this is a validation error).
    #[must_use]
    pub fn details(&self) -> &[ErrorDetail] {
        match &self.repr {
            Repr::Builtin { details, .. } => details,
            Repr::Client(e) => e.details(),
            Repr::Internal(_) | Repr::Panic(_) => &[],
        }
    }

    /// The text logged on the server (and sent as `debug` in development mode).
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

impl<E: ClientError> From<E> for ChannelError {
    fn from(err: E) -> Self {
        Self {
            repr: Repr::Client(Box::new(err)),
        }
    }
}

/// Why a [`send`](crate::Channel::send) did not go out.
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// The channel id is not an open channel of this process (rule H11).
    ChannelNotOpen(String),
    /// The topic is empty or longer than the limit.
    InvalidTopic,
    /// The channel already holds the maximum number of subscriptions.
    TooManySubscriptions,
    /// A distributed backend failed.
    Backend(String),
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelNotOpen(id) => write!(f, "channel '{id}' is not open"),
            Self::InvalidTopic => f.write_str("invalid topic"),
            Self::TooManySubscriptions => f.write_str("too many subscriptions"),
            Self::Backend(e) => write!(f, "event hub backend failed: {e}"),
        }
    }
}

impl std::error::Error for HubError {}

impl From<HubError> for ChannelError {
    fn from(err: HubError) -> Self {
        match err {
            HubError::InvalidTopic => ChannelError::bad_request("Invalid topic"),
            HubError::TooManySubscriptions => ChannelError::bad_request("Too many subscriptions"),
            other => ChannelError::internal(other),
        }
    }
}

/// Why a channel definition could not be registered (semantics §4.2). Raised at startup, never at runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Two channels share a name.
    DuplicateChannelName(String),
    /// Two channels have routes of the same shape.
    DuplicateRoute {
        /// The channel registered first.
        first: String,
        /// The channel registered second.
        second: String,
    },
    /// The route pattern is malformed (it must start with `/`; params are `:name` with `[A-Za-z0-9_]` names).
    InvalidRoute {
        /// The pattern.
        route: String,
        /// What is wrong.
        reason: String,
    },
    /// A route value is empty or starts with the reserved `pikku-` prefix (D24).
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
        }
    }
}

impl std::error::Error for RegistrationError {}
