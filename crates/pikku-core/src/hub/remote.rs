//! The hub's side of a driver: starting it, keeping the broker's topic set equal to the local one (the
//! reconciler), and the link's status.
//!
//! Local code never waits on the broker to change the local map: a subscribe, unsubscribe or disconnect only
//! marks its topic dirty and wakes the reconciler, which compares the topics that have local subscribers with
//! the ones the broker was told about and sends the difference, one topic at a time. A topic that comes and
//! goes before the reconciler looks at it costs the broker nothing. After an outage the reconciler sends every
//! topic again.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use super::driver::{ErasedDriver, NodeId, RemoteSink};
use super::HubInner;
use crate::error::BackendError;

/// First wait before retrying a topic the broker refused; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How long a subscribe that creates a topic waits for the broker to confirm it, while the link is up.
pub(super) const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The state of a hub's broker link, as [`EventHub::status`](super::EventHub::status) reports it.
///
/// ```
/// use pikku::hub::{LinkState, LocalBus};
/// use pikku::App;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app: App<()> = App::new(()).hub_driver(LocalBus::new().node());
/// let hub = app.hub();
/// hub.start().await.unwrap();
/// let status = hub.status().expect("a driver is installed");
/// assert_eq!(status.backend, "local");
/// assert!(matches!(status.link, LinkState::Connected { .. }));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// The driver has not finished starting.
    Starting,
    /// Up since this instant.
    Connected {
        /// When the link came up.
        since: Instant,
    },
    /// Down since this instant; the driver is reconnecting.
    Reconnecting {
        /// When the link went down.
        since: Instant,
    },
    /// The driver could not start (its configuration can never work); see [`HubStatus::last_error`].
    Failed,
}

/// A snapshot of a hub's broker link.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubStatus {
    /// The driver's name (`"redis"`, `"nats"`, ...).
    pub backend: &'static str,
    /// This hub's id among the nodes.
    pub node: NodeId,
    /// Up, down, or not started.
    pub link: LinkState,
    /// The last error the link reported, with when; kept after recovery.
    pub last_error: Option<(SystemTime, BackendError)>,
    /// Topics the broker currently delivers to this node.
    pub broker_topics: usize,
    /// Topics with local subscribers that the broker was not told about yet.
    pub pending_topics: usize,
}

/// Where the driver's start stands; publishers wait for `Done`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    NotStarted,
    Starting,
    Done(Result<(), BackendError>),
}

/// Everything about the driver that the hub shares with the reconciler task.
pub(super) struct Remote {
    pub(super) driver: Arc<dyn ErasedDriver>,
    state: Arc<ReconcileState>,
}

struct ReconcileState {
    /// Topics whose local presence may differ from the broker's; the reconciler takes them.
    dirty: Mutex<HashSet<Arc<str>>>,
    /// Topics the broker delivers to this node.
    applied: Mutex<HashSet<Arc<str>>>,
    wake: Notify,
    /// Bumped after every pass, so subscribers waiting for a confirmation look again.
    passes: watch::Sender<u64>,
    start: watch::Sender<Start>,
    link: Mutex<LinkInfo>,
    closed: std::sync::atomic::AtomicBool,
}

struct LinkInfo {
    link: LinkState,
    last_error: Option<(SystemTime, BackendError)>,
}

