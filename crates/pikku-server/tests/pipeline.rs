//! The message pipeline and the transport of the embedded server, over real sockets: a `ChannelServer` bound to
//! 127.0.0.1:0 and clients that do not share the server's codec (tokio-tungstenite, and a hand-written RFC 6455
//! client for what a well-behaved library refuses to send).
//!
//! Covered (see `docs/semantics.md` and `docs/protocol.md`): middleware order, permissions, validation with
//! `Valid<T>`, `max_in_flight`, the `Drop` slow-consumer policy, stale channel handles, upgrade refusals (origin,
//! path length, connection limit), protocol violations and their close codes, fragmentation, ping/pong,
//! subprotocol selection and the reverse-RPC `busy` limit.
//!
//! Every wait is bounded by [`WAIT`], which is generous on purpose: a correct server answers in milliseconds, and
//! no test asserts an upper bound on speed.

use pikku_testkit::eventually;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use pikku_core::middleware::{Middleware, Permission};
use pikku_core::{
    permission, App, AppConfig, Channel, ChannelError, ChannelRoute, ChannelState, ClientError,
    ClosedChannel, Ctx, MiddlewareCtx, Next, OriginPolicy, Params, PermissionCtx, Reply, Route,
    RpcFailure, SendError, SlowConsumerPolicy, Valid,
};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{
    assert_json_matches as assert_json, client_frame, json_mismatch, raw_upgrade, HttpResponse,
    RawWs, ANY, MASK,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long we wait for something that must happen.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------------

/// A server on 127.0.0.1:0; stops serving when dropped.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

async fn serve<S, U>(app: App<S, U>, config: ServerConfig) -> Server
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ChannelServer::new(app, config);
    tokio::spawn(server.serve_until(listener, async move {
        let _ = stopped.await;
    }));
    Server { addr, _stop: stop }
}

// ---------------------------------------------------------------------------------------------------------
// tokio-tungstenite client
// ---------------------------------------------------------------------------------------------------------

/// A data, close or control frame as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Ended(String),
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Text(t) if t.len() > 200 => write!(f, "Text([{} bytes])", t.len()),
            Frame::Binary(b) if b.len() > 64 => write!(f, "Binary([{} bytes])", b.len()),
            other => write!(f, "{other:?}"),
        }
    }
}

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    async fn connect(url: &str) -> Client {
        Client::connect_with(url, &[]).await.0
    }

    /// Connects with extra request headers; returns the client and the 101 response headers.
    async fn connect_with(
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> (Client, tokio_tungstenite::tungstenite::http::HeaderMap) {
        let mut request = url.into_client_request().expect("ws url");
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .unwrap_or_else(|_| panic!("upgrade of {url} timed out"))
            .unwrap_or_else(|e| panic!("upgrade of {url} failed: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        (Client { ws }, response.headers().clone())
    }

    async fn send(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.ws.send(message))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    async fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string())).await;
    }

    /// The next frame of any kind, pings and pongs included.
    async fn next_any(&mut self) -> Frame {
        let read = async {
            match self.ws.next().await {
                None => Frame::Ended("stream ended".into()),
                Some(Err(e)) => Frame::Ended(e.to_string()),
                Some(Ok(Message::Text(t))) => Frame::Text(t.to_string()),
                Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                Some(Ok(Message::Ping(p))) => Frame::Ping(p.to_vec()),
                Some(Ok(Message::Pong(p))) => Frame::Pong(p.to_vec()),
                Some(Ok(Message::Close(c))) => {
                    let _ = self.ws.flush().await;
                    Frame::Close(c.map(|c| (u16::from(c.code), c.reason.to_string())))
                }
                Some(Ok(Message::Frame(_))) => Frame::Ended("raw frame".into()),
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"))
    }

    /// The next data or close frame (pings and pongs skipped).
    async fn next(&mut self) -> Frame {
        loop {
            match self.next_any().await {
                Frame::Ping(_) | Frame::Pong(_) => continue,
                other => return other,
            }
        }
    }

    async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("expected JSON, got text {text:?}")),
            other => panic!("expected a JSON text frame, got {other}"),
        }
    }

    async fn expect_json(&mut self, expected: Value) {
        let actual = self.next_json().await;
        assert_json(&actual, &expected);
    }

    async fn expect_text(&mut self, text: &str) {
        match self.next().await {
            Frame::Text(t) if t == text => {}
            other => panic!("expected txt {text:?}, got {other}"),
        }
    }

    /// Sends `{"action":"echo","s":n}` and requires the echo as the very next frame.
    async fn sentinel(&mut self, n: u32) {
        self.send_json(json!({"action": "echo", "s": n})).await;
        self.expect_json(json!({"got": {"s": n}, "action": "echo"}))
            .await;
    }

    /// Closes with 1000 and requires the echo.
    async fn close(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        tokio::time::timeout(WAIT, self.ws.close(Some(frame)))
            .await
            .expect("close timed out")
            .expect("close failed");
        match self.next().await {
            Frame::Close(Some((1000, _))) => {}
            other => panic!("expected the close echo, got {other}"),
        }
    }
}

async fn echo(
    _ctx: Ctx<impl Send + Sync + 'static, ()>,
    _ch: Channel<Params, ()>,
    input: Value,
) -> Value {
    json!({ "got": input })
}

// ---------------------------------------------------------------------------------------------------------
// Raw HTTP and raw WebSocket
// ---------------------------------------------------------------------------------------------------------

/// Checks a refused upgrade: status, JSON content type, `Connection: close` and the body.
#[track_caller]
fn assert_refusal(response: &HttpResponse, status: u16, expected: &Value) {
    assert_eq!(response.status, status, "{response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{response:?}");
    let connection = response.header("connection").unwrap_or_default();
    assert!(connection.eq_ignore_ascii_case("close"), "{response:?}");
    let body: Value = serde_json::from_slice(&response.body).expect("JSON body");
    assert_json(&body, expected);
}

/// What this file's tests read from a raw client beyond [`RawWs`] itself.
trait RawWsExt {
    /// Requires an unfragmented frame with this opcode and payload next.
    async fn expect_frame(&mut self, opcode: u8, payload: &[u8]);

    /// Requires a text frame holding JSON that matches `expected` next.
    async fn expect_json(&mut self, expected: Value);

    /// Requires a close frame with `code` next; returns its reason.
    async fn expect_close(&mut self, code: u16) -> String;
}

impl RawWsExt for RawWs {
    async fn expect_frame(&mut self, opcode: u8, payload: &[u8]) {
        match self.next_frame().await {
            Some((true, o, p)) if o == opcode && p == payload => {}
            other => panic!("expected opcode {opcode:#x} with {payload:?}, got {other:?}"),
        }
    }

    async fn expect_json(&mut self, expected: Value) {
        match self.next_frame().await {
            Some((true, op::TEXT, p)) => {
                let actual: Value = serde_json::from_slice(&p).expect("JSON text");
                assert_json(&actual, &expected);
            }
            other => panic!("expected JSON {expected}, got {other:?}"),
        }
    }

