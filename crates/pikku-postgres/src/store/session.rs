//! Sessions in the `<prefix>_sessions` table.

use std::fmt;

use pikku_core::store::{BoxFuture, SessionStore, StoreError};
use serde_json::Value;

use super::{run, PostgresStoreError, PostgresStores};

/// The [`SessionStore`] on PostgreSQL: one `jsonb` row per user id in `<prefix>_sessions` (see the
/// [module](super) for the table).
///
/// ```no_run
/// use pikku::postgres::store::PostgresSessionStore;
/// use pikku::store::SessionStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sessions = PostgresSessionStore::from_url("postgres://postgres@127.0.0.1/postgres")?;
/// sessions.set("ann", serde_json::json!({"role": "admin"})).await?;
/// # Ok(())
/// # }
/// ```
pub struct PostgresSessionStore {
    stores: PostgresStores,
}

impl fmt::Debug for PostgresSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSessionStore")
            .field("prefix", &self.stores.prefix())
            .finish_non_exhaustive()
    }
}

impl PostgresSessionStore {
    pub(super) fn new(stores: PostgresStores) -> Self {
        Self { stores }
    }

    /// A store on the database `url` names, with its own connection and the default table prefix; see
    /// [`PostgresStores`] to share a connection or choose the prefix.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresSessionStore;
    ///
    /// let sessions = PostgresSessionStore::from_url("host=127.0.0.1 user=postgres").unwrap();
    /// # let _ = sessions;
    /// ```
    ///
    /// # Errors
    /// As [`PostgresStores::from_url`].
    pub fn from_url(url: &str) -> Result<Self, PostgresStoreError> {
        Ok(PostgresStores::from_url(url)?.session_store())
    }
}

impl SessionStore for PostgresSessionStore {
    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let row = run(&self.stores, |live| async move {
                live.client
                    .query_opt(&live.sql.get_session, &[&user_id])
                    .await
            })
            .await?;
            row.map(|row| {
                row.try_get(0)
                    .map_err(|e| PostgresStoreError::Query(e).into())
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
            let session = &session;
            run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.set_session, &[&user_id, session])
                    .await
            })
            .await
            .map(drop)
        })
    }

    fn remove<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.remove_session, &[&user_id])
                    .await
            })
            .await
            .map(drop)
        })
    }
}
