//! The application: services, channels, global middleware and limits; and its built, immutable runtime form.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::Registry;
pub use crate::config::AppConfig;
use crate::ctx::AppShared;
use crate::describe::{describe_app, AppDescription, ChannelShape};
use crate::error::RegistrationError;
use crate::events::EventsSpec;
use crate::handler::{ErasedBinary, ErasedConnect, ErasedDisconnect, ErasedMessage};
use crate::hub::{EventHub, HubDriver};
use crate::middleware::{
    ErasedMiddleware, ErasedPermission, ErasedUpgrade, Middleware, UpgradeMiddleware,
};
use crate::opening::RoutePattern;
use crate::permission::PermissionPlan;
use crate::rate_limit::RateLimit;
use crate::socket_state::StatePersistence;
use crate::telemetry::{self, handles::ChannelMetrics, handles::RouteMetrics};
use crate::wiring::{ChannelRoute, OpeningParser, Route};

/// An application under construction: services `S`, session type `U`, channels and global middleware.
///
/// `S` is whatever your handlers share (database pools, configuration); they read it with
/// [`Ctx::state`](crate::Ctx::state). `U` is the session type a connection may carry (default `()`); because it
/// is a type parameter, a handler asking for the wrong session type does not compile. Build the app with the
/// consuming builder methods below, then hand it to a runner (`pikku::ChannelServer::new` or
/// `pikku::serve`), which calls [`into_runtime`](App::into_runtime) once and serves the result.
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
///
/// #[derive(Clone)]
/// struct Services { greeting: &'static str }
///
/// async fn hello(ctx: Ctx<Services, ()>, _ch: Channel<Params, ()>) -> &'static str {
///     ctx.state().greeting
/// }
///
/// let app = App::new(Services { greeting: "hello!" })
///     .channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let hub = app.hub(); // usable outside any connection
/// # let _ = hub;
/// ```
#[must_use = "an app does nothing until it is served"]
pub struct App<S, U = ()> {
    state: S,
    registry: Registry,
    hub: EventHub,
    config: AppConfig,
    channels: Vec<ChannelSpec<S, U>>,
    pending: Vec<PendingChannel<S, U>>,
    /// Every channel's types, for [`describe`](Self::describe).
    shapes: Vec<ChannelShape>,
    require_schemas: bool,
    message_middleware: Vec<ErasedMiddleware<S, U>>,
    lifecycle_middleware: Vec<ErasedMiddleware<S, U>>,
    upgrade_middleware: Vec<ErasedUpgrade<S, U>>,
}

