//! The spans handlers run in, over a real socket: what a handler logs carries its channel, channel id, the
//! client's address and, for messages, the route.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pikku_core::{App, Channel, ChannelRoute, ClosedChannel, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::RawWs;
use tokio::net::TcpListener;

/// Log output, shared with the subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn line_with(&self, text: &str) -> String {
        let logs = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        logs.lines()
            .find(|line| line.contains(text))
            .unwrap_or_else(|| panic!("no line with {text:?} in:\n{logs}"))
            .to_owned()
    }
}

async fn hello(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>) {
    tracing::info!(id = %ch.channel_id(), "handler says hello");
}

#[derive(serde::Deserialize)]
struct Say {
    text: String,
}

async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Say) {
    tokio::task::yield_now().await; // the span holds across awaits
    tracing::info!(text = input.text, "handler heard");
}

async fn bye(_ctx: Ctx<(), ()>, _ch: ClosedChannel<Params>) {
    tracing::info!("handler says bye");
}

/// Serves the chat channel with a `fmt` subscriber of `filter` on this thread, runs one client through a
/// greeting, a message and a close, and returns the log and the client's address.
async fn chat_logs(filter: &str) -> (Logs, std::net::SocketAddr) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter(filter)
        .finish();
    // This test's runtime runs every task on this thread, the server's included.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = App::new(()).channel(
        ChannelRoute::new("chat", "/chat")
            .auth(false)
            .on_connect(hello)
            .route("action", "say", say)
            .on_disconnect(bye),
    );
    let server = ChannelServer::new(app, ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve(listener));

    let mut ws = RawWs::connect(addr, "/chat").await;
    let client = ws.get_mut().local_addr().unwrap();
    ws.send(0x80 | op::TEXT, br#"{"action":"say","text":"hi"}"#)
        .await;
    ws.next_frame().await.expect("the reply");
    ws.send(0x80 | op::CLOSE, &1000u16.to_be_bytes()).await;
    ws.next_frame().await.expect("the close echo");
    drop(ws);
    server.shutdown().await;
    (logs, client)
}

#[tokio::test]
async fn a_handlers_log_lines_carry_the_connection_and_the_route() {
    // The usual `INFO`, with the handler spans turned on.
    let (logs, client) = chat_logs("info,pikku::span=debug").await;

    let hello = logs.line_with("handler says hello");
    let id = hello
        .split(" id=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the handler logged its channel id")
        .to_owned();
    let connection = format!("channel=chat channel_id={id} peer={client}");
    assert!(
        hello.contains(&format!("connect{{{connection}}}")),
        "{hello}"
    );

    let heard = logs.line_with("handler heard");
    assert!(
        heard.contains(&format!("message{{{connection} route=action:say}}")),
        "{heard}"
    );
    let bye = logs.line_with("handler says bye");
    assert!(
        bye.contains(&format!("disconnect{{{connection}}}")),
        "{bye}"
    );
}

#[tokio::test]
async fn at_plain_info_the_spans_stay_off() {
    let (logs, _) = chat_logs("info").await;
    let heard = logs.line_with("handler heard");
    assert!(!heard.contains("message{"), "{heard}");
}
