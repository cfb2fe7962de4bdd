//! Sessions on Redis: one JSON string per user id.

use std::fmt;

use pikku_core::store::{BoxFuture, SessionStore, StoreError};
use serde_json::Value;

use super::{run, RedisStoreError, RedisStores};

/// The [`SessionStore`] on Redis: the session of each user id is a JSON string at `<prefix>session:<user id>`,
/// with no expiry of its own.
///
/// ```no_run
/// use pikku::redis::store::RedisSessionStore;
/// use pikku::store::SessionStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sessions = RedisSessionStore::from_url("redis://127.0.0.1:6379")?;
/// sessions.set("ann", serde_json::json!({"role": "admin"})).await?;
/// # Ok(())
/// # }
/// ```
pub struct RedisSessionStore {
    stores: RedisStores,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.stores.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisSessionStore {
    pub(super) fn new(stores: RedisStores) -> Self {
        Self { stores }
    }

    /// A store on the server `url` names, with its own connection and the default key prefix; see
    /// [`RedisStores`] to share a connection or choose the prefix.
    ///
    /// ```
    /// use pikku::redis::store::RedisSessionStore;
    ///
    /// let sessions = RedisSessionStore::from_url("redis://127.0.0.1").unwrap();
    /// # let _ = sessions;
    /// ```
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`] when the URL names no single Redis server.
    pub fn from_url(url: &str) -> Result<Self, RedisStoreError> {
        Ok(RedisStores::from_url(url)?.session_store())
    }
}

impl SessionStore for RedisSessionStore {
    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.session(user_id);
            let text: Option<String> = run(&self.stores, |mut conn| {
                let key = key.clone();
                async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
            })
            .await?;
            text.map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    StoreError::from(RedisStoreError::Corrupt {
                        key,
                        reason: e.to_string(),
                    })
                })
            })
            .transpose()
        })
    }

    fn set<'a>(
        &'a self,
        user_id: &'a str,
        session: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.session(user_id);
            let text = session.to_string();
            run(&self.stores, |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&text)
                    .exec_async(&mut conn)
                    .await
            })
            .await
        })
    }

    fn remove<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.session(user_id);
            run(&self.stores, |mut conn| async move {
                redis::cmd("DEL").arg(&key).exec_async(&mut conn).await
            })
            .await
        })
    }
}
