//! The chat served in-process on 127.0.0.1:0, driven over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use example_chat_rooms::{app, router};
use futures_util::{SinkExt, StreamExt};
use pikku::{ChannelServer, ServerConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

/// Serves the chat exactly as the binary does, on a free port.
async fn start() -> SocketAddr {
    let server = ChannelServer::new(app(), ServerConfig::default());
    let router = router(&server);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Joins `path` (`/rooms/lobby?name=ada`) and returns the socket and its welcome frame.
async fn join(addr: SocketAddr, path: &str) -> (Ws, Value) {
    let (mut ws, _) = connect_async(format!("ws://{addr}{path}")).await.unwrap();
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
    (ws, welcome)
}

/// The next text frame as JSON (pings and pongs are skipped).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the timeout")
            .expect("the socket is open")
            .expect("a valid frame");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads frames until one matches `done`; returns that one and every frame before it.
async fn until(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let frame = next(ws).await;
        if done(&frame) {
            return (frame, before);
        }
        before.push(frame);
    }
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

fn message(room: &str, name: &str, text: &str) -> Value {
    json!({"topic": format!("room:{room}"), "data": {"type": "message", "name": name, "text": text}})
}

#[tokio::test]
async fn a_message_reaches_everyone_in_the_room_and_nobody_else() {
    let addr = start().await;
    let (mut ada, welcome) = join(addr, "/rooms/lobby?name=ada").await;
    assert_eq!(
        welcome,
        json!({"type": "welcome", "room": "lobby", "name": "ada", "members": 1})
    );
    let (mut bob, welcome) = join(addr, "/rooms/lobby?name=bob").await;
    assert_eq!(welcome["members"], 2);
    assert_eq!(
        next(&mut ada).await,
        json!({"topic": "room:lobby", "data": {"type": "joined", "name": "bob", "members": 2}})
    );
    let (mut cy, welcome) = join(addr, "/rooms/elsewhere?name=cy").await;
    assert_eq!(welcome["members"], 1);

    send(&mut ada, json!({"action": "say", "text": "hello"})).await;
    // The sender gets the event (published before the reply) and the bare ack.
    assert_eq!(next(&mut ada).await, message("lobby", "ada", "hello"));
    assert_eq!(next(&mut ada).await, json!({"action": "say"}));
    assert_eq!(next(&mut bob).await, message("lobby", "ada", "hello"));

    // Sentinel: anything published to cy before this point is queued before cy's own event and ack.
    send(&mut cy, json!({"action": "say", "text": "anyone?"})).await;
    let (_, before) = until(&mut cy, |f| f == &json!({"action": "say"})).await;
    assert_eq!(before, vec![message("elsewhere", "cy", "anyone?")]);
}

#[tokio::test]
async fn invalid_messages_get_error_frames() {
    let addr = start().await;
    let (mut ws, _) = join(addr, "/rooms/lobby").await;

    send(&mut ws, json!({"action": "say", "text": ""})).await;
    let frame = next(&mut ws).await;
    assert_eq!(frame["action"], "say");
    assert_eq!(frame["error"], "Invalid message data");
    assert_eq!(frame["errorName"], "UnprocessableContentError");
    let details = frame["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "{frame}");
    assert_eq!(details[0]["path"], "/text");
    assert!(details[0]["message"].is_string());

    send(&mut ws, json!({"action": "say", "text": "x".repeat(501)})).await;
    let frame = next(&mut ws).await;
    assert_eq!(frame["errorName"], "UnprocessableContentError");
    assert_eq!(frame["details"][0]["path"], "/text");

    // 500 characters (not bytes) are fine.
    let long = "é".repeat(500);
    send(&mut ws, json!({"action": "say", "text": long})).await;
    assert_eq!(next(&mut ws).await["data"]["text"], long);
    assert_eq!(next(&mut ws).await, json!({"action": "say"}));

    send(&mut ws, json!({"action": "say"})).await;
    let frame = next(&mut ws).await;
    assert_eq!(frame["details"][0]["path"], "/text");

    send(&mut ws, json!({"action": "rename", "name": "   "})).await;
    let frame = next(&mut ws).await;
    assert_eq!(frame["action"], "rename");
    assert_eq!(frame["details"][0]["path"], "/name");

    send(&mut ws, json!({"action": "shout", "text": "hi"})).await;
    assert_eq!(
        next(&mut ws).await,
        json!({"action": "shout", "error": "No route for 'action:shout'", "errorName": "NotFoundError"})
    );
}

#[tokio::test]
async fn renames_and_departures_are_announced() {
    let addr = start().await;
    let (mut first, welcome) = join(addr, "/rooms/den").await;
    let guest = welcome["name"].as_str().unwrap().to_owned();
    assert!(guest.starts_with("guest-") && guest.len() == 10, "{guest}");
    let (mut second, _) = join(addr, "/rooms/den?name=zoe").await;
    next(&mut first).await; // zoe joined

    send(&mut first, json!({"action": "rename", "name": " max "})).await;
    let renamed =
        json!({"topic": "room:den", "data": {"type": "renamed", "from": guest, "name": "max"}});
    assert_eq!(next(&mut first).await, renamed);
    assert_eq!(
        next(&mut first).await,
        json!({"action": "rename", "name": "max"})
    );
    assert_eq!(next(&mut second).await, renamed);

    send(&mut first, json!({"action": "say", "text": "hi"})).await;
    assert_eq!(next(&mut second).await, message("den", "max", "hi"));

    first.close(None).await.unwrap();
    assert_eq!(
        next(&mut second).await,
        json!({"topic": "room:den", "data": {"type": "left", "name": "max", "members": 1}})
    );
}

#[tokio::test]
async fn an_overlong_room_name_is_refused_at_the_upgrade() {
    let addr = start().await;
    let room = "r".repeat(65);
    let err = connect_async(format!("ws://{addr}/rooms/{room}"))
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 422);
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_page_is_served_at_the_root() {
    let addr = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(body.contains("<title>pikku chat rooms</title>"));
    assert!(body.contains("/rooms/"));

    // Any other plain GET falls through to the channel service: not an upgrade, so the protocol's 400.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
}
