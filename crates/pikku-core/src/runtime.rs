//! The message pipeline shared by every runner: upgrade admission (protocol §2.3 steps 3–7), then per
//! connection the connect, message, binary and disconnect flows (semantics §5).
//!
//! Runners (the embedded server, the stateless runner) own sockets, timers and queues; this module owns what
//! happens to a frame: parse, RPC interception, routing, the auth gate, middleware, validation, permissions, the
//! handler, and the reply frame. It knows nothing about sockets.

use std::any::Any;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http::HeaderMap;
use parking_lot::Mutex;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::app::{AppRuntime, ChannelSpec, RouteSpec};
use crate::channel::{Connection, ConnectionLimits, DisconnectReason};
use crate::ctx::{Ctx, SessionSlot};
use crate::error::ChannelError;
use crate::frame::{encode_json, error_frame, OutFrame};
use crate::handler::{BoxFuture, Reply};
use crate::middleware::{run_chain, Invocation, UpgradeRequest};
use crate::opening::{merge_params, parse_query};
use crate::rpc::RpcFrame;

/// The parts of an upgrade request the pipeline needs.
#[derive(Debug, Clone)]
pub struct UpgradeInput<'a> {
    /// The raw request path (still percent-encoded).
    pub path: &'a str,
    /// The raw query, without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: Arc<HeaderMap>,
    /// The peer address, when known.
    pub peer: Option<SocketAddr>,
}

