//! `broadcast`: an exact count of deliveries for runs spread over several processes and servers.
//!
//! `--role subscribe` opens `--subscribers` connections, subscribes each to `--topic`, prints one
//! `READY <n>` line and then waits for `--count` publications on every connection; it stops when
//! all have arrived, or `--settle` seconds after the last delivery, and reports deliveries, the
//! expected number, the delivery ratio and the publish→deliver latency (from the `t` each
//! publication carries). `--role publish` sends `--count` publications at `--rate` per second
//! from one connection and reports how many were acknowledged.
//!
//! A cluster run starts one subscribing process per server (each below the per-process descriptor
//! limit), waits for every `READY`, then one publisher: see `bench/cluster.sh`.

use std::cell::RefCell;
use std::io::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};

use super::{join_all, report_failures, Common};
use crate::args::Args;
use crate::client::{subscribe, Connector, Ws};
use crate::clock::now_us;
use crate::json;
use crate::procstat::Meter;
use crate::report::{Latency, Report};
use crate::Result;

#[derive(Debug, Default)]
struct Tally {
    deliveries: u64,
    errors: u64,
    last_delivery: Option<Instant>,
    latency: Latency,
}

/// Runs the scenario. Flags: `--role` (`subscribe` or `publish`), `--topic` (`all`), `--count`
/// (10); subscribe: `--subscribers` (1000), `--settle` (10 s), `--concurrency` (64); publish:
/// `--rate` (1 per second).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let role: String = args.required("role")?;
    let topic: String = args.get("topic", "all".to_owned())?;
    let count: u64 = args.get("count", 10)?;
    match role.as_str() {
        "subscribe" => {
            let subscribers: usize = args.get("subscribers", 1000)?;
            let settle: f64 = args.get("settle", 10.0)?;
            let concurrency: usize = args.get("concurrency", 64)?;
            args.finish()?;
            subscribe_role(
                common,
                subscribers,
                &topic,
                count,
                Duration::from_secs_f64(settle),
                concurrency,
            )
            .await
        }
        "publish" => {
            let rate: f64 = args.get("rate", 1.0)?;
            args.finish()?;
            if rate <= 0.0 {
                return Err("--rate must be positive".into());
            }
            publish_role(common, &topic, count, rate).await
        }
        other => Err(format!("--role {other}: expected subscribe or publish").into()),
    }
}

