//! Reconnecting: the [`Backoff`] between attempts, the [`ConnectionState`] handles observe, and the signal
//! that tells the connection task the user is done with it.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::connect::Opener;
use crate::{ClientError, Close};

/// How long to wait between reconnect attempts: exponential, capped, with jitter
/// (see [`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)).
///
/// Before attempt `n` (from 1) the client waits [`delay(n)`](Backoff::delay) = `initial × factorⁿ⁻¹`, at most
/// `max`, shortened by a random part of up to `jitter` of it, so that clients dropped together by a restart
/// do not all come back at the same instant. The count starts again once a connection is open.
///
/// ```
/// use std::time::Duration;
/// use pikku_client::Backoff;
///
/// let backoff = Backoff::default(); // 250 ms, doubling, at most 5 s, half of it jittered, no attempt limit
/// assert_eq!(backoff.delay(1), Duration::from_millis(250));
/// assert_eq!(backoff.delay(3), Duration::from_secs(1));
/// assert_eq!(backoff.delay(30), Duration::from_secs(5));
///
/// let quick = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(500), ..Backoff::default() };
/// assert_eq!(quick.delay(2), Duration::from_millis(40));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay before the first attempt (default 250 ms).
    pub initial: Duration,
    /// The longest delay (default 5 s).
    pub max: Duration,
    /// What each further attempt multiplies the delay by, at least 1 (default 2).
    pub factor: f64,
    /// The share of each delay that is random, from 0 (none: exactly `delay(n)`) to 1 (anywhere between 0 and
    /// `delay(n)`); default 0.5, a delay between half and all of `delay(n)`.
    pub jitter: f64,
    /// How many attempts in a row may fail before the client gives up and closes (default `None`: it keeps
    /// trying).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The longest wait before attempt `attempt` (1 for the first): `initial × factor^(attempt − 1)`, at most
    /// `max`. The actual wait is this minus its random part (see [`jitter`](Backoff::jitter)).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        // `powi` may overflow to infinity, which `min` turns into `max`.
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }

    /// [`delay`](Backoff::delay) with its random part taken off.
    pub(crate) fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt)
            .mul_f64(1.0 - self.jitter * unit_random())
    }

    /// Panics with a plain sentence when a field is out of range; called where the builder is configured.
    #[track_caller]
    pub(crate) fn check(&self) {
        assert!(
            self.factor.is_finite() && self.factor >= 1.0,
            "Backoff::factor must be a finite number of at least 1, not {}",
            self.factor
        );
        assert!(
            (0.0..=1.0).contains(&self.jitter),
            "Backoff::jitter must be between 0 and 1, not {}",
            self.jitter
        );
        assert!(
            self.initial <= self.max,
            "Backoff::initial ({:?}) must not be longer than Backoff::max ({:?})",
            self.initial,
            self.max
        );
    }
}

/// A number in `[0, 1)`, random enough for jitter. The standard library's hasher keys are random per process
/// and change with every `RandomState`, so no random-number crate is needed for this.
fn unit_random() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    hasher.write_u32(nanos);
    // The top 53 bits, as many as an f64 holds exactly.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Where a connection stands, from [`Client::state`](crate::Client::state) and
/// [`Client::state_changes`](crate::Client::state_changes).
///
/// A [`Client`](crate::Client) starts `Open` (connecting happens before it exists). Without
/// [`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect) it goes straight to `Closed` when the connection
/// ends; with it, a dropped link goes to `Reconnecting { attempt: 1 }`, `{ attempt: 2 }`, … and back to `Open`,
/// until it is closed for good.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pikku_client::ClientError> {
/// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
/// # let url = server.url("/events");
/// use pikku_client::{Backoff, Client, ConnectionState};
///
/// let client = Client::builder(&url).reconnect(Backoff::default()).connect().await?;
/// assert_eq!(client.state(), ConnectionState::Open);
/// client.close().await;
/// assert_eq!(client.state(), ConnectionState::Closed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected: sends are written at once.
    Open,
    /// The link dropped and attempt `attempt` (from 1) is waiting for its delay or opening a connection.
    /// Sends and calls wait for the new connection (see the [crate docs](crate#reconnecting)).
    Reconnecting {
        /// The attempt under way, 1 for the first after the drop.
        attempt: u32,
    },
    /// Closed for good: by [`Client::close`](crate::Client::close), by the server with a code that does not
    /// call for a reconnect, or because reconnecting gave up. [`Client::close_reason`](crate::Client::close_reason)
    /// says which.
    Closed,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionState::Open => f.write_str("open"),
            ConnectionState::Reconnecting { attempt } => {
                write!(f, "reconnecting (attempt {attempt})")
            }
            ConnectionState::Closed => f.write_str("closed"),
        }
    }
}

/// Decides, from how a connection ended, whether to reconnect.
pub(crate) type ReconnectIf = Arc<dyn Fn(&Close) -> bool + Send + Sync>;

/// What the connection task needs to reconnect.
pub(crate) struct Reconnect {
    pub(crate) opener: Opener,
    pub(crate) backoff: Backoff,
    pub(crate) when: ReconnectIf,
}

impl Reconnect {
    /// Whether a failed attempt is worth repeating: a refusal that says the client is not welcome (401, 403,
    /// 404, …) is not; an unreachable server, a timeout, 408, 429 or a 5xx (503 while it shuts down) are.
    pub(crate) fn retry_after(err: &ClientError) -> bool {
        match err {
            ClientError::Refused { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            ClientError::InvalidUrl(_) | ClientError::InvalidHeader(_) => false,
            _ => true,
        }
    }
}

/// Set once the user is done with the connection ([`Client::close`](crate::Client::close), or the last handle
/// dropped), so that the connection task neither reconnects nor keeps waiting to.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    set: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Resolves once [`set`](Stop::set) was called (at once if it already was).
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_share() {
        let backoff = Backoff {
            jitter: 0.5,
            ..Backoff::default()
        };
        for attempt in 1..20 {
            let delay = backoff.jittered(attempt);
            assert!(delay <= backoff.delay(attempt));
            assert!(delay >= backoff.delay(attempt) / 2);
        }
        let exact = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(exact.jittered(2), exact.delay(2));
    }

    #[test]
    fn random_numbers_differ() {
        let draws: Vec<f64> = (0..8).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(draws.windows(2).any(|pair| pair[0] != pair[1]));
    }
}
