//! The event hub's metric handles, labelled with its backend.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::names;

/// Resolved once per hub when its app is built (see [`EventHub::init_metrics`](crate::EventHub)); a hub used
/// without an app, or built with metrics off, has none.
pub(crate) struct HubMetrics {
    pub(crate) publishes: Counter,
    pub(crate) publish_errors: Counter,
    pub(crate) local_deliveries: Counter,
    pub(crate) remote_deliveries: Counter,
    pub(crate) remote_events: Counter,
    pub(crate) remote_lag: Histogram,
    pub(crate) broker_connected: Gauge,
    pub(crate) broker_reconnects: Counter,
}

impl HubMetrics {
    /// The handles of a hub whose driver is `backend`; `None` for a hub without one, which has no broker link
    /// to report on.
    pub(crate) fn new(backend: Option<&'static str>) -> Self {
        let Some(backend) = backend else {
            return Self::memory();
        };
        Self {
            publishes: counter!(names::HUB_PUBLISHES, "backend" => backend),
            publish_errors: counter!(names::HUB_PUBLISH_ERRORS, "backend" => backend),
            local_deliveries: counter!(names::HUB_DELIVERIES, "backend" => backend, "source" => "local"),
            remote_deliveries: counter!(names::HUB_DELIVERIES, "backend" => backend, "source" => "remote"),
            remote_events: counter!(names::HUB_REMOTE_EVENTS, "backend" => backend),
            remote_lag: histogram!(names::HUB_REMOTE_LAG, "backend" => backend),
            broker_connected: gauge!(names::HUB_BROKER_CONNECTED, "backend" => backend),
            broker_reconnects: counter!(names::HUB_BROKER_RECONNECTS, "backend" => backend),
        }
    }

    fn memory() -> Self {
        let backend = "memory";
        Self {
            publishes: counter!(names::HUB_PUBLISHES, "backend" => backend),
            publish_errors: Counter::noop(),
            local_deliveries: counter!(names::HUB_DELIVERIES, "backend" => backend, "source" => "local"),
            remote_deliveries: Counter::noop(),
            remote_events: Counter::noop(),
            remote_lag: Histogram::noop(),
            broker_connected: Gauge::noop(),
            broker_reconnects: Counter::noop(),
        }
    }
}
