//! One broker subscription and the task that hands what it receives to the hub.
//!
//! Each topic the hub needs gets one NATS subscription owned by one small task, which decodes each message and
//! awaits [`RemoteSink::deliver`]. A task per topic is the leanest shape the client allows: the client already
//! keeps one queue per subscription, so the task only drains it, one topic never waits behind another, the
//! events of a topic stay in order, and dropping a topic is ending its task. The task ends, and the server
//! forgets the subscription, when it is told to stop, when its handle is dropped (the driver is gone) or when
//! the hub is gone.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Subscriber;
use futures_util::StreamExt;
use pikku_core::hub::{envelope, RemoteSink};
use pikku_core::log_limit::{LogLimiter, Verdict};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Messages that are not envelopes of their subject's topic are dropped with one warning per window, however
/// many arrive.
static DROPPED: LogLimiter = LogLimiter::new(1, Duration::from_secs(10));

/// A running subscription.
pub(crate) struct TopicTask {
    stop: oneshot::Sender<()>,
    done: JoinHandle<()>,
}

impl TopicTask {
    /// Starts delivering what `subscriber` receives for `topic` into `sink`.
    pub(crate) fn spawn(topic: Arc<str>, subscriber: Subscriber, sink: RemoteSink) -> Self {
        let (stop, stopped) = oneshot::channel();
        let done = tokio::spawn(receive(topic, subscriber, sink, stopped));
        Self { stop, done }
    }

    /// Ends the subscription: once this returns, the client has queued the server's UNSUB, ahead of anything
    /// the driver sends later (a new subscription to the same subject included).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

async fn receive(
    topic: Arc<str>,
    mut subscriber: Subscriber,
    sink: RemoteSink,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let message = tokio::select! {
            biased;
            // Told to stop, or the handle was dropped with the driver.
            _ = &mut stop => {
                let _ = subscriber.unsubscribe().await;
                return;
            }
            message = subscriber.next() => message,
        };
        // The client closed the subscription: it is shutting down.
        let Some(message) = message else { return };
        match envelope::decode_bytes(message.payload) {
            Ok(event) if *event.topic == *topic => {
                if !sink.deliver(event).await {
                    return;
                }
            }
            Ok(event) => dropped(&topic, &format!("it names the topic {:?}", event.topic)),
            Err(err) => dropped(&topic, &err.to_string()),
        }
    }
}

fn dropped(topic: &str, reason: &str) {
    if let Verdict::Log { suppressed } = DROPPED.check("undecodable") {
        tracing::warn!(
            backend = "nats",
            topic,
            reason,
            suppressed,
            "dropped a NATS message that is not a hub envelope of its subject's topic"
        );
    }
}
