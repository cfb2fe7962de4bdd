//! Middleware and permissions.
//!
//! # Order
//! There is one order only: **global, then channel, then route**, each in registration order. Message middleware
//! wraps the handler like an onion:
//!
//! ```text
//! global[0] → global[1] → channel[0] → route[0] → (validate input → permissions → handler)
//!          ←            ←             ←          ←  reply or error
//! ```
//!
//! Lifecycle middleware wraps onConnect and onDisconnect the same way (global, then the handler's own); channel
//! message middleware does not wrap them. Upgrade middleware runs before the 101 response and may refuse
//! the connection with a client error, which becomes the HTTP status of the refusal, with a JSON body
//! `{name, message, errorId}`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

use crate::ctx::{AppShared, Ctx, SessionSlot};
use crate::error::{ChannelError, SendError};
use crate::frame::encode_value;
use crate::future::BoxFuture;
use crate::handler::Reply;
pub(crate) use crate::permission::ErasedPermission;
pub use crate::permission::{Permission, PermissionCtx};

/// Which invocation a middleware wraps, so one function can serve as message and lifecycle middleware.
///
/// ```
/// use pikku::core::middleware::Invocation;
/// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
///
/// async fn trace(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
///     let kind = match mw.invocation() {
///         Invocation::Connect => "connect",
///         Invocation::Disconnect => "disconnect",
///         _ => "message",
///     };
///     tracing::debug!(kind, id = mw.ctx().channel_id(), "invocation");
///     next.run().await
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// onConnect.
    Connect,
    /// A text message (routed or default).
    Message,
    /// onDisconnect.
    Disconnect,
}

/// What a message or lifecycle middleware sees: the handler's [`Ctx`], the raw input of a message, and which
/// invocation it wraps.
///
/// ```
/// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
///
/// // Refuses oversized messages before they are even deserialized.
/// async fn limit(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
///     let size = mw.input().map_or(0, |input| input.to_string().len());
///     if size > 10_000 {
///         return Err(ChannelError::bad_request("Message too large"));
///     }
///     next.run().await
/// }
/// ```
pub struct MiddlewareCtx<S, U> {
    ctx: Ctx<S, U>,
    input: Option<Arc<Value>>,
    invocation: Invocation,
}

impl<S, U> fmt::Debug for MiddlewareCtx<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiddlewareCtx")
            .field("ctx", &self.ctx)
            .field("invocation", &self.invocation)
            .finish_non_exhaustive()
    }
}

impl<S, U> MiddlewareCtx<S, U> {
    /// The handler context: services, session, hub, matched route. A session set here is seen by the handler.
    ///
    /// ```
    /// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
    ///
    /// #[derive(Clone)]
    /// struct User { id: String }
    ///
    /// async fn who(mw: MiddlewareCtx<(), User>, next: Next<(), User>) -> Result<Reply, ChannelError> {
    ///     let user = mw.ctx().session().map(|u| u.id);
    ///     tracing::debug!(?user, route = ?mw.ctx().route(), "message");
    ///     next.run().await
    /// }
    /// ```
    #[must_use]
    pub fn ctx(&self) -> &Ctx<S, U> {
        &self.ctx
    }

    /// The raw JSON input of a text message, not yet validated: the whole message for the default route, the
    /// message without its routing member for a routed one. `None` for lifecycle invocations. See the type-level
    /// example.
    #[must_use]
    pub fn input(&self) -> Option<&Value> {
        self.input.as_deref()
    }

    /// Which invocation this is (see [`Invocation`] for an example).
    #[must_use]
    pub fn invocation(&self) -> Invocation {
        self.invocation
    }

    /// Sends a value to this channel, encoded like [`Channel::send`](crate::Channel::send) does it, for example
    /// a notice before the reply.
    ///
    /// ```
    /// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
    ///
    /// async fn deprecated(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     if mw.ctx().route() == Some(("action", "oldCreate")) {
    ///         mw.send(&serde_json::json!({ "warning": "oldCreate is deprecated; use create" }))?;
    ///     }
    ///     next.run().await
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`Channel::send`](crate::Channel::send).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        self.ctx.conn.push(encode_value(value)?)
    }
}

pub(crate) type ErasedMiddleware<S, U> = Arc<
    dyn Fn(MiddlewareCtx<S, U>, Next<S, U>) -> BoxFuture<Result<Reply, ChannelError>> + Send + Sync,
>;

type Inner = Box<dyn FnOnce() -> BoxFuture<Result<Reply, ChannelError>> + Send>;

