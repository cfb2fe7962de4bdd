//! The worker: an HTTP service that serves a pikku app statelessly behind Pushpin.
//!
//! Pushpin posts every event of a client's WebSocket to the worker (WebSocket-over-HTTP) and plays back on the
//! socket the events of the answer. The worker hands each request to a
//! [`StatelessRuntime`], so any number of workers can serve the same
//! connections: everything a connection needs between two requests is in the stores.
//!
//! Per request:
//! - `OPEN`: the upgrade checks and onConnect; the answer accepts (`OPEN`, the GRIP extension, a subscription of
//!   the connection to its own Pushpin channel `conn:<Connection-Id>`) or refuses with the status and JSON body
//!   of the embedded server's refusals, which Pushpin returns to the client as the handshake's answer;
//! - `TEXT` / `BINARY`: the message step, consecutive messages of one request as one batch, in order;
//! - `PING`: answered with `PONG`;
//! - `CLOSE` / `DISCONNECT`: onDisconnect, once (a repeated one finds no record and does nothing); a `CLOSE` is
//!   answered with `CLOSE`, which completes the client's close handshake.
//!
//! Frames of an answer go back in the response body, except when one of them is larger than
//! [`WorkerConfig::max_response_frame`]: then all of them go through the publish API, in order, because Pushpin
//! 1.36 drops large frames from response bodies. Sends that are not answers (publications, sends to another
//! connection) always go through the publish API.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use pikku_core::frame::OutFrame;
use pikku_core::runtime::UpgradeInput;
use pikku_core::stateless::{
    Inbound, Outcome, StatelessError, StatelessRuntime, StatelessStores, UserSession,
};
use pikku_core::subprotocol::SubprotocolPolicy;
use pikku_core::{App, ChannelError, DisconnectReason, RegistrationError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::events::{encode_events, parse_events, ParseLimits, WsEvent};
use crate::grip::GripVerifier;
use crate::publish::{PublishItem, PushpinPublisher};

/// The content type of WebSocket-over-HTTP requests and answers.
const EVENTS_CONTENT_TYPE: &str = "application/websocket-events";
/// The header that names the client's connection.
const CONNECTION_ID: HeaderName = HeaderName::from_static("connection-id");
/// The header Pushpin signs its requests with.
const GRIP_SIG: HeaderName = HeaderName::from_static("grip-sig");
/// Prefix of messages to the client when the GRIP extension is on; `c:` marks control messages.
const MESSAGE_PREFIX: &[u8] = b"m:";

/// How a [`PushpinWorker`] reaches Pushpin and checks what it receives.
///
/// ```
/// use pikku::pushpin::{GripVerifier, WorkerConfig};
///
/// let config = WorkerConfig::new("http://127.0.0.1:5561").grip_verifier(GripVerifier::hs256("changeme"));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Pushpin's publish API, e.g. `http://127.0.0.1:5561`.
    pub publish_url: String,
    /// Checks every request's `Grip-Sig`; `None` accepts unsigned requests (only for a worker no one else can
    /// reach).
    pub verifier: Option<GripVerifier>,
    /// Which offered subprotocol an accepted connection selects.
    pub subprotocols: SubprotocolPolicy,
    /// Bounds on a request's events.
    pub limits: ParseLimits,
    /// The largest frame sent back in a response body; an answer with a larger frame goes through the publish
    /// API. Default 32,000 bytes, under the limit of Pushpin 1.36.
    pub max_response_frame: usize,
    /// How often the worker forgets connections quiet for longer than [`ttl`](Self::ttl) (`None`: never; run
    /// [`StatelessRuntime::sweep`] yourself).
    pub sweep_every: Option<Duration>,
    /// How long a connection may stay quiet before the sweep forgets it (default two hours). Pushpin reports
    /// every close, so the sweep only catches what a crash lost.
    pub ttl: Duration,
}

impl WorkerConfig {
    /// A worker publishing to `publish_url`, with the default limits, no signature check, no subprotocols and a
    /// sweep every minute.
    #[must_use]
    pub fn new(publish_url: impl Into<String>) -> Self {
        Self {
            publish_url: publish_url.into(),
            verifier: None,
            subprotocols: SubprotocolPolicy::None,
            limits: ParseLimits::default(),
            max_response_frame: 32_000,
            sweep_every: Some(Duration::from_secs(60)),
            ttl: pikku_core::store::DEFAULT_TTL,
        }
    }

