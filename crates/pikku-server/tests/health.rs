//! The standalone server's liveness and readiness endpoints over real sockets: answered while serving,
//! readiness turning 503 while a shutdown drains the connections, configurable and removable paths, and
//! WebSocket upgrades to the same paths still reaching the channels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pikku_core::{App, Channel, ChannelRoute, ClosedChannel, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{plain_request, RawWs};
use tokio::net::TcpListener;
use tokio::sync::Notify;

async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str {
    "hello!"
}

/// A room channel at `/:room`, which matches `/healthz` too; its disconnection handler waits for `release`,
/// so a shutdown stays in its draining phase until the test lets it finish.
fn app(release: Arc<Notify>) -> App<(), ()> {
    App::new(()).channel(
        ChannelRoute::new("rooms", "/:room")
            .auth(false)
            .on_connect(hello)
            .on_disconnect(move |_ctx: Ctx<(), ()>, _ch: ClosedChannel<Params>| {
                let release = release.clone();
                async move { release.notified().await }
            }),
    )
}

async fn serve(config: ServerConfig, release: Arc<Notify>) -> (SocketAddr, ChannelServer<(), ()>) {
    let server = ChannelServer::new(app(release), config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve(listener));
    (addr, server)
}

async fn status_and_body(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let response = plain_request(addr, method, path).await;
    (response.status, String::from_utf8(response.body).unwrap())
}

#[tokio::test]
async fn readiness_turns_503_while_draining_and_liveness_stays_200() {
    let release = Arc::new(Notify::new());
    let (addr, server) = serve(ServerConfig::default(), release.clone()).await;
    assert_eq!(
        status_and_body(addr, "GET", "/healthz").await,
        (200, "ok\n".into())
    );
    assert_eq!(
        status_and_body(addr, "GET", "/readyz").await,
        (200, "ready\n".into())
    );
    assert_eq!(
        status_and_body(addr, "HEAD", "/readyz").await,
        (200, String::new())
    );

    // A client whose disconnection handler holds the shutdown open.
    let mut ws = RawWs::connect(addr, "/lobby").await;
    ws.next_frame().await.expect("greeting");
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown().await }
    });
    let (_, opcode, _) = ws.next_frame().await.expect("the close frame");
    assert_eq!(opcode, op::CLOSE);
    ws.send(0x80 | op::CLOSE, &1001u16.to_be_bytes()).await;
    drop(ws);

    assert_eq!(
        status_and_body(addr, "GET", "/readyz").await,
        (503, "draining\n".into())
    );
    assert_eq!(
        status_and_body(addr, "GET", "/healthz").await,
        (200, "ok\n".into())
    );
    assert!(
        !shutdown.is_finished(),
        "the shutdown waits for the disconnection handler"
    );

    release.notify_one();
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("the shutdown finishes")
        .unwrap();
}

#[tokio::test]
async fn a_websocket_upgrade_to_a_health_path_reaches_the_channel() {
    let (addr, _server) = serve(ServerConfig::default(), Arc::new(Notify::new())).await;
    let mut ws = RawWs::connect(addr, "/healthz").await;
    let (_, _, greeting) = ws.next_frame().await.expect("greeting");
    assert_eq!(greeting, b"hello!");
}

#[tokio::test]
async fn paths_are_configurable_and_can_be_turned_off() {
    let config = ServerConfig {
        health_path: Some("/live".into()),
        ready_path: None,
        ..ServerConfig::default()
    };
    let (addr, _server) = serve(config, Arc::new(Notify::new())).await;
    assert_eq!(
        status_and_body(addr, "GET", "/live").await,
        (200, "ok\n".into())
    );
    // Not endpoints any more: plain requests to a channel path, refused as malformed upgrades.
    assert_eq!(plain_request(addr, "GET", "/healthz").await.status, 400);
    assert_eq!(plain_request(addr, "GET", "/readyz").await.status, 400);
    // Other methods are not the endpoint's either.
    assert_eq!(plain_request(addr, "POST", "/live").await.status, 400);
}

#[tokio::test]
async fn serve_router_leaves_the_paths_to_the_application_unless_it_merges_the_endpoints() {
    let server = ChannelServer::new(app(Arc::new(Notify::new())), ServerConfig::default());
    let routes = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "mine" }))
        .merge(axum::Router::new().route("/readyz", axum::routing::get(|| async { "also mine" })));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_router(routes, listener));
    assert_eq!(
        status_and_body(addr, "GET", "/healthz").await,
        (200, "mine".into())
    );
    assert_eq!(
        status_and_body(addr, "GET", "/readyz").await,
        (200, "also mine".into())
    );

    let server = ChannelServer::new(app(Arc::new(Notify::new())), ServerConfig::default());
    let routes = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the page" }))
        .merge(server.endpoints());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_router(routes, listener));
    assert_eq!(
        status_and_body(addr, "GET", "/healthz").await,
        (200, "ok\n".into())
    );
    assert_eq!(
        status_and_body(addr, "GET", "/readyz").await,
        (200, "ready\n".into())
    );
}
