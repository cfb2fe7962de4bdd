//! The harness clock: microseconds since the first call in this process.
//!
//! Send times travel inside the messages (`"t"`), come back in replies and deliveries, and are
//! subtracted from the receive time; both ends are read in the same process, so a process-local
//! monotonic clock is exact and cheap.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds elapsed since this process first read the clock.
pub fn now_us() -> u64 {
    let start = START.get_or_init(Instant::now);
    start.elapsed().as_micros() as u64
}