async fn subscribe_role(
    common: &Common,
    subscribers: usize,
    topic: &str,
    count: u64,
    settle: Duration,
    concurrency: usize,
) -> Result<Report> {
    let connector = Connector::new(&common.url, common.source_ips).await?;
    let rss_before = common.server.as_ref().and_then(|p| p.sample());
    let tally = Rc::new(RefCell::new(Tally::default()));
    let done = Rc::new(tokio::sync::Notify::new());
    let expected = subscribers as u64 * count;
    // Each subscriber reads from the moment it is subscribed: opening tens of thousands takes longer than
    // the server's idle timeout, and a socket nobody reads does not answer the server's pings.
    let (tally_ref, done_ref) = (&tally, &done);
    let tasks = connector
        .open_many(subscribers, concurrency, |_, mut ws| async move {
            subscribe(&mut ws, topic).await?;
            Ok(tokio::task::spawn_local(receive(
                ws,
                count,
                tally_ref.clone(),
                done_ref.clone(),
                expected,
            )))
        })
        .await?;
    let rss_subscribed = common.server.as_ref().and_then(|p| p.sample());
    println!("READY {}", tasks.len());
    std::io::stdout().flush()?;
    let meter = Meter::start(common.server.as_ref());

    // Until everything arrived, or nothing more came for `settle`.
    let started = Instant::now();
    loop {
        if tally.borrow().deliveries >= expected {
            break;
        }
        let quiet_since = tally.borrow().last_delivery.unwrap_or(started);
        if quiet_since.elapsed() >= settle.max(Duration::from_secs(1))
            && tally.borrow().deliveries > 0
        {
            break;
        }
        if tally.borrow().deliveries == 0 && started.elapsed() > settle * 30 {
            break;
        }
        tokio::select! {
            () = done.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let measured = meter.stop();
    // A subscriber that got everything waits on; one whose task ended lost its connection.
    let lost = tasks.iter().filter(|task| task.is_finished()).count() as u64;
    let (failures, first) = join_all(
        tasks
            .into_iter()
            .filter(|task| {
                let finished = task.is_finished();
                if !finished {
                    task.abort();
                }
                finished
            })
            .collect(),
        Duration::from_secs(1),
    )
    .await;
    let t = std::mem::take(&mut *tally.borrow_mut());

    let mut report = Report::new("broadcast");
    report
        .set("role", "subscribe")
        .set("subscribers", subscribers)
        .set("topic", topic)
        .set("count", count)
        .set("expected", expected)
        .measured(&measured, "delivery", "deliveries", t.deliveries)
        .set_f(
            "delivery_ratio",
            t.deliveries as f64 / expected.max(1) as f64,
            6,
        )
        .latency("latency", &t.latency)
        .set("error_replies", t.errors);
    if let (Some(before), Some(after)) = (rss_before, rss_subscribed) {
        report
            .set("server_rss_before_kib", before.rss_kib)
            .set("server_rss_subscribed_kib", after.rss_kib)
            .set_f(
                "server_rss_per_conn_b",
                (after.rss_kib.saturating_sub(before.rss_kib) * 1024) as f64
                    / subscribers.max(1) as f64,
                0,
            );
    }
    let missing = expected.saturating_sub(t.deliveries);
    report.set("subscribers_lost", lost);
    report_failures(
        &mut report,
        failures + t.errors + u64::from(missing > 0),
        first.or_else(|| (missing > 0).then(|| format!("{missing} deliveries missing"))),
    );
    Ok(report)
}

/// Counts one subscriber's deliveries until it has `count` of them.
async fn receive(
    mut ws: Ws,
    count: u64,
    tally: Rc<RefCell<Tally>>,
    done: Rc<tokio::sync::Notify>,
    expected: u64,
) -> Result<()> {
    let mut got = 0;
    while got < count {
        let Some(msg) = ws.next().await else {
            return Err("the server closed a subscriber".into());
        };
        let msg = msg?;
        if msg.is_close() {
            let code = msg.as_close().map_or(0, |(code, _)| u16::from(code));
            let reason = msg
                .as_close()
                .map(|(_, r)| r.to_owned())
                .unwrap_or_default();
            return Err(format!("the server closed a subscriber ({code} {reason})").into());
        }
        if !(msg.is_text() || msg.is_binary()) {
            continue;
        }
        let now = now_us();
        let mut t = tally.borrow_mut();
        if json::is_error(msg.as_payload()) {
            t.errors += 1;
        } else if let Some(sent) = json::u64_field(msg.as_payload(), "t") {
            got += 1;
            t.deliveries += 1;
            t.last_delivery = Some(Instant::now());
            t.latency.record(now.saturating_sub(sent));
            if t.deliveries >= expected {
                done.notify_one();
            }
        }
    }
    // Keep the connection open until the scenario ends: closing now would change what the others
    // measure.
    std::future::pending::<()>().await;
    Ok(())
}

async fn publish_role(common: &Common, topic: &str, count: u64, rate: f64) -> Result<Report> {
    let connector = Connector::new(&common.url, common.source_ips).await?;
    let mut ws = connector.connect().await?;
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let (mut sent, mut acks, mut errors) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while acks + errors < count {
        tokio::select! {
            _ = pace.tick(), if sent < count => {
                let text = format!(r#"{{"action":"pub","topic":"{topic}","t":{}}}"#, now_us());
                ws.send(tokio_websockets::Message::text(text)).await?;
                sent += 1;
            }
            m = ws.next() => match m {
                Some(Ok(m)) if m.is_text() => {
                    if json::is_error(m.as_payload()) {
                        errors += 1;
                    } else if json::str_field(m.as_payload(), "action") == Some("pub") {
                        acks += 1;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("server closed the publisher".into()),
            },
        }
    }
    crate::client::close(ws, Duration::from_secs(2)).await;
    let mut report = Report::new("broadcast");
    report
        .set("role", "publish")
        .set("topic", topic)
        .set("count", count)
        .set_f("rate", rate, 2)
        .set("publishes", acks)
        .set("error_replies", errors)
        .set_f("elapsed_s", started.elapsed().as_secs_f64(), 3);
    report_failures(
        &mut report,
        errors,
        (errors > 0).then(|| format!("{errors} publishes refused")),
    );
    Ok(report)
}
