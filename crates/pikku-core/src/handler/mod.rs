//! The handler kinds of Pikku (connection, message, disconnection) plus binary, and what they may return.
//!
//! Handlers are plain async functions or closures:
//!
//! | kind | signature |
//! |---|---|
//! | connection | `async fn(Ctx<S, U>, Channel<O, Out, SS>) -> R` |
//! | message | `async fn(Ctx<S, U>, Channel<O, Out, SS>, In) -> R` |
//! | binary | `async fn(Ctx<S, U>, Channel<O, Out, SS>, Bytes) -> B` |
//! | disconnection | `async fn(Ctx<S, U>, ClosedChannel<O, SS>) -> D` |
//!
//! `R` is anything [`IntoReply`], `B` anything [`IntoBinaryReply`], `D` is `()` or `Result<(), E>`. Each is
//! erased into one boxed function at registration, so the router's type does not grow with its routes.
//!
//! # When a handler does not compile
//! The error names the handler, shows the signature it should have and says what to write. The usual causes:
//!
//! - Parameters out of order: the context comes first, then the channel, then the message (or the bytes).
//! - A plain `fn`, or a closure that returns no future: handlers are `async fn`s or `|..| async move { .. }`.
//! - A wrong number of parameters, or a `Channel` in a disconnection handler: it takes a [`ClosedChannel`].
//! - One handler's `Channel<O, _, SS>` differs from the others': all handlers of a channel share the opening data
//!   `O` and the socket state `SS` (the label shows the channel's; `Params` shows as `HashMap<String, String>`).
//! - A result that is not a reply, such as your own struct: return `Ok(value)` or [`Json`]`(value)`.
//! - A future that is not `Send`: the error points at the value held across an `.await` (an `Rc`, a `RefCell`
//!   borrow, a `std::sync::MutexGuard`). Drop it before the `.await`, or use `Arc` and `tokio::sync::Mutex`.
//! - Sending, closing or calling the client from a disconnection handler: the client is gone; publish through
//!   [`Ctx::hub`] to tell the others.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use pikku::{Channel, ChannelRoute, Ctx, Params};
//!
//! async fn bump(ctx: Ctx<Arc<Mutex<u64>>, ()>, _ch: Channel<Params, ()>, _in: ()) -> u64 {
//!     // The guard ends with its block, before the `.await`, so the future stays `Send`.
//!     let count = {
//!         let mut count = ctx.state().lock().unwrap();
//!         *count += 1;
//!         *count
//!     };
//!     tokio::task::yield_now().await;
//!     count
//! }
//!
//! let channel = ChannelRoute::new("counter", "/counter").route("action", "bump", bump);
//! # let _ = channel;
//! ```

use std::any::TypeId;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::channel::{Channel, ClosedChannel, Connection, DisconnectReason};
use crate::ctx::Ctx;
use crate::describe::{HandlerTypes, ReplyInfo, TypeInfo};
use crate::error::ChannelError;
use crate::input::FromInput;
use crate::permission::{check_permissions, PermissionPlan};

mod typed;

#[doc(hidden)]
pub use typed::Described;
pub use typed::{typed, Typed};

pub use crate::future::BoxFuture;

/// The result of a handler, before it is shaped into a frame.
///
/// Middleware sees it as the `Ok` value of [`Next::run`](crate::Next::run) and may inspect or replace it. For the
/// default route and onConnect, a `Value` is sent as is and `Nothing` sends nothing; for a routed message it
/// becomes `{key: value, ..}`.
///
/// ```
/// use pikku::{ChannelError, MiddlewareCtx, Next, Reply};
///
/// // Adds a server timestamp to every object reply.
/// async fn stamp(_mw: MiddlewareCtx<(), ()>, next: Next<(), ()>) -> Result<Reply, ChannelError> {
///     match next.run().await? {
///         Reply::Value(serde_json::Value::Object(mut map)) => {
///             map.insert("at".into(), 1_700_000_000.into());
///             Ok(Reply::Value(map.into()))
///         }
///         other => Ok(other),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The handler declares no output (`()`): a routed reply is just `{key: value}`, other invocations send
    /// nothing.
    Nothing,
    /// A value (`null` included, for `None`).
    Value(Value),
}