/// The rest of the middleware chain. Call [`run`](Next::run) to continue, or return an error to stop.
///
/// A middleware that returns without calling `run` skips the handler: its own `Ok(reply)` or `Err(..)` is what
/// the client gets.
///
/// ```
/// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
///
/// async fn maintenance(_mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
///     let down = false; // read a flag here
///     if down {
///         return Err(ChannelError::service_unavailable("Down for maintenance"));
///     }
///     next.run().await
/// }
/// ```
pub struct Next<S, U> {
    chain: Arc<[ErasedMiddleware<S, U>]>,
    index: usize,
    ctx: Ctx<S, U>,
    input: Option<Arc<Value>>,
    invocation: Invocation,
    inner: Inner,
}

impl<S, U> fmt::Debug for Next<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &(self.chain.len() - self.index))
            .finish_non_exhaustive()
    }
}

impl<S: 'static, U: 'static> Next<S, U> {
    /// Runs the remaining middleware and the handler (for messages: validation, permissions, then the handler);
    /// returns its reply or error, which the middleware may inspect or replace before returning it. Consumes
    /// `self`, so the rest of the chain runs at most once.
    ///
    /// ```
    /// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
    ///
    /// // Hides the text of every client error of this chain behind one generic message.
    /// async fn opaque(_mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     next.run().await.map_err(|err| {
    ///         if err.is_internal() { err } else { ChannelError::bad_request("Request refused") }
    ///     })
    /// }
    /// ```
    #[must_use]
    pub fn run(mut self) -> BoxFuture<Result<Reply, ChannelError>> {
        match self.chain.get(self.index).cloned() {
            None => (self.inner)(),
            Some(mw) => {
                self.index += 1;
                let mctx = MiddlewareCtx {
                    ctx: self.ctx.clone(),
                    input: self.input.clone(),
                    invocation: self.invocation,
                };
                mw(mctx, self)
            }
        }
    }
}

/// Runs `inner` wrapped in `chain`.
pub(crate) fn run_chain<S: 'static, U: 'static>(
    chain: Arc<[ErasedMiddleware<S, U>]>,
    ctx: Ctx<S, U>,
    input: Option<Arc<Value>>,
    invocation: Invocation,
    inner: Inner,
) -> BoxFuture<Result<Reply, ChannelError>> {
    if chain.is_empty() {
        return inner();
    }
    Next {
        chain,
        index: 0,
        ctx,
        input,
        invocation,
        inner,
    }
    .run()
}

/// A message or lifecycle middleware: `async fn(MiddlewareCtx<S, U>, Next<S, U>) -> Result<Reply, ChannelError>`.
///
/// Implemented for every such function or closure. Register it with [`App::middleware`](crate::App::middleware),
/// [`ChannelRoute::middleware`](crate::ChannelRoute::middleware) or [`Route::middleware`](crate::Route::middleware)
/// for messages, and with the `lifecycle_middleware`, `connect_middleware` and `disconnect_middleware` methods
/// for onConnect and onDisconnect. The [module docs](crate::middleware#order) give the order. You do not
/// implement this trait yourself.
///
/// ```
/// use pikku::{App, Channel, ChannelError, ChannelRoute, Ctx, MiddlewareCtx, Next, Params, Reply};
///
/// async fn log_route(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
///     tracing::debug!(route = ?mw.ctx().route(), "message");
///     next.run().await
/// }
/// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
///
/// let app = App::new(())
///     .middleware(log_route)
///     .channel(ChannelRoute::new("events", "/events").auth(false).route("action", "ping", ping));
/// # let _ = app;
/// ```
pub trait Middleware<S, U>: Send + Sync + 'static {
    /// Erases the middleware for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedMiddleware<S, U>;
}

