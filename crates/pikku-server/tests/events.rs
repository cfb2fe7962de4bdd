//! The events channel over real sockets: subscribe and unsubscribe on a WebSocket, the `{"topic","data"}`
//! envelope, the topic authorizer, and the same topics as Server-Sent Events streams (events, heartbeats,
//! shutdown, a slow reader, connection limits, refusals, and mounting through `ChannelServer::router`).

use pikku_testkit::eventually;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pikku_core::events::{publish_event, EventsChannel};
use pikku_core::{App, AppConfig, ChannelError, UpgradeRequest};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::sse::SseClient;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// `x-user: <id>` sets the session, as a cookie or token check would.
async fn user_header(req: UpgradeRequest<(), String>) -> Result<(), ChannelError> {
    if let Some(user) = req.header("x-user") {
        req.set_session(user.to_owned());
    }
    Ok(())
}

/// `secret` is refused; `user:<id>` is for that user only.
fn app(configure: impl FnOnce(&mut AppConfig)) -> App<(), String> {
    let events = EventsChannel::new("/realtime/events")
        .authorize(|ctx, topic| async move {
            if topic == "secret" {
                return Err(ChannelError::forbidden("Permission denied"));
            }
            match topic.strip_prefix("user:") {
                Some(id) if ctx.session().as_deref() != Some(id) => {
                    Err(ChannelError::unauthorized("Not your topic"))
                }
                _ => Ok(()),
            }
        })
        .build()
        .upgrade_middleware(user_header);
    App::new(()).configure(configure).channel(events)
}

struct Running {
    addr: SocketAddr,
    server: ChannelServer<(), String>,
}

async fn start(app: App<(), String>, config: ServerConfig) -> Running {
    let server = ChannelServer::new(app, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve(listener));
    Running { addr, server }
}

async fn start_default() -> Running {
    start(app(|_| {}), ServerConfig::default()).await
}

async fn socket(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/realtime/events"))
        .await
        .unwrap();
    ws
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

async fn next_json(ws: &mut Ws) -> Value {
    let message = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .unwrap()
        .unwrap();
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn sockets_subscribe_receive_the_envelope_and_unsubscribe() {
    let srv = start_default().await;
    let mut ws = socket(srv.addr).await;
    send(&mut ws, json!({"action": "subscribe", "topic": "news"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"action": "subscribe"}));

    let delivered = publish_event(srv.server.hub(), "news", &json!({"headline": "hi"}))
        .await
        .unwrap();
    assert_eq!(delivered, 1);
    assert_eq!(
        next_json(&mut ws).await,
        json!({"topic": "news", "data": {"headline": "hi"}})
    );
    // The method form builds the same envelope.
    srv.server.hub().publish_event("news", &2).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"topic": "news", "data": 2})
    );

    send(&mut ws, json!({"action": "unsubscribe", "topic": "news"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"action": "unsubscribe"}));
    assert_eq!(srv.server.hub().subscriber_count("news"), 0);
    publish_event(srv.server.hub(), "news", &3).await.unwrap();
    // Nothing was sent in between: the next frame is the reply to this.
    send(&mut ws, json!({"action": "subscribe", "topic": "other"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"action": "subscribe"}));
}

