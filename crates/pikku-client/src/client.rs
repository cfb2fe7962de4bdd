//! [`Client`], the handle of one connection, and [`Route`], its routed calls.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio_websockets::Message;

use crate::connect::{Settings, Socket};
use crate::driver::{Command, Driver, Queues, Remember, Shared};
use crate::rpc::{self, RpcError, RpcRequest};
use crate::{ClientBuilder, ClientError, Close, ConnectionState, Frame, Reply};

/// Commands (frames to write, calls, close) waiting for the connection task; senders wait when it is full.
const COMMAND_CAPACITY: usize = 64;

/// A connection to a pikku channel.
///
/// Cheap to clone (clones share the connection) and `Send + Sync`. The connection closes with 1000 when the
/// last clone is dropped ([`Route`]s and [`frames`](Client::frames) streams hold clones too), or at once with
/// [`close`](Client::close). See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    inner: Arc<Inner>,
}

struct Inner {
    /// Unrouted frames, bounded by the builder's `frame_capacity`. Callers of `next_frame` take turns.
    frames: Mutex<mpsc::Receiver<Frame>>,
    closed: watch::Receiver<Option<Close>>,
    state: watch::Receiver<ConnectionState>,
    shared: Arc<Shared>,
    call_timeout: Option<Duration>,
}

impl Drop for Inner {
    /// The last handle is gone: a connection task that is reconnecting stops (an open one closes with 1000 when
    /// it finds the command queue closed).
    fn drop(&mut self) {
        self.shared.stop.set();
    }
}

