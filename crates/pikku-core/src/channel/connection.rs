//! The untyped state of one open connection, shared by its typed views, the event hub and the runner.

use std::any::Any;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::Mutex;

use super::{ChannelState, DisconnectReason};
use crate::error::SendError;
use crate::frame::OutFrame;
use crate::rpc::RpcRegistry;

/// What to do when a frame would overflow a connection's outbound queue.
///
/// Set it app-wide with [`AppConfig::slow_consumer`](crate::AppConfig::slow_consumer). `Close` suits clients that
/// must see every frame (a client that cannot keep up reconnects and resynchronises); `Drop` suits streams where
/// a lost update is harmless (prices, cursors). Under `Drop`, replies and publications are dropped like any other
/// frame.
///
/// ```
/// use pikku::{App, SlowConsumerPolicy};
///
/// assert_eq!(SlowConsumerPolicy::default(), SlowConsumerPolicy::Close);
/// let app: App<()> = App::new(()).configure(|c| c.slow_consumer = SlowConsumerPolicy::Drop);
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Discard the queue and close the connection with 1008 `slow consumer` (the default); the overflowing send
    /// returns [`SendError::Closed`].
    #[default]
    Close,
    /// Discard the new frame; `send` returns [`SendError::Backpressure`]; the connection stays open.
    Drop,
}

/// A request to close the connection, as seen by the runner.
///
/// Made by [`Channel::close_with`](crate::Channel::close_with), by the slow-consumer policy, and by runners
/// (idle timeout, shutdown) through [`Connection::request_close`]; the runner receives it from
/// [`Connection::poll_outgoing`] as [`Outgoing::Close`].
///
/// ```
/// use pikku::core::channel::CloseRequest;
/// use pikku::DisconnectReason;
///
/// // What a server sends everyone when it shuts down.
/// let going_away = CloseRequest {
///     code: 1001,
///     reason: "going away".into(),
///     flush: true,
///     cause: DisconnectReason::Shutdown,
/// };
/// # let _ = going_away;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// The close code to send.
    pub code: u16,
    /// The close reason to send.
    pub reason: Cow<'static, str>,
    /// Whether frames queued before the close go out first (false for a slow consumer).
    pub flush: bool,
    /// Why the connection closes.
    pub cause: DisconnectReason,
}

/// What the runner should write next, as reported by [`Connection::poll_outgoing`] (see its example).
#[derive(Debug)]
pub enum Outgoing {
    /// Frames to write, in order.
    Frames,
    /// Write the close frame (after the frames already taken), then stop writing.
    Close(CloseRequest),
}

struct Queue {
    frames: VecDeque<OutFrame>,
    bytes: usize,
    /// Boxed: set once in a connection's life, so it costs a pointer until then.
    close: Option<Box<CloseRequest>>,
    /// Set once the runner has taken the close request; nothing is queued after it.
    close_taken: bool,
    waker: Option<Waker>,
}

