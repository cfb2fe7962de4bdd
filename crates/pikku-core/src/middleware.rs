//! Middleware and permissions (semantics §4.4, §4.5).
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
//! message middleware does not wrap them (D20). Upgrade middleware runs before the 101 response and may refuse
//! the connection with a client error, which becomes the HTTP status and JSON body of protocol §2.3.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

use crate::app::{AppRuntime, PermissionPlan};
use crate::ctx::{Ctx, SessionSlot};
use crate::error::{ChannelError, SendError};
use crate::frame::encode_value;
use crate::handler::{BoxFuture, Reply};

/// Which invocation a middleware wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// onConnect.
    Connect,
    /// A text message (routed or default).
    Message,
    /// A binary frame.
    Binary,
    /// onDisconnect.
    Disconnect,
}

/// What a message or lifecycle middleware sees.
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
    /// The handler context: services, session, hub, matched route.
    #[must_use]
    pub fn ctx(&self) -> &Ctx<S, U> {
        &self.ctx
    }

    /// The raw JSON input of a text message (`None` for lifecycle and binary invocations).
    #[must_use]
    pub fn input(&self) -> Option<&Value> {
        self.input.as_deref()
    }

    /// Which invocation this is.
    #[must_use]
    pub fn invocation(&self) -> Invocation {
        self.invocation
    }

    /// Sends a value to this channel (encoded by protocol §4.1).
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
    /// Runs the remaining middleware and the handler; returns its reply or error.
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
/// ```
/// use pikku_core::{ChannelError, MiddlewareCtx, Next, Reply};
///
/// async fn log_route(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
///     tracing::debug!(route = ?mw.ctx().route(), "message");
///     next.run().await
/// }
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

/// What a permission check sees: the context (with the session) and the raw, already validated input.
pub struct PermissionCtx<S, U> {
    ctx: Ctx<S, U>,
    input: Arc<Value>,
}

impl<S, U> fmt::Debug for PermissionCtx<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermissionCtx")
            .field("ctx", &self.ctx)
            .field("input", &self.input)
            .finish()
    }
}

impl<S, U> PermissionCtx<S, U> {
    pub(crate) fn new(ctx: Ctx<S, U>, input: Arc<Value>) -> Self {
        Self { ctx, input }
    }

    /// The context.
    #[must_use]
    pub fn ctx(&self) -> &Ctx<S, U> {
        &self.ctx
    }

    /// A copy of the current session.
    #[must_use]
    pub fn session(&self) -> Option<U>
    where
        U: Clone,
    {
        self.ctx.session()
    }

    /// The message input.
    #[must_use]
    pub fn input(&self) -> &Value {
        &self.input
    }
}

pub(crate) type ErasedPermission<S, U> =
    Arc<dyn Fn(PermissionCtx<S, U>) -> BoxFuture<Result<bool, ChannelError>> + Send + Sync>;

/// A permission: `async fn(PermissionCtx<S, U>) -> Result<bool, ChannelError>`. `Ok(false)` is a
/// `ForbiddenError` `Permission denied`; an `Err` is sent as is.
///
/// ```
/// use pikku_core::{ChannelError, PermissionCtx};
///
/// #[derive(Clone)]
/// struct User { admin: bool }
///
/// async fn admin_only(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
///     Ok(p.session().is_some_and(|u| u.admin))
/// }
/// ```
pub trait Permission<S, U>: Send + Sync + 'static {
    /// Erases the permission for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedPermission<S, U>;
}

impl<F, Fut, S, U> Permission<S, U> for F
where
    F: Fn(PermissionCtx<S, U>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, ChannelError>> + Send + 'static,
{
    fn erase(self) -> ErasedPermission<S, U> {
        Arc::new(move |p| Box::pin(self(p)))
    }
}

/// The upgrade request as upgrade middleware sees it (protocol §2.3 step 7).
pub struct UpgradeRequest<S, U> {
    pub(crate) rt: Arc<AppRuntime<S, U>>,
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
            rt: self.rt.clone(),
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
    /// The application's services.
    #[must_use]
    pub fn state(&self) -> &S {
        self.rt.state()
    }

    /// The request path, as received.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, if any.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The request headers (cookies included).
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header as text, if present and visible ASCII.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The peer address, when the transport knows it.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The merged route params and query.
    #[must_use]
    pub fn params(&self) -> &HashMap<String, String> {
        &self.params
    }

    /// The channel being opened.
    #[must_use]
    pub fn channel_name(&self) -> &str {
        &self.channel_name
    }

    /// Seeds the connection's session.
    pub fn set_session(&self, session: U) {
        self.session.set(session);
    }

    /// Adds a header to the 101 response (for example `Set-Cookie`).
    pub fn add_response_header(&self, name: HeaderName, value: HeaderValue) {
        self.response_headers.lock().append(name, value);
    }
}

pub(crate) type ErasedUpgrade<S, U> =
    Arc<dyn Fn(UpgradeRequest<S, U>) -> BoxFuture<Result<(), ChannelError>> + Send + Sync>;

/// Upgrade middleware: `async fn(UpgradeRequest<S, U>) -> Result<(), ChannelError>`; an error refuses the upgrade.
///
/// ```
/// use pikku_core::{ChannelError, UpgradeRequest};
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

/// Runs a route's permissions: every channel check, then at least one route group (semantics §4.5).
pub(crate) async fn check_permissions<S, U>(
    plan: &PermissionPlan<S, U>,
    ctx: &Ctx<S, U>,
    input: Arc<Value>,
) -> Result<(), ChannelError> {
    let denied = || ChannelError::forbidden("Permission denied");
    for check in &plan.all {
        if !check(PermissionCtx::new(ctx.clone(), input.clone())).await? {
            return Err(denied());
        }
    }
    if plan.any_group.is_empty() {
        return Ok(());
    }
    let mut first_error = None;
    'groups: for group in &plan.any_group {
        for check in group {
            match check(PermissionCtx::new(ctx.clone(), input.clone())).await {
                Ok(true) => {}
                Ok(false) => continue 'groups,
                Err(err) => {
                    first_error.get_or_insert(err);
                    continue 'groups;
                }
            }
        }
        return Ok(());
    }
    Err(first_error.unwrap_or_else(denied))
}
