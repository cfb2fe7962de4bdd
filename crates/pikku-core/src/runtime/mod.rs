//! The message pipeline shared by every runner: upgrade admission (the application's checks: route, origin,
//! opening data, upgrade middleware), then per connection the connect, message, binary and disconnect flows.
//!
//! Runners (the embedded server in `pikku-server`, or your own) own sockets, timers and queues; this module owns
//! what happens to a frame: parse, RPC interception, routing, the auth gate, middleware, validation, permissions,
//! the handler, and the reply frame. It knows nothing about sockets.
//!
//! # Driving a connection
//! A runner admits an upgrade with [`AppRuntime::admit`](crate::AppRuntime::admit), writes the 101 response,
//! turns the [`Admitted`] upgrade into a [`LiveChannel`], and then, for that connection: [`open`](LiveChannel::open),
//! [`run_connect`](LiveChannel::run_connect), each text frame through [`text`](LiveChannel::text) and
//! [`run_message`](LiveChannel::run_message) (or [`message`](LiveChannel::message), the same step returning the
//! reply, for a runner whose reply path is not the connection), each binary frame through [`run_binary`](LiveChannel::run_binary),
//! having passed each frame, as it arrives, through the rate-limit check ([`admit_text`](LiveChannel::admit_text)
//! or [`admit_binary`](LiveChannel::admit_binary); a frame that fails it is dropped),
//! and finally [`begin_disconnect`](LiveChannel::begin_disconnect) and
//! [`run_disconnect`](LiveChannel::run_disconnect). Whatever is to be written comes out of
//! [`Connection::poll_outgoing`](crate::Connection::poll_outgoing). The same sequence drives the pipeline in
//! tests, without a socket:
//!
//! ```
//! use std::collections::VecDeque;
//! use std::task::{Context, Waker};
//! use std::time::Instant;
//! use pikku::core::runtime::{TextFrame, UpgradeInput};
//! use pikku::{App, Channel, ChannelRoute, ClosedChannel, Ctx, DisconnectReason, Params};
//! use pikku::core::OutFrame;
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
//! async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: serde_json::Value) -> serde_json::Value {
//!     input
//! }
//! async fn bye(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
//!     tracing::info!(reason = %ch.reason(), "closed");
//! }
//!
//! let rt = App::new(())
//!     .channel(ChannelRoute::new("echo", "/echo").auth(false).on_connect(hello).on_message(echo).on_disconnect(bye))
//!     .into_runtime();
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // The upgrade `GET /echo` passed the HTTP checks; the application's checks come next.
//! let input = UpgradeInput { path: "/echo", query: None, headers: Default::default(), peer: None };
//! let admitted = rt.admit(input).await.expect("admitted");
//! // … write the 101 response with `admitted.response_headers()`, then:
//! let live = admitted.into_channel(None, Instant::now());
//! live.open();
//! live.run_connect().await;
//! if let TextFrame::Message(value) = live.text(r#"{"n": 1}"#) {
//!     live.run_message(value).await;
//! }
//!
//! // What the writer sends:
//! let mut out = VecDeque::new();
//! let _ = live.connection().poll_outgoing(&mut Context::from_waker(Waker::noop()), &mut out, true);
//! assert_eq!(Vec::from(out), [OutFrame::text("hello!"), OutFrame::text(r#"{"n":1}"#)]);
//!
//! // The client closed: the disconnect sequence.
//! let reason = live.begin_disconnect(DisconnectReason::ClientClosed(Some(1000)));
//! assert_eq!(reason, DisconnectReason::ClientClosed(Some(1000))); // the first trigger
//! live.run_disconnect(reason).await;
//! # });
//! ```

use std::any::Any;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http::HeaderMap;
use parking_lot::Mutex;
use serde_json::Value;
use tracing::Instrument;

use crate::app::{AppRuntime, ChannelSpec};
use crate::channel::{CloseRequest, Connection, ConnectionLimits, DisconnectReason};
use crate::ctx::{Ctx, SessionSlot};
use crate::error::ChannelError;
use crate::frame::{encode_json, error_frame, OutFrame};
use crate::handler::{BoxFuture, Reply};
use crate::log_limit::{LogLimiter, Verdict};
use crate::middleware::{run_chain, Invocation, UpgradeRequest};
use crate::opening::{check_path, merge_params, parse_query, Params};
use crate::rate_limit::{now_ns, Admission, Bucket};
use crate::rpc::RpcFrame;
use crate::telemetry::handles::{ChannelMetrics, RouteMetrics, Timing};
use crate::telemetry::span;

mod message;
mod resume;

pub use message::MessageReply;
use message::{peek_route, routing_key};
pub(crate) use resume::params_to_json;
pub use resume::ResumeError;

/// Handler failures logged per key (channel, route, error class) per second; the rest are counted.
static HANDLER_ERRORS: LogLimiter = LogLimiter::new(10, Duration::from_secs(1));
/// Rate-limit closes logged per channel per second.
static RATE_LIMIT_CLOSES: LogLimiter = LogLimiter::new(10, Duration::from_secs(1));

/// An upgrade whose route matched: the channel's index, its path params and the parsed query.
type RoutedUpgrade = (usize, Vec<(String, String)>, Params);

