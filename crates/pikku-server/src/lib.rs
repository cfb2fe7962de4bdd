//! The embedded WebSocket server of pikku: HTTP upgrade with the refusal table of the protocol, opening data,
//! inbound limits, heartbeats, bounded outbound queues, ordered processing and graceful shutdown.
//!
//! Serve an app standalone with [`serve`] or [`ChannelServer::serve`], or mount [`ChannelServer::service`] into
//! an existing axum router. Transport limits and timeouts are in [`ServerConfig`]; the application's own
//! settings (queue bounds, reverse-RPC timeout, origins) are in `pikku_core::AppConfig`.
//!
//! # Example
//! A server on a free local port, a client that connects and reads the greeting, then a graceful shutdown:
//!
//! ```
//! use futures_util::StreamExt;
//! use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
//! use pikku_server::{ChannelServer, ServerConfig};
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
mod listener;
mod server;
mod upgrade;
// Public only so the fuzz targets and parser tests can reach the frame decoder; not part of the API.
#[doc(hidden)]
pub mod ws;

pub use config::ServerConfig;
pub use server::{ChannelServer, ChannelService};

use std::future::Future;
use std::net::SocketAddr;

use pikku_core::App;

/// Serves `app` on `addr` with the default [`ServerConfig`] until Ctrl-C, then shuts down gracefully.
///
/// The one-line way to run an app from `main`. Use [`serve_with_shutdown`] for another stop signal, or
/// [`ChannelServer`] for a custom configuration, a listener of your own, or access to the hub.
///
/// ```no_run
/// # use pikku_core::{App, ChannelRoute, Channel, Ctx, Params};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
/// # async fn run() -> std::io::Result<()> {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// pikku_server::serve(app, "127.0.0.1:4002".parse().unwrap()).await
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
    serve_with_shutdown(app, addr, ctrl_c()).await
}

/// Serves `app` on `addr` until `signal` resolves, then shuts down gracefully (see
/// [`ChannelServer::shutdown`]) and returns.
///
/// Use it when the process stops on something other than Ctrl-C (SIGTERM in a container, an admin command).
///
/// ```
/// # use pikku_core::{App, ChannelRoute, Channel, Ctx, Params};
/// # async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let serving = tokio::spawn(pikku_server::serve_with_shutdown(app, "127.0.0.1:0".parse().unwrap(), async move {
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

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
