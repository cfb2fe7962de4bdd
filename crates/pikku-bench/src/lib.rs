//! Benchmark harness for pikku channels.
//!
//! The crate holds three programs that speak the bench contract (a channel `bench` at `/bench`,
//! routed by `action`: `echo`, `sub`, `pub`; written out in `bench-server`'s docs):
//!
//! - `pikku-bench`, the load generator (scenarios [`scenario::echo`], [`scenario::fanout`],
//!   [`scenario::idle`], [`scenario::connect`]), a single-threaded tokio client that reads the
//!   server's own CPU time and RSS from `/proc/<pid>`; and the hand-run measurements
//!   [`scenario::attack`] (hostile clients' memory cost), [`scenario::flood`] (one publisher
//!   flooding a topic, and what bystanders see) and [`scenario::soak`] (a long mixed run sampled
//!   into a CSV, plotted by `bench/plot_soak.py`);
//! - `baseline-server`, the same three routes written straight on tokio-websockets with no
//!   framework ([`baseline`]), so every run reports the framework's overhead as a ratio;
//! - `bench-server`, the same contract built on the framework.
//!
//! `bench/run.sh` pins the server to CPU 0 and the load to CPU 1, runs both servers back to back
//! and renders `docs/benchmarks.md` with [`table`].

pub mod app;
pub mod args;
pub mod baseline;
pub mod client;
pub mod clock;
pub mod json;
pub mod procstat;
pub mod raw;
pub mod report;
pub mod scenario;
pub mod table;
pub mod template;

/// The error type of the harness: any error, with a readable message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The result type of the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;
