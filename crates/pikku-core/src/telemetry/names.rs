//! The names of pikku's metrics, for dashboards, alerts and tests.
//!
//! Counters end in `_total`; histograms are in seconds. Labels: `channel` is the channel's name,
//! `route` a route's `property:value` (or `default`, `connect`, `binary`, `disconnect`, `unrouted`), `reason`
//! a [`DisconnectReason`](crate::DisconnectReason) name, `class` an error's `errorName`, `status` an HTTP
//! status, `backend` the event hub's driver (`memory` without one), `source` `local` or `remote`.
//!
//! ```
//! use pikku::metrics::names;
//!
//! // A test that scraped `/metrics` into `text`:
//! let text = "pikku_connections_opened_total{channel=\"chat\"} 3\n";
//! let line = text.lines().find(|l| l.starts_with(names::CONNECTIONS_OPENED)).unwrap();
//! assert!(line.ends_with(" 3"));
//! ```

use metrics::Unit;

/// Gauge: connections of a channel open now (`channel`).
pub const CONNECTIONS_OPEN: &str = "pikku_connections_open";
/// Counter: connections opened (`channel`).
pub const CONNECTIONS_OPENED: &str = "pikku_connections_opened_total";
/// Counter: connections closed (`channel`, `reason`).
pub const CONNECTIONS_CLOSED: &str = "pikku_connections_closed_total";
/// Counter: connections closed because their outbound queue overflowed under the `Close` policy (`channel`).
pub const SLOW_CONSUMER_CLOSES: &str = "pikku_slow_consumer_closes_total";
/// Counter: inbound frames refused by a rate limit (`channel`).
pub const RATE_LIMITED: &str = "pikku_rate_limited_total";
/// Counter: messages received, text and binary (`channel`, `route`).
pub const MESSAGES_IN: &str = "pikku_messages_in_total";
/// Counter: frames queued by the pipeline in answer to a handler: replies, error frames and the connection
/// handler's result (`channel`, `route`).
pub const MESSAGES_OUT: &str = "pikku_messages_out_total";
/// Histogram, seconds: how long a handler ran, with its middleware, validation and permissions (`channel`,
/// `route`).
pub const HANDLER_DURATION: &str = "pikku_handler_duration_seconds";
/// Counter: error frames sent (`channel`, `class`).
pub const ERROR_FRAMES: &str = "pikku_error_frames_total";
/// Counter: upgrade requests answered with an HTTP error instead of 101 (`status`).
pub const UPGRADES_REFUSED: &str = "pikku_upgrades_refused_total";
/// Gauge, bytes: frames waiting in the outbound queues of all connections, sampled by the server's heartbeat
/// sweep.
pub const OUTBOUND_QUEUE_BYTES: &str = "pikku_outbound_queue_bytes";
/// Gauge, bytes: inbound bytes all connections hold (partial frames, queued messages), sampled by the server's
/// heartbeat sweep.
pub const INBOUND_BUFFERED_BYTES: &str = "pikku_inbound_buffered_bytes";
/// Counter: publications made on this node (`backend`).
pub const HUB_PUBLISHES: &str = "pikku_hub_publishes_total";
/// Counter: publications the broker did not take (`backend`).
pub const HUB_PUBLISH_ERRORS: &str = "pikku_hub_publish_errors_total";
/// Counter: frames the hub queued to this node's subscribers (`backend`, `source`: `local` for publications
/// made here, `remote` for those received from other nodes).
pub const HUB_DELIVERIES: &str = "pikku_hub_deliveries_total";
/// Counter: publications received from other nodes through the broker (`backend`).
pub const HUB_REMOTE_EVENTS: &str = "pikku_hub_remote_events_total";
/// Histogram, seconds: how long publications from other nodes took to get here, from the publisher's clock to
/// this node's (`backend`); clocks out of step skew it, and a negative difference counts as zero.
pub const HUB_REMOTE_LAG: &str = "pikku_hub_remote_lag_seconds";
/// Gauge: 1 while the link to the broker is up, 0 while it is down or starting (`backend`).
pub const HUB_BROKER_CONNECTED: &str = "pikku_hub_broker_connected";
/// Counter: times the broker link came back after an outage (`backend`).
pub const HUB_BROKER_RECONNECTS: &str = "pikku_hub_broker_reconnects_total";

/// Every name above, for checks such as "the dashboard uses no name that does not exist".
///
/// ```
/// use pikku::metrics::names;
///
/// assert!(names::ALL.contains(&names::HUB_BROKER_CONNECTED));
/// assert!(names::ALL.iter().all(|name| name.starts_with("pikku_")));
/// ```
pub const ALL: &[&str] = &[
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    CONNECTIONS_CLOSED,
    SLOW_CONSUMER_CLOSES,
    RATE_LIMITED,
    MESSAGES_IN,
    MESSAGES_OUT,
    HANDLER_DURATION,
    ERROR_FRAMES,
    UPGRADES_REFUSED,
    OUTBOUND_QUEUE_BYTES,
    INBOUND_BUFFERED_BYTES,
    HUB_PUBLISHES,
    HUB_PUBLISH_ERRORS,
    HUB_DELIVERIES,
    HUB_REMOTE_EVENTS,
    HUB_REMOTE_LAG,
    HUB_BROKER_CONNECTED,
    HUB_BROKER_RECONNECTS,
];

/// Gives the installed recorder each metric's unit and help text.
pub(crate) fn describe_all() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS_OPEN, "Connections of a channel open now.");
    describe_counter!(CONNECTIONS_OPENED, "Connections opened.");
    describe_counter!(CONNECTIONS_CLOSED, "Connections closed, by reason.");
    describe_counter!(
        SLOW_CONSUMER_CLOSES,
        "Connections closed because their outbound queue overflowed."
    );
    describe_counter!(RATE_LIMITED, "Inbound frames refused by a rate limit.");
    describe_counter!(MESSAGES_IN, "Messages received.");
    describe_counter!(MESSAGES_OUT, "Replies and error frames queued.");
    describe_histogram!(
        HANDLER_DURATION,
        Unit::Seconds,
        "Handler run time, middleware included."
    );
    describe_counter!(ERROR_FRAMES, "Error frames sent, by error class.");
    describe_counter!(UPGRADES_REFUSED, "Upgrade requests refused, by status.");
    describe_gauge!(
        OUTBOUND_QUEUE_BYTES,
        Unit::Bytes,
        "Bytes waiting in outbound queues (sampled)."
    );
    describe_gauge!(
        INBOUND_BUFFERED_BYTES,
        Unit::Bytes,
        "Inbound bytes held by connections (sampled)."
    );
    describe_counter!(HUB_PUBLISHES, "Publications made on this node.");
    describe_counter!(HUB_PUBLISH_ERRORS, "Publications the broker did not take.");
    describe_counter!(
        HUB_DELIVERIES,
        "Frames queued to local subscribers, by source."
    );
    describe_counter!(HUB_REMOTE_EVENTS, "Publications received from other nodes.");
    describe_histogram!(
        HUB_REMOTE_LAG,
        Unit::Seconds,
        "Time from a publication on another node to its arrival here."
    );
    describe_gauge!(
        HUB_BROKER_CONNECTED,
        "1 while the broker link is up, 0 otherwise."
    );
    describe_counter!(
        HUB_BROKER_RECONNECTS,
        "Broker link recoveries after an outage."
    );
}
