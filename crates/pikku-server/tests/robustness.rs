//! Robustness of the embedded server over real sockets (disconnects, shutdown, closing and limits): connection churn
//! without leaks, a chaos client sending random frames, graceful shutdown under load, stalled clients, and a
//! binary-heavy exchange.
//!
//! The random inputs come from a small xorshift generator with fixed seeds, so every run sends the same bytes;
//! only the scheduling varies. The chaos client checks every connection against an independent model of an
//! RFC 6455 reader with the server's limits (which close codes may end it, or that it keeps working).
//!
//! Every wait is bounded by [`WAIT`], which is generous on purpose: no test asserts an upper bound on speed. A
//! panic hook records panics raised outside this file (in a connection task, say), and each test requires none.
//!
//! Stalled clients are each ended by the timeout that applies to them: a client that stops reading by the close
//! timeout, a request head that never completes by the handshake timeout, a frame that never completes by the
//! idle timeout. None of them holds up a shutdown, a stop of the listener or any other client.

use pikku_testkit::eventually;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use pikku_core::{
    App, AppConfig, Channel, ChannelError, ChannelRoute, ChannelState, ClosedChannel, Ctx, Params,
};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::http::SAMPLE_ACCEPT;
use pikku_testkit::ws::op;
use pikku_testkit::{
    client_frame, raw_upgrade, read_head, upgrade_request, RawFrame, RawWs, Rng, MASK,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch, RwLock, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long we wait for something that must happen.
const WAIT: Duration = Duration::from_secs(10);

/// The channel every test connects to.
const PATH: &str = "/r";

/// Tests that load the machine hold this lock shared; those that rely on a 300 ms idle timeout hold it alone, so
/// a busy neighbour cannot starve their well-behaved clients into an idle close.
static TIMING: RwLock<()> = RwLock::const_new(());

// ---------------------------------------------------------------------------------------------------------
// Panics outside the test code
// ---------------------------------------------------------------------------------------------------------

static PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Records every panic raised outside this file (a connection task, a handler, the client library), then lets
/// the previous hook print it as usual.
fn watch_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = info
                .location()
                .is_some_and(|l| l.file().ends_with("robustness.rs"));
            if !ours {
                PANICS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
}

#[track_caller]
fn assert_no_panics() {
    let panics = PANICS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(panics.is_empty(), "panics outside the tests: {panics:#?}");
}

// ---------------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------------

/// A server on 127.0.0.1:0 run by `serve_until`; stops listening when dropped.
struct Server<S, U> {
    server: ChannelServer<S, U>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<std::io::Result<()>>>,
}

impl<S, U> Server<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    async fn start(app: App<S, U>, config: ServerConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = ChannelServer::new(app, config);
        let serving = tokio::spawn(server.clone().serve_until(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            server,
            addr,
            stop: Some(stop),
            serving: Some(serving),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}{PATH}", self.addr)
    }

    /// Stops listening and requires `serve_until` to return.
    async fn stop_listening(&mut self) {
        self.stop_listening_within(WAIT).await;
    }

    /// Stops listening and requires `serve_until` to return within `limit`.
    async fn stop_listening_within(&mut self, limit: Duration) {
        drop(self.stop.take());
        let serving = self.serving.take().expect("still serving");
        tokio::time::timeout(limit, serving)
            .await
            .unwrap_or_else(|_| {
                panic!("serve_until did not return within {limit:?} of its stop signal")
            })
            .expect("serve task")
            .expect("serve_until");
    }
}

// ---------------------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------------------

/// What the handlers record for the tests.
struct Rec {
    /// Channel ids whose onConnect ran.
    connected: Mutex<Vec<String>>,
    /// Every onDisconnect: channel id → reasons (each test requires exactly one per channel).
    disconnects: Mutex<HashMap<String, Vec<&'static str>>>,
    /// `slow` handlers that started.
    slow_started: AtomicUsize,
    /// `slow` handlers that finished: channel id and whether its onDisconnect had already run.
    slow_done: Mutex<Vec<(String, bool)>>,
    /// Lets the `slow` handlers go on.
    release: watch::Sender<bool>,
    /// `flood` handlers that finished their loop.
    floods_done: AtomicUsize,
}

impl Rec {
    fn new() -> Arc<Rec> {
        Arc::new(Rec {
            connected: Mutex::default(),
            disconnects: Mutex::default(),
            slow_started: AtomicUsize::new(0),
            slow_done: Mutex::default(),
            release: watch::channel(false).0,
            floods_done: AtomicUsize::new(0),
        })
    }

    fn disconnects(&self) -> HashMap<String, Vec<&'static str>> {
        self.disconnects.lock().clone()
    }

    fn disconnect_count(&self) -> usize {
        self.disconnects.lock().values().map(Vec::len).sum()
    }
}

type RecCtx = Ctx<Arc<Rec>, ()>;

/// onConnect: `{"id": <channelId>}`, so a client knows which onDisconnect is its own.
async fn on_connect(ctx: RecCtx, ch: Channel<Params, ()>) -> Value {
    ctx.state()
        .connected
        .lock()
        .push(ch.channel_id().to_owned());
    json!({ "id": ch.channel_id() })
}

async fn on_disconnect(ctx: RecCtx, ch: ClosedChannel<Params>) {
    ctx.state()
        .disconnects
        .lock()
        .entry(ch.channel_id().to_owned())
        .or_default()
        .push(ch.reason().as_str());
}

async fn echo(_ctx: RecCtx, _ch: Channel<Params, ()>, input: Value) -> Value {
    json!({ "got": input })
}

async fn echo_binary(_ctx: RecCtx, _ch: Channel<Params, ()>, bytes: Bytes) -> Bytes {
    bytes
}

#[derive(Deserialize)]
struct Topic {
    topic: String,
}

async fn subscribe(
    ctx: RecCtx,
    ch: Channel<Params, ()>,
    input: Topic,
) -> Result<Value, ChannelError> {
    ctx.hub().subscribe(&input.topic, ch.channel_id()).await?;
    Ok(json!({ "subscribed": input.topic }))
}

/// Publishes `{"event": topic, "from": id}` to the topic's other subscribers.
async fn publish(
    ctx: RecCtx,
    ch: Channel<Params, ()>,
    input: Topic,
) -> Result<Value, ChannelError> {
    let event = json!({ "event": input.topic, "from": ch.channel_id() });
    let delivered = ctx
        .hub()
        .publish(&input.topic, Some(ch.channel_id()), &event)
        .await?;
    Ok(json!({ "delivered": delivered }))
}

async fn bye(_ctx: RecCtx, ch: Channel<Params, ()>, _: ()) {
    ch.close();
}