/// What a connection or message handler may return.
///
/// `()` means "no result"; a `Result<T, E>` is a result or an error frame (`E` is anything that converts into a
/// [`ChannelError`], and `Ok(())` is "no result"); a [`serde_json::Value`], `String`, `&'static str`, `bool`,
/// `i32`, `i64`, `u32`, `u64`, `f64`, `Option<T>` or `Vec<T>` is a result (`None` is `null`). Return any other
/// serializable type in `Ok(..)` or wrapped in [`Json`]. A value that fails to serialize becomes an internal error.
///
/// ```
/// use pikku::{ChannelError, IntoReply, Reply};
/// use serde_json::json;
///
/// assert_eq!(().into_reply().unwrap(), Reply::Nothing);
/// assert_eq!("hello".into_reply().unwrap(), Reply::Value(json!("hello")));
/// assert_eq!(None::<u32>.into_reply().unwrap(), Reply::Value(json!(null)));
/// assert_eq!(Ok::<(), ChannelError>(()).into_reply().unwrap(), Reply::Nothing);
///
/// #[derive(serde::Serialize)]
/// struct Created { id: u32 }
/// assert_eq!(Ok::<_, ChannelError>(Created { id: 1 }).into_reply().unwrap(), Reply::Value(json!({"id": 1})));
///
/// let err = Err::<u32, _>(ChannelError::not_found("No such item")).into_reply().unwrap_err();
/// assert_eq!(err.name(), "NotFoundError");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler's reply",
    label = "this handler returns `{Self}`",
    note = "return `Ok(value)` (a `Result<T, ChannelError>`) or `Json(value)` (`pikku::Json`) for a \
            `serde::Serialize` type of your own, after `#[derive(serde::Serialize)]` on it",
    note = "`()`, `serde_json::Value`, `String`, `&'static str`, `bool`, `i32`, `i64`, `u32`, `u64`, `f64`, \
            `Option<T>` and `Vec<T>` are replies as they are"
)]
pub trait IntoReply {
    /// Converts into a reply or an error.
    ///
    /// # Errors
    /// The handler failed, or its value did not serialize.
    fn into_reply(self) -> Result<Reply, ChannelError>;
}

impl IntoReply for () {
    fn into_reply(self) -> Result<Reply, ChannelError> {
        Ok(Reply::Nothing)
    }
}

impl IntoReply for Reply {
    fn into_reply(self) -> Result<Reply, ChannelError> {
        Ok(self)
    }
}

impl IntoReply for Value {
    fn into_reply(self) -> Result<Reply, ChannelError> {
        Ok(Reply::Value(self))
    }
}

impl<T, E> IntoReply for Result<T, E>
where
    T: Serialize + 'static,
    E: Into<ChannelError>,
{
    fn into_reply(self) -> Result<Reply, ChannelError> {
        let value = self.map_err(Into::into)?;
        // `Ok(())` keeps the "no result" meaning of `()`.
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Ok(Reply::Nothing);
        }
        serde_json::to_value(&value)
            .map(Reply::Value)
            .map_err(ChannelError::internal)
    }
}

/// Any serializable value as a handler result, for handlers that cannot fail and return their own type.
///
/// ```
/// use pikku::{Channel, Ctx, IntoReply, Json, Params, Reply};
///
/// #[derive(serde::Serialize)]
/// struct Upper { text: String }
///
/// async fn upper(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, text: String) -> Json<Upper> {
///     Json(Upper { text: text.to_uppercase() })
/// }
///
/// let reply = Json(Upper { text: "HI".into() }).into_reply().unwrap();
/// assert_eq!(reply, Reply::Value(serde_json::json!({"text": "HI"})));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Result<Reply, ChannelError> {
        serde_json::to_value(&self.0)
            .map(Reply::Value)
            .map_err(ChannelError::internal)
    }
}

macro_rules! serialize_reply {
    ($($ty:ty),*) => {$(
        impl IntoReply for $ty {
            fn into_reply(self) -> Result<Reply, ChannelError> {
                serde_json::to_value(&self).map(Reply::Value).map_err(ChannelError::internal)
            }
        }
    )*};
}

