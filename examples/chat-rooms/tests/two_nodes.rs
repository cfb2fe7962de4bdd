//! Two chat processes sharing their rooms through Redis (the shared server on 127.0.0.1:6379): members on one
//! node see what members on the other say, join and leave.

mod support;

use std::time::Duration;

use pikku_client::{Client, Frame};
use serde_json::{json, Value};
use support::{Running, WAIT};

const REDIS: &str = "redis://127.0.0.1:6379";

async fn join(node: &Running, path: &str) -> Client {
    let client = tokio::time::timeout(WAIT, Client::connect(&format!("ws://{}{path}", node.addr)))
        .await
        .expect("connected in time")
        .expect("upgrade accepted");
    let welcome = next(&client).await;
    assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
    client
}

async fn next(client: &Client) -> Value {
    match tokio::time::timeout(WAIT, client.next_frame())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
    {
        Frame::Json(value) => value,
        other => panic!("unexpected frame {other:?}"),
    }
}

/// The next room event of `client`, skipping replies to its own sends.
async fn next_event(client: &Client) -> Value {
    loop {
        let frame = next(client).await;
        if frame.get("topic").is_some() {
            return frame["data"].clone();
        }
    }
}

#[tokio::test]
async fn members_on_two_nodes_sharing_redis_see_each_other() {
    let (a, b) = (
        Running::start(&["--hub", REDIS]),
        Running::start(&["--hub", REDIS]),
    );
    // A room of its own, so runs on the same Redis do not hear each other.
    let room = format!("nodes-{}-{}", std::process::id(), a.addr.port());
    let ada = join(&a, &format!("/rooms/{room}?name=ada")).await;
    let zoe = join(&b, &format!("/rooms/{room}?name=zoe")).await;
    let joined = next_event(&ada).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(
        joined["name"], "zoe",
        "ada, on node A, hears zoe join on node B"
    );

    zoe.route("action")
        .send("say", &json!({"text": "hello from B"}))
        .await
        .unwrap();
    let heard = next_event(&ada).await;
    assert_eq!(
        heard,
        json!({"type": "message", "name": "zoe", "text": "hello from B"})
    );
    assert_eq!(
        next_event(&zoe).await,
        heard,
        "the sender hears itself once, on its own node"
    );

    ada.route("action")
        .send("say", &json!({"text": "hi from A"}))
        .await
        .unwrap();
    assert_eq!(next_event(&zoe).await["text"], "hi from A");
    assert_eq!(next_event(&ada).await["text"], "hi from A");

    drop(ada);
    let left = next_event(&zoe).await;
    assert_eq!(
        (left["type"].as_str(), left["name"].as_str()),
        (Some("left"), Some("ada"))
    );
    // Nothing was delivered twice.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), zoe.next_frame())
            .await
            .is_err(),
        "no duplicate after the departure"
    );
}
