//! The channel object handed to handlers (the seed's `PikkuChannel`), and its closed, read-only counterpart.
//!
//! # Lifecycle
//! A connection starts `Initial` when its upgrade passed every check, becomes `Open` once the 101 response is
//! written, and ends `Closed`. Sends made while `Initial` are queued until the connection opens; once `Closed`,
//! [`Channel::send`] returns [`SendError::Closed`] and [`Channel::close`] does nothing.
//!
//! # Stale handles
//! A `Channel` is cheap to clone and may be moved into a spawned task. It never keeps a closed connection alive in
//! any useful sense: every send through a stale handle returns `Err(SendError::Closed)`.

mod connection;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

pub use connection::{CloseRequest, Connection, ConnectionLimits, Outgoing, SlowConsumerPolicy};

use crate::error::SendError;
use crate::frame::{encode_value, OutFrame};
use crate::rpc::{Capability, RpcError};

/// The lifecycle state of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChannelState {
    /// The upgrade was accepted but the 101 response is not written yet.
    Initial = 0,
    /// The connection is open.
    Open = 1,
    /// The connection is closed (or closing); nothing more can be sent.
    Closed = 2,
}

impl ChannelState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Initial,
            1 => Self::Open,
            _ => Self::Closed,
        }
    }
}

/// Why a connection closed: the first trigger wins (semantics §5.6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client sent a close frame (with this code, if any).
    ClientClosed(Option<u16>),
    /// The application called [`Channel::close`].
    ServerClosed,
    /// No inbound frame within the idle timeout (1001 `idle timeout`).
    IdleTimeout,
    /// The outbound queue overflowed under the `Close` policy (1008 `slow consumer`).
    SlowConsumer,
    /// The server is shutting down (1001 `going away`).
    Shutdown,
    /// An inbound message exceeded the size limit (1009).
    MessageTooBig,
    /// A text frame was not valid UTF-8 (1007).
    InvalidUtf8,
    /// The client violated the WebSocket protocol (1002).
    ProtocolError,
    /// The transport failed or the peer vanished without a close frame.
    TransportError,
}

impl DisconnectReason {
    /// A short stable name: `client_closed`, `server_closed`, `idle_timeout`, `slow_consumer`, `shutdown`,
    /// `message_too_big`, `invalid_utf8`, `protocol_error` or `transport_error`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClientClosed(_) => "client_closed",
            Self::ServerClosed => "server_closed",
            Self::IdleTimeout => "idle_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::Shutdown => "shutdown",
            Self::MessageTooBig => "message_too_big",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::ProtocolError => "protocol_error",
            Self::TransportError => "transport_error",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel handed to connection, message and binary handlers.
///
/// `O` is the channel's opening-data type, `Out` what this handler may [`send`](Channel::send), and `SS` the
/// channel's socket-state type.
///
/// ```
/// use pikku_core::{Channel, Ctx, Params};
///
/// // A message handler that pushes a greeting and replies with nothing.
/// async fn greet(_ctx: Ctx<(), ()>, channel: Channel<Params, String>, _input: ()) {
///     let _ = channel.send("hello!");
/// }
/// ```
pub struct Channel<O, Out, SS = ()> {
    conn: Arc<Connection>,
    opening: Arc<O>,
    _marker: PhantomData<fn(Out) -> SS>,
}

impl<O, Out, SS> Clone for Channel<O, Out, SS> {
    fn clone(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            opening: self.opening.clone(),
            _marker: PhantomData,
        }
    }
}

impl<O, Out, SS> fmt::Debug for Channel<O, Out, SS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("channel_id", &self.conn.id())
            .field("state", &self.conn.state())
            .finish_non_exhaustive()
    }
}

impl<O: Send + Sync + 'static, Out, SS> Channel<O, Out, SS> {
    /// The typed view of `conn`. The opening data must be of type `O`; the wiring guarantees it.
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        let opening = conn
            .opening
            .clone()
            .downcast::<O>()
            .expect("opening data has the channel's declared type");
        Self {
            conn,
            opening,
            _marker: PhantomData,
        }
    }
}

impl<O, Out, SS> Channel<O, Out, SS> {
    /// The unique id of this connection.
    #[must_use]
    pub fn channel_id(&self) -> &str {
        self.conn.id()
    }

