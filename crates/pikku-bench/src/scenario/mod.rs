//! The load scenarios and what they share: common flags, the runtime, stop signalling.
//!
//! Every scenario runs on one current-thread tokio runtime (the script pins it to CPU 1), stops by
//! itself and returns a [`Report`] whose last line is `RESULT {json}`.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::args::Args;
use crate::procstat::Proc;
use crate::report::Report;
use crate::Result;

pub mod attack;
pub mod broadcast;
pub mod connect;
pub mod echo;
pub mod fanout;
pub mod flood;
pub mod idle;
pub mod soak;

/// The scenario names, as given on the command line.
pub const NAMES: [&str; 8] = [
    "echo",
    "fanout",
    "idle",
    "connect",
    "attack",
    "flood",
    "soak",
    "broadcast",
];

/// Flags every scenario takes.
#[derive(Debug, Clone)]
pub struct Common {
    /// `--url`: the bench channel, `ws://127.0.0.1:PORT/bench` by default.
    pub url: String,
    /// `--server-pid`: the server process whose CPU and RSS are read.
    pub server: Option<Proc>,
    /// `--duration` seconds: the measured window (for `idle`, how long connections sit idle).
    pub duration: Duration,
    /// `--warmup` seconds: load before the measured window.
    pub warmup: Duration,
    /// `--source-ips`: loopback source addresses to spread client sockets over.
    pub source_ips: u8,
}

impl Common {
    /// Takes the common flags from `args`.
    pub fn from_args(args: &mut Args) -> Result<Self> {
        let secs = |v: f64, name: &str| -> Result<Duration> {
            Duration::try_from_secs_f64(v).map_err(|e| format!("--{name}: {e}").into())
        };
        Ok(Self {
            url: args.get("url", "ws://127.0.0.1:8080/bench".to_owned())?,
            server: args.opt::<u32>("server-pid")?.map(Proc::pid),
            duration: secs(args.get("duration", 5.0)?, "duration")?,
            warmup: secs(args.get("warmup", 1.0)?, "warmup")?,
            source_ips: args.get("source-ips", 16)?,
        })
    }

    /// Adds the common settings to a report.
    ///
    /// `attack` has no measured window (it holds for `--hold`), `soak` reports its own duration,
    /// and only the windowed scenarios have a warmup.
    fn describe(&self, report: &mut Report) {
        report.set("url", self.url.as_str());
        let scenario = report
            .get("scenario")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let windowed = !matches!(scenario, "idle" | "attack" | "soak" | "broadcast");
        if !matches!(scenario, "attack" | "broadcast") && report.get("duration_s").is_none() {
            report.set_f("duration_s", self.duration.as_secs_f64(), 3);
        }
        if windowed {
            report.set_f("warmup_s", self.warmup.as_secs_f64(), 3);
        }
    }
}

/// Runs scenario `name` with `args` on a fresh current-thread runtime.
pub fn run(name: &str, mut args: Args) -> Result<Report> {
    let common = Common::from_args(&mut args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let mut report = local.block_on(&rt, async move {
        match name {
            "echo" => echo::run(&common, args).await,
            "fanout" => fanout::run(&common, args).await,
            "idle" => idle::run(&common, args).await,
            "connect" => connect::run(&common, args).await,
            "attack" => attack::run(&common, args).await,
            "flood" => flood::run(&common, args).await,
            "soak" => soak::run(&common, args).await,
            "broadcast" => broadcast::run(&common, args).await,
            other => {
                Err(format!("unknown scenario `{other}` (one of {})", NAMES.join(", ")).into())
            }
        }
        .map(|mut r| {
            common.describe(&mut r);
            r
        })
    })?;
    report.set(
        "ok",
        report.get("failures").and_then(|v| v.as_u64()) == Some(0),
    );
    Ok(report)
}

/// The stop signal a scenario's tasks watch.
#[derive(Debug)]
pub(crate) struct Stop {
    tx: watch::Sender<bool>,
}

impl Stop {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// A handle for one task.
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Signals every task.
    pub(crate) fn stop(&self) {
        self.tx.send_replace(true);
    }
}

/// Resolves once `rx` has seen the stop signal.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&s| s).await;
}

/// How a subscriber's stream ended (see [`read_deliveries`]).
pub(crate) enum Ended {
    /// The scenario stopped it; the connection is still open.
    Stopped,
    /// The server sent a close frame, with this code if it had one.
    Closed(Option<u16>),
    /// The connection failed or ended without a close frame.
    Failed(String),
}

/// Reads a subscriber's frames until `stop`, handing every text or binary payload to `on_data`
/// with the µs clock at its arrival.
pub(crate) async fn read_deliveries(
    ws: &mut crate::client::Ws,
    stop: &mut watch::Receiver<bool>,
    mut on_data: impl FnMut(&[u8], u64),
) -> Ended {
    loop {
        let item = tokio::select! {
            biased;
            () = stopped(stop) => return Ended::Stopped,
            m = ws.next() => m,
        };
        match item {
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                on_data(m.as_payload(), crate::clock::now_us());
            }
            Some(Ok(m)) if m.is_close() => {
                return Ended::Closed(m.as_close().map(|(code, _)| u16::from(code)));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ended::Failed(e.to_string()),
            None => return Ended::Failed("the stream ended without a close frame".into()),
        }
    }
}

/// Waits for the tasks to end, at most `limit` in all, aborting the rest; returns how many
/// failed or were aborted and the first error.
pub(crate) async fn join_all(
    tasks: Vec<JoinHandle<Result<()>>>,
    limit: Duration,
) -> (u64, Option<String>) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut failures = 0;
    let mut first = None;
    for task in tasks {
        let abort = task.abort_handle();
        let err = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => continue,
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(join)) => join.to_string(),
            Err(_) => {
                abort.abort();
                "task did not stop in time".to_owned()
            }
        };
        failures += 1;
        first.get_or_insert(err);
    }
    (failures, first)
}

/// Records a task outcome into a report: `failures` and, when any, `first_failure`.
pub(crate) fn report_failures(report: &mut Report, failures: u64, first: Option<String>) {
    report.set("failures", failures);
    if let Some(e) = first {
        report.set("first_failure", e);
    }
}
