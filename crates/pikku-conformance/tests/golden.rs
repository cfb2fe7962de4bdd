//! The golden scenarios of the wire protocol (`docs/protocol.md`), one test per scenario (`row_01_…` to
//! `row_57_…`), each over a real socket against its own fixture server, driven by clients independent of the
//! server's codec (see `support`).
//!
//! Conventions: unless a test says otherwise it uses a fresh connection to `/events` whose initial
//! `txt hello!` was read ([`events`]); `auth()` logs in with the fixture's valid token, and `sentinel()` sends an
//! `echoIn` whose reply must be the very next frame, which proves nothing was sent before it. Frames are compared
//! exactly: JSON as values, `txt` frames byte for byte; `"<any>"` stands for `errorId` and
//! `details[].message`. Many rows end with an extra sentinel to prove that no stray frame followed.
//!
//! Run one row with `cargo test -p pikku-conformance row_17`.

mod support;

use std::time::{Duration, Instant};

use pikku_conformance::{Disconnect, FixtureSettings, StoreKind, TestServer};
use serde_json::{json, Value};
use support::{assert_refusal, raw_upgrade, timing_lock, Client, Frame, RawWs, ANY, WAIT};

// ---------------------------------------------------------------------------------------------------------
// Fixture helpers
// ---------------------------------------------------------------------------------------------------------

/// A fresh connection to `/events` with the onConnect frame `txt hello!` already read.
async fn events(srv: &TestServer) -> Client {
    let mut client = Client::connect(&srv.url("/events")).await;
    client.expect_text("hello!").await;
    client
}

/// A fresh `/events` connection, logged in.
async fn authed(srv: &TestServer, label: &str) -> Client {
    let mut client = events(srv).await.named(label);
    client.auth().await;
    client
}

/// The setup of rows 35–40: a connection that logged in and subscribed to `news`.
async fn news_subscriber(srv: &TestServer, label: &str) -> Client {
    let mut client = authed(srv, label).await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(json!({"action": "sub"})).await;
    client
}

/// The single frame that answers `sub` without a session (row 17, reused by 19–21 and 54).
fn unauthorized_sub() -> Value {
    json!({"action": "sub", "error": "Unauthorized for route 'action:sub'", "errorName": "UnauthorizedError"})
}

/// The validation error frame of row 26 (also row 49).
fn greet_invalid() -> Value {
    json!({
        "error": "Invalid message data",
        "errorName": "UnprocessableContentError",
        "details": [{"path": "", "message": ANY}]
    })
}

/// The `pikku-rpc-request` the fixture's `rev` route sends (row 41), with the given id.
fn rev_request(id: &str) -> Value {
    json!({"action": "pikku-rpc-request", "id": id, "funcName": "clientThing", "data": {"q": 1}})
}

/// A successful reverse-RPC response from the client for call `id`.
fn rpc_ok(id: &str) -> Value {
    json!({"action": "pikku-rpc-response", "id": id, "ok": true, "result": {"answer": 42}})
}

/// Waits until at least `n` disconnects are recorded, then checks that no extra one shows up shortly after
/// (onDisconnect runs exactly once per connection). Returns exactly `n` records.
async fn disconnects(srv: &TestServer, n: usize) -> Vec<Disconnect> {
    let got = srv.recorder().wait_for_disconnects(n, WAIT).await;
    assert!(
        got.len() >= n,
        "expected {n} disconnect(s) within {WAIT:?}, got {got:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = srv.recorder().disconnects();
    assert_eq!(
        all.len(),
        n,
        "onDisconnect must run exactly once per connection: {all:?}"
    );
    all
}

/// Checks one disconnect record's channel name and reason.
#[track_caller]
fn assert_disconnect(record: &Disconnect, channel: &str, reason: &str) {
    assert_eq!(record.channel, channel, "{record:?}");
    assert_eq!(record.reason, reason, "{record:?}");
    assert!(!record.channel_id.is_empty(), "{record:?}");
}

// ---------------------------------------------------------------------------------------------------------
// upgrade (rows 1–8)
// ---------------------------------------------------------------------------------------------------------

async fn row_01_unknown_path_404() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let response = raw_upgrade(srv.addr(), "/nope", &[]).await;
    let expected =
        json!({"name": "NotFoundError", "message": "Channel not found: /nope", "errorId": ANY});
    assert_refusal(&response, 404, &expected);
}

async fn row_02_rooms_opening_data() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = Client::connect(&srv.url("/rooms/abc?limit=5")).await;
    client
        .expect_json(json!({"opening": {"roomId": "abc", "limit": 5}}))
        .await;
    // The only route of `rooms`: its reply being next proves onConnect sent nothing else.
    client.send_json(json!({"action": "info"})).await;
    client
        .expect_json(json!({"roomId": "abc", "action": "info"}))
        .await;
}

