//! One link to PostgreSQL: a listening session and a publishing session, made and lost together.
//!
//! The listening session only runs `LISTEN`/`UNLISTEN` and receives notifications. Everything else (NOTIFY,
//! storing and fetching payloads sent by reference, sweeping old ones) goes through the publishing session.
//! Keeping them apart means a listener that waits for its receiver to catch up never holds up a publication,
//! and a fetch made while notifications queue up cannot wait on the very connection that queues them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::poll_fn;
use pikku_core::hub::RemoteSink;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Notification, Socket, Statement};

use crate::channel::{channel_name, quote_ident};
use crate::error::PostgresError;
use crate::receiver;
use crate::settings::Settings;
use crate::tripwire::Tripwire;

/// How long any one statement may take before the link counts as broken and is replaced.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Notifications taken off the listening connection before it stops reading (and PostgreSQL queues them).
const NOTIFICATION_QUEUE: usize = 1024;

/// The live link: both sessions, what the listening one listens to, and the one error that ends it.
pub(crate) struct Link {
    listener: Client,
    subscriptions: Mutex<Subscriptions>,
    pub(crate) publisher: Arc<Publisher>,
    tripwire: Arc<Tripwire>,
}

/// Topics this link receives, and how many of them each channel carries (two topics share a channel only if
/// their hashed names collide).
#[derive(Default)]
struct Subscriptions {
    topics: HashMap<Box<str>, String>,
    channels: HashMap<String, usize>,
}

impl Link {
    /// Opens both sessions, prepares the publishing one and starts receiving into `sink`.
    pub(crate) async fn open(
        settings: &Settings,
        sink: &RemoteSink,
    ) -> Result<Arc<Self>, PostgresError> {
        let tripwire = Arc::new(Tripwire::new());
        let (listener, connection) = settings
            .config
            .connect(NoTls)
            .await
            .map_err(PostgresError::Connect)?;
        let (notifications, received) = mpsc::channel(NOTIFICATION_QUEUE);
        tokio::spawn(drive_listener(connection, notifications, tripwire.clone()));

        let (client, connection) = settings
            .config
            .connect(NoTls)
            .await
            .map_err(PostgresError::Connect)?;
        tokio::spawn(drive_publisher(connection, tripwire.clone()));
        let publisher = Arc::new(Publisher::prepare(client, settings, tripwire.clone()).await?);

        tokio::spawn(receiver::run(received, publisher.clone(), sink.clone()));
        Ok(Arc::new(Self {
            listener,
            subscriptions: Mutex::new(Subscriptions::default()),
            publisher,
            tripwire,
        }))
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.tripwire.is_tripped()
    }

    /// Waits until the link breaks; why it did.
    pub(crate) async fn broken(&self) -> Arc<PostgresError> {
        self.tripwire.tripped().await
    }

    /// Starts receiving `topic`. Already receiving it: nothing to do.
    pub(crate) async fn listen(&self, prefix: &str, topic: &str) -> Result<(), PostgresError> {
        let mut subs = self.subscriptions.lock().await;
        if subs.topics.contains_key(topic) {
            return Ok(());
        }
        let channel = channel_name(prefix, topic);
        if !subs.channels.contains_key(&channel) {
            let sql = format!("LISTEN {}", quote_ident(&channel));
            bounded(&self.tripwire, self.listener.batch_execute(&sql)).await?;
        }
        *subs.channels.entry(channel.clone()).or_default() += 1;
        subs.topics.insert(topic.into(), channel);
        Ok(())
    }

    /// Stops receiving `topic`; its channel is released once no topic needs it.
    pub(crate) async fn unlisten(&self, topic: &str) -> Result<(), PostgresError> {
        let mut subs = self.subscriptions.lock().await;
        let Some(channel) = subs.topics.remove(topic) else {
            return Ok(());
        };
        let users = subs
            .channels
            .get_mut(&channel)
            .expect("counted with its topic");
        *users -= 1;
        if *users > 0 {
            return Ok(());
        }
        subs.channels.remove(&channel);
        let sql = format!("UNLISTEN {}", quote_ident(&channel));
        bounded(&self.tripwire, self.listener.batch_execute(&sql)).await
    }

