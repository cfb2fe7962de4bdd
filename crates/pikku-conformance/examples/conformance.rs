//! Serves the protocol fixture (`docs/protocol.md`, *Conformance fixture*) on 127.0.0.1 for clients written in other
//! languages.
//!
//! ```text
//! cargo run --release --example conformance -- --port 4010 [--test-timeouts]
//! ```
//!
//! `--test-timeouts` applies the test settings: reverse-RPC timeout 200 ms, ping 100 ms, idle timeout
//! 300 ms and an outbound queue of 64 KiB. Each can also be set on its own: `--rpc-timeout-ms`, `--ping-ms`,
//! `--idle-ms`, `--outbound-bytes`. SIGINT (Ctrl-C) or SIGTERM shuts down gracefully: open connections close
//! with 1001 `going away` and run their disconnect sequence, then the process exits with status 0.
//!
//! Besides the fixture's channels it serves the realtime events channel under `/realtime`: a realtime client
//! pointed at `http://127.0.0.1:<port>/realtime` subscribes on the socket at `/realtime/events` or streams
//! `/realtime/events/<topic>` as Server-Sent Events, and receives what the fixture's `emit`, `emitAll` and
//! `emitRaw` publish (`emitAll` with `{"topic":"news","data":{"hi":1}}` sends exactly that object to the
//! subscribers of `news`). Clients offering the subprotocol `pikku.v1` get it selected.

use std::process::ExitCode;
use std::time::Duration;

use pikku::ChannelServer;
use pikku_conformance::{fixture_app, server_config, FixtureSettings, Recorder};

fn usage() -> ExitCode {
    eprintln!(
        "usage: conformance --port <P> [--test-timeouts] [--rpc-timeout-ms N] [--ping-ms N] [--idle-ms N] \
         [--outbound-bytes N]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colour only on a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mut port = None;
    let mut settings = FixtureSettings::defaults();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Option<u64> {
            let value = args.next().and_then(|v| v.parse().ok());
            if value.is_none() {
                eprintln!("{name} needs a number");
            }
            value
        };
        match arg.as_str() {
            "--port" => match number("--port") {
                Some(p) if p <= u64::from(u16::MAX) => port = Some(p as u16),
                _ => return usage(),
            },
            "--test-timeouts" => {
                settings.rpc_timeout = Duration::from_millis(200);
                settings.ping_interval = Duration::from_millis(100);
                settings.idle_timeout = Duration::from_millis(300);
                settings.outbound_queue_bytes = 64 * 1024;
            }
            "--rpc-timeout-ms" => match number(&arg) {
                Some(n) => settings.rpc_timeout = Duration::from_millis(n),
                None => return usage(),
            },
            "--ping-ms" => match number(&arg) {
                Some(n) => settings.ping_interval = Duration::from_millis(n),
                None => return usage(),
            },
            "--idle-ms" => match number(&arg) {
                Some(n) => settings.idle_timeout = Duration::from_millis(n),
                None => return usage(),
            },
            "--outbound-bytes" => match number(&arg) {
                Some(n) => settings.outbound_queue_bytes = n as usize,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(port) = port else { return usage() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        // Before the listening line: whoever reads it may send SIGTERM at once.
        let stop = pikku::shutdown_signal();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tracing::info!(port, ?settings, "conformance fixture listening");
        let server = ChannelServer::new(
            fixture_app(&settings, Recorder::default()),
            server_config(&settings),
        );
        server.serve_with_shutdown(listener, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("conformance: {err}");
            ExitCode::FAILURE
        }
    }
}