/// The parts of an upgrade request the pipeline needs, given to [`AppRuntime::admit`](crate::AppRuntime::admit).
///
/// ```
/// use std::sync::Arc;
/// use pikku::core::runtime::UpgradeInput;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::ORIGIN, http::HeaderValue::from_static("https://example.com"));
/// let input = UpgradeInput {
///     path: "/rooms/caf%C3%A9",
///     query: Some("nick=ann"),
///     headers: Arc::new(headers),
///     peer: Some("127.0.0.1:50000".parse().unwrap()),
/// };
/// # let _ = input;
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeInput<'a> {
    /// The raw request path (still percent-encoded).
    pub path: &'a str,
    /// The raw query, without `?`.
    pub query: Option<&'a str>,
    /// The request headers (upgrade middleware reads them; `Origin` and `Host` are checked against the app's
    /// [`OriginPolicy`](crate::OriginPolicy)).
    pub headers: Arc<HeaderMap>,
    /// The peer address, when known.
    pub peer: Option<SocketAddr>,
}

/// An upgrade that passed every check: ready to be opened once the 101 response is written.
///
/// Returned by [`AppRuntime::admit`](crate::AppRuntime::admit). Dropping it abandons the connection before it
/// exists: no handler runs. See the [module docs](crate::runtime#driving-a-connection) for the whole sequence.
///
/// ```
/// use std::time::Instant;
/// use pikku::core::runtime::{Admitted, LiveChannel};
///
/// // A runner's step after writing the 101 response.
/// fn accept<S, U>(admitted: Admitted<S, U>, epoch: Instant) -> LiveChannel<S, U>
/// where
///     S: Send + Sync + 'static,
///     U: Send + Sync + 'static,
/// {
///     tracing::debug!(channel = admitted.channel_name(), "upgrade accepted");
///     let live = admitted.into_channel(None, epoch);
///     live.open();
///     live
/// }
/// ```
pub struct Admitted<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    index: usize,
    opening: Arc<dyn Any + Send + Sync>,
    session: Arc<SessionSlot<U>>,
    pub(crate) response_headers: HeaderMap,
    peer: Option<SocketAddr>,
}

impl<S, U> std::fmt::Debug for Admitted<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("channel", &self.rt.channels[self.index].name)
            .finish_non_exhaustive()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Runs a handler future, turning a panic into an internal error (the connection carries on).
async fn catch<T>(fut: BoxFuture<Result<T, ChannelError>>) -> Result<T, ChannelError> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(ChannelError::panic(panic_message(&*payload))),
    }
}

