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
//!
//! # Fairness
//! The async `publish` to a large topic queues to [`FAN_OUT_STEP`] subscribers at a time and spends a unit of
//! Tokio's cooperative budget after each group, so a task publishing to thousands of subscribers in a loop lets
//! the other connections of its worker thread run in between. It works on a snapshot of the subscriber set
//! (one reference count), so it holds no lock while it yields, and subscribes meanwhile are not held up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use serde::Serialize;

use crate::channel::{ChannelState, Connection};
use crate::error::HubError;
use crate::frame::{encode_value, OutFrame};

/// Per-connection and per-topic bounds of the hub (semantics §11).
///
/// Set them through [`AppConfig::hub`](crate::AppConfig::hub), before taking the app's hub.
///
/// ```
/// use pikku_core::{App, HubLimits};
///
/// let limits = HubLimits { max_subscriptions_per_channel: 16, ..HubLimits::default() };
/// assert_eq!(limits.max_subscriptions_total, 1_000_000);
/// let app: App<()> = App::new(()).configure(|c| c.hub = limits);
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Subscriptions one connection may hold (default 1024).
    pub max_subscriptions_per_channel: usize,
    /// Longest topic in bytes (default 256).
    pub max_topic_bytes: usize,
    /// Subscriptions the whole hub may hold, over all connections and topics (default 1,000,000, about 100 MB
    /// of subscription entries). Without it, connections each within their own bound could together exhaust
    /// memory. A subscribe beyond it fails with [`HubError::TooManySubscriptions`].
    pub max_subscriptions_total: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            max_subscriptions_per_channel: 1024,
            max_topic_bytes: 256,
            max_subscriptions_total: 1_000_000,
        }
    }
}

/// Subscribers queued to between two spends of the cooperative budget in the async publish paths.
pub const FAN_OUT_STEP: usize = 64;

/// The subscribers of one topic. Shared, so a publication can walk a snapshot without holding the lock; a
/// change while a snapshot is out copies the map (copy on write).
type Subscribers = Arc<HashMap<Arc<str>, Arc<Connection>>>;

struct HubInner {
    /// Open connections of this process, by channel id.
    channels: RwLock<HashMap<Arc<str>, Arc<Connection>>>,
    topics: RwLock<HashMap<Arc<str>, Subscribers>>,
    max_subscriptions_per_channel: AtomicUsize,
    max_topic_bytes: AtomicUsize,
    max_subscriptions_total: AtomicUsize,
    /// Subscriptions held now; changed only under the `topics` write lock.
    subscriptions: AtomicUsize,
}

