//! Authentication and live sessions on a pikku channel. Run it with
//!
//! ```text
//! cargo run -p example-auth-session                  # ws://127.0.0.1:4004/account
//! cargo run -p example-auth-session -- --port 8080   # another port (0 picks a free one)
//! ```
//!
//! then connect with any WebSocket client, anonymously or with a demo token:
//!
//! ```text
//! websocat ws://127.0.0.1:4004/account
//! {"action":"login","token":"alice-token"}
//!
//! websocat -H 'Authorization: Bearer root-token' ws://127.0.0.1:4004/account
//! {"action":"admin/stats"}
//! ```
//!
//! Every message is logged with its user id; `RUST_LOG=debug` shows the framework's logs too.

use std::net::{Ipv4Addr, SocketAddr};

use tracing_subscriber::EnvFilter;

/// `--port N` picks the port (0: any free one); the default is 4004.
fn port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(4004),
        [flag, value] if flag == "--port" => {
            value.parse().map_err(|_| format!("invalid port '{value}'"))
        }
        _ => Err("usage: example-auth-session [--port N]".to_owned()),
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
        example_auth_session::app(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    )
    .await
}
