//! The channel object handed to handlers (Pikku's `PikkuChannel`), and its closed, read-only counterpart.
//!
//! # Lifecycle
//! A connection starts `Initial` when its upgrade passed every check, becomes `Open` once the 101 response is
//! written, and ends `Closed`. Sends made while `Initial` are queued until the connection opens; once `Closed`,
//! [`Channel::send`] returns [`SendError::Closed`] and [`Channel::close`] does nothing.
//!
//! # Stale handles
//! A `Channel` is cheap to clone and may be moved into a spawned task. It never keeps a closed connection alive in
//! any useful sense: every send through a stale handle returns `Err(SendError::Closed)`.

mod closed_guards;
mod connection;
mod registry;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

pub use connection::{CloseRequest, Connection, ConnectionLimits, Outgoing, SlowConsumerPolicy};
pub use registry::Registry;

use crate::error::SendError;
use crate::frame::{encode_value, OutFrame};
use crate::rpc::{Capability, RpcError};

/// The lifecycle state of a channel: `Initial`, then `Open`, then `Closed` (see [the lifecycle](crate::channel#lifecycle)).
///
/// ```
/// use pikku::{Channel, ChannelState, Ctx, Params};
///
/// async fn tick(_ctx: Ctx<(), ()>, ch: Channel<Params, String>) {
///     // A task that outlives the handler checks the state to know when to stop.
///     tokio::spawn(async move {
///         while ch.state() != ChannelState::Closed {
///             let _ = ch.send("tick");
///             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///         }
///     });
/// }
/// ```
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

