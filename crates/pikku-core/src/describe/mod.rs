//! What an app's channels accept and answer, as data: the input to client generators and API documentation.
//!
//! [`App::describe`](crate::App::describe) returns an [`AppDescription`]: per channel its name, route and params,
//! opening data, the input, reply and push types of every handler, binary support, which routes need a session,
//! and the capabilities the server calls on the client. Types are described by their Rust name and, for handlers
//! registered through [`typed`](crate::typed), by a JSON Schema (draft 2020-12) from `schemars`; the schemas share
//! one `$defs` map. Nothing here runs per message or per connection: the types are recorded when a handler is
//! registered and turned into schemas only when `describe` is called.
//!
//! ```
//! use pikku::{typed, App, Channel, ChannelRoute, Ctx, Params};
//! use pikku::describe::ReplyShape;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Say { text: String }
//!
//! #[derive(serde::Serialize, schemars::JsonSchema)]
//! struct Said { text: String, at: u64 }
//!
//! async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Say) -> pikku::Json<Said> {
//!     pikku::Json(Said { text: input.text, at: 0 })
//! }
//!
//! let app = App::new(()).channel(ChannelRoute::new("chat", "/chat").route("action", "say", typed(say)));
//! let description = app.describe();
//! let route = &description.channels[0].routes[0];
//! assert_eq!((route.property.as_str(), route.value.as_str()), ("action", "say"));
//! // An object reply is merged with the routing key: `{"action": "say", "text": .., "at": ..}`.
//! assert_eq!(route.message.reply.shape, ReplyShape::Merged);
//! assert!(description.defs.contains_key("Say"));
//! assert!(description.undescribed().is_empty());
//! ```

mod assemble;
mod capture;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use assemble::{describe_app, CapabilityInfo, ChannelShape, RouteShape};
pub use capture::ReplySchema;
#[doc(hidden)]
pub use capture::{HandlerTypes, ReplyInfo, TypeInfo};

/// The version of the description format this crate writes.
pub const DESCRIPTION_VERSION: u32 = 1;

/// Every channel of an app, with the types its handlers take and return.
///
/// Serializes to the JSON that `pikku-codegen` reads (camelCase members, schemas under `$defs`).
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params};
///
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
///
/// let description = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello)).describe();
/// let json = serde_json::to_value(&description).unwrap();
/// assert_eq!(json["channels"][0]["route"], "/events");
/// // `hello` was registered without `typed(..)`: its types have names but no schemas.
/// assert_eq!(description.undescribed(), ["events: opening data", "events: connect reply"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AppDescription {
    /// The format version, [`DESCRIPTION_VERSION`].
    pub version: u32,
    /// The channels, in registration order.
    pub channels: Vec<ChannelDescription>,
    /// Named schemas that the types' schemas refer to as `#/$defs/<name>`.
    #[serde(rename = "$defs")]
    pub defs: BTreeMap<String, Value>,
}

impl AppDescription {
    /// What has no schema, one line per type (`"rooms: action:say input"`); empty when every handler's types are
    /// described. [`App::require_schemas`](crate::App::require_schemas) refuses channels for which this is not
    /// empty.
    ///
    /// ```
    /// use pikku::{typed, App, Channel, ChannelRoute, Ctx, Params};
    ///
    /// async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str { "pong" }
    ///
    /// let untyped = App::new(()).channel(ChannelRoute::new("a", "/a").route("action", "ping", ping));
    /// assert_eq!(untyped.describe().undescribed(), ["a: opening data", "a: action:ping input", "a: action:ping reply"]);
    /// let described = App::new(()).channel(ChannelRoute::new("a", "/a").route("action", "ping", typed(ping)));
    /// assert!(described.describe().undescribed().is_empty());
    /// ```
    #[must_use]
    pub fn undescribed(&self) -> Vec<String> {
        self.channels
            .iter()
            .flat_map(ChannelDescription::undescribed)
            .collect()
    }
}

/// One channel: where it is mounted and what each of its handlers takes and returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ChannelDescription {
    /// The channel's name.
    pub name: String,
    /// The route pattern as registered (`/rooms/:roomId`).
    pub route: String,
    /// The names of the route's params, in order.
    pub params: Vec<String>,
    /// Whether messages need a session unless a route says otherwise.
    pub auth: bool,
    /// The opening data: the route's params and the query string, deserialized.
    pub opening: TypeDescription,
    /// The connection handler, when there is one.
    pub connect: Option<ConnectDescription>,
    /// Whether a disconnection handler runs (it cannot send, so it has no types of its own).
    pub disconnect: bool,
    /// The default message handler: messages no routing property matches. Answered with its bare value.
    pub message: Option<MessageDescription>,
    /// The routed messages, in registration order.
    pub routes: Vec<RouteDescription>,
    /// Binary frames, when the channel takes them.
    pub binary: Option<BinaryDescription>,
    /// The functions the server may call on the client (reverse RPC), as declared with
    /// [`ChannelRoute::calls`](crate::ChannelRoute::calls).
    pub capabilities: Vec<CapabilityDescription>,
    /// Set for an [`EventsChannel`](crate::events::EventsChannel): topic subscriptions, events shaped
    /// `{"topic": .., "data": ..}`.
    pub events: Option<EventsDescription>,
}

