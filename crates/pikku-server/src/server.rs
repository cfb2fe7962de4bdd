//! The server handle: upgrade service, heartbeat sweep, connection accounting and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::future::{Either, OptionFuture};
use futures_util::FutureExt;
use http::{Request, Response};
use hyper_util::rt::TokioIo;
use pikku_core::channel::CloseRequest;
use pikku_core::handler::BoxFuture;
use pikku_core::runtime::{StreamTarget, UpgradeInput};
use pikku_core::{
    App, AppRuntime, ChannelError, DisconnectReason, EventHub, OutFrame, RoutePattern, RouteSegment,
};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::budget::InboundBudget;
use crate::config::ServerConfig;
use crate::limits::{IpSlot, PerIpCounts};
use crate::listener::HttpConnection;
use crate::metrics::server::ServerMetrics;
use crate::ws::WsStream;
use crate::{driver, health, listener, sse, upgrade};

struct Shared<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    config: ServerConfig,
    accepting: AtomicBool,
    /// Connections whose task is running (upgrade accepted, disconnect sequence not finished). Shared with the
    /// accept loop, which bounds these plus the connections still in their HTTP phase.
    active: Arc<AtomicUsize>,
    /// Channel connections per client address, for `max_connections_per_ip`.
    per_ip: Arc<PerIpCounts>,
    drained: Notify,
    sweeping: AtomicBool,
    /// Set once a shutdown completed; `serve` then stops listening.
    finished_flag: AtomicBool,
    finished: Notify,
    epoch: Instant,
    budget: Arc<InboundBudget>,
    /// Resolved when the server is built with metrics on.
    metrics: Option<Arc<ServerMetrics>>,
}

/// A channels server: serves an [`App`] standalone or as a tower service inside an axum app.
///
/// Cloning is cheap and every clone is the same server: keep one to [`shutdown`](Self::shutdown) or to reach the
/// [`hub`](Self::hub) while another serves. One heartbeat sweep task runs per server (started by the first
/// [`service`](Self::service) or `serve` call) and ends once every clone is dropped.
///
/// ```no_run
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
/// use pikku::{ChannelServer, ServerConfig};
///
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
///
/// # async fn run() -> std::io::Result<()> {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let server = ChannelServer::new(app, ServerConfig::default());
/// // Mount into an existing axum router…
/// let router: axum::Router = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .merge(server.router());
/// # let _ = router;
/// // …or serve it on its own.
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:4002").await?;
/// server.serve(listener).await
/// # }
/// ```
pub struct ChannelServer<S, U> {
    shared: Arc<Shared<S, U>>,
}

/// A server for the app with the default [`ServerConfig`], so that [`serve_router`](crate::serve_router) takes an
/// app or a server.
///
/// ```
/// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
/// # use pikku::ChannelServer;
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let server: ChannelServer<(), ()> = app.into();
/// assert_eq!(server.active_connections(), 0);
/// ```
impl<S, U> From<App<S, U>> for ChannelServer<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    fn from(app: App<S, U>) -> Self {
        Self::new(app, ServerConfig::default())
    }
}

