//! The application: services, channels, global middleware and limits; and its built, immutable runtime form.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::SlowConsumerPolicy;
use crate::error::RegistrationError;
use crate::handler::{ErasedBinary, ErasedConnect, ErasedDisconnect, ErasedMessage};
use crate::hub::{EventHub, HubLimits};
use crate::middleware::{
    ErasedMiddleware, ErasedPermission, ErasedUpgrade, Middleware, UpgradeMiddleware,
};
use crate::opening::RoutePattern;
use crate::wiring::{ChannelRoute, OpeningParser, Route};

/// Behaviour and limits shared by every channel of an app (semantics §11).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppConfig {
    /// Development mode: internal error frames carry a `debug` member with the error text.
    pub dev_mode: bool,
    /// Bound of each connection's outbound queue, in bytes (default 1 MiB).
    pub outbound_queue_bytes: usize,
    /// What happens when that bound is reached (default `Close`, 1008).
    pub slow_consumer: SlowConsumerPolicy,
    /// Reverse-RPC timeout (default 30 s; `None` disables it).
    pub rpc_timeout: Option<Duration>,
    /// Pending reverse calls per connection (default 64).
    pub max_pending_rpc: usize,
    /// Messages waiting per connection before the reader stops reading (default 64).
    pub inbound_queue: usize,
    /// How long in-flight handlers may run on after a close before onDisconnect (default 10 s).
    pub drain_timeout: Duration,
    /// Allowed `Origin` values; empty means every origin is allowed.
    pub allowed_origins: Vec<String>,
    /// Event-hub bounds.
    pub hub: HubLimits,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            dev_mode: false,
            outbound_queue_bytes: 1 << 20,
            slow_consumer: SlowConsumerPolicy::Close,
            rpc_timeout: Some(Duration::from_secs(30)),
            max_pending_rpc: 64,
            inbound_queue: 64,
            drain_timeout: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            hub: HubLimits::default(),
        }
    }
}

