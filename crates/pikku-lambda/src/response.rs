//! The answers a route integration returns to API Gateway.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use http::header::CONTENT_TYPE;
use http::HeaderValue;
use pikku_core::ChannelError;

/// 200 without a body: the connect is accepted, or the event was handled.
pub(crate) fn ok() -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response
}

/// A refusal with the embedded server's JSON body `{name, message, errorId[, details]}`. On `$connect`, API
/// Gateway answers the handshake with this status and refuses the connection.
pub(crate) fn refusal(err: &ChannelError) -> ApiGatewayProxyResponse {
    let error_id = uuid::Uuid::new_v4().to_string();
    if err.is_internal() {
        tracing::error!(error_id, error = %err.debug_text(), "event failed");
    } else {
        tracing::info!(error_id, status = err.status(), error = %err, "connection refused");
    }
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(err.status());
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = String::from_utf8(err.refusal_body(&error_id)).expect("JSON is UTF-8");
    response.body = Some(Body::Text(body));
    response
}
