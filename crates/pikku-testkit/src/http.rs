//! Raw HTTP upgrade requests and responses over plain TCP.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// The sample key of RFC 6455 (section 1.3), whose accept value ([`SAMPLE_ACCEPT`]) is known, so a raw client can
/// check the handshake without a SHA-1 implementation.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` value for [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// An HTTP response to a raw upgrade request. Header names are lower-cased.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers in the order received, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body: every byte read after the head up to (at least) its `Content-Length`; empty for a 101.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the first header with this (lower-case) name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The values of every header with this (lower-case) name, in order.
    #[must_use]
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The text of a WebSocket upgrade request for `target` (path and query) with [`SAMPLE_KEY`]; `extra` headers
/// are added verbatim.
#[must_use]
pub fn upgrade_request(addr: SocketAddr, target: &str, extra: &[(&str, &str)]) -> String {
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Writes the [`upgrade_request`] for `target` to `stream`.
pub async fn write_upgrade<W: AsyncWrite + Unpin>(
    stream: &mut W,
    addr: SocketAddr,
    target: &str,
    extra: &[(&str, &str)],
) {
    stream
        .write_all(upgrade_request(addr, target, extra).as_bytes())
        .await
        .expect("write upgrade request");
}

/// Reads an HTTP response head from `stream`. Returns status, lower-cased headers and the bytes read past the
/// head (the start of the body, or WebSocket frames the server sent right after its 101).
pub async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = read_chunk(stream, &mut buf, "HTTP response head").await;
        assert!(
            n > 0,
            "connection closed before a complete HTTP response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
    };
    let head = String::from_utf8(buf[..end].to_vec()).expect("HTTP head is not UTF-8");
    let rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, rest)
}

/// Sends an upgrade request for `target` over a new TCP connection and reads the response. A refusal must be
/// a complete response: its body is read by `Content-Length`, which must be present. A 101 has no body; the
/// connection is dropped right after its head.
pub async fn raw_upgrade(addr: SocketAddr, target: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    write_upgrade(&mut stream, addr, target, extra).await;
    let (status, headers, mut body) = read_head(&mut stream).await;
    let response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if status == 101 {
        return response;
    }
    let length: usize = response
        .header("content-length")
        .unwrap_or_else(|| panic!("refusal {status} without Content-Length: {response:?}"))
        .parse()
        .expect("numeric Content-Length");
    while body.len() < length {
        let n = read_chunk(&mut stream, &mut body, "HTTP body").await;
        assert!(
            n > 0,
            "connection closed after {} of {length} body bytes",
            body.len()
        );
    }
    HttpResponse { body, ..response }
}

/// Reads what `stream` has (at most 4 KiB) onto the end of `buf`; returns how many bytes, 0 at EOF. Panics on
/// a read error or when nothing comes within [`WAIT`].
/// Sends a plain (not upgrading) `method` request for `target` over a new TCP connection, with
/// `Connection: close`, and reads the whole response until the server closes. `HEAD` responses have no body.
pub async fn plain_request(addr: SocketAddr, method: &str, target: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let (status, headers, mut body) = read_head(&mut stream).await;
    while read_chunk(&mut stream, &mut body, "HTTP body").await > 0 {}
    HttpResponse {
        status,
        headers,
        body,
    }
}

async fn read_chunk<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>, what: &str) -> usize {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .unwrap_or_else(|e| panic!("read {what}: {e}"));
    buf.extend_from_slice(&chunk[..n]);
    n
}