async fn row_03_query_last_wins_and_same_value_merge() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut repeated = Client::connect(&srv.url("/rooms/abc?limit=1&limit=7")).await;
    repeated
        .expect_json(json!({"opening": {"roomId": "abc", "limit": 7}}))
        .await;
    let mut same = Client::connect(&srv.url("/rooms/abc?roomId=abc")).await;
    same.expect_json(json!({"opening": {"roomId": "abc"}}))
        .await;
}

async fn row_04_conflicting_key_422() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let response = raw_upgrade(srv.addr(), "/rooms/abc?roomId=zzz", &[]).await;
    let expected = json!({
        "name": "UnprocessableContentError",
        "message": "Conflicting values for key 'roomId'",
        "errorId": ANY
    });
    assert_refusal(&response, 422, &expected);
}

async fn row_05_invalid_opening_data_422() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let response = raw_upgrade(srv.addr(), "/rooms/abc?limit=abc", &[]).await;
    let expected = json!({
        "name": "UnprocessableContentError",
        "message": "Invalid opening data",
        "errorId": ANY,
        "details": [{"path": "/limit", "message": ANY}]
    });
    assert_refusal(&response, 422, &expected);
}

async fn row_06_secure_without_token_401() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let response = raw_upgrade(srv.addr(), "/secure", &[]).await;
    let expected =
        json!({"name": "UnauthorizedError", "message": "Missing or invalid token", "errorId": ANY});
    assert_refusal(&response, 401, &expected);
}

async fn row_07_secure_banned_403() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let response = raw_upgrade(srv.addr(), "/secure", &[("Authorization", "Bearer banned")]).await;
    let expected = json!({"name": "ForbiddenError", "message": "Account disabled", "errorId": ANY});
    assert_refusal(&response, 403, &expected);
}

async fn row_08_secure_session_visible_in_on_connect() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client =
        Client::connect_with_headers(&srv.url("/secure"), &[("Authorization", "Bearer good")])
            .await;
    client.expect_json(json!({"user": "u2"})).await;
}

// ---------------------------------------------------------------------------------------------------------
// connect (rows 9–10)
// ---------------------------------------------------------------------------------------------------------

async fn row_09_on_connect_precedes_first_reply() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = Client::connect(&srv.url("/events")).await;
    // Sent before reading anything: onConnect's frame must still come first.
    client.send_json(json!({"action": "echoIn", "a": 1})).await;
    client.expect_text("hello!").await;
    client
        .expect_json(json!({"got": {"a": 1}, "action": "echoIn"}))
        .await;
}

async fn row_10_on_connect_error_keeps_socket_open() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = Client::connect(&srv.url("/rooms/fail")).await;
    client.send_json(json!({"action": "info"})).await;
    client
        .expect_json(json!({"error": "Room is closed", "errorName": "ForbiddenError"}))
        .await;
    client
        .expect_json(json!({"roomId": "fail", "action": "info"}))
        .await;
}

// ---------------------------------------------------------------------------------------------------------
// reply shapes (rows 11–14)
// ---------------------------------------------------------------------------------------------------------

async fn row_11_only_matched_key_stripped() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client
        .send_json(json!({"action": "echoIn", "a": 1, "type": "x"}))
        .await;
    client
        .expect_json(json!({"got": {"a": 1, "type": "x"}, "action": "echoIn"}))
        .await;
    client.sentinel().await;
}

async fn row_12_object_and_no_output_replies() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "obj"})).await;
    client.expect_json(json!({"n": 1, "action": "obj"})).await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(json!({"action": "sub"})).await;
    client.sentinel().await;
}

async fn row_13_primitive_and_array_results_wrapped() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.send_json(json!({"action": "prim"})).await;
    client
        .expect_json(json!({"action": "prim", "result": "valid"}))
        .await;
    client.send_json(json!({"action": "arr"})).await;
    client
        .expect_json(json!({"action": "arr", "result": [1, 2]}))
        .await;
    client.sentinel().await;
}

async fn row_14_null_result_and_routing_member_clash() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.send_json(json!({"action": "maybe"})).await;
    client
        .expect_json(json!({"action": "maybe", "result": null}))
        .await;
    client.send_json(json!({"action": "clash"})).await;
    client.expect_json(json!({"action": "clash", "x": 1})).await;
    client.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// routing (rows 15–16)
// ---------------------------------------------------------------------------------------------------------

