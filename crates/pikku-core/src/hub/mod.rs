//! The event hub: subscribe channels to topics and publish to every subscriber but an excluded one.
//!
//! The hub is a value inside the [`App`](crate::App): handlers reach it through [`Ctx::hub`](crate::Ctx::hub),
//! and code outside any connection (HTTP handlers, jobs) through [`App::hub`](crate::App::hub).
//!
//! # Encoding
//! A published value is encoded once (a string as its raw text, anything else as JSON) and the same bytes are
//! queued to every local subscriber, so a publication to 10,000 sockets costs one serialization.
//!
//! # Ordering
//! Local deliveries are queued before `publish` returns, so a handler's own subscribed channel receives an event
//! before that handler's reply. Events from one publisher to one subscriber arrive in publish order. A slow
//! subscriber is handled by its own slow-consumer policy and never makes the publisher fail.
//!
//! # Fairness
//! The async `publish` to a large topic queues to [`FAN_OUT_STEP`] subscribers at a time and spends a unit of
//! Tokio's cooperative budget after each group, so a task publishing to thousands of subscribers in a loop lets
//! the other connections of its worker thread run in between. It works on a snapshot of the subscriber set
//! (one reference count), so it holds no lock while it yields, and subscribes meanwhile are not held up.
//!
//! # Several processes
//! With a [`HubDriver`] installed ([`App::hub_driver`](crate::App::hub_driver)), hubs in several processes
//! share their topics through a broker. Each node keeps its own subscriber map and holds one broker
//! subscription per topic that has local subscribers, never one per connection. A publication is delivered
//! locally first, then handed to the broker once; the other nodes deliver it to their own subscribers, applying
//! the same exclude id, and a node ignores its own publications when the broker echoes them. Delivery between
//! nodes is at most once: a client that must not miss events after a reconnect or a broker outage should fetch
//! the state it cares about again (for example over HTTP) once it is back.

pub mod driver;
pub mod envelope;
mod local_bus;
mod remote;
mod stored;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use serde::Serialize;

use crate::channel::{ChannelState, Connection, Registry};
use crate::error::{BackendError, HubError};
use crate::frame::{frame_from_json, OutFrame};
use crate::telemetry::hub::HubMetrics;

pub use driver::{HubDriver, NodeId, PayloadKind, RemoteEvent, RemoteSink};
pub use local_bus::{LocalBus, LocalBusError, LocalBusNode};
pub use remote::{HubStatus, LinkState};

use driver::ErasedDriver;
use remote::Remote;
pub(crate) use stored::StoredHub;

/// Per-connection and per-topic bounds of the hub.
///
/// Set them through [`AppConfig::hub`](crate::AppConfig::hub), before taking the app's hub.
///
/// ```
/// use pikku::App;
/// use pikku::core::HubLimits;
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

pub(crate) struct HubInner {
    /// This hub's id among the nodes that share a broker.
    node: NodeId,
    /// Open connections of this process, where channel ids are looked up.
    registry: Registry,
    topics: RwLock<HashMap<Arc<str>, Subscribers>>,
    max_subscriptions_per_channel: AtomicUsize,
    max_topic_bytes: AtomicUsize,
    max_subscriptions_total: AtomicUsize,
    /// Subscriptions held now; changed only under the `topics` write lock.
    subscriptions: AtomicUsize,
    /// The broker link, once a driver is installed.
    remote: OnceLock<Remote>,
    /// Set when the app is built with metrics on.
    metrics: OnceLock<HubMetrics>,
    /// The stores of a stateless runner, once it installed them: subscriptions and publications go there.
    stored: OnceLock<StoredHub>,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        if let Some(remote) = self.remote.get() {
            remote.close();
        }
    }
}

impl HubInner {
    /// Whether `topic` has local subscribers.
    fn has_local(&self, topic: &str) -> bool {
        self.topics.read().contains_key(topic)
    }

    /// The topics with local subscribers.
    fn local_topics(&self) -> Vec<Arc<str>> {
        self.topics.read().keys().cloned().collect()
    }

    /// Sets the broker gauge from the link's state.
    fn report_link(&self) {
        if let (Some(metrics), Some(remote)) = (self.metrics.get(), self.remote.get()) {
            let up = matches!(remote.status(self.node).link, LinkState::Connected { .. });
            metrics.broker_connected.set(if up { 1.0 } else { 0.0 });
        }
    }

