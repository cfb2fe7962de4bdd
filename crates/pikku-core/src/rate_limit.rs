//! Inbound rate limits: how many messages (and bytes) one connection may send per second.
//!
//! A limit is a token bucket with a burst, checked as each frame arrives, before it is queued for a handler
//! (runners call [`LiveChannel::admit_text`](crate::runtime::LiveChannel::admit_text) and
//! [`admit_binary`](crate::runtime::LiveChannel::admit_binary)), so a flood never fills the inbound queue or
//! reaches the handlers. The bucket is refilled lazily from a clock read
//! when a frame arrives (no timers). Its state is one "theoretical arrival time" per bucket (the generic cell rate
//! algorithm): a connection with a limit holds a few words; a connection without one holds nothing.
//!
//! When a frame is over the limit it is dropped, and the first one gets an error frame
//! (`TooManyRequestsError` `Rate limit exceeded`, with the message's routing key). If the client keeps going,
//! [`RateLimit::close_after`] more refusals close the connection with 1008 `rate limit exceeded`. A client that
//! slows down until its bucket is full again starts afresh.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A per-connection inbound rate limit: messages per second with a burst, optionally bytes per second too.
///
/// Set it app-wide with [`AppConfig::rate_limit`](crate::AppConfig::rate_limit) (off by default), per channel
/// with [`ChannelRoute::rate_limit`](crate::ChannelRoute::rate_limit), and per message route with
/// [`Route::rate_limit`](crate::Route::rate_limit). Text messages and binary frames count; empty frames and
/// reverse-RPC responses do not.
///
/// ```
/// use pikku::{Channel, ChannelRoute, Ctx, Params, RateLimit, Route};
///
/// async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _text: String) {}
/// async fn typing(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) {}
///
/// let limit = RateLimit::per_second(20).burst(40).bytes_per_second(64 * 1024);
/// assert_eq!((limit.messages_per_second(), limit.burst_size(), limit.close_after_refusals()), (20, 40, 10));
///
/// let chat = ChannelRoute::new("chat", "/chat")
///     .auth(false)
///     .rate_limit(limit)
///     .route("action", "say", say)
///     // Typing indicators are cheap and frequent: a budget of their own.
///     .route("action", "typing", Route::new(typing).rate_limit(RateLimit::per_second(50)));
/// # let _ = chat;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    messages_per_second: u32,
    burst: u32,
    bytes_per_second: Option<u64>,
    byte_burst: Option<u64>,
    close_after: u32,
}

impl RateLimit {
    /// `n` messages per second on average, with a burst of `n` (one second's worth), no byte limit, and a close
    /// after 10 further refusals.
    ///
    /// # Panics
    /// If `n` is zero.
    #[must_use]
    pub const fn per_second(n: u32) -> Self {
        assert!(n > 0, "a rate limit allows at least one message per second");
        Self {
            messages_per_second: n,
            burst: n,
            bytes_per_second: None,
            byte_burst: None,
            close_after: 10,
        }
    }

    /// How many messages may arrive at once after a quiet spell (at least 1).
    ///
    /// ```
    /// let limit = pikku::RateLimit::per_second(5).burst(0);
    /// assert_eq!(limit.burst_size(), 1);
    /// ```
    #[must_use]
    pub const fn burst(mut self, n: u32) -> Self {
        self.burst = if n == 0 { 1 } else { n };
        self
    }

    /// Also limits payload bytes per second (text and binary), with a burst of one second's worth unless
    /// [`byte_burst`](Self::byte_burst) says otherwise. A single message larger than the burst is let through
    /// when the bucket is full, and the bucket then owes its size.
    ///
    /// # Panics
    /// If `n` is zero.
    #[must_use]
    pub const fn bytes_per_second(mut self, n: u64) -> Self {
        assert!(n > 0, "a byte limit allows at least one byte per second");
        self.bytes_per_second = Some(n);
        self
    }

