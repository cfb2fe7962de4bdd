//! `asyncapi.json`: an AsyncAPI 3.0 document with one channel per pikku channel.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::description::{ChannelDesc, Description, ReplyShape};
use crate::frames::{name, sorted_routes, DEFS_PREFIX};

/// A name AsyncAPI accepts as a map key (`[A-Za-z0-9.\-_]`): other characters become `_`.
fn component_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `schema` with `#/$defs/X` references pointed at `#/components/schemas/X`.
fn rewrite_refs(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => match r.strip_prefix(DEFS_PREFIX) {
                            Some(n) => {
                                Value::String(format!("#/components/schemas/{}", component_key(n)))
                            }
                            None => v.clone(),
                        },
                        _ => rewrite_refs(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(rewrite_refs).collect()),
        other => other.clone(),
    }
}

/// `:param` and `{param}` both become AsyncAPI's `{param}`.
fn address(route: &str) -> String {
    route
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(param) => format!("{{{param}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", component_key(name)) })
}

struct ChannelDoc {
    messages: Map<String, Value>,
    operations: Vec<(String, Value)>,
    id: String,
}

impl ChannelDoc {
    fn message(&mut self, id: &str, title: String, payload: Value) -> Value {
        let id = component_key(id);
        self.messages.insert(
            id.clone(),
            json!({ "name": id, "title": title, "payload": payload }),
        );
        json!({ "$ref": format!("#/channels/{}/messages/{id}", self.id) })
    }

    fn operation(
        &mut self,
        id: String,
        action: &str,
        messages: Vec<Value>,
        reply: Option<Vec<Value>>,
        summary: String,
    ) {
        let mut op = json!({
            "action": action,
            "channel": { "$ref": format!("#/channels/{}", self.id) },
            "summary": summary,
            "messages": messages,
        });
        if let Some(reply) = reply {
            op["reply"] = json!({
                "channel": { "$ref": format!("#/channels/{}", self.id) },
                "messages": reply,
            });
        }
        self.operations.push((component_key(&id), op));
    }
}

