//! `flood`: one client publishing to a busy topic at a fixed rate, and what that does to everyone
//! else.
//!
//! - `--subscribers` (1000) connections subscribe to `--flood-topic` (`flood`) with
//!   `--sub-message` (the bench contract's `sub`; give `""` for servers that subscribe on connect,
//!   such as the chat demo's rooms) and count what they receive.
//! - One flooder sends `--flood-message` (`{"action":"pub","topic":"{topic}","t":{t}}`) at
//!   `--flood-rate` messages per second (4500), open loop: paced by the clock, never waiting for
//!   replies. It counts accepted replies (those with an `action` and no `errorName`), error frames,
//!   and whether and with which code the server closed it.
//! - Two bystanders on `--bystander-url` (the `--url` by default): one sends `--echo-message`
//!   (`{"action":"echo","seq":{seq},"t":{t}}`) every `--echo-every-ms` (5), one in flight, and times
//!   the reply that carries its `{t}` back (for the chat demo, its own `say` coming back through
//!   its room); the other opens a fresh connection every `--connect-every-ms` (100) and times the
//!   upgrade. They run on their own thread, so the subscribers' reading does not delay them.
//!
//! The bystanders are measured for `--warmup` seconds before the flood (`quiet_*`) and for
//! `--duration` seconds during it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::StreamExt;
use futures_util::SinkExt;
use tokio::sync::watch;
use tokio_websockets::Message;

use super::{join_all, read_deliveries, report_failures, stopped, Common, Ended, Stop};
use crate::args::Args;
use crate::client::{next_data, Connector, Ws};
use crate::clock::now_us;
use crate::json;
use crate::procstat::Meter;
use crate::report::{Latency, Report};
use crate::template::{contains_number, Template, Vars};
use crate::Result;

/// The default `--flood-message`: the bench contract's publish.
pub const DEFAULT_FLOOD_MESSAGE: &str = r#"{"action":"pub","topic":"{topic}","t":{t}}"#;
/// The default `--sub-message`: the bench contract's subscribe.
pub const DEFAULT_SUB_MESSAGE: &str = r#"{"action":"sub","topic":"{topic}"}"#;
/// The default `--echo-message`: the bench contract's echo.
pub const DEFAULT_ECHO_MESSAGE: &str = r#"{"action":"echo","seq":{seq},"t":{t}}"#;

/// How long a bystander waits for its echo before counting a timeout.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

const QUIET: u8 = 0;
const FLOOD: u8 = 1;
const DONE: u8 = 2;

/// What the subscribers and the flooder saw.
#[derive(Debug, Default)]
struct FloodStats {
    deliveries: u64,
    delivery_latency: Latency,
    subscriber_errors: u64,
    subscriber_closes: BTreeMap<String, u64>,
    sent: u64,
    accepted: u64,
    error_frames: u64,
    other: u64,
    /// Set when the server ended the flooder: close code (`None`: no close frame), seconds into
    /// the flood.
    flooder_closed: Option<(Option<u16>, f64)>,
}

/// What the bystanders saw, per phase.
#[derive(Debug, Default)]
struct Bystanders {
    echo: [Latency; 2],
    connect: [Latency; 2],
    echo_timeouts: u64,
    echo_errors: u64,
    echo_reconnects: u64,
    connect_errors: u64,
    first_error: Option<String>,
}

/// The bystanders' settings (moved to their thread).
#[derive(Debug, Clone)]
struct BystanderConfig {
    url: String,
    source_ips: u8,
    echo: Template,
    echo_every: Duration,
    connect_every: Duration,
}