impl<S, U> fmt::Debug for App<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field(
                "channels",
                &self.pending.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, U> App<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// An app with services `state`, the default [`AppConfig`], no channels and no middleware.
    ///
    /// The session type `U` is usually inferred from the handlers' [`Ctx`](crate::Ctx); name it
    /// (`App::<S, User>::new(..)`) when no handler mentions it.
    ///
    /// ```
    /// use pikku::App;
    ///
    /// #[derive(Clone)]
    /// struct User { id: String }
    ///
    /// let app = App::<_, User>::new(vec!["shared", "services"]);
    /// # let _ = app;
    /// ```
    pub fn new(state: S) -> Self {
        let config = AppConfig::default();
        let registry = Registry::new();
        Self {
            state,
            hub: EventHub::with_registry(config.hub, registry.clone()),
            registry,
            config,
            channels: Vec::new(),
            pending: Vec::new(),
            shapes: Vec::new(),
            require_schemas: false,
            message_middleware: Vec::new(),
            lifecycle_middleware: Vec::new(),
            upgrade_middleware: Vec::new(),
        }
    }

    /// Replaces the whole configuration.
    ///
    /// The [`AppConfig::hub`] limits apply to the app's one [`EventHub`], including handles taken earlier with
    /// [`hub`](Self::hub).
    ///
    /// ```
    /// use pikku::{App, AppConfig};
    ///
    /// let mut config = AppConfig::default();
    /// config.dev_mode = true;
    /// config.hub.max_topic_bytes = 64;
    /// let app: App<()> = App::new(()).config(config);
    /// # let _ = app;
    /// ```
    pub fn config(mut self, config: AppConfig) -> Self {
        self.hub.set_limits(config.hub);
        self.config = config;
        self
    }

    /// Changes some fields of the configuration, keeping the others; the closure gets the current values.
    ///
    /// This is the usual way to configure an app, since [`AppConfig`] is `#[non_exhaustive]`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pikku::{App, AppConfig, SlowConsumerPolicy};
    ///
    /// let app: App<()> = App::new(()).configure(|config: &mut AppConfig| {
    ///     config.outbound_queue_bytes = 64 * 1024;
    ///     config.slow_consumer = SlowConsumerPolicy::Drop;
    ///     config.rpc_timeout = Some(Duration::from_secs(5));
    /// });
    /// # let _ = app;
    /// ```
    pub fn configure(self, f: impl FnOnce(&mut AppConfig)) -> Self {
        let mut config = self.config.clone();
        f(&mut config);
        self.config(config)
    }

    /// The event hub, for publishing from outside any connection (HTTP handlers, background jobs).
    ///
    /// The returned handle is a cheap clone of the hub the app's connections use.
    ///
    /// ```
    /// use pikku::App;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app: App<()> = App::new(());
    /// let hub = app.hub();
    /// // A job could publish like this; with no subscribers yet it reaches nobody.
    /// let delivered = hub.publish("news", None, &serde_json::json!({"headline": "hi"})).await.unwrap();
    /// assert_eq!(delivered, 0);
    /// # });
    /// ```
    #[must_use]
    pub fn hub(&self) -> EventHub {
        self.hub.clone()
    }

    /// Links the app's hub to the hubs of other processes through `driver`, so that publications reach
    /// subscribers on every node. Backend crates provide drivers (Redis, NATS, PostgreSQL); the facade also
    /// picks one from a URL. Handles taken earlier with [`hub`](Self::hub) use it too.
    ///
    /// ```
    /// use pikku::hub::LocalBus;
    /// use pikku::App;
    ///
    /// // Two apps in one process sharing topics; across processes, use a broker's driver instead.
    /// let bus = LocalBus::new();
    /// let first: App<()> = App::new(()).hub_driver(bus.node());
    /// let second: App<()> = App::new(()).hub_driver(bus.node());
    /// # let _ = (first, second);
    /// ```
    ///
    /// # Panics
    /// When the app already has a driver.
    #[track_caller]
    pub fn hub_driver(self, driver: impl HubDriver) -> Self {
        self.hub.set_driver(std::sync::Arc::new(driver));
        self
    }

    /// Adds a channel definition. Channels are matched against the upgrade path with literal routes first, then
    /// parameterised ones, each kind in registration order.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// let app = App::new(())
    ///     .channel(ChannelRoute::new("events", "/events").on_connect(hello))
    ///     .channel(ChannelRoute::new("rooms", "/rooms/:roomId").on_connect(hello));
    /// # let _ = app;
    /// ```
    ///
    /// # Panics
    /// On a registration error: a duplicate channel name, a route of the same shape as an earlier
    /// channel's, an invalid route pattern, or an invalid or duplicate message route. The message names the
    /// offending `ChannelRoute::new` or `.route(..)` line. Use [`try_channel`](Self::try_channel) to get the
    /// error as a value.
    #[track_caller]
    pub fn channel<O, SS: 'static>(self, channel: ChannelRoute<S, U, O, SS>) -> Self {
        match self.try_channel(channel) {
            Ok(app) => app,
            Err((err, location)) => panic!("{err} (registered at {location})"),
        }
    }

    /// Adds a channel, or returns why it cannot be registered and where: the location is the
    /// [`ChannelRoute::new`] call, or the `.route(..)` call for an error in a message route.
    ///
    /// Use it instead of [`channel`](Self::channel) when channel definitions come from data (plugins,
    /// configuration) and a bad one should be reported rather than panic.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params, RegistrationError};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("a", "/rooms/:id").on_connect(hello));
    /// // Same shape as `/rooms/:id`, so it could never be reached.
    /// let (err, location) = app
    ///     .try_channel(ChannelRoute::new("b", "/rooms/:roomId").on_connect(hello))
    ///     .unwrap_err();
    /// assert_eq!(err, RegistrationError::DuplicateRoute { first: "a".into(), second: "b".into() });
    /// eprintln!("{err} (defined at {location})");
    /// ```
    ///
    /// # Errors
    /// The first [`RegistrationError`] of the definition: an empty, reserved (`pikku-…`) or duplicate message route
    /// (recorded by `.route(..)`), an invalid route pattern, a channel name already registered, or a route of the
    /// same shape as an earlier channel's. The app is consumed either way.
    pub fn try_channel<O, SS: 'static>(
        mut self,
        channel: ChannelRoute<S, U, O, SS>,
    ) -> Result<Self, (RegistrationError, &'static Location<'static>)> {
        if let Some(err) = channel.errors.first() {
            return Err(err.clone());
        }
        let location = channel.location;
        let pattern = RoutePattern::parse(&channel.route).map_err(|e| (e, location))?;
        for existing in &self.pending {
            if existing.name == channel.name {
                return Err((
                    RegistrationError::DuplicateChannelName(channel.name.clone()),
                    location,
                ));
            }
            if existing.pattern.same_shape(&pattern) {
                return Err((
                    RegistrationError::DuplicateRoute {
                        first: existing.name.clone(),
                        second: channel.name.clone(),
                    },
                    location,
                ));
            }
        }
        let shape = channel.shape(&pattern);
        if self.require_schemas {
            if let Some((missing, location)) = shape.first_undescribed() {
                return Err((RegistrationError::Undescribed { missing }, location));
            }
        }
        self.shapes.push(shape);
        self.pending
            .push(PendingChannel::from_route(channel, pattern));
        Ok(self)
    }

    /// Requires every handler of every channel to be registered with [`typed`](crate::typed), so that
    /// [`describe`](Self::describe) has a schema for each type: a channel with an undescribed type is refused like
    /// any other registration error, naming the type and the line of its `.route(..)` (or of its
    /// `ChannelRoute::new`). Applies to channels added before and after this call.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params, RegistrationError};
    ///
    /// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
    ///
    /// let (err, _line) = App::new(())
    ///     .require_schemas()
    ///     .try_channel(ChannelRoute::new("a", "/a").route("action", "ping", ping))
    ///     .unwrap_err();
    /// assert_eq!(err, RegistrationError::Undescribed { missing: "a: opening data".into() });
    /// let ok = App::new(()).require_schemas().channel(ChannelRoute::new("a", "/a").route("action", "ping", pikku::typed(ping)));
    /// # let _ = ok;
    /// ```
    ///
    /// # Panics
    /// When a channel added earlier has an undescribed type; the message names it and where it was registered.
    #[track_caller]
    pub fn require_schemas(mut self) -> Self {
        for shape in &self.shapes {
            if let Some((missing, location)) = shape.first_undescribed() {
                let err = RegistrationError::Undescribed { missing };
                panic!("{err} (registered at {location})");
            }
        }
        self.require_schemas = true;
        self
    }

    /// Every channel of the app with the types its handlers take and return, and JSON Schemas for the types of
    /// handlers registered with [`typed`](crate::typed): the input of client generators such as `pikku-codegen`.
    /// The schemas are computed by this call; registration only records the types.
    ///
    /// ```
    /// use pikku::{typed, App, Channel, ChannelRoute, Ctx, Params};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Move { x: i32, y: i32 }
    ///
    /// async fn step(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, m: Move) -> i32 { m.x + m.y }
    ///
    /// let app = App::new(()).channel(ChannelRoute::new("game", "/games/:id").route("type", "move", typed(step)));
    /// let description = app.describe();
    /// assert_eq!(description.channels[0].params, ["id"]);
    /// let json = serde_json::to_string_pretty(&description).unwrap();
    /// assert!(json.contains("\"$ref\": \"#/$defs/Move\""));
    /// ```
    #[must_use]
    pub fn describe(&self) -> AppDescription {
        describe_app(self.shapes.iter())
    }

    /// Global message middleware: wraps every message route of every channel, outermost (before channel and
    /// route middleware, in registration order). It applies to channels added before and after this call, but
    /// not to onConnect and onDisconnect (use [`lifecycle_middleware`](Self::lifecycle_middleware)).
    ///
    /// ```
    /// use pikku::{App, ChannelError, MiddlewareCtx, Next, Reply};
    ///
    /// async fn timing(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     let started = std::time::Instant::now();
    ///     let reply = next.run().await;
    ///     tracing::debug!(route = ?mw.ctx().route(), elapsed = ?started.elapsed(), "message handled");
    ///     reply
    /// }
    ///
    /// let app: App<()> = App::new(()).middleware(timing);
    /// # let _ = app;
    /// ```
    pub fn middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.message_middleware.push(middleware.erase());
        self
    }

    /// Global lifecycle middleware: wraps every onConnect and onDisconnect, outside the channel's own
    /// [`connect_middleware`](ChannelRoute::connect_middleware) and
    /// [`disconnect_middleware`](ChannelRoute::disconnect_middleware). An error it returns around onConnect is
    /// sent to the client as an error frame; around onDisconnect it is only logged.
    ///
    /// ```
    /// use pikku::{App, ChannelError, MiddlewareCtx, Next, Reply};
    /// use pikku::core::middleware::Invocation;
    ///
    /// async fn audit(mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
    ///     let what = if mw.invocation() == Invocation::Connect { "connected" } else { "disconnected" };
    ///     tracing::info!(channel_id = mw.ctx().channel_id(), "{what}");
    ///     next.run().await
    /// }
    ///
    /// let app: App<()> = App::new(()).lifecycle_middleware(audit);
    /// # let _ = app;
    /// ```
    pub fn lifecycle_middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.lifecycle_middleware.push(middleware.erase());
        self
    }

    /// Global upgrade middleware: runs for every channel's upgrade, before the channel's own
    /// [`upgrade_middleware`](ChannelRoute::upgrade_middleware), after the route, origin and opening-data checks.
    /// An error refuses the upgrade with its status and a JSON body; it can also seed the session.
    ///
    /// ```
    /// use pikku::{App, ChannelError, UpgradeRequest};
    ///
    /// async fn no_bots(req: UpgradeRequest<(), ()>) -> Result<(), ChannelError> {
    ///     match req.header("user-agent") {
    ///         Some(agent) if agent.contains("bot") => Err(ChannelError::forbidden("Bots are not welcome")),
    ///         _ => Ok(()),
    ///     }
    /// }
    ///
    /// let app: App<()> = App::new(()).upgrade_middleware(no_bots);
    /// # let _ = app;
    /// ```
    pub fn upgrade_middleware(mut self, middleware: impl UpgradeMiddleware<S, U>) -> Self {
        self.upgrade_middleware.push(middleware.erase());
        self
    }

    /// Builds the immutable runtime that runners serve: every channel gets its global middleware folded in and its
    /// routes put into lookup tables. Runners call this for you (`ChannelServer::new`); call it yourself to drive
    /// the pipeline without a server (see [`runtime`](crate::runtime)). With metrics on
    /// ([`telemetry::enable`]), this is also where every channel's and route's metric handles are resolved.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// let rt = App::new(())
    ///     .channel(ChannelRoute::new("events", "/events").on_connect(hello))
    ///     .into_runtime();
    /// assert_eq!(rt.channel_routes().collect::<Vec<_>>(), [("events", "/events")]);
    /// ```
    #[must_use]
    pub fn into_runtime(mut self) -> Arc<AppRuntime<S, U>> {
        let pending = std::mem::take(&mut self.pending);
        for channel in pending {
            let spec = channel.build(&self);
            self.channels.push(spec);
        }
        if telemetry::is_enabled() {
            for spec in &mut self.channels {
                spec.attach_metrics();
            }
            self.hub.init_metrics();
        }
        // Literal routes win over parameterised ones; among each kind, registration order.
        let mut order: Vec<usize> = (0..self.channels.len()).collect();
        order.sort_by_key(|&i| !self.channels[i].pattern.is_literal());
        Arc::new(AppRuntime {
            shared: Arc::new(AppShared {
                state: self.state,
                registry: self.registry,
                hub: self.hub,
                config: self.config,
            }),
            channels: self.channels,
            match_order: order,
            shapes: self.shapes,
        })
    }
}

