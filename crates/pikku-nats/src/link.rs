//! The connection to the server, and how its ups and downs reach the hub.
//!
//! The client reconnects by itself and reports what happens as events. They are forwarded, in order, to one
//! task of ours that tells the hub's [`RemoteSink`]: `Connected` becomes [`RemoteSink::connected`] (after which
//! the hub subscribes every topic again), `Disconnected` and every failed connection attempt become
//! [`RemoteSink::disconnected`]. Reporting from that one task keeps the hub's view in the order things happened.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ClientError, Event, RequestErrorKind};
use bytes::Bytes;
use parking_lot::Mutex;
use pikku_core::hub::RemoteSink;
use pikku_core::log_limit::{LogLimiter, Verdict};
use tokio::sync::{mpsc, watch};

use crate::error::NatsError;
use crate::topic_task::TopicTask;

/// First delay between reconnect attempts after the immediate one; doubles up to the configured maximum.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Server warnings (slow consumer, permission errors) logged per window, however many arrive.
static SERVER_TROUBLE: LogLimiter = LogLimiter::new(1, Duration::from_secs(10));

/// The delay before reconnect attempt `attempt` (1-based, counted since the link was last up): none for the
/// first, then 50 ms doubling up to `max`.
pub(crate) fn reconnect_delay(attempt: usize, max: Duration) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempt - 2).unwrap_or(u32::MAX).min(16);
    FIRST_RETRY_DELAY.saturating_mul(1 << doublings).min(max)
}

/// What our reporting task hears: the client's events, and one of our own.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    Client(Event),
    /// `start` waited long enough for the first attempt: if the link is not up by now, say so.
    FirstAttemptSlow,
}

/// A started driver's connection and its subscriptions.
pub(crate) struct Link {
    pub(crate) client: Client,
    pub(crate) servers: Arc<str>,
    /// One running subscription per topic the hub asked for.
    pub(crate) topics: Mutex<HashMap<Arc<str>, TopicTask>>,
    pub(crate) sink: RemoteSink,
}

impl Link {
    /// `Ok` while the client is connected; the error callers return otherwise.
    pub(crate) fn ensure_up(&self) -> Result<(), NatsError> {
        if self.client.connection_state() == State::Connected {
            Ok(())
        } else {
            Err(self.down())
        }
    }

    pub(crate) fn down(&self) -> NatsError {
        NatsError::LinkDown {
            servers: self.servers.to_string(),
        }
    }

    /// Waits until the server has read everything this client sent before, subscriptions included.
    ///
    /// The client's own flush only empties the socket buffer. A request to a subject nobody serves is answered
    /// by the server itself ("no responders") once it has processed every earlier command of this connection,
    /// so after it a publication from any other connection reaches the new subscription. A request that times
    /// out while connected also went through the server (someone listens on the subject and stays silent).
    pub(crate) async fn barrier(&self, subject: &str) -> Result<(), NatsError> {
        match self
            .client
            .request(self.client.new_inbox(), Bytes::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.kind() {
                RequestErrorKind::NoResponders => Ok(()),
                RequestErrorKind::TimedOut => self.ensure_up(),
                _ => {
                    self.ensure_up()?;
                    Err(NatsError::Subscribe {
                        subject: subject.to_owned(),
                        source: Box::new(err),
                    })
                }
            },
        }
    }
}

/// Reports the link to `sink` until the client or the hub is gone. `verdict` turns `true` once the first
/// attempt's outcome (or its slowness) was reported.
pub(crate) async fn report(
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    link: Weak<Link>,
    sink: RemoteSink,
    verdict: watch::Sender<bool>,
    servers: Arc<str>,
) {
    let mut up = false;
    while let Some(event) = events.recv().await {
        if sink.is_closed() {
            return;
        }
        match event {
            LinkEvent::Client(Event::Connected) => {
                wait_for_connected_state(&link).await;
                up = true;
                sink.connected();
            }
            LinkEvent::Client(Event::Disconnected) => {
                up = false;
                sink.disconnected(&NatsError::LinkDown {
                    servers: servers.to_string(),
                });
            }
            LinkEvent::Client(Event::ClientError(err)) if !up => {
                let reason = match err {
                    ClientError::Other(reason) => reason,
                    other => other.to_string(),
                };
                sink.disconnected(&NatsError::Connect {
                    servers: servers.to_string(),
                    reason,
                });
            }
            LinkEvent::FirstAttemptSlow if !up => {
                sink.disconnected(&NatsError::Connect {
                    servers: servers.to_string(),
                    reason: "no answer yet".into(),
                });
            }
            LinkEvent::FirstAttemptSlow => {}
            LinkEvent::Client(Event::Closed) => return,
            LinkEvent::Client(other) => {
                log_other(&other);
                continue;
            }
        }
        verdict.send_replace(true);
    }
}

/// The client announces `Connected` just before it updates the state that publish and subscribe check; report
/// the link up only once they will see it, so the hub's resubscriptions are not refused.
async fn wait_for_connected_state(link: &Weak<Link>) {
    for _ in 0..100 {
        match link.upgrade() {
            Some(link) if link.client.connection_state() != State::Connected => {}
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn log_other(event: &Event) {
    match event {
        Event::SlowConsumer(_) | Event::ServerError(_) | Event::ClientError(_) => {
            if let Verdict::Log { suppressed } = SERVER_TROUBLE.check("server") {
                tracing::warn!(backend = "nats", %event, suppressed, "NATS client trouble");
            }
        }
        _ => tracing::info!(backend = "nats", %event, "NATS client event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_start_at_once_and_stay_under_the_cap() {
        let max = Duration::from_millis(250);
        let delays: Vec<u128> = (1..=8)
            .map(|a| reconnect_delay(a, max).as_millis())
            .collect();
        assert_eq!(delays, [0, 50, 100, 200, 250, 250, 250, 250]);
        assert_eq!(reconnect_delay(usize::MAX, max), max);
        assert_eq!(
            reconnect_delay(3, Duration::from_secs(5)),
            Duration::from_millis(100)
        );
    }
}
