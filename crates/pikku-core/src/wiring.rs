//! Channel definitions: a name, a route and the handlers, routes, auth, middleware and permissions.
//!
//! ```
//! use pikku::{App, Channel, ChannelRoute, Ctx, Params, Route};
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
//! async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> serde_json::Value {
//!     serde_json::json!({"pong": true})
//! }
//!
//! let app = App::new(()).channel(
//!     ChannelRoute::new("events", "/events")
//!         .on_connect(hello)
//!         .route("type", "ping", Route::new(ping).auth(false)),
//! );
//! ```

use std::any::Any;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::describe::{CapabilityInfo, ChannelShape, HandlerTypes, RouteShape, TypeInfo};
use crate::error::{ChannelError, RegistrationError};
use crate::future::BoxFuture;
use crate::handler::{
    BinaryHandler, ConnectHandler, DisconnectHandler, ErasedBinary, ErasedConnect,
    ErasedDisconnect, ErasedMessage, MessageHandler,
};
use crate::middleware::{
    ErasedMiddleware, ErasedPermission, ErasedUpgrade, Middleware, Permission, UpgradeMiddleware,
};
use crate::opening::{opening_from_params, Params, RoutePattern, RouteSegment};
use crate::rate_limit::RateLimit;
use crate::rpc::Capability;
use crate::socket_state::StateCodec;

pub(crate) type OpeningParser = fn(Params) -> Result<Arc<dyn Any + Send + Sync>, ChannelError>;

fn parse_opening<O: DeserializeOwned + Send + Sync + 'static>(
    params: Params,
) -> Result<Arc<dyn Any + Send + Sync>, ChannelError> {
    opening_from_params::<O>(params).map(|o| Arc::new(o) as Arc<dyn Any + Send + Sync>)
}

/// The stored form of an [`EventsChannel::authorize`](crate::events::EventsChannel::authorize) callback.
pub type TopicAuthorizer<S, U> =
    Arc<dyn Fn(Ctx<S, U>, String) -> BoxFuture<Result<(), ChannelError>> + Send + Sync>;

/// What the runtime keeps of an events channel: enough to serve its topic streams.
pub(crate) struct EventsSpec<S, U> {
    pub(crate) authorize: Option<TopicAuthorizer<S, U>>,
}

impl<S, U> Clone for EventsSpec<S, U> {
    fn clone(&self) -> Self {
        Self {
            authorize: self.authorize.clone(),
        }
    }
}

/// One message route: a handler plus its own `auth`, middleware and permissions.
///
/// Pass a plain handler to [`ChannelRoute::route`] or [`ChannelRoute::on_message`] when the channel's defaults
/// suit it; wrap it in a `Route` to give it settings of its own.
///
/// ```
/// use pikku::{App, Channel, ChannelError, ChannelRoute, Ctx, Params, PermissionCtx, Route};
///
/// #[derive(Clone)]
/// struct User { admin: bool }
///
/// async fn ping(_ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
/// async fn purge(_ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: ()) {}
/// async fn is_admin(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
///     Ok(p.session().is_some_and(|u| u.admin))
/// }
///
/// let channel = ChannelRoute::new("events", "/events")
///     .route("action", "ping", Route::new(ping).auth(false)) // open to anonymous clients
///     .route("action", "purge", Route::new(purge).permission(is_admin));
/// let app = App::new(()).channel(channel);
/// # let _ = app;
/// ```
#[must_use = "a route does nothing until it is added to a channel"]
pub struct Route<S, U, O, SS> {
    pub(crate) handler: ErasedMessage<S, U>,
    pub(crate) auth: Option<bool>,
    pub(crate) middleware: Vec<ErasedMiddleware<S, U>>,
    pub(crate) permission_groups: Vec<Vec<ErasedPermission<S, U>>>,
    pub(crate) rate_limit: Option<Option<RateLimit>>,
    /// The handler's types, for `App::describe`.
    pub(crate) types: HandlerTypes,
    /// The `.route(..)` call that registered it.
    pub(crate) location: Option<&'static Location<'static>>,
    _marker: PhantomData<fn() -> (O, SS)>,
}

impl<S, U, O, SS> std::fmt::Debug for Route<S, U, O, SS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("auth", &self.auth)
            .field("middleware", &self.middleware.len())
            .field("permission_groups", &self.permission_groups.len())
            .finish_non_exhaustive()
    }
}

impl<S, U, O, SS> Route<S, U, O, SS> {
    /// A route running `handler`, an `async fn(Ctx<S, U>, Channel<O, Out, SS>, In) -> R` (see
    /// [`MessageHandler`]). Without further settings it behaves like the bare handler: the channel's `auth`, no
    /// middleware or permissions of its own.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params, Route};
    ///
    /// async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: serde_json::Value) -> serde_json::Value {
    ///     input
    /// }
    ///
    /// let channel = ChannelRoute::new("events", "/events").route("action", "echo", Route::new(echo));
    /// # let _ = channel;
    /// ```
    pub fn new<H, M>(handler: H) -> Self
    where
        H: MessageHandler<S, U, O, SS, M>,
    {
        Self {
            handler: handler.erase(),
            auth: None,
            middleware: Vec::new(),
            permission_groups: Vec::new(),
            rate_limit: None,
            types: H::types(),
            location: None,
            _marker: PhantomData,
        }
    }

