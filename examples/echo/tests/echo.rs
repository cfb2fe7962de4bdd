//! The echo app served in-process on 127.0.0.1:0, driven over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use example_echo::app;
use futures_util::{SinkExt, StreamExt};
use pikku::{ChannelServer, ServerConfig};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

/// Serves the echo app on a free port until the test's runtime ends.
async fn start() -> SocketAddr {
    let server = ChannelServer::new(app(), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    addr
}

/// Opens `/echo` and checks the connection's first frame, `ready`.
async fn connect(addr: SocketAddr) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}/echo")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("ready"));
    ws
}

/// The next data frame (pings and pongs are skipped).
async fn next(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the timeout")
            .expect("the socket is open")
            .expect("a valid frame");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

/// The next frame, which must be a JSON text frame.
async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(text) => serde_json::from_str(&text).expect("JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

#[tokio::test]
async fn the_first_frame_is_ready_unquoted() {
    let addr = start().await;
    let (mut ws, _) = connect_async(format!("ws://{addr}/echo")).await.unwrap();
    // A string result goes out as its bare characters (protocol §4.1), not as the JSON text `"ready"`.
    match next(&mut ws).await {
        Message::Text(text) => assert_eq!(text.as_str(), "ready"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test]
async fn the_default_handler_echoes_any_json_in_order() {
    let addr = start().await;
    let mut ws = connect(addr).await;
    let messages = [
        json!({"a": 1, "nested": {"b": [true, null]}}),
        json!([1, 2, 3]),
        json!(42),
        // Unregistered route names and non-string routing values are default messages (protocol §3.2, §3.3).
        json!({"action": "nope", "x": 1}),
        json!({"action": 5}),
    ];
    // Send them all before reading: replies follow arrival order (one message in flight per connection).
    for message in &messages {
        send(&mut ws, message.clone()).await;
    }
    for message in &messages {
        assert_eq!(&next_json(&mut ws).await, message);
    }
}

#[tokio::test]
async fn text_that_is_not_json_comes_back_as_the_same_text() {
    let addr = start().await;
    let mut ws = connect(addr).await;
    // `hello` is parsed as the JSON string "hello" (§3.1), echoed, and a string goes out unquoted (§4.1).
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hello"));
    // A quoted JSON string is the same message.
    ws.send(Message::text("\"hello\"")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hello"));
}

#[tokio::test]
async fn upper_replies_with_action_merged_into_its_object() {
    let addr = start().await;
    let mut ws = connect(addr).await;

    send(&mut ws, json!({"action": "upper", "text": "Hello, wörld"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"action": "upper", "text": "HELLO, WÖRLD"})
    );

    // Member order does not matter, and members the input type does not declare are ignored.
    send(
        &mut ws,
        json!({"extra": true, "text": "abc", "action": "upper"}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"action": "upper", "text": "ABC"})
    );
}

#[tokio::test]
async fn upper_with_invalid_input_gets_a_validation_error_frame() {
    let addr = start().await;
    let mut ws = connect(addr).await;

    send(&mut ws, json!({"action": "upper"})).await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["action"], "upper");
    assert_eq!(frame["error"], "Invalid message data");
    assert_eq!(frame["errorName"], "UnprocessableContentError");
    let details = frame["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "{frame}");
    // A missing member is reported at the path it should have had.
    assert_eq!(details[0]["path"], "/text");
    assert!(details[0]["message"].is_string(), "{frame}");
    assert_eq!(frame.as_object().unwrap().len(), 4, "{frame}");

    send(&mut ws, json!({"action": "upper", "text": 5})).await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["errorName"], "UnprocessableContentError");
    assert_eq!(frame["details"][0]["path"], "/text");

    // The connection carries on.
    send(&mut ws, json!({"action": "upper", "text": "ok"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"action": "upper", "text": "OK"})
    );
}

#[tokio::test]
async fn binary_frames_come_back_unchanged() {
    let addr = start().await;
    let mut ws = connect(addr).await;

    let payload: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(payload));

    // Text and binary frames share one ordered queue.
    send(&mut ws, json!({"n": 1})).await;
    ws.send(Message::binary(vec![0xff, 0x00])).await.unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"n": 1}));
    assert_eq!(next(&mut ws).await, Message::binary(vec![0xff, 0x00]));
}

#[tokio::test]
async fn other_paths_are_refused_with_404() {
    let addr = start().await;
    let err = connect_async(format!("ws://{addr}/nope"))
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 404);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["name"], "NotFoundError");
            assert_eq!(body["message"], "Channel not found: /nope");
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}
