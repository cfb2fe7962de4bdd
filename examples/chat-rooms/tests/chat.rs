//! The chat served in-process on 127.0.0.1:0, driven over real sockets with `pikku-client`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use example_chat_rooms::{app, pages, server_config, CLIENT_JS, CLIENT_JS_PATH};
use pikku::ChannelServer;
use pikku_client::{Client, ClientError, ErrorDetail, Frame};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// Serves the chat exactly as the binary does, on a free port.
async fn start() -> SocketAddr {
    let server = ChannelServer::new(app(), server_config());
    let pages = pages();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_router(pages, listener));
    addr
}

/// `future`, which must finish within [`WAIT`].
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("an answer within the timeout")
}

/// Joins `path` (`/rooms/lobby?name=ada`) and returns the client and its welcome frame.
async fn join(addr: SocketAddr, path: &str) -> (Client, Value) {
    let client = within(Client::connect(&format!("ws://{addr}{path}")))
        .await
        .expect("upgrade accepted");
    let welcome = next(&client).await;
    assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
    (client, welcome)
}

/// The next frame no call consumed (welcomes, room events, replies to `Route::send`), which must be JSON.
async fn next(client: &Client) -> Value {
    match within(client.next_frame())
        .await
        .expect("the socket is open")
    {
        Frame::Json(value) => value,
        other => panic!("unexpected frame {other:?}"),
    }
}

/// Reads frames until one matches `done`; returns that one and every frame before it.
async fn until(client: &Client, done: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let frame = next(client).await;
        if done(&frame) {
            return (frame, before);
        }
        before.push(frame);
    }
}

/// Sends `{"action": name, …input}` without waiting: its reply goes to the frame queue, behind the room events
/// that arrived before it, so [`next`] shows their order.
async fn send(client: &Client, name: &str, input: Value) {
    client.route("action").send(name, &input).await.unwrap();
}

/// Calls route `name`, which must fail validation with `UnprocessableContentError`; returns its details.
async fn invalid(client: &Client, name: &str, input: Value) -> Vec<ErrorDetail> {
    let result = within(client.route("action").call(name, &input)).await;
    match result {
        Err(ClientError::Remote {
            name,
            message,
            details,
        }) => {
            assert_eq!(name, "UnprocessableContentError");
            assert_eq!(message, "Invalid message data");
            details
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn message(room: &str, name: &str, text: &str) -> Value {
    json!({"topic": format!("room:{room}"), "data": {"type": "message", "name": name, "text": text}})
}

#[tokio::test]
async fn a_message_reaches_everyone_in_the_room_and_nobody_else() {
    let addr = start().await;
    let (ada, welcome) = join(addr, "/rooms/lobby?name=ada").await;
    assert_eq!(
        welcome,
        json!({"type": "welcome", "room": "lobby", "name": "ada", "members": 1})
    );
    let (bob, welcome) = join(addr, "/rooms/lobby?name=bob").await;
    assert_eq!(welcome["members"], 2);
    assert_eq!(
        next(&ada).await,
        json!({"topic": "room:lobby", "data": {"type": "joined", "name": "bob", "members": 2}})
    );
    let (cy, welcome) = join(addr, "/rooms/elsewhere?name=cy").await;
    assert_eq!(welcome["members"], 1);

    send(&ada, "say", json!({"text": "hello"})).await;
    // The sender gets the event (published before the reply) and the bare ack.
    assert_eq!(next(&ada).await, message("lobby", "ada", "hello"));
    assert_eq!(next(&ada).await, json!({"action": "say"}));
    assert_eq!(next(&bob).await, message("lobby", "ada", "hello"));

    // Sentinel: anything published to cy before this point is queued before cy's own event and ack.
    send(&cy, "say", json!({"text": "anyone?"})).await;
    let (_, before) = until(&cy, |f| f == &json!({"action": "say"})).await;
    assert_eq!(before, vec![message("elsewhere", "cy", "anyone?")]);
}

#[tokio::test]
async fn invalid_messages_get_error_frames() {
    let addr = start().await;
    let (client, _) = join(addr, "/rooms/lobby").await;

    // A call resolves with its route's reply; an error frame (`errorName`) makes it a typed error.
    let details = invalid(&client, "say", json!({"text": ""})).await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0].path, "/text");

    let details = invalid(&client, "say", json!({"text": "x".repeat(501)})).await;
    assert_eq!(details[0].path, "/text");

    // 500 characters (not bytes) are fine.
    let long = "é".repeat(500);
    send(&client, "say", json!({"text": long})).await;
    assert_eq!(next(&client).await["data"]["text"], long);
    assert_eq!(next(&client).await, json!({"action": "say"}));

    let details = invalid(&client, "say", json!({})).await;
    assert_eq!(details[0].path, "/text");

    let details = invalid(&client, "rename", json!({"name": "   "})).await;
    assert_eq!(details[0].path, "/name");

    // The whole frame, from the queue.
    send(&client, "shout", json!({"text": "hi"})).await;
    assert_eq!(
        next(&client).await,
        json!({"action": "shout", "error": "No route for 'action:shout'", "errorName": "NotFoundError"})
    );
}

#[tokio::test]
async fn renames_and_departures_are_announced() {
    let addr = start().await;
    let (first, welcome) = join(addr, "/rooms/den").await;
    let guest = welcome["name"].as_str().unwrap().to_owned();
    assert!(guest.starts_with("guest-") && guest.len() == 10, "{guest}");
    let (second, _) = join(addr, "/rooms/den?name=zoe").await;
    next(&first).await; // zoe joined

    send(&first, "rename", json!({"name": " max "})).await;
    let renamed =
        json!({"topic": "room:den", "data": {"type": "renamed", "from": guest, "name": "max"}});
    assert_eq!(next(&first).await, renamed);
    assert_eq!(
        next(&first).await,
        json!({"action": "rename", "name": "max"})
    );
    assert_eq!(next(&second).await, renamed);

    // A call returns at its reply; first's copy of the event stays in its queue, unread.
    let ack = within(first.route("action").call("say", &json!({"text": "hi"})))
        .await
        .unwrap();
    assert_eq!(ack.value(), Value::Null); // `{"action":"say"}`: nothing but the routing member
    assert_eq!(next(&second).await, message("den", "max", "hi"));

    first.close().await;
    assert_eq!(
        next(&second).await,
        json!({"topic": "room:den", "data": {"type": "left", "name": "max", "members": 1}})
    );
}

#[tokio::test]
async fn an_overlong_room_name_is_refused_at_the_upgrade() {
    let addr = start().await;
    let room = "r".repeat(65);
    let err = within(Client::connect(&format!("ws://{addr}/rooms/{room}")))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ClientError::Refused { status: 422, .. }),
        "expected an HTTP 422 refusal, got {err:?}"
    );
}