    /// Refuses requests whose `Grip-Sig` `verifier` does not accept.
    #[must_use]
    pub fn grip_verifier(mut self, verifier: GripVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The subprotocol policy, as the embedded server's.
    #[must_use]
    pub fn subprotocols(mut self, policy: SubprotocolPolicy) -> Self {
        self.subprotocols = policy;
        self
    }
}

/// Why a worker could not be built.
///
/// ```
/// use pikku::pushpin::WorkerError;
///
/// let err = WorkerError::PublishUrl("not a url".into());
/// assert_eq!(err.to_string(), "invalid Pushpin publish URL: not a url");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerError {
    /// The app cannot run statelessly.
    App(RegistrationError),
    /// The publish URL is not usable.
    PublishUrl(String),
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::App(err) => write!(f, "the app cannot run statelessly: {err}"),
            Self::PublishUrl(why) => write!(f, "invalid Pushpin publish URL: {why}"),
        }
    }
}

impl std::error::Error for WorkerError {}

/// A pikku app served statelessly behind Pushpin: see the [module docs](self).
///
/// ```no_run
/// use pikku::pushpin::{PushpinWorker, WorkerConfig};
/// use pikku::stateless::StatelessStores;
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
///
/// async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: serde_json::Value) -> serde_json::Value {
///     input
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let app = App::new(()).channel(ChannelRoute::new("echo", "/echo").auth(false).on_message(echo));
/// let stores = pikku::stores_from_url("redis://127.0.0.1:6379").await?;
/// let worker = PushpinWorker::new(app, stores, WorkerConfig::new("http://127.0.0.1:5561"))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// worker.serve(listener, pikku::shutdown_signal()).await?;
/// # Ok(())
/// # }
/// ```
pub struct PushpinWorker<S, U> {
    inner: Arc<Worker<S, U>>,
}

impl<S, U> Clone for PushpinWorker<S, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S, U> std::fmt::Debug for PushpinWorker<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushpinWorker")
            .field("publish_url", &self.inner.config.publish_url)
            .finish_non_exhaustive()
    }
}

struct Worker<S, U> {
    runtime: StatelessRuntime<S, U>,
    publisher: Arc<PushpinPublisher>,
    config: WorkerConfig,
}

impl<S, U> PushpinWorker<S, U>
where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Builds the worker: the app served statelessly on `stores`, publishing through Pushpin.
    ///
    /// # Errors
    /// The app keeps socket state it does not persist, or the publish URL is not usable.
    pub fn new(
        app: App<S, U>,
        stores: StatelessStores,
        config: WorkerConfig,
    ) -> Result<Self, WorkerError> {
        let publisher = Arc::new(
            PushpinPublisher::new(&config.publish_url)
                .map_err(|err| WorkerError::PublishUrl(err.to_string()))?,
        );
        let runtime = StatelessRuntime::new(app, stores, publisher.clone())
            .map_err(WorkerError::App)?
            .with_ttl(config.ttl);
        Ok(Self {
            inner: Arc::new(Worker {
                runtime,
                publisher,
                config,
            }),
        })
    }

    /// The stateless runtime: its hub publishes through Pushpin, also from outside any request.
    #[must_use]
    pub fn runtime(&self) -> &StatelessRuntime<S, U> {
        &self.inner.runtime
    }

    /// The worker as an axum router answering every path: Pushpin forwards each connection's requests to the
    /// path the client opened, which the app's routes match. Nest it or serve it as it is.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(handle::<S, U>)
            .with_state(self.inner.clone())
    }

    /// Serves the worker on `listener` until `shutdown` completes, sweeping quiet connections as configured.
    ///
    /// # Errors
    /// The listener fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_router(Router::new(), listener, shutdown).await
    }

    /// [`serve`](Self::serve), with `routes` of your own next to the worker (pages, an API): Pushpin proxies plain
    /// HTTP requests to the worker too, and `routes` answers the paths it has.
    ///
    /// # Errors
    /// The listener fails.
    pub async fn serve_router(
        self,
        routes: Router,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sweeper = self.inner.config.sweep_every.map(|every| {
            let worker = self.inner.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    match worker.runtime.sweep().await {
                        Ok(ids) if !ids.is_empty() => {
                            tracing::info!(count = ids.len(), "forgot quiet connections");
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "sweep failed"),
                    }
                }
            })
        });
        let served = axum::serve(listener, routes.merge(self.router()))
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        served
    }
}

