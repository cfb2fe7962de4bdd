//! What hostile clients can make the server hold, over real sockets: a frame header that declares a large payload,
//! unfinished frames against the process-wide inbound budget, bytes dripped inside a frame, messages queued behind
//! a busy handler, and the close frame after a violation (which must reach a client that is still sending).
//!
//! Memory is read from the server's own accounting ([`ChannelServer::inbound_buffered_bytes`]) and from this
//! process's `VmRSS` in `/proc/self/status`. The tests that read RSS hold [`RSS`] so they do not see each other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{frame_header, rss_kib, RawWs, MASK, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};

/// Held by every test that reads RSS, so concurrent tests do not add to it.
static RSS: Mutex<()> = Mutex::const_new(());

const PATH: &str = "/in";

/// An app with an echo route and a `block` route whose handler waits until `release` is notified.
fn app(release: Arc<Notify>) -> App<()> {
    async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Value) -> Value {
        input
    }
    let block = move |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: Value| {
        let release = release.clone();
        async move {
            release.notified().await;
        }
    };
    // Room for the large replies of the queueing test, which reads them only after releasing the handler.
    App::new(())
        .configure(|c| c.outbound_queue_bytes = 64 << 20)
        .channel(
            ChannelRoute::new("in", PATH)
                .auth(false)
                .route("action", "echo", echo)
                .route("action", "block", block)
                .on_message(echo),
        )
}

async fn start(config: ServerConfig, release: Arc<Notify>) -> (ChannelServer<(), ()>, SocketAddr) {
    let server = ChannelServer::new(app(release), config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.clone().serve(listener));
    (server, addr)
}

/// Waits until `check` holds, polling; panics after [`WAIT`] with `what`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A 14-byte header of a masked text frame declaring `len` payload bytes (64-bit length form).
fn long_header(len: usize) -> Vec<u8> {
    let header = frame_header(0x81, len, Some(MASK));
    assert_eq!(header.len(), 14, "a 64-bit length header");
    header
}