    /// The byte burst (default: one second's worth of [`bytes_per_second`](Self::bytes_per_second); at least 1).
    ///
    /// ```
    /// let limit = pikku::RateLimit::per_second(10).bytes_per_second(1000).byte_burst(4000);
    /// assert_eq!((limit.bytes_per_second_limit(), limit.byte_burst_limit()), (Some(1000), Some(4000)));
    /// ```
    #[must_use]
    pub const fn byte_burst(mut self, n: u64) -> Self {
        self.byte_burst = Some(if n == 0 { 1 } else { n });
        self
    }

    /// How many refused messages after the error frame close the connection (1008 `rate limit exceeded`;
    /// default 10). With 0, the first refusal sends its error frame and closes.
    ///
    /// ```
    /// let strict = pikku::RateLimit::per_second(10).close_after(0);
    /// assert_eq!(strict.close_after_refusals(), 0);
    /// ```
    #[must_use]
    pub const fn close_after(mut self, n: u32) -> Self {
        self.close_after = n;
        self
    }

    /// Messages per second on average.
    #[must_use]
    pub const fn messages_per_second(&self) -> u32 {
        self.messages_per_second
    }

    /// The message burst.
    #[must_use]
    pub const fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The byte limit per second, if any.
    #[must_use]
    pub const fn bytes_per_second_limit(&self) -> Option<u64> {
        self.bytes_per_second
    }

    /// The byte burst, if there is a byte limit.
    #[must_use]
    pub const fn byte_burst_limit(&self) -> Option<u64> {
        match self.bytes_per_second {
            Some(rate) => match self.byte_burst {
                Some(b) => Some(b),
                None => Some(rate),
            },
            None => None,
        }
    }

    /// The refusal count that closes the connection, read back (see the setter of the same name).
    #[must_use]
    pub const fn close_after_refusals(&self) -> u32 {
        self.close_after
    }
}

/// Nanoseconds on a process-wide monotonic clock (starting near 1 s, so a zeroed bucket is full).
pub(crate) fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1_000_000_000
}

/// `units` at `per_second` as nanoseconds of bucket time.
fn span_ns(units: u64, per_second: u64) -> u64 {
    let ns = u128::from(units) * NANOS_PER_SECOND / u128::from(per_second);
    u64::try_from(ns).unwrap_or(u64::MAX / 4)
}

/// What [`Bucket::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Let it through.
    Pass,
    /// Refused: the first refusal since the bucket was last full (send the error frame).
    RefuseFirst,
    /// Refused again; the connection stays open.
    Refuse,
    /// Refused once too often: close the connection (`first`: this is also the first refusal, so send the error
    /// frame before closing).
    Close {
        /// Whether this is the first refusal.
        first: bool,
    },
}

/// The state of one limit on one connection.
///
/// Each bucket field holds the instant (on [`now_ns`]'s clock) at which the bucket would be full again; it is
/// full when that lies in the past. Only the connection's reader updates it, so plain loads and stores suffice;
/// a racing second caller could at worst let one extra message through.
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    messages: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU32,
}

