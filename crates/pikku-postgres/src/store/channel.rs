//! Channel records in the `<prefix>_channels` table.

use std::fmt;
use std::time::SystemTime;

use pikku_core::store::{BoxFuture, ChannelRecord, ChannelStore, StoreError};
use serde_json::Value;

use super::{run, PostgresStoreError, PostgresStores};

/// The [`ChannelStore`] on PostgreSQL: one row per record in `<prefix>_channels` (see the [module](super)
/// for the table).
///
/// ```no_run
/// use pikku::postgres::store::PostgresChannelStore;
/// use pikku::store::{ChannelRecord, ChannelStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channels = PostgresChannelStore::from_url("postgres://postgres@127.0.0.1/postgres")?;
/// channels.add_channel(ChannelRecord::new("conn-1", "chat", serde_json::json!({}))).await?;
/// channels.set_state("conn-1", serde_json::json!({"typing": true})).await?;
/// # Ok(())
/// # }
/// ```
pub struct PostgresChannelStore {
    stores: PostgresStores,
}

impl fmt::Debug for PostgresChannelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresChannelStore")
            .field("prefix", &self.stores.prefix())
            .finish_non_exhaustive()
    }
}

impl PostgresChannelStore {
    pub(super) fn new(stores: PostgresStores) -> Self {
        Self { stores }
    }

    /// A store on the database `url` names, with its own connection and the default table prefix; see
    /// [`PostgresStores`] to share a connection or choose the prefix.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresChannelStore;
    ///
    /// let channels = PostgresChannelStore::from_url("host=127.0.0.1 user=postgres").unwrap();
    /// # let _ = channels;
    /// ```
    ///
    /// # Errors
    /// As [`PostgresStores::from_url`].
    pub fn from_url(url: &str) -> Result<Self, PostgresStoreError> {
        Ok(PostgresStores::from_url(url)?.channel_store())
    }
}

/// `Ok` when a statement on one channel's row changed it, `ChannelNotFound` when there was no row.
fn found(rows: u64, channel_id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::ChannelNotFound(channel_id.to_owned()))
    } else {
        Ok(())
    }
}

fn column<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r tokio_postgres::Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| PostgresStoreError::Query(e).into())
}

impl ChannelStore for PostgresChannelStore {
    fn add_channel(&self, record: ChannelRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let r = &record;
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(
                        &live.sql.add_channel,
                        &[
                            &r.channel_id,
                            &r.channel_name,
                            &r.opening_data,
                            &r.user_id,
                            &r.state,
                            &r.created_at,
                            &r.last_seen,
                        ],
                    )
                    .await
            })
            .await?;
            if rows == 0 {
                Err(StoreError::ChannelExists(record.channel_id))
            } else {
                Ok(())
            }
        })
    }

    fn get_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<ChannelRecord, StoreError>> {
        Box::pin(async move {
            let row = run(&self.stores, |live| async move {
                live.client
                    .query_opt(&live.sql.get_channel, &[&channel_id])
                    .await
            })
            .await?
            .ok_or_else(|| StoreError::ChannelNotFound(channel_id.to_owned()))?;
            let name: String = column(&row, 0)?;
            let mut record = ChannelRecord::new(channel_id, name, column(&row, 1)?);
            record.user_id = column(&row, 2)?;
            record.state = column(&row, 3)?;
            record.created_at = column(&row, 4)?;
            record.last_seen = column(&row, 5)?;
            Ok(record)
        })
    }

    fn set_user_id<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.set_user_id, &[&channel_id, &user_id])
                    .await
            })
            .await?;
            found(rows, channel_id)
        })
    }

    fn get_state<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let row = run(&self.stores, |live| async move {
                live.client
                    .query_opt(&live.sql.get_state, &[&channel_id])
                    .await
            })
            .await?
            .ok_or_else(|| StoreError::ChannelNotFound(channel_id.to_owned()))?;
            column(&row, 0)
        })
    }

    fn set_state<'a>(
        &'a self,
        channel_id: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let state = Some(state);
            let state = &state;
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.set_state, &[&channel_id, state])
                    .await
            })
            .await?;
            found(rows, channel_id)
        })
    }

    fn clear_state<'a>(&'a self, channel_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.set_state, &[&channel_id, &None::<Value>])
                    .await
            })
            .await?;
            found(rows, channel_id)
        })
    }

    fn touch<'a>(
        &'a self,
        channel_id: &'a str,
        at: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.touch, &[&channel_id, &at])
                    .await
            })
            .await?;
            found(rows, channel_id)
        })
    }

    fn remove_channels<'a>(
        &'a self,
        channel_ids: &'a [&'a str],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if channel_ids.is_empty() {
                return Ok(());
            }
            run(&self.stores, |live| async move {
                live.client
                    .execute(&live.sql.remove_channels, &[&channel_ids])
                    .await
            })
            .await
            .map(drop)
        })
    }

    fn expire(&self, before: SystemTime) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let rows = run(&self.stores, |live| async move {
                live.client.query(&live.sql.expire, &[&before]).await
            })
            .await?;
            rows.iter().map(|row| column(row, 0)).collect()
        })
    }
}
