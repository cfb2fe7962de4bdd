//! What the API Gateway tests share: a local stand-in for the management API that the real SDK client talks
//! to over HTTP, the events API Gateway sends, and a small app.
// Each test file uses part of this module.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pikku::lambda::{ApiGatewaySender, ApiGatewayWebsocketProxyRequest, LambdaChannels};
use pikku::stateless::{StatelessStores, UserSession};
use pikku::{Channel, ChannelError, ChannelRoute, ClosedChannel, Ctx, Params, Route};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "AKIDPIKKUTEST";
pub const REGION: &str = "eu-north-1";
/// The stage part of the callback URL, as in `https://{api}.execute-api.{region}.amazonaws.com/{stage}`.
pub const STAGE: &str = "prod";

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Percent-decoded from the path.
    pub connection_id: String,
    pub body: Bytes,
    /// Why the request is not SigV4-signed as API Gateway requires, if it is not.
    pub unsigned: Option<String>,
}

#[derive(Default)]
struct ApiState {
    requests: Mutex<Vec<ApiRequest>>,
    gone: Mutex<HashSet<String>>,
    forbidden: Mutex<HashSet<String>>,
}

/// The management API (`/@connections/{id}`) on 127.0.0.1: records each request, answers 410 with a
/// `GoneException` for ids marked gone and 403 with a `ForbiddenException` for ids marked forbidden.
pub struct ManagementApi {
    pub endpoint: String,
    state: Arc<ApiState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ManagementApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ManagementApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/{STAGE}", listener.local_addr().unwrap());
        let state = Arc::new(ApiState::default());
        let accepting = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = accepting.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            endpoint,
            state,
            task,
        }
    }

    /// A sender for this stand-in, with static credentials.
    pub fn sender(&self) -> ApiGatewaySender {
        ApiGatewaySender::builder(&self.endpoint)
            .region(REGION)
            .credentials(ACCESS_KEY, "pikku-test-secret", None)
            .build()
            .unwrap()
    }

    pub fn mark_gone(&self, connection_id: &str) {
        self.state.gone.lock().insert(connection_id.to_owned());
    }

    pub fn mark_forbidden(&self, connection_id: &str) {
        self.state.forbidden.lock().insert(connection_id.to_owned());
    }

    /// Every request so far, in arrival order; each must have been signed.
    pub fn requests(&self) -> Vec<ApiRequest> {
        let requests = self.state.requests.lock().clone();
        for request in &requests {
            assert_eq!(request.unsigned, None, "{request:?}");
        }
        requests
    }

    /// The requests so far, and forget them.
    pub fn take(&self) -> Vec<ApiRequest> {
        let requests = self.requests();
        self.state.requests.lock().clear();
        requests
    }
}

