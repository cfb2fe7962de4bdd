//! Shared setup: the protocol fixture of `pikku-conformance` served on a free port, and clients connected to it.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use pikku_client::{Client, Frame};
use pikku_conformance::{FixtureSettings, TestServer};
use serde_json::json;

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(5);

/// The fixture with the test settings (reverse-RPC timeout 200 ms).
pub async fn server() -> TestServer {
    TestServer::start(FixtureSettings::test()).await
}

/// A client on `/events` whose onConnect frame `hello!` was read.
pub async fn events(server: &TestServer) -> Client {
    let client = Client::connect(&server.url("/events"))
        .await
        .expect("connect");
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    client
}

/// A client on `/events` that logged in (the session `u1`).
pub async fn authed(server: &TestServer) -> Client {
    let client = events(server).await;
    let reply = client
        .route("action")
        .call("auth", &json!({"token": "valid"}))
        .await
        .expect("auth");
    assert_eq!(reply.value(), json!({"authResult": true}));
    client
}

/// The next unrouted frame, within [`WAIT`].
pub async fn next(client: &Client) -> Frame {
    tokio::time::timeout(WAIT, client.next_frame())
        .await
        .expect("a frame in time")
        .expect("a frame")
}

/// Proves that nothing is queued: an `echoIn` sent now comes back as the very next frame.
pub async fn sentinel(client: &Client) {
    client
        .route("action")
        .send("echoIn", &json!({"s": 1}))
        .await
        .expect("send");
    assert_eq!(
        next(client).await,
        Frame::Json(json!({"got": {"s": 1}, "action": "echoIn"}))
    );
}
