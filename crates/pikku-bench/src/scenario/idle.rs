//! `idle`: K connections, each subscribed to one of `--topics` topics, sitting idle.
//!
//! Reports the server's RSS per connection, `(RSS after − RSS before) / K`, then checks that a
//! sample of connections still answers `echo` (the liveness check at 19,000 connections). With
//! `--active N` every connection first makes N echo round trips, so the figure is what a connection
//! keeps once it has been used and gone quiet, not only what a fresh one costs.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;

use super::{join_all, report_failures, Common};
use crate::args::Args;
use crate::client::{next_data, send_text, subscribe, Connector, Ws};
use crate::clock::now_us;
use crate::json;
use crate::procstat::Meter;
use crate::report::{Latency, Report};
use crate::Result;

/// How long a sampled connection may take to answer its echo.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Probe,
    Stop,
}

#[derive(Debug, Default)]
struct Stats {
    probed: u64,
    alive: u64,
    dead: u64,
    unexpected: u64,
    latency: Latency,
}

/// Runs the scenario. Flags: `--connections` (15000), `--topics` (100), `--sample` (100),
/// `--concurrency` (64 connection setups in flight), `--active` (0 echo round trips per connection
/// before it goes idle). `--duration` is how long the connections
/// sit idle before RSS is read; `--warmup` is not used.
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let connections: usize = args.get("connections", 15_000)?;
    let topics: usize = args.get("topics", 100)?;
    let sample: usize = args.get("sample", 100)?;
    let concurrency: usize = args.get("concurrency", 64)?;
    let active: u64 = args.get("active", 0)?;
    args.finish()?;
    if connections == 0 || topics == 0 {
        return Err("--connections and --topics must be at least 1".into());
    }
    let sample = sample.min(connections);
    let stride = (connections / sample.max(1)).max(1);

    let server = common.server.as_ref();
    let before = server.and_then(|p| p.sample());
    let connector = Connector::new(&common.url, common.source_ips).await?;
    let setup_started = Instant::now();
    let conns = connector
        .open_many(connections, concurrency, |i, mut ws| async move {
            subscribe(&mut ws, &format!("topic-{}", i % topics)).await?;
            for round in 0..active {
                probe(&mut ws, i as u64 * active + round).await?;
            }
            Ok(ws)
        })
        .await?;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let stats = Rc::new(RefCell::new(Stats::default()));
    let (phase, phase_rx) = watch::channel(Phase::Idle);
    let tasks = conns
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let probe = i % stride == 0 && i / stride < sample;
            let task = connection(ws, i as u64, probe, phase_rx.clone(), stats.clone());
            tokio::task::spawn_local(task)
        })
        .collect();

    let meter = Meter::start(server);
    tokio::time::sleep(common.duration).await;
    let measured = meter.stop();
    let after = server.and_then(|p| p.sample());

    phase.send_replace(Phase::Probe);
    let deadline = Instant::now() + PROBE_TIMEOUT + Duration::from_secs(1);
    while stats.borrow().probed < sample as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    phase.send_replace(Phase::Stop);
    let (failures, first) = join_all(tasks, Duration::from_secs(30)).await;
    let s = std::mem::take(&mut *stats.borrow_mut());

    let mut report = Report::new("idle");
    report
        .set("connections", connections)
        .set("topics", topics)
        .set("active_round_trips", active)
        .set_f("setup_s", setup_s, 3)
        .set_f("setup_conns_per_s", connections as f64 / setup_s, 1)
        .set_f("idle_s", measured.elapsed_s, 3);
    if let Some(cpu) = measured.server_cpu_us {
        report.set_f(
            "server_cpu_pct_idle",
            cpu as f64 / (measured.elapsed_s * 1e6) * 100.0,
            2,
        );
    }
    if let (Some(b), Some(a)) = (before, after) {
        let per_conn = (a.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / connections as f64;
        report
            .set("server_rss_before_kib", b.rss_kib)
            .set("server_rss_after_kib", a.rss_kib)
            .set_f("rss_per_conn_bytes", per_conn, 0)
            .set_f("rss_per_conn_kib", per_conn / 1024.0, 2);
    }
    report
        .set("sample", sample)
        .set("alive", s.alive)
        .set("dead", s.dead)
        .set("unexpected_messages", s.unexpected)
        .latency("probe_latency", &s.latency);
    // Failed connections (dead, or a failed echo check) plus sampled probes that never ran.
    let never_probed = (sample as u64).saturating_sub(s.probed);
    report_failures(&mut report, failures + never_probed, first);
    Ok(report)
}

/// One idle connection: read (so pings are answered and a close is noticed) until stopped; a
/// sampled one sends an echo when the probe phase starts.
async fn connection(
    mut ws: Ws,
    seq: u64,
    sampled: bool,
    mut phase: watch::Receiver<Phase>,
    stats: Rc<RefCell<Stats>>,
) -> Result<()> {
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                let now = *phase.borrow_and_update();
                match now {
                    _ if changed.is_err() => break,
                    Phase::Stop => break,
                    Phase::Probe if sampled => {
                        let result = probe(&mut ws, seq).await;
                        let mut s = stats.borrow_mut();
                        s.probed += 1;
                        match result {
                            Ok(us) => {
                                s.alive += 1;
                                s.latency.record(us);
                            }
                            Err(e) => return Err(format!("connection {seq} failed the echo check: {e}").into()),
                        }
                    }
                    _ => {}
                }
            }
            m = ws.next() => match m {
                Some(Ok(m)) if m.is_text() || m.is_binary() => stats.borrow_mut().unexpected += 1,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.borrow_mut().dead += 1;
                    return Err(format!("connection {seq} failed while idle: {e}").into());
                }
                None => {
                    stats.borrow_mut().dead += 1;
                    return Err(format!("server closed idle connection {seq}").into());
                }
            },
        }
    }
    crate::client::close(ws, Duration::from_secs(5)).await;
    Ok(())
}

/// Sends one echo and waits for the matching reply; returns the round trip in µs.
async fn probe(ws: &mut Ws, seq: u64) -> Result<u64> {
    let sent = now_us();
    let request = format!(r#"{{"action":"echo","seq":{seq},"t":{sent},"p":"alive"}}"#);
    send_text(ws, request).await?;
    tokio::time::timeout(PROBE_TIMEOUT, async {
        loop {
            let reply = next_data(ws).await?;
            if json::is_error(&reply) {
                return Err(format!("error reply: {}", String::from_utf8_lossy(&reply)).into());
            }
            if json::str_field(&reply, "action") == Some("echo")
                && json::u64_field(&reply, "seq") == Some(seq)
            {
                return Ok(now_us().saturating_sub(sent));
            }
        }
    })
    .await
    .map_err(|_| "no echo reply within 5 s")?
}