serialize_reply!(String, &'static str, bool, i32, i64, u32, u64, f64);

impl<T: Serialize> IntoReply for Option<T> {
    fn into_reply(self) -> Result<Reply, ChannelError> {
        serde_json::to_value(&self)
            .map(Reply::Value)
            .map_err(ChannelError::internal)
    }
}

impl<T: Serialize> IntoReply for Vec<T> {
    fn into_reply(self) -> Result<Reply, ChannelError> {
        serde_json::to_value(&self)
            .map(Reply::Value)
            .map_err(ChannelError::internal)
    }
}

/// What a binary handler may return: bytes to send back as a binary frame, nothing, or an error.
///
/// Implemented for `()`, `Bytes`, `Vec<u8>`, `Option<T>` and `Result<T, E>` (with `T` one of these and `E`
/// anything that converts into a [`ChannelError`]).
///
/// ```
/// use pikku::Bytes;
/// use pikku::{ChannelError, IntoBinaryReply};
///
/// assert_eq!(().into_binary_reply().unwrap(), None);
/// assert_eq!(vec![1u8, 2].into_binary_reply().unwrap(), Some(Bytes::from_static(&[1, 2])));
/// assert_eq!(None::<Bytes>.into_binary_reply().unwrap(), None);
/// let failed: Result<Vec<u8>, ChannelError> = Err(ChannelError::bad_request("Not an image"));
/// assert!(failed.into_binary_reply().is_err());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a binary handler's reply",
    label = "this binary handler returns `{Self}`",
    note = "return `Bytes` or `Vec<u8>` to send a binary frame back, `()` to send nothing, or an `Option` or \
            `Result<_, ChannelError>` of these"
)]
pub trait IntoBinaryReply {
    /// Converts into optional bytes or an error.
    ///
    /// # Errors
    /// The handler failed.
    fn into_binary_reply(self) -> Result<Option<Bytes>, ChannelError>;
}

impl IntoBinaryReply for () {
    fn into_binary_reply(self) -> Result<Option<Bytes>, ChannelError> {
        Ok(None)
    }
}

impl IntoBinaryReply for Bytes {
    fn into_binary_reply(self) -> Result<Option<Bytes>, ChannelError> {
        Ok(Some(self))
    }
}

impl IntoBinaryReply for Vec<u8> {
    fn into_binary_reply(self) -> Result<Option<Bytes>, ChannelError> {
        Ok(Some(Bytes::from(self)))
    }
}

impl<T: IntoBinaryReply> IntoBinaryReply for Option<T> {
    fn into_binary_reply(self) -> Result<Option<Bytes>, ChannelError> {
        self.map_or(Ok(None), IntoBinaryReply::into_binary_reply)
    }
}

impl<T: IntoBinaryReply, E: Into<ChannelError>> IntoBinaryReply for Result<T, E> {
    fn into_binary_reply(self) -> Result<Option<Bytes>, ChannelError> {
        self.map_err(Into::into)?.into_binary_reply()
    }
}

/// What a disconnection handler may return: `()` or `Result<(), E>` (errors are logged; the client is gone).
///
/// ```
/// use pikku::core::handler::IntoDisconnectOutcome;
/// use pikku::{ChannelError, ClosedChannel, Ctx, Params};
///
/// // `?` works in a disconnection handler that returns a `Result`.
/// async fn cleanup(ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) -> Result<(), ChannelError> {
///     ctx.hub().publish("presence", None, &serde_json::json!({ "left": ch.channel_id() })).await?;
///     Ok(())
/// }
///
/// assert!(().into_outcome().is_ok());
/// assert!(Err::<(), _>(ChannelError::internal("cache down")).into_outcome().is_err());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a disconnection handler's result",
    label = "this disconnection handler returns `{Self}`",
    note = "return `()` or `Result<(), E>`: the client is gone, so there is nothing to reply to; log or publish what \
            it should know instead"
)]
pub trait IntoDisconnectOutcome {
    /// Converts into the outcome.
    ///
    /// # Errors
    /// The handler failed.
    fn into_outcome(self) -> Result<(), ChannelError>;
}

