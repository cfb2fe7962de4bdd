//! One connection's task: reads frames, runs handlers in order, writes the outbound queue, and closes.
//!
//! Everything of a connection runs inside this one future (no per-connection tasks, timers or channels):
//! the reader, the handler futures (at most `max_in_flight` at once, onConnect first), and the writer. Heartbeats
//! and the idle timeout are handled by the server-wide sweep, so an idle connection costs only its state.
//!
//! # Backpressure
//! A message that can start at once (nothing waits before it and a handler slot is free) is parsed straight from
//! the read buffer and started. Any other is queued as its raw text, to be parsed when its turn comes: the queue
//! then holds exactly the bytes it counts, where parsed JSON would take many times more. The reader stops reading
//! when the inbound queue holds `inbound_queue` messages or about `max_frame_bytes` of them, or when this
//! connection holds inbound bytes while the server's inbound budget is spent, so TCP pushes back on the client.
//! A paused reader still notices its client leaving: it asks the socket whether the peer hung up, when woken by
//! the socket itself or by the server's sweep, and then frees its queue without waiting for the busy handler.
//! The writer takes a batch from the connection's outbound queue only once the previous batch is flushed, so the
//! bytes held for a slow client stay within the outbound bound plus one batch.
//!
//! # Activity
//! Only complete frames count as activity for the idle timeout. The connection is marked while a frame or a
//! fragmented message is arriving, so the server's sweep can end one that takes longer than the frame timeout.
//!
//! # Closing
//! A close request is acted on as soon as it is made, even while a slow client blocks the writer: the frames it
//! keeps and the close frame are written, the peer's close awaited (unless the stream broke on a violation), the
//! write side shut, and what the peer still sends discarded until it closes its side, all within one close
//! timeout. Meanwhile the disconnect sequence runs: in-flight handlers finish (bounded by the drain timeout), then
//! onDisconnect.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use pikku_core::channel::Outgoing;
use pikku_core::handler::BoxFuture;
use pikku_core::rpc::RpcFrame;
use pikku_core::runtime::{LiveChannel, TextFrame};
use pikku_core::{DisconnectReason, OutFrame};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::budget::InboundBudget;
use crate::ws::frame::{opcode, Violation};
use crate::ws::{Event, ReadError, Transport, WsStream};

/// Reads handled per poll before yielding to other tasks.
const READ_BUDGET: usize = 64;

/// A message waiting for its handler, held as the bytes that arrived.
enum Job {
    /// A text message (UTF-8 checked), parsed when it starts.
    Text(Box<str>),
    Binary(Bytes),
}

