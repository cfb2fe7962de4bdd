//! Channel definitions: a name, a route and the handlers, routes, auth, middleware and permissions
//! (semantics §4.1).
//!
//! ```
//! use pikku_core::{App, Channel, ChannelRoute, Ctx, Params, Route};
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

use crate::error::{ChannelError, RegistrationError};
use crate::handler::{
    BinaryHandler, ConnectHandler, DisconnectHandler, ErasedBinary, ErasedConnect,
    ErasedDisconnect, ErasedMessage, MessageHandler,
};
use crate::middleware::{
    ErasedMiddleware, ErasedPermission, ErasedUpgrade, Middleware, Permission, UpgradeMiddleware,
};
use crate::opening::{opening_from_params, Params};

pub(crate) type OpeningParser = fn(Params) -> Result<Arc<dyn Any + Send + Sync>, ChannelError>;

fn parse_opening<O: DeserializeOwned + Send + Sync + 'static>(
    params: Params,
) -> Result<Arc<dyn Any + Send + Sync>, ChannelError> {
    opening_from_params::<O>(params).map(|o| Arc::new(o) as Arc<dyn Any + Send + Sync>)
}

/// One message route: a handler plus its own `auth`, middleware and permissions.
#[must_use = "a route does nothing until it is added to a channel"]
pub struct Route<S, U, O, SS> {
    pub(crate) handler: ErasedMessage<S, U>,
    pub(crate) auth: Option<bool>,
    pub(crate) middleware: Vec<ErasedMiddleware<S, U>>,
    pub(crate) permission_groups: Vec<Vec<ErasedPermission<S, U>>>,
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
    /// A route running `handler`.
    pub fn new<H, M>(handler: H) -> Self
    where
        H: MessageHandler<S, U, O, SS, M>,
    {
        Self {
            handler: handler.erase(),
            auth: None,
            middleware: Vec::new(),
            permission_groups: Vec::new(),
            _marker: PhantomData,
        }
    }

    /// Whether this route needs a session; defaults to the channel's `auth`.
    pub fn auth(mut self, auth: bool) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds message middleware that wraps this route only (after global and channel middleware).
    pub fn middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.middleware.push(middleware.erase());
        self
    }

    /// Adds a permission group of one check. The route is allowed when every check of at least one group passes.
    pub fn permission(self, permission: impl Permission<S, U>) -> Self {
        self.permission_group(vec![permission.erase()])
    }

    /// Adds a permission group: the group passes when all its checks pass.
    pub fn permission_group(mut self, group: Vec<ErasedPermissionCheck<S, U>>) -> Self {
        self.permission_groups.push(group);
        self
    }
}

/// A stored permission check, for [`Route::permission_group`]; make one with [`permission`].
pub type ErasedPermissionCheck<S, U> = ErasedPermission<S, U>;

/// Stores a permission check for a [`Route::permission_group`].
pub fn permission<S, U>(check: impl Permission<S, U>) -> ErasedPermissionCheck<S, U> {
    check.erase()
}

/// Marker for [`IntoRoute`] on a [`Route`].
#[derive(Debug)]
#[doc(hidden)]
pub enum RouteMarker {}

/// Anything that can become a [`Route`]: a `Route` or a plain message handler.
pub trait IntoRoute<S, U, O, SS, M> {
    /// Converts.
    fn into_route(self) -> Route<S, U, O, SS>;
}

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

/// A channel definition: name, route pattern, handlers and policies.
///
/// `O` (opening data) and `SS` (socket state) are inferred from the handlers' [`Channel`](crate::Channel)
/// parameters; all handlers of one channel must agree on them.
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
    pub(crate) errors: Vec<(RegistrationError, &'static Location<'static>)>,
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
    /// unless a route says otherwise (D9).
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
            errors: Vec::new(),
        }
    }
}

impl<S, U, O, SS> ChannelRoute<S, U, O, SS> {
    /// Whether messages need a session by default (default true).
    pub fn auth(mut self, auth: bool) -> Self {
        self.auth = auth;
        self
    }

    /// The connection handler: runs once after the upgrade, before any message (D19).
    pub fn on_connect<H, M>(mut self, handler: H) -> Self
    where
        H: ConnectHandler<S, U, O, SS, M>,
    {
        self.on_connect = Some(Lifecycle {
            handler: handler.erase(),
            middleware: Vec::new(),
        });
        self
    }

    /// Lifecycle middleware of the connection handler (after global lifecycle middleware).
    pub fn connect_middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.connect_middleware.push(middleware.erase());
        self
    }

    /// The disconnection handler: runs once after the close, with a view that cannot send.
    pub fn on_disconnect<H, M>(mut self, handler: H) -> Self
    where
        H: DisconnectHandler<S, U, O, SS, M>,
    {
        self.on_disconnect = Some(Lifecycle {
            handler: handler.erase(),
            middleware: Vec::new(),
        });
        self
    }

    /// Lifecycle middleware of the disconnection handler.
    pub fn disconnect_middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.disconnect_middleware.push(middleware.erase());
        self
    }

    /// The default message route: everything that is not a routed message (protocol §3.3).
    pub fn on_message<R, M>(mut self, route: R) -> Self
    where
        R: IntoRoute<S, U, O, SS, M>,
    {
        self.default_route = Some(route.into_route());
        self
    }

    /// A message route under routing property `property` (`"action"`) for value `value`. Properties are tried in
    /// the order they first appear.
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
        prop.routes.push((value.to_owned(), route.into_route()));
        self
    }

    /// The binary handler. Binary frames without one are dropped and logged (D21).
    pub fn on_binary<H, M>(mut self, handler: H) -> Self
    where
        H: BinaryHandler<S, U, O, SS, M>,
    {
        self.binary = Some(handler.erase());
        self
    }

    /// Whether binary frames need a session; defaults to the channel's `auth`.
    pub fn binary_auth(mut self, auth: bool) -> Self {
        self.binary_auth = Some(auth);
        self
    }

    /// Upgrade middleware of this channel (after global upgrade middleware).
    pub fn upgrade_middleware(mut self, middleware: impl UpgradeMiddleware<S, U>) -> Self {
        self.upgrade_middleware.push(middleware.erase());
        self
    }

    /// Message middleware applied to every message route of this channel (not to lifecycle handlers, D20).
    pub fn middleware(mut self, middleware: impl Middleware<S, U>) -> Self {
        self.message_middleware.push(middleware.erase());
        self
    }

    /// A permission every message route of this channel must pass.
    pub fn permission(mut self, permission: impl Permission<S, U>) -> Self {
        self.permissions.push(permission.erase());
        self
    }

    /// How many messages of one connection may run at once (default 1: in order, D7). Replies then follow
    /// completion order.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        assert!(n > 0, "max_in_flight must be at least 1");
        self.max_in_flight = n;
        self
    }

    /// The reverse-RPC timeout of this channel (`None` disables it); defaults to the app's.
    pub fn rpc_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.rpc_timeout = Some(timeout);
        self
    }
}
