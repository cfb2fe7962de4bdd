//! Stand-ins for the sending methods of [`Channel`](super::Channel) on a [`ClosedChannel`], so that calling one in a
//! disconnection handler fails to compile with an explanation instead of "no method named `send`".
//!
//! None of them can be called: each requires its receiver to implement a trait that nothing implements, and the
//! traits are out of reach outside this module, so nothing ever will.

use serde_json::Value;

use super::ClosedChannel;
use crate::error::SendError;
use crate::rpc::{Capability, RpcError};

impl<O, SS> ClosedChannel<O, SS> {
    #[doc(hidden)]
    pub fn send<T>(&self, _value: T) -> Result<(), SendError>
    where
        Self: CannotSend,
    {
        unreachable!("nothing implements `CannotSend`")
    }

    #[doc(hidden)]
    pub fn send_binary<T>(&self, _bytes: T) -> Result<(), SendError>
    where
        Self: CannotSend,
    {
        unreachable!("nothing implements `CannotSend`")
    }

    #[doc(hidden)]
    pub fn close(&self)
    where
        Self: CannotClose,
    {
        unreachable!("nothing implements `CannotClose`")
    }

    #[doc(hidden)]
    pub fn close_with<C, R>(&self, _code: C, _reason: R)
    where
        Self: CannotClose,
    {
        unreachable!("nothing implements `CannotClose`")
    }

    // Plain functions returning a ready future, not `async fn`s: an `async fn` would report the unmet bound three
    // times (at the call, the call expression and the `.await`).
    #[doc(hidden)]
    pub fn remote<C: Capability>(
        &self,
        _input: C::Input,
    ) -> std::future::Ready<Result<C::Output, RpcError>>
    where
        Self: CannotCall,
    {
        unreachable!("nothing implements `CannotCall`")
    }

    #[doc(hidden)]
    pub fn remote_raw<F, D, T>(
        &self,
        _func_name: F,
        _data: D,
        _timeout: T,
    ) -> std::future::Ready<Result<Value, RpcError>>
    where
        Self: CannotCall,
    {
        unreachable!("nothing implements `CannotCall`")
    }
}

/// Sending needs an open connection.
#[allow(unreachable_pub)] // named in public bounds, reachable from nowhere
#[diagnostic::on_unimplemented(
    message = "a `ClosedChannel` cannot send: the client is already gone",
    label = "the disconnection handler runs after the connection closed",
    note = "to tell the other clients, publish through `ctx.hub()`; to send this client a last message, send it \
            from a message or connection handler before closing with `Channel::close`"
)]
pub trait CannotSend {}

/// The connection is closed already.
#[allow(unreachable_pub)]
#[diagnostic::on_unimplemented(
    message = "a `ClosedChannel` cannot be closed: the connection is already closed",
    label = "the disconnection handler runs after the connection closed",
    note = "remove the call; to close a connection, call `Channel::close` from a message or connection handler"
)]
pub trait CannotClose {}

/// A call to the client needs the client.
#[allow(unreachable_pub)]
#[diagnostic::on_unimplemented(
    message = "a `ClosedChannel` cannot call the client: the client is already gone",
    label = "the disconnection handler runs after the connection closed",
    note = "call `Channel::remote` from a message or connection handler, while the connection is open"
)]
pub trait CannotCall {}
