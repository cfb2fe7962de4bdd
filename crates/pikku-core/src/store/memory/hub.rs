//! Subscriptions in memory.

use std::collections::{HashMap, HashSet};
use std::fmt;

use parking_lot::RwLock;

use super::lazy;
use crate::store::{BoxFuture, EventHubStore, StoreError};

/// An [`EventHubStore`] in this process's memory: subscriber sets by topic, and topic sets by channel id, kept
/// together under one lock.
///
/// ```
/// use pikku::store::{EventHubStore, MemoryEventHubStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let hub = MemoryEventHubStore::new();
/// hub.subscribe("t", "a").await?;
/// assert!(hub.unsubscribe("t", "a").await?);
/// assert!(!hub.unsubscribe("t", "a").await?);
/// # Ok::<(), pikku::store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct MemoryEventHubStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    subscribers: HashMap<String, HashSet<String>>,
    topics: HashMap<String, HashSet<String>>,
}

impl fmt::Debug for MemoryEventHubStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("MemoryEventHubStore")
            .field("topics", &inner.subscribers.len())
            .field("channels", &inner.topics.len())
            .finish()
    }
}

impl MemoryEventHubStore {
    /// An empty store.
    ///
    /// ```
    /// let hub = pikku::store::MemoryEventHubStore::new();
    /// # let _ = hub;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// Removes `member` from the set at `key`, and the set once it is empty; whether it was there.
fn remove_from(map: &mut HashMap<String, HashSet<String>>, key: &str, member: &str) -> bool {
    let Some(set) = map.get_mut(key) else {
        return false;
    };
    let removed = set.remove(member);
    if set.is_empty() {
        map.remove(key);
    }
    removed
}

impl EventHubStore for MemoryEventHubStore {
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        lazy(move || {
            let mut inner = self.inner.write();
            inner
                .subscribers
                .entry(topic.to_owned())
                .or_default()
                .insert(channel_id.to_owned());
            inner
                .topics
                .entry(channel_id.to_owned())
                .or_default()
                .insert(topic.to_owned());
            Ok(true)
        })
    }

    fn unsubscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        lazy(move || {
            let mut inner = self.inner.write();
            let removed = remove_from(&mut inner.subscribers, topic, channel_id);
            remove_from(&mut inner.topics, channel_id, topic);
            Ok(removed)
        })
    }

    fn channel_ids<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        lazy(move || {
            Ok(self
                .inner
                .read()
                .subscribers
                .get(topic)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn remove_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        lazy(move || {
            let mut inner = self.inner.write();
            let topics = inner.topics.remove(channel_id).unwrap_or_default();
            Ok(topics
                .iter()
                .filter(|topic| remove_from(&mut inner.subscribers, topic, channel_id))
                .count())
        })
    }
}
