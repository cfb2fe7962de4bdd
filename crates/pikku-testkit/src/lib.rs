//! Test support shared by pikku's integration tests.
//!
//! Everything here is deliberately independent of the server's own codec (it depends on neither `pikku-core`
//! nor `pikku-server`), so the tests that use it check the server against a separate reading of the specs:
//! - [`Rng`]: a small xorshift64* generator, for reproducible random inputs without a dependency;
//! - [`json_mismatch`] / [`assert_json_matches`]: JSON comparison with the [`ANY`] wildcard;
//! - [`http`]: raw HTTP upgrade requests and responses over plain TCP;
//! - [`ws`]: a hand-written RFC 6455 client, for what a well-behaved library refuses to send;
//! - [`sse`]: a raw client for Server-Sent Events streams;
//! - [`rss_kib`]: this process's resident memory, for tests that bound what the server holds.

use std::time::Duration;

pub mod http;
mod json;
mod rng;
pub mod sse;
pub mod ws;

pub use http::{
    plain_request, raw_upgrade, read_head, upgrade_request, write_upgrade, HttpResponse,
};
pub use json::{assert_json_matches, json_mismatch, ANY};
pub use rng::Rng;
pub use ws::{client_frame, frame_header, RawFrame, RawWs, MASK};

/// How long the helpers wait for something that must happen. Generous on purpose: a correct server answers in
/// milliseconds, so this only bounds how long a failure takes.
pub const WAIT: Duration = Duration::from_secs(10);

/// Waits until `check` holds, polling every 10 ms; panics naming `what` after [`WAIT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kilobytes of resident memory of this process (`VmRSS` in `/proc/self/status`).
///
/// # Panics
/// Where `/proc/self/status` has no `VmRSS` line (not Linux).
#[must_use]
pub fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}
