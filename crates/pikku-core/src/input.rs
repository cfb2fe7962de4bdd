//! Turning a message's JSON into a handler's typed input, with JSON-Pointer validation details.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ChannelError, ErrorDetail};

const INVALID_MESSAGE: &str = "Invalid message data";

/// A type a message handler can take as input (the last argument of a message handler).
///
/// Every `DeserializeOwned` type is one; `()` ignores whatever the message carries, and
/// [`serde_json::Value`] takes the message as it is. Wrap a type in `Valid` (feature `garde`) to also check its declared
/// `garde` constraints. Input that does not fit is answered with an `UnprocessableContentError` frame whose
/// `details` point at the offending member; the handler does not run.
///
/// ```
/// use pikku::FromInput;
/// use serde_json::json;
///
/// #[derive(serde::Deserialize, Debug)]
/// struct Create { title: String }
///
/// let ok = Create::from_input(json!({"title": "x"})).unwrap();
/// assert_eq!(ok.title, "x");
///
/// let err = Create::from_input(json!({"title": 5})).unwrap_err();
/// assert_eq!(err.name(), "UnprocessableContentError");
/// assert_eq!(err.client_message(), "Invalid message data");
/// assert_eq!(err.details()[0].path, "/title");
///
/// <()>::from_input(json!({"anything": 1})).unwrap(); // `()` ignores the message
/// ```
pub trait FromInput: Sized + Send + 'static {
    /// Builds the input from the message's JSON (for a routed message, without the routing member), or fails
    /// with `UnprocessableContentError` and details.
    ///
    /// # Errors
    /// The value does not fit the type or its constraints.
    fn from_input(value: Value) -> Result<Self, ChannelError>;
}

impl<T: DeserializeOwned + Send + 'static> FromInput for T {
    fn from_input(value: Value) -> Result<Self, ChannelError> {
        // Untyped input is handed over as it is, without a round trip through serde.
        let mut slot = Some(value);
        if let Some(same) = (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
            return Ok(same.take().expect("the slot was just filled"));
        }
        let value = slot.take().expect("the slot was just filled");
        // A handler whose input type is `()` ignores the message's members.
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return deserialize(Value::Null);
        }
        deserialize(value)
    }
}

/// Deserializes `value` into `T`, reporting where it failed as a JSON Pointer.
///
/// This is what [`FromInput`] does for plain types; call it yourself to decode a `serde_json::Value` a handler
/// took as is, with the same error the client would get for a typed input. A missing member is reported at the
/// path it should have had.
///
/// ```
/// use pikku::core::input::deserialize;
/// use serde_json::json;
///
/// #[derive(serde::Deserialize, Debug)]
/// struct Item { name: String }
/// #[derive(serde::Deserialize, Debug)]
/// struct Order { items: Vec<Item> }
///
/// let err = deserialize::<Order>(json!({"items": [{"name": "a"}, {}]})).unwrap_err();
/// assert_eq!(err.details()[0].path, "/items/1/name");
/// assert_eq!(err.details()[0].message, "missing field `name`");
/// ```
///
/// # Errors
/// `UnprocessableContentError` `Invalid message data` with one detail.
pub fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, ChannelError> {
    // The common case pays no path tracking; only a failure is decoded again to find where it failed.
    match T::deserialize(&value) {
        Ok(input) => Ok(input),
        Err(_) => deserialize_with_message(&value, INVALID_MESSAGE),
    }
}