/// Why a connection closed: the first trigger wins.
///
/// Disconnection handlers read it with [`ClosedChannel::reason`]; its `Display` is the stable
/// [`as_str`](Self::as_str) name, handy as a log or metrics label.
///
/// ```
/// use pikku::{ClosedChannel, Ctx, DisconnectReason, Params};
///
/// async fn on_disconnect(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
///     match ch.reason() {
///         DisconnectReason::ClientClosed(code) => tracing::debug!(?code, "client left"),
///         DisconnectReason::SlowConsumer => tracing::warn!(id = ch.channel_id(), "client too slow"),
///         other => tracing::info!(reason = %other, "closed"),
///     }
/// }
///
/// assert_eq!(DisconnectReason::IdleTimeout.to_string(), "idle_timeout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client sent a close frame (with this code, if any).
    ClientClosed(Option<u16>),
    /// The application called [`Channel::close`].
    ServerClosed,
    /// No inbound frame within the idle timeout (1001 `idle timeout`).
    IdleTimeout,
    /// A frame or fragmented message took longer than the frame timeout to arrive (1008 `frame timeout`).
    FrameTimeout,
    /// The outbound queue overflowed under the `Close` policy (1008 `slow consumer`).
    SlowConsumer,
    /// The client kept sending over its inbound rate limit (1008 `rate limit exceeded`).
    RateLimited,
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
    /// A short stable name: `client_closed`, `server_closed`, `idle_timeout`, `frame_timeout`, `slow_consumer`,
    /// `rate_limited`, `shutdown`, `message_too_big`, `invalid_utf8`, `protocol_error` or `transport_error`.
    ///
    /// ```
    /// use pikku::DisconnectReason;
    ///
    /// assert_eq!(DisconnectReason::ClientClosed(Some(1000)).as_str(), "client_closed");
    /// assert_eq!(DisconnectReason::Shutdown.as_str(), "shutdown");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClientClosed(_) => "client_closed",
            Self::ServerClosed => "server_closed",
            Self::IdleTimeout => "idle_timeout",
            Self::FrameTimeout => "frame_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::RateLimited => "rate_limited",
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
/// channel's socket-state type. `O` and `SS` must be the same for every handler of a channel; `Out` may differ
/// per handler (use `()` when the handler sends nothing).
///
/// ```
/// use pikku::{Channel, Ctx, Params};
///
/// // A message handler that pushes a greeting and replies with nothing.
/// async fn greet(_ctx: Ctx<(), ()>, channel: Channel<Params, String>, _input: ()) {
///     let _ = channel.send("hello!");
/// }
/// ```
///
/// With typed opening data and a typed `Out`, what the client receives:
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx};
///
/// #[derive(serde::Deserialize)]
/// struct Room {
///     #[serde(rename = "roomId")]
///     room_id: String,
///     limit: Option<u32>,
/// }
///
/// #[derive(serde::Serialize)]
/// #[serde(untagged)]
/// enum Event {
///     Text(String),
///     Joined { room: String, limit: Option<u32> },
/// }
///
/// async fn joined(_ctx: Ctx<(), ()>, ch: Channel<Room, Event>) {
///     let room = ch.opening_data();
///     let _ = ch.send(Event::Text("welcome".into())); // a string goes out as raw text
///     let _ = ch.send(Event::Joined { room: room.room_id.clone(), limit: room.limit }); // anything else as JSON
/// }
///
/// let app = App::new(()).channel(ChannelRoute::new("rooms", "/rooms/:roomId").on_connect(joined));
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let input = pikku::core::runtime::UpgradeInput { path: "/rooms/lobby", query: Some("limit=5"), headers: Default::default(), peer: None };
/// # let live = app.into_runtime().admit(input).await.unwrap().into_channel(None, std::time::Instant::now());
/// # live.open();
/// # live.run_connect().await;
/// # let mut frames = std::collections::VecDeque::new();
/// # let _ = live.connection().poll_outgoing(&mut std::task::Context::from_waker(std::task::Waker::noop()), &mut frames, true);
/// # let frames: Vec<_> = frames.into_iter().collect();
/// // A client opening `/rooms/lobby?limit=5` reads:
/// assert_eq!(frames, [
///     pikku::core::OutFrame::text("welcome"),
///     pikku::core::OutFrame::text(r#"{"room":"lobby","limit":5}"#),
/// ]);
/// # });
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
    /// The unique id of this connection (a UUID v4 in the embedded server). Store it, not the `Channel`, to reach
    /// the connection later through the [`EventHub`](crate::EventHub).
    #[must_use]
    pub fn channel_id(&self) -> &str {
        self.conn.id()
    }

    /// The data the channel was opened with: route params and query, deserialized into the channel's type `O`
    /// ([`Params`](crate::Params) when untyped). Shown in the type-level example.
    #[must_use]
    pub fn opening_data(&self) -> &O {
        &self.opening
    }

    /// The current lifecycle state; [`ChannelState::Closed`] once the connection closed or a close was requested.
    /// See [`ChannelState`] for an example.
    #[must_use]
    pub fn state(&self) -> ChannelState {
        self.conn.state()
    }

    /// Sends a value at once: a string goes out as raw text, anything else as JSON.
    ///
    /// The frame is queued on the connection's bounded outbound queue and written in order with replies and
    /// publications. Anything that converts `Into<Out>` is accepted (`&str` for `Out = String`). A `SendError`
    /// converts into an internal [`ChannelError`](crate::ChannelError) with `?`.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, Ctx, Params};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Progress { done: u32, total: u32 }
    ///
    /// async fn import(_ctx: Ctx<(), ()>, ch: Channel<Params, Progress>, _in: ()) -> Result<(), ChannelError> {
    ///     for done in 1..=3 {
    ///         ch.send(Progress { done, total: 3 })?; // {"done":1,"total":3}, …
    ///     }
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SendError::Closed`] once the channel is closed (including when this frame overflowed the queue under the
    /// `Close` slow-consumer policy, which closes the connection with 1008), [`SendError::Backpressure`] when the
    /// `Drop` policy discarded the frame, [`SendError::Serialize`] when the value does not serialize (nothing is
    /// sent).
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

    /// Sends a binary frame, queued like [`send`](Self::send); `Vec<u8>`, `&'static [u8]` and
    /// `Bytes` are accepted. `Out` plays no part.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, Ctx, Params};
    ///
    /// async fn thumbnail(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<(), ChannelError> {
    ///     let png: Vec<u8> = vec![0x89, b'P', b'N', b'G'];
    ///     ch.send_binary(png)?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send), without the serialization case.
    pub fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), SendError> {
        self.conn.push(OutFrame::Binary(bytes.into()))
    }

    /// Closes the channel with code 1000: frames already queued go out first, then the close frame. Idempotent (the
    /// first close request wins). The channel is `Closed` at once: later sends fail, and the disconnection handler
    /// runs with [`DisconnectReason::ServerClosed`].
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, Ctx, Params};
    ///
    /// async fn bye(_ctx: Ctx<(), ()>, ch: Channel<Params, String>, _in: ()) -> Result<(), ChannelError> {
    ///     ch.send("bye")?; // still delivered: queued before the close
    ///     ch.close();
    ///     assert!(ch.send("too late").is_err());
    ///     Ok(())
    /// }
    /// ```
    pub fn close(&self) {
        self.close_with(1000, "");
    }

    /// Closes the channel with an application code (4000–4999) or 1000 and a reason. Idempotent; other codes are
    /// replaced by 1000. Queued frames go out first, as with [`close`](Self::close). The embedded server cuts the
    /// reason to the 123 bytes a close frame can hold (at a character boundary).
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// async fn kick(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) {
    ///     ch.close_with(4001, "kicked by a moderator");
    /// }
    /// ```
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
    ///
    /// Socket state is per connection: every handler of the connection sees it, other connections do not. It
    /// lives until the disconnection handler has run.
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// #[derive(Clone)]
    /// struct Nick(String);
    ///
    /// async fn hello(_ctx: Ctx<(), ()>, ch: Channel<Params, String, Nick>, _in: ()) -> String {
    ///     match ch.socket_state() {
    ///         Some(Nick(nick)) => format!("hello {nick}"),
    ///         None => "hello stranger".into(),
    ///     }
    /// }
    /// ```
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

    /// Replaces the socket state of this connection (the previous value is dropped).
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// #[derive(Clone, serde::Deserialize)]
    /// struct Nick(String);
    ///
    /// // A default-route handler: the client sends its nickname as plain text.
    /// async fn set_nick(_ctx: Ctx<(), ()>, ch: Channel<Params, (), Nick>, nick: Nick) {
    ///     ch.set_socket_state(nick);
    /// }
    /// ```
    pub fn set_socket_state(&self, state: SS)
    where
        SS: Send + 'static,
    {
        *self.conn.socket_state.lock() = Some(Box::new(state));
    }

    /// Clears the socket state of this connection.
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// async fn forget_me(_ctx: Ctx<(), ()>, ch: Channel<Params, (), String>, _in: ()) {
    ///     ch.clear_socket_state();
    /// }
    /// ```
    pub fn clear_socket_state(&self) {
        *self.conn.socket_state.lock() = None;
    }

    /// Reads and updates the socket state in one step (no other update interleaves), and returns what `f`
    /// returns. Prefer it to `socket_state` + `set_socket_state` when handlers may run concurrently
    /// ([`ChannelRoute::max_in_flight`](crate::ChannelRoute::max_in_flight)).
    ///
    /// The state is locked while `f` runs: `f` must not call other socket-state methods of the same connection,
    /// which would deadlock.
    ///
    /// ```
    /// # use pikku::{Channel, Params};
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

    /// Calls capability `C` on the connected client and waits for its result, with the channel's
    /// reverse-RPC timeout.
    ///
    /// The request (`{"action":"pikku-rpc-request","id":…,"funcName":…,"data":…}`) is queued like any other frame;
    /// the response is taken off the connection before message routing, so a handler awaiting it is not stuck
    /// behind its own message queue. A client that answers `pikku-rpc-pending` stops the timer. Propagated with
    /// `?`, the error becomes a `ChannelRPCError` frame.
    ///
    /// ```
    /// use pikku::{Capability, Channel, ChannelError, Ctx, Params};
    ///
    /// /// `confirm(question) -> bool`, a function the browser client registers.
    /// struct Confirm;
    /// impl Capability for Confirm {
    ///     const NAME: &'static str = "confirm";
    ///     type Input = String;
    ///     type Output = bool;
    /// }
    ///
    /// async fn delete(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<bool, ChannelError> {
    ///     let sure = ch.remote::<Confirm>("Really delete?".into()).await?;
    ///     Ok(sure)
    /// }
    /// ```
    ///
    /// # Errors
    /// An [`RpcError`] whose [`failure`](RpcError::failure) tells timeout, remote failure (`ok: false`), closed
    /// connection, too many pending calls, or invalid data (the input did not serialize or the result did not
    /// deserialize into `C::Output`).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the call: a later response for its id is ignored. Once polled, the request has
    /// been queued, so the client may still run the function.
    pub async fn remote<C: Capability>(&self, input: C::Input) -> Result<C::Output, RpcError> {
        let value = self
            .conn
            .rpc
            .call(
                |frame| self.conn.push(frame),
                C::NAME,
                serialize_input(C::NAME, &input)?,
                None,
            )
            .await?;
        serde_json::from_value(value).map_err(|_| RpcError::invalid(C::NAME))
    }

    /// Calls a client function by name with an untyped argument (`None`: no argument, the `data` member is
    /// omitted) and an optional timeout override: `None` uses the channel's timeout, `Some(Some(d))` waits at
    /// most `d`, `Some(None)` waits without a timeout. Returns the response's `result` as is.
    ///
    /// Use it for functions whose name is only known at runtime, or to override the timeout of one call.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pikku::{Channel, ChannelError, Ctx, Params};
    ///
    /// async fn locale(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<serde_json::Value, ChannelError> {
    ///     let locale = ch.remote_raw("getLocale", None, Some(Some(Duration::from_secs(2)))).await?;
    ///     Ok(locale)
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`remote`](Self::remote); `invalid` does not occur, since nothing is (de)serialized here.
    ///
    /// # Cancel safety
    /// As [`remote`](Self::remote): dropping the future abandons the call, and a later response is ignored.
    pub async fn remote_raw(
        &self,
        func_name: &str,
        data: Option<serde_json::Value>,
        timeout: Option<Option<Duration>>,
    ) -> Result<serde_json::Value, RpcError> {
        self.conn
            .rpc
            .call(|frame| self.conn.push(frame), func_name, data, timeout)
            .await
    }

    /// The underlying connection, for runners and integrations (for example to read how long the client has been
    /// quiet). Handlers rarely need it.
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// async fn stats(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> String {
    ///     let conn = ch.connection();
    ///     format!("{} on {}, quiet for {} ms", conn.id(), conn.channel_name(), conn.idle_ms())
    /// }
    /// ```
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
    // A capability that takes no argument (`()`) sends no `data` member.
    Ok(if value.is_null() { None } else { Some(value) })
}

