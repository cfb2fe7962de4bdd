//! A platform sender that records what it was asked to send and answers as told.

use std::collections::HashMap;
use std::fmt;

use parking_lot::Mutex;
use pikku_core::store::{BoxFuture, PlatformSendError, PlatformSender};
use pikku_core::OutFrame;

/// How a [`TestSender`] answers a send to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The send succeeds.
    Accept,
    /// The platform says the connection is gone.
    Gone,
    /// The platform fails in another way (as a throttled or unreachable API would).
    Fail,
}

/// The error a [`Behaviour::Fail`] send carries.
#[derive(Debug)]
struct Throttled;

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("throttled")
    }
}

impl std::error::Error for Throttled {}

/// A [`PlatformSender`] for tests: records every send, including the failed ones, and answers each
/// connection with its [`Behaviour`] ([`Behaviour::Accept`] unless told otherwise).
///
/// ```
/// use pikku_core::OutFrame;
/// use pikku_core::store::PlatformSender;
/// use pikku_store_conformance::{Behaviour, TestSender};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let sender = TestSender::new();
/// sender.answer("gone-1", Behaviour::Gone);
/// assert!(sender.send("ok-1", &OutFrame::text("hi")).await.is_ok());
/// assert!(sender.send("gone-1", &OutFrame::text("hi")).await.is_err());
/// assert_eq!(sender.sent().len(), 2);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct TestSender {
    behaviour: Mutex<HashMap<String, Behaviour>>,
    sent: Mutex<Vec<(String, OutFrame)>>,
}

impl TestSender {
    /// A sender that accepts everything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends to `channel_id` answer with `behaviour` from now on.
    pub fn answer(&self, channel_id: &str, behaviour: Behaviour) {
        self.behaviour
            .lock()
            .insert(channel_id.to_owned(), behaviour);
    }

    /// Every send so far, in the order they were made: connection id and frame.
    #[must_use]
    pub fn sent(&self) -> Vec<(String, OutFrame)> {
        self.sent.lock().clone()
    }

    /// The connection ids sent to so far, sorted, and forgets them.
    #[must_use]
    pub fn take_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.sent.lock().drain(..).map(|(id, _)| id).collect();
        ids.sort();
        ids
    }
}

impl PlatformSender for TestSender {
    fn send<'a>(
        &'a self,
        channel_id: &'a str,
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Result<(), PlatformSendError>> {
        self.sent
            .lock()
            .push((channel_id.to_owned(), frame.clone()));
        let behaviour = self
            .behaviour
            .lock()
            .get(channel_id)
            .copied()
            .unwrap_or(Behaviour::Accept);
        Box::pin(async move {
            match behaviour {
                Behaviour::Accept => Ok(()),
                Behaviour::Gone => Err(PlatformSendError::Gone),
                Behaviour::Fail => Err(PlatformSendError::failed("test", Throttled)),
            }
        })
    }
}