    /// Whether this route needs a session; defaults to the channel's [`auth`](ChannelRoute::auth). Without a
    /// session, a message for an `auth` route gets an `UnauthorizedError` frame and its handler does not run.
    /// Typical use: `auth(false)` on the login route of an authenticated channel.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params, Route};
    ///
    /// #[derive(Clone)]
    /// struct User { id: String }
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Login { token: String }
    ///
    /// async fn login(ctx: Ctx<(), User>, _ch: Channel<Params, ()>, input: Login) -> bool {
    ///     let ok = input.token == "valid";
    ///     if ok {
    ///         ctx.set_session(User { id: "u1".into() });
    ///     }
    ///     ok
    /// }
    ///
    /// // The channel needs a session (the default), except for `login`.
    /// let channel = ChannelRoute::new("events", "/events")
    ///     .route("action", "login", Route::new(login).auth(false));
    /// # let _ = channel;
    /// ```
    pub fn auth(mut self, auth: bool) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds message middleware that wraps this route only (inside global and channel middleware, in
    /// registration order; see [`middleware`](crate::middleware) for the order).
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, MiddlewareCtx, Next, Params, Reply, Route};
    ///
    /// async fn log_input(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     tracing::debug!(input = ?mw.input(), "create");
    ///     next.run().await
    /// }
    /// async fn create(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: serde_json::Value) {}
    ///
    /// let channel = ChannelRoute::new("events", "/events")
    ///     .route("action", "create", Route::new(create).middleware(log_input));
    /// # let _ = channel;
    /// ```
    pub fn middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.middleware.push(middleware.erase());
        self
    }

    /// Adds a permission group of one check. The route is allowed when every check of at least one of its groups
    /// passes (and every channel [`permission`](ChannelRoute::permission) passes); calling `permission` twice
    /// therefore means "either check". Use [`permission_group`](Self::permission_group) for "both".
    ///
    /// Permissions run after the input was validated, inside the middleware. When no group passes, the client
    /// gets the first error a check returned, or `ForbiddenError` `Permission denied`.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params, PermissionCtx, Route};
    ///
    /// #[derive(Clone)]
    /// struct User { admin: bool, moderator: bool }
    ///
    /// async fn admin(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
    ///     Ok(p.session().is_some_and(|u| u.admin))
    /// }
    /// async fn moderator(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
    ///     Ok(p.session().is_some_and(|u| u.moderator))
    /// }
    /// async fn delete(_ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: ()) {}
    ///
    /// // Admins or moderators may delete.
    /// let channel = ChannelRoute::new("events", "/events")
    ///     .route("action", "delete", Route::new(delete).permission(admin).permission(moderator));
    /// # let _ = channel;
    /// ```
    pub fn permission(self, permission: impl Permission<S, U>) -> Self {
        self.permission_group(vec![permission.erase()])
    }

    /// Adds a permission group: the group passes when all its checks pass (they run in order and stop at the
    /// first that does not). Build the checks with [`permission`]. The route is allowed when
    /// at least one of its groups passes; an empty group always passes.
    ///
    /// ```
    /// use pikku::{permission, Channel, ChannelError, ChannelRoute, Ctx, Params, PermissionCtx, Route};
    ///
    /// #[derive(Clone)]
    /// struct User { admin: bool, verified: bool }
    ///
    /// async fn admin(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
    ///     Ok(p.session().is_some_and(|u| u.admin))
    /// }
    /// async fn verified(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
    ///     Ok(p.session().is_some_and(|u| u.verified))
    /// }
    /// async fn wipe(_ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: ()) {}
    ///
    /// // Only verified admins may wipe.
    /// let channel = ChannelRoute::new("events", "/events").route(
    ///     "action",
    ///     "wipe",
    ///     Route::new(wipe).permission_group(vec![permission(admin), permission(verified)]),
    /// );
    /// # let _ = channel;
    /// ```
    pub fn permission_group(mut self, group: Vec<ErasedPermissionCheck<S, U>>) -> Self {
        self.permission_groups.push(group);
        self
    }

    /// This route's own inbound rate limit, replacing the channel's for its messages (which then no longer count
    /// against the channel's budget); `None` exempts the route from any limit. Without this call the route shares
    /// the channel's limit ([`ChannelRoute::rate_limit`], or the app's default). Each connection keeps a separate
    /// budget per limited route.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params, RateLimit, Route};
    ///
    /// async fn search(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _query: String) {}
    /// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) {}
    ///
    /// let channel = ChannelRoute::new("docs", "/docs")
    ///     .rate_limit(RateLimit::per_second(50))
    ///     // Expensive: at most 2 a second, 5 at once.
    ///     .route("action", "search", Route::new(search).rate_limit(RateLimit::per_second(2).burst(5)))
    ///     // Heartbeats from the client's own timer: never limited.
    ///     .route("action", "ping", Route::new(ping).rate_limit(None));
    /// # let _ = channel;
    /// ```
    pub fn rate_limit(mut self, limit: impl Into<Option<RateLimit>>) -> Self {
        self.rate_limit = Some(limit.into());
        self
    }
}