impl<S, U> Clone for ChannelServer<S, U> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S, U> std::fmt::Debug for ChannelServer<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelServer")
            .field("config", &self.shared.config)
            .field("active", &self.shared.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<S, U> ChannelServer<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// A server for `app` with `config`. The app is built into its runtime here (see
    /// [`App::into_runtime`](pikku_core::App::into_runtime)); nothing listens until a `serve` method runs or the
    /// [`service`](Self::service) is mounted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::{ChannelServer, ServerConfig};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let config = ServerConfig { idle_timeout: Duration::from_secs(120), ..ServerConfig::default() };
    /// let server = ChannelServer::new(app, config);
    /// assert_eq!(server.active_connections(), 0);
    /// ```
    pub fn new(app: App<S, U>, config: ServerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                rt: app.into_runtime(),
                accepting: AtomicBool::new(true),
                active: Arc::new(AtomicUsize::new(0)),
                per_ip: Arc::default(),
                drained: Notify::new(),
                sweeping: AtomicBool::new(false),
                finished_flag: AtomicBool::new(false),
                finished: Notify::new(),
                epoch: Instant::now(),
                budget: Arc::new(InboundBudget::new(config.inbound_budget_bytes)),
                metrics: ServerMetrics::resolve().map(Arc::new),
                config,
            }),
        }
    }

    /// The event hub, for publishing from outside any connection (HTTP handlers, background jobs).
    ///
    /// ```
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let hub = server.hub().clone(); // e.g. for a job that publishes news every minute
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let delivered = hub.publish("news", None, &serde_json::json!({"headline": "…"})).await.unwrap();
    /// assert_eq!(delivered, 0); // nobody is subscribed yet
    /// # });
    /// ```
    #[must_use]
    pub fn hub(&self) -> &EventHub {
        self.shared.rt.hub()
    }

    /// The built application: its services, configuration and channel routes.
    ///
    /// ```
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// for (name, route) in server.runtime().channel_routes() {
    ///     println!("channel {name} at {route}");
    /// }
    /// ```
    #[must_use]
    pub fn runtime(&self) -> &Arc<AppRuntime<S, U>> {
        &self.shared.rt
    }

    /// Connections currently open or finishing their disconnect sequence (what
    /// [`ServerConfig::max_connections`] counts). For metrics and health checks; see [`shutdown`](Self::shutdown)
    /// for an example.
    #[must_use]
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Inbound bytes all connections hold right now (partial frames, messages being reassembled, messages waiting
    /// for their handler), as charged to [`ServerConfig::inbound_budget_bytes`]. For metrics and health checks.
    ///
    /// ```
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// assert_eq!(server.inbound_buffered_bytes(), 0);
    /// ```
    #[must_use]
    pub fn inbound_buffered_bytes(&self) -> usize {
        self.shared.budget.used()
    }

    /// The upgrade service, for any tower-based HTTP server; in axum, prefer [`router`](Self::router).
    ///
    /// It answers every request as a channel upgrade: a WebSocket upgrade whose path matches no channel gets a
    /// JSON 404 (`NotFoundError`, `Channel not found: <path>`), and a request that is not a well-formed upgrade
    /// (a plain `GET`, any other method) gets 400 `Malformed upgrade request`. As an axum fallback it therefore
    /// answers every path your router does not route; [`router`](Self::router) mounts only the channels'
    /// paths. Serve either with [`serve_router`](Self::serve_router), which also applies the handshake
    /// timeout and the connection limit at accept; with plain `axum::serve` no request-head timeout applies, so
    /// silent sockets stay open until the process runs out of descriptors. There, serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` if upgrade middleware or
    /// [`ServerConfig::max_connections_per_ip`] needs the peer address.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::{ChannelServer, ServerConfig};
    /// use tower_service::Service;
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let router: axum::Router = axum::Router::new()
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .fallback_service(server.service());
    ///
    /// // A plain GET to a channel is not an upgrade:
    /// let mut service = server.service();
    /// let response = service.call(http::Request::get("/events").body(()).unwrap()).await.unwrap();
    /// assert_eq!(response.status(), 400);
    /// let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    /// let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    /// assert_eq!(body["message"], "Malformed upgrade request");
    /// # let _ = router;
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside a Tokio runtime: the first call starts the heartbeat sweep task.
    #[must_use]
    pub fn service(&self) -> ChannelService<S, U> {
        self.start_sweep();
        ChannelService {
            shared: self.shared.clone(),
            endpoints: false,
        }
    }

    /// The service the standalone `serve` methods fall back to: the health, readiness and metrics endpoints of
    /// the [`ServerConfig`] for plain `GET`/`HEAD` requests to their paths, the channels for everything else.
    fn standalone_service(&self) -> ChannelService<S, U> {
        ChannelService {
            endpoints: true,
            ..self.service()
        }
    }

    /// An axum router with the plain-HTTP endpoints of the [`ServerConfig`] (liveness
    /// [`health_path`](ServerConfig::health_path), readiness [`ready_path`](ServerConfig::ready_path) and, with the
    /// `prometheus` feature, [`metrics_path`](ServerConfig::metrics_path)), to merge into a router of your own.
    /// The standalone `serve` methods answer them already; [`serve_router`](Self::serve_router) leaves your
    /// router's paths to you, so merge this one in to have them there.
    ///
    /// ```
    /// use pikku::prelude::*;
    /// use tower_service::Service;
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let mut router = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "the page" }))
    ///     .merge(server.endpoints());
    /// let get = |path: &str| http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    /// assert_eq!(router.call(get("/readyz")).await.unwrap().status(), 200);
    /// server.shutdown().await;
    /// assert_eq!(router.call(get("/readyz")).await.unwrap().status(), 503); // draining
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside a Tokio runtime, as [`service`](Self::service).
    pub fn endpoints(&self) -> axum::Router {
        let config = &self.shared.config;
        [
            &config.health_path,
            &config.ready_path,
            &config.metrics_path,
        ]
        .into_iter()
        .flatten()
        .fold(axum::Router::new(), |router, path| {
            router.route(path, axum::routing::get_service(self.standalone_service()))
        })
    }

    /// An axum router with one route per channel pattern, to [`merge`](axum::Router::merge) into your own:
    /// channel paths upgrade, every other path is your router's (a 404 unless you route it).
    ///
    /// Patterns are mounted in axum's syntax (`/rooms/:roomId` and `/rooms/{roomId}` both become a one-segment
    /// param), with and without a trailing `/`, as the channels match them. On a channel path, a `GET` that is
    /// not a WebSocket upgrade gets 400 with the JSON body `{"name":"BadRequestError","message":"Malformed upgrade
    /// request",…}`, and other methods get 405 with an `Allow` header, as any axum `get` route answers them. A
    /// route of yours at a channel path makes `merge` panic, as overlapping axum routes do.
    ///
    /// Serve the merged router with [`serve_router`](Self::serve_router) (or [`crate::serve_router`]), which
    /// does the merging for you and applies the [`ServerConfig`] limits to every connection.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::{ChannelServer, ServerConfig};
    /// use tower_service::Service;
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app = App::new(()).channel(ChannelRoute::new("rooms", "/rooms/{roomId}").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let mut router = axum::Router::new()
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .merge(server.router());
    ///
    /// let status = |path: &str| http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    /// assert_eq!(router.call(status("/health")).await.unwrap().status(), 200);
    /// assert_eq!(router.call(status("/favicon.ico")).await.unwrap().status(), 404);
    /// assert_eq!(router.call(status("/rooms/lobby")).await.unwrap().status(), 400); // a GET, not an upgrade
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside a Tokio runtime, as [`service`](Self::service).
    pub fn router(&self) -> axum::Router {
        let service = self.service();
        let mut paths = axum_paths(self.shared.rt.channel_patterns());
        paths.extend(stream_paths(self.shared.rt.stream_patterns()));
        // A stream path can coincide with a channel's (`/rooms/{p1}` for an events channel at `/rooms` and a
        // channel at `/rooms/:roomId`): both are this service, mounted once.
        let mut seen = std::collections::HashSet::new();
        paths.retain(|path| seen.insert(path.clone()));
        paths.into_iter().fold(axum::Router::new(), |router, path| {
            router.route(&path, axum::routing::get_service(service.clone()))
        })
    }

    /// Every request is a channel upgrade, but for plain requests to the endpoint paths: what the standalone
    /// `serve` methods serve, so that an upgrade to a path no channel has gets the JSON `Channel not found`
    /// refusal.
    fn upgrade_router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.standalone_service())
    }

    /// Serves on `listener` until [`shutdown`](Self::shutdown) (called through any clone) completes.
    ///
    /// Keep a clone of the server to call `shutdown` from elsewhere (a signal handler, an admin route); see the
    /// [crate example](crate#example). TCP_NODELAY is set on every accepted socket.
    ///
    /// ```
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let serving = tokio::spawn(server.clone().serve(listener));
    /// // …
    /// server.shutdown().await;
    /// serving.await.unwrap()?;
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The listener failed.
    ///
    /// # Cancel safety
    /// Dropping the future stops accepting connections, without a graceful shutdown: connections already upgraded
    /// keep running in their own tasks until they close or [`shutdown`](Self::shutdown) is called.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let finished = self.finished();
        let router = self.upgrade_router();
        self.serve_on(router, listener, finished).await
    }

    /// Serves on `listener` until `signal` resolves, then shuts down gracefully (see [`shutdown`](Self::shutdown))
    /// and returns once the shutdown finished. Upgrades arriving during the shutdown get 503.
    ///
    /// ```
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let serving = tokio::spawn(server.serve_with_shutdown(listener, async move {
    ///     let _ = stopped.await;
    /// }));
    /// stop.send(()).unwrap();
    /// serving.await.unwrap()?;
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The listener failed.
    ///
    /// # Cancel safety
    /// As [`serve`](Self::serve): dropping the future stops accepting without a graceful shutdown (or interrupts
    /// one that has begun).
    pub async fn serve_with_shutdown(
        self,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let this = self.clone();
        let stop = async move {
            signal.await;
            this.shutdown().await;
        };
        self.serve_until(listener, stop).await
    }

    /// Serves on `listener` until `stop` resolves, without shutting the channels down itself: call
    /// [`shutdown`](Self::shutdown) first for a graceful stop. Upgrades arriving after a shutdown get 503 for as
    /// long as this runs.
    ///
    /// Use it when you control the order yourself, as tests do: shut down, check what clients saw, then stop
    /// listening.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let stop = Arc::new(tokio::sync::Notify::new());
    /// let stopped = stop.clone();
    /// let serving = tokio::spawn(server.clone().serve_until(listener, async move { stopped.notified().await }));
    ///
    /// server.shutdown().await; // upgrades now get 503, but the listener still answers
    /// stop.notify_one();       // now stop listening
    /// serving.await.unwrap()?;
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The listener failed.
    ///
    /// # Cancel safety
    /// As [`serve`](Self::serve): dropping the future stops accepting; upgraded connections run on.
    pub async fn serve_until(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.upgrade_router();
        self.serve_on(router, listener, stop).await
    }

    /// Serves your own axum `router` with the channels' [`router`](Self::router) merged in, on `listener`, until
    /// [`shutdown`](Self::shutdown) (called through any clone) completes.
    ///
    /// This is how to serve channels next to pages or an API: unlike plain `axum::serve`, it applies the
    /// [`ServerConfig`] limits to every connection (the handshake timeout for request heads and idle keep-alive
    /// connections, and [`ServerConfig::max_connections`] counted at accept), and handlers and middleware can
    /// extract `ConnectInfo<SocketAddr>`. Paths that are not channels stay your router's, fallback included; a
    /// route of yours at a channel path panics, as overlapping axum routes do. Bodies are not timed: put a
    /// timeout layer on routes that read request bodies. TCP_NODELAY is set on every accepted socket.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::{ChannelServer, ServerConfig};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let pages = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let serving = tokio::spawn(server.clone().serve_router(pages, listener));
    ///
    /// let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/events")).await.unwrap();
    /// assert_eq!(ws.next().await.unwrap().unwrap().to_text().unwrap(), "hello!");
    ///
    /// server.shutdown().await; // the client gets 1001 `going away`, then `serve_router` returns
    /// serving.await.unwrap()?;
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The listener failed.
    ///
    /// # Cancel safety
    /// As [`serve`](Self::serve): dropping the future stops accepting; upgraded connections run on.
    pub async fn serve_router(
        self,
        router: axum::Router,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<()> {
        let finished = self.finished();
        let router = router.merge(self.router());
        self.serve_on(router, listener, finished).await
    }

    /// [`serve_router`](Self::serve_router) until `signal` resolves, then shuts down gracefully (as
    /// [`serve_with_shutdown`](Self::serve_with_shutdown)) and returns once the shutdown finished. Pass
    /// [`shutdown_signal`](crate::shutdown_signal) to stop on SIGINT or SIGTERM.
    ///
    /// ```no_run
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    /// # async fn run() -> std::io::Result<()> {
    /// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let pages = axum::Router::new().route("/", axum::routing::get(|| async { "the page" }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:4002").await?;
    /// server.serve_router_with_shutdown(pages, listener, pikku::shutdown_signal()).await
    /// # }
    /// ```
    ///
    /// # Errors
    /// The listener failed.
    ///
    /// # Cancel safety
    /// As [`serve_with_shutdown`](Self::serve_with_shutdown).
    pub async fn serve_router_with_shutdown(
        self,
        router: axum::Router,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let this = self.clone();
        let stop = async move {
            signal.await;
            this.shutdown().await;
        };
        let router = router.merge(self.router());
        self.serve_on(router, listener, stop).await
    }

    /// The accept loop of every `serve` method, with this server's limits.
    async fn serve_on(
        self,
        router: axum::Router,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // The broker link comes up before the first client: a driver that can never start fails the serve
        // call instead of every later publish (a broker that is only down is retried by the driver).
        self.hub().start().await.map_err(std::io::Error::other)?;
        let limits = listener::Limits {
            handshake_timeout: self.shared.config.handshake_timeout,
            max_connections: self.shared.config.max_connections,
            upgraded: self.shared.active.clone(),
            metrics: self.shared.metrics.clone(),
        };
        listener::serve(router, listener, stop, limits).await
    }

    /// Graceful shutdown: new upgrades get 503, every open connection is closed with 1001
    /// `going away` and runs its disconnect sequence; returns when all have finished or the shutdown timeout
    /// passed. The listener keeps answering until the serve future ends; [`serve`](Self::serve) ends on its own
    /// once this returns. There is no way back: the server refuses upgrades from the first call on.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tokio_tungstenite::tungstenite::Message;
    /// # use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// # use pikku::{ChannelServer, ServerConfig};
    /// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// let server = ChannelServer::new(app, ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let serving = tokio::spawn(server.clone().serve(listener));
    /// let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/events")).await.unwrap();
    /// let _hello = ws.next().await;
    /// assert_eq!(server.active_connections(), 1);
    ///
    /// // The client reads its close frame while the shutdown waits for it to finish.
    /// let (_, ()) = tokio::join!(
    ///     async {
    ///         let Some(Ok(Message::Close(Some(close)))) = ws.next().await else { panic!("expected a close") };
    ///         assert_eq!((u16::from(close.code), close.reason.as_str()), (1001, "going away"));
    ///     },
    ///     server.shutdown(),
    /// );
    /// assert_eq!(server.active_connections(), 0);
    /// serving.await.unwrap()?;
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    /// Dropping the future stops the waiting, not the shutdown: upgrades stay refused and the close requests are
    /// already sent, but [`serve`](Self::serve) does not end until a later `shutdown` call completes.
    pub async fn shutdown(&self) {
        self.shared.accepting.store(false, Ordering::SeqCst);
        for conn in self.shared.rt.registry().snapshot() {
            conn.request_close(going_away());
        }
        let wait_drained = async {
            loop {
                let notified = self.shared.drained.notified();
                if self.shared.active.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(self.shared.config.shutdown_timeout, wait_drained)
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.shared.active.load(Ordering::Acquire),
                "shutdown timeout passed with connections still open"
            );
        }
        self.shared.finished_flag.store(true, Ordering::Release);
        self.shared.finished.notify_waiters();
    }

    /// Resolves once a [`shutdown`](Self::shutdown) has completed: what `serve` and `serve_router` stop on.
    fn finished(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            loop {
                let notified = shared.finished.notified();
                if shared.finished_flag.load(Ordering::Acquire) {
                    break;
                }
                notified.await;
            }
        }
    }

    fn start_sweep(&self) {
        if self.shared.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let period = self.shared.config.sweep_period();
        tokio::spawn(sweep(weak, period));
    }
}

/// Connections the sweep handles between two yields to the scheduler.
const SWEEP_CHUNK: usize = 256;

/// The heartbeat sweep: one task per server instead of a timer per connection. Pings connections that have been
/// quiet for a ping interval, closes those quiet for the idle timeout (1001 `idle timeout`) and those receiving a
/// frame for longer than the frame timeout (1008 `frame timeout`).
async fn sweep<S, U>(shared: Weak<Shared<S, U>>, period: std::time::Duration)
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let ping_ms = shared.config.ping_interval.as_millis() as u64;
        let idle_ms = shared.config.idle_timeout.as_millis() as u64;
        let frame_ms = shared.config.frame_timeout.as_millis() as u64;
        let metrics = shared.metrics.clone();
        let mut queued = 0;
        for (i, conn) in shared.rt.registry().snapshot().into_iter().enumerate() {
            if i % SWEEP_CHUNK == SWEEP_CHUNK - 1 {
                // Connections idle since the same moment all come due in one sweep: let the pinged ones write,
                // and everything else run, between chunks instead of after tens of thousands of them.
                tokio::task::yield_now().await;
            }
            let quiet = conn.idle_ms();
            if conn.frame_pending_ms().is_some_and(|ms| ms >= frame_ms) {
                conn.request_close(CloseRequest {
                    code: 1008,
                    reason: "frame timeout".into(),
                    flush: false,
                    cause: DisconnectReason::FrameTimeout,
                });
            } else if quiet >= idle_ms {
                conn.request_close(CloseRequest {
                    code: 1001,
                    reason: "idle timeout".into(),
                    flush: false,
                    cause: DisconnectReason::IdleTimeout,
                });
            } else if quiet >= ping_ms {
                let _ = conn.push(OutFrame::Ping);
            }
            if conn.is_reading_paused() {
                // It reads nothing while its queue is full: let it check whether its client is still there.
                conn.wake_runner();
            }
            if metrics.is_some() {
                queued += conn.queued_bytes();
            }
        }
        if let Some(metrics) = metrics {
            metrics.sample(queued, shared.budget.used());
        }
    }
}

