//! One connection's task: reads frames, runs handlers in order, writes the outbound queue, and closes.
//!
//! Everything of a connection runs inside this one future (no per-connection tasks, timers or channels):
//! the reader, the handler futures (at most `max_in_flight` at once, onConnect first), and the writer. Heartbeats
//! and the idle timeout are handled by the server-wide sweep, so an idle connection costs only its state.
//!
//! # Backpressure
//! The reader stops reading when the inbound queue holds `inbound_queue` messages or about `max_frame_bytes` of
//! them, so TCP pushes back on the client. The writer takes a batch from the connection's outbound queue only
//! once the previous batch is flushed, so the bytes held for a slow client stay within the outbound bound plus one
//! batch.
//!
//! # Closing
//! A close request is acted on as soon as it is made, even while a slow client blocks the writer: the frames it
//! keeps and the close frame are written, and the peer's close awaited, within one close timeout. Meanwhile the
//! disconnect sequence runs: in-flight handlers finish (bounded by the drain timeout), then onDisconnect.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use pikku_core::channel::Outgoing;
use pikku_core::handler::BoxFuture;
use pikku_core::runtime::{LiveChannel, TextFrame};
use pikku_core::{Connection, DisconnectReason, OutFrame};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::ws::frame::{opcode, Violation};
use crate::ws::{Event, ReadError, WsStream};

/// Reads handled per poll before yielding to other tasks.
const READ_BUDGET: usize = 64;

enum Job {
    /// A parsed text message and the size of its frame.
    Text(Value, usize),
    Binary(Bytes),
}

impl Job {
    /// Frame bytes this job stands for, counted against the inbound budget.
    fn size(&self) -> usize {
        match self {
            Self::Text(_, size) => *size,
            Self::Binary(bytes) => bytes.len(),
        }
    }
}

/// How the read/write loop ended.
enum Exit {
    /// The peer or the transport ended the connection; nothing more to write.
    Peer(DisconnectReason),
    /// We queued a close frame (ours or the codec's); flush it and wait briefly for the peer's close.
    Closing(DisconnectReason),
}

struct Driver<'a, T, S, U> {
    ws: WsStream<T>,
    live: &'a LiveChannel<S, U>,
    conn: Arc<Connection>,
    connect: Option<BoxFuture<()>>,
    in_flight: InFlight,
    max_in_flight: usize,
    inbound: VecDeque<Job>,
    inbound_limit: usize,
    /// Frame bytes of the queued messages; reading pauses while it is at least `inbound_byte_limit`, so a
    /// connection buffers at most about two maximal messages however fast its client sends.
    inbound_bytes: usize,
    inbound_byte_limit: usize,
    batch: VecDeque<OutFrame>,
    needs_flush: bool,
    peer_close: Option<Option<u16>>,
}

