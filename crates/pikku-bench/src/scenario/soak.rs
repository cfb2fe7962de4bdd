//! `soak`: a long run of mixed load at a constant connection count, sampled into a CSV.
//!
//! `--connections` (15000) in all:
//! - `--echoers` (300) connections each send the bench contract's echo every `--echo-every-ms`
//!   (100), one in flight, timing the reply;
//! - one publisher sends `{"action":"pub","topic":"topic-<k>","t":<µs>}` to the `--topics` (100)
//!   topics in turn at `--publish-rate` per second (50), open loop;
//! - every other connection is subscribed to one topic and sits idle, timing the deliveries it
//!   gets; each lives for an exponentially distributed time, then closes and is replaced at once,
//!   so about `--churn-per-s` (50) connections close and reopen every second while the total
//!   stays constant.
//!
//! Every `--sample-secs` (10) one CSV row goes to `--out` (`target/bench-results/soak.csv`):
//! server RSS and fds, connections open, echo and delivery latency over the window, and the
//! running error counts (unexpected closes, failed connects, echo timeouts, error replies). The run
//! lasts `--duration-secs` (or `--duration`) after the connections are up; the client's own
//! memory stays bounded (one pair of histograms, reset every window), and its RSS is in the CSV
//! too, with the CPU the server, the client and everything else used over the window (the
//! bench machine is shared: a busy window explains a latency spike).
//! Connections are opened and reopened at most `--concurrency` (64) at a time. The client needs a
//! file descriptor per connection: run it under a high `ulimit -n`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pikku_testkit::Rng;
use tokio::sync::{watch, Semaphore};
use tokio_websockets::Message;

use super::{join_all, report_failures, stopped, Common, Stop};
use crate::args::Args;
use crate::client::{next_data, send_text, subscribe, Connector, Ws};
use crate::clock::now_us;
use crate::json;
use crate::procstat::{Meter, Proc};
use crate::report::{Latency, Report};
use crate::Result;

/// The CSV columns, in order.
pub const COLUMNS: [&str; 20] = [
    "t_s",
    "server_rss_kib",
    "server_fds",
    "conns_open",
    "echo_count",
    "echo_p50_us",
    "echo_p99_us",
    "echo_max_us",
    "deliveries",
    "delivery_p99_us",
    "publishes",
    "churned",
    "unexpected_closes",
    "failed_connects",
    "echo_timeouts",
    "error_replies",
    "client_rss_kib",
    "server_cpu_pct",
    "client_cpu_pct",
    "other_cpu_pct",
];

/// How long an echo may take before it counts as a timeout.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed connect before the slot tries again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Counters of the current window (reset at every sample) and of the whole run.
#[derive(Debug, Default)]
struct Stats {
    echo: Latency,
    delivery: Latency,
    echo_count: u64,
    deliveries: u64,
    publishes: u64,
    churned: u64,
    open: u64,
    /// Connection tasks whose first connection is up (the setup is done when all are).
    ready: u64,
    unexpected_closes: u64,
    failed_connects: u64,
    echo_timeouts: u64,
    error_replies: u64,
    first_error: Option<String>,
}

