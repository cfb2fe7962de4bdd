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
//! # A first app
//! A room chat served next to an ordinary HTTP route, with sign-in at the upgrade, a routed action and a message
//! published to the others in the room: the app that `docs/getting-started.md` builds step by step (it is
//! `examples/getting-started` in the repository, tested over real sockets).
//!
//! ```no_run
//! //! Room chat: a channel at `/rooms/{room}` next to an HTTP route, with sign-in at the upgrade, a routed action
//! //! and publish-with-exclude. The app of `docs/getting-started.md`.
//! use pikku::prelude::*;
//! use pikku::UpgradeRequest;
//! use serde::Deserialize;
//!
//! /// Opening data: the room from the path (`?token=` is in the query, and ignored here).
//! #[derive(Deserialize)]
//! struct Room {
//!     room: String,
//! }
//!
//! /// `{"action":"say","text":"hi"}`.
//! #[derive(Deserialize)]
//! struct Say {
//!     text: String,
//! }
//!
//! /// Sign-in at the upgrade: `?token=ann-secret` signs in `ann`; any other token is refused with a 401.
//! async fn sign_in(req: UpgradeRequest<(), String>) -> Result<(), ChannelError> {
//!     let token = req.params().get("token").map_or("", String::as_str);
//!     let name = token
//!         .strip_suffix("-secret")
//!         .filter(|name| !name.is_empty());
//!     req.set_session(
//!         name.ok_or_else(|| ChannelError::unauthorized("Invalid token"))?
//!             .to_owned(),
//!     );
//!     Ok(())
//! }
//!
//! /// On connect: join the room's topic.
//! async fn join(ctx: Ctx<(), String>, channel: Channel<Room, ()>) -> Result<(), ChannelError> {
//!     ctx.hub()
//!         .subscribe(&channel.opening_data().room, channel.channel_id())
//!         .await?;
//!     Ok(())
//! }
//!
//! /// Everyone else in the room gets `{"from":"ann","text":"hi"}`; the sender gets `{"action":"say"}`.
//! async fn say(
//!     ctx: Ctx<(), String>,
//!     channel: Channel<Room, ()>,
//!     say: Say,
//! ) -> Result<(), ChannelError> {
//!     let message = serde_json::json!({ "from": ctx.session(), "text": say.text });
//!     let room = &channel.opening_data().room;
//!     ctx.hub()
//!         .publish(room, Some(channel.channel_id()), &message)
//!         .await?;
//!     Ok(())
//! }
//!
//! /// The channels.
//! pub fn app() -> App<(), String> {
//!     let rooms = ChannelRoute::new("rooms", "/rooms/{room}").upgrade_middleware(sign_in);
//!     App::new(()).channel(rooms.on_connect(join).route("action", "say", say))
//! }
//!
//! /// The app's own HTTP routes; `serve_router` adds the channel's path to them.
//! pub fn pages() -> axum::Router {
//!     axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     // Until SIGINT or SIGTERM, then a graceful shutdown.
//!     pikku::serve_router(app(), pages(), "127.0.0.1:4000".parse().unwrap()).await
//! }
//! ```
//!
//! # Where to look
//! - Handlers: [`Ctx`], [`Channel`], [`ClosedChannel`]; what they may return: [`core::handler`], which also lists
//!   the mistakes the compiler explains when a handler does not compile.
//! - Wiring: [`ChannelRoute`] (routes, `auth`, middleware, permissions), [`Route`], [`App`], [`AppConfig`].
//! - Failures: [`ChannelError`] and [`ClientError`]; [`Valid`] for `garde` validation.
//! - Realtime clients: [`events::EventsChannel`] serves Pikku's realtime client (socket and Server-Sent Events);
//!   [`server::SubprotocolPolicy`] answers clients that offer subprotocols.
//! - Broadcasting: [`EventHub`], reached through [`Ctx::hub`] or [`ChannelServer::hub`]; across processes,
//!   [`HubUrlExt::hub_url`] with a broker's URL (cargo features `redis`, `nats`, `postgres`).
//! - Stateless (serverless) runners: [`stateless`], the same app served one event per invocation behind a
//!   gateway, and [`store`], the channel, subscription and session stores it keeps connections in (in memory,
//!   and on Redis or PostgreSQL with the cargo features `redis` and `postgres`).
//! - Serving: [`serve`], [`serve_router`] (channels next to your own axum routes), [`serve_with_shutdown`] with
//!   [`shutdown_signal`] or a stop signal of your own, or [`ChannelServer`] with a [`ServerConfig`].
//! - Operating: `/healthz` and `/readyz` on the standalone server ([`ServerConfig::health_path`]), metrics
//!   ([`metrics`], a Prometheus scrape page with the cargo feature `prometheus`), and the spans every handler
//!   runs in ([`core::telemetry`]).
//! - The wire protocol and what the server does with each frame, rule by rule: `docs/protocol.md` and
//!   `docs/semantics.md` in the repository (design choices: `docs/decisions.md`).
//!
//! # Serving with a handle
//! [`ChannelServer`] keeps a handle on the running server: publish from outside any connection, and shut down
//! gracefully when you decide.
//!
//! ```
//! use pikku::prelude::*;
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = App::new(())
//!     .configure(|config| config.outbound_queue_bytes = 256 * 1024)
//!     .channel(ChannelRoute::new("events", "/events").auth(false).on_connect(hello));
//! let server = ChannelServer::new(app, ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let serving = tokio::spawn(server.clone().serve(listener));
//!
//! // From a job, an HTTP handler, …
//! server.hub().publish("news", None, &serde_json::json!({"headline": "hi"})).await.unwrap();
//!
//! server.shutdown().await; // open connections close with 1001 `going away`
//! serving.await.unwrap()?;
//! # std::io::Result::Ok(())
//! # }).unwrap();
//! ```
//!
//! # Crates
//! - [`core`] (`pikku-core`): the channel model, wiring, pipeline and event hub.
//! - [`server`] (`pikku-server`): the embedded WebSocket server and its axum integration.

