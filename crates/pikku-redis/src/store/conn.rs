//! The stores' connection to Redis: made on first use, shared by clones, replaced after it breaks.

use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};

use super::RedisStoreError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One multiplexed connection, shared by every store built from the same [`RedisStores`](super::RedisStores):
/// commands from concurrent invocations are pipelined on it.
pub(crate) struct Conn {
    client: redis::Client,
    /// The connection in use and its generation, so that a failure only drops the connection it happened on.
    live: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while connecting, so that concurrent first uses make one connection.
    connecting: tokio::sync::Mutex<u64>,
}

impl Conn {
    pub(crate) fn new(client: redis::Client) -> Self {
        Self {
            client,
            live: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(0),
        }
    }

    /// The live connection, connecting first when there is none.
    async fn get(&self) -> Result<(u64, MultiplexedConnection), RedisStoreError> {
        if let Some(live) = self.live.lock().clone() {
            return Ok(live);
        }
        let mut generation = self.connecting.lock().await;
        if let Some(live) = self.live.lock().clone() {
            return Ok(live);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(RedisStoreError::Redis)?;
        *generation += 1;
        let live = (*generation, conn);
        *self.live.lock() = Some(live.clone());
        Ok(live)
    }

    /// Runs `op` on the connection. A failure that means the connection is broken drops it, so the next
    /// operation connects again.
    pub(crate) async fn run<T, F>(
        &self,
        op: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Result<T, RedisStoreError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        let (generation, conn) = self.get().await?;
        op(conn).await.map_err(|err| {
            if err.is_unrecoverable_error() || err.is_timeout() || err.is_connection_dropped() {
                let mut live = self.live.lock();
                if live.as_ref().is_some_and(|(g, _)| *g == generation) {
                    tracing::debug!(error = %err, "redis store connection broken; reconnecting on next use");
                    *live = None;
                }
            }
            RedisStoreError::Redis(err)
        })
    }
}