/// A listener on `addr` that several workers may share (`SO_REUSEPORT`): the kernel spreads connections between
/// them, so workers behind one Pushpin target serve each other's connections.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let first = pikku::pushpin::worker::shared_listener("127.0.0.1:0".parse().unwrap()).unwrap();
/// let second = pikku::pushpin::worker::shared_listener(first.local_addr().unwrap()).unwrap();
/// assert_eq!(first.local_addr().unwrap(), second.local_addr().unwrap());
/// # });
/// ```
///
/// # Errors
/// The address cannot be bound.
pub fn shared_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// One WebSocket-over-HTTP request.
async fn handle<S, U>(State(worker): State<Arc<Worker<S, U>>>, request: Request) -> Response
where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    if let Some(verifier) = &worker.config.verifier {
        if let Err(err) = verifier.verify(request.headers().get(GRIP_SIG), SystemTime::now()) {
            tracing::warn!(error = %err, "request without a valid Grip-Sig refused");
            return plain(StatusCode::UNAUTHORIZED, "invalid Grip-Sig");
        }
    }
    let Some(connection_id) = request
        .headers()
        .get(CONNECTION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
    else {
        return plain(StatusCode::BAD_REQUEST, "missing Connection-Id");
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, worker.config.limits.max_body).await {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let events = match parse_events(&body, &worker.config.limits) {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(connection_id, error = %err, "malformed WebSocket-over-HTTP request");
            return plain(StatusCode::BAD_REQUEST, &err.to_string());
        }
    };
    let mut answer = Answer::default();
    let mut batch = Vec::new();
    for event in events {
        let step = match event {
            WsEvent::Open => {
                if !answer.items.is_empty() || !batch.is_empty() {
                    return plain(StatusCode::BAD_REQUEST, "OPEN must be the first event");
                }
                let input = UpgradeInput {
                    path: parts.uri.path(),
                    query: parts.uri.query(),
                    headers: Arc::new(parts.headers.clone()),
                    peer: None,
                };
                match open(&worker, &connection_id, input, &mut answer).await {
                    Ok(()) => Step::Next,
                    Err(refusal) => return refusal,
                }
            }
            WsEvent::Text(bytes) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => {
                    batch.push(Inbound::Text(text));
                    Step::Next
                }
                Err(_) => {
                    // As the embedded server: the connection closes with 1007, and disconnects with that reason.
                    flush(&worker, &connection_id, &mut batch, &mut answer).await;
                    end(&worker, &connection_id, DisconnectReason::InvalidUtf8).await;
                    answer.close(1007, "invalid utf-8");
                    Step::Stop
                }
            },
            WsEvent::Binary(bytes) => {
                batch.push(Inbound::Binary(bytes));
                Step::Next
            }
            WsEvent::Ping(payload) => {
                flush(&worker, &connection_id, &mut batch, &mut answer).await;
                answer.event(WsEvent::Pong(payload));
                Step::Next
            }
            WsEvent::Pong(_) => Step::Next,
            WsEvent::Close { code, .. } => {
                flush(&worker, &connection_id, &mut batch, &mut answer).await;
                end(
                    &worker,
                    &connection_id,
                    DisconnectReason::ClientClosed(code),
                )
                .await;
                // Completes the client's close, unless the app closed first: its close goes out instead.
                if !answer.closing {
                    answer.event(WsEvent::Close {
                        code,
                        reason: String::new(),
                    });
                }
                Step::Stop
            }
            WsEvent::Disconnect => {
                flush(&worker, &connection_id, &mut batch, &mut answer).await;
                end(&worker, &connection_id, DisconnectReason::TransportError).await;
                Step::Stop
            }
        };
        if matches!(step, Step::Stop) || answer.closing {
            break;
        }
    }
    flush(&worker, &connection_id, &mut batch, &mut answer).await;
    if answer.failed {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "store failure");
    }
    answer.into_response(&worker, &connection_id).await
}

enum Step {
    Next,
    Stop,
}

/// The events and headers of the answer being built.
#[derive(Default)]
struct Answer {
    /// In the order they happened.
    items: Vec<Item>,
    headers: HeaderMap,
    close: Option<(u16, String)>,
    closing: bool,
    failed: bool,
}

/// One thing the answer holds: an event of the protocol (`OPEN`, a control message, `PONG`, `CLOSE`) or a frame
/// for the client, which may leave through the publish API instead.
enum Item {
    Event(WsEvent),
    Frame(OutFrame),
}

impl Answer {
    fn event(&mut self, event: WsEvent) {
        self.items.push(Item::Event(event));
    }

    fn close(&mut self, code: u16, reason: &str) {
        self.close = Some((code, reason.to_owned()));
        self.closing = true;
    }

    fn take(&mut self, outcome: Outcome) {
        self.items
            .extend(outcome.frames.into_iter().map(Item::Frame));
        if let Some(close) = outcome.close {
            self.close(close.code, &close.reason);
        }
    }