impl<S, U> AppRuntime<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// Runs the upgrade checks that belong to the application, in this order: route match (404),
    /// origin (403), param/query conflicts (422), opening data (422), upgrade middleware. Path and query
    /// decodability (400) are checked first.
    ///
    /// The HTTP-level checks (method, upgrade headers, key, path length) and the connection limit are the
    /// runner's, before this call. On success the runner writes the 101 response and calls
    /// [`Admitted::into_channel`].
    ///
    /// ```
    /// use pikku::core::runtime::UpgradeInput;
    /// use pikku::{App, Channel, ChannelRoute, Ctx};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Room { #[serde(rename = "roomId")] room_id: String, limit: Option<u32> }
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Room, ()>) {}
    ///
    /// let rt = App::new(()).channel(ChannelRoute::new("rooms", "/rooms/:roomId").on_connect(hello)).into_runtime();
    /// let input = |path, query| UpgradeInput { path, query, headers: Default::default(), peer: None };
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let admitted = rt.admit(input("/rooms/lobby", Some("limit=5"))).await.unwrap();
    /// assert_eq!(admitted.channel_name(), "rooms");
    ///
    /// let refused = rt.admit(input("/lobby", None)).await.unwrap_err();
    /// assert_eq!((refused.status(), refused.client_message().as_ref()), (404, "Channel not found: /lobby"));
    /// let refused = rt.admit(input("/rooms/lobby", Some("limit=many"))).await.unwrap_err();
    /// assert_eq!((refused.status(), refused.client_message().as_ref()), (422, "Invalid opening data"));
    /// # });
    /// ```
    ///
    /// # Errors
    /// The first failing check, as a client error whose status and message form the HTTP refusal; a panicking
    /// upgrade middleware gives an internal error (500).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the admission: no connection exists yet, but upgrade middleware that already
    /// ran keeps its side effects.
    pub async fn admit(
        self: &Arc<Self>,
        input: UpgradeInput<'_>,
    ) -> Result<Admitted<S, U>, ChannelError> {
        let (index, params, query) = self.route_upgrade(&input)?;
        self.admit_matched(index, params, query, &input, None).await
    }

    /// [`admit`](Self::admit), also returning the merged params the opening data was parsed from, for a runner
    /// that stores them to rebuild the channel later.
    pub(crate) async fn admit_with_params(
        self: &Arc<Self>,
        input: UpgradeInput<'_>,
    ) -> Result<(Admitted<S, U>, Params), ChannelError> {
        let (index, params, query) = self.route_upgrade(&input)?;
        let mut kept = None;
        let admitted = self
            .admit_matched(index, params, query, &input, Some(&mut kept))
            .await?;
        Ok((admitted, kept.unwrap_or_default()))
    }

    /// The first checks of [`admit`](Self::admit): path and query decode (400), a channel's route matches (404).
    fn route_upgrade(&self, input: &UpgradeInput<'_>) -> Result<RoutedUpgrade, ChannelError> {
        check_path(input.path)?;
        let query = parse_query(input.query.unwrap_or(""))?;
        for &i in &self.match_order {
            if let Some(params) = self.channels[i].pattern.matches(input.path)? {
                return Ok((i, params, query));
            }
        }
        Err(ChannelError::not_found(format!(
            "Channel not found: {}",
            input.path
        )))
    }

    /// The events channel whose topic streams `path` names (`<channel path>/<topic>`, one trailing `/`
    /// ignored), with the decoded topic; `None` when no events channel has that path or the topic segment is
    /// empty or not decodable. Runners call it on plain `GET` requests, then [`admit_stream`](Self::admit_stream).
    ///
    /// ```
    /// use pikku::events::EventsChannel;
    /// use pikku::App;
    ///
    /// let rt = App::new(()).channel(EventsChannel::<(), ()>::new("/realtime/events").build()).into_runtime();
    /// assert_eq!(rt.match_stream("/realtime/events/news%20desk").unwrap().topic(), "news desk");
    /// assert!(rt.match_stream("/realtime/events").is_none());
    /// assert!(rt.match_stream("/elsewhere/news").is_none());
    /// ```
    #[must_use]
    pub fn match_stream(&self, path: &str) -> Option<StreamTarget> {
        if !self.channels.iter().any(|c| c.events.is_some()) {
            return None;
        }
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        let (prefix, segment) = trimmed.rsplit_once('/')?;
        if segment.is_empty() || prefix.is_empty() {
            return None;
        }
        let topic = crate::opening::decode(segment, false).ok()?;
        if topic.is_empty() {
            return None;
        }
        self.match_order.iter().find_map(|&index| {
            let spec = &self.channels[index];
            spec.events.as_ref()?;
            match spec.pattern.matches(prefix) {
                Ok(Some(params)) => Some(StreamTarget {
                    index,
                    params,
                    topic: topic.clone(),
                }),
                _ => None,
            }
        })
    }

    /// Runs the upgrade checks of [`admit`](Self::admit) after the route match (origin, params and query,
    /// opening data, upgrade middleware) for a topic stream found by [`match_stream`](Self::match_stream),
    /// creates its connection (state `Initial`, with `channel_id` or a fresh UUID v4, and `epoch` as for
    /// [`Admitted::into_channel`]), then runs the topic's authorizer with the session the middleware set. On
    /// success the runner answers with the stream, [`open`](LiveChannel::open)s the connection, subscribes it to
    /// the topic and writes what its queue hands out; dropping the result abandons the stream before any handler
    /// ran.
    ///
    /// ```
    /// use std::time::Instant;
    /// use pikku::events::EventsChannel;
    /// use pikku::core::runtime::UpgradeInput;
    /// use pikku::{App, ChannelError};
    ///
    /// let events = EventsChannel::<(), ()>::new("/events")
    ///     .authorize(|_ctx, topic| async move {
    ///         if topic == "secret" { Err(ChannelError::forbidden("Permission denied")) } else { Ok(()) }
    ///     })
    ///     .build();
    /// let rt = App::new(()).channel(events).into_runtime();
    /// let input = |path| UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let target = rt.match_stream("/events/news").unwrap();
    /// let stream = rt.admit_stream(target, input("/events/news"), None, Instant::now()).await.unwrap();
    /// stream.live.open();
    /// rt.hub().subscribe(&stream.topic, stream.live.connection().id()).await.unwrap();
    /// assert_eq!(rt.hub().subscriber_count("news"), 1);
    ///
    /// let target = rt.match_stream("/events/secret").unwrap();
    /// let refused = rt.admit_stream(target, input("/events/secret"), None, Instant::now()).await.unwrap_err();
    /// assert_eq!(refused.status(), 403);
    /// # });
    /// ```
    ///
    /// # Errors
    /// As [`admit`](Self::admit), and the authorizer's refusal (a panicking authorizer gives an internal error).
    ///
    /// # Cancel safety
    /// As [`admit`](Self::admit).
    pub async fn admit_stream(
        self: &Arc<Self>,
        target: StreamTarget,
        input: UpgradeInput<'_>,
        channel_id: Option<String>,
        epoch: Instant,
    ) -> Result<AdmittedStream<S, U>, ChannelError> {
        let query = parse_query(input.query.unwrap_or(""))?;
        let authorize = self.channels[target.index]
            .events
            .as_ref()
            .and_then(|events| events.authorize.clone());
        let mut admitted = self
            .admit_matched(target.index, target.params, query, &input, None)
            .await?;
        let response_headers = std::mem::take(&mut admitted.response_headers);
        let live = admitted.into_channel(channel_id, epoch);
        if let Some(authorize) = authorize {
            catch(authorize(live.ctx(None), target.topic.clone())).await?;
        }
        Ok(AdmittedStream {
            live,
            response_headers,
            topic: target.topic,
        })
    }

    /// The checks of [`admit`](Self::admit) after the route match, for the channel at `index`; with `keep`, the
    /// merged params are copied there.
    async fn admit_matched(
        self: &Arc<Self>,
        index: usize,
        params: Vec<(String, String)>,
        query: Params,
        input: &UpgradeInput<'_>,
        keep: Option<&mut Option<Params>>,
    ) -> Result<Admitted<S, U>, ChannelError> {
        let spec = &self.channels[index];
        // The origin (403).
        if !self.config().origin.allows_request(&input.headers) {
            return Err(ChannelError::forbidden("Origin not allowed"));
        }
        // Params against query, then the opening data (422).
        let merged = merge_params(params, query)?;
        let for_middleware = (!spec.upgrade.is_empty()).then(|| merged.clone());
        if let Some(keep) = keep {
            *keep = Some(merged.clone());
        }
        let opening = (spec.opening)(merged)?;
        // Upgrade middleware, the app's then the channel's.
        let session = Arc::new(SessionSlot::new(None));
        let response_headers = Arc::new(Mutex::new(HeaderMap::new()));
        if let Some(params) = for_middleware {
            let request = UpgradeRequest {
                app: self.shared.clone(),
                path: Arc::from(input.path),
                query: input.query.map(Arc::from),
                headers: input.headers.clone(),
                peer: input.peer,
                params: Arc::new(params),
                channel_name: spec.name.clone(),
                session: session.clone(),
                response_headers: response_headers.clone(),
            };
            for middleware in &spec.upgrade {
                catch(middleware(request.clone())).await?;
            }
        }
        let response_headers = std::mem::take(&mut *response_headers.lock());
        Ok(Admitted {
            rt: self.clone(),
            index,
            opening,
            session,
            response_headers,
            peer: input.peer,
        })
    }

    /// The limits a new connection of this app starts with.
    fn connection_limits(&self) -> ConnectionLimits {
        let config = self.config();
        ConnectionLimits {
            outbound_queue_bytes: config.outbound_queue_bytes,
            slow_consumer: config.slow_consumer,
            max_pending_rpc: config.max_pending_rpc,
        }
    }
}