impl IntoDisconnectOutcome for () {
    fn into_outcome(self) -> Result<(), ChannelError> {
        Ok(())
    }
}

impl<E: Into<ChannelError>> IntoDisconnectOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), ChannelError> {
        self.map_err(Into::into)
    }
}

pub(crate) type ErasedConnect<S, U> =
    Arc<dyn Fn(Ctx<S, U>, Arc<Connection>) -> BoxFuture<Result<Reply, ChannelError>> + Send + Sync>;
pub(crate) type ErasedMessage<S, U> = Arc<
    dyn Fn(
            Ctx<S, U>,
            Arc<Connection>,
            Value,
            Option<Arc<PermissionPlan<S, U>>>,
        ) -> BoxFuture<Result<Reply, ChannelError>>
        + Send
        + Sync,
>;
pub(crate) type ErasedBinary<S, U> = Arc<
    dyn Fn(Ctx<S, U>, Arc<Connection>, Bytes) -> BoxFuture<Result<Option<Bytes>, ChannelError>>
        + Send
        + Sync,
>;
pub(crate) type ErasedDisconnect<S, U> = Arc<
    dyn Fn(Ctx<S, U>, Arc<Connection>, DisconnectReason) -> BoxFuture<Result<(), ChannelError>>
        + Send
        + Sync,
>;

/// How a handler is called, checked apart from what its future yields.
///
/// [`HandlerFn`](shape::HandlerFn) is implemented for functions and closures of two and three parameters that
/// return a future, and once more, under a bound nothing satisfies, for every type. That second implementation is
/// there for the error messages: with two candidates the compiler tries both, and when neither fits (parameters
/// in the wrong order, a plain `fn`, the wrong number of parameters, another channel's opening data) it reports
/// that the handler trait is not implemented, with that trait's hint, instead of a bare signature mismatch.
/// Whether the future is `Send` and what it yields are checked by the handler traits themselves, so those errors
/// keep pointing at their exact cause (the value held across an `.await`, the type that is not a reply).
mod shape {
    use std::future::Future;

    /// Calls a handler with its arguments as one tuple. Sealed: only implemented here.
    #[allow(unreachable_pub)] // named in public bounds, never reachable from outside
    pub trait HandlerFn<Args, K> {
        /// The future the handler returns.
        type Future: Future<Output = Self::Output>;
        /// What the future yields.
        type Output;
        /// Calls the handler.
        fn call(&self, args: Args) -> Self::Future;
    }

    /// Marks the implementation for two-parameter handlers.
    #[allow(unreachable_pub)]
    #[derive(Debug)]
    pub enum Two {}

    /// Marks the implementation for three-parameter handlers.
    #[allow(unreachable_pub)]
    #[derive(Debug)]
    pub enum Three {}

    /// Marks the implementation that never applies.
    #[allow(unreachable_pub)]
    #[derive(Debug)]
    pub enum Never {}

    /// Implemented by no type: the bound of the implementation that never applies.
    #[allow(unreachable_pub)]
    pub trait Unsatisfiable {}

    impl<F, A, B, Fut> HandlerFn<(A, B), Two> for F
    where
        F: Fn(A, B) -> Fut,
        Fut: Future,
    {
        type Future = Fut;
        type Output = Fut::Output;
        fn call(&self, (a, b): (A, B)) -> Fut {
            self(a, b)
        }
    }

    impl<F, A, B, C, Fut> HandlerFn<(A, B, C), Three> for F
    where
        F: Fn(A, B, C) -> Fut,
        Fut: Future,
    {
        type Future = Fut;
        type Output = Fut::Output;
        fn call(&self, (a, b, c): (A, B, C)) -> Fut {
            self(a, b, c)
        }
    }

    impl<F: Unsatisfiable, Args> HandlerFn<Args, Never> for F {
        type Future = std::future::Pending<()>;
        type Output = ();
        fn call(&self, _args: Args) -> Self::Future {
            unreachable!("no type implements `Unsatisfiable`")
        }
    }
}

use shape::HandlerFn;

