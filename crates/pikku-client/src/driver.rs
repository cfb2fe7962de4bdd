//! The background task that owns a connection's socket: it writes what the handles queue, reads frames and
//! hands each to the call waiting for it, to an exposed function, or to the frame queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_websockets::{CloseCode, Message};

use crate::connect::Socket;
use crate::rpc::{self, Exposed};
use crate::{ClientError, Close, Frame, Reply};

/// How long [`Client::close`](crate::Client::close) waits for the server to answer the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many queued commands are written before one flush.
const WRITE_BATCH: usize = 64;

/// What the handles ask the task to do.
pub(crate) enum Command {
    /// Write a frame.
    Send(Message),
    /// Write a routed message and hand the next frame whose `key` member is `name` to `reply`.
    Call {
        key: Arc<str>,
        name: String,
        message: Message,
        reply: Waiter,
    },
    /// Close with 1000.
    Close,
}

/// State the handles and the task share.
#[derive(Default)]
pub(crate) struct Shared {
    /// Exposed functions by name. Locked only to insert or to clone one out, never across an await.
    pub(crate) exposed: RwLock<HashMap<String, Exposed>>,
    /// Frames dropped since `next_frame` last reported it, because the frame queue was full.
    pub(crate) dropped: AtomicU64,
}

/// Where a call's reply goes.
type Waiter = oneshot::Sender<Result<Reply, ClientError>>;

/// Waiting calls of one routing property, by route name.
type ByName = HashMap<String, VecDeque<Waiter>>;

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
    fn push(&mut self, key: Arc<str>, name: String, waiter: Waiter) {
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
            .push_back(waiter);
    }

    /// The oldest call waiting for `frame`: the first routing property (in first-use order) whose string value
    /// in `frame` names a route with a waiting call.
    fn take(&mut self, frame: &Map<String, Value>) -> Option<(Arc<str>, Waiter)> {
        self.keys.iter_mut().find_map(|(key, names)| {
            let name = frame.get(&**key)?.as_str()?;
            let queue = names.get_mut(name)?;
            let waiter = queue.pop_front()?;
            if queue.is_empty() {
                names.remove(name);
            }
            Some((key.clone(), waiter))
        })
    }

    fn into_waiters(self) -> impl Iterator<Item = Waiter> {
        self.keys
            .into_iter()
            .flat_map(|(_, names)| names.into_values().flatten())
    }
}

pub(crate) struct Driver {
    socket: Socket,
    commands: mpsc::Receiver<Command>,
    /// Handed to exposed functions for their response frames. Weak, so that dropping every
    /// [`Client`](crate::Client) handle closes the command queue and with it the connection.
    responder: mpsc::WeakSender<Command>,
    frames: mpsc::Sender<Frame>,
    closed: watch::Sender<Option<Close>>,
    shared: Arc<Shared>,
    waiting: Waiting,
}

impl Driver {
    pub(crate) fn new(
        socket: Socket,
        commands: (mpsc::WeakSender<Command>, mpsc::Receiver<Command>),
        frames: mpsc::Sender<Frame>,
        closed: watch::Sender<Option<Close>>,
        shared: Arc<Shared>,
    ) -> Driver {
        Driver {
            socket,
            responder: commands.0,
            commands: commands.1,
            frames,
            closed,
            shared,
            waiting: Waiting::default(),
        }
    }

    /// Runs the connection to its end, then publishes how it ended and fails the calls still waiting.
    pub(crate) async fn run(mut self) {
        let close = self.drive().await;
        // Published before the queues are dropped, so a handle that finds them closed also finds the reason.
        self.closed.send_replace(Some(close.clone()));
        for waiter in std::mem::take(&mut self.waiting).into_waiters() {
            let _ = waiter.send(Err(ClientError::Closed(close.clone())));
        }
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
        loop {
            tokio::select! {
                read = self.socket.next() => match read {
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
                },
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
                Command::Call {
                    key,
                    name,
                    message,
                    reply,
                } => {
                    self.waiting.push(key, name, reply);
                    self.socket.feed(message).await?;
                }
                Command::Close => {
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
        if let Some(request) = rpc::request(&mut object, &self.responder) {
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
        let Some((key, waiter)) = self.waiting.take(&object) else {
            return Some(object);
        };
        let result = match ClientError::from_error_frame(&object) {
            Some(err) => Err(err),
            None => Ok(Reply::new(key, object)),
        };
        // A call whose future was dropped still consumes its reply, so later calls stay matched.
        let _ = waiter.send(result);
        None
    }
}

/// What [`Driver::write`] left behind.
enum Written {
    /// The connection stays open.
    Open,
    /// Our close frame went out.
    Closing,
}
