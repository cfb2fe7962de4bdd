//! The seam under the hub: a [`HubDriver`] carries publications between processes through a broker.
//!
//! The hub keeps the local topic map and does every local delivery itself; a driver only moves
//! [`RemoteEvent`]s. It is told when this node starts or stops needing a topic (once per topic, never per
//! connection), publishes what local code publishes, and hands what it receives to the [`RemoteSink`] it was
//! started with.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::HubInner;
use crate::error::BackendError;
use crate::frame::OutFrame;

/// The identity of one hub in a cluster: random, made when the hub is created. Every [`RemoteEvent`] carries
/// its publisher's id, so a node recognises (and drops) its own publications when the broker echoes them back.
///
/// ```
/// use pikku::hub::NodeId;
///
/// let a = NodeId::random();
/// assert_ne!(a, NodeId::random());
/// assert_eq!(NodeId::from_bytes(a.to_bytes()), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(u128);

impl NodeId {
    /// A new random id.
    #[must_use]
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// The id as 16 bytes, as envelopes carry it.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id carried as 16 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_u128(self.0), f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// What a publication's bytes are: JSON text, raw text (a published string, sent unquoted) or binary.
///
/// JSON and raw text both reach WebSocket clients as text frames; the kind is kept so that other consumers (and
/// later readers of the envelope) know how to read the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// JSON text.
    Json,
    /// UTF-8 text that is not JSON: a published string.
    Text,
    /// Binary bytes.
    Binary,
}

/// One publication on its way between nodes.
///
/// ```
/// use pikku::hub::{NodeId, PayloadKind, RemoteEvent};
/// use pikku::core::OutFrame;
///
/// let event = RemoteEvent::new(NodeId::random(), "room:1", Some("c1"), PayloadKind::Json, r#"{"hi":1}"#.into());
/// assert_eq!(event.frame(), OutFrame::text(r#"{"hi":1}"#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteEvent {
    /// The node that published it.
    pub origin: NodeId,
    /// The topic it was published to.
    pub topic: Arc<str>,
    /// The channel id that must not receive it, on any node.
    pub exclude: Option<Arc<str>>,
    /// How to read [`payload`](Self::payload).
    pub kind: PayloadKind,
    /// The encoded value: exactly the bytes every subscriber's frame carries.
    pub payload: Bytes,
    /// When the publisher made it, by the publisher's clock, to the microsecond; `None` for events from
    /// writers that do not send it. A receiver reports its own clock minus this as the remote lag.
    pub published_at: Option<SystemTime>,
}

impl RemoteEvent {
    /// An event from `origin`.
    #[must_use]
    pub fn new(
        origin: NodeId,
        topic: &str,
        exclude: Option<&str>,
        kind: PayloadKind,
        payload: Bytes,
    ) -> Self {
        Self {
            origin,
            topic: Arc::from(topic),
            exclude: exclude.map(Arc::from),
            kind,
            payload,
            published_at: Some(now_to_the_microsecond()),
        }
    }

    /// How long ago, by this node's clock, the publisher made it; `None` without a publication time, and zero
    /// when the clocks disagree so much that it would be negative.
    #[must_use]
    pub fn lag(&self) -> Option<Duration> {
        let published = self.published_at?;
        Some(
            SystemTime::now()
                .duration_since(published)
                .unwrap_or_default(),
        )
    }

    /// The frame local subscribers receive. Shares the payload's bytes.
    #[must_use]
    pub fn frame(&self) -> OutFrame {
        match self.kind {
            PayloadKind::Json | PayloadKind::Text => OutFrame::Text(self.payload.clone()),
            PayloadKind::Binary => OutFrame::Binary(self.payload.clone()),
        }
    }
}

/// The wall clock truncated to the microsecond, the precision envelopes carry, so that an event read back from
/// its envelope equals the one written.
fn now_to_the_microsecond() -> SystemTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH + Duration::from_micros(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
}

