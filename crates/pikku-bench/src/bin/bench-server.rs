//! `bench-server --port <P> [--hub <url>]`: the bench contract built on the pikku framework.
//!
//! CONTRACT (other programs load this server with their own clients, keep it exact):
//!
//! - Serves one channel named `bench` at the path `/bench`, `auth` false, routing property
//!   `action`, on `127.0.0.1:<P>` (`--port 0` picks a free port; print the bound address).
//! - `echo`: returns its input unchanged, so `{"action":"echo","seq":1,"t":5,"p":"xx"}` is
//!   answered `{"seq":1,"t":5,"p":"xx","action":"echo"}`.
//! - `sub` `{topic}`: subscribes this channel to `topic`; no output, so the reply is
//!   `{"action":"sub"}`.
//! - `pub` `{topic, t}`: publishes `{"topic":<topic>,"data":{"t":<t>}}` to `topic` excluding the
//!   sender; no output, so the reply is `{"action":"pub"}`.
//! - `--hub <url>` selects the event-hub backend by URL: `memory` (the default) is the in-process
//!   hub; `redis://…`, `redis+cluster://…`, `nats://…` and `postgres://…` share topics with every
//!   other node on the same broker.
//!   An unknown or malformed URL exits with status 64 before listening.
//! - Runs until SIGTERM (from `bench/run.sh`) or SIGINT, then shuts down gracefully: open
//!   connections close with 1001 `going away`, and the process exits with status 0 at once when
//!   none is open, within the 5 s shutdown timeout otherwise. Logs errors to stderr only (the
//!   `idle` 19,000-connection run checks the log for errors).
//! - `bench/run.sh` treats exit status 2 at startup as "framework pending" and skips the
//!   framework rows; once this binary serves, the script measures it against
//!   `baseline-server` with the same load.
//!
//! `--threads N` runs N Tokio worker threads (default 1: a current-thread runtime, as the server is pinned to
//! one core by `bench/run.sh`).
//!
//! For measuring what observability costs (not used by `bench/run.sh`): `--metrics` installs the Prometheus
//! recorder before the app is built (the page is served on `/metrics`), and `--log <filter>` installs a
//! `tracing` fmt subscriber writing to stderr with that filter (`info` creates the handler spans).

use std::process::ExitCode;
use std::time::Duration;

use pikku::prelude::*;
use pikku::HubUrlExt;
use pikku_bench::app::app;

/// How long a shutdown waits for open connections to finish closing.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench-server --port <P> [--hub memory|<broker url>] [--threads N] [--metrics] [--log <filter>]"
    );
    ExitCode::from(64)
}

fn main() -> ExitCode {
    let mut port: Option<u16> = None;
    let mut threads = 1usize;
    let mut hub = String::from("memory");
    let mut metrics = false;
    let mut log = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--metrics" {
            metrics = true;
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = Some(p),
                Err(_) => return usage(),
            },
            ("--threads", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => threads = n,
                _ => return usage(),
            },
            ("--hub", Some(url)) => hub = url,
            ("--log", Some(filter)) => log = Some(filter),
            _ => return usage(),
        }
    }
    let Some(port) = port else { return usage() };
    if let Some(filter) = log {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    // Before the app is built: its metric handles are resolved then.
    if metrics {
        if let Err(err) = pikku::metrics::install_prometheus() {
            eprintln!("bench-server: --metrics: {err}");
            return ExitCode::FAILURE;
        }
    }
    let app = match app().hub_url(&hub) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("bench-server: --hub {hub}: {err}");
            return ExitCode::from(64);
        }
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("bench-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        // Before "listening on": whoever reads that line may send SIGTERM at once.
        let stop = pikku::shutdown_signal();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        // Connected to the broker (or known to be down) before "listening on", so a load generator that starts
        // on that line finds the cluster formed.
        app.hub().start().await.map_err(std::io::Error::other)?;
        println!("listening on {}", listener.local_addr()?);
        let config = ServerConfig {
            // `bench/run.sh` waits for the process after SIGTERM: keep that wait short.
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            ..ServerConfig::default()
        };
        let server = ChannelServer::new(app, config);
        server.serve_with_shutdown(listener, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-server: {err}");
            ExitCode::FAILURE
        }
    }
}
