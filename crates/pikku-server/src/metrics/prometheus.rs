//! The Prometheus recorder: installed once per process, rendered by the server's `/metrics` endpoint or by
//! [`handler`] in a router of your own.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use http::{header, HeaderValue, Response, StatusCode};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use parking_lot::Mutex;
use pikku_core::telemetry::{self, names};

use metrics_exporter_prometheus::PrometheusHandle;

/// Bucket bounds of the duration histograms (handler run time, remote lag), in seconds: 5 µs to 10 s.
const DURATION_BUCKETS: [f64; 20] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nothing scrapes. Samples wait in a buffer
/// until then, so this bounds the memory they take between scrapes.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// The recorder this module installed, once it has.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Serialises installs, so two threads racing to install get the same handle.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Why [`install_prometheus`] failed.
///
/// ```
/// let err = pikku::metrics::InstallError::AnotherRecorder;
/// assert_eq!(err.to_string(), "another metrics recorder is already installed in this process");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// A recorder not installed by [`install_prometheus`] is the process's global recorder already.
    AnotherRecorder,
    /// The exporter refused its configuration.
    Build(BuildError),
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AnotherRecorder => {
                f.write_str("another metrics recorder is already installed in this process")
            }
            Self::Build(err) => write!(f, "the Prometheus recorder could not be built: {err}"),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::AnotherRecorder => None,
            Self::Build(err) => Some(err),
        }
    }
}

/// Installs a Prometheus recorder as the process's global `metrics` recorder, switches pikku's metrics on
/// ([`enable`](super::enable)), and returns the handle that renders the scrape page. Call it before building
/// the server: apps built earlier record nothing. Calling it again returns the same handle.
///
/// The standalone server ([`serve`](crate::serve), [`ChannelServer::serve`](crate::ChannelServer::serve) and
/// the other `serve` methods) then answers `GET /metrics` ([`ServerConfig::metrics_path`](crate::ServerConfig))
/// with the page; in a router of your own, mount [`handler`]. The handler duration histogram gets buckets from
/// 5 µs to 10 s. A background thread folds histogram samples into their buckets every 5 s, so memory stays
/// bounded even when nothing scrapes.
///
/// ```
/// use pikku::prelude::*;
///
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
///
/// let handle = pikku::metrics::install_prometheus().unwrap();
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let server = ChannelServer::new(app, ServerConfig::default());
/// assert!(handle.render().contains("pikku_connections_opened_total{channel=\"events\"} 0"));
/// # let _ = server;
/// ```
///
/// # Errors
/// [`InstallError::AnotherRecorder`] when a recorder of another kind is installed already (then call
/// [`enable`](super::enable) instead to record into it).
pub fn install_prometheus() -> Result<PrometheusHandle, InstallError> {
    let _installing = INSTALLING.lock();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::HANDLER_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )
        .map_err(InstallError::Build)?
        .set_buckets_for_metric(
            Matcher::Full(names::HUB_REMOTE_LAG.to_owned()),
            &DURATION_BUCKETS,
        )
        .map_err(InstallError::Build)?
        .install_recorder()
        .map_err(|err| match err {
            BuildError::FailedToSetGlobalRecorder(_) => InstallError::AnotherRecorder,
            other => InstallError::Build(other),
        })?;
    let upkeep = handle.clone();
    // A thread rather than a task: the recorder outlives any runtime, and this works outside one.
    let spawned = std::thread::Builder::new()
        .name("pikku-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_PERIOD);
            upkeep.run_upkeep();
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "no metrics upkeep thread: histogram samples are folded at scrapes only");
    }
    telemetry::enable();
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

/// The handle [`install_prometheus`] returned, if it was called in this process.
///
/// ```
/// let handle = pikku::metrics::install_prometheus().unwrap();
/// assert!(pikku::metrics::prometheus_handle().is_some());
/// # let _ = handle;
/// ```
#[must_use]
pub fn prometheus_handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}

/// An axum handler answering with the Prometheus scrape page (text format 0.0.4), or 503 while
/// [`install_prometheus`] has not been called. Mount it in a router of your own; the standalone server serves
/// it on [`ServerConfig::metrics_path`](crate::ServerConfig) already.
///
/// ```
/// let handle = pikku::metrics::install_prometheus().unwrap();
/// let admin: axum::Router = axum::Router::new()
///     .route("/internal/metrics", axum::routing::get(pikku::metrics::handler));
/// # let _ = (admin, handle);
/// ```
pub async fn handler() -> Response<Body> {
    scrape_page()
}

/// The response of the metrics endpoint.
pub(crate) fn scrape_page() -> Response<Body> {
    let Some(handle) = HANDLE.get() else {
        let mut response = Response::new(Body::from(
            "metrics are not installed: call pikku::metrics::install_prometheus() at startup\n",
        ));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return response;
    };
    let mut response = Response::new(Body::from(handle.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
