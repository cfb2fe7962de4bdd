//! The channel model of pikku: typed handlers, wiring, routing, sessions, the event hub and the message
//! pipeline. Runners (the embedded WebSocket server of `pikku-server`) sit on top; most applications depend on
//! the `pikku` facade instead of this crate.
//!
//! # Contents
//! - [`Channel`] / [`ClosedChannel`]: what handlers get (Pikku's `PikkuChannel`).
//! - [`handler`]: the handler kinds and what they may return ([`IntoReply`]).
//! - [`ChannelRoute`] / [`Route`]: wiring a channel; [`App`]: the application.
//! - [`Ctx`]: services, the live session and the [`EventHub`].
//! - [`middleware`]: message, lifecycle and upgrade middleware, permissions.
//! - [`ChannelError`] and [`ClientError`]: what the client sees when something fails.
//! - [`runtime`]: the pipeline runners drive.
//! - [`telemetry`]: metrics and the spans handlers run in.
//!
//! # Example
//! A channel with a connection handler, two routed messages that need a session (one of them opens it), and a
//! disconnection handler. Serve the app with `pikku::ChannelServer` (or `pikku::serve`).
//!
//! ```
//! use pikku::{App, Channel, ChannelError, ChannelRoute, ClosedChannel, Ctx, Params, Route};
//!
//! #[derive(Clone)]
//! struct User { name: String }
//!
//! #[derive(serde::Deserialize)]
//! struct Login { name: String }
//!
//! async fn welcome(_ctx: Ctx<(), User>, ch: Channel<Params, String>) {
//!     let _ = ch.send("welcome! log in first");
//! }
//! async fn login(ctx: Ctx<(), User>, _ch: Channel<Params, ()>, input: Login) -> bool {
//!     ctx.set_session(User { name: input.name });
//!     true
//! }
//! async fn whoami(ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: ()) -> Result<String, ChannelError> {
//!     ctx.session().map(|u| u.name).ok_or_else(|| ChannelError::unauthorized("Log in first"))
//! }
//! async fn bye(ctx: Ctx<(), User>, ch: ClosedChannel<Params>) {
//!     tracing::info!(user = ?ctx.session().map(|u| u.name), reason = %ch.reason(), "left");
//! }
//!
//! let app = App::new(()).channel(
//!     ChannelRoute::new("account", "/account")
//!         .on_connect(welcome)
//!         .route("action", "login", Route::new(login).auth(false))
//!         .route("action", "whoami", whoami)
//!         .on_disconnect(bye),
//! );
//! # let _ = app;
//! ```

pub mod app;
pub mod channel;
mod config;
pub mod ctx;
pub mod describe;
pub mod error;
pub mod events;
pub mod frame;
mod future;
pub mod handler;
pub mod hub;
pub mod input;
pub mod log_limit;
pub mod middleware;
pub mod opening;
pub mod origin;
mod permission;
pub mod rate_limit;
pub mod rpc;
pub mod runtime;
mod socket_state;
pub mod stateless;
pub mod store;
pub mod subprotocol;
pub mod telemetry;
pub mod wiring;

pub use app::{App, AppConfig, AppRuntime};
pub use channel::{
    Channel, ChannelState, ClosedChannel, Connection, DisconnectReason, SlowConsumerPolicy,
};
pub use ctx::Ctx;
pub use error::{
    ChannelError, ClientError, ErrorClass, ErrorDetail, HubError, RegistrationError, SendError,
};
pub use frame::{encode_json, encode_value, OutFrame};
pub use handler::{typed, IntoBinaryReply, IntoReply, Json, Reply, Typed};
pub use hub::{EventHub, HubLimits};
pub use input::FromInput;
#[cfg(feature = "garde")]
pub use input::Valid;
pub use middleware::{MiddlewareCtx, Next, PermissionCtx, UpgradeRequest};
pub use opening::{opening_from_params, parse_query, Params, RoutePattern, RouteSegment};
pub use origin::OriginPolicy;
pub use rate_limit::RateLimit;
pub use rpc::{Capability, RpcError, RpcFailure};
pub use wiring::{permission, ChannelRoute, Route};
