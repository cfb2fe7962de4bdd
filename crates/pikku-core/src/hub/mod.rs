//! The event hub: subscribe channels to topics and publish to every subscriber but an excluded one
//! (semantics §7).
//!
//! The hub is a value inside the [`App`](crate::App): handlers reach it through [`Ctx::hub`](crate::Ctx::hub),
//! and code outside any connection (HTTP handlers, jobs) through [`App::hub`](crate::App::hub).
//!
//! # Encoding
//! A published value is encoded once (protocol §4.1) and the same bytes are queued to every local subscriber, so
//! a publication to 10,000 sockets costs one serialization.
//!
//! # Ordering
//! Local deliveries are queued before `publish` returns (H7); events from one publisher to one subscriber arrive
//! in publish order (H10). A slow subscriber is handled by its own slow-consumer policy and never makes the
//! publisher fail (H8).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use serde::Serialize;

use crate::channel::{ChannelState, Connection};
use crate::error::HubError;
use crate::frame::{encode_value, OutFrame};

/// Per-connection and per-topic bounds of the hub (semantics §11).
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Subscriptions one connection may hold (default 1024).
    pub max_subscriptions_per_channel: usize,
    /// Longest topic in bytes (default 256).
    pub max_topic_bytes: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            max_subscriptions_per_channel: 1024,
            max_topic_bytes: 256,
        }
    }
}

type Subscribers = HashMap<Arc<str>, Arc<Connection>>;

struct HubInner {
    /// Open connections of this process, by channel id.
    channels: RwLock<HashMap<Arc<str>, Arc<Connection>>>,
    topics: RwLock<HashMap<Arc<str>, Subscribers>>,
    limits: HubLimits,
}

/// The in-process event hub. Cloning is cheap and every clone is the same hub.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let hub = pikku_core::EventHub::new(Default::default());
/// // No subscribers: publishing is a no-op that reaches nobody (H9).
/// assert_eq!(hub.publish("news", None, &serde_json::json!({"hi": 1})).await.unwrap(), 0);
/// # });
/// ```
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("channels", &self.inner.channels.read().len())
            .field("topics", &self.inner.topics.read().len())
            .finish()
    }
}

impl EventHub {
    /// An empty hub.
    #[must_use]
    pub fn new(limits: HubLimits) -> Self {
        Self {
            inner: Arc::new(HubInner {
                channels: RwLock::new(HashMap::new()),
                topics: RwLock::new(HashMap::new()),
                limits,
            }),
        }
    }

    /// Subscribes `channel_id` to `topic`. Idempotent (H1).
    ///
    /// # Errors
    /// [`HubError::ChannelNotOpen`] when the id is not an open channel of this process (H11),
    /// [`HubError::InvalidTopic`] for an empty or too long topic, [`HubError::TooManySubscriptions`].
    ///
    /// # Cancel safety
    /// The in-process hub completes without awaiting; dropping the future before it is polled does nothing.
    pub async fn subscribe(&self, topic: &str, channel_id: &str) -> Result<(), HubError> {
        self.check_topic(topic)?;
        let conn = self
            .channel(channel_id)
            .filter(|c| c.state() != ChannelState::Closed)
            .ok_or_else(|| HubError::ChannelNotOpen(channel_id.to_owned()))?;
        let mut conn_topics = conn.topics.lock();
        if conn_topics.iter().any(|t| &**t == topic) {
            return Ok(());
        }
        if conn_topics.len() >= self.inner.limits.max_subscriptions_per_channel {
            return Err(HubError::TooManySubscriptions);
        }
        let mut topics = self.inner.topics.write();
        let key = match topics.get_key_value(topic) {
            Some((key, _)) => key.clone(),
            None => Arc::from(topic),
        };
        topics
            .entry(key.clone())
            .or_default()
            .insert(conn.id_arc().clone(), conn.clone());
        conn_topics.push(key);
        Ok(())
    }

    /// Unsubscribes `channel_id` from `topic`; true when a subscription was removed (H4).
    ///
    /// # Errors
    /// None for the in-process hub; distributed backends may fail.
    pub async fn unsubscribe(&self, topic: &str, channel_id: &str) -> Result<bool, HubError> {
        let Some(conn) = self.channel(channel_id) else {
            return Ok(false);
        };
        let mut conn_topics = conn.topics.lock();
        let Some(pos) = conn_topics.iter().position(|t| &**t == topic) else {
            return Ok(false);
        };
        conn_topics.swap_remove(pos);
        self.remove_subscriber(topic, channel_id);
        Ok(true)
    }

    /// Publishes `value` to every subscriber of `topic` except `exclude`; returns the number of local deliveries.
    ///
    /// # Errors
    /// [`HubError::Backend`] when the value does not serialize or a distributed backend fails.
    ///
    /// # Cancel safety
    /// Local deliveries are queued before the first await point.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        exclude: Option<&str>,
        value: &T,
    ) -> Result<usize, HubError> {
        let frame = encode_value(value).map_err(|e| HubError::Backend(e.to_string()))?;
        Ok(self.publish_frame(topic, exclude, frame))
    }

    /// Publishes bytes as a binary frame.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn publish_binary(
        &self,
        topic: &str,
        exclude: Option<&str>,
        bytes: Bytes,
    ) -> Result<usize, HubError> {
        Ok(self.publish_frame(topic, exclude, OutFrame::Binary(bytes)))
    }

    /// Queues an encoded frame to the local subscribers of `topic` except `exclude`.
    pub fn publish_frame(&self, topic: &str, exclude: Option<&str>, frame: OutFrame) -> usize {
        let topics = self.inner.topics.read();
        let Some(subscribers) = topics.get(topic) else {
            return 0;
        };
        let mut delivered = 0;
        for (id, conn) in subscribers {
            if exclude == Some(&**id) {
                continue;
            }
            // A full or closed subscriber is handled by its own policy (H8).
            if conn.push(frame.clone()).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// The number of local subscribers of `topic`.
    #[must_use]
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.topics.read().get(topic).map_or(0, HashMap::len)
    }

    /// Registers an open connection so it can subscribe and receive.
    pub fn register(&self, conn: Arc<Connection>) {
        self.inner
            .channels
            .write()
            .insert(conn.id_arc().clone(), conn);
    }

    /// Removes a connection and all its subscriptions (H5). Runners call this before onDisconnect.
    pub fn unregister(&self, conn: &Connection) {
        let topics = std::mem::take(&mut *conn.topics.lock());
        for topic in &topics {
            self.remove_subscriber(topic, conn.id());
        }
        self.inner.channels.write().remove(conn.id());
    }

    /// The open connection with this id, if any.
    #[must_use]
    pub fn channel(&self, channel_id: &str) -> Option<Arc<Connection>> {
        self.inner.channels.read().get(channel_id).cloned()
    }

    /// Every open connection of this process.
    #[must_use]
    pub fn channels(&self) -> Vec<Arc<Connection>> {
        self.inner.channels.read().values().cloned().collect()
    }

    /// The number of open connections.
    #[must_use]
    pub fn channel_count(&self) -> usize {
        self.inner.channels.read().len()
    }

    fn remove_subscriber(&self, topic: &str, channel_id: &str) {
        let mut topics = self.inner.topics.write();
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.remove(channel_id);
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    fn check_topic(&self, topic: &str) -> Result<(), HubError> {
        if topic.is_empty() || topic.len() > self.inner.limits.max_topic_bytes {
            Err(HubError::InvalidTopic)
        } else {
            Ok(())
        }
    }
}
