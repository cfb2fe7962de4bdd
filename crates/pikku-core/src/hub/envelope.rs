//! The bytes a [`RemoteEvent`] travels as through a broker, the same for every backend.
//!
//! ```text
//! offset  size  field
//! 0       1     magic 0xB5
//! 1       1     format version (1)
//! 2       2     header length H, big-endian: the bytes from offset 4 up to the payload
//! 4       16    origin node id
//! 20      1     payload kind: 0 JSON, 1 text, 2 binary
//! 21      2     topic length T, then T bytes of UTF-8
//! ..      2     exclude length E (0xFFFF: none), then E bytes of UTF-8
//! ..      8     publication time: microseconds since the Unix epoch, big-endian (optional: absent when
//!               the header ends before it)
//! ..      ..    fields added by later writers (skipped by this reader)
//! 4 + H   rest  payload
//! ```
//!
//! A field added later goes at the end of the header and keeps the version: older readers skip it thanks to
//! the header length, so nodes of two releases can share a broker during a rolling upgrade. The version changes
//! only for a change older readers cannot skip, and they refuse such envelopes with
//! [`EnvelopeError::UnsupportedVersion`] rather than misread them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use super::driver::{NodeId, PayloadKind, RemoteEvent};

const MAGIC: u8 = 0xB5;
const VERSION: u8 = 1;
const NO_EXCLUDE: u16 = u16::MAX;
/// Header bytes of version 1 without topic and exclude: origin, kind and the two lengths.
const FIXED_HEADER: usize = 16 + 1 + 2 + 2;
/// The optional publication time after the exclude id.
const PUBLISHED_AT_LEN: usize = 8;