/// A lifecycle handler with its own middleware.
type WithMiddleware<H, S, U> = (H, Vec<ErasedMiddleware<S, U>>);
/// A lifecycle handler with its whole middleware chain (global, then its own).
pub(crate) type WithChain<H, S, U> = (H, Arc<[ErasedMiddleware<S, U>]>);
/// The routes of one routing property, by value, in registration order.
type NamedRoutes<S, U> = Vec<(String, ErasedRoute<S, U>)>;
/// The routes of one routing property, by value.
pub(crate) type RouteTable<S, U> = HashMap<Arc<str>, RouteSpec<S, U>>;

/// A channel definition with its handlers erased but global middleware not yet folded in.
struct PendingChannel<S, U> {
    name: String,
    pattern: RoutePattern,
    erased: ErasedChannel<S, U>,
}

impl<S, U> PendingChannel<S, U> {
    fn from_route<O, SS: 'static>(
        channel: ChannelRoute<S, U, O, SS>,
        pattern: RoutePattern,
    ) -> Self {
        Self {
            name: channel.name.clone(),
            pattern,
            erased: ErasedChannel::from(channel),
        }
    }

    fn build(self, app: &App<S, U>) -> ChannelSpec<S, U> {
        self.erased.build(app, self.pattern)
    }
}

