//! [`NatsHub`]: the [`HubDriver`] over one NATS connection.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::ConnectOptions;
use parking_lot::Mutex;
use pikku_core::hub::{envelope, HubDriver, RemoteEvent, RemoteSink};
use tokio::sync::{mpsc, watch};

use crate::config::Servers;
use crate::error::NatsError;
use crate::link::{self, Link, LinkEvent};
use crate::subject;
use crate::topic_task::TopicTask;

/// The subject prefix unless [`NatsHub::subject_prefix`] says otherwise.
pub const DEFAULT_SUBJECT_PREFIX: &str = "pikku";

/// The longest wait between reconnect attempts unless [`NatsHub::max_reconnect_delay`] says otherwise.
pub const DEFAULT_MAX_RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// How long `start` waits for the first connection attempt before it reports the link down and returns.
const FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(2);

/// How long a subscription's confirmation round trip may take (see [`Link::barrier`]).
const BARRIER_WAIT: Duration = Duration::from_secs(2);

/// How often the client pings an idle server; two unanswered pings mark the link down. The client's default
/// (60 s) would leave a silently vanished server undetected for minutes.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// A [`HubDriver`] that links the hubs of several processes through a NATS server (or cluster).
///
/// Each hub gets its own connection. Build one per app with [`from_url`](Self::from_url) and install it with
/// [`App::hub_driver`](pikku_core::App::hub_driver); the hub starts it. See the [crate docs](crate) for the
/// subjects used, the delivery guarantees and the reconnect behaviour.
///
/// ```
/// use std::time::Duration;
/// use pikku_nats::NatsHub;
///
/// let driver = NatsHub::from_url("nats://127.0.0.1:4222")?
///     .subject_prefix("myapp.hub")?
///     .max_reconnect_delay(Duration::from_secs(1));
/// assert_eq!(driver.subject_for("room:1"), "myapp.hub.room:1");
/// # Ok::<(), pikku_nats::NatsError>(())
/// ```
pub struct NatsHub {
    servers: Servers,
    prefix: String,
    max_reconnect_delay: Duration,
    /// Set once by `start`.
    link: OnceLock<Arc<Link>>,
}

impl fmt::Debug for NatsHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsHub")
            .field("servers", &self.servers.shown)
            .field("prefix", &self.prefix)
            .field("started", &self.link.get().is_some())
            .finish_non_exhaustive()
    }
}

impl NatsHub {
    /// A driver for the server at `url`; nothing is connected until the hub starts it.
    ///
    /// `url` is `nats://host:port` (the port defaults to 4222, the scheme to `nats://`), or several of them
    /// separated by commas for a cluster: the client picks one and moves to another when it fails. Credentials
    /// go in the user part, `nats://user:password@host:port` or `nats://token@host:port` (percent-encoded),
    /// and apply to every server of the list. Only plain connections are supported: `tls://`, and servers that
    /// demand TLS, are not.
    ///
    /// ```
    /// use pikku_nats::NatsHub;
    ///
    /// assert!(NatsHub::from_url("nats://127.0.0.1:4222").is_ok());
    /// assert!(NatsHub::from_url("nats://hub:s3cret@10.0.0.1:4222, nats://10.0.0.2:4222").is_ok());
    /// assert!(NatsHub::from_url("tls://10.0.0.1:4222").is_err());
    /// ```
    ///
    /// # Errors
    /// [`NatsError::BadUrl`] for a URL that is not a `nats://` address (or list of them).
    pub fn from_url(url: &str) -> Result<Self, NatsError> {
        Ok(Self {
            servers: Servers::parse(url)?,
            prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            max_reconnect_delay: DEFAULT_MAX_RECONNECT_DELAY,
            link: OnceLock::new(),
        })
    }

    /// Puts every topic under `prefix` (default `"pikku"`): topic `news` travels on `<prefix>.news`. Apps that
    /// share a server without sharing topics use different prefixes; apps whose hubs must share topics use the
    /// same one.
    ///
    /// ```
    /// use pikku_nats::NatsHub;
    ///
    /// let driver = NatsHub::from_url("nats://127.0.0.1:4222")?.subject_prefix("tenant-7.events")?;
    /// assert_eq!(driver.subject_for("news"), "tenant-7.events.news");
    /// assert!(NatsHub::from_url("nats://127.0.0.1:4222")?.subject_prefix("a.*").is_err());
    /// # Ok::<(), pikku_nats::NatsError>(())
    /// ```
    ///
    /// # Errors
    /// [`NatsError::InvalidPrefix`] unless `prefix` is a literal subject: non-empty tokens separated by `.`,
    /// without whitespace, `*` or `>`.
    pub fn subject_prefix(mut self, prefix: &str) -> Result<Self, NatsError> {
        if !subject::is_valid_prefix(prefix) {
            return Err(NatsError::InvalidPrefix(prefix.to_owned()));
        }
        prefix.clone_into(&mut self.prefix);
        Ok(self)
    }