async fn row_15_first_declared_property_wins() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client
        .send_json(json!({"action": "echoIn", "type": "ping"}))
        .await;
    client
        .expect_json(json!({"got": {"type": "ping"}, "action": "echoIn"}))
        .await;
    client.sentinel().await;
}

async fn row_16_unregistered_or_non_string_property_skipped() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client
        .send_json(json!({"action": "nosuch", "type": "ping"}))
        .await;
    client
        .expect_json(json!({"pong": true, "type": "ping"}))
        .await;
    client.send_json(json!({"action": 5, "type": "ping"})).await;
    client
        .expect_json(json!({"pong": true, "type": "ping"}))
        .await;
    client.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// auth (rows 17–21)
// ---------------------------------------------------------------------------------------------------------

async fn row_17_unauthorized_route_single_frame() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(unauthorized_sub()).await;
    client.sentinel().await;
}

async fn row_18_unauthorized_default_route() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.send_json(json!({"hello": 1})).await;
    let expected = json!({"error": "Unauthorized for the default message route", "errorName": "UnauthorizedError"});
    client.expect_json(expected).await;
    client.sentinel().await;
}

async fn row_19_failed_auth_sets_no_session() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client
        .send_json(json!({"action": "auth", "token": "nope"}))
        .await;
    client
        .expect_json(json!({"authResult": false, "action": "auth"}))
        .await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(unauthorized_sub()).await;
    client.sentinel().await;
}

async fn row_20_session_applies_from_next_message() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(unauthorized_sub()).await;
    client
        .send_json(json!({"action": "auth", "token": "valid"}))
        .await;
    client
        .expect_json(json!({"authResult": true, "action": "auth"}))
        .await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(json!({"action": "sub"})).await;
    client.send_json(json!({"action": "whoami"})).await;
    client
        .expect_json(json!({"action": "whoami", "result": "u1"}))
        .await;
    client.sentinel().await;
}

async fn row_21_logout_clears_session() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "logout"})).await;
    client.expect_json(json!({"action": "logout"})).await;
    client.send_json(json!({"action": "whoami"})).await;
    client
        .expect_json(json!({"action": "whoami", "result": null}))
        .await;
    client
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    client.expect_json(unauthorized_sub()).await;
    client.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// default handler (rows 22–27)
// ---------------------------------------------------------------------------------------------------------

async fn row_22_default_handler_inputs() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"hello": 1})).await;
    client
        .expect_json(json!({"defaultGot": {"hello": 1}}))
        .await;
    client.send_text("\"hello\"").await;
    client.expect_json(json!({"defaultGot": "hello"})).await;
    client.send_text("not json").await;
    client.expect_json(json!({"defaultGot": "not json"})).await;
    client.sentinel().await;
}

async fn row_23_unknown_route_goes_to_default() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "nosuch", "z": 1})).await;
    client
        .expect_json(json!({"defaultGot": {"action": "nosuch", "z": 1}}))
        .await;
    client.sentinel().await;
}

async fn row_24_builtin_names_are_not_routes() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    for name in ["constructor", "__proto__", "hasOwnProperty"] {
        let message = json!({"action": name});
        client.send_json(message.clone()).await;
        client.expect_json(json!({"defaultGot": message})).await;
    }
    client.sentinel().await;
}

async fn row_25_non_object_json_to_default() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_text("[1,2]").await;
    client.expect_json(json!({"defaultGot": [1, 2]})).await;
    client.send_text("42").await;
    client.expect_json(json!({"defaultGot": 42})).await;
    client.send_text("null").await;
    client.expect_json(json!({"defaultGot": null})).await;
    client.sentinel().await;
}

async fn row_26_greet_raw_strings_and_validation() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = Client::connect(&srv.url("/greet")).await;
    client.send_text("hi!").await;
    client.expect_text("hello").await;
    client.send_text("\"hey\"").await;
    client.expect_text("ola").await;
    client.send_text("yo").await;
    client.expect_json(greet_invalid()).await;
}

async fn row_27_no_default_handler_not_found() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = Client::connect(&srv.url("/rooms/abc")).await;
    client
        .expect_json(json!({"opening": {"roomId": "abc"}}))
        .await;
    for name in ["nosuch", "constructor"] {
        client.send_json(json!({"action": name})).await;
        let error = format!("No route for 'action:{name}'");
        client
            .expect_json(json!({"action": name, "error": error, "errorName": "NotFoundError"}))
            .await;
    }
    client.send_json(json!({"x": 1})).await;
    client
        .expect_json(json!({"error": "No default message route", "errorName": "NotFoundError"}))
        .await;
}

// ---------------------------------------------------------------------------------------------------------
// validation and errors (rows 28–31)
// ---------------------------------------------------------------------------------------------------------