/// A connection handler (Pikku's `ChannelConnection<Out>`): runs once after the upgrade; its result is sent
/// as is.
///
/// Implemented for every `async fn(Ctx<S, U>, Channel<O, Out, SS>) -> R` (or closure) where `R:`
/// [`IntoReply`]; register it with [`ChannelRoute::on_connect`](crate::ChannelRoute::on_connect). `M` is an
/// inference marker; never name it. You do not implement this trait.
///
/// ```
/// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params};
///
/// async fn hello(_ctx: Ctx<(), ()>, ch: Channel<Params, String>) -> Result<(), ChannelError> {
///     ch.send(format!("hello {}", ch.channel_id()))?;
///     Ok(())
/// }
///
/// let channel = ChannelRoute::new("events", "/events")
///     .on_connect(hello)
///     // A closure works too (this one replaces `hello`).
///     .on_connect(|_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>| async { "hello!" });
/// # let _ = channel;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a connection handler of this channel",
    label = "expected `async fn(Ctx<{S}, {U}>, Channel<{O}, Out, {SS}>) -> impl IntoReply`",
    note = "write `async fn hello(ctx: Ctx<S, U>, channel: Channel<O, Out, SS>) -> R`: an `async fn`, the context \
            first, then the channel",
    note = "every handler of a channel takes the same opening data `O` and socket state `SS` in its `Channel<O, _, SS>` \
            (`Params` is shown as `HashMap<String, String>`)",
    note = "a closure works too, with typed parameters: `|ctx: Ctx<S, U>, channel: Channel<O, Out, SS>| async move {{ .. }}`",
    note = "inside `typed(..)`, the handler's types (message, reply value, push `Out`, opening data `O`) must also \
            implement `schemars::JsonSchema`: add `#[derive(schemars::JsonSchema)]` to them"
)]
pub trait ConnectHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedConnect<S, U>;

    /// The handler's types, for [`App::describe`](crate::App::describe).
    #[doc(hidden)]
    fn types() -> HandlerTypes
    where
        Self: Sized;
}

impl<F, S, U, O, SS, Out, K> ConnectHandler<S, U, O, SS, (Out, K)> for F
where
    F: HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>), K> + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Output: IntoReply,
    O: Send + Sync + 'static,
    S: 'static,
    U: 'static,
    Out: 'static,
    SS: 'static,
{
    fn types() -> HandlerTypes {
        let reply = ReplyInfo::untyped::<F::Output>();
        let push = TypeInfo::push::<Out>(TypeInfo::untyped::<Out>());
        HandlerTypes::new(TypeInfo::untyped::<O>(), None, push, Some(reply))
    }

    fn erase(self) -> ErasedConnect<S, U> {
        Arc::new(move |ctx, conn| {
            let fut = self.call((ctx, Channel::new(conn)));
            Box::pin(async move { fut.await.into_reply() })
        })
    }
}

/// A message handler (Pikku's `ChannelMessage<In, Out>`): runs per routed or default message.
///
/// Implemented for every `async fn(Ctx<S, U>, Channel<O, Out, SS>, In) -> R` (or closure) where `In:`
/// [`FromInput`] (any `DeserializeOwned` type, `()` to ignore the message, `Valid<T>` to validate it with the
/// `garde` feature) and `R:` [`IntoReply`]. Register it with [`ChannelRoute::route`](crate::ChannelRoute::route),
/// [`ChannelRoute::on_message`](crate::ChannelRoute::on_message) or [`Route::new`](crate::Route::new). `M` is an
/// inference marker; never name it. You do not implement this trait.
///
/// ```
/// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params};
///
/// #[derive(serde::Deserialize)]
/// struct Rename { name: String }
///
/// async fn rename(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Rename) -> Result<String, ChannelError> {
///     if input.name.is_empty() {
///         return Err(ChannelError::bad_request("A name is required"));
///     }
///     Ok(input.name)
/// }
///
/// let channel = ChannelRoute::new("profile", "/profile")
///     .route("action", "rename", rename)
///     .route("action", "ping", |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()| async { "pong" });
/// # let _ = channel;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a message handler",
    label = "expected `async fn(Ctx<{S}, {U}>, Channel<{O}, Out, {SS}>, In) -> impl IntoReply`",
    note = "write `async fn handle(ctx: Ctx<S, U>, channel: Channel<O, Out, SS>, input: In) -> R`: an `async fn`, \
            the context first, then the channel, then the message",
    note = "the message `In` is any `serde::Deserialize` type, `serde_json::Value` to take it as it is, or `()` to \
            ignore it",
    note = "every handler of a channel takes the same opening data `O` and socket state `SS` in its `Channel<O, _, SS>` \
            (`Params` is shown as `HashMap<String, String>`)",
    note = "a closure works too, with typed parameters: `|ctx: Ctx<S, U>, channel: Channel<O, Out, SS>, input: In| \
            async move {{ .. }}`",
    note = "inside `typed(..)`, the handler's types (message, reply value, push `Out`, opening data `O`) must also \
            implement `schemars::JsonSchema`: add `#[derive(schemars::JsonSchema)]` to them"
)]
pub trait MessageHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedMessage<S, U>;

    /// The handler's types, for [`App::describe`](crate::App::describe).
    #[doc(hidden)]
    fn types() -> HandlerTypes
    where
        Self: Sized;
}