/// A `ChannelRoute` without its `O`/`SS` type parameters.
struct ErasedChannel<S, U> {
    name: String,
    auth: bool,
    opening: OpeningParser,
    on_connect: Option<WithMiddleware<ErasedConnect<S, U>, S, U>>,
    on_disconnect: Option<WithMiddleware<ErasedDisconnect<S, U>, S, U>>,
    default_route: Option<ErasedRoute<S, U>>,
    properties: Vec<(String, NamedRoutes<S, U>)>,
    binary: Option<ErasedBinary<S, U>>,
    binary_auth: Option<bool>,
    upgrade_middleware: Vec<ErasedUpgrade<S, U>>,
    message_middleware: Vec<ErasedMiddleware<S, U>>,
    permissions: Vec<ErasedPermission<S, U>>,
    max_in_flight: usize,
    rpc_timeout: Option<Option<Duration>>,
    rate_limit: Option<Option<RateLimit>>,
    events: Option<EventsSpec<S, U>>,
    socket_state: StatePersistence,
}

struct ErasedRoute<S, U> {
    handler: ErasedMessage<S, U>,
    auth: Option<bool>,
    middleware: Vec<ErasedMiddleware<S, U>>,
    permission_groups: Vec<Vec<ErasedPermission<S, U>>>,
    rate_limit: Option<Option<RateLimit>>,
}