/// The tower service that answers channel upgrades (see [`ChannelServer::service`], which makes one).
///
/// It is always ready and never fails: a refused upgrade is a JSON response `{name, message, errorId}` with the
/// error's status, an accepted one a 101 response whose connection then runs in its own task.
/// Cloning is cheap.
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
/// use pikku::{ChannelServer, ServerConfig};
/// use pikku::server::ChannelService;
///
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
///
/// // Mount the channels under the rest of an axum app.
/// fn routes(channels: ChannelService<(), ()>) -> axum::Router {
///     axum::Router::new()
///         .route("/", axum::routing::get(|| async { "the page" }))
///         .fallback_service(channels)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let router = routes(ChannelServer::new(app, ServerConfig::default()).service());
/// # let _ = router;
/// # });
/// ```
pub struct ChannelService<S, U> {
    shared: Arc<Shared<S, U>>,
    /// Whether the plain-HTTP endpoints (health, readiness, metrics) are answered before the channels.
    endpoints: bool,
}

impl<S, U> Clone for ChannelService<S, U> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            endpoints: self.endpoints,
        }
    }
}

impl<S, U> std::fmt::Debug for ChannelService<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelService").finish_non_exhaustive()
    }
}

impl<S, U, B> tower_service::Service<Request<B>> for ChannelService<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.endpoints {
            let accepting = self.shared.accepting.load(Ordering::Acquire);
            if let Some(response) = health::answer(&req, &self.shared.config, accepting) {
                return Box::pin(std::future::ready(Ok(response)));
            }
        }
        let shared = self.shared.clone();
        Box::pin(async move { Ok(handle_upgrade(shared, req).await) })
    }
}

