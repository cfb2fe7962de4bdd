//! The driver itself: its builder, and the [`HubDriver`] methods the hub calls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pikku_core::hub::{envelope, HubDriver, RemoteEvent, RemoteSink};

use crate::channel::channel_name;
use crate::error::PostgresError;
use crate::message;
use crate::settings::Settings;
use crate::supervisor::{self, State};

/// A [`HubDriver`] that carries hub events between processes through PostgreSQL's `LISTEN`/`NOTIFY`.
///
/// Make one per app with [`from_url`](Self::from_url), adjust it with the builder methods, and install it with
/// [`App::hub_driver`](pikku_core::App::hub_driver). See the [crate docs](crate) for how topics, payloads and
/// outages are handled.
///
/// ```
/// use std::time::Duration;
/// use pikku_postgres::PostgresHub;
///
/// let driver = PostgresHub::from_url("postgres://postgres@127.0.0.1:5432/postgres")?
///     .channel_prefix("chat")
///     .retention(Duration::from_secs(30))
///     .table("chat_hub_payloads");
/// assert_eq!(driver.channel_name("room:1"), "chat:room:1");
/// # Ok::<(), pikku_postgres::PostgresError>(())
/// ```
pub struct PostgresHub {
    settings: Settings,
    state: Arc<State>,
    started: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for PostgresHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration's own Debug would show the password.
        f.debug_struct("PostgresHub")
            .field("hosts", &self.settings.config.get_hosts())
            .field("ports", &self.settings.config.get_ports())
            .field("dbname", &self.settings.config.get_dbname())
            .field("channel_prefix", &self.settings.prefix)
            .field("table", &self.settings.table)
            .field("retention", &self.settings.retention)
            .field("connected", &self.state.current().is_ok())
            .finish()
    }
}

impl PostgresHub {
    /// A driver for the server at `url`, either a URL (`postgres://user:password@host:port/dbname?options`)
    /// or `key=value` pairs (`host=127.0.0.1 user=postgres`), as libpq takes them. Only parses: nothing
    /// connects until the hub starts the driver.
    ///
    /// Connections are plain TCP or Unix sockets; `sslmode=require` is refused. Unless the URL says otherwise,
    /// the sessions are named `pikku-hub` (in `pg_stat_activity`), connecting gives up after 3 s and TCP
    /// keepalives start after 15 s idle.
    ///
    /// ```
    /// use pikku_postgres::{PostgresError, PostgresHub};
    ///
    /// assert!(PostgresHub::from_url("postgres://postgres@127.0.0.1:5432/postgres").is_ok());
    /// assert!(PostgresHub::from_url("host=/run/postgresql user=app dbname=app").is_ok());
    /// assert!(matches!(
    ///     PostgresHub::from_url("postgres://db.internal/app?sslmode=require"),
    ///     Err(PostgresError::TlsUnsupported)
    /// ));
    /// ```
    ///
    /// # Errors
    /// [`PostgresError::InvalidUrl`] when `url` does not parse; [`PostgresError::TlsUnsupported`] when it
    /// requires TLS.
    pub fn from_url(url: &str) -> Result<Self, PostgresError> {
        Ok(Self {
            settings: Settings::from_url(url)?,
            state: Arc::new(State::default()),
            started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts every channel name with `prefix` (default `pikku`), so that several deployments can share one
    /// database without hearing each other. 1 to 28 ASCII letters, digits or `_`; anything else makes
    /// [`start`](HubDriver::start) fail with [`PostgresError::InvalidSetting`].
    ///
    /// ```
    /// let driver = pikku_postgres::PostgresHub::from_url("host=127.0.0.1")?.channel_prefix("staging");
    /// assert_eq!(driver.channel_name("news"), "staging:news");
    /// # Ok::<(), pikku_postgres::PostgresError>(())
    /// ```
    #[must_use]
    pub fn channel_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.settings.prefix);
        self
    }

    /// How long a payload sent by reference stays in the table (default 60 s). Longer than any listener may
    /// lag behind: a row swept before a node fetched it is an event that node misses. Zero makes
    /// [`start`](HubDriver::start) fail.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let driver = pikku_postgres::PostgresHub::from_url("host=127.0.0.1")?.retention(Duration::from_secs(10));
    /// # let _ = driver;
    /// # Ok::<(), pikku_postgres::PostgresError>(())
    /// ```
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.settings.retention = retention;
        self
    }