/// Waits for the test's release, then 200 ms more, then answers.
async fn slow(ctx: RecCtx, ch: Channel<Params, ()>, _: ()) -> Value {
    let rec = ctx.state();
    let mut release = rec.release.subscribe();
    rec.slow_started.fetch_add(1, Ordering::SeqCst);
    let _ = tokio::time::timeout(WAIT, release.wait_for(|go| *go)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let disconnected = rec.disconnects.lock().contains_key(ch.channel_id());
    rec.slow_done
        .lock()
        .push((ch.channel_id().to_owned(), disconnected));
    json!({ "n": "slow" })
}

#[derive(Deserialize)]
struct FloodInput {
    /// Bytes per push.
    size: usize,
    /// Pushes; 0 for as many as the channel takes.
    count: usize,
    /// Pause between pushes; 0 pushes them all at once.
    every_ms: u64,
}

/// Pushes strings of `size` bytes until `count` or until the channel refuses one.
async fn flood(ctx: RecCtx, ch: Channel<Params, String>, input: FloodInput) {
    let chunk = "f".repeat(input.size);
    let mut sent = 0;
    while input.count == 0 || sent < input.count {
        if ch.send(chunk.clone()).is_err() {
            break;
        }
        sent += 1;
        if input.every_ms > 0 {
            tokio::time::sleep(Duration::from_millis(input.every_ms)).await;
        }
    }
    ctx.state().floods_done.fetch_add(1, Ordering::SeqCst);
}

fn app(rec: &Arc<Rec>, configure: impl FnOnce(&mut AppConfig)) -> App<Arc<Rec>, ()> {
    App::new(rec.clone()).configure(configure).channel(
        ChannelRoute::new("robust", PATH)
            .auth(false)
            .on_connect(on_connect)
            .route("action", "echo", echo)
            .route("action", "sub", subscribe)
            .route("action", "pub", publish)
            .route("action", "bye", bye)
            .route("action", "slow", slow)
            .route("action", "flood", flood)
            .on_binary(echo_binary)
            .on_disconnect(on_disconnect),
    )
}

// ---------------------------------------------------------------------------------------------------------
// tokio-tungstenite client
// ---------------------------------------------------------------------------------------------------------

/// A data or close frame as a client sees it (pings and pongs are skipped), or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
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
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("upgrade of {url} timed out"))
            .unwrap_or_else(|e| panic!("upgrade of {url} failed: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        Client { ws }
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

    /// The next data or close frame.
    async fn next(&mut self) -> Frame {
        let read = async {
            loop {
                return match self.ws.next().await {
                    None => Frame::Ended("stream ended".into()),
                    Some(Err(e)) => Frame::Ended(e.to_string()),
                    Some(Ok(Message::Text(t))) => Frame::Text(t.to_string()),
                    Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(c))) => {
                        // Sends our half of the closing handshake.
                        let _ = self.ws.flush().await;
                        Frame::Close(c.map(|c| (u16::from(c.code), c.reason.to_string())))
                    }
                    Some(Ok(Message::Frame(_))) => Frame::Ended("raw frame".into()),
                };
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"))
    }

    async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("expected JSON, got text {text:?}")),
            other => panic!("expected a JSON text frame, got {other}"),
        }
    }

    /// The next JSON frame that is not a hub event.
    async fn reply(&mut self) -> Value {
        loop {
            let value = self.next_json().await;
            if value.get("event").is_none() {
                return value;
            }
        }
    }

    /// Reads the onConnect frame; returns the channel id.
    async fn hello(&mut self) -> String {
        let hello = self.next_json().await;
        hello["id"]
            .as_str()
            .unwrap_or_else(|| panic!("expected {{\"id\":…}}, got {hello}"))
            .to_owned()
    }

    /// Sends `{"action":"echo","s":n}` and requires the echo as the very next frame.
    async fn sentinel(&mut self, n: u64) {
        self.send_json(json!({"action": "echo", "s": n})).await;
        let reply = self.next_json().await;
        assert_eq!(reply, json!({"got": {"s": n}, "action": "echo"}));
    }

    /// Sends a close frame with 1000 and reads (skipping hub events) up to the echo, then the end.
    async fn close(mut self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        tokio::time::timeout(WAIT, self.ws.close(Some(frame)))
            .await
            .expect("close timed out")
            .expect("close failed");
        self.expect_close_skipping_events(1000).await;
    }

    /// Reads past hub events to a close frame with `code`, then requires the end of the connection.
    async fn expect_close_skipping_events(mut self, code: u16) {
        loop {
            match self.next().await {
                Frame::Text(t) if t.contains("\"event\"") => {}
                Frame::Close(Some((c, _))) if c == code => break,
                other => panic!("expected close {code}, got {other}"),
            }
        }
        match self.next().await {
            Frame::Ended(_) => {}
            other => panic!("expected the end after the close, got {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Raw HTTP and raw WebSocket
// ---------------------------------------------------------------------------------------------------------

/// An upgrade over plain TCP that must be refused; returns the status, the headers and the body.
async fn refused_upgrade(addr: SocketAddr) -> (u16, Vec<(String, String)>, Value) {
    let response = raw_upgrade(addr, PATH, &[]).await;
    let body = serde_json::from_slice(&response.body).expect("a JSON body");
    (response.status, response.headers, body)
}

/// Checks the 503 of an upgrade during or after a shutdown.
async fn assert_shutting_down_refusal(addr: SocketAddr) {
    let (status, headers, body) = refused_upgrade(addr).await;
    assert_eq!(status, 503, "{headers:?} {body}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(header("content-type").starts_with("application/json"));
    assert!(header("connection").eq_ignore_ascii_case("close"));
    assert_eq!(body["name"], "ServiceUnavailableError", "{body}");
    assert_eq!(body["message"], "Server is shutting down", "{body}");
    assert!(body["errorId"].as_str().is_some_and(|id| !id.is_empty()));
}

/// What this file's tests read from a raw client beyond [`RawWs`] itself.
trait RawWsExt {
    /// The next frame, skipping pings.
    async fn frame_skipping_pings(&mut self) -> Option<RawFrame>;

    /// Requires a close frame with `code` next (pings skipped); returns its reason.
    async fn expect_close(&mut self, code: u16) -> String;

    /// Reads the onConnect frame; returns the channel id.
    async fn hello(&mut self) -> String;
}

impl<R: AsyncRead + Unpin> RawWsExt for RawWs<R> {
    async fn frame_skipping_pings(&mut self) -> Option<RawFrame> {
        loop {
            match self.next_frame().await {
                Some((_, op::PING, _)) => continue,
                other => return other,
            }
        }
    }

    async fn expect_close(&mut self, code: u16) -> String {
        match self.frame_skipping_pings().await {
            Some((true, op::CLOSE, p)) if p.len() >= 2 => {
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), code, "close code");
                String::from_utf8(p[2..].to_vec()).expect("UTF-8 reason")
            }
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    async fn hello(&mut self) -> String {
        match self.next_frame().await {
            Some((true, op::TEXT, p)) => {
                let hello: Value = serde_json::from_slice(&p).expect("JSON hello");
                hello["id"].as_str().expect("hello id").to_owned()
            }
            other => panic!("expected the hello frame, got {other:?}"),
        }
    }
}

/// Connects with a small receive buffer, for a client that stops reading.
async fn connect_small_buffer(addr: SocketAddr) -> RawWs {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    RawWs::upgrade(stream, addr, PATH).await
}

// ---------------------------------------------------------------------------------------------------------
// 1. Churn: 1,000 connections open and close; nothing is left behind
// ---------------------------------------------------------------------------------------------------------

const CHURN_CONNECTIONS: usize = 1000;
const CHURN_TOPICS: usize = 10;
const CHURN_CONCURRENCY: usize = 50;

fn churn_topic(i: usize) -> String {
    format!("churn-{}", i % CHURN_TOPICS)
}

/// One churning client: subscribes, publishes, echoes, then leaves in one of three ways. Returns its channel id
/// and the disconnect reason the server must record.
async fn churn_one(i: usize, url: String) -> (String, &'static str) {
    let mut client = Client::connect(&url).await;
    let id = client.hello().await;
    let topic = churn_topic(i);
    client
        .send_json(json!({"action": "sub", "topic": topic}))
        .await;
    assert_eq!(
        client.reply().await,
        json!({"subscribed": topic, "action": "sub"})
    );
    client
        .send_json(json!({"action": "pub", "topic": topic}))
        .await;
    let published = client.reply().await;
    assert_eq!(published["action"], "pub", "{published}");
    assert!(published["delivered"].is_u64(), "{published}");
    client.send_json(json!({"action": "echo", "i": i})).await;
    assert_eq!(
        client.reply().await,
        json!({"got": {"i": i}, "action": "echo"})
    );
    match i % 4 {
        // Half close with a close frame…
        0 | 1 => {
            client.close().await;
            (id, "client_closed")
        }
        // …a quarter just drop the TCP connection…
        2 => {
            drop(client);
            (id, "transport_error")
        }
        // …and a quarter are closed by the server (`channel.close()`).
        _ => {
            client.send_json(json!({"action": "bye"})).await;
            client.expect_close_skipping_events(1000).await;
            (id, "server_closed")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_a_thousand_connections_leaves_nothing_behind() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        close_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let srv = Server::start(app(&rec, |_| {}), config).await;
    let hub = srv.server.hub().clone();

    let slots = Arc::new(Semaphore::new(CHURN_CONCURRENCY));
    let mut clients = JoinSet::new();
    for i in 0..CHURN_CONNECTIONS {
        let slot = slots.clone().acquire_owned().await.expect("semaphore");
        let url = srv.url();
        clients.spawn(async move {
            let result = churn_one(i, url).await;
            drop(slot);
            result
        });
    }
    let mut expected = HashMap::new();
    while let Some(joined) = clients.join_next().await {
        let (id, reason) = joined.expect("a churning client failed");
        assert!(
            expected.insert(id.clone(), reason).is_none(),
            "channel id {id} given twice"
        );
    }
    assert_eq!(expected.len(), CHURN_CONNECTIONS);

    eventually("every connection to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    assert_eq!(hub.registry().len(), 0, "closed channels stay registered");
    for t in 0..CHURN_TOPICS {
        assert_eq!(hub.subscriber_count(&churn_topic(t)), 0, "topic {t}");
    }
    let connected: HashSet<String> = rec.connected.lock().iter().cloned().collect();
    assert_eq!(connected.len(), CHURN_CONNECTIONS);
    assert!(expected.keys().all(|id| connected.contains(id)));
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), CHURN_CONNECTIONS);
    for (id, reason) in &expected {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&[*reason][..]),
            "onDisconnect of {id}"
        );
    }

    // A fresh pair still works, and a publication reaches exactly the one live subscriber.
    let mut listener = Client::connect(&srv.url()).await;
    let listener_id = listener.hello().await;
    listener
        .send_json(json!({"action": "sub", "topic": churn_topic(0)}))
        .await;
    assert_eq!(listener.reply().await["subscribed"], churn_topic(0));
    let mut speaker = Client::connect(&srv.url()).await;
    let speaker_id = speaker.hello().await;
    speaker
        .send_json(json!({"action": "pub", "topic": churn_topic(0)}))
        .await;
    assert_eq!(
        speaker.reply().await,
        json!({"delivered": 1, "action": "pub"})
    );
    assert_eq!(
        listener.next_json().await,
        json!({"event": churn_topic(0), "from": speaker_id})
    );
    listener.sentinel(1).await;
    speaker.sentinel(2).await;
    listener.close().await;
    speaker.close().await;
    eventually("the fresh pair to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    assert_eq!(rec.disconnects().get(&listener_id).map(Vec::len), Some(1));
    assert_eq!(rec.disconnect_count(), CHURN_CONNECTIONS + 2);
    assert_eq!(hub.registry().len(), 0);
    assert_eq!(hub.subscriber_count(&churn_topic(0)), 0);
    assert_no_panics();
}

// ---------------------------------------------------------------------------------------------------------
// 2. Chaos: random frames after a valid handshake
// ---------------------------------------------------------------------------------------------------------

/// The message limit of the chaos server.
const CHAOS_MAX: usize = 4096;
/// Chaos connections, all at once.
const CHAOS_CONNECTIONS: u64 = 200;

/// Holds the chaos connections that keep working open until the bystander has answered beside them.
struct Hold {
    held: AtomicUsize,
    release: watch::Sender<bool>,
}

/// How a connection may end, as its client sees the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The echo of the client's own close frame: its code, or an empty payload.
    Echo(Option<u16>),
    /// The server closes for a violation: 1002, 1007 or 1009, with a reason.
    Violation(u16),
}

impl Close {
    /// The onDisconnect reason that goes with this close.
    fn reason(self) -> &'static str {
        match self {
            Close::Echo(_) => "client_closed",
            Close::Violation(1002) => "protocol_error",
            Close::Violation(1007) => "invalid_utf8",
            Close::Violation(1009) => "message_too_big",
            Close::Violation(code) => panic!("no violation closes with {code}"),
        }
    }
}

/// What the server may do with a chaos script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Every frame is valid and complete: the connection keeps working.
    Open,
    /// The connection ends with one of these closes; or, when `may_end`, the script stops inside a frame and the
    /// server may just see the end of the stream.
    Ends { closes: Vec<Close>, may_end: bool },
}

/// A frame header as far as the bytes tell.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    len: u64,
}

