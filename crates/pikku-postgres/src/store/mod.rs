//! Stateless-mode stores on PostgreSQL: channel records, subscriptions and sessions in three tables that
//! every invocation of a serverless runner reaches.
//!
//! ```no_run
//! use pikku::postgres::store::PostgresStores;
//! use pikku::store::{ChannelRecord, ChannelStore, EventHubStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = PostgresStores::from_url("postgres://postgres@127.0.0.1/postgres")?;
//! stores.migrate().await?; // optional: the first operation creates missing tables too
//! let (channels, hub) = (stores.channel_store(), stores.event_hub_store());
//! channels.add_channel(ChannelRecord::new("conn-1", "rooms", serde_json::json!({"room": "a"}))).await?;
//! hub.subscribe("room:a", "conn-1").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Tables
//! Under the table prefix (`pikku_store` unless [`PostgresStores::table_prefix`] says otherwise):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS pikku_store_channels (
//!     channel_id   text PRIMARY KEY,
//!     channel_name text NOT NULL,
//!     opening_data jsonb NOT NULL,
//!     user_id      text,          -- NULL without a session user
//!     state        jsonb,         -- NULL without socket state
//!     created_at   timestamptz NOT NULL,
//!     last_seen    timestamptz NOT NULL
//! );
//! CREATE INDEX IF NOT EXISTS pikku_store_channels_last_seen ON pikku_store_channels (last_seen);
//! CREATE TABLE IF NOT EXISTS pikku_store_subscriptions (
//!     topic      text NOT NULL,
//!     channel_id text NOT NULL,   -- no foreign key: any id may subscribe
//!     PRIMARY KEY (topic, channel_id)
//! );
//! CREATE INDEX IF NOT EXISTS pikku_store_subscriptions_channel_id ON pikku_store_subscriptions (channel_id);
//! CREATE TABLE IF NOT EXISTS pikku_store_sessions (
//!     user_id    text PRIMARY KEY,
//!     session    jsonb NOT NULL,
//!     updated_at timestamptz NOT NULL DEFAULT now()
//! );
//! ```
//!
//! The migration runs in one transaction under an advisory lock, so processes starting together do not race;
//! it only creates what is missing and never alters or drops anything. The user needs the right to create
//! the tables, or, when they exist, to read and write them.
//!
//! Every operation is one statement, so each is atomic on its own: adding is an `INSERT … ON CONFLICT DO
//! NOTHING` (a conflict is [`StoreError::ChannelExists`]), updates are `UPDATE … WHERE channel_id = $1` (no row
//! is [`StoreError::ChannelNotFound`]), and expiry is a `DELETE … RETURNING`.
//!
//! # JSON
//! Opening data, state and sessions are `jsonb`: any JSON value round-trips, except that PostgreSQL refuses
//! the NUL character (`\u0000`) in strings, and object keys come back in its own order (duplicate keys keep
//! the last value). Ids, topics and user ids are `text`, compared exactly; they may not contain NUL either.
//!
//! # Connection
//! The stores of one [`PostgresStores`] share one connection, made on first use, whose statements are
//! prepared once. When it breaks, or a statement takes longer than 5 s, the operation fails with
//! [`StoreError::Backend`] and the next one connects again. TLS is not spoken (a URL with `sslmode=require` is
//! refused), as with the hub driver.

mod channel;
mod conn;
mod error;
mod hub;
mod schema;
mod session;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pikku_core::stateless::StatelessStores;
use pikku_core::store::StoreError;
use tokio_postgres::config::SslMode;
use tokio_postgres::Config;

pub use channel::PostgresChannelStore;
pub use error::PostgresStoreError;
pub use hub::PostgresEventHubStore;
pub use session::PostgresSessionStore;

use conn::{Conn, Live};
use schema::{prefix_problem, Tables, DEFAULT_PREFIX};

/// Connect timeout when the URL sets none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The three stores on one database, sharing one connection and one table prefix.
///
/// ```
/// use pikku::postgres::store::PostgresStores;
///
/// let stores = PostgresStores::from_url("postgres://postgres@127.0.0.1/postgres")
///     .unwrap()
///     .table_prefix("chat")
///     .unwrap();
/// assert_eq!(stores.prefix(), "chat");
/// let channels = stores.channel_store(); // no I/O until the first operation
/// # let _ = channels;
/// ```
#[derive(Clone)]
pub struct PostgresStores {
    config: Config,
    conn: Arc<Conn>,
}

impl fmt::Debug for PostgresStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStores")
            .field("prefix", &self.conn.tables.prefix)
            .finish_non_exhaustive()
    }
}