impl Stats {
    fn error(&mut self, e: impl std::fmt::Display) {
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// What every connection task shares.
struct Shared {
    connector: Connector,
    stats: RefCell<Stats>,
    /// Bounds the connection setups in flight.
    setups: Semaphore,
    topics: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Opens a connection (subscribed to `topic`, if any) within the setup bound; counts a failure.
    /// `ready` is the calling task's flag: set, and counted, at its first successful open.
    async fn open(&self, topic: Option<&str>, ready: &mut bool) -> Option<Ws> {
        let _permit = self.setups.acquire().await.ok()?;
        let result = async {
            let mut ws = self.connector.connect().await?;
            if let Some(topic) = topic {
                tokio::time::timeout(Duration::from_secs(10), subscribe(&mut ws, topic))
                    .await
                    .map_err(|_| "no subscribe reply within 10 s")??;
            }
            Result::<Ws>::Ok(ws)
        }
        .await;
        let mut s = self.stats.borrow_mut();
        match result {
            Ok(ws) => {
                s.open += 1;
                if !*ready {
                    *ready = true;
                    s.ready += 1;
                }
                Some(ws)
            }
            Err(e) => {
                s.failed_connects += 1;
                s.error(format!("connect: {e}"));
                None
            }
        }
    }

    /// Counts an unexpected end of a connection.
    fn lost(&self, what: &str, e: impl std::fmt::Display) {
        let mut s = self.stats.borrow_mut();
        s.open -= 1;
        s.unexpected_closes += 1;
        s.error(format!("{what}: {e}"));
    }
}

/// Runs the scenario (flags in the module docs).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let connections: usize = args.get("connections", 15_000)?;
    let topics: usize = args.get("topics", 100)?;
    let echoers: usize = args.get("echoers", 300)?;
    let echo_every = Duration::from_millis(args.get("echo-every-ms", 100)?);
    let publish_rate: f64 = args.get("publish-rate", 50.0)?;
    let churn: f64 = args.get("churn-per-s", 50.0)?;
    let duration = match args.opt::<f64>("duration-secs")? {
        Some(s) => Duration::try_from_secs_f64(s)?,
        None => common.duration,
    };
    let sample = Duration::try_from_secs_f64(args.get("sample-secs", 10.0)?)?;
    let out: PathBuf = args.get("out", PathBuf::from("target/bench-results/soak.csv"))?;
    let concurrency: usize = args.get("concurrency", 64)?;
    args.finish()?;
    if topics == 0 || connections < echoers + 2 || sample.is_zero() {
        return Err(
            "need --topics ≥ 1, --connections ≥ --echoers + 2 and --sample-secs > 0".into(),
        );
    }
    let idle = connections - echoers - 1;
    // Mean lifetime of an idle connection such that `idle` of them churn at `churn` per second.
    let mean_life = (churn > 0.0).then(|| Duration::from_secs_f64(idle as f64 / churn));

    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&out)?);
    writeln!(csv, "{}", COLUMNS.join(","))?;

    let shared = Rc::new(Shared {
        connector: Connector::new(&common.url, common.source_ips).await?,
        stats: RefCell::new(Stats::default()),
        setups: Semaphore::new(concurrency.max(1)),
        topics,
    });
    let stop = Stop::new();
    let setup_started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..idle {
        let seed = 0x50a4_u64.wrapping_mul(i as u64 + 1);
        tasks.push(tokio::task::spawn_local(idle_slot(
            shared.clone(),
            i,
            mean_life,
            Rng::scrambled(seed),
            stop.watch(),
        )));
    }
    for i in 0..echoers {
        tasks.push(tokio::task::spawn_local(echoer(
            shared.clone(),
            i as u64,
            echo_every,
            stop.watch(),
        )));
    }
    tasks.push(tokio::task::spawn_local(publisher(
        shared.clone(),
        publish_rate,
        stop.watch(),
    )));
    // Wait for the connections to be up (or for the setup to stop making progress).
    let target = connections as u64;
    let mut last = (0, Instant::now());
    while shared.stats.borrow().ready < target {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ready = shared.stats.borrow().ready;
        if ready > last.0 {
            last = (ready, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    {
        let mut s = shared.stats.borrow_mut();
        s.echo.reset();
        s.delivery.reset();
        (s.echo_count, s.deliveries, s.publishes, s.churned) = (0, 0, 0, 0);
    }

    let server = common.server.as_ref();
    let client = Proc::current();
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + sample, sample);
    summary.row(&mut csv, 0.0, &shared.stats, server, &client)?;
    while started.elapsed() < duration {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        summary.row(&mut csv, t, &shared.stats, server, &client)?;
    }
    csv.flush()?;
    stop.stop();
    let (failures, first) = join_all(tasks, Duration::from_secs(60)).await;

    let s = shared.stats.borrow();
    let errors = s.unexpected_closes + s.failed_connects + s.echo_timeouts + s.error_replies;
    let mut report = Report::new("soak");
    report
        .set("connections", connections)
        .set("idle_subscribed", idle)
        .set("echoers", echoers)
        .set("topics", topics)
        .set_f("publish_rate", publish_rate, 1)
        .set_f("churn_per_s", churn, 1)
        .set_f("setup_s", setup_s, 3)
        .set_f("duration_s", duration.as_secs_f64(), 3)
        .set_f("sample_s", sample.as_secs_f64(), 3)
        .set("csv", out.display().to_string())
        .set("rows", summary.rows);
    summary.report(&mut report);
    report
        .set("unexpected_closes", s.unexpected_closes)
        .set("failed_connects", s.failed_connects)
        .set("echo_timeouts", s.echo_timeouts)
        .set("error_replies", s.error_replies)
        .set("errors", errors);
    report_failures(
        &mut report,
        failures + errors,
        first.or(s.first_error.clone()),
    );
    Ok(report)
}

/// First, last and largest of a series.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    first: Option<u64>,
    last: u64,
    max: u64,
}

