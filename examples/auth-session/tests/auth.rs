//! The auth-session app served in-process on 127.0.0.1:0, driven over real sockets with `pikku-client`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use example_auth_session::{app, Role, User};
use pikku::{ChannelServer, ServerConfig};
use pikku_client::{Client, ClientError, Frame};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// Serves the app on a free port until the test's runtime ends.
async fn start() -> SocketAddr {
    let server = ChannelServer::new(app(), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    addr
}

/// `future`, which must finish within [`WAIT`].
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("an answer within the timeout")
}

/// Opens `/account`, with `Authorization: <authorization>` if given.
async fn open(addr: SocketAddr, authorization: Option<&str>) -> Result<Client, ClientError> {
    let mut builder = Client::builder(format!("ws://{addr}/account"));
    if let Some(value) = authorization {
        builder = builder.header("Authorization", value);
    }
    within(builder.connect()).await
}

/// Opens `/account` and returns the client and the `user` of its welcome frame.
async fn connect(addr: SocketAddr, authorization: Option<&str>) -> (Client, Value) {
    let client = open(addr, authorization).await.expect("upgrade accepted");
    let mut welcome = next(&client).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (client, welcome["user"].take())
}

/// The next frame no call consumed, which must be JSON.
async fn next(client: &Client) -> Value {
    match within(client.next_frame())
        .await
        .expect("the socket is open")
    {
        Frame::Json(value) => value,
        other => panic!("unexpected frame {other:?}"),
    }
}

/// Calls `{"action": name, …input}` and returns the whole reply frame; an error frame is an `Err`.
async fn call(client: &Client, name: &str, input: Value) -> Result<Value, ClientError> {
    let reply = within(client.route("action").call(name, &input)).await?;
    Ok(Value::Object(reply.frame().clone()))
}

/// Asserts that `result` is the error frame `error_name` with `message`, and no validation details.
fn assert_remote(result: Result<Value, ClientError>, error_name: &str, error_message: &str) {
    match result {
        Err(ClientError::Remote {
            name,
            message,
            details,
        }) => {
            assert_eq!(
                (name.as_str(), message.as_str()),
                (error_name, error_message)
            );
            assert!(details.is_empty(), "{details:?}");
        }
        other => panic!("expected the error frame {error_name}, got {other:?}"),
    }
}

/// Asserts that `result` is the auth gate's refusal of `route`.
fn assert_unauthorized(result: Result<Value, ClientError>, route: &str) {
    let message = format!("Unauthorized for route 'action:{route}'");
    assert_remote(result, "UnauthorizedError", &message);
}

fn alice() -> Value {
    json!({"userId": "alice", "role": "member"})
}

/// Asserts that the upgrade was refused with 401 `Invalid token`.
fn assert_invalid_token(result: Result<Client, ClientError>) {
    match result {
        Err(ClientError::Refused { status, body }) => {
            assert_eq!(status, 401);
            let body = body.expect("a JSON body");
            assert_eq!(body["name"], "UnauthorizedError");
            assert_eq!(body["message"], "Invalid token");
            assert!(body["errorId"].is_string(), "{body}");
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
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

/// The raw upgrade request and response, byte for byte: what any WebSocket client sees.
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
    within(tcp.read_to_string(&mut response)).await.unwrap();
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
    let (client, user) = connect(addr, None).await;
    assert_eq!(user, Value::Null);

    // The whole frame: `Route::send` does not wait for the reply, which lands in the frame queue.
    client.route("action").send("me", &()).await.unwrap();
    assert_eq!(
        next(&client).await,
        json!({"action": "me", "error": "Unauthorized for route 'action:me'", "errorName": "UnauthorizedError"})
    );
    // The auth gate runs before permissions: no session is 401-like, not 403-like.
    assert_unauthorized(call(&client, "admin/stats", json!({})).await, "admin/stats");
}

#[tokio::test]
async fn login_sets_the_session_for_the_next_message() {
    let addr = start().await;
    let (client, _) = connect(addr, None).await;

    let login = call(&client, "login", json!({"token": "nope"})).await;
    assert_remote(login, "UnauthorizedError", "Invalid token");
    assert_unauthorized(call(&client, "me", json!({})).await, "me");

    let login = call(&client, "login", json!({"token": "alice-token"})).await;
    assert_eq!(
        login.unwrap(),
        json!({"action": "login", "userId": "alice", "role": "member"})
    );

    let me = call(&client, "me", json!({})).await.unwrap();
    assert_eq!(
        me,
        json!({"action": "me", "userId": "alice", "role": "member"})
    );

    match call(&client, "login", json!({})).await {
        Err(ClientError::Remote { name, details, .. }) => {
            assert_eq!(name, "UnprocessableContentError");
            assert_eq!(details[0].path, "/token");
        }
        other => panic!("expected a validation error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_member_is_forbidden_the_admin_route() {
    let addr = start().await;
    let (client, user) = connect(addr, Some("Bearer alice-token")).await;
    assert_eq!(user, alice());

    // `call_as` reads the reply into the app's own type.
    let me: User = within(client.route("action").call_as("me", &()))
        .await
        .unwrap();
    assert_eq!((me.user_id.as_str(), me.role), ("alice", Role::Member));
    let stats = call(&client, "admin/stats", json!({})).await;
    assert_remote(stats, "ForbiddenError", "Permission denied");
}

#[tokio::test]
async fn an_admin_is_allowed_the_admin_route() {
    let addr = start().await;
    let (member, _) = connect(addr, Some("Bearer alice-token")).await;
    let (root, user) = connect(addr, Some("bearer root-token")).await;
    assert_eq!(user, json!({"userId": "root", "role": "admin"}));

    assert_eq!(
        call(&root, "admin/stats", json!({})).await.unwrap(),
        json!({"action": "admin/stats", "openConnections": 2})
    );

    // The session is live: logging in with the admin token lifts the member's permissions at once.
    let login = call(&member, "login", json!({"token": "root-token"})).await;
    assert_eq!(login.unwrap()["userId"], "root");
    let stats = call(&member, "admin/stats", json!({})).await;
    assert_eq!(stats.unwrap()["openConnections"], 2);
}

#[tokio::test]
async fn logout_makes_the_connection_anonymous_again() {
    let addr = start().await;
    let (client, _) = connect(addr, Some("Bearer alice-token")).await;
    let actions = client.route("action");

    let me: User = within(actions.call_as("me", &())).await.unwrap();
    assert_eq!(me.user_id, "alice");
    assert_eq!(
        call(&client, "logout", json!({})).await.unwrap(),
        json!({"action": "logout"})
    );
    assert_unauthorized(call(&client, "me", json!({})).await, "me");
    // Logging out twice is fine; logging in again works.
    assert_eq!(
        call(&client, "logout", json!({})).await.unwrap(),
        json!({"action": "logout"})
    );
    call(&client, "login", json!({"token": "root-token"}))
        .await
        .unwrap();
    let me: User = within(actions.call_as("me", &())).await.unwrap();
    assert_eq!(me.user_id, "root");
}