    /// The data the channel was opened with: route params and query, deserialized into the channel's type.
    #[must_use]
    pub fn opening_data(&self) -> &O {
        &self.opening
    }

    /// The current lifecycle state.
    #[must_use]
    pub fn state(&self) -> ChannelState {
        self.conn.state()
    }

    /// Sends a value at once, encoded by protocol §4.1: a string goes out as raw text, anything else as JSON.
    ///
    /// # Errors
    /// [`SendError::Closed`] once the channel is closed, [`SendError::Backpressure`] when the `Drop` slow-consumer
    /// policy discarded the frame, [`SendError::Serialize`] when the value does not serialize (nothing is sent).
    ///
    /// # Cancel safety
    /// Not async: the frame is queued (or refused) before `send` returns.
    pub fn send(&self, value: impl Into<Out>) -> Result<(), SendError>
    where
        Out: Serialize,
    {
        let frame = encode_value(&value.into())?;
        self.conn.push(frame)
    }

    /// Sends a binary frame.
    ///
    /// # Errors
    /// As [`send`](Self::send), without the serialization case.
    pub fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), SendError> {
        self.conn.push(OutFrame::Binary(bytes.into()))
    }

    /// Closes the channel with code 1000: frames already queued go out first, then the close frame. Idempotent.
    pub fn close(&self) {
        self.close_with(1000, "");
    }

    /// Closes the channel with an application code (4000–4999) or 1000 and a reason. Idempotent; other codes are
    /// replaced by 1000.
    pub fn close_with(&self, code: u16, reason: impl Into<Cow<'static, str>>) {
        let code = if code == 1000 || (4000..=4999).contains(&code) {
            code
        } else {
            1000
        };
        self.conn.request_close(CloseRequest {
            code,
            reason: reason.into(),
            flush: true,
            cause: DisconnectReason::ServerClosed,
        });
    }

    /// A copy of the socket state, if set.
    #[must_use]
    pub fn socket_state(&self) -> Option<SS>
    where
        SS: Clone + Send + 'static,
    {
        self.conn
            .socket_state
            .lock()
            .as_ref()
            .and_then(|b| b.downcast_ref::<SS>())
            .cloned()
    }

    /// Replaces the socket state.
    pub fn set_socket_state(&self, state: SS)
    where
        SS: Send + 'static,
    {
        *self.conn.socket_state.lock() = Some(Box::new(state));
    }

    /// Clears the socket state.
    pub fn clear_socket_state(&self) {
        *self.conn.socket_state.lock() = None;
    }

    /// Reads and updates the socket state in one step (no other update interleaves).
    ///
    /// ```
    /// # use pikku_core::{Channel, Params};
    /// fn bump(channel: &Channel<Params, (), u32>) -> u32 {
    ///     channel.update_socket_state(|count| {
    ///         let next = count.unwrap_or(0) + 1;
    ///         *count = Some(next);
    ///         next
    ///     })
    /// }
    /// ```
    pub fn update_socket_state<R>(&self, f: impl FnOnce(&mut Option<SS>) -> R) -> R
    where
        SS: Send + 'static,
    {
        let mut slot = self.conn.socket_state.lock();
        let mut current: Option<SS> = slot
            .take()
            .and_then(|b| b.downcast::<SS>().ok())
            .map(|b| *b);
        let result = f(&mut current);
        *slot = current.map(|s| Box::new(s) as Box<dyn std::any::Any + Send>);
        result
    }

    /// Calls capability `C` on the connected client and waits for its result (semantics §9), with the channel's
    /// reverse-RPC timeout.
    ///
    /// # Errors
    /// An [`RpcError`] whose reason tells timeout, remote failure, closed connection, too many pending calls or
    /// invalid data.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the call: a later response for its id is ignored.
    pub async fn remote<C: Capability>(&self, input: C::Input) -> Result<C::Output, RpcError> {
        let value = self
            .conn
            .rpc
            .call(&self.conn, C::NAME, serialize_input(C::NAME, &input)?, None)
            .await?;
        serde_json::from_value(value).map_err(|_| RpcError::invalid(C::NAME))
    }

    /// Calls a client function by name with an untyped argument (`None`: no argument, the `data` member is
    /// omitted) and an optional timeout override (`Some(None)` disables the timeout).
    ///
    /// # Errors
    /// As [`remote`](Self::remote).
    pub async fn remote_raw(
        &self,
        func_name: &str,
        data: Option<serde_json::Value>,
        timeout: Option<Option<Duration>>,
    ) -> Result<serde_json::Value, RpcError> {
        self.conn
            .rpc
            .call(&self.conn, func_name, data, timeout)
            .await
    }

    /// The underlying connection, for runners and integrations.
    #[must_use]
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }
}