impl<S, U, O, SS> From<Route<S, U, O, SS>> for ErasedRoute<S, U> {
    fn from(route: Route<S, U, O, SS>) -> Self {
        Self {
            handler: route.handler,
            auth: route.auth,
            middleware: route.middleware,
            permission_groups: route.permission_groups,
            rate_limit: route.rate_limit,
        }
    }
}

impl<S, U, O, SS: 'static> From<ChannelRoute<S, U, O, SS>> for ErasedChannel<S, U> {
    fn from(c: ChannelRoute<S, U, O, SS>) -> Self {
        let mut connect_mw = c.connect_middleware;
        let on_connect = c.on_connect.map(|l| {
            connect_mw.splice(0..0, l.middleware);
            (l.handler, connect_mw)
        });
        let mut disconnect_mw = c.disconnect_middleware;
        let on_disconnect = c.on_disconnect.map(|l| {
            disconnect_mw.splice(0..0, l.middleware);
            (l.handler, disconnect_mw)
        });
        Self {
            name: c.name,
            auth: c.auth,
            opening: c.opening,
            on_connect,
            on_disconnect,
            default_route: c.default_route.map(Into::into),
            properties: c
                .properties
                .into_iter()
                .map(|p| {
                    (
                        p.name,
                        p.routes.into_iter().map(|(v, r)| (v, r.into())).collect(),
                    )
                })
                .collect(),
            binary: c.binary,
            binary_auth: c.binary_auth,
            upgrade_middleware: c.upgrade_middleware,
            message_middleware: c.message_middleware,
            permissions: c.permissions,
            max_in_flight: c.max_in_flight,
            rpc_timeout: c.rpc_timeout,
            rate_limit: c.rate_limit,
            events: c.events,
            socket_state: c.state_codec.map_or_else(
                StatePersistence::default_for::<SS>,
                StatePersistence::Persisted,
            ),
        }
    }
}

