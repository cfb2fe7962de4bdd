//! A small real-time chat with rooms. Run it with
//!
//! ```text
//! cargo run -p example-chat-rooms            # http://127.0.0.1:4002/
//! cargo run -p example-chat-rooms -- --port 8080
//! ```
//!
//! then open the page in two browser tabs, join the same room and talk. `RUST_LOG=debug` logs every message.
//!
//! Several nodes share their rooms through Redis: start each with the same `--hub` URL on its own port, and
//! members on one node see the messages of members on the other.
//!
//! ```text
//! cargo run -p example-chat-rooms -- --port 4002 --hub redis://127.0.0.1:6379
//! cargo run -p example-chat-rooms -- --port 4003 --hub redis://127.0.0.1:6379
//! ```
//!
//! The same chat runs statelessly behind Pushpin (Debian's `pushpin` package), with two worker processes that
//! keep every connection in Redis (or PostgreSQL): the page and the sockets go through Pushpin on the port.
//!
//! ```text
//! cargo run -p example-chat-rooms -- --stateless pushpin --store redis://127.0.0.1:6379
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use example_chat_rooms::{app, pages, server_config, subprotocols};
use pikku::pushpin::cluster::PushpinCluster;
use pikku::pushpin::{shared_listener, GripVerifier, PushpinWorker, WorkerConfig};
use pikku::{ChannelServer, HubUrlExt};
use tracing_subscriber::EnvFilter;

const DEFAULT_PORT: u16 = 4002;
const USAGE: &str = "usage: example-chat-rooms [--port N] [--hub memory|redis://HOST:PORT] \
                     [--stateless pushpin --store redis://HOST:PORT|postgres://…]";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    port: u16,
    /// The event hub's URL: `memory` (this process only) or a broker shared with other nodes.
    hub: String,
    /// The stores of the stateless mode (behind Pushpin); `None`: the embedded server.
    store: Option<String>,
    /// Set on the worker processes the stateless mode starts: Pushpin's publish URL and signing key.
    worker: Option<(String, String)>,
}

/// `--port N` / `--port=N` and `--hub URL` / `--hub=URL`; `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        port: DEFAULT_PORT,
        hub: "memory".to_owned(),
        store: None,
        worker: None,
    };
    let (mut stateless, mut publish, mut key) = (false, None, None);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = |flag: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" | "-p" => {
                let v = value("--port")?;
                options.port = v.parse().map_err(|_| format!("invalid port '{v}'"))?;
            }
            "--hub" => options.hub = value("--hub")?,
            "--stateless" => match value("--stateless")?.as_str() {
                "pushpin" => stateless = true,
                other => return Err(format!("unknown gateway '{other}' (expected pushpin)")),
            },
            "--store" => options.store = Some(value("--store")?),
            "--publish" => publish = Some(value("--publish")?),
            "--grip-key" => key = Some(value("--grip-key")?),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    match (publish, key) {
        (Some(publish), Some(key)) => options.worker = Some((publish, key)),
        (None, None) => {}
        _ => return Err("--publish and --grip-key go together".to_owned()),
    }
    if options.worker.is_none() && stateless != options.store.is_some() {
        return Err("--stateless pushpin and --store go together".to_owned());
    }
    Ok(Some(options))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Colour only on a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let Options {
        port,
        hub,
        store,
        worker,
    } = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    if let Some(store) = store {
        let served = match worker {
            Some((publish, key)) => serve_worker(port, &store, publish, key).await,
            None => serve_stateless(port, &store).await,
        };
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(error = %err, "stateless chat failed");
                ExitCode::FAILURE
            }
        };
    }

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%addr, error = %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);

    // Installed before the address is logged, so a SIGTERM right after it still drains gracefully.
    let signal = pikku::shutdown_signal();
    let app = match app().hub_url(&hub) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("--hub {hub}: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Reach the broker (or learn that it is down: the node keeps trying) before announcing the address.
    if let Err(err) = app.hub().start().await {
        tracing::error!(hub, error = %err, "cannot start the event hub");
        return ExitCode::FAILURE;
    }
    let server = ChannelServer::new(app, server_config());
    let pages = pages();
    tracing::info!(hub, "chat on http://{addr}/ (Ctrl-C or SIGTERM to stop)");

    let shutdown = async {
        signal.await;
        // New upgrades get 503; open chats close with 1001 and announce `left`.
        tracing::info!("shutting down");
    };
    // Our hyper loop, not plain `axum::serve`: it drops sockets that send no request head within the handshake
    // timeout, counts them toward the connection limit, and sets TCP_NODELAY (chat frames are small).
    let served = server
        .serve_router_with_shutdown(pages, listener, shutdown)
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Pushpin on `port` and two worker processes (this program again) sharing the stores, until SIGINT or SIGTERM.
async fn serve_stateless(port: u16, store: &str) -> std::io::Result<()> {
    let signal = pikku::shutdown_signal();
    // The store must answer before anything is started.
    pikku::stores_from_url(store)
        .await
        .map_err(std::io::Error::other)?;
    // Port 0: one the OS has free now, since Pushpin must be told a port.
    let port = match port {
        0 => std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port(),
        port => port,
    };
    let exe = std::env::current_exe()?;
    let cluster = PushpinCluster::start(port, 2, |setup| {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(["--port", &setup.port.to_string(), "--store", store])
            .args([
                "--publish",
                &setup.publish_url,
                "--grip-key",
                &setup.sig_key,
            ]);
        command
    })
    .await?;
    tracing::info!(
        store,
        "chat on http://127.0.0.1:{port}/ behind pushpin, two workers (Ctrl-C or SIGTERM to stop)"
    );
    signal.await;
    cluster.stop().await;
    Ok(())
}

/// One worker of the stateless mode: the page and the chat's events as Pushpin forwards them.
async fn serve_worker(port: u16, store: &str, publish: String, key: String) -> std::io::Result<()> {
    let signal = pikku::shutdown_signal();
    let stores = pikku::stores_from_url(store)
        .await
        .map_err(std::io::Error::other)?;
    let config = WorkerConfig::new(publish)
        .grip_verifier(GripVerifier::hs256(key))
        .subprotocols(subprotocols());
    let worker = PushpinWorker::new(app(), stores, config).map_err(std::io::Error::other)?;
    let listener = shared_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    worker.serve_router(pages(), listener, signal).await
}

#[cfg(test)]
mod tests {
    use super::{parse_args, Options};

    fn parse(args: &[&str]) -> Result<Option<u16>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned())).map(|o| o.map(|o| o.port))
    }

    #[test]
    fn hubs() {
        let hub = |args: &[&str]| {
            parse_args(args.iter().map(|s| (*s).to_owned()))
                .unwrap()
                .unwrap()
                .hub
        };
        assert_eq!(hub(&[]), "memory");
        assert_eq!(
            hub(&["--hub", "redis://127.0.0.1:6379"]),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(hub(&["--port", "1", "--hub=redis://h"]), "redis://h");
        assert!(parse_args(["--hub".to_owned()].into_iter()).is_err());
        let all = parse_args(["--port=7".to_owned(), "--hub=memory".to_owned()].into_iter());
        assert_eq!(
            all,
            Ok(Some(Options {
                port: 7,
                hub: "memory".to_owned(),
                store: None,
                worker: None,
            }))
        );
    }

    #[test]
    fn ports() {
        assert_eq!(parse(&[]), Ok(Some(4002)));
        assert_eq!(parse(&["--port", "8080"]), Ok(Some(8080)));
        assert_eq!(parse(&["--port=0"]), Ok(Some(0)));
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }
}
