//! The getting-started app over real sockets: its HTTP route, sign-in at the upgrade, and a message published to
//! the others in the room but not to the sender nor to another room.

use std::net::SocketAddr;
use std::time::Duration;

use pikku::{ChannelServer, ServerConfig};
use pikku_client::{Client, ClientError, Frame};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> SocketAddr {
    let server = ChannelServer::new(getting_started::app(), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.serve_router(getting_started::pages(), listener));
    addr
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .expect("read");
    response
}

async fn join(addr: SocketAddr, room: &str, token: &str) -> Result<Client, ClientError> {
    let url = format!("ws://{addr}/rooms/{room}?token={token}");
    tokio::time::timeout(WAIT, Client::connect(&url))
        .await
        .expect("an answer in time")
}

async fn next_json(client: &Client) -> Value {
    match tokio::time::timeout(WAIT, client.next_frame()).await {
        Ok(Ok(Frame::Json(value))) => value,
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

#[tokio::test]
async fn serves_its_http_route_next_to_the_channel() {
    let addr = start().await;
    let health = get(addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn refuses_an_upgrade_without_a_valid_token() {
    let addr = start().await;
    for token in ["", "ann", "-secret", "ann-password"] {
        match join(addr, "lobby", token).await {
            Err(ClientError::Refused { status, body }) => {
                assert_eq!(status, 401, "{token}");
                let body = body.expect("a JSON body");
                assert_eq!(body["name"], "UnauthorizedError");
                assert_eq!(body["message"], "Invalid token");
            }
            other => panic!("token {token:?}: expected a 401, got {other:?}"),
        }
    }
}

/// Sends `text` and waits for the reply. A message waits for its connection handler, so after the reply the
/// sender is surely in the room.
async fn say(client: &Client, text: &str) {
    client
        .send(&json!({"action": "say", "text": text}))
        .await
        .expect("send");
    assert_eq!(next_json(client).await, json!({"action": "say"}));
}

#[tokio::test]
async fn says_to_the_others_in_the_room_only() {
    let addr = start().await;
    let ann = join(addr, "lobby", "ann-secret").await.expect("ann joins");
    say(&ann, "anyone?").await;
    let bob = join(addr, "lobby", "bob-secret").await.expect("bob joins");
    say(&bob, "hi ann").await;
    let cat = join(addr, "garden", "cat-secret").await.expect("cat joins");
    say(&cat, "anyone?").await;

    assert_eq!(
        next_json(&ann).await,
        json!({"from": "bob", "text": "hi ann"})
    );
    // The sender is excluded: ann's reply comes next, not her own message.
    say(&ann, "hi bob").await;
    assert_eq!(
        next_json(&bob).await,
        json!({"from": "ann", "text": "hi bob"})
    );
    // Nothing from the lobby reached the garden: cat's next frame is the reply to her next message.
    say(&cat, "still alone").await;
}