impl<S, U> Admitted<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// Headers upgrade middleware added to the 101 response, for the runner to copy into it (see the
    /// [`UpgradeRequest`] example).
    #[must_use]
    pub fn response_headers(&self) -> &HeaderMap {
        &self.response_headers
    }

    /// The name of the admitted channel (see [`AppRuntime::admit`](crate::AppRuntime::admit) for an example).
    #[must_use]
    pub fn channel_name(&self) -> &str {
        &self.rt.channels[self.index].name
    }

    /// Creates the connection in state `Initial` with `channel_id` (a fresh UUID v4 when `None`), carrying the
    /// opening data and the session upgrade middleware seeded, with the app's queue limits and the channel's
    /// reverse-RPC timeout. `epoch` is the instant idle times are measured from (one per runner).
    ///
    /// ```
    /// use std::time::Instant;
    /// use pikku::core::runtime::UpgradeInput;
    /// use pikku::{App, Channel, ChannelRoute, ChannelState, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    ///
    /// let rt = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello)).into_runtime();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let input = UpgradeInput { path: "/events", query: None, headers: Default::default(), peer: None };
    /// let live = rt.admit(input).await.unwrap().into_channel(Some("test-1".into()), Instant::now());
    /// assert_eq!(live.connection().id(), "test-1");
    /// assert_eq!(live.connection().state(), ChannelState::Initial);
    /// # });
    /// ```
    #[must_use]
    pub fn into_channel(self, channel_id: Option<String>, epoch: Instant) -> LiveChannel<S, U> {
        let spec = &self.rt.channels[self.index];
        let id: Arc<str> = match channel_id {
            Some(id) => Arc::from(id),
            None => Arc::from(uuid::Uuid::new_v4().to_string()),
        };
        let mut conn = Connection::new(
            id,
            spec.name.clone(),
            self.opening,
            self.rt.connection_limits(),
            epoch,
        );
        conn.set_peer(self.peer);
        conn.rpc.set_timeout(spec.rpc_timeout);
        // One bucket per limit slot; nothing at all for a channel without limits.
        let limiter = (!spec.limits.is_empty())
            .then(|| spec.limits.iter().map(|_| Bucket::default()).collect());
        LiveChannel {
            rt: self.rt,
            index: self.index,
            conn: Arc::new(conn),
            session: self.session,
            limiter,
        }
    }
}

/// A topic stream a `GET` path names: found by [`AppRuntime::match_stream`](crate::AppRuntime::match_stream),
/// admitted by [`AppRuntime::admit_stream`](crate::AppRuntime::admit_stream) (see its example).
#[derive(Debug, Clone)]
pub struct StreamTarget {
    index: usize,
    params: Vec<(String, String)>,
    topic: String,
}

impl StreamTarget {
    /// The topic, percent-decoded (see [`AppRuntime::match_stream`](crate::AppRuntime::match_stream)).
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// A topic stream that passed every check, authorizer included: made by
/// [`AppRuntime::admit_stream`](crate::AppRuntime::admit_stream), which shows the runner's next steps.
pub struct AdmittedStream<S, U> {
    /// The stream's connection, in state `Initial`.
    pub live: LiveChannel<S, U>,
    /// Headers upgrade middleware added, for the runner to copy into its response.
    pub response_headers: HeaderMap,
    /// The topic to subscribe the connection to once it is open.
    pub topic: String,
}

impl<S, U> std::fmt::Debug for AdmittedStream<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmittedStream")
            .field("live", &self.live)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// What a text frame turned out to be, as classified by [`LiveChannel::text`] (see its example).
///
/// ```
/// use std::collections::VecDeque;
/// use pikku::core::runtime::{LiveChannel, TextFrame};
///
/// // A runner's reader: queue messages for the worker, drop the rest.
/// fn on_text<S, U>(live: &LiveChannel<S, U>, text: &str, inbound: &mut VecDeque<serde_json::Value>)
/// where
///     S: Send + Sync + 'static,
///     U: Send + Sync + 'static,
/// {
///     match live.text(text) {
///         TextFrame::Message(value) => inbound.push_back(value),
///         TextFrame::Ignored | TextFrame::Consumed => {}
///     }
/// }
/// ```
#[derive(Debug)]
pub enum TextFrame {
    /// A zero-length frame: ignored.
    Ignored,
    /// A reverse-RPC response or pending frame, handed to the call registry (never routed or answered).
    Consumed,
    /// A message for the worker: pass it to [`LiveChannel::run_message`] in arrival order.
    Message(Value),
}

/// One connection as the pipeline sees it: its channel definition, connection state and live session.
///
/// Made by [`Admitted::into_channel`]; the [module docs](crate::runtime#driving-a-connection) show the whole
/// sequence a runner drives. The futures it returns are independent of it: the runner decides how many run at
/// once ([`max_in_flight`](Self::max_in_flight)) and when to drop them.
///
/// ```
/// use pikku::core::runtime::{LiveChannel, TextFrame};
/// use pikku::DisconnectReason;
///
/// // The life of one connection in a minimal, strictly sequential runner. (A real runner keeps reading while
/// // handlers run, so that reverse-RPC responses reach a handler awaiting `remote`.)
/// async fn drive<S, U>(live: LiveChannel<S, U>, frames: Vec<String>)
/// where
///     S: Send + Sync + 'static,
///     U: Send + Sync + 'static,
/// {
///     live.open();
///     live.run_connect().await;
///     for text in frames {
///         live.connection().touch();
///         if let TextFrame::Message(value) = live.text(&text) {
///             live.run_message(value).await;
///         }
///     }
///     let reason = live.begin_disconnect(DisconnectReason::ClientClosed(Some(1000)));
///     live.run_disconnect(reason).await;
/// }
/// ```
pub struct LiveChannel<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    index: usize,
    conn: Arc<Connection>,
    session: Arc<SessionSlot<U>>,
    /// The rate-limit buckets, by slot of the channel's limits; `None` when the channel has no limit.
    limiter: Option<Box<[Bucket]>>,
}