async fn handle_upgrade<S, U, B>(shared: Arc<Shared<S, U>>, mut req: Request<B>) -> Response<Body>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    B: Send + 'static,
{
    let path = req.uri().path().to_owned();
    // A well-formed upgrade within the path limit (400).
    let key = match upgrade::check_request(&req, shared.config.max_path_bytes) {
        Ok(key) => key,
        // Not an upgrade: it may be a plain `GET` for an events channel's topic stream.
        Err(err) => match stream_target(&shared, &req) {
            Some(target) => return handle_stream(shared, req, target).await,
            None => return upgrade::refusal(&err, &path, shared.metrics.as_deref()),
        },
    };
    // The server takes connections (503), and this address may open one more (429).
    let (peer, ip_slot) = match take_connection(&shared, &req) {
        Ok(taken) => (taken.peer, taken.ip_slot),
        Err(err) => return upgrade::refusal(&err, &path, shared.metrics.as_deref()),
    };
    // The application's checks: route, origin, opening data, upgrade middleware.
    let headers = Arc::new(std::mem::take(req.headers_mut()));
    let admitted = match shared
        .rt
        .admit(UpgradeInput {
            path: &path,
            query: req.uri().query(),
            headers: headers.clone(),
            peer,
        })
        .await
    {
        Ok(admitted) => admitted,
        Err(err) => return upgrade::refusal(&err, &path, shared.metrics.as_deref()),
    };
    // Last, after upgrade middleware, so a callback refusal never hides an earlier check's answer.
    let subprotocol = match shared.config.subprotocols.choose(&headers) {
        Ok(subprotocol) => subprotocol,
        Err(err) => return upgrade::refusal(&err, &path, shared.metrics.as_deref()),
    };
    let response = upgrade::switching_protocols(&key, subprotocol, admitted.response_headers());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let live = admitted.into_channel(None, shared.epoch);
    shared.active.fetch_add(1, Ordering::AcqRel);
    let guards = (ActiveGuard(shared.clone()), ip_slot);
    // Two phases, so that the task's state is the larger of the two rather than their sum: what waiting for the
    // upgrade needs is gone once the connection runs. The running phase is most of what an idle connection
    // costs: at 408 bytes (release build, TCP) tokio's task cell, which is a multiple of 128 bytes, is 512; a few
    // bytes more make it 640.
    let upgrade = async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                // The handshake could not be completed: no onConnect, no onDisconnect.
                tracing::debug!(error = %err, "upgrade not completed");
                return None;
            }
        };
        live.open();
        // A shutdown that began after this upgrade was admitted may have missed the connection: either it saw
        // the registration above, or we see it stopped accepting here.
        if !shared.accepting.load(Ordering::SeqCst) {
            live.connection().request_close(going_away());
        }
        let (max_frame, budget) = (shared.config.max_frame_bytes, shared.budget.clone());
        let close_timeout = shared.config.close_timeout;
        // Behind hyper's HTTP/1 server (ours, or `axum::serve`) the upgraded connection is a TCP stream: take it
        // back from hyper's boxed wrapper, which saves the box and a layer of calls on every read and write.
        Some(match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(hyper::upgrade::Parts { io, read_buf, .. }) => {
                let ws =
                    WsStream::with_buffered(io.into_inner(), &read_buf, max_frame, budget.clone());
                // It may be a view into hyper's whole read buffer: not to be kept for the connection's life.
                drop(read_buf);
                Either::Left(driver::run(ws, live, max_frame, budget, close_timeout))
            }
            Err(upgraded) => {
                let ws = WsStream::new(TokioIo::new(upgraded), max_frame, budget.clone());
                let run = driver::run(ws, live, max_frame, budget, close_timeout);
                Either::Right(Box::pin(run) as BoxFuture<()>)
            }
        })
    };
    let task = upgrade.map(OptionFuture::from).flatten();
    let task = Holding::new(task, guards);
    tokio::spawn(task);
    response
}

