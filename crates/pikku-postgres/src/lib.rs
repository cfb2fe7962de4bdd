//! A PostgreSQL driver for the pikku event hub: processes that share a database share their hub topics,
//! through `LISTEN`/`NOTIFY`.
//!
//! ```no_run
//! use pikku::App;
//! use pikku_postgres::PostgresHub;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app: App<()> = App::new(()).hub_driver(PostgresHub::from_url("postgres://postgres@127.0.0.1/postgres")?);
//! // Every process built like this delivers what any of them publishes to its own subscribers.
//! app.hub().publish("news", None, "hello, cluster").await?;
//! # Ok(())
//! # }
//! ```
//!
//! The [`store`] module keeps the records of stateless (serverless) runners in PostgreSQL tables: channel
//! records, subscriptions and sessions ([`store::PostgresStores`]).
//!
//! # What it does on the server
//! Each node holds two sessions: one that listens (`LISTEN` per topic with local subscribers, never per
//! connection) and one that publishes (`SELECT pg_notify(..)`, one autocommitted statement per event, with
//! `synchronous_commit` off since a notification has no use after a crash). It creates one unlogged table,
//! [`pikku_hub_payloads`](PostgresHub::table) by default, for payloads too large for a notification. The
//! user needs the right to create that table, or, when it exists already, to insert, read and delete its rows
//! (and use its id sequence); nothing else.
//!
//! Connect directly or through a pooler in session mode: a transaction-mode pooler hands the listening
//! session's `LISTEN` to whichever server connection runs it. Standbys cannot `LISTEN`; use the primary.
//! Connections are plain TCP or Unix sockets: this driver does not speak TLS (a URL with `sslmode=require`
//! is refused), so reach a remote server through a private network or a local TLS tunnel.
//!
//! # Channels
//! A topic's channel is `<prefix>:<topic>` when that fits PostgreSQL's 63-byte identifiers and the topic is
//! printable ASCII; otherwise it is `<prefix>_h_` followed by 32 hex digits of the topic's SHA-256
//! ([`PostgresHub::channel_name`] shows it). Channel names are always quoted, so case, quotes and spaces are
//! kept exactly. Every message also carries its real topic and the hub delivers by that, so even two topics
//! whose hashes met would only share traffic, not events.
//!
//! # Payloads
//! A notification carries text of fewer than 8,000 bytes, so the binary hub envelope is sent in base64 when
//! the result fits in [`INLINE_LIMIT`] (envelopes up to [`MAX_INLINE_ENVELOPE`] bytes). A larger one is
//! stored in the payload table in the same statement that sends a short reference to its row; listeners
//! fetch the row and deliver it. Rows older than the [retention period](PostgresHub::retention) are deleted
//! by the nodes that stored them.
//!
//! # Order and delivery
//! Events one node publishes to a topic arrive on every other node in publish order, large and small ones
//! alike: PostgreSQL delivers one session's notifications in commit order, and a listener fetches a stored
//! payload before it looks at the next notification.
//!
//! Delivery between nodes is at most once. An event published while a node's link is down (the publisher's or
//! the listener's, including the moments before a reconnected node has listened again), one PostgreSQL
//! refused because its notification queue was full (`publish` then returns the error), or a stored payload
//! swept before a lagging node read it, is missed by the nodes concerned, and nothing resends it. Clients that must
//! not miss events should fetch the state they need again (for example over HTTP) after reconnecting, and
//! treat events as hints that something changed.
//!
//! # Outages
//! When either session breaks, or the server takes longer than 5 s to answer a statement, the driver drops
//! both sessions, reports the outage to the hub (its [`status`](pikku_core::EventHub::status) shows
//! `Reconnecting` with the last error) and reconnects with a backoff of at most 500 ms. While it is down,
//! publications still reach local subscribers but `publish` returns an error for the other nodes. Once it is
//! back the hub subscribes its topics again on the new session, so the cluster delivers again within a
//! second or so of the server accepting connections, without a process restart.

mod channel;
mod error;
mod hub;
mod link;
mod message;
mod receiver;
mod settings;
pub mod store;
mod supervisor;
mod tripwire;

pub use error::PostgresError;
pub use hub::{PostgresHub, PostgresHubProbe};
pub use message::{INLINE_LIMIT, MAX_INLINE_ENVELOPE};
