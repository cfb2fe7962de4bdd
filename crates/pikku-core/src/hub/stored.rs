//! The hub of a stateless runner: subscriptions live in an [`EventHubStore`], deliveries leave through the
//! gateway's [`PlatformSender`].
//!
//! A stateless process holds a connection only while one of its events is being handled, so the hub's
//! in-memory topic map would forget every subscription at the end of the invocation. With this backend
//! installed, `subscribe` and `unsubscribe` write to the store and `publish` reads the subscribers from it. A
//! subscriber whose event this process is handling right now (it is in the registry) gets the frame on its
//! connection, so it leaves with that invocation's other frames and in order; every other subscriber gets it
//! through the platform.

use std::sync::Arc;

use crate::channel::Registry;
use crate::error::{BackendError, HubError};
use crate::frame::OutFrame;
use crate::store::{
    publish, BoxFuture, ChannelStore, EventHubStore, PlatformSendError, PlatformSender, StoreError,
};

/// What a stateless hub keeps: the stores and the way out.
pub(crate) struct StoredHub {
    pub(crate) subscriptions: Arc<dyn EventHubStore>,
    pub(crate) channels: Arc<dyn ChannelStore>,
    pub(crate) sender: Arc<dyn PlatformSender>,
}

impl StoredHub {
    pub(crate) async fn subscribe(&self, topic: &str, channel_id: &str) -> Result<(), HubError> {
        self.subscriptions
            .subscribe(topic, channel_id)
            .await
            .map(drop)
            .map_err(store_failed)
    }

    pub(crate) async fn unsubscribe(
        &self,
        topic: &str,
        channel_id: &str,
    ) -> Result<bool, HubError> {
        self.subscriptions
            .unsubscribe(topic, channel_id)
            .await
            .map_err(store_failed)
    }

    pub(crate) async fn count(&self, topic: &str) -> Result<usize, HubError> {
        self.subscriptions
            .channel_ids(topic)
            .await
            .map(|ids| ids.len())
            .map_err(store_failed)
    }

    pub(crate) async fn publish(
        &self,
        registry: &Registry,
        topic: &str,
        exclude: Option<&str>,
        frame: &OutFrame,
    ) -> Result<usize, HubError> {
        let sender = InvocationFirst {
            registry,
            platform: &*self.sender,
        };
        let outcome = publish(
            &*self.subscriptions,
            &*self.channels,
            &sender,
            topic,
            exclude,
            frame,
        )
        .await
        .map_err(store_failed)?;
        Ok(outcome.delivered)
    }
}

fn store_failed(err: StoreError) -> HubError {
    match err {
        StoreError::Backend(backend) => HubError::Backend(backend),
        other => HubError::Backend(BackendError::new("store", other)),
    }
}

/// Delivers to a connection whose event is being handled in this process through that connection (its frames
/// become part of the invocation's answer), and to every other through the platform.
struct InvocationFirst<'a> {
    registry: &'a Registry,
    platform: &'a dyn PlatformSender,
}

impl PlatformSender for InvocationFirst<'_> {
    fn send<'a>(
        &'a self,
        channel_id: &'a str,
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Result<(), PlatformSendError>> {
        if let Some(conn) = self.registry.get(channel_id) {
            // A push fails once the invocation sealed the connection; then the platform takes it.
            if conn.push(frame.clone()).is_ok() {
                return Box::pin(std::future::ready(Ok(())));
            }
        }
        self.platform.send(channel_id, frame)
    }

    fn send_to_each<'a>(
        &'a self,
        channel_ids: &'a [String],
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Vec<Result<(), PlatformSendError>>> {
        Box::pin(async move {
            // Deliver here what can be, then hand the rest to the platform in one call.
            let delivered: Vec<bool> = channel_ids
                .iter()
                .map(|id| {
                    self.registry
                        .get(id)
                        .is_some_and(|conn| conn.push(frame.clone()).is_ok())
                })
                .collect();
            let remote: Vec<String> = channel_ids
                .iter()
                .zip(&delivered)
                .filter(|(_, here)| !**here)
                .map(|(id, _)| id.clone())
                .collect();
            let mut remote_results = if remote.is_empty() {
                Vec::new()
            } else {
                self.platform.send_to_each(&remote, frame).await
            }
            .into_iter();
            delivered
                .into_iter()
                .map(|here| {
                    if here {
                        Ok(())
                    } else {
                        remote_results.next().unwrap_or(Ok(()))
                    }
                })
                .collect()
        })
    }
}
