//! Metrics and tracing spans of the channel pipeline.
//!
//! # Metrics
//! The pipeline records its metrics through the [`metrics`](https://docs.rs/metrics/0.24) facade, into whatever
//! recorder the process installed. Nothing is recorded until metrics are switched on with [`enable`]
//! (`pikku::metrics::install_prometheus` calls it for you), and only by apps built after that: every handle (per
//! channel, per route, per close reason, per error class) is resolved once, when the app is built
//! ([`App::into_runtime`](crate::App::into_runtime), which `ChannelServer::new` and `pikku::serve` call), and
//! kept next to the route. A message then costs an atomic add per counter and never a lookup in the recorder's
//! registry. In an app built without [`enable`] no handle exists at all: a message pays one branch, and no
//! clock is read for the latency histogram.
//!
//! The names are the constants in [`names`]; `docs/observability.md` describes each with its labels.
//!
//! ```
//! // With a recorder of your own (OpenTelemetry, StatsD, …): install it first, then switch pikku's metrics on,
//! // then build the app.
//! pikku::metrics::enable();
//! assert!(pikku::metrics::is_enabled());
//! assert_eq!(pikku::metrics::names::MESSAGES_IN, "pikku_messages_in_total");
//! ```
//!
//! # Spans
//! Every handler runs inside a span of target [`SPAN_TARGET`] at level `DEBUG`, so the events a handler logs
//! can carry where they come from:
//!
//! | span | fields | around |
//! |---|---|---|
//! | `connect` | `channel`, `channel_id`, `peer` | the connection handler and its middleware |
//! | `message` | `channel`, `channel_id`, `peer`, `route` | one message: middleware, validation, permissions, handler, reply |
//! | `binary` | `channel`, `channel_id`, `peer` | one binary frame's handler |
//! | `disconnect` | `channel`, `channel_id`, `peer` | the disconnection handler and its middleware |
//!
//! `route` reads `property:value` (`action:say`), or `default` for the default route; `peer` is the client's
//! address when the runner knows it. They are `DEBUG` so that logging at `INFO` costs a message nothing: turn
//! them on for their target only, and your `info!` lines carry them (`RUST_LOG=info,pikku::span=debug`). With a
//! `fmt` subscriber they cost about 0.6 µs per message (about a fifth of an echo's server CPU on the bench
//! machine). A span lives only while its handler runs: an idle connection holds none, so a subscriber's
//! span registry never grows with the number of connections.
//!
//! ```
//! use pikku::prelude::*;
//!
//! async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, text: String) {
//!     // With `RUST_LOG=info,pikku::span=debug`, logged as
//!     // `message{channel=chat channel_id=… peer=… route=action:say}: said text=…`.
//!     tracing::info!(%text, "said");
//! }
//! ```

pub(crate) mod handles;
pub(crate) mod hub;
pub mod names;
pub(crate) mod span;

use std::sync::atomic::{AtomicBool, Ordering};

pub use span::SPAN_TARGET;

/// Whether [`enable`] was called.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Switches pikku's metrics on for every app built from now on, and describes them to the installed recorder
/// (their help text and units). Call it after installing a `metrics` recorder and before building the app;
/// apps built earlier keep recording nothing. Calling it again changes nothing.
///
/// The recorder is global to the process, and so is this switch: the `metrics` facade has no way to tell
/// whether a recorder is installed, so pikku is told.
///
/// ```
/// use pikku::prelude::*;
///
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
///
/// // metrics::set_global_recorder(my_recorder).unwrap();
/// pikku::metrics::enable();
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let server = ChannelServer::new(app, ServerConfig::default()); // resolves the metric handles of `events`
/// # let _ = server;
/// ```
pub fn enable() {
    if !ENABLED.swap(true, Ordering::AcqRel) {
        names::describe_all();
    }
}

/// Whether [`enable`] was called: apps built now record metrics.
///
/// ```
/// pikku::metrics::enable();
/// assert!(pikku::metrics::is_enabled());
/// ```
#[must_use]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}