/// Why received bytes are not an envelope this node can read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than its own lengths say, or without the magic byte.
    Malformed,
    /// Written by a format version this node does not know.
    UnsupportedVersion(u8),
    /// An unknown payload kind.
    UnknownKind(u8),
    /// The topic or exclude id is not UTF-8.
    NotUtf8,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed hub envelope"),
            Self::UnsupportedVersion(v) => write!(f, "hub envelope version {v} is not supported"),
            Self::UnknownKind(k) => write!(f, "unknown hub payload kind {k}"),
            Self::NotUtf8 => f.write_str("hub envelope topic or exclude id is not UTF-8"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// Encodes `event` for a broker.
///
/// ```
/// use pikku::hub::{envelope, NodeId, PayloadKind, RemoteEvent};
///
/// let event = RemoteEvent::new(NodeId::random(), "room:1", None, PayloadKind::Binary, vec![1, 2, 3].into());
/// let bytes = envelope::encode(&event);
/// assert_eq!(envelope::decode(&bytes).unwrap(), event);
/// ```
///
/// # Panics
/// When the topic or the exclude id is 65,535 bytes or longer; the hub's topic limit keeps topics far below.
#[must_use]
pub fn encode(event: &RemoteEvent) -> Bytes {
    let exclude = event.exclude.as_deref().unwrap_or("");
    let published_at = event.published_at.map(micros_since_epoch);
    let header = FIXED_HEADER
        + event.topic.len()
        + exclude.len()
        + published_at.map_or(0, |_| PUBLISHED_AT_LEN);
    let mut out = BytesMut::with_capacity(4 + header + event.payload.len());
    out.put_u8(MAGIC);
    out.put_u8(VERSION);
    out.put_u16(u16::try_from(header).expect("hub envelope header under 64 KiB"));
    out.put_slice(&event.origin.to_bytes());
    out.put_u8(match event.kind {
        PayloadKind::Json => 0,
        PayloadKind::Text => 1,
        PayloadKind::Binary => 2,
    });
    put_str(&mut out, &event.topic);
    match &event.exclude {
        Some(id) => put_str(&mut out, id),
        None => out.put_u16(NO_EXCLUDE),
    }
    if let Some(micros) = published_at {
        out.put_u64(micros);
    }
    out.put_slice(&event.payload);
    out.freeze()
}

fn micros_since_epoch(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

fn put_str(out: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len())
        .ok()
        .filter(|&n| n != NO_EXCLUDE)
        .expect("hub envelope string under 64 KiB");
    out.put_u16(len);
    out.put_slice(s.as_bytes());
}

/// Decodes bytes received from a broker. The payload shares `bytes` when it is a `Bytes`; pass a slice and it
/// is copied once.
///
/// # Errors
/// [`EnvelopeError`] when the bytes are not a version-1 envelope.
pub fn decode(bytes: &[u8]) -> Result<RemoteEvent, EnvelopeError> {
    decode_bytes(Bytes::copy_from_slice(bytes))
}

/// [`decode`] without a copy of the payload.
///
/// # Errors
/// As for [`decode`].
pub fn decode_bytes(bytes: Bytes) -> Result<RemoteEvent, EnvelopeError> {
    let [magic, version, h0, h1, ..] = bytes[..] else {
        return Err(EnvelopeError::Malformed);
    };
    if magic != MAGIC {
        return Err(EnvelopeError::Malformed);
    }
    if version != VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let header_len = usize::from(u16::from_be_bytes([h0, h1]));
    let header = bytes
        .get(4..4 + header_len)
        .ok_or(EnvelopeError::Malformed)?;
    let mut reader = Reader(header);
    let origin = NodeId::from_bytes(reader.take(16)?.try_into().expect("16 bytes"));
    let kind = match reader.take(1)?[0] {
        0 => PayloadKind::Json,
        1 => PayloadKind::Text,
        2 => PayloadKind::Binary,
        other => return Err(EnvelopeError::UnknownKind(other)),
    };
    let topic = reader.string()?.ok_or(EnvelopeError::Malformed)?;
    let exclude = reader.string()?;
    // Optional: a writer that does not send it ends the header here.
    let published_at = match reader.take(PUBLISHED_AT_LEN) {
        Ok(micros) => {
            let micros = u64::from_be_bytes(micros.try_into().expect("8 bytes"));
            UNIX_EPOCH.checked_add(Duration::from_micros(micros))
        }
        Err(_) => None,
    };
    Ok(RemoteEvent {
        origin,
        topic,
        exclude,
        kind,
        payload: bytes.slice(4 + header_len..),
        published_at,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// A length-prefixed string; `None` for the "absent" length.
    fn string(&mut self) -> Result<Option<Arc<str>>, EnvelopeError> {
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]);
        if len == NO_EXCLUDE {
            return Ok(None);
        }
        let text = std::str::from_utf8(self.take(usize::from(len))?)
            .map_err(|_| EnvelopeError::NotUtf8)?;
        Ok(Some(Arc::from(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(exclude: Option<&str>, kind: PayloadKind) -> RemoteEvent {
        RemoteEvent::new(
            NodeId::random(),
            "topic/ä",
            exclude,
            kind,
            Bytes::from_static(b"{\"a\":1}"),
        )
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in [PayloadKind::Json, PayloadKind::Text, PayloadKind::Binary] {
            for exclude in [None, Some(""), Some("channel-1")] {
                let e = event(exclude, kind);
                assert_eq!(decode(&encode(&e)).unwrap(), e);
            }
        }
    }

    #[test]
    fn a_longer_header_from_a_later_writer_is_skipped() {
        let e = event(Some("x"), PayloadKind::Json);
        let bytes = encode(&e);
        let header_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let mut newer = bytes[..4 + header_len].to_vec();
        newer.extend_from_slice(b"\x00\x07future!");
        let grown = u16::try_from(newer.len() - 4).unwrap().to_be_bytes();
        newer[2..4].copy_from_slice(&grown);
        newer.extend_from_slice(&bytes[4 + header_len..]);
        assert_eq!(decode(&newer).unwrap(), e);
    }

    #[test]
    fn an_event_from_a_writer_without_the_publication_time_has_none() {
        let mut e = event(None, PayloadKind::Json);
        e.published_at = None;
        let bytes = encode(&e);
        assert_eq!(decode(&bytes).unwrap().published_at, None);
        let timed = event(None, PayloadKind::Json);
        assert_eq!(encode(&timed).len(), bytes.len() + PUBLISHED_AT_LEN);
        assert_eq!(decode(&encode(&timed)).unwrap(), timed);
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let bytes = encode(&event(Some("x"), PayloadKind::Text));
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        assert_eq!(decode(b""), Err(EnvelopeError::Malformed));
        assert_eq!(decode(b"\x00\x01\x00\x00"), Err(EnvelopeError::Malformed));
        assert_eq!(
            decode(b"\xB5\x09\x00\x00"),
            Err(EnvelopeError::UnsupportedVersion(9))
        );
        let mut wrong_kind = bytes.to_vec();
        wrong_kind[20] = 7;
        assert_eq!(decode(&wrong_kind), Err(EnvelopeError::UnknownKind(7)));
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let mut noisy = bytes.to_vec();
            for _ in 0..3 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let at = (rng as usize) % noisy.len();
                noisy[at] = (rng >> 32) as u8;
            }
            let _ = decode(&noisy);
        }
    }
}
