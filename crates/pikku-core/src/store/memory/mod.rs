//! The in-memory stores: for tests, local development and runners that live in one process.

mod channel;
mod hub;
mod session;

pub use channel::MemoryChannelStore;
pub use hub::MemoryEventHubStore;
pub use session::MemorySessionStore;

use super::BoxFuture;

/// A future that is already done.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}