impl Job {
    /// Bytes this job holds, counted against the queue's bound and the inbound budget.
    fn size(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
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

struct Driver<T, S, U> {
    ws: WsStream<T>,
    live: LiveChannel<S, U>,
    connect: Option<BoxFuture<()>>,
    in_flight: InFlight,
    // The limits are u32, and the flags below are bytes, to keep this struct, most of what an idle connection
    // costs, small.
    max_in_flight: u32,
    inbound: VecDeque<Job>,
    inbound_limit: u32,
    /// Bytes of the queued messages; reading pauses while it is at least `inbound_byte_limit`, so a connection
    /// buffers at most about two maximal messages however fast its client sends.
    inbound_bytes: usize,
    inbound_byte_limit: u32,
    budget: Arc<InboundBudget>,
    /// `inbound_bytes` as charged to the budget.
    queue_charged: usize,
    /// Generation at which this connection waits for the budget; 0 when it does not.
    budget_wait: u64,
    /// Whether the connection is marked as receiving a frame (see `Connection::mark_frame_started`).
    mid_message: bool,
    /// Whether reading is paused and the connection marked so (see `Connection::mark_reading_paused`).
    paused: bool,
    batch: VecDeque<OutFrame>,
    needs_flush: bool,
    peer_close: Option<Option<u16>>,
}

/// Runs an open connection (registered with [`LiveChannel::open`]) to the end of its disconnect sequence.
///
/// A plain function returning the future, so the future holds the driver once rather than the arguments it was
/// built from as well: this is most of what an idle connection costs.
pub(crate) fn run<T, S, U>(
    ws: WsStream<T>,
    live: LiveChannel<S, U>,
    max_frame_bytes: usize,
    budget: Arc<InboundBudget>,
    close_timeout: Duration,
) -> impl Future<Output = ()>
where
    T: Transport,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let mut driver = Driver {
        ws,
        connect: Some(live.run_connect()),
        in_flight: InFlight::new(live.max_in_flight()),
        max_in_flight: saturating_u32(live.max_in_flight()),
        inbound: VecDeque::new(),
        inbound_limit: saturating_u32(live.runtime().config().inbound_queue.max(1)),
        inbound_bytes: 0,
        inbound_byte_limit: saturating_u32(max_frame_bytes.max(1)),
        budget,
        queue_charged: 0,
        budget_wait: 0,
        mid_message: false,
        paused: false,
        batch: VecDeque::new(),
        needs_flush: false,
        peer_close: None,
        live,
    };
    async move {
        let exit = poll_fn(|cx| driver.poll(cx)).await;
        // The closing sequence lives on the heap: only closing connections pay for its futures and timers, so the
        // state an idle connection keeps is just the driver's.
        Box::pin(finish(driver, exit, close_timeout)).await;
    }
}

/// The end of a connection: the disconnect sequence and, when we are the side closing, the lingering close, side
/// by side.
async fn finish<T, S, U>(driver: Driver<T, S, U>, exit: Exit, close_timeout: Duration)
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let Driver {
        mut ws,
        live,
        connect,
        mut in_flight,
        inbound,
        budget,
        mut queue_charged,
        mid_message,
        paused,
        ..
    } = driver;
    let (reason, closing) = match exit {
        Exit::Peer(reason) => (reason, false),
        Exit::Closing(reason) => (reason, true),
    };
    // Disconnect: the connection stops being open; queued, unstarted messages are dropped at once.
    let reason = live.begin_disconnect(reason);
    drop(inbound);
    budget.adjust(&mut queue_charged, 0);
    if mid_message {
        live.connection().mark_frame_finished();
    }
    if paused {
        live.connection().mark_reading_paused(false);
    }
    let finish_close = async {
        if closing {
            let _ = tokio::time::timeout(close_timeout, linger_close(&mut ws)).await;
        }
        drop(ws);
    };
    let drain_timeout = live.runtime().config().drain_timeout;
    let disconnect = async {
        // In-flight handlers may finish, up to the drain timeout; then they are cancelled.
        let _ = tokio::time::timeout(drain_timeout, async {
            if let Some(connect) = connect {
                connect.await;
            }
            in_flight.drain().await;
        })
        .await;
        drop(in_flight);
        // Then onDisconnect, and the connection is gone.
        live.run_disconnect(reason).await;
    };
    tokio::join!(finish_close, disconnect);
}

/// Ends a connection we are closing: writes what is queued and the close frame, waits for the peer's close frame
/// while the stream can still be decoded, shuts the write side, then discards what the peer still sends until it
/// closes its side. The caller bounds it with the close timeout.
async fn linger_close<T: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsStream<T>) {
    if poll_fn(|cx| ws.poll_flush(cx)).await.is_err() {
        return;
    }
    if !ws.is_broken() {
        // Skip data frames until the peer's close frame (its echo is then queued) or the end of the stream. A frame
        // caught half-way is not buffered to its end: the rest of the stream is discarded instead.
        while !ws.holds_inbound() && poll_fn(|cx| ws.poll_read(cx, &mut |_| true)).await.is_ok() {}
        if poll_fn(|cx| ws.poll_flush(cx)).await.is_err() {
            return;
        }
    }
    if poll_fn(|cx| ws.poll_shutdown(cx)).await.is_err() {
        return;
    }
    while !poll_fn(|cx| ws.poll_discard(cx)).await {}
}

