//! `echo`: connections × in-flight window × payload size, closed loop.
//!
//! Each connection keeps `--window` requests `{"action":"echo","seq":N,"t":<µs>,"p":"<payload>"}`
//! in flight; every reply records `now - t` and sends the next request. Reports messages (echo
//! round trips) per second, latency and the server's CPU µs per message.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_websockets::Message;

use super::{join_all, report_failures, stopped, Common, Stop};
use crate::args::Args;
use crate::client::Ws;
use crate::clock::now_us;
use crate::json;
use crate::procstat::Meter;
use crate::report::{Latency, Report};
use crate::Result;

#[derive(Debug, Default)]
struct Stats {
    messages: u64,
    errors: u64,
    latency: Latency,
}

/// Runs the scenario. Flags: `--connections` (50), `--window` (4), `--payload` bytes (64).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let connections: usize = args.get("connections", 50)?;
    let window: usize = args.get("window", 4)?;
    let payload: usize = args.get("payload", 64)?;
    args.finish()?;
    if connections == 0 || window == 0 {
        return Err("--connections and --window must be at least 1".into());
    }

    let connector = crate::client::Connector::new(&common.url, common.source_ips).await?;
    let conns = connector
        .open_many(connections, 64, |_, ws| async move { Ok(ws) })
        .await?;

    let stats = Rc::new(RefCell::new(Stats::default()));
    let stop = Stop::new();
    let payload: Rc<str> = "x".repeat(payload).into();
    let tasks = conns
        .into_iter()
        .map(|ws| {
            let (stats, payload, stop) = (stats.clone(), payload.clone(), stop.watch());
            tokio::task::spawn_local(connection(ws, window, payload, stats, stop))
        })
        .collect();

    tokio::time::sleep(common.warmup).await;
    let meter = {
        let mut s = stats.borrow_mut();
        s.latency.reset();
        s.messages = 0;
        s.errors = 0;
        Meter::start(common.server.as_ref())
    };
    tokio::time::sleep(common.duration).await;
    let measured = meter.stop();
    let (messages, errors, latency) = {
        let s = stats.borrow();
        (s.messages, s.errors, s.latency.clone())
    };
    stop.stop();
    let (failures, first) = join_all(tasks, std::time::Duration::from_secs(5)).await;

    let mut report = Report::new("echo");
    report
        .set("connections", connections)
        .set("window", window)
        .set("payload_bytes", payload.len())
        .measured(&measured, "msg", "msgs", messages)
        .latency("latency", &latency)
        .set("error_replies", errors);
    report_failures(&mut report, failures + errors, first);
    Ok(report)
}

fn request(seq: u64, payload: &str) -> Message {
    Message::text(format!(
        r#"{{"action":"echo","seq":{seq},"t":{},"p":"{payload}"}}"#,
        now_us()
    ))
}

/// One connection's closed loop: keep `window` requests in flight until stopped.
async fn connection(
    mut ws: Ws,
    window: usize,
    payload: Rc<str>,
    stats: Rc<RefCell<Stats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut seq = 0u64;
    for _ in 0..window {
        seq += 1;
        ws.feed(request(seq, &payload)).await?;
    }
    ws.flush().await?;
    loop {
        let first = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            m = ws.next() => m,
        };
        let mut next = Some(first);
        // Answer every reply already buffered, then flush the new requests in one write.
        while let Some(item) = next {
            match item {
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    on_reply(&stats, m.as_payload());
                    seq += 1;
                    ws.feed(request(seq, &payload)).await?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("server closed the connection".into()),
            }
            next = ws.next().now_or_never();
        }
        ws.flush().await?;
    }
    crate::client::close(ws, std::time::Duration::from_secs(2)).await;
    Ok(())
}

fn on_reply(stats: &RefCell<Stats>, reply: &[u8]) {
    let now = now_us();
    let mut s = stats.borrow_mut();
    s.messages += 1;
    if json::is_error(reply) {
        s.errors += 1;
    } else if let Some(t) = json::u64_field(reply, "t") {
        s.latency.record(now.saturating_sub(t));
    }
}