/// A stored permission check, for [`Route::permission_group`]; make one with [`permission`].
///
/// It is a type-erased, reference-counted function; checks of different types can share one `Vec`.
///
/// ```
/// use pikku::core::wiring::ErasedPermissionCheck;
/// use pikku::{permission, ChannelError, PermissionCtx};
///
/// async fn signed_in(p: PermissionCtx<(), String>) -> Result<bool, ChannelError> {
///     Ok(p.session().is_some())
/// }
///
/// let group: Vec<ErasedPermissionCheck<(), String>> = vec![
///     permission(signed_in),
///     permission(|p: PermissionCtx<(), String>| async move { Ok(p.input().get("id").is_some()) }),
/// ];
/// # let _ = group;
/// ```
pub type ErasedPermissionCheck<S, U> = ErasedPermission<S, U>;

/// Stores a permission check (an `async fn(PermissionCtx<S, U>) -> Result<bool, ChannelError>`, see
/// [`Permission`]) so that checks of different types fit in one [`Route::permission_group`].
///
/// ```
/// use pikku::{permission, Channel, ChannelError, ChannelRoute, Ctx, Params, PermissionCtx, Route};
///
/// async fn signed_in(p: PermissionCtx<(), String>) -> Result<bool, ChannelError> {
///     Ok(p.session().is_some())
/// }
/// async fn owns_item(p: PermissionCtx<(), String>) -> Result<bool, ChannelError> {
///     let owner = p.input().get("owner").and_then(|o| o.as_str());
///     Ok(owner.is_some() && owner.map(str::to_owned) == p.session())
/// }
/// async fn edit(_ctx: Ctx<(), String>, _ch: Channel<Params, ()>, _in: serde_json::Value) {}
///
/// let channel = ChannelRoute::new("items", "/items").route(
///     "action",
///     "edit",
///     Route::new(edit).permission_group(vec![permission(signed_in), permission(owns_item)]),
/// );
/// # let _ = channel;
/// ```
pub fn permission<S, U>(check: impl Permission<S, U>) -> ErasedPermissionCheck<S, U> {
    check.erase()
}

/// Marker for [`IntoRoute`] on a [`Route`].
#[derive(Debug)]
#[doc(hidden)]
pub enum RouteMarker {}

/// Anything that can become a [`Route`]: a `Route` or a plain message handler.
///
/// It is what lets [`ChannelRoute::route`] and [`ChannelRoute::on_message`] take either. `M` is an inference
/// marker that keeps the two implementations apart; never name it. You do not implement this trait.
///
/// ```
/// use pikku::{Channel, ChannelRoute, Ctx, Params, Route};
///
/// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
///
/// let channel = ChannelRoute::new("events", "/events")
///     .route("action", "ping", ping) // a bare handler
///     .route("type", "ping", Route::new(ping).auth(false)); // a configured route
/// # let _ = channel;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a message handler or `Route` of this channel",
    label = "expected `async fn(Ctx<{S}, {U}>, Channel<{O}, Out, {SS}>, In) -> impl IntoReply`",
    note = "write `async fn handle(ctx: Ctx<S, U>, channel: Channel<O, Out, SS>, input: In) -> R`: an `async fn`, \
            the context first, then the channel, then the message",
    note = "the message `In` is any `serde::Deserialize` type, `serde_json::Value` to take it as it is, or `()` to \
            ignore it",
    note = "every handler of a channel takes the same opening data `O` and socket state `SS` in its `Channel<O, _, SS>` \
            (`Params` is shown as `HashMap<String, String>`)",
    note = "a closure works too, with typed parameters: `|ctx: Ctx<S, U>, channel: Channel<O, Out, SS>, input: In| \
            async move {{ .. }}`",
    note = "inside `typed(..)`, the handler's types (message, reply value, push `Out`, opening data `O`) must also \
            implement `schemars::JsonSchema`: add `#[derive(schemars::JsonSchema)]` to them"
)]
pub trait IntoRoute<S, U, O, SS, M> {
    /// Converts into a [`Route`]; a bare handler becomes `Route::new(handler)`.
    fn into_route(self) -> Route<S, U, O, SS>;
}

#[diagnostic::do_not_recommend]
impl<S, U, O, SS> IntoRoute<S, U, O, SS, RouteMarker> for Route<S, U, O, SS> {
    fn into_route(self) -> Route<S, U, O, SS> {
        self
    }
}

impl<H, M, S, U, O, SS> IntoRoute<S, U, O, SS, (M,)> for H
where
    H: MessageHandler<S, U, O, SS, M>,
{
    fn into_route(self) -> Route<S, U, O, SS> {
        Route::new(self)
    }
}

pub(crate) struct Lifecycle<H, S, U> {
    pub(crate) handler: H,
    pub(crate) middleware: Vec<ErasedMiddleware<S, U>>,
}

