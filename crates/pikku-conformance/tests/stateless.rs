//! The fixture served statelessly behind a real Pushpin, with two workers on shared stores: what only stateless
//! serving has. Any event of a connection may be served by either worker (a killed worker's connections go on
//! with the other), a disconnect delivered twice runs onDisconnect once, a publication reaches subscribers
//! whatever worker served them, and the sweep forgets quiet connections.

// Shared with the golden scenarios, which use all of it.
#[allow(dead_code, unused_imports)]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use pikku::pushpin::{parse_events, sign_hs256, ParseLimits, WorkerConfig, WsEvent};
use pikku_conformance::{
    serving_statelessly, FixtureSettings, StatelessFixture, StoreKind, TestServer,
};
use serde_json::json;
use support::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connection to `/events` whose `hello!` was read.
async fn events(srv: &TestServer, label: &str) -> Client {
    let mut client = Client::connect(&srv.url("/events")).await.named(label);
    client.expect_text("hello!").await;
    client
}

/// Posts WebSocket-over-HTTP `events` for connection `id` straight to a worker, signed as Pushpin signs with
/// `key` (unsigned without one), and returns the status and body of the answer.
async fn post_events(
    worker: SocketAddr,
    key: Option<&str>,
    id: &str,
    events: &[u8],
) -> (u16, Vec<u8>) {
    let signature = key.map_or_else(String::new, |key| {
        let token = sign_hs256(key.as_bytes(), "pushpin", Duration::from_secs(60));
        format!("Grip-Sig: {token}\r\n")
    });
    let mut request = format!(
        "POST /events HTTP/1.1\r\nHost: {worker}\r\nConnection-Id: {id}\r\n{signature}\
         Content-Type: application/websocket-events\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        events.len()
    )
    .into_bytes();
    request.extend_from_slice(events);
    let mut stream = tokio::net::TcpStream::connect(worker)
        .await
        .expect("worker answers");
    stream.write_all(&request).await.expect("request written");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("response read");
    let status = std::str::from_utf8(&response[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |at| response[at + 4..].to_vec());
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_connections_go_on_with_the_other() {
    serving_statelessly(StoreKind::local_redis(), async {
        let mut srv = TestServer::start(FixtureSettings::test()).await;
        let mut client = events(&srv, "A").await;
        client.auth().await;
        client.send_json(json!({"action": "count"})).await;
        client
            .expect_json(json!({"action": "count", "result": 1}))
            .await;

        // Worker 0 served everything so far; without it, worker 1 serves the same connection from the store.
        let fixture = srv.stateless().expect("served statelessly");
        fixture.kill_worker(0).await;
        client.send_json(json!({"action": "count"})).await;
        client
            .expect_json(json!({"action": "count", "result": 2}))
            .await;
        client.send_json(json!({"action": "whoami"})).await;
        client
            .expect_json(json!({"action": "whoami", "result": "u1"}))
            .await;

        // And back: worker 0 again, with worker 1 gone.
        let fixture = srv.stateless().expect("served statelessly");
        fixture.restart_worker(0).await;
        fixture.kill_worker(1).await;
        client.send_json(json!({"action": "count"})).await;
        client
            .expect_json(json!({"action": "count", "result": 3}))
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_delivered_twice_runs_on_disconnect_once() {
    serving_statelessly(StoreKind::local_postgres(), async {
        let mut srv = TestServer::start(FixtureSettings::test()).await;
        let mut client = events(&srv, "A").await;
        client.close(1000).await;
        let first = srv.recorder().wait_for_disconnects(1, support::WAIT).await;
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].reason, "client_closed");
        let id = first[0].channel_id.clone();

        // The same connection's disconnect and close again, as a gateway retrying would send them.
        let fixture = srv.stateless().expect("served statelessly");
        let (key, workers) = (fixture.sig_key().to_owned(), fixture.workers_addr());
        let (status, body) = post_events(workers, Some(&key), &id, b"DISCONNECT\r\n").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (status, body) =
            post_events(workers, Some(&key), &id, b"CLOSE 2\r\n\x03\xe8\r\n").await;
        assert_eq!(status, 200);
        assert_eq!(
            body, b"CLOSE 2\r\n\x03\xe8\r\n",
            "a CLOSE is answered with CLOSE"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(srv.recorder().disconnects().len(), 1);

        // Unsigned, or signed with another key, a request is refused and changes nothing.
        for key in [None, Some("not-the-key")] {
            let (status, _) = post_events(workers, key, &id, b"OPEN\r\n").await;
            assert_eq!(status, 401, "a request signed with {key:?}");
        }

        // A message for the removed connection is answered with the close that ends it.
        let (status, body) = post_events(workers, Some(&key), &id, b"TEXT 2\r\n{}\r\n").await;
        assert_eq!(status, 200);
        let close = b"CLOSE 13\r\n\x03\xf3channel not found\r\n";
        assert_eq!(body, close, "{}", String::from_utf8_lossy(&body));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_reaches_subscribers_whichever_worker_served_them() {
    serving_statelessly(StoreKind::local_redis(), async {
        let mut srv = TestServer::start(FixtureSettings::test()).await;
        let mut a = events(&srv, "A").await;
        a.auth().await;
        a.send_json(json!({"action": "sub", "topic": "news"})).await;
        a.expect_json(json!({"action": "sub"})).await;

        // Worker 0 served A; B is served by worker 1 only.
        srv.stateless()
            .expect("served statelessly")
            .kill_worker(0)
            .await;
        let mut b = events(&srv, "B").await;
        b.auth().await;
        b.send_json(json!({"action": "sub", "topic": "news"})).await;
        b.expect_json(json!({"action": "sub"})).await;
        b.send_json(json!({"action": "emit", "topic": "news", "data": {"n": 1}}))
            .await;
        b.expect_json(json!({"action": "emit"})).await;
        a.expect_json(json!({"topic": "news", "data": {"n": 1}}))
            .await;

        // With A's worker back and B's gone, the other way round; emitAll also reaches the publisher, in its
        // own answer, before the reply.
        let fixture = srv.stateless().expect("served statelessly");
        fixture.restart_worker(0).await;
        fixture.kill_worker(1).await;
        a.send_json(json!({"action": "emitAll", "topic": "news", "data": {"n": 2}}))
            .await;
        a.expect_json(json!({"topic": "news", "data": {"n": 2}}))
            .await;
        a.expect_json(json!({"action": "emitAll"})).await;
        b.expect_json(json!({"topic": "news", "data": {"n": 2}}))
            .await;
        b.sentinel().await;
        a.sentinel().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_forgets_quiet_connections() {
    fn quick_sweep(config: WorkerConfig) -> WorkerConfig {
        WorkerConfig {
            ttl: Duration::from_millis(800),
            sweep_every: Some(Duration::from_millis(100)),
            ..config
        }
    }
    let srv_fixture = StatelessFixture::start_with(
        FixtureSettings::test(),
        &StoreKind::local_redis(),
        2,
        quick_sweep,
    )
    .await;
    let url = format!("ws://{}/events", srv_fixture.addr());
    let mut quiet = Client::connect(&url).await.named("quiet");
    quiet.expect_text("hello!").await;
    let mut busy = Client::connect(&url).await.named("busy");
    busy.expect_text("hello!").await;
    // `busy` keeps its record fresh; `quiet` says nothing for longer than the TTL.
    for _ in 0..12 {
        busy.sentinel().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    quiet.send_json(json!({"action": "echoIn"})).await;
    quiet.expect_close_with(1011, "channel not found").await;
    busy.sentinel().await;
    // The sweep runs no onDisconnect.
    assert!(srv_fixture.recorder().disconnects().is_empty());
}

/// An answer's events, with each message's JSON parsed (its `m:` prefix removed).
fn answer_events(body: &[u8]) -> Vec<serde_json::Value> {
    parse_events(body, &ParseLimits::default())
        .expect("a WebSocket-over-HTTP answer")
        .into_iter()
        .map(|event| match event {
            WsEvent::Text(text) => {
                let text = String::from_utf8(text.to_vec()).expect("UTF-8 text");
                match text.strip_prefix("m:") {
                    Some(message) => {
                        json!({"message": serde_json::from_str::<serde_json::Value>(message)
                        .unwrap_or_else(|_| json!(message))})
                    }
                    None => json!({"text": text}),
                }
            }
            WsEvent::Pong(payload) => json!({"pong": String::from_utf8_lossy(&payload)}),
            other => json!({"event": other.kind()}),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_events_is_answered_in_order() {
    serving_statelessly(StoreKind::local_redis(), async {
        let mut srv = TestServer::start(FixtureSettings::test()).await;
        let fixture = srv.stateless().expect("served statelessly");
        let (key, workers) = (fixture.sig_key().to_owned(), fixture.workers_addr());

        // OPEN: accepted, the connection subscribed to its own channel, then onConnect's frame.
        let (status, body) = post_events(workers, Some(&key), "batch-1", b"OPEN\r\n").await;
        assert_eq!(status, 200);
        assert_eq!(
            answer_events(&body),
            [
                json!({"event": "OPEN"}),
                json!({"text": r#"c:{"channel":"conn:batch-1","type":"subscribe"}"#}),
                json!({"message": "hello!"}),
            ]
        );

        // Two messages around a ping, as Pushpin batches what arrived while a request was in flight.
        let first = r#"{"action":"echoIn","n":1}"#;
        let second = r#"{"action":"echoIn","n":2}"#;
        let request = format!(
            "TEXT {:x}\r\n{first}\r\nPING 2\r\nhi\r\nTEXT {:x}\r\n{second}\r\n",
            first.len(),
            second.len()
        );
        let (status, body) = post_events(workers, Some(&key), "batch-1", request.as_bytes()).await;
        assert_eq!(status, 200);
        let reply = |n: u8| json!({"message": {"action": "echoIn", "got": {"n": n}}});
        assert_eq!(
            answer_events(&body),
            [reply(1), json!({"pong": "hi"}), reply(2)]
        );
    })
    .await;
}
