//! What an idle, subscribed connection costs the server, read from the process's own resident memory.
//!
//! The clients are plain blocking sockets in the same process: each costs a file descriptor and a few bytes,
//! so the growth measured is the server's. The bound is the one the project promises for idle connections
//! (2 KiB each); release builds measure less (see docs/benchmarks.md), debug builds keep more of each task's
//! state, so this test only catches a real regression, such as a per-connection buffer or timer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::rss_kib;
use tokio::net::TcpListener;

/// Connections opened before the first reading, so that the runtime's and the allocator's one-off growth is
/// not charged to the measured ones.
const WARM_UP: usize = 500;
const MEASURED: usize = 4_000;
const BOUND_BYTES: usize = 2_048;

async fn subscribe(ctx: Ctx<(), ()>, channel: Channel<Params, ()>) {
    let topic = format!("topic-{}", channel.channel_id().len() % 7);
    ctx.hub()
        .subscribe(&topic, channel.channel_id())
        .await
        .expect("subscribe");
    channel.send(()).expect("send the ready frame");
}

/// Opens a WebSocket with a raw request and waits for the server's first frame (sent once subscribed).
fn open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET /idle HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("write the upgrade");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    // The response head, then the first frame's two header bytes and its payload (`null`).
    while !seen.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the response");
        seen.push(byte[0]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let mut header = [0u8; 2];
    stream
        .read_exact(&mut header)
        .expect("read the first frame");
    let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
    stream.read_exact(&mut payload).expect("read its payload");
    stream
}

#[test]
fn an_idle_subscribed_connection_costs_under_two_kib() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = App::new(()).channel(
        ChannelRoute::new("idle", "/idle")
            .auth(false)
            .on_connect(subscribe),
    );
    let server = ChannelServer::new(app, ServerConfig::default());
    let addr = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(server.clone().serve(listener));
        addr
    });

    let mut clients: Vec<TcpStream> = (0..WARM_UP).map(|_| open(addr)).collect();
    let before = rss_kib();
    clients.extend((0..MEASURED).map(|_| open(addr)));
    let after = rss_kib();
    let per_connection = (after.saturating_sub(before)) * 1024 / MEASURED;
    eprintln!("{per_connection} bytes of resident memory per idle subscribed connection");
    assert_eq!(server.active_connections(), WARM_UP + MEASURED);
    assert!(
        per_connection <= BOUND_BYTES,
        "{per_connection} bytes per idle connection, more than {BOUND_BYTES}"
    );
    drop(clients);
    runtime.block_on(server.shutdown());
}