/// The topic stream a request asks for: a `GET` within the path limit whose path is an events channel's
/// `<path>/<topic>`.
fn stream_target<S, U, B>(shared: &Shared<S, U>, req: &Request<B>) -> Option<StreamTarget>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let path_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if req.method() != http::Method::GET || path_len > shared.config.max_path_bytes {
        return None;
    }
    shared.rt.match_stream(req.uri().path())
}

/// Answers a topic stream: the checks of an upgrade (shutdown, connection limits, then the application's, its
/// authorizer included), then a `text/event-stream` response whose connection is a hub subscriber like a socket.
async fn handle_stream<S, U, B>(
    shared: Arc<Shared<S, U>>,
    mut req: Request<B>,
    target: StreamTarget,
) -> Response<Body>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    B: Send + 'static,
{
    let path = req.uri().path().to_owned();
    // The server takes connections (503), and this address may open one more (429).
    let (peer, ip_slot) = match take_connection(&shared, &req) {
        Ok(taken) => (taken.peer, taken.ip_slot),
        Err(err) => return upgrade::refusal(&err, &path, shared.metrics.as_deref()),
    };
    let headers = Arc::new(std::mem::take(req.headers_mut()));
    let input = UpgradeInput {
        path: &path,
        query: req.uri().query(),
        headers,
        peer,
    };
    let stream = match shared
        .rt
        .admit_stream(target, input, None, shared.epoch)
        .await
    {
        Ok(stream) => stream,
        Err(err) => return upgrade::refusal(&err, &path, shared.metrics.as_deref()),
    };
    let live = stream.live;
    shared.active.fetch_add(1, Ordering::AcqRel);
    let guards = (ActiveGuard(shared.clone()), ip_slot);
    live.open();
    if let Err(err) = shared
        .rt
        .hub()
        .subscribe(&stream.topic, live.connection().id())
        .await
    {
        let reason = live.begin_disconnect(DisconnectReason::ServerClosed);
        live.run_disconnect(reason).await;
        return upgrade::refusal(&err.into(), &path, shared.metrics.as_deref());
    }
    // As for an upgrade: a shutdown that began meanwhile may have missed this connection.
    if !shared.accepting.load(Ordering::SeqCst) {
        live.connection().request_close(going_away());
    }
    let http = req.extensions().get::<Arc<HttpConnection>>().cloned();
    if let Some(http) = &http {
        http.begin_stream();
    }
    let (tx, body) = sse::channel();
    tokio::spawn(sse::run(
        live,
        tx,
        http,
        shared.config.close_timeout,
        guards,
    ));
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    for (name, value) in &stream.response_headers {
        headers.append(name, value.clone());
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    // One stream per connection: the connection ends with it.
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    // Proxies that buffer responses (nginx) would hold events back.
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// The axum paths of the channels' patterns, each with and without a trailing `/`. Params are named by position
/// (`{p0}`, `{p1}`, …): the channel service matches the path itself, and axum refuses two routes that give the
/// same position different names.
fn axum_paths<'a>(patterns: impl Iterator<Item = &'a RoutePattern>) -> Vec<String> {
    let mut paths = Vec::new();
    for pattern in patterns {
        let mut path = String::new();
        for (position, segment) in pattern.segments().enumerate() {
            match segment {
                RouteSegment::Literal(text) => {
                    path.push('/');
                    path.push_str(text);
                }
                RouteSegment::Param(_) => path.push_str(&format!("/{{p{position}}}")),
            }
        }
        if path.is_empty() {
            paths.push("/".to_owned());
        } else {
            paths.push(format!("{path}/"));
            paths.push(path);
        }
    }
    paths
}

/// The axum paths of the events channels' topic streams (`<pattern>/<topic>`), as [`axum_paths`] writes them.
fn stream_paths<'a>(patterns: impl Iterator<Item = &'a RoutePattern>) -> Vec<String> {
    let mut paths = Vec::new();
    for pattern in patterns {
        let base = axum_paths(std::iter::once(pattern))
            .into_iter()
            .find(|p| !p.ends_with('/') || p == "/")
            .unwrap_or_default();
        let position = pattern.segments().count();
        let base = base.trim_end_matches('/');
        let path = format!("{base}/{{p{position}}}");
        paths.push(format!("{path}/"));
        paths.push(path);
    }
    paths
}

