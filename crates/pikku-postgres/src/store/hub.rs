//! Subscriptions in the `<prefix>_subscriptions` table.

use std::fmt;

use pikku_core::store::{BoxFuture, EventHubStore, StoreError};

use super::{run, PostgresStoreError, PostgresStores};

/// The [`EventHubStore`] on PostgreSQL: one `(topic, channel_id)` row per subscription in
/// `<prefix>_subscriptions`, indexed by channel id for removal, with no foreign key to the channel records
/// (see the [module](super) for the table).
///
/// ```no_run
/// use pikku::postgres::store::PostgresEventHubStore;
/// use pikku::store::EventHubStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = PostgresEventHubStore::from_url("postgres://postgres@127.0.0.1/postgres")?;
/// hub.subscribe("room:a", "conn-1").await?;
/// assert_eq!(hub.channel_ids("room:a").await?, ["conn-1"]);
/// # Ok(())
/// # }
/// ```
pub struct PostgresEventHubStore {
    stores: PostgresStores,
}

impl fmt::Debug for PostgresEventHubStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEventHubStore")
            .field("prefix", &self.stores.prefix())
            .finish_non_exhaustive()
    }
}

impl PostgresEventHubStore {
    pub(super) fn new(stores: PostgresStores) -> Self {
        Self { stores }
    }

    /// A store on the database `url` names, with its own connection and the default table prefix; see
    /// [`PostgresStores`] to share a connection or choose the prefix.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresEventHubStore;
    ///
    /// let hub = PostgresEventHubStore::from_url("host=127.0.0.1 user=postgres").unwrap();
    /// # let _ = hub;
    /// ```
    ///
    /// # Errors
    /// As [`PostgresStores::from_url`].
    pub fn from_url(url: &str) -> Result<Self, PostgresStoreError> {
        Ok(PostgresStores::from_url(url)?.event_hub_store())
    }
}

fn count(rows: u64) -> usize {
    usize::try_from(rows).unwrap_or(usize::MAX)
}

impl EventHubStore for PostgresEventHubStore {
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.subscribe, &[&topic, &channel_id])
                    .await
            })
            .await?;
            Ok(true)
        })
    }

    fn unsubscribe<'a>(
        &'a self,
        topic: &'a str,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.unsubscribe, &[&topic, &channel_id])
                    .await
            })
            .await?;
            Ok(rows > 0)
        })
    }

    fn channel_ids<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client.query(&live.sql.channel_ids, &[&topic]).await
            })
            .await?;
            rows.iter()
                .map(|row| {
                    row.try_get(0)
                        .map_err(|e| PostgresStoreError::Query(e).into())
                })
                .collect()
        })
    }

    fn remove_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.remove_channel, &[&channel_id])
                    .await
            })
            .await?;
            Ok(count(rows))
        })
    }
}
