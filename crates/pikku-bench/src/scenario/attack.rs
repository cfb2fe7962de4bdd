//! `attack`: what hostile clients cost the server in memory, one `--mode` at a time.
//!
//! - `header`: `--connections` connections complete the upgrade, then each sends only the
//!   14-byte header of a masked text frame declaring `--declared-bytes` (1,000,000) of payload,
//!   and nothing more.
//! - `partial`: each sends the header of a `--frame-bytes` (1 MiB) text frame and
//!   `--partial-bytes` of its payload (all but the last byte), then stalls.
//! - `drip`: each sends a frame header, then one payload byte every `--drip-ms` (1000): it shows
//!   whether and when the server closes connections that never finish a frame.
//! - `json-hold`: `--connections` (1) well-formed connections each send `--messages` (4)
//!   messages from the `--message` template, whose `{payload}` is a JSON array of small numbers
//!   of `--payload` bytes (2 MiB), as fast as they can, linger `--linger-ms`, then drop the
//!   connection without a close handshake. The server's RSS is sampled every 10 ms for the peak.
//!
//! Every mode holds the attack for `--hold` seconds (10) before the server's RSS and open file
//! descriptors are read, and reports which connections the server closed, when, and with which
//! close code. Connections are opened `--concurrency` (64) at a time. The client needs one file
//! descriptor per connection and cannot raise its own limit: run it under a high `ulimit -n`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_websockets::Message;

use super::{report_failures, Common, Stop};
use crate::args::Args;
use crate::client::Connector;
use crate::procstat::Proc;
use crate::raw::{self, Closed};
use crate::report::Report;
use crate::template::{number_array, Template, Vars};
use crate::Result;

/// The modes, as given to `--mode`.
pub const MODES: [&str; 4] = ["header", "partial", "drip", "json-hold"];

/// The default `--message` of `json-hold`: the bench contract's echo, which parses the whole
/// message into a JSON value and sends it back.
pub const DEFAULT_JSON_MESSAGE: &str = r#"{"action":"echo","seq":{seq},"p":{payload}}"#;

/// Server RSS and open file descriptors at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    rss_kib: u64,
    fds: u64,
}

fn read_server(server: Option<&Proc>) -> Option<Reading> {
    let p = server?;
    Some(Reading {
        rss_kib: p.sample()?.rss_kib,
        fds: p.fd_count()?,
    })
}

/// When and how the server closed the attacking connections.
#[derive(Debug, Default)]
struct Closes {
    /// Seconds from the connection's first attack byte to the close.
    after_s: Vec<f64>,
    codes: BTreeMap<String, u64>,
}

impl Closes {
    fn record(&mut self, since: Instant, closed: Closed) {
        self.after_s.push(since.elapsed().as_secs_f64());
        let code = closed
            .code
            .map_or_else(|| "none".to_owned(), |c| c.to_string());
        *self.codes.entry(code).or_default() += 1;
    }

    fn report(&self, report: &mut Report) {
        let mut sorted = self.after_s.clone();
        sorted.sort_by(f64::total_cmp);
        report.set("closed_by_server", sorted.len()).set(
            "close_codes",
            serde_json::to_value(&self.codes).unwrap_or_default(),
        );
        if !sorted.is_empty() {
            report
                .set_f("close_after_p50_s", nearest_rank(&sorted, 0.5), 3)
                .set_f("close_after_max_s", sorted[sorted.len() - 1], 3);
        }
    }
}

