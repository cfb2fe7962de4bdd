//! Subscriptions on Redis: a set of channel ids per topic and a set of topics per channel.

use std::fmt;

use pikku_core::store::{BoxFuture, EventHubStore, StoreError};
use redis::Script;

use super::{run, RedisStores};

/// Takes a channel off every topic it is on; returns how many. KEYS: the channel's topic set. ARGV: topic key
/// prefix, channel id.
const REMOVE_CHANNEL: &str = r"
local topics = redis.call('SMEMBERS', KEYS[1])
local removed = 0
for _, topic in ipairs(topics) do
  removed = removed + redis.call('SREM', ARGV[1] .. topic, ARGV[2])
end
redis.call('DEL', KEYS[1])
return removed
";

/// The [`EventHubStore`] on Redis: a set of channel ids per topic, and per channel the set of its topics, kept
/// together in transactions (see the [module](super) for the key layout).
///
/// ```no_run
/// use pikku::redis::store::RedisEventHubStore;
/// use pikku::store::EventHubStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = RedisEventHubStore::from_url("redis://127.0.0.1:6379")?;
/// hub.subscribe("room:a", "conn-1").await?;
/// assert_eq!(hub.channel_ids("room:a").await?, ["conn-1"]);
/// # Ok(())
/// # }
/// ```
pub struct RedisEventHubStore {
    stores: RedisStores,
    remove_channel: Script,
}

impl fmt::Debug for RedisEventHubStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEventHubStore")
            .field("prefix", &self.stores.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisEventHubStore {
    pub(super) fn new(stores: RedisStores) -> Self {
        Self {
            stores,
            remove_channel: Script::new(REMOVE_CHANNEL),
        }
    }

    /// A store on the server `url` names, with its own connection and the default key prefix; see
    /// [`RedisStores`] to share a connection or choose the prefix.
    ///
    /// ```
    /// use pikku::redis::store::RedisEventHubStore;
    ///
    /// let hub = RedisEventHubStore::from_url("redis://127.0.0.1").unwrap();
    /// # let _ = hub;
    /// ```
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`](super::RedisStoreError::InvalidUrl) when the URL names no single Redis
    /// server.
    pub fn from_url(url: &str) -> Result<Self, super::RedisStoreError> {
        Ok(RedisStores::from_url(url)?.event_hub_store())
    }
}

impl EventHubStore for RedisEventHubStore {
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let subscribers = self.stores.keys.topic(topic);
            let topics = self.stores.keys.channel_topics(channel_id);
            run(&self.stores, |mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("SADD")
                    .arg(&subscribers)
                    .arg(channel_id)
                    .ignore()
                    .cmd("SADD")
                    .arg(&topics)
                    .arg(topic)
                    .ignore()
                    .exec_async(&mut conn)
                    .await
            })
            .await?;
            Ok(true)
        })
    }

    fn unsubscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let subscribers = self.stores.keys.topic(topic);
            let topics = self.stores.keys.channel_topics(channel_id);
            let (removed,): (i64,) = run(&self.stores, |mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("SREM")
                    .arg(&subscribers)
                    .arg(channel_id)
                    .cmd("SREM")
                    .arg(&topics)
                    .arg(topic)
                    .ignore()
                    .query_async(&mut conn)
                    .await
            })
            .await?;
            Ok(removed == 1)
        })
    }

    fn channel_ids<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let subscribers = self.stores.keys.topic(topic);
            run(&self.stores, |mut conn| async move {
                redis::cmd("SMEMBERS")
                    .arg(&subscribers)
                    .query_async(&mut conn)
                    .await
            })
            .await
        })
    }

    fn remove_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let topics = self.stores.keys.channel_topics(channel_id);
            let base = self.stores.keys.topic_base();
            let script = &self.remove_channel;
            run(&self.stores, |mut conn| async move {
                script
                    .key(&topics)
                    .arg(&base)
                    .arg(channel_id)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
        })
    }
}
