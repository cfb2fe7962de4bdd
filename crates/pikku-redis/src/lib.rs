//! Redis for the pikku event hub: several server processes share topics through Redis pub/sub.
//!
//! Install a [`RedisHub`] as the app's hub driver and every `publish` reaches subscribers on every node:
//!
//! ```no_run
//! use pikku::App;
//! use pikku_redis::RedisHub;
//!
//! # fn main() -> Result<(), pikku_redis::RedisHubError> {
//! let app: App<()> = App::new(()).hub_driver(RedisHub::from_url("redis://127.0.0.1:6379")?);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! The [`store`] module keeps the records of stateless (serverless) runners on Redis: channel records,
//! subscriptions and sessions ([`store::RedisStores`]).
//!
//! # What it does on Redis
//! - Each node opens one RESP3 connection, which carries commands and pub/sub messages alike. A node
//!   subscribes to a topic once, when its first local subscriber arrives, and unsubscribes when the last one
//!   leaves, whatever the number of connections.
//! - A topic `t` is the Redis channel `pikku:t` (the prefix is set with [`RedisHub::channel_prefix`]). Redis
//!   channel names are binary-safe, so topics need no escaping.
//! - On a standalone server (`redis://`, `rediss://`) publications use `PUBLISH` and `SUBSCRIBE`. On a Redis
//!   Cluster (`redis+cluster://host1:port,host2:port`) they use sharded pub/sub, `SPUBLISH` and `SSUBSCRIBE`, so
//!   a topic's traffic stays on the shard that owns its channel's slot instead of crossing every node of the
//!   cluster.
//! - Messages carry the hub's binary envelope: the publishing node, the topic, the excluded channel id, the
//!   payload kind and the bytes.
//!
//! # When Redis goes away
//! The node reconnects by itself (backoff from 50 ms up to 500 ms, with jitter) and subscribes again to every
//! topic it still needs, with no restart. During the outage `publish` fails with an error right away, while
//! local subscribers still get the publication; the hub logs the outage once, and its
//! [`status`](pikku_core::EventHub::status) says since when the link is down and why.
//!
//! # Delivery
//! At most once between nodes: a publication made while the link is down, or pushed while a node is
//! reconnecting, is not delivered to that node later, and a node whose inbound queue is full (see
//! [`RedisHub::inbound_queue`]) drops what does not fit. A client that must not miss anything re-reads the state
//! it shows when its connection or the server's link comes back, or carries sequence numbers in its messages.
//! Within one topic, the publications of one node reach every other node in the order they were made.

mod error;
mod inbound;
mod link;
pub mod store;
mod target;

use std::fmt;
use std::sync::Arc;

use pikku_core::hub::{envelope, HubDriver, RemoteEvent, RemoteSink};

pub use error::RedisHubError;

use inbound::Inbound;
use link::Link;
use target::Target;

/// Messages from other nodes that may wait for this node's hub before new ones are dropped.
const DEFAULT_INBOUND_QUEUE: usize = 8192;

/// The Redis driver for the event hub: one connection to a server or a cluster per node.
///
/// Built from a URL with [`from_url`](Self::from_url), which only parses it; the connection is made when the
/// hub starts.
///
/// ```
/// use pikku_redis::RedisHub;
///
/// let standalone = RedisHub::from_url("redis://127.0.0.1:6379/0").unwrap();
/// let cluster = RedisHub::from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap();
/// assert!(!standalone.is_cluster());
/// assert!(cluster.is_cluster());
/// ```
pub struct RedisHub {
    link: Arc<Link>,
    cluster: bool,
    prefix: Vec<u8>,
    inbound_queue: usize,
}

impl fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHub")
            .field("cluster", &self.cluster)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("inbound_queue", &self.inbound_queue)
            .finish_non_exhaustive()
    }
}

impl RedisHub {
    /// A driver for the server or cluster that `url` names:
    /// - `redis://[user:password@]host[:port][/db]` and `rediss://…` (TLS): one server;
    /// - `redis+cluster://[user:password@]host:port[,host:port…]` and `rediss+cluster://…`: a Redis Cluster,
    ///   reached through any of the listed nodes.
    ///
    /// ```
    /// use pikku_redis::RedisHub;
    ///
    /// assert!(RedisHub::from_url("redis://127.0.0.1").is_ok());
    /// assert!(RedisHub::from_url("nats://127.0.0.1").is_err());
    /// ```
    ///
    /// # Errors
    /// [`RedisHubError::InvalidUrl`] when the URL names no Redis deployment.
    pub fn from_url(url: &str) -> Result<Self, RedisHubError> {
        let target = Target::parse(url)?;
        Ok(Self {
            cluster: matches!(target, Target::Cluster(_)),
            link: Arc::new(Link::new(target)),
            prefix: b"pikku:".to_vec(),
            inbound_queue: DEFAULT_INBOUND_QUEUE,
        })
    }

    /// Prefixes every Redis channel with `prefix` instead of `pikku:`, for apps that share one Redis but not
    /// their topics.
    ///
    /// ```
    /// use pikku_redis::RedisHub;
    ///
    /// let hub = RedisHub::from_url("redis://127.0.0.1").unwrap().channel_prefix("chat:");
    /// # let _ = hub;
    /// ```
    #[must_use]
    pub fn channel_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.as_bytes().to_vec();
        self
    }

    /// How many messages from other nodes may wait for this node's hub (8,192 by default). Redis pushes them
    /// as fast as they come and the connection's reader cannot wait, so what does not fit is dropped and
    /// logged: size it for the bursts you expect, as memory allows.
    ///
    /// ```
    /// use pikku_redis::RedisHub;
    ///
    /// let hub = RedisHub::from_url("redis://127.0.0.1").unwrap().inbound_queue(65_536);
    /// # let _ = hub;
    /// ```
    #[must_use]
    pub fn inbound_queue(mut self, messages: usize) -> Self {
        self.inbound_queue = messages;
        self
    }

    /// Whether the URL named a Redis Cluster (sharded pub/sub).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The Redis channel of `topic`.
    fn channel(&self, topic: &str) -> Vec<u8> {
        let mut channel = Vec::with_capacity(self.prefix.len() + topic.len());
        channel.extend_from_slice(&self.prefix);
        channel.extend_from_slice(topic.as_bytes());
        channel
    }
}

impl HubDriver for RedisHub {
    type Error = RedisHubError;

    fn name(&self) -> &'static str {
        "redis"
    }

    async fn start(&self, sink: RemoteSink) -> Result<(), RedisHubError> {
        let inbound = Inbound::start(self.inbound_queue, sink.clone());
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(self.link.clone().run(sink, inbound, first_tx));
        // Publishing may begin once the first attempt is over: connected, or known to be down (then the link
        // keeps trying and publications fail until it is back).
        let _ = first_rx.await;
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<(), RedisHubError> {
        self.link.subscribe(self.channel(topic)).await
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), RedisHubError> {
        self.link.unsubscribe(self.channel(topic)).await
    }

    async fn publish(&self, event: &RemoteEvent) -> Result<(), RedisHubError> {
        self.link
            .publish(self.channel(&event.topic), envelope::encode(event))
            .await
    }
}