/// Runs the scenario (flags in the module docs).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let subscribers: usize = args.get("subscribers", 1000)?;
    let topic: String = args.get("flood-topic", "flood".to_owned())?;
    let rate: f64 = args.get("flood-rate", 4500.0)?;
    let flood = Template::parse(&args.get("flood-message", DEFAULT_FLOOD_MESSAGE.to_owned())?)?;
    let sub_source: String = args.get("sub-message", DEFAULT_SUB_MESSAGE.to_owned())?;
    let sub = (!sub_source.is_empty())
        .then(|| Template::parse(&sub_source))
        .transpose()?;
    let bystander = BystanderConfig {
        url: args.get("bystander-url", common.url.clone())?,
        source_ips: common.source_ips,
        echo: Template::parse(&args.get("echo-message", DEFAULT_ECHO_MESSAGE.to_owned())?)?,
        echo_every: Duration::from_millis(args.get("echo-every-ms", 5)?),
        connect_every: Duration::from_millis(args.get("connect-every-ms", 100)?.max(1)),
    };
    args.finish()?;
    if !bystander.echo.uses_time() {
        return Err("--echo-message must carry {t}, so its reply can be recognised".into());
    }
    if rate <= 0.0 {
        return Err("--flood-rate must be positive".into());
    }

    let connector = Connector::new(&common.url, common.source_ips).await?;
    let (sub_ref, topic_ref) = (&sub, topic.as_str());
    let subs = connector
        .open_many(subscribers, 64, |i, mut ws| async move {
            if let Some(sub) = sub_ref {
                let vars = Vars {
                    topic: topic_ref,
                    conn: i as u64,
                    t: now_us(),
                    ..Vars::default()
                };
                crate::client::send_text(&mut ws, sub.render(&vars)).await?;
                let reply = next_data(&mut ws).await?;
                if json::is_error(&reply) {
                    return Err(
                        format!("subscribe refused: {}", String::from_utf8_lossy(&reply)).into(),
                    );
                }
            }
            Ok(ws)
        })
        .await?;
    let flooder = connector.connect().await?;

    let stats = Rc::new(RefCell::new(FloodStats::default()));
    let stop = Stop::new();
    let mut tasks: Vec<_> = subs
        .into_iter()
        .map(|ws| tokio::task::spawn_local(subscriber(ws, stats.clone(), stop.watch())))
        .collect();

    // The bystanders: connected and measuring the quiet phase before the flood starts.
    let phase = Arc::new(AtomicU8::new(QUIET));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = {
        let phase = phase.clone();
        std::thread::Builder::new()
            .name("bystanders".into())
            .spawn(move || {
                let result = run_bystanders(bystander, phase, ready_tx);
                let _ = done_tx.send(result);
            })?
    };
    ready_rx
        .await
        .map_err(|_| "the bystanders could not connect")?;
    tokio::time::sleep(common.warmup).await;

    phase.store(FLOOD, Ordering::Relaxed);
    let meter = Meter::start(common.server.as_ref());
    let flood_started = Instant::now();
    let topic: Rc<str> = topic.into();
    let (sink, stream) = flooder.split();
    tasks.push(tokio::task::spawn_local(flood_writer(
        sink,
        flood,
        topic.clone(),
        rate,
        stats.clone(),
        stop.watch(),
    )));
    let reader = tokio::task::spawn_local(flood_reader(
        stream,
        flood_started,
        stats.clone(),
        stop.watch(),
    ));
    tokio::time::sleep(common.duration).await;
    let measured = meter.stop();
    phase.store(DONE, Ordering::Relaxed);
    stop.stop();
    let s = std::mem::take(&mut *stats.borrow_mut());
    let (failures, first) = join_all(tasks, Duration::from_secs(5)).await;
    reader.abort();
    let b = done_rx
        .await
        .map_err(|_| "the bystander thread ended without a result")??;
    let _ = thread.join();

    let mut report = Report::new("flood");
    report
        .set("subscribers", subscribers)
        .set("flood_topic", &*topic)
        .set_f("flood_rate_target", rate, 1)
        .measured(&measured, "delivery", "deliveries", s.deliveries)
        .latency("delivery", &s.delivery_latency)
        .set("publishes_sent", s.sent)
        .set_f(
            "publishes_sent_per_s",
            s.sent as f64 / measured.elapsed_s,
            1,
        )
        .set("publishes_accepted", s.accepted)
        .set("flooder_error_frames", s.error_frames)
        .set("flooder_other_messages", s.other)
        .set("flooder_closed", s.flooder_closed.is_some());
    if let Some((code, after)) = s.flooder_closed {
        report
            .set("flooder_close_code", code)
            .set_f("flooder_closed_after_s", after, 3);
    }
    let closed: u64 = s.subscriber_closes.values().sum();
    report
        .set("subscribers_closed", closed)
        .set(
            "subscriber_close_codes",
            serde_json::to_value(&s.subscriber_closes).unwrap_or_default(),
        )
        .set("subscriber_error_frames", s.subscriber_errors)
        .latency("quiet_echo", &b.echo[0])
        .latency("echo", &b.echo[1])
        .set("echo_timeouts", b.echo_timeouts)
        .set("echo_error_replies", b.echo_errors)
        .set("echo_reconnects", b.echo_reconnects)
        .latency("quiet_connect", &b.connect[0])
        .latency("connect", &b.connect[1])
        .set("connect_errors", b.connect_errors);
    let bystander_failures = b.echo_timeouts + b.echo_reconnects + b.connect_errors;
    report_failures(
        &mut report,
        failures + bystander_failures,
        first.or(b.first_error),
    );
    Ok(report)
}

async fn subscriber(
    mut ws: Ws,
    stats: Rc<RefCell<FloodStats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let ended = read_deliveries(&mut ws, &mut stop, |msg, now| {
        let mut s = stats.borrow_mut();
        if json::is_error(msg) {
            s.subscriber_errors += 1;
        } else {
            s.deliveries += 1;
            if let Some(t) = json::u64_field(msg, "t") {
                s.delivery_latency.record(now.saturating_sub(t));
            }
        }
    })
    .await;
    let code = match ended {
        Ended::Stopped => {
            crate::client::close(ws, Duration::from_secs(2)).await;
            return Ok(());
        }
        Ended::Closed(Some(code)) => code.to_string(),
        Ended::Closed(None) | Ended::Failed(_) => "none".into(),
    };
    *stats
        .borrow_mut()
        .subscriber_closes
        .entry(code)
        .or_default() += 1;
    Ok(())
}