impl<F, S, U, O, SS, In, Out, K> MessageHandler<S, U, O, SS, (In, Out, K)> for F
where
    F: HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>, In), K> + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Output: IntoReply,
    In: FromInput,
    O: Send + Sync + 'static,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    Out: 'static,
    SS: 'static,
{
    fn types() -> HandlerTypes {
        let push = TypeInfo::push::<Out>(TypeInfo::untyped::<Out>());
        HandlerTypes::new(
            TypeInfo::untyped::<O>(),
            Some(TypeInfo::untyped::<In>()),
            push,
            Some(ReplyInfo::untyped::<F::Output>()),
        )
    }

    fn erase(self) -> ErasedMessage<S, U> {
        let handler = Arc::new(self);
        Arc::new(move |ctx, conn, value, permissions| match permissions {
            // Validation, then permissions over the validated input, then the handler.
            Some(plan) => {
                let raw = Arc::new(value.clone());
                let handler = handler.clone();
                Box::pin(async move {
                    let input = In::from_input(value)?;
                    check_permissions(&plan, &ctx, raw).await?;
                    handler
                        .call((ctx, Channel::new(conn), input))
                        .await
                        .into_reply()
                })
            }
            None => match In::from_input(value) {
                Ok(input) => {
                    let fut = handler.call((ctx, Channel::new(conn), input));
                    Box::pin(async move { fut.await.into_reply() })
                }
                Err(err) => Box::pin(std::future::ready(Err(err))),
            },
        })
    }
}

/// A binary handler: runs per binary frame; returned bytes go back as a binary frame.
///
/// Implemented for every `async fn(Ctx<S, U>, Channel<O, Out, SS>, Bytes) -> B` (or closure) where `B:`
/// [`IntoBinaryReply`]; register it with [`ChannelRoute::on_binary`](crate::ChannelRoute::on_binary). `M` is an
/// inference marker; never name it. You do not implement this trait.
///
/// ```
/// use pikku::Bytes;
/// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params};
///
/// async fn checksum(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, bytes: Bytes) -> Result<Vec<u8>, ChannelError> {
///     if bytes.is_empty() {
///         return Err(ChannelError::bad_request("Empty upload"));
///     }
///     let sum = bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
///     Ok(vec![sum])
/// }
///
/// let channel = ChannelRoute::new("uploads", "/uploads").on_binary(checksum);
/// # let _ = channel;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a binary handler of this channel",
    label = "expected `async fn(Ctx<{S}, {U}>, Channel<{O}, Out, {SS}>, Bytes) -> impl IntoBinaryReply`",
    note = "write `async fn upload(ctx: Ctx<S, U>, channel: Channel<O, Out, SS>, bytes: Bytes) -> B`: an `async fn`, \
            the context first, then the channel, then the frame's bytes",
    note = "every handler of a channel takes the same opening data `O` and socket state `SS` in its `Channel<O, _, SS>` \
            (`Params` is shown as `HashMap<String, String>`)",
    note = "a closure works too, with typed parameters: `|ctx: Ctx<S, U>, channel: Channel<O, Out, SS>, bytes: \
            Bytes| async move {{ .. }}`",
    note = "inside `typed(..)`, the handler's types (message, reply value, push `Out`, opening data `O`) must also \
            implement `schemars::JsonSchema`: add `#[derive(schemars::JsonSchema)]` to them"
)]
pub trait BinaryHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedBinary<S, U>;

    /// The handler's types, for [`App::describe`](crate::App::describe).
    #[doc(hidden)]
    fn types() -> HandlerTypes
    where
        Self: Sized;
}

