//! [`typed`]: the same handler, registered with JSON Schemas for its types.

use bytes::Bytes;
use schemars::JsonSchema;

use super::shape::HandlerFn;
use super::{
    BinaryHandler, ConnectHandler, DisconnectHandler, ErasedBinary, ErasedConnect,
    ErasedDisconnect, ErasedMessage, Json, MessageHandler,
};
use crate::channel::{Channel, ClosedChannel};
use crate::ctx::Ctx;
use crate::describe::{HandlerTypes, ReplyInfo, ReplySchema, TypeInfo};

/// Wraps a handler so that registering it also records the JSON Schemas of its types (input, reply, push and
/// opening data), for [`App::describe`](crate::App::describe) and the generated clients.
///
/// The handler runs exactly as without the wrapper. Its types must implement `schemars::JsonSchema` (derive it
/// next to `serde`'s derives; `schemars` reads `garde`'s validation attributes into the schema); handlers
/// registered without `typed` keep working and are described by type name only.
///
/// ```
/// use pikku::{typed, App, Channel, ChannelError, ChannelRoute, Ctx, Params};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Rename { name: String }
///
/// async fn rename(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Rename) -> Result<String, ChannelError> {
///     Ok(input.name)
/// }
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
///
/// let app = App::new(())
///     .require_schemas()
///     .channel(ChannelRoute::new("profile", "/profile").on_connect(typed(hello)).route("action", "rename", typed(rename)));
/// assert!(app.describe().undescribed().is_empty());
/// ```
#[must_use = "a handler does nothing until it is registered on a channel"]
pub fn typed<H>(handler: H) -> Typed<H> {
    Typed(handler)
}

/// A handler registered with its types' schemas; made by [`typed`].
#[derive(Debug, Clone, Copy)]
pub struct Typed<H>(H);

/// Marks the handler-trait implementations of [`Typed`]; never named.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub enum Described {}

// Kept out of the hints for unrelated mistakes: a wrapped handler fails the same way as a bare one.
#[diagnostic::do_not_recommend]
impl<F, S, U, O, SS, Out, K> ConnectHandler<S, U, O, SS, (Described, Out, K)> for Typed<F>
where
    F: ConnectHandler<S, U, O, SS, (Out, K)> + HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>), K>,
    <F as HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>), K>>::Output: ReplySchema,
    O: JsonSchema,
    Out: JsonSchema + 'static,
{
    fn erase(self) -> ErasedConnect<S, U> {
        self.0.erase()
    }

    fn types() -> HandlerTypes {
        let reply = <<F as HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>), K>>::Output>::reply_info();
        let push = TypeInfo::push::<Out>(TypeInfo::typed::<Out>());
        HandlerTypes::new(TypeInfo::typed::<O>(), None, push, Some(reply))
    }
}

// Kept out of the hints for unrelated mistakes: a wrapped handler fails the same way as a bare one.
#[diagnostic::do_not_recommend]
impl<F, S, U, O, SS, In, Out, K> MessageHandler<S, U, O, SS, (Described, In, Out, K)> for Typed<F>
where
    F: MessageHandler<S, U, O, SS, (In, Out, K)>
        + HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>, In), K>,
    <F as HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>, In), K>>::Output: ReplySchema,
    In: JsonSchema,
    O: JsonSchema,
    Out: JsonSchema + 'static,
{
    fn erase(self) -> ErasedMessage<S, U> {
        self.0.erase()
    }

    fn types() -> HandlerTypes {
        let reply =
            <<F as HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>, In), K>>::Output>::reply_info();
        let push = TypeInfo::push::<Out>(TypeInfo::typed::<Out>());
        HandlerTypes::new(
            TypeInfo::typed::<O>(),
            Some(TypeInfo::typed::<In>()),
            push,
            Some(reply),
        )
    }
}

// Kept out of the hints for unrelated mistakes: a wrapped handler fails the same way as a bare one.
#[diagnostic::do_not_recommend]
impl<F, S, U, O, SS, Out, K> BinaryHandler<S, U, O, SS, (Described, Out, K)> for Typed<F>
where
    F: BinaryHandler<S, U, O, SS, (Out, K)> + HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>, Bytes), K>,
    O: JsonSchema,
    Out: JsonSchema + 'static,
{
    fn erase(self) -> ErasedBinary<S, U> {
        self.0.erase()
    }

    fn types() -> HandlerTypes {
        let push = TypeInfo::push::<Out>(TypeInfo::typed::<Out>());
        HandlerTypes::new(TypeInfo::typed::<O>(), None, push, None)
    }
}

// Kept out of the hints for unrelated mistakes: a wrapped handler fails the same way as a bare one.
#[diagnostic::do_not_recommend]
impl<F, S, U, O, SS, K> DisconnectHandler<S, U, O, SS, (Described, K)> for Typed<F>
where
    F: DisconnectHandler<S, U, O, SS, (K,)> + HandlerFn<(Ctx<S, U>, ClosedChannel<O, SS>), K>,
    O: JsonSchema,
{
    fn erase(self) -> ErasedDisconnect<S, U> {
        self.0.erase()
    }

    fn types() -> HandlerTypes {
        HandlerTypes::new(TypeInfo::typed::<O>(), None, None, None)
    }
}

impl<T: JsonSchema + 'static> ReplySchema for Json<T> {
    fn reply_info() -> ReplyInfo {
        ReplyInfo::value::<Self, T>()
    }
}