/// Sends the flood at `rate` per second: every millisecond, whatever the schedule says is due.
async fn flood_writer(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    template: Template,
    topic: Rc<str>,
    rate: f64,
    stats: Rc<RefCell<FloodStats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            _ = tick.tick() => {}
        }
        if stats.borrow().flooder_closed.is_some() {
            // Closed by the server: stop counting sends that cannot arrive.
            return Ok(());
        }
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        if sent >= due {
            continue;
        }
        while sent < due {
            sent += 1;
            let vars = Vars {
                t: now_us(),
                seq: sent,
                topic: &topic,
                ..Vars::default()
            };
            if sink
                .feed(Message::text(template.render(&vars)))
                .await
                .is_err()
            {
                // The server ended the connection; the reader records how.
                stats.borrow_mut().sent = sent;
                return Ok(());
            }
        }
        stats.borrow_mut().sent = sent;
        if sink.flush().await.is_err() {
            return Ok(());
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    Ok(())
}

async fn flood_reader(
    mut stream: futures_util::stream::SplitStream<Ws>,
    started: Instant,
    stats: Rc<RefCell<FloodStats>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            m = stream.next() => m,
        };
        let mut s = stats.borrow_mut();
        match item {
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                let msg = m.as_payload();
                if json::is_error(msg) {
                    s.error_frames += 1;
                } else if json::str_field(msg, "action").is_some() {
                    s.accepted += 1;
                } else {
                    s.other += 1;
                }
            }
            Some(Ok(m)) if m.is_close() => {
                let code = m.as_close().map(|(c, _)| u16::from(c));
                s.flooder_closed = Some((code, started.elapsed().as_secs_f64()));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                s.flooder_closed = Some((None, started.elapsed().as_secs_f64()));
                return;
            }
        }
    }
}

/// The bystanders' thread: its own runtime, so the subscribers' work does not delay its timers.
fn run_bystanders(
    cfg: BystanderConfig,
    phase: Arc<AtomicU8>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<Bystanders> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let connector = Connector::new(&cfg.url, cfg.source_ips).await?;
        let mut ws = connector.connect().await?;
        let _ = ready.send(());
        let stats = RefCell::new(Bystanders::default());
        let echo = async {
            let mut tick = tokio::time::interval(cfg.echo_every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0u64;
            loop {
                tick.tick().await;
                let p = phase.load(Ordering::Relaxed);
                if p == DONE {
                    break;
                }
                seq += 1;
                match echo_once(&mut ws, &cfg.echo, seq).await {
                    Ok((us, errors)) => {
                        let mut s = stats.borrow_mut();
                        s.echo[usize::from(p)].record(us);
                        s.echo_errors += errors;
                    }
                    Err(EchoError::Timeout) => stats.borrow_mut().echo_timeouts += 1,
                    Err(EchoError::Closed(e)) => {
                        {
                            let mut s = stats.borrow_mut();
                            s.echo_reconnects += 1;
                            s.first_error.get_or_insert(e);
                        }
                        match connector.connect().await {
                            Ok(fresh) => ws = fresh,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            Ok(())
        };
        let connect = async {
            let mut tick = tokio::time::interval(cfg.connect_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let p = phase.load(Ordering::Relaxed);
                if p == DONE {
                    break;
                }
                let started = Instant::now();
                match connector.connect().await {
                    Ok(fresh) => {
                        let us = started.elapsed().as_micros() as u64;
                        stats.borrow_mut().connect[usize::from(p)].record(us);
                        crate::client::close(fresh, Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        let mut s = stats.borrow_mut();
                        s.connect_errors += 1;
                        s.first_error.get_or_insert(e.to_string());
                    }
                }
            }
        };
        let (echoed, ()) = tokio::join!(echo, connect);
        echoed?;
        Ok(stats.into_inner())
    })
}

#[derive(Debug)]
enum EchoError {
    Timeout,
    Closed(String),
}

/// Sends one echo and waits for the message that carries its `{t}` back; returns the round trip
/// in µs and how many error frames came meanwhile.
async fn echo_once(ws: &mut Ws, template: &Template, seq: u64) -> Result<(u64, u64), EchoError> {
    let t = now_us();
    let text = template.render(&Vars {
        t,
        seq,
        ..Vars::default()
    });
    crate::client::send_text(ws, text)
        .await
        .map_err(|e| EchoError::Closed(e.to_string()))?;
    let mut errors = 0;
    tokio::time::timeout(ECHO_TIMEOUT, async {
        loop {
            let reply = next_data(ws)
                .await
                .map_err(|e| EchoError::Closed(e.to_string()))?;
            if json::is_error(&reply) {
                errors += 1;
            } else if contains_number(&reply, t) {
                return Ok((now_us().saturating_sub(t), errors));
            }
        }
    })
    .await
    .map_err(|_| EchoError::Timeout)?
}
