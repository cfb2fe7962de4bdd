//! Routed calls: reply shapes, error frames, matching by order per route.

mod support;

use pikku_client::{ClientError, ErrorDetail, Frame};
use serde::Deserialize;
use serde_json::{json, Value};
use support::{authed, events, next, sentinel, server};

#[tokio::test]
async fn object_replies_lose_only_the_routing_member() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");

    let reply = actions.call("obj", &()).await.unwrap();
    assert_eq!(reply.frame().get("action"), Some(&json!("obj")));
    assert_eq!(reply.value(), json!({"n": 1}));

    #[derive(Debug, Deserialize, PartialEq)]
    struct Created {
        id: u32,
        title: String,
    }
    let created: Created = actions
        .call_as("create", &json!({"title": "x"}))
        .await
        .unwrap();
    assert_eq!(
        created,
        Created {
            id: 1,
            title: "x".into()
        }
    );

    // Other members, other routing properties included, travel with the message (as in the golden test
    // `row_11_only_matched_key_stripped`).
    let got = actions
        .call("echoIn", &json!({"a": 1, "type": "x"}))
        .await
        .unwrap();
    assert_eq!(got.value(), json!({"got": {"a": 1, "type": "x"}}));

    // The server overwrites a member named like the routing property.
    let clash = actions.call("clash", &()).await.unwrap();
    assert_eq!(clash.value(), json!({"x": 1}));
}

#[tokio::test]
async fn replies_without_output_and_wrapped_results() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");

    // `{"action":"sub"}`: a handler without output.
    let sub = actions
        .call("sub", &json!({"topic": "news"}))
        .await
        .unwrap();
    assert_eq!(sub.frame().len(), 1);
    assert_eq!(sub.value(), Value::Null);
    actions
        .call_as::<()>("unsub", &json!({"topic": "news"}))
        .await
        .unwrap();

    // `{"action":…,"result":…}`: primitives, arrays and absent optionals.
    assert_eq!(
        actions.call_as::<String>("prim", &()).await.unwrap(),
        "valid"
    );
    assert_eq!(
        actions.call_as::<Vec<u32>>("arr", &()).await.unwrap(),
        [1, 2]
    );
    assert_eq!(
        actions.call_as::<Option<u32>>("maybe", &()).await.unwrap(),
        None
    );
    assert_eq!(
        actions
            .call_as::<Option<String>>("whoami", &())
            .await
            .unwrap(),
        Some("u1".into())
    );

    // A result of the wrong type is a decode error, not a panic.
    let err = actions.call_as::<u32>("prim", &()).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");

    // Other routing properties work the same way.
    let pong = client.route("type").call("ping", &()).await.unwrap();
    assert_eq!(pong.value(), json!({"pong": true}));
}

#[tokio::test]
async fn validation_errors_carry_details() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");
    for input in [json!({"title": 5}), json!({})] {
        let err = actions.call("create", &input).await.unwrap_err();
        let ClientError::Remote {
            name,
            message,
            details,
        } = err
        else {
            panic!("expected an error frame, got {err:?}");
        };
        assert_eq!(name, "UnprocessableContentError");
        assert_eq!(message, "Invalid message data");
        assert!(
            matches!(&details[..], [ErrorDetail { path, message }] if path == "/title" && !message.is_empty()),
            "{details:?}"
        );
    }
    // The connection goes on.
    assert_eq!(
        actions
            .call("create", &json!({"title": "x"}))
            .await
            .unwrap()
            .value(),
        json!({"id": 1, "title": "x"})
    );
}

#[tokio::test]
async fn error_frames_fail_their_call() {
    let server = server().await;
    let client = events(&server).await;
    let actions = client.route("action");

    let err = actions
        .call("sub", &json!({"topic": "news"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, message, details }
            if name == "UnauthorizedError" && message == "Unauthorized for route 'action:sub'" && details.is_empty()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "UnauthorizedError: Unauthorized for route 'action:sub'"
    );
    // An unrouted error frame has no routing member: it goes to the frame queue.
    client.send(&json!({"hello": 1})).await.unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({
            "error": "Unauthorized for the default message route",
            "errorName": "UnauthorizedError"
        }))
    );

    actions
        .call("auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    for (route, name, message) in [
        ("forbid", "ForbiddenError", "Permission denied"),
        ("boom", "InternalServerError", "Internal server error"),
        ("panic", "InternalServerError", "Internal server error"),
    ] {
        let err = actions.call(route, &()).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Remote { name: n, message: m, .. } if n == name && m == message),
            "{route}: {err:?}"
        );
    }
    sentinel(&client).await;
}