/// Requires an echo round trip on `ws`.
async fn assert_echoes(ws: &mut RawWs) {
    ws.send(0x81, br#"{"action":"echo","n":1}"#).await;
    let (_, opcode, payload) = ws.next_frame().await.expect("an echo reply");
    assert_eq!(opcode, op::TEXT);
    let reply: Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(reply, json!({"action": "echo", "n": 1}));
}

/// Reads frames until a close frame; returns its code and reason. Panics on EOF or reset before it.
async fn read_close<S: tokio::io::AsyncRead + Unpin>(ws: &mut RawWs<S>) -> (u16, String) {
    loop {
        let (_, opcode, payload) = ws.next_frame().await.expect("a close frame before the end");
        if opcode == op::CLOSE {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_commits_no_memory() {
    let _rss = RSS.lock().await;
    let (server, addr) = start(ServerConfig::default(), Arc::new(Notify::new())).await;
    const N: usize = 300;
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(RawWs::connect(addr, PATH).await);
    }
    assert_echoes(&mut clients[0]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_kib();
    // Each header declares a payload just under the 1 MiB limit, and nothing of it follows.
    for ws in &mut clients {
        ws.write(&long_header(1_000_000)).await;
    }
    eventually("every header is buffered", || {
        server.inbound_buffered_bytes() >= N * 14
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = rss_kib().saturating_sub(before);
    let held = server.inbound_buffered_bytes();
    assert!(
        held <= N * 64,
        "{held} bytes held for {N} headers of 14 bytes"
    );
    assert!(
        grown * 1024 / N < 8 * 1024,
        "RSS grew by {grown} KiB for {N} headers: {} bytes each",
        grown * 1024 / N
    );
    // The rest of a frame still completes normally.
    let mut fresh = RawWs::connect(addr, PATH).await;
    assert_echoes(&mut fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_frames_cannot_take_the_process_past_the_inbound_budget() {
    let _rss = RSS.lock().await;
    let before = rss_kib();
    const BUDGET: usize = 4 << 20;
    const MAX: usize = 1 << 20;
    const N: usize = 40;
    let config = ServerConfig {
        inbound_budget_bytes: BUDGET,
        max_frame_bytes: MAX,
        frame_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let (server, addr) = start(config, Arc::new(Notify::new())).await;
    let mut bystander = RawWs::connect(addr, PATH).await;
    assert_echoes(&mut bystander).await;

    // Each attacker sends a 1 MiB frame but its last byte; together 40 MiB against a 4 MiB budget.
    let mut frame = long_header(MAX);
    frame.resize(14 + MAX - 1, b'x');
    let frame: Arc<[u8]> = frame.into();
    let mut attackers = Vec::new();
    for _ in 0..N {
        let frame = frame.clone();
        let ws = RawWs::connect(addr, PATH).await;
        let (stream, _) = ws.into_parts();
        let (mut reader, mut writer) = stream.into_split();
        tokio::spawn(async move {
            // Blocks once the server stops reading; the write fails when the server closes.
            let _ = writer.write_all(&frame).await;
            std::future::pending::<()>().await;
            drop(writer);
        });
        attackers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = tokio::time::timeout(WAIT, reader.read_to_end(&mut got)).await;
            got
        }));
    }
    eventually("the budget fills up", || {
        server.inbound_buffered_bytes() >= BUDGET
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = server.inbound_buffered_bytes();
    let grown = rss_kib().saturating_sub(before);
    // One direct read may pass the limit by what a frame already holds; every other connection by one chunk.
    let bound = BUDGET + 2 * MAX + N * 8 * 1024;
    assert!(held <= bound, "{held} bytes held, bound {bound}");
    assert!(
        grown * 1024 <= bound + (8 << 20),
        "RSS grew by {grown} KiB against a {BUDGET}-byte budget"
    );
    // Small complete messages still flow while the budget is spent.
    assert_echoes(&mut bystander).await;

    // The frame timeout ends every attacker with 1008 and gives the budget back.
    for attacker in attackers {
        let got = attacker.await.expect("reader task");
        assert!(
            got.len() >= 4 && got[0] == 0x88,
            "a close frame first: {got:?}"
        );
        let code = u16::from_be_bytes([got[2], got[3]]);
        assert_eq!(
            (code, &got[4..2 + usize::from(got[1])]),
            (1008, &b"frame timeout"[..])
        );
    }
    eventually("the budget is given back", || {
        server.inbound_buffered_bytes() == 0
    })
    .await;
    assert_echoes(&mut bystander).await;
}

#[tokio::test]
async fn bytes_dripped_inside_a_frame_do_not_keep_a_connection_alive() {
    let config = ServerConfig {
        ping_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(400),
        frame_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let (_server, addr) = start(config, Arc::new(Notify::new())).await;
    let ws = RawWs::connect(addr, PATH).await;
    let (stream, buffered) = ws.into_parts();
    let (reader, mut writer) = stream.into_split();
    // One byte every 50 ms inside a frame, for as long as the server lets it.
    let dripping = tokio::spawn(async move {
        writer
            .write_all(&long_header(100_000))
            .await
            .expect("header");
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut ws = RawWs::new(reader, buffered);
    assert_eq!(read_close(&mut ws).await, (1001, "idle timeout".into()));
    dripping.abort();
}

#[tokio::test]
async fn a_frame_or_fragmented_message_must_complete_within_the_frame_timeout() {
    let config = ServerConfig {
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        frame_timeout: Duration::from_millis(400),
        ..ServerConfig::default()
    };
    let (_server, addr) = start(config, Arc::new(Notify::new())).await;

    // One frame, dripped.
    let mut ws = RawWs::connect(addr, PATH).await;
    ws.write(&long_header(100_000)).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ws.write(b"x").await;
    }
    assert_eq!(read_close(&mut ws).await, (1008, "frame timeout".into()));

    // Complete fragments, each one a frame, but the message never ends.
    let mut ws = RawWs::connect(addr, PATH).await;
    ws.send(0x01, b"[").await;
    let fragments = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if ws
                .get_mut()
                .write_all(&pikku_testkit::client_frame(0x00, b"1,", Some(MASK)))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), fragments).await;
    assert_eq!(read_close(&mut ws).await, (1008, "frame timeout".into()));

    // A frame that arrives in time is not affected.
    let mut ws = RawWs::connect(addr, PATH).await;
    assert_echoes(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_behind_a_busy_handler_are_held_as_their_bytes() {
    let _rss = RSS.lock().await;
    let release = Arc::new(Notify::new());
    let (server, addr) = start(ServerConfig::default(), release.clone()).await;
    let mut ws = RawWs::connect(addr, PATH).await;
    assert_echoes(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_kib();

    // The handler now waits; what follows queues behind it. Each message is ~200 KiB of small numbers, which
    // would take many times its size as parsed JSON.
    ws.send(0x81, br#"{"action":"block"}"#).await;
    let numbers = (0..50_000)
        .map(|i| (i % 10).to_string())
        .collect::<Vec<_>>();
    let message = format!(r#"{{"action":"echo","n":[{}]}}"#, numbers.join(","));
    let (stream, _) = ws.into_parts();
    let (mut reader, mut writer) = stream.into_split();
    let frame = pikku_testkit::client_frame(0x81, message.as_bytes(), Some(MASK));
    let sending = tokio::spawn(async move {
        for _ in 0..40 {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
        writer
    });
    // The reader stops at about one maximal message (1 MiB) of queued bytes.
    eventually("messages queue up", || {
        server.inbound_buffered_bytes() >= 1 << 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = server.inbound_buffered_bytes();
    let grown = rss_kib().saturating_sub(before);
    assert!(held <= 3 << 20, "{held} bytes held");
    assert!(
        grown <= 12 * 1024,
        "RSS grew by {grown} KiB for {held} queued bytes"
    );

    // Releasing the handler lets every queued message through, in order.
    release.notify_one();
    let mut got = 0;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let expected = format!(r#"{{"action":"echo","n":[{}]}}"#, numbers.join(","));
    let expected: Value = serde_json::from_str(&expected).expect("JSON");
    let reply_value = |payload: &[u8]| serde_json::from_slice::<Value>(payload).expect("JSON");
    while got < 40 {
        let n = tokio::time::timeout(WAIT, reader.read(&mut chunk))
            .await
            .expect("replies keep coming")
            .expect("read");
        assert!(n > 0, "connection ended after {got} replies");
        buf.extend_from_slice(&chunk[..n]);
        let mut ws = RawWs::new(tokio::io::empty(), std::mem::take(&mut buf));
        while let Ok(Some((_, _, payload))) =
            tokio::time::timeout(Duration::from_millis(1), ws.read_frame()).await
        {
            let reply = reply_value(&payload);
            if got == 0 && reply == json!({"action": "block"}) {
                continue;
            }
            assert!(reply == expected, "reply {got} is not the echo");
            got += 1;
        }
        buf = ws.into_parts().1;
    }
    drop(sending.await.expect("sender"));
    eventually("the queue is empty", || {
        server.inbound_buffered_bytes() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_an_oversized_frame_sees_the_close_code() {
    let (_server, addr) = start(ServerConfig::default(), Arc::new(Notify::new())).await;
    // 1 MiB + 1 byte: refused from its header, while the client goes on sending the payload and more, well
    // past what the socket buffers hold, so it is still writing when the server has long decided to close.
    let mut frame = frame_header(0x81, (1 << 20) + 1, Some(MASK));
    frame.resize(frame.len() + (16 << 20), b'x');
    let frame: Arc<[u8]> = frame.into();
    for attempt in 0..5 {
        let ws = RawWs::connect(addr, PATH).await;
        let (mut stream, _) = ws.into_parts();
        // The client reads only once it has sent everything, as a busy client would. Were the server to drop the
        // socket with unread input, the kernel would reset it: the write would fail and a client such as Node's
        // `ws` would report 1006 without reading the close frame.
        let written = tokio::time::timeout(WAIT, stream.write_all(&frame)).await;
        assert!(
            matches!(written, Ok(Ok(()))),
            "attempt {attempt}: the server stopped reading before the end ({written:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
            .await
            .expect("the server ends the connection");
        assert!(
            read.is_ok(),
            "attempt {attempt}: the connection was reset ({read:?}) after {} bytes",
            got.len()
        );
        assert!(got.len() >= 4, "attempt {attempt}: {got:?}");
        assert_eq!(got[0], 0x88, "attempt {attempt}: a close frame");
        let code = u16::from_be_bytes([got[2], got[3]]);
        assert_eq!(
            (code, &got[4..2 + usize::from(got[1])]),
            (1009, &b"message too big"[..]),
            "attempt {attempt}"
        );
    }
}

/// How a client leaves in [`client_leaves_while_messages_wait`].
#[derive(Clone, Copy)]
enum Leaving {
    /// A plain close: the FIN arrives behind the bytes the server has not read.
    Fin,
    /// A reset (zero linger), with bytes still unsent on the client's side.
    Reset,
}

/// Fills the queue behind a blocked handler, leaves, and requires the queued bytes to be freed while the handler
/// is still blocked.
async fn client_leaves_while_messages_wait(leaving: Leaving) {
    let release = Arc::new(Notify::new());
    // A short sweep period (a quarter of the frame timeout); the heartbeat and the idle timeout are far away, so
    // only the paused reader's own check can notice the client leaving.
    let config = ServerConfig {
        frame_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        ..ServerConfig::default()
    };
    let (server, addr) = start(config, release.clone()).await;
    let mut ws = RawWs::connect(addr, PATH).await;
    assert_echoes(&mut ws).await;
    ws.send(0x81, br#"{"action":"block"}"#).await;
    let message = format!(r#"{{"action":"echo","pad":"{}"}}"#, "x".repeat(100_000));
    let frame = pikku_testkit::client_frame(0x81, message.as_bytes(), Some(MASK));
    let small = format!(r#"{{"action":"echo","pad":"{}"}}"#, "x".repeat(10_000));
    let small = pikku_testkit::client_frame(0x81, small.as_bytes(), Some(MASK));
    let (mut stream, _) = ws.into_parts();
    // The reader stops once about 1 MiB is queued, after the eleventh large message, when it has read everything
    // sent. For a FIN to get through, what follows must fit in the server's receive window (a FIN waits behind
    // unsent bytes): one small message, which then waits unread in front of the FIN. A reset needs no room, so
    // then the client sends more than fits.
    let frames = match leaving {
        Leaving::Fin => vec![frame; 11],
        Leaving::Reset => {
            stream.set_zero_linger().expect("SO_LINGER");
            vec![frame; 200]
        }
    };
    let sending = tokio::spawn(async move {
        for frame in &frames {
            stream.write_all(frame).await.expect("send");
        }
        stream
    });
    eventually("messages queue up", || {
        server.inbound_buffered_bytes() >= 1 << 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    match leaving {
        Leaving::Fin => {
            let mut stream = sending.await.expect("sender");
            stream.write_all(&small).await.expect("send");
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(stream);
        }
        // Dropping the task's stream resets the connection, with most of the bytes unsent.
        Leaving::Reset => sending.abort(),
    }
    // The handler is still blocked: only noticing the departure frees the queue.
    eventually("the departed client's queue is freed", || {
        server.inbound_buffered_bytes() == 0
    })
    .await;
    // Releasing the handler ends the disconnect sequence.
    release.notify_waiters();
    eventually("the connection's task ends", || {
        server.active_connections() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_while_its_messages_wait_frees_them_at_once() {
    client_leaves_while_messages_wait(Leaving::Fin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_while_its_messages_wait_frees_them_at_once() {
    client_leaves_while_messages_wait(Leaving::Reset).await;
}
