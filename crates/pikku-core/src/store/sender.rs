//! The seam to the gateway that holds the sockets.

use std::fmt;

use futures_util::stream::{self, StreamExt};

use super::BoxFuture;
use crate::error::BackendError;
use crate::frame::OutFrame;

/// Sends frames to connections the gateway holds: Pushpin's or Fanout's publish API, API Gateway's
/// `PostToConnection`, a Durable Object's socket.
///
/// [`publish`](super::publish) relies on the difference between its two failures: a connection the platform
/// reports [`Gone`](PlatformSendError::Gone) is removed from the stores, while any other failure is only
/// logged.
///
/// ```
/// use pikku::core::OutFrame;
/// use pikku::store::{BoxFuture, PlatformSendError, PlatformSender};
///
/// /// Every connection but `conn-1` is gone.
/// struct OnlyOne;
///
/// impl PlatformSender for OnlyOne {
///     fn send<'a>(&'a self, channel_id: &'a str, _frame: &'a OutFrame) -> BoxFuture<'a, Result<(), PlatformSendError>> {
///         Box::pin(async move {
///             if channel_id == "conn-1" { Ok(()) } else { Err(PlatformSendError::Gone) }
///         })
///     }
/// }
/// # let _ = OnlyOne;
/// ```
pub trait PlatformSender: Send + Sync {
    /// Sends `frame` to the connection `channel_id`.
    ///
    /// # Errors
    /// [`PlatformSendError::Gone`] when the platform knows the connection is closed for good;
    /// [`PlatformSendError::Failed`] for anything else (the connection may still be open).
    ///
    /// # Cancel safety
    /// A dropped future may or may not have sent the frame.
    fn send<'a>(
        &'a self,
        channel_id: &'a str,
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Result<(), PlatformSendError>>;

    /// Sends `frame` to each of `channel_ids` and returns one result per id, in the same order. The default sends
    /// to [`PUBLISH_CONCURRENCY`](super::PUBLISH_CONCURRENCY) connections at a time; a platform whose API takes
    /// many recipients in one call (Pushpin's publish API does) overrides it, and [`publish`](super::publish)
    /// then makes one call per publication instead of one per subscriber.
    ///
    /// ```
    /// use pikku::core::OutFrame;
    /// use pikku::store::{BoxFuture, PlatformSendError, PlatformSender};
    ///
    /// struct Accepting;
    /// impl PlatformSender for Accepting {
    ///     fn send<'a>(&'a self, _id: &'a str, _frame: &'a OutFrame) -> BoxFuture<'a, Result<(), PlatformSendError>> {
    ///         Box::pin(async { Ok(()) })
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ids = ["a".to_string(), "b".to_string()];
    /// let results = Accepting.send_to_each(&ids, &OutFrame::text("hi")).await;
    /// assert_eq!(results, [Ok(()), Ok(())]);
    /// # });
    /// ```
    fn send_to_each<'a>(
        &'a self,
        channel_ids: &'a [String],
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Vec<Result<(), PlatformSendError>>> {
        Box::pin(
            stream::iter(channel_ids)
                .map(move |id| self.send(id, frame))
                .buffered(super::PUBLISH_CONCURRENCY)
                .collect(),
        )
    }
}

/// Why a [`PlatformSender`] could not send.
///
/// ```
/// use pikku::store::PlatformSendError;
///
/// assert_eq!(PlatformSendError::Gone.to_string(), "the connection is gone");
/// let err = PlatformSendError::failed("apigateway", std::io::Error::other("throttled"));
/// assert_eq!(err.to_string(), "platform 'apigateway' failed to send: throttled");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlatformSendError {
    /// The connection is closed and will not come back (API Gateway's `410 Gone`, an unknown connection).
    Gone,
    /// Any other failure: throttling, a timeout, the platform's API being down. The connection may still be
    /// open.
    Failed(BackendError),
}

impl PlatformSendError {
    /// A failure other than [`Gone`](Self::Gone), wrapping the platform client's own error.
    pub fn failed(
        platform: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Failed(BackendError::new(platform, source))
    }
}

impl fmt::Display for PlatformSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gone => f.write_str("the connection is gone"),
            Self::Failed(e) => {
                write!(f, "platform '{}' failed to send", e.backend())?;
                if let Some(source) = std::error::Error::source(e) {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PlatformSendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Gone => None,
            Self::Failed(e) => std::error::Error::source(e),
        }
    }
}