/// The nearest-rank quantile `q` of sorted, non-empty `values`.
fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Runs the scenario: `--mode` (required), `--connections`, `--hold` seconds, `--concurrency`,
/// and the mode's own flags (see the module docs).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let mode: String = args.required("mode")?;
    let default_connections = if mode == "json-hold" { 1 } else { 1000 };
    let connections: usize = args.get("connections", default_connections)?;
    let hold =
        Duration::try_from_secs_f64(args.get("hold", 10.0)?).map_err(|e| format!("--hold: {e}"))?;
    let concurrency: usize = args.get("concurrency", 64)?;
    if connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let connector = Connector::new(&common.url, common.source_ips).await?;
    let mut report = Report::new("attack");
    report
        .set("mode", mode.as_str())
        .set("connections", connections)
        .set_f("hold_s", hold.as_secs_f64(), 3);
    let server = common.server.as_ref();
    match mode.as_str() {
        "header" | "partial" => {
            let plan = if mode == "header" {
                let declared: usize = args.get("declared-bytes", 1_000_000)?;
                args.finish()?;
                report.set("declared_bytes", declared);
                Plan::header(declared)
            } else {
                let frame: usize = args.get("frame-bytes", 1 << 20)?;
                let partial: usize = args.get("partial-bytes", frame.saturating_sub(1))?;
                let write_timeout: f64 = args.get("write-timeout", 10.0)?;
                args.finish()?;
                if partial > frame {
                    return Err("--partial-bytes cannot exceed --frame-bytes".into());
                }
                report
                    .set("frame_bytes", frame)
                    .set("partial_bytes", partial);
                Plan::partial(frame, partial, Duration::try_from_secs_f64(write_timeout)?)
            };
            let before = read_server(server);
            let conns = open_raw(&connector, connections, concurrency, &mut report).await;
            stall(server, before, conns, &plan, hold, concurrency, &mut report).await;
        }
        "drip" => {
            let declared: usize = args.get("declared-bytes", 1_000_000)?;
            let drip_ms: u64 = args.get("drip-ms", 1000)?;
            args.finish()?;
            report
                .set("declared_bytes", declared)
                .set("drip_ms", drip_ms);
            let before = read_server(server);
            let conns = open_raw(&connector, connections, concurrency, &mut report).await;
            drip(
                server,
                before,
                conns,
                declared,
                Duration::from_millis(drip_ms.max(1)),
                hold,
                &mut report,
            )
            .await;
        }
        "json-hold" => {
            let messages: usize = args.get("messages", 4)?;
            let payload: usize = args.get("payload", 2 << 20)?;
            let template = Template::parse(&args.get("message", DEFAULT_JSON_MESSAGE.to_owned())?)?;
            let linger_ms: u64 = args.get("linger-ms", 200)?;
            args.finish()?;
            report
                .set("messages", messages)
                .set("payload_bytes", payload)
                .set("message_template", template.source())
                .set("linger_ms", linger_ms);
            let job = JsonHold {
                connections,
                messages,
                template,
                payload: number_array(payload),
                linger: Duration::from_millis(linger_ms),
                hold,
            };
            job.run(&connector, server, &mut report).await?;
            report_failures(&mut report, 0, None);
        }
        other => {
            return Err(format!("unknown --mode `{other}` (one of {})", MODES.join(", ")).into())
        }
    }
    Ok(report)
}

