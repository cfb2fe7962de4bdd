//! The message step: what happens to one text message, the same for every runner. Routing, the auth gate,
//! middleware, validation, permissions, the handler, and the reply shaped by the routing key; the step
//! returns the reply ([`MessageReply`]) and the runner decides where it goes: the connection's outbound queue
//! for the embedded server ([`LiveChannel::run_message`]), or the body of an HTTP response for a gateway.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::Either;
use serde_json::Value;
use tracing::Instrument;

use super::{catch, log_error, LiveChannel};
use crate::app::{ChannelSpec, RouteSpec};
use crate::error::ChannelError;
use crate::frame::{encode_json, error_frame, OutFrame};
use crate::handler::{BoxFuture, Reply};
use crate::middleware::{run_chain, Invocation};
use crate::telemetry::handles::RouteMetrics;
use crate::telemetry::span;

/// What a message is answered with: its reply or error frame, or nothing (a default handler without a result).
/// Made by [`LiveChannel::message`]; hand it to [`deliver`](Self::deliver) with the runner's way of sending,
/// so that the frame is counted as sent only once it was taken.
#[must_use = "a reply does nothing until it is delivered"]
pub struct MessageReply {
    frame: Option<OutFrame>,
    /// The route whose "sent" counter a delivered frame bumps.
    sent: Option<Arc<RouteMetrics>>,
}

impl std::fmt::Debug for MessageReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReply")
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

impl MessageReply {
    /// The frame to send, if any.
    #[must_use]
    pub fn frame(&self) -> Option<&OutFrame> {
        self.frame.as_ref()
    }

    /// Sends the frame with `send` (nothing to send is a success) and counts it when `send` took it.
    ///
    /// # Errors
    /// What `send` returned.
    pub fn deliver<E>(self, send: impl FnOnce(OutFrame) -> Result<(), E>) -> Result<(), E> {
        let Some(frame) = self.frame else {
            return Ok(());
        };
        send(frame)?;
        if let Some(route) = &self.sent {
            route.sent();
        }
        Ok(())
    }
}

