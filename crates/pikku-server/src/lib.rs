//! The embedded WebSocket server of pikku: HTTP upgrade with the refusal table of the protocol, opening data,
//! inbound limits, heartbeats, bounded outbound queues, ordered processing and graceful shutdown.
//!
//! Serve an app standalone with [`serve`] or [`ChannelServer::serve`], or mount [`ChannelServer::service`] into
//! an existing axum router.

mod config;
mod driver;
mod server;
mod upgrade;
pub mod ws;

pub use config::ServerConfig;
pub use server::{ChannelServer, ChannelService};

use std::future::Future;
use std::net::SocketAddr;

use pikku_core::App;

/// Serves `app` on `addr` with the default [`ServerConfig`] until Ctrl-C, then shuts down gracefully.
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
pub async fn serve<S, U>(app: App<S, U>, addr: SocketAddr) -> std::io::Result<()>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    serve_with_shutdown(app, addr, ctrl_c()).await
}

/// Serves `app` on `addr` until `signal` resolves, then shuts down gracefully.
///
/// # Errors
/// Binding or accepting failed.
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