/// An independent model of a server-side RFC 6455 reader with a message limit (RFC 6455, section 5, with the
/// protocol's close codes and its ignored empty text frames), fed the bytes a chaos client sends. Where the RFC
/// leaves the choice to the implementation (which of two violations of one frame is reported, whether an invalid
/// UTF-8 fragment fails before its message completes, whether a violation is reported before the rest of its frame
/// arrives), every choice is allowed.
struct Model {
    max: usize,
    /// Bytes not yet consumed: an incomplete frame (or, once ended, everything from the deciding frame on).
    buf: Vec<u8>,
    /// A fragmented message being reassembled: its opcode and bytes so far.
    fragment: Option<(u8, Vec<u8>)>,
    /// Complete non-empty text messages, each answered with one text frame.
    texts: usize,
    /// Complete binary messages, each echoed.
    binaries: usize,
    /// Ping payloads (each answered, though pongs may be coalesced).
    pings: Vec<Vec<u8>>,
    /// Set once the connection must end: the closes allowed and the bytes the deciding frame needs.
    ended: Option<(Vec<Close>, u64)>,
}

impl Model {
    fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            fragment: None,
            texts: 0,
            binaries: 0,
            pings: Vec::new(),
            ended: None,
        }
    }

    /// Whether the message being reassembled is text that can no longer become UTF-8.
    fn fragment_is_bad_utf8(&self) -> bool {
        matches!(&self.fragment, Some((op::TEXT, bytes))
            if std::str::from_utf8(bytes).is_err_and(|e| e.error_len().is_some()))
    }

    /// The violations that the first bytes of `b` already show, and the header once it is all there.
    fn check_header(&self, b: &[u8]) -> (Vec<Close>, Option<Header>) {
        let mut codes = Vec::new();
        let Some(&b0) = b.first() else {
            return (codes, None);
        };
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        let control = opcode & 0x08 != 0;
        let known = matches!(opcode, 0x0..=0x2 | 0x8..=0xA);
        let fragmenting = self.fragment.is_some();
        if b0 & 0x70 != 0
            || !known
            || (control && !fin)
            || (opcode == op::CONTINUATION && !fragmenting)
            || (matches!(opcode, op::TEXT | op::BINARY) && fragmenting)
        {
            codes.push(Close::Violation(1002));
        }
        let Some(&b1) = b.get(1) else {
            return (codes, None);
        };
        if b1 & 0x80 == 0 {
            codes.push(Close::Violation(1002));
        }
        let (len, ext) = match b1 & 0x7f {
            126 => (
                b.get(2..4)
                    .map(|x| u64::from(u16::from_be_bytes([x[0], x[1]]))),
                2,
            ),
            127 => (
                b.get(2..10)
                    .map(|x| u64::from_be_bytes(x.try_into().unwrap())),
                8,
            ),
            n => (Some(u64::from(n)), 0),
        };
        let Some(len) = len else {
            return (dedup(codes), None);
        };
        if (ext == 2 && len < 126)
            || (ext == 8 && (len >> 63 != 0 || len <= u64::from(u16::MAX)))
            || (control && len > 125)
        {
            codes.push(Close::Violation(1002));
        }
        let so_far = match &self.fragment {
            Some((_, bytes)) if opcode == op::CONTINUATION => bytes.len() as u64,
            _ => 0,
        };
        if !control && so_far.saturating_add(len) > self.max as u64 {
            codes.push(Close::Violation(1009));
        }
        let masked = b1 & 0x80 != 0;
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        let Some(mask) = b.get(2 + ext..header_len) else {
            return (dedup(codes), None);
        };
        let header = Header {
            fin,
            opcode,
            mask: mask.try_into().unwrap_or([0; 4]),
            header_len,
            len,
        };
        (dedup(codes), Some(header))
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while self.ended.is_none() {
            let (codes, header) = self.check_header(&self.buf);
            if !codes.is_empty() {
                // Decided by the header, though the server may wait for the rest of it or of the frame.
                let needs =
                    header.map_or(u64::MAX, |h| (h.header_len as u64).saturating_add(h.len));
                self.end(codes, needs);
                return;
            }
            let Some(header) = header else {
                return;
            };
            let total = header.header_len + header.len as usize;
            if self.buf.len() < total {
                return;
            }
            let mut payload = self.buf[header.header_len..total].to_vec();
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= header.mask[i % 4];
            }
            self.buf.drain(..total);
            self.on_frame(header.fin, header.opcode, payload);
        }
    }

    fn on_frame(&mut self, fin: bool, opcode: u8, payload: Vec<u8>) {
        match opcode {
            op::TEXT | op::BINARY if fin => self.deliver(opcode, payload),
            op::TEXT | op::BINARY => self.fragment = Some((opcode, payload)),
            op::CONTINUATION => {
                let (first, mut bytes) = self.fragment.take().expect("checked with the header");
                bytes.extend_from_slice(&payload);
                if fin {
                    self.deliver(first, bytes);
                } else {
                    self.fragment = Some((first, bytes));
                }
            }
            op::CLOSE => {
                let close = match payload.as_slice() {
                    [] => vec![Close::Echo(None)],
                    [_] => vec![Close::Violation(1002)],
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        match code {
                            _ if std::str::from_utf8(reason).is_err() => match code {
                                1000..=1003 | 1007..=1014 | 3000..=4999 => {
                                    vec![Close::Violation(1007)]
                                }
                                // Both rules are broken.
                                _ => vec![Close::Violation(1002), Close::Violation(1007)],
                            },
                            1000..=1003 | 1007..=1011 | 3000..=4999 => {
                                vec![Close::Echo(Some(code))]
                            }
                            // Registered after RFC 6455: a server may accept them or not.
                            1012..=1014 => vec![Close::Echo(Some(code)), Close::Violation(1002)],
                            _ => vec![Close::Violation(1002)],
                        }
                    }
                };
                self.end(close, 0);
            }
            op::PING => self.pings.push(payload),
            _ => {} // pong
        }
    }

    fn deliver(&mut self, opcode: u8, payload: Vec<u8>) {
        if opcode == op::BINARY {
            self.binaries += 1;
        } else if std::str::from_utf8(&payload).is_err() {
            self.end(vec![Close::Violation(1007)], 0);
        } else if !payload.is_empty() {
            self.texts += 1;
        }
    }

    fn end(&mut self, mut closes: Vec<Close>, needs: u64) {
        if self.fragment_is_bad_utf8() {
            closes.push(Close::Violation(1007));
        }
        self.ended = Some((dedup(closes), needs));
    }

    /// What the server may do once the client has sent everything fed so far.
    fn verdict(&self) -> Verdict {
        match &self.ended {
            Some((closes, needs)) => Verdict::Ends {
                closes: closes.clone(),
                may_end: (self.buf.len() as u64) < *needs,
            },
            None if self.buf.is_empty() => Verdict::Open,
            None => {
                // Inside a frame: the server sees the end of the stream, unless it already decided.
                let (mut closes, _) = self.check_header(&self.buf);
                if self.fragment_is_bad_utf8() {
                    closes.push(Close::Violation(1007));
                }
                Verdict::Ends {
                    closes: dedup(closes),
                    may_end: true,
                }
            }
        }
    }
}

fn dedup(mut closes: Vec<Close>) -> Vec<Close> {
    let mut seen = Vec::new();
    closes.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    closes
}

