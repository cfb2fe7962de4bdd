//! The fixture of the pikku wire protocol (`docs/protocol.md`, *Conformance fixture*), in one place: served
//! in-process by the golden tests ([`TestServer`]) and by the `conformance` example for clients written in other
//! languages.
//!
//! Channels: `events` at `/events`, `greet` at `/greet`, `rooms` at `/rooms/:roomId`, `secure` at `/secure`, and
//! the realtime events channel `realtime-events` at `/realtime/events` (Server-Sent Events at
//! `/realtime/events/<topic>`), sharing the hub, so that a realtime client pointed at `/realtime` receives what
//! `emit`, `emitAll` and `emitRaw` publish. The server selects the subprotocol `pikku.v1` when offered.

mod stateless;

pub use stateless::{StatelessFixture, StoreKind, SUBSCRIPTION_SETTLE};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use pikku::core::middleware::UpgradeRequest;
use pikku::core::SlowConsumerPolicy;
use pikku::events::EventsChannel;
use pikku::prelude::*;
use pikku::server::SubprotocolPolicy;
use pikku::stateless::UserSession;
use pikku::{typed, AppConfig, OriginPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// The settings that differ between scenarios.
#[derive(Debug, Clone)]
pub struct FixtureSettings {
    /// Reverse-RPC timeout (default 30 s; the test settings use 200 ms).
    pub rpc_timeout: Duration,
    /// Ping interval (default 30 s; `row_56_idle_timeout` uses 100 ms).
    pub ping_interval: Duration,
    /// Idle timeout (default 60 s; `row_56_idle_timeout` uses 300 ms).
    pub idle_timeout: Duration,
    /// Outbound queue bound (default 1 MiB; `row_57_slow_consumer_closed` uses 64 KiB).
    pub outbound_queue_bytes: usize,
}

impl FixtureSettings {
    /// The server's defaults.
    #[must_use]
    pub fn defaults() -> Self {
        Self {
            rpc_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            outbound_queue_bytes: 1 << 20,
        }
    }

    /// The test settings most scenarios use: reverse-RPC timeout 200 ms, everything else default.
    #[must_use]
    pub fn test() -> Self {
        Self {
            rpc_timeout: Duration::from_millis(200),
            ..Self::defaults()
        }
    }
}

/// One onDisconnect, as recorded by the fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// The connection's id.
    pub channel_id: String,
    /// The channel name (`events`, `greet`, …).
    pub channel: String,
    /// [`pikku::DisconnectReason::as_str`] of the reason.
    pub reason: String,
}

#[derive(Debug, Default)]
struct RecorderInner {
    disconnects: Mutex<Vec<Disconnect>>,
    rpc_failures: Mutex<Vec<String>>,
    changed: Notify,
}

/// What the fixture's handlers record for the tests.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl Recorder {
    /// Every onDisconnect so far, in order.
    #[must_use]
    pub fn disconnects(&self) -> Vec<Disconnect> {
        self.inner.disconnects.lock().clone()
    }

    /// Waits until at least `n` disconnects are recorded or `timeout` passed; returns them all.
    pub async fn wait_for_disconnects(&self, n: usize, timeout: Duration) -> Vec<Disconnect> {
        let _ = tokio::time::timeout(timeout, async {
            loop {
                let changed = self.inner.changed.notified();
                if self.inner.disconnects.lock().len() >= n {
                    return;
                }
                changed.await;
            }
        })
        .await;
        self.disconnects()
    }

    /// Reasons of failed `rev` calls (`timeout`, `closed`, `remote`, …).
    #[must_use]
    pub fn rpc_failures(&self) -> Vec<String> {
        self.inner.rpc_failures.lock().clone()
    }

    fn record_disconnect(&self, disconnect: Disconnect) {
        self.inner.disconnects.lock().push(disconnect);
        self.inner.changed.notify_waiters();
    }

    fn record_rpc_failure(&self, reason: &str) {
        self.inner.rpc_failures.lock().push(reason.to_owned());
        self.inner.changed.notify_waiters();
    }
}

/// The fixture's services.
#[derive(Debug, Clone, Default)]
pub struct Services {
    recorder: Recorder,
}

/// The fixture's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user id.
    pub user_id: String,
}

