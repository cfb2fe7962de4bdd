//! The echo app served in-process on 127.0.0.1:0, driven over real sockets with `pikku-client`.

use std::future::Future;
use std::time::Duration;

use example_echo::{app, Text};
use pikku::{ChannelServer, ServerConfig};
use pikku_client::{Client, ClientError, Frame};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// Serves the echo app on a free port until the test's runtime ends; returns `ws://127.0.0.1:<port>`.
async fn start() -> String {
    let server = ChannelServer::new(app(), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    format!("ws://{addr}")
}

/// `future`, which must finish within [`WAIT`].
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("an answer within the timeout")
}

/// Opens `/echo` and checks the connection's first frame, `ready`.
async fn connect(base: &str) -> Client {
    let client = within(Client::connect(&format!("{base}/echo")))
        .await
        .expect("upgrade accepted");
    assert_eq!(next(&client).await, Frame::Text("ready".into()));
    client
}

/// The next frame no call consumed.
async fn next(client: &Client) -> Frame {
    within(client.next_frame())
        .await
        .expect("the socket is open")
}

#[tokio::test]
async fn the_first_frame_is_ready_unquoted() {
    let base = start().await;
    let client = within(Client::connect(&format!("{base}/echo")))
        .await
        .unwrap();
    // A string result goes out as its bare characters, not as the JSON text `"ready"` (which
    // would arrive as `Frame::Json(Value::String(..))`).
    assert_eq!(next(&client).await, Frame::Text("ready".into()));
}

#[tokio::test]
async fn the_default_handler_echoes_any_json_in_order() {
    let client = connect(&start().await).await;
    let messages = [
        json!({"a": 1, "nested": {"b": [true, null]}}),
        json!([1, 2, 3]),
        json!(42),
        // Unregistered route names and non-string routing values are default messages.
        json!({"action": "nope", "x": 1}),
        json!({"action": 5}),
    ];
    // Send them all before reading: replies follow arrival order (one message in flight per connection).
    for message in &messages {
        client.send(message).await.unwrap();
    }
    for message in messages {
        assert_eq!(next(&client).await, Frame::Json(message));
    }
}

#[tokio::test]
async fn text_that_is_not_json_comes_back_as_the_same_text() {
    let client = connect(&start().await).await;
    // `hello` is parsed as the JSON string "hello", echoed, and a string goes out unquoted.
    client.send_text("hello").await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello".into()));
    // A quoted JSON string is the same message (`send` serializes the string as `"hello"`).
    client.send("hello").await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello".into()));
}

#[tokio::test]
async fn upper_replies_with_action_merged_into_its_object() {
    let client = connect(&start().await).await;
    let actions = client.route("action");

    let reply = within(actions.call("upper", &json!({"text": "Hello, wörld"})))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(reply.frame().clone()),
        json!({"action": "upper", "text": "HELLO, WÖRLD"})
    );

    // Member order does not matter, and members the input type does not declare are ignored. Sent as raw text
    // to control the order; a reply nobody called for arrives in the frame queue.
    client
        .send_text(r#"{"extra":true,"text":"abc","action":"upper"}"#)
        .await
        .unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"action": "upper", "text": "ABC"}))
    );

    // Typed both ways: the app's own `Text` goes out as the input and comes back as the result.
    let input = Text {
        text: "typed".into(),
    };
    let shouted: Text = within(actions.call_as("upper", &input)).await.unwrap();
    assert_eq!(shouted.text, "TYPED");
}

#[tokio::test]
async fn upper_with_invalid_input_gets_a_validation_error_frame() {
    let client = connect(&start().await).await;
    let actions = client.route("action");

    // `Route::send` does not wait for the reply, so the whole error frame lands in the frame queue.
    actions.send("upper", &()).await.unwrap();
    let Frame::Json(frame) = next(&client).await else {
        panic!("expected a JSON frame");
    };
    assert_eq!(frame["action"], "upper");
    assert_eq!(frame["error"], "Invalid message data");
    assert_eq!(frame["errorName"], "UnprocessableContentError");
    let details = frame["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "{frame}");
    // A missing member is reported at the path it should have had.
    assert_eq!(details[0]["path"], "/text");
    assert!(details[0]["message"].is_string(), "{frame}");
    assert_eq!(frame.as_object().unwrap().len(), 4, "{frame}");

    // A call reads the same frame as a typed error.
    let err = within(actions.call("upper", &json!({"text": 5})))
        .await
        .unwrap_err();
    let ClientError::Remote { name, details, .. } = err else {
        panic!("expected an error frame, got {err:?}");
    };
    assert_eq!(name, "UnprocessableContentError");
    assert_eq!(details[0].path, "/text");

    // The connection carries on.
    let reply = within(actions.call("upper", &json!({"text": "ok"})))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(reply.frame().clone()),
        json!({"action": "upper", "text": "OK"})
    );
}

#[tokio::test]
async fn binary_frames_come_back_unchanged() {
    let client = connect(&start().await).await;

    let payload: Vec<u8> = (0..=255).collect();
    client.send_binary(payload.clone()).await.unwrap();
    assert_eq!(next(&client).await, Frame::Binary(payload.into()));

    // Text and binary frames share one ordered queue.
    client.send(&json!({"n": 1})).await.unwrap();
    client.send_binary(vec![0xff, 0x00]).await.unwrap();
    assert_eq!(next(&client).await, Frame::Json(json!({"n": 1})));
    assert_eq!(next(&client).await, Frame::Binary(vec![0xff, 0x00].into()));
}

#[tokio::test]
async fn other_paths_are_refused_with_404() {
    let base = start().await;
    let err = within(Client::connect(&format!("{base}/nope")))
        .await
        .expect_err("refused");
    let ClientError::Refused { status, body } = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    assert_eq!(status, 404);
    let body = body.expect("a JSON body");
    assert_eq!(body["name"], "NotFoundError");
    assert_eq!(body["message"], "Channel not found: /nope");
}