/// A message, in one frame or in fragments, sometimes with a ping between fragments.
fn message(rng: &mut Rng, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let pieces = if payload.len() > 1 && rng.chance(30) {
        2 + rng.below(3)
    } else {
        1
    };
    let mut bounds: Vec<usize> = (1..pieces).map(|_| rng.below(payload.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.insert(0, 0);
    bounds.push(payload.len());
    let mut out = Vec::new();
    for (i, range) in bounds.windows(2).enumerate() {
        let opcode = if i == 0 { opcode } else { op::CONTINUATION };
        let fin = if i + 1 == pieces { 0x80 } else { 0 };
        let mask = rng.mask();
        out.extend(client_frame(
            fin | opcode,
            &payload[range[0]..range[1]],
            Some(mask),
        ));
        if i + 1 < pieces && rng.chance(25) {
            let len = rng.below(10);
            let ping = rng.bytes(len);
            let mask = rng.mask();
            out.extend(client_frame(0x80 | op::PING, &ping, Some(mask)));
        }
    }
    out
}

/// One valid action: a message, a ping or a pong, never over the limit.
fn valid_action(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    match rng.below(100) {
        0..=39 => {
            let pad = if rng.chance(5) {
                3900 + rng.below(150)
            } else {
                rng.below(200)
            };
            let text = json!({"action": "echo", "k": rng.below(1000), "pad": rng.ascii(pad)});
            let text = text.to_string();
            let text = if text.len() > CHAOS_MAX {
                "{}".to_owned()
            } else {
                text
            };
            ("echo", message(rng, op::TEXT, text.as_bytes()))
        }
        40..=54 => {
            let chars = rng.below(120);
            let text = rng.unicode(chars);
            ("unicode text", message(rng, op::TEXT, text.as_bytes()))
        }
        55..=59 => (
            "empty text",
            client_frame(0x80 | op::TEXT, b"", Some(rng.mask())),
        ),
        60..=79 => {
            let len = if rng.chance(30) {
                rng.pick(&[0, 1, 125, 126, 4095, 4096])
            } else {
                rng.below(2000)
            };
            let bytes = rng.bytes(len);
            ("binary", message(rng, op::BINARY, &bytes))
        }
        80..=91 => {
            let len = rng.below(126);
            let payload = rng.bytes(len);
            (
                "ping",
                client_frame(0x80 | op::PING, &payload, Some(rng.mask())),
            )
        }
        _ => {
            let len = rng.below(126);
            let payload = rng.bytes(len);
            (
                "pong",
                client_frame(0x80 | op::PONG, &payload, Some(rng.mask())),
            )
        }
    }
}

/// One action that may break the rules, leave a fragment open, or stop inside a frame.
fn chaotic_action(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    match rng.below(100) {
        0..=14 => {
            let pad = 3950 + rng.below(300);
            let text = json!({"action": "echo", "pad": rng.ascii(pad)}).to_string();
            (
                "echo near the limit",
                message(rng, op::TEXT, text.as_bytes()),
            )
        }
        15..=22 => {
            let len = rng.pick(&[4096, 4097, 4200, 5000, 9000, 70_000]);
            let bytes = rng.bytes(len);
            ("big binary", message(rng, op::BINARY, &bytes))
        }
        23..=29 => {
            let len = rng.below(40);
            let mut text = rng.ascii(len).into_bytes();
            let bad: &[u8] = rng.pick(&[
                &[0xFF][..],
                &[0xC3][..],
                &[0xE2, 0x82][..],
                &[0xED, 0xA0, 0x80][..],
                &[0xF5, 0x80, 0x80, 0x80][..],
                &[0xC0, 0xAF][..],
            ]);
            let at = rng.below(text.len() + 1);
            text.splice(at..at, bad.iter().copied());
            ("invalid UTF-8", message(rng, op::TEXT, &text))
        }
        30..=35 => {
            let len = 120 + rng.below(10);
            let payload = rng.bytes(len);
            (
                "long ping",
                client_frame(0x80 | op::PING, &payload, Some(rng.mask())),
            )
        }
        36..=42 => {
            let first = rng.byte() & 0x8F;
            let len = rng.below(20);
            let payload = rng.bytes(len);
            (
                "random opcode",
                client_frame(first, &payload, Some(rng.mask())),
            )
        }
        43..=46 => {
            let len = rng.below(20);
            let text = rng.ascii(len);
            ("unmasked", client_frame(0x81, text.as_bytes(), None))
        }
        47..=50 => {
            let first = 0x80
                | rng.pick(&[0x10, 0x20, 0x40, 0x70])
                | rng.pick(&[op::TEXT, op::BINARY, op::PING]);
            ("reserved bits", client_frame(first, b"x", Some(rng.mask())))
        }
        51..=58 => {
            let opcode = rng.pick(&[op::TEXT, op::BINARY]);
            let len = rng.below(100);
            let payload = if opcode == op::TEXT {
                rng.unicode(len).into_bytes()
            } else {
                rng.bytes(len)
            };
            (
                "fragment start",
                client_frame(opcode, &payload, Some(rng.mask())),
            )
        }
        59..=68 => {
            let fin = if rng.chance(50) { 0x80 } else { 0 };
            let len = rng.below(300);
            let payload = if rng.chance(80) {
                rng.ascii(len).into_bytes()
            } else {
                rng.bytes(len)
            };
            (
                "continuation",
                client_frame(fin, &payload, Some(rng.mask())),
            )
        }
        69..=78 => {
            let code: u16 = match rng.below(3) {
                0 => rng.pick(&[
                    0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011,
                    1012, 1013, 1014, 1015, 1016, 2999, 3000, 4000, 4999, 5000,
                ]),
                1 => rng.next_u64() as u16,
                _ => 1000 + rng.below(12) as u16,
            };
            let mut payload = code.to_be_bytes().to_vec();
            match rng.below(6) {
                0 => payload.clear(),
                1 => payload.truncate(1),
                2 => payload.extend_from_slice("bye ✓".as_bytes()),
                3 => payload.extend_from_slice(&[b'a', 0xC3, 0x28]),
                4 => {
                    let len = 115 + rng.below(15);
                    payload.extend(rng.ascii(len).bytes());
                }
                _ => {}
            }
            (
                "close",
                client_frame(0x80 | op::CLOSE, &payload, Some(rng.mask())),
            )
        }
        79..=82 => {
            // A length not in its shortest form.
            let (len7, ext): (u8, Vec<u8>) = if rng.chance(50) {
                (126, 5u16.to_be_bytes().to_vec())
            } else {
                (127, 300u64.to_be_bytes().to_vec())
            };
            let payload_len = if len7 == 126 { 5 } else { 300 };
            let mut frame = vec![0x82, 0x80 | len7];
            frame.extend(ext);
            frame.extend_from_slice(&rng.mask());
            frame.extend(rng.bytes(payload_len));
            ("non-minimal length", frame)
        }
        83..=85 => {
            let len: u64 = rng.pick(&[1 << 40, 1 << 63, u64::MAX, 70_000]);
            let mut frame = vec![0x82, 0x80 | 127];
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(&rng.mask());
            ("huge length", frame)
        }
        86..=92 => {
            let len = 1 + rng.below(40);
            ("garbage", rng.bytes(len))
        }
        _ => {
            let len = 1 + rng.below(300);
            let payload = rng.bytes(len);
            let frame = client_frame(0x82, &payload, Some(rng.mask()));
            let cut = 1 + rng.below(frame.len() - 1);
            ("truncated frame", frame[..cut].to_vec())
        }
    }
}

/// A chaos script: the bytes, the actions they came from, and what the model says must happen.
struct Script {
    bytes: Vec<u8>,
    actions: Vec<&'static str>,
    model: Model,
    verdict: Verdict,
    sentinel: u64,
}

impl Script {
    fn new(seed: u64) -> Script {
        let mut rng = Rng::scrambled(seed);
        let mut model = Model::new(CHAOS_MAX);
        let mut bytes = Vec::new();
        let mut actions = Vec::new();
        // Some connections behave, others break the rules more or less often.
        let chaos_percent = [0, 10, 30, 60][(seed % 4) as usize];
        let steps = 1 + rng.below(16);
        for _ in 0..steps {
            if model.ended.is_some() {
                break;
            }
            let (name, frame) = if rng.chance(chaos_percent) {
                chaotic_action(&mut rng)
            } else {
                valid_action(&mut rng)
            };
            model.feed(&frame);
            bytes.extend(frame);
            actions.push(name);
            if name == "truncated frame" {
                // The script stops inside the frame.
                break;
            }
        }
        if seed % 8 == 4 && model.ended.is_none() && model.buf.is_empty() {
            // Stop inside a frame: header only, or part of the payload.
            let len = 1 + rng.below(300);
            let payload = rng.bytes(len);
            let frame = client_frame(0x82, &payload, Some(rng.mask()));
            let cut = 1 + rng.below(frame.len() - 1);
            model.feed(&frame[..cut]);
            bytes.extend_from_slice(&frame[..cut]);
            actions.push("truncated frame");
        }
        if model.ended.is_some() && rng.chance(50) {
            // The server ignores whatever follows.
            let len = rng.below(200);
            let junk = rng.bytes(len);
            model.feed(&junk);
            bytes.extend(junk);
            actions.push("junk after the end");
        }
        let sentinel = 1_000_000 + seed;
        if model.ended.is_none() && model.buf.is_empty() {
            if model.fragment.is_some() {
                let last = client_frame(0x80 | op::CONTINUATION, b"", Some(rng.mask()));
                model.feed(&last);
                bytes.extend(last);
                actions.push("last fragment");
            }
            if model.ended.is_none() {
                let text = json!({"action": "echo", "s": sentinel}).to_string();
                let frame = client_frame(0x81, text.as_bytes(), Some(rng.mask()));
                model.feed(&frame);
                bytes.extend(frame);
                actions.push("sentinel");
            }
        }
        let verdict = model.verdict();
        Script {
            bytes,
            actions,
            model,
            verdict,
            sentinel,
        }
    }

    /// The bytes cut into writes of random sizes, so frames straddle reads.
    fn writes(&self, seed: u64) -> Vec<(Vec<u8>, bool)> {
        let mut rng = Rng::scrambled(seed ^ 0xC4A0_5EED);
        let mut writes = Vec::new();
        let mut at = 0;
        while at < self.bytes.len() {
            let n = match rng.below(4) {
                0 => 1 + rng.below(8),
                1 => 1 + rng.below(100),
                _ => 1 + rng.below(3000),
            };
            let end = (at + n).min(self.bytes.len());
            writes.push((self.bytes[at..end].to_vec(), rng.chance(20)));
            at = end;
        }
        writes
    }
}

/// The verdict of the model for `frames` sent in a row.
fn model_verdict(frames: &[Vec<u8>]) -> Verdict {
    let mut model = Model::new(CHAOS_MAX);
    for frame in frames {
        model.feed(frame);
    }
    model.verdict()
}

#[test]
fn the_chaos_model_reads_known_frames_as_rfc_6455_does() {
    let m = Some(MASK);
    let open = Verdict::Open;
    let ends = |closes: &[Close]| Verdict::Ends {
        closes: closes.to_vec(),
        may_end: false,
    };
    let (e1002, e1007, e1009) = (
        Close::Violation(1002),
        Close::Violation(1007),
        Close::Violation(1009),
    );
    let cases: Vec<(&str, Vec<Vec<u8>>, Verdict)> = vec![
        (
            "a text frame",
            vec![client_frame(0x81, b"hi", m)],
            open.clone(),
        ),
        (
            "binary at the limit",
            vec![client_frame(0x82, &[7; CHAOS_MAX], m)],
            open.clone(),
        ),
        (
            "fragments with a ping between",
            vec![
                client_frame(0x01, "h\u{e9}".as_bytes(), m),
                client_frame(0x89, b"p", m),
                client_frame(0x80, b"llo", m),
            ],
            open.clone(),
        ),
        (
            "unmasked",
            vec![client_frame(0x81, b"hi", None)],
            ends(&[e1002]),
        ),
        ("RSV1", vec![client_frame(0xC1, b"hi", m)], ends(&[e1002])),
        ("opcode 3", vec![client_frame(0x83, b"", m)], ends(&[e1002])),
        (
            "lone continuation",
            vec![client_frame(0x80, b"x", m)],
            ends(&[e1002]),
        ),
        (
            "text inside a fragmented message",
            vec![client_frame(0x01, b"a", m), client_frame(0x81, b"b", m)],
            ends(&[e1002]),
        ),
        (
            "fragmented ping",
            vec![client_frame(0x09, b"", m)],
            ends(&[e1002]),
        ),
        (
            "ping over 125 bytes",
            vec![client_frame(0x89, &[0; 126], m)],
            ends(&[e1002]),
        ),
        (
            "one byte over the limit",
            vec![client_frame(0x82, &[0; CHAOS_MAX + 1], m)],
            ends(&[e1009]),
        ),
        (
            "reassembled over the limit",
            vec![
                client_frame(0x02, &[0; 3000], m),
                client_frame(0x80, &[0; 1097], m),
            ],
            ends(&[e1009]),
        ),
        (
            "invalid UTF-8",
            vec![client_frame(0x81, b"a\xFF", m)],
            ends(&[e1007]),
        ),
        (
            "UTF-8 split between fragments",
            vec![
                client_frame(0x01, b"\xC3", m),
                client_frame(0x80, b"\xA9", m),
            ],
            open.clone(),
        ),
        (
            "invalid UTF-8 in a fragment, then a close",
            vec![
                client_frame(0x01, b"\xFF", m),
                client_frame(0x88, &[0x03, 0xE8], m),
            ],
            ends(&[Close::Echo(Some(1000)), e1007]),
        ),
        (
            "close without a code",
            vec![client_frame(0x88, b"", m)],
            ends(&[Close::Echo(None)]),
        ),
        (
            "close 4000",
            vec![client_frame(0x88, &[0x0F, 0xA0], m)],
            ends(&[Close::Echo(Some(4000))]),
        ),
        (
            "close 1005",
            vec![client_frame(0x88, &[0x03, 0xED], m)],
            ends(&[e1002]),
        ),
        (
            "close of one byte",
            vec![client_frame(0x88, &[0x03], m)],
            ends(&[e1002]),
        ),
        (
            "close reason not UTF-8",
            vec![client_frame(0x88, &[0x03, 0xE8, 0xC3, 0x28], m)],
            ends(&[e1007]),
        ),
        (
            "length not in its shortest form",
            vec![[&[0x82, 0xFE, 0, 5][..], &MASK, &[0; 5]].concat()],
            ends(&[e1002]),
        ),
        (
            "a header announcing 2^40 bytes",
            vec![[&[0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0][..], &MASK].concat()],
            Verdict::Ends {
                closes: vec![e1009],
                may_end: true,
            },
        ),
        (
            "half a header",
            vec![vec![0x81]],
            Verdict::Ends {
                closes: vec![],
                may_end: true,
            },
        ),
        (
            "half a payload",
            vec![client_frame(0x82, &[1; 10], m)[..9].to_vec()],
            Verdict::Ends {
                closes: vec![],
                may_end: true,
            },
        ),
        (
            "half an unmasked header",
            vec![vec![0x81, 0x05]],
            Verdict::Ends {
                closes: vec![e1002],
                may_end: true,
            },
        ),
    ];
    for (name, frames, expected) in cases {
        assert_eq!(model_verdict(&frames), expected, "{name}");
    }
    // Replies the model expects: one per non-empty text message, one per binary message (empty ones included).
    let mut model = Model::new(CHAOS_MAX);
    for frame in [
        client_frame(0x81, b"", m),
        client_frame(0x81, b"x", m),
        client_frame(0x82, b"", m),
        client_frame(0x89, b"1", m),
        client_frame(0x89, b"2", m),
    ] {
        model.feed(&frame);
    }
    assert_eq!((model.texts, model.binaries, model.pings.len()), (1, 1, 2));
}

/// What a chaos connection did: its channel id, the onDisconnect reason it implies, and a label.
struct ChaosResult {
    id: String,
    reason: &'static str,
    outcome: String,
}

/// Runs one chaos connection to its end and checks it against the model.
async fn chaos_connection(addr: SocketAddr, seed: u64, hold: Arc<Hold>) -> ChaosResult {
    let script = Script::new(seed);
    let what = format!("seed {seed}: {:?} → {:?}", script.actions, script.verdict);
    let mut raw = RawWs::connect(addr, PATH).await;
    let id = raw.hello().await;
    let (stream, buf) = raw.into_parts();
    let (rd, mut wr) = stream.into_split();
    let mut reader = RawWs::new(rd, buf);
    let open = script.verdict == Verdict::Open;
    let writes = script.writes(seed);
    // Write while reading, so replies never back up behind the script.
    let writer = tokio::spawn(async move {
        for (bytes, pause) in writes {
            if wr.write_all(&bytes).await.is_err() {
                // The server closed and left; what follows does not matter.
                return wr;
            }
            if pause {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        if !open {
            // The server must decide with what it has.
            let _ = wr.shutdown().await;
        }
        wr
    });

    match &script.verdict {
        Verdict::Open => {
            let (mut texts, mut binaries, mut pongs) = (0, 0, 0);
            loop {
                match reader.next_frame().await {
                    Some((true, op::TEXT, payload)) => {
                        texts += 1;
                        let reply: Value = serde_json::from_slice(&payload).expect("a JSON reply");
                        if reply["got"]["s"] == script.sentinel {
                            break;
                        }
                    }
                    Some((true, op::BINARY, _)) => binaries += 1,
                    Some((true, op::PONG, payload)) => {
                        assert!(
                            script.model.pings.contains(&payload),
                            "{what}: pong {payload:?}"
                        );
                        pongs += 1;
                    }
                    other => {
                        panic!("{what}: expected the connection to keep working, got {other:?}")
                    }
                }
            }
            assert_eq!(
                texts, script.model.texts,
                "{what}: one reply per text message"
            );
            assert_eq!(
                binaries, script.model.binaries,
                "{what}: one echo per binary message"
            );
            assert!(pongs <= script.model.pings.len(), "{what}");
            assert_eq!(
                pongs > 0,
                !script.model.pings.is_empty(),
                "{what}: pings are answered"
            );
            let mut release = hold.release.subscribe();
            hold.held.fetch_add(1, Ordering::SeqCst);
            let _ = tokio::time::timeout(WAIT, release.wait_for(|go| *go)).await;
            let mut wr = writer.await.expect("writer");
            wr.write_all(&client_frame(0x88, &1000u16.to_be_bytes(), Some(MASK)))
                .await
                .expect("write close");
            match reader.next_frame().await {
                Some((true, op::CLOSE, payload)) => assert_eq!(payload, [0x03, 0xE8], "{what}"),
                other => panic!("{what}: expected the close echo, got {other:?}"),
            }
            reader.expect_end().await;
            ChaosResult {
                id,
                reason: "client_closed",
                outcome: "keeps working".into(),
            }
        }
        Verdict::Ends { closes, may_end } => {
            let close = loop {
                match reader.next_frame().await {
                    Some((true, op::CLOSE, payload)) => break Some(payload),
                    Some((true, op::TEXT | op::BINARY | op::PONG, _)) => {}
                    Some(other) => panic!("{what}: unexpected frame {other:?}"),
                    None => break None,
                }
            };
            let _ = writer.await;
            let Some(payload) = close else {
                assert!(
                    may_end,
                    "{what}: the connection ended without a close frame"
                );
                return ChaosResult {
                    id,
                    reason: "transport_error",
                    outcome: "ended".into(),
                };
            };
            let got = match payload.as_slice() {
                [] => Close::Echo(None),
                [_] => panic!("{what}: a close payload of one byte"),
                [hi, lo] => Close::Echo(Some(u16::from_be_bytes([*hi, *lo]))),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    let reason = std::str::from_utf8(reason).expect("a UTF-8 close reason");
                    match code {
                        1007 => assert_eq!(reason, "invalid utf-8", "{what}"),
                        1009 => assert_eq!(reason, "message too big", "{what}"),
                        _ => {}
                    }
                    Close::Violation(code)
                }
            };
            assert!(closes.contains(&got), "{what}: the server sent {got:?}");
            // Nothing follows a close frame.
            reader.expect_end().await;
            ChaosResult {
                id,
                reason: got.reason(),
                outcome: format!("{got:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_clients_get_a_documented_close_or_keep_working() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        max_frame_bytes: CHAOS_MAX,
        close_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let srv = Server::start(app(&rec, |_| {}), config).await;
    let addr = srv.addr;

    // The scripts cover every kind of ending (the model is deterministic, the seeds fixed).
    let verdicts: Vec<Verdict> = (0..CHAOS_CONNECTIONS)
        .map(|s| Script::new(s).verdict)
        .collect();
    let open = verdicts.iter().filter(|v| **v == Verdict::Open).count();
    let has = |close: Close| {
        verdicts
            .iter()
            .any(|v| matches!(v, Verdict::Ends { closes, .. } if closes == &[close]))
    };
    let incomplete = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Ends { closes, may_end: true } if closes.is_empty()))
        .count();
    assert!(open >= 10, "{open} scripts keep the connection open");
    for close in [1002, 1007, 1009].map(Close::Violation) {
        assert!(has(close), "no script ends with {close:?}");
    }
    assert!(
        verdicts.iter().any(
            |v| matches!(v, Verdict::Ends { closes, .. } if matches!(closes[..], [Close::Echo(_)]))
        ),
        "no script closes itself"
    );
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for verdict in &verdicts {
        *kinds.entry(format!("{verdict:?}")).or_default() += 1;
    }
    println!("chaos verdicts: {kinds:#?}");
    assert!(incomplete >= 1, "no script stops inside a frame");

    let mut bystander = Client::connect(&srv.url()).await;
    let bystander_id = bystander.hello().await;
    bystander.sentinel(0).await;

    let hold = Arc::new(Hold {
        held: AtomicUsize::new(0),
        release: watch::channel(false).0,
    });
    let mut chaos = JoinSet::new();
    for seed in 0..CHAOS_CONNECTIONS {
        chaos.spawn(chaos_connection(addr, seed, hold.clone()));
    }
    // The bystander keeps answering while the chaos runs, and until every connection that must keep working
    // has shown it does (those stay open meanwhile).
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 1;
    while hold.held.load(Ordering::SeqCst) < open || n < 3 {
        bystander.sentinel(n).await;
        n += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the chaos connections that keep working"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(srv.server.active_connections() > open);
    bystander.sentinel(n).await;
    hold.release.send_replace(true);
    let mut results = Vec::new();
    while let Some(joined) = chaos.join_next().await {
        results.push(joined.expect("a chaos connection failed"));
    }
    bystander.sentinel(n + 1).await;
    bystander.close().await;

    eventually("every connection to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    assert_eq!(srv.server.hub().registry().len(), 0);
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), CHAOS_CONNECTIONS as usize + 1);
    assert_eq!(
        disconnects.get(&bystander_id).map(Vec::as_slice),
        Some(&["client_closed"][..])
    );
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for result in &results {
        assert_eq!(
            disconnects.get(&result.id).map(Vec::as_slice),
            Some(&[result.reason][..]),
            "onDisconnect of the {} connection {}",
            result.outcome,
            result.id
        );
        *outcomes.entry(result.outcome.clone()).or_default() += 1;
    }
    println!("chaos outcomes: {outcomes:?}");
    assert_no_panics();
}

// ---------------------------------------------------------------------------------------------------------
// 3. Shutdown under load
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Idle,
    /// A `slow` handler in flight.
    Slow,
    /// The server pushes 1 KiB every 10 ms; the client reads them all.
    Flood,
}

const FLOOD_CHUNK: usize = 1024;

/// What a loaded client read after its setup: data frames, the close frame, and what came after it.
struct Transcript {
    data: Vec<Frame>,
    close: Frame,
    after: Frame,
}

async fn read_to_close(mut client: Client) -> Transcript {
    let mut data = Vec::new();
    loop {
        match client.next().await {
            close @ Frame::Close(_) => {
                let after = client.next().await;
                return Transcript { data, close, after };
            }
            ended @ Frame::Ended(_) => {
                return Transcript {
                    data,
                    close: ended.clone(),
                    after: ended,
                }
            }
            frame => data.push(frame),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_closes_everyone_once_with_1001() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        close_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(20),
        ..ServerConfig::default()
    };
    let shutdown_timeout = config.shutdown_timeout;
    let mut srv = Server::start(app(&rec, |_| {}), config).await;
    let hub = srv.server.hub().clone();
    let chunk = "f".repeat(FLOOD_CHUNK);

    // 30 idle, 30 with a handler in flight, 40 in the middle of a flood.
    let loads: Vec<Load> = (0..100)
        .map(|i| match i % 10 {
            0..=2 => Load::Idle,
            3..=5 => Load::Slow,
            _ => Load::Flood,
        })
        .collect();
    let slots = Arc::new(Semaphore::new(20));
    let mut setup = JoinSet::new();
    for load in loads.iter().copied() {
        let slot = slots.clone().acquire_owned().await.expect("semaphore");
        let (url, chunk) = (srv.url(), chunk.clone());
        setup.spawn(async move {
            let mut client = Client::connect(&url).await;
            let id = client.hello().await;
            match load {
                Load::Idle => {}
                Load::Slow => client.send_json(json!({"action": "slow"})).await,
                Load::Flood => {
                    client
                        .send_json(json!({"action": "flood", "size": FLOOD_CHUNK, "count": 0, "every_ms": 10}))
                        .await;
                    assert_eq!(client.next().await, Frame::Text(chunk), "the flood started");
                }
            }
            drop(slot);
            (load, id, client)
        });
    }
    let mut readers = JoinSet::new();
    while let Some(joined) = setup.join_next().await {
        let (load, id, client) = joined.expect("setup of a loaded client failed");
        readers.spawn(async move { (load, id, read_to_close(client).await) });
    }
    eventually("30 slow handlers in flight", || {
        rec.slow_started.load(Ordering::SeqCst) == 30
    })
    .await;
    // A client that never answers the close: the server drops it after the close timeout.
    let mut mute = RawWs::connect(srv.addr, PATH).await;
    let mute_id = mute.hello().await;
    assert_eq!(srv.server.active_connections(), 101);

    let shutting_down = {
        let server = srv.server.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            server.shutdown().await;
            started.elapsed()
        })
    };
    eventually("every channel to be closing", || {
        hub.registry()
            .snapshot()
            .iter()
            .all(|c| c.state() == ChannelState::Closed)
    })
    .await;
    // The slow handlers hold the shutdown open: new upgrades are refused meanwhile.
    assert_shutting_down_refusal(srv.addr).await;
    assert!(
        !shutting_down.is_finished(),
        "the shutdown waits for the handlers in flight"
    );
    rec.release.send_replace(true);

    let elapsed = tokio::time::timeout(shutdown_timeout + WAIT, shutting_down)
        .await
        .expect("shutdown returns")
        .expect("shutdown task");
    assert!(
        elapsed < shutdown_timeout,
        "the shutdown ran into its timeout ({elapsed:?})"
    );
    assert_eq!(srv.server.active_connections(), 0);
    assert_eq!(hub.registry().len(), 0);

    let going_away = Frame::Close(Some((1001, "going away".into())));
    let mut flood_frames = 0;
    let mut ids = vec![mute_id.clone()];
    while let Some(joined) = readers.join_next().await {
        let (load, id, transcript) = joined.expect("a loaded client failed");
        assert_eq!(transcript.close, going_away, "{load:?} {id}");
        assert!(
            matches!(transcript.after, Frame::Ended(_)),
            "{load:?} {id}: {} after the close",
            transcript.after
        );
        match load {
            // The slow reply never comes: the channel closed before the handler returned.
            Load::Idle | Load::Slow => {
                assert!(
                    transcript.data.is_empty(),
                    "{load:?} {id}: {:?}",
                    transcript.data
                );
            }
            Load::Flood => {
                flood_frames += transcript.data.len();
                assert!(
                    transcript
                        .data
                        .iter()
                        .all(|f| *f == Frame::Text(chunk.clone())),
                    "{id}: only flood frames before the close"
                );
            }
        }
        ids.push(id);
    }
    assert!(flood_frames > 0);
    assert_eq!(mute.expect_close(1001).await, "going away");
    mute.expect_end().await;

    // Every onDisconnect ran once, with reason `shutdown`, after the handler in flight finished.
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), 101);
    for id in &ids {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&["shutdown"][..]),
            "onDisconnect of {id}"
        );
    }
    let slow_done = rec.slow_done.lock().clone();
    assert_eq!(slow_done.len(), 30, "every slow handler ran to its end");
    assert!(
        slow_done.iter().all(|(_, disconnected)| !disconnected),
        "onDisconnect waited for the handler in flight: {slow_done:?}"
    );
    assert_eq!(rec.floods_done.load(Ordering::SeqCst), 40);

    // Still refused after the shutdown, for as long as the listener runs; then serving ends.
    assert_shutting_down_refusal(srv.addr).await;
    srv.stop_listening().await;
    assert_no_panics();
}

