//! Turns the types recorded at registration into an [`AppDescription`], with one schema generator for the whole
//! app so that a type used by several handlers is defined once.

use std::panic::Location;

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::Value;

use super::capture::{HandlerTypes, ReplyInfo, ReplyValue, TypeInfo};
use super::{
    AppDescription, BinaryDescription, CapabilityDescription, ChannelDescription,
    ConnectDescription, EventsDescription, MessageDescription, ReplyDescription, ReplyShape,
    RouteDescription, TypeDescription, DESCRIPTION_VERSION,
};

/// A channel's types as registered: kept beside the channel, read only by `describe`.
pub(crate) struct ChannelShape {
    pub(crate) name: String,
    pub(crate) route: String,
    pub(crate) params: Vec<String>,
    pub(crate) auth: bool,
    pub(crate) location: &'static Location<'static>,
    /// The opening data type from the channel's definition (named only).
    pub(crate) opening: TypeInfo,
    pub(crate) connect: Option<HandlerTypes>,
    pub(crate) disconnect: Option<HandlerTypes>,
    pub(crate) message: Option<RouteShape>,
    pub(crate) routes: Vec<RouteShape>,
    /// Binary frames: whether they need a session, and the handler's types.
    pub(crate) binary: Option<(bool, HandlerTypes)>,
    pub(crate) capabilities: Vec<CapabilityInfo>,
    /// `Some(serves streams)` for an events channel.
    pub(crate) events: Option<bool>,
}

/// A message handler's types with its place in the channel.
pub(crate) struct RouteShape {
    /// The routing property and value; empty for the default handler.
    pub(crate) property: String,
    pub(crate) value: String,
    pub(crate) auth: bool,
    pub(crate) types: HandlerTypes,
    pub(crate) location: &'static Location<'static>,
}

/// A capability declared with `ChannelRoute::calls`.
#[derive(Clone, Copy)]
pub(crate) struct CapabilityInfo {
    pub(crate) name: &'static str,
    pub(crate) input: TypeInfo,
    pub(crate) output: TypeInfo,
}

impl ChannelShape {
    /// Where the first undescribed type of this channel was registered, with what it is; `None` when every type
    /// has a schema.
    pub(crate) fn first_undescribed(&self) -> Option<(String, &'static Location<'static>)> {
        let mut generator = generator();
        let missing = self
            .describe(&mut generator)
            .undescribed()
            .into_iter()
            .next()?;
        // Point at the route the missing type belongs to when it is a route's; otherwise at the channel.
        let location = self
            .routes
            .iter()
            .find(|r| missing.starts_with(&format!("{}: {}:{} ", self.name, r.property, r.value)))
            .map_or(self.location, |r| r.location);
        Some((missing, location))
    }

    pub(crate) fn describe(&self, generator: &mut SchemaGenerator) -> ChannelDescription {
        let handlers = self
            .connect
            .iter()
            .chain(&self.disconnect)
            .chain(self.message.iter().map(|m| &m.types))
            .chain(self.routes.iter().map(|r| &r.types))
            .chain(self.binary.iter().map(|(_, types)| types));
        // Every handler takes the same opening data; the first that describes it gives the schema.
        let opening = handlers
            .map(|types| types.opening)
            .find(TypeInfo::is_typed)
            .unwrap_or(self.opening);
        ChannelDescription {
            name: self.name.clone(),
            route: self.route.clone(),
            params: self.params.clone(),
            auth: self.auth,
            opening: type_description(opening, generator),
            connect: self.connect.map(|types| ConnectDescription {
                push: types.push.map(|push| type_description(push, generator)),
                reply: reply_description(types.reply, generator),
            }),
            disconnect: self.disconnect.is_some(),
            message: self
                .message
                .as_ref()
                .map(|route| message_description(route, generator)),
            routes: self
                .routes
                .iter()
                .map(|route| RouteDescription {
                    property: route.property.clone(),
                    value: route.value.clone(),
                    message: message_description(route, generator),
                })
                .collect(),
            binary: self.binary.map(|(auth, types)| BinaryDescription {
                auth,
                push: types.push.map(|push| type_description(push, generator)),
            }),
            capabilities: self
                .capabilities
                .iter()
                .map(|c| CapabilityDescription {
                    name: c.name.to_owned(),
                    input: type_description(c.input, generator),
                    output: type_description(c.output, generator),
                })
                .collect(),
            events: self.events.map(|streams| EventsDescription { streams }),
        }
    }
}