impl<T, S, U> Driver<T, S, U>
where
    T: Transport,
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        if self.connect.is_some() {
            // onConnect mostly finishes at once. Finishing it before reading lets the client's first messages
            // start straight from the read buffer instead of queueing behind it, and a connection that never
            // queues never allocates its inbound queue.
            self.poll_handlers(cx);
        }
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
                .live
                .connection()
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
        if self.batch.capacity() > 16 {
            // Give a burst's batch back; it would otherwise circulate with the connection's queue.
            self.batch = VecDeque::new();
        }
    }

    /// Reads and decodes once; stops when the inbound queue is full, in messages or bytes, or when the inbound
    /// budget is spent while this connection holds inbound bytes (TCP pushes back).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Exit>> {
        let paused = self.inbound.len() >= self.inbound_limit as usize
            || self.inbound_bytes >= self.inbound_byte_limit as usize
            || ((self.ws.holds_inbound() || !self.inbound.is_empty())
                && self.budget.exhausted()
                && self.budget.wait(cx, &mut self.budget_wait));
        if paused != self.paused {
            self.paused = paused;
            self.live.connection().mark_reading_paused(paused);
        }
        if paused {
            // Not reading, so the client's leaving must be asked for: its queued messages are then freed at once
            // rather than after the busy handler.
            if self.ws.poll_hung_up(cx) {
                return Poll::Ready(Err(Exit::Peer(DisconnectReason::TransportError)));
            }
            return Poll::Pending;
        }
        let Self {
            ws,
            live,
            connect,
            in_flight,
            max_in_flight,
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
                // Nothing waits before it and a slot is free: parse it from the read buffer and start it.
                Event::Text(text)
                    if inbound.is_empty()
                        && connect.is_none()
                        && in_flight.len() < *max_in_flight as usize =>
                {
                    if let TextFrame::Message(value) = live.text(text) {
                        in_flight.push(live.run_message(value));
                    }
                    None
                }
                Event::Text("") => None,
                // A reverse-RPC reply must reach the handler awaiting it now, not after the queued messages.
                Event::Text(text) if RpcFrame::may_be_reply(text) => match live.text(text) {
                    TextFrame::Message(_) => Some(Job::Text(text.into())),
                    TextFrame::Ignored | TextFrame::Consumed => None,
                },
                Event::Text(text) => Some(Job::Text(text.into())),
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
            inbound.len() < *inbound_limit as usize && *inbound_bytes < *inbound_byte_limit as usize
        };
        let read = ws.poll_read(cx, &mut on_event);
        if self.ws.take_frame_seen() {
            self.live.connection().touch();
        }
        let mid_message = self.ws.mid_message();
        if mid_message != self.mid_message {
            self.mid_message = mid_message;
            if mid_message {
                self.live.connection().mark_frame_started();
            } else {
                self.live.connection().mark_frame_finished();
            }
        }
        self.budget
            .adjust(&mut self.queue_charged, self.inbound_bytes);
        match read {
            Poll::Ready(Ok(())) => match self.peer_close {
                // The echo is queued; flush it and end.
                Some(code) => Poll::Ready(Err(Exit::Closing(DisconnectReason::ClientClosed(code)))),
                None => Poll::Ready(Ok(())),
            },
            Poll::Ready(Err(ReadError::Violation(violation))) => {
                tracing::debug!(
                    channel_id = self.live.connection().id(),
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
            if self.in_flight.len() >= self.max_in_flight as usize {
                return progress;
            }
            let Some(job) = self.inbound.pop_front() else {
                return progress;
            };
            self.inbound_bytes -= job.size();
            self.budget
                .adjust(&mut self.queue_charged, self.inbound_bytes);
            progress = true;
            let fut = match job {
                Job::Text(text) => match self.live.text(&text) {
                    TextFrame::Message(value) => Some(self.live.run_message(value)),
                    TextFrame::Ignored | TextFrame::Consumed => None,
                },
                Job::Binary(bytes) => self.live.run_binary(bytes),
            };
            if let Some(fut) = fut {
                self.in_flight.push(fut);
            }
        }
    }
}

/// `value` as a u32, or u32::MAX if it is larger: for limits, where that means "no limit" in practice.
fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
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
