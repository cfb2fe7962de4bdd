//! A one-shot "this link is broken" signal, set by whichever part of the link notices first.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::PostgresError;

/// Holds the first error that broke a link; later ones are dropped.
#[derive(Debug)]
pub(crate) struct Tripwire(watch::Sender<Option<Arc<PostgresError>>>);

impl Tripwire {
    pub(crate) fn new() -> Self {
        Self(watch::Sender::new(None))
    }

    /// Marks the link broken by `error`, unless it already is.
    pub(crate) fn trip(&self, error: PostgresError) {
        self.0.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(Arc::new(error));
            true
        });
    }

    pub(crate) fn is_tripped(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Waits until the link is broken; the error that broke it.
    pub(crate) async fn tripped(&self) -> Arc<PostgresError> {
        let mut rx = self.0.subscribe();
        let slot = rx
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in self");
        slot.clone().expect("waited for Some")
    }
}
