//! The app description the generator reads: the JSON that `App::describe()` produces, as serde types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole app: its channels and the JSON Schemas they share.
///
/// ```
/// let description: pikku_codegen::Description = serde_json::from_str(
///     r#"{"version": 1, "channels": [], "$defs": {}}"#,
/// ).unwrap();
/// assert!(description.channels.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// The format version; this generator reads version 1.
    pub version: u32,
    /// Every channel of the app.
    pub channels: Vec<ChannelDesc>,
    /// Named JSON Schemas (2020-12), referenced as `{"$ref": "#/$defs/Name"}`.
    #[serde(rename = "$defs", default)]
    pub defs: BTreeMap<String, Value>,
}

/// One channel: where it is served and what it exchanges.
///
/// ```
/// let channel: pikku_codegen::ChannelDesc = serde_json::from_str(
///     r#"{"name": "greet", "route": "/greet", "params": [], "auth": false, "opening": null, "connect": null,
///         "disconnect": false, "message": null, "routes": [], "binary": null, "capabilities": []}"#,
/// ).unwrap();
/// assert_eq!(channel.route, "/greet");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDesc {
    /// The channel's name (unique in the app).
    pub name: String,
    /// Its route pattern, with params written `:name` or `{name}`.
    pub route: String,
    /// The route's params, in path order.
    #[serde(default)]
    pub params: Vec<String>,
    /// Whether its handlers need a session unless a route says otherwise.
    #[serde(default)]
    pub auth: bool,
    /// The opening data's type (route params and query), if described.
    #[serde(default)]
    pub opening: Option<TypeDesc>,
    /// The connection handler, if any.
    #[serde(default)]
    pub connect: Option<ConnectDesc>,
    /// Whether a disconnection handler runs.
    #[serde(default)]
    pub disconnect: bool,
    /// The default (unrouted) message handler, if any.
    #[serde(default)]
    pub message: Option<MessageDesc>,
    /// The routed message handlers.
    #[serde(default)]
    pub routes: Vec<RouteDesc>,
    /// The binary handler, if any.
    #[serde(default)]
    pub binary: Option<BinaryDesc>,
    /// Functions the server calls on the client (reverse RPC).
    #[serde(default)]
    pub capabilities: Vec<CapabilityDesc>,
}

/// A Rust type and its JSON Schema, when the app described it.
///
/// ```
/// let unit = pikku_codegen::TypeDesc { rust: "()".into(), schema: None };
/// assert!(unit.is_unit());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeDesc {
    /// The Rust type's name, for readers.
    pub rust: String,
    /// Its JSON Schema; `None` when the app did not describe it (the client types it `unknown`).
    #[serde(default)]
    pub schema: Option<Value>,
}

impl TypeDesc {
    /// Whether this is Rust's `()`: a handler that takes no input, or a channel that pushes nothing.
    #[must_use]
    pub fn is_unit(&self) -> bool {
        self.rust.trim() == "()"
    }
}

/// How a handler's value travels back.
///
/// ```
/// let reply: pikku_codegen::ReplyDesc = serde_json::from_str(r#"{"shape": "result", "schema": {"type": "integer"}}"#).unwrap();
/// assert_eq!(reply.shape, pikku_codegen::ReplyShape::Result);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyDesc {
    /// Where the value goes in the reply frame.
    pub shape: ReplyShape,
    /// The JSON Schema of the handler's `Ok` value, if described.
    #[serde(default)]
    pub schema: Option<Value>,
}

/// The shape of a routed reply.
///
/// ```
/// assert_eq!(pikku_codegen::ReplyShape::Merged.as_str(), "merged");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyShape {
    /// The handler returns nothing: the reply is only the routing key.
    None,
    /// The handler returns an object: its members plus the routing key.
    Merged,
    /// The handler returns a scalar or an array: the routing key plus `result`.
    Result,
    /// Either of the last two, decided by the value at run time.
    Dynamic,
}

impl ReplyShape {
    /// The name used in the description and in the runtime.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyShape::None => "none",
            ReplyShape::Merged => "merged",
            ReplyShape::Result => "result",
            ReplyShape::Dynamic => "dynamic",
        }
    }
}

/// The connection handler: what it pushes and what it returns.
///
/// ```
/// let connect: pikku_codegen::ConnectDesc = serde_json::from_str(
///     r#"{"push": {"rust": "String", "schema": {"type": "string"}}, "reply": {"shape": "none", "schema": null}}"#,
/// ).unwrap();
/// assert_eq!(connect.push.rust, "String");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectDesc {
    /// What the handler sends (the channel's `Out`).
    pub push: TypeDesc,
    /// What it returns, sent as a bare frame.
    pub reply: ReplyDesc,
}

/// The default message handler.
///
/// ```
/// let message: pikku_codegen::MessageDesc = serde_json::from_str(
///     r#"{"input": {"rust": "Value", "schema": true}, "reply": {"shape": "dynamic", "schema": true},
///         "push": {"rust": "()", "schema": null}, "auth": false}"#,
/// ).unwrap();
/// assert!(message.push.is_unit());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDesc {
    /// The handler's input.
    pub input: TypeDesc,
    /// Its value, sent as a bare frame.
    pub reply: ReplyDesc,
    /// What it pushes.
    pub push: TypeDesc,
    /// Whether it needs a session.
    #[serde(default)]
    pub auth: bool,
}

/// One routed message handler, `{"<property>": "<value>", ...input}`.
///
/// ```
/// let route: pikku_codegen::RouteDesc = serde_json::from_str(
///     r##"{"property": "action", "value": "say", "input": {"rust": "Say", "schema": {"$ref": "#/$defs/Say"}},
///         "reply": {"shape": "none", "schema": null}, "push": {"rust": "()", "schema": null}, "auth": true}"##,
/// ).unwrap();
/// assert_eq!(route.value, "say");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDesc {
    /// The routing property (`action`, `type`, …).
    pub property: String,
    /// The route's name under it.
    pub value: String,
    /// The handler's input: the message minus the routing member.
    pub input: TypeDesc,
    /// How its value comes back.
    pub reply: ReplyDesc,
    /// What it pushes while it runs.
    pub push: TypeDesc,
    /// Whether it needs a session.
    #[serde(default)]
    pub auth: bool,
}

/// The binary handler.
///
/// ```
/// let binary: pikku_codegen::BinaryDesc = serde_json::from_str(r#"{"auth": true}"#).unwrap();
/// assert!(binary.auth);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinaryDesc {
    /// Whether it needs a session (frames without one are dropped).
    #[serde(default)]
    pub auth: bool,
}

/// A function the server calls on the client.
///
/// ```
/// let capability: pikku_codegen::CapabilityDesc = serde_json::from_str(
///     r#"{"name": "clientThing", "input": {"rust": "Value", "schema": null}, "output": {"rust": "Value", "schema": null}}"#,
/// ).unwrap();
/// assert_eq!(capability.name, "clientThing");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityDesc {
    /// The function's name (`funcName` on the wire).
    pub name: String,
    /// Its argument (`data`).
    pub input: TypeDesc,
    /// Its result.
    pub output: TypeDesc,
}
