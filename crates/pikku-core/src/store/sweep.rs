//! Forgetting connections that have been quiet for too long.

use std::time::{Duration, SystemTime};

use super::{ChannelStore, EventHubStore, StoreError};

/// How long a connection may stay quiet before a sweep forgets it, unless the runner chooses otherwise: two
/// hours since its last activity.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// Removes every channel record last seen before `before`, and the subscriptions of those channels; returns
/// their ids. The disconnection handler does not run for them: they are connections whose disconnect never
/// arrived.
///
/// A periodic job calls it with `now - ttl` ([`DEFAULT_TTL`] by default).
///
/// # Errors
/// The first error of the store: from [`expire`](ChannelStore::expire) (nothing more was done), or from removing
/// the subscriptions of an expired id (the others are still removed; subscriptions left behind are removed by
/// the next [`publish`](super::publish) that finds the connection gone).
///
/// # Cancel safety
/// Not cancel safe: a dropped future may have removed records whose subscriptions it had not yet removed.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use pikku::store::{sweep_expired, ChannelRecord, ChannelStore, EventHubStore, DEFAULT_TTL};
/// use pikku::store::{MemoryChannelStore, MemoryEventHubStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (channels, hub) = (MemoryChannelStore::new(), MemoryEventHubStore::new());
/// let long_ago = SystemTime::now() - Duration::from_secs(3 * 60 * 60);
/// channels.add_channel(ChannelRecord::new("old", "chat", serde_json::json!({})).seen_at(long_ago)).await?;
/// hub.subscribe("news", "old").await?;
///
/// let expired = sweep_expired(&channels, &hub, SystemTime::now() - DEFAULT_TTL).await?;
/// assert_eq!(expired, ["old"]);
/// assert!(hub.channel_ids("news").await?.is_empty());
/// # Ok::<(), pikku::store::StoreError>(())
/// # }).unwrap();
/// ```
pub async fn sweep_expired(
    channel_store: &dyn ChannelStore,
    hub_store: &dyn EventHubStore,
    before: SystemTime,
) -> Result<Vec<String>, StoreError> {
    let expired = channel_store.expire(before).await?;
    let mut first_error = None;
    for id in &expired {
        if let Err(error) = hub_store.remove_channel(id).await {
            tracing::warn!(channel_id = %id, %error, "could not remove an expired connection's subscriptions");
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        None => Ok(expired),
        Some(error) => Err(error),
    }
}
