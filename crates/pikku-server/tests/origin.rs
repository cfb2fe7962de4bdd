//! Upgrade checks on the request itself, over real sockets: the `Origin` policy (cross-site WebSocket
//! hijacking) and strict percent-decoding of the path and query.

use std::net::SocketAddr;

use pikku_core::{App, AppConfig, Channel, ChannelRoute, Ctx, OriginPolicy, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::{assert_json_matches, raw_upgrade, HttpResponse, ANY};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server on 127.0.0.1:0; stops serving when dropped.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(app: App<(), ()>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ChannelServer::new(app, ServerConfig::default());
    tokio::spawn(server.serve_until(listener, async move {
        let _ = stopped.await;
    }));
    Server { addr, _stop: stop }
}

async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str {
    "hi"
}

fn app(policy: Option<OriginPolicy>) -> App<(), ()> {
    let app = App::new(()).channel(
        ChannelRoute::new("rooms", "/rooms/:room")
            .auth(false)
            .on_connect(hello),
    );
    match policy {
        Some(policy) => app.configure(|c: &mut AppConfig| c.origin = policy),
        None => app,
    }
}

fn assert_refusal(response: &HttpResponse, status: u16, name: &str, message: &str) {
    assert_eq!(response.status, status, "{response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{response:?}");
    let body: Value = serde_json::from_slice(&response.body).expect("JSON body");
    assert_json_matches(
        &body,
        &json!({"name": name, "message": message, "errorId": ANY}),
    );
}

async fn upgrade_with_origin(srv: &Server, origin: Option<&str>) -> HttpResponse {
    match origin {
        Some(origin) => raw_upgrade(srv.addr, "/rooms/lobby", &[("Origin", origin)]).await,
        None => raw_upgrade(srv.addr, "/rooms/lobby", &[]).await,
    }
}

#[tokio::test]
async fn by_default_only_the_same_host_or_no_origin_may_upgrade() {
    let srv = serve(app(None)).await;
    // The raw client sends `Host: 127.0.0.1:<port>`.
    let same_host = format!("http://{}", srv.addr);
    let same_host_tls = format!("https://{}", srv.addr);
    let other_port = format!(
        "http://127.0.0.1:{}",
        srv.addr.port().wrapping_add(1).max(1)
    );
    for origin in [
        "https://evil.example",
        "null",
        other_port.as_str(),
        "http://localhost",
    ] {
        let response = upgrade_with_origin(&srv, Some(origin)).await;
        assert_refusal(&response, 403, "ForbiddenError", "Origin not allowed");
    }
    for origin in [None, Some(same_host.as_str()), Some(same_host_tls.as_str())] {
        let response = upgrade_with_origin(&srv, origin).await;
        assert_eq!(response.status, 101, "{origin:?}: {response:?}");
    }
    // Route matching still comes first.
    let response = raw_upgrade(srv.addr, "/nope", &[("Origin", "https://evil.example")]).await;
    assert_refusal(&response, 404, "NotFoundError", "Channel not found: /nope");
}

#[tokio::test]
async fn an_allowlist_admits_only_its_origins() {
    let policy = OriginPolicy::allow(["https://good.example", "http://localhost:3000"]);
    let srv = serve(app(Some(policy))).await;
    for origin in ["https://good.example", "http://localhost:3000"] {
        let response = upgrade_with_origin(&srv, Some(origin)).await;
        assert_eq!(response.status, 101, "{origin}: {response:?}");
    }
    let same_host = format!("http://{}", srv.addr);
    for origin in [
        Some("https://evil.example"),
        Some("null"),
        Some(same_host.as_str()),
        None,
    ] {
        let response = upgrade_with_origin(&srv, origin).await;
        assert_refusal(&response, 403, "ForbiddenError", "Origin not allowed");
    }
}

#[tokio::test]
async fn any_origin_can_be_allowed_explicitly() {
    let srv = serve(app(Some(OriginPolicy::Any))).await;
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let response = upgrade_with_origin(&srv, origin).await;
        assert_eq!(response.status, 101, "{origin:?}: {response:?}");
    }
}

#[tokio::test]
async fn malformed_percent_encoding_is_400() {
    let srv = serve(app(Some(OriginPolicy::Any))).await;
    for target in [
        "/rooms/%zz",
        "/rooms/lobby%",
        "/rooms/lob%4",
        "/rooms/%00",
        "/rooms/lob%00by",
        "/nope/%zz", // decodability is checked before the route
        "/rooms/lobby?name=%zz",
        "/rooms/lobby?name=ada%",
        "/rooms/lobby?name=%00",
        "/rooms/lobby?%zz=1",
    ] {
        let response = raw_upgrade(srv.addr, target, &[]).await;
        assert_refusal(
            &response,
            400,
            "BadRequestError",
            "Malformed upgrade request",
        );
    }
    for target in [
        "/rooms/caf%C3%A9",
        "/rooms/100%25?name=a%20b+c",
        "/rooms/lobby?name=%41",
    ] {
        let response = raw_upgrade(srv.addr, target, &[]).await;
        assert_eq!(response.status, 101, "{target}: {response:?}");
    }
}
