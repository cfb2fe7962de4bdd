//! The spans handlers run in, built per handler run from what the connection already holds, so an idle
//! connection keeps no span.

use std::fmt;
use std::net::SocketAddr;

use tracing::Span;

use crate::channel::Connection;

/// The target of the `DEBUG` spans pikku's handlers run in (`connect`, `message`, `binary`, `disconnect`):
/// name it in a filter to turn them on alone, for example `RUST_LOG=info,pikku::span=debug`.
///
/// ```
/// // Logging at `INFO`, with the handler spans:
/// let filter = format!("info,{}=debug", pikku::core::telemetry::SPAN_TARGET);
/// assert_eq!(filter, "info,pikku::span=debug");
/// ```
pub const SPAN_TARGET: &str = "pikku::span";

/// A route as the `route` field shows it: `property:value`, or `default`.
struct RouteField<'a>(Option<(&'a str, &'a str)>);

impl fmt::Display for RouteField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((property, value)) => write!(f, "{property}:{value}"),
            None => f.write_str("default"),
        }
    }
}

pub(crate) fn connect(conn: &Connection, peer: Option<SocketAddr>) -> Span {
    tracing::debug_span!(
        target: SPAN_TARGET,
        "connect",
        channel = %conn.channel_name(),
        channel_id = %conn.id(),
        peer = peer.map(tracing::field::display),
    )
}

pub(crate) fn message(
    conn: &Connection,
    peer: Option<SocketAddr>,
    route: Option<(&str, &str)>,
) -> Span {
    tracing::debug_span!(
        target: SPAN_TARGET,
        "message",
        channel = %conn.channel_name(),
        channel_id = %conn.id(),
        peer = peer.map(tracing::field::display),
        route = %RouteField(route),
    )
}

pub(crate) fn binary(conn: &Connection, peer: Option<SocketAddr>) -> Span {
    tracing::debug_span!(
        target: SPAN_TARGET,
        "binary",
        channel = %conn.channel_name(),
        channel_id = %conn.id(),
        peer = peer.map(tracing::field::display),
    )
}

pub(crate) fn disconnect(conn: &Connection, peer: Option<SocketAddr>) -> Span {
    tracing::debug_span!(
        target: SPAN_TARGET,
        "disconnect",
        channel = %conn.channel_name(),
        channel_id = %conn.id(),
        peer = peer.map(tracing::field::display),
    )
}
