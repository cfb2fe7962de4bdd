//! The metric handles of a built app: resolved once per channel and route when the app is built, so the
//! message path only adds to atomics it already holds.

use std::sync::Arc;
use std::time::Instant;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use parking_lot::Mutex;

use super::names;
use crate::channel::DisconnectReason;
use crate::error::{ChannelError, ErrorClass};

/// The `reason` labels, in the order of [`reason_index`].
const REASONS: [&str; 11] = [
    "client_closed",
    "server_closed",
    "idle_timeout",
    "frame_timeout",
    "slow_consumer",
    "rate_limited",
    "shutdown",
    "message_too_big",
    "invalid_utf8",
    "protocol_error",
    "transport_error",
];

fn reason_index(reason: &DisconnectReason) -> usize {
    match reason {
        DisconnectReason::ClientClosed(_) => 0,
        DisconnectReason::ServerClosed => 1,
        DisconnectReason::IdleTimeout => 2,
        DisconnectReason::FrameTimeout => 3,
        DisconnectReason::SlowConsumer => 4,
        DisconnectReason::RateLimited => 5,
        DisconnectReason::Shutdown => 6,
        DisconnectReason::MessageTooBig => 7,
        DisconnectReason::InvalidUtf8 => 8,
        DisconnectReason::ProtocolError => 9,
        DisconnectReason::TransportError => 10,
    }
}

/// The `class` labels resolved up front: the built-in classes and internal errors.
const CLASSES: [&str; 9] = [
    ErrorClass::BadRequest.name(),
    ErrorClass::Unauthorized.name(),
    ErrorClass::Forbidden.name(),
    ErrorClass::NotFound.name(),
    ErrorClass::UnprocessableContent.name(),
    ErrorClass::TooManyRequests.name(),
    ErrorClass::ServiceUnavailable.name(),
    ErrorClass::ChannelRpc.name(),
    "InternalServerError",
];

/// Application-defined error classes one channel labels by name; any beyond count as `other`, so a handler
/// that makes up class names cannot grow the number of series without bound.
const MAX_CUSTOM_CLASSES: usize = 32;

/// Error frames of one channel, by class.
pub(crate) struct ErrorCounters {
    channel: Arc<str>,
    builtin: [Counter; CLASSES.len()],
    /// Classes of the application's own `ClientError`s, resolved on first use.
    custom: Mutex<Vec<(Box<str>, Counter)>>,
    other: Counter,
}

impl ErrorCounters {
    fn new(channel: &Arc<str>) -> Self {
        let resolve = |class: &'static str| counter!(names::ERROR_FRAMES, "channel" => channel.to_string(), "class" => class);
        Self {
            channel: channel.clone(),
            builtin: CLASSES.map(resolve),
            custom: Mutex::new(Vec::new()),
            other: resolve("other"),
        }
    }

    /// Counts one error frame of `err`'s class.
    pub(crate) fn count(&self, err: &ChannelError) {
        let class = err.name();
        if let Some(i) = CLASSES.iter().position(|c| *c == class) {
            self.builtin[i].increment(1);
            return;
        }
        let mut custom = self.custom.lock();
        if let Some((_, counter)) = custom.iter().find(|(name, _)| **name == *class) {
            counter.increment(1);
        } else if custom.len() < MAX_CUSTOM_CLASSES {
            let counter = counter!(
                names::ERROR_FRAMES,
                "channel" => self.channel.to_string(),
                "class" => class.to_owned()
            );
            counter.increment(1);
            custom.push((class.into(), counter));
        } else {
            self.other.increment(1);
        }
    }
}

/// The handles of one route (or of a channel's connect, binary, disconnect or unrouted messages).
pub(crate) struct RouteMetrics {
    messages_in: Counter,
    messages_out: Counter,
    duration: Histogram,
    pub(crate) errors: Arc<ErrorCounters>,
}

impl RouteMetrics {
    pub(crate) fn new(channel: &Arc<str>, route: String, errors: &Arc<ErrorCounters>) -> Self {
        let labels = [("channel", channel.to_string()), ("route", route)];
        Self {
            messages_in: counter!(names::MESSAGES_IN, &labels),
            messages_out: counter!(names::MESSAGES_OUT, &labels),
            duration: histogram!(names::HANDLER_DURATION, &labels),
            errors: errors.clone(),
        }
    }

