//! The seam for subscriptions: which connection ids listen to which topics.

use super::{BoxFuture, StoreError};

/// Where a stateless runner keeps subscriptions: for each topic, the ids of the connections subscribed to it.
///
/// Topics are exact strings (no patterns: `:`, `/`, `*`, spaces and any Unicode are plain characters), and a
/// subscription needs no [`ChannelStore`](super::ChannelStore) record. Implementations keep, for each
/// connection, the topics it is subscribed to, so that [`remove_channel`](Self::remove_channel) finds them
/// all.
///
/// Object safe: runners hold an `Arc<dyn EventHubStore>`.
///
/// # Cancel safety
/// Each operation is one atomic step on the store's server: a future dropped before it completes has either
/// done all of its work or none of it.
///
/// ```
/// use pikku::store::{EventHubStore, MemoryEventHubStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let hub = MemoryEventHubStore::new();
/// assert!(hub.subscribe("room:a", "conn-1").await?);
/// assert!(hub.subscribe("room:b", "conn-1").await?);
/// assert_eq!(hub.channel_ids("room:a").await?, ["conn-1"]);
/// assert_eq!(hub.remove_channel("conn-1").await?, 2);
/// assert!(hub.channel_ids("room:a").await?.is_empty());
/// # Ok::<(), pikku::store::StoreError>(())
/// # }).unwrap();
/// ```
pub trait EventHubStore: Send + Sync + 'static {
    /// Subscribes `channel_id` to `topic`. Returns `true`: the channel is subscribed, whether or not it was
    /// already (subscribing twice is the same as once).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Unsubscribes `channel_id` from `topic`; `false` when it was not subscribed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn unsubscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The ids subscribed to `topic`, each once, in no particular order; empty for a topic nobody subscribed to.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn channel_ids<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Unsubscribes `channel_id` from every topic; returns how many topics it was subscribed to.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store fails.
    fn remove_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, StoreError>>;
}
