//! The HTTP side of a channel upgrade: the well-formedness checks, the 101 response and refusals.

use axum::body::Body;
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use pikku_core::log_limit::{LogLimiter, Verdict};
use pikku_core::ChannelError;

use crate::metrics::server::ServerMetrics;

/// Refusals logged per status per second; the rest are counted.
static REFUSALS: LogLimiter = LogLimiter::new(10, std::time::Duration::from_secs(1));

/// The GUID of RFC 6455 (section 1.3), appended to the client's key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Checks that the request is a well-formed WebSocket upgrade within the path limit; returns the client's key.
pub(crate) fn check_request<B>(
    req: &Request<B>,
    max_path_bytes: usize,
) -> Result<HeaderValue, ChannelError> {
    let malformed = || ChannelError::bad_request("Malformed upgrade request");
    if req.method() != Method::GET || req.version() != Version::HTTP_11 {
        return Err(malformed());
    }
    let path_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if path_len > max_path_bytes {
        return Err(malformed());
    }
    let headers = req.headers();
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
        || headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
    {
        return Err(malformed());
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(malformed)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.as_bytes())
        .map_err(|_| malformed())?;
    if decoded.len() != 16 {
        return Err(malformed());
    }
    Ok(key.clone())
}

/// Whether the request asks for a WebSocket upgrade (well-formed or not).
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::UPGRADE, "websocket")
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// The `Sec-WebSocket-Accept` value for a client key.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// The 101 response.
pub(crate) fn switching_protocols(
    key: &HeaderValue,
    subprotocol: Option<HeaderValue>,
    extra: &HeaderMap,
) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    for (name, value) in extra {
        headers.append(name, value.clone());
    }
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key(key.as_bytes())).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = subprotocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// A refused upgrade: a complete JSON response `{name, message, errorId[, details]}`, logged with its errorId
/// and counted.
pub(crate) fn refusal(
    err: &ChannelError,
    path: &str,
    metrics: Option<&ServerMetrics>,
) -> Response<Body> {
    if let Some(metrics) = metrics {
        metrics.refused(err.status());
    }
    let error_id = uuid::Uuid::new_v4().to_string();
    // At most a few lines a second per status: anyone can send refused upgrades as fast as they like.
    if let Verdict::Log { suppressed } = REFUSALS.check(&err.status()) {
        if suppressed > 0 {
            tracing::info!(
                status = err.status(),
                "suppressed {suppressed} similar upgrade refusals"
            );
        }
        if err.is_internal() {
            tracing::error!(error_id, path, error = %err.debug_text(), "upgrade failed");
        } else {
            // The errorId goes to the log at the default level, so a client's report can be traced.
            tracing::info!(error_id, path, status = err.status(), error = %err, "upgrade refused");
        }
    }
    let bytes = err.refusal_body(&error_id);
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(bytes.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The same refusal as [`refusal`] as the bytes of a whole HTTP/1.1 response, for the accept loop, which
/// answers without reading the request (it has no descriptor or no room to spare). Not logged one by one: the
/// accept loop logs a rate-limited count instead.
pub(crate) fn raw_refusal(err: &ChannelError) -> Vec<u8> {
    let error_id = uuid::Uuid::new_v4().to_string();
    tracing::debug!(error_id, status = err.status(), error = %err, "connection refused at accept");
    let body = err.refusal_body(&error_id);
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_refusal_is_a_complete_json_response() {
        let bytes = raw_refusal(&ChannelError::service_unavailable(
            "Connection limit reached",
        ));
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["name"], "ServiceUnavailableError");
        assert_eq!(body["message"], "Connection limit reached");
        assert!(body["errorId"].is_string());
    }

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