/// An application under construction: services `S`, session type `U`, channels and global middleware.
///
/// ```
/// use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
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
    hub: EventHub,
    config: AppConfig,
    channels: Vec<ChannelSpec<S, U>>,
    pending: Vec<PendingChannel<S, U>>,
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
    /// An app with services `state` and no channels.
    pub fn new(state: S) -> Self {
        let config = AppConfig::default();
        Self {
            state,
            hub: EventHub::new(config.hub),
            config,
            channels: Vec::new(),
            pending: Vec::new(),
            message_middleware: Vec::new(),
            lifecycle_middleware: Vec::new(),
            upgrade_middleware: Vec::new(),
        }
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: AppConfig) -> Self {
        if config.hub.max_subscriptions_per_channel != self.config.hub.max_subscriptions_per_channel
            || config.hub.max_topic_bytes != self.config.hub.max_topic_bytes
        {
            self.hub = EventHub::new(config.hub);
        }
        self.config = config;
        self
    }

    /// Changes the configuration in place.
    pub fn configure(self, f: impl FnOnce(&mut AppConfig)) -> Self {
        let mut config = self.config.clone();
        f(&mut config);
        self.config(config)
    }

    /// The event hub, for publishing from outside any connection.
    #[must_use]
    pub fn hub(&self) -> EventHub {
        self.hub.clone()
    }

    /// Adds a channel.
    ///
    /// # Panics
    /// On a registration error (semantics §4.2), with a message naming the user's line. Use
    /// [`try_channel`](Self::try_channel) to get the error as a value.
    #[track_caller]
    pub fn channel<O, SS>(self, channel: ChannelRoute<S, U, O, SS>) -> Self {
        match self.try_channel(channel) {
            Ok(app) => app,
            Err((err, location)) => panic!("{err} (registered at {location})"),
        }
    }

    /// Adds a channel, or returns why it cannot be registered and where it was defined.
    ///
    /// # Errors
    /// Duplicate names, routes of the same shape, invalid patterns or route values.
    pub fn try_channel<O, SS>(
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
        self.pending
            .push(PendingChannel::from_route(channel, pattern));
        Ok(self)
    }

    /// Global message middleware: wraps every message route of every channel, outermost.
    pub fn middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.message_middleware.push(middleware.erase());
        self
    }

    /// Global lifecycle middleware: wraps every onConnect and onDisconnect.
    pub fn lifecycle_middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.lifecycle_middleware.push(middleware.erase());
        self
    }

    /// Global upgrade middleware: runs before each channel's own.
    pub fn upgrade_middleware(mut self, middleware: impl UpgradeMiddleware<S, U>) -> Self {
        self.upgrade_middleware.push(middleware.erase());
        self
    }

    /// Builds the immutable runtime that runners serve.
    #[must_use]
    pub fn into_runtime(mut self) -> Arc<AppRuntime<S, U>> {
        let pending = std::mem::take(&mut self.pending);
        for channel in pending {
            let spec = channel.build(&self);
            self.channels.push(spec);
        }
        // Literal routes win over parameterised ones; among each kind, registration order (protocol §2.4).
        let mut order: Vec<usize> = (0..self.channels.len()).collect();
        order.sort_by_key(|&i| !self.channels[i].pattern.is_literal());
        Arc::new(AppRuntime {
            state: self.state,
            hub: self.hub,
            config: self.config,
            channels: self.channels,
            match_order: order,
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
    fn from_route<O, SS>(channel: ChannelRoute<S, U, O, SS>, pattern: RoutePattern) -> Self {
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
}

struct ErasedRoute<S, U> {
    handler: ErasedMessage<S, U>,
    auth: Option<bool>,
    middleware: Vec<ErasedMiddleware<S, U>>,
    permission_groups: Vec<Vec<ErasedPermission<S, U>>>,
}

impl<S, U, O, SS> From<Route<S, U, O, SS>> for ErasedRoute<S, U> {
    fn from(route: Route<S, U, O, SS>) -> Self {
        Self {
            handler: route.handler,
            auth: route.auth,
            middleware: route.middleware,
            permission_groups: route.permission_groups,
        }
    }
}

impl<S, U, O, SS> From<ChannelRoute<S, U, O, SS>> for ErasedChannel<S, U> {
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
        let make_route = |prop: Option<(Arc<str>, Arc<str>)>, r: ErasedRoute<S, U>| RouteSpec {
            name: prop,
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
        }
    }
}

/// The permissions of one route, as stored (an implementation detail of the handler traits).
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct PermissionPlan<S, U> {
    /// Channel permissions: all must pass.
    pub(crate) all: Vec<ErasedPermission<S, U>>,
    /// Route groups: every check of at least one group must pass (no groups: allowed).
    pub(crate) any_group: Vec<Vec<ErasedPermission<S, U>>>,
}

pub(crate) struct RouteSpec<S, U> {
    /// (routing property, value); `None` for the default route.
    pub(crate) name: Option<(Arc<str>, Arc<str>)>,
    pub(crate) handler: ErasedMessage<S, U>,
    pub(crate) auth: bool,
    pub(crate) chain: Arc<[ErasedMiddleware<S, U>]>,
    pub(crate) permissions: Option<Arc<PermissionPlan<S, U>>>,
}

pub(crate) struct ChannelSpec<S, U> {
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
}

/// The built application that runners serve: immutable, shared by every connection.
pub struct AppRuntime<S, U> {
    state: S,
    hub: EventHub,
    config: AppConfig,
    pub(crate) channels: Vec<ChannelSpec<S, U>>,
    pub(crate) match_order: Vec<usize>,
}

impl<S, U> fmt::Debug for AppRuntime<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRuntime")
            .field(
                "channels",
                &self.channels.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, U> AppRuntime<S, U> {
    /// The application's services.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The event hub.
    pub fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The names and route patterns of the registered channels.
    pub fn channel_routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.channels.iter().map(|c| (&*c.name, c.pattern.as_str()))
    }
}
