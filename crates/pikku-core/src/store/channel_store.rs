//! The seam for channel records: one per open connection.

use std::time::SystemTime;

use serde_json::Value;

use super::{BoxFuture, ChannelRecord, StoreError};

/// Where a stateless runner keeps one [`ChannelRecord`] per open connection.
///
/// The connect invocation adds the record before the connection handler runs, every message invocation reads
/// it back (and [`touch`](Self::touch)es it), and the disconnect invocation removes it. Implementations must
/// be safe to call from many invocations at once, on many machines:
///
/// - [`add_channel`](Self::add_channel) never overwrites: of two concurrent adds of one id, exactly one
///   succeeds.
/// - Every operation on one id other than [`remove_channels`](Self::remove_channels) fails with
///   [`StoreError::ChannelNotFound`] when the id is not stored, and then creates nothing.
/// - Removing ids that are not stored succeeds and changes nothing.
///
/// Object safe: runners hold an `Arc<dyn ChannelStore>`.
///
/// # Cancel safety
/// Each operation is one atomic step on the store's server: a future dropped before it completes has either
/// done all of its work or none of it, but the caller cannot tell which.
///
/// ```
/// use std::sync::Arc;
/// use pikku::store::{ChannelRecord, ChannelStore, MemoryChannelStore, StoreError};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store: Arc<dyn ChannelStore> = Arc::new(MemoryChannelStore::new());
/// store.add_channel(ChannelRecord::new("conn-1", "chat", serde_json::json!({"room": "a"}))).await?;
/// store.set_user_id("conn-1", Some("ann")).await?;
/// let record = store.get_channel("conn-1").await?;
/// assert_eq!(record.user_id.as_deref(), Some("ann"));
///
/// store.remove_channels(&["conn-1"]).await?;
/// assert!(matches!(store.get_channel("conn-1").await, Err(StoreError::ChannelNotFound(_))));
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
pub trait ChannelStore: Send + Sync + 'static {
    /// Stores a new record.
    ///
    /// # Errors
    /// [`StoreError::ChannelExists`] when a record with this id is stored already (it is left unchanged);
    /// [`StoreError::Backend`] when the store fails.
    fn add_channel(&self, record: ChannelRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The record of `channel_id`.
    ///
    /// # Errors
    /// [`StoreError::ChannelNotFound`] when it is not stored; [`StoreError::Backend`] when the store fails.
    fn get_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<ChannelRecord, StoreError>>;

    /// Records the user id of the connection's session, or forgets it with `None` (the record then has no user
    /// id, not an empty one).
    ///
    /// # Errors
    /// [`StoreError::ChannelNotFound`] when the channel is not stored (nothing is created);
    /// [`StoreError::Backend`] when the store fails.
    fn set_user_id<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The socket state of the channel; `None` when none was set (or it was cleared).
    ///
    /// # Errors
    /// [`StoreError::ChannelNotFound`] when the channel is not stored; [`StoreError::Backend`] when the store
    /// fails.
    fn get_state<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Replaces the socket state of the channel with `state` (no merge with the previous value).
    ///
    /// # Errors
    /// [`StoreError::ChannelNotFound`] when the channel is not stored (nothing is created);
    /// [`StoreError::Backend`] when the store fails.
    fn set_state<'a>(
        &'a self,
        channel_id: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets the socket state of the channel.
    ///
    /// # Errors
    /// [`StoreError::ChannelNotFound`] when the channel is not stored; [`StoreError::Backend`] when the store
    /// fails.
    fn clear_state<'a>(&'a self, channel_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records activity at `at`: the record's `last_seen` moves forward to `at`, never back.
    ///
    /// # Errors
    /// [`StoreError::ChannelNotFound`] when the channel is not stored (nothing is created);
    /// [`StoreError::Backend`] when the store fails.
    fn touch<'a>(
        &'a self,
        channel_id: &'a str,
        at: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the records of `channel_ids`, with their state and user id. Ids that are not stored are
    /// skipped; an empty list does nothing. Subscriptions are the [`EventHubStore`](super::EventHubStore)'s
    /// to remove.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn remove_channels<'a>(
        &'a self,
        channel_ids: &'a [&'a str],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes every record last seen before `before` (strictly) and returns their ids, in no particular
    /// order. A record touched at or after `before` survives.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails; records already removed stay removed.
    fn expire(&self, before: SystemTime) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}