impl<S, U> ErasedChannel<S, U> {
    fn build(self, app: &App<S, U>, pattern: RoutePattern) -> ChannelSpec<S, U> {
        let chain = |parts: &[&[ErasedMiddleware<S, U>]]| -> Arc<[ErasedMiddleware<S, U>]> {
            parts.iter().flat_map(|p| p.iter().cloned()).collect()
        };
        let channel_auth = self.auth;
        let channel_perms = self.permissions;
        // Rate limits: the channel's (or the app's) in one slot, each route override in a slot of its own.
        let mut limits = Vec::new();
        let channel_slot = self
            .rate_limit
            .unwrap_or(app.config.rate_limit)
            .map(|limit| {
                limits.push(limit);
                0
            });
        let mut route_limits = false;
        let mut make_route = |prop: Option<(Arc<str>, Arc<str>)>, r: ErasedRoute<S, U>| RouteSpec {
            limit_slot: match r.rate_limit {
                None => channel_slot,
                Some(own) => {
                    route_limits = true;
                    own.map(|limit| {
                        limits.push(limit);
                        limits.len() - 1
                    })
                }
            },
            name: prop,
            metrics: None,
            handler: r.handler,
            auth: r.auth.unwrap_or(channel_auth),
            chain: chain(&[
                &app.message_middleware,
                &self.message_middleware,
                &r.middleware,
            ]),
            permissions: if channel_perms.is_empty() && r.permission_groups.is_empty() {
                None
            } else {
                Some(Arc::new(PermissionPlan {
                    all: channel_perms.clone(),
                    any_group: r.permission_groups,
                }))
            },
        };
        let default_route = self.default_route.map(|r| make_route(None, r));
        let properties = self
            .properties
            .into_iter()
            .map(|(prop, routes)| {
                let prop: Arc<str> = Arc::from(prop);
                let routes = routes
                    .into_iter()
                    .map(|(value, r)| {
                        let value: Arc<str> = Arc::from(value);
                        (value.clone(), make_route(Some((prop.clone(), value)), r))
                    })
                    .collect();
                (prop, routes)
            })
            .collect();
        ChannelSpec {
            limits: limits.into_boxed_slice(),
            channel_slot,
            route_limits,
            name: Arc::from(self.name),
            pattern,
            opening: self.opening,
            on_connect: self
                .on_connect
                .map(|(h, mw)| (h, chain(&[&app.lifecycle_middleware, &mw]))),
            on_disconnect: self
                .on_disconnect
                .map(|(h, mw)| (h, chain(&[&app.lifecycle_middleware, &mw]))),
            default_route,
            properties,
            binary: self.binary,
            binary_auth: self.binary_auth.unwrap_or(channel_auth),
            upgrade: app
                .upgrade_middleware
                .iter()
                .chain(&self.upgrade_middleware)
                .cloned()
                .collect(),
            max_in_flight: self.max_in_flight,
            rpc_timeout: self.rpc_timeout.unwrap_or(app.config.rpc_timeout),
            metrics: None,
            events: self.events,
            socket_state: self.socket_state,
        }
    }
}