impl<S, U> std::fmt::Debug for LiveChannel<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveChannel")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl<S, U> LiveChannel<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    fn spec(&self) -> &ChannelSpec<S, U> {
        &self.rt.channels[self.index]
    }

    fn ctx(&self, route: Option<(Arc<str>, Arc<str>)>) -> Ctx<S, U> {
        Ctx {
            app: self.rt.shared.clone(),
            conn: self.conn.clone(),
            session: self.session.clone(),
            route,
        }
    }

    fn dev_mode(&self) -> bool {
        self.rt.config().dev_mode
    }

    fn metrics(&self) -> Option<&ChannelMetrics> {
        self.spec().metrics.as_deref()
    }

    /// The connection: the runner writes what its [`poll_outgoing`](Connection::poll_outgoing) hands out and
    /// [`touch`](Connection::touch)es it on every inbound frame. Shown in the module example.
    #[must_use]
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// The runtime this channel belongs to, for the app's configuration (queue sizes, drain timeout).
    #[must_use]
    pub fn runtime(&self) -> &Arc<AppRuntime<S, U>> {
        &self.rt
    }

    /// How many messages may run at once on this connection
    /// ([`ChannelRoute::max_in_flight`](crate::ChannelRoute::max_in_flight), default 1). The runner starts the
    /// next message only while fewer are running.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn lookup(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, id: u64) -> u64 { id }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("lookup", "/lookup").on_message(lookup).max_in_flight(8));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/lookup").await; // admitted and turned into a `LiveChannel`
    /// assert_eq!(live.max_in_flight(), 8);
    /// # });
    /// ```
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.spec().max_in_flight
    }

    /// Marks the connection open (the 101 was written) and adds it to the app's
    /// [`Registry`](crate::channel::Registry), so it can subscribe and be found by id. Call it before [`run_connect`](Self::run_connect).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// use pikku::{App, Channel, ChannelRoute, ChannelState, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/events").await;
    /// live.open();
    /// assert_eq!(live.connection().state(), ChannelState::Open);
    /// assert!(live.runtime().registry().get(live.connection().id()).is_some());
    /// # });
    /// ```
    pub fn open(&self) {
        self.conn.mark_open();
        self.rt.registry().insert(self.conn.clone());
        if let Some(metrics) = self.metrics() {
            metrics.opened();
        }
    }

    /// Runs onConnect inside its lifecycle middleware and queues its result or error frame. A channel without a
    /// connection handler gives a future that is ready at once. Run it to completion before starting messages;
    /// panics in the handler are caught and become an internal error frame.
    ///
    /// Dropping the future cancels the handler (the embedded server does so after the drain timeout).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// # fn drain(conn: &pikku::core::Connection) -> Vec<OutFrame> {
    /// #     let mut out = std::collections::VecDeque::new();
    /// #     let _ = conn.poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut out, true);
    /// #     out.into()
    /// # }
    /// use pikku::{App, Channel, ChannelError, ChannelRoute, Ctx, Params};
    /// use pikku::core::OutFrame;
    ///
    /// async fn closed_room(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> Result<(), ChannelError> {
    ///     Err(ChannelError::forbidden("Room is closed"))
    /// }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("room", "/room").on_connect(closed_room));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/room").await;
    /// live.open();
    /// live.run_connect().await;
    /// // The error is sent as a frame; the connection stays open.
    /// assert_eq!(drain(live.connection()), [OutFrame::text(r#"{"error":"Room is closed","errorName":"ForbiddenError"}"#)]);
    /// # });
    /// ```
    #[must_use]
    pub fn run_connect(&self) -> BoxFuture<()> {
        let Some((handler, chain)) = self.spec().on_connect.clone() else {
            return Box::pin(std::future::ready(()));
        };
        let ctx = self.ctx(None);
        let conn = self.conn.clone();
        let dev = self.dev_mode();
        let inner_ctx = ctx.clone();
        let inner_conn = conn.clone();
        let span = span::connect(&conn, conn.peer());
        let timing = self
            .metrics()
            .and_then(|m| m.connect.as_ref())
            .map(|route| route.start());
        let fut = span.in_scope(|| {
            run_chain(
                chain,
                ctx,
                None,
                Invocation::Connect,
                Box::new(move || handler(inner_ctx, inner_conn)),
            )
        });
        Box::pin(
            async move {
                let result = catch(fut).await.map(|reply| match reply {
                    Reply::Nothing => None,
                    Reply::Value(value) => Some(encode_json(&value)),
                });
                send_outcome(&conn, timing.as_ref(), result, dev);
            }
            .instrument(span),
        )
    }

    /// Classifies a text frame: empty (ignored), reverse-RPC envelope (consumed here), or a message. Text that
    /// is not JSON is the JSON string with the same characters.
    ///
    /// Call it as frames arrive, even while handlers run: reverse-RPC responses must reach the handler awaiting
    /// them without waiting behind queued messages.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// use pikku::core::runtime::TextFrame;
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use serde_json::json;
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/events").await;
    /// assert!(matches!(live.text(""), TextFrame::Ignored));
    /// assert!(matches!(live.text(r#"{"action":"pikku-rpc-pending","id":"1"}"#), TextFrame::Consumed));
    /// assert!(matches!(live.text("hi!"), TextFrame::Message(v) if v == json!("hi!")));
    /// assert!(matches!(live.text(r#"{"action":"ping"}"#), TextFrame::Message(v) if v == json!({"action": "ping"})));
    /// # });
    /// ```
    #[must_use]
    pub fn text(&self, text: &str) -> TextFrame {
        if text.is_empty() {
            return TextFrame::Ignored;
        }
        let value = parse_text(text);
        if let Some(frame) = RpcFrame::parse(&value) {
            self.conn.rpc.deliver(frame);
            return TextFrame::Consumed;
        }
        TextFrame::Message(value)
    }

    /// The rate-limit check for an arriving text frame, for the runner to call as each frame arrives, before it
    /// classifies or queues it, so a flood never fills the inbound queue: `false` means the frame is over the
    /// connection's limit and must be dropped (its error frame or close request, if any, is already queued).
    ///
    /// Always `true` without a limit, for empty frames and for reverse-RPC replies. When only the channel-wide
    /// limit applies the frame is not parsed; with per-route limits it is parsed here to find its route.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// # fn drain(conn: &pikku::core::Connection) -> Vec<OutFrame> {
    /// #     let mut out = std::collections::VecDeque::new();
    /// #     let _ = conn.poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut out, true);
    /// #     out.into()
    /// # }
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params, RateLimit, Route};
    /// use pikku::core::OutFrame;
    ///
    /// async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: serde_json::Value) {}
    ///
    /// let app = App::new(()).channel(
    ///     ChannelRoute::new("chat", "/chat")
    ///         .auth(false)
    ///         .route("action", "say", Route::new(say).rate_limit(RateLimit::per_second(1))),
    /// );
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/chat").await;
    /// live.open();
    /// let say = r#"{"action":"say","text":"hi"}"#;
    /// assert!(live.admit_text(say));
    /// assert!(!live.admit_text(say)); // a second `say` within the same second
    /// assert!(live.admit_text(r#"{"action":"other"}"#)); // no limit outside `say`
    /// assert_eq!(drain(live.connection()), [
    ///     OutFrame::text(r#"{"action":"say","error":"Rate limit exceeded","errorName":"TooManyRequestsError"}"#),
    /// ]);
    /// # });
    /// ```
    #[must_use]
    pub fn admit_text(&self, text: &str) -> bool {
        let Some(buckets) = &self.limiter else {
            return true;
        };
        if text.is_empty() {
            return true;
        }
        let spec = self.spec();
        // Every reverse-RPC envelope names a `pikku-rpc-` action; only such frames need parsing to exempt them.
        let rpc_like = text.contains("pikku-rpc-");
        let value = (spec.route_limits || rpc_like).then(|| parse_text(text));
        if rpc_like && value.as_ref().and_then(RpcFrame::parse).is_some() {
            // Replies to the server's own calls, already bounded by the pending-call limit.
            return true;
        }
        let slot = match &value {
            Some(value) if spec.route_limits => {
                peek_route(spec, value).map_or(spec.channel_slot, |route| route.limit_slot)
            }
            _ => spec.channel_slot,
        };
        self.admit_arrival(buckets, slot, text.len(), || {
            routing_key(spec, &value.unwrap_or_else(|| parse_text(text)))
        })
    }

    /// The arrival check for a binary frame of `len` bytes, for the runner to call as the frame arrives, before
    /// queueing it: `false` means the frame is over the channel's rate limit and must be dropped (the error frame
    /// or close request, if any, is already queued). Always `true` for a channel without a limit.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// # fn drain(conn: &pikku::core::Connection) -> Vec<OutFrame> {
    /// #     let mut out = std::collections::VecDeque::new();
    /// #     let _ = conn.poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut out, true);
    /// #     out.into()
    /// # }
    /// use pikku::Bytes;
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params, RateLimit};
    /// use pikku::core::OutFrame;
    ///
    /// async fn store(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _bytes: Bytes) {}
    ///
    /// let app = App::new(()).channel(
    ///     ChannelRoute::new("files", "/files").auth(false).on_binary(store).rate_limit(RateLimit::per_second(1)),
    /// );
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/files").await;
    /// live.open();
    /// assert!(live.admit_binary(3));
    /// assert!(!live.admit_binary(3)); // a second frame within the same second
    /// assert_eq!(drain(live.connection()), [
    ///     OutFrame::text(r#"{"error":"Rate limit exceeded","errorName":"TooManyRequestsError"}"#),
    /// ]);
    /// # });
    /// ```
    #[must_use]
    pub fn admit_binary(&self, len: usize) -> bool {
        match &self.limiter {
            None => true,
            Some(buckets) => self.admit_arrival(buckets, self.spec().channel_slot, len, || None),
        }
    }

    /// Counts an arriving frame of `len` bytes against the limit in `slot` (none: unlimited); false when it must
    /// be dropped. `routing` gives the routing key of the first refusal's error frame.
    fn admit_arrival(
        &self,
        buckets: &[Bucket],
        slot: Option<usize>,
        len: usize,
        routing: impl FnOnce() -> Option<(String, String)>,
    ) -> bool {
        let Some(slot) = slot else {
            return true;
        };
        let spec = self.spec();
        let (first, close) = match buckets[slot].admit(&spec.limits[slot], len, now_ns()) {
            Admission::Pass => return true,
            Admission::Refuse => (false, false),
            Admission::RefuseFirst => (true, false),
            Admission::Close { first } => (first, true),
        };
        if let Some(metrics) = self.metrics() {
            metrics.rate_limited();
        }
        if first {
            let routing = routing();
            let err = ChannelError::too_many_requests("Rate limit exceeded");
            let _ = self.push_error(
                &err,
                routing.as_ref().map(|(p, v)| (p.as_str(), v.as_str())),
            );
        }
        if close {
            if let Verdict::Log { suppressed } = RATE_LIMIT_CLOSES.check(self.conn.channel_name()) {
                if suppressed > 0 {
                    tracing::info!(
                        channel = self.conn.channel_name(),
                        "suppressed {suppressed} similar lines"
                    );
                }
                tracing::info!(
                    channel = self.conn.channel_name(),
                    channel_id = self.conn.id(),
                    "closing a connection that kept sending over its rate limit"
                );
            }
            self.conn.request_close(CloseRequest {
                code: 1008,
                reason: Cow::Borrowed("rate limit exceeded"),
                flush: true,
                cause: DisconnectReason::RateLimited,
            });
        }
        false
    }

    /// Runs the binary handler for a frame, or `None` when the frame is dropped (no handler, or no session when
    /// one is needed). The future queues the returned bytes as a binary frame, or an error frame.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// # fn drain(conn: &pikku::core::Connection) -> Vec<OutFrame> {
    /// #     let mut out = std::collections::VecDeque::new();
    /// #     let _ = conn.poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut out, true);
    /// #     out.into()
    /// # }
    /// use pikku::Bytes;
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::core::OutFrame;
    ///
    /// async fn reverse(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, bytes: Bytes) -> Vec<u8> {
    ///     bytes.iter().rev().copied().collect()
    /// }
    ///
    /// // Public text messages, but binary frames need a session.
    /// let app = App::new(()).channel(ChannelRoute::new("files", "/files").auth(false).on_binary(reverse).binary_auth(true));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/files").await;
    /// live.open();
    /// assert!(live.run_binary(Bytes::from_static(b"abc")).is_none()); // no session: dropped
    ///
    /// // With `binary_auth(false)`, the handler runs:
    /// let app = App::new(()).channel(ChannelRoute::new("files", "/files").on_binary(reverse).binary_auth(false));
    /// let live = live_for(app, "/files").await;
    /// live.open();
    /// live.run_binary(Bytes::from_static(b"abc")).unwrap().await;
    /// assert_eq!(drain(live.connection()), [OutFrame::Binary(Bytes::from_static(b"cba"))]);
    /// # });
    /// ```
    pub fn run_binary(&self, bytes: Bytes) -> Option<BoxFuture<()>> {
        let spec = self.spec();
        let Some(handler) = spec.binary.clone() else {
            tracing::debug!(
                channel_id = self.conn.id(),
                "binary frame dropped: the channel has no binary handler"
            );
            return None;
        };
        if spec.binary_auth && !self.session.is_present() {
            tracing::debug!(
                channel_id = self.conn.id(),
                "binary frame dropped: no session"
            );
            return None;
        }
        let timing = self
            .metrics()
            .and_then(|m| m.binary.as_ref())
            .map(RouteMetrics::received);
        let span = span::binary(&self.conn, self.conn.peer());
        let fut = span.in_scope(|| handler(self.ctx(None), self.conn.clone(), bytes));
        let conn = self.conn.clone();
        let dev = self.dev_mode();
        Some(Box::pin(
            async move {
                let result = catch(fut).await.map(|reply| reply.map(OutFrame::Binary));
                send_outcome(&conn, timing.as_ref(), result, dev);
            }
            .instrument(span),
        ))
    }

    /// The start of the disconnect sequence: the channel becomes `Closed`, pending reverse calls fail with
    /// `closed`, and its hub subscriptions are removed. Returns the reason that won (the first trigger).
    ///
    /// Call it as soon as the connection ends; then let in-flight handlers finish (or drop them after the drain
    /// timeout), and call [`run_disconnect`](Self::run_disconnect) with the returned reason.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// use pikku::{App, Channel, ChannelRoute, ChannelState, Ctx, DisconnectReason, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/events").await;
    /// live.open();
    /// let hub = live.runtime().hub();
    /// hub.subscribe("news", live.connection().id()).await.unwrap();
    ///
    /// // The server was shutting down when the transport failed: the first trigger wins.
    /// live.connection().request_close(pikku::core::channel::CloseRequest {
    ///     code: 1001, reason: "going away".into(), flush: true, cause: DisconnectReason::Shutdown,
    /// });
    /// let reason = live.begin_disconnect(DisconnectReason::TransportError);
    /// assert_eq!(reason, DisconnectReason::Shutdown);
    /// assert_eq!(live.connection().state(), ChannelState::Closed);
    /// assert_eq!(hub.subscriber_count("news"), 0);
    /// live.run_disconnect(reason).await;
    /// # });
    /// ```
    #[must_use]
    pub fn begin_disconnect(&self, reason: DisconnectReason) -> DisconnectReason {
        let reason = self.conn.mark_closed(reason);
        self.conn.rpc.close();
        self.rt.hub().release(&self.conn);
        self.rt.registry().remove(&self.conn);
        if let Some(metrics) = self.metrics() {
            metrics.closed(&reason);
        }
        reason
    }

    /// The end of the disconnect sequence: onDisconnect inside its lifecycle middleware (errors are logged),
    /// then the socket state is released. Call it once, after [`begin_disconnect`](Self::begin_disconnect) and
    /// after in-flight handlers finished or were dropped, with the reason `begin_disconnect` returned. Without a
    /// disconnection handler the future is ready at once. Shown in the module example and under `begin_disconnect`.
    ///
    /// Dropping the future cancels onDisconnect, and the socket state is then not released until the connection
    /// itself is dropped.
    #[must_use]
    pub fn run_disconnect(&self, reason: DisconnectReason) -> BoxFuture<()> {
        let conn = self.conn.clone();
        let Some((handler, chain)) = self.spec().on_disconnect.clone() else {
            conn.release();
            return Box::pin(std::future::ready(()));
        };
        let ctx = self.ctx(None);
        let inner_ctx = ctx.clone();
        let inner_conn = conn.clone();
        let timing = self
            .metrics()
            .and_then(|m| m.disconnect.as_ref())
            .map(RouteMetrics::start);
        let span = span::disconnect(&conn, conn.peer());
        let fut = span.in_scope(|| {
            run_chain(
                chain,
                ctx,
                None,
                Invocation::Disconnect,
                Box::new(move || {
                    let fut = handler(inner_ctx, inner_conn, reason);
                    Box::pin(async move { fut.await.map(|()| Reply::Nothing) })
                }),
            )
        });
        Box::pin(
            async move {
                let result = catch(fut).await;
                if let Some(timing) = &timing {
                    timing.finished();
                }
                if let Err(err) = result {
                    log_error(&conn, None, &err);
                }
                conn.release();
            }
            .instrument(span),
        )
    }

    /// Queues the error frame of a message refused before any handler ran; whether it was queued.
    /// Logs and counts a message refused before its handler ran.
    fn count_refusal(&self, err: &ChannelError) {
        tracing::debug!(
            channel = self.conn.channel_name(),
            channel_id = self.conn.id(),
            error = %err,
            "message refused"
        );
        if let Some(metrics) = self.metrics() {
            metrics.errors.count(err);
        }
    }

    /// Queues the error frame of a message refused before its handler ran; whether the queue took it.
    fn push_error(&self, err: &ChannelError, routing: Option<(&str, &str)>) -> bool {
        self.count_refusal(err);
        self.conn
            .push(error_frame(err, routing, self.dev_mode()))
            .is_ok()
    }
}