    async fn into_response<S, U>(mut self, worker: &Worker<S, U>, connection_id: &str) -> Response {
        let large = self.items.iter().any(
            |item| matches!(item, Item::Frame(frame) if frame.len() > worker.config.max_response_frame),
        );
        let mut events = Vec::with_capacity(self.items.len() + 1);
        if large {
            // Every frame, so that none overtakes a large one; the body keeps the protocol's events.
            let channel = worker.publisher.connection_channel(connection_id);
            let mut published = Vec::new();
            for item in self.items {
                match item {
                    Item::Frame(frame) => {
                        published.push(PublishItem::frame(channel.clone(), &frame))
                    }
                    Item::Event(event) => events.push(event),
                }
            }
            if let Some((code, reason)) = self.close.take() {
                published.push(PublishItem::close(channel, code, reason));
            }
            if let Err(err) = worker.publisher.publish_items(&published).await {
                tracing::warn!(connection_id, error = %err, "could not publish an answer");
            }
        } else {
            events.extend(self.items.into_iter().map(|item| match item {
                Item::Frame(frame) => message_event(frame),
                Item::Event(event) => event,
            }));
        }
        if let Some((code, reason)) = self.close.take() {
            events.push(WsEvent::Close {
                code: Some(code),
                reason,
            });
        }
        let mut response = Response::new(Body::from(encode_events(&events)));
        *response.headers_mut() = self.headers;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(EVENTS_CONTENT_TYPE),
        );
        response
    }
}

/// A frame for the client as a message event, with the message prefix the GRIP extension expects.
fn message_event(frame: OutFrame) -> WsEvent {
    let prefixed = |payload: &[u8]| {
        let mut bytes = BytesMut::with_capacity(MESSAGE_PREFIX.len() + payload.len());
        bytes.put_slice(MESSAGE_PREFIX);
        bytes.put_slice(payload);
        bytes.freeze()
    };
    match frame {
        OutFrame::Text(text) => WsEvent::Text(prefixed(&text)),
        OutFrame::Binary(bytes) => WsEvent::Binary(prefixed(&bytes)),
        OutFrame::Ping => WsEvent::Ping(Bytes::new()),
    }
}

/// An accepted or refused `OPEN`.
async fn open<S, U>(
    worker: &Worker<S, U>,
    connection_id: &str,
    input: UpgradeInput<'_>,
    answer: &mut Answer,
) -> Result<(), Response>
where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    // Chosen before the app runs, so that a refusal leaves nothing behind.
    let protocol = worker
        .config
        .subprotocols
        .choose(&input.headers)
        .map_err(|err| refusal(&err))?;
    let outcome = worker
        .runtime
        .connect(connection_id, input)
        .await
        .map_err(|err| refusal(&err))?;
    answer.headers = outcome.headers.clone();
    answer.headers.insert(
        HeaderName::from_static("sec-websocket-extensions"),
        HeaderValue::from_static("grip"),
    );
    if let Some(protocol) = protocol {
        answer
            .headers
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    answer.event(WsEvent::Open);
    let subscribe = serde_json::json!({
        "type": "subscribe",
        "channel": worker.publisher.connection_channel(connection_id),
    });
    answer.event(WsEvent::text(format!("c:{subscribe}")));
    answer.take(outcome);
    Ok(())
}

/// Runs the messages collected so far.
async fn flush<S, U>(
    worker: &Worker<S, U>,
    connection_id: &str,
    batch: &mut Vec<Inbound>,
    answer: &mut Answer,
) where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    if batch.is_empty() || answer.closing {
        batch.clear();
        return;
    }
    match worker.runtime.message(connection_id, batch.drain(..)).await {
        Ok(outcome) => answer.take(outcome),
        Err(StatelessError::Store(err)) => {
            tracing::error!(connection_id, error = %err, "store failed; the request is answered with 500");
            answer.failed = true;
        }
        Err(err) => {
            tracing::error!(connection_id, error = %err, "message failed");
            answer.failed = true;
        }
    }
}

/// The connection ended.
async fn end<S, U>(worker: &Worker<S, U>, connection_id: &str, reason: DisconnectReason)
where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    if let Err(err) = worker.runtime.disconnect(connection_id, reason).await {
        tracing::error!(connection_id, error = %err, "disconnect failed");
    }
}

/// The refusal of an `OPEN`: the embedded server's status and JSON body.
fn refusal(err: &ChannelError) -> Response {
    let error_id = uuid::Uuid::new_v4().to_string();
    if err.is_internal() {
        tracing::error!(error_id, error = %err.debug_text(), "connect failed");
    } else {
        tracing::info!(error_id, status = err.status(), error = %err, "connect refused");
    }
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            // As the embedded server's refusals: the client is not to reuse the connection.
            (header::CONNECTION, "close"),
        ],
        err.refusal_body(&error_id),
    )
        .into_response()
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}
