//! The app's logs: the global message middleware and onDisconnect, captured over real sockets.
//!
//! This is its own test binary on purpose: tracing caches per call site whether anyone listens, so a test that
//! installs a thread-local subscriber must not race other tests hitting the same call sites first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_auth_session::app;
use pikku::{ChannelServer, ServerConfig};
use pikku_client::{Client, ClientError};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::timeout;

/// How long the test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// Collects what the app logs, as text.
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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn messages_and_disconnections_are_logged_with_the_user() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("example_auth_session=info")
        .finish();
    // This test's runtime runs every task on this thread, the server's included.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = ChannelServer::new(app(), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));

    let client = timeout(WAIT, Client::connect(&format!("ws://{addr}/account")))
        .await
        .unwrap()
        .unwrap();
    timeout(WAIT, client.next_frame()).await.unwrap().unwrap(); // the welcome frame
    let actions = client.route("action");
    // Refused by the auth gate, which runs before any middleware: not logged.
    let me = timeout(WAIT, actions.call("me", &())).await.unwrap();
    assert!(matches!(me, Err(ClientError::Remote { .. })), "{me:?}");
    let token = json!({"token": "alice-token"});
    timeout(WAIT, actions.call("login", &token))
        .await
        .unwrap()
        .unwrap();
    timeout(WAIT, actions.call("me", &()))
        .await
        .unwrap()
        .unwrap();
    client.close().await;

    let deadline = tokio::time::Instant::now() + WAIT;
    while !logs.text().contains("disconnected") {
        assert!(tokio::time::Instant::now() < deadline, "{}", logs.text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // `login` was sent anonymously, `me` by alice.
    assert!(
        lines[0].contains(r#"message channel_id="#)
            && lines[0].contains(r#"route="login" user_id="anonymous" ok=true"#),
        "{text}"
    );
    assert!(
        lines[1].contains(r#"route="me" user_id="alice" ok=true"#),
        "{text}"
    );
    // The final session.
    assert!(
        lines[2].contains("disconnected")
            && lines[2].contains("reason=client_closed")
            && lines[2].contains(r#"session=Some(User { user_id: "alice", role: Member })"#),
        "{text}"
    );
}