/// Served statelessly, the session is stored under its user id.
impl UserSession for User {
    fn user_id(&self) -> Option<&str> {
        Some(&self.user_id)
    }
}

type Cx = Ctx<Services, User>;
/// The `events` channel's handle: opening data is the plain param map, socket state the `count` counter.
type Events<Out = ()> = Channel<Params, Out, u32>;

// ---- events -----------------------------------------------------------------------------------------------------

async fn events_connect(_ctx: Cx, channel: Events<String>) {
    let _ = channel.send("hello!");
}

async fn events_default(_ctx: Cx, _ch: Events, input: Value) -> Value {
    json!({ "defaultGot": input })
}

async fn events_binary(_ctx: Cx, _ch: Events, bytes: Bytes) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

async fn events_disconnect(ctx: Cx, channel: ClosedChannel<Params, u32>) {
    ctx.state().recorder.record_disconnect(Disconnect {
        channel_id: channel.channel_id().to_owned(),
        channel: ctx.channel_name().to_owned(),
        reason: channel.reason().as_str().to_owned(),
    });
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Token {
    token: String,
}

async fn auth(ctx: Cx, _ch: Events, input: Token) -> Value {
    let ok = input.token == "valid";
    if ok {
        ctx.set_session(User {
            user_id: "u1".into(),
        });
    }
    json!({ "authResult": ok })
}

async fn whoami(ctx: Cx, _ch: Events, _: ()) -> Option<String> {
    ctx.session().map(|u| u.user_id)
}

async fn echo_in(_ctx: Cx, _ch: Events, input: Value) -> Value {
    json!({ "got": input })
}

async fn prim(_ctx: Cx, _ch: Events, _: ()) -> &'static str {
    "valid"
}

async fn arr(_ctx: Cx, _ch: Events, _: ()) -> Vec<u32> {
    vec![1, 2]
}

async fn maybe(_ctx: Cx, _ch: Events, _: ()) -> Option<u32> {
    None
}

async fn clash(_ctx: Cx, _ch: Events, _: ()) -> Value {
    json!({ "action": "other", "x": 1 })
}

async fn logout(ctx: Cx, _ch: Events, _: ()) {
    ctx.clear_session();
}

