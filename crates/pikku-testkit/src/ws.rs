//! A hand-written RFC 6455 client: masked client frames of any shape, and server frames read one by one.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{read_head, write_upgrade, SAMPLE_ACCEPT};
use crate::WAIT;

/// The opcodes of RFC 6455 (section 5.2).
pub mod op {
    /// A continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xA;
}

/// The masking key [`RawWs::send`] uses.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as the raw client reads it: `(fin, opcode, payload)`.
pub type RawFrame = (bool, u8, Vec<u8>);

/// The header of a client frame: `first` is the first header byte (FIN, RSV, opcode); the length takes its
/// shortest form; the masking key follows unless `mask` is `None`.
#[must_use]
pub fn frame_header(first: u8, payload_len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = Vec::with_capacity(14);
    out.push(first);
    match payload_len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(mask) = mask {
        out.extend_from_slice(&mask);
    }
    out
}

/// A whole client frame: the [`frame_header`], then the payload masked with `mask` (as is when `None`).
#[must_use]
pub fn client_frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = frame_header(first, payload.len(), mask);
    match mask {
        Some(mask) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A hand-written client over any byte stream: writes arbitrary bytes and reads server frames one by one.
/// Reads append to an internal buffer, so a cancelled read loses nothing.
#[derive(Debug)]
pub struct RawWs<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    rsv_must_be_clear: bool,
}

impl<S> RawWs<S> {
    /// A client over `stream` that already holds `buffered`, the bytes read past the handshake.
    pub fn new(stream: S, buffered: Vec<u8>) -> Self {
        RawWs {
            stream,
            buf: buffered,
            rsv_must_be_clear: false,
        }
    }

    /// Makes every frame read assert that its RSV bits are clear (no extension was negotiated).
    #[must_use]
    pub fn require_clear_rsv(mut self) -> Self {
        self.rsv_must_be_clear = true;
        self
    }

    /// The stream and the bytes received but not yet parsed, for instance to split the stream.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Parses one complete frame off the front of the buffer. Server frames must not be masked (RFC 6455,
    /// section 5.1).
    fn parse_frame(&mut self) -> Option<RawFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        if self.rsv_must_be_clear {
            assert_eq!(
                b[0] & 0x70,
                0,
                "server frame with RSV bits set (no extension was negotiated)"
            );
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let len = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
                (usize::try_from(len).expect("frame length"), 10)
            }
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < at + len {
            return None;
        }
        let frame = (b[0] & 0x80 != 0, b[0] & 0x0f, b[at..at + len].to_vec());
        self.buf.drain(..at + len);
        Some(frame)
    }
}

impl RawWs<TcpStream> {
    /// Connects and completes the handshake for `target` (path and query), checking the 101 and its accept key.
    pub async fn connect(addr: SocketAddr, target: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::upgrade(stream, addr, target).await
    }

    /// Completes the handshake for `target` over an open connection, checking the 101 and its accept key.
    pub async fn upgrade(mut stream: TcpStream, addr: SocketAddr, target: &str) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        write_upgrade(&mut stream, addr, target, &[]).await;
        let (status, headers, rest) = read_head(&mut stream).await;
        assert_eq!(status, 101, "raw upgrade of {target}: {headers:?}");
        let accept = headers
            .iter()
            .find(|(n, _)| n == "sec-websocket-accept")
            .map(|(_, v)| v.as_str());
        assert_eq!(accept, Some(SAMPLE_ACCEPT), "Sec-WebSocket-Accept");
        Self::new(stream, rest)
    }
}

impl<S: AsyncRead + Unpin> RawWs<S> {
    /// The next server frame, without a time limit; `None` at EOF or on a read error. Cancel-safe.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some(frame) = self.parse_frame() {
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next server frame; `None` at EOF or on a reset. Panics when nothing comes within [`WAIT`].
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(WAIT, self.read_frame())
            .await
            .unwrap_or_else(|_| panic!("raw client: nothing within {WAIT:?}"))
    }

    /// Requires the server to end the connection with no further frame.
    pub async fn expect_end(&mut self) {
        if let Some(frame) = self.next_frame().await {
            panic!("expected the end of the connection, got {frame:?}");
        }
    }
}

impl<S: AsyncWrite + Unpin> RawWs<S> {
    /// Writes these bytes as they are; panics when that takes longer than [`WAIT`].
    pub async fn write(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("raw write timed out")
            .expect("raw write");
    }

    /// Writes one frame whose first header byte is `first` (FIN, RSV, opcode), masked with [`MASK`].
    pub async fn send(&mut self, first: u8, payload: &[u8]) {
        self.write(&client_frame(first, payload, Some(MASK))).await;
    }
}