    /// The longest wait between two reconnect attempts (default 250 ms). The first attempt after a loss is
    /// immediate, the next ones wait 50 ms, doubling up to this bound, so a restarted server is found again
    /// within about this long. Raise it when many processes share a server that should not be hammered while
    /// it is away.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pikku_nats::NatsHub;
    ///
    /// let driver = NatsHub::from_url("nats://127.0.0.1:4222")?.max_reconnect_delay(Duration::from_secs(2));
    /// # let _ = driver;
    /// # Ok::<(), pikku_nats::NatsError>(())
    /// ```
    #[must_use]
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// The subject that carries `topic`: the prefix, a `.`, and the topic as one token, in which every byte
    /// other than ASCII letters, digits, `_`, `-` and `:` is written `%XX` (upper-case hex). The empty topic,
    /// which the hub refuses anyway, is the token `%`. Distinct topics never share a subject, and a topic can
    /// never act as a wildcard or add tokens.
    ///
    /// ```
    /// use pikku_nats::NatsHub;
    ///
    /// let driver = NatsHub::from_url("nats://127.0.0.1:4222")?;
    /// assert_eq!(driver.subject_for("room:42"), "pikku.room:42");
    /// assert_eq!(driver.subject_for("room.42"), "pikku.room%2E42");
    /// assert_eq!(driver.subject_for("a b*>"), "pikku.a%20b%2A%3E");
    /// assert_eq!(driver.subject_for("50%"), "pikku.50%25");
    /// assert_eq!(driver.subject_for("café"), "pikku.caf%C3%A9");
    /// # Ok::<(), pikku_nats::NatsError>(())
    /// ```
    #[must_use]
    pub fn subject_for(&self, topic: &str) -> String {
        subject::subject(&self.prefix, topic)
    }

    fn link(&self) -> Result<&Arc<Link>, NatsError> {
        self.link.get().ok_or_else(|| NatsError::LinkDown {
            servers: self.servers.shown.clone(),
        })
    }

    fn connect_options(
        &self,
        sink: &RemoteSink,
        events: mpsc::UnboundedSender<LinkEvent>,
    ) -> ConnectOptions {
        let max_delay = self.max_reconnect_delay;
        let name = match sink.node() {
            Some(node) => format!("pikku hub {node}"),
            None => "pikku hub".to_owned(),
        };
        let options = ConnectOptions::new()
            .name(name)
            // The hub drops its own publications anyway; the server need not send them back.
            .no_echo()
            // A server that is down at start is not an error: keep trying in the background.
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempt| link::reconnect_delay(attempt, max_delay))
            .ping_interval(PING_INTERVAL)
            .request_timeout(Some(BARRIER_WAIT))
            .event_callback(move |event| {
                let _ = events.send(LinkEvent::Client(event));
                std::future::ready(())
            });
        self.servers.authenticate(options)
    }
}

impl HubDriver for NatsHub {
    type Error = NatsError;

    fn name(&self) -> &'static str {
        "nats"
    }

    /// Creates the connection, which then connects (and reconnects) in the background, and waits briefly for
    /// the first attempt so the hub's status tells the truth when this returns.
    async fn start(&self, sink: RemoteSink) -> Result<(), NatsError> {
        if self.link.get().is_some() {
            return Ok(());
        }
        let (events, events_rx) = mpsc::unbounded_channel();
        let servers: Arc<str> = Arc::from(self.servers.shown.as_str());
        let client = self
            .connect_options(&sink, events.clone())
            .connect(self.servers.addrs.clone())
            .await
            .map_err(|err| NatsError::Connect {
                servers: servers.to_string(),
                reason: err.to_string(),
            })?;
        let link = Arc::new(Link {
            client,
            servers: servers.clone(),
            topics: Mutex::new(HashMap::new()),
            sink: sink.clone(),
        });
        let (verdict, mut first_outcome) = watch::channel(false);
        // The reporter holds the link weakly: once the driver is dropped, the client goes, its events end, and
        // so does the reporter.
        tokio::spawn(link::report(
            events_rx,
            Arc::downgrade(&link),
            sink,
            verdict,
            servers,
        ));
        if self.link.set(link).is_err() {
            return Ok(());
        }
        if tokio::time::timeout(FIRST_ATTEMPT_WAIT, first_outcome.wait_for(|seen| *seen))
            .await
            .is_err()
        {
            let _ = events.send(LinkEvent::FirstAttemptSlow);
            let _ = first_outcome.wait_for(|seen| *seen).await;
        }
        Ok(())
    }

    /// Idempotent: the hub subscribes every topic again after each reconnect, while the client has already
    /// restored its subscriptions itself, so a topic held already keeps its one subscription. Either way the
    /// call returns once the server has the subscription, and fails while the link is down.
    async fn subscribe(&self, topic: &str) -> Result<(), NatsError> {
        let link = self.link()?;
        link.ensure_up()?;
        let subject = self.subject_for(topic);
        let held = link.topics.lock().contains_key(topic);
        if !held {
            let subscriber = link
                .client
                .subscribe(subject.clone())
                .await
                .map_err(|err| NatsError::Subscribe {
                    subject: subject.clone(),
                    source: Box::new(err),
                })?;
            let topic: Arc<str> = Arc::from(topic);
            let task = TopicTask::spawn(topic.clone(), subscriber, link.sink.clone());
            // The hub never subscribes one topic concurrently, so nothing can have taken the slot meanwhile.
            link.topics.lock().insert(topic, task);
        }
        link.barrier(&subject).await
    }

    /// Ends the topic's subscription on the server; a topic not held is a no-op. While the link is down the
    /// client sends the UNSUB on reconnect, so this never fails.
    async fn unsubscribe(&self, topic: &str) -> Result<(), NatsError> {
        let Some(link) = self.link.get() else {
            return Ok(());
        };
        let task = link.topics.lock().remove(topic);
        if let Some(task) = task {
            task.stop().await;
        }
        Ok(())
    }

    /// Publishes one envelope to the topic's subject. While the link is down it fails at once rather than
    /// letting the client buffer the event for an unknown time.
    async fn publish(&self, event: &RemoteEvent) -> Result<(), NatsError> {
        let link = self.link()?;
        link.ensure_up()?;
        let subject = self.subject_for(&event.topic);
        link.client
            .publish(subject.clone(), envelope::encode(event))
            .await
            .map_err(|err| NatsError::Publish {
                subject,
                source: Box::new(err),
            })
    }
}