pub(crate) struct RoutingProperty<S, U, O, SS> {
    pub(crate) name: String,
    pub(crate) routes: Vec<(String, Route<S, U, O, SS>)>,
}

/// A channel definition: name, route pattern, handlers and policies (Pikku's "channel route").
///
/// `O` (opening data) and `SS` (socket state) are inferred from the handlers' [`Channel`](crate::Channel)
/// parameters; all handlers of one channel must agree on them. `S` and `U` come from the handlers'
/// [`Ctx`] and must match the [`App`](crate::App) the channel is added to. Mistakes in the
/// definition (an invalid pattern, a duplicate route) are reported when the channel is added to the app, naming
/// the line of the offending call.
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, ClosedChannel, Ctx, Route};
///
/// #[derive(serde::Deserialize)]
/// struct Room {
///     #[serde(rename = "roomId")]
///     room_id: String,
/// }
///
/// async fn joined(_ctx: Ctx<(), ()>, ch: Channel<Room, String>) {
///     let _ = ch.send(format!("welcome to {}", ch.opening_data().room_id));
/// }
/// #[derive(serde::Deserialize)]
/// struct Say { text: String }
///
/// // `{"action": "say", "text": "hi"}` arrives as `Say { text: "hi" }`; the reply is
/// // `{"action": "say", "result": "HI"}`.
/// async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Room, ()>, input: Say) -> String {
///     input.text.to_uppercase()
/// }
/// async fn left(_ctx: Ctx<(), ()>, ch: ClosedChannel<Room>) {
///     tracing::info!(room = ch.opening_data().room_id, "left");
/// }
///
/// let rooms = ChannelRoute::new("rooms", "/rooms/:roomId")
///     .auth(false)
///     .on_connect(joined)
///     .route("action", "say", say)
///     .on_disconnect(left);
/// let app = App::new(()).channel(rooms);
/// # let _ = app;
/// ```
#[must_use = "a channel does nothing until it is added to the app with `App::channel`"]
pub struct ChannelRoute<S, U, O = Params, SS = ()> {
    pub(crate) name: String,
    pub(crate) route: String,
    pub(crate) location: &'static Location<'static>,
    pub(crate) auth: bool,
    pub(crate) opening: OpeningParser,
    pub(crate) on_connect: Option<Lifecycle<ErasedConnect<S, U>, S, U>>,
    pub(crate) on_disconnect: Option<Lifecycle<ErasedDisconnect<S, U>, S, U>>,
    pub(crate) connect_middleware: Vec<ErasedMiddleware<S, U>>,
    pub(crate) disconnect_middleware: Vec<ErasedMiddleware<S, U>>,
    pub(crate) default_route: Option<Route<S, U, O, SS>>,
    pub(crate) properties: Vec<RoutingProperty<S, U, O, SS>>,
    pub(crate) binary: Option<ErasedBinary<S, U>>,
    pub(crate) binary_auth: Option<bool>,
    pub(crate) upgrade_middleware: Vec<ErasedUpgrade<S, U>>,
    pub(crate) message_middleware: Vec<ErasedMiddleware<S, U>>,
    pub(crate) permissions: Vec<ErasedPermission<S, U>>,
    pub(crate) max_in_flight: usize,
    pub(crate) rpc_timeout: Option<Option<Duration>>,
    pub(crate) rate_limit: Option<Option<RateLimit>>,
    pub(crate) errors: Vec<(RegistrationError, &'static Location<'static>)>,
    /// Set by [`EventsChannel`](crate::events::EventsChannel): the channel also serves topic streams.
    pub(crate) events: Option<EventsSpec<S, U>>,
    /// The types of the lifecycle and binary handlers and the declared capabilities, for `App::describe`.
    pub(crate) described: DescribedTypes,
    /// The socket-state codec, when the channel opted in with `persist_socket_state`.
    pub(crate) state_codec: Option<StateCodec>,
}

/// What a channel records about its handlers' types besides its routes (which carry their own).
pub(crate) struct DescribedTypes {
    pub(crate) opening: TypeInfo,
    pub(crate) connect: Option<HandlerTypes>,
    pub(crate) disconnect: Option<HandlerTypes>,
    pub(crate) binary: Option<HandlerTypes>,
    pub(crate) capabilities: Vec<CapabilityInfo>,
}

impl<S, U, O, SS> std::fmt::Debug for ChannelRoute<S, U, O, SS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRoute")
            .field("name", &self.name)
            .field("route", &self.route)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl<S, U, O, SS> ChannelRoute<S, U, O, SS>
