//! The accept loop of the standalone server: HTTP/1.1 with upgrades, a handshake timeout, and a prompt stop.
//!
//! We run hyper directly rather than `axum::serve` for two reasons: a request head that never completes must be
//! dropped after the handshake timeout (semantics §11), and stopping must not wait for such connections. Upgraded
//! connections are detached from hyper and are ended by the channel shutdown, not here.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower_service::Service;

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and returns. Connections still in
/// their HTTP phase finish on their own, bounded by `handshake_timeout`.
pub(crate) async fn serve(
    router: axum::Router,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
    handshake_timeout: Duration,
) -> std::io::Result<()> {
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before accept: wait a little instead of
                    // spinning, and keep serving the connections we have.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small frames should leave at once.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(
            router.clone(),
            tcp,
            peer,
            handshake_timeout,
        ));
    }
}

async fn serve_connection(
    router: axum::Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    handshake_timeout: Duration,
) {
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        // An axum router is always ready, so calling it without `poll_ready` is fine.
        router.clone().call(req)
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    if let Err(err) = connection.await {
        tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
    }
}
