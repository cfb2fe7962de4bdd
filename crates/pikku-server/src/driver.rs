//! One connection's task: reads frames, runs handlers in order, writes the outbound queue, and closes.
//!
//! Everything of a connection runs inside this one future (no per-connection tasks, timers or channels):
//! the reader, the handler futures (at most `max_in_flight` at once, onConnect first), and the writer. Heartbeats
//! and the idle timeout are handled by the server-wide sweep, so an idle connection costs only its state.
//!
//! # Backpressure
//! The reader stops reading when the inbound queue holds `inbound_queue` messages, so TCP pushes back on the
//! client. The writer takes a batch from the connection's outbound queue only once the previous batch is flushed,
//! so the bytes held for a slow client stay within the outbound bound plus one batch.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, Stream, StreamExt};
use pikku_core::channel::{CloseRequest, Outgoing};
use pikku_core::handler::BoxFuture;
use pikku_core::runtime::{LiveChannel, TextFrame};
use pikku_core::{Connection, DisconnectReason, OutFrame};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_websockets::proto::ProtocolError;
use tokio_websockets::{CloseCode, Error as WsError, Message, Payload, WebSocketStream};

/// Reads handled per poll before yielding to other tasks.
const READ_BUDGET: usize = 64;

enum Job {
    Text(Value),
    Binary(Bytes),
}

/// How the read/write loop ended.
enum Exit {
    /// The peer or the transport ended the connection; nothing more to write.
    Peer(DisconnectReason),
    /// We queued a close frame (ours or the codec's); flush it and wait briefly for the peer's close.
    Closing(DisconnectReason),
}

struct Driver<'a, T, S, U> {
    ws: WebSocketStream<T>,
    live: &'a LiveChannel<S, U>,
    conn: Arc<Connection>,
    connect: Option<BoxFuture<()>>,
    in_flight: FuturesUnordered<BoxFuture<()>>,
    max_in_flight: usize,
    inbound: VecDeque<Job>,
    inbound_limit: usize,
    batch: VecDeque<OutFrame>,
    needs_flush: bool,
    peer_close: Option<Option<u16>>,
}