/// What a new connection takes from the server: see [`take_connection`].
struct Taken {
    /// The client's address, when the serving mode provides it.
    peer: Option<SocketAddr>,
    /// The per-address slot the connection holds for its life, when a per-address limit is set.
    ip_slot: Option<Box<IpSlot>>,
}

/// The server-wide checks every new connection passes, socket or stream: the server is accepting (else 503),
/// under `max_connections` (503), and the client's address under `max_connections_per_ip` (429).
fn take_connection<S, U, B>(
    shared: &Shared<S, U>,
    req: &Request<B>,
) -> Result<Taken, ChannelError> {
    if !shared.accepting.load(Ordering::Acquire) {
        return Err(ChannelError::service_unavailable("Server is shutting down"));
    }
    if let Some(max) = shared.config.max_connections {
        if shared.active.load(Ordering::Acquire) >= max {
            return Err(ChannelError::service_unavailable(
                "Connection limit reached",
            ));
        }
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let ip_slot = match (shared.config.max_connections_per_ip, peer) {
        (Some(max), Some(peer)) => match shared.per_ip.try_acquire(peer.ip(), max) {
            // Boxed: the slot is held for the connection's life, and most servers set no per-address limit.
            Some(slot) => Some(Box::new(slot)),
            None => {
                return Err(ChannelError::too_many_requests(
                    "Too many connections from this address",
                ))
            }
        },
        _ => None,
    };
    Ok(Taken { peer, ip_slot })
}

/// The close of a shutdown: 1001 `going away`, after the frames already queued.
fn going_away() -> CloseRequest {
    CloseRequest {
        code: 1001,
        reason: "going away".into(),
        flush: true,
        cause: DisconnectReason::Shutdown,
    }
}

pin_project_lite::pin_project! {
    /// A future that holds `held` until it is dropped: a connection's task keeps its counting guards this way.
    struct Holding<F, H> {
        #[pin]
        future: F,
        held: H,
    }
}

impl<F, H> Holding<F, H> {
    fn new(future: F, held: H) -> Self {
        Self { future, held }
    }
}

impl<F: Future, H> Future for Holding<F, H> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

/// Counts a connection as active until its task ends, and wakes a waiting shutdown at zero.
struct ActiveGuard<S, U>(Arc<Shared<S, U>>);

impl<S, U> Drop for ActiveGuard<S, U> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}
