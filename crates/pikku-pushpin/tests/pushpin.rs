//! Against the real Pushpin: each test starts its own with the launcher, in front of a small WebSocket-over-HTTP
//! backend written here with hyper, and talks to it with a WebSocket client.
//!
//! What these tests pin down about Pushpin (1.36), which a worker must handle:
//!
//! - Every request carries `Connection-Id` (the id to subscribe and publish to), `Grip-Sig` (HS256 JWT with
//!   `iss` and `exp`), `Sec-WebSocket-Extensions: grip`, `Content-Type` and `Accept` of
//!   `application/websocket-events`, and the client's own upgrade headers (its path, query and cookies too).
//! - The worker accepts a connection by answering the `OPEN` request with status 200, content type
//!   `application/websocket-events` and a body starting with `OPEN`. Answering `OPEN` with any other status
//!   makes Pushpin answer the client's upgrade with that status, the worker's headers and its body: the
//!   client sees a plain HTTP rejection.
//! - With `Sec-WebSocket-Extensions: grip` in the `OPEN` answer, a `TEXT` starting `c:` is a control
//!   message (`{"type":"subscribe","channel":…}`), and every other message to the client (text or binary)
//!   must start with the message prefix, `m:` by default, which Pushpin strips. An unprefixed message is
//!   silently dropped. `grip; message-prefix=""` turns the prefix off.
//! - Pushpin does not answer a client's ping itself: the `PING` reaches the worker as an event, and the
//!   client gets a pong only if the worker answers with `PONG`.
//! - Pushpin has at most one request in flight per connection. Events that arrive while one is in flight go
//!   in the next request, several to a body, always in order; events of one connection never overtake each
//!   other.
//! - A client's close arrives as `CLOSE` with its code and reason; answering `CLOSE` completes the
//!   handshake. A connection that drops without a close arrives as `DISCONNECT`.
//! - A `Set-Meta-<Name>` header in any answer makes Pushpin send `Meta-<Name>` with every later request of
//!   that connection (per-connection state a stateless worker can keep in Pushpin). A client's own `Meta-*`
//!   headers are stripped, so the worker can trust them.
//! - Published messages reach every subscriber of the channel; `action: close` closes with the given code
//!   and reason; a published ping needs a `content` field (empty will do). The publish API refuses a body
//!   over `push_in_http_max_body_size` (1 000 000 bytes by default), and answers with `Connection: close`,
//!   so each publication opens a new connection.
//! - For about a second after start, Pushpin's internal links may drop a request's body or a client's
//!   frames; the launcher waits until a probe crosses them (see `launch`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pikku_core::frame::OutFrame;
use pikku_core::store::PlatformSender as _;
use pikku_pushpin::events::{encode_events, parse_events, ParseLimits, WsEvent};
use pikku_pushpin::grip::{GripError, GripVerifier};
use pikku_pushpin::launch::{PushpinConfig, PushpinProcess};
use pikku_pushpin::publish::PublishItem;
use pikku_pushpin::{PublishError, PushpinPublisher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// One request the backend received.
#[derive(Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    events: Vec<WsEvent>,
}

/// The backend: accepts on `OPEN` (subscribing the connection to `conn:<Connection-Id>`), echoes text and
/// binary with the message prefix, answers `CLOSE` with `CLOSE`. Its path picks variants:
/// `/reject` refuses the connection with 403, `/pong` answers pings, `/noprefix` turns the prefix off.
struct Backend {
    addr: SocketAddr,
    seen: Mutex<mpsc::UnboundedReceiver<Seen>>,
}