impl Remote {
    pub(super) fn new(driver: Arc<dyn ErasedDriver>) -> Self {
        Self {
            driver,
            state: Arc::new(ReconcileState {
                dirty: Mutex::new(HashSet::new()),
                applied: Mutex::new(HashSet::new()),
                wake: Notify::new(),
                passes: watch::Sender::new(0),
                start: watch::Sender::new(Start::NotStarted),
                link: Mutex::new(LinkInfo {
                    link: LinkState::Starting,
                    last_error: None,
                }),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Starts the driver and the reconciler once, on the current Tokio runtime; later calls do nothing.
    pub(super) fn ensure_started(&self, hub: &Arc<HubInner>) {
        let mut first = false;
        self.state.start.send_if_modified(|start| {
            first = *start == Start::NotStarted;
            if first {
                *start = Start::Starting;
            }
            first
        });
        if first {
            let sink = RemoteSink {
                hub: Arc::downgrade(hub),
            };
            tokio::spawn(run(
                self.driver.clone(),
                self.state.clone(),
                sink,
                Arc::downgrade(hub),
            ));
        }
    }

    /// Waits until the driver has started; its start error, if it failed.
    pub(super) async fn started(&self) -> Result<(), BackendError> {
        let mut rx = self.state.start.subscribe();
        let done = rx
            .wait_for(|s| matches!(s, Start::Done(_)))
            .await
            .expect("the sender lives in self");
        match &*done {
            Start::Done(result) => result.clone(),
            _ => unreachable!("waited for Done"),
        }
    }

    /// Marks `topic` for the reconciler: its local presence changed.
    pub(super) fn topic_changed(&self, topic: &Arc<str>) {
        self.state.dirty.lock().insert(topic.clone());
        self.state.wake.notify_one();
    }

    /// Waits (bounded by [`CONFIRM_TIMEOUT`]) until the broker delivers `topic` here, or the link is down; then
    /// the local subscription stands and the reconciler catches up on reconnect.
    pub(super) async fn confirmed(&self, topic: &str) {
        let mut passes = self.state.passes.subscribe();
        let wait = async {
            loop {
                if self.state.applied.lock().contains(topic) || !self.link_may_confirm() {
                    return;
                }
                if passes.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(CONFIRM_TIMEOUT, wait).await;
    }

    /// Whether a confirmation can still come soon: the link is up or still starting.
    fn link_may_confirm(&self) -> bool {
        matches!(
            self.state.link.lock().link,
            LinkState::Connected { .. } | LinkState::Starting
        )
    }

    pub(super) fn status(&self, node: NodeId) -> HubStatus {
        let info = self.state.link.lock();
        HubStatus {
            backend: self.driver.name(),
            node,
            link: info.link.clone(),
            last_error: info.last_error.clone(),
            broker_topics: self.state.applied.lock().len(),
            pending_topics: self.state.dirty.lock().len(),
        }
    }

    /// The link came up: after an outage, every needed topic is sent again.
    pub(super) fn link_up_reported(&self, hub: &HubInner) {
        let mut info = self.state.link.lock();
        let outage = match info.link {
            LinkState::Reconnecting { since } => Some(since.elapsed()),
            _ => None,
        };
        info.link = LinkState::Connected {
            since: Instant::now(),
        };
        drop(info);
        if let Some(outage) = outage {
            tracing::info!(
                backend = self.driver.name(),
                outage_ms = outage.as_millis() as u64,
                "event hub backend reconnected; resubscribing"
            );
            self.state.applied.lock().clear();
            self.state.dirty.lock().extend(hub.local_topics());
        }
        self.state.passes.send_modify(|n| *n += 1);
        self.state.wake.notify_one();
    }

    /// The link went down: logged once per outage.
    pub(super) fn link_down_reported(&self, error: BackendError) {
        let mut info = self.state.link.lock();
        let newly = !matches!(info.link, LinkState::Reconnecting { .. });
        if newly {
            tracing::warn!(backend = self.driver.name(), error = %error, "event hub backend lost; reconnecting");
            info.link = LinkState::Reconnecting {
                since: Instant::now(),
            };
        }
        info.last_error = Some((SystemTime::now(), error));
        drop(info);
        // Subscribers waiting for a confirmation stop waiting.
        self.state.passes.send_modify(|n| *n += 1);
    }

    pub(super) fn close(&self) {
        self.state
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.state.wake.notify_one();
    }
}

/// The driver's task: start it, then reconcile until the hub is gone.
async fn run(
    driver: Arc<dyn ErasedDriver>,
    state: Arc<ReconcileState>,
    sink: RemoteSink,
    hub: Weak<HubInner>,
) {
    let started = driver.start(sink).await;
    if let Err(err) = &started {
        tracing::error!(backend = driver.name(), error = %err, "event hub backend failed to start");
        let mut info = state.link.lock();
        info.link = LinkState::Failed;
        info.last_error = Some((SystemTime::now(), err.clone()));
    } else {
        let mut info = state.link.lock();
        if info.link == LinkState::Starting {
            info.link = LinkState::Connected {
                since: Instant::now(),
            };
        }
    }
    let failed = started.is_err();
    state.start.send_replace(Start::Done(started));
    if let Some(hub) = hub.upgrade() {
        hub.report_link();
    }
    if failed {
        return;
    }
    let mut retry = RETRY_MIN;
    loop {
        if state.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let batch: Vec<Arc<str>> = state.dirty.lock().drain().collect();
        let mut refused = false;
        for topic in batch {
            let Some(hub) = hub.upgrade() else { return };
            let wanted = hub.has_local(&topic);
            drop(hub);
            let held = state.applied.lock().contains(&topic);
            let result = match (wanted, held) {
                (true, false) => driver.subscribe(&topic).await.map(|()| {
                    state.applied.lock().insert(topic.clone());
                }),
                (false, true) => {
                    // Forget it either way: a failed unsubscribe on a lost link left nothing on the broker, and
                    // one that failed on a live link only costs ignored deliveries until the next outage.
                    state.applied.lock().remove(&topic);
                    driver.unsubscribe(&topic).await
                }
                _ => Ok(()),
            };
            if let Err(err) = result {
                tracing::debug!(backend = driver.name(), %topic, error = %err, "broker subscription change failed; will retry");
                if wanted {
                    state.dirty.lock().insert(topic);
                    refused = true;
                }
            }
        }
        state.passes.send_modify(|n| *n += 1);
        if refused {
            // A link that comes back (or a new topic) wakes the loop early: the topics refused during an
            // outage are sent as soon as the broker is there again, not after the backoff.
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = state.wake.notified() => {}
            }
            retry = (retry * 2).min(RETRY_MAX);
            continue;
        }
        retry = RETRY_MIN;
        if state.dirty.lock().is_empty() {
            state.wake.notified().await;
        }
    }
}