/// The channel model (`pikku-core`), for the items the facade does not re-export: the [`core::runtime`]
/// pipeline, [`core::middleware::Invocation`], [`core::permission`], [`core::RegistrationError`], …
pub use pikku_core as core;
/// What an app's channels accept and answer, as data ([`App::describe`]): the input of `pikku-codegen`, which
/// writes typed clients from it. Register handlers with [`typed`] to include their JSON Schemas.
pub use pikku_core::describe;
/// The events channel of Pikku's realtime client ([`EventsChannel`](events::EventsChannel)): topic
/// subscriptions over a socket, the same topics as Server-Sent Events, and
/// [`publish_event`](events::publish_event) for the `{"topic","data"}` envelope. See `docs/realtime.md`.
///
/// ```
/// use pikku::events::{publish_event, EventsChannel};
/// use pikku::prelude::*;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app: App<(), ()> = App::new(()).channel(EventsChannel::new("/realtime/events").build());
/// let server = ChannelServer::new(app, ServerConfig::default());
/// // Sockets subscribed to `news`, and streams at /realtime/events/news, get {"topic":"news","data":{"n":1}}.
/// publish_event(server.hub(), "news", &serde_json::json!({"n": 1})).await.unwrap();
/// # });
/// ```
pub use pikku_core::events;
/// The event hub's parts beyond [`EventHub`]: the [`HubDriver`](hub::HubDriver) seam that links hubs of several
/// processes through a broker, its [`RemoteEvent`](hub::RemoteEvent) envelope, the in-process
/// [`LocalBus`](hub::LocalBus) and the link's [`HubStatus`](hub::HubStatus).
pub use pikku_core::hub;
/// Stateless mode: [`StatelessRuntime`](stateless::StatelessRuntime) serves an unchanged [`App`] one event per
/// invocation, with its connections in the [`store`]s, for gateway adapters such as Pushpin (`pikku-pushpin`)
/// and AWS API Gateway (`pikku-lambda`).
pub use pikku_core::stateless;
/// The stores of stateless (serverless) runners: [`ChannelStore`](store::ChannelStore) for connection records,
/// [`EventHubStore`](store::EventHubStore) for subscriptions, [`SessionStore`](store::SessionStore) for sessions,
/// their in-memory implementations, and [`publish`](store::publish) / [`sweep_expired`](store::sweep_expired)
/// over them. The Redis and PostgreSQL stores are `pikku::redis::store` and `pikku::postgres::store` (cargo
/// features `redis` and `postgres`). See `docs/stores.md`.
///
/// ```
/// use pikku::store::{ChannelRecord, ChannelStore, MemoryChannelStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryChannelStore::new();
/// store.add_channel(ChannelRecord::new("conn-1", "chat", serde_json::json!({}))).await.unwrap();
/// assert_eq!(store.get_channel("conn-1").await.unwrap().channel_name, "chat");
/// # });
/// ```
pub use pikku_core::store;
/// The embedded server (`pikku-server`), including its [`ChannelService`](server::ChannelService) for axum
/// and the [`SubprotocolPolicy`](server::SubprotocolPolicy) of [`ServerConfig::subprotocols`].
pub use pikku_server as server;

