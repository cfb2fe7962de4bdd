//! The conformance server's realtime mount: a realtime client pointed at `/realtime` (socket at
//! `/realtime/events`, streams at `/realtime/events/<topic>`) receives what the fixture's `emitAll` and `emit`
//! publish, because every channel shares one hub; clients offering `pikku.v1` get it selected.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pikku_conformance::{FixtureSettings, TestServer};
use pikku_testkit::sse::SseClient;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

async fn next_text(ws: &mut Ws) -> String {
    let message = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .unwrap()
        .unwrap();
    message.to_text().unwrap().to_owned()
}

async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).unwrap()
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

#[tokio::test]
async fn a_realtime_client_under_realtime_receives_what_emit_all_publishes() {
    let srv = TestServer::start(FixtureSettings::test()).await;

    // The realtime socket, offering the protocol name the server lists.
    let mut request = srv.url("/realtime/events").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "pikku.v1".parse().unwrap());
    let (mut realtime, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "pikku.v1"
    );
    send(
        &mut realtime,
        json!({"action": "subscribe", "topic": "news"}),
    )
    .await;
    assert_eq!(
        next_json(&mut realtime).await,
        json!({"action": "subscribe"})
    );

    // The realtime stream of the same topic.
    let mut stream = SseClient::open(srv.addr(), "/realtime/events/news", &[]).await;
    assert_eq!(stream.status, 200, "{}", stream.head);
    let deadline = tokio::time::Instant::now() + WAIT;
    while srv.subscriber_count("news") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A fixture client publishes with `emitAll`, then with `emit` (which excludes only itself).
    let (mut fixture, _) = tokio_tungstenite::connect_async(srv.url("/events"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut fixture).await, "hello!");
    send(&mut fixture, json!({"action": "auth", "token": "valid"})).await;
    assert_eq!(
        next_json(&mut fixture).await,
        json!({"authResult": true, "action": "auth"})
    );
    send(
        &mut fixture,
        json!({"action": "emitAll", "topic": "news", "data": {"hi": 2}}),
    )
    .await;
    assert_eq!(next_json(&mut fixture).await, json!({"action": "emitAll"}));
    send(
        &mut fixture,
        json!({"action": "emit", "topic": "news", "data": {"hi": 3}}),
    )
    .await;
    assert_eq!(next_json(&mut fixture).await, json!({"action": "emit"}));

    for hi in [2, 3] {
        let event = json!({"topic": "news", "data": {"hi": hi}});
        assert_eq!(next_json(&mut realtime).await, event);
        assert_eq!(stream.next_data().await, event);
    }

    // Unsubscribing stops the socket's events; the stream keeps its own.
    send(
        &mut realtime,
        json!({"action": "unsubscribe", "topic": "news"}),
    )
    .await;
    assert_eq!(
        next_json(&mut realtime).await,
        json!({"action": "unsubscribe"})
    );
    send(
        &mut fixture,
        json!({"action": "emitAll", "topic": "news", "data": {"hi": 4}}),
    )
    .await;
    assert_eq!(next_json(&mut fixture).await, json!({"action": "emitAll"}));
    assert_eq!(
        stream.next_data().await,
        json!({"topic": "news", "data": {"hi": 4}})
    );
    send(
        &mut realtime,
        json!({"action": "subscribe", "topic": "other"}),
    )
    .await;
    assert_eq!(
        next_json(&mut realtime).await,
        json!({"action": "subscribe"})
    );
}
