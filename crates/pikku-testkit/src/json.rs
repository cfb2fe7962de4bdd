//! JSON comparison with a wildcard.

use serde_json::Value;

/// Wildcard for [`json_mismatch`]: in an expected value, this string matches any non-empty string (such as an
/// `errorId` or a validation message, whose value is not fixed).
pub const ANY: &str = "<any>";

/// Compares JSON values with member order irrelevant, treating the string [`ANY`] in `expected` as "any
/// non-empty string". Returns a description of the first difference, with its JSON Pointer, or `None` when the
/// values match.
#[must_use]
pub fn json_mismatch(actual: &Value, expected: &Value) -> Option<String> {
    mismatch_at(actual, expected, "")
}

fn mismatch_at(actual: &Value, expected: &Value, path: &str) -> Option<String> {
    match (actual, expected) {
        (_, Value::String(e)) if e == ANY => match actual {
            Value::String(a) if !a.is_empty() => None,
            _ => Some(format!(
                "at '{path}': expected a non-empty string, got {actual}"
            )),
        },
        (Value::Object(a), Value::Object(e)) => {
            if let Some(key) = e.keys().find(|k| !a.contains_key(*k)) {
                return Some(format!("at '{path}': member '{key}' is missing"));
            }
            if let Some(key) = a.keys().find(|k| !e.contains_key(*k)) {
                return Some(format!("at '{path}': unexpected member '{key}'"));
            }
            e.iter()
                .find_map(|(key, ev)| mismatch_at(&a[key], ev, &format!("{path}/{key}")))
        }
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return Some(format!(
                    "at '{path}': expected {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            a.iter()
                .zip(e)
                .enumerate()
                .find_map(|(i, (av, ev))| mismatch_at(av, ev, &format!("{path}/{i}")))
        }
        _ if actual == expected => None,
        _ => Some(format!("at '{path}': expected {expected}, got {actual}")),
    }
}

/// Panics unless `actual` matches `expected` per [`json_mismatch`].
#[track_caller]
pub fn assert_json_matches(actual: &Value, expected: &Value) {
    if let Some(diff) = json_mismatch(actual, expected) {
        panic!("JSON mismatch {diff}\n  expected: {expected}\n  actual:   {actual}");
    }
}
