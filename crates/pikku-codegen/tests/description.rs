//! The conformance fixture's description (`tests/fixtures/conformance.description.json`, written by
//! `cargo run -p pikku-conformance --example describe`): it is what the fixture app describes now, and against
//! the real fixture every described route exists under its routing property, needs a session exactly when the
//! description says so, and answers in the described reply shape.

use std::time::Duration;

use pikku_client::{Client, ClientError};
use pikku_codegen::{Description, ReplyShape};
use pikku_conformance::{FixtureSettings, TestServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

fn description() -> Description {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conformance.description.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_committed_description_is_what_the_fixture_describes() {
    let live = pikku_conformance::fixture_app(
        &FixtureSettings::defaults(),
        pikku_conformance::Recorder::default(),
    )
    .describe();
    assert!(
        description() == live,
        "tests/fixtures/conformance.description.json is stale: run `bash scripts/regenerate-clients.sh`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_route_exists_with_its_auth_and_reply_shape() {
    let server = TestServer::start(FixtureSettings::test()).await;
    let mut checked = 0;
    for channel in description().channels {
        if channel.routes.is_empty() {
            continue;
        }
        let mut path = channel.route.clone();
        for param in &channel.params {
            path = path.replace(&format!(":{param}"), "lobby");
        }
        for route in &channel.routes {
            // A fresh connection per route: no session, and a route that closes the socket harms no other.
            let client = Client::connect(&server.url(&path)).await.unwrap();
            let (p, v) = (route.property.as_str(), route.value.as_str());
            let answer = tokio::time::timeout(WAIT, client.route(p).call(v, &json!({})))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: no answer carrying {p}:{v}: the fixture has no such route",
                        channel.name
                    )
                });
            let what = format!("{}: {p}:{v}", channel.name);
            match (route.message.auth, answer) {
                (true, Err(ClientError::Remote { name, message, .. })) => {
                    assert_eq!(name, "UnauthorizedError", "{what}");
                    assert_eq!(
                        message,
                        format!("Unauthorized for route '{p}:{v}'"),
                        "{what}"
                    );
                }
                (true, other) => {
                    panic!("{what} is described as needing a session, but answered {other:?}")
                }
                (false, Err(ClientError::Remote { name, .. })) => {
                    // Refused input (`{}` is not every route's) is fine; a refused session or route is not.
                    assert!(
                        name != "UnauthorizedError" && name != "NotFoundError",
                        "{what}: {name}"
                    );
                }
                (false, Err(other)) => panic!("{what}: {other}"),
                (false, Ok(reply)) => {
                    let frame = Value::Object(reply.frame().clone());
                    let keys: Vec<&str> = reply.frame().keys().map(String::as_str).collect();
                    match route.message.reply.shape {
                        ReplyShape::None => assert_eq!(frame, json!({ p: v }), "{what}"),
                        ReplyShape::Result => {
                            assert!(
                                keys.len() == 2 && keys.contains(&"result"),
                                "{what}: {frame}"
                            )
                        }
                        ReplyShape::Merged | ReplyShape::Dynamic => {}
                    }
                }
            }
            checked += 1;
            client.close().await;
        }
    }
    assert!(checked > 25, "only {checked} routes checked");
}