/// A broker connection under the [`EventHub`](crate::EventHub), shared by every connection of one process.
///
/// The hub calls [`start`](Self::start) once, before anything else, from a task of its own; then
/// [`subscribe`](Self::subscribe) when this node's first local subscriber of a topic arrives and
/// [`unsubscribe`](Self::unsubscribe) when its last one leaves (coalesced: a topic that comes and goes before
/// the driver was told causes no call), and [`publish`](Self::publish) for every publication made here. It never
/// calls them concurrently for the same topic.
///
/// The driver owns its link: it reconnects with backoff when the broker goes away, reports the outage and the
/// recovery to its [`RemoteSink`] (after which the hub subscribes every topic it still needs again), and hands
/// every event it receives to [`RemoteSink::deliver`]. Delivery between nodes is at most once.
///
/// A driver is installed with [`App::hub_driver`](crate::App::hub_driver). An in-process example that links
/// hubs of one process, as a broker links processes, is [`LocalBus`](super::LocalBus).
pub trait HubDriver: Send + Sync + 'static {
    /// The driver's own error type; the hub wraps it in a [`BackendError`].
    type Error: StdError + Send + Sync + 'static;

    /// A short name for logs and [`HubStatus`](super::HubStatus): `"redis"`, `"nats"`, ...
    fn name(&self) -> &'static str;

    /// Connects and starts receiving into `sink`. Returns once [`publish`](Self::publish) may be called; a broker
    /// that cannot be reached yet is not an error (report it with [`RemoteSink::disconnected`] and keep trying),
    /// a configuration that can never work is.
    fn start(&self, sink: RemoteSink) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Starts receiving the events of `topic`.
    fn subscribe(&self, topic: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stops receiving the events of `topic`.
    fn unsubscribe(&self, topic: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Sends `event` to every other node subscribed to its topic.
    fn publish(&self, event: &RemoteEvent) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// [`HubDriver`] with its futures boxed and its errors wrapped, so the hub holds any driver without generics.
pub(crate) trait ErasedDriver: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn start(&self, sink: RemoteSink) -> BoxFuture<'_, Result<(), BackendError>>;
    fn subscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    fn unsubscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    fn publish<'a>(&'a self, event: &'a RemoteEvent) -> BoxFuture<'a, Result<(), BackendError>>;
}

impl<D: HubDriver> ErasedDriver for D {
    fn name(&self) -> &'static str {
        HubDriver::name(self)
    }

    fn start(&self, sink: RemoteSink) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            HubDriver::start(self, sink)
                .await
                .map_err(|e| BackendError::new(HubDriver::name(self), e))
        })
    }

    fn subscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            HubDriver::subscribe(self, topic)
                .await
                .map_err(|e| BackendError::new(HubDriver::name(self), e))
        })
    }

    fn unsubscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            HubDriver::unsubscribe(self, topic)
                .await
                .map_err(|e| BackendError::new(HubDriver::name(self), e))
        })
    }

    fn publish<'a>(&'a self, event: &'a RemoteEvent) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            HubDriver::publish(self, event)
                .await
                .map_err(|e| BackendError::new(HubDriver::name(self), e))
        })
    }
}

/// Where a driver hands what it receives, and reports the state of its link.
///
/// It refers to its hub weakly: once the hub is gone, [`deliver`](Self::deliver) returns `false` and the
/// driver's tasks should end.
#[derive(Clone)]
pub struct RemoteSink {
    pub(super) hub: Weak<HubInner>,
}

impl fmt::Debug for RemoteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSink")
            .field("hub_alive", &(self.hub.strong_count() > 0))
            .finish()
    }
}

impl RemoteSink {
    /// Delivers a received event to this node's local subscribers of its topic, except its exclude id; an event
    /// this node published itself is dropped. Never re-published. Large topics are delivered in groups with
    /// cooperative yields, like local publications. Returns `false` once the hub is gone.
    pub async fn deliver(&self, event: RemoteEvent) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        super::deliver_remote(&hub, event).await;
        true
    }

    /// Reports the link up (first connection, or back after an outage). After an outage the hub subscribes every
    /// topic it still needs again.
    pub fn connected(&self) {
        if let Some(hub) = self.hub.upgrade() {
            super::link_up(&hub);
        }
    }

    /// Reports the link down, with the error that shows it. Logged once per outage; calls during the same outage
    /// only update [`HubStatus::last_error`](super::HubStatus::last_error).
    pub fn disconnected(&self, error: &(dyn StdError + Send + Sync + 'static)) {
        if let Some(hub) = self.hub.upgrade() {
            super::link_down(&hub, error);
        }
    }

    /// Whether the hub still exists; drivers end their tasks once it does not.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.hub.strong_count() == 0
    }

    /// The id of the node this sink belongs to, for drivers that filter their own echoes before decoding.
    #[must_use]
    pub fn node(&self) -> Option<NodeId> {
        self.hub.upgrade().map(|hub| hub.node)
    }
}
