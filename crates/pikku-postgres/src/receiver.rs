//! Turns received notifications into hub events, one at a time and in arrival order.
//!
//! A payload sent by reference is fetched before the next notification is looked at, so it cannot be
//! overtaken by a smaller event its publisher sent later: PostgreSQL delivers one session's notifications in
//! commit order, and this task keeps that order.

use std::sync::Arc;
use std::time::Duration;

use pikku_core::hub::{envelope, RemoteEvent, RemoteSink};
use pikku_core::log_limit::{LogLimiter, Verdict};
use tokio::sync::mpsc;
use tokio_postgres::Notification;

use crate::error::{Chain, PostgresError};
use crate::link::Publisher;
use crate::message::{self, Message};

/// Dropped notifications are logged at most this often, so a foreign writer on a hub channel cannot flood logs.
static DROPPED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));

/// Delivers what the listening connection receives until it closes or the hub is gone.
pub(crate) async fn run(
    mut received: mpsc::Receiver<Notification>,
    publisher: Arc<Publisher>,
    sink: RemoteSink,
) {
    let own = sink.node();
    while let Some(notification) = received.recv().await {
        match event(&notification, &publisher, own).await {
            Ok(Some(event)) => {
                if !sink.deliver(event).await {
                    return;
                }
            }
            Ok(None) => {}
            Err(error) => dropped(&notification, &error),
        }
    }
}

/// The event a notification carries; `None` for this node's own payload sent by reference, which is not even
/// fetched (the hub drops its own events anyway).
async fn event(
    notification: &Notification,
    publisher: &Publisher,
    own: Option<pikku_core::hub::NodeId>,
) -> Result<Option<RemoteEvent>, PostgresError> {
    let bytes = match message::parse(notification.payload())? {
        Message::Inline(bytes) => bytes,
        Message::Reference { origin, .. } if Some(origin) == own => return Ok(None),
        Message::Reference { id, .. } => publisher.fetch(id).await?,
    };
    envelope::decode_bytes(bytes)
        .map(Some)
        .map_err(PostgresError::Envelope)
}

fn dropped(notification: &Notification, error: &PostgresError) {
    if let Verdict::Log { suppressed } = DROPPED.check(&std::mem::discriminant(error)) {
        tracing::warn!(
            backend = "postgres",
            channel = notification.channel(),
            error = %Chain(error),
            suppressed,
            "dropped a notification"
        );
    }
}
