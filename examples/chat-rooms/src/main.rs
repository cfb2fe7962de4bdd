//! A small real-time chat with rooms. Run it with
//!
//! ```text
//! cargo run -p example-chat-rooms            # http://127.0.0.1:4002/
//! cargo run -p example-chat-rooms -- --port 8080
//! ```
//!
//! then open the page in two browser tabs, join the same room and talk. `RUST_LOG=debug` logs every message.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use example_chat_rooms::{app, router};
use pikku::{ChannelServer, ServerConfig};
use tracing_subscriber::EnvFilter;

const DEFAULT_PORT: u16 = 4002;
const USAGE: &str = "usage: example-chat-rooms [--port N]";

/// `--port N` or `--port=N`; `Ok(None)` for `--help`.
fn parse_port(mut args: impl Iterator<Item = String>) -> Result<Option<u16>, String> {
    let mut port = DEFAULT_PORT;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" | "-p" => args.next().ok_or("--port needs a value")?,
            other => match other.strip_prefix("--port=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unexpected argument '{other}'")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("invalid port '{value}'"))?;
    }
    Ok(Some(port))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let port = match parse_port(std::env::args().skip(1)) {
        Ok(Some(port)) => port,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

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
    let server = ChannelServer::new(app(), ServerConfig::default());
    let router = router(&server);
    tracing::info!("chat on http://{addr}/ (Ctrl-C or SIGTERM to stop)");

    let shutdown = async {
        signal.await;
        // New upgrades get 503; open chats close with 1001 and announce `left`.
        tracing::info!("shutting down");
    };
    // Our hyper loop, not plain `axum::serve`: it drops sockets that send no request head within the handshake
    // timeout, counts them toward the connection limit, and sets TCP_NODELAY (chat frames are small).
    let served = server
        .serve_router_with_shutdown(router, listener, shutdown)
        .await;
    match served {
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

    fn parse(args: &[&str]) -> Result<Option<u16>, String> {
        parse_port(args.iter().map(|s| (*s).to_owned()))
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
