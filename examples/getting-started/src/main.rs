//! `cargo run -p example-getting-started`, then open `ws://127.0.0.1:4000/rooms/lobby?token=ann-secret`.
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_ansi(colour).init();
    let addr = "127.0.0.1:4000".parse().expect("an address");
    // Until SIGINT or SIGTERM, then a graceful shutdown.
    pikku::serve_router(getting_started::app(), getting_started::pages(), addr).await
}