    /// Counts an arriving message and starts its clock.
    pub(crate) fn received(self: &Arc<Self>) -> Timing {
        self.messages_in.increment(1);
        self.start()
    }

    /// Starts the clock of a handler that no message started (connect, disconnect).
    pub(crate) fn start(self: &Arc<Self>) -> Timing {
        Timing {
            route: self.clone(),
            started: Instant::now(),
        }
    }

    /// Counts a frame queued in answer.
    pub(crate) fn sent(&self) {
        self.messages_out.increment(1);
    }

    /// Counts an arriving message that starts no handler (its answer, if any, is counted with [`sent`]).
    pub(crate) fn received_only(&self) {
        self.messages_in.increment(1);
    }
}

/// A handler run being timed, with the route it counts for.
pub(crate) struct Timing {
    pub(crate) route: Arc<RouteMetrics>,
    started: Instant,
}

impl Timing {
    /// Records the handler's run time.
    pub(crate) fn finished(&self) {
        self.route.duration.record(self.started.elapsed());
    }
}

/// The handles of one channel.
pub(crate) struct ChannelMetrics {
    opened: Counter,
    open: Gauge,
    closed: [Counter; REASONS.len()],
    slow_consumer: Counter,
    rate_limited: Counter,
    pub(crate) errors: Arc<ErrorCounters>,
    pub(crate) connect: Option<Arc<RouteMetrics>>,
    pub(crate) binary: Option<Arc<RouteMetrics>>,
    pub(crate) disconnect: Option<Arc<RouteMetrics>>,
    /// Messages that named no registered route (with no default route to take them).
    pub(crate) unrouted: Arc<RouteMetrics>,
}

impl ChannelMetrics {
    /// Counts a connection that opened.
    pub(crate) fn opened(&self) {
        self.opened.increment(1);
        self.open.increment(1.0);
    }

    /// Counts a connection that closed for `reason`.
    pub(crate) fn closed(&self, reason: &DisconnectReason) {
        self.open.decrement(1.0);
        self.closed[reason_index(reason)].increment(1);
        if *reason == DisconnectReason::SlowConsumer {
            self.slow_consumer.increment(1);
        }
    }

    /// Counts an inbound frame refused by a rate limit.
    pub(crate) fn rate_limited(&self) {
        self.rate_limited.increment(1);
    }
}

impl ChannelMetrics {
    /// The handles of channel `channel`, with a route's handles for each lifecycle or binary handler it has, and
    /// the error counters its routes share (pass them to [`RouteMetrics::new`]).
    pub(crate) fn new(channel: &Arc<str>, connect: bool, binary: bool, disconnect: bool) -> Self {
        let errors = Arc::new(ErrorCounters::new(channel));
        let route = |present: bool, label: &str| {
            present.then(|| Arc::new(RouteMetrics::new(channel, label.to_owned(), &errors)))
        };
        let label = || channel.to_string();
        Self {
            opened: counter!(names::CONNECTIONS_OPENED, "channel" => label()),
            open: gauge!(names::CONNECTIONS_OPEN, "channel" => label()),
            closed: REASONS.map(
                |reason| counter!(names::CONNECTIONS_CLOSED, "channel" => label(), "reason" => reason),
            ),
            slow_consumer: counter!(names::SLOW_CONSUMER_CLOSES, "channel" => label()),
            rate_limited: counter!(names::RATE_LIMITED, "channel" => label()),
            connect: route(connect, "connect"),
            binary: route(binary, "binary"),
            disconnect: route(disconnect, "disconnect"),
            unrouted: Arc::new(RouteMetrics::new(channel, "unrouted".to_owned(), &errors)),
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_label() {
        let reasons = [
            DisconnectReason::ClientClosed(None),
            DisconnectReason::ServerClosed,
            DisconnectReason::IdleTimeout,
            DisconnectReason::FrameTimeout,
            DisconnectReason::SlowConsumer,
            DisconnectReason::RateLimited,
            DisconnectReason::Shutdown,
            DisconnectReason::MessageTooBig,
            DisconnectReason::InvalidUtf8,
            DisconnectReason::ProtocolError,
            DisconnectReason::TransportError,
        ];
        for reason in reasons {
            assert_eq!(REASONS[reason_index(&reason)], reason.as_str());
        }
    }
}