#[tokio::test]
async fn calls_to_one_route_resolve_in_order() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");

    let (first, second, third) = tokio::join!(
        actions.call_as::<u32>("count", &()),
        actions.call_as::<u32>("count", &()),
        actions.call_as::<u32>("count", &()),
    );
    assert_eq!((first.unwrap(), second.unwrap(), third.unwrap()), (1, 2, 3));

    // Different routes in flight: `slow` answers after 100 ms, `fast` is handled after it (messages are handled in
    // order).
    let (slow, fast) = tokio::join!(actions.call("slow", &()), actions.call("fast", &()));
    assert_eq!(slow.unwrap().value(), json!({"n": "slow"}));
    assert_eq!(fast.unwrap().value(), json!({"n": "fast"}));
}

#[tokio::test]
async fn a_dropped_call_still_consumes_its_reply() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");

    // Give up on the first call while it is in flight: its reply must not answer the second.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(20),
        actions.call("slow", &()),
    )
    .await;
    assert!(gave_up.is_err());
    let count: u32 = actions.call_as("count", &()).await.unwrap();
    assert_eq!(count, 1);
    let slow = actions.call("slow", &()).await.unwrap();
    assert_eq!(slow.value(), json!({"n": "slow"}));
    sentinel(&client).await;
}

#[tokio::test]
async fn replies_nobody_waits_for_reach_the_frame_queue() {
    let server = server().await;
    let client = authed(&server).await;
    let actions = client.route("action");
    actions.send("obj", &()).await.unwrap();
    assert_eq!(
        next(&client).await,
        Frame::Json(json!({"n": 1, "action": "obj"}))
    );
    // A waiting call on another route does not take it.
    let (reply, frame) = tokio::join!(actions.call("fast", &()), async {
        actions.send("obj", &()).await.unwrap();
        next(&client).await
    });
    assert_eq!(reply.unwrap().value(), json!({"n": "fast"}));
    assert_eq!(frame, Frame::Json(json!({"n": 1, "action": "obj"})));
}

#[tokio::test]
async fn routed_input_must_be_an_object() {
    let server = server().await;
    let client = events(&server).await;
    let err = client
        .route("action")
        .call("echoIn", &[1, 2])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Encode(_)), "{err:?}");
    // A member named like the routing property is replaced by the route name.
    let got = client
        .route("action")
        .call("echoIn", &json!({"action": "other", "a": 1}))
        .await
        .unwrap();
    assert_eq!(got.value(), json!({"got": {"a": 1}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_many_tasks_get_their_own_replies() {
    let server = server().await;
    let client = authed(&server).await;
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let actions = client.route("action");
            tokio::spawn(async move {
                let reply = actions.call("echoIn", &json!({"i": i})).await.unwrap();
                assert_eq!(reply.value(), json!({"got": {"i": i}}));
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    sentinel(&client).await;
}

#[tokio::test]
async fn a_call_timeout_fails_the_call_and_keeps_the_order() {
    let server = server().await;
    let client = pikku_client::Client::builder(server.url("/events"))
        .call_timeout(std::time::Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    let actions = client.route("action");
    actions
        .call("auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    // `slow` answers after 100 ms: the call gives up first.
    match actions.call("slow", &()).await {
        Err(ClientError::CallTimeout(after)) => {
            assert_eq!(after, std::time::Duration::from_millis(20))
        }
        other => panic!("expected a call timeout, got {other:?}"),
    }
    // Once the late reply to `slow` has arrived, it was taken by the abandoned call's place: it neither answers
    // a later call nor shows up in the frame queue, where the sentinel's reply must come next.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sentinel(&client).await;
}
