//! The errors of the Redis driver.

use std::error::Error as StdError;
use std::fmt;

/// Why the Redis driver refused or failed.
///
/// The hub wraps it in a [`BackendError`](pikku_core::error::BackendError) whose
/// [`backend`](pikku_core::error::BackendError::backend)
/// is `"redis"`; [`downcast_ref`](pikku_core::error::BackendError::downcast_ref) gives it back.
///
/// ```
/// use pikku_redis::{RedisHub, RedisHubError};
///
/// let err = RedisHub::from_url("http://127.0.0.1").unwrap_err();
/// assert!(matches!(err, RedisHubError::InvalidUrl { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisHubError {
    /// The URL cannot name a Redis server or cluster.
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// There is no connection to Redis right now; the driver is reconnecting.
    LinkDown,
    /// Redis, or the connection to it, failed.
    Redis(redis::RedisError),
}

impl fmt::Display for RedisHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { reason } => write!(f, "invalid Redis URL: {reason}"),
            Self::LinkDown => f.write_str("not connected to Redis (reconnecting)"),
            Self::Redis(err) => write!(f, "redis: {err}"),
        }
    }
}

impl StdError for RedisHubError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Redis(err) => Some(err),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for RedisHubError {
    fn from(err: redis::RedisError) -> Self {
        Self::Redis(err)
    }
}