// ---------------------------------------------------------------------------------------------------------
// 4. Stalled clients
// ---------------------------------------------------------------------------------------------------------

/// Lets a connection queue the 16 MiB of [`stuck_reader`] without being closed as a slow consumer.
fn big_outbound(config: &mut AppConfig) {
    config.outbound_queue_bytes = 64 << 20;
}

/// Connects a client with a small receive buffer that asks for 16 MiB of pushes and never reads them; returns it
/// once the pushes are queued (the outbound bound is 64 MiB, so none is refused).
async fn stuck_reader(srv: &Server<Arc<Rec>, ()>, rec: &Rec) -> (RawWs, String) {
    let mut stuck = connect_small_buffer(srv.addr).await;
    let id = stuck.hello().await;
    let flood = json!({"action": "flood", "size": 16 * 1024, "count": 1024, "every_ms": 0});
    stuck.send(0x81, flood.to_string().as_bytes()).await;
    eventually("the pushes to be queued", || {
        rec.floods_done.load(Ordering::SeqCst) == 1
    })
    .await;
    (stuck, id)
}

/// Reads a client that stopped reading to its end: the pushes the server had written before it dropped the
/// connection (possibly cut short), then EOF or a reset. Returns the pushes read.
async fn drain_stuck(stuck: &mut RawWs) -> usize {
    let mut pushes = 0;
    loop {
        match stuck.next_frame().await {
            None => return pushes,
            Some((true, op::TEXT, payload)) => {
                assert_eq!(payload.len(), 16 * 1024, "a push of the flood");
                pushes += 1;
            }
            // The sweep may have queued a ping before the close; the close frame itself is unlikely to get out.
            Some((true, op::PING | op::CLOSE, _)) => {}
            Some(other) => panic!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_to_a_client_that_stopped_reading_ends_within_the_close_timeout() {
    // A busy neighbour must not stretch the flood past the idle timeout.
    let _alone = TIMING.write().await;
    watch_panics();
    let rec = Rec::new();
    // The idle timeout is short beside the wait below, but a channel that is already closing is not the sweep's
    // to end: only the close timeout ends this one. It must outlast the flood, though (about a second in a debug
    // build, during which the connection task reads nothing), or the sweep closes the channel before `bye`.
    let config = ServerConfig {
        ping_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        close_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let mut srv = Server::start(app(&rec, big_outbound), config).await;
    let (mut stuck, id) = stuck_reader(&srv, &rec).await;
    assert_eq!(srv.server.active_connections(), 1);

    // The client still writes: it asks the app to close the channel, behind 16 MiB it will never read.
    stuck
        .send(0x81, json!({"action": "bye"}).to_string().as_bytes())
        .await;
    let asked = Instant::now();
    eventually(
        "the connection to be dropped after the close timeout",
        || srv.server.active_connections() == 0,
    )
    .await;
    println!(
        "dropped {:?} after the close was asked for",
        asked.elapsed()
    );
    assert_eq!(
        rec.disconnects().get(&id).map(Vec::as_slice),
        Some(&["server_closed"][..])
    );
    assert_eq!(rec.disconnect_count(), 1);
    assert_eq!(srv.server.hub().registry().len(), 0);

    // The client finds the end of the stream after whatever had been written.
    let pushes = drain_stuck(&mut stuck).await;
    println!("the stuck client read {pushes} pushes to the end");
    assert!(pushes < 1024, "the whole flood got out: {pushes} pushes");
    srv.stop_listening().await;
    assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_client_that_stopped_reading() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        close_timeout: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(8),
        ..ServerConfig::default()
    };
    let shutdown_timeout = config.shutdown_timeout;
    let mut srv = Server::start(app(&rec, big_outbound), config).await;
    let (mut stuck, stuck_id) = stuck_reader(&srv, &rec).await;
    // A client that reads, for comparison.
    let mut reader = Client::connect(&srv.url()).await;
    let reader_id = reader.hello().await;
    reader.sentinel(1).await;
    assert_eq!(srv.server.active_connections(), 2);

    let started = Instant::now();
    let ((), ()) = tokio::join!(
        async {
            tokio::time::timeout(shutdown_timeout + WAIT, srv.server.shutdown())
                .await
                .expect("shutdown returns");
        },
        async {
            assert_eq!(
                reader.next().await,
                Frame::Close(Some((1001, "going away".into())))
            );
            assert!(matches!(reader.next().await, Frame::Ended(_)));
        },
    );
    let elapsed = started.elapsed();
    println!("shutdown took {elapsed:?}");
    // The stuck client costs one close timeout, not the shutdown timeout.
    assert!(
        elapsed < Duration::from_secs(6),
        "the shutdown waited for the client that stopped reading ({elapsed:?})"
    );
    assert_eq!(srv.server.active_connections(), 0);
    assert_eq!(srv.server.hub().registry().len(), 0);
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), 2);
    for id in [&stuck_id, &reader_id] {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&["shutdown"][..]),
            "onDisconnect of {id}"
        );
    }

    let pushes = drain_stuck(&mut stuck).await;
    println!("the stuck client read {pushes} pushes to the end");
    assert!(pushes < 1024, "the whole flood got out: {pushes} pushes");
    assert_shutting_down_refusal(srv.addr).await;
    srv.stop_listening().await;
    assert_no_panics();
}

