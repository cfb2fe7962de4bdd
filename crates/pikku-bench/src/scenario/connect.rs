//! `connect`: connection setup rate.
//!
//! `--concurrency` workers each loop: open a TCP connection, complete the WebSocket upgrade
//! (the latency recorded), then close with the close handshake. Reports connections per second
//! and the server's CPU µs per connection (setup and teardown).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{join_all, report_failures, Common, Stop};
use crate::args::Args;
use crate::client::Connector;
use crate::procstat::Meter;
use crate::report::{Latency, Report};
use crate::Result;

#[derive(Debug, Default)]
struct Stats {
    connections: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Latency,
}

/// Runs the scenario. Flags: `--concurrency` (32 connections being set up at once).
pub async fn run(common: &Common, mut args: Args) -> Result<Report> {
    let concurrency: usize = args.get("concurrency", 32)?;
    args.finish()?;

    let connector = Rc::new(Connector::new(&common.url, common.source_ips).await?);
    let stats = Rc::new(RefCell::new(Stats::default()));
    let stop = Stop::new();
    let tasks = (0..concurrency.max(1))
        .map(|_| {
            let task = worker(connector.clone(), stats.clone(), stop.watch());
            tokio::task::spawn_local(task)
        })
        .collect();

    tokio::time::sleep(common.warmup).await;
    let meter = {
        let mut s = stats.borrow_mut();
        s.connections = 0;
        s.latency.reset();
        Meter::start(common.server.as_ref())
    };
    tokio::time::sleep(common.duration).await;
    let measured = meter.stop();
    let s = std::mem::take(&mut *stats.borrow_mut());
    stop.stop();
    let (failures, first) = join_all(tasks, Duration::from_secs(5)).await;

    let mut report = Report::new("connect");
    report
        .set("concurrency", concurrency)
        .measured(&measured, "conn", "conns", s.connections)
        .latency("latency", &s.latency)
        .set("connect_errors", s.errors);
    report_failures(&mut report, failures + s.errors, first.or(s.first_error));
    Ok(report)
}

async fn worker(
    connector: Rc<Connector>,
    stats: Rc<RefCell<Stats>>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    while !*stop.borrow() {
        let started = Instant::now();
        match connector.connect().await {
            Ok(ws) => {
                let us = started.elapsed().as_micros() as u64;
                {
                    let mut s = stats.borrow_mut();
                    s.connections += 1;
                    s.latency.record(us);
                }
                crate::client::close(ws, Duration::from_secs(2)).await;
            }
            Err(e) => {
                {
                    let mut s = stats.borrow_mut();
                    s.errors += 1;
                    s.first_error.get_or_insert_with(|| e.to_string());
                }
                // Back off a little so a refusing server is not spun on.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(())
}
