//! The frame queue and the connection's end: default-handler replies, binary frames, hub events, overflow,
//! server and client closes.

mod support;

use futures_util::StreamExt;
use pikku_client::{Client, ClientError, Close, Frame};
use serde_json::json;
use support::{authed, events, next, sentinel, server};

#[tokio::test]
async fn default_handler_replies_arrive_as_frames() {
    let server = server().await;
    let client = authed(&server).await;
    client.send(&json!({"hello": 1})).await.unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"defaultGot": {"hello": 1}}))
    );
    // A string is sent as its JSON text; raw text is the same message.
    client.send("hello").await.unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"defaultGot": "hello"}))
    );
    client.send_text("not json").await.unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"defaultGot": "not json"}))
    );
    client.send(&json!(null)).await.unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"defaultGot": null}))
    );
}

#[tokio::test]
async fn raw_text_replies() {
    let server = server().await;
    let client = Client::connect(&server.url("/greet")).await.unwrap();
    client.send_text("hi!").await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello".into()));
    client.send("hey").await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("ola".into()));
}

#[tokio::test]
async fn binary_round_trip() {
    let server = server().await;
    let client = authed(&server).await;
    client.send_binary(vec![1u8, 2, 3]).await.unwrap();
    let frame = next(&client).await;
    assert_eq!(frame.as_binary().map(|b| &b[..]), Some(&[3u8, 2, 1][..]));
}

#[tokio::test]
async fn hub_events_between_two_clients() {
    let server = server().await;
    let a = authed(&server).await;
    let b = authed(&server).await;
    for client in [&a, &b] {
        client
            .route("action")
            .call("sub", &json!({"topic": "news"}))
            .await
            .unwrap();
    }
    // `emit` excludes the sender; the event is what the publisher built, with no envelope.
    let ack = a
        .route("action")
        .call("emit", &json!({"topic": "news", "data": {"hi": 1}}))
        .await
        .unwrap();
    assert_eq!(ack.value(), serde_json::Value::Null);
    assert_eq!(
        next(&b).await,
        Frame::Json(json!({"topic": "news", "data": {"hi": 1}}))
    );
    sentinel(&a).await;

    // `emitAll` reaches the sender too, before its own reply.
    a.route("action")
        .call("emitAll", &json!({"topic": "news", "data": {"hi": 2}}))
        .await
        .unwrap();
    let event = Frame::Json(json!({"topic": "news", "data": {"hi": 2}}));
    assert_eq!(next(&a).await, event);
    assert_eq!(next(&b).await, event);

    // Raw publications: a string arrives as text, bytes as a binary frame.
    a.route("action")
        .call(
            "emitRaw",
            &json!({"topic": "news", "text": "ping", "bytes": [9, 8]}),
        )
        .await
        .unwrap();
    assert_eq!(next(&b).await, Frame::Text("ping".into()));
    assert_eq!(next(&b).await, Frame::Binary(vec![9u8, 8].into()));
}

#[tokio::test]
async fn server_close_surfaces_its_code() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");
    let (bye, _) = tokio::join!(actions.call("bye", &()), async {
        // The push arrives before the close; then the queue reports the close.
        assert_eq!(next(&client).await, Frame::Text("bye".into()));
        let end = client.next_frame().await.unwrap_err();
        assert!(
            matches!(&end, ClientError::Closed(Close { code: 1000, reason }) if reason.is_empty()),
            "{end:?}"
        );
    });
    // `bye` closes instead of replying: the call in flight fails with the close.
    assert!(
        matches!(bye, Err(ClientError::Closed(Close { code: 1000, .. }))),
        "{bye:?}"
    );
    assert_eq!(client.closed().await.code, 1000);
    assert_eq!(client.close_reason().map(|c| c.code), Some(1000));
    // Everything after the close fails the same way.
    let err = client.send(&json!({"late": true})).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed(Close { code: 1000, .. })),
        "{err:?}"
    );
    let err = client.route("action").call("obj", &()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed(Close { code: 1000, .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_close_is_answered_by_the_server() {
    let server = server().await;
    let client = events(&server).await;
    let close = client.close().await;
    assert_eq!(close.code, 1000);
    // Closing again is harmless.
    assert_eq!(client.close().await, close);
    let disconnects = server
        .recorder()
        .wait_for_disconnects(1, support::WAIT)
        .await;
    assert_eq!(disconnects.len(), 1);
}

#[tokio::test]
async fn the_frame_stream_ends_with_the_close() {
    let server = server().await;
    let client = authed(&server).await;
    let frames = client.frames();
    client.route("action").send("bye", &()).await.unwrap();
    let all: Vec<_> = frames.collect().await;
    assert!(
        matches!(&all[..], [Ok(Frame::Text(bye)), Err(ClientError::Closed(Close { code: 1000, .. }))] if bye == "bye"),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_full_frame_queue_drops_and_reports() {
    let server = server().await;
    let client = Client::builder(server.url("/events"))
        .frame_capacity(2)
        .connect()
        .await
        .unwrap();
    let actions = client.route("action");
    actions
        .call("auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    // `hello!` and the first push fill the queue; the other four pushes are dropped. The call's reply comes
    // after the pushes and still arrives.
    actions.call("flood", &json!({"n": 5})).await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    assert!(matches!(next(&client).await, Frame::Text(push) if push.len() == 16 * 1024));
    let lagged = client.next_frame().await.unwrap_err();
    assert!(matches!(lagged, ClientError::Lagged(4)), "{lagged:?}");
    sentinel(&client).await;
}
