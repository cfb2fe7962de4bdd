//! The channel model of pikku: typed handlers, wiring, routing, sessions, the event hub and the message
//! pipeline. Runners (the embedded WebSocket server, the stateless runner) sit on top; most applications depend
//! on the `pikku` facade instead of this crate.
//!
//! # Contents
//! - [`Channel`] / [`ClosedChannel`]: what handlers get (the seed's `PikkuChannel`).
//! - [`handler`]: the handler kinds and what they may return ([`IntoReply`]).
//! - [`ChannelRoute`] / [`Route`]: wiring a channel; [`App`]: the application.
//! - [`Ctx`]: services, the live session and the [`EventHub`].
//! - [`middleware`]: message, lifecycle and upgrade middleware, permissions.
//! - [`ChannelError`] and [`ClientError`]: what the client sees when something fails.
//! - [`runtime`]: the pipeline runners drive.

pub mod app;
pub mod channel;
pub mod ctx;
pub mod error;
pub mod frame;
pub mod handler;
pub mod hub;
pub mod input;
pub mod middleware;
pub mod opening;
pub mod rpc;
pub mod runtime;
pub mod wiring;

pub use app::{App, AppConfig, AppRuntime};
pub use channel::{
    Channel, ChannelState, ClosedChannel, Connection, DisconnectReason, SlowConsumerPolicy,
};
pub use ctx::Ctx;
pub use error::{
    ChannelError, ClientError, ErrorClass, ErrorDetail, HubError, RegistrationError, SendError,
};
pub use frame::{encode_json, encode_value, OutFrame};
pub use handler::{IntoBinaryReply, IntoReply, Reply};
pub use hub::{EventHub, HubLimits};
pub use input::FromInput;
#[cfg(feature = "garde")]
pub use input::Valid;
pub use middleware::{MiddlewareCtx, Next, PermissionCtx, UpgradeRequest};
pub use opening::{opening_from_params, parse_query, Params, RoutePattern};
pub use rpc::{Capability, RpcError, RpcFailure};
pub use wiring::{permission, ChannelRoute, Route};