    async fn expect_close(&mut self, code: u16) -> String {
        match self.next_frame().await {
            Some((true, op::CLOSE, p)) if p.len() >= 2 => {
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), code, "close code");
                String::from_utf8(p[2..].to_vec()).expect("UTF-8 reason")
            }
            other => panic!("expected close {code}, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Shared test state
// ---------------------------------------------------------------------------------------------------------

/// A log that handlers and middleware append to.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().push(entry.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Middleware that logs `label>` before and `<label` after the rest of the chain; with `show_invocation` the
/// invocation kind is part of the label (`gl[Connect]>`).
fn tag(label: &'static str, show_invocation: bool) -> impl Middleware<Log, ()> {
    move |mw: MiddlewareCtx<Log, ()>, next: Next<Log, ()>| async move {
        let log = mw.ctx().state().clone();
        let name = if show_invocation {
            format!("{label}[{:?}]", mw.invocation())
        } else {
            label.to_owned()
        };
        log.push(format!("{name}>"));
        let result = next.run().await;
        log.push(format!("<{name}"));
        result
    }
}

// ---------------------------------------------------------------------------------------------------------
// Middleware: order, and what wraps what
// ---------------------------------------------------------------------------------------------------------

async fn logged(ctx: Ctx<Log, ()>, _ch: Channel<Params, ()>, _: ()) -> Value {
    ctx.state().push("handler");
    json!({ "ok": true })
}

#[tokio::test]
async fn message_middleware_runs_global_then_channel_then_route() {
    let log = Log::default();
    let app = App::new(log.clone())
        .middleware(tag("g1", false))
        .channel(
            ChannelRoute::new("mw", "/mw")
                .auth(false)
                .middleware(tag("c1", false))
                .middleware(tag("c2", false))
                .on_message(logged)
                .route(
                    "action",
                    "routed",
                    Route::new(logged)
                        .middleware(tag("r1", false))
                        .middleware(tag("r2", false)),
                )
                .route("action", "plain", logged),
        )
        // Global middleware registered after the channel still wraps it, outermost.
        .middleware(tag("g2", false));
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/mw")).await;

    client.send_json(json!({"action": "routed"})).await;
    client
        .expect_json(json!({"ok": true, "action": "routed"}))
        .await;
    assert_eq!(
        log.take(),
        strings(&[
            "g1>", "g2>", "c1>", "c2>", "r1>", "r2>", "handler", "<r2", "<r1", "<c2", "<c1", "<g2",
            "<g1"
        ])
    );

    // A route without its own middleware, and the default route: global then channel.
    client.send_json(json!({"action": "plain"})).await;
    client
        .expect_json(json!({"ok": true, "action": "plain"}))
        .await;
    client.send_json(json!({"anything": 1})).await;
    client.expect_json(json!({"ok": true})).await;
    let plain = strings(&[
        "g1>", "g2>", "c1>", "c2>", "handler", "<c2", "<c1", "<g2", "<g1",
    ]);
    assert_eq!(log.take(), [plain.clone(), plain].concat());
}

async fn lifecycle_connect(ctx: Ctx<Log, ()>, _ch: Channel<Params, ()>) -> &'static str {
    ctx.state().push("connect");
    "hi"
}

async fn lifecycle_disconnect(ctx: Ctx<Log, ()>, _ch: ClosedChannel<Params>) {
    ctx.state().push("disconnect");
}

#[tokio::test]
async fn lifecycle_middleware_wraps_connect_and_disconnect_but_message_middleware_does_not() {
    let log = Log::default();
    let app = App::new(log.clone())
        .middleware(tag("gm", true))
        .lifecycle_middleware(tag("gl", true))
        .channel(
            ChannelRoute::new("life", "/life")
                .auth(false)
                .middleware(tag("cm", true))
                .connect_middleware(tag("cc", true))
                .disconnect_middleware(tag("cd", true))
                .on_connect(lifecycle_connect)
                .on_disconnect(lifecycle_disconnect)
                .route(
                    "action",
                    "msg",
                    Route::new(logged).middleware(tag("rm", true)),
                ),
        );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/life")).await;

    client.expect_text("hi").await;
    assert_eq!(
        log.take(),
        strings(&[
            "gl[Connect]>",
            "cc[Connect]>",
            "connect",
            "<cc[Connect]",
            "<gl[Connect]"
        ])
    );

    client.send_json(json!({"action": "msg"})).await;
    client
        .expect_json(json!({"ok": true, "action": "msg"}))
        .await;
    assert_eq!(
        log.take(),
        strings(&[
            "gm[Message]>",
            "cm[Message]>",
            "rm[Message]>",
            "handler",
            "<rm[Message]",
            "<cm[Message]",
            "<gm[Message]"
        ])
    );

    client.close().await;
    eventually("onDisconnect and its middleware", || {
        log.snapshot().len() >= 5
    })
    .await;
    assert_eq!(
        log.take(),
        strings(&[
            "gl[Disconnect]>",
            "cd[Disconnect]>",
            "disconnect",
            "<cd[Disconnect]",
            "<gl[Disconnect]"
        ])
    );
}

/// Middleware sees the raw input and the matched route, and can stop the chain with a client error; outer
/// middleware still unwinds.
fn gate() -> impl Middleware<Log, ()> {
    |mw: MiddlewareCtx<Log, ()>, next: Next<Log, ()>| async move {
        let log = mw.ctx().state().clone();
        log.push(format!("gate route={:?}", mw.ctx().route()));
        if mw.input().and_then(|i| i.get("stop")) == Some(&json!(true)) {
            return Err(ChannelError::bad_request("Stopped by middleware"));
        }
        let reply = next.run().await?;
        // Middleware may also replace a successful reply.
        if mw.input().and_then(|i| i.get("wrap")) == Some(&json!(true)) {
            return Ok(Reply::Value(json!({ "wrapped": true })));
        }
        Ok(reply)
    }
}

#[tokio::test]
async fn middleware_can_stop_the_chain_with_a_client_error() {
    let log = Log::default();
    let app = App::new(log.clone()).middleware(tag("g", false)).channel(
        ChannelRoute::new("gate", "/gate")
            .auth(false)
            .middleware(gate())
            .route("action", "go", logged),
    );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/gate")).await;

    client
        .send_json(json!({"action": "go", "stop": true}))
        .await;
    client
        .expect_json(json!({"action": "go", "error": "Stopped by middleware", "errorName": "BadRequestError"}))
        .await;
    assert_eq!(
        log.take(),
        strings(&["g>", "gate route=Some((\"action\", \"go\"))", "<g"])
    );

    client
        .send_json(json!({"action": "go", "wrap": true}))
        .await;
    client
        .expect_json(json!({"wrapped": true, "action": "go"}))
        .await;
    client.send_json(json!({"action": "go"})).await;
    client
        .expect_json(json!({"ok": true, "action": "go"}))
        .await;
}

// ---------------------------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug)]
struct QuotaExceeded;

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Quota exceeded")
    }
}

impl std::error::Error for QuotaExceeded {}