async fn row_28_validation_details() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    let invalid = json!({
        "action": "create",
        "error": "Invalid message data",
        "errorName": "UnprocessableContentError",
        "details": [{"path": "/title", "message": ANY}]
    });
    client
        .send_json(json!({"action": "create", "title": 5}))
        .await;
    client.expect_json(invalid.clone()).await;
    client.send_json(json!({"action": "create"})).await;
    client.expect_json(invalid).await;
    client
        .send_json(json!({"action": "create", "title": "x"}))
        .await;
    client
        .expect_json(json!({"id": 1, "title": "x", "action": "create"}))
        .await;
    client.sentinel().await;
}

async fn row_29_client_error_from_handler() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "forbid"})).await;
    client.expect_json(json!({"action": "forbid", "error": "Permission denied", "errorName": "ForbiddenError"})).await;
    client.sentinel().await;
}

async fn row_30_internal_error_does_not_close() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "boom"})).await;
    let expected = json!({"action": "boom", "error": "Internal server error", "errorName": "InternalServerError"});
    client.expect_json(expected).await;
    client.send_json(json!({"action": "obj"})).await;
    client.expect_json(json!({"n": 1, "action": "obj"})).await;
    client.sentinel().await;
}

async fn row_31_panic_isolated() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = authed(&srv, "A").await;
    let mut b = events(&srv).await.named("B");
    a.send_json(json!({"action": "panic"})).await;
    let expected = json!({"action": "panic", "error": "Internal server error", "errorName": "InternalServerError"});
    a.expect_json(expected).await;
    a.sentinel().await;
    b.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// binary (rows 32–33)
// ---------------------------------------------------------------------------------------------------------

async fn row_32_binary_handler_reverses() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_binary(&[1, 2, 3]).await;
    client.expect_binary(&[3, 2, 1]).await;
    client.sentinel().await;
}

async fn row_33_binary_dropped_without_session_or_handler() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.send_binary(&[1, 2, 3]).await;
    client.sentinel().await;

    let mut greet = Client::connect(&srv.url("/greet")).await.named("greet");
    greet.send_binary(&[1]).await;
    greet.send_text("hi!").await;
    greet.expect_text("hello").await;
}

// ---------------------------------------------------------------------------------------------------------
// socket state (row 34)
// ---------------------------------------------------------------------------------------------------------

async fn row_34_socket_state_per_connection() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut first = authed(&srv, "first").await;
    first.send_json(json!({"action": "count"})).await;
    first
        .expect_json(json!({"action": "count", "result": 1}))
        .await;
    first.send_json(json!({"action": "count"})).await;
    first
        .expect_json(json!({"action": "count", "result": 2}))
        .await;
    first.close(1000).await;

    let mut second = authed(&srv, "second").await;
    second.send_json(json!({"action": "count"})).await;
    second
        .expect_json(json!({"action": "count", "result": 1}))
        .await;
}

// ---------------------------------------------------------------------------------------------------------
// event hub (rows 35–40)
// ---------------------------------------------------------------------------------------------------------

async fn row_35_emit_excludes_publisher() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = news_subscriber(&srv, "A").await;
    let mut b = news_subscriber(&srv, "B").await;
    a.send_json(json!({"action": "emit", "topic": "news", "data": {"hi": 1}}))
        .await;
    a.expect_json(json!({"action": "emit"})).await;
    a.sentinel().await;
    b.expect_json(json!({"topic": "news", "data": {"hi": 1}}))
        .await;
    b.sentinel().await;
}

async fn row_36_emit_all_reaches_publisher_before_reply() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = news_subscriber(&srv, "A").await;
    let mut b = news_subscriber(&srv, "B").await;
    a.send_json(json!({"action": "emitAll", "topic": "news", "data": {"hi": 2}}))
        .await;
    a.expect_json(json!({"topic": "news", "data": {"hi": 2}}))
        .await;
    a.expect_json(json!({"action": "emitAll"})).await;
    b.expect_json(json!({"topic": "news", "data": {"hi": 2}}))
        .await;
    a.sentinel().await;
    b.sentinel().await;
}

async fn row_37_double_subscribe_delivers_once() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = news_subscriber(&srv, "A").await;
    let mut b = news_subscriber(&srv, "B").await;
    a.send_json(json!({"action": "sub", "topic": "news"})).await;
    a.expect_json(json!({"action": "sub"})).await;
    b.send_json(json!({"action": "emitAll", "topic": "news", "data": {"hi": 3}}))
        .await;
    b.expect_json(json!({"topic": "news", "data": {"hi": 3}}))
        .await;
    b.expect_json(json!({"action": "emitAll"})).await;
    // B's reply came after the publish returned, so A's copies are queued by now: exactly one, then the sentinel.
    a.expect_json(json!({"topic": "news", "data": {"hi": 3}}))
        .await;
    a.sentinel().await;
}