/// The in-process event hub. Cloning is cheap and every clone is the same hub.
///
/// Each [`App`](crate::App) owns one; handlers use it through [`Ctx::hub`](crate::Ctx::hub), other code through
/// [`App::hub`](crate::App::hub) or the server's `hub()`. Subscriptions are by channel id, so nothing needs to
/// hold a [`Channel`](crate::Channel); a connection's subscriptions end when it closes (H5).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let hub = pikku_core::EventHub::new(Default::default());
/// // No subscribers: publishing is a no-op that reaches nobody (H9).
/// assert_eq!(hub.publish("news", None, &serde_json::json!({"hi": 1})).await.unwrap(), 0);
/// # });
/// ```
///
/// In handlers, a chat room in three routes:
///
/// ```
/// use pikku_core::{Channel, ChannelError, ChannelRoute, Ctx, Params};
///
/// #[derive(serde::Deserialize)]
/// struct Room { room: String }
/// #[derive(serde::Deserialize)]
/// struct Say { room: String, text: String }
///
/// async fn join(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, input: Room) -> Result<(), ChannelError> {
///     Ok(ctx.hub().subscribe(&input.room, ch.channel_id()).await?)
/// }
/// async fn leave(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, input: Room) -> Result<bool, ChannelError> {
///     Ok(ctx.hub().unsubscribe(&input.room, ch.channel_id()).await?)
/// }
/// async fn say(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, input: Say) -> Result<(), ChannelError> {
///     let event = serde_json::json!({ "room": input.room, "text": input.text });
///     // Everyone in the room but the sender.
///     ctx.hub().publish(&input.room, Some(ch.channel_id()), &event).await?;
///     Ok(())
/// }
///
/// let chat = ChannelRoute::new("chat", "/chat")
///     .auth(false)
///     .route("action", "join", join)
///     .route("action", "leave", leave)
///     .route("action", "say", say);
/// # let _ = chat;
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
    /// An empty hub with `limits`, shared by no app. Apps create their own; make one yourself for tests or a
    /// custom runner.
    ///
    /// ```
    /// use pikku_core::{EventHub, HubLimits};
    ///
    /// let hub = EventHub::new(HubLimits::default());
    /// assert_eq!(hub.channel_count(), 0);
    /// ```
    #[must_use]
    pub fn new(limits: HubLimits) -> Self {
        Self {
            inner: Arc::new(HubInner {
                channels: RwLock::new(HashMap::new()),
                topics: RwLock::new(HashMap::new()),
                max_subscriptions_per_channel: AtomicUsize::new(
                    limits.max_subscriptions_per_channel,
                ),
                max_topic_bytes: AtomicUsize::new(limits.max_topic_bytes),
                max_subscriptions_total: AtomicUsize::new(limits.max_subscriptions_total),
                subscriptions: AtomicUsize::new(0),
            }),
        }
    }

    /// Subscribes `channel_id` to `topic`. Idempotent (H1): subscribing twice still delivers one copy per
    /// publication. The subscription lasts until [`unsubscribe`](Self::unsubscribe) or the connection closes.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku_core::channel::ConnectionLimits;
    /// # use pikku_core::{Connection, Params, SlowConsumerPolicy};
    /// # fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    /// #     let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// #     let conn = Arc::new(Connection::new(Arc::from(id), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// #     conn.mark_open();
    /// #     hub.register(conn.clone());
    /// #     conn
    /// # }
    /// use pikku_core::{EventHub, HubLimits};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// let _conn = open(&hub, "c1"); // an open connection, registered as a runner does
    /// hub.subscribe("news", "c1").await.unwrap();
    /// hub.subscribe("news", "c1").await.unwrap();
    /// assert_eq!(hub.subscriber_count("news"), 1);
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`HubError::ChannelNotOpen`] when the id is not an open channel of this process (H11),
    /// [`HubError::InvalidTopic`] for an empty or too long topic, [`HubError::TooManySubscriptions`] when the
    /// channel already holds the maximum number of subscriptions, or the hub its
    /// [`max_subscriptions_total`](HubLimits::max_subscriptions_total).
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
        if conn_topics.len()
            >= self
                .inner
                .max_subscriptions_per_channel
                .load(Ordering::Relaxed)
        {
            return Err(HubError::TooManySubscriptions);
        }
        let mut topics = self.inner.topics.write();
        let total = self.inner.subscriptions.load(Ordering::Relaxed);
        if total >= self.inner.max_subscriptions_total.load(Ordering::Relaxed) {
            return Err(HubError::TooManySubscriptions);
        }
        let key = match topics.get_key_value(topic) {
            Some((key, _)) => key.clone(),
            None => Arc::from(topic),
        };
        let subscribers = topics.entry(key.clone()).or_default();
        if Arc::make_mut(subscribers)
            .insert(conn.id_arc().clone(), conn.clone())
            .is_none()
        {
            self.inner.subscriptions.store(total + 1, Ordering::Relaxed);
        }
        // Most connections hold one topic: the first push allocates one slot rather than Vec's usual four.
        if conn_topics.capacity() == 0 {
            conn_topics.reserve_exact(1);
        }
        conn_topics.push(key);
        Ok(())
    }

    /// Unsubscribes `channel_id` from `topic`; true when a subscription was removed (H4). An unknown channel id
    /// or topic is not an error: the result is `false`.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku_core::channel::ConnectionLimits;
    /// # use pikku_core::{Connection, Params, SlowConsumerPolicy};
    /// # fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    /// #     let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// #     let conn = Arc::new(Connection::new(Arc::from(id), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// #     conn.mark_open();
    /// #     hub.register(conn.clone());
    /// #     conn
    /// # }
    /// use pikku_core::{EventHub, HubLimits};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// let _conn = open(&hub, "c1");
    /// hub.subscribe("news", "c1").await.unwrap();
    /// assert!(hub.unsubscribe("news", "c1").await.unwrap());
    /// assert!(!hub.unsubscribe("news", "c1").await.unwrap()); // nothing left to remove
    /// assert!(!hub.unsubscribe("news", "no-such-id").await.unwrap());
    /// # });
    /// ```
    ///
    /// # Errors
    /// None for the in-process hub; the `Result` leaves room for distributed backends.
    ///
    /// # Cancel safety
    /// The in-process hub completes without awaiting; dropping the future before it is polled does nothing.
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
    /// The value is encoded once, like [`Channel::send`](crate::Channel::send) does (a string goes out as raw
    /// text), and the same bytes are queued to every subscriber. A subscriber that refuses the frame (closed, or
    /// over its outbound bound) is handled by its own slow-consumer policy and is not counted; it never makes the
    /// publication fail (H8). Pass the publisher's channel id as `exclude` to skip it.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku_core::channel::ConnectionLimits;
    /// # use pikku_core::{Connection, Params, SlowConsumerPolicy};
    /// # fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    /// #     let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// #     let conn = Arc::new(Connection::new(Arc::from(id), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// #     conn.mark_open();
    /// #     hub.register(conn.clone());
    /// #     conn
    /// # }
    /// # fn drain(conn: &Connection) -> Vec<OutFrame> {
    /// #     let mut out = std::collections::VecDeque::new();
    /// #     let _ = conn.poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut out, true);
    /// #     out.into()
    /// # }
    /// use pikku_core::{EventHub, HubLimits, OutFrame};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// let (a, b) = (open(&hub, "a"), open(&hub, "b"));
    /// hub.subscribe("room", "a").await.unwrap();
    /// hub.subscribe("room", "b").await.unwrap();
    ///
    /// // `a` publishes to the room; everyone but `a` receives it.
    /// let delivered = hub.publish("room", Some("a"), &serde_json::json!({"text": "hi"})).await.unwrap();
    /// assert_eq!(delivered, 1);
    /// assert_eq!(drain(&b), [OutFrame::text(r#"{"text":"hi"}"#)]);
    /// assert!(drain(&a).is_empty());
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`HubError::Backend`] when the value does not serialize (nothing is sent) or a distributed backend fails.
    ///
    /// # Cancel safety
    /// For a topic of at most [`FAN_OUT_STEP`] subscribers, every local delivery is queued before the first await
    /// point. A larger topic is delivered in groups with a cooperative yield between them (see
    /// [Fairness](self#fairness)); dropping the future part-way leaves the remaining subscribers without the
    /// event.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        exclude: Option<&str>,
        value: &T,
    ) -> Result<usize, HubError> {
        let frame = encode_value(value).map_err(|e| HubError::Backend(e.to_string()))?;
        Ok(self.publish_fair(topic, exclude, frame).await)
    }

    /// Publishes bytes as a binary frame to every subscriber of `topic` except `exclude`; returns the number of
    /// local deliveries, as [`publish`](Self::publish) does. The bytes are shared, not copied, per subscriber.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use pikku_core::{Channel, ChannelError, Ctx, Params};
    ///
    /// async fn share_image(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, image: Bytes) -> Result<(), ChannelError> {
    ///     ctx.hub().publish_binary("gallery", Some(ch.channel_id()), image).await?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// None for the in-process hub (there is nothing to serialize); the `Result` leaves room for distributed
    /// backends.
    ///
    /// # Cancel safety
    /// As for [`publish`](Self::publish).
    pub async fn publish_binary(
        &self,
        topic: &str,
        exclude: Option<&str>,
        bytes: Bytes,
    ) -> Result<usize, HubError> {
        Ok(self
            .publish_fair(topic, exclude, OutFrame::Binary(bytes))
            .await)
    }

    /// The async fan-out: small topics as [`publish_frame`](Self::publish_frame) does, large ones from a
    /// snapshot in groups of [`FAN_OUT_STEP`], spending cooperative budget between groups.
    async fn publish_fair(&self, topic: &str, exclude: Option<&str>, frame: OutFrame) -> usize {
        let subscribers = {
            let topics = self.inner.topics.read();
            match topics.get(topic) {
                None => return 0,
                Some(subscribers) if subscribers.len() <= FAN_OUT_STEP => {
                    return deliver(subscribers.iter(), exclude, &frame);
                }
                Some(subscribers) => subscribers.clone(),
            }
        };
        let mut delivered = 0;
        let mut rest = subscribers.iter();
        loop {
            delivered += deliver(rest.by_ref().take(FAN_OUT_STEP), exclude, &frame);
            if rest.len() == 0 {
                return delivered;
            }
            tokio::task::consume_budget().await;
        }
    }

    /// Queues an encoded frame to the local subscribers of `topic` except `exclude`; returns the number of
    /// deliveries. Not async: use it from synchronous code, or to send one pre-encoded frame to several topics.
    ///
    /// ```
    /// use pikku_core::{encode_value, EventHub, HubLimits};
    ///
    /// let hub = EventHub::new(HubLimits::default());
    /// let frame = encode_value(&serde_json::json!({"alert": "maintenance at 22:00"})).unwrap();
    /// for topic in ["room:1", "room:2"] {
    ///     hub.publish_frame(topic, None, frame.clone()); // encoded once, shared by every topic
    /// }
    /// ```
    pub fn publish_frame(&self, topic: &str, exclude: Option<&str>, frame: OutFrame) -> usize {
        let topics = self.inner.topics.read();
        match topics.get(topic) {
            Some(subscribers) => deliver(subscribers.iter(), exclude, &frame),
            None => 0,
        }
    }

    /// The number of local subscribers of `topic` (0 for a topic nobody subscribed to); see
    /// [`subscribe`](Self::subscribe) for an example.
    #[must_use]
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.topics.read().get(topic).map_or(0, |s| s.len())
    }

    /// Registers an open connection so it can subscribe and receive. Runners call it once the 101 response is
    /// written ([`LiveChannel::open`](crate::runtime::LiveChannel::open) does); a connection registered again
    /// under the same id replaces the first.
    ///
    /// ```
    /// use std::{sync::Arc, time::Instant};
    /// use pikku_core::channel::ConnectionLimits;
    /// use pikku_core::{Connection, EventHub, HubLimits, Params, SlowConsumerPolicy};
    ///
    /// let hub = EventHub::new(HubLimits::default());
    /// let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// let conn = Arc::new(Connection::new(Arc::from("c1"), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// conn.mark_open();
    /// hub.register(conn.clone());
    /// assert_eq!(hub.channel_count(), 1);
    /// assert!(hub.channel("c1").is_some());
    ///
    /// hub.unregister(&conn);
    /// assert!(hub.channel("c1").is_none());
    /// ```
    pub fn register(&self, conn: Arc<Connection>) {
        self.inner
            .channels
            .write()
            .insert(conn.id_arc().clone(), conn);
    }

    /// Removes a connection and all its subscriptions (H5). Runners call this before onDisconnect
    /// ([`LiveChannel::begin_disconnect`](crate::runtime::LiveChannel::begin_disconnect) does). See
    /// [`register`](Self::register) for an example.
    pub fn unregister(&self, conn: &Connection) {
        let topics = std::mem::take(&mut *conn.topics.lock());
        for topic in &topics {
            self.remove_subscriber(topic, conn.id());
        }
        self.inner.channels.write().remove(conn.id());
    }

    /// The registered connection with this id, if any (it may already be closing). Use it to reach one client
    /// from outside its handlers, by the id you stored.
    ///
    /// ```
    /// use pikku_core::{EventHub, OutFrame};
    ///
    /// // Sends a direct message to one client, if it is still connected.
    /// fn notify(hub: &EventHub, channel_id: &str, text: &'static str) -> bool {
    ///     hub.channel(channel_id).is_some_and(|conn| conn.push(OutFrame::text(text)).is_ok())
    /// }
    /// ```
    #[must_use]
    pub fn channel(&self, channel_id: &str) -> Option<Arc<Connection>> {
        self.inner.channels.read().get(channel_id).cloned()
    }

    /// Every registered connection of this process, in no particular order (a snapshot). The server's heartbeat
    /// sweep and shutdown walk this list.
    ///
    /// ```
    /// use pikku_core::{EventHub, OutFrame};
    ///
    /// // Broadcasts to everyone, subscribed or not.
    /// fn broadcast(hub: &EventHub, text: &'static str) {
    ///     for conn in hub.channels() {
    ///         let _ = conn.push(OutFrame::text(text));
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn channels(&self) -> Vec<Arc<Connection>> {
        self.inner.channels.read().values().cloned().collect()
    }

    /// The number of registered connections (see [`register`](Self::register) for an example).
    #[must_use]
    pub fn channel_count(&self) -> usize {
        self.inner.channels.read().len()
    }

    fn remove_subscriber(&self, topic: &str, channel_id: &str) {
        let mut topics = self.inner.topics.write();
        if let Some(subscribers) = topics.get_mut(topic) {
            if subscribers.contains_key(channel_id) {
                Arc::make_mut(subscribers).remove(channel_id);
                let total = self.inner.subscriptions.load(Ordering::Relaxed);
                self.inner
                    .subscriptions
                    .store(total.saturating_sub(1), Ordering::Relaxed);
            }
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// Applies new limits; existing subscriptions are kept even where they exceed them.
    pub(crate) fn set_limits(&self, limits: HubLimits) {
        self.inner
            .max_subscriptions_per_channel
            .store(limits.max_subscriptions_per_channel, Ordering::Relaxed);
        self.inner
            .max_topic_bytes
            .store(limits.max_topic_bytes, Ordering::Relaxed);
        self.inner
            .max_subscriptions_total
            .store(limits.max_subscriptions_total, Ordering::Relaxed);
    }

    fn check_topic(&self, topic: &str) -> Result<(), HubError> {
        if topic.is_empty() || topic.len() > self.inner.max_topic_bytes.load(Ordering::Relaxed) {
            Err(HubError::InvalidTopic)
        } else {
            Ok(())
        }
    }
}

/// Queues `frame` to each subscriber but `exclude`; returns how many took it. A full or closed subscriber is
/// handled by its own policy (H8).
fn deliver<'a>(
    subscribers: impl Iterator<Item = (&'a Arc<str>, &'a Arc<Connection>)>,
    exclude: Option<&str>,
    frame: &OutFrame,
) -> usize {
    let mut delivered = 0;
    for (id, conn) in subscribers {
        if exclude == Some(&**id) {
            continue;
        }
        if conn.push(frame.clone()).is_ok() {
            delivered += 1;
        }
    }
    delivered
}
