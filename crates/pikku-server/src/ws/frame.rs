//! RFC 6455 frame headers, as a client sends them to a server: pure functions, fuzzed and unit-tested.
//!
//! They are public for the fuzz targets and for anyone checking client frames the way the server does; the
//! server's reader is built on them.

/// Opcodes (RFC 6455, section 5.2).
pub(crate) mod opcode {
    pub(crate) const CONTINUATION: u8 = 0x0;
    pub(crate) const TEXT: u8 = 0x1;
    pub(crate) const BINARY: u8 = 0x2;
    pub(crate) const CLOSE: u8 = 0x8;
    pub(crate) const PING: u8 = 0x9;
    pub(crate) const PONG: u8 = 0xA;
}

/// Why a connection must be closed while reading. Each variant stands for a close code and
/// reason the server sends: 1002 with the variant's text, 1007 `invalid utf-8`, or 1009 `message too big`.
///
/// ```
/// use pikku::server::ws::frame::{parse_header, Violation};
///
/// // A text frame without a mask: clients must mask every frame.
/// assert_eq!(parse_header(&[0x81, 0x05], 1024), Err(Violation::Protocol("unmasked client frame")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// 1002: the peer broke the framing rules; the text is the close reason sent.
    Protocol(&'static str),
    /// 1007: a text message or close reason is not UTF-8.
    InvalidUtf8,
    /// 1009: a frame or reassembled message exceeds the limit.
    TooBig,
}

impl Violation {
    /// The close code to send.
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::InvalidUtf8 => 1007,
            Self::TooBig => 1009,
        }
    }

    /// The close reason to send.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Protocol(reason) => reason,
            Self::InvalidUtf8 => "invalid utf-8",
            Self::TooBig => "message too big",
        }
    }
}

/// A decoded frame header, as [`parse_header`] returns it.
///
/// ```
/// use pikku::server::ws::frame::{parse_header, Header};
///
/// // FIN + text, masked, 5-byte payload, mask 1 2 3 4.
/// let header = parse_header(&[0x81, 0x85, 1, 2, 3, 4], 1024).unwrap().unwrap();
/// assert_eq!(header, Header { fin: true, opcode: 0x1, mask: [1, 2, 3, 4], header_len: 6, payload_len: 5 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Final fragment of a message.
    pub fin: bool,
    /// The opcode: 0x0 continuation, 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong (no other value is
    /// accepted).
    pub opcode: u8,
    /// The masking key (client frames are always masked).
    pub mask: [u8; 4],
    /// Bytes taken by the header, mask included.
    pub header_len: usize,
    /// Payload length.
    pub payload_len: usize,
}

/// Decodes the header at the start of `buf`: `Ok(None)` when more bytes are needed.
///
/// `max_payload` bounds a single frame's payload (1009 beyond it). The payload itself is not read: it starts at
/// `header_len` and is still masked (see [`unmask`]).
///
/// ```
/// use pikku::server::ws::frame::{parse_header, Violation};
///
/// let frame = [0x82, 0xFE, 0x01, 0x00, 9, 9, 9, 9]; // binary, 16-bit length 256, then the mask
/// assert_eq!(parse_header(&frame[..3], 1024), Ok(None)); // not all there yet
/// assert_eq!(parse_header(&frame, 1024).unwrap().unwrap().payload_len, 256);
/// assert_eq!(parse_header(&frame, 100), Err(Violation::TooBig));
/// ```
///
/// # Errors
/// A [`Violation`] of the framing rules: reserved bits or opcodes, an unmasked frame, a fragmented or oversized
/// control frame, a length not in its shortest form (or with the top bit set), or a payload over `max_payload`.
pub fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, Violation> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(Violation::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let is_control = opcode & 0x08 != 0;
    match opcode {
        opcode::CONTINUATION
        | opcode::TEXT
        | opcode::BINARY
        | opcode::CLOSE
        | opcode::PING
        | opcode::PONG => {}
        _ => return Err(Violation::Protocol("reserved opcode")),
    }
    if b1 & 0x80 == 0 {
        return Err(Violation::Protocol("unmasked client frame"));
    }
    let (len, len_bytes) = match b1 & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            if len < 126 {
                return Err(Violation::Protocol("invalid payload length"));
            }
            (len, 2)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            // The most significant bit must be 0 and the shortest form must be used (RFC 6455, section 5.2).
            if len >> 63 != 0 || len <= u64::from(u16::MAX) {
                return Err(Violation::Protocol("invalid payload length"));
            }
            (len, 8)
        }
        n => (u64::from(n), 0),
    };
    if is_control && (!fin || len > 125) {
        return Err(Violation::Protocol("invalid control frame"));
    }
    if len > max_payload as u64 {
        return Err(Violation::TooBig);
    }
    let mask_at = 2 + len_bytes;
    let Some(mask) = buf.get(mask_at..mask_at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        header_len: mask_at + 4,
        payload_len: len as usize,
    }))
}

