//! The no-framework baseline: the bench contract written straight on tokio-websockets.
//!
//! It is deliberately what a competent engineer writes without a framework, so the framework's
//! overhead can be reported as a ratio against it in the same harness:
//!
//! - every message is parsed into a [`serde_json::Value`] and routed on its `action` member;
//! - each connection has an unbounded mpsc queue drained by a writer task (which batches what is
//!   queued into one flush);
//! - subscriptions live in one `HashMap<topic, HashMap<connection id, sender>>` under a mutex;
//! - a publication is encoded once and the same `Bytes` goes to every subscriber but the sender.
//!
//! Routes (same replies as `bench-server`): `echo` returns its input object; `sub {topic}`
//! replies `{"action":"sub"}`; `pub {topic, t}` sends `{"topic":<topic>,"data":{"t":<t>}}` to the
//! topic's other subscribers and replies `{"action":"pub"}`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder};

use crate::args::Args;
use crate::Result;

type Outbox = mpsc::UnboundedSender<Message>;

/// Topic subscriptions: topic → connection id → that connection's outbound queue.
#[derive(Debug, Default)]
struct Hub {
    topics: Mutex<HashMap<String, HashMap<u64, Outbox>>>,
}

impl Hub {
    fn subscribe(&self, topic: &str, id: u64, outbox: &Outbox) {
        let mut topics = self.topics.lock().expect("hub lock");
        topics
            .entry(topic.to_owned())
            .or_default()
            .insert(id, outbox.clone());
    }

    fn publish(&self, topic: &str, sender: u64, body: Bytes) {
        let topics = self.topics.lock().expect("hub lock");
        if let Some(subscribers) = topics.get(topic) {
            for (&id, outbox) in subscribers {
                if id != sender {
                    let _ = outbox.send(Message::text(body.clone()));
                }
            }
        }
    }

    fn remove(&self, id: u64, subscribed: &[String]) {
        let mut topics = self.topics.lock().expect("hub lock");
        for topic in subscribed {
            if let Some(subscribers) = topics.get_mut(topic) {
                subscribers.remove(&id);
                if subscribers.is_empty() {
                    topics.remove(topic);
                }
            }
        }
    }
}

/// Runs `baseline-server` with its flags: `--port` (8080; 0 picks a free one), `--host`
/// (127.0.0.1), `--threads` (1: a current-thread runtime; more: a multi-thread runtime with that
/// many workers). Prints `baseline-server listening on <addr>` to stdout once bound.
pub fn main_with_args(mut args: Args) -> Result<()> {
    let port: u16 = args.get("port", 8080)?;
    let host: IpAddr = args.get("host", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let threads: usize = args.get("threads", 1)?;
    args.finish()?;
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::new(host, port)).await?;
        println!("baseline-server listening on {}", listener.local_addr()?);
        serve(listener).await
    })
}

/// Accepts connections on `listener` forever.
pub async fn serve(listener: TcpListener) -> Result<()> {
    let hub = Arc::new(Hub::default());
    let ids = AtomicU64::new(1);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                eprintln!("baseline-server: error: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(stream, id, hub.clone()));
    }
}

async fn connection(stream: TcpStream, id: u64, hub: Arc<Hub>) {
    let _ = stream.set_nodelay(true);
    let ws = match ServerBuilder::new().accept(stream).await {
        Ok((_request, ws)) => ws,
        Err(e) => {
            eprintln!("baseline-server: error: upgrade: {e}");
            return;
        }
    };
    let (mut sink, mut incoming) = ws.split();
    let (outbox, mut queue) = mpsc::unbounded_channel::<Message>();

    let writer = tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            sink.feed(first).await?;
            while let Ok(more) = queue.try_recv() {
                sink.feed(more).await?;
            }
            sink.flush().await?;
        }
        sink.close().await
    });

    let mut subscribed = Vec::new();
    while let Some(Ok(msg)) = incoming.next().await {
        if msg.is_text() {
            handle(msg.as_payload(), id, &outbox, &hub, &mut subscribed);
        }
    }
    hub.remove(id, &subscribed);
    drop(outbox);
    let _ = writer.await;
}

const SUB_REPLY: &str = r#"{"action":"sub"}"#;
const PUB_REPLY: &str = r#"{"action":"pub"}"#;

fn handle(text: &[u8], id: u64, outbox: &Outbox, hub: &Hub, subscribed: &mut Vec<String>) {
    let reply = match serde_json::from_slice::<Value>(text) {
        Err(_) => error_frame(None, "Invalid message data", "UnprocessableContentError"),
        Ok(input) => match input.get("action").and_then(Value::as_str) {
            Some("echo") => Message::text(input.to_string()),
            Some("sub") => match input.get("topic").and_then(Value::as_str) {
                Some(topic) => {
                    hub.subscribe(topic, id, outbox);
                    subscribed.push(topic.to_owned());
                    Message::text(SUB_REPLY)
                }
                None => error_frame(
                    Some("sub"),
                    "Invalid message data",
                    "UnprocessableContentError",
                ),
            },
            Some("pub") => match input.get("topic").and_then(Value::as_str) {
                Some(topic) => {
                    let t = input.get("t").unwrap_or(&Value::Null);
                    let body = format!(r#"{{"topic":{},"data":{{"t":{t}}}}}"#, Value::from(topic));
                    hub.publish(topic, id, Bytes::from(body));
                    Message::text(PUB_REPLY)
                }
                None => error_frame(
                    Some("pub"),
                    "Invalid message data",
                    "UnprocessableContentError",
                ),
            },
            Some(other) => error_frame(
                Some(other),
                &format!("No route for 'action:{other}'"),
                "NotFoundError",
            ),
            None => error_frame(None, "No default message route", "NotFoundError"),
        },
    };
    let _ = outbox.send(reply);
}

fn error_frame(action: Option<&str>, error: &str, name: &str) -> Message {
    let mut frame = serde_json::Map::new();
    if let Some(action) = action {
        frame.insert("action".into(), action.into());
    }
    frame.insert("error".into(), error.into());
    frame.insert("errorName".into(), name.into());
    Message::text(Value::Object(frame).to_string())
}