impl<F, Fut, S, U> Middleware<S, U> for F
where
    F: Fn(MiddlewareCtx<S, U>, Next<S, U>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, ChannelError>> + Send + 'static,
{
    fn erase(self) -> ErasedMiddleware<S, U> {
        Arc::new(move |mctx, next| Box::pin(self(mctx, next)))
    }
}

/// The upgrade request as upgrade middleware sees it.
///
/// By then the route matched, the origin was accepted and the opening data parsed. The middleware may seed the
/// session and add headers to the 101 response; cloning is cheap.
///
/// ```
/// use std::sync::Arc;
/// use http::{header, HeaderMap, HeaderValue};
/// use pikku::core::runtime::UpgradeInput;
/// use pikku::{App, Channel, ChannelError, ChannelRoute, Ctx, UpgradeRequest};
///
/// #[derive(serde::Deserialize)]
/// struct Room { #[serde(rename = "roomId")] room_id: String }
///
/// async fn check(req: UpgradeRequest<(), String>) -> Result<(), ChannelError> {
///     assert_eq!((req.channel_name(), req.path(), req.query()), ("rooms", "/rooms/lobby", Some("nick=ann")));
///     assert_eq!(req.params()["roomId"], "lobby");
///     let token = req.header("authorization").ok_or_else(|| ChannelError::unauthorized("No token"))?;
///     req.set_session(token.to_owned());
///     req.add_response_header(header::SET_COOKIE, HeaderValue::from_static("seen=1"));
///     Ok(())
/// }
/// async fn hello(ctx: Ctx<(), String>, ch: Channel<Room, ()>) -> String {
///     format!("{} joined {}", ctx.session().unwrap_or_default(), ch.opening_data().room_id)
/// }
///
/// let rt = App::new(())
///     .channel(ChannelRoute::new("rooms", "/rooms/:roomId").upgrade_middleware(check).on_connect(hello))
///     .into_runtime();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // What a runner does with `GET /rooms/lobby?nick=ann` and an `Authorization` header:
/// let mut headers = HeaderMap::new();
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("token-1"));
/// let input = UpgradeInput { path: "/rooms/lobby", query: Some("nick=ann"), headers: Arc::new(headers), peer: None };
/// let admitted = rt.admit(input).await.unwrap();
/// assert_eq!(admitted.response_headers()[header::SET_COOKIE], "seen=1");
///
/// // Without the header, the upgrade is refused with 401.
/// let input = UpgradeInput { path: "/rooms/lobby", query: Some("nick=ann"), headers: Default::default(), peer: None };
/// assert_eq!(rt.admit(input).await.unwrap_err().status(), 401);
/// # });
/// ```
pub struct UpgradeRequest<S, U> {
    pub(crate) app: Arc<AppShared<S>>,
    pub(crate) path: Arc<str>,
    pub(crate) query: Option<Arc<str>>,
    pub(crate) headers: Arc<HeaderMap>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) params: Arc<HashMap<String, String>>,
    pub(crate) channel_name: Arc<str>,
    pub(crate) session: Arc<SessionSlot<U>>,
    pub(crate) response_headers: Arc<Mutex<HeaderMap>>,
}

impl<S, U> Clone for UpgradeRequest<S, U> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            peer: self.peer,
            params: self.params.clone(),
            channel_name: self.channel_name.clone(),
            session: self.session.clone(),
            response_headers: self.response_headers.clone(),
        }
    }
}

/// The subprotocols a WebSocket upgrade offers in `Sec-WebSocket-Protocol`, in the client's order: several header
/// lines count in order, names are trimmed, empty ones and values that are not visible ASCII are skipped. What
/// [`UpgradeRequest::subprotocols`] reads, for runners that pick the one to echo.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.append("sec-websocket-protocol", HeaderValue::from_static("chat, pikku.v1"));
/// headers.append("sec-websocket-protocol", HeaderValue::from_static("token.abc"));
/// let offered: Vec<&str> = pikku::core::middleware::offered_subprotocols(&headers).collect();
/// assert_eq!(offered, ["chat", "pikku.v1", "token.abc"]);
/// ```
pub fn offered_subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

