//! Publishing to a topic's subscribers in stateless mode.

use super::{ChannelStore, EventHubStore, PlatformSendError, PlatformSender, StoreError};
use crate::frame::OutFrame;

/// How many sends [`publish`] keeps in flight at once.
pub const PUBLISH_CONCURRENCY: usize = 16;

/// What a [`publish`] did.
///
/// ```
/// use pikku::store::PublishOutcome;
///
/// let outcome = PublishOutcome::default();
/// assert_eq!((outcome.delivered, outcome.failed), (0, 0));
/// assert!(outcome.gone.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOutcome {
    /// Connections the platform accepted the frame for.
    pub delivered: usize,
    /// Connections the platform reported gone; their records and subscriptions were removed.
    pub gone: Vec<String>,
    /// Connections whose send failed otherwise; they were kept.
    pub failed: usize,
}

/// Sends `frame` to every connection subscribed to `topic` except `exclude`, through `sender`.
///
/// The frame is encoded once by the caller (see [`encode_value`](crate::encode_value)) and every subscriber
/// gets the same bytes; with `exclude = None` the publishing connection gets it too when it is subscribed.
/// Sends run [`PUBLISH_CONCURRENCY`] at a time. A connection the platform reports
/// [`Gone`](PlatformSendError::Gone) is unsubscribed from every topic and its record removed; any other
/// failure is logged and the connection kept. Failing to remove a gone connection is logged too: the next
/// publication to it will try again.
///
/// # Errors
/// [`StoreError::Backend`] when the subscribers cannot be read; nothing was sent then.
///
/// # Cancel safety
/// Not cancel safe: a dropped future has sent the frame to some subscribers and not to others.
///
/// ```
/// use pikku::core::encode_value;
/// use pikku::store::{publish, BoxFuture, EventHubStore, MemoryChannelStore, MemoryEventHubStore};
/// use pikku::store::{PlatformSendError, PlatformSender};
/// use pikku::core::OutFrame;
///
/// struct Accept;
/// impl PlatformSender for Accept {
///     fn send<'a>(&'a self, _: &'a str, _: &'a OutFrame) -> BoxFuture<'a, Result<(), PlatformSendError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (channels, hub) = (MemoryChannelStore::new(), MemoryEventHubStore::new());
/// hub.subscribe("news", "a").await?;
/// hub.subscribe("news", "b").await?;
/// let frame = encode_value(&serde_json::json!({"headline": "hi"})).unwrap();
/// let outcome = publish(&hub, &channels, &Accept, "news", Some("a"), &frame).await?;
/// assert_eq!(outcome.delivered, 1);
/// # Ok::<(), pikku::store::StoreError>(())
/// # }).unwrap();
/// ```
pub async fn publish(
    hub_store: &dyn EventHubStore,
    channel_store: &dyn ChannelStore,
    sender: &dyn PlatformSender,
    topic: &str,
    exclude: Option<&str>,
    frame: &OutFrame,
) -> Result<PublishOutcome, StoreError> {
    let mut ids = hub_store.channel_ids(topic).await?;
    ids.retain(|id| Some(id.as_str()) != exclude);
    let results = sender.send_to_each(&ids, frame).await;

    let mut outcome = PublishOutcome::default();
    for (id, result) in ids.into_iter().zip(results) {
        match result {
            Ok(()) => outcome.delivered += 1,
            Err(PlatformSendError::Gone) => {
                tracing::debug!(channel_id = %id, topic, "connection gone; removing it");
                forget(hub_store, channel_store, &id).await;
                outcome.gone.push(id);
            }
            Err(error) => {
                tracing::warn!(channel_id = %id, topic, %error, "send failed; keeping the connection");
                outcome.failed += 1;
            }
        }
    }
    Ok(outcome)
}

/// Removes a gone connection's subscriptions, then its record; failures are logged.
async fn forget(hub_store: &dyn EventHubStore, channel_store: &dyn ChannelStore, id: &str) {
    if let Err(error) = hub_store.remove_channel(id).await {
        tracing::warn!(channel_id = %id, %error, "could not remove a gone connection's subscriptions");
    }
    if let Err(error) = channel_store.remove_channels(&[id]).await {
        tracing::warn!(channel_id = %id, %error, "could not remove a gone connection's record");
    }
}