where
    O: DeserializeOwned + Send + Sync + 'static,
{
    /// A channel named `name` at `route` (`/rooms/:roomId`). `auth` defaults to true: messages need a session
    /// unless a route says otherwise.
    ///
    /// `route` starts with `/` and holds literal segments and whole-segment params, written `:name` or `{name}`
    /// (`[A-Za-z0-9_]` names); a trailing `/` is ignored, wildcards are not supported. Params and the query string together are the opening data, deserialized into `O`. The
    /// pattern is checked when the channel is added to the app, and an error names this line.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, ch: Channel<Params, String>) {
    ///     // `/rooms/lobby?nick=ann` opens with {"roomId": "lobby", "nick": "ann"}.
    ///     let room = ch.opening_data().get("roomId").cloned().unwrap_or_default();
    ///     let _ = ch.send(format!("hello from {room}"));
    /// }
    ///
    /// let rooms = ChannelRoute::new("rooms", "/rooms/:roomId").on_connect(hello);
    /// # let _ = rooms;
    /// ```
    #[track_caller]
    pub fn new(name: impl Into<String>, route: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            route: route.into(),
            location: Location::caller(),
            auth: true,
            opening: parse_opening::<O>,
            on_connect: None,
            on_disconnect: None,
            connect_middleware: Vec::new(),
            disconnect_middleware: Vec::new(),
            default_route: None,
            properties: Vec::new(),
            binary: None,
            binary_auth: None,
            upgrade_middleware: Vec::new(),
            message_middleware: Vec::new(),
            permissions: Vec::new(),
            max_in_flight: 1,
            rpc_timeout: None,
            rate_limit: None,
            errors: Vec::new(),
            events: None,
            described: DescribedTypes {
                opening: TypeInfo::untyped::<O>(),
                connect: None,
                disconnect: None,
                binary: None,
                capabilities: Vec::new(),
            },
            state_codec: None,
        }
    }
}

impl<S, U, O, SS> ChannelRoute<S, U, O, SS> {
    /// Whether messages need a session by default (default true). Routes override it with [`Route::auth`], binary
    /// frames with [`binary_auth`](Self::binary_auth). A message that needs a session and arrives without one gets
    /// an `UnauthorizedError` frame; its handler does not run. Connection and disconnection handlers always run.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: serde_json::Value) -> serde_json::Value {
    ///     input
    /// }
    ///
    /// // A public channel: no session needed.
    /// let public = ChannelRoute::new("echo", "/echo").auth(false).on_message(echo);
    /// # let _ = public;
    /// ```
    pub fn auth(mut self, auth: bool) -> Self {
        self.auth = auth;
        self
    }

    /// The connection handler (`async fn(Ctx<S, U>, Channel<O, Out, SS>) -> R`, see [`ConnectHandler`]): runs once
    /// after the upgrade, before any message is handled. A returned value is sent to the client as is; an
    /// error becomes an error frame and the connection stays open. A second call replaces the handler.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Welcome { channel_id: String }
    ///
    /// async fn welcome(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>) -> Result<Welcome, ChannelError> {
    ///     Ok(Welcome { channel_id: ch.channel_id().to_owned() })
    /// }
    ///
    /// let channel = ChannelRoute::new("events", "/events").on_connect(welcome);
    /// # let _ = channel;
    /// ```
    pub fn on_connect<H, M>(mut self, handler: H) -> Self
    where
        H: ConnectHandler<S, U, O, SS, M>,
    {
        self.on_connect = Some(Lifecycle {
            handler: handler.erase(),
            middleware: Vec::new(),
        });
        self.described.connect = Some(H::types());
        self
    }

