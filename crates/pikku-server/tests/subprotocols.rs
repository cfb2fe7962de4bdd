//! Subprotocol policies over real sockets: a listed name, echoing the first offer, a callback that insists on a
//! token (which upgrade middleware turns into the session), its refusal, and Node's `ws` client offering a
//! subprotocol.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use futures_util::StreamExt;
use pikku_core::{App, Channel, ChannelError, ChannelRoute, Ctx, Params, UpgradeRequest};
use pikku_server::{ChannelServer, ServerConfig, SubprotocolPolicy};
use pikku_testkit::{assert_json_matches, raw_upgrade, ANY};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Reads a `token.<value>` subprotocol, as a browser page would send its credentials.
async fn token_session(req: UpgradeRequest<(), String>) -> Result<(), ChannelError> {
    match req.subprotocols().find_map(|p| p.strip_prefix("token.")) {
        Some("good") => {
            req.set_session("u1".to_owned());
            Ok(())
        }
        Some(_) => Err(ChannelError::forbidden("Invalid token")),
        None => Ok(()),
    }
}

async fn who(ctx: Ctx<(), String>, _ch: Channel<Params, ()>) -> String {
    ctx.session().unwrap_or_else(|| "anonymous".to_owned())
}

fn app() -> App<(), String> {
    App::new(()).channel(
        ChannelRoute::new("who", "/who")
            .upgrade_middleware(token_session)
            .on_connect(who),
    )
}

async fn serve(policy: SubprotocolPolicy) -> (SocketAddr, ChannelServer<(), String>) {
    let config = ServerConfig {
        subprotocols: policy,
        ..ServerConfig::default()
    };
    let server = ChannelServer::new(app(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve(listener));
    (addr, server)
}

/// Connects offering `offer`; returns the selected subprotocol and the first text frame.
async fn connect(addr: SocketAddr, offer: &str) -> (Option<String>, String) {
    let mut request = format!("ws://{addr}/who").into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(offer).unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade accepted");
    let selected = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    let first = ws.next().await.unwrap().unwrap();
    (selected, first.to_text().unwrap().to_owned())
}

fn body(response: &pikku_testkit::HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

#[tokio::test]
async fn a_list_selects_the_first_offered_listed_name_and_refuses_only_unlisted_ones() {
    let (addr, _server) = serve(SubprotocolPolicy::list(["pikku.v1"])).await;
    assert_eq!(
        connect(addr, "chat, pikku.v1").await,
        (Some("pikku.v1".into()), "anonymous".into())
    );
    let refused = raw_upgrade(addr, "/who", &[("Sec-WebSocket-Protocol", "chat")]).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_json_matches(
        &body(&refused),
        &json!({"name": "BadRequestError", "message": "Unsupported subprotocol", "errorId": ANY}),
    );
    // Offering nothing is fine: no header.
    let plain = raw_upgrade(addr, "/who", &[]).await;
    assert_eq!(plain.status, 101);
    assert!(plain.header("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn echo_first_echoes_whatever_is_offered_first() {
    let (addr, _server) = serve(SubprotocolPolicy::EchoFirst).await;
    assert_eq!(
        connect(addr, "graphql-ws, pikku.v1").await.0.as_deref(),
        Some("graphql-ws")
    );
}

/// Requires a token next to `pikku.v1` and echoes `pikku.v1`.
fn token_policy() -> SubprotocolPolicy {
    SubprotocolPolicy::select(|offered| {
        if !offered.iter().any(|p| p.starts_with("token.")) {
            return Err(ChannelError::unauthorized("Missing token"));
        }
        Ok(offered
            .iter()
            .find(|p| **p == "pikku.v1")
            .map(|p| (*p).to_owned()))
    })
}

#[tokio::test]
async fn a_callback_echoes_the_protocol_while_middleware_turns_the_token_into_the_session() {
    let (addr, _server) = serve(token_policy()).await;
    assert_eq!(
        connect(addr, "pikku.v1, token.good").await,
        (Some("pikku.v1".into()), "u1".into())
    );
}

#[tokio::test]
async fn refusals_are_json_answers_with_the_callbacks_or_the_middlewares_status() {
    let (addr, _server) = serve(token_policy()).await;
    let refused = raw_upgrade(addr, "/who", &[("Sec-WebSocket-Protocol", "pikku.v1")]).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_json_matches(
        &body(&refused),
        &json!({"name": "UnauthorizedError", "message": "Missing token", "errorId": ANY}),
    );
    // A bad token is the middleware's refusal, which comes first.
    let offer = [("Sec-WebSocket-Protocol", "pikku.v1, token.bad")];
    let refused = raw_upgrade(addr, "/who", &offer).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(body(&refused)["message"], "Invalid token");
    // Route checks still answer before the policy: an unknown path is a 404 whatever is offered.
    let refused = raw_upgrade(addr, "/nope", &[]).await;
    assert_eq!(refused.status, 404);
}

/// Runs `tests/node-ws/client.js` with Node, installing its `ws` dependency first when it is missing.
fn node_client(url: &str, offer: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node-ws");
    if !dir.join("node_modules/ws").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm must be installed to run the Node client test");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    let output = Command::new("node")
        .arg(dir.join("client.js"))
        .args([url, offer])
        .output()
        .expect("node must be installed to run the Node client test");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "node printed no JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_offering_a_subprotocol_connects() {
    let (addr, _server) = serve(SubprotocolPolicy::list(["pikku.v1"])).await;
    let url = format!("ws://{addr}/who");
    let answer = tokio::task::spawn_blocking(move || node_client(&url, "pikku.v1"))
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"protocol": "pikku.v1", "first": "anonymous"})
    );

    // With a token, through the callback policy: the protocol is echoed and the session is set.
    let (addr, _server) = serve(token_policy()).await;
    let url = format!("ws://{addr}/who");
    let answer = tokio::task::spawn_blocking(move || node_client(&url, "pikku.v1,token.good"))
        .await
        .unwrap();
    assert_eq!(answer, json!({"protocol": "pikku.v1", "first": "u1"}));

    // Without the policy, `ws` aborts because nothing was selected: why the list policy exists.
    let (addr, _server) = serve(SubprotocolPolicy::None).await;
    let url = format!("ws://{addr}/who");
    let answer = tokio::task::spawn_blocking(move || node_client(&url, "pikku.v1"))
        .await
        .unwrap();
    assert_eq!(answer, json!({"error": "Server sent no subprotocol"}));
}