impl Client {
    /// Connects to `url` (`ws://host[:port]/path[?query]`) with the default options; [`Client::builder`] sets
    /// headers and timeouts.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use pikku_client::{Client, Frame};
    ///
    /// let client = Client::connect(&url).await?; // "ws://127.0.0.1:4002/events"
    /// // The channel's onConnect sends the string `hello!`, which arrives as raw text.
    /// assert_eq!(client.next_frame().await?, Frame::Text("hello!".into()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`ClientBuilder::connect`]; a refused upgrade is [`ClientError::Refused`] with the HTTP status.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        ClientBuilder::new(url).connect().await
    }

    /// Options for a connection to `url`: headers, connect timeout, frame queue size.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn start(socket: Socket, settings: Settings) -> Client {
        let (commands, command_queue) = mpsc::channel(COMMAND_CAPACITY);
        let (frame_tx, frames) = mpsc::channel(settings.frame_capacity);
        let (closed_tx, closed) = watch::channel(None);
        let (state_tx, state) = watch::channel(ConnectionState::Open);
        let shared = Arc::new(Shared::default());
        shared
            .exposed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(settings.exposed);
        let queues = Queues {
            commands: (commands.downgrade(), command_queue),
            frames: frame_tx,
            closed: closed_tx,
            state: state_tx,
        };
        let driver = Driver::new(
            socket,
            queues,
            shared.clone(),
            settings.reconnect,
            settings.idle_timeout,
        );
        tokio::spawn(driver.run());
        Client {
            commands,
            inner: Arc::new(Inner {
                frames: Mutex::new(frames),
                closed,
                state,
                shared,
                call_timeout: settings.call_timeout,
            }),
        }
    }

    /// Sends the JSON text of `value`, as the reference client's `send` does: a string goes out quoted
    /// (`"hi!"`), which the server reads as the same message as the raw text `hi!`.
    ///
    /// Returns once the frame is queued for the connection task; if the connection fails before writing it,
    /// later calls report [`ClientError::Closed`]. While the client [reconnects](crate#reconnecting), the
    /// frame waits for the new connection (and this waits for room in the queue when 64 commands are waiting).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// # client.next_frame().await?;
    /// # client.route("action").call("auth", &serde_json::json!({"token": "valid"})).await?;
    /// use pikku_client::Frame;
    /// use serde_json::json;
    ///
    /// // No routing member: the channel's default handler answers, without a routing member either.
    /// client.send(&json!({"hello": 1})).await?;
    /// assert_eq!(client.next_frame().await?, Frame::Json(json!({"defaultGot": {"hello": 1}})));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Encode`] when `value` does not serialize, [`ClientError::Closed`] once closed.
    ///
    /// # Cancel safety
    /// Cancel safe: when the future is dropped before it completes, nothing was queued.
    pub async fn send(&self, value: &(impl Serialize + ?Sized)) -> Result<(), ClientError> {
        let text = serde_json::to_string(value).map_err(ClientError::Encode)?;
        self.command(Command::Send(Message::text(text))).await
    }

    /// Sends `text` as it is, unquoted (`hi!` rather than [`send`](Client::send)'s `"hi!"`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/greet");
    /// use pikku_client::{Client, Frame};
    ///
    /// let client = Client::connect(&url).await?; // a channel answering `hi!` with `hello`
    /// client.send_text("hi!").await?;
    /// assert_eq!(client.next_frame().await?, Frame::Text("hello".into()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Closed`] once closed.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`send`](Client::send).
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.command(Command::Send(Message::text(text.into())))
            .await
    }

    /// Sends a binary frame (the channel's binary handler gets it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// # client.next_frame().await?;
    /// # client.route("action").call("auth", &serde_json::json!({"token": "valid"})).await?;
    /// use pikku_client::Frame;
    ///
    /// client.send_binary(vec![1, 2, 3]).await?; // this channel answers with the bytes reversed
    /// assert_eq!(client.next_frame().await?, Frame::Binary(vec![3, 2, 1].into()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Closed`] once closed.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`send`](Client::send).
    pub async fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), ClientError> {
        self.command(Command::Send(Message::binary(bytes.into())))
            .await
    }

    /// The routes keyed by the routing property `key` (usually `"action"`), like the reference client's
    /// `getRoute(key)`.
    #[must_use]
    pub fn route(&self, key: &str) -> Route {
        Route {
            client: self.clone(),
            key: Arc::from(key),
        }
    }

    /// The next frame no call consumed (see [`Frame`]), waiting for one if none is queued.
    ///
    /// Clones share one queue: each frame goes to one caller.
    ///
    /// # Errors
    /// [`ClientError::Closed`] with the server's close code once the connection ended and every frame that
    /// arrived before was read; [`ClientError::Lagged`] once after frames were dropped from a full queue.
    ///
    /// # Cancel safety
    /// Cancel safe: a frame is only taken from the queue by a call that returns it.
    pub async fn next_frame(&self) -> Result<Frame, ClientError> {
        let mut frames = self.inner.frames.lock().await;
        if let Ok(frame) = frames.try_recv() {
            return Ok(frame);
        }
        // Reported after the frames that were queued before the drops, before any that came after.
        let dropped = self.inner.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            return Err(ClientError::Lagged(dropped));
        }
        match frames.recv().await {
            Some(frame) => Ok(frame),
            None => Err(ClientError::Closed(self.close_info())),
        }
    }

    /// The frames of [`next_frame`](Client::next_frame) as a stream; it yields the final
    /// [`ClientError::Closed`] and then ends. The stream holds a clone of the client.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// use futures_util::StreamExt;
    /// use pikku_client::Frame;
    ///
    /// let mut frames = client.frames();
    /// assert_eq!(frames.next().await.transpose()?, Some(Frame::Text("hello!".into())));
    /// client.close().await;
    /// assert!(frames.next().await.is_some_and(|end| end.is_err())); // ClientError::Closed
    /// assert!(frames.next().await.is_none());
    /// # Ok(()) }
    /// ```
    pub fn frames(
        &self,
    ) -> impl Stream<Item = Result<Frame, ClientError>> + Send + Unpin + 'static {
        let frames = futures_util::stream::unfold(Some(self.clone()), |client| async move {
            let client = client?;
            match client.next_frame().await {
                Err(err @ ClientError::Closed(_)) => Some((Err(err), None)),
                item => Some((item, Some(client))),
            }
        });
        Box::pin(frames)
    }

    /// Exposes `function` to the server under `name`, for its reverse calls (`channel.remote(..)`).
    ///
    /// Each `pikku-rpc-request` for `name` runs `function` on its own task and is answered with a
    /// `pikku-rpc-response`: `ok: true` with the serialized result, or `ok: false` with the [`RpcError`]. A
    /// request for a name nothing is exposed under is answered `RPCNotFoundError`. Requests never reach the
    /// frame queue. Exposing a name again replaces the function; [`ClientBuilder::expose`] registers one before
    /// the connection opens.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// # client.next_frame().await?;
    /// # client.route("action").call("auth", &serde_json::json!({"token": "valid"})).await?;
    /// use pikku_client::{RpcError, RpcRequest};
    /// use serde_json::{json, Value};
    ///
    /// async fn client_thing(request: RpcRequest) -> Result<Value, RpcError> {
    ///     request.pending("thinking").await; // optional: suspends the server's timeout
    ///     Ok(json!({"answer": 42, "asked": request.data()}))
    /// }
    /// client.expose("clientThing", client_thing);
    ///
    /// // The `rev` route calls `clientThing` with `{"q":1}` and returns what it said.
    /// let said = client.route("action").call("rev", &()).await?.value();
    /// assert_eq!(said, json!({"remoteSaid": {"answer": 42, "asked": {"q": 1}}}));
    /// # Ok(()) }
    /// ```
    pub fn expose<F, Fut, T>(&self, name: impl Into<String>, function: F)
    where
        F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, RpcError>> + Send + 'static,
        T: Serialize,
    {
        self.inner
            .shared
            .exposed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.into(), rpc::exposed(function));
    }

    /// Closes the connection with 1000 and waits for the server's answer (at most 5 s); returns how the
    /// connection ended. Calls still waiting fail with [`ClientError::Closed`]. Closing twice is harmless.
    ///
    /// A closed client never reconnects. Closing one that is reconnecting stops it at once, with
    /// `Close { code: 1000, reason: "closed while reconnecting" }`, and fails what waited for the new connection.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// let close = client.close().await; // the server echoes the code
    /// assert_eq!(close.code, 1000);
    /// assert_eq!(client.close_reason(), Some(close));
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: once the close was queued, the connection closes even if the future is dropped.
    pub async fn close(&self) -> Close {
        // First, so that a task that is reconnecting (and not reading commands) stops at once.
        self.inner.shared.stop.set();
        let _ = self.commands.send(Command::Close).await;
        self.closed().await
    }

    /// Waits until the connection has ended, however it ended, and returns the server's close code and reason.
    /// With [reconnect](ClientBuilder::reconnect) set, that is once the client is closed for good: a drop it
    /// reconnects after does not count.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// # client.next_frame().await?;
    /// # client.route("action").call("auth", &serde_json::json!({"token": "valid"})).await?;
    /// use pikku_client::Close;
    ///
    /// client.route("action").send("bye", &()).await?; // the server says `bye`, then closes
    /// let close = client.closed().await;
    /// assert_eq!(close, Close { code: 1000, reason: String::new() });
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) -> Close {
        let mut closed = self.inner.closed.clone();
        let ended = closed.wait_for(Option::is_some).await.ok();
        ended
            .and_then(|close| close.clone())
            .unwrap_or_else(|| Close::abnormal("the connection task ended"))
    }

    /// How the connection ended, once it has (see [`close`](Client::close)); `None` while it is open or
    /// reconnecting.
    #[must_use]
    pub fn close_reason(&self) -> Option<Close> {
        self.inner.closed.borrow().clone()
    }

    /// Where the connection stands now: open, reconnecting (and which attempt), or closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// use pikku_client::ConnectionState;
    ///
    /// assert_eq!(client.state(), ConnectionState::Open);
    /// client.close().await;
    /// assert_eq!(client.state(), ConnectionState::Closed);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        *self.inner.state.borrow()
    }

    /// A receiver of the [`state`](Client::state) that wakes on every change, to show the connection's state
    /// or to wait for one. Like every `watch` receiver it sees the latest state, not each step: two attempts
    /// in quick succession may show as the second only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use pikku_client::{Backoff, Client, ConnectionState};
    ///
    /// let client = Client::builder(&url).reconnect(Backoff::default()).connect().await?;
    /// let mut states = client.state_changes();
    /// tokio::spawn(async move {
    ///     while states.changed().await.is_ok() {
    ///         let state = *states.borrow_and_update();
    ///         println!("connection {state}"); // "connection reconnecting (attempt 1)", "connection open", …
    ///     }
    /// });
    /// client.close().await;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.clone()
    }

    /// Subscribes to `topic` on an events channel (Pikku's realtime protocol, `pikku::events::EventsChannel`):
    /// sends `{"action":"subscribe","topic":topic}`, waits for the reply, and remembers the subscription so
    /// that it is sent again after every reconnect (see [`Route::call_remembered`], under the id
    /// `pikku:topic:<topic>`). Events then arrive in the frame queue as `{"topic":…,"data":…}`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/realtime/events");
    /// # let publisher = pikku_client::Client::connect(&server.url("/events")).await?;
    /// # publisher.next_frame().await?;
    /// # publisher.route("action").call("auth", &json!({"token": "valid"})).await?;
    /// use pikku_client::{Client, Frame};
    /// use serde_json::json;
    ///
    /// let client = Client::connect(&url).await?; // "ws://127.0.0.1:4002/realtime/events"
    /// client.subscribe_topic("news").await?;
    ///
    /// // Another connection publishes `{"topic":"news","data":"hi"}` (the fixture's `emitAll`).
    /// publisher.route("action").call("emitAll", &json!({"topic": "news", "data": "hi"})).await?;
    /// assert_eq!(client.next_frame().await?, Frame::Json(json!({"topic": "news", "data": "hi"})));
    ///
    /// client.unsubscribe_topic("news").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Route::call`]: [`ClientError::Remote`] when the server refuses the topic (a `BadRequestError` for
    /// one the hub does not take, the authorizer's error); such a subscription is not remembered.
    /// [`ClientError::Disconnected`] when the link dropped before the reply: the subscription is remembered and
    /// goes out again once the client is back.
    ///
    /// # Cancel safety
    /// As [`Route::call`]; once queued, the subscription is remembered even if the future is dropped.
    pub async fn subscribe_topic(&self, topic: &str) -> Result<(), ClientError> {
        let input = serde_json::json!({ "topic": topic });
        let remember = Remember::Keep(topic_id(topic));
        self.route("action")
            .call_with("subscribe", &input, remember)
            .await
            .map(drop)
    }

    /// Sends `{"action":"unsubscribe","topic":topic}`, waits for the reply, and forgets the subscription made
    /// by [`subscribe_topic`](Client::subscribe_topic) (it is forgotten when the message is queued, whatever
    /// the reply).
    ///
    /// # Errors
    /// As [`Route::call`].
    ///
    /// # Cancel safety
    /// As [`Route::call`].
    pub async fn unsubscribe_topic(&self, topic: &str) -> Result<(), ClientError> {
        let input = serde_json::json!({ "topic": topic });
        let remember = Remember::Forget(topic_id(topic));
        self.route("action")
            .call_with("unsubscribe", &input, remember)
            .await
            .map(drop)
    }

    /// Stops re-sending the message remembered under `id` by [`Route::call_remembered`]; sends nothing itself.
    /// Forgetting an id nothing is remembered under does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// use serde_json::json;
    ///
    /// let actions = client.route("action");
    /// actions.call_remembered("login", "auth", &json!({"token": "valid"})).await?;
    /// // Log out: from now on a reconnect does not log in again.
    /// client.forget("login").await?;
    /// actions.call("logout", &()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Closed`] once closed.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`send`](Client::send).
    pub async fn forget(&self, id: &str) -> Result<(), ClientError> {
        self.command(Command::Forget(id.to_owned())).await
    }

    pub(crate) async fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed(self.close_info()))
    }

    fn close_info(&self) -> Close {
        self.close_reason()
            .unwrap_or_else(|| Close::abnormal("the connection task ended"))
    }
}