/// One connection: its id, lifecycle state, bounded outbound queue, socket state, hub subscriptions and pending
/// reverse calls. Runners own it through an `Arc`; handlers see it through [`Channel`](crate::Channel) views.
///
/// Applications seldom touch it; runners and tests do. The embedded server creates connections through
/// [`Admitted::into_channel`](crate::runtime::Admitted::into_channel), opens them, and writes what
/// [`poll_outgoing`](Self::poll_outgoing) hands it.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use pikku::core::channel::ConnectionLimits;
/// use pikku::{ChannelState, Params, SlowConsumerPolicy};
/// use pikku::core::{Connection, OutFrame};
///
/// let limits = ConnectionLimits {
///     outbound_queue_bytes: 1 << 20,
///     slow_consumer: SlowConsumerPolicy::Close,
///     max_pending_rpc: 64,
/// };
/// let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
/// assert_eq!(conn.state(), ChannelState::Initial);
/// conn.mark_open();
/// conn.push(OutFrame::text("hello!")).unwrap();
/// assert_eq!(conn.state(), ChannelState::Open);
/// ```
pub struct Connection {
    id: Arc<str>,
    channel_name: Arc<str>,
    state: AtomicU8,
    queue: Mutex<Queue>,
    queue_limit: usize,
    policy: SlowConsumerPolicy,
    pub(crate) opening: Arc<dyn Any + Send + Sync>,
    pub(crate) socket_state: Mutex<Option<Box<dyn Any + Send>>>,
    pub(crate) topics: Mutex<Vec<Arc<str>>>,
    pub(crate) rpc: RpcRegistry,
    /// Milliseconds since `epoch` of the last inbound frame.
    last_seen_ms: AtomicU64,
    /// Milliseconds since `epoch`, plus one, at which the frame now arriving started; 0 when none is.
    frame_started_ms: AtomicU64,
    /// The runner has stopped reading (its inbound queue is full); see `mark_reading_paused`.
    reading_paused: AtomicBool,
    epoch: Instant,
    /// The client's address, for the spans handlers run in: here rather than with the runner's per-connection
    /// state, whose task allocation grows in steps of 128 bytes, and as address and port only (20 bytes, which
    /// share a word with the small fields above, where a `SocketAddr` takes 32).
    peer: Option<(IpAddr, u16)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("channel", &self.channel_name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Limits a connection is created with; the pipeline takes them from the [`AppConfig`](crate::AppConfig). Build
/// one yourself only to create a [`Connection`] by hand (see its example).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Bound of the outbound queue in payload bytes.
    pub outbound_queue_bytes: usize,
    /// What happens when the bound is reached.
    pub slow_consumer: SlowConsumerPolicy,
    /// Pending reverse calls at most.
    pub max_pending_rpc: usize,
}

impl Connection {
    /// A new connection in state `Initial`. `opening` is the channel's typed opening data (an `Arc<O>`; handler
    /// views downcast it to the channel's `O`). `epoch` is the instant idle times are measured from: runners pass
    /// one instant shared by all their connections. The connection counts as active at creation.
    ///
    /// Runners normally get connections from [`Admitted::into_channel`](crate::runtime::Admitted::into_channel),
    /// which fills all of this in; see the type-level example for a hand-made one.
    pub fn new(
        id: Arc<str>,
        channel_name: Arc<str>,
        opening: Arc<dyn Any + Send + Sync>,
        limits: ConnectionLimits,
        epoch: Instant,
    ) -> Self {
        Self {
            id,
            channel_name,
            state: AtomicU8::new(ChannelState::Initial as u8),
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                bytes: 0,
                close: None,
                close_taken: false,
                waker: None,
            }),
            queue_limit: limits.outbound_queue_bytes,
            policy: limits.slow_consumer,
            opening,
            socket_state: Mutex::new(None),
            topics: Mutex::new(Vec::new()),
            rpc: RpcRegistry::new(limits.max_pending_rpc),
            last_seen_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            frame_started_ms: AtomicU64::new(0),
            reading_paused: AtomicBool::new(false),
            epoch,
            peer: None,
        }
    }

    /// The channel id (what [`Channel::channel_id`](crate::Channel::channel_id) returns).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The channel id as a shared string, to keep it as a map key without copying it.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// let key: Arc<str> = conn.id_arc().clone();
    /// assert_eq!(&*key, conn.id());
    /// ```
    #[must_use]
    pub fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// The name of the channel definition this connection belongs to.
    #[must_use]
    pub fn channel_name(&self) -> &str {
        &self.channel_name
    }

    /// The lifecycle state (see the type-level example).
    #[must_use]
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Marks the connection open (the 101 was written). Only an `Initial` connection becomes `Open`; a connection
    /// already closed stays closed. Runners call it through [`LiveChannel::open`](crate::runtime::LiveChannel::open),
    /// which also registers it with the event hub.
    pub fn mark_open(&self) {
        let _ = self.state.compare_exchange(
            ChannelState::Initial as u8,
            ChannelState::Open as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Records inbound activity for the idle timeout: runners call it whenever a frame (pongs included) arrives.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// std::thread::sleep(std::time::Duration::from_millis(20));
    /// assert!(conn.idle_ms() >= 20);
    /// conn.touch();
    /// assert!(conn.idle_ms() < 20);
    /// ```
    pub fn touch(&self) {
        self.last_seen_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Milliseconds since the last inbound frame (or since creation, before the first one), with millisecond
    /// resolution. The server's heartbeat sweep compares it with the ping interval and the idle timeout. See
    /// [`touch`](Self::touch) for an example.
    #[must_use]
    pub fn idle_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Marks that a frame (or a fragmented message) has started arriving and is not complete. Runners call it so
    /// that a sweep can end a connection whose client sends a frame too slowly; see
    /// [`frame_pending_ms`](Self::frame_pending_ms).
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1024, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 1 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// assert_eq!(conn.frame_pending_ms(), None);
    /// conn.mark_frame_started();
    /// assert!(conn.frame_pending_ms().is_some());
    /// conn.mark_frame_finished();
    /// assert_eq!(conn.frame_pending_ms(), None);
    /// ```
    pub fn mark_frame_started(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.frame_started_ms.store(now + 1, Ordering::Relaxed);
    }

    /// Marks that no frame is arriving any more (see [`mark_frame_started`](Self::mark_frame_started)).
    pub fn mark_frame_finished(&self) {
        self.frame_started_ms.store(0, Ordering::Relaxed);
    }

    /// For how many milliseconds the frame now arriving has been arriving, if one is (see
    /// [`mark_frame_started`](Self::mark_frame_started)).
    #[must_use]
    pub fn frame_pending_ms(&self) -> Option<u64> {
        let started = self.frame_started_ms.load(Ordering::Relaxed);
        (started != 0)
            .then(|| (self.epoch.elapsed().as_millis() as u64).saturating_sub(started - 1))
    }

    /// Marks whether the runner has stopped reading this connection because its inbound queue is full (a handler
    /// is busy and messages wait behind it).
    ///
    /// A runner that does not read cannot see its client leave. The server's sweep therefore wakes connections
    /// that are paused (see [`wake_runner`](Self::wake_runner)), and the runner checks on waking whether the
    /// peer has hung up, so a departed client's queued messages are freed without waiting for the handler.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// assert!(!conn.is_reading_paused());
    /// conn.mark_reading_paused(true);
    /// assert!(conn.is_reading_paused());
    /// conn.wake_runner(); // what the sweep does for a paused connection
    /// ```
    pub fn mark_reading_paused(&self, paused: bool) {
        self.reading_paused.store(paused, Ordering::Relaxed);
    }

    /// Whether the runner has stopped reading (see [`mark_reading_paused`](Self::mark_reading_paused)).
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.reading_paused.load(Ordering::Relaxed)
    }

    /// Wakes the runner's task (the one polling [`poll_outgoing`](Self::poll_outgoing)) without giving it
    /// anything to write, so it re-checks its transport. See
    /// [`mark_reading_paused`](Self::mark_reading_paused) for an example.
    pub fn wake_runner(&self) {
        if let Some(waker) = self.queue.lock().waker.as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Queues a frame, applying the slow-consumer policy. This is what every send, reply and publication comes
    /// down to.
    ///
    /// A frame that would take the queue past its bound is handled by the policy; a frame larger than the bound is
    /// still admitted into an empty queue.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// use pikku::core::channel::ConnectionLimits;
    /// use pikku::{ChannelState, Params, SendError, SlowConsumerPolicy};
    /// use pikku::core::{Connection, OutFrame};
    ///
    /// let limits = ConnectionLimits { outbound_queue_bytes: 8, slow_consumer: SlowConsumerPolicy::Drop, max_pending_rpc: 64 };
    /// let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// conn.push(OutFrame::text("0123456789")).unwrap(); // over the bound, but the queue was empty
    /// assert!(matches!(conn.push(OutFrame::text("x")), Err(SendError::Backpressure)));
    /// assert_eq!(conn.state(), ChannelState::Initial); // `Drop` keeps the connection
    /// ```
    ///
    /// # Errors
    /// [`SendError::Closed`] once the channel is closed (or when this frame closed it under the `Close` policy),
    /// [`SendError::Backpressure`] when the `Drop` policy discarded the frame.
    pub fn push(&self, frame: OutFrame) -> Result<(), SendError> {
        let waker = {
            let mut q = self.queue.lock();
            if q.close.is_some() || self.state() == ChannelState::Closed {
                return Err(SendError::Closed);
            }
            let len = frame.len();
            // A frame larger than the bound is admitted only into an empty queue.
            if !q.frames.is_empty() && q.bytes + len > self.queue_limit {
                match self.policy {
                    SlowConsumerPolicy::Drop => return Err(SendError::Backpressure),
                    SlowConsumerPolicy::Close => {
                        q.frames = VecDeque::new();
                        q.bytes = 0;
                        q.close = Some(Box::new(CloseRequest {
                            code: 1008,
                            reason: Cow::Borrowed("slow consumer"),
                            flush: false,
                            cause: DisconnectReason::SlowConsumer,
                        }));
                        self.state
                            .store(ChannelState::Closed as u8, Ordering::Release);
                        let waker = q.waker.take();
                        drop(q);
                        if let Some(w) = waker {
                            w.wake();
                        }
                        return Err(SendError::Closed);
                    }
                }
            }
            q.bytes += len;
            if q.frames.capacity() == 0 {
                // One slot, not the usual four: most connections hold a frame at a time, and the slot is kept.
                q.frames.reserve_exact(1);
            }
            q.frames.push_back(frame);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Requests a close; the first request wins. Returns whether this call closed the channel.
    ///
    /// The channel is `Closed` at once (sends fail from now on). With `flush: true` the frames already queued are
    /// written before the close frame; with `flush: false` they are discarded. Runners use it for the idle timeout
    /// and shutdown; handlers use [`Channel::close_with`](crate::Channel::close_with).
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// use pikku::core::channel::CloseRequest;
    /// use pikku::{ChannelState, DisconnectReason};
    ///
    /// let idle = CloseRequest { code: 1001, reason: "idle timeout".into(), flush: false, cause: DisconnectReason::IdleTimeout };
    /// assert!(conn.request_close(idle.clone()));
    /// assert!(!conn.request_close(idle)); // already closing
    /// assert_eq!(conn.state(), ChannelState::Closed);
    /// ```
    pub fn request_close(&self, request: CloseRequest) -> bool {
        let waker = {
            let mut q = self.queue.lock();
            if q.close.is_some() {
                return false;
            }
            if !request.flush {
                q.frames = VecDeque::new();
                q.bytes = 0;
            }
            q.close = Some(Box::new(request));
            self.state
                .store(ChannelState::Closed as u8, Ordering::Release);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Marks the channel closed because the peer or the transport ended it (no close frame is to be written by
    /// request). Returns `cause` if this was the first trigger, or the earlier trigger otherwise; the result is the
    /// reason the disconnection handler sees. If `cause` wins, queued frames are discarded.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// use pikku::DisconnectReason;
    ///
    /// // The peer vanished; nothing asked for a close before.
    /// assert_eq!(conn.mark_closed(DisconnectReason::TransportError), DisconnectReason::TransportError);
    /// // A later trigger does not replace the first.
    /// assert_eq!(conn.mark_closed(DisconnectReason::Shutdown), DisconnectReason::TransportError);
    /// ```
    pub fn mark_closed(&self, cause: DisconnectReason) -> DisconnectReason {
        let mut q = self.queue.lock();
        self.state
            .store(ChannelState::Closed as u8, Ordering::Release);
        match &q.close {
            Some(req) => req.cause.clone(),
            None => {
                q.close_taken = true;
                q.close = Some(Box::new(CloseRequest {
                    code: 1000,
                    reason: Cow::Borrowed(""),
                    flush: false,
                    cause: cause.clone(),
                }));
                q.frames = VecDeque::new();
                q.bytes = 0;
                cause
            }
        }
    }

    /// Ends an invocation of a one-shot runner: takes every queued frame and the close request, if a handler asked
    /// for one, and refuses later pushes, all under the queue lock, so a frame pushed by another task either is in
    /// the result or fails (and its sender takes another path). The connection's own state is otherwise untouched.
    pub(crate) fn seal(&self) -> (VecDeque<OutFrame>, Option<CloseRequest>) {
        let mut q = self.queue.lock();
        self.state
            .store(ChannelState::Closed as u8, Ordering::Release);
        q.bytes = 0;
        let close = if q.close_taken {
            None
        } else {
            q.close.as_deref().cloned()
        };
        (std::mem::take(&mut q.frames), close)
    }

    /// The close request, if the channel is closing (also after [`mark_closed`](Self::mark_closed), which records
    /// one with code 1000); `None` while it is open.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// use pikku::DisconnectReason;
    ///
    /// assert!(conn.close_request().is_none());
    /// conn.mark_closed(DisconnectReason::ClientClosed(Some(1000)));
    /// assert_eq!(conn.close_request().unwrap().cause, DisconnectReason::ClientClosed(Some(1000)));
    /// ```
    #[must_use]
    pub fn close_request(&self) -> Option<CloseRequest> {
        self.queue.lock().close.as_deref().cloned()
    }

    /// For the runner: moves queued frames into `out` (which must be empty) or reports the close request once the
    /// queue is drained. Registers `cx` to be woken when there is something new.
    ///
    /// With `writable == false` (the runner is still flushing an earlier batch) frames are left queued, but a close
    /// request is reported at once, with the frames it keeps (`flush`) moved into `out` to be written before the
    /// close frame: a client that stopped reading cannot hold the close back, so the runner's close timeout
    /// starts now. The close request is reported once; after that, and after [`mark_closed`](Self::mark_closed),
    /// it stays `Pending`.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// # use pikku::core::channel::ConnectionLimits;
    /// # use pikku::{Params, SlowConsumerPolicy};
    /// # use pikku::core::Connection;
    /// # let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// # let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// use std::collections::VecDeque;
    /// use std::task::{Context, Poll, Waker};
    /// use pikku::core::channel::{CloseRequest, Outgoing};
    /// use pikku::DisconnectReason;
    /// use pikku::core::OutFrame;
    ///
    /// let mut cx = Context::from_waker(Waker::noop()); // a runner passes its task's context
    /// let mut batch = VecDeque::new();
    /// assert!(conn.poll_outgoing(&mut cx, &mut batch, true).is_pending()); // nothing queued yet
    ///
    /// conn.push(OutFrame::text("a")).unwrap();
    /// conn.push(OutFrame::text("b")).unwrap();
    /// conn.request_close(CloseRequest { code: 1000, reason: "".into(), flush: true, cause: DisconnectReason::ServerClosed });
    ///
    /// // First the frames queued before the close…
    /// assert!(matches!(conn.poll_outgoing(&mut cx, &mut batch, true), Poll::Ready(Outgoing::Frames)));
    /// assert_eq!(batch.drain(..).collect::<Vec<_>>(), [OutFrame::text("a"), OutFrame::text("b")]);
    /// // …then the close frame, once.
    /// assert!(matches!(conn.poll_outgoing(&mut cx, &mut batch, true), Poll::Ready(Outgoing::Close(r)) if r.code == 1000));
    /// assert!(conn.poll_outgoing(&mut cx, &mut batch, true).is_pending());
    /// ```
    pub fn poll_outgoing(
        &self,
        cx: &mut Context<'_>,
        out: &mut VecDeque<OutFrame>,
        writable: bool,
    ) -> Poll<Outgoing> {
        let mut q = self.queue.lock();
        if writable && !q.frames.is_empty() {
            std::mem::swap(&mut q.frames, out);
            q.bytes = 0;
            return Poll::Ready(Outgoing::Frames);
        }
        if let Some(req) = q.close.as_deref().cloned() {
            if !q.close_taken {
                q.close_taken = true;
                if req.flush {
                    std::mem::swap(&mut q.frames, out);
                    q.bytes = 0;
                }
                return Poll::Ready(Outgoing::Close(req));
            }
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Records the client's address (see [`peer`](Self::peer)).
    pub(crate) fn set_peer(&mut self, peer: Option<SocketAddr>) {
        self.peer = peer.map(|addr| (addr.ip(), addr.port()));
    }

    /// The client's address, as the runner gave it when the connection was admitted.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.peer.map(|(ip, port)| SocketAddr::new(ip, port))
    }

    /// Payload bytes waiting in the outbound queue (not yet taken by the runner's writer). The server's heartbeat
    /// sweep adds these up for the `pikku_outbound_queue_bytes` gauge.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// use pikku::core::channel::ConnectionLimits;
    /// use pikku::core::{Connection, OutFrame};
    /// use pikku::{Params, SlowConsumerPolicy};
    ///
    /// let limits = ConnectionLimits { outbound_queue_bytes: 1 << 20, slow_consumer: SlowConsumerPolicy::Close, max_pending_rpc: 64 };
    /// let conn = Connection::new(Arc::from("c1"), Arc::from("events"), Arc::new(Params::new()), limits, Instant::now());
    /// conn.push(OutFrame::text("hello")).unwrap();
    /// assert_eq!(conn.queued_bytes(), 5);
    /// ```
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }

    /// Drops the socket state (after onDisconnect), so whatever it holds is freed even while stale handles keep the
    /// connection alive. [`LiveChannel::run_disconnect`](crate::runtime::LiveChannel::run_disconnect) calls it.
    pub fn release(&self) {
        *self.socket_state.lock() = None;
    }
}
