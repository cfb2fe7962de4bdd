//! The stores' connection to PostgreSQL: made on first use (creating the tables the first time), shared by
//! every store of one [`PostgresStores`](super::PostgresStores), replaced after it breaks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_postgres::{Client, Config, NoTls};

use super::schema::{Statements, Tables};
use super::PostgresStoreError;

/// How long any one statement may take before the connection counts as broken.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection with its prepared statements.
pub(crate) struct Live {
    pub(crate) client: Client,
    pub(crate) sql: Statements,
}

pub(crate) struct Conn {
    config: Config,
    pub(crate) tables: Tables,
    /// The connection in use and its generation, so that a failure only drops the connection it happened on.
    live: Mutex<Option<(u64, Arc<Live>)>>,
    /// Held while connecting, so that concurrent first uses make one connection.
    connecting: tokio::sync::Mutex<u64>,
}

impl Conn {
    pub(crate) fn new(config: Config, tables: Tables) -> Self {
        Self {
            config,
            tables,
            live: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(0),
        }
    }

    fn current(&self) -> Option<(u64, Arc<Live>)> {
        self.live
            .lock()
            .clone()
            .filter(|(_, live)| !live.client.is_closed())
    }

    /// The live connection, connecting (and migrating, and preparing) first when there is none.
    async fn get(&self) -> Result<(u64, Arc<Live>), PostgresStoreError> {
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let mut generation = self.connecting.lock().await;
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let live = tokio::time::timeout(REQUEST_TIMEOUT, self.connect())
            .await
            .map_err(|_| PostgresStoreError::Timeout)??;
        *generation += 1;
        let live = (*generation, Arc::new(live));
        *self.live.lock() = Some(live.clone());
        Ok(live)
    }

    async fn connect(&self) -> Result<Live, PostgresStoreError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(PostgresStoreError::Connect)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "postgres store connection ended");
            }
        });
        client
            .batch_execute(&self.tables.migration())
            .await
            .map_err(PostgresStoreError::Connect)?;
        let sql = Statements::prepare(&client, &self.tables)
            .await
            .map_err(PostgresStoreError::Connect)?;
        Ok(Live { client, sql })
    }

    /// Connects now, creating the tables if they are missing.
    pub(crate) async fn migrate(&self) -> Result<(), PostgresStoreError> {
        self.get().await.map(drop)
    }

    /// Runs `op` on the connection within the request timeout. A timeout, or a failure that closed the
    /// connection, drops it, so the next operation connects again.
    pub(crate) async fn run<T, F>(
        &self,
        op: impl FnOnce(Arc<Live>) -> F,
    ) -> Result<T, PostgresStoreError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (generation, live) = self.get().await?;
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, op(live)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if !error.is_closed() => return Err(PostgresStoreError::Query(error)),
            Ok(Err(error)) => Err(PostgresStoreError::Query(error)),
            Err(_) => Err(PostgresStoreError::Timeout),
        };
        let mut current = self.live.lock();
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::debug!("postgres store connection broken; reconnecting on next use");
            *current = None;
        }
        result
    }
}
