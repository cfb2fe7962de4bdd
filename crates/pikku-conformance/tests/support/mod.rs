//! Client-side helpers for the golden scenarios of the wire protocol.
//!
//! Everything here is deliberately independent of the server's own codec: WebSocket traffic goes through
//! tokio-tungstenite ([`Client`]) or through a hand-written RFC 6455 client ([`RawWs`]) for the cases a
//! well-behaved library refuses to produce (invalid UTF-8, never answering pings, never reading). Refused
//! upgrades are read as plain HTTP ([`raw_upgrade`]). The raw pieces and the JSON matcher come from `pikku-testkit`,
//! which depends on neither pikku-core nor pikku-server; otherwise the module depends only on tokio,
//! tokio-tungstenite, futures-util and serde_json, so it compiles without the fixture.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pikku_testkit::client_frame;
use pikku_testkit::ws::op::{
    BINARY as OP_BINARY, CLOSE as OP_CLOSE, CONTINUATION as OP_CONTINUATION, PING as OP_PING,
    PONG as OP_PONG, TEXT as OP_TEXT,
};
pub(crate) use pikku_testkit::{assert_json_matches, json_mismatch, HttpResponse, ANY};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long we wait for something that must happen. Generous, because a loaded 2-core CI machine can stall a
/// test for a while; a correct server answers in milliseconds, so this only bounds how long a failure takes.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Serialises the tests whose assertions depend on wall-clock time (the 200 ms reverse-RPC timeout, the idle
/// timeout) with the tests that generate heavy load (1 MiB frames, the 24 MiB flood), so that one never
/// starves the other on a small machine. The tokio mutex works across the per-test runtimes and is released
/// on panic, so one failing test cannot block the rest.
pub(crate) async fn timing_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

// ---------------------------------------------------------------------------------------------------------
// Frames as seen by a client
// ---------------------------------------------------------------------------------------------------------

/// One data or close frame received by a client. Pings and pongs are never reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A text frame (or reassembled text message), its payload as received.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A close frame: `None` for an empty payload, else the code and reason.
    Close(Option<(u16, String)>),
    /// The connection ended (EOF, reset or a client-side protocol error) without a frame. Reported as a
    /// value so a failing assertion can say what happened instead of just "error".
    Ended(String),
}

/// Describes a frame briefly for panic messages; long text is cut so a 1 MiB frame stays readable.
fn show(frame: &Frame) -> String {
    match frame {
        Frame::Text(t) if t.len() > 300 => format!("Text({:?}… [{} bytes])", &t[..200], t.len()),
        Frame::Binary(b) if b.len() > 64 => format!("Binary([{} bytes])", b.len()),
        other => format!("{other:?}"),
    }
}

