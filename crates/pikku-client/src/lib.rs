//! A typed, async Rust client for pikku channels: the Rust counterpart of Pikku's browser client
//! `CorePikkuWebsocket`, for tests, benchmarks and services. It speaks Pikku's wire protocol (described in
//! `docs/protocol.md` of the pikku-rs repository) to any server that does: pikku-rs, or Pikku on Node.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pikku_client::ClientError> {
//! # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
//! # let url = server.url("/events");
//! use pikku_client::{Client, ClientError, Frame};
//! use serde_json::json;
//!
//! let client = Client::connect(&url).await?; // e.g. "ws://127.0.0.1:4002/events"
//! assert_eq!(client.next_frame().await?, Frame::Text("hello!".into())); // the onConnect push
//!
//! // Routed calls: `{"action":"auth","token":"valid"}` is answered `{"authResult":true,"action":"auth"}`.
//! let actions = client.route("action");
//! let auth = actions.call("auth", &json!({"token": "valid"})).await?;
//! assert_eq!(auth.value(), json!({"authResult": true}));
//! let count: u32 = actions.call_as("count", &()).await?; // `{"action":"count","result":1}`
//! assert_eq!(count, 1);
//!
//! // Error frames are errors; unrouted frames come through `next_frame`.
//! let denied = actions.call("forbid", &()).await;
//! assert!(matches!(denied, Err(ClientError::Remote { name, .. }) if name == "ForbiddenError"));
//! client.send(&json!([1, 2])).await?; // no routing member: the default handler answers
//! assert_eq!(client.next_frame().await?, Frame::Json(json!({"defaultGot": [1, 2]})));
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # How replies are matched
//! The protocol has no correlation ids. Like the reference client, a call on
//! [`client.route("action")`](Client::route) resolves with the **next frame whose `action` member names its route**,
//! so calls in flight to one route are matched by order; the server answers a connection's messages one at a time, in
//! order, unless the channel allows several at once. A frame with a top-level `errorName` resolves the call as
//! [`ClientError::Remote`]. Everything no call is waiting for, reverse-RPC requests excepted, goes to the frame queue
//! read by [`Client::next_frame`] / [`Client::frames`]: onConnect output, default-handler replies, hub events,
//! pushes, unrouted error frames (`{"error":"No default message route",…}`) and routed replies sent with
//! [`Route::send`]. Two consequences, shared with the reference client: a push that carries a waiting route's member
//! (`{"action":"create",…}` from the hub) resolves that call, and a channel that handles several messages
//! concurrently (`max_in_flight` > 1) replies in completion order, which mismatches calls to the same route.
//!
//! Reverse RPC: [`Client::expose`] registers functions the server can call with `channel.remote(..)`.
//!
//! # Typed calls from shared types
//! The message types can live in a crate the server and its clients share. There each message implements
//! [`RouteCall`] (its routing property, route name and reply type) and each function the server calls on clients
//! implements [`ClientCapability`] (its name, argument and result); then [`Client::request`] sends a message and
//! returns its typed reply, and [`Client::answer`] serves a capability with a typed function. Both traits belong
//! to this crate, so the shared crate needs no server dependency to implement them: a `client` feature can pull
//! in `pikku-client` and a `server` feature `pikku`, whose `Capability` trait the same capability marker
//! implements for the server's `channel.remote::<C>(..)`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pikku_client::ClientError> {
//! # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
//! # let url = server.url("/events");
//! mod shared {
//!     // The shared crate, e.g. `todo-types`, as the client side sees it.
//!     use serde::{Deserialize, Serialize};
//!
//!     #[derive(Serialize, Deserialize)]
//!     pub struct Auth { pub token: String }
//!
//!     #[derive(Serialize, Deserialize)]
//!     #[serde(rename_all = "camelCase")]
//!     pub struct AuthResult { pub auth_result: bool }
//!
//!     impl pikku_client::RouteCall for Auth {
//!         const PROPERTY: &'static str = "action";
//!         const VALUE: &'static str = "auth";
//!         type Reply = AuthResult;
//!     }
//!
//!     /// What the server's `rev` route asks the client.
//!     pub struct ClientThing;
//!
//!     #[derive(Serialize, Deserialize)]
//!     pub struct Question { pub q: u32 }
//!
//!     impl pikku_client::ClientCapability for ClientThing {
//!         const NAME: &'static str = "clientThing";
//!         type Input = Question;
//!         type Output = String;
//!     }
//! }
//!
//! use pikku_client::{Client, RpcError};
//! use shared::{Auth, ClientThing, Question};
//!
//! let client = Client::connect(&url).await?;
//! # client.next_frame().await?;
//! let logged_in = client.request(&Auth { token: "valid".into() }).await?;
//! assert!(logged_in.auth_result);
//! client.answer::<ClientThing, _, _>(|question: Question| async move {
//!     Ok::<_, RpcError>(format!("q was {}", question.q))
//! });
//! let said = client.route("action").call("rev", &()).await?.value();
//! assert_eq!(said, serde_json::json!({"remoteSaid": "q was 1"}));
//! # Ok(()) }
//! ```
//!
//! # Reconnecting
//! By default a client whose connection drops is closed: [`Client::closed`] resolves and every call fails with
//! [`ClientError::Closed`]. With [`ClientBuilder::reconnect`] it comes back by itself:
//!
//! - **When.** After a close the server sent for which [`ClientBuilder::reconnect_if`] says yes, by default
//!   [`Close::is_retryable`]: 1001 (the server restarts or shuts down, or an idle timeout), 1006 (the link was
//!   lost without a close frame), 1005, 1011–1014. Not after 1000 (the application closed the channel), 1008 (a
//!   policy: slow consumer, rate limit, frame timeout), the protocol and data errors, or the application's own
//!   4000–4999 codes: reconnecting would only repeat them. Never after [`Client::close`], or once every handle
//!   is dropped. The first connection is not retried: [`ClientBuilder::connect`] reports its failure. A link
//!   that dies without a word (no FIN, no reset) is only noticed with [`ClientBuilder::idle_timeout`], which
//!   counts a connection that received nothing, pings included, for that long as lost (1006).
//! - **How.** Attempt `n` waits [`Backoff::delay`]`(n)` (exponential from `initial`, capped at `max`) less a
//!   random share of up to `jitter`, then opens a connection with the same URL and headers. The count starts
//!   again once a connection is open. An unreachable server, a timeout, or a refused upgrade with 408, 429 or
//!   5xx (a server that is shutting down answers 503) is retried; any other refusal (401, 403, 404, …) ends the
//!   client, as does reaching [`Backoff::max_attempts`]; [`Client::close_reason`] then says why (code 1006).
//! - **Calls in flight** when the link dropped fail with [`ClientError::Disconnected`]: their messages may or
//!   may not have been handled, and the new connection cannot answer them. Reverse-RPC answers still being
//!   computed for the old connection are dropped.
//! - **Sends and calls made while reconnecting wait** for the new connection, in order, in the same queue the
//!   connection task reads: 64 commands, after which the senders' futures wait for room (bound them with
//!   `tokio::time::timeout` or [`ClientBuilder::call_timeout`] where that matters). If the client closes
//!   instead, they fail with [`ClientError::Closed`]. A frame being written at the moment of the drop may be
//!   lost.
//! - **Remembered messages go first.** Every message sent with [`Route::call_remembered`] (or
//!   [`Client::request_remembered`], [`Client::subscribe_topic`]) and not forgotten is sent again on each new
//!   connection, in the order first remembered, before anything queued: a login, a room join, topic
//!   subscriptions. Their replies are consumed quietly; an error frame in reply goes to the frame queue and
//!   forgets the message.
//! - **What does not come back:** the server's side of the old connection. A new connection has a new channel
//!   id, an empty session and fresh per-connection state, and it gets the channel's onConnect output again
//!   (in the frame queue). Nothing published while the client was away is replayed.
//! - **Observing it.** [`Client::state`] and [`Client::state_changes`] give the [`ConnectionState`]: `Open`,
//!   `Reconnecting { attempt }`, `Closed`. Frames already in the frame queue stay there across reconnects.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pikku_client::ClientError> {
//! # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
//! # let url = server.url("/events");
//! use std::time::Duration;
//! use pikku_client::{Backoff, Client, ConnectionState};
//! use serde_json::json;
//!
//! let client = Client::builder(&url)
//!     .reconnect(Backoff { initial: Duration::from_millis(100), max_attempts: Some(20), ..Backoff::default() })
//!     .connect()
//!     .await?;
//! let actions = client.route("action");
//! actions.call_remembered("login", "auth", &json!({"token": "valid"})).await?;
//! actions.call("sub", &json!({"topic": "news"})).await?; // not remembered: gone after a reconnect
//!
//! let mut states = client.state_changes();
//! // … when the server restarts, `states` shows Reconnecting { attempt: 1 }, …, then Open again, and the
//! // login went out first on the new connection.
//! assert_eq!(*states.borrow_and_update(), ConnectionState::Open);
//! # Ok(()) }
//! ```
//!
//! # Differences from the JavaScript client
//! - A frame consumed by a call is **not** also handed to the frame queue; the reference client gives every
//!   frame to its global subscribers as well. The queue holds what no call took, so a client that only makes
//!   calls never has to drain it.
//! - The frame queue starts with the connection and keeps frames until they are read (up to
//!   [`ClientBuilder::frame_capacity`]; overflow is reported as [`ClientError::Lagged`]); the reference client's
//!   subscribers see only frames that arrive after they subscribed.
//! - Binary frames arrive in the same queue as [`Frame::Binary`] (the reference client has separate binary
//!   subscribers), and a bare `null` frame is delivered as `Frame::Json(Value::Null)` rather than swallowed.
//! - Exposed functions and the `pikku-rpc-request` / `-response` / `-pending` frames are built in.
//! - Closing is observable: [`Client::closed`] and [`ClientError::Closed`] carry the server's close code and
//!   reason. Like the reference client, this one does not reconnect unless asked to
//!   ([`ClientBuilder::reconnect`]); then it re-sends remembered messages as Pikku's realtime client re-sends
//!   its subscriptions.
//!
//! # Transport
//! `tokio-websockets` (its client), as `pikku-bench` uses: it is strict (it passes Autobahn), fast, and small per
//! connection, which matters when a benchmark opens thousands of clients; and its codec is independent of the
//! pikku server's own, so tests with this client exercise two implementations. tokio-tungstenite would have
//! reported a refused upgrade's body by itself, but reserves 256 KiB of buffers per connection by default. That
//! one gap of tokio-websockets (a refusal is reported by status only) is closed here by keeping the bytes read
//! during the upgrade, so [`ClientError::Refused`] carries the server's JSON body too. Only `ws://` URLs are
//! supported (no TLS).
//!
//! # Tasks and memory
//! Each connection runs one background task that owns the socket: it writes what the handles queue (at most
//! 64 commands wait; senders then wait too), reads frames and dispatches them. Exposed functions run on tasks
//! of their own, so a slow one never stalls the connection. The same task opens the new connections of a client
//! that [reconnects](#reconnecting), and keeps the messages it re-sends (as many as the application remembered).
//! Dropping the last [`Client`] clone closes the connection with 1000, or stops a client that is reconnecting.
//! The client must be used inside a Tokio runtime.

mod client;
mod connect;
mod driver;
mod error;
mod frame;
mod reconnect;
mod rpc;
mod typed;

pub use client::{Client, Route};
pub use connect::ClientBuilder;
pub use error::{ClientError, ErrorDetail, TransportError};
pub use frame::{Close, Frame, Reply};
pub use reconnect::{Backoff, ConnectionState};
pub use rpc::{RpcError, RpcRequest};
pub use typed::{ClientCapability, RouteCall};