impl ClientError for QuotaExceeded {
    fn name(&self) -> &str {
        "QuotaExceededError"
    }
    fn status(&self) -> u16 {
        429
    }
}

/// A check driven by the input: member `key` false denies, `"error"` fails with the check's own client error,
/// `"boom"` with an internal error; anything else passes. Each evaluation is logged.
fn check(key: &'static str) -> impl Permission<Log, ()> {
    move |p: PermissionCtx<Log, ()>| async move {
        p.ctx().state().push(key);
        match p.input().get(key) {
            Some(Value::Bool(allowed)) => Ok(*allowed),
            Some(Value::String(s)) if s == "error" => Err(QuotaExceeded.into()),
            Some(Value::String(s)) if s == "boom" => Err(ChannelError::internal("check failed")),
            _ => Ok(true),
        }
    }
}

async fn guarded(ctx: Ctx<Log, ()>, _ch: Channel<Params, ()>, _: ()) -> Value {
    ctx.state().push("handler");
    json!({ "ran": true })
}

#[derive(Deserialize)]
struct Typed {
    #[allow(dead_code)]
    n: u32,
}

async fn typed(ctx: Ctx<Log, ()>, _ch: Channel<Params, ()>, _input: Typed) -> Value {
    ctx.state().push("handler");
    json!({ "ran": true })
}

async fn never(_p: PermissionCtx<Log, ()>) -> Result<bool, ChannelError> {
    Ok(false)
}

#[tokio::test]
async fn permissions_channel_all_route_any_group() {
    let log = Log::default();
    let app = App::new(log.clone()).channel(
        ChannelRoute::new("perm", "/perm")
            .auth(false)
            .permission(check("chanA"))
            .permission(check("chanB"))
            .on_message(guarded)
            .route(
                "action",
                "guarded",
                Route::new(guarded)
                    .permission_group(vec![permission(check("g1a")), permission(check("g1b"))])
                    .permission_group(vec![permission(check("g2"))]),
            )
            .route(
                "action",
                "single",
                Route::new(guarded).permission(check("only")),
            )
            .route("action", "open", guarded)
            .route("action", "typed", Route::new(typed).permission(never)),
    );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/perm")).await;
    let denied = |action: &str| json!({"action": action, "error": "Permission denied", "errorName": "ForbiddenError"});
    let ran = |action: &str| json!({"ran": true, "action": action});

    let cases: Vec<(Value, Value, bool)> = vec![
        // Every check passes.
        (json!({"action": "guarded"}), ran("guarded"), true),
        // Group 1 fails, group 2 passes: allowed.
        (
            json!({"action": "guarded", "g1b": false}),
            ran("guarded"),
            true,
        ),
        // Group 1 passes, group 2 fails: allowed.
        (
            json!({"action": "guarded", "g2": false}),
            ran("guarded"),
            true,
        ),
        // No group passes: denied.
        (
            json!({"action": "guarded", "g1a": false, "g2": false}),
            denied("guarded"),
            false,
        ),
        // One channel permission fails: denied, whatever the groups say.
        (
            json!({"action": "guarded", "chanB": false}),
            denied("guarded"),
            false,
        ),
        (
            json!({"action": "open", "chanA": false}),
            denied("open"),
            false,
        ),
        (json!({"action": "open"}), ran("open"), true),
        // A single-check route.
        (
            json!({"action": "single", "only": false}),
            denied("single"),
            false,
        ),
        (
            json!({"action": "single", "only": true}),
            ran("single"),
            true,
        ),
        // The default route has the channel permissions too (its error frame has no routing member).
        (
            json!({"hello": 1, "chanA": false}),
            json!({"error": "Permission denied", "errorName": "ForbiddenError"}),
            false,
        ),
        (json!({"hello": 1}), json!({"ran": true}), true),
        // A check's own client error is sent as is.
        (
            json!({"action": "guarded", "chanA": "error"}),
            json!({"action": "guarded", "error": "Quota exceeded", "errorName": "QuotaExceededError"}),
            false,
        ),
        (
            json!({"action": "guarded", "g1a": "error", "g2": false}),
            json!({"action": "guarded", "error": "Quota exceeded", "errorName": "QuotaExceededError"}),
            false,
        ),
        // A failing check in one group does not matter when another group passes.
        (
            json!({"action": "guarded", "g1a": "error"}),
            ran("guarded"),
            true,
        ),
        // An unexpected failure of a check is an internal error, not a denial.
        (
            json!({"action": "guarded", "chanA": "boom"}),
            json!({"action": "guarded", "error": "Internal server error", "errorName": "InternalServerError"}),
            false,
        ),
        // Validation runs before permissions: invalid input is 422 even on a route that always denies.
        (
            json!({"action": "typed", "n": "x"}),
            json!({"action": "typed", "error": "Invalid message data", "errorName": "UnprocessableContentError",
                   "details": [{"path": "/n", "message": ANY}]}),
            false,
        ),
        (json!({"action": "typed", "n": 1}), denied("typed"), false),
    ];
    for (input, expected, handler_ran) in cases {
        client.send_json(input.clone()).await;
        let actual = client.next_json().await;
        if let Some(diff) = json_mismatch(&actual, &expected) {
            panic!("{input}: {diff}\n  expected: {expected}\n  actual:   {actual}");
        }
        let entries = log.take();
        assert_eq!(
            entries.iter().any(|e| e == "handler"),
            handler_ran,
            "{input}: {entries:?}"
        );
        if input.get("n") == Some(&json!("x")) {
            assert!(
                entries.is_empty(),
                "no permission runs on invalid input: {entries:?}"
            );
        }
    }

    // Order: channel checks (all), then the groups until one passes.
    client
        .send_json(json!({"action": "guarded", "g1b": false}))
        .await;
    client.expect_json(ran("guarded")).await;
    assert_eq!(
        log.take(),
        strings(&["chanA", "chanB", "g1a", "g1b", "g2", "handler"])
    );
    // The first failing channel check stops the evaluation.
    client
        .send_json(json!({"action": "guarded", "chanA": false}))
        .await;
    client.expect_json(denied("guarded")).await;
    assert_eq!(log.take(), strings(&["chanA"]));
}

// ---------------------------------------------------------------------------------------------------------
// Validation with `Valid<T>`
// ---------------------------------------------------------------------------------------------------------

#[derive(Deserialize, garde::Validate)]
struct NewRoom {
    #[garde(length(min = 1, max = 10))]
    title: String,
    #[garde(range(min = 1, max = 100))]
    size: u32,
    #[garde(dive)]
    tags: Vec<Tag>,
}

#[derive(Deserialize, garde::Validate)]
struct Tag {
    #[garde(length(min = 1))]
    name: String,
}

#[derive(Deserialize, garde::Validate)]
struct Labels {
    #[garde(dive)]
    labels: HashMap<String, Tag>,
}

async fn create_room(
    _ctx: Ctx<(), ()>,
    _ch: Channel<Params, ()>,
    Valid(room): Valid<NewRoom>,
) -> Value {
    json!({ "title": room.title, "size": room.size, "tags": room.tags.len() })
}