impl Backend {
    async fn start() -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, tx.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Arc::new(Self {
            addr,
            seen: Mutex::new(rx),
        })
    }

    /// The next request the backend received.
    async fn next(&self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.lock().await.recv())
            .await
            .expect("the backend received no request in time")
            .unwrap()
    }

    /// Requests until one holds an event matching `pred`; returns every event seen on the way, in order.
    async fn until(&self, pred: impl Fn(&WsEvent) -> bool) -> (Vec<Seen>, Seen) {
        let mut before = Vec::new();
        loop {
            let seen = self.next().await;
            if seen.events.iter().any(&pred) {
                return (before, seen);
            }
            before.push(seen);
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: mpsc::UnboundedSender<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    // A request Pushpin gives up on midway (its connection closing as a test ends) has no whole body.
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::default())
            .unwrap());
    };
    let events =
        parse_events(&body, &ParseLimits::default()).expect("pushpin sends well-formed events");
    let connection_id = headers["connection-id"].to_str().unwrap().to_owned();

    let opening = events.first() == Some(&WsEvent::Open);
    if opening && path == "/reject" {
        let _ = seen.send(Seen {
            path,
            headers,
            events,
        });
        return Ok(Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("content-type", "text/plain")
            .header("x-reason", "not today")
            .body(Full::new(Bytes::from_static(b"go away")))
            .unwrap());
    }
    let prefix: &[u8] = if path == "/noprefix" { b"" } else { b"m:" };
    let prefixed = |content: &Bytes| Bytes::from([prefix, content].concat());
    let mut out = Vec::new();
    for event in &events {
        match event {
            WsEvent::Open => {
                out.push(WsEvent::Open);
                out.push(WsEvent::text(format!(
                    r#"c:{{"type":"subscribe","channel":"conn:{connection_id}"}}"#
                )));
            }
            // Written without the prefix, which Pushpin drops; then a prefixed marker that it relays.
            WsEvent::Text(t) if t.starts_with(b"unprefixed ") && !prefix.is_empty() => {
                out.push(WsEvent::Text(t.slice(b"unprefixed ".len()..)));
                out.push(WsEvent::text("m:after the unprefixed one"));
            }
            WsEvent::Text(t) => out.push(WsEvent::Text(prefixed(t))),
            WsEvent::Binary(b) => out.push(WsEvent::Binary(prefixed(b))),
            WsEvent::Ping(p) if path == "/pong" => out.push(WsEvent::Pong(p.clone())),
            WsEvent::Close { code, reason } => out.push(WsEvent::Close {
                code: *code,
                reason: reason.clone(),
            }),
            _ => {}
        }
    }
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", pikku_pushpin::events::CONTENT_TYPE);
    if opening {
        let grip = if prefix.is_empty() {
            r#"grip; message-prefix="""#
        } else {
            "grip"
        };
        response = response
            .header("sec-websocket-extensions", grip)
            // Pushpin keeps this and sends it back as `Meta-User` on every later request of the connection.
            .header("set-meta-user", "alice");
    }
    let _ = seen.send(Seen {
        path,
        headers,
        events,
    });
    Ok(response
        .body(Full::new(Bytes::from(encode_events(&out))))
        .unwrap())
}

/// A Pushpin in front of a fresh backend.
struct Setup {
    backend: Arc<Backend>,
    pushpin: PushpinProcess,
    publisher: PushpinPublisher,
}

const KEY: &str = "pushpin-test-key";

async fn setup() -> Setup {
    let backend = Backend::start().await;
    let addr = backend.addr;
    let pushpin = tokio::task::spawn_blocking(move || {
        PushpinProcess::start(PushpinConfig::new().target(addr).sig_key(KEY)).unwrap()
    })
    .await
    .unwrap();
    let publisher = PushpinPublisher::new(&pushpin.publish_url()).unwrap();
    Setup {
        backend,
        pushpin,
        publisher,
    }
}

impl Setup {
    /// Connects a client to `path` and returns it with the connection id from the backend's `OPEN`.
    async fn connect(&self, path: &str) -> (Client, String) {
        let url = format!("ws://127.0.0.1:{}{path}", self.pushpin.http_port());
        let (client, response) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // Requests of connections opened earlier may come first.
        let (_, open) = self.backend.until(|e| *e == WsEvent::Open).await;
        assert_eq!(open.events, [WsEvent::Open]);
        let id = open.headers["connection-id"].to_str().unwrap().to_owned();
        (client, id)
    }

