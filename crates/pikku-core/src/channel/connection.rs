//! The untyped state of one open connection, shared by its typed views, the event hub and the runner.

use std::any::Any;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::Mutex;

use super::{ChannelState, DisconnectReason};
use crate::error::SendError;
use crate::frame::OutFrame;
use crate::rpc::RpcRegistry;

/// What to do when a frame would overflow a connection's outbound queue (semantics §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Discard the queue and close the connection with 1008 `slow consumer` (the default).
    #[default]
    Close,
    /// Discard the new frame; `send` returns [`SendError::Backpressure`]; the connection stays open.
    Drop,
}

/// A request to close the connection, as seen by the runner.
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

/// What the runner should write next.
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
    close: Option<CloseRequest>,
    /// Set once the runner has taken the close request; nothing is queued after it.
    close_taken: bool,
    waker: Option<Waker>,
}

/// One connection: its id, lifecycle state, bounded outbound queue, socket state, hub subscriptions and pending
/// reverse calls. Runners own it through an `Arc`; handlers see it through [`Channel`](crate::Channel) views.
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
    epoch: Instant,
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

/// Limits a connection is created with.
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
    /// A new connection in state `Initial`. `opening` is the channel's typed opening data.
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
            epoch,
        }
    }

    /// The channel id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The channel id as a shared string.
    #[must_use]
    pub fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// The name of the channel definition.
    #[must_use]
    pub fn channel_name(&self) -> &str {
        &self.channel_name
    }

    /// The lifecycle state.
    #[must_use]
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Marks the connection open (the 101 was written).
    pub fn mark_open(&self) {
        let _ = self.state.compare_exchange(
            ChannelState::Initial as u8,
            ChannelState::Open as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Records inbound activity for the idle timeout.
    pub fn touch(&self) {
        self.last_seen_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Milliseconds since the last inbound frame.
    #[must_use]
    pub fn idle_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Queues a frame, applying the slow-consumer policy.
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
            // A frame larger than the bound is admitted only into an empty queue (semantics §5.5).
            if !q.frames.is_empty() && q.bytes + len > self.queue_limit {
                match self.policy {
                    SlowConsumerPolicy::Drop => return Err(SendError::Backpressure),
                    SlowConsumerPolicy::Close => {
                        q.frames = VecDeque::new();
                        q.bytes = 0;
                        q.close = Some(CloseRequest {
                            code: 1008,
                            reason: Cow::Borrowed("slow consumer"),
                            flush: false,
                            cause: DisconnectReason::SlowConsumer,
                        });
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
            q.frames.push_back(frame);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Requests a close; the first request wins. Returns whether this call closed the channel.
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
            q.close = Some(request);
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
    /// request). Returns `cause` if this was the first trigger, or the earlier trigger otherwise.
    pub fn mark_closed(&self, cause: DisconnectReason) -> DisconnectReason {
        let mut q = self.queue.lock();
        self.state
            .store(ChannelState::Closed as u8, Ordering::Release);
        match &q.close {
            Some(req) => req.cause.clone(),
            None => {
                q.close_taken = true;
                q.close = Some(CloseRequest {
                    code: 1000,
                    reason: Cow::Borrowed(""),
                    flush: false,
                    cause: cause.clone(),
                });
                q.frames = VecDeque::new();
                q.bytes = 0;
                cause
            }
        }
    }

    /// The close request, if the channel is closing.
    #[must_use]
    pub fn close_request(&self) -> Option<CloseRequest> {
        self.queue.lock().close.clone()
    }

    /// For the runner: moves queued frames into `out` (which must be empty) or reports the close request once the
    /// queue is drained. Registers `cx` to be woken when there is something new.
    ///
    /// With `writable == false` (the runner is still flushing an earlier batch) only a close request that
    /// discards the queue (slow consumer, idle timeout) is reported, so a stuck writer cannot delay it.
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
        if let Some(req) = q.close.clone() {
            if !q.close_taken && (writable || !req.flush) {
                q.close_taken = true;
                return Poll::Ready(Outgoing::Close(req));
            }
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Drops the socket state (after onDisconnect).
    pub fn release(&self) {
        *self.socket_state.lock() = None;
    }
}