async fn row_38_unsubscribe_stops_delivery() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = news_subscriber(&srv, "A").await;
    let mut b = news_subscriber(&srv, "B").await;
    b.send_json(json!({"action": "unsub", "topic": "news"}))
        .await;
    b.expect_json(json!({"action": "unsub"})).await;
    a.send_json(json!({"action": "emitAll", "topic": "news", "data": {"hi": 4}}))
        .await;
    a.expect_json(json!({"topic": "news", "data": {"hi": 4}}))
        .await;
    a.expect_json(json!({"action": "emitAll"})).await;
    b.sentinel().await;
}

async fn row_39_closed_subscriber_removed() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = news_subscriber(&srv, "A").await;
    let mut b = news_subscriber(&srv, "B").await;
    b.close(1000).await;
    let records = disconnects(&srv, 1).await;
    assert_disconnect(&records[0], "events", "client_closed");

    a.send_json(json!({"action": "emitAll", "topic": "news", "data": {"hi": 5}}))
        .await;
    a.expect_json(json!({"topic": "news", "data": {"hi": 5}}))
        .await;
    a.expect_json(json!({"action": "emitAll"})).await;
    assert_eq!(
        srv.count_subscribers("news").await,
        1,
        "subscribers of news after B closed"
    );

    let mut c = authed(&srv, "C").await;
    c.sentinel().await;
    a.sentinel().await;
}

async fn row_40_raw_text_and_binary_events() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = news_subscriber(&srv, "A").await;
    let mut b = news_subscriber(&srv, "B").await;
    a.send_json(json!({"action": "emitRaw", "topic": "news", "text": "ping"}))
        .await;
    // A is subscribed too and emitRaw publishes to everyone: its copy precedes its reply (the hub queues local
    // deliveries before `publish` returns).
    a.expect_text("ping").await;
    a.expect_json(json!({"action": "emitRaw"})).await;
    a.send_json(json!({"action": "emitRaw", "topic": "news", "bytes": [9, 8]}))
        .await;
    a.expect_binary(&[9, 8]).await;
    a.expect_json(json!({"action": "emitRaw"})).await;
    b.expect_text("ping").await;
    b.expect_binary(&[9, 8]).await;
    b.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// reverse RPC (rows 41–47); the fixture's RPC timeout is 200 ms, so the rows that wait on it hold the
// timing lock
// ---------------------------------------------------------------------------------------------------------

async fn row_41_rpc_success() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("1")).await;
    client.send_json(rpc_ok("1")).await;
    client
        .expect_json(json!({"remoteSaid": {"answer": 42}, "action": "rev"}))
        .await;
    client.sentinel().await;
}

async fn row_42_rpc_pending_suspends_timeout() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("1")).await;
    client
        .send_json(json!({"action": "pikku-rpc-pending", "id": "1", "reason": "asking"}))
        .await;
    client.expect_silence(Duration::from_millis(500)).await;
    client.send_json(rpc_ok("1")).await;
    client
        .expect_json(json!({"remoteSaid": {"answer": 42}, "action": "rev"}))
        .await;
    client.sentinel().await;
}

async fn row_43_rpc_timeout_and_next_id() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    let started = Instant::now();
    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("1")).await;
    let timed_out = json!({
        "action": "rev",
        "error": "Remote call 'clientThing' timed out",
        "errorName": "ChannelRPCError"
    });
    client.expect_json(timed_out).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed <= Duration::from_secs(2),
        "timeout error after {elapsed:?}, expected about 200 ms"
    );
    assert!(
        srv.recorder()
            .rpc_failures()
            .contains(&"timeout".to_owned()),
        "{:?}",
        srv.recorder().rpc_failures()
    );

    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("2")).await;
    client.send_json(rpc_ok("2")).await;
    client
        .expect_json(json!({"remoteSaid": {"answer": 42}, "action": "rev"}))
        .await;
    client.sentinel().await;
}

async fn row_44_rpc_remote_error() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("1")).await;
    client
        .send_json(json!({
            "action": "pikku-rpc-response",
            "id": "1",
            "ok": false,
            "error": {"name": "RPCDeniedError", "message": "\"clientThing\" was not approved"}
        }))
        .await;
    let expected = json!({"action": "rev", "error": "\"clientThing\" was not approved", "errorName": "ChannelRPCError"});
    client.expect_json(expected).await;
    client.sentinel().await;
}