/// The read-only channel view handed to disconnection handlers.
///
/// It has no `send`, `send_binary`, `close` or `remote`: the connection is gone, so sending from a disconnection
/// handler does not compile, and the error says why and what to do instead.
///
/// What a disconnection handler can do:
///
/// ```
/// use pikku::{ClosedChannel, Ctx, Params};
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
    /// The id the connection had, the same as [`Channel::channel_id`] gave: use it to clean up what you stored
    /// under it. Shown in the type-level example.
    #[must_use]
    pub fn channel_id(&self) -> &str {
        self.conn.id()
    }

    /// The data the channel was opened with, as [`Channel::opening_data`] gave it.
    ///
    /// ```
    /// use pikku::{ClosedChannel, Ctx};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Room {
    ///     #[serde(rename = "roomId")]
    ///     room_id: String,
    /// }
    ///
    /// async fn left(_ctx: Ctx<(), ()>, ch: ClosedChannel<Room>) {
    ///     tracing::info!(room = ch.opening_data().room_id, "left the room");
    /// }
    /// ```
    #[must_use]
    pub fn opening_data(&self) -> &O {
        &self.opening
    }

    /// Always [`ChannelState::Closed`].
    #[must_use]
    pub fn state(&self) -> ChannelState {
        ChannelState::Closed
    }

    /// Why the connection closed (the first trigger; see [`DisconnectReason`] for an example).
    #[must_use]
    pub fn reason(&self) -> &DisconnectReason {
        &self.reason
    }

    /// The final socket state, as the connection's last handler left it; it is dropped after the disconnection
    /// handler returns.
    ///
    /// ```
    /// use pikku::{ClosedChannel, Ctx, Params};
    ///
    /// async fn report(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params, u32>) {
    ///     let messages = ch.socket_state().unwrap_or(0);
    ///     tracing::info!(id = ch.channel_id(), messages, "closed");
    /// }
    /// ```
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
