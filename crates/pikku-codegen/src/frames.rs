//! The JSON Schemas of every frame a channel exchanges, named `<channel>.<part>`; shared by the schema file and
//! the AsyncAPI document.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::description::{is_unit, ChannelDesc, Description, ReplyDesc, ReplyShape, TypeDesc};
use crate::error::CodegenError;

/// The prefix of `$ref`s to the shared schemas.
pub(crate) const DEFS_PREFIX: &str = "#/$defs/";

/// A schema, or `true` (anything) when the app did not describe the type.
pub(crate) fn or_any(schema: Option<&Value>) -> Value {
    schema.cloned().unwrap_or(Value::Bool(true))
}

fn is_any(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(map) => map.keys().all(|k| k == "description" || k == "title"),
        _ => false,
    }
}

/// The object schema `schema` stands for, following `$ref`s, when it is a plain object schema.
pub(crate) fn resolve_object<'a>(
    schema: &'a Value,
    defs: &'a BTreeMap<String, Value>,
    depth: usize,
) -> Option<&'a Map<String, Value>> {
    let map = schema.as_object()?;
    if depth > 16 {
        return None;
    }
    if let Some(Value::String(reference)) = map.get("$ref") {
        let target = defs.get(reference.strip_prefix(DEFS_PREFIX)?)?;
        return resolve_object(target, defs, depth + 1);
    }
    let combinators = ["oneOf", "anyOf", "allOf", "enum", "const", "not", "if"];
    if combinators.iter().any(|k| map.contains_key(*k)) {
        return None;
    }
    let is_object = match map.get("type") {
        Some(Value::String(t)) => t == "object",
        None => map.contains_key("properties"),
        _ => false,
    };
    is_object.then_some(map)
}

/// `schema` with the routing member `property: value` added (a merged reply, or a routed message).
pub(crate) fn with_key(
    schema: &Value,
    property: &str,
    value: &str,
    defs: &BTreeMap<String, Value>,
) -> Value {
    let key = json!({ "const": value });
    if let Some(object) = resolve_object(schema, defs, 0) {
        let mut object = object.clone();
        let properties = object
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(property.to_owned(), key);
        }
        let required = object
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(required) = required.as_array_mut() {
            if !required.iter().any(|r| r == property) {
                required.push(Value::String(property.to_owned()));
            }
        }
        object.insert("type".into(), json!("object"));
        return Value::Object(object);
    }
    let mut frame = json!({
        "type": "object",
        "properties": { property: key },
        "required": [property],
    });
    if !is_any(schema) {
        frame["allOf"] = json!([schema]);
    }
    frame
}

/// The reply frame of a route whose reply is `reply`.
pub(crate) fn reply_frame(
    reply: &ReplyDesc,
    property: &str,
    value: &str,
    defs: &BTreeMap<String, Value>,
) -> Value {
    let schema = or_any(reply.schema.as_ref());
    let key = json!({ "const": value });
    let result = json!({
        "type": "object",
        "properties": { property: key, "result": schema },
        "required": [property, "result"],
        "additionalProperties": false,
    });
    match reply.shape {
        ReplyShape::None => json!({
            "type": "object",
            "properties": { property: key },
            "required": [property],
            "additionalProperties": false,
        }),
        ReplyShape::Merged => with_key(&schema, property, value, defs),
        ReplyShape::Result => result,
        ReplyShape::Dynamic => {
            json!({ "anyOf": [with_key(&schema, property, value, defs), result] })
        }
    }
}

/// The error frame of a route, or the unrouted one.
pub(crate) fn error_frame(key: Option<(&str, &str)>) -> Value {
    let mut frame = json!({
        "type": "object",
        "properties": {
            "error": { "type": "string" },
            "errorName": { "type": "string" },
            "details": { "type": "array", "items": { "$ref": "#/$defs/pikku.ErrorDetail" } },
            "debug": { "type": "string" },
        },
        "required": ["error", "errorName"],
    });
    if let Some((property, value)) = key {
        frame["properties"][property] = json!({ "const": value });
        frame["required"] = json!([property, "error", "errorName"]);
    }
    frame
}

/// The schemas every description shares.
pub(crate) fn shared() -> Vec<(String, Value)> {
    vec![
        (
            "pikku.ErrorDetail".into(),
            json!({
                "type": "object",
                "properties": { "path": { "type": "string" }, "message": { "type": "string" } },
                "required": ["path", "message"],
            }),
        ),
        ("pikku.ErrorFrame".into(), error_frame(None)),
        (
            "pikku.TopicEvent".into(),
            json!({
                "type": "object",
                "properties": { "topic": { "type": "string" }, "data": true },
                "required": ["topic", "data"],
            }),
        ),
    ]
}

