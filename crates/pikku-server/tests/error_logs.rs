//! Repeated errors are logged a few times per second, then counted: a client cannot make the server write a
//! log line per message. Over real sockets, with the log captured.
//!
//! This is its own test binary on purpose: tracing caches per call site whether anyone listens, so a test that
//! installs a thread-local subscriber must not race other tests hitting the same call sites first.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{client_frame, raw_upgrade, RawWs, MASK};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Collects what the server logs, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines_containing(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// The `N` of every `suppressed N similar …` line containing `what`.
fn suppressed_counts(logs: &Logs, what: &str) -> Vec<u64> {
    logs.lines_containing(what)
        .iter()
        .map(|line| {
            let after = line.split("suppressed ").nth(1).expect("a count");
            after.split(' ').next().unwrap().parse().expect("a number")
        })
        .collect()
}

async fn boom(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: Value) {
    panic!("the handler always fails");
}

async fn serve() -> SocketAddr {
    let app = App::new(()).channel(
        ChannelRoute::new("fragile", "/fragile")
            .auth(false)
            .route("action", "boom", boom),
    );
    let server = ChannelServer::new(app, ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    addr
}

/// At most this many lines of one kind get through per window (one second).
const LINES_PER_WINDOW: usize = 10;

#[tokio::test]
async fn a_thousand_handler_panics_log_a_bounded_number_of_lines() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("pikku_core=info,pikku_server=info")
        .finish();
    // This test's runtime runs every task on this thread, the server's included.
    let _guard = tracing::subscriber::set_default(subscriber);
    // Keep the default hook's own panic messages out of the test output.
    std::panic::set_hook(Box::new(|_| {}));

    let addr = serve().await;
    let mut ws = RawWs::connect(addr, "/fragile").await;
    let started = Instant::now();
    let frames: Vec<u8> = (0..1000)
        .flat_map(|_| client_frame(0x80 | op::TEXT, br#"{"action":"boom"}"#, Some(MASK)))
        .collect();
    ws.write(&frames).await;
    let internal = json!({"action": "boom", "error": "Internal server error", "errorName": "InternalServerError"});
    for _ in 0..1000 {
        let (_, _, payload) = ws.next_frame().await.expect("an error frame");
        assert_eq!(serde_json::from_slice::<Value>(&payload).unwrap(), internal);
    }
    let windows = started.elapsed().as_secs() as usize + 2;
    let logged = logs.lines_containing("handler failed").len();
    assert!(
        (1..=LINES_PER_WINDOW * windows).contains(&logged),
        "{logged} lines in {windows} windows"
    );

    // In a later window the next failure is logged, after a count of what was left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws.send(0x80 | op::TEXT, br#"{"action":"boom"}"#).await;
    ws.next_frame().await.expect("an error frame");
    let logged = logs.lines_containing("handler failed").len();
    let suppressed: u64 = suppressed_counts(&logs, "similar errors").iter().sum();
    assert!(suppressed > 0, "no summary line");
    assert_eq!(
        logged as u64 + suppressed,
        1001,
        "every failure is logged or counted"
    );
    let _ = std::panic::take_hook();

    // Refused upgrades are bounded the same way.
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(raw_upgrade(addr, "/nope", &[]).await.status, 404);
    }
    let windows = started.elapsed().as_secs() as usize + 2;
    let refusals = logs.lines_containing("upgrade refused").len();
    assert!(
        (1..=LINES_PER_WINDOW * windows).contains(&refusals),
        "{refusals} lines in {windows} windows"
    );
}
