//! JSON Schema (2020-12) to TypeScript types.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::frames::DEFS_PREFIX;

/// TypeScript's reserved words, which cannot name a type.
const RESERVED: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "any",
    "unknown",
    "never",
    "string",
    "number",
    "boolean",
    "object",
    "symbol",
    "bigint",
    "undefined",
];

/// `name` as a PascalCase TypeScript identifier: `realtime-events` → `RealtimeEvents`, `chat::Say` → `ChatSay`.
pub(crate) fn pascal(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            if upper {
                out.extend(ch.to_uppercase());
            } else {
                out.push(ch);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// `name` as a camelCase identifier.
pub(crate) fn camel(name: &str) -> String {
    let pascal = pascal(name);
    let mut chars = pascal.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => pascal,
    }
}

/// Whether `name` can be written as a bare property name.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A property key: bare when it can be, quoted otherwise.
pub(crate) fn key(name: &str) -> String {
    if is_identifier(name) {
        name.to_owned()
    } else {
        string(name)
    }
}

/// A TypeScript string literal.
pub(crate) fn string(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A JSDoc comment (`indent` before each line), or nothing.
pub(crate) fn doc(text: Option<&str>, indent: &str) -> String {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return String::new();
    };
    let text = text.replace("*/", "*\\/");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 {
        return format!("{indent}/** {} */\n", lines[0]);
    }
    let mut out = format!("{indent}/**\n");
    for line in lines {
        out.push_str(&format!("{indent} * {line}\n").replace(" * \n", " *\n"));
    }
    out.push_str(&format!("{indent} */\n"));
    out
}

/// Converts schemas whose `$ref`s point into `defs` (named by `names`).
#[derive(Debug)]
pub(crate) struct TsTypes<'a> {
    names: &'a BTreeMap<String, String>,
}

impl<'a> TsTypes<'a> {
    pub(crate) fn new(names: &'a BTreeMap<String, String>) -> Self {
        Self { names }
    }

    /// The TypeScript type of `schema`, laid out for `indent` (the indentation of the line it starts on).
    pub(crate) fn of(&self, schema: &Value, indent: usize) -> String {
        match schema {
            Value::Bool(true) | Value::Null => "unknown".into(),
            Value::Bool(false) => "never".into(),
            Value::Object(map) => self.object_schema(map, indent),
            _ => "unknown".into(),
        }
    }

    /// As [`of`](Self::of), parenthesized when it is a union or intersection (for `T[]`).
    fn atom(&self, schema: &Value, indent: usize) -> String {
        let ty = self.of(schema, indent);
        if needs_parens(&ty) {
            format!("({ty})")
        } else {
            ty
        }
    }

    fn object_schema(&self, map: &Map<String, Value>, indent: usize) -> String {
        if let Some(Value::String(reference)) = map.get("$ref") {
            return match reference
                .strip_prefix(DEFS_PREFIX)
                .and_then(|n| self.names.get(n))
            {
                Some(name) => name.clone(),
                None => "unknown".into(),
            };
        }
        if let Some(value) = map.get("const") {
            return literal(value);
        }
        let mut parts: Vec<String> = Vec::new();
        if let Some(Value::Array(values)) = map.get("enum") {
            parts.push(union(values.iter().map(literal).collect()));
        } else if let Some(base) = self.by_type(map, indent) {
            parts.push(base);
        }
        for (keyword, joiner) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
            if let Some(Value::Array(members)) = map.get(keyword) {
                let members: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let ty = self.of(m, indent);
                        if needs_parens(&ty) {
                            format!("({ty})")
                        } else {
                            ty
                        }
                    })
                    .collect();
                if !members.is_empty() {
                    let joined = if joiner == " | " {
                        union(members)
                    } else {
                        members.join(joiner)
                    };
                    parts.push(if parts.is_empty() {
                        joined
                    } else {
                        format!("({joined})")
                    });
                }
            }
        }
        let mut ty = match parts.len() {
            0 => "unknown".to_owned(),
            1 => parts.remove(0),
            _ => parts
                .iter()
                .map(|p| {
                    if needs_parens(p) {
                        format!("({p})")
                    } else {
                        p.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" & "),
        };
        if map.get("nullable") == Some(&Value::Bool(true)) && ty != "unknown" {
            ty = union(vec![ty, "null".into()]);
        }
        ty
    }

    /// The type from `type` (or implied by `properties` / `items`).
    fn by_type(&self, map: &Map<String, Value>, indent: usize) -> Option<String> {
        let types: Vec<&str> = match map.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if map.contains_key("properties") || map.contains_key("additionalProperties") => {
                vec!["object"]
            }
            _ if map.contains_key("items") || map.contains_key("prefixItems") => vec!["array"],
            _ => return None,
        };
        let parts = types
            .into_iter()
            .map(|t| match t {
                "string" => "string".to_owned(),
                "integer" | "number" => "number".to_owned(),
                "boolean" => "boolean".to_owned(),
                "null" => "null".to_owned(),
                "array" => self.array(map, indent),
                "object" => self.object(map, indent),
                _ => "unknown".to_owned(),
            })
            .collect();
        Some(union(parts))
    }

    fn array(&self, map: &Map<String, Value>, indent: usize) -> String {
        if let Some(Value::Array(prefix)) = map.get("prefixItems") {
            let mut members: Vec<String> = prefix.iter().map(|s| self.of(s, indent)).collect();
            match map.get("items") {
                Some(Value::Bool(false)) => {}
                Some(items) => members.push(format!("...{}[]", self.atom(items, indent))),
                None => members.push("...unknown[]".into()),
            }
            return format!("[{}]", members.join(", "));
        }
        match map.get("items") {
            Some(items) => format!("{}[]", self.atom(items, indent)),
            None => "unknown[]".into(),
        }
    }

    fn object(&self, map: &Map<String, Value>, indent: usize) -> String {
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties = map.get("properties").and_then(Value::as_object);
        let additional = map.get("additionalProperties");
        let pad = " ".repeat(indent + 2);
        let mut lines = Vec::new();
        if let Some(properties) = properties {
            for (name, schema) in properties {
                let optional = if required.contains(&name.as_str()) {
                    ""
                } else {
                    "?"
                };
                lines.push(format!(
                    "{}{pad}{}{optional}: {}",
                    doc(schema.get("description").and_then(Value::as_str), &pad),
                    key(name),
                    self.of(schema, indent + 2)
                ));
            }
        }
        let has_properties = properties.is_some_and(|p| !p.is_empty());
        match additional {
            Some(Value::Bool(false)) => {}
            Some(schema @ Value::Object(_)) if !has_properties => {
                return format!("{{ [key: string]: {} }}", self.of(schema, indent));
            }
            Some(Value::Bool(true)) | None if !has_properties => {
                return "{ [key: string]: unknown }".into();
            }
            // Members beyond the listed ones are left out of the type, so literals with a typo fail to compile.
            None => {}
            Some(_) => lines.push(format!("{pad}[key: string]: unknown")),
        }
        if lines.is_empty() {
            return "Record<string, never>".into();
        }
        format!("{{\n{}\n{}}}", lines.join("\n"), " ".repeat(indent))
    }
}