/// An upgrade that passed every check: ready to be opened once the 101 response is written.
pub struct Admitted<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    index: usize,
    opening: Arc<dyn Any + Send + Sync>,
    session: Arc<SessionSlot<U>>,
    response_headers: HeaderMap,
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
    /// Runs the upgrade checks that belong to the application, in the order of protocol §2.3: route match (404),
    /// origin (403), param/query conflicts (422), opening data (422), upgrade middleware. Path and query
    /// decodability (400) are checked first.
    ///
    /// # Errors
    /// The first failing check, as a client error whose status and message form the HTTP refusal.
    pub async fn admit(
        self: &Arc<Self>,
        input: UpgradeInput<'_>,
    ) -> Result<Admitted<S, U>, ChannelError> {
        let malformed = || ChannelError::bad_request("Malformed upgrade request");
        // Step 1 (the part about decodability).
        if percent_decode_str(input.path).decode_utf8().is_err() {
            return Err(malformed());
        }
        let query = parse_query(input.query.unwrap_or(""))?;
        // Step 3.
        let mut found = None;
        for &i in &self.match_order {
            if let Some(params) = self.channels[i].pattern.matches(input.path)? {
                found = Some((i, params));
                break;
            }
        }
        let (index, params) = found
            .ok_or_else(|| ChannelError::not_found(format!("Channel not found: {}", input.path)))?;
        let spec = &self.channels[index];
        // Step 4.
        let origins = &self.config().allowed_origins;
        if !origins.is_empty() {
            let origin = input
                .headers
                .get(http::header::ORIGIN)
                .and_then(|v| v.to_str().ok());
            if !origin.is_some_and(|o| origins.iter().any(|allowed| allowed == o)) {
                return Err(ChannelError::forbidden("Origin not allowed"));
            }
        }
        // Steps 5 and 6.
        let merged = merge_params(params, query)?;
        let for_middleware = (!spec.upgrade.is_empty()).then(|| merged.clone());
        let opening = (spec.opening)(merged)?;
        // Step 7.
        let session = Arc::new(SessionSlot::new(None));
        let response_headers = Arc::new(Mutex::new(HeaderMap::new()));
        if let Some(params) = for_middleware {
            let request = UpgradeRequest {
                rt: self.clone(),
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
    /// Headers upgrade middleware added to the 101 response.
    pub fn response_headers(&self) -> &HeaderMap {
        &self.response_headers
    }

    /// The name of the admitted channel.
    pub fn channel_name(&self) -> &str {
        &self.rt.channels[self.index].name
    }

    /// Creates the connection in state `Initial` with `channel_id` (a fresh UUID v4 when `None`).
    pub fn into_channel(self, channel_id: Option<String>, epoch: Instant) -> LiveChannel<S, U> {
        let spec = &self.rt.channels[self.index];
        let id: Arc<str> = match channel_id {
            Some(id) => Arc::from(id),
            None => Arc::from(uuid::Uuid::new_v4().to_string()),
        };
        let conn = Connection::new(
            id,
            spec.name.clone(),
            self.opening,
            self.rt.connection_limits(),
            epoch,
        );
        conn.rpc.set_timeout(spec.rpc_timeout);
        LiveChannel {
            rt: self.rt,
            index: self.index,
            conn: Arc::new(conn),
            session: self.session,
        }
    }
}

/// What a text frame turned out to be.
#[derive(Debug)]
pub enum TextFrame {
    /// A zero-length frame: ignored (D17).
    Ignored,
    /// A reverse-RPC response or pending frame, handed to the call registry (never routed or answered).
    Consumed,
    /// A message for the worker.
    Message(Value),
}

/// One connection as the pipeline sees it: its channel definition, connection state and live session.
pub struct LiveChannel<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    index: usize,
    conn: Arc<Connection>,
    session: Arc<SessionSlot<U>>,
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
            rt: self.rt.clone(),
            conn: self.conn.clone(),
            session: self.session.clone(),
            route,
        }
    }

    fn dev_mode(&self) -> bool {
        self.rt.config().dev_mode
    }

    /// The connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// The runtime this channel belongs to.
    pub fn runtime(&self) -> &Arc<AppRuntime<S, U>> {
        &self.rt
    }

    /// How many messages may run at once on this connection.
    pub fn max_in_flight(&self) -> usize {
        self.spec().max_in_flight
    }

    /// Marks the connection open (the 101 was written) and registers it with the local event hub.
    pub fn open(&self) {
        self.conn.mark_open();
        self.rt.hub().register(self.conn.clone());
    }

    /// Runs onConnect inside its lifecycle middleware and queues its result or error frame.
    pub fn run_connect(&self) -> BoxFuture<()> {
        let Some((handler, chain)) = self.spec().on_connect.clone() else {
            return Box::pin(std::future::ready(()));
        };
        let ctx = self.ctx(None);
        let conn = self.conn.clone();
        let dev = self.dev_mode();
        let inner_ctx = ctx.clone();
        let inner_conn = conn.clone();
        let fut = run_chain(
            chain,
            ctx,
            None,
            Invocation::Connect,
            Box::new(move || handler(inner_ctx, inner_conn)),
        );
        Box::pin(async move {
            let frame = match catch(fut).await {
                Ok(Reply::Nothing) => return,
                Ok(Reply::Value(value)) => encode_json(&value),
                Err(err) => {
                    log_error(&conn, None, &err);
                    error_frame(&err, None, dev)
                }
            };
            let _ = conn.push(frame);
        })
    }

    /// Classifies a text frame: empty (ignored), reverse-RPC envelope (consumed here), or a message.
    pub fn text(&self, text: &str) -> TextFrame {
        if text.is_empty() {
            return TextFrame::Ignored;
        }
        // Text that is not JSON is the JSON string with the same characters (D12).
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        if let Some(frame) = RpcFrame::parse(&value) {
            self.conn.rpc.deliver(frame);
            return TextFrame::Consumed;
        }
        TextFrame::Message(value)
    }

    /// Runs one message through the pipeline (semantics §5.2) and queues its reply.
    pub fn run_message(&self, value: Value) -> BoxFuture<()> {
        let spec = self.spec();
        let (route, value) = match select_route(spec, value) {
            Selected::Route(route, value) => (route, value),
            Selected::Unknown(property, name) => {
                let err = ChannelError::not_found(format!("No route for '{property}:{name}'"));
                self.push_error(&err, Some((&property, &name)));
                return Box::pin(std::future::ready(()));
            }
            Selected::NoDefault => {
                self.push_error(&ChannelError::not_found("No default message route"), None);
                return Box::pin(std::future::ready(()));
            }
        };
        let routing = route.name.clone();
        // The auth gate reads the live session (D4, D8).
        if route.auth && !self.session.is_present() {
            let err = match &routing {
                Some((p, v)) => {
                    ChannelError::unauthorized(format!("Unauthorized for route '{p}:{v}'"))
                }
                None => ChannelError::unauthorized("Unauthorized for the default message route"),
            };
            self.push_error(&err, routing.as_ref().map(|(p, v)| (&**p, &**v)));
            return Box::pin(std::future::ready(()));
        }
        let ctx = self.ctx(routing.clone());
        let handler = route.handler.clone();
        let permissions = route.permissions.clone();
        let fut = if route.chain.is_empty() {
            handler(ctx, self.conn.clone(), value, permissions)
        } else {
            let input = Arc::new(value);
            let inner_ctx = ctx.clone();
            let inner_conn = self.conn.clone();
            let inner_input = input.clone();
            run_chain(
                route.chain.clone(),
                ctx,
                Some(input),
                Invocation::Message,
                Box::new(move || {
                    let value =
                        Arc::try_unwrap(inner_input).unwrap_or_else(|shared| (*shared).clone());
                    handler(inner_ctx, inner_conn, value, permissions)
                }),
            )
        };
        let conn = self.conn.clone();
        let dev = self.dev_mode();
        Box::pin(async move {
            let result = catch(fut).await;
            let routing = routing.as_ref().map(|(p, v)| (&**p, &**v));
            if let Err(err) = &result {
                log_error(&conn, routing, err);
            }
            if let Some(frame) = reply_frame(routing, result, dev) {
                let _ = conn.push(frame);
            }
        })
    }

    /// Runs the binary handler for a frame, or `None` when the frame is dropped (no handler, or no session when
    /// one is needed; D21).
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
        let fut = handler(self.ctx(None), self.conn.clone(), bytes);
        let conn = self.conn.clone();
        let dev = self.dev_mode();
        Some(Box::pin(async move {
            match catch(fut).await {
                Ok(Some(bytes)) => {
                    let _ = conn.push(OutFrame::Binary(bytes));
                }
                Ok(None) => {}
                Err(err) => {
                    log_error(&conn, None, &err);
                    let _ = conn.push(error_frame(&err, None, dev));
                }
            }
        }))
    }

    /// Disconnect steps 1–3 (semantics §5.6): the channel becomes `Closed`, pending reverse calls fail with
    /// `closed`, and its hub subscriptions are removed. Returns the reason that won (the first trigger).
    pub fn begin_disconnect(&self, reason: DisconnectReason) -> DisconnectReason {
        let reason = self.conn.mark_closed(reason);
        self.conn.rpc.close();
        self.rt.hub().unregister(&self.conn);
        reason
    }

    /// Disconnect steps 6–7: onDisconnect inside its lifecycle middleware (errors are logged), then the socket
    /// state is released.
    pub fn run_disconnect(&self, reason: DisconnectReason) -> BoxFuture<()> {
        let conn = self.conn.clone();
        let Some((handler, chain)) = self.spec().on_disconnect.clone() else {
            conn.release();
            return Box::pin(std::future::ready(()));
        };
        let ctx = self.ctx(None);
        let inner_ctx = ctx.clone();
        let inner_conn = conn.clone();
        let fut = run_chain(
            chain,
            ctx,
            None,
            Invocation::Disconnect,
            Box::new(move || {
                let fut = handler(inner_ctx, inner_conn, reason);
                Box::pin(async move { fut.await.map(|()| Reply::Nothing) })
            }),
        );
        Box::pin(async move {
            if let Err(err) = catch(fut).await {
                log_error(&conn, None, &err);
            }
            conn.release();
        })
    }

    fn push_error(&self, err: &ChannelError, routing: Option<(&str, &str)>) {
        tracing::debug!(
            channel = self.conn.channel_name(),
            channel_id = self.conn.id(),
            error = %err,
            "message refused"
        );
        let _ = self.conn.push(error_frame(err, routing, self.dev_mode()));
    }
}

