//! The types a handler was registered with, recorded as function pointers: nothing is computed until
//! [`App::describe`](crate::App::describe) asks.

use std::any::{type_name, TypeId};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

/// Writes a type's schema into a generator (named types go to its definitions) and returns the reference to it.
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema + ?Sized>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One type of a handler: its name and, when described, how to write its schema. Part of the handler traits'
/// hidden registration interface.
#[doc(hidden)]
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)]
pub struct TypeInfo {
    rust: fn() -> &'static str,
    schema: Option<SchemaFn>,
}

impl TypeInfo {
    /// A type known by name only.
    #[must_use]
    pub fn untyped<T: ?Sized>() -> Self {
        Self {
            rust: type_name::<T>,
            schema: None,
        }
    }

    /// A type with a schema.
    #[must_use]
    pub fn typed<T: JsonSchema + ?Sized>() -> Self {
        Self {
            rust: type_name::<T>,
            schema: Some(schema_of::<T>),
        }
    }

    /// `None` for `()`: a push type of `()` means the handler pushes nothing.
    #[must_use]
    pub fn push<T: 'static>(info: Self) -> Option<Self> {
        (TypeId::of::<T>() != TypeId::of::<()>()).then_some(info)
    }

    pub(crate) fn is_typed(&self) -> bool {
        self.schema.is_some()
    }

    pub(crate) fn rust_name(&self) -> &'static str {
        (self.rust)()
    }

    pub(crate) fn schema(&self, generator: &mut SchemaGenerator) -> Option<Value> {
        self.schema.map(|write| write(generator).to_value())
    }
}

/// What a handler returns, as far as its registration knows. Part of the handler traits' hidden registration
/// interface.
#[doc(hidden)]
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)]
pub struct ReplyInfo {
    pub(crate) rust: fn() -> &'static str,
    pub(crate) value: ReplyValue,
}

#[derive(Clone, Copy)]
pub(crate) enum ReplyValue {
    /// Not described: only the name is known.
    Untyped,
    /// The handler declares no value.
    Nothing,
    /// A value with this schema.
    Schema(SchemaFn),
}

impl ReplyInfo {
    /// A reply type known by name only.
    #[must_use]
    pub fn untyped<R: ?Sized>() -> Self {
        Self {
            rust: type_name::<R>,
            value: ReplyValue::Untyped,
        }
    }

    /// A reply `R` that carries no value.
    #[must_use]
    pub fn nothing<R: ?Sized>() -> Self {
        Self {
            rust: type_name::<R>,
            value: ReplyValue::Nothing,
        }
    }

    /// A reply `R` whose value is a `T`; `()` counts as no value.
    #[must_use]
    pub fn value<R: ?Sized, T: JsonSchema + 'static>() -> Self {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Self::nothing::<R>();
        }
        Self {
            rust: type_name::<R>,
            value: ReplyValue::Schema(schema_of::<T>),
        }
    }
}

/// The types of one registered handler. Part of the handler traits' hidden registration interface.
#[doc(hidden)]
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)]
pub struct HandlerTypes {
    pub(crate) opening: TypeInfo,
    pub(crate) input: Option<TypeInfo>,
    pub(crate) push: Option<TypeInfo>,
    pub(crate) reply: Option<ReplyInfo>,
}

impl HandlerTypes {
    /// The types of a handler; `None` for what its kind does not have.
    #[must_use]
    pub fn new(
        opening: TypeInfo,
        input: Option<TypeInfo>,
        push: Option<TypeInfo>,
        reply: Option<ReplyInfo>,
    ) -> Self {
        Self {
            opening,
            input,
            push,
            reply,
        }
    }
}

/// A handler result whose value has a JSON Schema, so [`typed`](crate::typed) can describe it.
///
/// Implemented for the replies of [`IntoReply`](crate::IntoReply) whose value type implements
/// `schemars::JsonSchema`: `()`, `Result<T, E>`, [`Json<T>`](crate::Json), `Option<T>`, `Vec<T>`, the scalars,
/// and `serde_json::Value` (any JSON).
///
/// ```
/// use pikku::describe::ReplySchema;
///
/// fn describable<R: ReplySchema>() {}
/// describable::<Result<Vec<String>, pikku::ChannelError>>();
/// describable::<pikku::Json<u32>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no JSON Schema, so `typed(..)` cannot describe this handler's reply",
    label = "this handler returns `{Self}`",
    note = "add `#[derive(schemars::JsonSchema)]` to the type inside the `Result`, `Json`, `Option` or `Vec`, \
            or register the handler without `typed(..)`"
)]
pub trait ReplySchema {
    /// The reply's type and the schema of its value.
    #[doc(hidden)]
    fn reply_info() -> ReplyInfo;
}

impl ReplySchema for () {
    fn reply_info() -> ReplyInfo {
        ReplyInfo::nothing::<()>()
    }
}

impl<T: JsonSchema + 'static, E> ReplySchema for Result<T, E> {
    fn reply_info() -> ReplyInfo {
        ReplyInfo::value::<Self, T>()
    }
}

impl<T: JsonSchema + 'static> ReplySchema for Option<T> {
    fn reply_info() -> ReplyInfo {
        ReplyInfo::value::<Self, Self>()
    }
}

impl<T: JsonSchema + 'static> ReplySchema for Vec<T> {
    fn reply_info() -> ReplyInfo {
        ReplyInfo::value::<Self, Self>()
    }
}

macro_rules! scalar_replies {
    ($($t:ty),*) => {$(
        impl ReplySchema for $t {
            fn reply_info() -> ReplyInfo {
                ReplyInfo::value::<Self, Self>()
            }
        }
    )*};
}

scalar_replies!(Value, String, &'static str, bool, i32, i64, u32, u64, f64);
