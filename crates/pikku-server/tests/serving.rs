//! The serving modes over real sockets: `serve_router` with the handshake timeout (silent, dripping and idle
//! keep-alive sockets are closed by the server), the connection limit counted at accept, the per-address limit,
//! and the answer when the process is out of file descriptors (a child process under `ulimit -n 64`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{
    assert_json_matches, raw_upgrade, read_head, upgrade_request, write_upgrade, RawWs, ANY,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long we wait for something that must happen.
const WAIT: Duration = Duration::from_secs(10);

async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str {
    "hello!"
}

async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Value) -> Value {
    input
}

fn echo_app() -> App<(), ()> {
    App::new(()).channel(
        ChannelRoute::new("echo", "/echo")
            .auth(false)
            .on_connect(hello)
            .on_message(echo),
    )
}

/// `serve_router` with a `/health` route of its own, on a free port.
async fn serve_router(config: ServerConfig) -> (SocketAddr, ChannelServer<(), ()>) {
    let server = ChannelServer::new(echo_app(), config);
    let routes = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_router(routes, listener));
    (addr, server)
}

fn short_handshake() -> ServerConfig {
    ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

/// Reads until the server closes the connection (EOF or reset); panics if that takes longer than [`WAIT`].
async fn expect_closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

/// A WebSocket client gets its greeting and an echo.
async fn assert_echo_works(addr: SocketAddr) {
    let mut ws = RawWs::connect(addr, "/echo").await;
    let (_, opcode, greeting) = ws.next_frame().await.expect("greeting");
    assert_eq!((opcode, greeting.as_slice()), (op::TEXT, &b"hello!"[..]));
    ws.send(0x80 | op::TEXT, br#"{"n":1}"#).await;
    let (_, _, reply) = ws.next_frame().await.expect("echo");
    assert_eq!(
        serde_json::from_slice::<Value>(&reply).unwrap(),
        json!({"n": 1})
    );
}

#[tokio::test]
async fn serve_router_closes_silent_and_dripping_sockets_and_still_serves() {
    let (addr, _server) = serve_router(short_handshake()).await;

    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Dripping clients send their upgrade request one byte every 100 ms: the head is never complete in time.
    let request = upgrade_request(addr, "/echo", &[]).into_bytes();
    let mut drips = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = request.clone();
        drips.push(tokio::spawn(async move {
            for byte in request {
                if stream.write_all(&[byte]).await.is_err() {
                    break; // closed by the server
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            expect_closed_by_server(&mut stream).await;
        }));
    }
    for stream in &mut silent {
        expect_closed_by_server(stream).await;
    }
    for drip in drips {
        drip.await.unwrap();
    }

    // A well-behaved client is served, and so are the router's own routes.
    assert_echo_works(addr).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_handshake_timeout() {
    let (addr, _server) = serve_router(short_handshake()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, headers, _) = read_head(&mut stream).await;
    assert_eq!(status, 200);
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close")),
        "the response keeps the connection alive: {headers:?}"
    );
    // No next request: the server ends the connection instead of waiting forever.
    expect_closed_by_server(&mut stream).await;
}

#[tokio::test]
async fn connections_in_their_http_phase_count_toward_the_connection_limit() {
    let config = ServerConfig {
        max_connections: Some(5),
        handshake_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let (addr, _server) = serve_router(config).await;
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let expected = json!({"name": "ServiceUnavailableError", "message": "Connection limit reached", "errorId": ANY});
    let response = raw_upgrade(addr, "/echo", &[]).await;
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_json_matches(&serde_json::from_slice(&response.body).unwrap(), &expected);

    // Once the silent sockets are gone there is room again.
    drop(silent);
    let deadline = tokio::time::Instant::now() + WAIT;
    while raw_upgrade(addr, "/echo", &[]).await.status != 101 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after the silent sockets left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_per_address_beyond_the_limit_get_429() {
    let config = ServerConfig {
        max_connections_per_ip: Some(2),
        ..ServerConfig::default()
    };
    let (addr, _server) = serve_router(config).await;
    let mut first = RawWs::connect(addr, "/echo").await;
    first.next_frame().await.expect("greeting");
    let mut second = RawWs::connect(addr, "/echo").await;
    second.next_frame().await.expect("greeting");

    let response = raw_upgrade(addr, "/echo", &[]).await;
    assert_eq!(response.status, 429, "{response:?}");
    let expected = json!({"name": "TooManyRequestsError", "message": "Too many connections from this address", "errorId": ANY});
    assert_json_matches(&serde_json::from_slice(&response.body).unwrap(), &expected);

    // The open connections are unaffected, and a closed one frees its place.
    second.send(0x80 | op::TEXT, b"2").await;
    assert_eq!(second.next_frame().await.expect("echo").2, b"2");
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = raw_upgrade(addr, "/echo", &[]).await;
        if response.status == 101 {
            break;
        }
        assert_eq!(response.status, 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after a close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Set in the environment of the child process that [`out_of_descriptors_still_answers_503`] starts.
const CHILD_ENV: &str = "PIKKU_SERVING_TEST_FD_CHILD";

/// The server side of [`out_of_descriptors_still_answers_503`]: run by that test as a child process with a low
/// open-files limit; does nothing in a normal test run. It serves with no connection limit, so the process runs
/// out of descriptors, prints its port, and serves until its standard input closes.
#[test]
fn fd_limited_server_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = ServerConfig {
            max_connections: None,
            ..ServerConfig::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("child listening on {}", listener.local_addr().unwrap());
        let server = ChannelServer::new(echo_app(), config);
        tokio::spawn(server.serve_until(listener, std::future::pending()));
        // Serve until the parent closes our standard input.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
    });
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn out_of_descriptors_still_answers_503() {
    let test_binary = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" --exact fd_limited_server_child --nocapture --test-threads 1"#)
        .arg(&test_binary)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let addr: SocketAddr = tokio::task::spawn_blocking(move || {
        let lines = BufReader::new(stdout).lines();
        for line in lines {
            let line = line.unwrap();
            // libtest prints `test fd_limited_server_child ... ` on the same line first.
            if let Some((_, addr)) = line.split_once("child listening on ") {
                return addr.trim().parse().unwrap();
            }
        }
        panic!("the child exited before listening");
    })
    .await
    .unwrap();

    let mut early = RawWs::connect(addr, "/echo").await;
    early.next_frame().await.expect("greeting");

    // Open upgrades until the child is out of descriptors; the ones beyond get a 503, not silence.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..120 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        write_upgrade(&mut stream, addr, "/echo", &[]).await;
        let (status, headers, mut body) = tokio::time::timeout(WAIT, read_head(&mut stream))
            .await
            .expect("an answer, not silence");
        if status == 101 {
            assert_eq!(refused, 0, "an upgrade was accepted after a refusal");
            open.push(stream);
            continue;
        }
        assert_eq!(status, 503, "{headers:?}");
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("content-length");
        while body.len() < length {
            let mut chunk = [0u8; 512];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the refusal was cut short");
            body.extend_from_slice(&chunk[..n]);
        }
        assert_json_matches(
            &serde_json::from_slice(&body).unwrap(),
            &json!({"name": "ServiceUnavailableError", "message": "Connection limit reached", "errorId": ANY}),
        );
        refused += 1;
        if refused == 5 {
            break;
        }
    }
    assert_eq!(refused, 5, "the child never ran out of descriptors");
    assert!(
        open.len() > 10,
        "only {} upgrades before running out",
        open.len()
    );

    // The connections made before keep working.
    early.send(0x80 | op::TEXT, b"7").await;
    assert_eq!(early.next_frame().await.expect("echo").2, b"7");

    // Freeing descriptors makes room again.
    drop(open);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = raw_upgrade(addr, "/echo", &[]).await;
        if response.status == 101 {
            break;
        }
        assert_eq!(response.status, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after closing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(child);
}