impl<F, S, U, O, SS, Out, K> BinaryHandler<S, U, O, SS, (Out, K)> for F
where
    F: HandlerFn<(Ctx<S, U>, Channel<O, Out, SS>, Bytes), K> + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Output: IntoBinaryReply,
    O: Send + Sync + 'static,
    S: 'static,
    U: 'static,
    Out: 'static,
    SS: 'static,
{
    fn types() -> HandlerTypes {
        let push = TypeInfo::push::<Out>(TypeInfo::untyped::<Out>());
        HandlerTypes::new(TypeInfo::untyped::<O>(), None, push, None)
    }

    fn erase(self) -> ErasedBinary<S, U> {
        Arc::new(move |ctx, conn, bytes| {
            let fut = self.call((ctx, Channel::new(conn), bytes));
            Box::pin(async move { fut.await.into_binary_reply() })
        })
    }
}

/// A disconnection handler (Pikku's `ChannelDisconnection`): runs once after the close, with a channel view
/// that cannot send.
///
/// Implemented for every `async fn(Ctx<S, U>, ClosedChannel<O, SS>) -> D` (or closure) where `D:`
/// [`IntoDisconnectOutcome`] (`()` or `Result<(), E>`); register it with
/// [`ChannelRoute::on_disconnect`](crate::ChannelRoute::on_disconnect). `M` is an inference marker; never name it.
/// You do not implement this trait.
///
/// ```
/// use pikku::{ChannelRoute, ClosedChannel, Ctx, Params};
///
/// async fn bye(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
///     tracing::info!(id = ch.channel_id(), reason = %ch.reason(), "disconnected");
/// }
///
/// let channel = ChannelRoute::new("events", "/events").on_disconnect(bye);
/// # let _ = channel;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a disconnection handler of this channel",
    label = "expected `async fn(Ctx<{S}, {U}>, ClosedChannel<{O}, {SS}>)`",
    note = "write `async fn bye(ctx: Ctx<S, U>, channel: ClosedChannel<O, SS>)`: an `async fn`, the context first, \
            then a `ClosedChannel` (not a `Channel`: the client is gone, nothing can be sent to it)",
    note = "every handler of a channel takes the same opening data `O` and socket state `SS` \
            (`Params` is shown as `HashMap<String, String>`)",
    note = "a closure works too, with typed parameters: `|ctx: Ctx<S, U>, channel: ClosedChannel<O, SS>| async move {{ .. }}`",
    note = "inside `typed(..)`, the handler's types (message, reply value, push `Out`, opening data `O`) must also \
            implement `schemars::JsonSchema`: add `#[derive(schemars::JsonSchema)]` to them"
)]
pub trait DisconnectHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedDisconnect<S, U>;

    /// The handler's types, for [`App::describe`](crate::App::describe).
    #[doc(hidden)]
    fn types() -> HandlerTypes
    where
        Self: Sized;
}

impl<F, S, U, O, SS, K> DisconnectHandler<S, U, O, SS, (K,)> for F
where
    F: HandlerFn<(Ctx<S, U>, ClosedChannel<O, SS>), K> + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Output: IntoDisconnectOutcome,
    O: Send + Sync + 'static,
    S: 'static,
    U: 'static,
    SS: 'static,
{
    fn types() -> HandlerTypes {
        HandlerTypes::new(TypeInfo::untyped::<O>(), None, None, None)
    }

    fn erase(self) -> ErasedDisconnect<S, U> {
        Arc::new(move |ctx, conn, reason| {
            let fut = self.call((ctx, ClosedChannel::new(conn, reason)));
            Box::pin(async move { fut.await.into_outcome() })
        })
    }
}