enum Selected<'a, S, U> {
    Route(&'a RouteSpec<S, U>, Value),
    /// A routing property named an unregistered route and there is no default handler.
    Unknown(String, String),
    NoDefault,
}

/// Route selection (D1): the first routing property whose value is a string naming a registered route wins, and
/// only that member is removed from the input.
fn select_route<S, U>(spec: &ChannelSpec<S, U>, mut value: Value) -> Selected<'_, S, U> {
    let mut unknown = None;
    if let Value::Object(map) = &mut value {
        for (property, routes) in &spec.properties {
            if let Some(Value::String(name)) = map.get(&**property) {
                if let Some(route) = routes.get(name.as_str()) {
                    map.remove(&**property);
                    return Selected::Route(route, value);
                }
                unknown.get_or_insert_with(|| (property.to_string(), name.clone()));
            }
        }
    }
    match (&spec.default_route, unknown) {
        (Some(route), _) => Selected::Route(route, value),
        (None, Some((property, name))) => Selected::Unknown(property, name),
        (None, None) => Selected::NoDefault,
    }
}

/// Shapes a handler result into its frame: D2 for routed messages, as is for the default route.
fn reply_frame(
    routing: Option<(&str, &str)>,
    result: Result<Reply, ChannelError>,
    dev: bool,
) -> Option<OutFrame> {
    match (routing, result) {
        (_, Err(err)) => Some(error_frame(&err, routing, dev)),
        (None, Ok(Reply::Nothing)) => None,
        (None, Ok(Reply::Value(value))) => Some(encode_json(&value)),
        (Some((key, name)), Ok(reply)) => {
            let object = match reply {
                Reply::Nothing => {
                    let mut map = serde_json::Map::with_capacity(1);
                    map.insert(key.to_owned(), Value::String(name.to_owned()));
                    map
                }
                Reply::Value(Value::Object(mut map)) => {
                    // A member already named like the routing property is overwritten (D25).
                    map.insert(key.to_owned(), Value::String(name.to_owned()));
                    map
                }
                Reply::Value(other) => {
                    let mut map = serde_json::Map::with_capacity(2);
                    map.insert(key.to_owned(), Value::String(name.to_owned()));
                    map.insert("result".to_owned(), other);
                    map
                }
            };
            Some(encode_json(&Value::Object(object)))
        }
    }
}

fn log_error(conn: &Connection, routing: Option<(&str, &str)>, err: &ChannelError) {
    let route = routing.map(|(p, v)| format!("{p}:{v}"));
    if err.is_internal() {
        tracing::error!(
            channel = conn.channel_name(),
            channel_id = conn.id(),
            route = route.as_deref(),
            state = ?conn.state(),
            error = %err.debug_text(),
            "handler failed"
        );
    } else {
        tracing::debug!(
            channel = conn.channel_name(),
            channel_id = conn.id(),
            route = route.as_deref(),
            error = %err,
            "handler returned a client error"
        );
    }
}