pub(crate) struct RouteSpec<S, U> {
    /// The rate-limit slot its messages count against (see [`ChannelSpec::limits`]); `None`: no limit.
    pub(crate) limit_slot: Option<usize>,
    /// (routing property, value); `None` for the default route.
    pub(crate) name: Option<(Arc<str>, Arc<str>)>,
    /// Resolved when the app is built with metrics on.
    pub(crate) metrics: Option<Arc<RouteMetrics>>,
    pub(crate) handler: ErasedMessage<S, U>,
    pub(crate) auth: bool,
    pub(crate) chain: Arc<[ErasedMiddleware<S, U>]>,
    pub(crate) permissions: Option<Arc<PermissionPlan<S, U>>>,
}

pub(crate) struct ChannelSpec<S, U> {
    /// The rate limits of the channel, by slot; each connection keeps one bucket per slot.
    pub(crate) limits: Box<[RateLimit]>,
    /// The slot of the channel-wide limit (binary frames, unknown routes, routes without their own).
    pub(crate) channel_slot: Option<usize>,
    /// Whether some route has a limit other than the channel's, so arrivals must look up their route.
    pub(crate) route_limits: bool,
    pub(crate) name: Arc<str>,
    pub(crate) pattern: RoutePattern,
    pub(crate) opening: OpeningParser,
    pub(crate) on_connect: Option<WithChain<ErasedConnect<S, U>, S, U>>,
    pub(crate) on_disconnect: Option<WithChain<ErasedDisconnect<S, U>, S, U>>,
    pub(crate) default_route: Option<RouteSpec<S, U>>,
    pub(crate) properties: Vec<(Arc<str>, RouteTable<S, U>)>,
    pub(crate) binary: Option<ErasedBinary<S, U>>,
    pub(crate) binary_auth: bool,
    pub(crate) upgrade: Vec<ErasedUpgrade<S, U>>,
    pub(crate) max_in_flight: usize,
    pub(crate) rpc_timeout: Option<Duration>,
    /// Resolved when the app is built with metrics on.
    pub(crate) metrics: Option<Box<ChannelMetrics>>,
    /// The topic streams of an events channel, served at `<pattern>/<topic>`.
    pub(crate) events: Option<EventsSpec<S, U>>,
    /// Whether and how the socket state can be saved between invocations (stateless runners).
    pub(crate) socket_state: StatePersistence,
}

impl<S, U> ChannelSpec<S, U> {
    /// Resolves the metric handles of the channel and its routes. Called once per channel when the app is built,
    /// and only when metrics are on.
    fn attach_metrics(&mut self) {
        let channel = ChannelMetrics::new(
            &self.name,
            self.on_connect.is_some(),
            self.binary.is_some(),
            self.on_disconnect.is_some(),
        );
        let routes = self.default_route.iter_mut().chain(
            self.properties
                .iter_mut()
                .flat_map(|(_, routes)| routes.values_mut()),
        );
        for route in routes {
            let label = match &route.name {
                Some((property, value)) => format!("{property}:{value}"),
                None => "default".to_owned(),
            };
            route.metrics = Some(Arc::new(RouteMetrics::new(
                &self.name,
                label,
                &channel.errors,
            )));
        }
        self.metrics = Some(Box::new(channel));
    }
}

