//! What Redis pushes to a node: messages go through a bounded queue to one task that hands them to the hub.
//!
//! The client's connection reader calls the push sender and must never wait, so the queue is bounded and a full
//! queue drops the message (counted, and logged at a bounded rate). The single receiving task keeps each
//! publisher's order.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pikku_core::hub::{envelope, RemoteSink};
use pikku_core::log_limit::{LogLimiter, Verdict};
use redis::aio::AsyncPushSender;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, Notify};

static DROPPED: LogLimiter = LogLimiter::new(1, Duration::from_secs(10));
static UNREADABLE: LogLimiter = LogLimiter::new(1, Duration::from_secs(10));

/// The sending side of a node's inbound queue.
#[derive(Clone)]
pub(crate) struct Inbound {
    events: mpsc::Sender<Bytes>,
}

impl Inbound {
    /// A queue of `capacity` messages, drained into `sink` by a task of its own.
    pub(crate) fn start(capacity: usize, sink: RemoteSink) -> Self {
        let (events, queue) = mpsc::channel(capacity.max(1));
        tokio::spawn(receive(queue, sink));
        Self { events }
    }

    /// The push sender of one connection: messages join the queue, a disconnection wakes `lost`.
    pub(crate) fn sender(&self, lost: Arc<Notify>) -> impl AsyncPushSender {
        let events = self.events.clone();
        move |push: PushInfo| -> Result<(), Infallible> {
            match push.kind {
                // [channel, payload] for `SUBSCRIBE` and `SSUBSCRIBE` messages alike.
                PushKind::Message | PushKind::SMessage => {
                    if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                        if events.try_send(Bytes::from(payload)).is_err() {
                            dropped(events.max_capacity());
                        }
                    }
                }
                PushKind::Disconnection => lost.notify_one(),
                _ => {}
            }
            Ok(())
        }
    }
}

fn dropped(capacity: usize) {
    if let Verdict::Log { suppressed } = DROPPED.check(&"full") {
        tracing::warn!(
            capacity,
            suppressed,
            "redis hub: inbound queue full, dropping a message from another node"
        );
    }
}

async fn receive(mut queue: mpsc::Receiver<Bytes>, sink: RemoteSink) {
    while let Some(bytes) = queue.recv().await {
        match envelope::decode_bytes(bytes) {
            Ok(event) => {
                if !sink.deliver(event).await {
                    return;
                }
            }
            Err(err) => {
                if let Verdict::Log { suppressed } = UNREADABLE.check(&"envelope") {
                    tracing::warn!(error = %err, suppressed, "redis hub: ignoring a message that is not a pikku envelope");
                }
            }
        }
    }
}
