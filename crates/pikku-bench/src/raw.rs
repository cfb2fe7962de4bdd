//! Hand-made WebSocket connections for the hostile clients of the `attack` scenario: an upgrade
//! written by hand over plain TCP, then whatever bytes the attack needs (a frame header and no
//! payload, a frame cut short, a payload dripped byte by byte), which a well-behaved client
//! library refuses to send.
//!
//! Frame headers and the upgrade request come from `pikku-testkit` (the test suites' own RFC 6455
//! client); this module adds what a load generator needs on top: errors instead of panics and a
//! watcher that notices when the server closes.

use std::time::Duration;

use pikku_testkit::http::{upgrade_request, SAMPLE_ACCEPT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use crate::client::{Connector, CONNECT_TIMEOUT};
use crate::Result;

pub use pikku_testkit::ws::MASK;

/// The first header byte of a final text frame (FIN + opcode 1).
pub const FIN_TEXT: u8 = 0x81;

/// Longest upgrade response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Opens a TCP connection and completes the WebSocket upgrade by hand, within
/// [`CONNECT_TIMEOUT`]. The server's 101 must carry the expected `Sec-WebSocket-Accept`.
pub async fn upgrade(connector: &Connector) -> Result<TcpStream> {
    tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut tcp = connector.open_tcp().await?;
        let request = upgrade_request(connector.addr(), connector.target(), &[]);
        tcp.write_all(request.as_bytes()).await?;
        let head = read_head(&mut tcp).await?;
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "101" {
            let first = head.lines().next().unwrap_or_default();
            return Err(format!("upgrade refused: {first}").into());
        }
        if !head.contains(SAMPLE_ACCEPT) {
            return Err("upgrade answered without the expected Sec-WebSocket-Accept".into());
        }
        Ok(tcp)
    })
    .await
    .map_err(|_| format!("no WebSocket upgrade within {CONNECT_TIMEOUT:?}"))?
}

/// Reads the response head byte by byte, so no frame the server sends after it is consumed.
async fn read_head(tcp: &mut TcpStream) -> Result<String> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err("upgrade response head too long".into());
        }
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await? == 0 {
            return Err("connection closed during the upgrade".into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The masked header of a final text frame declaring `payload_len` bytes: 14 bytes when the
/// length needs the 64-bit form (over 65,535).
#[must_use]
pub fn text_header(payload_len: usize) -> Vec<u8> {
    pikku_testkit::frame_header(FIN_TEXT, payload_len, Some(MASK))
}

/// `payload` masked with [`MASK`] as the bytes of a frame payload starting at offset 0.
#[must_use]
pub fn masked(payload: &[u8]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ MASK[i % 4])
        .collect()
}

/// How a server ended a connection, as seen by [`watch_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// The close code of the server's close frame; `None` when the connection ended without one
    /// (EOF or reset) or the frame had no code.
    pub code: Option<u16>,
}

/// Reads server frames until the server closes; returns the close code. Data frames and pings
/// are skipped (a hostile client answers nothing). Cancel by dropping the future.
pub async fn watch_close(mut read: OwnedReadHalf) -> Closed {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        // Drop every complete frame at the front; stop at a close frame.
        while let Some((opcode, header, len)) = frame_at(&buf) {
            if buf.len() < header + len {
                break;
            }
            if opcode == 0x8 {
                let code = (len >= 2).then(|| u16::from_be_bytes([buf[header], buf[header + 1]]));
                return Closed { code };
            }
            buf.drain(..header + len);
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return Closed { code: None },
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The opcode, header length and payload length of the (unmasked) server frame at the front of
/// `buf`, once its header is complete.
fn frame_at(buf: &[u8]) -> Option<(u8, usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    match buf[1] & 0x7f {
        126 if buf.len() >= 4 => {
            Some((opcode, 4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))))
        }
        127 if buf.len() >= 10 => {
            let len = u64::from_be_bytes(buf[2..10].try_into().ok()?);
            Some((opcode, 10, usize::try_from(len).ok()?))
        }
        126 | 127 => None,
        n => Some((opcode, 2, usize::from(n))),
    }
}

/// Writes `bytes` in chunks of at most `chunk` bytes, giving up at `deadline`; returns how many
/// were written (fewer than asked when the server stopped reading or the connection failed).
pub async fn write_until(
    tcp: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
    chunk: usize,
    limit: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    let mut written = 0;
    for piece in bytes.chunks(chunk.max(1)) {
        match tokio::time::timeout_at(deadline, tcp.write_all(piece)).await {
            Ok(Ok(())) => written += piece.len(),
            _ => break,
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_fourteen_bytes_for_large_frames() {
        let h = text_header(1_000_000);
        assert_eq!(h.len(), 14);
        assert_eq!(h[0], FIN_TEXT);
        assert_eq!(h[1], 0x80 | 127);
        assert_eq!(u64::from_be_bytes(h[2..10].try_into().unwrap()), 1_000_000);
    }

    #[test]
    fn masking_round_trips() {
        let m = masked(b"hello");
        assert_eq!(masked(&m), b"hello");
    }

    #[test]
    fn parses_server_frame_headers() {
        assert_eq!(frame_at(&[0x88, 2, 3, 0xe9]), Some((8, 2, 2)));
        assert_eq!(frame_at(&[0x81, 126, 1, 0]), Some((1, 4, 256)));
        assert_eq!(frame_at(&[0x81, 127, 0]), None);
        assert_eq!(frame_at(&[0x81]), None);
    }
}
