//! The harness clock: microseconds of wall-clock time.
//!
//! Send times travel inside the messages (`"t"`), come back in replies and deliveries, and are
//! subtracted from the receive time. The sender and the receiver may be different processes on
//! the same machine (`broadcast`, cross-node `fanout`), so the clock is the system's real-time
//! clock, which every process shares; reading it costs the same as the monotonic one.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
#[must_use]
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