impl Bucket {
    /// Counts one message of `len` bytes arriving at `now` against `limit`.
    pub(crate) fn admit(&self, limit: &RateLimit, len: usize, now: u64) -> Admission {
        let msg_tat = self.messages.load(Ordering::Relaxed).max(now);
        let msg_cost = span_ns(1, u64::from(limit.messages_per_second));
        let msg_capacity = span_ns(u64::from(limit.burst), u64::from(limit.messages_per_second));
        let mut ok = msg_tat - now + msg_cost <= msg_capacity;
        let mut full = msg_tat == now;
        let mut byte_tat = 0;
        let mut byte_cost = 0;
        if let (Some(rate), Some(burst)) = (limit.bytes_per_second, limit.byte_burst_limit()) {
            byte_tat = self.bytes.load(Ordering::Relaxed).max(now);
            byte_cost = span_ns(len as u64, rate);
            let capacity = span_ns(burst, rate);
            // A message bigger than the whole burst passes only into a full bucket.
            ok &= byte_tat - now + byte_cost.min(capacity) <= capacity;
            full &= byte_tat == now;
        }
        if ok {
            self.messages.store(msg_tat + msg_cost, Ordering::Relaxed);
            if byte_cost > 0 {
                self.bytes.store(byte_tat + byte_cost, Ordering::Relaxed);
            }
            if full {
                // The client slowed down until the bucket refilled: a fresh start.
                self.refused.store(0, Ordering::Relaxed);
            }
            return Admission::Pass;
        }
        let refused = self.refused.load(Ordering::Relaxed).saturating_add(1);
        self.refused.store(refused, Ordering::Relaxed);
        if refused > limit.close_after.saturating_add(1) {
            // Already closing; nothing more to do.
            Admission::Refuse
        } else if refused == limit.close_after.saturating_add(1) {
            Admission::Close {
                first: refused == 1,
            }
        } else if refused == 1 {
            Admission::RefuseFirst
        } else {
            Admission::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let limit = RateLimit::per_second(10).burst(3);
        let bucket = Bucket::default();
        let t = 10_000 * MS;
        for _ in 0..3 {
            assert_eq!(bucket.admit(&limit, 1, t), Admission::Pass);
        }
        assert_eq!(bucket.admit(&limit, 1, t), Admission::RefuseFirst);
        assert_eq!(bucket.admit(&limit, 1, t), Admission::Refuse);
        // One token every 100 ms.
        assert_eq!(bucket.admit(&limit, 1, t + 100 * MS), Admission::Pass);
        assert_eq!(bucket.admit(&limit, 1, t + 100 * MS), Admission::Refuse);
    }

    #[test]
    fn refusals_escalate_to_a_close_and_a_full_bucket_forgives() {
        let limit = RateLimit::per_second(1).burst(1).close_after(2);
        let bucket = Bucket::default();
        let t = 10_000 * MS;
        assert_eq!(bucket.admit(&limit, 1, t), Admission::Pass);
        assert_eq!(bucket.admit(&limit, 1, t), Admission::RefuseFirst);
        assert_eq!(bucket.admit(&limit, 1, t), Admission::Refuse);
        assert_eq!(
            bucket.admit(&limit, 1, t),
            Admission::Close { first: false }
        );
        assert_eq!(bucket.admit(&limit, 1, t), Admission::Refuse);

        let bucket = Bucket::default();
        assert_eq!(bucket.admit(&limit, 1, t), Admission::Pass);
        assert_eq!(bucket.admit(&limit, 1, t), Admission::RefuseFirst);
        // Two seconds later the bucket is full again: the count starts afresh.
        assert_eq!(bucket.admit(&limit, 1, t + 2_000 * MS), Admission::Pass);
        assert_eq!(
            bucket.admit(&limit, 1, t + 2_000 * MS),
            Admission::RefuseFirst
        );
    }

    #[test]
    fn bytes_are_limited_and_a_big_message_fits_a_full_bucket() {
        let limit = RateLimit::per_second(1000).bytes_per_second(100);
        let bucket = Bucket::default();
        let t = 10_000 * MS;
        assert_eq!(bucket.admit(&limit, 60, t), Admission::Pass);
        assert_eq!(bucket.admit(&limit, 60, t), Admission::RefuseFirst);
        assert_eq!(bucket.admit(&limit, 40, t), Admission::Pass);
        // 500 bytes: bigger than the burst, passes once the bucket is full, then owes 5 s.
        assert_eq!(bucket.admit(&limit, 500, t + 1_000 * MS), Admission::Pass);
        assert_eq!(
            bucket.admit(&limit, 1, t + 4_000 * MS),
            Admission::RefuseFirst
        );
        assert_eq!(bucket.admit(&limit, 1, t + 6_000 * MS), Admission::Pass);
    }
}