fn rpc_request(name: &str, input: &TypeDesc) -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": { "const": "pikku-rpc-request" },
            "id": { "type": "string" },
            "funcName": { "const": name },
            "data": or_any(input.schema.as_ref()),
        },
        "required": ["action", "id", "funcName"],
    })
}

fn rpc_response(output: &TypeDesc) -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": { "const": "pikku-rpc-response" },
            "id": { "type": "string" },
            "ok": { "type": "boolean" },
            "result": or_any(output.schema.as_ref()),
            "error": {
                "type": "object",
                "properties": { "name": { "type": "string" }, "message": { "type": "string" } },
            },
        },
        "required": ["action", "id", "ok"],
    })
}

/// The routes of `channel`, sorted by property then value.
pub(crate) fn sorted_routes(channel: &ChannelDesc) -> Vec<&crate::description::RouteDesc> {
    let mut routes: Vec<_> = channel.routes.iter().collect();
    routes.sort_by(|a, b| (&a.property, &a.value).cmp(&(&b.property, &b.value)));
    routes
}

/// The schema name of a part of a channel: `<channel>.<parts joined by dots>`.
pub(crate) fn name(channel: &str, parts: &[&str]) -> String {
    let mut name = channel.to_owned();
    for part in parts {
        name.push('.');
        name.push_str(part);
    }
    name
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{DEFS_PREFIX}{name}") })
}

/// Every named frame schema of `channel`, in a stable order.
pub(crate) fn channel_schemas(
    channel: &ChannelDesc,
    defs: &BTreeMap<String, Value>,
) -> Vec<(String, Value)> {
    let c = channel.name.as_str();
    let mut out = Vec::new();
    let mut pushes = Vec::new();
    let mut inbound = Vec::new();
    out.push((
        name(c, &["opening"]),
        channel.opening.schema.clone().unwrap_or_else(
            || json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        ),
    ));
    if let Some(connect) = &channel.connect {
        if connect.push.is_some() {
            out.push((
                name(c, &["connect", "push"]),
                or_any(connect.push.as_ref().and_then(|push| push.schema.as_ref())),
            ));
            pushes.push(reference(&name(c, &["connect", "push"])));
        }
        if connect.reply.shape != ReplyShape::None {
            out.push((
                name(c, &["connect", "reply"]),
                or_any(connect.reply.schema.as_ref()),
            ));
            inbound.push(reference(&name(c, &["connect", "reply"])));
        }
    }
    if let Some(message) = &channel.message {
        out.push((
            name(c, &["message", "input"]),
            or_any(message.input.schema.as_ref()),
        ));
        if message.reply.shape != ReplyShape::None {
            out.push((
                name(c, &["message", "reply"]),
                or_any(message.reply.schema.as_ref()),
            ));
            inbound.push(reference(&name(c, &["message", "reply"])));
        }
        if message.push.is_some() {
            out.push((
                name(c, &["message", "push"]),
                or_any(message.push.as_ref().and_then(|push| push.schema.as_ref())),
            ));
            pushes.push(reference(&name(c, &["message", "push"])));
        }
    }
    for route in sorted_routes(channel) {
        let (p, v) = (route.property.as_str(), route.value.as_str());
        let part = |last: &str| name(c, &["route", p, v, last]);
        let input = if is_unit(&route.message.input) {
            json!({ "type": "object" })
        } else {
            or_any(route.message.input.schema.as_ref())
        };
        out.push((part("message"), with_key(&input, p, v, defs)));
        out.push((part("input"), input));
        if route.message.reply.shape != ReplyShape::None {
            out.push((part("reply"), or_any(route.message.reply.schema.as_ref())));
        }
        out.push((
            part("replyFrame"),
            reply_frame(&route.message.reply, p, v, defs),
        ));
        out.push((part("errorFrame"), error_frame(Some((p, v)))));
        inbound.push(reference(&part("replyFrame")));
        inbound.push(reference(&part("errorFrame")));
        if route.message.push.is_some() {
            out.push((
                part("push"),
                or_any(
                    route
                        .message
                        .push
                        .as_ref()
                        .and_then(|push| push.schema.as_ref()),
                ),
            ));
            pushes.push(reference(&part("push")));
        }
    }
    let mut capabilities: Vec<_> = channel.capabilities.iter().collect();
    capabilities.sort_by(|a, b| a.name.cmp(&b.name));
    for capability in capabilities {
        let n = capability.name.as_str();
        out.push((
            name(c, &["capability", n, "input"]),
            or_any(capability.input.schema.as_ref()),
        ));
        out.push((
            name(c, &["capability", n, "output"]),
            or_any(capability.output.schema.as_ref()),
        ));
        out.push((
            name(c, &["capability", n, "request"]),
            rpc_request(n, &capability.input),
        ));
        out.push((
            name(c, &["capability", n, "response"]),
            rpc_response(&capability.output),
        ));
        inbound.push(reference(&name(c, &["capability", n, "request"])));
    }
    let push = if pushes.is_empty() {
        Value::Bool(false)
    } else {
        json!({ "anyOf": pushes })
    };
    if !pushes.is_empty() {
        inbound.push(reference(&name(c, &["push"])));
    }
    out.push((name(c, &["push"]), push));
    inbound.push(reference("pikku.ErrorFrame"));
    out.push((name(c, &["inbound"]), json!({ "anyOf": inbound })));
    out
}

