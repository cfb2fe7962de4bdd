//! Stateless mode: the same app served one event per invocation, behind a gateway that holds the sockets.
//!
//! Gateways such as Pushpin and Fastly Fanout (WebSocket-over-HTTP) or AWS API Gateway (WebSocket APIs with
//! Lambda) keep the client's WebSocket open themselves and call the application once per event: the connect,
//! each message, the disconnect. Between two calls the process may have restarted, or the next call may reach
//! another process. A [`StatelessRuntime`] runs an unchanged [`App`] that way:
//!
//! - **connect** runs the upgrade checks, writes the connection's [`ChannelRecord`] (id, channel, opening
//!   params) before onConnect, so onConnect can subscribe and set socket state, then runs onConnect and saves
//!   what it changed;
//! - **message** loads the record, rebuilds the channel from it ([`AppRuntime::resume`]), loads the session
//!   through the record's user id, runs each message through the same pipeline as the embedded server, and
//!   saves the socket state and session if they changed;
//! - **disconnect** removes the connection's subscriptions once its record is found, runs onDisconnect and removes
//!   the record; a second disconnect of the same id finds nothing and does nothing.
//!
//! Every call returns an [`Outcome`]: the frames for the client, in order (sends, then the reply), and a close if
//! a handler asked for one. The adapter of the gateway writes them in its response or through the platform's API.
//! Publications reach subscribers through the [`EventHubStore`] and the platform's [`PlatformSender`]; a
//! subscriber whose event is being handled in this process gets the frame in that invocation's outcome.
//!
//! # What differs from the embedded server
//! - Reverse calls ([`Channel::remote`](crate::Channel::remote)) fail at once with
//!   [`RpcFailure::Unsupported`](crate::RpcFailure::Unsupported): no response could reach the invocation.
//! - Socket state must be [persisted](crate::ChannelRoute::persist_socket_state) to survive; [`new`](StatelessRuntime::new)
//!   refuses an app whose socket state is not.
//! - A session lives in the [`SessionStore`] under the user id the session type gives ([`UserSession`]); a
//!   session without a user id lasts one invocation.
//! - Ping, idle and frame timeouts, outbound queues and rate limits are the gateway's: configure them there.
//! - Messages of one connection keep their order only where the gateway delivers one event at a time per
//!   connection (Pushpin does; API Gateway does not).
//!
//! # Example
//! An echo channel with a counter in its socket state, on in-memory stores:
//!
//! ```
//! use std::sync::Arc;
//! use pikku::core::runtime::UpgradeInput;
//! use pikku::stateless::{Inbound, StatelessRuntime, StatelessStores};
//! use pikku::core::OutFrame;
//! use pikku::store::{BoxFuture, PlatformSendError, PlatformSender};
//! use pikku::{App, Channel, ChannelRoute, Ctx, Params};
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, &'static str, u32>) -> &'static str { "hello!" }
//! async fn count(_ctx: Ctx<(), ()>, ch: Channel<Params, (), u32>, _in: ()) -> u32 {
//!     ch.update_socket_state(|n| { *n = Some(n.unwrap_or(0) + 1); n.unwrap() })
//! }
//!
//! struct NoPlatform;
//! impl PlatformSender for NoPlatform {
//!     fn send<'a>(&'a self, _id: &'a str, _f: &'a OutFrame) -> BoxFuture<'a, Result<(), PlatformSendError>> {
//!         Box::pin(async { Err(PlatformSendError::Gone) })
//!     }
//! }
//!
//! let app = App::new(()).channel(
//!     ChannelRoute::new("count", "/count").auth(false).on_connect(hello).on_message(count).persist_socket_state(),
//! );
//! let runtime = StatelessRuntime::new(app, StatelessStores::memory(), Arc::new(NoPlatform)).unwrap();
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let upgrade = UpgradeInput { path: "/count", query: None, headers: Default::default(), peer: None };
//! let opened = runtime.connect("conn-1", upgrade).await.unwrap();
//! assert_eq!(opened.frames, [OutFrame::text("hello!")]);
//!
//! // Each message may be a new invocation, in another process: the count survives in the store.
//! for expected in ["1", "2"] {
//!     let answered = runtime.message("conn-1", [Inbound::text("{}")]).await.unwrap();
//!     assert_eq!(answered.frames, [OutFrame::text(expected)]);
//! }
//! runtime.disconnect("conn-1", pikku::DisconnectReason::ClientClosed(Some(1000))).await.unwrap();
//! # });
//! ```

