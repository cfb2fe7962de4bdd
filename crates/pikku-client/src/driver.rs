//! The background task that owns a connection's socket: it writes what the handles queue, reads frames and
//! hands each to the call waiting for it, to an exposed function, or to the frame queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_websockets::{CloseCode, Message};

use crate::connect::Socket;
use crate::reconnect::{Reconnect, Stop};
use crate::rpc::{self, Exposed};
use crate::{ClientError, Close, ConnectionState, Frame, Reply};

/// How long [`Client::close`](crate::Client::close) waits for the server to answer the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many queued commands are written before one flush.
const WRITE_BATCH: usize = 64;

/// What the handles ask the task to do.
pub(crate) enum Command {
    /// Write a frame.
    Send(Message),
    /// Write a reverse-RPC answer (or pending notice), if the connection it belongs to is still the current one.
    Respond { generation: u64, message: Message },
    /// Write a routed message and hand the next frame whose `key` member is `name` to `reply`.
    Call {
        key: Arc<str>,
        name: String,
        text: String,
        reply: Waiter,
        remember: Remember,
    },
    /// Stop re-sending the message remembered under this id.
    Forget(String),
    /// Close with 1000.
    Close,
}

/// What a call does to the messages re-sent after a reconnect.
pub(crate) enum Remember {
    /// Nothing.
    No,
    /// Remember this message under the id (replacing one remembered under it before, in its place).
    Keep(String),
    /// Forget the message remembered under the id, then send this one.
    Forget(String),
}

/// State the handles and the task share.
#[derive(Default)]
pub(crate) struct Shared {
    /// Exposed functions by name. Locked only to insert or to clone one out, never across an await.
    pub(crate) exposed: RwLock<HashMap<String, Exposed>>,
    /// Frames dropped since `next_frame` last reported it, because the frame queue was full.
    pub(crate) dropped: AtomicU64,
    /// Set when the user is done with the client: no reconnect after that.
    pub(crate) stop: Stop,
}

/// Where a call's reply goes.
type Waiter = oneshot::Sender<Result<Reply, ClientError>>;

/// A routed message written and not yet answered.
struct Pending {
    /// The caller; `None` for a message re-sent after a reconnect, whose reply nobody waits for.
    reply: Option<Waiter>,
    /// The serial of the remembered message this is, if it is one: a refusal forgets it.
    remembered: Option<u64>,
}

/// Waiting calls of one routing property, by route name.
type ByName = HashMap<String, VecDeque<Pending>>;

/// Calls waiting for their reply, per routing property and route name, oldest first: the protocol has no correlation
/// ids, so replies to one route are matched by order, as the server answers in order.
///
/// Unbounded, but it holds only calls in flight: the server answers every routed message exactly once,
/// which removes its entry, and the rest are failed when the connection ends.
#[derive(Default)]
struct Waiting {
    /// Routing properties in the order of their first call; a handful at most.
    keys: Vec<(Arc<str>, ByName)>,
}

impl Waiting {
    fn push(&mut self, key: Arc<str>, name: String, pending: Pending) {
        let index = match self.keys.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                self.keys.push((key, ByName::new()));
                self.keys.len() - 1
            }
        };
        self.keys[index]
            .1
            .entry(name)
            .or_default()
            .push_back(pending);
    }

    /// The oldest call waiting for `frame`: the first routing property (in first-use order) whose string value
    /// in `frame` names a route with a waiting call.
    fn take(&mut self, frame: &Map<String, Value>) -> Option<(Arc<str>, Pending)> {
        self.keys.iter_mut().find_map(|(key, names)| {
            let name = frame.get(&**key)?.as_str()?;
            let queue = names.get_mut(name)?;
            let pending = queue.pop_front()?;
            if queue.is_empty() {
                names.remove(name);
            }
            Some((key.clone(), pending))
        })
    }

    /// Fails every waiting call with `err()`.
    fn fail_all(&mut self, err: impl Fn() -> ClientError) {
        for pending in std::mem::take(&mut self.keys)
            .into_iter()
            .flat_map(|(_, names)| names.into_values().flatten())
        {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(err()));
            }
        }
    }
}

