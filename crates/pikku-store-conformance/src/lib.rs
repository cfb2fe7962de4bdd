//! The rules every stateless store keeps, as checks an implementation's tests run.
//!
//! Each check takes a store that is empty when it starts, runs its cases in order on that one store, and
//! panics with the case's name and what differed on the first case that does not hold:
//!
//! - [`channel_store_suite`]: channel records (adding, reading, user ids, socket state, removing, expiry,
//!   JSON round trips, missing ids);
//! - [`event_hub_store_suite`]: subscriptions (idempotent subscribe, unsubscribe, removing a channel from
//!   every topic, exact topic strings);
//! - [`session_store_suite`]: sessions by user id;
//! - [`stateless_suite`]: [`publish`](pikku_core::store::publish) and
//!   [`sweep_expired`](pikku_core::store::sweep_expired) over a channel store and a hub store, with the
//!   recording [`TestSender`];
//! - [`concurrent_add_suite`]: two stores on the same data add the same ids at the same moment, and exactly
//!   one add of each id wins.
//!
//! ```no_run
//! use pikku_core::store::{MemoryChannelStore, MemoryEventHubStore, MemorySessionStore};
//!
//! # async fn check() {
//! pikku_store_conformance::channel_store_suite(&MemoryChannelStore::new()).await;
//! pikku_store_conformance::event_hub_store_suite(&MemoryEventHubStore::new()).await;
//! pikku_store_conformance::session_store_suite(&MemorySessionStore::new()).await;
//! pikku_store_conformance::stateless_suite(&MemoryChannelStore::new(), &MemoryEventHubStore::new()).await;
//! let shared = MemoryChannelStore::new();
//! pikku_store_conformance::concurrent_add_suite(&shared, &shared).await;
//! # }
//! ```

mod channel;
mod concurrent;
mod hub;
mod sender;
mod session;
mod stateless;

pub use channel::channel_store_suite;
pub use concurrent::concurrent_add_suite;
pub use hub::event_hub_store_suite;
pub use sender::{Behaviour, TestSender};
pub use session::session_store_suite;
pub use stateless::stateless_suite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fixed time long before any test runs, so that records the suites place there expire while records made
/// now do not.
fn long_ago(plus_seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000_000 + plus_seconds)
}

/// `ids` sorted, for comparing subscriber lists that come in any order.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}