#[tokio::test]
async fn a_token_subprotocol_names_the_member_and_only_pikku_v1_is_selected() {
    let addr = start().await;
    // What the page offers: the protocol and its nickname as a percent-encoded token, which wins over `?name=`.
    let offer = "pikku.v1, token.J%C3%BCrgen%20%F0%9F%A6%80";
    let ada = within(
        Client::builder(format!("ws://{addr}/rooms/lobby?name=other"))
            .header("Sec-WebSocket-Protocol", offer)
            .connect(),
    )
    .await
    .expect("upgrade accepted");
    assert_eq!(
        next(&ada).await,
        json!({"type": "welcome", "room": "lobby", "name": "Jürgen 🦀", "members": 1})
    );

    // The 101 echoes `pikku.v1`, never the token.
    let accepted =
        pikku_testkit::raw_upgrade(addr, "/rooms/lobby", &[("Sec-WebSocket-Protocol", offer)])
            .await;
    assert_eq!(accepted.status, 101);
    assert_eq!(accepted.header("sec-websocket-protocol"), Some("pikku.v1"));
    // Offering nothing selects nothing; offering only something else is refused.
    let plain = pikku_testkit::raw_upgrade(addr, "/rooms/lobby", &[]).await;
    assert_eq!(plain.status, 101);
    assert_eq!(plain.header("sec-websocket-protocol"), None);
    let other =
        pikku_testkit::raw_upgrade(addr, "/rooms/lobby", &[("Sec-WebSocket-Protocol", "chat")])
            .await;
    assert_eq!(other.status, 400);
}

/// Sends a plain HTTP `GET path` and returns the whole response.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within(tcp.read_to_string(&mut response)).await.unwrap();
    response
}

#[tokio::test]
async fn the_page_is_served_at_the_root() {
    let addr = start().await;
    let response = get(addr, "/").await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(body.contains("<title>pikku chat rooms</title>"));
    assert!(body.contains("/rooms/"));

    // The page's socket code is the generated client, imported as a module from the same server.
    assert!(body.contains(&format!(
        "import {{ ChatClient, PikkuError }} from \"{CLIENT_JS_PATH}\";"
    )));

    // Any other plain GET falls through to the channel service: not an upgrade, so the protocol's 400.
    let response = get(addr, "/nope").await;
    assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn the_generated_client_is_served_as_a_javascript_module() {
    let addr = start().await;
    let response = get(addr, CLIENT_JS_PATH).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/javascript; charset=utf-8"),
        "{head}"
    );
    assert_eq!(body, CLIENT_JS);
    assert!(body.contains("export class ChatClient extends ChannelClient"));
    assert!(body.contains("export class PikkuError"));
}

#[tokio::test]
async fn sockets_that_send_no_request_are_closed_by_the_server() {
    let addr = start().await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The default handshake timeout is 10 s.
    for stream in &mut silent {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(WAIT * 2, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a silent socket was kept open");
    }
    let (_client, _) = join(addr, "/rooms/lobby?name=ada").await;
}

#[test]
fn the_chat_channel_is_described_for_typed_clients() {
    let description = example_chat_rooms::app().describe();
    assert!(description.undescribed().is_empty());
    let chat = &description.channels[0];
    assert_eq!(chat.params, ["room"]);
    let say = chat.routes.iter().find(|r| r.value == "say").unwrap();
    assert_eq!(
        say.message.input.schema,
        Some(serde_json::json!({"$ref": "#/$defs/Say"}))
    );
    assert_eq!(
        description.defs["Say"]["properties"]["text"]["maxLength"],
        500
    );
    assert_eq!(
        description.defs["Room"]["properties"]["room"]["maxLength"],
        64
    );
    assert!(description.defs.contains_key("RoomUpdate"));
    // The welcome's `type` tag, which serde writes and the page tells the welcome apart by, is in its schema.
    let welcome = &description.defs["welcome"];
    assert_eq!(
        welcome["properties"]["type"],
        json!({"const": "welcome", "type": "string"})
    );
    assert_eq!(welcome["required"][0], "type");
}
