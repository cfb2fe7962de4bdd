//! `fanout`: N subscribers of one topic, one publisher keeping W publishes in flight.
//!
//! Subscribers send `{"action":"sub","topic":<topic>}` and wait for `{"action":"sub"}`. The
//! publisher keeps `--window` `{"action":"pub","topic":<topic>,"t":<µs>}` in flight; a publish is
//! complete when its `{"action":"pub"}` reply arrives. Subscribers receive
//! `{"topic":<topic>,"data":{"t":<µs>}}` and record the delivery latency. Reports deliveries per
//! second and the server's CPU µs per delivery.
//!
//! Across nodes: `--publisher-url` puts the publisher on another server sharing the subscribers'
//! hub through a broker, so every delivery crosses it; `--publisher-pid` and `--broker-pid` add that
//! server's and the broker's CPU to the report.

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
use crate::procstat::{Meter, Proc};
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

/// Runs the scenario. Flags: `--subscribers` (1000), `--window` (8), `--topic` (`t`),
/// `--rate` (publishes per second at a steady pace instead of a window; 0, the default, keeps the
/// window), `--publisher-url` (the subscribers' `--url`), `--publisher-pid`, `--broker-pid`.
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let subscribers: usize = args.get("subscribers", 1000)?;
    let window: usize = args.get("window", 8)?;
    let rate: f64 = args.get("rate", 0.0)?;
    let topic: String = args.get("topic", "t".to_owned())?;
    let publisher_url: Option<String> = args.opt("publisher-url")?;
    let publisher_proc = args.opt::<u32>("publisher-pid")?.map(Proc::pid);
    let broker_proc = args.opt::<u32>("broker-pid")?.map(Proc::pid);
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
    let publisher = match &publisher_url {
        Some(url) => {
            Connector::new(url, common.source_ips)
                .await?
                .connect()
                .await?
        }
        None => connector.connect().await?,
    };

    let stats = Rc::new(RefCell::new(Stats::default()));
    let stop = Stop::new();
    let mut tasks: Vec<_> = subs
        .into_iter()
        .map(|ws| tokio::task::spawn_local(subscriber(ws, stats.clone(), stop.watch())))
        .collect();
    let topic: Rc<str> = topic.into();
    tasks.push(if rate > 0.0 {
        tokio::task::spawn_local(paced_publish_loop(
            publisher,
            rate,
            topic.clone(),
            stats.clone(),
            stop.watch(),
        ))
    } else {
        tokio::task::spawn_local(publish_loop(
            publisher,
            window,
            topic.clone(),
            stats.clone(),
            stop.watch(),
        ))
    });

    tokio::time::sleep(common.warmup).await;
    let (meter, publisher_meter, broker_meter) = {
        stats.borrow_mut().reset();
        (
            Meter::start(common.server.as_ref()),
            publisher_proc.as_ref().map(|p| Meter::start(Some(p))),
            broker_proc.as_ref().map(|p| Meter::start(Some(p))),
        )
    };
    tokio::time::sleep(common.duration).await;
    let measured = meter.stop();
    let others = [
        ("publisher_server", publisher_meter.map(|m| m.stop())),
        ("broker", broker_meter.map(|m| m.stop())),
    ];
    let s = std::mem::take(&mut *stats.borrow_mut());
    stop.stop();
    let (failures, first) = join_all(tasks, std::time::Duration::from_secs(5)).await;

    let mut report = Report::new("fanout");
    report
        .set("subscribers", subscribers)
        .set("window", window)
        .set_f("rate", rate, 1)
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
    if let Some(url) = &publisher_url {
        report.set("publisher_url", url.as_str());
    }
    for (name, other) in others {
        if let Some(cpu) = other.and_then(|m| m.server_cpu_us) {
            report.set(&format!("{name}_cpu_us"), cpu).set_f(
                &format!("{name}_cpu_us_per_delivery"),
                cpu as f64 / s.deliveries.max(1) as f64,
                3,
            );
        }
    }
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

/// Publishes `rate` times a second whatever the acknowledgements do: across nodes an ack only says
/// the broker took the publication, so a window would not pace the subscribers' server.
async fn paced_publish_loop(
    mut ws: Ws,
    rate: f64,
    topic: Rc<str>,
    stats: Rc<RefCell<Stats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut pace = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            _ = pace.tick() => ws.send(publication(&topic)).await?,
            m = ws.next() => match m {
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    on_publisher_message(&stats, m.as_payload());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("server closed the publisher".into()),
            },
        }
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
