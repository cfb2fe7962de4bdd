//! A NATS driver for the pikku event hub: hubs in several processes share their topics through a NATS server
//! or cluster, so a publication made in one process reaches the subscribers of every process.
//!
//! ```
//! use pikku::App;
//! use pikku_nats::NatsHub;
//!
//! struct State;
//!
//! let app: App<State> = App::new(State).hub_driver(NatsHub::from_url("nats://127.0.0.1:4222")?);
//! # let _ = app;
//! # Ok::<(), pikku_nats::NatsError>(())
//! ```
//!
//! Building the driver does no I/O. The hub connects when it starts (servers start it before they accept
//! connections), and its publications then cross processes:
//!
//! ```no_run
//! use pikku::App;
//! use pikku_nats::NatsHub;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app: App<()> = App::new(()).hub_driver(NatsHub::from_url("nats://127.0.0.1:4222")?);
//! let hub = app.hub();
//! hub.start().await?;
//! // Every subscriber of "news", in this process and in every other one on the same server.
//! hub.publish("news", None, &serde_json::json!({"headline": "hi"})).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Subjects
//! Topic `t` travels on the subject `<prefix>.<token>`, prefix `pikku` unless
//! [`NatsHub::subject_prefix`] sets another. The token is the topic with every byte other than ASCII letters,
//! digits, `_`, `-` and `:` written as `%XX`, so a topic is always exactly one literal token: `room.1` is
//! `pikku.room%2E1`, `*` is `pikku.%2A`. Distinct topics never share a subject; see
//! [`NatsHub::subject_for`]. Subscribing a topic subscribes its one subject, and the hub holds one
//! subscription per topic per process, never one per connection.
//!
//! # Delivery
//! Between processes delivery is at most once, as NATS core delivers it: an event published while a node is
//! disconnected, or while its subscription is being restored after a reconnect, is not delivered there, and
//! nothing is replayed. Events from one publisher on one topic arrive in publish order. A client that must
//! not miss events should fetch the state it cares about again (for example over HTTP) after it reconnects,
//! and after the server reports the hub link back up.
//!
//! While the link is down, `publish` on the hub still reaches the local subscribers, then returns an error
//! (the driver refuses at once instead of letting the client buffer the event); subscribes are kept locally and
//! sent to the server when the link is back. An event handed to the client in the instant the link drops, before
//! the client notices, is sent after the reconnect or lost.
//!
//! A subscription counts as made once the server has confirmed it with a round trip, so a publication made
//! anywhere after the hub's `subscribe` returns reaches it.
//!
//! # Reconnects
//! The client reconnects by itself: at once after a loss, then after 50 ms doubling up to
//! [`NatsHub::max_reconnect_delay`] (250 ms by default), so a restarted server is found again within a fraction
//! of a second. A server that is down when the hub starts is not an error: `start` returns, the hub's
//! [`status`](pikku_core::EventHub::status) shows the link reconnecting with the last error, and the link
//! comes up when the server does. The client pings every 10 s, so a server that vanishes without closing the
//! connection is noticed within about half a minute.
//!
//! The hub logs an outage once. The NATS client itself logs each of its events at `info` under the
//! `async_nats` target, a failed reconnect attempt included; filter that target to `warn` to keep outages
//! quiet.
//!
//! # Limits
//! - A publication travels as one message: the payload plus an envelope header of about 25 bytes plus the
//!   topic and exclude id. It must fit the server's `max_payload` (1 MB by default); a larger one fails that
//!   `publish` with [`NatsError::Publish`] after the local deliveries.
//! - An escaped topic is up to three times its length; the hub's default topic limit of 256 bytes keeps every
//!   command far below the server's `max_control_line` (4 KB by default).
//! - Plain `nats://` only: TLS is not compiled in. Credentials go in the URL; see [`NatsHub::from_url`].
//! - With permissions configured on the server, the hub's user needs publish and subscribe rights on
//!   `<prefix>.>`, and on `_INBOX.>` for the round trip that confirms each subscription.
//! - Each subscription's queue in the client holds 65,536 messages; a hub that falls further behind loses
//!   events (a warning is logged).

mod config;
mod error;
mod hub;
mod link;
mod subject;
mod topic_task;

pub use error::NatsError;
pub use hub::{NatsHub, DEFAULT_MAX_RECONNECT_DELAY, DEFAULT_SUBJECT_PREFIX};