async fn answer(state: &ApiState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let unsigned = check_signature(request.headers()).err();
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let Some(encoded) = path.strip_prefix(&format!("/{STAGE}/@connections/")) else {
        return reply(404, None, "{}");
    };
    let connection_id = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap()
        .into_owned();
    state.requests.lock().push(ApiRequest {
        method: method.clone(),
        connection_id: connection_id.clone(),
        body,
        unsigned: unsigned.clone(),
    });
    if unsigned.is_some() {
        return reply(
            403,
            Some("InvalidSignatureException"),
            r#"{"message":"Signature expected"}"#,
        );
    }
    if state.gone.lock().contains(&connection_id) {
        return reply(410, Some("GoneException"), r#"{"message":null}"#);
    }
    if state.forbidden.lock().contains(&connection_id) {
        return reply(
            403,
            Some("ForbiddenException"),
            r#"{"message":"Forbidden"}"#,
        );
    }
    match method {
        Method::POST => reply(200, None, ""),
        Method::GET => reply(
            200,
            None,
            r#"{"connectedAt":"2026-01-01T10:00:00Z","identity":{"sourceIp":"192.0.2.1","userAgent":"test"},"lastActiveAt":"2026-01-01T10:00:05Z"}"#,
        ),
        Method::DELETE => reply(204, None, ""),
        _ => reply(405, None, "{}"),
    }
}

fn reply(status: u16, error_type: Option<&str>, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(error_type) = error_type {
        response = response.header("x-amzn-errortype", error_type);
    }
    response
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/execute-api/aws4_request,
/// SignedHeaders=…, Signature=<64 hex>`, with an `x-amz-date` of the same day.
fn check_signature(headers: &http::HeaderMap) -> Result<(), String> {
    let authorization = headers
        .get("authorization")
        .ok_or("no authorization header")?
        .to_str()
        .map_err(|e| e.to_string())?;
    let rest = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or_else(|| format!("not SigV4: {authorization}"))?;
    let (credential, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or("no SignedHeaders")?;
    let (signed_headers, signature) = rest.split_once(", Signature=").ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = scope[..] else {
        return Err(format!("bad credential scope {credential}"));
    };
    if (key, region, service, terminator) != (ACCESS_KEY, REGION, "execute-api", "aws4_request") {
        return Err(format!("bad credential scope {credential}"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad scope date {date}"));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(format!("host and x-amz-date not signed: {signed_headers}"));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad signature {signature}"));
    }
    let amz_date = headers
        .get("x-amz-date")
        .ok_or("no x-amz-date header")?
        .to_str()
        .map_err(|e| e.to_string())?;
    if amz_date.len() != 16 || !amz_date.starts_with(date) || !amz_date.ends_with('Z') {
        return Err(format!(
            "x-amz-date {amz_date} does not match scope date {date}"
        ));
    }
    Ok(())
}

/// A websocket request fixture that the `aws_lambda_events` crate ships, read from cargo's registry sources
/// (the build has unpacked them there); the newest version present wins.
pub fn fixture(name: &str) -> Value {
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo"),
        PathBuf::from,
    );
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("cargo's registry sources")
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|dir| {
            dir.file_name()
                .to_string_lossy()
                .starts_with("aws_lambda_events-")
        })
        .map(|dir| dir.path().join("src/fixtures").join(name))
        .filter(|path| path.exists())
        .collect();
    candidates.sort();
    let path = candidates
        .pop()
        .unwrap_or_else(|| panic!("fixture {name} not found under {}", cargo_home.display()));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn request(json: Value) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(json).unwrap()
}

/// A `$connect` with these query parameters.
pub fn connect(connection_id: &str, query: Value) -> ApiGatewayWebsocketProxyRequest {
    request(json!({
        "headers": {"Host": "abc123.execute-api.eu-north-1.amazonaws.com", "Sec-WebSocket-Version": "13"},
        "queryStringParameters": query,
        "requestContext": {
            "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64, "routeKey": "$connect", "eventType": "CONNECT", "connectionId": connection_id,
            "stage": STAGE, "apiId": "abc123", "identity": {"sourceIp": "192.0.2.10"}
        },
        "isBase64Encoded": false
    }))
}

/// A `$default` text message.
pub fn text(connection_id: &str, body: Value) -> ApiGatewayWebsocketProxyRequest {
    request(json!({
        "requestContext": {
            "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64, "routeKey": "$default", "eventType": "MESSAGE", "connectionId": connection_id,
            "messageId": "m-1", "stage": STAGE, "apiId": "abc123"
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    }))
}

/// A `$default` binary message: API Gateway base64-encodes the frame.
pub fn binary(connection_id: &str, bytes: &[u8]) -> ApiGatewayWebsocketProxyRequest {
    use base64::Engine as _;
    request(json!({
        "requestContext": {
            "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64, "routeKey": "$default", "eventType": "MESSAGE", "connectionId": connection_id,
            "stage": STAGE, "apiId": "abc123"
        },
        "body": base64::engine::general_purpose::STANDARD.encode(bytes),
        "isBase64Encoded": true
    }))
}

/// The crate's `$disconnect` fixture, for this connection.
pub fn disconnect(connection_id: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = fixture("example-apigw-websocket-request-disconnect-route.json");
    event["requestContext"]["connectionId"] = json!(connection_id);
    request(event)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
}

impl UserSession for User {
    fn user_id(&self) -> Option<&str> {
        Some(&self.id)
    }
}

/// What onDisconnect saw, one line per run.
pub type Log = Arc<Mutex<Vec<String>>>;
type Cx = Ctx<Log, User>;
type Ch<Out = ()> = Channel<Params, Out, u32>;

async fn welcome(_ctx: Cx, ch: Ch<String>) {
    let _ = ch.send(format!("welcome {}", ch.channel_id()));
}
async fn refuse_on_connect(_ctx: Cx, ch: Ch) {
    ch.close();
}
async fn echo(_ctx: Cx, ch: Ch<String>, input: Value) {
    let _ = ch.send(input["text"].as_str().unwrap_or_default().to_owned());
}
async fn login(ctx: Cx, _ch: Ch, input: Value) -> bool {
    let Some(id) = input["user"].as_str() else {
        return false;
    };
    ctx.set_session(User { id: id.to_owned() });
    true
}
async fn whoami(ctx: Cx, _ch: Ch, _: ()) -> Option<String> {
    ctx.session().map(|user| user.id)
}
async fn count(_ctx: Cx, ch: Ch, _: ()) -> u32 {
    ch.update_socket_state(|n| {
        let next = n.unwrap_or(0) + 1;
        *n = Some(next);
        next
    })
}
async fn sub(ctx: Cx, ch: Ch, input: Value) -> Result<(), ChannelError> {
    let topic = input["topic"].as_str().unwrap_or_default();
    ctx.hub().subscribe(topic, ch.channel_id()).await?;
    Ok(())
}
async fn emit(ctx: Cx, _ch: Ch, input: Value) -> Result<usize, ChannelError> {
    let topic = input["topic"].as_str().unwrap_or_default();
    Ok(ctx.hub().publish(topic, None, &input["data"]).await?)
}
async fn bye(_ctx: Cx, ch: Ch<String>, _: ()) {
    let _ = ch.send("bye");
    ch.close();
}
async fn reverse(_ctx: Cx, _ch: Ch, bytes: pikku::Bytes) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}
async fn gone(ctx: Cx, ch: ClosedChannel<Params, u32>) {
    ctx.state()
        .lock()
        .push(format!("{} {}", ch.channel_id(), ch.reason()));
}

/// Rooms at `/rooms/{room}` with routed actions, persisted socket state and sessions; `/refuse` closes in
/// onConnect.
pub fn app(log: Log) -> pikku::App<Log, User> {
    pikku::App::new(log)
        .channel(
            ChannelRoute::new("rooms", "/rooms/{room}")
                .auth(false)
                .on_connect(welcome)
                .on_disconnect(gone)
                .on_binary(reverse)
                .route("action", "echo", echo)
                .route("action", "login", login)
                .route("action", "whoami", Route::new(whoami).auth(true))
                .route("action", "count", count)
                .route("action", "sub", sub)
                .route("action", "emit", emit)
                .route("action", "bye", bye)
                .persist_socket_state(),
        )
        .channel(
            ChannelRoute::new("refuse", "/refuse")
                .auth(false)
                .on_connect(refuse_on_connect)
                .on_disconnect(gone)
                .persist_socket_state(),
        )
}

/// The function under test, its stores and its stand-in, with connections opening `/rooms/lobby` unless
/// their `channel` query parameter names another path.
pub struct Function {
    pub api: ManagementApi,
    pub channels: LambdaChannels<Log, User>,
    pub stores: StatelessStores,
    pub log: Log,
}

impl Function {
    pub async fn start() -> Self {
        let api = ManagementApi::start().await;
        let stores = StatelessStores::memory();
        let log = Log::default();
        let channels = LambdaChannels::new(app(log.clone()), stores.clone(), api.sender())
            .unwrap()
            .with_path("/rooms/lobby")
            .with_path_parameter("channel");
        Self {
            api,
            channels,
            stores,
            log,
        }
    }
}
