//! Reading an API Gateway WebSocket event: which kind it is, and what the core needs from it.

use std::net::{IpAddr, SocketAddr};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pikku_core::stateless::Inbound;
use pikku_core::DisconnectReason;

/// What an event asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    Connect,
    Disconnect,
    Message,
}

/// `$connect` and `$disconnect` by route key, or by event type when a custom route key hides them; anything
/// else carries a message (`$default` and the routes of a route selection expression alike).
pub(crate) fn kind(event: &ApiGatewayWebsocketProxyRequest) -> EventKind {
    let context = &event.request_context;
    match (context.route_key.as_deref(), context.event_type.as_deref()) {
        (Some("$connect"), _) | (_, Some("CONNECT")) => EventKind::Connect,
        (Some("$disconnect"), _) | (_, Some("DISCONNECT")) => EventKind::Disconnect,
        _ => EventKind::Message,
    }
}

/// The request headers of a `$connect`: every value of the multi-value map, or the single-value map when the
/// event has no multi-value one (test events often do not).
pub(crate) fn headers(event: &ApiGatewayWebsocketProxyRequest) -> HeaderMap {
    if event.multi_value_headers.is_empty() {
        event.headers.clone()
    } else {
        event.multi_value_headers.clone()
    }
}

/// The client's address as API Gateway saw it; its port is not in the event, so it is 0.
pub(crate) fn peer(event: &ApiGatewayWebsocketProxyRequest) -> Option<SocketAddr> {
    let ip: IpAddr = event
        .request_context
        .identity
        .source_ip
        .as_deref()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, 0))
}

/// The query parameters, every value of each, as API Gateway decoded them.
fn parameters(event: &ApiGatewayWebsocketProxyRequest) -> &QueryMap {
    if event.multi_value_query_string_parameters.is_empty() {
        &event.query_string_parameters
    } else {
        &event.multi_value_query_string_parameters
    }
}

/// The first value of query parameter `name`.
pub(crate) fn parameter<'e>(
    event: &'e ApiGatewayWebsocketProxyRequest,
    name: &str,
) -> Option<&'e str> {
    parameters(event).first(name)
}

/// What stays escaped when a decoded query is written out again: everything but the unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The query string again, percent-encoded, without parameter `skip`. API Gateway hands the query over
/// decoded and unordered, so it is rebuilt sorted by name (values of one name keep their order).
pub(crate) fn query(event: &ApiGatewayWebsocketProxyRequest, skip: Option<&str>) -> Option<String> {
    let mut pairs: Vec<(&str, &str)> = parameters(event)
        .iter()
        .filter(|(name, _)| Some(*name) != skip)
        .collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_by_key(|(name, _)| *name);
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, QUERY_VALUE),
                utf8_percent_encode(value, QUERY_VALUE)
            )
        })
        .collect();
    Some(encoded.join("&"))
}

/// Why a message event carries nothing the core can run.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// `isBase64Encoded` was set but the body is not base64.
    NotBase64(base64::DecodeError),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotBase64(err) => write!(f, "binary message body is not base64: {err}"),
        }
    }
}

/// The message of a message event: binary when API Gateway base64-encoded the body (it does for binary
/// frames), else text; an absent body is an empty text message.
pub(crate) fn inbound(event: &ApiGatewayWebsocketProxyRequest) -> Result<Inbound, BodyError> {
    let body = event.body.as_deref().unwrap_or_default();
    if event.is_base64_encoded {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(BodyError::NotBase64)?;
        Ok(Inbound::Binary(bytes.into()))
    } else {
        Ok(Inbound::text(body))
    }
}

/// The disconnect reason API Gateway reported: a `DeleteConnection` call is the server's close, an idle
/// connection timed out, 1006 is a transport failure, and any other status is the client's close (1005 means
/// a close frame without a code).
pub(crate) fn disconnect_reason(event: &ApiGatewayWebsocketProxyRequest) -> DisconnectReason {
    let context = &event.request_context;
    let reason = context.disconnect_reason.as_deref().unwrap_or_default();
    if reason.contains("DeleteConnection") {
        return DisconnectReason::ServerClosed;
    }
    if reason.to_ascii_lowercase().contains("idle timeout") {
        return DisconnectReason::IdleTimeout;
    }
    match context.disconnect_status_code {
        Some(1006) => DisconnectReason::TransportError,
        Some(1005) | None => DisconnectReason::ClientClosed(None),
        Some(code) => DisconnectReason::ClientClosed(u16::try_from(code).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn query_is_rebuilt_encoded_and_sorted_without_the_skipped_name() {
        let e = event(serde_json::json!({
            "queryStringParameters": {"b": "x y", "a": "1/2", "path": "/rooms/a"},
            "requestContext": {"connectedAt": 0, "requestTimeEpoch": 0, "routeKey": "$connect"}
        }));
        assert_eq!(query(&e, Some("path")).as_deref(), Some("a=1%2F2&b=x%20y"));
        assert_eq!(parameter(&e, "path"), Some("/rooms/a"));
        assert_eq!(
            query(
                &event(
                    serde_json::json!({"requestContext": {"connectedAt": 0, "requestTimeEpoch": 0}})
                ),
                None
            ),
            None
        );
    }

    #[test]
    fn disconnect_reasons_follow_what_the_gateway_reported() {
        let with = |code: Option<i64>, reason: &str| {
            disconnect_reason(&event(serde_json::json!({
                "requestContext": {"connectedAt": 0, "requestTimeEpoch": 0, "routeKey": "$disconnect", "disconnectStatusCode": code, "disconnectReason": reason}
            })))
        };
        assert_eq!(
            with(Some(1000), "Client-side close frame status set to 1000"),
            DisconnectReason::ClientClosed(Some(1000))
        );
        assert_eq!(
            with(Some(1005), "Client-side close frame status not set"),
            DisconnectReason::ClientClosed(None)
        );
        assert_eq!(
            with(Some(1006), "Going away"),
            DisconnectReason::TransportError
        );
        assert_eq!(
            with(Some(1001), "Connection Idle Timeout"),
            DisconnectReason::IdleTimeout
        );
        assert_eq!(
            with(Some(1000), "Executing DeleteConnection API"),
            DisconnectReason::ServerClosed
        );
    }
}
