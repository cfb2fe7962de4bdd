//! Reverse RPC: functions the client exposes, called by the fixture's `rev` route, which
//! calls `clientThing` with `{"q":1}` and returns `{"remoteSaid":<result>}`.

mod support;

use std::time::Duration;

use pikku_client::{Client, ClientError, RpcError, RpcRequest};
use serde_json::{json, Value};
use support::{authed, next, sentinel, server};

async fn answer(request: RpcRequest) -> Result<Value, RpcError> {
    assert_eq!(request.func_name(), "clientThing");
    Ok(json!({"answer": 42, "asked": request.data()}))
}

#[tokio::test]
async fn exposed_function_answers() {
    let server = server().await;
    let client = authed(&server).await;
    client.expose("clientThing", answer);
    let said = client.route("action").call("rev", &()).await.unwrap();
    assert_eq!(
        said.value(),
        json!({"remoteSaid": {"answer": 42, "asked": {"q": 1}}})
    );
    // The request never reached the frame queue; a second call gets a fresh request.
    sentinel(&client).await;
    let again = client.route("action").call("rev", &()).await.unwrap();
    assert_eq!(again.value()["remoteSaid"]["answer"], 42);
}

#[tokio::test]
async fn exposed_before_connecting() {
    let server = server().await;
    let client = Client::builder(server.url("/events"))
        .expose("clientThing", |_request: RpcRequest| async {
            Ok::<_, RpcError>("typed results serialize")
        })
        .connect()
        .await
        .unwrap();
    next(&client).await; // hello!
    let actions = client.route("action");
    actions
        .call("auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    let said = actions.call("rev", &()).await.unwrap();
    assert_eq!(
        said.value(),
        json!({"remoteSaid": "typed results serialize"})
    );
}

#[tokio::test]
async fn remote_errors_propagate_as_channel_rpc_errors() {
    let server = server().await;
    let client = authed(&server).await;
    client.expose("clientThing", |_request: RpcRequest| async {
        Err::<Value, _>(RpcError::new(
            "RPCDeniedError",
            "\"clientThing\" was not approved",
        ))
    });
    let err = client.route("action").call("rev", &()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, message, .. }
            if name == "ChannelRPCError" && message == "\"clientThing\" was not approved"),
        "{err:?}"
    );
    assert_eq!(server.recorder().rpc_failures(), ["remote"]);
}

#[tokio::test]
async fn unknown_functions_are_answered_not_found() {
    let server = server().await;
    let client = authed(&server).await;
    let err = client.route("action").call("rev", &()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, message, .. }
            if name == "ChannelRPCError" && message == "No function 'clientThing' is exposed"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_panicking_function_is_answered() {
    let server = server().await;
    let client = authed(&server).await;
    client.expose("clientThing", |_request: RpcRequest| async {
        if true {
            panic!("the exposed function panicked, as the test wants");
        }
        Ok::<Value, RpcError>(Value::Null)
    });
    let err = client.route("action").call("rev", &()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, .. } if name == "ChannelRPCError"),
        "{err:?}"
    );
    sentinel(&client).await;
}

#[tokio::test]
async fn pending_suspends_the_server_timeout() {
    let server = server().await;
    let client = authed(&server).await;
    // The fixture's reverse-RPC timeout is 200 ms; this answer takes 400 ms.
    client.expose("clientThing", |request: RpcRequest| async move {
        request.pending("asking a human").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok::<_, RpcError>(json!({"answer": "approved"}))
    });
    let said = client.route("action").call("rev", &()).await.unwrap();
    assert_eq!(said.value(), json!({"remoteSaid": {"answer": "approved"}}));
    assert!(server.recorder().rpc_failures().is_empty());
}

#[tokio::test]
async fn a_slow_function_without_pending_times_out() {
    let server = server().await;
    let client = authed(&server).await;
    client.expose("clientThing", |_request: RpcRequest| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok::<_, RpcError>(json!("too late"))
    });
    let err = client.route("action").call("rev", &()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, message, .. }
            if name == "ChannelRPCError" && message == "Remote call 'clientThing' timed out"),
        "{err:?}"
    );
    // The late response is consumed by the server, never answered (as in the golden test
    // `row_45_stray_and_invalid_rpc_envelopes`).
    tokio::time::sleep(Duration::from_millis(300)).await;
    sentinel(&client).await;
}