impl PostgresStores {
    /// Stores on the database `url` names (a `postgres://` URL or `key=value` pairs); only parses it, the
    /// connection is made on first use.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// assert!(PostgresStores::from_url("host=127.0.0.1 user=postgres").is_ok());
    /// assert!(PostgresStores::from_url("postgres://h/db?sslmode=require").is_err());
    /// ```
    ///
    /// # Errors
    /// [`PostgresStoreError::InvalidUrl`] when it does not parse, [`PostgresStoreError::TlsUnsupported`] when it
    /// requires TLS.
    pub fn from_url(url: &str) -> Result<Self, PostgresStoreError> {
        let mut config = Config::from_str(url).map_err(PostgresStoreError::InvalidUrl)?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(PostgresStoreError::TlsUnsupported);
        }
        config.ssl_mode(SslMode::Disable);
        if config.get_application_name().is_none() {
            config.application_name("pikku-store");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        let conn = Arc::new(Conn::new(config.clone(), Tables::new(DEFAULT_PREFIX)));
        Ok(Self { config, conn })
    }

    /// Names the tables `<prefix>_channels`, `<prefix>_subscriptions` and `<prefix>_sessions` instead of
    /// starting with `pikku_store`, for apps (or tests) that share a database but not their data.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// let stores = PostgresStores::from_url("host=127.0.0.1").unwrap();
    /// assert!(stores.clone().table_prefix("tenant_7").is_ok());
    /// assert!(stores.table_prefix("Not-Allowed").is_err());
    /// ```
    ///
    /// # Errors
    /// [`PostgresStoreError::InvalidPrefix`] unless the prefix is 1 to 38 bytes of lowercase ASCII letters,
    /// digits and `_`.
    pub fn table_prefix(self, prefix: &str) -> Result<Self, PostgresStoreError> {
        if let Some(reason) = prefix_problem(prefix) {
            return Err(PostgresStoreError::InvalidPrefix(reason));
        }
        let conn = Arc::new(Conn::new(self.config.clone(), Tables::new(prefix)));
        Ok(Self {
            config: self.config,
            conn,
        })
    }

    /// The table prefix.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// assert_eq!(PostgresStores::from_url("host=127.0.0.1").unwrap().prefix(), "pikku_store");
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.conn.tables.prefix
    }

    /// Connects now and creates the tables that are missing, as the first operation would; for deploy steps
    /// and health checks that want to know early.
    ///
    /// ```no_run
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// PostgresStores::from_url("postgres://postgres@127.0.0.1/postgres")?.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`PostgresStoreError::Connect`] when connecting, creating the tables or preparing the statements fails;
    /// [`PostgresStoreError::Timeout`] when it takes longer than 5 s.
    pub async fn migrate(&self) -> Result<(), PostgresStoreError> {
        self.conn.migrate().await
    }

    /// The channel-record store.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// let channels = PostgresStores::from_url("host=127.0.0.1").unwrap().channel_store();
    /// # let _ = channels;
    /// ```
    #[must_use]
    pub fn channel_store(&self) -> PostgresChannelStore {
        PostgresChannelStore::new(self.clone())
    }

    /// The subscription store.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// let hub = PostgresStores::from_url("host=127.0.0.1").unwrap().event_hub_store();
    /// # let _ = hub;
    /// ```
    #[must_use]
    pub fn event_hub_store(&self) -> PostgresEventHubStore {
        PostgresEventHubStore::new(self.clone())
    }

    /// The session store.
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// let sessions = PostgresStores::from_url("host=127.0.0.1").unwrap().session_store();
    /// # let _ = sessions;
    /// ```
    #[must_use]
    pub fn session_store(&self) -> PostgresSessionStore {
        PostgresSessionStore::new(self.clone())
    }

    /// All three stores, sharing this connection, for a [`StatelessRuntime`](pikku_core::stateless::StatelessRuntime).
    ///
    /// ```
    /// use pikku::postgres::store::PostgresStores;
    ///
    /// let stores = PostgresStores::from_url("host=127.0.0.1").unwrap().stateless_stores();
    /// # let _ = stores;
    /// ```
    #[must_use]
    pub fn stateless_stores(&self) -> StatelessStores {
        StatelessStores {
            channels: Arc::new(self.channel_store()),
            subscriptions: Arc::new(self.event_hub_store()),
            sessions: Arc::new(self.session_store()),
        }
    }
}

/// Runs `op` on the stores' connection, with its errors as store errors.
async fn run<T, F>(
    stores: &PostgresStores,
    op: impl FnOnce(Arc<Live>) -> F,
) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    stores.conn.run(op).await.map_err(StoreError::from)
}
