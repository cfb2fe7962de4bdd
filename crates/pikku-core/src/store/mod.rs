//! Stores for stateless (serverless) runners: where a connection's record, its subscriptions and its user's
//! session live between invocations.
//!
//! In stateless mode a gateway (Pushpin, Fastly Fanout, API Gateway WebSockets, a Durable Object) holds the
//! sockets and runs the app once per event: connect, message, disconnect. Nothing survives in the process
//! between two invocations, so three stores keep what the in-process server keeps in memory:
//!
//! - a [`ChannelStore`]: one [`ChannelRecord`] per open connection (its id, channel name, opening data, the
//!   signed-in user id, the socket state and when it was last active);
//! - an [`EventHubStore`]: which connection ids are subscribed to which topics;
//! - a [`SessionStore`]: the session of each user id, as JSON.
//!
//! Frames leave through the platform's API, behind a [`PlatformSender`]. [`publish`](fn@publish) sends one encoded frame
//! to every subscriber of a topic but an excluded one, and [`sweep_expired`] forgets connections that have
//! been quiet for too long, as a periodic job does.
//!
//! The in-memory stores ([`MemoryChannelStore`], [`MemoryEventHubStore`], [`MemorySessionStore`]) serve tests
//! and single-process runs; `pikku::redis::store` and `pikku::postgres::store` (cargo features `redis` and
//! `postgres`) keep the same records on a server that every invocation reaches. `docs/stores.md` in the
//! repository describes how each of them lays its data out.
//!
//! # The rules every store keeps
//! - Adding a channel whose id is already stored fails with [`StoreError::ChannelExists`] and leaves the stored
//!   record as it was, even when two invocations add the same id at the same moment.
//! - Reading or updating a channel that is not stored fails with [`StoreError::ChannelNotFound`] and creates
//!   nothing, so a late message can never bring back a connection that was removed.
//! - Removing channels that are not stored is not an error: a disconnect delivered twice ends in the same
//!   state.
//! - Subscriptions do not need a channel record: a topic may hold any id.
//! - A send answered with [`PlatformSendError::Gone`] removes that connection's record and subscriptions;
//!   any other send failure is logged and keeps them, since the connection may still be there.
//!
//! # Example
//! A connect, a subscription and a publication, with the in-memory stores and a sender that prints:
//!
//! ```
//! use pikku::core::OutFrame;
//! use pikku::store::{
//!     publish, ChannelRecord, ChannelStore, EventHubStore, MemoryChannelStore, MemoryEventHubStore,
//!     PlatformSendError, PlatformSender,
//! };
//! use pikku::store::BoxFuture;
//!
//! struct Print;
//! impl PlatformSender for Print {
//!     fn send<'a>(&'a self, id: &'a str, frame: &'a OutFrame) -> BoxFuture<'a, Result<(), PlatformSendError>> {
//!         println!("{id} <- {frame:?}");
//!         Box::pin(async { Ok(()) })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let channels = MemoryChannelStore::new();
//! let hub = MemoryEventHubStore::new();
//! channels.add_channel(ChannelRecord::new("conn-1", "chat", serde_json::json!({"room": "a"}))).await?;
//! hub.subscribe("room:a", "conn-1").await?;
//!
//! let outcome = publish(&hub, &channels, &Print, "room:a", None, &OutFrame::text("hi")).await?;
//! assert_eq!(outcome.delivered, 1);
//! # Ok::<(), pikku::store::StoreError>(())
//! # }).unwrap();
//! ```

mod channel_store;
mod error;
mod event_hub_store;
mod memory;
mod publish;
mod record;
mod sender;
mod session_store;
mod sweep;

pub use channel_store::ChannelStore;
pub use error::StoreError;
pub use event_hub_store::EventHubStore;
pub use memory::{MemoryChannelStore, MemoryEventHubStore, MemorySessionStore};
pub use publish::{publish, PublishOutcome, PUBLISH_CONCURRENCY};
pub use record::ChannelRecord;
pub use sender::{PlatformSendError, PlatformSender};
pub use session_store::SessionStore;
pub use sweep::{sweep_expired, DEFAULT_TTL};

/// The future every store operation returns: boxed, so that the store traits can be used as
/// `Arc<dyn ChannelStore>` and implemented without generics in the callers' signatures.
///
/// ```
/// use pikku::store::BoxFuture;
///
/// fn answer<'a>() -> BoxFuture<'a, u32> {
///     Box::pin(async { 42 })
/// }
/// # let _ = answer();
/// ```
pub type BoxFuture<'a, T> = futures_util::future::BoxFuture<'a, T>;