fn serialize_input<T: Serialize>(
    name: &str,
    input: &T,
) -> Result<Option<serde_json::Value>, RpcError> {
    let value = serde_json::to_value(input).map_err(|_| RpcError::invalid(name))?;
    // A capability that takes no argument (`()`) sends no `data` member (protocol §4.5).
    Ok(if value.is_null() { None } else { Some(value) })
}

/// The read-only channel view handed to disconnection handlers.
///
/// It has no `send`, `send_binary`, `close` or `remote`: the connection is gone, so sending from a disconnection
/// handler does not compile (D13).
///
/// ```compile_fail
/// use pikku_core::{ClosedChannel, Ctx, Params};
/// async fn on_disconnect(_ctx: Ctx<(), ()>, channel: ClosedChannel<Params>) {
///     channel.send("bye"); // error[E0599]: no method named `send` found
/// }
/// ```
///
/// ```compile_fail
/// use pikku_core::{ClosedChannel, Ctx, Params};
/// async fn on_disconnect(_ctx: Ctx<(), ()>, channel: ClosedChannel<Params>) {
///     channel.close(); // error[E0599]: no method named `close` found
/// }
/// ```
///
/// ```compile_fail
/// use pikku_core::{ClosedChannel, Ctx, Params};
/// async fn on_disconnect(_ctx: Ctx<(), ()>, channel: ClosedChannel<Params>) {
///     let _ = channel.remote_raw("f", None, None).await; // error[E0599]: no method named `remote_raw`
/// }
/// ```
///
/// What a disconnection handler can do:
///
/// ```
/// use pikku_core::{ClosedChannel, Ctx, Params};
/// async fn on_disconnect(_ctx: Ctx<(), ()>, channel: ClosedChannel<Params>) {
///     tracing::info!(id = channel.channel_id(), reason = %channel.reason(), "disconnected");
/// }
/// ```
pub struct ClosedChannel<O, SS = ()> {
    conn: Arc<Connection>,
    opening: Arc<O>,
    reason: DisconnectReason,
    _marker: PhantomData<fn() -> SS>,
}

impl<O, SS> fmt::Debug for ClosedChannel<O, SS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClosedChannel")
            .field("channel_id", &self.conn.id())
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<O: Send + Sync + 'static, SS> ClosedChannel<O, SS> {
    pub(crate) fn new(conn: Arc<Connection>, reason: DisconnectReason) -> Self {
        let opening = conn
            .opening
            .clone()
            .downcast::<O>()
            .expect("opening data has the channel's declared type");
        Self {
            conn,
            opening,
            reason,
            _marker: PhantomData,
        }
    }
}

impl<O, SS> ClosedChannel<O, SS> {
    /// The id the connection had.
    #[must_use]
    pub fn channel_id(&self) -> &str {
        self.conn.id()
    }

    /// The data the channel was opened with.
    #[must_use]
    pub fn opening_data(&self) -> &O {
        &self.opening
    }

    /// Always [`ChannelState::Closed`].
    #[must_use]
    pub fn state(&self) -> ChannelState {
        ChannelState::Closed
    }

    /// Why the connection closed.
    #[must_use]
    pub fn reason(&self) -> &DisconnectReason {
        &self.reason
    }

    /// The final socket state.
    #[must_use]
    pub fn socket_state(&self) -> Option<SS>
    where
        SS: Clone + Send + 'static,
    {
        self.conn
            .socket_state
            .lock()
            .as_ref()
            .and_then(|b| b.downcast_ref::<SS>())
            .cloned()
    }
}
