//! Metrics: switching them on, their names, and (cargo feature `prometheus`) a Prometheus recorder whose
//! scrape page the standalone server serves on `/metrics`.
//!
//! Every metric is described in `docs/observability.md`. They are recorded through the `metrics` facade; the
//! handles are resolved when the app is built, so install the recorder **before** building the server (or
//! calling [`serve`](crate::serve)). Apps built before that record nothing, at no cost.
//!
//! ```no_run
//! # #[cfg(feature = "prometheus")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use pikku::prelude::*;
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
//!
//! pikku::metrics::install_prometheus()?; // first: the app's handles are resolved when it is built
//! let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
//! pikku::serve(app, "127.0.0.1:4002".parse()?).await?; // GET /metrics is the scrape page
//! # Ok(())
//! # }
//! ```
//!
//! With a recorder of your own, install it, then call [`enable`].

pub use pikku_core::telemetry::{enable, is_enabled, names};

#[cfg(feature = "prometheus")]
pub(crate) mod prometheus;
/// The handle [`install_prometheus`] returns: `render()` gives the scrape page.
#[cfg(feature = "prometheus")]
#[doc(no_inline)]
pub use metrics_exporter_prometheus::PrometheusHandle;
#[cfg(feature = "prometheus")]
pub use prometheus::{handler, install_prometheus, prometheus_handle, InstallError};

pub(crate) mod server;
