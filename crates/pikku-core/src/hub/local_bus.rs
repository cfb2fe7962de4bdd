//! A broker inside the process: hubs of several apps in one process share topics through it, exactly as hubs
//! of several processes do through Redis or NATS.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::driver::{HubDriver, RemoteEvent, RemoteSink};

/// Events queued to one node before publishers wait for it.
const NODE_QUEUE: usize = 1024;

/// An in-process broker. Each [`node`](Self::node) is a [`HubDriver`] for one app; publications cross between
/// the nodes like they cross between processes through a real broker: one queue per node, every subscribed
/// node served (the publisher's own too, as Redis and NATS do; its hub ignores its own events), at most once.
///
/// Use it to run several apps in one process (for example one per tenant, or per port), and to test code
/// written for a cluster without a broker.
///
/// ```
/// use pikku::hub::LocalBus;
/// use pikku::App;
///
/// let bus = LocalBus::new();
/// let first: App<()> = App::new(()).hub_driver(bus.node());
/// let second: App<()> = App::new(()).hub_driver(bus.node());
/// # let _ = (first, second);
/// ```
#[derive(Clone, Default)]
pub struct LocalBus {
    inner: Arc<Mutex<Bus>>,
}

#[derive(Default)]
struct Bus {
    nodes: Vec<Slot>,
    /// While `false`, the bus behaves like a broker that went away.
    down: bool,
}

struct Slot {
    topics: HashSet<Arc<str>>,
    queue: Option<mpsc::Sender<RemoteEvent>>,
    sink: Option<RemoteSink>,
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bus = self.inner.lock();
        f.debug_struct("LocalBus")
            .field("nodes", &bus.nodes.len())
            .field("down", &bus.down)
            .finish()
    }
}

impl LocalBus {
    /// A bus without nodes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A driver for one more node on this bus.
    #[must_use]
    pub fn node(&self) -> LocalBusNode {
        let mut bus = self.inner.lock();
        bus.nodes.push(Slot {
            topics: HashSet::new(),
            queue: None,
            sink: None,
        });
        LocalBusNode {
            bus: self.clone(),
            slot: bus.nodes.len() - 1,
        }
    }

    /// Takes the bus down (`false`) or brings it back (`true`), as a broker restart would: while down,
    /// publishes and subscribes fail and every node's subscriptions are lost; once back, the nodes are told and
    /// subscribe again.
    ///
    /// ```
    /// use pikku::hub::{LinkState, LocalBus};
    /// use pikku::App;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let bus = LocalBus::new();
    /// let hub = App::<()>::new(()).hub_driver(bus.node()).hub();
    /// hub.start().await.unwrap();
    /// bus.set_available(false);
    /// assert!(hub.publish("news", None, "hi").await.is_err());
    /// assert!(matches!(hub.status().unwrap().link, LinkState::Reconnecting { .. }));
    /// bus.set_available(true);
    /// assert!(hub.publish("news", None, "hi").await.is_ok());
    /// # });
    /// ```
    pub fn set_available(&self, available: bool) {
        let sinks: Vec<RemoteSink> = {
            let mut bus = self.inner.lock();
            if bus.down != available {
                return;
            }
            bus.down = !available;
            for slot in &mut bus.nodes {
                if !available {
                    slot.topics.clear();
                }
            }
            bus.nodes.iter().filter_map(|s| s.sink.clone()).collect()
        };
        for sink in sinks {
            if available {
                sink.connected();
            } else {
                sink.disconnected(&LocalBusError::Down);
            }
        }
    }

    /// How many nodes currently receive `topic` (the broker's own count, as `PUBSUB NUMSUB` gives for Redis).
    #[must_use]
    pub fn subscriptions(&self, topic: &str) -> usize {
        self.inner
            .lock()
            .nodes
            .iter()
            .filter(|s| s.topics.contains(topic))
            .count()
    }
}

/// One node's driver on a [`LocalBus`].
#[derive(Debug, Clone)]
pub struct LocalBusNode {
    bus: LocalBus,
    slot: usize,
}

/// Why a [`LocalBus`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalBusError {
    /// The bus was taken down with [`LocalBus::set_available`].
    Down,
}

impl fmt::Display for LocalBusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the local bus is down")
    }
}

impl std::error::Error for LocalBusError {}

impl HubDriver for LocalBusNode {
    type Error = LocalBusError;

    fn name(&self) -> &'static str {
        "local"
    }

    async fn start(&self, sink: RemoteSink) -> Result<(), LocalBusError> {
        let (queue, mut events) = mpsc::channel(NODE_QUEUE);
        {
            let mut bus = self.bus.inner.lock();
            let slot = &mut bus.nodes[self.slot];
            slot.queue = Some(queue);
            slot.sink = Some(sink.clone());
        }
        sink.connected();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if !sink.deliver(event).await {
                    return;
                }
            }
        });
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<(), LocalBusError> {
        let mut bus = self.bus.inner.lock();
        if bus.down {
            return Err(LocalBusError::Down);
        }
        bus.nodes[self.slot].topics.insert(Arc::from(topic));
        Ok(())
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), LocalBusError> {
        let mut bus = self.bus.inner.lock();
        if bus.down {
            return Err(LocalBusError::Down);
        }
        bus.nodes[self.slot].topics.remove(topic);
        Ok(())
    }

    async fn publish(&self, event: &RemoteEvent) -> Result<(), LocalBusError> {
        let queues: Vec<mpsc::Sender<RemoteEvent>> = {
            let bus = self.bus.inner.lock();
            if bus.down {
                return Err(LocalBusError::Down);
            }
            bus.nodes
                .iter()
                .filter(|slot| slot.topics.contains(&*event.topic))
                .filter_map(|slot| slot.queue.clone())
                .collect()
        };
        for queue in queues {
            // A node whose hub is gone has closed its queue: nothing to deliver there.
            let _ = queue.send(event.clone()).await;
        }
        Ok(())
    }
}
