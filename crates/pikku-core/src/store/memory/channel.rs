//! Channel records in memory.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::SystemTime;

use parking_lot::RwLock;
use serde_json::Value;

use super::lazy;
use crate::store::record::to_the_microsecond;
use crate::store::{BoxFuture, ChannelRecord, ChannelStore, StoreError};

/// A [`ChannelStore`] in this process's memory: records by id, plus an index by `last_seen` so that
/// [`expire`](ChannelStore::expire) only visits what it removes.
///
/// Every operation takes one lock for a few map operations and never waits on anything else.
///
/// ```
/// use pikku::store::{ChannelRecord, ChannelStore, MemoryChannelStore, StoreError};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryChannelStore::new();
/// store.add_channel(ChannelRecord::new("conn-1", "chat", serde_json::json!({}))).await?;
/// let again = store.add_channel(ChannelRecord::new("conn-1", "other", serde_json::json!({}))).await;
/// assert_eq!(again, Err(StoreError::ChannelExists("conn-1".into())));
/// assert_eq!(store.len(), 1);
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct MemoryChannelStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    records: HashMap<String, ChannelRecord>,
    by_last_seen: BTreeSet<(SystemTime, String)>,
}

impl fmt::Debug for MemoryChannelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryChannelStore")
            .field("records", &self.len())
            .finish()
    }
}

impl MemoryChannelStore {
    /// An empty store.
    ///
    /// ```
    /// let store = pikku::store::MemoryChannelStore::new();
    /// assert!(store.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    ///
    /// ```
    /// assert_eq!(pikku::store::MemoryChannelStore::new().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.read().records.len()
    }

    /// Whether it holds no record.
    ///
    /// ```
    /// assert!(pikku::store::MemoryChannelStore::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `update` on the record of `channel_id`, or fails with `ChannelNotFound`.
    fn update(
        &self,
        channel_id: &str,
        update: impl FnOnce(&mut ChannelRecord),
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.write();
        let record = inner
            .records
            .get_mut(channel_id)
            .ok_or_else(|| StoreError::ChannelNotFound(channel_id.to_owned()))?;
        update(record);
        Ok(())
    }
}

impl ChannelStore for MemoryChannelStore {
    fn add_channel(&self, record: ChannelRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        lazy(move || {
            let mut inner = self.inner.write();
            if inner.records.contains_key(&record.channel_id) {
                return Err(StoreError::ChannelExists(record.channel_id));
            }
            inner
                .by_last_seen
                .insert((record.last_seen, record.channel_id.clone()));
            inner.records.insert(record.channel_id.clone(), record);
            Ok(())
        })
    }

    fn get_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<ChannelRecord, StoreError>> {
        lazy(move || {
            self.inner
                .read()
                .records
                .get(channel_id)
                .cloned()
                .ok_or_else(|| StoreError::ChannelNotFound(channel_id.to_owned()))
        })
    }

    fn set_user_id<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || {
            self.update(channel_id, |record| {
                record.user_id = user_id.map(str::to_owned);
            })
        })
    }

    fn get_state<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        lazy(move || {
            self.inner
                .read()
                .records
                .get(channel_id)
                .map(|record| record.state.clone())
                .ok_or_else(|| StoreError::ChannelNotFound(channel_id.to_owned()))
        })
    }

    fn set_state<'a>(
        &'a self,
        channel_id: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || self.update(channel_id, |record| record.state = Some(state)))
    }

    fn clear_state<'a>(&'a self, channel_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || self.update(channel_id, |record| record.state = None))
    }

    fn touch<'a>(
        &'a self,
        channel_id: &'a str,
        at: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || {
            let at = to_the_microsecond(at);
            let mut guard = self.inner.write();
            let inner = &mut *guard;
            let record = inner
                .records
                .get_mut(channel_id)
                .ok_or_else(|| StoreError::ChannelNotFound(channel_id.to_owned()))?;
            if at > record.last_seen {
                inner
                    .by_last_seen
                    .remove(&(record.last_seen, channel_id.to_owned()));
                inner.by_last_seen.insert((at, channel_id.to_owned()));
                record.last_seen = at;
            }
            Ok(())
        })
    }

    fn remove_channels<'a>(
        &'a self,
        channel_ids: &'a [&'a str],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || {
            if channel_ids.is_empty() {
                return Ok(());
            }
            let mut inner = self.inner.write();
            for id in channel_ids {
                if let Some(record) = inner.records.remove(*id) {
                    inner
                        .by_last_seen
                        .remove(&(record.last_seen, record.channel_id));
                }
            }
            Ok(())
        })
    }

    fn expire(&self, before: SystemTime) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        lazy(move || {
            let mut inner = self.inner.write();
            // Everything ordered before (before, "") was last seen strictly before `before`.
            let kept = inner.by_last_seen.split_off(&(before, String::new()));
            let expired = std::mem::replace(&mut inner.by_last_seen, kept);
            let ids: Vec<String> = expired.into_iter().map(|(_, id)| id).collect();
            for id in &ids {
                inner.records.remove(id);
            }
            Ok(ids)
        })
    }
}