async fn row_45_stray_and_invalid_rpc_envelopes() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    client
        .send_json(json!({"action": "pikku-rpc-response", "id": "99", "ok": true}))
        .await;
    client
        .send_json(json!({"action": "pikku-rpc-pending", "id": "98"}))
        .await;
    client.sentinel().await;
    let invalid = json!({"action": "pikku-rpc-response", "id": "", "ok": true});
    client.send_json(invalid.clone()).await;
    client.expect_json(json!({"defaultGot": invalid})).await;
    client.sentinel().await;
}

async fn row_46_rpc_response_bypasses_queue() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("1")).await;
    // Queued behind the waiting `rev`; the response must still reach it (reverse-RPC answers skip the
    // queue).
    client.send_json(json!({"action": "echoIn", "a": 1})).await;
    client.send_json(rpc_ok("1")).await;
    client
        .expect_json(json!({"remoteSaid": {"answer": 42}, "action": "rev"}))
        .await;
    client
        .expect_json(json!({"got": {"a": 1}, "action": "echoIn"}))
        .await;
    client.sentinel().await;
}

async fn row_47_close_fails_pending_rpc() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = authed(&srv, "client").await;
    client.send_json(json!({"action": "rev"})).await;
    client.expect_json(rev_request("1")).await;
    // `close` requires the echo as the very next frame: no reply to `rev` is sent.
    client.close(1000).await;
    let records = disconnects(&srv, 1).await;
    assert_disconnect(&records[0], "events", "client_closed");
    let failures = srv.recorder().rpc_failures();
    assert!(
        failures.contains(&"closed".to_owned()),
        "rpc failures: {failures:?}"
    );
    // No panic took the server down: a new connection works.
    let mut other = events(&srv).await.named("other");
    other.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// ordering (row 48)
// ---------------------------------------------------------------------------------------------------------

async fn row_48_replies_in_request_order() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "slow"})).await;
    client.send_json(json!({"action": "fast"})).await;
    client
        .expect_json(json!({"n": "slow", "action": "slow"}))
        .await;
    client
        .expect_json(json!({"n": "fast", "action": "fast"}))
        .await;
    client.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// limits (rows 49–50)
// ---------------------------------------------------------------------------------------------------------

async fn row_49_frame_size_limit() {
    let _serial = timing_lock().await;
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut bystander = events(&srv).await.named("bystander");
    let mut client = Client::connect(&srv.url("/greet")).await;

    client.send_text(&"a".repeat(1024 * 1024)).await;
    let frame = client.next_frame().await;
    let Frame::Text(text) = &frame else {
        panic!("expected the validation error frame, got {frame:?}")
    };
    let value: Value = serde_json::from_str(text).expect("JSON error frame");
    support::assert_json_matches(&value, &greet_invalid());
    let message = value["details"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.chars().count() <= 200,
        "details message not capped at 200 characters: {} chars",
        message.len()
    );

    // The server may start closing before it has read the whole frame, so a failed write is not yet an error;
    // the close frame is what counts.
    let _ = client.try_send_text(&"a".repeat(1024 * 1024 + 1)).await;
    client.expect_close_with(1009, "message too big").await;
    let records = disconnects(&srv, 1).await;
    assert_disconnect(&records[0], "greet", "message_too_big");
    // The oversized frame affected only its own connection.
    bystander.sentinel().await;
}

async fn row_50_invalid_utf8_closes_1007() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut bystander = events(&srv).await.named("bystander");
    let mut raw = RawWs::connect(srv.addr(), "/events").await;
    raw.expect_text("hello!").await;
    raw.send_text_bytes(&[0xC3, 0x28]).await;
    raw.expect_close_with(1007, "invalid utf-8").await;
    raw.send_close(1007).await;
    let records = disconnects(&srv, 1).await;
    assert_disconnect(&records[0], "events", "invalid_utf8");
    // The malformed frame affected only its own connection.
    bystander.sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------
// empty frames, close, unicode, reconnect (rows 51–54)
// ---------------------------------------------------------------------------------------------------------

async fn row_51_empty_frames() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_text("").await;
    client.sentinel().await;
    client.send_json(json!({"action": "sendEmpty"})).await;
    client.expect_text("\"\"").await;
    client.expect_json(json!({"action": "sendEmpty"})).await;
    client.sentinel().await;
}

async fn row_52_server_close_flushes_then_closes() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client.send_json(json!({"action": "bye"})).await;
    client.expect_text("bye").await;
    client.expect_close(1000).await;
    client.expect_end().await;
    let records = disconnects(&srv, 1).await;
    assert_disconnect(&records[0], "events", "server_closed");
}

