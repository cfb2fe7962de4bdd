//! Stateless-mode stores on Redis: channel records, subscriptions and sessions that every invocation of a
//! serverless runner reaches.
//!
//! ```no_run
//! use pikku::redis::store::RedisStores;
//! use pikku::store::{ChannelRecord, ChannelStore, EventHubStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = RedisStores::from_url("redis://127.0.0.1:6379")?.key_prefix("chat:");
//! let (channels, hub, sessions) = (stores.channel_store(), stores.event_hub_store(), stores.session_store());
//! channels.add_channel(ChannelRecord::new("conn-1", "rooms", serde_json::json!({"room": "a"}))).await?;
//! hub.subscribe("room:a", "conn-1").await?;
//! # let _ = sessions;
//! # Ok(())
//! # }
//! ```
//!
//! # Keys
//! Every key starts with the prefix (`pikku:` unless [`RedisStores::key_prefix`] says otherwise); ids, topics
//! and user ids follow it verbatim, since Redis keys are binary-safe.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<prefix>channel:<id>` | hash | `name`, `opening` (JSON), `user` (absent without one), `state` (JSON, absent without one), `created` and `seen` (microseconds since the Unix epoch) |
//! | `<prefix>channels:last-seen` | sorted set | every channel id, scored by its `seen` time, for expiry |
//! | `<prefix>topic:<topic>` | set | the channel ids subscribed to the topic |
//! | `<prefix>channel-topics:<id>` | set | the topics the channel is subscribed to, so that removing it finds them |
//! | `<prefix>session:<user id>` | string | the session, as JSON |
//!
//! # Atomicity
//! Every operation is one atomic step on the server: a Lua script for those that check before they write
//! (adding without overwriting, updating only an existing record, touching forward, expiring, removing a
//! channel from its topics) and a `MULTI` transaction for the others. The scripts also touch keys they derive
//! from the prefix, so the stores need a single Redis server (or a proxy in front of one), not a Redis
//! Cluster.
//!
//! # Connection
//! The stores built from one [`RedisStores`] share one multiplexed connection, made on first use. When it
//! breaks (or a command takes longer than 2 s), the operation fails with [`StoreError::Backend`] and the next
//! one connects again; nothing is retried behind the caller's back.

mod channel;
mod conn;
mod error;
mod hub;
mod session;

use std::fmt;
use std::sync::Arc;

pub use channel::RedisChannelStore;
pub use error::RedisStoreError;
pub use hub::RedisEventHubStore;
pub use session::RedisSessionStore;

use conn::Conn;
use pikku_core::stateless::StatelessStores;
use pikku_core::store::StoreError;

/// The key prefix when none is set.
const DEFAULT_PREFIX: &str = "pikku:";

