//! The open connections of one process, by channel id.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::Connection;

/// The connections of this process that finished their upgrade and have not closed yet, by channel id.
///
/// Runners add a connection once its 101 is written and remove it when it closes
/// ([`LiveChannel`](crate::runtime::LiveChannel) does both); the server's heartbeat sweep and shutdown walk it,
/// and the [`EventHub`](crate::EventHub) looks channel ids up in it. Cloning is cheap and every clone is the same
/// registry.
///
/// ```
/// use std::{sync::Arc, time::Instant};
/// use pikku::core::channel::{ConnectionLimits, Registry};
/// use pikku::{Params, SlowConsumerPolicy};
/// use pikku::core::Connection;
///
/// let registry = Registry::new();
/// let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
/// let conn = Arc::new(Connection::new(Arc::from("c1"), Arc::from("chat"), Arc::new(Params::new()), limits, Instant::now()));
/// registry.insert(conn.clone());
/// assert_eq!(registry.len(), 1);
/// assert!(registry.get("c1").is_some());
/// registry.remove(&conn);
/// assert!(registry.is_empty());
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    connections: Arc<RwLock<HashMap<Arc<str>, Arc<Connection>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.len())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an open connection; one added again under the same id replaces the first.
    pub fn insert(&self, conn: Arc<Connection>) {
        self.connections.write().insert(conn.id_arc().clone(), conn);
    }

    /// Removes `conn`, if it is the one registered under its id.
    pub fn remove(&self, conn: &Connection) {
        let mut connections = self.connections.write();
        if connections
            .get(conn.id())
            .is_some_and(|held| std::ptr::eq(Arc::as_ptr(held), conn))
        {
            connections.remove(conn.id());
        }
    }

    /// The connection registered under `channel_id`, if any (it may already be closing).
    ///
    /// ```
    /// use pikku::core::{channel::Registry, OutFrame};
    ///
    /// // Sends a direct message to one client, if it is still connected.
    /// fn notify(registry: &Registry, channel_id: &str, text: &'static str) -> bool {
    ///     registry.get(channel_id).is_some_and(|conn| conn.push(OutFrame::text(text)).is_ok())
    /// }
    /// ```
    #[must_use]
    pub fn get(&self, channel_id: &str) -> Option<Arc<Connection>> {
        self.connections.read().get(channel_id).cloned()
    }

    /// Every registered connection, in no particular order (a snapshot).
    ///
    /// ```
    /// use pikku::core::{channel::Registry, OutFrame};
    ///
    /// // Broadcasts to everyone, subscribed or not.
    /// fn broadcast(registry: &Registry, text: &'static str) {
    ///     for conn in registry.snapshot() {
    ///         let _ = conn.push(OutFrame::text(text));
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Vec<Arc<Connection>> {
        self.connections.read().values().cloned().collect()
    }

    /// The number of registered connections.
    #[must_use]
    pub fn len(&self) -> usize {
        self.connections.read().len()
    }

    /// Whether no connection is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