impl<S, U> fmt::Debug for UpgradeRequest<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("path", &self.path)
            .field("channel", &self.channel_name)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<S, U> UpgradeRequest<S, U> {
    /// The application's services, for example a token store to check credentials against.
    ///
    /// ```
    /// use pikku::{ChannelError, UpgradeRequest};
    ///
    /// struct Services { api_keys: Vec<String> }
    ///
    /// async fn api_key(req: UpgradeRequest<Services, String>) -> Result<(), ChannelError> {
    ///     match req.header("x-api-key") {
    ///         Some(key) if req.state().api_keys.iter().any(|k| k == key) => {
    ///             req.set_session(key.to_owned());
    ///             Ok(())
    ///         }
    ///         _ => Err(ChannelError::unauthorized("Unknown API key")),
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn state(&self) -> &S {
        &self.app.state
    }

    /// The request path, as received (still percent-encoded). Shown in the type-level example.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string without `?`, if any (still percent-encoded; decoded values are in
    /// [`params`](Self::params)). Shown in the type-level example.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The request headers (cookies included), for what [`header`](Self::header) cannot read: repeated headers,
    /// or values that are not visible ASCII.
    ///
    /// ```
    /// use pikku::{ChannelError, UpgradeRequest};
    ///
    /// async fn needs_session_cookie(req: UpgradeRequest<(), ()>) -> Result<(), ChannelError> {
    ///     let has_cookie = req
    ///         .headers()
    ///         .get_all(http::header::COOKIE)
    ///         .iter()
    ///         .filter_map(|v| v.to_str().ok())
    ///         .any(|cookies| cookies.split(';').any(|c| c.trim().starts_with("session=")));
    ///     if has_cookie { Ok(()) } else { Err(ChannelError::unauthorized("Sign in first")) }
    /// }
    /// ```
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The subprotocols the client offers in `Sec-WebSocket-Protocol`, in its order (several header lines count
    /// in order; names are trimmed, empty ones skipped). Browsers cannot set headers on a WebSocket, so a page
    /// often carries its token here: read it to set the session, and let the server's subprotocol policy echo
    /// the protocol name (see `pikku::server::SubprotocolPolicy`).
    ///
    /// ```
    /// use pikku::{ChannelError, UpgradeRequest};
    ///
    /// // A page opens `new WebSocket(url, ["pikku.v1", "token.s3cret"])`.
    /// async fn token_in_subprotocol(req: UpgradeRequest<(), String>) -> Result<(), ChannelError> {
    ///     let token = req.subprotocols().find_map(|p| p.strip_prefix("token."));
    ///     match token {
    ///         Some("s3cret") => {
    ///             req.set_session("u1".to_owned());
    ///             Ok(())
    ///         }
    ///         _ => Err(ChannelError::unauthorized("Missing or invalid token")),
    ///     }
    /// }
    /// ```
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> {
        offered_subprotocols(&self.headers)
    }

    /// A header as text, if present and visible ASCII (the first value when repeated); names are
    /// case-insensitive. Shown in the type-level example.
    ///
    /// A value that is not visible ASCII reads as `None`, like an absent header. Middleware that must refuse
    /// unreadable credentials rather than treat them as missing should look at [`headers`](Self::headers).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The peer address, when the transport knows it: the embedded server's `serve` methods provide it; a router
    /// of your own must be served with axum's `into_make_service_with_connect_info::<SocketAddr>()`. Behind a
    /// proxy it is the proxy's address.
    ///
    /// ```
    /// use pikku::{ChannelError, UpgradeRequest};
    ///
    /// async fn local_only(req: UpgradeRequest<(), ()>) -> Result<(), ChannelError> {
    ///     match req.peer_addr() {
    ///         Some(addr) if addr.ip().is_loopback() => Ok(()),
    ///         _ => Err(ChannelError::forbidden("Local connections only")),
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The merged route params and query, decoded (what the opening data was deserialized from). Shown in the
    /// type-level example.
    #[must_use]
    pub fn params(&self) -> &HashMap<String, String> {
        &self.params
    }

    /// The name of the channel being opened, for upgrade middleware shared by several channels. Shown in the
    /// type-level example.
    #[must_use]
    pub fn channel_name(&self) -> &str {
        &self.channel_name
    }

    /// Seeds the connection's session: the auth gate and handlers see it from the first message on, and
    /// onConnect sees it too. Shown in the type-level example.
    pub fn set_session(&self, session: U) {
        self.session.set(session);
    }

    /// Adds a header to the 101 response (for example `Set-Cookie`); a header added twice is sent twice. Shown in
    /// the type-level example.
    pub fn add_response_header(&self, name: HeaderName, value: HeaderValue) {
        self.response_headers.lock().append(name, value);
    }
}

pub(crate) type ErasedUpgrade<S, U> =
    Arc<dyn Fn(UpgradeRequest<S, U>) -> BoxFuture<Result<(), ChannelError>> + Send + Sync>;

/// Upgrade middleware: `async fn(UpgradeRequest<S, U>) -> Result<(), ChannelError>`; an error refuses the upgrade.
///
/// Implemented for every such function or closure. Register it app-wide with
/// [`App::upgrade_middleware`](crate::App::upgrade_middleware) or per channel with
/// [`ChannelRoute::upgrade_middleware`](crate::ChannelRoute::upgrade_middleware). The refusal is an HTTP response
/// with the error's status and a JSON body `{name, message, errorId}`; a panic refuses with 500. You do not
/// implement this trait yourself.
///
/// ```
/// use pikku::{ChannelError, UpgradeRequest};
///
/// #[derive(Clone)]
/// struct User { id: String }
///
/// async fn bearer(req: UpgradeRequest<(), User>) -> Result<(), ChannelError> {
///     match req.header("authorization") {
///         Some("Bearer good") => {
///             req.set_session(User { id: "u2".into() });
///             Ok(())
///         }
///         _ => Err(ChannelError::unauthorized("Missing or invalid token")),
///     }
/// }
/// ```
pub trait UpgradeMiddleware<S, U>: Send + Sync + 'static {
    /// Erases the middleware for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedUpgrade<S, U>;
}

impl<F, Fut, S, U> UpgradeMiddleware<S, U> for F
where
    F: Fn(UpgradeRequest<S, U>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ChannelError>> + Send + 'static,
{
    fn erase(self) -> ErasedUpgrade<S, U> {
        Arc::new(move |req| Box::pin(self(req)))
    }
}