async fn row_53_unicode_round_trip() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut client = events(&srv).await;
    client.auth().await;
    client
        .send_json(json!({"action": "echoIn", "t": "héllo ✓ 😀"}))
        .await;
    client
        .expect_json(json!({"got": {"t": "héllo ✓ 😀"}, "action": "echoIn"}))
        .await;
    client.sentinel().await;
}

async fn row_54_session_does_not_survive_reconnect() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut first = authed(&srv, "first").await;
    first.close(1000).await;

    let mut second = events(&srv).await.named("second");
    second
        .send_json(json!({"action": "sub", "topic": "news"}))
        .await;
    second.expect_json(unauthorized_sub()).await;
    second.close(1000).await;

    let records = disconnects(&srv, 2).await;
    assert_disconnect(&records[0], "events", "client_closed");
    assert_disconnect(&records[1], "events", "client_closed");
    assert_ne!(
        records[0].channel_id, records[1].channel_id,
        "a reconnect must get a new channelId"
    );
}

// ---------------------------------------------------------------------------------------------------------
// shutdown, idle, slow consumer (rows 55–57)
// ---------------------------------------------------------------------------------------------------------

async fn row_55_shutdown_going_away_and_503() {
    let srv = TestServer::start(FixtureSettings::test()).await;
    let mut a = events(&srv).await.named("A");
    let mut b = events(&srv).await.named("B");
    let unavailable = json!({"name": "ServiceUnavailableError", "message": "Server is shutting down", "errorId": ANY});

    let clients = async {
        a.expect_close_with(1001, "going away").await;
        // A got its close, so the shutdown window is open: new upgrades are refused.
        let during = raw_upgrade(srv.addr(), "/events", &[]).await;
        assert_refusal(&during, 503, &unavailable);
        b.expect_close_with(1001, "going away").await;
    };
    let shutdown = tokio::time::timeout(Duration::from_secs(30), srv.begin_shutdown());
    let (finished, ()) = tokio::join!(shutdown, clients);
    finished.expect("begin_shutdown did not finish within 30 s");

    let records = disconnects(&srv, 2).await;
    assert_disconnect(&records[0], "events", "shutdown");
    assert_disconnect(&records[1], "events", "shutdown");
    assert_ne!(records[0].channel_id, records[1].channel_id);

    let after = raw_upgrade(srv.addr(), "/events", &[]).await;
    assert_refusal(&after, 503, &unavailable);
}

async fn row_56_idle_timeout() {
    let _serial = timing_lock().await;
    let mut settings = FixtureSettings::test();
    settings.ping_interval = Duration::from_millis(100);
    settings.idle_timeout = Duration::from_millis(300);
    let srv = TestServer::start(settings).await;

    // The raw client reads (so it can see the close) but never answers a ping.
    let mut raw = RawWs::connect(srv.addr(), "/events").await;
    raw.expect_text("hello!").await;
    let last_sent = Instant::now();
    raw.send_json(json!({"action": "echoIn", "s": 1})).await;
    raw.expect_json(json!({"got": {"s": 1}, "action": "echoIn"}))
        .await;
    raw.expect_close_with(1001, "idle timeout").await;
    let elapsed = last_sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed <= Duration::from_secs(2),
        "idle close {elapsed:?} after the client's last frame, expected about 300 ms"
    );
    assert!(
        raw.pings_seen >= 1,
        "the server sent no ping within the idle timeout"
    );
    raw.send_close(1001).await;

    let records = disconnects(&srv, 1).await;
    assert_disconnect(&records[0], "events", "idle_timeout");
}