    /// Publishes a text to the connection until it arrives: right after `OPEN`, Pushpin may not have
    /// processed the subscription yet, and a publication to a channel with no subscriber is dropped.
    async fn publish_until_received(&self, client: &mut Client, id: &str) {
        for _ in 0..100 {
            self.publisher
                .publish(id, &OutFrame::text("ready?"))
                .await
                .unwrap();
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(100), client.next()).await
            {
                assert_eq!(t.as_str(), "ready?");
                // Later attempts' copies may still be on their way: drain them.
                while let Ok(Some(Ok(Message::Text(_)))) =
                    tokio::time::timeout(Duration::from_millis(200), client.next()).await
                {
                }
                return;
            }
        }
        panic!(
            "the subscription never took effect:\n{}",
            self.pushpin.log_tail()
        );
    }
}

/// The next message, or `None` when none comes within [`WAIT`].
async fn try_recv(client: &mut Client) -> Option<Message> {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .ok()?
            .expect("the connection ended")
            .unwrap();
        if !matches!(message, Message::Frame(_)) {
            return Some(message);
        }
    }
}

async fn recv(client: &mut Client) -> Message {
    try_recv(client).await.expect("no message in time")
}

impl Setup {
    /// The next message; when none comes, fails with what the backend saw since and Pushpin's logs.
    async fn recv(&self, client: &mut Client) -> Message {
        if let Some(message) = try_recv(client).await {
            return message;
        }
        let mut seen = Vec::new();
        while let Ok(Some(request)) = tokio::time::timeout(Duration::from_millis(200), async {
            self.backend.seen.lock().await.recv().await
        })
        .await
        {
            seen.push(request);
        }
        panic!(
            "no message in time; the backend saw {seen:#?}\n{}",
            self.pushpin.log_tail()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_echoed_and_requests_carry_a_verifiable_grip_sig() {
    let s = setup().await;
    let url = format!("ws://127.0.0.1:{}/echo?room=a", s.pushpin.http_port());
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = s.backend.next().await;
    assert_eq!(open.path, "/echo");
    assert_eq!(open.headers["sec-websocket-extensions"], "grip");
    assert_eq!(open.headers["content-type"], "application/websocket-events");
    assert!(!open.headers["connection-id"].is_empty());

    let sig = open.headers.get("grip-sig");
    let claims = GripVerifier::hs256(KEY)
        .verify(sig, SystemTime::now())
        .unwrap();
    assert_eq!(claims.iss(), Some("pushpin"));
    assert!(claims.expires_at() > SystemTime::now());
    assert_eq!(
        GripVerifier::hs256("another key").verify(sig, SystemTime::now()),
        Err(GripError::BadSignature)
    );

    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(s.recv(&mut client).await, Message::text("hello"));
    let text = s.backend.next().await;
    assert_eq!(text.events, [WsEvent::text("hello")]);
    // The same connection id and a signature on every request, not only the first.
    assert_eq!(text.headers["connection-id"], open.headers["connection-id"]);
    assert!(GripVerifier::hs256(KEY)
        .verify(text.headers.get("grip-sig"), SystemTime::now())
        .is_ok());

    // Dropping the TCP connection without a close handshake reaches the worker as DISCONNECT.
    drop(client);
    s.backend.until(|e| *e == WsEvent::Disconnect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_is_echoed_as_binary_and_unprefixed_messages_are_dropped() {
    let s = setup().await;
    let (mut client, _) = s.connect("/echo").await;
    client
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        s.recv(&mut client).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );
    client.send(Message::text("unprefixed lost")).await.unwrap();
    assert_eq!(
        s.recv(&mut client).await,
        Message::text("after the unprefixed one")
    );

    let (mut bare, _) = s.connect("/noprefix").await;
    bare.send(Message::text("no prefix")).await.unwrap();
    assert_eq!(s.recv(&mut bare).await, Message::text("no prefix"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_text_and_binary_reach_the_client() {
    let s = setup().await;
    let (mut client, id) = s.connect("/echo").await;
    s.publish_until_received(&mut client, &id).await;

    s.publisher
        .publish(&id, &OutFrame::text("published"))
        .await
        .unwrap();
    assert_eq!(s.recv(&mut client).await, Message::text("published"));

    let bytes = Bytes::from_static(&[9, 8, 7, 0, 255]);
    s.publisher
        .publish(&id, &OutFrame::Binary(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(s.recv(&mut client).await, Message::Binary(bytes));

    // Through the PlatformSender seam the stores use.
    s.publisher
        .send(&id, &OutFrame::text("via the sender"))
        .await
        .unwrap();
    assert_eq!(s.recv(&mut client).await, Message::text("via the sender"));

    // A batch in one request arrives in its order.
    let frames: Vec<OutFrame> = (0..5)
        .map(|i| OutFrame::text(format!("batch {i}")))
        .collect();
    let items: Vec<(&str, &OutFrame)> = frames.iter().map(|f| (id.as_str(), f)).collect();
    s.publisher.publish_many(&items).await.unwrap();
    for i in 0..5 {
        assert_eq!(
            s.recv(&mut client).await,
            Message::text(format!("batch {i}"))
        );
    }

    // A ping is relayed as a ping frame.
    s.publisher.publish(&id, &OutFrame::Ping).await.unwrap();
    assert!(matches!(s.recv(&mut client).await, Message::Ping(_)));

    // Publishing to a connection that does not exist still succeeds: Pushpin cannot tell.
    s.publisher
        .publish("no-such-connection", &OutFrame::text("lost"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_close_closes_the_client_with_its_code_and_reason() {
    let s = setup().await;
    let (mut client, id) = s.connect("/echo").await;
    s.publish_until_received(&mut client, &id).await;
    s.publisher.close(&id, 4001, "kicked out").await.unwrap();
    match s.recv(&mut client).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::from(4001));
            assert_eq!(frame.reason.as_str(), "kicked out");
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_quickly_arrive_in_order_and_may_share_a_request() {
    let s = setup().await;
    let (mut client, _) = s.connect("/echo").await;
    const N: usize = 200;
    for i in 0..N {
        client
            .feed(Message::text(format!("msg {i}")))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    for i in 0..N {
        assert_eq!(s.recv(&mut client).await, Message::text(format!("msg {i}")));
    }
    // The backend saw every message once, in order, over however many requests Pushpin made.
    let mut texts = Vec::new();
    let mut requests = 0;
    while texts.len() < N {
        let seen = s.backend.next().await;
        requests += 1;
        texts.extend(seen.events);
    }
    let expected: Vec<WsEvent> = (0..N).map(|i| WsEvent::text(format!("msg {i}"))).collect();
    assert_eq!(texts, expected);
    assert!(requests <= N);
    eprintln!("{N} messages reached the backend in {requests} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushpin_does_not_answer_pings_itself() {
    let s = setup().await;
    // This backend ignores PING: the client sees its text echoed and no pong before it.
    let (mut client, _) = s.connect("/echo").await;
    client
        .send(Message::Ping(Bytes::from_static(b"p1")))
        .await
        .unwrap();
    client.send(Message::text("after the ping")).await.unwrap();
    assert_eq!(s.recv(&mut client).await, Message::text("after the ping"));
    let (_, ping) = s.backend.until(|e| matches!(e, WsEvent::Ping(_))).await;
    assert!(ping
        .events
        .contains(&WsEvent::Ping(Bytes::from_static(b"p1"))));

    // This one answers PING with PONG, which Pushpin relays.
    let (mut client, _) = s.connect("/pong").await;
    client
        .send(Message::Ping(Bytes::from_static(b"p2")))
        .await
        .unwrap();
    assert_eq!(
        s.recv(&mut client).await,
        Message::Pong(Bytes::from_static(b"p2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_reaches_the_worker_and_its_answer_completes_the_handshake() {
    let s = setup().await;
    let (mut client, _) = s.connect("/echo").await;
    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(4100),
            reason: "done".into(),
        })))
        .await
        .unwrap();
    let (_, close) = s
        .backend
        .until(|e| matches!(e, WsEvent::Close { .. }))
        .await;
    assert!(close.events.contains(&WsEvent::Close {
        code: Some(4100),
        reason: "done".into()
    }));
    match s.recv(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::from(4100)),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_headers_set_by_the_worker_come_back_and_clients_cannot_forge_them() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let s = setup().await;
    let mut request = format!("ws://127.0.0.1:{}/echo", s.pushpin.http_port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("meta-user", "mallory".parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (_, open) = s.backend.until(|e| *e == WsEvent::Open).await;
    assert!(
        open.headers.get("meta-user").is_none(),
        "a client's Meta-* header reached the worker"
    );

    client.send(Message::text("who am I?")).await.unwrap();
    assert_eq!(s.recv(&mut client).await, Message::text("who am I?"));
    let text = s.backend.next().await;
    assert_eq!(text.headers["meta-user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_200_answer_to_open_is_the_clients_http_response() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let s = setup().await;
    // A raw client: a WebSocket client library stops reading at the end of the rejection's headers, and
    // would see the body only when it arrived in the same read.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", s.pushpin.http_port()))
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /reject HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let (head, body) = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "the connection closed early: {:?}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            if body.len() >= "go away".len() {
                break (head.to_owned(), body.to_owned());
            }
        }
    };
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(head.contains("\r\nx-reason: not today"), "{head}");
    assert_eq!(body, "go away");
    assert_eq!(s.backend.next().await.events, [WsEvent::Open]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_over_pushpins_body_limit_is_a_typed_failure() {
    let s = setup().await;
    let big = OutFrame::text("x".repeat(1_100_000));
    match s
        .publisher
        .publish_items(&[PublishItem::frame("conn:any", &big)])
        .await
    {
        // Pushpin answers 400 "Request body too large." as soon as it has read the head, and closes the
        // connection: depending on timing the publisher reads that answer or fails writing the rest.
        Err(PublishError::Status { status, body_start }) => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(body_start.contains("too large"), "{body_start}");
        }
        Err(PublishError::Transport(cause)) => assert!(
            cause.contains("Broken pipe") || cause.contains("reset"),
            "{cause}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether any process of `session` is alive.
fn session_alive(session: u32) -> bool {
    std::process::Command::new("pgrep")
        .arg("-s")
        .arg(session.to_string())
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_at_once_and_stop_without_leftovers() {
    let backend = Backend::start().await;
    let addr = backend.addr;
    let (a, b) = tokio::task::spawn_blocking(move || {
        let a = PushpinProcess::start(PushpinConfig::new().target(addr)).unwrap();
        let b = PushpinProcess::start(PushpinConfig::new().target(addr)).unwrap();
        (a, b)
    })
    .await
    .unwrap();
    assert_ne!(a.http_port(), b.http_port());
    assert_ne!(a.publish_url(), b.publish_url());
    assert_ne!(a.sig_key(), b.sig_key());

    let (session_a, session_b, dir_a) = (a.session_id(), b.session_id(), a.dir().to_owned());
    assert!(session_alive(session_a) && session_alive(session_b));
    let services = std::process::Command::new("pgrep")
        .args(["-s", &session_a.to_string(), "-l"])
        .output()
        .unwrap();
    let services = String::from_utf8_lossy(&services.stdout);
    for name in ["condure", "zurl", "pushpin-proxy", "pushpin-handl"] {
        assert!(services.contains(name), "{name} not running:\n{services}");
    }

    // Both serve clients while both run.
    for pushpin in [&a, &b] {
        let url = format!("ws://127.0.0.1:{}/echo", pushpin.http_port());
        let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        client.send(Message::text("hi")).await.unwrap();
        assert_eq!(recv(&mut client).await, Message::text("hi"));
    }

    tokio::task::spawn_blocking(move || a.stop()).await.unwrap();
    assert!(
        !session_alive(session_a),
        "processes of the stopped instance remain"
    );
    assert!(!dir_a.exists());
    assert!(
        session_alive(session_b),
        "stopping one instance stopped the other"
    );
    tokio::task::spawn_blocking(move || drop(b)).await.unwrap();
    assert!(!session_alive(session_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_client_port_is_used() {
    let backend = Backend::start().await;
    let addr = backend.addr;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pushpin = tokio::task::spawn_blocking(move || {
        PushpinProcess::start(PushpinConfig::new().target(addr).http_port(port)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(pushpin.http_port(), port);
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/echo"))
        .await
        .unwrap();
    client.send(Message::text("on my port")).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::text("on my port"));
    tokio::task::spawn_blocking(move || pushpin.stop())
        .await
        .unwrap();
}
