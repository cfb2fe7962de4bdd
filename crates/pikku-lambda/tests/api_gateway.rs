//! `LambdaChannels::handle` driven with API Gateway WebSocket events (the `aws_lambda_events` crate's fixtures
//! and events of our own), with the real SDK client signing and posting to a local stand-in of the
//! management API.

mod support;

use hyper::Method;
use pikku::lambda::{ApiGatewayProxyResponse, Body};
use pikku::store::PlatformSendError;
use serde_json::{json, Value};
use support::{binary, connect, disconnect, fixture, request, text, Function};

fn json_body(response: &ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// The stand-in's requests as (method, connection id, body as text).
fn calls(function: &Function) -> Vec<(Method, String, String)> {
    function
        .api
        .take()
        .into_iter()
        .map(|r| {
            (
                r.method,
                r.connection_id,
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
        .collect()
}

fn post(id: &str, body: &str) -> (Method, String, String) {
    (Method::POST, id.to_owned(), body.to_owned())
}

#[tokio::test]
async fn refused_connects_answer_the_status_and_the_json_body_and_store_nothing() {
    let f = Function::start().await;

    let refused = f
        .channels
        .handle(connect("nowhere-1", json!({"channel": "/nowhere"})))
        .await;
    assert_eq!(refused.status_code, 404);
    assert_eq!(
        refused.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body = json_body(&refused);
    assert_eq!(body["name"], "NotFoundError");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["errorId"].is_string(), "{body}");
    assert!(f.stores.channels.get_channel("nowhere-1").await.is_err());

    // The path parameter must hold a path.
    let refused = f
        .channels
        .handle(connect("nowhere-2", json!({"channel": "rooms/a"})))
        .await;
    assert_eq!(refused.status_code, 400);
    assert_eq!(json_body(&refused)["name"], "BadRequestError");
    assert!(f.stores.channels.get_channel("nowhere-2").await.is_err());

    // onConnect closing the channel refuses the handshake; onDisconnect runs, since API Gateway sends no
    // $disconnect for a refused connect, and the record goes.
    let refused = f
        .channels
        .handle(connect("closing-1", json!({"channel": "/refuse"})))
        .await;
    assert_eq!(refused.status_code, 403);
    assert_eq!(json_body(&refused)["name"], "ForbiddenError");
    assert!(f.stores.channels.get_channel("closing-1").await.is_err());
    assert_eq!(*f.log.lock(), ["closing-1 server_closed"]);

    assert!(f.api.requests().is_empty());
}

#[tokio::test]
async fn fixture_connects_open_the_configured_path_and_drop_on_connect_frames() {
    let f = Function::start().await;

    // The crate's $connect fixture has `?name=me` and no `channel` parameter: the fixed path opens.
    let accepted = f
        .channels
        .handle(request(fixture("example-apigw-websocket-request.json")))
        .await;
    assert_eq!(accepted.status_code, 200);
    assert_eq!(accepted.body, None);
    let record = f
        .stores
        .channels
        .get_channel("TWegAcC4EowCHnA=")
        .await
        .unwrap();
    assert_eq!(record.channel_name, "rooms");
    assert_eq!(record.opening_data, json!({"room": "lobby", "name": "me"}));

    // Its sibling without a query; and one naming its room, whose parameter stays out of the opening data.
    let accepted = f
        .channels
        .handle(request(fixture(
            "example-apigw-websocket-request-without-method.json",
        )))
        .await;
    assert_eq!(accepted.status_code, 200);
    assert!(f.stores.channels.get_channel("asdfasdf=").await.is_ok());
    let accepted = f
        .channels
        .handle(connect(
            "named-1",
            json!({"channel": "/rooms/a%20b", "x": "1"}),
        ))
        .await;
    assert_eq!(accepted.status_code, 200);
    assert_eq!(
        f.stores
            .channels
            .get_channel("named-1")
            .await
            .unwrap()
            .opening_data,
        json!({"room": "a b", "x": "1"})
    );

    // onConnect sent a welcome each time: none was posted, since API Gateway cannot deliver it yet.
    assert!(f.api.requests().is_empty());
}

#[tokio::test]
async fn a_reply_reaches_the_stand_in_as_a_signed_post_with_the_frame_bytes() {
    let f = Function::start().await;
    assert_eq!(
        f.channels
            .handle(connect("c-1=", json!({})))
            .await
            .status_code,
        200
    );

    let answered = f
        .channels
        .handle(text("c-1=", json!({"action": "echo", "text": "hi there"})))
        .await;
    assert_eq!(answered.status_code, 200);
    // The send, then the routed reply, each one POST to the connection (its `=` travelled escaped).
    let sent = calls(&f);
    assert_eq!(sent[0], post("c-1=", "hi there"));
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].0, Method::POST);
    assert_eq!(
        serde_json::from_str::<Value>(&sent[1].2).unwrap(),
        json!({"action": "echo"})
    );
}

#[tokio::test]
async fn socket_state_and_the_session_survive_between_events() {
    let f = Function::start().await;
    f.channels.handle(connect("s-1", json!({}))).await;

    for expected in [1, 2] {
        f.channels
            .handle(text("s-1", json!({"action": "count"})))
            .await;
        assert_eq!(
            serde_json::from_str::<Value>(&calls(&f)[0].2).unwrap(),
            json!({"action": "count", "result": expected})
        );
    }
    assert_eq!(
        f.stores.channels.get_channel("s-1").await.unwrap().state,
        Some(json!(2))
    );

    // Without a session, whoami is refused; after login it is found through the record's user id.
    f.channels
        .handle(text("s-1", json!({"action": "whoami"})))
        .await;
    let refused: Value = serde_json::from_str(&calls(&f)[0].2).unwrap();
    assert_eq!(refused["action"], "whoami");
    assert!(refused.to_string().contains("Unauthorized"), "{refused}");

    f.channels
        .handle(text("s-1", json!({"action": "login", "user": "ann"})))
        .await;
    calls(&f);
    assert_eq!(
        f.stores
            .channels
            .get_channel("s-1")
            .await
            .unwrap()
            .user_id
            .as_deref(),
        Some("ann")
    );
    f.channels
        .handle(text("s-1", json!({"action": "whoami"})))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&calls(&f)[0].2).unwrap(),
        json!({"action": "whoami", "result": "ann"})
    );
}