    /// Tells the reconciler that `topic` appeared or disappeared locally.
    fn topic_changed(&self, topic: &Arc<str>) {
        if let Some(remote) = self.remote.get() {
            remote.topic_changed(topic);
        }
    }
}

/// The in-process event hub. Cloning is cheap and every clone is the same hub.
///
/// Each [`App`](crate::App) owns one; handlers use it through [`Ctx::hub`](crate::Ctx::hub), other code through
/// [`App::hub`](crate::App::hub) or the server's `hub()`. Subscriptions are by channel id, so nothing needs to
/// hold a [`Channel`](crate::Channel); a connection's subscriptions end when it closes, before its
/// disconnection handler runs.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let hub = pikku::EventHub::new(Default::default());
/// // No subscribers: publishing is a no-op that reaches nobody.
/// assert_eq!(hub.publish("news", None, &serde_json::json!({"hi": 1})).await.unwrap(), 0);
/// # });
/// ```
///
/// In handlers, a chat room in three routes:
///
/// ```
/// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params};
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
            .field("node", &self.inner.node)
            .field("channels", &self.inner.registry.len())
            .field("topics", &self.inner.topics.read().len())
            .field("backend", &self.inner.remote.get().map(|r| r.driver.name()))
            .finish()
    }
}

impl EventHub {
    /// An empty hub with `limits` and a registry of its own, shared by no app. Apps create their own; make one
    /// yourself for tests or a custom runner.
    ///
    /// ```
    /// use pikku::EventHub;
    /// use pikku::core::HubLimits;
    ///
    /// let hub = EventHub::new(HubLimits::default());
    /// assert!(hub.registry().is_empty());
    /// ```
    #[must_use]
    pub fn new(limits: HubLimits) -> Self {
        Self::with_registry(limits, Registry::new())
    }

    /// An empty hub that looks channel ids up in `registry`, the open connections of the runner that serves it.
    ///
    /// ```
    /// use pikku::core::channel::Registry;
    /// use pikku::EventHub;
    /// use pikku::core::HubLimits;
    ///
    /// let registry = Registry::new();
    /// let hub = EventHub::with_registry(HubLimits::default(), registry.clone());
    /// assert_eq!(hub.registry().len(), registry.len());
    /// ```
    #[must_use]
    pub fn with_registry(limits: HubLimits, registry: Registry) -> Self {
        Self {
            inner: Arc::new(HubInner {
                node: NodeId::random(),
                registry,
                topics: RwLock::new(HashMap::new()),
                max_subscriptions_per_channel: AtomicUsize::new(
                    limits.max_subscriptions_per_channel,
                ),
                max_topic_bytes: AtomicUsize::new(limits.max_topic_bytes),
                max_subscriptions_total: AtomicUsize::new(limits.max_subscriptions_total),
                subscriptions: AtomicUsize::new(0),
                remote: OnceLock::new(),
                metrics: OnceLock::new(),
                stored: OnceLock::new(),
            }),
        }
    }

    /// The open connections this hub looks channel ids up in.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// This hub's id among the nodes that share a broker.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// Installs the driver that links this hub to the other nodes. Done once, by
    /// [`App::hub_driver`](crate::App::hub_driver).
    ///
    /// # Panics
    /// When a driver is already installed.
    #[track_caller]
    pub(crate) fn set_driver(&self, driver: Arc<dyn ErasedDriver>) {
        let name = driver.name();
        if self.inner.remote.set(Remote::new(driver)).is_err() {
            panic!("the event hub already has a driver; cannot install '{name}' too");
        }
    }

    /// Moves subscriptions and publications to a stateless runner's stores. Done once, by the runner; `false`
    /// when stores are installed already.
    pub(crate) fn set_stored(&self, stored: StoredHub) -> bool {
        self.inner.stored.set(stored).is_ok()
    }

    /// Resolves the hub's metric handles, labelled with the driver installed now (`memory` without one). Called
    /// once, when the app is built with metrics on; later calls change nothing.
    pub(crate) fn init_metrics(&self) {
        let backend = self.inner.remote.get().map(|remote| remote.driver.name());
        if self.inner.metrics.set(HubMetrics::new(backend)).is_ok() {
            self.inner.report_link();
        }
    }

