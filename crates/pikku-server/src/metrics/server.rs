//! The server's own metric handles: refused upgrades and the sampled buffer gauges.

use std::sync::atomic::{AtomicU64, Ordering};

use ::metrics::{counter, gauge, Counter, Gauge};
use pikku_core::telemetry::names;

/// The refusal statuses the server and the built-in checks answer with, resolved up front; others (from an
/// application's own upgrade errors) are looked up when they happen, which is rare.
const STATUSES: [u16; 10] = [400, 401, 403, 404, 409, 422, 429, 500, 502, 503];

/// Resolved once per server, when metrics are on.
pub(crate) struct ServerMetrics {
    refused: [Counter; STATUSES.len()],
    outbound_queue: Gauge,
    inbound_buffered: Gauge,
    /// What this server last added to each gauge: several servers in one process add up to the process's bytes.
    reported_outbound: AtomicU64,
    reported_inbound: AtomicU64,
}

impl ServerMetrics {
    /// The handles, or `None` while metrics are off.
    pub(crate) fn resolve() -> Option<Self> {
        pikku_core::telemetry::is_enabled().then(|| Self {
            refused: STATUSES
                .map(|status| counter!(names::UPGRADES_REFUSED, "status" => status.to_string())),
            outbound_queue: gauge!(names::OUTBOUND_QUEUE_BYTES),
            inbound_buffered: gauge!(names::INBOUND_BUFFERED_BYTES),
            reported_outbound: AtomicU64::new(0),
            reported_inbound: AtomicU64::new(0),
        })
    }

    /// Counts an upgrade refused with `status`.
    pub(crate) fn refused(&self, status: u16) {
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.refused[i].increment(1),
            None => counter!(names::UPGRADES_REFUSED, "status" => status.to_string()).increment(1),
        }
    }

    /// Reports this server's current buffer bytes.
    pub(crate) fn sample(&self, outbound: usize, inbound: usize) {
        report(
            &self.outbound_queue,
            &self.reported_outbound,
            outbound as u64,
        );
        report(
            &self.inbound_buffered,
            &self.reported_inbound,
            inbound as u64,
        );
    }
}

impl Drop for ServerMetrics {
    fn drop(&mut self) {
        // A server that is gone holds nothing.
        self.sample(0, 0);
    }
}

/// Moves `gauge` by the change since this server's last report.
fn report(gauge: &Gauge, reported: &AtomicU64, now: u64) {
    let before = reported.swap(now, Ordering::AcqRel);
    if now >= before {
        gauge.increment((now - before) as f64);
    } else {
        gauge.decrement((before - now) as f64);
    }
}
