//! The auth-session app served in-process on 127.0.0.1:0, driven over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use example_auth_session::app;
use futures_util::{SinkExt, StreamExt};
use pikku::{ChannelServer, ServerConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

/// Serves the app on a free port until the test's runtime ends.
async fn start() -> SocketAddr {
    let server = ChannelServer::new(app(), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    addr
}

/// Opens `/account`, with `Authorization: <authorization>` if given.
async fn open(addr: SocketAddr, authorization: Option<&str>) -> Result<Ws, WsError> {
    let mut request = format!("ws://{addr}/account").into_client_request()?;
    if let Some(value) = authorization {
        let value = HeaderValue::from_str(value).unwrap();
        request.headers_mut().insert("authorization", value);
    }
    connect_async(request).await.map(|(ws, _)| ws)
}

/// Opens `/account` and returns the socket and the `user` of its welcome frame.
async fn connect(addr: SocketAddr, authorization: Option<&str>) -> (Ws, Value) {
    let mut ws = open(addr, authorization).await.expect("upgrade accepted");
    let mut welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome["user"].take())
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

/// Sends `message` and returns the reply.
async fn call(ws: &mut Ws, message: Value) -> Value {
    ws.send(Message::text(message.to_string())).await.unwrap();
    next(ws).await
}

fn unauthorized(route: &str) -> Value {
    json!({"action": route, "error": format!("Unauthorized for route 'action:{route}'"), "errorName": "UnauthorizedError"})
}

fn alice() -> Value {
    json!({"userId": "alice", "role": "member"})
}

/// Asserts that the upgrade was refused with 401 `Invalid token`.
fn assert_invalid_token(result: Result<Ws, WsError>) {
    match result {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["name"], "UnauthorizedError");
            assert_eq!(body["message"], "Invalid token");
            assert!(body["errorId"].is_string(), "{body}");
        }
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade was accepted"),
    }
}

#[tokio::test]
async fn a_bad_bearer_token_is_refused_with_401() {
    let addr = start().await;
    assert_invalid_token(open(addr, Some("Bearer nope")).await);
    // A header with another scheme, or without a token, is refused too; only a missing header is anonymous.
    assert_invalid_token(open(addr, Some("Basic YWxpY2U6c2VjcmV0")).await);
    assert_invalid_token(open(addr, Some("Bearer")).await);
}

#[tokio::test]
async fn the_refusal_is_a_complete_json_http_response() {
    let addr = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request =
        "GET /account HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Authorization: Bearer stolen\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["name"], "UnauthorizedError");
    assert_eq!(body["message"], "Invalid token");
}

#[tokio::test]
async fn an_anonymous_connection_is_admitted_but_gated() {
    let addr = start().await;
    let (mut ws, user) = connect(addr, None).await;
    assert_eq!(user, Value::Null);

    assert_eq!(
        call(&mut ws, json!({"action": "me"})).await,
        json!({"action": "me", "error": "Unauthorized for route 'action:me'", "errorName": "UnauthorizedError"})
    );
    // The auth gate runs before permissions: no session is 401-like, not 403-like.
    assert_eq!(
        call(&mut ws, json!({"action": "admin/stats"})).await,
        unauthorized("admin/stats")
    );
}

#[tokio::test]
async fn login_sets_the_session_for_the_next_message() {
    let addr = start().await;
    let (mut ws, _) = connect(addr, None).await;

    assert_eq!(
        call(&mut ws, json!({"action": "login", "token": "nope"})).await,
        json!({"action": "login", "error": "Invalid token", "errorName": "UnauthorizedError"})
    );
    assert_eq!(
        call(&mut ws, json!({"action": "me"})).await,
        unauthorized("me")
    );

    let mut login = call(&mut ws, json!({"action": "login", "token": "alice-token"})).await;
    assert_eq!(login["action"], "login");
    login.as_object_mut().unwrap().remove("action");
    assert_eq!(login, alice());

    let me = call(&mut ws, json!({"action": "me"})).await;
    assert_eq!(
        me,
        json!({"action": "me", "userId": "alice", "role": "member"})
    );

    let frame = call(&mut ws, json!({"action": "login"})).await;
    assert_eq!(frame["errorName"], "UnprocessableContentError");
    assert_eq!(frame["details"][0]["path"], "/token");
}

#[tokio::test]
async fn a_member_is_forbidden_the_admin_route() {
    let addr = start().await;
    let (mut ws, user) = connect(addr, Some("Bearer alice-token")).await;
    assert_eq!(user, alice());

    assert_eq!(
        call(&mut ws, json!({"action": "me"})).await["userId"],
        "alice"
    );
    assert_eq!(
        call(&mut ws, json!({"action": "admin/stats"})).await,
        json!({"action": "admin/stats", "error": "Permission denied", "errorName": "ForbiddenError"})
    );
}

#[tokio::test]
async fn an_admin_is_allowed_the_admin_route() {
    let addr = start().await;
    let (mut member, _) = connect(addr, Some("Bearer alice-token")).await;
    let (mut root, user) = connect(addr, Some("bearer root-token")).await;
    assert_eq!(user, json!({"userId": "root", "role": "admin"}));

    assert_eq!(
        call(&mut root, json!({"action": "admin/stats"})).await,
        json!({"action": "admin/stats", "openConnections": 2})
    );

    // The session is live (D8): logging in with the admin token lifts the member's permissions at once.
    assert_eq!(
        call(
            &mut member,
            json!({"action": "login", "token": "root-token"})
        )
        .await["userId"],
        "root"
    );
    assert_eq!(
        call(&mut member, json!({"action": "admin/stats"})).await["openConnections"],
        2
    );
}

#[tokio::test]
async fn logout_makes_the_connection_anonymous_again() {
    let addr = start().await;
    let (mut ws, _) = connect(addr, Some("Bearer alice-token")).await;

    assert_eq!(
        call(&mut ws, json!({"action": "me"})).await["userId"],
        "alice"
    );
    assert_eq!(
        call(&mut ws, json!({"action": "logout"})).await,
        json!({"action": "logout"})
    );
    assert_eq!(
        call(&mut ws, json!({"action": "me"})).await,
        unauthorized("me")
    );
    // Logging out twice is fine; logging in again works.
    assert_eq!(
        call(&mut ws, json!({"action": "logout"})).await,
        json!({"action": "logout"})
    );
    call(&mut ws, json!({"action": "login", "token": "root-token"})).await;
    assert_eq!(
        call(&mut ws, json!({"action": "me"})).await["userId"],
        "root"
    );
}
