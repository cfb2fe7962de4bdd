//! Inbound rate limits and the hub-wide subscription cap, over real sockets.
//!
//! Limits here are low and bursts small, and a test that must go over a limit writes all its frames in one
//! write, so the outcome never depends on how fast the machine is: the bucket refills by at most one message in
//! the time the test takes between two writes.
//!
//! A refusal is answered as the frame arrives, so its error frame may overtake the replies to messages accepted
//! just before it; tests that mix the two compare the frames as a multiset.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pikku_core::{
    App, AppConfig, Channel, ChannelError, ChannelRoute, ClosedChannel, Ctx, HubLimits, Params,
    RateLimit, Route,
};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{assert_json_matches, client_frame, RawWs, MASK};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server on 127.0.0.1:0; stops serving when dropped.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(app: App<Services, ()>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ChannelServer::new(app, ServerConfig::default());
    tokio::spawn(server.serve_until(listener, async move {
        let _ = stopped.await;
    }));
    Server { addr, _stop: stop }
}

/// What the handlers record.
#[derive(Clone, Default)]
struct Services {
    handled: Arc<AtomicUsize>,
    disconnects: Arc<Mutex<Vec<String>>>,
}

type C = Ctx<Services, ()>;

async fn echo(ctx: C, _ch: Channel<Params, ()>, input: Value) -> Value {
    ctx.state().handled.fetch_add(1, Ordering::SeqCst);
    input
}

async fn ack(ctx: C, _ch: Channel<Params, ()>, _input: Value) {
    ctx.state().handled.fetch_add(1, Ordering::SeqCst);
}

async fn reverse(ctx: C, _ch: Channel<Params, ()>, bytes: Bytes) -> Vec<u8> {
    ctx.state().handled.fetch_add(1, Ordering::SeqCst);
    bytes.iter().rev().copied().collect()
}

async fn join(ctx: C, ch: Channel<Params, ()>, input: Value) -> Result<(), ChannelError> {
    let topic = input["topic"].as_str().unwrap_or_default();
    Ok(ctx.hub().subscribe(topic, ch.channel_id()).await?)
}

async fn record_disconnect(ctx: C, ch: ClosedChannel<Params>) {
    ctx.state()
        .disconnects
        .lock()
        .unwrap()
        .push(ch.reason().to_string());
}

/// The text frames of `payloads`, masked, back to back: one write puts them all on the wire at once.
fn text_frames<'a>(payloads: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    payloads
        .into_iter()
        .flat_map(|p| client_frame(0x80 | op::TEXT, p.as_bytes(), Some(MASK)))
        .collect()
}

async fn expect_json(ws: &mut RawWs, expected: Value) {
    let (fin, opcode, payload) = ws.next_frame().await.expect("a frame");
    assert!(
        fin && opcode == op::TEXT,
        "expected text, got {opcode}: {payload:?}"
    );
    let value: Value = serde_json::from_slice(&payload).expect("JSON");
    assert_json_matches(&value, &expected);
}

