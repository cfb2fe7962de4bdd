//! The handler kinds of the seed (connection, message, disconnection) plus binary, and what they may return.
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

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::app::PermissionPlan;
use crate::channel::{Channel, ClosedChannel, Connection, DisconnectReason};
use crate::ctx::Ctx;
use crate::error::ChannelError;
use crate::input::FromInput;
use crate::middleware::check_permissions;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The result of a handler, before it is shaped into a frame (protocol §4.2, §4.3).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The handler declares no output (`()`): a routed reply is just `{key: value}`.
    Nothing,
    /// A value.
    Value(Value),
}

/// What a connection or message handler may return.
///
/// `()` means "no result"; a `Result<T, E>` is a result or an error frame; a [`serde_json::Value`], `String`,
/// `&'static str`, `bool`, `Option<T>` or `Vec<T>` is a result. Return any other serializable type in `Ok(..)`.
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

/// What a disconnection handler may return: `()` or `Result<(), E>` (errors are logged).
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

/// A connection handler (`ChannelConnection<Out>` of the seed): runs once after the upgrade; its result is sent
/// as is.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a connection handler",
    note = "a connection handler is `async fn(Ctx<S, U>, Channel<O, Out, SS>) -> R` where R: IntoReply, and O/SS \
            match the channel's opening-data and socket-state types"
)]
pub trait ConnectHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedConnect<S, U>;
}

impl<F, Fut, S, U, O, SS, Out, R> ConnectHandler<S, U, O, SS, (Out, R)> for F
where
    F: Fn(Ctx<S, U>, Channel<O, Out, SS>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoReply,
    O: Send + Sync + 'static,
    S: 'static,
    U: 'static,
    Out: 'static,
    SS: 'static,
{
    fn erase(self) -> ErasedConnect<S, U> {
        Arc::new(move |ctx, conn| {
            let fut = self(ctx, Channel::new(conn));
            Box::pin(async move { fut.await.into_reply() })
        })
    }
}

/// A message handler (`ChannelMessage<In, Out>` of the seed): runs per routed or default message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a message handler",
    note = "a message handler is `async fn(Ctx<S, U>, Channel<O, Out, SS>, In) -> R` where In: FromInput (any \
            DeserializeOwned type) and R: IntoReply, and O/SS match the channel's types"
)]
pub trait MessageHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedMessage<S, U>;
}

impl<F, Fut, S, U, O, SS, In, Out, R> MessageHandler<S, U, O, SS, (In, Out, R)> for F
where
    F: Fn(Ctx<S, U>, Channel<O, Out, SS>, In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    In: FromInput,
    R: IntoReply,
    O: Send + Sync + 'static,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    Out: 'static,
    SS: 'static,
{
    fn erase(self) -> ErasedMessage<S, U> {
        let handler = Arc::new(self);
        Arc::new(move |ctx, conn, value, permissions| match permissions {
            // Validation, then permissions over the validated input, then the handler (semantics §5.2).
            Some(plan) => {
                let raw = Arc::new(value.clone());
                let handler = handler.clone();
                Box::pin(async move {
                    let input = In::from_input(value)?;
                    check_permissions(&plan, &ctx, raw).await?;
                    handler(ctx, Channel::new(conn), input).await.into_reply()
                })
            }
            None => match In::from_input(value) {
                Ok(input) => {
                    let fut = handler(ctx, Channel::new(conn), input);
                    Box::pin(async move { fut.await.into_reply() })
                }
                Err(err) => Box::pin(std::future::ready(Err(err))),
            },
        })
    }
}

/// A binary handler: runs per binary frame; returned bytes go back as a binary frame.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a binary handler",
    note = "a binary handler is `async fn(Ctx<S, U>, Channel<O, Out, SS>, Bytes) -> B` where B: IntoBinaryReply"
)]
pub trait BinaryHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedBinary<S, U>;
}

impl<F, Fut, S, U, O, SS, Out, B> BinaryHandler<S, U, O, SS, (Out, B)> for F
where
    F: Fn(Ctx<S, U>, Channel<O, Out, SS>, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = B> + Send + 'static,
    B: IntoBinaryReply,
    O: Send + Sync + 'static,
    S: 'static,
    U: 'static,
    Out: 'static,
    SS: 'static,
{
    fn erase(self) -> ErasedBinary<S, U> {
        Arc::new(move |ctx, conn, bytes| {
            let fut = self(ctx, Channel::new(conn), bytes);
            Box::pin(async move { fut.await.into_binary_reply() })
        })
    }
}

/// A disconnection handler (`ChannelDisconnection` of the seed): runs once after the close, with a channel view
/// that cannot send (D13).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a disconnection handler",
    note = "a disconnection handler is `async fn(Ctx<S, U>, ClosedChannel<O, SS>)` returning () or Result<(), E>; \
            it gets a ClosedChannel, which cannot send"
)]
pub trait DisconnectHandler<S, U, O, SS, M>: Send + Sync + 'static {
    /// Erases the handler for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedDisconnect<S, U>;
}

impl<F, Fut, S, U, O, SS, D> DisconnectHandler<S, U, O, SS, (D,)> for F
where
    F: Fn(Ctx<S, U>, ClosedChannel<O, SS>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = D> + Send + 'static,
    D: IntoDisconnectOutcome,
    O: Send + Sync + 'static,
    S: 'static,
    U: 'static,
    SS: 'static,
{
    fn erase(self) -> ErasedDisconnect<S, U> {
        Arc::new(move |ctx, conn, reason| {
            let fut = self(ctx, ClosedChannel::new(conn, reason));
            Box::pin(async move { fut.await.into_outcome() })
        })
    }
}