/// The id [`Client::subscribe_topic`] remembers a subscription under.
fn topic_id(topic: &str) -> String {
    format!("pikku:topic:{topic}")
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.inner.state.borrow())
            .field("closed", &*self.inner.closed.borrow())
            .finish_non_exhaustive()
    }
}

/// The routes of one routing property, from [`Client::route`]: `route("action").call("create", &input)` sends
/// `{"action":"create", …input}` and waits for the reply.
///
/// Replies carry no correlation id. As in the reference client, a call resolves with the next frame whose
/// routing member names its route, so calls in flight to one route are matched in the order they were sent
/// (the server answers a connection's messages in order).
#[derive(Debug, Clone)]
pub struct Route {
    client: Client,
    key: Arc<str>,
}

impl Route {
    /// Sends `{key: name, …input}` and waits for the reply frame of route `name`.
    ///
    /// `input` must serialize to an object (its members are sent along) or to unit/`null` (`&()`: just
    /// `{key: name}`).
    ///
    /// There is no timeout: a message the server does not treat as routed (a route name it does not know, on
    /// a channel with a default handler) is answered without a routing member, so the call waits until the
    /// connection ends. Wrap calls in `tokio::time::timeout` where that matters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// use pikku_client::ClientError;
    /// use serde_json::json;
    ///
    /// let actions = client.route("action");
    /// actions.call("auth", &json!({"token": "valid"})).await?;
    /// let reply = actions.call("create", &json!({"title": "x"})).await?;
    /// assert_eq!(reply.value(), json!({"id": 1, "title": "x"}));
    ///
    /// // An error frame fails the call.
    /// let err = actions.call("create", &json!({"title": 5})).await.unwrap_err();
    /// assert!(matches!(err, ClientError::Remote { name, .. } if name == "UnprocessableContentError"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Remote`] for an error frame, [`ClientError::Encode`] for input that is not an object,
    /// [`ClientError::Closed`] when the connection ends first, [`ClientError::Disconnected`] when it drops first
    /// and the client [reconnects](crate#reconnecting) (a call made while it reconnects waits for the new
    /// connection).
    ///
    /// # Cancel safety
    /// Dropping the future after the message was queued does not take it back: its reply, when it comes, is
    /// consumed and discarded, so that later calls to the route still get their own replies.
    pub async fn call(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<Reply, ClientError> {
        self.call_with(name, input, Remember::No).await
    }

    /// [`call`](Route::call), and remembers the message under `id` to send it again, first, after every
    /// reconnect ([`ClientBuilder::reconnect`]), until [`Client::forget`] forgets it. Remembering under an id
    /// that is taken replaces that message, in its place: messages are re-sent in the order their ids were
    /// first remembered.
    ///
    /// This is how a client gets back what belonged to its old connection: a session (log in again), a room
    /// it joined, a subscription ([`Client::subscribe_topic`] is this call for the events channel). Replies to
    /// re-sent messages are consumed quietly; an error frame in reply goes to the frame queue
    /// ([`Client::next_frame`]), and the server's refusal, now or later, forgets the message.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use pikku_client::{Backoff, Client};
    /// use serde_json::json;
    ///
    /// let client = Client::builder(&url).reconnect(Backoff::default()).connect().await?;
    /// let actions = client.route("action");
    /// // A session belongs to its connection: log in again on each new one, before anything else is sent.
    /// let login = actions.call_remembered("login", "auth", &json!({"token": "valid"})).await?;
    /// assert_eq!(login.value(), json!({"authResult": true}));
    /// assert_eq!(actions.call_as::<u32>("count", &()).await?, 1); // needs the session
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`call`](Route::call). A message the server refuses ([`ClientError::Remote`]) is forgotten; one whose
    /// reply was lost to a drop ([`ClientError::Disconnected`]) stays remembered and is sent again.
    ///
    /// # Cancel safety
    /// As [`call`](Route::call); once queued, the message is remembered even if the future is dropped.
    pub async fn call_remembered(
        &self,
        id: impl Into<String>,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<Reply, ClientError> {
        self.call_with(name, input, Remember::Keep(id.into())).await
    }

    pub(crate) async fn call_with(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
        remember: Remember,
    ) -> Result<Reply, ClientError> {
        let text = self.message(name, input)?;
        let (reply, answer) = oneshot::channel();
        self.client
            .command(Command::Call {
                key: self.key.clone(),
                name: name.to_owned(),
                text,
                reply,
                remember,
            })
            .await?;
        let answer = async {
            answer
                .await
                .unwrap_or_else(|_| Err(ClientError::Closed(self.client.close_info())))
        };
        match self.client.inner.call_timeout {
            // Dropping the answer on timeout leaves the call's place in the route's order, so its late reply is
            // consumed by that place and not taken by the next call.
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .unwrap_or(Err(ClientError::CallTimeout(limit))),
            None => answer.await,
        }
    }

    /// [`call`](Route::call), deserializing the handler's result ([`Reply::value`]) into `T`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// let actions = client.route("action");
    /// let arr: Vec<u32> = actions.call_as("arr", &()).await?; // {"action":"arr","result":[1,2]}
    /// assert_eq!(arr, [1, 2]);
    /// let user = actions.call_as::<Option<String>>("whoami", &()).await?;
    /// assert_eq!(user, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`call`](Route::call), plus [`ClientError::Decode`] when the result does not fit `T`.
    ///
    /// # Cancel safety
    /// As [`call`](Route::call).
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        self.call(name, input).await?.json()
    }

    /// Sends `{key: name, …input}` without waiting: the reply goes to the frame queue
    /// ([`Client::next_frame`]) unless a [`call`](Route::call) to the same route is waiting for it.
    ///
    /// # Errors
    /// As [`Client::send`], plus [`ClientError::Encode`] for input that is not an object.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Client::send`].
    pub async fn send(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<(), ClientError> {
        let message = Message::text(self.message(name, input)?);
        self.client.command(Command::Send(message)).await
    }

    /// `{key: name, …input}` as a text frame; the routing member wins over an input member of the same name.
    fn message(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<String, ClientError> {
        let mut object = match serde_json::to_value(input).map_err(ClientError::Encode)? {
            Value::Object(object) => object,
            Value::Null => Map::new(),
            other => {
                return Err(ClientError::Encode(serde::ser::Error::custom(format!(
                    "routed input must serialize to an object or unit, not `{other}`"
                ))))
            }
        };
        object.insert(self.key.to_string(), Value::String(name.to_owned()));
        Ok(Value::Object(object).to_string())
    }
}