async fn set_labels(
    _ctx: Ctx<(), ()>,
    _ch: Channel<Params, ()>,
    Valid(input): Valid<Labels>,
) -> Value {
    json!({ "labels": input.labels.len() })
}

fn validation_app() -> App<(), ()> {
    App::new(()).channel(
        ChannelRoute::new("valid", "/valid")
            .auth(false)
            .route("action", "create", create_room)
            .route("action", "labels", set_labels),
    )
}

/// The paths of a validation error frame, as a set (their order is not specified).
fn detail_paths(frame: &Value) -> BTreeSet<String> {
    assert_eq!(frame["errorName"], "UnprocessableContentError", "{frame}");
    assert_eq!(frame["error"], "Invalid message data", "{frame}");
    frame["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {frame}"))
        .iter()
        .map(|d| {
            let message = d["message"].as_str().expect("message");
            assert!(!message.is_empty() && message.chars().count() <= 200, "{d}");
            d["path"].as_str().expect("path").to_owned()
        })
        .collect()
}

fn paths(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn valid_input_constraints_give_422_with_json_pointer_details() {
    let srv = serve(validation_app(), ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/valid")).await;

    client
        .send_json(
            json!({"action": "create", "title": "lobby", "size": 5, "tags": [{"name": "a"}]}),
        )
        .await;
    client
        .expect_json(json!({"title": "lobby", "size": 5, "tags": 1, "action": "create"}))
        .await;

    // One constraint.
    client
        .send_json(json!({"action": "create", "title": "", "size": 5, "tags": []}))
        .await;
    client
        .expect_json(json!({
            "action": "create",
            "error": "Invalid message data",
            "errorName": "UnprocessableContentError",
            "details": [{"path": "/title", "message": ANY}]
        }))
        .await;

    // Several constraints, nested ones included.
    client
        .send_json(json!({
            "action": "create", "title": "far too long a title", "size": 0,
            "tags": [{"name": "ok"}, {"name": ""}]
        }))
        .await;
    let frame = client.next_json().await;
    assert_eq!(frame["action"], "create");
    assert_eq!(
        detail_paths(&frame),
        paths(&["/title", "/size", "/tags/1/name"])
    );

    // Type errors come from deserialization, before the constraints, with the same shape.
    client
        .send_json(json!({"action": "create", "title": 5, "size": 1, "tags": []}))
        .await;
    assert_eq!(detail_paths(&client.next_json().await), paths(&["/title"]));
    client
        .send_json(json!({"action": "create", "size": 1, "tags": []}))
        .await;
    assert_eq!(detail_paths(&client.next_json().await), paths(&["/title"]));
    client
        .send_json(json!({"action": "create", "title": "x", "size": 1, "tags": [{"name": 1}]}))
        .await;
    assert_eq!(
        detail_paths(&client.next_json().await),
        paths(&["/tags/0/name"])
    );

    // Map keys become reference tokens, escaped by RFC 6901.
    client
        .send_json(
            json!({"action": "labels", "labels": {"plain": {"name": ""}, "a/b~c": {"name": ""}}}),
        )
        .await;
    assert_eq!(
        detail_paths(&client.next_json().await),
        paths(&["/labels/plain/name", "/labels/a~1b~0c/name"])
    );

    // The connection is fine after validation errors.
    client
        .send_json(json!({"action": "labels", "labels": {"x": {"name": "y"}}}))
        .await;
    client
        .expect_json(json!({"labels": 1, "action": "labels"}))
        .await;
}

#[tokio::test]
async fn valid_map_keys_with_dots_or_brackets_keep_their_json_pointer() {
    let srv = serve(validation_app(), ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/valid")).await;
    client
        .send_json(json!({"action": "labels", "labels": {"example.com": {"name": ""}}}))
        .await;
    assert_eq!(
        detail_paths(&client.next_json().await),
        paths(&["/labels/example.com/name"])
    );
    client
        .send_json(json!({"action": "labels", "labels": {"x[0]": {"name": ""}}}))
        .await;
    assert_eq!(
        detail_paths(&client.next_json().await),
        paths(&["/labels/x[0]/name"])
    );
}

// ---------------------------------------------------------------------------------------------------------
// max_in_flight
// ---------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Flight {
    release: Notify,
}

async fn wait_for_fast(ctx: Ctx<Arc<Flight>, ()>, _ch: Channel<Params, ()>, _: ()) -> Value {
    // Finishes only once `fast` ran (bounded, so a sequential server fails the order check instead of hanging).
    let released = tokio::time::timeout(WAIT, ctx.state().release.notified())
        .await
        .is_ok();
    json!({ "n": "slow", "released": released })
}

async fn release(ctx: Ctx<Arc<Flight>, ()>, _ch: Channel<Params, ()>, _: ()) -> Value {
    ctx.state().release.notify_one();
    json!({ "n": "fast" })
}

#[tokio::test]
async fn max_in_flight_two_replies_in_completion_order() {
    let app = App::new(Arc::new(Flight::default())).channel(
        ChannelRoute::new("par", "/par")
            .auth(false)
            .max_in_flight(2)
            .route("action", "slow", wait_for_fast)
            .route("action", "fast", release)
            .route("action", "echo", echo),
    );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/par")).await;
    for round in 0..3 {
        client.send_json(json!({"action": "slow"})).await;
        client.send_json(json!({"action": "fast"})).await;
        client
            .expect_json(json!({"n": "fast", "action": "fast"}))
            .await;
        client
            .expect_json(json!({"n": "slow", "released": true, "action": "slow"}))
            .await;
        client.sentinel(round).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Slow consumer with the Drop policy
// ---------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct FloodStats {
    ok: usize,
    backpressure: usize,
    closed: usize,
    other: usize,
}

#[derive(Deserialize)]
struct FloodInput {
    n: usize,
}

/// The default route: `n` pushes of a 16 KiB string, without awaiting, recording every `send` result. It has no
/// result, so no reply frame competes with the pushes for queue space.
async fn flood(
    ctx: Ctx<Arc<Mutex<FloodStats>>, ()>,
    ch: Channel<Params, String>,
    input: FloodInput,
) {
    let chunk = "x".repeat(16 * 1024);
    let mut stats = ctx.state().lock();
    for _ in 0..input.n {
        match ch.send(chunk.clone()) {
            Ok(()) => stats.ok += 1,
            Err(SendError::Backpressure) => stats.backpressure += 1,
            Err(SendError::Closed) => stats.closed += 1,
            Err(_) => stats.other += 1,
        }
    }
}

async fn flood_stats(
    ctx: Ctx<Arc<Mutex<FloodStats>>, ()>,
    _ch: Channel<Params, ()>,
    _: (),
) -> Value {
    let s = ctx.state().lock();
    json!({"ok": s.ok, "backpressure": s.backpressure, "closed": s.closed, "other": s.other})
}

#[tokio::test]
async fn drop_policy_reports_backpressure_and_keeps_the_connection_open() {
    let stats = Arc::new(Mutex::new(FloodStats::default()));
    let app = App::new(stats.clone())
        .configure(|c: &mut AppConfig| {
            c.outbound_queue_bytes = 64 * 1024;
            c.slow_consumer = SlowConsumerPolicy::Drop;
        })
        .channel(
            ChannelRoute::new("flood", "/flood")
                .auth(false)
                .on_message(flood)
                .route("action", "stats", flood_stats)
                .route("action", "echo", echo),
        );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/flood")).await;
    let chunk = "x".repeat(16 * 1024);

    let mut total_pushes = 0;
    for round in 0..2u32 {
        client.send_json(json!({"n": 200})).await;
        // The first push proves the writer took the queue, so the stats reply finds room.
        match client.next().await {
            Frame::Text(t) if t == chunk => {}
            other => panic!("expected a 16 KiB push, got {other}"),
        }
        client.send_json(json!({"action": "stats"})).await;
        let mut pushes = 1;
        let reply = loop {
            match client.next().await {
                Frame::Text(t) if t == chunk => pushes += 1,
                Frame::Text(t) => break serde_json::from_str::<Value>(&t).expect("stats JSON"),
                other => panic!("expected pushes then the stats reply, got {other}"),
            }
        };
        total_pushes += pushes;
        let (ok, backpressure, closed, other) = {
            let s = stats.lock();
            (s.ok, s.backpressure, s.closed, s.other)
        };
        assert_eq!(ok + backpressure, 200 * (round as usize + 1));
        assert!(backpressure > 0, "the 64 KiB bound was never reached");
        assert_eq!((closed, other), (0, 0), "the Drop policy never closes");
        assert_eq!(
            reply,
            json!({"ok": ok, "backpressure": backpressure, "closed": 0, "other": 0, "action": "stats"})
        );
        // Every admitted push arrived; the dropped ones never did.
        assert_eq!(total_pushes, ok, "round {round}");
        // Still open and in order.
        client.sentinel(round).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Stale channel handles
// ---------------------------------------------------------------------------------------------------------

struct Stale {
    closed: Notify,
    kept: Mutex<Option<Channel<Params, String>>>,
    report: mpsc::UnboundedSender<Vec<String>>,
}

fn describe(result: Result<(), SendError>) -> String {
    match result {
        Ok(()) => "Ok".into(),
        Err(SendError::Closed) => "Closed".into(),
        Err(SendError::Backpressure) => "Backpressure".into(),
        Err(other) => format!("{other}"),
    }
}

async fn keep(ctx: Ctx<Arc<Stale>, ()>, ch: Channel<Params, String>, _: ()) {
    let state = ctx.state().clone();
    *state.kept.lock() = Some(ch.clone());
    let (sent, sent_rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = sent.send(describe(ch.send("from the task")));
        state.closed.notified().await;
        let mut report = vec![
            describe(ch.send("late")),
            describe(ch.send_binary(Bytes::from_static(b"late"))),
            format!("{:?}", ch.state()),
        ];
        ch.close();
        ch.close_with(4000, "again");
        let rpc = ch.remote_raw("clientThing", None, None).await;
        report.push(match rpc {
            Err(err) if *err.failure() == RpcFailure::Closed => "rpc closed".into(),
            other => format!("rpc {other:?}"),
        });
        let _ = state.report.send(report);
    });
    assert_eq!(sent_rx.await.as_deref(), Ok("Ok"));
}

async fn stale_disconnect(ctx: Ctx<Arc<Stale>, ()>, _ch: ClosedChannel<Params>) {
    ctx.state().closed.notify_one();
}

#[tokio::test]
async fn send_through_a_stale_handle_after_close_is_an_error_not_a_panic() {
    let (report, mut reports) = mpsc::unbounded_channel();
    let state = Arc::new(Stale {
        closed: Notify::new(),
        kept: Mutex::new(None),
        report,
    });
    let app = App::new(state.clone()).channel(
        ChannelRoute::new("stale", "/stale")
            .auth(false)
            .route("action", "keep", keep)
            .on_disconnect(stale_disconnect),
    );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/stale")).await;
    client.send_json(json!({"action": "keep"})).await;
    client.expect_text("from the task").await;
    client.expect_json(json!({"action": "keep"})).await;
    let kept = state.kept.lock().clone().expect("the handle was kept");
    assert_eq!(kept.state(), ChannelState::Open);

    client.close().await;
    let report = tokio::time::timeout(WAIT, reports.recv())
        .await
        .expect("the spawned task reported")
        .expect("report");
    assert_eq!(
        report,
        strings(&["Closed", "Closed", "Closed", "rpc closed"])
    );

    // The handle kept in the app state, used from outside any handler.
    assert_eq!(kept.state(), ChannelState::Closed);
    assert_eq!(describe(kept.send("x")), "Closed");
    assert_eq!(describe(kept.send_binary(vec![1u8])), "Closed");
    kept.close();
}

// ---------------------------------------------------------------------------------------------------------
// Upgrade refusals
// ---------------------------------------------------------------------------------------------------------

async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str {
    "hi"
}

fn hello_app() -> App<(), ()> {
    App::new(()).channel(
        ChannelRoute::new("hello", "/hello")
            .auth(false)
            .on_connect(hello)
            .route("action", "echo", echo),
    )
}

#[tokio::test]
async fn disallowed_origin_is_403() {
    let app = hello_app().configure(|c: &mut AppConfig| {
        c.origin = OriginPolicy::allow(["https://good.example", "http://localhost:3000"]);
    });
    let srv = serve(app, ServerConfig::default()).await;
    for origin in ["https://evil.example", "https://good.example.evil", "null"] {
        let response = raw_upgrade(srv.addr, "/hello", &[("Origin", origin)]).await;
        assert_refusal(
            &response,
            403,
            &json!({"name": "ForbiddenError", "message": "Origin not allowed", "errorId": ANY}),
        );
    }
    // The route is checked before the origin.
    let response = raw_upgrade(srv.addr, "/nope", &[("Origin", "https://evil.example")]).await;
    assert_refusal(
        &response,
        404,
        &json!({"name": "NotFoundError", "message": "Channel not found: /nope", "errorId": ANY}),
    );
    // Allowed origins connect.
    for origin in ["https://good.example", "http://localhost:3000"] {
        let response = raw_upgrade(srv.addr, "/hello", &[("Origin", origin)]).await;
        assert_eq!(response.status, 101, "{origin}: {response:?}");
    }
    let (mut client, _) =
        Client::connect_with(&srv.url("/hello"), &[("Origin", "https://good.example")]).await;
    client.expect_text("hi").await;
}

#[tokio::test]
async fn path_and_query_over_8_kib_is_400() {
    let srv = serve(hello_app(), ServerConfig::default()).await;
    let at_limit = format!("/hello?pad={}", "a".repeat(8 * 1024 - "/hello?pad=".len()));
    assert_eq!(at_limit.len(), 8 * 1024);
    let response = raw_upgrade(srv.addr, &at_limit, &[]).await;
    assert_eq!(
        response.status, 101,
        "exactly 8 KiB is allowed: {response:?}"
    );

    let over = format!("{at_limit}a");
    let response = raw_upgrade(srv.addr, &over, &[]).await;
    let expected =
        json!({"name": "BadRequestError", "message": "Malformed upgrade request", "errorId": ANY});
    assert_refusal(&response, 400, &expected);

    // The limit counts the path too, and applies before the route is matched.
    let long_path = format!("/{}", "p".repeat(9 * 1024));
    assert_refusal(
        &raw_upgrade(srv.addr, &long_path, &[]).await,
        400,
        &expected,
    );
}

#[tokio::test]
async fn connection_limit_is_503_until_a_connection_ends() {
    let config = ServerConfig {
        max_connections: Some(2),
        ..ServerConfig::default()
    };
    let srv = serve(hello_app(), config).await;
    let mut a = Client::connect(&srv.url("/hello")).await;
    a.expect_text("hi").await;
    let mut b = Client::connect(&srv.url("/hello")).await;
    b.expect_text("hi").await;

    let expected = json!({"name": "ServiceUnavailableError", "message": "Connection limit reached", "errorId": ANY});
    assert_refusal(&raw_upgrade(srv.addr, "/hello", &[]).await, 503, &expected);
    // The open connections are unaffected.
    a.sentinel(1).await;
    b.sentinel(2).await;

    // Once one connection finished its disconnect sequence there is room again.
    a.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = raw_upgrade(srv.addr, "/hello", &[]).await;
        if response.status == 101 {
            break;
        }
        assert_refusal(&response, 503, &expected);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after a close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.sentinel(3).await;
}

// ---------------------------------------------------------------------------------------------------------
// Protocol violations, fragmentation, ping/pong
// ---------------------------------------------------------------------------------------------------------

async fn record_reason(ctx: Ctx<Log, ()>, ch: ClosedChannel<Params>) {
    ctx.state().push(ch.reason().as_str());
}

async fn reverse(_ctx: Ctx<Log, ()>, _ch: Channel<Params, ()>, bytes: Bytes) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

fn wire_app(log: &Log) -> App<Log, ()> {
    App::new(log.clone()).channel(
        ChannelRoute::new("wire", "/wire")
            .auth(false)
            .route("action", "echo", echo)
            .on_binary(reverse)
            .on_disconnect(record_reason),
    )
}

fn wire_config() -> ServerConfig {
    ServerConfig {
        close_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002_and_leave_others_working() {
    let log = Log::default();
    let srv = serve(wire_app(&log), wire_config()).await;
    let mut bystander = Client::connect(&srv.url("/wire")).await;

    let mut big_ping = vec![0x89, 0x80 | 126, 0, 126];
    big_ping.extend_from_slice(&MASK);
    big_ping.extend_from_slice(&[0u8; 126]);
    let violations: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("unmasked frame", vec![client_frame(0x81, b"hi", None)]),
        (
            "reserved data opcode",
            vec![client_frame(0x83, b"", Some(MASK))],
        ),
        (
            "reserved control opcode",
            vec![client_frame(0x8B, b"", Some(MASK))],
        ),
        (
            "fragmented ping",
            vec![client_frame(op::PING, b"p", Some(MASK))],
        ),
        (
            "RSV1 without an extension",
            vec![client_frame(0xC1, b"x", Some(MASK))],
        ),
        ("RSV3", vec![client_frame(0x91, b"x", Some(MASK))]),
        (
            "continuation with nothing to continue",
            vec![client_frame(0x80, b"x", Some(MASK))],
        ),
        (
            "new message inside a fragmented one",
            vec![
                client_frame(op::TEXT, b"a", Some(MASK)),
                client_frame(0x81, b"b", Some(MASK)),
            ],
        ),
        ("control frame over 125 bytes", vec![big_ping]),
        (
            "close frame of one byte",
            vec![client_frame(0x88, &[3], Some(MASK))],
        ),
        (
            "close code 1005",
            vec![client_frame(0x88, &[0x03, 0xED], Some(MASK))],
        ),
        (
            "close code 999",
            vec![client_frame(0x88, &[0x03, 0xE7], Some(MASK))],
        ),
    ];
    let count = violations.len();
    for (i, (name, frames)) in violations.into_iter().enumerate() {
        let mut raw = RawWs::connect(srv.addr, "/wire").await;
        for frame in &frames {
            raw.write(frame).await;
        }
        let reason = raw.expect_close(1002).await;
        assert!(!reason.is_empty(), "{name}: a 1002 close says why");
        // Our half of the closing handshake; then the server ends the connection without anything else.
        raw.send(0x88, &1002u16.to_be_bytes()).await;
        raw.expect_end().await;
        eventually(&format!("onDisconnect after {name}"), || {
            log.snapshot().len() > i
        })
        .await;
        assert_eq!(log.snapshot()[i], "protocol_error", "{name}");
        bystander.sentinel(i as u32).await;
    }
    assert_eq!(
        log.snapshot().len(),
        count,
        "one onDisconnect per connection"
    );
}

#[tokio::test]
async fn oversized_and_invalid_utf8_messages_close_with_1009_and_1007() {
    let log = Log::default();
    let config = ServerConfig {
        max_frame_bytes: 64,
        ..wire_config()
    };
    let srv = serve(wire_app(&log), config).await;
    let mut bystander = Client::connect(&srv.url("/wire")).await;

    // Exactly at the limit: fine, also when fragmented.
    let mut at_limit = br#"{"action":"echo","p":""#.to_vec();
    at_limit.resize(62, b'x');
    at_limit.extend_from_slice(br#""}"#);
    assert_eq!(at_limit.len(), 64);
    let expected = json!({"got": {"p": "x".repeat(40)}, "action": "echo"});
    let mut raw = RawWs::connect(srv.addr, "/wire").await;
    raw.send(0x81, &at_limit).await;
    raw.expect_json(expected.clone()).await;
    raw.send(op::TEXT, &at_limit[..30]).await;
    raw.send(0x80 | op::CONTINUATION, &at_limit[30..]).await;
    raw.expect_json(expected).await;

    let cases: Vec<(&str, Vec<Vec<u8>>, u16, &str)> = vec![
        (
            "one byte over the limit",
            vec![client_frame(0x82, &[0u8; 65], Some(MASK))],
            1009,
            "message_too_big",
        ),
        (
            "reassembled message over the limit",
            vec![
                client_frame(op::TEXT, &[b'a'; 40], Some(MASK)),
                client_frame(0x80 | op::CONTINUATION, &[b'a'; 40], Some(MASK)),
            ],
            1009,
            "message_too_big",
        ),
        (
            "a header announcing 2^40 bytes",
            vec![[&[0x82, 0x80 | 127, 0, 0, 0x01, 0, 0, 0, 0, 0][..], &MASK].concat()],
            1009,
            "message_too_big",
        ),
        (
            "invalid UTF-8 split over fragments",
            vec![
                client_frame(op::TEXT, b"ab\xC3", Some(MASK)),
                client_frame(0x80 | op::CONTINUATION, b"\x28", Some(MASK)),
            ],
            1007,
            "invalid_utf8",
        ),
        (
            "a close reason that is not UTF-8",
            vec![client_frame(0x88, &[0x03, 0xE8, 0xC3, 0x28], Some(MASK))],
            1007,
            "invalid_utf8",
        ),
    ];
    for (i, (name, frames, code, reason)) in cases.into_iter().enumerate() {
        let mut raw = RawWs::connect(srv.addr, "/wire").await;
        for frame in &frames {
            raw.write(frame).await;
        }
        let text = raw.expect_close(code).await;
        let expected_text = if code == 1009 {
            "message too big"
        } else {
            "invalid utf-8"
        };
        assert_eq!(text, expected_text, "{name}");
        raw.send(0x88, &code.to_be_bytes()).await;
        raw.expect_end().await;
        eventually(&format!("onDisconnect after {name}"), || {
            log.snapshot().len() > i
        })
        .await;
        assert_eq!(log.snapshot()[i], reason, "{name}");
        bystander.sentinel(i as u32).await;
    }
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_and_routed() {
    let log = Log::default();
    let srv = serve(wire_app(&log), wire_config()).await;
    let mut raw = RawWs::connect(srv.addr, "/wire").await;

    // A text message in four fragments, a UTF-8 character split between two of them, and a ping in between.
    let text = r#"{"action":"echo","t":"héllo ✓"}"#.as_bytes();
    let split_in_e = text.iter().position(|&b| b == 0xC3).expect("é") + 1;
    let pieces = [
        (op::TEXT, &text[..10]),
        (op::CONTINUATION, &text[10..split_in_e]),
        (op::CONTINUATION, &text[split_in_e..split_in_e + 3]),
        (0x80 | op::CONTINUATION, &text[split_in_e + 3..]),
    ];
    for (i, (first, piece)) in pieces.iter().enumerate() {
        raw.send(*first, piece).await;
        if i == 1 {
            raw.send(0x80 | op::PING, b"between").await;
        }
        // Separate writes, so the server also reassembles across reads.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    raw.expect_frame(op::PONG, b"between").await;
    raw.expect_json(json!({"got": {"t": "héllo ✓"}, "action": "echo"}))
        .await;

    // Many small fragments, all in one write.
    let text = br#"{"action":"echo","n":[1,2,3,4,5,6,7,8,9,10]}"#;
    let mut bytes = Vec::new();
    for (i, chunk) in text.chunks(3).enumerate() {
        let opcode = if i == 0 { op::TEXT } else { op::CONTINUATION };
        let fin = if (i + 1) * 3 >= text.len() { 0x80 } else { 0 };
        bytes.extend(client_frame(fin | opcode, chunk, Some(MASK)));
    }
    raw.write(&bytes).await;
    raw.expect_json(json!({"got": {"n": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}, "action": "echo"}))
        .await;

    // A fragmented binary message goes to the binary handler whole.
    raw.send(op::BINARY, &[1, 2]).await;
    raw.send(op::CONTINUATION, &[3]).await;
    raw.send(0x80 | op::CONTINUATION, &[4, 5]).await;
    raw.expect_frame(op::BINARY, &[5, 4, 3, 2, 1]).await;

    // Fragments with empty payloads are fine too.
    raw.send(op::TEXT, b"").await;
    raw.send(op::CONTINUATION, br#"{"action":"echo"}"#).await;
    raw.send(0x80 | op::CONTINUATION, b"").await;
    raw.expect_json(json!({"got": {}, "action": "echo"})).await;
}

#[tokio::test]
async fn pings_are_answered_with_the_same_payload() {
    let log = Log::default();
    let srv = serve(wire_app(&log), wire_config()).await;

    // Each ping is followed by a message, whose reply must come after the pong.
    let mut raw = RawWs::connect(srv.addr, "/wire").await;
    let max: Vec<u8> = (0..125u8).collect();
    for (i, payload) in [&b"abc123"[..], b"", &[0x00, 0xff, 0x80, 0xC3], &max]
        .into_iter()
        .enumerate()
    {
        raw.send(0x80 | op::PING, payload).await;
        raw.send(
            0x81,
            json!({"action": "echo", "i": i}).to_string().as_bytes(),
        )
        .await;
        raw.expect_frame(op::PONG, payload).await;
        raw.expect_json(json!({"got": {"i": i}, "action": "echo"}))
            .await;
    }
    // Pongs from the client are never answered; the connection carries on.
    raw.send(0x80 | op::PONG, b"unsolicited").await;
    raw.send(0x81, br#"{"action":"echo","after":"pong"}"#).await;
    raw.expect_json(json!({"got": {"after": "pong"}, "action": "echo"}))
        .await;
}

/// A ping with no other traffic around it must be answered on its own (pings are answered with pongs
/// automatically); a client library's keep-alive is exactly that.
#[tokio::test]
async fn a_lone_ping_is_answered_without_other_traffic() {
    let log = Log::default();
    let srv = serve(wire_app(&log), wire_config()).await;

    let mut raw = RawWs::connect(srv.addr, "/wire").await;
    raw.send(0x80 | op::PING, b"abc123").await;
    raw.expect_frame(op::PONG, b"abc123").await;

    // Through an independent client library as well.
    let mut client = Client::connect(&srv.url("/wire")).await;
    client
        .send(Message::Ping(Bytes::from_static(b"tungstenite")))
        .await;
    match client.next_any().await {
        Frame::Pong(p) => assert_eq!(p, b"tungstenite"),
        other => panic!("expected a pong, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Subprotocols
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn subprotocol_selection_echoes_the_first_offered_accepted_one() {
    let config = ServerConfig {
        subprotocols: pikku_server::SubprotocolPolicy::list(["pikku.v2", "pikku.v1"]),
        ..ServerConfig::default()
    };
    let srv = serve(hello_app(), config).await;
    let selected = |response: &HttpResponse| {
        assert_eq!(response.status, 101, "{response:?}");
        let values = response.headers_named("sec-websocket-protocol");
        assert!(values.len() <= 1, "{values:?}");
        values.first().map(|v| (*v).to_owned())
    };

    // The client's order decides, not the server's.
    let offer = [("Sec-WebSocket-Protocol", "chat, pikku.v1, pikku.v2")];
    let response = raw_upgrade(srv.addr, "/hello", &offer).await;
    assert_eq!(selected(&response).as_deref(), Some("pikku.v1"));
    // Offers split over several header lines count in order.
    let offer = [
        ("Sec-WebSocket-Protocol", "chat"),
        ("Sec-WebSocket-Protocol", "pikku.v2,pikku.v1"),
    ];
    let response = raw_upgrade(srv.addr, "/hello", &offer).await;
    assert_eq!(selected(&response).as_deref(), Some("pikku.v2"));
    // Only unacceptable names offered: a refusal that says why (a 101 without the header would make browsers
    // and Node's `ws` abort with no reason). Nothing offered: no subprotocol.
    let offer = [("Sec-WebSocket-Protocol", "chat, PIKKU.V1")];
    let refused = raw_upgrade(srv.addr, "/hello", &offer).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_json(
        &serde_json::from_slice::<Value>(&refused.body).unwrap(),
        &json!({"name": "BadRequestError", "message": "Unsupported subprotocol", "errorId": ANY}),
    );
    assert_eq!(selected(&raw_upgrade(srv.addr, "/hello", &[]).await), None);

    // An independent client accepts the selection and the channel works as usual.
    let (mut client, headers) = Client::connect_with(
        &srv.url("/hello"),
        &[("sec-websocket-protocol", "pikku.v1")],
    )
    .await;
    assert_eq!(
        headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("pikku.v1")
    );
    client.expect_text("hi").await;
    client.sentinel(1).await;

    // A server that accepts no subprotocol selects none, whatever is offered.
    let srv = serve(hello_app(), ServerConfig::default()).await;
    let offer = [("Sec-WebSocket-Protocol", "pikku.v1")];
    assert_eq!(
        selected(&raw_upgrade(srv.addr, "/hello", &offer).await),
        None
    );
}

// ---------------------------------------------------------------------------------------------------------
// Reverse RPC: too many pending calls
// ---------------------------------------------------------------------------------------------------------

async fn hold(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _: ()) -> Result<Value, ChannelError> {
    let said = ch
        .remote_raw("clientThing", Some(json!({"q": 1})), None)
        .await?;
    Ok(json!({ "said": said }))
}

fn rpc_request(id: &str) -> Value {
    json!({"action": "pikku-rpc-request", "id": id, "funcName": "clientThing", "data": {"q": 1}})
}

fn rpc_ok(id: &str, answer: u32) -> Value {
    json!({"action": "pikku-rpc-response", "id": id, "ok": true, "result": {"answer": answer}})
}

#[tokio::test]
async fn reverse_rpc_is_busy_after_max_pending_calls() {
    let app = App::new(())
        .configure(|c: &mut AppConfig| c.max_pending_rpc = 2)
        .channel(
            ChannelRoute::new("rpc", "/rpc")
                .auth(false)
                .max_in_flight(4)
                .rpc_timeout(None)
                .route("action", "hold", hold)
                .route("action", "echo", echo),
        );
    let srv = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&srv.url("/rpc")).await;
    let busy = json!({
        "action": "hold",
        "error": "Remote call 'clientThing' has too many pending calls",
        "errorName": "ChannelRPCError"
    });

    client.send_json(json!({"action": "hold"})).await;
    client.expect_json(rpc_request("1")).await;
    client.send_json(json!({"action": "hold"})).await;
    client.expect_json(rpc_request("2")).await;
    // Two calls pending: the third fails at once and sends nothing to the client.
    client.send_json(json!({"action": "hold"})).await;
    client.expect_json(busy.clone()).await;
    client.sentinel(1).await;

    // Settling one call makes room for exactly one more; a busy call used no id.
    client.send_json(rpc_ok("2", 2)).await;
    client
        .expect_json(json!({"said": {"answer": 2}, "action": "hold"}))
        .await;
    client.send_json(json!({"action": "hold"})).await;
    client.expect_json(rpc_request("3")).await;
    client.send_json(json!({"action": "hold"})).await;
    client.expect_json(busy).await;

    client.send_json(rpc_ok("1", 1)).await;
    client
        .expect_json(json!({"said": {"answer": 1}, "action": "hold"}))
        .await;
    client.send_json(rpc_ok("3", 3)).await;
    client
        .expect_json(json!({"said": {"answer": 3}, "action": "hold"}))
        .await;
    client.sentinel(2).await;
}

// ---------------------------------------------------------------------------------------------------------
// development mode
// ---------------------------------------------------------------------------------------------------------

async fn fails(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _: ()) -> Result<(), ChannelError> {
    Err(ChannelError::internal("database is down"))
}

async fn refuses(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _: ()) -> Result<(), ChannelError> {
    Err(ChannelError::forbidden("Permission denied"))
}

fn dev_mode_app(dev_mode: bool) -> App<(), ()> {
    App::new(())
        .configure(|config: &mut AppConfig| config.dev_mode = dev_mode)
        .channel(
            ChannelRoute::new("dev", "/dev")
                .auth(false)
                .route("action", "fails", fails)
                .route("action", "refuses", refuses),
        )
}

#[tokio::test]
async fn development_mode_adds_debug_text_to_internal_errors_only() {
    let server = serve(dev_mode_app(true), ServerConfig::default()).await;
    let mut client = Client::connect(&server.url("/dev")).await;
    client.send_json(json!({"action": "fails"})).await;
    client
        .expect_json(json!({
            "action": "fails",
            "error": "Internal server error",
            "errorName": "InternalServerError",
            "debug": "database is down"
        }))
        .await;
    // Client errors carry their own message and no `debug` member.
    client.send_json(json!({"action": "refuses"})).await;
    client
        .expect_json(json!({"action": "refuses", "error": "Permission denied", "errorName": "ForbiddenError"}))
        .await;
}

#[tokio::test]
async fn internal_error_text_stays_on_the_server_outside_development_mode() {
    let server = serve(dev_mode_app(false), ServerConfig::default()).await;
    let mut client = Client::connect(&server.url("/dev")).await;
    client.send_json(json!({"action": "fails"})).await;
    client
        .expect_json(json!({"action": "fails", "error": "Internal server error", "errorName": "InternalServerError"}))
        .await;
}

// ---------------------------------------------------------------------------------------------------------
// closures as handlers
// ---------------------------------------------------------------------------------------------------------

/// Handlers may be closures as well as `async fn`s, capturing what they need.
#[tokio::test]
async fn closures_work_as_handlers_of_every_kind() {
    let greeting = Arc::new(String::from("hi there"));
    let disconnected = Arc::new(Notify::new());
    let on_disconnect = disconnected.clone();
    let app = App::new(()).channel(
        ChannelRoute::new("closures", "/closures")
            .auth(false)
            .on_connect(move |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>| {
                let greeting = greeting.clone();
                async move { json!({ "greeting": *greeting }) }
            })
            .route(
                "action",
                "add",
                |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Value| async move {
                    let sum = input["a"].as_i64().unwrap_or(0) + input["b"].as_i64().unwrap_or(0);
                    json!({ "sum": sum })
                },
            )
            .on_binary(
                |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, bytes: Bytes| async move { bytes },
            )
            .on_disconnect(move |_ctx: Ctx<(), ()>, _ch: ClosedChannel<Params>| {
                let on_disconnect = on_disconnect.clone();
                async move { on_disconnect.notify_one() }
            }),
    );
    let server = serve(app, ServerConfig::default()).await;
    let mut client = Client::connect(&server.url("/closures")).await;
    client.expect_json(json!({"greeting": "hi there"})).await;
    client
        .send_json(json!({"action": "add", "a": 2, "b": 3}))
        .await;
    client.expect_json(json!({"sum": 5, "action": "add"})).await;
    client.close().await;
    tokio::time::timeout(WAIT, disconnected.notified())
        .await
        .expect("the disconnection closure ran");
}