/// A message sent again after each reconnect.
struct Remembered {
    id: String,
    key: Arc<str>,
    name: String,
    text: String,
    /// Changes whenever the id is remembered again, so that a late refusal of the old message keeps the new.
    serial: u64,
}

pub(crate) struct Driver {
    socket: Socket,
    commands: mpsc::Receiver<Command>,
    /// Handed to exposed functions for their response frames. Weak, so that dropping every
    /// [`Client`](crate::Client) handle closes the command queue and with it the connection.
    responder: mpsc::WeakSender<Command>,
    frames: mpsc::Sender<Frame>,
    closed: watch::Sender<Option<Close>>,
    state: watch::Sender<ConnectionState>,
    shared: Arc<Shared>,
    waiting: Waiting,
    reconnect: Option<Reconnect>,
    /// A connection on which nothing arrives for this long counts as lost.
    idle_timeout: Option<Duration>,
    /// Re-sent after each reconnect, in this order. Only the task touches it, and it changes only through
    /// the command queue, so a message remembered while reconnecting is sent once, not twice.
    remembered: Vec<Remembered>,
    serial: u64,
    /// Counts connections: 0 for the first, one more per reconnect.
    generation: u64,
    /// Our close frame went out (or is about to): the user closed, or every handle is gone.
    closing: bool,
}

/// The queues a [`Driver`] serves.
pub(crate) struct Queues {
    pub(crate) commands: (mpsc::WeakSender<Command>, mpsc::Receiver<Command>),
    pub(crate) frames: mpsc::Sender<Frame>,
    pub(crate) closed: watch::Sender<Option<Close>>,
    pub(crate) state: watch::Sender<ConnectionState>,
}

impl Driver {
    pub(crate) fn new(
        socket: Socket,
        queues: Queues,
        shared: Arc<Shared>,
        reconnect: Option<Reconnect>,
        idle_timeout: Option<Duration>,
    ) -> Driver {
        Driver {
            socket,
            responder: queues.commands.0,
            commands: queues.commands.1,
            frames: queues.frames,
            closed: queues.closed,
            state: queues.state,
            shared,
            waiting: Waiting::default(),
            reconnect,
            idle_timeout,
            remembered: Vec::new(),
            serial: 0,
            generation: 0,
            closing: false,
        }
    }

    /// Runs the connection, and the ones that replace it after drops, to the end; then publishes how it ended
    /// and fails the calls still waiting.
    pub(crate) async fn run(mut self) {
        let mut ended = self.drive().await;
        let close = loop {
            let again = !self.closing
                && !self.shared.stop.is_set()
                && self.reconnect.as_ref().is_some_and(|r| (r.when)(&ended));
            if !again {
                break ended;
            }
            tracing::debug!(close = %ended, "pikku client: connection lost, reconnecting");
            // Let go of the old connection now rather than when the new one replaces it: the server may be
            // waiting for the end of the TCP stream (a shutdown waits for every connection to finish).
            let _ = self.socket.get_mut().shutdown().await;
            let dropped = ended.clone();
            self.waiting
                .fail_all(|| ClientError::Disconnected(dropped.clone()));
            match self.reopen(&ended).await {
                Ok(socket) => {
                    self.socket = socket;
                    self.generation += 1;
                    self.state.send_replace(ConnectionState::Open);
                    tracing::debug!("pikku client: reconnected");
                    ended = match self.resend().await {
                        Ok(()) => self.drive().await,
                        Err(err) => Close::abnormal(err),
                    };
                }
                Err(close) => break close,
            }
        };
        // Published before the queues are dropped, so a handle that finds them closed also finds the reason.
        self.closed.send_replace(Some(close.clone()));
        self.state.send_replace(ConnectionState::Closed);
        self.waiting.fail_all(|| ClientError::Closed(close.clone()));
    }