#[tokio::test]
async fn a_binary_message_round_trips() {
    let f = Function::start().await;
    f.channels.handle(connect("b-1", json!({}))).await;

    let bytes = [0u8, 1, 2, 0xfe, 0xff];
    let answered = f.channels.handle(binary("b-1", &bytes)).await;
    assert_eq!(answered.status_code, 200);
    let sent = f.api.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, Method::POST);
    assert_eq!(sent[0].connection_id, "b-1");
    assert_eq!(&sent[0].body[..], [0xff, 0xfe, 2, 1, 0]);

    // A body flagged base64 that is not is answered 400 and runs nothing.
    let mut broken = binary("b-1", b"x");
    broken.body = Some("***".into());
    assert_eq!(f.channels.handle(broken).await.status_code, 400);
    assert!(f.api.requests().is_empty());
}

#[tokio::test]
async fn a_publication_to_a_gone_subscriber_removes_its_record() {
    let f = Function::start().await;
    for id in ["p-1", "p-2", "p-3"] {
        f.channels.handle(connect(id, json!({}))).await;
        f.channels
            .handle(text(id, json!({"action": "sub", "topic": "news"})))
            .await;
    }
    calls(&f);
    f.api.mark_gone("p-3");

    let answered = f
        .channels
        .handle(text(
            "p-1",
            json!({"action": "emit", "topic": "news", "data": {"n": 1}}),
        ))
        .await;
    assert_eq!(answered.status_code, 200);
    let mut sent = calls(&f);
    // p-1 gets the publication and its reply through its own event's outcome, after the others'.
    let own: Vec<_> = sent
        .iter()
        .filter(|(_, id, _)| id == "p-1")
        .cloned()
        .collect();
    assert_eq!(own[0], post("p-1", r#"{"n":1}"#));
    assert_eq!(
        serde_json::from_str::<Value>(&own[1].2).unwrap(),
        json!({"action": "emit", "result": 2})
    );
    sent.retain(|(_, id, _)| id != "p-1");
    sent.sort();
    assert_eq!(sent, [post("p-2", r#"{"n":1}"#), post("p-3", r#"{"n":1}"#)]);

    assert!(f.stores.channels.get_channel("p-3").await.is_err());
    let mut subscribers = f.stores.subscriptions.channel_ids("news").await.unwrap();
    subscribers.sort();
    assert_eq!(subscribers, ["p-1", "p-2"]);
}

#[tokio::test]
async fn disconnect_twice_runs_on_disconnect_once() {
    let f = Function::start().await;
    f.channels.handle(connect("d-1", json!({}))).await;
    f.channels
        .handle(text("d-1", json!({"action": "sub", "topic": "t"})))
        .await;

    // The crate's $disconnect fixture (status 1005: a close frame without a code), delivered twice.
    for _ in 0..2 {
        let answered = f.channels.handle(disconnect("d-1")).await;
        assert_eq!(answered.status_code, 200);
    }
    assert_eq!(*f.log.lock(), ["d-1 client_closed"]);
    assert!(f.stores.channels.get_channel("d-1").await.is_err());
    assert!(f
        .stores
        .subscriptions
        .channel_ids("t")
        .await
        .unwrap()
        .is_empty());

    // A late message of the removed connection is closed: a DeleteConnection, nothing posted.
    f.api.take();
    f.channels
        .handle(text("d-1", json!({"action": "count"})))
        .await;
    assert_eq!(
        calls(&f),
        [(Method::DELETE, "d-1".to_owned(), String::new())]
    );
}

#[tokio::test]
async fn a_handlers_close_becomes_a_delete_after_its_frames() {
    let f = Function::start().await;
    f.channels.handle(connect("x-1", json!({}))).await;

    let answered = f
        .channels
        .handle(text("x-1", json!({"action": "bye"})))
        .await;
    assert_eq!(answered.status_code, 200);
    assert_eq!(
        calls(&f),
        [
            post("x-1", "bye"),
            (Method::DELETE, "x-1".to_owned(), String::new())
        ]
    );
    // The app closed it: the disconnect ran at once, with the app's reason, and the record is gone.
    assert_eq!(*f.log.lock(), ["x-1 server_closed"]);
    assert!(f.stores.channels.get_channel("x-1").await.is_err());
    // The $disconnect that DeleteConnection causes later finds nothing to do.
    let mut deleted = disconnect("x-1");
    deleted.request_context.disconnect_status_code = Some(1000);
    deleted.request_context.disconnect_reason = Some("Executing DeleteConnection API".into());
    assert_eq!(f.channels.handle(deleted).await.status_code, 200);
    assert_eq!(*f.log.lock(), ["x-1 server_closed"]);
}

#[tokio::test]
async fn the_sender_tells_gone_from_other_failures() {
    let f = Function::start().await;
    let sender = f.channels.sender();
    f.api.mark_gone("gone-1");
    f.api.mark_forbidden("forbidden-1");

    assert_eq!(sender.post("ok-1", b"x").await, Ok(()));
    assert_eq!(
        sender.post("gone-1", b"x").await,
        Err(PlatformSendError::Gone)
    );
    let failed = sender.post("forbidden-1", b"x").await.unwrap_err();
    assert!(matches!(failed, PlatformSendError::Failed(_)), "{failed:?}");
    assert!(failed.to_string().contains("apigateway"), "{failed}");

    assert_eq!(sender.is_connected("ok-1").await, Ok(true));
    assert_eq!(sender.is_connected("gone-1").await, Ok(false));
    assert_eq!(sender.delete("ok-1").await, Ok(()));
    assert_eq!(sender.delete("gone-1").await, Err(PlatformSendError::Gone));

    let methods: Vec<Method> = f.api.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(
        methods,
        [
            Method::POST,
            Method::POST,
            Method::POST,
            Method::GET,
            Method::GET,
            Method::DELETE,
            Method::DELETE
        ]
    );
}

#[tokio::test]
async fn a_listed_subprotocol_is_echoed_on_connect() {
    let api = support::ManagementApi::start().await;
    let stores = pikku::stateless::StatelessStores::memory();
    let channels = pikku::lambda::LambdaChannels::new(
        support::app(support::Log::default()),
        stores.clone(),
        api.sender(),
    )
    .unwrap()
    .with_path("/rooms/lobby")
    .with_subprotocols(["pikku.v1"]);
    let offering = |id: &str, offered: &str| {
        let mut event = connect(id, json!({}));
        event
            .headers
            .insert("sec-websocket-protocol", offered.parse().unwrap());
        event
    };

    let accepted = channels.handle(offering("sp-1", "chat.v2, pikku.v1")).await;
    assert_eq!(accepted.status_code, 200);
    assert_eq!(
        accepted.headers.get("sec-websocket-protocol").unwrap(),
        "pikku.v1"
    );

    let refused = channels.handle(offering("sp-2", "chat.v2")).await;
    assert_eq!(refused.status_code, 400);
    assert_eq!(json_body(&refused)["message"], "Unsupported subprotocol");
    assert!(stores.channels.get_channel("sp-2").await.is_err());

    // Without an offer there is nothing to echo.
    let plain = channels.handle(connect("sp-3", json!({}))).await;
    assert_eq!(plain.status_code, 200);
    assert!(plain.headers.get("sec-websocket-protocol").is_none());
}