/// A text frame as a JSON value: text that is not JSON is the JSON string with the same characters.
fn parse_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Logs a handler failure, at most a few lines a second for the same channel, route and error class (a client
/// can make a handler fail as often as it likes); the count of the lines left out is logged later.
/// Ends an unrouted handler run (connection or binary handler): records its time, then sends its reply frame, if
/// any, or its error frame, counting what was sent.
fn send_outcome(
    conn: &Connection,
    timing: Option<&Timing>,
    outcome: Result<Option<OutFrame>, ChannelError>,
    dev: bool,
) {
    if let Some(timing) = timing {
        timing.finished();
    }
    let frame = match outcome {
        Ok(None) => return,
        Ok(Some(frame)) => frame,
        Err(err) => {
            log_error(conn, None, &err);
            if let Some(timing) = timing {
                timing.route.errors.count(&err);
            }
            error_frame(&err, None, dev)
        }
    };
    if conn.push(frame).is_ok() {
        if let Some(timing) = timing {
            timing.route.sent();
        }
    }
}

fn log_error(conn: &Connection, routing: Option<(&str, &str)>, err: &ChannelError) {
    let internal = err.is_internal();
    // Client errors are debug lines: when nobody listens, skip the limiter's clock read as well.
    if !internal && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let suppressed = match HANDLER_ERRORS.check(&(conn.channel_name(), routing, err.name())) {
        Verdict::Log { suppressed } => suppressed,
        Verdict::Suppress => return,
    };
    let route = routing.map(|(p, v)| format!("{p}:{v}"));
    let channel = conn.channel_name();
    if internal {
        if suppressed > 0 {
            tracing::warn!(
                channel,
                route = route.as_deref(),
                "suppressed {suppressed} similar errors"
            );
        }
        tracing::error!(
            channel,
            channel_id = conn.id(),
            route = route.as_deref(),
            state = ?conn.state(),
            error = %err.debug_text(),
            "handler failed"
        );
    } else {
        if suppressed > 0 {
            tracing::debug!(
                channel,
                route = route.as_deref(),
                "suppressed {suppressed} similar errors"
            );
        }
        tracing::debug!(
            channel,
            channel_id = conn.id(),
            route = route.as_deref(),
            error = %err,
            "handler returned a client error"
        );
    }
}
