//! The standalone server's plain-HTTP endpoints: liveness, readiness and (with the `prometheus` feature) the
//! metrics scrape page.
//!
//! A WebSocket upgrade always goes to the channels, whatever its path: these endpoints answer only plain `GET`
//! and `HEAD` requests, which a channel would refuse anyway (400 `Malformed upgrade request`). So a channel
//! route such as `/:room` keeps every room, `/healthz` included, and a health check never reaches a channel.

use axum::body::Body;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::config::ServerConfig;
use crate::upgrade::is_websocket_upgrade;

/// The answer to `req` if it is a plain `GET`/`HEAD` of one of the configured endpoint paths; `None` sends it on
/// to the channels. `accepting` is false once a shutdown began.
pub(crate) fn answer<B>(
    req: &Request<B>,
    config: &ServerConfig,
    accepting: bool,
) -> Option<Response<Body>> {
    let head = req.method() == Method::HEAD;
    if !(head || req.method() == Method::GET) || is_websocket_upgrade(req.headers()) {
        return None;
    }
    let path = req.uri().path();
    let is = |configured: &Option<String>| configured.as_deref() == Some(path);
    let response = if is(&config.health_path) {
        text(StatusCode::OK, "ok\n")
    } else if is(&config.ready_path) {
        if accepting {
            text(StatusCode::OK, "ready\n")
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        }
    } else if is(&config.metrics_path) {
        metrics_page()?
    } else {
        return None;
    };
    Some(if head {
        without_body(response)
    } else {
        response
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn without_body(response: Response<Body>) -> Response<Body> {
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Body::empty())
}

#[cfg(feature = "prometheus")]
fn metrics_page() -> Option<Response<Body>> {
    Some(crate::metrics::prometheus::scrape_page())
}

/// Without the `prometheus` feature there is no scrape page: the path is the channels'.
#[cfg(not(feature = "prometheus"))]
fn metrics_page() -> Option<Response<Body>> {
    None
}