impl Span {
    fn add(&mut self, v: u64) {
        self.first.get_or_insert(v);
        self.last = v;
        self.max = self.max.max(v);
    }

    fn report(&self, report: &mut Report, name: &str) {
        report
            .set(&format!("{name}_first"), self.first.unwrap_or(0))
            .set(&format!("{name}_last"), self.last)
            .set(&format!("{name}_max"), self.max);
    }
}

/// The run summary, built row by row.
#[derive(Debug, Default)]
struct Summary {
    rows: u64,
    rss: Span,
    fds: Span,
    client_rss: Span,
    echo_p99_max: u64,
    delivery_p99_max: u64,
    conns_min: Option<u64>,
    /// CPU use since the previous row: the server's, this process's and everything else's (a
    /// busy machine explains latency spikes).
    window: Option<Meter>,
}

impl Summary {
    /// Samples everything, writes one CSV row and starts the next window.
    fn row(
        &mut self,
        csv: &mut impl std::io::Write,
        t: f64,
        stats: &RefCell<Stats>,
        server: Option<&Proc>,
        client: &Proc,
    ) -> Result<()> {
        let rss = server.and_then(Proc::sample).map(|s| s.rss_kib);
        let fds = server.and_then(Proc::fd_count);
        let client_rss = client.sample().map_or(0, |s| s.rss_kib);
        let cpu = self.window.replace(Meter::start(server)).map(|m| m.stop());
        let pct = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
        let server_pct = cpu.and_then(|m| {
            m.server_cpu_us
                .map(|us| us as f64 / (m.elapsed_s * 1e6) * 100.0)
        });
        let mut s = stats.borrow_mut();
        let mut line = String::with_capacity(160);
        let cell = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let _ = write!(
            line,
            "{t:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            cell(rss),
            cell(fds),
            s.open,
            s.echo_count,
            s.echo.quantile(0.5),
            s.echo.quantile(0.99),
            s.echo.quantile(1.0),
            s.deliveries,
            s.delivery.quantile(0.99),
            s.publishes,
            s.churned,
            s.unexpected_closes,
            s.failed_connects,
            s.echo_timeouts,
            s.error_replies,
            client_rss,
            pct(server_pct),
            pct(cpu.and_then(|m| m.client_cpu_pct)),
            pct(cpu.and_then(|m| m.other_cpu_pct)),
        );
        writeln!(csv, "{line}")?;
        csv.flush()?;
        println!("  soak {line}");
        self.rows += 1;
        if let Some(v) = rss {
            self.rss.add(v);
        }
        if let Some(v) = fds {
            self.fds.add(v);
        }
        self.client_rss.add(client_rss);
        self.echo_p99_max = self.echo_p99_max.max(s.echo.quantile(0.99));
        self.delivery_p99_max = self.delivery_p99_max.max(s.delivery.quantile(0.99));
        self.conns_min = Some(self.conns_min.map_or(s.open, |m| m.min(s.open)));
        s.echo.reset();
        s.delivery.reset();
        (s.echo_count, s.deliveries, s.publishes, s.churned) = (0, 0, 0, 0);
        Ok(())
    }

    fn report(&self, report: &mut Report) {
        self.rss.report(report, "server_rss_kib");
        self.fds.report(report, "server_fds");
        self.client_rss.report(report, "client_rss_kib");
        report
            .set("echo_p99_max_us", self.echo_p99_max)
            .set("delivery_p99_max_us", self.delivery_p99_max)
            .set("conns_open_min", self.conns_min.unwrap_or(0));
    }
}

