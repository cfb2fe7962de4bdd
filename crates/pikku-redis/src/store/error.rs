//! What can go wrong between the stores and Redis.

use std::error::Error as StdError;
use std::fmt;

use pikku_core::store::StoreError;

/// Why a Redis store failed. Store operations return it inside [`StoreError::Backend`], whose
/// [`backend`](pikku_core::error::BackendError::backend) is `"redis"`.
///
/// ```
/// use pikku::redis::store::{RedisStoreError, RedisStores};
///
/// let err = RedisStores::from_url("http://127.0.0.1").unwrap_err();
/// assert!(matches!(err, RedisStoreError::InvalidUrl { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL does not name a single Redis server.
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// Redis, or the connection to it, failed.
    Redis(redis::RedisError),
    /// A stored value is not what the store writes (another program changed it).
    Corrupt {
        /// The Redis key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { reason } => write!(f, "invalid Redis URL: {reason}"),
            Self::Redis(err) => write!(f, "redis: {err}"),
            Self::Corrupt { key, reason } => write!(f, "unreadable value at '{key}': {reason}"),
        }
    }
}

impl StdError for RedisStoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Redis(err) => Some(err),
            _ => None,
        }
    }
}

impl From<RedisStoreError> for StoreError {
    fn from(err: RedisStoreError) -> Self {
        StoreError::backend("redis", err)
    }
}