    /// The table that holds payloads too large for a notification (default `pikku_hub_payloads`), created in
    /// the session's default schema when missing. One identifier of at most 63 bytes, taken as written (case
    /// kept); otherwise [`start`](HubDriver::start) fails.
    ///
    /// ```
    /// let driver = pikku_postgres::PostgresHub::from_url("host=127.0.0.1")?.table("HubPayloads");
    /// # let _ = driver;
    /// # Ok::<(), pikku_postgres::PostgresError>(())
    /// ```
    #[must_use]
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.settings.table);
        self
    }

    /// The channel that carries `topic`, with this driver's prefix; see the [crate docs](crate#channels).
    ///
    /// ```
    /// let driver = pikku_postgres::PostgresHub::from_url("host=127.0.0.1")?;
    /// assert_eq!(driver.channel_name("Room 1"), "pikku:Room 1");
    /// assert!(driver.channel_name(&"x".repeat(200)).starts_with("pikku_h_"));
    /// # Ok::<(), pikku_postgres::PostgresError>(())
    /// ```
    #[must_use]
    pub fn channel_name(&self, topic: &str) -> String {
        channel_name(&self.settings.prefix, topic)
    }

    /// A handle that reports on this driver's link after the driver has moved into its app.
    ///
    /// ```
    /// let driver = pikku_postgres::PostgresHub::from_url("host=127.0.0.1")?;
    /// let probe = driver.probe();
    /// assert!(!probe.is_connected()); // not started yet
    /// # Ok::<(), pikku_postgres::PostgresError>(())
    /// ```
    #[must_use]
    pub fn probe(&self) -> PostgresHubProbe {
        PostgresHubProbe {
            state: self.state.clone(),
        }
    }
}

impl HubDriver for PostgresHub {
    type Error = PostgresError;

    fn name(&self) -> &'static str {
        "postgres"
    }

    /// Checks the settings, makes a first connection attempt and leaves a task that keeps the node linked.
    /// A server that cannot be reached yet is reported to the hub as an outage, not returned.
    async fn start(&self, sink: RemoteSink) -> Result<(), PostgresError> {
        self.settings.check()?;
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(PostgresError::AlreadyStarted);
        }
        let settings = Arc::new(self.settings.clone());
        let first = match supervisor::connect(&settings, &self.state, &sink).await {
            Ok(link) => Some(link),
            Err(error) => {
                sink.disconnected(&error);
                None
            }
        };
        tokio::spawn(supervisor::run(settings, self.state.clone(), sink, first));
        Ok(())
    }

    /// `LISTEN`s on the topic's channel; a topic already received is left as it is.
    async fn subscribe(&self, topic: &str) -> Result<(), PostgresError> {
        self.state
            .current()?
            .listen(&self.settings.prefix, topic)
            .await
    }

    /// `UNLISTEN`s the topic's channel.
    async fn unsubscribe(&self, topic: &str) -> Result<(), PostgresError> {
        self.state.current()?.unlisten(topic).await
    }

    /// `NOTIFY`s the event on its topic's channel, inline or by reference.
    async fn publish(&self, event: &RemoteEvent) -> Result<(), PostgresError> {
        let link = self.state.current()?;
        let channel = channel_name(&self.settings.prefix, &event.topic);
        let envelope = envelope::encode(event);
        match message::inline_text(&envelope) {
            Some(text) => link.publisher.notify(&channel, &text).await,
            None => {
                self.state.published_by_reference();
                let head = message::reference_head(event.origin);
                link.publisher
                    .notify_by_reference(&channel, &head, &envelope)
                    .await
            }
        }
    }
}

/// Reports on one [`PostgresHub`]'s link from outside the app that owns it: for health checks, and for tests
/// that ask PostgreSQL what a node listens to.
///
/// ```no_run
/// use pikku::App;
/// use pikku_postgres::PostgresHub;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let driver = PostgresHub::from_url("postgres://postgres@127.0.0.1:5432/postgres")?;
/// let probe = driver.probe();
/// let hub = App::<()>::new(()).hub_driver(driver).hub();
/// hub.start().await?;
/// println!("listening to {:?}", probe.listening_channels().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresHubProbe {
    state: Arc<State>,
}

impl fmt::Debug for PostgresHubProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresHubProbe")
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl PostgresHubProbe {
    /// Whether the driver has a live link now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.state.current().is_ok()
    }

    /// The channels the node's listening session listens to, from PostgreSQL's `pg_listening_channels()` run
    /// on that very session (the function only ever reports the session that calls it).
    ///
    /// # Errors
    /// [`PostgresError::Disconnected`] while the link is down; [`PostgresError::Query`] or
    /// [`PostgresError::Timeout`] when the query fails.
    pub async fn listening_channels(&self) -> Result<Vec<String>, PostgresError> {
        self.state.current()?.listening_channels().await
    }
}