impl ChannelDescription {
    fn undescribed(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let mut check = |what: String, described: bool| {
            if !described {
                missing.push(format!("{}: {what}", self.name));
            }
        };
        check("opening data".into(), self.opening.schema.is_some());
        if let Some(connect) = &self.connect {
            check("connect push".into(), described(connect.push.as_ref()));
            check("connect reply".into(), connect.reply.is_described());
        }
        let messages = self
            .message
            .iter()
            .map(|m| ("message".to_owned(), m))
            .chain(
                self.routes
                    .iter()
                    .map(|r| (format!("{}:{}", r.property, r.value), &r.message)),
            );
        for (name, message) in messages {
            check(format!("{name} input"), message.input.schema.is_some());
            check(format!("{name} reply"), message.reply.is_described());
            check(format!("{name} push"), described(message.push.as_ref()));
        }
        if let Some(binary) = &self.binary {
            check("binary push".into(), described(binary.push.as_ref()));
        }
        missing
    }
}

fn described(push: Option<&TypeDescription>) -> bool {
    push.is_none_or(|p| p.schema.is_some())
}

/// The connection handler's types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectDescription {
    /// What it may push (`Out`); `None` when it pushes nothing.
    pub push: Option<TypeDescription>,
    /// What it returns, sent as is (no routing key to merge with).
    pub reply: ReplyDescription,
}

/// A message handler's types: the default handler's, or a route's (see [`RouteDescription`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MessageDescription {
    /// The message it takes.
    pub input: TypeDescription,
    /// What it answers with.
    pub reply: ReplyDescription,
    /// What it may push while it runs (`Out`); `None` when it pushes nothing.
    pub push: Option<TypeDescription>,
    /// Whether it needs a session.
    pub auth: bool,
}

/// A routed message: `{"<property>": "<value>", ..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RouteDescription {
    /// The routing property (`action`).
    pub property: String,
    /// Its value for this route (`say`).
    pub value: String,
    /// The handler's types.
    #[serde(flatten)]
    pub message: MessageDescription,
}

/// Binary frames of a channel: bytes in, bytes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BinaryDescription {
    /// Whether binary frames need a session.
    pub auth: bool,
    /// What the binary handler may push as text frames (`Out`); `None` when it pushes nothing.
    pub push: Option<TypeDescription>,
}

/// A function the server calls on the client: `{"action": "pikku-rpc-request", "funcName": <name>, ..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CapabilityDescription {
    /// Its `funcName`.
    pub name: String,
    /// What the server sends as `data`.
    pub input: TypeDescription,
    /// What the client answers with as `result`.
    pub output: TypeDescription,
}

/// The topic subscriptions of an [`EventsChannel`](crate::events::EventsChannel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EventsDescription {
    /// Whether `GET <route>/<topic>` also serves the topic as Server-Sent Events.
    pub streams: bool,
}

/// One type: its Rust name and, when the handler was registered with [`typed`](crate::typed), its schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TypeDescription {
    /// The Rust type, as `std::any::type_name` spells it.
    pub rust: String,
    /// A JSON Schema (draft 2020-12); `None` when the type was not described.
    pub schema: Option<Value>,
}

/// What a message handler answers with, and how the answer is shaped on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReplyDescription {
    /// The Rust type the handler returns.
    pub rust: String,
    /// How a routed reply is built from the value.
    pub shape: ReplyShape,
    /// The schema of the value (the `Ok` value of a `Result`); `None` for no value, or when not described.
    pub schema: Option<Value>,
}

impl ReplyDescription {
    fn is_described(&self) -> bool {
        self.shape == ReplyShape::None || self.schema.is_some()
    }
}

/// How a routed message's reply is built from the handler's value (`key` is the routing property and value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReplyShape {
    /// No value: the reply is `{key}` alone.
    None,
    /// An object: its members merged with `key`.
    Merged,
    /// A scalar or an array: `{key, "result": value}`.
    Result,
    /// Decided per reply (an object is merged, anything else goes under `result`), or not described.
    Dynamic,
}

impl ReplyShape {
    /// The shape's name as the description's JSON writes it (`"merged"`).
    ///
    /// ```
    /// assert_eq!(pikku::describe::ReplyShape::Merged.as_str(), "merged");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Merged => "merged",
            Self::Result => "result",
            Self::Dynamic => "dynamic",
        }
    }
}