mod session;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::{App, AppRuntime};
use crate::channel::{CloseRequest, DisconnectReason};
use crate::error::{ChannelError, RegistrationError};
use crate::frame::OutFrame;
use crate::hub::StoredHub;
use crate::runtime::{params_to_json, LiveChannel, TextFrame, UpgradeInput};
use crate::store::{
    sweep_expired, ChannelRecord, ChannelStore, EventHubStore, MemoryChannelStore,
    MemoryEventHubStore, MemorySessionStore, PlatformSender, SessionStore, StoreError, DEFAULT_TTL,
};

pub use session::UserSession;

/// The three stores a stateless runner keeps its connections in (see the [module docs](self)).
///
/// ```
/// use pikku::stateless::StatelessStores;
///
/// let stores = StatelessStores::memory(); // for tests and single-process runs
/// # let _ = stores;
/// ```
#[derive(Clone)]
pub struct StatelessStores {
    /// One record per open connection.
    pub channels: Arc<dyn ChannelStore>,
    /// Topic subscriptions.
    pub subscriptions: Arc<dyn EventHubStore>,
    /// Sessions by user id.
    pub sessions: Arc<dyn SessionStore>,
}

impl fmt::Debug for StatelessStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatelessStores").finish_non_exhaustive()
    }
}

impl StatelessStores {
    /// In-memory stores, shared by whoever holds this value: for tests, and for one process serving a gateway.
    #[must_use]
    pub fn memory() -> Self {
        Self {
            channels: Arc::new(MemoryChannelStore::new()),
            subscriptions: Arc::new(MemoryEventHubStore::new()),
            sessions: Arc::new(MemorySessionStore::new()),
        }
    }
}

/// One inbound WebSocket message, as the gateway delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Inbound {
    /// A text message.
    ///
    /// ```
    /// use pikku::stateless::Inbound;
    /// assert_eq!(Inbound::text("hi"), Inbound::Text("hi".into()));
    /// ```
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }
}

/// What one invocation produced for the client: frames in the order they are to be written, then, if a handler
/// closed the channel (or the record was gone), the close to perform after them.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// Frames for the client: what handlers sent, each reply after the sends of its handler.
    pub frames: VecDeque<OutFrame>,
    /// The close to send after the frames.
    pub close: Option<Close>,
    /// For a connect: the headers upgrade middleware added, for the gateway's accepting response.
    pub headers: HeaderMap,
}

/// A close the gateway is to perform: code and reason of the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The close code.
    pub code: u16,
    /// The close reason.
    pub reason: Cow<'static, str>,
}

impl From<CloseRequest> for Close {
    fn from(request: CloseRequest) -> Self {
        Self {
            code: request.code,
            reason: request.reason,
        }
    }
}

/// Why a stateless invocation failed as a whole (the gateway answers it as a server error).
///
/// ```
/// use pikku::stateless::StatelessError;
/// use pikku::store::StoreError;
///
/// let err = StatelessError::Store(StoreError::backend("redis", std::io::Error::other("down")));
/// assert_eq!(err.to_string(), "stateless store failed: store backend 'redis' failed: down");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StatelessError {
    /// A store could not be read or written; nothing was acknowledged.
    Store(StoreError),
}

impl fmt::Display for StatelessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(err) => write!(f, "stateless store failed: {err}"),
        }
    }
}

impl std::error::Error for StatelessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(err) => Some(err),
        }
    }
}

impl From<StoreError> for StatelessError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// An [`App`] served one event per invocation, with its connections in [`StatelessStores`]. See the
/// [module docs](self) for the flows and an example; gateway adapters (Pushpin, API Gateway) call it.
pub struct StatelessRuntime<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    stores: StatelessStores,
    epoch: Instant,
    ttl: Duration,
}

