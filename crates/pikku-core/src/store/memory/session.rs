//! Sessions in memory.

use std::collections::HashMap;
use std::fmt;

use parking_lot::RwLock;
use serde_json::Value;

use super::lazy;
use crate::store::{BoxFuture, SessionStore, StoreError};

/// A [`SessionStore`] in this process's memory.
///
/// ```
/// use pikku::store::{MemorySessionStore, SessionStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sessions = MemorySessionStore::new();
/// sessions.set("ann", serde_json::json!({"n": 1})).await?;
/// sessions.set("ann", serde_json::json!({"n": 2})).await?;
/// assert_eq!(sessions.get("ann").await?, Some(serde_json::json!({"n": 2})));
/// # Ok::<(), pikku::store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct MemorySessionStore {
    sessions: RwLock<HashMap<String, Value>>,
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("sessions", &self.sessions.read().len())
            .finish()
    }
}

impl MemorySessionStore {
    /// An empty store.
    ///
    /// ```
    /// let sessions = pikku::store::MemorySessionStore::new();
    /// # let _ = sessions;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl SessionStore for MemorySessionStore {
    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        lazy(move || Ok(self.sessions.read().get(user_id).cloned()))
    }

    fn set<'a>(
        &'a self,
        user_id: &'a str,
        session: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || {
            self.sessions.write().insert(user_id.to_owned(), session);
            Ok(())
        })
    }

    fn remove<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        lazy(move || {
            self.sessions.write().remove(user_id);
            Ok(())
        })
    }
}