/// A JSON value as a TypeScript literal type.
fn literal(value: &Value) -> String {
    match value {
        Value::String(s) => string(s),
        Value::Number(_) | Value::Bool(_) | Value::Null => value.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", key(k), literal(v)))
                .collect();
            format!("{{ {} }}", members.join("; "))
        }
    }
}

/// Members joined by ` | `, without duplicates; `unknown` absorbs the rest, `never` disappears.
fn union(members: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for member in members {
        if member == "never" || seen.contains(&member) {
            continue;
        }
        if member == "unknown" {
            return "unknown".into();
        }
        seen.push(member);
    }
    match seen.len() {
        0 => "never".into(),
        _ => seen.join(" | "),
    }
}

/// Whether `ty` has a top-level `|` or `&` (outside braces, brackets, parens and strings).
pub(crate) fn needs_parens(ty: &str) -> bool {
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    for ch in ty.chars() {
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '{' | '[' | '(' | '<' => depth += 1,
            '}' | ']' | ')' | '>' => depth -= 1,
            '|' | '&' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(schema: Value) -> String {
        let names = BTreeMap::from([("Say".to_owned(), "Say".to_owned())]);
        TsTypes::new(&names).of(&schema, 0)
    }

    #[test]
    fn scalars_enums_unions_and_refs() {
        assert_eq!(ts(json!({"type": "string"})), "string");
        assert_eq!(ts(json!({"type": ["integer", "null"]})), "number | null");
        assert_eq!(ts(json!({"enum": ["a", "b"]})), "\"a\" | \"b\"");
        assert_eq!(
            ts(json!({"oneOf": [{"$ref": "#/$defs/Say"}, {"type": "null"}]})),
            "Say | null"
        );
        assert_eq!(
            ts(json!({"type": "array", "items": {"type": ["string", "null"]}})),
            "(string | null)[]"
        );
        assert_eq!(
            ts(json!({"type": "object", "additionalProperties": {"type": "integer"}})),
            "{ [key: string]: number }"
        );
        assert_eq!(ts(json!(true)), "unknown");
        assert_eq!(
            ts(json!({"type": "string", "nullable": true})),
            "string | null"
        );
        assert_eq!(
            ts(json!({"prefixItems": [{"type": "string"}], "items": false})),
            "[string]"
        );
    }

    #[test]
    fn objects_mark_optional_members() {
        assert_eq!(
            ts(
                json!({"type": "object", "properties": {"a": {"type": "string"}, "b-c": {"type": "number"}},
                "required": ["a"], "additionalProperties": false})
            ),
            "{\n  a: string\n  \"b-c\"?: number\n}"
        );
    }

    #[test]
    fn names_become_identifiers() {
        assert_eq!(pascal("realtime-events"), "RealtimeEvents");
        assert_eq!(pascal("chat::Say"), "ChatSay");
        assert_eq!(camel("realtime-events"), "realtimeEvents");
    }
}
