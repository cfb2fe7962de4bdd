//! The embedded WebSocket server of pikku: HTTP upgrade with the refusal table of the protocol, opening data,
//! inbound limits, heartbeats, bounded outbound queues, ordered processing and graceful shutdown.
//!
//! Serve an app standalone with [`serve`] or [`ChannelServer::serve`], or next to your own axum routes with
//! [`serve_router`] or [`ChannelServer::serve_router`]. These apply every limit of [`ServerConfig`] (request-head
//! and keep-alive timeouts, connection limits) and stop gracefully on SIGINT or SIGTERM ([`shutdown_signal`]) or
//! a signal of your own. [`ChannelServer::service`] can also be mounted into an HTTP server you run yourself,
//! which then owns the HTTP timeouts. The application's own settings (queue bounds, reverse-RPC timeout,
//! origins) are in `pikku::AppConfig`.
//!
//! # Example
//! A server on a free local port, a client that connects and reads the greeting, then a graceful shutdown:
//!
//! ```
//! use futures_util::StreamExt;
//! use pikku::{App, Channel, ChannelRoute, Ctx, Params};
//! use pikku::{ChannelServer, ServerConfig};
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
//! let server = ChannelServer::new(app, ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let serving = tokio::spawn(server.clone().serve(listener));
//!
//! let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/events")).await.unwrap();
//! let greeting = ws.next().await.unwrap().unwrap();
//! assert_eq!(greeting.to_text().unwrap(), "hello!");
//!
//! server.shutdown().await; // closes the client with 1001 `going away`, then `serve` returns
//! serving.await.unwrap()?;
//! # std::io::Result::Ok(())
//! # }).unwrap();
//! ```

mod budget;
mod config;
mod driver;
mod health;
mod limits;
mod listener;
pub mod metrics;
mod server;
mod sse;
mod upgrade;
// Public only so the fuzz targets and parser tests can reach the frame decoder; not part of the API.
#[doc(hidden)]
pub mod ws;

pub use config::ServerConfig;
pub use pikku_core::subprotocol::{SelectSubprotocol, SubprotocolPolicy};
pub use server::{ChannelServer, ChannelService};

use std::future::Future;
use std::net::SocketAddr;

use pikku_core::App;

/// Serves `app` on `addr` with the default [`ServerConfig`] until SIGINT or SIGTERM (Ctrl-C outside unix; see
/// [`shutdown_signal`]), then shuts down gracefully: open connections close with 1001 `going away` and run
/// their disconnect sequence, bounded by the shutdown timeout.
///
/// The one-line way to run an app from `main`, ready for `docker stop`, Kubernetes and systemd, which stop with
/// SIGTERM. Use [`serve_with_shutdown`] for another stop signal, [`serve_router`] to serve pages or an API
/// too, or [`ChannelServer`] for a custom configuration, a listener of your own, or access to the hub.
///
/// ```no_run
/// # use pikku::{App, ChannelRoute, Channel, Ctx, Params};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
/// # async fn run() -> std::io::Result<()> {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// pikku::serve(app, "127.0.0.1:4002".parse().unwrap()).await
/// # }
/// ```
///
/// # Errors
/// Binding or accepting failed.
///
/// # Cancel safety
/// Dropping the future stops accepting connections without a graceful shutdown; connections already upgraded
/// keep running in their own tasks until they close.
pub async fn serve<S, U>(app: App<S, U>, addr: SocketAddr) -> std::io::Result<()>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    serve_with_shutdown(app, addr, shutdown_signal()).await
}

/// Serves `app` on `addr` until `signal` resolves, then shuts down gracefully (see
/// [`ChannelServer::shutdown`]) and returns.
///
/// Use it when the process stops on something other than SIGINT or SIGTERM (an admin command, a deploy hook),
/// or on those and more: combine [`shutdown_signal`] with your own future in a `tokio::select!`.
///
/// ```
/// # use pikku::{App, ChannelRoute, Channel, Ctx, Params};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let serving = tokio::spawn(pikku::serve_with_shutdown(app, "127.0.0.1:0".parse().unwrap(), async move {
///     let _ = stopped.await;
/// }));
/// // … later, when it is time to stop:
/// stop.send(()).unwrap();
/// serving.await.unwrap()?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// Binding or accepting failed.
///
/// # Cancel safety
/// As [`serve`]: dropping the future stops accepting without a graceful shutdown.
pub async fn serve_with_shutdown<S, U>(
    app: App<S, U>,
    addr: SocketAddr,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving channels");
    ChannelServer::new(app, ServerConfig::default())
        .serve_with_shutdown(listener, signal)
        .await
}

