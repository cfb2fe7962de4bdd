//! Why a store operation failed.

use std::fmt;

use crate::error::BackendError;

/// Why a [`ChannelStore`](super::ChannelStore), [`EventHubStore`](super::EventHubStore) or
/// [`SessionStore`](super::SessionStore) operation failed.
///
/// ```
/// use pikku::store::{ChannelStore, MemoryChannelStore, StoreError};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryChannelStore::new();
/// let err = store.get_channel("missing").await.unwrap_err();
/// assert_eq!(err, StoreError::ChannelNotFound("missing".into()));
/// assert_eq!(err.to_string(), "Channel not found: missing");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// No record has this channel id. Nothing was created.
    ChannelNotFound(String),
    /// A record with this channel id exists already; it was left as it was.
    ChannelExists(String),
    /// The store's server, or the connection to it, failed. The backend's name (`"redis"`, `"postgres"`) and
    /// its own error are inside, for logs and [`BackendError::downcast_ref`].
    Backend(BackendError),
}

impl StoreError {
    /// Wraps a store backend's own error.
    ///
    /// ```
    /// use pikku::store::StoreError;
    ///
    /// let io = std::io::Error::other("connection refused");
    /// let err = StoreError::backend("redis", io);
    /// assert_eq!(err.to_string(), "store backend 'redis' failed: connection refused");
    /// ```
    pub fn backend(
        backend: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend(BackendError::new(backend, source))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelNotFound(id) => write!(f, "Channel not found: {id}"),
            Self::ChannelExists(id) => write!(f, "Channel already exists: {id}"),
            Self::Backend(e) => {
                write!(f, "store backend '{}' failed", e.backend())?;
                if let Some(source) = std::error::Error::source(e) {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backend(e) => std::error::Error::source(e),
            _ => None,
        }
    }
}