    /// Opens a new connection after `dropped`, waiting the backoff before each attempt; `Err` with the close to
    /// report when the user closed meanwhile or reconnecting gave up.
    async fn reopen(&mut self, dropped: &Close) -> Result<Socket, Close> {
        let Some(reconnect) = &self.reconnect else {
            return Err(dropped.clone());
        };
        let by_user = || Close {
            code: 1000,
            reason: "closed while reconnecting".into(),
        };
        let mut last = dropped.to_string();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            if reconnect
                .backoff
                .max_attempts
                .is_some_and(|max| attempt > max)
            {
                return Err(Close::abnormal(format!(
                    "gave up reconnecting after {} attempts; the last failed with: {last}",
                    attempt - 1
                )));
            }
            self.state
                .send_replace(ConnectionState::Reconnecting { attempt });
            tokio::select! {
                () = tokio::time::sleep(reconnect.backoff.jittered(attempt)) => {}
                () = self.shared.stop.wait() => return Err(by_user()),
            }
            let opened = tokio::select! {
                opened = reconnect.opener.open() => opened,
                () = self.shared.stop.wait() => return Err(by_user()),
            };
            match opened {
                Ok(socket) => return Ok(socket),
                Err(err) if Reconnect::retry_after(&err) => {
                    tracing::debug!(attempt, error = %err, "pikku client: reconnect attempt failed");
                    last = err.to_string();
                }
                Err(err) => {
                    return Err(Close::abnormal(format!("reconnecting was refused: {err}")))
                }
            }
        }
    }

    /// Writes the remembered messages on a new connection, before anything queued.
    async fn resend(&mut self) -> Result<(), tokio_websockets::Error> {
        for remembered in &self.remembered {
            self.waiting.push(
                remembered.key.clone(),
                remembered.name.clone(),
                Pending {
                    reply: None,
                    remembered: Some(remembered.serial),
                },
            );
            self.socket
                .feed(Message::text(remembered.text.clone()))
                .await?;
        }
        self.socket.flush().await
    }

    /// Remembers `text` under `id` and returns its serial.
    fn remember(&mut self, id: String, key: &Arc<str>, name: &str, text: &str) -> u64 {
        self.serial += 1;
        let remembered = Remembered {
            id,
            key: key.clone(),
            name: name.to_owned(),
            text: text.to_owned(),
            serial: self.serial,
        };
        match self.remembered.iter_mut().find(|r| r.id == remembered.id) {
            Some(place) => *place = remembered,
            None => self.remembered.push(remembered),
        }
        self.serial
    }

    async fn drive(&mut self) -> Close {
        // Armed when we stop writing (our close frame went out, or a write failed): the server then has
        // CLOSE_TIMEOUT to end the connection.
        let deadline = tokio::time::sleep(CLOSE_TIMEOUT);
        tokio::pin!(deadline);
        let mut writing = true;
        let mut write_error: Option<Close> = None;
        // The server's close frame; the stream ends once the codec has flushed its echo.
        let mut server_close: Option<Close> = None;
        // Rearmed by every frame read, pings included, when an idle timeout is set.
        let idle = self.idle_timeout;
        let silence = tokio::time::sleep(idle.unwrap_or(CLOSE_TIMEOUT));
        tokio::pin!(silence);
        loop {
            tokio::select! {
                read = self.socket.next() => {
                    if let Some(idle) = idle {
                        silence.as_mut().reset(Instant::now() + idle);
                    }
                    match read {
                        Some(Ok(message)) => match message.as_close() {
                            Some((code, reason)) => {
                                server_close = Some(Close { code: code.into(), reason: reason.to_owned() });
                            }
                            None => self.incoming(message),
                        },
                        Some(Err(err)) => {
                            return server_close.or(write_error).unwrap_or_else(|| Close::abnormal(err));
                        }
                        None => {
                            return server_close.or(write_error).unwrap_or_else(|| {
                                Close::abnormal("the connection ended without a close frame")
                            });
                        }
                    }
                }
                command = self.commands.recv(), if writing && server_close.is_none() => {
                    // `None`: every handle is gone, so close the connection.
                    match self.write(command.unwrap_or(Command::Close)).await {
                        Ok(Written::Open) => continue,
                        Ok(Written::Closing) => {}
                        Err(err) => write_error = Some(Close::abnormal(err)),
                    }
                    writing = false;
                    deadline.as_mut().reset(Instant::now() + CLOSE_TIMEOUT);
                }
                () = &mut silence, if idle.is_some() && writing && server_close.is_none() => {
                    let idle = idle.unwrap_or_default();
                    return Close::abnormal(format!("nothing received for {idle:?}"));
                }
                () = &mut deadline, if !writing => {
                    return write_error.unwrap_or_else(|| {
                        Close::abnormal("the server did not answer the close frame in time")
                    });
                }
            }
        }
    }

    /// Writes `command` and the commands already queued behind it (up to a batch), then flushes once.
    async fn write(&mut self, command: Command) -> Result<Written, tokio_websockets::Error> {
        let mut written = Written::Open;
        let mut next = Some(command);
        let mut count = 0;
        while let Some(command) = next.take() {
            match command {
                Command::Send(message) => self.socket.feed(message).await?,
                Command::Respond {
                    generation,
                    message,
                } => {
                    // An answer to a request from a connection that dropped: its server is gone.
                    if generation == self.generation {
                        self.socket.feed(message).await?;
                    }
                }
                Command::Call {
                    key,
                    name,
                    text,
                    reply,
                    remember,
                } => {
                    let remembered = match remember {
                        Remember::No => None,
                        Remember::Keep(id) => Some(self.remember(id, &key, &name, &text)),
                        Remember::Forget(id) => {
                            self.remembered.retain(|r| r.id != id);
                            None
                        }
                    };
                    let pending = Pending {
                        reply: Some(reply),
                        remembered,
                    };
                    self.waiting.push(key, name, pending);
                    self.socket.feed(Message::text(text)).await?;
                }
                Command::Forget(id) => self.remembered.retain(|r| r.id != id),
                Command::Close => {
                    self.closing = true;
                    let close = Message::close(Some(CloseCode::NORMAL_CLOSURE), "");
                    self.socket.feed(close).await?;
                    written = Written::Closing;
                    break;
                }
            }
            count += 1;
            if count < WRITE_BATCH {
                next = self.commands.try_recv().ok();
            }
        }
        self.socket.flush().await?;
        Ok(written)
    }

    /// Dispatches one data frame from the server.
    fn incoming(&mut self, message: Message) {
        let frame = if message.is_binary() {
            Frame::Binary(Bytes::from(message.into_payload()))
        } else if let Some(text) = message.as_text() {
            if text.is_empty() {
                // The reference client drops empty frames; pikku never sends one.
                return;
            }
            match Frame::from_text(text) {
                Frame::Json(Value::Object(object)) => match self.routed(object) {
                    Some(object) => Frame::Json(Value::Object(object)),
                    None => return,
                },
                frame => frame,
            }
        } else {
            return; // ping or pong, answered by the codec
        };
        if self.frames.try_send(frame).is_err() {
            // Full (or nobody is left to read): drop and count, never hold up the calls behind it.
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands an object to an exposed function or to the call waiting for it; returns it when neither took it.
    fn routed(&mut self, mut object: Map<String, Value>) -> Option<Map<String, Value>> {
        if let Some(request) = rpc::request(&mut object, &self.responder, self.generation) {
            let function = self
                .shared
                .exposed
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(request.func_name())
                .cloned();
            rpc::answer(request, function);
            return None;
        }
        let Some((key, pending)) = self.waiting.take(&object) else {
            return Some(object);
        };
        let error = ClientError::from_error_frame(&object);
        if let (Some(_), Some(serial)) = (&error, pending.remembered) {
            // Refused: sending it again after the next reconnect would be refused again.
            self.remembered.retain(|r| r.serial != serial);
        }
        match (pending.reply, error) {
            // A call whose future was dropped still consumes its reply, so later calls stay matched.
            (Some(reply), Some(err)) => {
                let _ = reply.send(Err(err));
                None
            }
            (Some(reply), None) => {
                let _ = reply.send(Ok(Reply::new(key, object)));
                None
            }
            // The reply to a message re-sent after a reconnect: nobody waits for it, but a refusal is news.
            (None, Some(err)) => {
                tracing::warn!(error = %err, "pikku client: a message re-sent after a reconnect was refused");
                Some(object)
            }
            (None, None) => None,
        }
    }
}

/// What [`Driver::write`] left behind.
enum Written {
    /// The connection stays open.
    Open,
    /// Our close frame went out.
    Closing,
}
