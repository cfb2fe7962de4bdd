//! An echo server on a pikku channel. Run it with
//!
//! ```text
//! cargo run -p example-echo                  # ws://127.0.0.1:4003/echo
//! cargo run -p example-echo -- --port 8080   # another port (0 picks a free one)
//! ```
//!
//! then talk to it with any WebSocket client, e.g. `websocat ws://127.0.0.1:4003/echo`:
//! `{"action":"upper","text":"hi"}` comes back as `{"action":"upper","text":"HI"}`, anything else unchanged.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use pikku::{ChannelServer, ServerConfig};
use tracing_subscriber::EnvFilter;

const DEFAULT_PORT: u16 = 4003;
const USAGE: &str = "usage: example-echo [--port N]";

/// No arguments, or `--port N`.
fn parse_port(args: &[String]) -> Result<u16, String> {
    match args {
        [] => Ok(DEFAULT_PORT),
        [flag, value] if flag == "--port" => {
            value.parse().map_err(|_| format!("invalid port '{value}'"))
        }
        _ => Err(USAGE.to_owned()),
    }
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match parse_port(&args) {
        Ok(port) => port,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };

    let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(port, error = %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    tracing::info!("echo on ws://{addr}/echo (Ctrl-C to stop)");

    // On Ctrl-C: new upgrades get 503, open sockets close with 1001 `going away`.
    let server = ChannelServer::new(example_echo::app(), ServerConfig::default());
    match server.serve_with_shutdown(listener, ctrl_c()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    fn parse(args: &[&str]) -> Result<u16, String> {
        parse_port(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn ports() {
        assert_eq!(parse(&[]), Ok(4003));
        assert_eq!(parse(&["--port", "0"]), Ok(0));
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }
}
