//! Serves the protocol fixture (`docs/protocol.md`, *Conformance fixture*) on 127.0.0.1 for clients written in other
//! languages.
//!
//! ```text
//! cargo run --release --example conformance -- --port 4010 [--test-timeouts]
//! cargo run --release --example conformance -- --port 4010 --stateless pushpin --store redis://127.0.0.1:6379
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
//!
//! With `--stateless pushpin --store <url>` (`redis://…` or `postgres://…`) the same fixture is served statelessly:
//! the command starts Pushpin listening on the port, and two worker processes behind it (this program again,
//! with `--worker`), which keep every connection in the store. The workers share one port (`SO_REUSEPORT`), so
//! the kernel spreads Pushpin's requests between them and any event of a connection may be handled by either;
//! when one stops, the other takes everything. SIGINT or SIGTERM stops Pushpin and both workers. Reverse RPC answers `unsupported` there, and ping,
//! idle and queue limits are Pushpin's; the realtime Server-Sent Events streams are not served statelessly.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use pikku::pushpin::cluster::PushpinCluster;
use pikku::pushpin::{shared_listener, GripVerifier, PushpinWorker, WorkerConfig};
use pikku::server::SubprotocolPolicy;
use pikku::ChannelServer;
use pikku_conformance::{fixture_app, server_config, FixtureSettings, Recorder};

fn usage() -> ExitCode {
    eprintln!(
        "usage: conformance --port <P> [--test-timeouts] [--rpc-timeout-ms N] [--ping-ms N] [--idle-ms N] \
         [--outbound-bytes N] [--stateless pushpin --store <redis://…|postgres://…>]"
    );
    ExitCode::from(2)
}

/// What the command line asks for.
#[derive(Debug, Default)]
struct Options {
    port: Option<u16>,
    settings: Option<FixtureSettings>,
    /// The settings flags as given, passed on to the workers.
    setting_args: Vec<String>,
    stateless: Option<String>,
    store: Option<String>,
    /// Set on the worker processes the stateless mode starts.
    worker: bool,
    publish: Option<String>,
    grip_key: Option<String>,
}

fn parse_options() -> Option<Options> {
    let mut options = Options::default();
    let mut settings = FixtureSettings::defaults();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            let value = args.next();
            if value.is_none() {
                eprintln!("{name} needs a value");
            }
            value
        };
        let number = |text: Option<String>| text.and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--port" => match number(value(&arg)) {
                Some(p) if p <= u64::from(u16::MAX) => options.port = Some(p as u16),
                _ => return None,
            },
            "--test-timeouts" => {
                settings.rpc_timeout = Duration::from_millis(200);
                settings.ping_interval = Duration::from_millis(100);
                settings.idle_timeout = Duration::from_millis(300);
                settings.outbound_queue_bytes = 64 * 1024;
                options.setting_args.push(arg);
            }
            "--rpc-timeout-ms" | "--ping-ms" | "--idle-ms" | "--outbound-bytes" => {
                let n = number(value(&arg))?;
                match arg.as_str() {
                    "--rpc-timeout-ms" => settings.rpc_timeout = Duration::from_millis(n),
                    "--ping-ms" => settings.ping_interval = Duration::from_millis(n),
                    "--idle-ms" => settings.idle_timeout = Duration::from_millis(n),
                    _ => settings.outbound_queue_bytes = n as usize,
                }
                options.setting_args.push(arg);
                options.setting_args.push(n.to_string());
            }
            "--stateless" => match value(&arg)?.as_str() {
                "pushpin" => options.stateless = Some("pushpin".into()),
                other => {
                    eprintln!("unknown gateway '{other}' (expected pushpin)");
                    return None;
                }
            },
            "--store" => options.store = Some(value(&arg)?),
            "--worker" => options.worker = true,
            "--publish" => options.publish = Some(value(&arg)?),
            "--grip-key" => options.grip_key = Some(value(&arg)?),
            _ => return None,
        }
    }
    options.settings = Some(settings);
    Some(options)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colour only on a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let Some(options) = parse_options() else {
        return usage();
    };
    let Some(port) = options.port else {
        return usage();
    };
    if options.stateless.is_some() != options.store.is_some() && !options.worker {
        eprintln!("--stateless and --store go together");
        return usage();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        // Before the listening line: whoever reads it may send SIGTERM at once.
        let stop = pikku::shutdown_signal();
        if options.worker {
            serve_worker(port, &options, stop).await
        } else if let Some(store) = &options.store {
            serve_stateless(port, store, &options.setting_args, stop).await
        } else {
            let settings = options.settings.unwrap_or_else(FixtureSettings::defaults);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            tracing::info!(port, ?settings, "conformance fixture listening");
            let server = ChannelServer::new(
                fixture_app(&settings, Recorder::default()),
                server_config(&settings),
            );
            server.serve_with_shutdown(listener, stop).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("conformance: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The stateless mode: Pushpin on `port`, two workers behind it, until `stop`.
async fn serve_stateless(
    port: u16,
    store: &str,
    setting_args: &[String],
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    // The store must answer before anything is started.
    pikku::stores_from_url(store)
        .await
        .map_err(std::io::Error::other)?;
    let exe = std::env::current_exe()?;
    let cluster = PushpinCluster::start(port, 2, |setup| {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args([
                "--worker",
                "--port",
                &setup.port.to_string(),
                "--store",
                store,
            ])
            .args([
                "--publish",
                &setup.publish_url,
                "--grip-key",
                &setup.sig_key,
            ])
            .args(setting_args);
        command
    })
    .await?;
    tracing::info!(
        port,
        worker_port = cluster.setup().port,
        store,
        "conformance fixture listening statelessly behind pushpin"
    );
    stop.await;
    cluster.stop().await;
    Ok(())
}

/// One worker process of the stateless mode.
async fn serve_worker(
    port: u16,
    options: &Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (Some(store), Some(publish), Some(key)) =
        (&options.store, &options.publish, &options.grip_key)
    else {
        return Err(std::io::Error::other(
            "a worker needs --store, --publish and --grip-key",
        ));
    };
    let settings = options
        .settings
        .clone()
        .unwrap_or_else(FixtureSettings::defaults);
    let stores = pikku::stores_from_url(store)
        .await
        .map_err(std::io::Error::other)?;
    let config = WorkerConfig::new(publish.clone())
        .grip_verifier(GripVerifier::hs256(key.clone()))
        .subprotocols(SubprotocolPolicy::list(["pikku.v1"]));
    let worker = PushpinWorker::new(fixture_app(&settings, Recorder::default()), stores, config)
        .map_err(std::io::Error::other)?;
    // Every worker listens on the same port: the kernel spreads connections between them.
    let listener = shared_listener(SocketAddr::from(([127, 0, 0, 1], port)))?;
    tracing::info!(port, "stateless worker listening");
    worker.serve(listener, stop).await
}