pub use pikku_core::error::BackendError;
pub use pikku_core::typed;
#[cfg(feature = "garde")]
pub use pikku_core::Valid;
pub use pikku_core::{
    permission, App, AppConfig, Capability, Channel, ChannelError, ChannelRoute, ChannelState,
    ClientError, ClosedChannel, Ctx, DisconnectReason, ErrorClass, ErrorDetail, EventHub,
    FromInput, HubError, IntoBinaryReply, IntoReply, Json, MiddlewareCtx, Next, OriginPolicy,
    Params, PermissionCtx, RateLimit, RegistrationError, Reply, Route, RoutePattern, RouteSegment,
    RpcError, RpcFailure, SendError, SlowConsumerPolicy, Typed, UpgradeRequest,
};

mod hub_url;
pub use hub_url::{HubUrlError, HubUrlExt};
mod store_url;
pub use store_url::{stores_from_url, StoreUrlError};

/// The NATS event hub backend (`pikku-nats`, cargo feature `nats`).
#[cfg(feature = "nats")]
pub use pikku_nats as nats;
/// The PostgreSQL LISTEN/NOTIFY event hub backend (`pikku-postgres`, cargo feature `postgres`).
#[cfg(feature = "postgres")]
pub use pikku_postgres as postgres;
/// The stateless worker behind Pushpin or Fastly Fanout (`pikku-pushpin`, cargo feature `pushpin`).
#[cfg(feature = "pushpin")]
pub use pikku_pushpin as pushpin;
/// The Redis event hub backend (`pikku-redis`, cargo feature `redis`).
#[cfg(feature = "redis")]
pub use pikku_redis as redis;

pub use pikku_server::{
    serve, serve_router, serve_with_shutdown, shutdown_signal, ChannelServer, ServerConfig,
};

/// Metrics: [`enable`](metrics::enable) for a recorder of your own, the metric [`names`](metrics::names), and with
/// the cargo feature `prometheus` a recorder (`metrics::install_prometheus`) whose scrape
/// page the standalone server serves on `/metrics`. The spans handlers run in are described in
/// [`core::telemetry`].
#[doc(no_inline)]
pub use pikku_server::metrics;

/// The payload type of binary frames, so binary handlers need no direct `bytes` dependency.
pub use bytes::Bytes;

/// The names most applications need, for `use pikku::prelude::*`: [`App`], [`ChannelRoute`], [`Route`],
/// [`Ctx`], [`Channel`], [`ClosedChannel`], [`Params`], [`ChannelError`], [`ChannelServer`], [`ServerConfig`] and
/// [`Bytes`]. Everything else is at the crate root.
///
/// ```
/// use pikku::prelude::*;
///
/// async fn upload(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, bytes: Bytes) -> Result<Vec<u8>, ChannelError> {
///     if bytes.is_empty() {
///         return Err(ChannelError::bad_request("Empty upload"));
///     }
///     Ok(bytes.to_vec())
/// }
///
/// let app = App::new(()).channel(ChannelRoute::new("files", "/files").auth(false).on_binary(upload));
/// let server = ChannelServer::new(app, ServerConfig::default());
/// # let _ = server;
/// ```
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