async fn expect_close(ws: &mut RawWs, code: u16, reason: &str) {
    let (_, opcode, payload) = ws.next_frame().await.expect("a frame");
    assert_eq!(opcode, op::CLOSE, "expected close, got {payload:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
    assert_eq!(std::str::from_utf8(&payload[2..]).unwrap(), reason);
}

/// Reads `expected.len()` text frames and requires them to be `expected` in some order.
async fn expect_unordered(ws: &mut RawWs, mut expected: Vec<Value>) {
    while !expected.is_empty() {
        let (_, opcode, payload) = ws.next_frame().await.expect("a frame");
        assert_eq!(opcode, op::TEXT, "{payload:?}");
        let value: Value = serde_json::from_slice(&payload).expect("JSON");
        let at = expected
            .iter()
            .position(|e| *e == value)
            .unwrap_or_else(|| panic!("unexpected {value}; still expecting {expected:?}"));
        expected.swap_remove(at);
    }
}

fn limited() -> Value {
    json!({"error": "Rate limit exceeded", "errorName": "TooManyRequestsError"})
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + pikku_testkit::WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn over_a_route_limit_an_error_frame_then_a_1008_close() {
    let services = Services::default();
    let app = App::new(services.clone()).channel(
        ChannelRoute::new("chat", "/chat")
            .auth(false)
            .route(
                "action",
                "say",
                Route::new(ack).rate_limit(RateLimit::per_second(1).burst(3).close_after(3)),
            )
            .on_disconnect(record_disconnect),
    );
    let srv = serve(app).await;
    let mut ws = RawWs::connect(srv.addr, "/chat").await;
    let say = r#"{"action":"say","text":"hi"}"#;
    ws.write(&text_frames([say; 3])).await;
    for _ in 0..3 {
        expect_json(&mut ws, json!({"action": "say"})).await;
    }
    // The fourth is refused with an error frame naming the route; three more refusals close.
    ws.write(&text_frames([say; 4])).await;
    let mut refused = limited();
    refused["action"] = json!("say");
    expect_json(&mut ws, refused).await;
    expect_close(&mut ws, 1008, "rate limit exceeded").await;
    assert_eq!(services.handled.load(Ordering::SeqCst), 3);
    eventually("the disconnect", || {
        services.disconnects.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(*services.disconnects.lock().unwrap(), ["rate_limited"]);
}

#[tokio::test]
async fn a_client_within_its_limit_is_never_limited() {
    let services = Services::default();
    let app = App::new(services.clone()).channel(
        ChannelRoute::new("echo", "/echo")
            .auth(false)
            .on_message(echo)
            .rate_limit(RateLimit::per_second(40).burst(50)),
    );
    let srv = serve(app).await;
    let mut ws = RawWs::connect(srv.addr, "/echo").await;
    // A whole burst at once.
    let burst: Vec<String> = (0..50).map(|i| format!("{{\"n\":{i}}}")).collect();
    ws.write(&text_frames(burst.iter().map(String::as_str)))
        .await;
    for i in 0..50 {
        expect_json(&mut ws, json!({ "n": i })).await;
    }
    // Then steadily at a quarter of the rate, request by request.
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(0x80 | op::TEXT, format!("{{\"m\":{i}}}").as_bytes())
            .await;
        expect_json(&mut ws, json!({ "m": i })).await;
    }
    assert_eq!(services.handled.load(Ordering::SeqCst), 70);
}

#[tokio::test]
async fn a_route_limit_overrides_the_channel_limit() {
    let services = Services::default();
    let app = App::new(services.clone()).channel(
        ChannelRoute::new("events", "/events")
            .auth(false)
            .rate_limit(RateLimit::per_second(1).burst(2))
            .route("action", "slow", ack)
            .route(
                "action",
                "fast",
                Route::new(ack).rate_limit(RateLimit::per_second(1).burst(20)),
            )
            .route("action", "free", Route::new(ack).rate_limit(None)),
    );
    let srv = serve(app).await;
    let mut ws = RawWs::connect(srv.addr, "/events").await;
    // Twenty `fast` and thirty `free` at once: neither touches the channel's budget of two.
    let mut frames = vec![r#"{"action":"fast"}"#; 20];
    frames.extend([r#"{"action":"free"}"#; 30]);
    ws.write(&text_frames(frames)).await;
    for _ in 0..20 {
        expect_json(&mut ws, json!({"action": "fast"})).await;
    }
    for _ in 0..30 {
        expect_json(&mut ws, json!({"action": "free"})).await;
    }
    // The channel's limit: two pass, the third is refused; so is a 21st `fast`.
    let frames = [
        r#"{"action":"slow"}"#,
        r#"{"action":"slow"}"#,
        r#"{"action":"slow"}"#,
        r#"{"action":"fast"}"#,
        r#"{"action":"free"}"#,
    ];
    ws.write(&text_frames(frames)).await;
    let mut slow_refused = limited();
    slow_refused["action"] = json!("slow");
    let mut fast_refused = limited();
    fast_refused["action"] = json!("fast");
    expect_unordered(
        &mut ws,
        vec![
            json!({"action": "slow"}),
            json!({"action": "slow"}),
            slow_refused,
            fast_refused,
            json!({"action": "free"}),
        ],
    )
    .await;
    assert_eq!(services.handled.load(Ordering::SeqCst), 53);
}

#[tokio::test]
async fn bytes_per_second_are_limited_too() {
    let services = Services::default();
    let app = App::new(services.clone()).channel(
        ChannelRoute::new("echo", "/echo")
            .auth(false)
            .on_message(echo)
            .rate_limit(RateLimit::per_second(1000).bytes_per_second(100)),
    );
    let srv = serve(app).await;
    let mut ws = RawWs::connect(srv.addr, "/echo").await;
    let sixty = format!(r#"{{"p":"{}"}}"#, "a".repeat(52));
    let thirty = format!(r#"{{"p":"{}"}}"#, "b".repeat(22));
    assert_eq!((sixty.len(), thirty.len()), (60, 30));
    // 60 bytes pass, the next 60 would exceed the 100-byte burst, 30 more still fit.
    ws.write(&text_frames([
        sixty.as_str(),
        sixty.as_str(),
        thirty.as_str(),
    ]))
    .await;
    expect_unordered(
        &mut ws,
        vec![
            json!({"p": "a".repeat(52)}),
            limited(),
            json!({"p": "b".repeat(22)}),
        ],
    )
    .await;
    assert_eq!(services.handled.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn binary_frames_are_limited_at_arrival() {
    let services = Services::default();
    let app = App::new(services.clone()).channel(
        ChannelRoute::new("files", "/files")
            .auth(false)
            .on_binary(reverse)
            .rate_limit(RateLimit::per_second(1).burst(1).close_after(1)),
    );
    let srv = serve(app).await;
    let mut ws = RawWs::connect(srv.addr, "/files").await;
    let frames: Vec<u8> = [b"abc", b"def", b"ghi"]
        .iter()
        .flat_map(|p| client_frame(0x80 | op::BINARY, *p, Some(MASK)))
        .collect();
    ws.write(&frames).await;
    // The refusals close the connection at once; the one accepted frame may or may not have been handled by
    // then (a close drops what has not started), but nothing beyond it ran.
    let mut frames = Vec::new();
    loop {
        let (_, opcode, payload) = ws.next_frame().await.expect("a frame");
        if opcode == op::CLOSE {
            assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
            assert_eq!(&payload[2..], b"rate limit exceeded");
            break;
        }
        frames.push((opcode, payload));
    }
    let error = serde_json::to_vec(&limited()).unwrap();
    assert!(frames.contains(&(op::TEXT, error)), "{frames:?}");
    assert!(frames.len() <= 2, "{frames:?}");
    assert!(services.handled.load(Ordering::SeqCst) <= 1);
    // The same, a frame at a time: the first is answered, the second refused.
    let mut ws = RawWs::connect(srv.addr, "/files").await;
    ws.send(0x80 | op::BINARY, b"abc").await;
    let (_, opcode, payload) = ws.next_frame().await.expect("a frame");
    assert_eq!((opcode, payload.as_slice()), (op::BINARY, &b"cba"[..]));
    ws.send(0x80 | op::BINARY, b"def").await;
    expect_json(&mut ws, limited()).await;
}

#[tokio::test]
async fn a_flooder_is_closed_while_a_bystander_carries_on() {
    let services = Services::default();
    let app = App::new(services.clone()).configure(|c: &mut AppConfig| {
        // The app-wide default applies to channels without a limit of their own.
        c.rate_limit = Some(RateLimit::per_second(5).burst(10));
    });
    let app = app.channel(
        ChannelRoute::new("echo", "/echo")
            .auth(false)
            .on_message(echo),
    );
    let srv = serve(app).await;
    let mut bystander = RawWs::connect(srv.addr, "/echo").await;
    let mut flooder = RawWs::connect(srv.addr, "/echo").await;
    let flood: Vec<String> = (0..2000).map(|i| format!("{{\"flood\":{i}}}")).collect();
    flooder
        .write(&text_frames(flood.iter().map(String::as_str)))
        .await;
    bystander.send(0x80 | op::TEXT, br#"{"hello":1}"#).await;
    expect_json(&mut bystander, json!({"hello": 1})).await;
    // Ten echoes at most (the burst), one error frame, then the close.
    let mut echoes = 0;
    loop {
        let (_, opcode, payload) = flooder.next_frame().await.expect("a frame");
        let value: Value = serde_json::from_slice(&payload).expect("JSON");
        if value.get("flood").is_some() {
            echoes += 1;
            continue;
        }
        assert_eq!(opcode, op::TEXT);
        assert_json_matches(&value, &limited());
        break;
    }
    assert!(echoes <= 10, "{echoes}");
    expect_close(&mut flooder, 1008, "rate limit exceeded").await;
    // The bystander's budget is its own.
    bystander.send(0x80 | op::TEXT, br#"{"hello":2}"#).await;
    expect_json(&mut bystander, json!({"hello": 2})).await;
    assert!(services.handled.load(Ordering::SeqCst) <= 12);
}

#[tokio::test]
async fn the_hub_caps_subscriptions_over_all_connections() {
    let app = App::new(Services::default())
        .configure(|c: &mut AppConfig| {
            c.hub = HubLimits {
                max_subscriptions_total: 3,
                ..HubLimits::default()
            };
        })
        .channel(
            ChannelRoute::new("hub", "/hub")
                .auth(false)
                .route("action", "join", join),
        );
    let srv = serve(app).await;
    let mut a = RawWs::connect(srv.addr, "/hub").await;
    let mut b = RawWs::connect(srv.addr, "/hub").await;
    a.write(&text_frames([
        r#"{"action":"join","topic":"t1"}"#,
        r#"{"action":"join","topic":"t2"}"#,
    ]))
    .await;
    expect_json(&mut a, json!({"action": "join"})).await;
    expect_json(&mut a, json!({"action": "join"})).await;
    b.send(0x80 | op::TEXT, br#"{"action":"join","topic":"t3"}"#)
        .await;
    expect_json(&mut b, json!({"action": "join"})).await;
    b.send(0x80 | op::TEXT, br#"{"action":"join","topic":"t4"}"#)
        .await;
    expect_json(
        &mut b,
        json!({"action": "join", "error": "Too many subscriptions", "errorName": "BadRequestError"}),
    )
    .await;
    // Re-subscribing is idempotent even at the cap.
    b.send(0x80 | op::TEXT, br#"{"action":"join","topic":"t3"}"#)
        .await;
    expect_json(&mut b, json!({"action": "join"})).await;
    // A closing connection gives its subscriptions back.
    drop(a);
    let deadline = tokio::time::Instant::now() + pikku_testkit::WAIT;
    loop {
        b.send(0x80 | op::TEXT, br#"{"action":"join","topic":"t4"}"#)
            .await;
        let (_, _, payload) = b.next_frame().await.expect("a frame");
        let value: Value = serde_json::from_slice(&payload).expect("JSON");
        if value == json!({"action": "join"}) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{value}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
