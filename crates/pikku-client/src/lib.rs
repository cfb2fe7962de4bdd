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
//!   reason. Like the reference client, this one does not reconnect.
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
//! of their own, so a slow one never stalls the connection. Dropping the last [`Client`] clone closes the
//! connection with 1000. The client must be used inside a Tokio runtime.

mod client;
mod connect;
mod driver;
mod error;
mod frame;
mod rpc;

pub use client::{Client, Route};
pub use connect::ClientBuilder;
pub use error::{ClientError, ErrorDetail, TransportError};
pub use frame::{Close, Frame, Reply};
pub use rpc::{RpcError, RpcRequest};