    /// The channels the listening session listens to, as PostgreSQL itself reports them.
    pub(crate) async fn listening_channels(&self) -> Result<Vec<String>, PostgresError> {
        let rows = bounded(
            &self.tripwire,
            self.listener.query("SELECT pg_listening_channels()", &[]),
        )
        .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// The publishing session with its prepared statements.
pub(crate) struct Publisher {
    client: Client,
    notify: Statement,
    notify_by_reference: Statement,
    fetch: Statement,
    sweep: Statement,
    tripwire: Arc<Tripwire>,
}

impl Publisher {
    async fn prepare(
        client: Client,
        settings: &Settings,
        tripwire: Arc<Tripwire>,
    ) -> Result<Self, PostgresError> {
        let table = quote_ident(&settings.table);
        // A notification is worth nothing after a crash, so its commit need not wait for the disk.
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(PostgresError::Connect)?;
        create_table(&client, &table).await?;
        let prepare = |sql: String| {
            let client = &client;
            async move { client.prepare(&sql).await.map_err(PostgresError::Connect) }
        };
        Ok(Self {
            notify: prepare("SELECT pg_notify($1, $2)".to_owned()).await?,
            // One statement, so the row and its notification commit together and the notification takes its
            // place among this session's others.
            notify_by_reference: prepare(format!(
                "WITH stored AS (INSERT INTO {table} (body) VALUES ($1) RETURNING id) \
                 SELECT pg_notify($2, $3::text || stored.id::text) FROM stored"
            ))
            .await?,
            fetch: prepare(format!("SELECT body FROM {table} WHERE id = $1")).await?,
            sweep: prepare(format!(
                "DELETE FROM {table} WHERE created_at < now() - make_interval(secs => $1)"
            ))
            .await?,
            client,
            tripwire,
        })
    }

    /// Sends `text` on `channel`.
    pub(crate) async fn notify(&self, channel: &str, text: &str) -> Result<(), PostgresError> {
        bounded(
            &self.tripwire,
            self.client.execute(&self.notify, &[&channel, &text]),
        )
        .await
        .map(drop)
    }

    /// Stores `envelope` and sends `head` followed by its row id on `channel`.
    pub(crate) async fn notify_by_reference(
        &self,
        channel: &str,
        head: &str,
        envelope: &[u8],
    ) -> Result<(), PostgresError> {
        bounded(
            &self.tripwire,
            self.client
                .execute(&self.notify_by_reference, &[&envelope, &channel, &head]),
        )
        .await
        .map(drop)
    }

    /// The envelope stored in row `id`.
    pub(crate) async fn fetch(&self, id: i64) -> Result<Bytes, PostgresError> {
        let row = bounded(&self.tripwire, self.client.query_opt(&self.fetch, &[&id]))
            .await?
            .ok_or(PostgresError::PayloadGone(id))?;
        let body: Vec<u8> = row.try_get(0).map_err(PostgresError::Query)?;
        Ok(Bytes::from(body))
    }

    /// Deletes stored payloads older than `retention`; how many.
    pub(crate) async fn sweep(&self, retention: Duration) -> Result<u64, PostgresError> {
        bounded(
            &self.tripwire,
            self.client
                .execute(&self.sweep, &[&retention.as_secs_f64()]),
        )
        .await
    }
}

/// Creates the payload table unless it exists. Unlogged: payloads live for seconds, so they need no WAL (and
/// LISTEN does not work on standbys, which are what WAL would feed).
async fn create_table(client: &Client, table: &str) -> Result<(), PostgresError> {
    let sql = format!(
        "CREATE UNLOGGED TABLE IF NOT EXISTS {table} (\
           id bigserial PRIMARY KEY, \
           created_at timestamptz NOT NULL DEFAULT now(), \
           body bytea NOT NULL)"
    );
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        // Two nodes creating it at the same moment: one of them loses the race on the catalog, which means the
        // table is there.
        Err(e)
            if e.code().is_some_and(|code| {
                [
                    SqlState::UNIQUE_VIOLATION,
                    SqlState::DUPLICATE_TABLE,
                    SqlState::DUPLICATE_OBJECT,
                ]
                .contains(code)
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(PostgresError::Connect(e)),
    }
}

/// Runs one statement within [`REQUEST_TIMEOUT`]; past it the link is marked broken.
async fn bounded<T>(
    tripwire: &Tripwire,
    request: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PostgresError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(PostgresError::Query),
        Err(_) => {
            tripwire.trip(PostgresError::Timeout);
            Err(PostgresError::Timeout)
        }
    }
}

/// Drives the listening connection and hands its notifications on, in the order they came.
async fn drive_listener(
    mut connection: Connection<Socket, tokio_postgres::tls::NoTlsStream>,
    notifications: mpsc::Sender<Notification>,
    tripwire: Arc<Tripwire>,
) {
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                // While the receiver is behind, this connection is not read and PostgreSQL holds the rest.
                if notifications.send(notification).await.is_err() {
                    return;
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::debug!(backend = "postgres", notice = %notice, "notice on the listening connection");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tripwire.trip(PostgresError::LinkLost(Some(e)));
                return;
            }
            None => {
                tripwire.trip(PostgresError::LinkLost(None));
                return;
            }
        }
    }
}

/// Drives the publishing connection until it ends.
async fn drive_publisher(
    connection: Connection<Socket, tokio_postgres::tls::NoTlsStream>,
    tripwire: Arc<Tripwire>,
) {
    let error = connection.await.err();
    tripwire.trip(PostgresError::LinkLost(error));
}