    /// Starts the installed driver, if it is not running yet, and waits until it is ready to publish. Servers call
    /// it before they accept connections; otherwise the first subscribe or publish starts it. Must be called on a
    /// Tokio runtime. Without a driver it returns at once.
    ///
    /// ```
    /// use pikku::hub::LocalBus;
    /// use pikku::App;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app: App<()> = App::new(()).hub_driver(LocalBus::new().node());
    /// app.hub().start().await.unwrap();
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`HubError::Backend`] when the driver cannot start (a broker that is merely down is not an error: the
    /// driver keeps reconnecting, and [`status`](Self::status) shows it).
    pub async fn start(&self) -> Result<(), HubError> {
        match self.inner.remote.get() {
            None => Ok(()),
            Some(remote) => {
                remote.ensure_started(&self.inner);
                remote.started().await.map_err(HubError::Backend)
            }
        }
    }

    /// The state of the broker link; `None` without a driver. See [`LinkState`] for an example.
    #[must_use]
    pub fn status(&self) -> Option<HubStatus> {
        self.inner
            .remote
            .get()
            .map(|remote| remote.status(self.inner.node))
    }

    /// Subscribes `channel_id` to `topic`. Idempotent: subscribing twice still delivers one copy per
    /// publication. The subscription lasts until [`unsubscribe`](Self::unsubscribe) or the connection closes.
    ///
    /// With a driver installed, the first local subscriber of a topic waits until the broker confirms the topic
    /// (at most 5 s), so publications made anywhere after `subscribe` returns reach it. While the broker is down
    /// it does not wait: the local subscription holds, and the topic is subscribed again once the link is back.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    /// #     let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// #     let conn = Arc::new(Connection::new(Arc::from(id), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// #     conn.mark_open();
    /// #     hub.registry().insert(conn.clone());
    /// #     conn
    /// # }
    /// use pikku::EventHub;
    /// use pikku::core::HubLimits;
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
    /// [`HubError::ChannelNotOpen`] when the id is not an open channel of this process (nothing is recorded),
    /// [`HubError::InvalidTopic`] for an empty or too long topic, [`HubError::TooManySubscriptions`] when the
    /// channel already holds the maximum number of subscriptions, or the hub its
    /// [`max_subscriptions_total`](HubLimits::max_subscriptions_total).
    ///
    /// # Cancel safety
    /// The subscription is recorded at the first poll, before any await; dropping the future afterwards only
    /// stops waiting for the broker's confirmation.
    pub async fn subscribe(&self, topic: &str, channel_id: &str) -> Result<(), HubError> {
        if let Some(stored) = self.inner.stored.get() {
            self.check_topic(topic)?;
            return stored.subscribe(topic, channel_id).await;
        }
        let Some(created) = self.subscribe_local(topic, channel_id)? else {
            return Ok(());
        };
        if let Some(remote) = self.inner.remote.get() {
            remote.topic_changed(&created);
            remote.ensure_started(&self.inner);
            remote.confirmed(&created).await;
        }
        Ok(())
    }

    /// Records the subscription; the topic's key when this made the topic appear locally.
    fn subscribe_local(&self, topic: &str, channel_id: &str) -> Result<Option<Arc<str>>, HubError> {
        self.check_topic(topic)?;
        let conn = self
            .inner
            .registry
            .get(channel_id)
            .filter(|c| c.state() != ChannelState::Closed)
            .ok_or_else(|| HubError::ChannelNotOpen(channel_id.to_owned()))?;
        let mut conn_topics = conn.topics.lock();
        if conn_topics.iter().any(|t| &**t == topic) {
            return Ok(None);
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
        let (key, created) = match topics.get_key_value(topic) {
            Some((key, _)) => (key.clone(), false),
            None => (Arc::from(topic), true),
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
        conn_topics.push(key.clone());
        Ok(created.then_some(key))
    }

    /// Unsubscribes `channel_id` from `topic`; true when a subscription was removed, after which nothing more
    /// is delivered to it. An unknown channel id or topic is not an error: the result is `false`.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    /// #     let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// #     let conn = Arc::new(Connection::new(Arc::from(id), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// #     conn.mark_open();
    /// #     hub.registry().insert(conn.clone());
    /// #     conn
    /// # }
    /// use pikku::EventHub;
    /// use pikku::core::HubLimits;
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
    /// None today: the broker is told later, by the hub's own task. The `Result` leaves room for backends that
    /// must refuse.
    ///
    /// # Cancel safety
    /// Completes without awaiting; dropping the future before it is polled does nothing.
    pub async fn unsubscribe(&self, topic: &str, channel_id: &str) -> Result<bool, HubError> {
        if let Some(stored) = self.inner.stored.get() {
            return stored.unsubscribe(topic, channel_id).await;
        }
        let Some(conn) = self.inner.registry.get(channel_id) else {
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
    /// publication fail. Pass the publisher's channel id as `exclude` to skip it, here and on every other node.
    ///
    /// With a driver installed, the local deliveries are queued first and the event then goes to the broker
    /// once; the count is still the local one.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    /// #     let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// #     let conn = Arc::new(Connection::new(Arc::from(id), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// #     conn.mark_open();
    /// #     hub.registry().insert(conn.clone());
    /// #     conn
    /// # }
    /// # fn drain(conn: &Connection) -> Vec<OutFrame> {
    /// #     let mut out = std::collections::VecDeque::new();
    /// #     let _ = conn.poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut out, true);
    /// #     out.into()
    /// # }
    /// use pikku::EventHub;
    /// use pikku::core::{HubLimits, OutFrame};
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
    /// [`HubError::Serialize`] when the value does not serialize (nothing is sent); [`HubError::Backend`] when
    /// the broker did not take the event (local subscribers have it already; other nodes do not).
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
        let (frame, kind) = encode_value_with_kind(value).map_err(HubError::Serialize)?;
        self.publish_everywhere(topic, exclude, frame, kind).await
    }

    /// Publishes bytes as a binary frame to every subscriber of `topic` except `exclude`; returns the number of
    /// local deliveries, as [`publish`](Self::publish) does. The bytes are shared, not copied, per subscriber.
    ///
    /// ```
    /// use pikku::Bytes;
    /// use pikku::{Channel, ChannelError, Ctx, Params};
    ///
    /// async fn share_image(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, image: Bytes) -> Result<(), ChannelError> {
    ///     ctx.hub().publish_binary("gallery", Some(ch.channel_id()), image).await?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// [`HubError::Backend`] when the broker did not take the event, as for [`publish`](Self::publish).
    ///
    /// # Cancel safety
    /// As for [`publish`](Self::publish).
    pub async fn publish_binary(
        &self,
        topic: &str,
        exclude: Option<&str>,
        bytes: Bytes,
    ) -> Result<usize, HubError> {
        self.publish_everywhere(topic, exclude, OutFrame::Binary(bytes), PayloadKind::Binary)
            .await
    }

    /// Publishes an already encoded frame, locally and through the driver, as [`publish`](Self::publish) does.
    /// Use it to send one pre-encoded frame to several topics.
    ///
    /// ```
    /// use pikku::EventHub;
    /// use pikku::core::{encode_value, HubLimits};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// let frame = encode_value(&serde_json::json!({"alert": "maintenance at 22:00"})).unwrap();
    /// for topic in ["room:1", "room:2"] {
    ///     hub.publish_encoded(topic, None, frame.clone()).await.unwrap(); // encoded once, shared by every topic
    /// }
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`HubError::Backend`] as for [`publish`](Self::publish).
    ///
    /// # Cancel safety
    /// As for [`publish`](Self::publish).
    pub async fn publish_encoded(
        &self,
        topic: &str,
        exclude: Option<&str>,
        frame: OutFrame,
    ) -> Result<usize, HubError> {
        let kind = match frame {
            OutFrame::Binary(_) => PayloadKind::Binary,
            _ => PayloadKind::Text,
        };
        self.publish_everywhere(topic, exclude, frame, kind).await
    }

    /// Local deliveries first, then the broker.
    async fn publish_everywhere(
        &self,
        topic: &str,
        exclude: Option<&str>,
        frame: OutFrame,
        kind: PayloadKind,
    ) -> Result<usize, HubError> {
        if let Some(stored) = self.inner.stored.get() {
            return stored
                .publish(&self.inner.registry, topic, exclude, &frame)
                .await;
        }
        let delivered = fan_out(&self.inner, topic, exclude, &frame).await;
        let metrics = self.inner.metrics.get();
        if let Some(metrics) = metrics {
            metrics.publishes.increment(1);
            metrics.local_deliveries.increment(delivered as u64);
        }
        let Some(remote) = self.inner.remote.get() else {
            return Ok(delivered);
        };
        let payload = match frame {
            OutFrame::Text(bytes) | OutFrame::Binary(bytes) => bytes,
            OutFrame::Ping => return Ok(delivered),
        };
        remote.ensure_started(&self.inner);
        remote.started().await.map_err(HubError::Backend)?;
        let event = RemoteEvent::new(self.inner.node, topic, exclude, kind, payload);
        let published = remote.driver.publish(&event).await;
        if let (Err(_), Some(metrics)) = (&published, metrics) {
            metrics.publish_errors.increment(1);
        }
        published.map_err(HubError::Backend)?;
        Ok(delivered)
    }

    /// Queues an encoded frame to the local subscribers of `topic` except `exclude`; returns the number of
    /// deliveries. Not async, for synchronous code; it reaches this process only, even with a driver installed
    /// (use [`publish_encoded`](Self::publish_encoded) to reach every node).
    ///
    /// ```
    /// use pikku::EventHub;
    /// use pikku::core::{encode_value, HubLimits};
    ///
    /// let hub = EventHub::new(HubLimits::default());
    /// let frame = encode_value(&serde_json::json!({"alert": "maintenance at 22:00"})).unwrap();
    /// assert_eq!(hub.publish_frame("room:1", None, frame), 0); // nobody subscribed here
    /// ```
    pub fn publish_frame(&self, topic: &str, exclude: Option<&str>, frame: OutFrame) -> usize {
        let delivered = {
            let topics = self.inner.topics.read();
            match topics.get(topic) {
                Some(subscribers) => deliver(subscribers.iter(), exclude, &frame),
                None => 0,
            }
        };
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.publishes.increment(1);
            metrics.local_deliveries.increment(delivered as u64);
        }
        delivered
    }

    /// The number of subscribers of `topic` wherever they are kept: this process's for the in-process hub (as
    /// [`subscriber_count`](Self::subscriber_count)), every connection's in the subscription store when the app is
    /// served statelessly. Use it in handlers that must run both ways.
    ///
    /// ```
    /// use pikku::{EventHub, HubError};
    /// use pikku::core::HubLimits;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// assert_eq!(hub.count_subscribers("room:1").await?, 0);
    /// # Ok::<(), HubError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Served statelessly, the store failed ([`HubError::Backend`]).
    pub async fn count_subscribers(&self, topic: &str) -> Result<usize, HubError> {
        match self.inner.stored.get() {
            Some(stored) => stored.count(topic).await,
            None => Ok(self.subscriber_count(topic)),
        }
    }

    /// The number of local subscribers of `topic` (0 for a topic nobody subscribed to); see
    /// [`subscribe`](Self::subscribe) for an example. Served statelessly the hub holds no local subscribers: use
    /// [`count_subscribers`](Self::count_subscribers).
    #[must_use]
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.topics.read().get(topic).map_or(0, |s| s.len())
    }

    /// The number of topics with local subscribers.
    #[must_use]
    pub fn topic_count(&self) -> usize {
        self.inner.topics.read().len()
    }

    /// Drops every subscription of `conn`. Runners call it when the connection closes, before its disconnection
    /// handler runs ([`LiveChannel::begin_disconnect`](crate::runtime::LiveChannel::begin_disconnect) does), so
    /// an `unsubscribe` there returns `false`. Synchronous and cheap: the broker hears of topics that lost their
    /// last subscriber later, from the hub's own task.
    ///
    /// ```
    /// use std::{sync::Arc, time::Instant};
    /// use pikku::core::channel::ConnectionLimits;
    /// use pikku::{EventHub, Params, SlowConsumerPolicy};
    /// use pikku::core::{Connection, HubLimits};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// let conn = Arc::new(Connection::new(Arc::from("c1"), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
    /// conn.mark_open();
    /// hub.registry().insert(conn.clone());
    /// hub.subscribe("news", "c1").await.unwrap();
    ///
    /// hub.release(&conn);
    /// assert_eq!(hub.subscriber_count("news"), 0);
    /// # });
    /// ```
    pub fn release(&self, conn: &Connection) {
        let topics = std::mem::take(&mut *conn.topics.lock());
        for topic in &topics {
            self.remove_subscriber(topic, conn.id());
        }
    }

    /// The open connection of this process with this id, if any (it may already be closing). Use it to reach one
    /// client from outside its handlers, by the id you stored.
    ///
    /// ```
    /// use pikku::EventHub;
    /// use pikku::core::OutFrame;
    ///
    /// // Sends a direct message to one client, if it is connected to this process.
    /// fn notify(hub: &EventHub, channel_id: &str, text: &'static str) -> bool {
    ///     hub.channel(channel_id).is_some_and(|conn| conn.push(OutFrame::text(text)).is_ok())
    /// }
    /// ```
    #[must_use]
    pub fn channel(&self, channel_id: &str) -> Option<Arc<Connection>> {
        self.inner.registry.get(channel_id)
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
                if let Some((key, _)) = topics.remove_entry(topic) {
                    self.inner.topic_changed(&key);
                }
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

/// The async fan-out to local subscribers: small topics under the read lock, large ones from a snapshot in
/// groups of [`FAN_OUT_STEP`], spending cooperative budget between groups.
async fn fan_out(hub: &HubInner, topic: &str, exclude: Option<&str>, frame: &OutFrame) -> usize {
    let subscribers = {
        let topics = hub.topics.read();
        match topics.get(topic) {
            None => return 0,
            Some(subscribers) if subscribers.len() <= FAN_OUT_STEP => {
                return deliver(subscribers.iter(), exclude, frame);
            }
            Some(subscribers) => subscribers.clone(),
        }
    };
    let mut delivered = 0;
    let mut rest = subscribers.iter();
    loop {
        delivered += deliver(rest.by_ref().take(FAN_OUT_STEP), exclude, frame);
        if rest.len() == 0 {
            return delivered;
        }
        tokio::task::consume_budget().await;
    }
}

/// Delivers an event from another node to the local subscribers; this node's own events are dropped.
async fn deliver_remote(hub: &HubInner, event: RemoteEvent) {
    if event.origin == hub.node {
        return;
    }
    let frame = event.frame();
    let delivered = fan_out(hub, &event.topic, event.exclude.as_deref(), &frame).await;
    if let Some(metrics) = hub.metrics.get() {
        metrics.remote_events.increment(1);
        metrics.remote_deliveries.increment(delivered as u64);
        if let Some(lag) = event.lag() {
            metrics.remote_lag.record(lag.as_secs_f64());
        }
    }
}

fn link_up(hub: &HubInner) {
    if let Some(remote) = hub.remote.get() {
        let outage = matches!(remote.status(hub.node).link, LinkState::Reconnecting { .. });
        remote.link_up_reported(hub);
        hub.report_link();
        if let (true, Some(metrics)) = (outage, hub.metrics.get()) {
            metrics.broker_reconnects.increment(1);
        }
    }
}

fn link_down(hub: &HubInner, error: &(dyn std::error::Error + Send + Sync + 'static)) {
    if let Some(remote) = hub.remote.get() {
        remote.link_down_reported(BackendError::from_report(remote.driver.name(), error));
        hub.report_link();
    }
}

/// Queues `frame` to each subscriber but `exclude`; returns how many took it. A full or closed subscriber is
/// handled by its own policy and not counted.
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

/// [`encode_value`](crate::encode_value), also telling whether the frame is JSON or a string's raw text (for the hub's envelope).
fn encode_value_with_kind<T: Serialize + ?Sized>(
    value: &T,
) -> Result<(OutFrame, PayloadKind), std::sync::Arc<serde_json::Error>> {
    let json = serde_json::to_vec(value).map_err(std::sync::Arc::new)?;
    let kind = if json.first() == Some(&b'"') {
        PayloadKind::Text
    } else {
        PayloadKind::Json
    };
    Ok((frame_from_json(json), kind))
}