async fn row_57_slow_consumer_closed() {
    let _serial = timing_lock().await;
    let mut settings = FixtureSettings::test();
    settings.outbound_queue_bytes = 64 * 1024;
    let srv = TestServer::start(settings).await;
    let mut bystander = events(&srv).await.named("bystander");

    let mut raw = RawWs::connect(srv.addr(), "/events").await;
    raw.expect_text("hello!").await;
    raw.send_json(json!({"action": "auth", "token": "valid"}))
        .await;
    raw.expect_json(json!({"authResult": true, "action": "auth"}))
        .await;
    // 1500 × 16 KiB = 24 MiB, far more than loopback socket buffers hold; from here on the raw client
    // does not read until the server has given up on it.
    raw.send_json(json!({"action": "flood", "n": 1500})).await;

    let got = srv
        .recorder()
        .wait_for_disconnects(1, Duration::from_secs(30))
        .await;
    assert_eq!(
        got.len(),
        1,
        "expected the slow consumer's disconnect, got {got:?}"
    );
    assert_disconnect(&got[0], "events", "slow_consumer");

    // Other connections are unaffected.
    bystander.sentinel().await;

    // Drain what reached the socket: only text pushes, then, if the socket took it, close 1008 and nothing
    // after it.
    let drained = async {
        loop {
            match raw.next_frame().await {
                Frame::Text(_) => continue,
                Frame::Close(close) => {
                    assert_eq!(
                        close,
                        Some((1008, "slow consumer".to_owned())),
                        "slow-consumer close frame"
                    );
                    raw.send_close(1008).await;
                    match raw.next_frame().await {
                        Frame::Ended(_) => {}
                        other => panic!("frame after the close frame: {other:?}"),
                    }
                    break;
                }
                Frame::Ended(_) => break,
                other => panic!("unexpected frame while draining the flood: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), drained)
        .await
        .expect("draining the slow consumer's socket");
    assert_eq!(
        srv.recorder().disconnects().len(),
        1,
        "{:?}",
        srv.recorder().disconnects()
    );
}

// ---------------------------------------------------------------------------------------------------------
// The tests: every row against the embedded server, and the rows of stateless serving behind Pushpin once per
// store. Stateless serving leaves out reverse RPC (unsupported there), and the frame-size, idle, slow-consumer
// and shutdown rows, whose limits and timers are the gateway's.
// ---------------------------------------------------------------------------------------------------------

/// Every row against the embedded server (module `embedded`), and the `both` rows also statelessly behind
/// Pushpin, once per store (`stateless_redis`, `stateless_postgres`).
macro_rules! golden_rows {
    (both: [$($both:ident),* $(,)?]; embedded_only: [$($only:ident),* $(,)?]) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $both() {
                    super::$both().await;
                }
            )*
            $(
                #[tokio::test]
                async fn $only() {
                    super::$only().await;
                }
            )*
        }
        golden_rows!(@stateless stateless_redis: super::StoreKind::local_redis(); $($both),*);
        golden_rows!(@stateless stateless_postgres: super::StoreKind::local_postgres(); $($both),*);
    };
    (@stateless $module:ident: $store:expr; $($row:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $row() {
                    pikku_conformance::serving_statelessly($store, super::$row()).await;
                }
            )*
        }
    };
}

golden_rows!(
    both: [
        row_01_unknown_path_404,
        row_02_rooms_opening_data,
        row_03_query_last_wins_and_same_value_merge,
        row_04_conflicting_key_422,
        row_05_invalid_opening_data_422,
        row_06_secure_without_token_401,
        row_07_secure_banned_403,
        row_08_secure_session_visible_in_on_connect,
        row_09_on_connect_precedes_first_reply,
        row_10_on_connect_error_keeps_socket_open,
        row_11_only_matched_key_stripped,
        row_12_object_and_no_output_replies,
        row_13_primitive_and_array_results_wrapped,
        row_14_null_result_and_routing_member_clash,
        row_15_first_declared_property_wins,
        row_16_unregistered_or_non_string_property_skipped,
        row_17_unauthorized_route_single_frame,
        row_18_unauthorized_default_route,
        row_19_failed_auth_sets_no_session,
        row_20_session_applies_from_next_message,
        row_21_logout_clears_session,
        row_22_default_handler_inputs,
        row_23_unknown_route_goes_to_default,
        row_24_builtin_names_are_not_routes,
        row_25_non_object_json_to_default,
        row_26_greet_raw_strings_and_validation,
        row_27_no_default_handler_not_found,
        row_28_validation_details,
        row_29_client_error_from_handler,
        row_30_internal_error_does_not_close,
        row_31_panic_isolated,
        row_32_binary_handler_reverses,
        row_33_binary_dropped_without_session_or_handler,
        row_34_socket_state_per_connection,
        row_35_emit_excludes_publisher,
        row_36_emit_all_reaches_publisher_before_reply,
        row_37_double_subscribe_delivers_once,
        row_38_unsubscribe_stops_delivery,
        row_39_closed_subscriber_removed,
        row_40_raw_text_and_binary_events,
        row_48_replies_in_request_order,
        row_50_invalid_utf8_closes_1007,
        row_51_empty_frames,
        row_52_server_close_flushes_then_closes,
        row_53_unicode_round_trip,
        row_54_session_does_not_survive_reconnect,
    ];
    embedded_only: [
        row_41_rpc_success,
        row_42_rpc_pending_suspends_timeout,
        row_43_rpc_timeout_and_next_id,
        row_44_rpc_remote_error,
        row_45_stray_and_invalid_rpc_envelopes,
        row_46_rpc_response_bypasses_queue,
        row_47_close_fails_pending_rpc,
        row_49_frame_size_limit,
        row_55_shutdown_going_away_and_503,
        row_56_idle_timeout,
        row_57_slow_consumer_closed,
    ]
);
