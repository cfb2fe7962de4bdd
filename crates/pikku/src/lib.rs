//! # pikku
//!
//! Typed real-time WebSocket channels for Rust, wire-compatible with Pikku's browser client.
//!
//! Write three kinds of handlers, as in Pikku: a connection handler, message handlers and a disconnection
//! handler. Each receives a [`Ctx`] (services, session, event hub) and a [`Channel`] (`channel_id`,
//! `opening_data`, `send`, `close`, `state`). The disconnection handler receives a [`ClosedChannel`], which has
//! no `send`: sending there does not compile.
//!
//! ```no_run
//! use pikku::prelude::*;
//!
//! async fn on_connect(_ctx: Ctx<(), ()>, channel: Channel<Params, String>) {
//!     let _ = channel.send("hello!");
//! }
//!
//! #[derive(serde::Deserialize)]
//! enum Greeting { #[serde(rename = "hi!")] Hi, #[serde(rename = "hey")] Hey }
//!
//! async fn on_message(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, greeting: Greeting) -> &'static str {
//!     match greeting { Greeting::Hi => "hello", Greeting::Hey => "ola" }
//! }
//!
//! async fn on_disconnect(_ctx: Ctx<(), ()>, channel: ClosedChannel<Params>) {
//!     tracing::info!(channel_id = channel.channel_id(), "disconnected");
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let app = App::new(()).channel(
//!         ChannelRoute::new("greet", "/greet")
//!             .auth(false)
//!             .on_connect(on_connect)
//!             .on_message(on_message)
//!             .on_disconnect(on_disconnect),
//!     );
//!     pikku::serve(app, "127.0.0.1:4002".parse().unwrap()).await
//! }
//! ```
//!
//! # Crates
//! - [`core`] (`pikku-core`): the channel model, wiring, pipeline and event hub.
//! - [`server`] (`pikku-server`): the embedded WebSocket server and its axum integration.

pub use pikku_core as core;
pub use pikku_server as server;

#[cfg(feature = "garde")]
pub use pikku_core::Valid;
pub use pikku_core::{
    App, AppConfig, Capability, Channel, ChannelError, ChannelRoute, ChannelState, ClientError,
    ClosedChannel, Ctx, DisconnectReason, ErrorDetail, EventHub, MiddlewareCtx, Next, Params,
    PermissionCtx, Reply, Route, RpcError, SendError, SlowConsumerPolicy, UpgradeRequest,
};
pub use pikku_server::{serve, serve_with_shutdown, ChannelServer, ServerConfig};

/// The payload type of binary frames, so binary handlers need no direct `bytes` dependency.
pub use bytes::Bytes;

/// The names most applications need, for `use pikku::prelude::*`.
pub mod prelude {
    pub use pikku_core::{
        App, Channel, ChannelError, ChannelRoute, ClosedChannel, Ctx, Params, Route,
    };
    pub use pikku_server::{ChannelServer, ServerConfig};

    pub use bytes::Bytes;
}

/// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