#[tokio::test]
async fn the_authorizer_refuses_subscriptions_with_the_usual_error_frame() {
    let srv = start_default().await;
    let mut ws = socket(srv.addr).await;
    send(&mut ws, json!({"action": "subscribe", "topic": "secret"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"action": "subscribe", "error": "Permission denied", "errorName": "ForbiddenError"})
    );
    send(&mut ws, json!({"action": "subscribe", "topic": "user:u1"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"action": "subscribe", "error": "Not your topic", "errorName": "UnauthorizedError"})
    );
    assert_eq!(srv.server.hub().subscriber_count("secret"), 0);

    // The session set at the upgrade is what the authorizer sees.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/realtime/events",
            srv.addr
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("x-user", "u1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    send(&mut ws, json!({"action": "subscribe", "topic": "user:u1"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"action": "subscribe"}));
}

#[tokio::test]
async fn a_stream_receives_what_the_hub_publishes_to_its_topic() {
    let srv = start_default().await;
    let mut sse = SseClient::open(srv.addr, "/realtime/events/news%20desk", &[]).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(sse.header("cache-control").as_deref(), Some("no-cache"));
    eventually("the stream's subscription", || {
        srv.server.hub().subscriber_count("news desk") == 1
    })
    .await;
    assert_eq!(srv.server.active_connections(), 1);

    // Sockets and streams get the same bytes, in publish order.
    let mut ws = socket(srv.addr).await;
    send(
        &mut ws,
        json!({"action": "subscribe", "topic": "news desk"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"action": "subscribe"}));
    for n in 1..=3 {
        publish_event(srv.server.hub(), "news desk", &json!({"n": n}))
            .await
            .unwrap();
    }
    for n in 1..=3 {
        let event = json!({"topic": "news desk", "data": {"n": n}});
        assert_eq!(sse.next_data().await, event);
        assert_eq!(next_json(&mut ws).await, event);
    }
    // A raw string with a line break is one event of two `data:` lines.
    srv.server
        .hub()
        .publish("news desk", None, "\"two\nlines\"")
        .await
        .unwrap();
    assert_eq!(sse.next_block().await, "data: \"two\ndata: lines\"");

    // The client leaves: its subscription and its count go.
    drop(sse);
    srv.server
        .hub()
        .publish_event("news desk", &0)
        .await
        .unwrap();
    eventually("the stream to close", || {
        srv.server.active_connections() == 1 && srv.server.hub().subscriber_count("news desk") == 1
    })
    .await;
}

#[tokio::test]
async fn a_quiet_stream_gets_heartbeat_comments_and_outlives_the_idle_timeout() {
    let config = ServerConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let srv = start(app(|_| {}), config).await;
    let mut sse = SseClient::open(srv.addr, "/realtime/events/news", &[]).await;
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(900) {
        let block = sse.next_block().await;
        assert_eq!(block, ": ping");
        pings += 1;
    }
    assert!(pings >= 4, "{pings} pings in 900 ms");
    // Still open and subscribed well past the idle timeout.
    srv.server
        .hub()
        .publish_event("news", &"still here")
        .await
        .unwrap();
    assert_eq!(
        sse.next_data().await,
        json!({"topic": "news", "data": "still here"})
    );
}

#[tokio::test]
async fn shutdown_ends_streams_after_what_they_were_sent() {
    // Served until the test ends, so that the listener still answers after the shutdown.
    let server = ChannelServer::new(app(|_| {}), ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_until(listener, std::future::pending()));
    let srv = Running { addr, server };
    let mut sse = SseClient::open(srv.addr, "/realtime/events/news", &[]).await;
    eventually("the subscription", || {
        srv.server.hub().subscriber_count("news") == 1
    })
    .await;
    srv.server
        .hub()
        .publish_event("news", &"last")
        .await
        .unwrap();
    let (_, ()) = tokio::join!(sse.until_closed(WAIT), srv.server.shutdown());
    assert!(
        sse.body.contains(r#"data: {"topic":"news","data":"last"}"#),
        "{:?}",
        sse.body
    );
    assert_eq!(srv.server.active_connections(), 0);
    // New streams are refused while the server shuts down.
    let refused = SseClient::open(srv.addr, "/realtime/events/news", &[]).await;
    assert_eq!(refused.status, 503);
}

#[tokio::test]
async fn a_stream_that_stops_reading_is_closed_within_its_outbound_bound() {
    let config = ServerConfig {
        close_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let srv = start(app(|c| c.outbound_queue_bytes = 64 * 1024), config).await;
    // This client reads the head and then nothing.
    let mut sse = SseClient::open(srv.addr, "/realtime/events/flood", &[]).await;
    assert_eq!(sse.status, 200);
    eventually("the subscription", || {
        srv.server.hub().subscriber_count("flood") == 1
    })
    .await;
    let chunk = "x".repeat(16 * 1024);
    let mut refused_at = None;
    // Loopback and hyper buffers absorb a few MB first; the queue bound then closes the stream.
    for i in 0..4000 {
        if srv
            .server
            .hub()
            .publish_event("flood", &chunk)
            .await
            .unwrap()
            == 0
        {
            refused_at = Some(i);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused_at.is_some(), "the slow stream kept taking events");
    eventually("the slow stream to be dropped", || {
        srv.server.active_connections() == 0 && srv.server.hub().subscriber_count("flood") == 0
    })
    .await;
    // Other streams are unaffected.
    let mut other = SseClient::open(srv.addr, "/realtime/events/flood", &[]).await;
    eventually("the new subscription", || {
        srv.server.hub().subscriber_count("flood") == 1
    })
    .await;
    srv.server.hub().publish_event("flood", &1).await.unwrap();
    assert_eq!(
        other.next_data().await,
        json!({"topic": "flood", "data": 1})
    );
    // The dropped stream's connection is really gone, not waiting for its client to read: once the close timeout
    // passed, what the client finds is the data buffered so far, then the end of the connection, without the
    // response's last chunk, which the server never managed to write.
    tokio::time::sleep(Duration::from_millis(600)).await;
    sse.until_closed(WAIT).await;
    assert!(
        !sse.terminated,
        "the stream ended normally: its connection was not dropped"
    );
}

#[tokio::test]
async fn streams_are_refused_like_upgrades_and_count_as_connections() {
    let config = ServerConfig {
        max_connections: Some(2),
        ..ServerConfig::default()
    };
    let srv = start(app(|_| {}), config).await;
    // The authorizer, with the session upgrade middleware set.
    let refused = SseClient::open(srv.addr, "/realtime/events/secret", &[]).await;
    assert_eq!(refused.status, 403);
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["name"], "ForbiddenError");
    assert_eq!(body["message"], "Permission denied");
    assert!(body["errorId"].is_string());
    let refused = SseClient::open(srv.addr, "/realtime/events/user:u1", &[]).await;
    assert_eq!(refused.status, 401);
    let mut mine = SseClient::open(srv.addr, "/realtime/events/user:u1", &[("x-user", "u1")]).await;
    assert_eq!(mine.status, 200);
    // No events channel there: a plain GET is still not an upgrade.
    let other = SseClient::open(srv.addr, "/nowhere/news", &[]).await;
    assert_eq!(other.status, 400);

    // Two streams reach the limit of two: a third stream and an upgrade are refused.
    let _second = SseClient::open(srv.addr, "/realtime/events/news", &[]).await;
    eventually("both streams", || srv.server.active_connections() == 2).await;
    let third = SseClient::open(srv.addr, "/realtime/events/news", &[]).await;
    assert_eq!(third.status, 503);
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/realtime/events", srv.addr))
            .await
            .is_err()
    );
    srv.server
        .hub()
        .publish_event("user:u1", &"hi")
        .await
        .unwrap();
    assert_eq!(
        mine.next_data().await,
        json!({"topic": "user:u1", "data": "hi"})
    );
}

#[tokio::test]
async fn streams_are_served_next_to_an_apps_own_routes() {
    let server = ChannelServer::new(app(|_| {}), ServerConfig::default());
    let pages = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_router(pages, listener));

    let mut sse = SseClient::open(addr, "/realtime/events/news", &[]).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    eventually("the subscription", || {
        server.hub().subscriber_count("news") == 1
    })
    .await;
    server.hub().publish_event("news", &1).await.unwrap();
    assert_eq!(sse.next_data().await, json!({"topic": "news", "data": 1}));
    let health = SseClient::open(addr, "/health", &[]).await;
    assert_eq!(health.status, 200);
    let mut ws = socket(addr).await;
    send(&mut ws, json!({"action": "subscribe", "topic": "news"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"action": "subscribe"}));
}