/// The three stores on one Redis server, sharing one connection and one key prefix.
///
/// ```
/// use pikku::redis::store::RedisStores;
///
/// let stores = RedisStores::from_url("redis://127.0.0.1:6379/0").unwrap().key_prefix("app-1:");
/// assert_eq!(stores.prefix(), "app-1:");
/// let channels = stores.channel_store(); // no I/O until the first operation
/// # let _ = channels;
/// ```
#[derive(Clone)]
pub struct RedisStores {
    conn: Arc<Conn>,
    keys: Keys,
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStores {
    /// Stores on the server `url` names (`redis://[user:password@]host[:port][/db]`, `rediss://…` with the
    /// client's TLS support, `redis+unix:///path`); only parses it, the connection is made on first use.
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// assert!(RedisStores::from_url("redis://127.0.0.1").is_ok());
    /// assert!(RedisStores::from_url("redis+cluster://127.0.0.1:7000").is_err());
    /// ```
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`] when the URL names no single Redis server (a cluster URL included).
    pub fn from_url(url: &str) -> Result<Self, RedisStoreError> {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        if scheme.ends_with("+cluster") {
            return Err(RedisStoreError::InvalidUrl {
                reason: "the stores need one Redis server, not a Redis Cluster".to_owned(),
            });
        }
        let client = redis::Client::open(url).map_err(|err| RedisStoreError::InvalidUrl {
            reason: err.to_string(),
        })?;
        Ok(Self {
            conn: Arc::new(Conn::new(client)),
            keys: Keys {
                prefix: DEFAULT_PREFIX.into(),
            },
        })
    }

    /// Starts every key with `prefix` instead of `pikku:`, for apps (or tests) that share one Redis but not
    /// their data.
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// let stores = RedisStores::from_url("redis://127.0.0.1").unwrap().key_prefix("chat:");
    /// assert_eq!(stores.prefix(), "chat:");
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.keys = Keys {
            prefix: prefix.into(),
        };
        self
    }

    /// The key prefix.
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// assert_eq!(RedisStores::from_url("redis://127.0.0.1").unwrap().prefix(), "pikku:");
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// The channel-record store.
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// let channels = RedisStores::from_url("redis://127.0.0.1").unwrap().channel_store();
    /// # let _ = channels;
    /// ```
    #[must_use]
    pub fn channel_store(&self) -> RedisChannelStore {
        RedisChannelStore::new(self.clone())
    }

    /// The subscription store.
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// let hub = RedisStores::from_url("redis://127.0.0.1").unwrap().event_hub_store();
    /// # let _ = hub;
    /// ```
    #[must_use]
    pub fn event_hub_store(&self) -> RedisEventHubStore {
        RedisEventHubStore::new(self.clone())
    }

    /// The session store.
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// let sessions = RedisStores::from_url("redis://127.0.0.1").unwrap().session_store();
    /// # let _ = sessions;
    /// ```
    #[must_use]
    pub fn session_store(&self) -> RedisSessionStore {
        RedisSessionStore::new(self.clone())
    }

    /// All three stores, sharing this connection, for a [`StatelessRuntime`](pikku_core::stateless::StatelessRuntime).
    ///
    /// ```
    /// use pikku::redis::store::RedisStores;
    ///
    /// let stores = RedisStores::from_url("redis://127.0.0.1").unwrap().stateless_stores();
    /// # let _ = stores;
    /// ```
    #[must_use]
    pub fn stateless_stores(&self) -> StatelessStores {
        StatelessStores {
            channels: Arc::new(self.channel_store()),
            subscriptions: Arc::new(self.event_hub_store()),
            sessions: Arc::new(self.session_store()),
        }
    }
}

/// The names of the stores' keys under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    fn key(&self, kind: &str, name: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + name.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(name);
        key
    }

    /// The hash of one channel record.
    fn channel(&self, channel_id: &str) -> String {
        self.key(CHANNEL, channel_id)
    }

    /// The start of every channel record's key, for scripts that derive them.
    fn channel_base(&self) -> String {
        self.key(CHANNEL, "")
    }

    /// The sorted set of channel ids by last activity.
    fn last_seen(&self) -> String {
        self.key("channels:last-seen", "")
    }

    /// The subscribers of one topic.
    fn topic(&self, topic: &str) -> String {
        self.key(TOPIC, topic)
    }

    /// The start of every topic's key, for scripts that derive them.
    fn topic_base(&self) -> String {
        self.key(TOPIC, "")
    }

    /// The topics of one channel.
    fn channel_topics(&self, channel_id: &str) -> String {
        self.key("channel-topics:", channel_id)
    }

    /// The session of one user.
    fn session(&self, user_id: &str) -> String {
        self.key("session:", user_id)
    }
}

const CHANNEL: &str = "channel:";
const TOPIC: &str = "topic:";

/// Runs `op` on the stores' connection, with its errors as store errors.
async fn run<T, F>(
    stores: &RedisStores,
    op: impl FnOnce(redis::aio::MultiplexedConnection) -> F,
) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, redis::RedisError>>,
{
    stores.conn.run(op).await.map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_keys_never_meet() {
        let keys = Keys {
            prefix: "p:".into(),
        };
        assert_eq!(keys.channel("a"), "p:channel:a");
        assert_eq!(keys.last_seen(), "p:channels:last-seen");
        assert_eq!(keys.topic("a"), "p:topic:a");
        assert_eq!(keys.channel_topics("a"), "p:channel-topics:a");
        assert_eq!(keys.session("a"), "p:session:a");
        assert!(keys.channel("x").starts_with(&keys.channel_base()));
        assert!(keys.topic("x").starts_with(&keys.topic_base()));
        // No channel id makes a record key equal to the expiry index or a channel's topic set.
        assert!(!keys.last_seen().starts_with(&keys.channel_base()));
        assert!(!keys.channel_topics("x").starts_with(&keys.channel_base()));
    }
}