/// Describes every channel with one generator, so shared types land once in `$defs`.
pub(crate) fn describe_app<'a>(channels: impl Iterator<Item = &'a ChannelShape>) -> AppDescription {
    let mut generator = generator();
    let channels = channels
        .map(|channel| channel.describe(&mut generator))
        .collect();
    let defs = generator.take_definitions(true).into_iter().collect();
    AppDescription {
        version: DESCRIPTION_VERSION,
        channels,
        defs,
    }
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

fn type_description(info: TypeInfo, generator: &mut SchemaGenerator) -> TypeDescription {
    TypeDescription {
        rust: info.rust_name().to_owned(),
        schema: info.schema(generator),
    }
}

fn message_description(route: &RouteShape, generator: &mut SchemaGenerator) -> MessageDescription {
    let types = &route.types;
    MessageDescription {
        input: type_description(
            types.input.unwrap_or_else(TypeInfo::untyped::<Value>),
            generator,
        ),
        reply: reply_description(types.reply, generator),
        push: types.push.map(|push| type_description(push, generator)),
        auth: route.auth,
    }
}

fn reply_description(
    reply: Option<ReplyInfo>,
    generator: &mut SchemaGenerator,
) -> ReplyDescription {
    let reply = reply.unwrap_or_else(ReplyInfo::untyped::<Value>);
    let rust = (reply.rust)().to_owned();
    match reply.value {
        ReplyValue::Untyped => ReplyDescription {
            rust,
            shape: ReplyShape::Dynamic,
            schema: None,
        },
        ReplyValue::Nothing => ReplyDescription {
            rust,
            shape: ReplyShape::None,
            schema: None,
        },
        ReplyValue::Schema(write) => {
            let schema = write(generator).to_value();
            ReplyDescription {
                rust,
                shape: shape_of(&schema, generator),
                schema: Some(schema),
            }
        }
    }
}

/// How a value of this schema is shaped into a routed reply: objects are merged with the key, scalars and
/// arrays (and `null`) go under `result`, and a schema that allows both (or says nothing) is decided per reply.
fn shape_of(schema: &Value, generator: &SchemaGenerator) -> ReplyShape {
    match value_kinds(schema, generator, 0) {
        Kinds {
            object: true,
            other: false,
        } => ReplyShape::Merged,
        Kinds {
            object: false,
            other: true,
        } => ReplyShape::Result,
        _ => ReplyShape::Dynamic,
    }
}

/// Whether values of a schema may be objects, and whether they may be anything else.
#[derive(Clone, Copy)]
struct Kinds {
    object: bool,
    other: bool,
}

const ANY: Kinds = Kinds {
    object: true,
    other: true,
};

fn value_kinds(schema: &Value, generator: &SchemaGenerator, depth: usize) -> Kinds {
    // Recursive types cannot loop forever: past a few references, anything goes.
    if depth > 16 {
        return ANY;
    }
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/$defs/"))
    {
        return generator
            .definitions()
            .get(name)
            .map_or(ANY, |resolved| value_kinds(resolved, generator, depth + 1));
    }
    let kind = |name: &str| Kinds {
        object: name == "object",
        other: name != "object",
    };
    match schema.get("type") {
        Some(Value::String(name)) => return kind(name),
        Some(Value::Array(names)) => {
            return names.iter().filter_map(Value::as_str).map(kind).fold(
                Kinds {
                    object: false,
                    other: false,
                },
                join,
            );
        }
        _ => {}
    }
    let branches = ["anyOf", "oneOf"]
        .iter()
        .find_map(|key| schema.get(*key).and_then(Value::as_array));
    match branches {
        Some(branches) if !branches.is_empty() => branches
            .iter()
            .map(|branch| value_kinds(branch, generator, depth + 1))
            .fold(
                Kinds {
                    object: false,
                    other: false,
                },
                join,
            ),
        _ => ANY,
    }
}

fn join(a: Kinds, b: Kinds) -> Kinds {
    Kinds {
        object: a.object || b.object,
        other: a.other || b.other,
    }
}