async fn obj(_ctx: Cx, _ch: Events, _: ()) -> Value {
    json!({ "n": 1 })
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Create {
    title: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Created {
    id: u32,
    title: String,
}

async fn create(_ctx: Cx, _ch: Events, input: Create) -> Result<Created, ChannelError> {
    Ok(Created {
        id: 1,
        title: input.title,
    })
}

async fn forbid(_ctx: Cx, _ch: Events, _: ()) -> Result<(), ChannelError> {
    Err(ChannelError::forbidden("Permission denied"))
}

async fn boom(_ctx: Cx, _ch: Events, _: ()) -> Result<(), ChannelError> {
    Err(ChannelError::internal("boom: an unexpected failure"))
}

async fn panics(_ctx: Cx, _ch: Events, _: ()) {
    panic!("the panic route panicked, as it should");
}

async fn slow(_ctx: Cx, _ch: Events, _: ()) -> Value {
    tokio::time::sleep(Duration::from_millis(100)).await;
    json!({ "n": "slow" })
}

async fn fast(_ctx: Cx, _ch: Events, _: ()) -> Value {
    json!({ "n": "fast" })
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Topic {
    topic: String,
}

async fn sub(ctx: Cx, ch: Events, input: Topic) -> Result<(), ChannelError> {
    ctx.hub().subscribe(&input.topic, ch.channel_id()).await?;
    Ok(())
}

async fn unsub(ctx: Cx, ch: Events, input: Topic) -> Result<(), ChannelError> {
    ctx.hub().unsubscribe(&input.topic, ch.channel_id()).await?;
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Emit {
    topic: String,
    #[serde(default)]
    data: Value,
}

async fn emit(ctx: Cx, ch: Events, input: Emit) -> Result<(), ChannelError> {
    let event = json!({ "topic": input.topic, "data": input.data });
    ctx.hub()
        .publish(&input.topic, Some(ch.channel_id()), &event)
        .await?;
    Ok(())
}

async fn emit_all(ctx: Cx, _ch: Events, input: Emit) -> Result<(), ChannelError> {
    let event = json!({ "topic": input.topic, "data": input.data });
    ctx.hub().publish(&input.topic, None, &event).await?;
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EmitRaw {
    topic: String,
    text: Option<String>,
    bytes: Option<Vec<u8>>,
}

async fn emit_raw(ctx: Cx, _ch: Events, input: EmitRaw) -> Result<(), ChannelError> {
    if let Some(text) = input.text {
        ctx.hub().publish(&input.topic, None, &text).await?;
    }
    if let Some(bytes) = input.bytes {
        ctx.hub()
            .publish_binary(&input.topic, None, Bytes::from(bytes))
            .await?;
    }
    Ok(())
}

/// The capability the `rev` route calls on the client.
struct ClientThing;

impl pikku::Capability for ClientThing {
    const NAME: &'static str = "clientThing";
    type Input = Value;
    type Output = Value;
}

async fn rev(ctx: Cx, ch: Events, _: ()) -> Result<Value, ChannelError> {
    match ch.remote::<ClientThing>(json!({ "q": 1 })).await {
        Ok(result) => Ok(json!({ "remoteSaid": result })),
        Err(err) => {
            ctx.state()
                .recorder
                .record_rpc_failure(err.failure().as_str());
            Err(err.into())
        }
    }
}

async fn count(_ctx: Cx, ch: Events, _: ()) -> u32 {
    ch.update_socket_state(|n| {
        let next = n.unwrap_or(0) + 1;
        *n = Some(next);
        next
    })
}

async fn send_empty(_ctx: Cx, ch: Events<String>, _: ()) -> Result<(), ChannelError> {
    ch.send("")?;
    Ok(())
}

async fn bye(_ctx: Cx, ch: Events<String>, _: ()) -> Result<(), ChannelError> {
    ch.send("bye")?;
    ch.close();
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Flood {
    n: usize,
}

async fn flood(_ctx: Cx, ch: Events<String>, input: Flood) {
    let chunk = "x".repeat(16 * 1024);
    for _ in 0..input.n {
        if ch.send(chunk.clone()).is_err() {
            break;
        }
        // Let the connection write between pushes, so only a client that stops reading overflows the queue.
        tokio::task::yield_now().await;
    }
}

async fn ping(_ctx: Cx, _ch: Events, _: ()) -> Value {
    json!({ "pong": true })
}

fn events() -> ChannelRoute<Services, User, Params, u32> {
    ChannelRoute::new("events", "/events")
        .on_connect(typed(events_connect))
        .on_message(typed(events_default))
        .on_binary(typed(events_binary))
        .on_disconnect(typed(events_disconnect))
        .route("action", "auth", Route::new(typed(auth)).auth(false))
        .route("action", "whoami", Route::new(typed(whoami)).auth(false))
        .route("action", "echoIn", Route::new(typed(echo_in)).auth(false))
        .route("action", "prim", Route::new(typed(prim)).auth(false))
        .route("action", "arr", Route::new(typed(arr)).auth(false))
        .route("action", "maybe", Route::new(typed(maybe)).auth(false))
        .route("action", "clash", Route::new(typed(clash)).auth(false))
        .route("action", "logout", typed(logout))
        .route("action", "obj", typed(obj))
        .route("action", "create", typed(create))
        .route("action", "forbid", typed(forbid))
        .route("action", "boom", typed(boom))
        .route("action", "panic", typed(panics))
        .route("action", "slow", typed(slow))
        .route("action", "fast", typed(fast))
        .route("action", "sub", typed(sub))
        .route("action", "unsub", typed(unsub))
        .route("action", "emit", typed(emit))
        .route("action", "emitAll", typed(emit_all))
        .route("action", "emitRaw", typed(emit_raw))
        .route("action", "rev", typed(rev))
        .route("action", "count", typed(count))
        .route("action", "sendEmpty", typed(send_empty))
        .route("action", "bye", typed(bye))
        .route("action", "flood", typed(flood))
        .route("type", "ping", Route::new(typed(ping)).auth(false))
        .calls::<ClientThing>()
        // The `count` counter survives between invocations when the fixture is served statelessly.
        .persist_socket_state()
}

// ---- greet ------------------------------------------------------------------------------------------------------

#[derive(Deserialize, schemars::JsonSchema)]
enum Greeting {
    #[serde(rename = "hi!")]
    Hi,
    #[serde(rename = "hey")]
    Hey,
}

async fn greet_message(_ctx: Cx, _ch: Channel<Params, ()>, greeting: Greeting) -> &'static str {
    match greeting {
        Greeting::Hi => "hello",
        Greeting::Hey => "ola",
    }
}

async fn record_disconnect(ctx: Cx, channel: ClosedChannel<Params>) {
    ctx.state().recorder.record_disconnect(Disconnect {
        channel_id: channel.channel_id().to_owned(),
        channel: ctx.channel_name().to_owned(),
        reason: channel.reason().as_str().to_owned(),
    });
}

fn greet() -> ChannelRoute<Services, User> {
    ChannelRoute::new("greet", "/greet")
        .auth(false)
        .on_message(typed(greet_message))
        .on_disconnect(typed(record_disconnect))
}

// ---- rooms ------------------------------------------------------------------------------------------------------

/// The opening data of `/rooms/:roomId`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Room {
    #[serde(rename = "roomId")]
    room_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

async fn room_connect(_ctx: Cx, ch: Channel<Room, ()>) -> Result<Value, ChannelError> {
    let room = ch.opening_data();
    if room.room_id == "fail" {
        return Err(ChannelError::forbidden("Room is closed"));
    }
    Ok(json!({ "opening": room }))
}

async fn room_info(_ctx: Cx, ch: Channel<Room, ()>, _: ()) -> Value {
    json!({ "roomId": ch.opening_data().room_id })
}

fn rooms() -> ChannelRoute<Services, User, Room> {
    ChannelRoute::new("rooms", "/rooms/:roomId")
        .auth(false)
        .on_connect(typed(room_connect))
        .route("action", "info", typed(room_info))
}

// ---- secure -----------------------------------------------------------------------------------------------------

async fn bearer(req: UpgradeRequest<Services, User>) -> Result<(), ChannelError> {
    match req.header("authorization") {
        Some("Bearer good") => {
            req.set_session(User {
                user_id: "u2".into(),
            });
            Ok(())
        }
        Some("Bearer banned") => Err(ChannelError::forbidden("Account disabled")),
        _ => Err(ChannelError::unauthorized("Missing or invalid token")),
    }
}

async fn secure_connect(ctx: Cx, _ch: Channel<Params, ()>) -> Value {
    json!({ "user": ctx.session().map(|u| u.user_id) })
}

fn secure() -> ChannelRoute<Services, User> {
    ChannelRoute::new("secure", "/secure")
        .upgrade_middleware(bearer)
        .on_connect(typed(secure_connect))
        .on_disconnect(typed(record_disconnect))
}

// ---- the app ----------------------------------------------------------------------------------------------------

/// The whole fixture as an app, recording into `recorder`.
pub fn fixture_app(settings: &FixtureSettings, recorder: Recorder) -> App<Services, User> {
    App::new(Services { recorder })
        .configure(|config: &mut AppConfig| {
            config.rpc_timeout = Some(settings.rpc_timeout);
            config.outbound_queue_bytes = settings.outbound_queue_bytes;
            config.slow_consumer = SlowConsumerPolicy::Close;
            // The protocol checks `Origin` only against an allowlist, and conformance clients may run as a web
            // page of another origin.
            config.origin = OriginPolicy::Any;
        })
        // Every handler has schemas, so the fixture's description types a generated client completely.
        .require_schemas()
        .channel(events())
        .channel(greet())
        .channel(rooms())
        .channel(secure())
        .channel(
            EventsChannel::new("/realtime/events")
                .name("realtime-events")
                .build(),
        )
}

/// The server settings that go with `settings`.
#[must_use]
pub fn server_config(settings: &FixtureSettings) -> ServerConfig {
    ServerConfig {
        ping_interval: settings.ping_interval,
        idle_timeout: settings.idle_timeout,
        subprotocols: SubprotocolPolicy::list(["pikku.v1"]),
        ..ServerConfig::default()
    }
}

/// The fixture served on 127.0.0.1 on a free port, for tests: by the embedded server, or, inside
/// [`serving_statelessly`], by workers behind a real Pushpin.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    serving: Serving,
    recorder: Recorder,
}

#[derive(Debug)]
enum Serving {
    Embedded {
        server: ChannelServer<Services, User>,
        stop: Arc<Notify>,
    },
    Stateless(Box<StatelessFixture>),
}

tokio::task_local! {
    /// The store of the stateless fixture that `TestServer::start` starts inside `serving_statelessly`.
    static STATELESS_STORE: StoreKind;
}

/// Runs `test` with every [`TestServer::start`] in it serving the fixture statelessly: two workers on `store`
/// behind a real Pushpin. The same scenario code then checks both ways of serving.
pub async fn serving_statelessly<F: std::future::Future>(store: StoreKind, test: F) -> F::Output {
    STATELESS_STORE.scope(store, test).await
}

/// Whether the current test runs inside [`serving_statelessly`]: the gateway then decides what only a gateway
/// can (its hop-by-hop headers, for one).
#[must_use]
pub fn is_serving_statelessly() -> bool {
    STATELESS_STORE.try_with(|_| ()).is_ok()
}

impl TestServer {
    /// Starts the fixture on 127.0.0.1:0 (inside [`serving_statelessly`]: behind Pushpin).
    ///
    /// # Panics
    /// If no port can be bound, or the stateless fixture cannot start.
    pub async fn start(settings: FixtureSettings) -> TestServer {
        if let Ok(store) = STATELESS_STORE.try_with(Clone::clone) {
            let fixture = StatelessFixture::start(settings, &store, 2).await;
            return TestServer {
                addr: fixture.addr(),
                recorder: fixture.recorder().clone(),
                serving: Serving::Stateless(Box::new(fixture)),
            };
        }
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        TestServer::start_at(settings, any_port)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// Whether the fixture is served statelessly (see [`serving_statelessly`]).
    #[must_use]
    pub fn is_stateless(&self) -> bool {
        matches!(self.serving, Serving::Stateless(_))
    }

    /// The stateless fixture, when the fixture is served statelessly.
    pub fn stateless(&mut self) -> Option<&mut StatelessFixture> {
        match &mut self.serving {
            Serving::Stateless(fixture) => Some(fixture),
            Serving::Embedded { .. } => None,
        }
    }

    /// Starts the fixture on `addr`, for tests that restart a server where clients expect it (the `addr` of a
    /// [`TestServer`] that was dropped: its port is free again once it stopped listening, which may take a
    /// moment, so retry on `AddrInUse`).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start_at(
        settings: FixtureSettings,
        addr: SocketAddr,
    ) -> std::io::Result<TestServer> {
        let recorder = Recorder::default();
        let server = ChannelServer::new(
            fixture_app(&settings, recorder.clone()),
            server_config(&settings),
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        tokio::spawn(
            server
                .clone()
                .serve_until(listener, async move { stopped.notified().await }),
        );
        Ok(TestServer {
            addr,
            serving: Serving::Embedded { server, stop },
            recorder,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port><path_and_query>`.
    #[must_use]
    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// What the handlers recorded.
    #[must_use]
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Local hub subscribers of `topic` (none when served statelessly: see
    /// [`count_subscribers`](Self::count_subscribers)).
    #[must_use]
    pub fn subscriber_count(&self, topic: &str) -> usize {
        match &self.serving {
            Serving::Embedded { server, .. } => server.hub().subscriber_count(topic),
            Serving::Stateless(_) => 0,
        }
    }

    /// Subscribers of `topic`: the local hub's, or, served statelessly, the subscription store's.
    pub async fn count_subscribers(&self, topic: &str) -> usize {
        match &self.serving {
            Serving::Embedded { server, .. } => server.hub().subscriber_count(topic),
            Serving::Stateless(fixture) => fixture
                .stores()
                .subscriptions
                .channel_ids(topic)
                .await
                .map_or(0, |ids| ids.len()),
        }
    }

    /// Graceful shutdown: new upgrades get 503, open connections close with 1001 `going away` and run their
    /// disconnect sequence. The listener keeps answering until the `TestServer` is dropped.
    ///
    /// # Panics
    /// Served statelessly: shutdown is the gateway's.
    pub async fn begin_shutdown(&self) {
        match &self.serving {
            Serving::Embedded { server, .. } => server.shutdown().await,
            Serving::Stateless(_) => panic!("a stateless fixture's shutdown is the gateway's"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Serving::Embedded { stop, .. } = &self.serving {
            stop.notify_one();
        }
    }
}
