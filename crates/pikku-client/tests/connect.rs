//! Opening connections: onConnect output, refused upgrades, request headers, timeouts, closing by drop.

mod support;

use std::time::Duration;

use pikku_client::{Client, ClientError, Frame};
use serde_json::json;
use support::{events, next, server, WAIT};

#[tokio::test]
async fn on_connect_text_arrives_raw() {
    let server = server().await;
    let client = Client::connect(&server.url("/events")).await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
}

#[tokio::test]
async fn opening_data_from_the_url() {
    let server = server().await;
    let client = Client::connect(&server.url("/rooms/abc?limit=5"))
        .await
        .unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"opening": {"roomId": "abc", "limit": 5}}))
    );
}

#[tokio::test]
async fn unknown_path_is_refused_with_status_and_body() {
    let server = server().await;
    let err = Client::connect(&server.url("/nope")).await.unwrap_err();
    let ClientError::Refused { status, body } = err else {
        panic!("expected a refusal, got {err:?}");
    };
    assert_eq!(status, 404);
    let body = body.expect("the JSON body");
    assert_eq!(body["name"], "NotFoundError");
    assert_eq!(body["message"], "Channel not found: /nope");
    assert!(body["errorId"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn headers_reach_upgrade_middleware() {
    let server = server().await;
    let client = Client::builder(server.url("/secure"))
        .header("Authorization", "Bearer good")
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&client).await, Frame::Json(json!({"user": "u2"})));

    let err = Client::connect(&server.url("/secure")).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused { status: 401, body: Some(body) }
            if body["message"] == "Missing or invalid token"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "upgrade refused with HTTP 401: Missing or invalid token"
    );

    let err = Client::builder(server.url("/secure"))
        .header("Authorization", "Bearer banned")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Refused { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_options_are_typed_errors() {
    let err = Client::connect("http://127.0.0.1:1/events")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidUrl(_)), "{err:?}");
    let err = Client::connect("wss://127.0.0.1:1/events")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidUrl(_)), "{err:?}");
    let err = Client::builder("ws://127.0.0.1:1/events")
        .header("Host", "elsewhere")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidHeader(_)), "{err:?}");
    let err = Client::builder("ws://127.0.0.1:1/events")
        .header("X-Bad", "line\nbreak")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidHeader(_)), "{err:?}");
}

#[tokio::test]
async fn refused_tcp_connection() {
    // Bind, then free a port, so nothing listens on it.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Client::connect(&format!("ws://127.0.0.1:{port}/events"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts the TCP connection but never answers the upgrade.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let err = Client::builder(format!("ws://{addr}/events"))
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectTimeout(d) if d == Duration::from_millis(200)),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let server = server().await;
    let client = events(&server).await;
    let clone = client.clone();
    drop(client);
    // A clone keeps it open.
    let prim: String = clone.route("action").call_as("prim", &()).await.unwrap();
    assert_eq!(prim, "valid");
    drop(clone);
    let disconnects = server.recorder().wait_for_disconnects(1, WAIT).await;
    assert_eq!(disconnects.len(), 1, "{disconnects:?}");
}

#[tokio::test]
async fn pings_are_answered_while_idle() {
    // Pinged every 100 ms, closed after 300 ms without an inbound frame: the pongs keep it open.
    let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..pikku_conformance::FixtureSettings::test()
    })
    .await;
    let client = events(&server).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client.close_reason(), None);
    let prim: String = client.route("action").call_as("prim", &()).await.unwrap();
    assert_eq!(prim, "valid");
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Client>();
    check::<pikku_client::Route>();
}