/// Every `$ref` in `schema`, with a path for messages.
fn refs<'a>(schema: &'a Value, at: &str, found: &mut Vec<(String, &'a str)>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" {
                    if let Value::String(r) = value {
                        found.push((at.to_owned(), r));
                    }
                } else {
                    refs(value, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Every named schema: the description's `$defs`, the shared ones and each channel's frames. Checks that every
/// reference names an entry and that no two entries share a name.
pub(crate) fn all_schemas(
    description: &Description,
) -> Result<BTreeMap<String, Value>, CodegenError> {
    let mut all = description.defs.clone();
    let generated = shared().into_iter().chain(
        description
            .channels
            .iter()
            .flat_map(|c| channel_schemas(c, &description.defs)),
    );
    for (name, schema) in generated {
        if all.insert(name.clone(), schema).is_some() {
            return Err(CodegenError::DuplicateName(name));
        }
    }
    let mut found = Vec::new();
    for (name, schema) in &all {
        refs(schema, &format!("$defs/{name}"), &mut found);
    }
    for (at, reference) in found {
        let ok = reference
            .strip_prefix(DEFS_PREFIX)
            .is_some_and(|n| all.contains_key(n));
        if !ok {
            return Err(CodegenError::BadRef {
                at,
                reference: reference.to_owned(),
            });
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> BTreeMap<String, Value> {
        BTreeMap::from([(
            "Created".to_owned(),
            json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
                   "additionalProperties": false}),
        )])
    }

    #[test]
    fn merged_replies_add_the_key_to_the_object_schema() {
        let frame = with_key(
            &json!({"$ref": "#/$defs/Created"}),
            "action",
            "create",
            &defs(),
        );
        assert_eq!(
            frame,
            json!({"type": "object", "properties": {"id": {"type": "integer"}, "action": {"const": "create"}},
                   "required": ["id", "action"], "additionalProperties": false})
        );
    }

    #[test]
    fn other_values_are_wrapped() {
        assert_eq!(
            with_key(&json!(true), "action", "x", &defs()),
            json!({"type": "object", "properties": {"action": {"const": "x"}}, "required": ["action"]})
        );
        let reply: ReplyDesc = serde_json::from_value(
            json!({"rust": "String", "shape": "result", "schema": {"type": "string"}}),
        )
        .unwrap();
        assert_eq!(
            reply_frame(&reply, "action", "prim", &defs()),
            json!({"type": "object", "properties": {"action": {"const": "prim"}, "result": {"type": "string"}},
                   "required": ["action", "result"], "additionalProperties": false})
        );
    }

    #[test]
    fn a_reference_to_nothing_is_an_error() {
        let description: Description = serde_json::from_value(json!({
            "version": 1,
            "channels": [{"name": "c", "route": "/c", "params": [], "auth": false,
                "opening": {"rust": "Params", "schema": null}, "connect": null, "disconnect": false,
                "message": null, "binary": null, "capabilities": [], "events": null,
                "routes": [{"property": "action", "value": "x", "auth": false, "push": null,
                "input": {"rust": "X", "schema": {"$ref": "#/$defs/Missing"}},
                "reply": {"rust": "()", "shape": "none", "schema": null}}]}],
            "$defs": {},
        }))
        .unwrap();
        let err = all_schemas(&description).unwrap_err();
        assert!(
            err.to_string().contains("'#/$defs/Missing' names no entry"),
            "{err}"
        );
    }
}