/// Connects and sends `bytes`, the start of a request that the client then leaves unfinished.
async fn stalled_request(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    tokio::time::timeout(WAIT, stream.write_all(bytes))
        .await
        .expect("write timed out")
        .expect("write the partial request");
    stream
}

/// Reads until the server ends the connection (EOF or a reset); returns the bytes it sent before.
async fn read_until_dropped(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => panic!("{what}: the server did not drop the connection within {WAIT:?}"),
            Ok(Ok(0) | Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Requires that nothing has come back on a stalled request: no response, no end of the connection.
async fn assert_no_answer(stream: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    if let Ok(read) = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
    {
        panic!("{what}: the stalled request was answered: {read:?} {byte:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_does_not_wait_for_a_stalled_upgrade_request() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    // The default handshake timeout (10 s) is longer than the stop may take: only a prompt stop passes.
    let mut srv = Server::start(app(&rec, |_| {}), ServerConfig::default()).await;
    let request = upgrade_request(srv.addr, PATH, &[]);
    let _one_byte = stalled_request(srv.addr, b"G").await;
    let _half_head = stalled_request(srv.addr, &request.as_bytes()[..request.len() / 2]).await;
    // Connections are accepted in order, so once this one works the stalled ones are being served too.
    let mut client = Client::connect(&srv.url()).await;
    client.hello().await;
    client.sentinel(1).await;

    let started = Instant::now();
    srv.stop_listening_within(Duration::from_secs(4)).await;
    println!(
        "serve_until returned {:?} after its stop",
        started.elapsed()
    );
    // Upgraded connections run on after the listener stopped.
    client.sentinel(2).await;
    client.close().await;
    eventually("the client to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    assert_eq!(rec.disconnect_count(), 1);
    assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upgrade_request_is_dropped_after_the_handshake_timeout() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let srv = Server::start(app(&rec, |_| {}), config).await;
    let request = upgrade_request(srv.addr, PATH, &[]);
    let started = Instant::now();
    let mut stalled = stalled_request(srv.addr, &request.as_bytes()[..request.len() - 3]).await;
    // One that sends nothing at all is dropped as well.
    let mut silent = stalled_request(srv.addr, b"").await;

    // Meanwhile another client upgrades and works.
    let mut client = Client::connect(&srv.url()).await;
    let id = client.hello().await;
    client.sentinel(1).await;

    for (what, stream) in [
        ("a request head cut short", &mut stalled),
        ("a connection that sends nothing", &mut silent),
    ] {
        let answer = read_until_dropped(stream, what).await;
        println!("{what}: dropped after {:?}", started.elapsed());
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.contains("101"), "{what}: upgraded: {answer:?}");
    }
    // The client that upgraded in time is not bound by the handshake timeout.
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.sentinel(2).await;
    client.close().await;
    eventually("the client to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    assert_eq!(rec.connected.lock().len(), 1);
    assert_eq!(
        rec.disconnects().get(&id).map(Vec::as_slice),
        Some(&["client_closed"][..])
    );
    assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upgrade_requests_do_not_block_other_upgrades() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    // Long enough that the late request below is not dropped before it finishes.
    let config = ServerConfig {
        handshake_timeout: Duration::from_secs(10),
        ..ServerConfig::default()
    };
    let srv = Server::start(app(&rec, |_| {}), config).await;
    let request = upgrade_request(srv.addr, PATH, &[]);
    let request = request.as_bytes();
    let line = request
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a request line")
        + 2;
    let kinds: [(&str, usize); 4] = [
        ("one byte", 1),
        ("the request line", line),
        ("the headers without the blank line", request.len() - 2),
        ("all but the last byte", request.len() - 1),
    ];
    let mut stalled = Vec::new();
    for i in 0..20 {
        let (what, cut) = kinds[i % kinds.len()];
        let stream = stalled_request(srv.addr, &request[..cut]).await;
        stalled.push((format!("{what} ({i})"), cut, stream));
    }

    // Twenty other clients, all at once, upgrade and work meanwhile.
    let mut workers = JoinSet::new();
    for n in 0..20 {
        let url = srv.url();
        workers.spawn(async move {
            let mut client = Client::connect(&url).await;
            let id = client.hello().await;
            client.sentinel(n).await;
            client.close().await;
            id
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = workers.join_next().await {
        ids.push(joined.expect("a working client failed"));
    }
    eventually("the working clients to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    futures_util::future::join_all(
        stalled
            .iter_mut()
            .map(|(what, _, stream)| assert_no_answer(stream, what)),
    )
    .await;
    assert_eq!(rec.connected.lock().len(), 20, "only the working clients");

    // One finishes its request late: it is upgraded normally.
    let (what, cut, mut late) = stalled.remove(1);
    assert!(what.starts_with("the request line"), "{what}");
    late.write_all(&request[cut..])
        .await
        .expect("write the rest of the request");
    let (status, headers, rest) = read_head(&mut late).await;
    assert_eq!(status, 101, "{headers:?}");
    assert!(headers
        .iter()
        .any(|(n, v)| n == "sec-websocket-accept" && v == SAMPLE_ACCEPT));
    let mut late = RawWs::new(late, rest);
    let late_id = late.hello().await;
    late.send(0x81, br#"{"action":"echo","late":true}"#).await;
    match late.next_frame().await {
        Some((true, op::TEXT, payload)) => {
            let reply: Value = serde_json::from_slice(&payload).expect("a JSON reply");
            assert_eq!(reply, json!({"got": {"late": true}, "action": "echo"}));
        }
        other => panic!("expected the echo, got {other:?}"),
    }
    late.send(0x88, &1000u16.to_be_bytes()).await;
    late.expect_close(1000).await;
    late.expect_end().await;

    // The others are still waiting, unanswered.
    futures_util::future::join_all(
        stalled
            .iter_mut()
            .map(|(what, _, stream)| assert_no_answer(stream, what)),
    )
    .await;
    drop(stalled);
    eventually("the late client to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    ids.push(late_id);
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), 21);
    for id in &ids {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&["client_closed"][..]),
            "onDisconnect of {id}"
        );
    }
    assert_eq!(srv.server.hub().registry().len(), 0);
    assert_no_panics();
}

/// Upgrades, sends `bytes` (which stop inside a frame) and waits for the idle close; returns the channel id.
async fn stall_inside_a_frame(addr: SocketAddr, what: &'static str, bytes: Vec<u8>) -> String {
    let mut raw = RawWs::connect(addr, PATH).await;
    let id = raw.hello().await;
    raw.write(&bytes).await;
    // The pings go unanswered: the client cannot send a pong in the middle of its own frame.
    assert_eq!(raw.expect_close(1001).await, "idle timeout", "{what}");
    // Nor a close frame: it ends the stream instead, and the server ends the connection.
    raw.get_mut()
        .shutdown()
        .await
        .expect("shutdown the write half");
    raw.expect_end().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalled_inside_a_frame_are_closed_by_the_idle_timeout() {
    // The bystander relies on a 300 ms idle timeout: no busy neighbour may starve it.
    let _alone = TIMING.write().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        close_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let srv = Server::start(app(&rec, |_| {}), config).await;

    let echo = json!({"action": "echo", "cut": "short"}).to_string();
    let echo_frame = client_frame(0x81, echo.as_bytes(), Some(MASK));
    let stalls: Vec<(&'static str, Vec<u8>)> = vec![
        ("half a header", vec![0x81]),
        ("a header missing its mask", vec![0x81, 0x80 | 5]),
        ("half an extended length", vec![0x82, 0x80 | 126, 0x01]),
        (
            "part of a payload",
            echo_frame[..echo_frame.len() - 5].to_vec(),
        ),
    ];
    let mut stalled = JoinSet::new();
    for (what, bytes) in stalls {
        stalled.spawn(stall_inside_a_frame(srv.addr, what, bytes));
    }

    // A bystander keeps talking meanwhile, and a few short-lived clients come and go.
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = {
        let (url, stop) = (srv.url(), stop.clone());
        tokio::spawn(async move {
            let mut client = Client::connect(&url).await;
            let id = client.hello().await;
            let mut short_lived = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || short_lived.len() < 3 {
                client.sentinel(n).await;
                n += 1;
                if n % 3 == 0 {
                    let mut short = Client::connect(&url).await;
                    short_lived.push(short.hello().await);
                    short.sentinel(n).await;
                    short.close().await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            client.sentinel(n).await;
            client.close().await;
            (id, short_lived)
        })
    };
    let mut stalled_ids = Vec::new();
    while let Some(joined) = stalled.join_next().await {
        stalled_ids.push(joined.expect("a stalled client failed"));
    }
    stop.store(true, Ordering::SeqCst);
    let (bystander_id, short_lived) = tokio::time::timeout(WAIT, bystander)
        .await
        .expect("the bystander finishes")
        .expect("the bystander failed");

    eventually("every connection to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    assert_eq!(srv.server.hub().registry().len(), 0);
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), stalled_ids.len() + 1 + short_lived.len());
    for id in &stalled_ids {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&["idle_timeout"][..]),
            "onDisconnect of the stalled {id}"
        );
    }
    for id in short_lived.iter().chain([&bystander_id]) {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&["client_closed"][..]),
            "onDisconnect of {id}"
        );
    }
    assert_no_panics();
}

// ---------------------------------------------------------------------------------------------------------
// 5. Binary round trips
// ---------------------------------------------------------------------------------------------------------

/// The message limit of the binary server.
const BINARY_MAX: usize = 256 * 1024;
/// The largest message sent.
const BINARY_LARGEST: usize = 200 * 1024;
/// Sizes around the length encodings (7-bit, 16-bit, 64-bit), sent first.
const BINARY_BOUNDARIES: [usize; 9] = [0, 1, 125, 126, 127, 65535, 65536, 65537, BINARY_LARGEST];

/// The size of round trip `i`: the boundaries first, then small and large sizes at random.
fn binary_size(rng: &mut Rng, i: usize) -> usize {
    match BINARY_BOUNDARIES.get(i) {
        Some(&size) => size,
        None if rng.chance(30) => rng.below(1000),
        None => rng.below(BINARY_LARGEST + 1),
    }
}

/// Compares two payloads byte for byte and reports the first difference, not the whole payloads.
#[track_caller]
fn assert_same_bytes(got: &[u8], sent: &[u8], what: &str) {
    assert_eq!(got.len(), sent.len(), "{what}: length");
    if let Some(at) = got.iter().zip(sent).position(|(a, b)| a != b) {
        panic!(
            "{what}: byte {at} is {:#04x}, sent {:#04x}",
            got[at], sent[at]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_round_trips_return_every_byte() {
    let _shared = TIMING.read().await;
    watch_panics();
    let rec = Rec::new();
    let config = ServerConfig {
        max_frame_bytes: BINARY_MAX,
        ..ServerConfig::default()
    };
    // Room for the replies to the back-to-back batch, however the client task is scheduled.
    let srv = Server::start(app(&rec, |c| c.outbound_queue_bytes = 16 << 20), config).await;
    let mut client = Client::connect(&srv.url()).await;
    let id = client.hello().await;

    // 200 round trips, one at a time.
    let mut rng = Rng::scrambled(0xB1_7E5);
    for i in 0..200 {
        let size = binary_size(&mut rng, i);
        let sent = rng.bytes(size);
        client.send(Message::binary(sent.clone())).await;
        match client.next().await {
            Frame::Binary(got) => assert_same_bytes(&got, &sent, &format!("round trip {i}")),
            other => panic!("round trip {i} ({size} bytes): got {other}"),
        }
    }

    // 40 back to back, read while they are sent: the replies come in order.
    let batch: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let size = binary_size(&mut rng, i + BINARY_BOUNDARIES.len());
            rng.bytes(size)
        })
        .collect();
    let (mut sink, mut stream) = client.ws.split();
    let send_all = async {
        for sent in &batch {
            tokio::time::timeout(WAIT, sink.send(Message::binary(sent.clone())))
                .await
                .expect("send timed out")
                .expect("send failed");
        }
    };
    let read_all = async {
        for (i, sent) in batch.iter().enumerate() {
            loop {
                match tokio::time::timeout(WAIT, stream.next()).await {
                    Ok(Some(Ok(Message::Binary(got)))) => {
                        assert_same_bytes(&got, sent, &format!("batch message {i}"));
                        break;
                    }
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                    Ok(other) => panic!("batch message {i}: got {other:?}"),
                    Err(_) => panic!("batch message {i}: nothing within {WAIT:?}"),
                }
            }
        }
    };
    tokio::join!(send_all, read_all);
    let mut client = Client {
        ws: sink.reunite(stream).expect("the halves of one stream"),
    };
    client.sentinel(1).await;

    // 50 by hand: fragments of random sizes with pings between them, written in pieces of random sizes.
    let mut raw = RawWs::connect(srv.addr, PATH).await;
    let raw_id = raw.hello().await;
    let mut rng = Rng::scrambled(0xF2A6);
    let mut pings = HashSet::new();
    let mut pongs = 0;
    for i in 0..50 {
        let size = binary_size(&mut rng, i);
        let sent = rng.bytes(size);
        let pieces = 1 + rng.below(5);
        let mut bounds: Vec<usize> = (1..pieces).map(|_| rng.below(size + 1)).collect();
        bounds.sort_unstable();
        bounds.insert(0, 0);
        bounds.push(size);
        let mut bytes = Vec::new();
        for (k, range) in bounds.windows(2).enumerate() {
            let opcode = if k == 0 { op::BINARY } else { op::CONTINUATION };
            let fin = if k + 1 == pieces { 0x80 } else { 0 };
            let mask = rng.mask();
            bytes.extend(client_frame(
                fin | opcode,
                &sent[range[0]..range[1]],
                Some(mask),
            ));
            if k + 1 < pieces && rng.chance(60) {
                let ping = format!("ping {i}.{k}").into_bytes();
                bytes.extend(client_frame(0x80 | op::PING, &ping, Some(rng.mask())));
                pings.insert(ping);
            }
        }
        let mut at = 0;
        while at < bytes.len() {
            let n = match rng.below(4) {
                0 => 1 + rng.below(8),
                1 => 1 + rng.below(1000),
                _ => 1 + rng.below(70_000),
            };
            let end = (at + n).min(bytes.len());
            raw.write(&bytes[at..end]).await;
            at = end;
            if rng.chance(10) {
                tokio::task::yield_now().await;
            }
        }
        loop {
            match raw.next_frame().await {
                Some((true, op::BINARY, got)) => {
                    assert_same_bytes(
                        &got,
                        &sent,
                        &format!("raw round trip {i} in {pieces} fragments"),
                    );
                    break;
                }
                Some((true, op::PONG, payload)) => {
                    assert!(pings.contains(&payload), "an unknown pong {payload:?}");
                    pongs += 1;
                }
                other => panic!("raw round trip {i}: got {other:?}"),
            }
        }
    }
    raw.send(0x88, &1000u16.to_be_bytes()).await;
    loop {
        match raw.next_frame().await {
            Some((true, op::PONG, payload)) => {
                assert!(pings.contains(&payload), "an unknown pong {payload:?}");
                pongs += 1;
            }
            Some((true, op::CLOSE, payload)) => {
                assert_eq!(payload, [0x03, 0xE8]);
                break;
            }
            other => panic!("expected the close echo, got {other:?}"),
        }
    }
    raw.expect_end().await;
    assert!(!pings.is_empty());
    assert!(
        pongs > 0 && pongs <= pings.len(),
        "{pongs} pongs for {} pings",
        pings.len()
    );

    client.close().await;
    eventually("both connections to finish", || {
        srv.server.active_connections() == 0
    })
    .await;
    let disconnects = rec.disconnects();
    assert_eq!(disconnects.len(), 2);
    for id in [&id, &raw_id] {
        assert_eq!(
            disconnects.get(id).map(Vec::as_slice),
            Some(&["client_closed"][..])
        );
    }
    assert_no_panics();
}
