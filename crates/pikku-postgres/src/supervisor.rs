//! Keeps a node linked: reconnects with backoff when the link breaks, tells the hub, and sweeps old payloads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pikku_core::hub::RemoteSink;

use crate::error::{Chain, PostgresError};
use crate::link::{Link, REQUEST_TIMEOUT};
use crate::settings::Settings;

/// First wait between failed connection attempts; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between attempts: a server that is back is found within half a second.
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Longest wait between checks that the hub still exists.
const TICK_MAX: Duration = Duration::from_secs(1);

/// What a node's driver shares with its supervisor task.
#[derive(Default)]
pub(crate) struct State {
    /// The live link; `None` while reconnecting.
    link: Mutex<Option<Arc<Link>>>,
    /// When this node last published by reference, so sweeping stops once its rows have aged out.
    last_reference: Mutex<Option<Instant>>,
}

impl State {
    /// The live link, or [`PostgresError::Disconnected`].
    pub(crate) fn current(&self) -> Result<Arc<Link>, PostgresError> {
        lock(&self.link)
            .clone()
            .filter(|link| !link.is_broken())
            .ok_or(PostgresError::Disconnected)
    }

    pub(crate) fn published_by_reference(&self) {
        *lock(&self.last_reference) = Some(Instant::now());
    }

    fn install(&self, link: Arc<Link>) {
        *lock(&self.link) = Some(link);
    }

    fn remove(&self, link: &Arc<Link>) {
        let mut current = lock(&self.link);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, link)) {
            *current = None;
        }
    }

    fn referenced_within(&self, period: Duration) -> bool {
        lock(&self.last_reference).is_some_and(|at| at.elapsed() <= period)
    }
}

/// These locks guard plain values and are never held across an await or a panic-prone call.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens a link within a bounded time and makes it the live one; the hub hears of it after that, so every
/// topic it subscribes again lands on this link.
pub(crate) async fn connect(
    settings: &Settings,
    state: &State,
    sink: &RemoteSink,
) -> Result<Arc<Link>, PostgresError> {
    let link = tokio::time::timeout(2 * REQUEST_TIMEOUT, Link::open(settings, sink))
        .await
        .unwrap_or(Err(PostgresError::Timeout))?;
    state.install(link.clone());
    sink.connected();
    Ok(link)
}

/// Runs until the hub is gone, starting from `link` when the first attempt made one.
pub(crate) async fn run(
    settings: Arc<Settings>,
    state: Arc<State>,
    sink: RemoteSink,
    mut link: Option<Arc<Link>>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let live = match link.take() {
            Some(live) => live,
            None => match connect(&settings, &state, &sink).await {
                Ok(live) => {
                    backoff = BACKOFF_MIN;
                    live
                }
                Err(error) => {
                    if sink.is_closed() {
                        return;
                    }
                    tracing::debug!(backend = "postgres", error = %Chain(&error), "reconnect attempt failed");
                    sink.disconnected(&error);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let outcome = watch(&settings, &state, &sink, &live).await;
        state.remove(&live);
        // Dropping the last handle closes both sessions; the tasks that drive them end on their own.
        drop(live);
        match outcome {
            Some(error) if !sink.is_closed() => sink.disconnected(&*error),
            _ => return,
        }
    }
}

/// Waits for `link` to break (its error) or the hub to go (`None`), sweeping the payload table meanwhile.
async fn watch(
    settings: &Settings,
    state: &State,
    sink: &RemoteSink,
    link: &Link,
) -> Option<Arc<PostgresError>> {
    let sweep_every = settings.sweep_every();
    // Rows this node stored are old enough to go `retention` after the last one; a little later, they are gone.
    let sweep_while = settings.retention + 2 * sweep_every;
    let mut tick = tokio::time::interval(sweep_every.min(TICK_MAX));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep: Option<Instant> = None;
    loop {
        tokio::select! {
            error = link.broken() => return Some(error),
            _ = tick.tick() => {
                if sink.is_closed() {
                    return None;
                }
                // The first sweep of each link clears what earlier runs left behind.
                let due = match last_sweep {
                    None => true,
                    Some(at) => at.elapsed() >= sweep_every && state.referenced_within(sweep_while),
                };
                if due {
                    last_sweep = Some(Instant::now());
                    match link.publisher.sweep(settings.retention).await {
                        Ok(0) => {}
                        Ok(rows) => tracing::debug!(backend = "postgres", rows, "swept old payloads"),
                        Err(error) => tracing::debug!(backend = "postgres", error = %Chain(&error), "sweeping old payloads failed"),
                    }
                }
            }
        }
    }
}
