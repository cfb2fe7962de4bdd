//! The in-memory stores: for tests, local development and runners that live in one process.

mod channel;
mod hub;
mod session;

pub use channel::MemoryChannelStore;
pub use hub::MemoryEventHubStore;
pub use session::MemorySessionStore;

use super::BoxFuture;

/// A future that runs `op` when first polled (not when made), as a store on a server would, and is then done.
fn lazy<'a, T: Send + 'a>(op: impl FnOnce() -> T + Send + 'a) -> BoxFuture<'a, T> {
    Box::pin(async move { op() })
}