/// Unmasks `payload` in place (RFC 6455, section 5.3), eight bytes at a time. `payload` must start at the first
/// payload byte of the frame, since the mask is applied by position. Masking is its own inverse.
///
/// ```
/// use pikku::server::ws::frame::unmask;
///
/// let mask = [1, 2, 3, 4];
/// let mut payload = *b"hello";
/// unmask(&mut payload, mask); // masks
/// assert_ne!(&payload, b"hello");
/// unmask(&mut payload, mask); // and unmasks again
/// assert_eq!(&payload, b"hello");
/// ```
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Writes a server frame header (unmasked, final) for `opcode` and `len` into `out`; returns its length.
pub(crate) fn encode_header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Checks a close frame's payload: empty, or a valid code followed by a UTF-8 reason. Returns the code (`None`
/// for an empty payload). Valid codes are 1000–1003, 1007–1014 and 3000–4999.
///
/// ```
/// use pikku::server::ws::frame::{parse_close, Violation};
///
/// assert_eq!(parse_close(&[]), Ok(None));
/// assert_eq!(parse_close(&[0x03, 0xE8, b'b', b'y', b'e']), Ok(Some(1000)));
/// assert_eq!(parse_close(&[0x03, 0xED]), Err(Violation::Protocol("invalid close code"))); // 1005 may not be sent
/// assert_eq!(parse_close(&[0x03, 0xE8, 0xFF]), Err(Violation::InvalidUtf8));
/// ```
///
/// # Errors
/// 1002 for a one-byte payload or a code that may not be sent; 1007 for a reason that is not UTF-8.
pub fn parse_close(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation::Protocol("invalid close frame")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(Violation::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Violation::InvalidUtf8);
            }
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn parses_masked_text_frames_of_each_length_form() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload = vec![b'a'; len];
            let bytes = masked(0x81, &payload);
            let header = parse_header(&bytes, usize::MAX).unwrap().unwrap();
            assert_eq!(
                (header.fin, header.opcode, header.payload_len),
                (true, opcode::TEXT, len)
            );
            let mut body = bytes[header.header_len..].to_vec();
            unmask(&mut body, header.mask);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let bytes = masked(0x81, &[b'x'; 200]);
        for cut in 0..8 {
            assert_eq!(
                parse_header(&bytes[..cut], usize::MAX),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn framing_violations_are_1002() {
        assert_eq!(parse_header(&[0x81, 0x00], 10).unwrap_err().code(), 1002); // unmasked
        assert_eq!(
            parse_header(&[0xC1, 0x80, 0, 0, 0, 0], 10)
                .unwrap_err()
                .code(),
            1002
        ); // RSV1
        assert_eq!(
            parse_header(&[0x83, 0x80, 0, 0, 0, 0], 10)
                .unwrap_err()
                .code(),
            1002
        ); // opcode 3
        assert_eq!(
            parse_header(&[0x09, 0x80, 0, 0, 0, 0], 10)
                .unwrap_err()
                .code(),
            1002
        ); // fragmented ping
        assert_eq!(
            parse_header(&masked(0x89, &[0; 126]), 1000)
                .unwrap_err()
                .code(),
            1002
        ); // big ping
    }

    #[test]
    fn oversized_frames_are_1009_before_their_payload_arrives() {
        let header = [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 1]; // 1 MiB + 1
        assert_eq!(parse_header(&header, 1 << 20), Err(Violation::TooBig));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]), Ok(None));
        assert_eq!(parse_close(&[0x03, 0xE8]), Ok(Some(1000)));
        assert_eq!(parse_close(&[0x03]).unwrap_err().code(), 1002);
        assert_eq!(parse_close(&[0x03, 0xED]).unwrap_err().code(), 1002); // 1005 may not be sent
        assert_eq!(
            parse_close(&[0x03, 0xE8, 0xC3, 0x28]).unwrap_err().code(),
            1007
        );
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        let mask = [0xA1, 0xB2, 0xC3, 0xD4];
        for len in 0..40 {
            let original: Vec<u8> = (0..len as u8).collect();
            let mut fast = original.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        let mut out = [0u8; 10];
        assert_eq!(encode_header(opcode::TEXT, 5, &mut out), 2);
        assert_eq!(&out[..2], &[0x81, 5]);
        assert_eq!(encode_header(opcode::BINARY, 300, &mut out), 4);
        assert_eq!(&out[..4], &[0x82, 126, 1, 44]);
        assert_eq!(encode_header(opcode::TEXT, 70_000, &mut out), 10);
        assert_eq!(out[1], 127);
    }
}