/// Checks a received frame against an expected JSON text frame.
fn check_json(label: &str, frame: &Frame, expected: &Value) {
    match frame {
        Frame::Text(text) => match serde_json::from_str::<Value>(text) {
            Ok(actual) => {
                if let Some(diff) = json_mismatch(&actual, expected) {
                    panic!("[{label}] JSON frame mismatch {diff}\n  expected: {expected}\n  actual:   {text}");
                }
            }
            Err(_) => panic!(
                "[{label}] expected JSON frame {expected}, got non-JSON text {}",
                show(frame)
            ),
        },
        other => panic!(
            "[{label}] expected JSON frame {expected}, got {}",
            show(other)
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------
// tokio-tungstenite client
// ---------------------------------------------------------------------------------------------------------

/// Behind Pushpin, waits until publications reach the new connection (see `SUBSCRIPTION_SETTLE`).
async fn settle_behind_gateway() {
    if pikku_conformance::is_serving_statelessly() {
        tokio::time::sleep(pikku_conformance::SUBSCRIPTION_SETTLE).await;
    }
}

/// A WebSocket client built on tokio-tungstenite (an implementation independent of the server's codec).
/// It answers pings automatically, as a browser does.
pub(crate) struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    label: String,
}

impl Client {
    /// Opens a WebSocket to `url` (must be accepted with 101); nothing is read yet.
    pub(crate) async fn connect(url: &str) -> Client {
        Client::connect_with_headers(url, &[]).await
    }

    /// Like [`Client::connect`], adding request headers (e.g. `Authorization` for `/secure`).
    pub(crate) async fn connect_with_headers(url: &str, headers: &[(&str, &str)]) -> Client {
        let mut request = url.into_client_request().expect("valid ws url");
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .unwrap_or_else(|_| panic!("upgrade of {url} timed out"))
            .unwrap_or_else(|e| panic!("upgrade of {url} failed: {e}"));
        assert_eq!(response.status().as_u16(), 101, "upgrade of {url}");
        settle_behind_gateway().await;
        let label = url
            .splitn(4, '/')
            .nth(3)
            .map_or_else(|| url.to_owned(), |p| format!("/{p}"));
        Client { ws, label }
    }

    /// Names the client in panic messages ("A", "B", …), which matters when a row uses several.
    pub(crate) fn named(mut self, label: &str) -> Client {
        self.label = label.to_owned();
        self
    }

    /// Sends the JSON text of `value`, as the reference client's `ws.send(v)` does.
    pub(crate) async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a text frame with exactly these characters.
    pub(crate) async fn send_text(&mut self, text: &str) {
        if let Err(e) = self.try_send_text(text).await {
            panic!("[{}] sending a text frame failed: {e}", self.label);
        }
    }

    /// Sends a text frame, reporting failure instead of panicking: used when the server may legitimately
    /// tear the connection down while the frame is still being written (oversize frames).
    pub(crate) async fn try_send_text(&mut self, text: &str) -> Result<(), String> {
        let send = self.ws.send(Message::text(text));
        match tokio::time::timeout(WAIT, send).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    /// Sends a binary frame.
    pub(crate) async fn send_binary(&mut self, bytes: &[u8]) {
        let send = self.ws.send(Message::binary(bytes.to_vec()));
        match tokio::time::timeout(WAIT, send).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("[{}] sending a binary frame failed: {e}", self.label),
            Err(_) => panic!("[{}] sending a binary frame timed out", self.label),
        }
    }

    /// Starts the closing handshake with `code` and an empty reason, then requires the server's echo as the
    /// very next frame (the server echoes the client's close code), which also proves nothing else was
    /// sent first.
    pub(crate) async fn close(&mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        match tokio::time::timeout(WAIT, self.ws.close(Some(frame))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("[{}] sending close {code} failed: {e}", self.label),
            Err(_) => panic!("[{}] sending close {code} timed out", self.label),
        }
        match self.next_frame().await {
            Frame::Close(Some((echo, _))) if echo == code => {}
            other => panic!(
                "[{}] expected the echo of close {code}, got {}",
                self.label,
                show(&other)
            ),
        }
    }

    /// The next data or close frame, skipping pings and pongs; panics when nothing arrives within [`WAIT`].
    pub(crate) async fn next_frame(&mut self) -> Frame {
        match self.next_frame_within(WAIT).await {
            Some(frame) => frame,
            None => panic!("[{}] no frame within {WAIT:?}", self.label),
        }
    }

    /// The next data or close frame if one arrives within `limit`. Cancel-safe: tungstenite keeps partial
    /// input buffered, so a timeout loses nothing.
    async fn next_frame_within(&mut self, limit: Duration) -> Option<Frame> {
        let read = async {
            loop {
                let frame = match self.ws.next().await {
                    None => Frame::Ended("stream ended".to_owned()),
                    Some(Err(e)) => Frame::Ended(e.to_string()),
                    Some(Ok(Message::Text(t))) => Frame::Text(t.to_string()),
                    Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                    Some(Ok(Message::Close(c))) => {
                        // tungstenite only queues its close reply; push it out now so the server can finish
                        // its side of the handshake without waiting for our next read.
                        let _ = self.ws.flush().await;
                        Frame::Close(c.map(|c| (u16::from(c.code), c.reason.to_string())))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                };
                return frame;
            }
        };
        tokio::time::timeout(limit, read).await.ok()
    }

    /// Requires the next frame to be a text frame holding JSON that matches `expected` (with [`ANY`]).
    pub(crate) async fn expect_json(&mut self, expected: Value) {
        let frame = self.next_frame().await;
        check_json(&self.label, &frame, &expected);
    }

    /// Requires the next frame to be a text frame whose payload is exactly `text` (`txt …` in `docs/protocol.md`).
    pub(crate) async fn expect_text(&mut self, text: &str) {
        match self.next_frame().await {
            Frame::Text(t) if t == text => {}
            other => panic!(
                "[{}] expected txt {text:?}, got {}",
                self.label,
                show(&other)
            ),
        }
    }

    /// Requires the next frame to be a binary frame with exactly these bytes.
    pub(crate) async fn expect_binary(&mut self, bytes: &[u8]) {
        match self.next_frame().await {
            Frame::Binary(b) if b == bytes => {}
            other => panic!(
                "[{}] expected bin {bytes:02x?}, got {}",
                self.label,
                show(&other)
            ),
        }
    }

    /// Requires the next frame to be a close frame with `code`; returns its reason.
    pub(crate) async fn expect_close(&mut self, code: u16) -> String {
        match self.next_frame().await {
            Frame::Close(Some((c, reason))) if c == code => reason,
            other => panic!(
                "[{}] expected close {code}, got {}",
                self.label,
                show(&other)
            ),
        }
    }

    /// Requires the next frame to be a close frame with exactly this code and reason.
    pub(crate) async fn expect_close_with(&mut self, code: u16, reason: &str) {
        let got = self.expect_close(code).await;
        assert_eq!(got, reason, "[{}] reason of close {code}", self.label);
    }

    /// Requires the connection to end without any further frame (nothing is sent after a close frame).
    pub(crate) async fn expect_end(&mut self) {
        match self.next_frame().await {
            Frame::Ended(_) => {}
            other => panic!(
                "[{}] expected the connection to end, got {}",
                self.label,
                show(&other)
            ),
        }
    }

    /// Requires that no data or close frame arrives for `duration` (pings are ignored).
    pub(crate) async fn expect_silence(&mut self, duration: Duration) {
        if let Some(frame) = self.next_frame_within(duration).await {
            panic!(
                "[{}] expected silence for {duration:?}, got {}",
                self.label,
                show(&frame)
            );
        }
    }

    /// Logs in with the fixture's valid token.
    pub(crate) async fn auth(&mut self) {
        self.send_json(json!({"action": "auth", "token": "valid"}))
            .await;
        self.expect_json(json!({"authResult": true, "action": "auth"}))
            .await;
    }

    /// The sentinel: an `echoIn` whose reply must be the very next frame, proving nothing else came first.
    pub(crate) async fn sentinel(&mut self) {
        self.send_json(json!({"action": "echoIn", "s": 1})).await;
        self.expect_json(json!({"got": {"s": 1}, "action": "echoIn"}))
            .await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Raw HTTP upgrade
// ---------------------------------------------------------------------------------------------------------

/// Sends an upgrade request for `path_and_query` over a plain TCP connection and reads the complete
/// response ([`pikku_testkit::raw_upgrade`]). A refusal must be a complete response: its body is read by
/// `Content-Length`, which must be present, and nothing may follow it. A 101 has no body; the connection is
/// dropped right after its head.
pub(crate) async fn raw_upgrade(
    addr: SocketAddr,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
) -> HttpResponse {
    let response = pikku_testkit::raw_upgrade(addr, path_and_query, extra_headers).await;
    if response.status != 101 {
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("numeric Content-Length");
        assert_eq!(
            response.body.len(),
            length,
            "bytes after the body of a refusal"
        );
    }
    response
}

/// Checks a refused upgrade (`HTTP <status> {...}`): the status, `Content-Type: application/json`,
/// `Connection: close`, and a JSON body matching `expected` (with [`ANY`]).
#[track_caller]
pub(crate) fn assert_refusal(response: &HttpResponse, status: u16, expected: &Value) {
    assert_eq!(
        response.status, status,
        "refusal status; response: {response:?}"
    );
    let content_type = response.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    assert!(
        media_type.eq_ignore_ascii_case("application/json"),
        "Content-Type is {content_type:?}"
    );
    // `Connection` is hop-by-hop: behind a gateway it is the gateway's (Pushpin keeps the connection open).
    if !pikku_conformance::is_serving_statelessly() {
        let connection = response.header("connection").unwrap_or_default();
        assert!(
            connection
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close")),
            "refusal without Connection: close (got {connection:?})"
        );
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_else(|_| {
        panic!(
            "refusal body is not JSON: {:?}",
            String::from_utf8_lossy(&response.body)
        )
    });
    assert_json_matches(&body, expected);
}

// ---------------------------------------------------------------------------------------------------------
// Raw WebSocket client
// ---------------------------------------------------------------------------------------------------------

/// A minimal RFC 6455 client over a TcpStream, for what a real library will not do: send invalid UTF-8,
/// never answer pings (it reads them but does nothing), or stop reading altogether (it reads only when told).
pub(crate) struct RawWs {
    /// The connection, with the bytes received but not yet parsed into frames.
    ws: pikku_testkit::RawWs,
    /// A fragmented data message being reassembled: its opcode and the payload so far.
    partial: Option<(u8, Vec<u8>)>,
    /// How many pings the server sent so far (none is ever answered).
    pub(crate) pings_seen: usize,
}

impl RawWs {
    /// Connects and completes the handshake for `path_and_query`, checking the 101 and its accept key.
    pub(crate) async fn connect(addr: SocketAddr, path_and_query: &str) -> RawWs {
        let ws = pikku_testkit::RawWs::connect(addr, path_and_query).await;
        settle_behind_gateway().await;
        RawWs {
            ws: ws.require_clear_rsv(),
            partial: None,
            pings_seen: 0,
        }
    }

    /// Writes one unfragmented, masked frame (clients must mask, RFC 6455, section 5.3).
    pub(crate) async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.ws.send(0x80 | opcode, payload).await;
    }

    /// Sends a text frame with exactly these payload bytes (which need not be UTF-8).
    pub(crate) async fn send_text_bytes(&mut self, payload: &[u8]) {
        self.send_frame(OP_TEXT, payload).await;
    }

    /// Sends the JSON text of `value`.
    pub(crate) async fn send_json(&mut self, value: Value) {
        self.send_text_bytes(value.to_string().as_bytes()).await;
    }

    /// Sends a close frame with `code`: our half of a closing handshake the server started. A courtesy only,
    /// so a write error (the server already dropped the connection) is ignored.
    pub(crate) async fn send_close(&mut self, code: u16) {
        let frame = client_frame(0x80 | OP_CLOSE, &code.to_be_bytes(), Some([0; 4]));
        let _ = tokio::time::timeout(WAIT, self.ws.get_mut().write_all(&frame)).await;
    }

    /// The next frame or reassembled message as `(opcode, payload)`, including pings; `None` at EOF or on a
    /// read error. Cancel-safe.
    async fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            let (fin, opcode, payload) = self.ws.read_frame().await?;
            match (opcode, self.partial.take()) {
                (OP_CONTINUATION, Some((op, mut data))) => {
                    data.extend_from_slice(&payload);
                    if fin {
                        return Some((op, data));
                    }
                    self.partial = Some((op, data));
                }
                (OP_CONTINUATION, None) => {
                    panic!("server sent a continuation frame with nothing to continue")
                }
                (OP_TEXT | OP_BINARY, None) if !fin => self.partial = Some((opcode, payload)),
                (OP_TEXT | OP_BINARY, Some(_)) => {
                    panic!("server started a new message inside a fragmented one")
                }
                (op, partial) => {
                    // Control frames may interleave with a fragmented message; keep its progress.
                    self.partial = partial;
                    return Some((op, payload));
                }
            }
        }
    }

    /// The next data or close frame within `limit`, counting (never answering) pings; `None` on timeout.
    pub(crate) async fn next_frame_within(&mut self, limit: Duration) -> Option<Frame> {
        let read = async {
            loop {
                let frame = match self.read_message().await {
                    None => Frame::Ended("EOF or read error".to_owned()),
                    Some((OP_PING, _)) => {
                        self.pings_seen += 1;
                        continue;
                    }
                    Some((OP_PONG, _)) => continue,
                    Some((OP_TEXT, p)) => {
                        Frame::Text(String::from_utf8(p).expect("server sent invalid UTF-8 text"))
                    }
                    Some((OP_BINARY, p)) => Frame::Binary(p),
                    Some((OP_CLOSE, p)) if p.is_empty() => Frame::Close(None),
                    Some((OP_CLOSE, p)) => {
                        assert!(p.len() >= 2, "close payload of one byte");
                        let reason =
                            String::from_utf8(p[2..].to_vec()).expect("close reason is not UTF-8");
                        Frame::Close(Some((u16::from_be_bytes([p[0], p[1]]), reason)))
                    }
                    Some((op, _)) => panic!("server sent a frame with reserved opcode {op:#x}"),
                };
                return frame;
            }
        };
        tokio::time::timeout(limit, read).await.ok()
    }

    /// The next data or close frame; panics when nothing arrives within [`WAIT`].
    pub(crate) async fn next_frame(&mut self) -> Frame {
        self.next_frame_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("raw client: no frame within {WAIT:?}"))
    }

    /// Requires the next frame to be a text frame with exactly `text`.
    pub(crate) async fn expect_text(&mut self, text: &str) {
        match self.next_frame().await {
            Frame::Text(t) if t == text => {}
            other => panic!("[raw] expected txt {text:?}, got {}", show(&other)),
        }
    }

    /// Requires the next frame to be a text frame holding JSON that matches `expected`.
    pub(crate) async fn expect_json(&mut self, expected: Value) {
        let frame = self.next_frame().await;
        check_json("raw", &frame, &expected);
    }

    /// Requires the next frame to be a close frame with exactly this code and reason.
    pub(crate) async fn expect_close_with(&mut self, code: u16, reason: &str) {
        match self.next_frame().await {
            Frame::Close(Some((c, r))) if c == code && r == reason => {}
            other => panic!(
                "[raw] expected close {code} {reason:?}, got {}",
                show(&other)
            ),
        }
    }
}