    /// Lifecycle middleware of the connection handler (inside global lifecycle middleware, in registration order).
    /// It wraps only [`on_connect`](Self::on_connect), and does nothing when the channel has no connection
    /// handler. An error it returns is sent to the client as an error frame, and the handler does not run.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, MiddlewareCtx, Next, Params, Reply};
    ///
    /// async fn only_in_business_hours(_mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     let open = true; // look at the clock here
    ///     if !open {
    ///         return Err(ChannelError::service_unavailable("Come back later"));
    ///     }
    ///     next.run().await
    /// }
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// let channel = ChannelRoute::new("events", "/events")
    ///     .on_connect(hello)
    ///     .connect_middleware(only_in_business_hours);
    /// # let _ = channel;
    /// ```
    pub fn connect_middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.connect_middleware.push(middleware.erase());
        self
    }

    /// The disconnection handler (`async fn(Ctx<S, U>, ClosedChannel<O, SS>)`, see [`DisconnectHandler`]): runs
    /// once per connection that was opened, after the close, once in-flight handlers finished or the drain
    /// timeout passed. Its [`ClosedChannel`](crate::ClosedChannel) cannot send; it tells why the connection
    /// closed. Errors it returns are logged. A second call replaces the handler.
    ///
    /// ```
    /// use pikku::{ChannelRoute, ClosedChannel, Ctx, Params};
    ///
    /// async fn bye(ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
    ///     tracing::info!(channel = ctx.channel_name(), id = ch.channel_id(), reason = %ch.reason(), "closed");
    /// }
    ///
    /// let channel = ChannelRoute::new("events", "/events").on_disconnect(bye);
    /// # let _ = channel;
    /// ```
    pub fn on_disconnect<H, M>(mut self, handler: H) -> Self
    where
        H: DisconnectHandler<S, U, O, SS, M>,
    {
        self.on_disconnect = Some(Lifecycle {
            handler: handler.erase(),
            middleware: Vec::new(),
        });
        self.described.disconnect = Some(H::types());
        self
    }

    /// Lifecycle middleware of the disconnection handler (inside global lifecycle middleware, in registration
    /// order). It wraps only [`on_disconnect`](Self::on_disconnect) and does nothing without it; its errors are
    /// logged, since the client is gone.
    ///
    /// ```
    /// use pikku::{ChannelError, ChannelRoute, ClosedChannel, Ctx, MiddlewareCtx, Next, Params, Reply};
    ///
    /// async fn timed(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     let started = std::time::Instant::now();
    ///     let result = next.run().await;
    ///     tracing::debug!(id = mw.ctx().channel_id(), elapsed = ?started.elapsed(), "cleanup done");
    ///     result
    /// }
    /// async fn cleanup(_ctx: Ctx<(), ()>, _ch: ClosedChannel<Params>) {}
    ///
    /// let channel = ChannelRoute::new("events", "/events")
    ///     .on_disconnect(cleanup)
    ///     .disconnect_middleware(timed);
    /// # let _ = channel;
    /// ```
    pub fn disconnect_middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.disconnect_middleware.push(middleware.erase());
        self
    }

    /// The default message route: a plain handler or a [`Route`]. It gets every message that no
    /// [`route`](Self::route) claims: non-object messages, objects without a routing property, and objects whose
    /// routing property names no registered route (those arrive whole, routing member included). Its result is
    /// sent as is, not wrapped in `{key: value}`.
    ///
    /// Without a default route, such messages get a `NotFoundError` frame.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// // "hi!" (a text frame that is not JSON is the JSON string "hi!") gets "HI!" back.
    /// async fn shout(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, text: String) -> String {
    ///     text.to_uppercase()
    /// }
    ///
    /// let channel = ChannelRoute::new("shout", "/shout").auth(false).on_message(shout);
    /// # let _ = channel;
    /// ```
    pub fn on_message<R, M>(mut self, route: R) -> Self
    where
        R: IntoRoute<S, U, O, SS, M>,
    {
        self.default_route = Some(route.into_route());
        self
    }

    /// A message route under routing property `property` (`"action"`) for value `value`: a plain handler or a
    /// [`Route`].
    ///
    /// A message is routed when it is a JSON object whose member `property` is the string `value`. The handler
    /// gets the object with that member removed, and a reply is `{property: value, ..}`: an object result gets
    /// the member added, `()` sends just `{property: value}`, any other value is sent as
    /// `{property: value, "result": ..}`. When several properties are used (`"action"`, `"type"`), they are tried
    /// in the order they first appear.
    ///
    /// An empty value, a value starting with the reserved `pikku-` prefix, or a (property, value) pair registered
    /// twice is a registration error, reported by [`App::channel`](crate::App::channel) with this call's line.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Create { title: String }
    ///
    /// #[derive(serde::Serialize)]
    /// struct Created { id: u32, title: String }
    ///
    /// // {"action": "create", "title": "x"} → {"action": "create", "id": 1, "title": "x"}
    /// async fn create(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Create) -> Result<Created, ChannelError> {
    ///     Ok(Created { id: 1, title: input.title })
    /// }
    /// // {"type": "ping"} → {"type": "ping", "result": "pong"}
    /// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str {
    ///     "pong"
    /// }
    ///
    /// let channel = ChannelRoute::new("events", "/events")
    ///     .route("action", "create", create)
    ///     .route("type", "ping", ping);
    /// # let _ = channel;
    /// ```
    #[track_caller]
    pub fn route<R, M>(mut self, property: &str, value: &str, route: R) -> Self
    where
        R: IntoRoute<S, U, O, SS, M>,
    {
        let location = Location::caller();
        if value.is_empty() || value.starts_with("pikku-") {
            self.errors.push((
                RegistrationError::InvalidRouteValue {
                    channel: self.name.clone(),
                    property: property.to_owned(),
                    value: value.to_owned(),
                },
                location,
            ));
            return self;
        }
        let index = match self.properties.iter().position(|p| p.name == property) {
            Some(i) => i,
            None => {
                self.properties.push(RoutingProperty {
                    name: property.to_owned(),
                    routes: Vec::new(),
                });
                self.properties.len() - 1
            }
        };
        let prop = &mut self.properties[index];
        if prop.routes.iter().any(|(v, _)| v == value) {
            self.errors.push((
                RegistrationError::DuplicateMessageRoute {
                    channel: self.name.clone(),
                    property: property.to_owned(),
                    value: value.to_owned(),
                },
                location,
            ));
            return self;
        }
        let mut route = route.into_route();
        route.location = Some(location);
        prop.routes.push((value.to_owned(), route));
        self
    }

    /// The binary handler (`async fn(Ctx<S, U>, Channel<O, Out, SS>, Bytes) -> B`, see [`BinaryHandler`]): runs
    /// for every binary frame, in order with the text messages. Returned bytes go back as a binary frame; an error
    /// becomes a (text) error frame. Binary frames are dropped and logged at debug level when the channel has no
    /// binary handler, or when it needs a session and has none; no error frame is sent. Binary frames do not
    /// pass through message middleware or permissions.
    ///
    /// ```
    /// use pikku::Bytes;
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn reverse(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, bytes: Bytes) -> Vec<u8> {
    ///     bytes.iter().rev().copied().collect()
    /// }
    ///
    /// let channel = ChannelRoute::new("files", "/files").auth(false).on_binary(reverse);
    /// # let _ = channel;
    /// ```
    pub fn on_binary<H, M>(mut self, handler: H) -> Self
    where
        H: BinaryHandler<S, U, O, SS, M>,
    {
        self.binary = Some(handler.erase());
        self.described.binary = Some(H::types());
        self
    }

    /// Whether binary frames need a session; defaults to the channel's [`auth`](Self::auth). Frames that need one
    /// and arrive without it are dropped (no error frame is sent).
    ///
    /// ```
    /// use pikku::Bytes;
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn upload(_ctx: Ctx<(), String>, _ch: Channel<Params, ()>, _bytes: Bytes) {}
    ///
    /// // Text messages are public, uploads need a session.
    /// let channel = ChannelRoute::new("files", "/files").auth(false).on_binary(upload).binary_auth(true);
    /// # let _ = channel;
    /// ```
    pub fn binary_auth(mut self, auth: bool) -> Self {
        self.binary_auth = Some(auth);
        self
    }

    /// Upgrade middleware of this channel (`async fn(UpgradeRequest<S, U>) -> Result<(), ChannelError>`, see
    /// [`UpgradeMiddleware`]), run after global upgrade middleware, in registration order, before the 101 response.
    /// The first error refuses the upgrade with its status and a JSON body; use it to authenticate from headers or
    /// cookies and seed the session.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params, UpgradeRequest};
    ///
    /// #[derive(Clone)]
    /// struct User { id: String }
    ///
    /// async fn bearer(req: UpgradeRequest<(), User>) -> Result<(), ChannelError> {
    ///     match req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
    ///         Some(token) if token == "good" => {
    ///             req.set_session(User { id: "u1".into() });
    ///             Ok(())
    ///         }
    ///         _ => Err(ChannelError::unauthorized("Missing or invalid token")),
    ///     }
    /// }
    /// async fn hello(ctx: Ctx<(), User>, _ch: Channel<Params, ()>) -> Option<String> {
    ///     ctx.session().map(|u| u.id)
    /// }
    ///
    /// let channel = ChannelRoute::new("secure", "/secure").upgrade_middleware(bearer).on_connect(hello);
    /// # let _ = channel;
    /// ```
    pub fn upgrade_middleware(mut self, middleware: impl UpgradeMiddleware<S, U>) -> Self {
        self.upgrade_middleware.push(middleware.erase());
        self
    }

    /// Message middleware applied to every message route of this channel, inside global message middleware and
    /// outside route middleware, in registration order. It does not wrap lifecycle handlers or binary frames.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, MiddlewareCtx, Next, Params, Reply};
    ///
    /// async fn read_only(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     if mw.ctx().route().is_some_and(|(_, value)| value.starts_with("delete")) {
    ///         return Err(ChannelError::forbidden("This channel is read-only"));
    ///     }
    ///     next.run().await
    /// }
    /// async fn list(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> Vec<u32> { vec![1, 2] }
    ///
    /// let channel = ChannelRoute::new("items", "/items").middleware(read_only).route("action", "list", list);
    /// # let _ = channel;
    /// ```
    pub fn middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.message_middleware.push(middleware.erase());
        self
    }

    /// A permission every message route of this channel (the default route included) must pass, in addition to
    /// the route's own permission groups. Checks run in registration order after input validation; `Ok(false)`
    /// sends `ForbiddenError` `Permission denied`, an `Err` is sent as is.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params, PermissionCtx};
    ///
    /// #[derive(Clone)]
    /// struct User { banned: bool }
    ///
    /// async fn not_banned(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
    ///     Ok(p.session().is_some_and(|u| !u.banned))
    /// }
    /// async fn post(_ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: serde_json::Value) {}
    ///
    /// let channel = ChannelRoute::new("board", "/board").permission(not_banned).route("action", "post", post);
    /// # let _ = channel;
    /// ```
    pub fn permission(mut self, permission: impl Permission<S, U>) -> Self {
        self.permissions.push(permission.erase());
        self
    }

    /// How many messages of one connection may run at once (default 1: in order). With more than one, a slow
    /// handler no longer holds up the next message, and replies follow completion order.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn lookup(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, id: u64) -> u64 { id }
    ///
    /// let channel = ChannelRoute::new("lookup", "/lookup").on_message(lookup).max_in_flight(8);
    /// # let _ = channel;
    /// ```
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        assert!(n > 0, "max_in_flight must be at least 1");
        self.max_in_flight = n;
        self
    }

    /// The reverse-RPC timeout of this channel's [`Channel::remote`](crate::Channel::remote) calls (`None`
    /// disables it); defaults to the app's [`AppConfig::rpc_timeout`](crate::AppConfig::rpc_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    ///
    /// // Clients of this channel may take a while to answer (a human confirms on screen).
    /// let channel = ChannelRoute::new("confirm", "/confirm")
    ///     .on_connect(hello)
    ///     .rpc_timeout(Some(Duration::from_secs(120)));
    /// # let _ = channel;
    /// ```
    pub fn rpc_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.rpc_timeout = Some(timeout);
        self
    }

    /// Lets the socket state (`SS`) of this channel's connections be saved between invocations, as JSON, so the
    /// channel can run statelessly (behind a gateway that invokes the app once per event, with the state in a
    /// [`ChannelStore`](crate::store::ChannelStore)). In-process nothing changes: the state is never serialized.
    ///
    /// A stateless runner refuses to start an app with a channel whose handlers use socket state without this.
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Nick(String);
    ///
    /// async fn set_nick(_ctx: Ctx<(), ()>, ch: Channel<Params, (), Nick>, nick: Nick) {
    ///     ch.set_socket_state(nick);
    /// }
    ///
    /// let channel = ChannelRoute::new("chat", "/chat").on_message(set_nick).persist_socket_state();
    /// # let _ = channel;
    /// ```
    pub fn persist_socket_state(mut self) -> Self
    where
        SS: Serialize + DeserializeOwned + Send + 'static,
    {
        self.state_codec = Some(StateCodec::of::<SS>());
        self
    }

    /// The inbound rate limit of each connection of this channel (`None`: no limit); defaults to the app's
    /// [`AppConfig::rate_limit`](crate::AppConfig::rate_limit). Binary frames and messages of routes without a
    /// limit of their own ([`Route::rate_limit`]) count against it. A message over the limit is dropped and
    /// answered with a `TooManyRequestsError` frame; a client that keeps going is closed with 1008
    /// `rate limit exceeded` (see [`RateLimit`]).
    ///
    /// ```
    /// use pikku::{Channel, ChannelRoute, Ctx, Params, RateLimit};
    ///
    /// async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: serde_json::Value) -> serde_json::Value {
    ///     input
    /// }
    ///
    /// let channel = ChannelRoute::new("echo", "/echo")
    ///     .auth(false)
    ///     .on_message(echo)
    ///     .rate_limit(RateLimit::per_second(100).burst(200).bytes_per_second(1 << 20));
    /// # let _ = channel;
    /// ```
    pub fn rate_limit(mut self, limit: impl Into<Option<RateLimit>>) -> Self {
        self.rate_limit = Some(limit.into());
        self
    }

    /// Declares that this channel's handlers call capability `C` on the client (reverse RPC), so that
    /// [`App::describe`](crate::App::describe) lists it and generated clients can type the function that answers
    /// it. Calling [`Channel::remote`](crate::Channel::remote) does not need the declaration.
    ///
    /// ```
    /// use pikku::{App, Capability, Channel, ChannelRoute, Ctx, Params, RpcError};
    ///
    /// struct GetVersion;
    /// impl Capability for GetVersion {
    ///     const NAME: &'static str = "getVersion";
    ///     type Input = ();
    ///     type Output = String;
    /// }
    ///
    /// async fn version(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<String, RpcError> {
    ///     ch.remote::<GetVersion>(()).await
    /// }
    ///
    /// let tools = ChannelRoute::new("tools", "/tools").route("action", "version", version).calls::<GetVersion>();
    /// let app = App::new(()).channel(tools);
    /// assert_eq!(app.describe().channels[0].capabilities[0].name, "getVersion");
    /// ```
    pub fn calls<C>(mut self) -> Self
    where
        C: Capability,
        C::Input: schemars::JsonSchema,
        C::Output: schemars::JsonSchema,
    {
        self.described.capabilities.push(CapabilityInfo {
            name: C::NAME,
            input: TypeInfo::typed::<C::Input>(),
            output: TypeInfo::typed::<C::Output>(),
        });
        self
    }

    /// The channel's types as registered, for `App::describe`.
    pub(crate) fn shape(&self, pattern: &RoutePattern) -> ChannelShape {
        let route_shape = |property: &str, value: &str, route: &Route<S, U, O, SS>| RouteShape {
            property: property.to_owned(),
            value: value.to_owned(),
            auth: route.auth.unwrap_or(self.auth),
            types: route.types,
            location: route.location.unwrap_or(self.location),
        };
        ChannelShape {
            name: self.name.clone(),
            route: self.route.clone(),
            params: pattern
                .segments()
                .filter_map(|segment| match segment {
                    RouteSegment::Param(name) => Some(name.to_owned()),
                    _ => None,
                })
                .collect(),
            auth: self.auth,
            location: self.location,
            opening: self.described.opening,
            connect: self.described.connect,
            disconnect: self.described.disconnect,
            message: self
                .default_route
                .as_ref()
                .map(|route| route_shape("", "", route)),
            routes: self
                .properties
                .iter()
                .flat_map(|p| {
                    p.routes
                        .iter()
                        .map(|(value, route)| route_shape(&p.name, value, route))
                })
                .collect(),
            binary: self
                .described
                .binary
                .map(|types| (self.binary_auth.unwrap_or(self.auth), types)),
            capabilities: self.described.capabilities.clone(),
            events: self.events.as_ref().map(|_| true),
        }
    }
}