/// One idle subscribed connection, replaced by a fresh one when its lifetime ends or it is lost.
async fn idle_slot(
    shared: Rc<Shared>,
    index: usize,
    mean_life: Option<Duration>,
    mut rng: Rng,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let topic = format!("topic-{}", index % shared.topics);
    let mut ready = false;
    while !*stop.borrow() {
        let Some(mut ws) = shared.open(Some(&topic), &mut ready).await else {
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(RETRY_PAUSE) => continue,
            }
        };
        let life = tokio::time::sleep(mean_life.map_or(Duration::MAX / 4, |m| {
            // Exponential lifetimes keep the churn rate constant from the first second.
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            m.mul_f64(-(1.0 - u).ln()).min(Duration::from_secs(86_400))
        }));
        tokio::pin!(life);
        let lost = loop {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break None,
                () = &mut life => break None,
                m = ws.next() => match m {
                    Some(Ok(m)) if m.is_text() || m.is_binary() => {
                        let now = now_us();
                        let msg = m.as_payload();
                        let mut s = shared.stats.borrow_mut();
                        if json::is_error(msg) {
                            s.error_replies += 1;
                        } else if let Some(t) = json::u64_field(msg, "t") {
                            s.deliveries += 1;
                            s.delivery.record(now.saturating_sub(t));
                        }
                    }
                    Some(Ok(m)) if m.is_close() => break Some("server closed".to_owned()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Some(e.to_string()),
                    None => break Some("connection ended".to_owned()),
                },
            }
        };
        match lost {
            Some(e) => shared.lost("idle connection", e),
            None => {
                crate::client::close(ws, Duration::from_secs(5)).await;
                let mut s = shared.stats.borrow_mut();
                s.open -= 1;
                if !*stop.borrow() {
                    s.churned += 1;
                }
            }
        }
    }
    Ok(())
}

/// One connection doing paced echo round trips, reconnecting when lost.
async fn echoer(
    shared: Rc<Shared>,
    index: u64,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut seq = 0u64;
    let mut ready = false;
    'connection: while !*stop.borrow() {
        let Some(mut ws) = shared.open(None, &mut ready).await else {
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(RETRY_PAUSE) => continue,
            }
        };
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                _ = tick.tick() => {}
            }
            seq += 1;
            let sent = now_us();
            let request = format!(r#"{{"action":"echo","seq":{seq},"c":{index},"t":{sent}}}"#);
            if let Err(e) = send_text(&mut ws, request).await {
                shared.lost("echo connection", e);
                continue 'connection;
            }
            let reply = tokio::time::timeout(ECHO_TIMEOUT, async {
                loop {
                    let reply = next_data(&mut ws).await?;
                    if json::u64_field(&reply, "seq") == Some(seq) || json::is_error(&reply) {
                        return Result::<_>::Ok(reply);
                    }
                }
            })
            .await;
            let mut s = shared.stats.borrow_mut();
            match reply {
                Ok(Ok(reply)) if json::is_error(&reply) => s.error_replies += 1,
                Ok(Ok(_)) => {
                    s.echo_count += 1;
                    s.echo.record(now_us().saturating_sub(sent));
                }
                Ok(Err(e)) => {
                    drop(s);
                    shared.lost("echo connection", e);
                    continue 'connection;
                }
                Err(_) => s.echo_timeouts += 1,
            }
        }
        crate::client::close(ws, Duration::from_secs(5)).await;
        shared.stats.borrow_mut().open -= 1;
    }
    Ok(())
}

/// The publisher: `rate` publishes per second over the topics in turn, open loop; acks and
/// errors are read on the side.
async fn publisher(shared: Rc<Shared>, rate: f64, mut stop: watch::Receiver<bool>) -> Result<()> {
    let mut next_topic = 0usize;
    let mut ready = false;
    while !*stop.borrow() {
        let Some(ws) = shared.open(None, &mut ready).await else {
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(RETRY_PAUSE) => continue,
            }
        };
        let (mut sink, mut stream) = ws.split();
        let reader = async {
            loop {
                match stream.next().await {
                    Some(Ok(m)) if m.is_text() || m.is_binary() => {
                        if json::is_error(m.as_payload()) {
                            shared.stats.borrow_mut().error_replies += 1;
                        }
                    }
                    Some(Ok(m)) if m.is_close() => return "server closed".to_owned(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return e.to_string(),
                    None => return "connection ended".to_owned(),
                }
            }
        };
        tokio::pin!(reader);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let lost = loop {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break None,
                e = &mut reader => break Some(e),
                _ = tick.tick() => {}
            }
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            let mut failed = None;
            while sent < due {
                sent += 1;
                let topic = next_topic % shared.topics;
                next_topic += 1;
                let text = format!(
                    r#"{{"action":"pub","topic":"topic-{topic}","t":{}}}"#,
                    now_us()
                );
                if let Err(e) = sink.feed(Message::text(text)).await {
                    failed = Some(e.to_string());
                    break;
                }
                shared.stats.borrow_mut().publishes += 1;
            }
            if let Err(e) = sink.flush().await {
                failed.get_or_insert(e.to_string());
            }
            if failed.is_some() {
                break failed;
            }
        };
        match lost {
            Some(e) => shared.lost("publisher", e),
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
                shared.stats.borrow_mut().open -= 1;
            }
        }
    }
    Ok(())
}