/// Runs a connection from its 101 response to the end of its disconnect sequence.
pub(crate) async fn run<T, S, U>(
    ws: WebSocketStream<T>,
    live: LiveChannel<S, U>,
    close_timeout: Duration,
    drain_timeout: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    live.open();
    let conn = live.connection().clone();
    let mut driver = Driver {
        ws,
        connect: Some(live.run_connect()),
        in_flight: FuturesUnordered::new(),
        max_in_flight: live.max_in_flight(),
        inbound: VecDeque::new(),
        inbound_limit: live.runtime().config().inbound_queue.max(1),
        batch: VecDeque::new(),
        needs_flush: false,
        peer_close: None,
        live: &live,
        conn,
    };
    let exit = poll_fn(|cx| driver.poll(cx)).await;
    let Driver {
        mut ws,
        connect,
        mut in_flight,
        mut inbound,
        ..
    } = driver;
    let (reason, closing) = match exit {
        Exit::Peer(reason) => (reason, false),
        Exit::Closing(reason) => (reason, true),
    };
    // Disconnect steps 1–3, then 4: queued, unstarted messages are dropped.
    let reason = live.begin_disconnect(reason);
    inbound.clear();
    if let Some(connect) = connect {
        in_flight.push(connect);
    }
    let finish_close = async {
        if closing {
            // Flush our close frame and wait for the peer's, bounded by the close timeout.
            let _ = tokio::time::timeout(close_timeout, async {
                if poll_fn(|cx| Pin::new(&mut ws).poll_flush(cx)).await.is_ok() {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            })
            .await;
        }
        drop(ws);
    };
    let disconnect = async {
        // Step 5: in-flight handlers may finish, up to the drain timeout; then they are cancelled.
        let _ = tokio::time::timeout(drain_timeout, async {
            while in_flight.next().await.is_some() {}
        })
        .await;
        drop(in_flight);
        // Steps 6–7.
        live.run_disconnect(reason).await;
    };
    tokio::join!(finish_close, disconnect);
}

fn to_message(frame: OutFrame) -> Message {
    match frame {
        OutFrame::Text(bytes) => Message::text(Payload::from(bytes)),
        OutFrame::Binary(bytes) => Message::binary(Payload::from(bytes)),
        OutFrame::Ping => Message::ping(Payload::from(Bytes::new())),
    }
}

fn close_message(request: &CloseRequest) -> Message {
    let code = CloseCode::try_from(request.code).unwrap_or(CloseCode::NORMAL_CLOSURE);
    Message::close(Some(code), &request.reason)
}

impl<T, S, U> Driver<'_, T, S, U>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        for _ in 0..READ_BUDGET {
            let mut progress = false;

            // Writer: flush what is written, then take the next batch (or the close request).
            if self.needs_flush {
                match Pin::new(&mut self.ws).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(_)) => {
                        return Poll::Ready(Exit::Peer(DisconnectReason::TransportError))
                    }
                    Poll::Pending => {}
                }
            }
            {
                match self
                    .conn
                    .poll_outgoing(cx, &mut self.batch, !self.needs_flush)
                {
                    Poll::Ready(Outgoing::Frames) => {
                        for frame in self.batch.drain(..) {
                            if Pin::new(&mut self.ws)
                                .start_send(to_message(frame))
                                .is_err()
                            {
                                return Poll::Ready(Exit::Peer(DisconnectReason::TransportError));
                            }
                        }
                        self.needs_flush = true;
                        progress = true;
                    }
                    Poll::Ready(Outgoing::Close(request)) => {
                        let _ = Pin::new(&mut self.ws).start_send(close_message(&request));
                        return Poll::Ready(Exit::Closing(request.cause));
                    }
                    Poll::Pending => {}
                }
            }

            // Handlers: onConnect first (D19), then queued messages up to `max_in_flight`.
            if let Some(connect) = self.connect.as_mut() {
                if connect.as_mut().poll(cx).is_ready() {
                    self.connect = None;
                    progress = true;
                }
            }
            while let Poll::Ready(Some(())) = self.in_flight.poll_next_unpin(cx) {
                progress = true;
            }
            while self.connect.is_none() && self.in_flight.len() < self.max_in_flight {
                let Some(job) = self.inbound.pop_front() else {
                    break;
                };
                let fut = match job {
                    Job::Text(value) => Some(self.live.run_message(value)),
                    Job::Binary(bytes) => self.live.run_binary(bytes),
                };
                if let Some(fut) = fut {
                    self.in_flight.push(fut);
                }
                progress = true;
            }
            if progress && !self.in_flight.is_empty() {
                // Poll newly started handlers at once so their replies go out in this round.
                while let Poll::Ready(Some(())) = self.in_flight.poll_next_unpin(cx) {}
            }

            // Reader.
            if self.inbound.len() < self.inbound_limit {
                match Pin::new(&mut self.ws).poll_next(cx) {
                    Poll::Ready(Some(Ok(message))) => {
                        self.conn.touch();
                        self.on_message(message);
                        progress = true;
                    }
                    Poll::Ready(Some(Err(err))) => return Poll::Ready(self.on_read_error(err)),
                    Poll::Ready(None) => {
                        return Poll::Ready(Exit::Peer(match self.peer_close {
                            Some(code) => DisconnectReason::ClientClosed(code),
                            None => DisconnectReason::TransportError,
                        }))
                    }
                    Poll::Pending => {}
                }
            }

            if !progress {
                return Poll::Pending;
            }
        }
        // Budget spent: let other connections run, and come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn on_message(&mut self, message: Message) {
        if message.is_text() {
            let text = message.as_text().unwrap_or_default();
            match self.live.text(text) {
                TextFrame::Ignored | TextFrame::Consumed => {}
                TextFrame::Message(value) => self.inbound.push_back(Job::Text(value)),
            }
        } else if message.is_binary() {
            self.inbound
                .push_back(Job::Binary(Bytes::from(message.into_payload())));
        } else if message.is_close() {
            // The codec answers the close; the next read ends the stream.
            self.peer_close = Some(message.as_close().map(|(code, _)| u16::from(code)));
        }
        // Pings are answered by the codec; pongs only count as activity.
    }

    fn on_read_error(&mut self, err: WsError) -> Exit {
        // For protocol violations the codec has queued its close frame (1002, 1007 or 1009); flush it.
        let reason = match &err {
            WsError::PayloadTooLong { .. } => DisconnectReason::MessageTooBig,
            WsError::Protocol(ProtocolError::InvalidUtf8) => DisconnectReason::InvalidUtf8,
            WsError::Protocol(_) => DisconnectReason::ProtocolError,
            _ => return Exit::Peer(DisconnectReason::TransportError),
        };
        tracing::debug!(channel_id = self.conn.id(), error = %err, "closing after a protocol violation");
        Exit::Closing(reason)
    }
}
