//! Channels mounted into an axum app with `ChannelServer::router()`, over real sockets: channel paths upgrade
//! (both pattern spellings, with or without a trailing `/`), other paths are the app's own (404 unless routed),
//! a plain `GET` to a channel path gets the JSON 400 and other methods a 405. Also: patterns axum users might
//! write but channels do not support are refused when the channel is registered, naming the caller's line.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use pikku::prelude::*;
use pikku_client::{Client, Frame};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

async fn welcome(_ctx: Ctx<(), ()>, channel: Channel<Params, Value>) {
    let params = channel.opening_data();
    let _ = channel.send(json!({ "room": params.get("roomId"), "file": params.get("name") }));
}

fn app() -> App<()> {
    App::new(())
        .channel(
            ChannelRoute::new("rooms", "/rooms/{roomId}")
                .auth(false)
                .on_connect(welcome),
        )
        .channel(
            ChannelRoute::new("files", "/files/:dir/:name")
                .auth(false)
                .on_connect(welcome),
        )
}

/// The app's own routes with the channels merged in, served by plain `axum::serve` or by `serve_router`.
async fn start(with_serve_router: bool) -> SocketAddr {
    let server = ChannelServer::new(app(), ServerConfig::default());
    let pages = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    if with_serve_router {
        tokio::spawn(server.serve_router(pages, listener));
    } else {
        let router = pages.merge(server.router());
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    addr
}

/// Status line and body of a plain HTTP/1.1 request.
async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

async fn first_frame(url: &str) -> Value {
    let client = tokio::time::timeout(WAIT, Client::connect(url))
        .await
        .expect("connect in time")
        .unwrap_or_else(|err| panic!("{url}: {err}"));
    match tokio::time::timeout(WAIT, client.next_frame())
        .await
        .expect("a frame in time")
        .expect("a frame")
    {
        Frame::Json(value) => value,
        other => panic!("{url}: {other:?}"),
    }
}

async fn check_mounted(addr: SocketAddr) {
    assert_eq!(request(addr, "GET", "/health").await.0, 200);
    for other in ["/nope", "/favicon.ico", "/rooms", "/rooms/a/b"] {
        assert_eq!(request(addr, "GET", other).await.0, 404, "{other}");
    }

    let (status, _, body) = request(addr, "GET", "/rooms/lobby").await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body["message"], "Malformed upgrade request");
    let (status, head, _) = request(addr, "POST", "/rooms/lobby").await;
    assert_eq!(status, 405);
    assert!(head.contains("\r\nallow: get"), "{head}");

    assert_eq!(
        first_frame(&format!("ws://{addr}/rooms/lobby")).await,
        json!({"room": "lobby", "file": null})
    );
    assert_eq!(
        first_frame(&format!("ws://{addr}/rooms/caf%C3%A9/")).await,
        json!({"room": "café", "file": null})
    );
    assert_eq!(
        first_frame(&format!("ws://{addr}/files/docs/a%20b.txt")).await,
        json!({"room": null, "file": "a b.txt"})
    );
}

#[tokio::test]
async fn merged_into_a_router_served_by_axum() {
    check_mounted(start(false).await).await;
}

#[tokio::test]
async fn merged_by_serve_router() {
    check_mounted(start(true).await).await;
}

#[test]
fn unsupported_patterns_are_refused_at_registration_with_the_callers_line() {
    async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
    for (pattern, reason) in [
        ("/files/*rest", "wildcards are not supported"),
        ("/files/{*rest}", "wildcards are not supported"),
        ("/files/v{version}", "a param is a whole segment"),
        ("/files/{}", "param names are non-empty"),
    ] {
        let line = line!() + 1;
        let channel = ChannelRoute::new("files", pattern).on_connect(hello);
        let panic = catch_unwind(AssertUnwindSafe(|| App::new(()).channel(channel)))
            .expect_err("an unsupported pattern must be refused");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains(&format!("invalid channel route '{pattern}'")),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
        assert!(
            message.contains(&format!("{}:{line}:", file!())),
            "{message} should name {}:{line}",
            file!()
        );
    }
}