fn channel_doc(channel: &ChannelDesc) -> (String, Value, Vec<(String, Value)>) {
    let c = channel.name.as_str();
    let mut doc = ChannelDoc {
        messages: Map::new(),
        operations: Vec::new(),
        id: component_key(c),
    };
    if let Some(connect) = &channel.connect {
        if connect.reply.shape != ReplyShape::None {
            let m = doc.message(
                "connect.reply",
                "What the connection handler returns".into(),
                schema_ref(&name(c, &["connect", "reply"])),
            );
            doc.operation(
                format!("{c}.connect"),
                "receive",
                vec![m],
                None,
                "The connection handler's value, sent once the socket is open".into(),
            );
        }
    }
    if let Some(message) = &channel.message {
        let input = doc.message(
            "message",
            "A default (unrouted) message".into(),
            schema_ref(&name(c, &["message", "input"])),
        );
        let reply = if message.reply.shape == ReplyShape::None {
            vec![]
        } else {
            vec![doc.message(
                "message.reply",
                "The default handler's value".into(),
                schema_ref(&name(c, &["message", "reply"])),
            )]
        };
        let error = doc.message(
            "error",
            "An error frame without a routing key".into(),
            schema_ref("pikku.ErrorFrame"),
        );
        let mut replies = reply;
        replies.push(error);
        doc.operation(
            format!("{c}.message"),
            "send",
            vec![input],
            Some(replies),
            "The default message handler".into(),
        );
    }
    for route in sorted_routes(channel) {
        let (p, v) = (route.property.as_str(), route.value.as_str());
        let id = format!("{p}.{v}");
        let message = doc.message(
            &id,
            format!("{{\"{p}\":\"{v}\"}}"),
            schema_ref(&name(c, &["route", p, v, "message"])),
        );
        let reply = doc.message(
            &format!("{id}.reply"),
            format!("The reply to {p}:{v}"),
            schema_ref(&name(c, &["route", p, v, "replyFrame"])),
        );
        let error = doc.message(
            &format!("{id}.error"),
            format!("An error answering {p}:{v}"),
            schema_ref(&name(c, &["route", p, v, "errorFrame"])),
        );
        let summary = format!(
            "Route {p}:{v}, input {}{}",
            route.message.input.rust,
            if route.message.auth {
                ", needs a session"
            } else {
                ""
            }
        );
        doc.operation(
            format!("{c}.{id}"),
            "send",
            vec![message],
            Some(vec![reply, error]),
            summary,
        );
    }
    let push = doc.message(
        "push",
        "A push: a frame without a routing key".into(),
        schema_ref(&name(c, &["push"])),
    );
    doc.operation(
        format!("{c}.push"),
        "receive",
        vec![push],
        None,
        "Frames the server sends on its own".into(),
    );
    let mut capabilities: Vec<_> = channel.capabilities.iter().collect();
    capabilities.sort_by(|a, b| a.name.cmp(&b.name));
    for capability in capabilities {
        let n = capability.name.as_str();
        let request = doc.message(
            &format!("rpc.{n}.request"),
            format!("The server calls {n}"),
            schema_ref(&name(c, &["capability", n, "request"])),
        );
        let response = doc.message(
            &format!("rpc.{n}.response"),
            format!("The client's answer to {n}"),
            schema_ref(&name(c, &["capability", n, "response"])),
        );
        doc.operation(
            format!("{c}.rpc.{n}"),
            "receive",
            vec![request],
            Some(vec![response]),
            format!("Reverse RPC: the client's function {n}"),
        );
    }
    if let Some(binary) = &channel.binary {
        let frame = json!({ "name": "binary", "title": "A binary frame", "contentType": "application/octet-stream", "payload": { "type": "string", "format": "binary" } });
        doc.messages.insert("binary".into(), frame);
        let m = json!({ "$ref": format!("#/channels/{}/messages/binary", doc.id) });
        doc.operation(
            format!("{c}.binary"),
            "send",
            vec![m.clone()],
            Some(vec![m]),
            format!(
                "Binary frames{}",
                if binary.auth {
                    ", which need a session"
                } else {
                    ""
                }
            ),
        );
    }
    let mut parameters = Map::new();
    for param in &channel.params {
        parameters.insert(
            component_key(param),
            json!({ "description": format!("The route param `{param}`") }),
        );
    }
    let mut channel_json = json!({
        "address": address(&channel.route),
        "title": channel.name,
        "messages": Value::Object(doc.messages),
    });
    if !parameters.is_empty() {
        channel_json["parameters"] = Value::Object(parameters);
    }
    (doc.id, channel_json, doc.operations)
}

pub(crate) fn render(
    description: &Description,
    schemas: &BTreeMap<String, Value>,
    title: &str,
) -> Value {
    let mut channels = Map::new();
    let mut operations = BTreeMap::new();
    let mut sorted: Vec<&ChannelDesc> = description.channels.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for channel in sorted {
        let (id, doc, ops) = channel_doc(channel);
        channels.insert(id, doc);
        operations.extend(ops);
    }
    let components: Map<String, Value> = schemas
        .iter()
        .map(|(k, v)| {
            // AsyncAPI wants schema objects here: `true` is `{}`, `false` is `{"not": {}}`.
            let v = match v {
                Value::Bool(true) => json!({}),
                Value::Bool(false) => json!({ "not": {} }),
                other => rewrite_refs(other),
            };
            (component_key(k), v)
        })
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": description.version.to_string(),
            "description": "WebSocket channels speaking the Pikku wire protocol. Messages are JSON text frames; a routed message carries its routing key (such as `action`) and its reply carries it back.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations.into_iter().collect::<Map<String, Value>>(),
        "components": { "schemas": components },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_use_braces_for_params() {
        assert_eq!(address("/rooms/:roomId"), "/rooms/{roomId}");
        assert_eq!(address("/rooms/{roomId}/x"), "/rooms/{roomId}/x");
        assert_eq!(address("/events"), "/events");
    }

    #[test]
    fn refs_point_into_components() {
        let schema = json!({"items": {"$ref": "#/$defs/chat::Say"}, "x": [{"$ref": "#/$defs/A"}]});
        assert_eq!(
            rewrite_refs(&schema),
            json!({"items": {"$ref": "#/components/schemas/chat__Say"}, "x": [{"$ref": "#/components/schemas/A"}]})
        );
    }
}
