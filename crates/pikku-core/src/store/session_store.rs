//! The seam for sessions: one JSON value per user id.

use serde_json::Value;

use super::{BoxFuture, StoreError};

/// Where a stateless runner keeps sessions between invocations, by user id, as JSON.
///
/// A connection's record carries the user id of its session (see
/// [`ChannelStore::set_user_id`](super::ChannelStore::set_user_id)); the session itself lives here, so that
/// every connection of one user shares it and the next invocation sees what the last one set.
///
/// Object safe: runners hold an `Arc<dyn SessionStore>`.
///
/// # Cancel safety
/// Each operation is one atomic step on the store's server.
///
/// ```
/// use pikku::store::{MemorySessionStore, SessionStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sessions = MemorySessionStore::new();
/// sessions.set("ann", serde_json::json!({"role": "admin"})).await?;
/// assert_eq!(sessions.get("ann").await?, Some(serde_json::json!({"role": "admin"})));
/// sessions.remove("ann").await?;
/// assert_eq!(sessions.get("ann").await?, None);
/// # Ok::<(), pikku::store::StoreError>(())
/// # }).unwrap();
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// The session of `user_id`; `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Stores `session` as the session of `user_id`, replacing any previous one.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn set<'a>(&'a self, user_id: &'a str, session: Value)
        -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets the session of `user_id`; nothing happens when there is none.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn remove<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}