/// Opens `n` hand-made connections, `concurrency` at a time; failed upgrades are counted in the
/// report's `failures` (the run goes on with the others).
async fn open_raw(
    connector: &Connector,
    n: usize,
    concurrency: usize,
    report: &mut Report,
) -> Vec<TcpStream> {
    let started = Instant::now();
    let results: Vec<Result<TcpStream>> = stream::iter(0..n)
        .map(|_| raw::upgrade(connector))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0u64;
    let mut first = None;
    for r in results {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    report
        .set("opened", conns.len())
        .set_f("setup_s", started.elapsed().as_secs_f64(), 3);
    report_failures(report, failed, first);
    conns
}

/// The bytes every connection of `header` or `partial` sends before it stalls.
#[derive(Debug)]
struct Plan {
    bytes: Vec<u8>,
    write_timeout: Duration,
}

impl Plan {
    fn header(declared: usize) -> Self {
        Self {
            bytes: raw::text_header(declared),
            write_timeout: Duration::from_secs(10),
        }
    }

    /// The header of a `frame`-byte text frame holding a JSON echo request padded to size, cut
    /// after `partial` payload bytes.
    fn partial(frame: usize, partial: usize, write_timeout: Duration) -> Self {
        let (head, tail) = (br#"{"action":"echo","p":""#, br#""}"#);
        let mut payload = Vec::with_capacity(frame);
        payload.extend_from_slice(head);
        payload.resize(frame.saturating_sub(tail.len()), b'x');
        payload.extend_from_slice(tail);
        payload.truncate(frame);
        let mut bytes = raw::text_header(frame);
        bytes.extend_from_slice(&raw::masked(&payload[..partial]));
        Self {
            bytes,
            write_timeout,
        }
    }
}

/// `header` and `partial`: every connection sends the plan's bytes and stalls; after `hold` the
/// server is read again.
async fn stall(
    server: Option<&Proc>,
    before: Option<Reading>,
    conns: Vec<TcpStream>,
    plan: &Plan,
    hold: Duration,
    concurrency: usize,
    report: &mut Report,
) {
    let upgraded = read_server(server);
    let closes = Rc::new(RefCell::new(Closes::default()));
    let started = Instant::now();
    let mut writers: Vec<OwnedWriteHalf> = Vec::with_capacity(conns.len());
    let mut watchers = Vec::with_capacity(conns.len());
    for tcp in conns {
        let (read, write) = tcp.into_split();
        writers.push(write);
        let closes = closes.clone();
        watchers.push(tokio::task::spawn_local(async move {
            let closed = raw::watch_close(read).await;
            closes.borrow_mut().record(started, closed);
        }));
    }
    let written: Vec<usize> = stream::iter(writers.iter_mut())
        .map(|w| raw::write_until(w, &plan.bytes, 64 * 1024, plan.write_timeout))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let attack_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let after = read_server(server);

    let total: usize = written.iter().sum();
    let stalled = written.iter().filter(|&&w| w < plan.bytes.len()).count();
    report
        .set("bytes_per_conn", plan.bytes.len())
        .set("bytes_written", total)
        .set("stalled_writes", stalled)
        .set_f("attack_s", attack_s, 3);
    memory(report, [before, upgraded, after], writers.len());
    closes.borrow().report(report);
    for w in watchers {
        w.abort();
    }
}

/// Adds the RSS and fd readings: before any connection was opened, once they are upgraded
/// (before the attack bytes), after the hold, and what they mean per attacking connection (with
/// and without the cost of the upgraded connection itself).
fn memory(report: &mut Report, readings: [Option<Reading>; 3], n: usize) {
    let [Some(before), Some(upgraded), Some(after)] = readings else {
        return;
    };
    let n = n.max(1) as f64;
    let growth = after.rss_kib as f64 - before.rss_kib as f64;
    let attack = after.rss_kib as f64 - upgraded.rss_kib as f64;
    report
        .set("server_rss_before_kib", before.rss_kib)
        .set("server_rss_upgraded_kib", upgraded.rss_kib)
        .set("server_rss_after_kib", after.rss_kib)
        .set_f("rss_growth_kib", growth, 0)
        .set_f("rss_growth_mib", growth / 1024.0, 2)
        .set_f("rss_per_conn_bytes", growth * 1024.0 / n, 0)
        .set_f("rss_per_conn_kib", growth / n, 2)
        .set_f("attack_rss_per_conn_kib", attack / n, 2)
        .set("server_fds_before", before.fds)
        .set("server_fds_upgraded", upgraded.fds)
        .set("server_fds_after", after.fds);
}

/// `drip`: a frame header, then one byte per `every` on every connection until `hold` ends.
async fn drip(
    server: Option<&Proc>,
    before: Option<Reading>,
    conns: Vec<TcpStream>,
    declared: usize,
    every: Duration,
    hold: Duration,
    report: &mut Report,
) {
    let upgraded = read_server(server);
    let closes = Rc::new(RefCell::new(Closes::default()));
    let dripped = Rc::new(Cell::new(0u64));
    let stop = Stop::new();
    let n = conns.len();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|tcp| {
            let (closes, dripped, mut stop) = (closes.clone(), dripped.clone(), stop.watch());
            tokio::task::spawn_local(async move {
                use tokio::io::AsyncWriteExt;
                let (read, mut write) = tcp.into_split();
                let started = Instant::now();
                let watcher = raw::watch_close(read);
                tokio::pin!(watcher);
                if write.write_all(&raw::text_header(declared)).await.is_err() {
                    closes.borrow_mut().record(started, Closed { code: None });
                    return;
                }
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                for i in 0..declared {
                    tokio::select! {
                        closed = &mut watcher => {
                            closes.borrow_mut().record(started, closed);
                            return;
                        }
                        () = super::stopped(&mut stop) => return,
                        _ = tick.tick() => {
                            let byte = [b'x' ^ raw::MASK[i % 4]];
                            if write.write_all(&byte).await.is_err() {
                                closes.borrow_mut().record(started, Closed { code: None });
                                return;
                            }
                            dripped.set(dripped.get() + 1);
                        }
                    }
                }
                // The whole payload went out (a short --declared-bytes): keep watching.
                tokio::select! {
                    closed = &mut watcher => closes.borrow_mut().record(started, closed),
                    () = super::stopped(&mut stop) => {}
                }
            })
        })
        .collect();
    tokio::time::sleep(hold).await;
    let after = read_server(server);
    stop.stop();
    for t in tasks {
        let _ = t.await;
    }
    report.set("bytes_dripped", dripped.get());
    memory(report, [before, upgraded, after], n);
    let c = closes.borrow();
    c.report(report);
    report.set("still_open", n - c.after_s.len());
}

/// The `json-hold` mode's settings.
#[derive(Debug)]
struct JsonHold {
    connections: usize,
    messages: usize,
    template: Template,
    payload: String,
    linger: Duration,
    hold: Duration,
}

impl JsonHold {
    async fn run(
        &self,
        connector: &Connector,
        server: Option<&Proc>,
        report: &mut Report,
    ) -> Result<()> {
        let before = read_server(server);
        let peak = Rc::new(Cell::new(before.map_or(0, |r| r.rss_kib)));
        let stop = Stop::new();
        let sampler = server.cloned().map(|p| {
            let (peak, mut stop) = (peak.clone(), stop.watch());
            tokio::task::spawn_local(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                loop {
                    tokio::select! {
                        () = super::stopped(&mut stop) => break,
                        _ = tick.tick() => {
                            if let Some(s) = p.sample() {
                                peak.set(peak.get().max(s.rss_kib));
                            }
                        }
                    }
                }
            })
        });

        let mut conns = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            conns.push(connector.connect().await?);
        }
        let started = Instant::now();
        let replies = Cell::new(0u64);
        let closes = RefCell::new(Closes::default());
        let message_bytes = Cell::new(0usize);
        let sends = conns.into_iter().enumerate().map(|(i, mut ws)| {
            let (replies, closes, message_bytes) = (&replies, &closes, &message_bytes);
            async move {
                for seq in 0..self.messages {
                    let vars = Vars {
                        seq: seq as u64,
                        conn: i as u64,
                        payload: &self.payload,
                        t: crate::clock::now_us(),
                        ..Vars::default()
                    };
                    let text = self.template.render(&vars);
                    message_bytes.set(text.len());
                    if ws.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                // Read what comes back for a moment, then vanish without a close handshake.
                let linger = tokio::time::sleep(self.linger);
                tokio::pin!(linger);
                loop {
                    tokio::select! {
                        () = &mut linger => break,
                        m = ws.next() => match m {
                            Some(Ok(m)) if m.is_close() => {
                                let code = m.as_close().map(|(c, _)| u16::from(c));
                                closes.borrow_mut().record(started, Closed { code });
                                break;
                            }
                            Some(Ok(m)) if m.is_text() || m.is_binary() => replies.set(replies.get() + 1),
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => {
                                closes.borrow_mut().record(started, Closed { code: None });
                                break;
                            }
                        }
                    }
                }
                drop(ws);
            }
        });
        futures_util::future::join_all(sends).await;
        let sent_s = started.elapsed().as_secs_f64();
        let at_disconnect = read_server(server);
        tokio::time::sleep(self.hold).await;
        let after = read_server(server);
        stop.stop();
        if let Some(s) = sampler {
            let _ = s.await;
        }

        report
            .set("message_bytes", message_bytes.get())
            .set("messages_sent_total", self.messages * self.connections)
            .set("replies_received", replies.get())
            .set_f("send_and_linger_s", sent_s, 3);
        closes.borrow().report(report);
        if let (Some(b), Some(d), Some(a)) = (before, at_disconnect, after) {
            let peak = peak.get().max(d.rss_kib).max(a.rss_kib);
            report
                .set("server_rss_before_kib", b.rss_kib)
                .set("server_rss_peak_kib", peak)
                .set("server_rss_at_disconnect_kib", d.rss_kib)
                .set("server_rss_after_hold_kib", a.rss_kib)
                .set_f(
                    "rss_peak_growth_mib",
                    (peak as f64 - b.rss_kib as f64) / 1024.0,
                    2,
                )
                .set_f(
                    "rss_retained_mib",
                    (a.rss_kib as f64 - b.rss_kib as f64) / 1024.0,
                    2,
                )
                .set("server_fds_before", b.fds)
                .set("server_fds_after", a.fds);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_plan_is_header_plus_the_prefix() {
        let p = Plan::partial(1000, 999, Duration::from_secs(1));
        assert_eq!(p.bytes.len(), 4 + 4 + 999);
        let whole = Plan::partial(1000, 1000, Duration::from_secs(1));
        let payload = raw::masked(&whole.bytes[8..]);
        let v: serde_json::Value = serde_json::from_slice(&payload).expect("a JSON payload");
        assert_eq!(v["action"], "echo");
        assert_eq!(Plan::header(1_000_000).bytes.len(), 14);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(nearest_rank(&v, 0.5), 2.0);
        assert_eq!(nearest_rank(&v, 1.0), 4.0);
        assert_eq!(nearest_rank(&[5.0], 0.5), 5.0);
    }
}