/// As [`deserialize`], with the error's client message chosen by the caller (`Invalid opening data`, …).
pub(crate) fn deserialize_with_message<'de, T, D>(
    de: D,
    message: &'static str,
) -> Result<T, ChannelError>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(de).map_err(|err| {
        let mut pointer = pointer_of(err.path());
        let text = err.inner().to_string();
        // serde reports a missing member at its parent; the protocol wants the path it should have had.
        if let Some(field) = missing_field(&text) {
            push_token(&mut pointer, field);
        }
        ChannelError::unprocessable(message, vec![ErrorDetail::new(pointer, text)])
    })
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => push_token(&mut pointer, &index.to_string()),
            Segment::Map { key } => push_token(&mut pointer, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

/// Appends one JSON-Pointer reference token, escaped by RFC 6901.
pub(crate) fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Input that is deserialized and then checked against its declared `garde` constraints (feature `garde`, on by
/// default).
///
/// A value that breaks a constraint is answered with `UnprocessableContentError` `Invalid message data`, one
/// `details` entry per broken constraint, before the handler (and its permissions) run. The derive macro expands
/// to `::garde` paths, so the application depends on `garde` (0.23) itself. The validation context must be
/// `Default` (the default `()` is).
///
/// ```
/// use pikku::{Channel, Ctx, FromInput, Params, Valid};
///
/// #[derive(serde::Deserialize, garde::Validate, Debug)]
/// struct Create {
///     #[garde(length(min = 1, max = 100))]
///     title: String,
/// }
///
/// async fn create(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, Valid(input): Valid<Create>) -> String {
///     input.title
/// }
///
/// // What the pipeline does with `{"action": "create", "title": ""}` before calling `create`:
/// let err = Valid::<Create>::from_input(serde_json::json!({"title": ""})).unwrap_err();
/// assert_eq!(err.name(), "UnprocessableContentError");
/// assert_eq!(err.details()[0].path, "/title");
/// ```
#[cfg(feature = "garde")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid<T>(pub T);

/// The schema of the validated type: `schemars` writes `garde`'s constraints into it.
#[cfg(feature = "garde")]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Valid<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

#[cfg(feature = "garde")]
impl<T> FromInput for Valid<T>
where
    T: DeserializeOwned + garde::Validate + Send + 'static,
    T::Context: Default,
{
    fn from_input(value: Value) -> Result<Self, ChannelError> {
        let input: T = deserialize(value)?;
        match input.validate() {
            Ok(()) => Ok(Valid(input)),
            Err(report) => {
                let details = report
                    .iter()
                    .map(|(path, error)| ErrorDetail::new(garde_pointer(path), error.to_string()))
                    .collect();
                Err(ChannelError::unprocessable(INVALID_MESSAGE, details))
            }
        }
    }
}

/// Converts a garde path into a JSON Pointer (`/a/b/0`), component by component, so keys holding `.`, `[` or `]`
/// keep their meaning. Uses garde's serialized form: a list of `[kind, component]` pairs.
#[cfg(feature = "garde")]
fn garde_pointer(path: &garde::Path) -> String {
    let mut pointer = String::new();
    if let Ok(Value::Array(components)) = serde_json::to_value(path) {
        for component in components {
            if let Value::Array(pair) = component {
                if let [Value::String(kind), Value::String(token)] = pair.as_slice() {
                    if kind != "none" {
                        push_token(&mut pointer, token);
                    }
                }
            }
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Create {
        title: String,
    }

    #[test]
    fn wrong_type_is_reported_at_the_member() {
        let err = Create::from_input(json!({"title": 5})).unwrap_err();
        assert_eq!(err.name(), "UnprocessableContentError");
        assert_eq!(err.details()[0].path, "/title");
    }

    #[test]
    fn missing_member_is_reported_where_it_should_be() {
        let err = Create::from_input(json!({})).unwrap_err();
        assert_eq!(err.details()[0].path, "/title");
    }

    #[test]
    fn unit_input_ignores_members() {
        <()>::from_input(json!({"anything": 1})).unwrap();
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        let mut p = String::new();
        push_token(&mut p, "a/b~c");
        assert_eq!(p, "/a~1b~0c");
    }

    #[cfg(feature = "garde")]
    #[test]
    fn garde_paths_become_pointers() {
        let path = garde::Path::new("items").join(0usize).join("example.com");
        assert_eq!(garde_pointer(&path), "/items/0/example.com");
        assert_eq!(garde_pointer(&garde::Path::empty()), "");
    }
}
