//! `fanout`: N subscribers of one topic, one publisher keeping W publishes in flight.
//!
//! Subscribers send `{"action":"sub","topic":<topic>}` and wait for `{"action":"sub"}`. The
//! publisher keeps `--window` `{"action":"pub","topic":<topic>,"t":<µs>}` in flight; a publish is
//! complete when its `{"action":"pub"}` reply arrives. Subscribers receive
//! `{"topic":<topic>,"data":{"t":<µs>}}` and record the delivery latency. Reports deliveries per
//! second and the server's CPU µs per delivery.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_websockets::Message;

use super::{join_all, read_deliveries, report_failures, stopped, Common, Ended, Stop};
use crate::args::Args;
use crate::client::{subscribe, Connector, Ws};
use crate::clock::now_us;
use crate::json;
use crate::procstat::Meter;
use crate::report::{Latency, Report};
use crate::Result;

#[derive(Debug, Default)]
struct Stats {
    publishes: u64,
    deliveries: u64,
    errors: u64,
    self_deliveries: u64,
    latency: Latency,
}

impl Stats {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Runs the scenario. Flags: `--subscribers` (1000), `--window` (8), `--topic` (`t`).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let subscribers: usize = args.get("subscribers", 1000)?;
    let window: usize = args.get("window", 8)?;
    let topic: String = args.get("topic", "t".to_owned())?;
    args.finish()?;
    if window == 0 {
        return Err("--window must be at least 1".into());
    }

    let connector = Connector::new(&common.url, common.source_ips).await?;
    let topic_ref = topic.as_str();
    let subs = connector
        .open_many(subscribers, 64, |_, mut ws| async move {
            subscribe(&mut ws, topic_ref).await?;
            Ok(ws)
        })
        .await?;
    let publisher = connector.connect().await?;

    let stats = Rc::new(RefCell::new(Stats::default()));
    let stop = Stop::new();
    let mut tasks: Vec<_> = subs
        .into_iter()
        .map(|ws| tokio::task::spawn_local(subscriber(ws, stats.clone(), stop.watch())))
        .collect();
    let topic: Rc<str> = topic.into();
    tasks.push(tokio::task::spawn_local(publish_loop(
        publisher,
        window,
        topic.clone(),
        stats.clone(),
        stop.watch(),
    )));

    tokio::time::sleep(common.warmup).await;
    let meter = {
        stats.borrow_mut().reset();
        Meter::start(common.server.as_ref())
    };
    tokio::time::sleep(common.duration).await;
    let measured = meter.stop();
    let s = std::mem::take(&mut *stats.borrow_mut());
    stop.stop();
    let (failures, first) = join_all(tasks, std::time::Duration::from_secs(5)).await;

    let mut report = Report::new("fanout");
    report
        .set("subscribers", subscribers)
        .set("window", window)
        .set("topic", &*topic)
        .measured(&measured, "delivery", "deliveries", s.deliveries)
        .set("publishes", s.publishes)
        .set_f(
            "publishes_per_s",
            s.publishes as f64 / measured.elapsed_s,
            1,
        )
        .latency("latency", &s.latency)
        .set("error_replies", s.errors)
        .set("self_deliveries", s.self_deliveries);
    if s.publishes > 0 && subscribers > 0 {
        // Deliveries seen in the window per publish acknowledged in it, per subscriber:
        // near 1.0 when the server keeps up; below it when deliveries queue behind the acks.
        let ratio = s.deliveries as f64 / (s.publishes as f64 * subscribers as f64);
        report.set_f("delivery_ratio", ratio, 3);
    }
    report_failures(&mut report, failures + s.errors + s.self_deliveries, first);
    Ok(report)
}

async fn subscriber(
    mut ws: Ws,
    stats: Rc<RefCell<Stats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let ended = read_deliveries(&mut ws, &mut stop, |msg, now| {
        let mut s = stats.borrow_mut();
        if json::is_error(msg) {
            s.errors += 1;
        } else if let Some(t) = json::u64_field(msg, "t") {
            s.deliveries += 1;
            s.latency.record(now.saturating_sub(t));
        }
    })
    .await;
    match ended {
        Ended::Stopped => {
            crate::client::close(ws, std::time::Duration::from_secs(2)).await;
            Ok(())
        }
        Ended::Closed(code) => Err(format!("server closed a subscriber ({code:?})").into()),
        Ended::Failed(e) => Err(e.into()),
    }
}

fn publication(topic: &str) -> Message {
    Message::text(format!(
        r#"{{"action":"pub","topic":"{topic}","t":{}}}"#,
        now_us()
    ))
}

async fn publish_loop(
    mut ws: Ws,
    window: usize,
    topic: Rc<str>,
    stats: Rc<RefCell<Stats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    for _ in 0..window {
        ws.feed(publication(&topic)).await?;
    }
    ws.flush().await?;
    loop {
        let first = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            m = ws.next() => m,
        };
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    if on_publisher_message(&stats, m.as_payload()) {
                        ws.feed(publication(&topic)).await?;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("server closed the publisher".into()),
            }
            next = ws.next().now_or_never();
        }
        ws.flush().await?;
    }
    crate::client::close(ws, std::time::Duration::from_secs(2)).await;
    Ok(())
}

/// Counts a message on the publisher connection; true when it completed a publish (an ack, or
/// an error reply, which also frees a window slot).
fn on_publisher_message(stats: &RefCell<Stats>, msg: &[u8]) -> bool {
    let mut s = stats.borrow_mut();
    if json::is_error(msg) {
        s.errors += 1;
        true
    } else if json::str_field(msg, "action") == Some("pub") {
        s.publishes += 1;
        true
    } else {
        // The publisher is excluded from its own publications.
        s.self_deliveries += 1;
        false
    }
}