impl<S, U> LiveChannel<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// Runs one message through the pipeline and queues its reply on the connection: [`message`](Self::message),
    /// then [`MessageReply::deliver`] to the outbound queue.
    ///
    /// Routing and the auth gate are decided at once: an unknown route or a missing session queues its error
    /// frame before this returns, and the future is already complete. Otherwise the future runs middleware,
    /// validation, permissions and the handler, then queues the reply (or error frame); panics are caught.
    /// Dropping the future cancels the handler and sends nothing.
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
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::core::OutFrame;
    /// use serde_json::json;
    ///
    /// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").auth(false).route("type", "ping", ping));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/events").await;
    /// live.open();
    /// live.run_message(json!({"type": "ping"})).await;
    /// live.run_message(json!({"type": "pong"})).await;
    /// assert_eq!(drain(live.connection()), [
    ///     OutFrame::text(r#"{"result":"pong","type":"ping"}"#),
    ///     OutFrame::text(r#"{"error":"No route for 'type:pong'","errorName":"NotFoundError","type":"pong"}"#),
    /// ]);
    /// # });
    /// ```
    #[must_use]
    pub fn run_message(&self, value: Value) -> BoxFuture<()> {
        let reply = self.step(value);
        let conn = self.conn.clone();
        Box::pin(async move {
            let _ = reply.await.deliver(|frame| conn.push(frame));
        })
    }

    /// The message step: runs one message through the pipeline and returns its reply instead of queueing it,
    /// for runners whose reply path is not the connection (the body of a gateway's HTTP response). Routing and
    /// the auth gate are decided when this is called; the future runs middleware, validation, permissions and
    /// the handler, catching panics.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use pikku::core::runtime::{LiveChannel, UpgradeInput};
    /// # async fn live_for<S: Send + Sync + 'static, U: Send + Sync + 'static>(app: App<S, U>, path: &str) -> LiveChannel<S, U> {
    /// #     let input = UpgradeInput { path, query: None, headers: Default::default(), peer: None };
    /// #     app.into_runtime().admit(input).await.unwrap().into_channel(None, Instant::now())
    /// # }
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    /// use pikku::core::OutFrame;
    /// use serde_json::json;
    ///
    /// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("events", "/events").auth(false).route("type", "ping", ping));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let live = live_for(app, "/events").await;
    /// live.open();
    /// let reply = live.message(json!({"type": "ping"})).await;
    /// assert_eq!(reply.frame(), Some(&OutFrame::text(r#"{"result":"pong","type":"ping"}"#)));
    /// let mut body = Vec::new();
    /// reply.deliver(|frame| Ok::<_, ()>(body.push(frame))).unwrap();
    /// assert_eq!(body.len(), 1);
    /// # });
    /// ```
    #[must_use]
    pub fn message(&self, value: Value) -> BoxFuture<MessageReply> {
        Box::pin(self.step(value))
    }

    /// The step itself, unboxed, so that each runner's entry point boxes once.
    fn step(&self, value: Value) -> impl Future<Output = MessageReply> + Send + 'static {
        let spec = self.spec();
        let (route, value) = match select_route(spec, value) {
            Selected::Route(route, value) => (route, value),
            Selected::Unknown(property, name) => {
                let err = ChannelError::not_found(format!("No route for '{property}:{name}'"));
                let reply = self.unrouted(&err, Some((&property, &name)));
                return Either::Left(std::future::ready(reply));
            }
            Selected::NoDefault => {
                let err = ChannelError::not_found("No default message route");
                let reply = self.unrouted(&err, None);
                return Either::Left(std::future::ready(reply));
            }
        };
        let routing = route.name.clone();
        // The auth gate reads the live session: a session set by an earlier message counts.
        if route.auth && !self.session.is_present() {
            let err = match &routing {
                Some((p, v)) => {
                    ChannelError::unauthorized(format!("Unauthorized for route '{p}:{v}'"))
                }
                None => ChannelError::unauthorized("Unauthorized for the default message route"),
            };
            if let Some(metrics) = &route.metrics {
                metrics.received_only();
            }
            let routing = routing.as_ref().map(|(p, v)| (&**p, &**v));
            let reply = self.refused(&err, routing, route.metrics.clone());
            return Either::Left(std::future::ready(reply));
        }
        let timing = route.metrics.as_ref().map(RouteMetrics::received);
        let span = span::message(
            &self.conn,
            self.conn.peer(),
            routing.as_ref().map(|(p, v)| (&**p, &**v)),
        );
        let _entered = span.enter();
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
        drop(_entered);
        Either::Right(
            async move {
                let result = catch(fut).await;
                let routing = routing.as_ref().map(|(p, v)| (&**p, &**v));
                if let Some(timing) = &timing {
                    timing.finished();
                }
                if let Err(err) = &result {
                    log_error(&conn, routing, err);
                    if let Some(timing) = &timing {
                        timing.route.errors.count(err);
                    }
                }
                MessageReply {
                    frame: reply_frame(routing, result, dev),
                    sent: timing.map(|timing| timing.route),
                }
            }
            .instrument(span),
        )
    }

    /// The error frame refusing a message before its handler ran, counted against `route`.
    fn refused(
        &self,
        err: &ChannelError,
        routing: Option<(&str, &str)>,
        route: Option<Arc<RouteMetrics>>,
    ) -> MessageReply {
        self.count_refusal(err);
        MessageReply {
            frame: Some(error_frame(err, routing, self.dev_mode())),
            sent: route,
        }
    }

    /// Refuses a message that names no route.
    fn unrouted(&self, err: &ChannelError, routing: Option<(&str, &str)>) -> MessageReply {
        let unrouted = self.metrics().map(|metrics| metrics.unrouted.clone());
        if let Some(unrouted) = &unrouted {
            unrouted.received_only();
        }
        self.refused(err, routing, unrouted)
    }
}

enum Selected<'a, S, U> {
    Route(&'a RouteSpec<S, U>, Value),
    /// A routing property named an unregistered route and there is no default handler.
    Unknown(String, String),
    NoDefault,
}

/// Route selection: the first routing property whose value is a string naming a registered route wins, and
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

/// The route [`select_route`] would pick, without taking the value apart.
pub(super) fn peek_route<'a, S, U>(
    spec: &'a ChannelSpec<S, U>,
    value: &Value,
) -> Option<&'a RouteSpec<S, U>> {
    if let Value::Object(map) = value {
        for (property, routes) in &spec.properties {
            if let Some(Value::String(name)) = map.get(&**property) {
                if let Some(route) = routes.get(name.as_str()) {
                    return Some(route);
                }
            }
        }
    }
    spec.default_route.as_ref()
}

/// The routing key an error frame about `value` carries: the registered route it names, or else the first
/// routing property holding a string, as for an unknown route.
pub(super) fn routing_key<S, U>(
    spec: &ChannelSpec<S, U>,
    value: &Value,
) -> Option<(String, String)> {
    if let Some(Some((property, name))) = peek_route(spec, value).map(|r| &r.name) {
        return Some((property.to_string(), name.to_string()));
    }
    let Value::Object(map) = value else {
        return None;
    };
    spec.properties
        .iter()
        .find_map(|(property, _)| match map.get(&**property) {
            Some(Value::String(name)) => Some((property.to_string(), name.clone())),
            _ => None,
        })
}

/// Shapes a handler result into its frame: with the routing key for routed messages, as is for the default route.
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
                    // A member already named like the routing property is overwritten.
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