/// Serves your own axum `router` with `app` (or a [`ChannelServer`] you built) on `addr`: the channels' paths
/// (see [`ChannelServer::router`]) upgrade, every other path is your router's. Runs until SIGINT or SIGTERM (see
/// [`shutdown_signal`]), then shuts down gracefully as [`serve`] does.
///
/// Prefer it to plain `axum::serve`, which has no request-head timeout: there, sockets that never send a request
/// stay open forever and can use up the file descriptors. Here every limit of [`ServerConfig`] applies (see
/// [`ChannelServer::serve_router`], which this calls) and handlers can extract `ConnectInfo<SocketAddr>`.
///
/// ```no_run
/// # use pikku::{App, ChannelRoute, Channel, Ctx, Params};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
/// # async fn run() -> std::io::Result<()> {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let pages = axum::Router::new().route("/", axum::routing::get(|| async { "the page" }));
/// pikku::serve_router(app, pages, "127.0.0.1:4002".parse().unwrap()).await
/// # }
/// ```
///
/// With a server of your own, for its hub or a custom configuration:
///
/// ```no_run
/// # use pikku::{App, ChannelRoute, Channel, Ctx, Params};
/// # use pikku::{ChannelServer, ServerConfig};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
/// # async fn run() -> std::io::Result<()> {
/// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let server = ChannelServer::new(app, ServerConfig { max_connections_per_ip: Some(16), ..Default::default() });
/// let hub = server.hub().clone();
/// let pages = axum::Router::new().route(
///     "/announce",
///     axum::routing::post(move || async move {
///         let _ = hub.publish("news", None, &serde_json::json!("hi")).await;
///     }),
/// );
/// pikku::serve_router(server, pages, "127.0.0.1:4002".parse().unwrap()).await
/// # }
/// ```
///
/// # Errors
/// Binding or accepting failed.
///
/// # Cancel safety
/// As [`serve`]: dropping the future stops accepting without a graceful shutdown.
pub async fn serve_router<S, U>(
    server: impl Into<ChannelServer<S, U>>,
    router: axum::Router,
    addr: SocketAddr,
) -> std::io::Result<()>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving channels and routes");
    server
        .into()
        .serve_router_with_shutdown(router, listener, shutdown_signal())
        .await
}

/// Resolves when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM on unix, Ctrl-C elsewhere. SIGTERM is
/// what `docker stop`, Kubernetes and systemd send. Pass it to a `*_with_shutdown` method, alone or combined
/// with a stop signal of your own. Should no handler be installable, it never resolves.
///
/// On unix the handlers are installed when this function is called inside a Tokio runtime, not when the future is
/// first polled: call it before announcing that the process is ready (binding, logging the address, notifying
/// a supervisor), so that a SIGTERM arriving in between starts a graceful shutdown instead of killing the
/// process. Called outside a runtime, it installs them on first poll.
///
/// ```no_run
/// # use pikku::{App, ChannelRoute, Channel, Ctx, Params};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
/// # async fn run() -> std::io::Result<()> {
/// # let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let (admin_stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let signal = async move {
///     tokio::select! {
///         () = pikku::shutdown_signal() => tracing::info!("signal received, draining"),
///         _ = stopped => tracing::info!("stop requested, draining"),
///     }
/// };
/// # drop(admin_stop);
/// pikku::serve_with_shutdown(app, "127.0.0.1:4002".parse().unwrap(), signal).await
/// # }
/// ```
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let installed = tokio::runtime::Handle::try_current().is_ok();
    let early = installed.then(StopSignals::install);
    async move {
        let signals = match early {
            Some(signals) => signals,
            None => StopSignals::install(),
        };
        signals.recv().await;
    }
}

/// The stop signals [`shutdown_signal`] listens to, installed; `None` where installing failed.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    #[cfg(unix)]
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    #[cfg(not(unix))]
    fn install() -> Self {
        Self {}
    }

    #[cfg(unix)]
    async fn recv(self) {
        async fn next(signal: Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(self.interrupt) => {}
            () = next(self.terminate) => {}
        }
    }

    #[cfg(not(unix))]
    async fn recv(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