/// Runs an open connection (registered with [`LiveChannel::open`]) to the end of its disconnect sequence.
pub(crate) async fn run<T, S, U>(
    ws: WsStream<T>,
    live: LiveChannel<S, U>,
    max_frame_bytes: usize,
    close_timeout: Duration,
    drain_timeout: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let conn = live.connection().clone();
    let mut driver = Driver {
        ws,
        connect: Some(live.run_connect()),
        in_flight: InFlight::new(live.max_in_flight()),
        max_in_flight: live.max_in_flight(),
        inbound: VecDeque::new(),
        inbound_limit: live.runtime().config().inbound_queue.max(1),
        inbound_bytes: 0,
        inbound_byte_limit: max_frame_bytes.max(1),
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
    let finish_close = async {
        if closing {
            // Flush our close frame and wait for the peer's, bounded by the close timeout.
            let _ = tokio::time::timeout(close_timeout, async {
                if poll_fn(|cx| ws.poll_flush(cx)).await.is_ok() {
                    // Discard whatever arrives until the peer's close frame or the end of the stream.
                    while poll_fn(|cx| ws.poll_read(cx, &mut |_| true)).await.is_ok() {}
                    let _ = poll_fn(|cx| ws.poll_flush(cx)).await;
                    let _ = poll_fn(|cx| ws.poll_shutdown(cx)).await;
                }
            })
            .await;
        }
        drop(ws);
    };
    let disconnect = async {
        // Step 5: in-flight handlers may finish, up to the drain timeout; then they are cancelled.
        let _ = tokio::time::timeout(drain_timeout, async {
            if let Some(connect) = connect {
                connect.await;
            }
            in_flight.drain().await;
        })
        .await;
        drop(in_flight);
        // Steps 6–7.
        live.run_disconnect(reason).await;
    };
    tokio::join!(finish_close, disconnect);
}

impl<T, S, U> Driver<'_, T, S, U>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        for _ in 0..READ_BUDGET {
            // Finish writing the previous batch first; a slow client blocks only this step.
            if self.needs_flush {
                match self.ws.poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(_)) => {
                        return Poll::Ready(Exit::Peer(DisconnectReason::TransportError))
                    }
                    Poll::Pending => {}
                }
            }
            let mut progress = match self.poll_read(cx) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(exit)) => return Poll::Ready(exit),
                Poll::Pending => false,
            };
            progress |= self.poll_handlers(cx);
            // Frames the codec queued itself (pongs, the echo of a close) go out with the next write.
            if !self.needs_flush && self.ws.has_pending_writes() {
                self.needs_flush = true;
                progress = true;
            }
            // Write last, so every reply produced in this round leaves in one vectored write.
            match self
                .conn
                .poll_outgoing(cx, &mut self.batch, !self.needs_flush)
            {
                Poll::Ready(Outgoing::Frames) => {
                    self.queue_batch();
                    self.needs_flush = true;
                    progress = true;
                }
                Poll::Ready(Outgoing::Close(request)) => {
                    // The frames kept for this close go first; the close timeout bounds writing them all.
                    self.queue_batch();
                    self.ws.queue_close(request.code, &request.reason);
                    return Poll::Ready(Exit::Closing(request.cause));
                }
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Budget spent: let other connections run, and come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Hands the taken batch to the codec.
    fn queue_batch(&mut self) {
        for frame in self.batch.drain(..) {
            match frame {
                OutFrame::Text(bytes) => self.ws.queue(opcode::TEXT, bytes),
                OutFrame::Binary(bytes) => self.ws.queue(opcode::BINARY, bytes),
                OutFrame::Ping => self.ws.queue(opcode::PING, Bytes::new()),
            }
        }
    }

    /// Reads and decodes once; stops when the inbound queue is full, in messages or bytes (TCP pushes back).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Exit>> {
        if self.inbound.len() >= self.inbound_limit || self.inbound_bytes >= self.inbound_byte_limit
        {
            return Poll::Pending;
        }
        let Self {
            ws,
            live,
            inbound,
            inbound_limit,
            inbound_bytes,
            inbound_byte_limit,
            peer_close,
            ..
        } = self;
        let mut on_event = |event: Event<'_>| {
            let job = match event {
                // The rate-limit checks run at arrival, so a flood never fills the queue.
                Event::Text(text) if !live.admit_text(text) => None,
                Event::Text(text) => match live.text(text) {
                    TextFrame::Message(value) => Some(Job::Text(value, text.len())),
                    TextFrame::Ignored | TextFrame::Consumed => None,
                },
                Event::Binary(bytes) => live
                    .admit_binary(bytes.len())
                    .then(|| Job::Binary(Bytes::copy_from_slice(bytes))),
                Event::Pong => None,
                Event::Close(code) => {
                    *peer_close = Some(code);
                    None
                }
            };
            if let Some(job) = job {
                *inbound_bytes += job.size();
                inbound.push_back(job);
            }
            inbound.len() < *inbound_limit && *inbound_bytes < *inbound_byte_limit
        };
        match ws.poll_read(cx, &mut on_event) {
            Poll::Ready(Ok(())) => {
                self.conn.touch();
                match self.peer_close {
                    // The echo is queued; flush it and end.
                    Some(code) => {
                        Poll::Ready(Err(Exit::Closing(DisconnectReason::ClientClosed(code))))
                    }
                    None => Poll::Ready(Ok(())),
                }
            }
            Poll::Ready(Err(ReadError::Violation(violation))) => {
                tracing::debug!(
                    channel_id = self.conn.id(),
                    ?violation,
                    "closing after a protocol violation"
                );
                Poll::Ready(Err(Exit::Closing(match violation {
                    Violation::TooBig => DisconnectReason::MessageTooBig,
                    Violation::InvalidUtf8 => DisconnectReason::InvalidUtf8,
                    Violation::Protocol(_) => DisconnectReason::ProtocolError,
                })))
            }
            Poll::Ready(Err(ReadError::Io)) => {
                Poll::Ready(Err(Exit::Peer(DisconnectReason::TransportError)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Polls onConnect, then the running handlers, starting queued messages whenever a slot is free; handlers
    /// that finish at once let the next message start in the same round. Returns whether anything happened.
    fn poll_handlers(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        if let Some(connect) = self.connect.as_mut() {
            if connect.as_mut().poll(cx).is_pending() {
                return false;
            }
            self.connect = None;
            progress = true;
        }
        loop {
            progress |= self.in_flight.poll(cx);
            if self.in_flight.len() >= self.max_in_flight {
                return progress;
            }
            let Some(job) = self.inbound.pop_front() else {
                return progress;
            };
            self.inbound_bytes -= job.size();
            progress = true;
            let fut = match job {
                Job::Text(value, _) => Some(self.live.run_message(value)),
                Job::Binary(bytes) => self.live.run_binary(bytes),
            };
            if let Some(fut) = fut {
                self.in_flight.push(fut);
            }
        }
    }
}

/// The running handlers of one connection. With `max_in_flight == 1` (the default) one slot polled inline:
/// no allocation per message beyond the handler's own future.
enum InFlight {
    One(Option<BoxFuture<()>>),
    Many(FuturesUnordered<BoxFuture<()>>),
}

impl InFlight {
    fn new(max_in_flight: usize) -> Self {
        if max_in_flight <= 1 {
            Self::One(None)
        } else {
            Self::Many(FuturesUnordered::new())
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::One(slot) => usize::from(slot.is_some()),
            Self::Many(set) => set.len(),
        }
    }

    fn push(&mut self, fut: BoxFuture<()>) {
        match self {
            Self::One(slot) => {
                debug_assert!(slot.is_none(), "one handler at a time");
                *slot = Some(fut);
            }
            Self::Many(set) => set.push(fut),
        }
    }

    /// Polls the running handlers; returns whether any finished.
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            Self::One(slot) => match slot.as_mut().map(|fut| fut.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => {
                    *slot = None;
                    true
                }
                _ => false,
            },
            Self::Many(set) => {
                let mut finished = false;
                while let Poll::Ready(Some(())) = set.poll_next_unpin(cx) {
                    finished = true;
                }
                finished
            }
        }
    }

    /// Waits for every running handler.
    async fn drain(&mut self) {
        match self {
            Self::One(slot) => {
                if let Some(fut) = slot.take() {
                    fut.await;
                }
            }
            Self::Many(set) => while set.next().await.is_some() {},
        }
    }
}