impl<S, U> fmt::Debug for StatelessRuntime<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatelessRuntime")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<S, U> StatelessRuntime<S, U>
where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Builds the app for stateless serving: its hub keeps subscriptions in `stores.subscriptions` and delivers
    /// through `sender`, the gateway's API.
    ///
    /// # Errors
    /// [`RegistrationError::SocketStateNotPersisted`] when a channel keeps socket state it does not persist.
    pub fn new(
        app: App<S, U>,
        stores: StatelessStores,
        sender: Arc<dyn PlatformSender>,
    ) -> Result<Self, RegistrationError> {
        let rt = app.into_runtime();
        if let Some((channel, state_type)) = rt.unpersisted_socket_state() {
            return Err(RegistrationError::SocketStateNotPersisted {
                channel: channel.to_owned(),
                state_type: state_type.to_owned(),
            });
        }
        let installed = rt.hub().set_stored(StoredHub {
            subscriptions: stores.subscriptions.clone(),
            channels: stores.channels.clone(),
            sender,
        });
        debug_assert!(installed, "a new app's hub has no stores yet");
        Ok(Self {
            rt,
            stores,
            epoch: Instant::now(),
            ttl: DEFAULT_TTL,
        })
    }

    /// How long a connection may stay quiet before [`sweep`](Self::sweep) forgets it (default two hours). Records
    /// are touched at most once per quarter of it, to limit writes.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The built app: its hub publishes through the stores, so code outside handlers can publish too.
    #[must_use]
    pub fn runtime(&self) -> &Arc<AppRuntime<S, U>> {
        &self.rt
    }

    /// The stores.
    #[must_use]
    pub fn stores(&self) -> &StatelessStores {
        &self.stores
    }

    /// A new connection `channel_id` (the gateway's connection id) asks to open with `upgrade`.
    ///
    /// Runs the upgrade checks, stores the record, runs onConnect, then saves the session's user id and the
    /// socket state. The outcome holds onConnect's frames.
    ///
    /// # Errors
    /// The refusal of the upgrade checks (its status and message make the HTTP answer), or an internal error (500)
    /// when a store fails; the record is then removed again, as far as the store lets.
    pub async fn connect(
        &self,
        channel_id: &str,
        upgrade: UpgradeInput<'_>,
    ) -> Result<Outcome, ChannelError> {
        let (mut admitted, params) = self.rt.admit_with_params(upgrade).await?;
        let headers = std::mem::take(&mut admitted.response_headers);
        let record =
            ChannelRecord::new(channel_id, admitted.channel_name(), params_to_json(&params));
        self.stores
            .channels
            .add_channel(record)
            .await
            .map_err(ChannelError::internal)?;
        let live = admitted.into_channel(Some(channel_id.to_owned()), self.epoch);
        live.connection().rpc.disable();
        live.connection().mark_open();
        live.attach();
        live.run_connect().await;
        let saved = self.save(&live, None).await;
        let (frames, close) = live.detach();
        if let Err(err) = saved {
            self.forget(channel_id).await;
            return Err(ChannelError::internal(err));
        }
        if let Some(close) = &close {
            self.end(&live, close.cause.clone())
                .await
                .map_err(ChannelError::internal)?;
        }
        Ok(Outcome {
            frames,
            close: close.map(Close::from),
            headers,
        })
    }

    /// Messages that arrived on `channel_id`, in order; usually one, more when the gateway batched them.
    ///
    /// A connection without a record (it was swept, or disconnected meanwhile) is closed with 1011
    /// `channel not found` and its messages are dropped. Once a handler closes the channel, later messages of the
    /// batch are dropped too, and the disconnect runs at once with the handler's reason (a close the gateway
    /// reports afterwards finds no record).
    ///
    /// # Errors
    /// A store failed while loading or saving the connection.
    pub async fn message(
        &self,
        channel_id: &str,
        messages: impl IntoIterator<Item = Inbound>,
    ) -> Result<Outcome, StatelessError> {
        let Some(live) = self.load(channel_id).await? else {
            return Ok(Outcome {
                close: Some(Close {
                    code: 1011,
                    reason: Cow::Borrowed("channel not found"),
                }),
                ..Outcome::default()
            });
        };
        let (live, stored_state) = live;
        live.attach();
        for message in messages {
            if live.connection().state() == crate::ChannelState::Closed {
                break;
            }
            match message {
                Inbound::Text(text) => {
                    if let TextFrame::Message(value) = live.text(&text) {
                        let reply = live.message(value).await;
                        let _ = reply.deliver(|frame| live.connection().push(frame));
                    }
                }
                Inbound::Binary(bytes) => {
                    if let Some(run) = live.run_binary(bytes) {
                        run.await;
                    }
                }
            }
        }
        let saved = self.save(&live, stored_state).await;
        let (frames, close) = live.detach();
        saved?;
        if let Some(close) = &close {
            // The app closed the connection: its disconnect runs now, with the app's reason; the close the
            // gateway reports later finds no record.
            self.end(&live, close.cause.clone()).await?;
        }
        Ok(Outcome {
            frames,
            close: close.map(Close::from),
            headers: HeaderMap::new(),
        })
    }

    /// The connection `channel_id` ended (`reason`: what the gateway reported). Runs onDisconnect with the
    /// stored channel, then removes its subscriptions and record. Without a record (a repeated or late
    /// disconnect) nothing runs.
    ///
    /// # Errors
    /// A store failed while loading or removing the connection; onDisconnect errors are logged, not returned.
    pub async fn disconnect(
        &self,
        channel_id: &str,
        reason: DisconnectReason,
    ) -> Result<(), StatelessError> {
        let Some((live, _)) = self.load(channel_id).await? else {
            tracing::info!(
                channel_id,
                "disconnect of a connection without a record: nothing to do"
            );
            return Ok(());
        };
        Ok(self.end(&live, reason).await?)
    }

    /// The disconnect of a loaded connection, in the embedded server's order: its subscriptions go first (so
    /// onDisconnect's publications and counts leave it out), then onDisconnect runs, then the record goes.
    async fn end(
        &self,
        live: &LiveChannel<S, U>,
        reason: DisconnectReason,
    ) -> Result<(), StoreError> {
        let reason = live.connection().mark_closed(reason);
        let id = live.connection().id();
        self.stores.subscriptions.remove_channel(id).await?;
        live.run_disconnect(reason).await;
        self.stores.channels.remove_channels(&[id]).await
    }

    /// Forgets connections quiet for longer than the TTL, with their subscriptions, and returns their ids; run it
    /// periodically. onDisconnect does not run for them.
    ///
    /// # Errors
    /// A store failed; connections already forgotten stay forgotten.
    pub async fn sweep(&self) -> Result<Vec<String>, StatelessError> {
        let before = SystemTime::now() - self.ttl;
        Ok(sweep_expired(&*self.stores.channels, &*self.stores.subscriptions, before).await?)
    }

    /// The connection's record turned back into a channel, with the state as stored; `None` when there is no
    /// record, or it does not fit the app (the connection is then forgotten).
    async fn load(
        &self,
        channel_id: &str,
    ) -> Result<Option<(LiveChannel<S, U>, Option<serde_json::Value>)>, StatelessError> {
        let record = match self.stores.channels.get_channel(channel_id).await {
            Ok(record) => record,
            Err(StoreError::ChannelNotFound(_)) => {
                tracing::warn!(channel_id, "event for a connection without a record");
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        };
        let now = SystemTime::now();
        if now
            .duration_since(record.last_seen)
            .is_ok_and(|quiet| quiet >= self.ttl / 4)
        {
            self.stores.channels.touch(channel_id, now).await?;
        }
        let session = match &record.user_id {
            None => None,
            Some(user_id) => session::load::<U>(&*self.stores.sessions, user_id).await?,
        };
        match self.rt.resume(&record, session, self.epoch) {
            Ok(live) => Ok(Some((live, record.state))),
            Err(err) => {
                tracing::warn!(channel_id, error = %err, "stored connection does not fit the app; forgetting it");
                self.forget(channel_id).await;
                Ok(None)
            }
        }
    }

    /// Saves what the invocation changed: the session (under its user id) and the socket state.
    async fn save(
        &self,
        live: &LiveChannel<S, U>,
        stored_state: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let id = live.connection().id();
        if let Some(session) = live.session_change() {
            session::save(
                &*self.stores.sessions,
                &*self.stores.channels,
                id,
                session.as_ref(),
            )
            .await?;
        }
        match live.socket_state_json() {
            Ok(state) if state == stored_state => {}
            Ok(Some(state)) => self.stores.channels.set_state(id, state).await?,
            Ok(None) => self.stores.channels.clear_state(id).await?,
            Err(err) => {
                tracing::error!(channel_id = id, error = %err, "socket state does not serialize; not saved");
            }
        }
        Ok(())
    }

    /// Removes a connection's subscriptions and record, logging failures.
    async fn forget(&self, channel_id: &str) {
        if let Err(err) = self.stores.subscriptions.remove_channel(channel_id).await {
            tracing::warn!(channel_id, error = %err, "could not remove a connection's subscriptions");
        }
        if let Err(err) = self.stores.channels.remove_channels(&[channel_id]).await {
            tracing::warn!(channel_id, error = %err, "could not remove a connection's record");
        }
    }
}