/// The built application that runners serve: immutable, shared by every connection.
///
/// Made by [`App::into_runtime`]. Runners use it to admit upgrades
/// ([`AppRuntime::admit`](AppRuntime::admit), in [`runtime`](crate::runtime)) and to read the services, hub and
/// configuration; application code reaches it through `ChannelServer::runtime` when it needs those outside a
/// handler.
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
///
/// async fn hello(_ctx: Ctx<&'static str, ()>, _ch: Channel<Params, ()>) {}
///
/// let rt = App::new("services")
///     .configure(|c| c.dev_mode = true)
///     .channel(ChannelRoute::new("events", "/events").on_connect(hello))
///     .channel(ChannelRoute::new("rooms", "/rooms/:roomId").on_connect(hello))
///     .into_runtime();
/// assert_eq!(*rt.state(), "services");
/// assert!(rt.config().dev_mode);
/// assert!(rt.registry().is_empty());
/// assert_eq!(
///     rt.channel_routes().collect::<Vec<_>>(),
///     [("events", "/events"), ("rooms", "/rooms/:roomId")],
/// );
/// ```
pub struct AppRuntime<S, U> {
    pub(crate) shared: Arc<AppShared<S>>,
    pub(crate) channels: Vec<ChannelSpec<S, U>>,
    pub(crate) match_order: Vec<usize>,
    shapes: Vec<ChannelShape>,
}

impl<S, U> fmt::Debug for AppRuntime<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRuntime")
            .field(
                "channels",
                &self.channels.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, U> AppRuntime<S, U> {
    /// The description of the app's channels, as [`App::describe`] gives it before the app is built.
    ///
    /// ```
    /// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
    ///
    /// let rt = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello)).into_runtime();
    /// assert_eq!(rt.describe().channels[0].name, "events");
    /// ```
    #[must_use]
    pub fn describe(&self) -> AppDescription {
        describe_app(self.shapes.iter())
    }

    /// The application's services, as given to [`App::new`] (handlers read them with
    /// [`Ctx::state`](crate::Ctx::state)).
    #[must_use]
    pub fn state(&self) -> &S {
        &self.shared.state
    }

    /// The event hub shared by every connection of this app.
    #[must_use]
    pub fn hub(&self) -> &EventHub {
        &self.shared.hub
    }

    /// The open connections of this app in this process (runners add and remove them; the server's heartbeat
    /// sweep and shutdown walk them).
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The configuration the app was built with.
    #[must_use]
    pub fn config(&self) -> &AppConfig {
        &self.shared.config
    }

    /// The names and route patterns of the registered channels, in registration order (for logs and health
    /// pages; matching tries literal routes first).
    pub fn channel_routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.channels.iter().map(|c| (&*c.name, c.pattern.as_str()))
    }

    /// The parsed route patterns of the registered channels, in registration order: what a runner needs to
    /// mount them in its own router.
    pub fn channel_patterns(&self) -> impl Iterator<Item = &RoutePattern> {
        self.channels.iter().map(|c| &c.pattern)
    }

    /// The route patterns of the events channels (built with
    /// [`EventsChannel`](crate::events::EventsChannel)), whose topic streams are at `<pattern>/<topic>`: what a
    /// runner mounts besides [`channel_patterns`](Self::channel_patterns).
    ///
    /// ```
    /// use pikku::events::EventsChannel;
    /// use pikku::App;
    ///
    /// let rt = App::new(()).channel(EventsChannel::<(), ()>::new("/realtime/events").build()).into_runtime();
    /// let streams: Vec<&str> = rt.stream_patterns().map(|p| p.as_str()).collect();
    /// assert_eq!(streams, ["/realtime/events"]);
    /// ```
    pub fn stream_patterns(&self) -> impl Iterator<Item = &RoutePattern> {
        self.channels
            .iter()
            .filter(|c| c.events.is_some())
            .map(|c| &c.pattern)
    }
}
