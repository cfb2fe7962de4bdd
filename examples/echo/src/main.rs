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

use tracing_subscriber::EnvFilter;

/// `--port N` picks the port (0: any free one); the default is 4003.
fn port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(4003),
        [flag, value] if flag == "--port" => {
            value.parse().map_err(|_| format!("invalid port '{value}'"))
        }
        _ => Err("usage: example-echo [--port N]".to_owned()),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Colour only on a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let port = port().map_err(std::io::Error::other)?;
    // Logs the bound address; on Ctrl-C or SIGTERM new upgrades get 503 and open sockets close with 1001
    // `going away`.
    pikku::serve(
        example_echo::app(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    )
    .await
}
