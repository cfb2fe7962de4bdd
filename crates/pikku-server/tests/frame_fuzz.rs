//! Deterministic randomized tests of the RFC 6455 frame functions the server's reader is built on
//! (`pikku_server::ws::frame`): `parse_header`, `unmask` and `parse_close`.
//!
//! A small xorshift generator with fixed seeds feeds a few hundred thousand byte strings (biased towards the
//! interesting header bytes) and mutations of valid frames. Besides "never panics", every answer is checked
//! against an independent reading of the RFC:
//! - an accepted header matches the bytes (FIN, opcode, mask, length form), fits in the input
//!   (`header_len <= input length`) and respects the limit (`payload_len <= max`);
//! - every header that follows the rules and fits the limit is accepted once its bytes are there;
//! - a rejection names a rule that the bytes actually break;
//! - more input never changes an answer that was already decided, and every prefix of an accepted header asks
//!   for more bytes.
//!
//! The same functions are fuzzed with libFuzzer by `fuzz/fuzz_targets/frame_parser.rs`.

use pikku_server::ws::frame::{parse_close, parse_header, unmask, Header, Violation};
use pikku_testkit::{frame_header, Rng};

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const OPCODES: [u8; 6] = [CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG];

/// Limits the parser is called with: the edges of the length forms and the server's default.
const MAXES: [usize; 9] = [
    0,
    1,
    125,
    126,
    65_535,
    65_536,
    1 << 20,
    u32::MAX as usize,
    usize::MAX,
];

// ---------------------------------------------------------------------------------------------------------
// An independent reading of RFC 6455, section 5.2, for client frames
// ---------------------------------------------------------------------------------------------------------

/// What the first bytes of a frame say, as far as they are present.
#[derive(Debug)]
struct Reading {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    /// The 7-bit length field.
    len7: u8,
    /// The payload length, once its extended bytes are present.
    len: Option<u64>,
    /// Bytes of the whole header, mask included (a masked frame is assumed).
    header_len: usize,
}

fn read(buf: &[u8]) -> Option<Reading> {
    let [b0, b1, ..] = *buf else {
        return None;
    };
    let len7 = b1 & 0x7F;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let len = match len7 {
        126 => buf
            .get(2..4)
            .map(|b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
        127 => buf
            .get(2..10)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))),
        n => Some(u64::from(n)),
    };
    Some(Reading {
        fin: b0 & 0x80 != 0,
        rsv: b0 & 0x70,
        opcode: b0 & 0x0F,
        masked: b1 & 0x80 != 0,
        len7,
        len,
        header_len: 2 + ext + 4,
    })
}

impl Reading {
    fn is_control(&self) -> bool {
        self.opcode & 0x08 != 0
    }

    /// A rule of RFC 6455, section 5.2, that the bytes present break, apart from the payload limit and minimal length
    /// encoding.
    fn breaks_a_rule(&self) -> bool {
        self.rsv != 0
            || !OPCODES.contains(&self.opcode)
            || !self.masked
            || self.len.is_some_and(|len| len >> 63 != 0)
            || (self.is_control() && !self.fin)
            || (self.is_control() && self.len.is_some_and(|len| len > 125))
    }

    /// The length is encoded in more bytes than needed (RFC 6455, section 5.2: "the minimal number of bytes MUST be
    /// used").
    fn non_minimal(&self) -> bool {
        match (self.len7, self.len) {
            (126, Some(len)) => len < 126,
            (127, Some(len)) => len <= 0xFFFF,
            _ => false,
        }
    }
}

/// Checks one answer of `parse_header` against the reading of the bytes, and its stability under more input.
fn check_header(buf: &[u8], max: usize, rng: &mut Rng) -> Result<Option<Header>, Violation> {
    let answer = parse_header(buf, max);
    let reading = read(buf);
    match (&answer, &reading) {
        (Ok(None), None) => {}
        (_, None) => panic!("{buf:02x?}: decided {answer:?} with fewer than 2 bytes"),
        (Ok(Some(h)), Some(r)) => {
            let len = r.len.expect("an accepted header has its length bytes");
            assert!(
                h.header_len <= buf.len(),
                "{buf:02x?}: header_len past the input"
            );
            assert!(
                h.payload_len <= max,
                "{buf:02x?}: payload_len {} > max {max}",
                h.payload_len
            );
            assert_eq!(h.payload_len as u64, len, "{buf:02x?}");
            assert_eq!(h.header_len, r.header_len, "{buf:02x?}");
            assert!(matches!(h.header_len, 6 | 8 | 14), "{buf:02x?}");
            assert_eq!((h.fin, h.opcode), (r.fin, r.opcode), "{buf:02x?}");
            let at = h.header_len - 4;
            assert_eq!(&h.mask[..], &buf[at..at + 4], "{buf:02x?}");
            assert!(
                !r.breaks_a_rule(),
                "{buf:02x?}: accepted a frame that breaks a rule: {r:?}"
            );
            assert!(
                h.opcode & 0x08 == 0 || h.payload_len <= 125,
                "control frames carry at most 125 bytes"
            );
            // Every strict prefix of the header asks for more bytes.
            for k in 0..h.header_len {
                assert_eq!(
                    parse_header(&buf[..k], max),
                    Ok(None),
                    "{buf:02x?} cut at {k}"
                );
            }
        }
        (Ok(None), Some(r)) => {
            assert!(
                buf.len() < 14,
                "{buf:02x?}: asked for more with a full header's bytes"
            );
            assert!(
                r.len.is_none() || buf.len() < r.header_len,
                "{buf:02x?}: asked for more although the header is complete ({r:?}, max {max})"
            );
        }
        (Err(Violation::TooBig), Some(r)) => {
            assert!(
                r.len.is_some_and(|len| len > max as u64),
                "{buf:02x?}: TooBig for a length within {max} ({r:?})"
            );
        }
        (Err(Violation::Protocol(reason)), Some(r)) => {
            assert!(!reason.is_empty());
            assert!(
                r.breaks_a_rule() || r.non_minimal(),
                "{buf:02x?}: rejected ({reason}) although no rule is broken: {r:?}"
            );
        }
        (Err(Violation::InvalidUtf8), _) => panic!("{buf:02x?}: a header cannot be invalid UTF-8"),
    }
    // Completeness: a header that follows the rules, fits the limit and is all there is accepted.
    if let Some(r) = &reading {
        let complete = r.len.is_some() && buf.len() >= r.header_len;
        let within = r.len.is_some_and(|len| len <= max as u64);
        if complete && within && !r.breaks_a_rule() && !r.non_minimal() {
            assert!(
                matches!(answer, Ok(Some(_))),
                "{buf:02x?}: a valid header was not accepted: {answer:?} (max {max})"
            );
        }
    }
    // More input never changes a decided answer.
    if !matches!(answer, Ok(None)) {
        let mut longer = buf.to_vec();
        let extra = rng.below(16) + 1;
        longer.extend(rng.drawn_bytes(extra));
        assert_eq!(
            parse_header(&longer, max),
            answer,
            "{buf:02x?} + {extra} bytes"
        );
    }
    answer
}

/// A first header byte, biased towards known opcodes with FIN set.
fn first_byte(rng: &mut Rng) -> u8 {
    match rng.below(4) {
        0 => rng.byte(),
        1 => rng.pick(&OPCODES),
        _ => 0x80 | rng.pick(&OPCODES),
    }
}

/// A second header byte, biased towards masked frames and the length-form edges.
fn second_byte(rng: &mut Rng) -> u8 {
    let mask = if rng.chance(85) { 0x80 } else { 0 };
    mask | match rng.below(4) {
        0 => rng.byte() & 0x7F,
        1 => rng.pick(&[0, 1, 124, 125]),
        _ => rng.pick(&[126, 127]),
    }
}

/// Extended length bytes near the interesting values, or random.
fn length_bytes(rng: &mut Rng, len7: u8) -> Vec<u8> {
    let interesting: [u64; 12] = [
        0,
        5,
        125,
        126,
        0xFFFF,
        0x1_0000,
        1 << 20,
        (1 << 20) + 1,
        u64::from(u32::MAX),
        1 << 62,
        1 << 63,
        u64::MAX,
    ];
    let value = if rng.chance(50) {
        rng.pick(&interesting)
    } else {
        rng.next_u64()
    };
    match len7 {
        126 => (value as u16).to_be_bytes().to_vec(),
        127 => value.to_be_bytes().to_vec(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// parse_header
// ---------------------------------------------------------------------------------------------------------

#[test]
fn random_bytes_never_panic_and_accepted_headers_are_consistent() {
    let mut rng = Rng::new(0x5EED_0001);
    let (mut accepted, mut more, mut protocol, mut too_big) = (0, 0, 0, 0);
    for i in 0..300_000 {
        let buf = if i % 3 == 0 {
            // Uniformly random bytes.
            let len = rng.below(20);
            rng.drawn_bytes(len)
        } else {
            // Structured: plausible header bytes, then a random cut.
            let b0 = first_byte(&mut rng);
            let b1 = second_byte(&mut rng);
            let mut buf = vec![b0, b1];
            buf.extend(length_bytes(&mut rng, b1 & 0x7F));
            let tail = rng.below(8);
            buf.extend(rng.drawn_bytes(tail));
            let cut = rng.below(buf.len() + 1);
            buf.truncate(if rng.chance(70) { buf.len() } else { cut });
            buf
        };
        let max = if rng.chance(50) {
            1 << 20
        } else {
            rng.pick(&MAXES)
        };
        match check_header(&buf, max, &mut rng) {
            Ok(Some(_)) => accepted += 1,
            Ok(None) => more += 1,
            Err(Violation::Protocol(_)) => protocol += 1,
            Err(_) => too_big += 1,
        }
    }
    // The generator reaches every outcome often, so the properties above were exercised on each.
    for (name, count) in [
        ("accepted", accepted),
        ("need more", more),
        ("protocol", protocol),
        ("too big", too_big),
    ] {
        assert!(count > 10_000, "{name}: only {count} of 300000");
    }
}

/// A valid, masked client frame with a minimally encoded length, plus the values it must parse to.
fn valid_frame(rng: &mut Rng, payload_len: usize) -> (Vec<u8>, Header, Vec<u8>) {
    valid_frame_with(rng, payload_len, true)
}

/// As [`valid_frame`]; without `with_payload` only the header is built (the payload is empty).
fn valid_frame_with(
    rng: &mut Rng,
    payload_len: usize,
    with_payload: bool,
) -> (Vec<u8>, Header, Vec<u8>) {
    let opcode = if payload_len <= 125 && rng.chance(30) {
        rng.pick(&[CLOSE, PING, PONG])
    } else {
        rng.pick(&[CONTINUATION, TEXT, BINARY])
    };
    let fin = opcode & 0x08 != 0 || rng.chance(70);
    let mask = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
    let mut frame = frame_header((u8::from(fin) << 7) | opcode, payload_len, Some(mask));
    let header = Header {
        fin,
        opcode,
        mask,
        header_len: frame.len(),
        payload_len,
    };
    let payload = if with_payload {
        rng.drawn_bytes(payload_len)
    } else {
        Vec::new()
    };
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    (frame, header, payload)
}

#[test]
fn valid_frames_parse_exactly_and_unmask_to_their_payload() {
    let mut rng = Rng::new(0x5EED_0002);
    let lengths = [
        0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 124, 125, 126, 127, 1000, 65_535, 65_536, 70_000,
    ];
    for round in 0..4_000 {
        let len = match round % 40 {
            0 => rng.pick(&lengths),
            n if n % 2 == 0 => rng.pick(&lengths[..16]),
            _ => rng.below(300),
        };
        let (frame, header, payload) = valid_frame(&mut rng, len);
        assert_eq!(
            parse_header(&frame, len),
            Ok(Some(header)),
            "limit = length"
        );
        assert_eq!(parse_header(&frame, usize::MAX), Ok(Some(header)));
        if len > 0 {
            assert_eq!(parse_header(&frame, len - 1), Err(Violation::TooBig));
        }
        let mut body = frame[header.header_len..].to_vec();
        unmask(&mut body, header.mask);
        assert_eq!(body, payload);
    }

    // A stream of frames is consumed exactly, frame by frame.
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..2_000 {
        let len = if rng.chance(5) {
            126 + rng.below(2_000)
        } else {
            rng.below(126)
        };
        let (frame, header, payload) = valid_frame(&mut rng, len);
        stream.extend(frame);
        expected.push((header, payload));
    }
    let mut at = 0;
    for (header, payload) in expected {
        let got = parse_header(&stream[at..], 1 << 20)
            .expect("valid")
            .expect("complete");
        assert_eq!(got, header);
        let body = &mut stream[at + got.header_len..at + got.header_len + got.payload_len];
        unmask(body, got.mask);
        assert_eq!(body, &payload[..]);
        at += got.header_len + got.payload_len;
    }
    assert_eq!(at, stream.len());
}

#[test]
fn mutated_valid_frames_never_panic_and_stay_consistent() {
    let mut rng = Rng::new(0x5EED_0003);
    let mut outcomes = [0usize; 4];
    for _ in 0..150_000 {
        let len = match rng.below(10) {
            0 => rng.pick(&[125, 126, 65_535, 65_536]),
            _ => rng.below(40),
        };
        // The header and a few payload bytes; the rest of the payload does not matter to the header.
        let (mut frame, _, _) = valid_frame_with(&mut rng, len, false);
        let tail = rng.below(10);
        frame.extend(rng.drawn_bytes(tail.min(len)));
        for _ in 0..=rng.below(3) {
            match rng.below(6) {
                0 | 1 => {
                    // Flip a bit, mostly in the header.
                    let at = rng.below(frame.len().min(14));
                    frame[at] ^= 1 << rng.below(8);
                }
                2 => {
                    let at = rng.below(frame.len());
                    frame[at] = rng.byte();
                }
                3 => {
                    let cut = rng.below(frame.len() + 1);
                    frame.truncate(cut);
                }
                4 => {
                    let at = rng.below(frame.len() + 1);
                    frame.insert(at, rng.byte());
                }
                _ => {
                    if !frame.is_empty() {
                        let at = rng.below(frame.len());
                        frame.remove(at);
                    }
                }
            }
            if frame.is_empty() {
                frame.push(rng.byte());
            }
        }
        let max = rng.pick(&MAXES);
        let slot = match check_header(&frame, max, &mut rng) {
            Ok(Some(_)) => 0,
            Ok(None) => 1,
            Err(Violation::Protocol(_)) => 2,
            Err(_) => 3,
        };
        outcomes[slot] += 1;
    }
    assert!(
        outcomes.iter().all(|&n| n > 5_000),
        "accepted / need more / protocol / too big: {outcomes:?}"
    );
}

#[test]
fn known_violations_are_reported() {
    let mask = [0u8; 4];
    let with_mask = |head: &[u8]| [head, &mask[..]].concat();
    // Unmasked.
    assert!(matches!(
        parse_header(&[0x81, 0x00], 10),
        Err(Violation::Protocol(_))
    ));
    // Reserved bits.
    for rsv in [0x40, 0x20, 0x10] {
        assert!(matches!(
            parse_header(&with_mask(&[0x81 | rsv, 0x80]), 10),
            Err(Violation::Protocol(_))
        ));
    }
    // Reserved opcodes.
    for opcode in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert!(
            matches!(
                parse_header(&with_mask(&[0x80 | opcode, 0x80]), 10),
                Err(Violation::Protocol(_))
            ),
            "opcode {opcode:#x}"
        );
    }
    // Fragmented control frames and control frames over 125 bytes.
    for opcode in [CLOSE, PING, PONG] {
        assert!(matches!(
            parse_header(&with_mask(&[opcode, 0x80]), 10),
            Err(Violation::Protocol(_))
        ));
        assert!(matches!(
            parse_header(&with_mask(&[0x80 | opcode, 0x80 | 126, 0, 126]), 1000),
            Err(Violation::Protocol(_))
        ));
    }
    // The most significant bit of a 64-bit length.
    let mut huge = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
    huge.extend_from_slice(&mask);
    assert!(matches!(
        parse_header(&huge, usize::MAX),
        Err(Violation::Protocol(_))
    ));
    // Over the limit: decided from the length bytes, before the mask and payload arrive.
    assert_eq!(
        parse_header(&[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 1], 1 << 20),
        Err(Violation::TooBig)
    );
    assert_eq!(
        parse_header(&[0x81, 0x80 | 126, 0x01, 0x00], 255),
        Err(Violation::TooBig)
    );
}

/// RFC 6455, section 5.2: "the minimal number of bytes MUST be used to encode the length"; `parse_header`'s own
/// documentation lists "a non-minimal 64-bit length" among the violations it reports.
#[test]
fn non_minimal_lengths_are_rejected() {
    let mask = [0u8; 4];
    let cases: [&[u8]; 3] = [
        &[0x82, 0x80 | 126, 0x00, 0x05], // 5 in the 16-bit form
        &[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x00, 0x7D], // 125 in the 64-bit form
        &[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], // 65535 in the 64-bit form
    ];
    for head in cases {
        let buf = [head, &mask[..]].concat();
        assert!(
            matches!(parse_header(&buf, usize::MAX), Err(Violation::Protocol(_))),
            "{buf:02x?}: {:?}",
            parse_header(&buf, usize::MAX)
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// unmask
// ---------------------------------------------------------------------------------------------------------

#[test]
fn unmask_matches_the_bytewise_definition_at_every_alignment() {
    let mut rng = Rng::new(0x5EED_0004);
    for _ in 0..60_000 {
        let len = if rng.chance(90) {
            rng.below(40)
        } else {
            rng.below(2_000)
        };
        let offset = rng.below(8);
        let mut buf = rng.drawn_bytes(offset + len);
        let original = buf.clone();
        let mask = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
        unmask(&mut buf[offset..], mask);
        for (i, (&got, &was)) in buf[offset..].iter().zip(&original[offset..]).enumerate() {
            assert_eq!(
                got,
                was ^ mask[i % 4],
                "len {len}, offset {offset}, byte {i}"
            );
        }
        assert_eq!(
            buf[..offset],
            original[..offset],
            "bytes before the slice untouched"
        );
        // Masking is an involution.
        unmask(&mut buf[offset..], mask);
        assert_eq!(buf, original);
    }
}

// ---------------------------------------------------------------------------------------------------------
// parse_close
// ---------------------------------------------------------------------------------------------------------

fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[test]
fn close_payloads_never_panic_and_follow_the_rules() {
    let mut rng = Rng::new(0x5EED_0005);
    let codes: [u16; 18] = [
        0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 1016, 2999, 3000,
        4999, 5000,
    ];
    let reasons: [&[u8]; 8] = [
        b"",
        b"bye",
        "héllo ✓ 😀".as_bytes(),
        &[0xC3, 0x28],
        &[0xED, 0xA0, 0x80], // a UTF-16 surrogate
        &[0xF0, 0x9F, 0x98], // a truncated 4-byte sequence
        &[0xFF],
        &[0x00],
    ];
    for i in 0..200_000 {
        let payload = if i % 4 == 0 {
            let len = rng.below(10);
            rng.drawn_bytes(len)
        } else {
            let code = if rng.chance(70) {
                rng.pick(&codes)
            } else {
                rng.next_u64() as u16
            };
            let reason: Vec<u8> = if rng.chance(70) {
                rng.pick(&reasons).to_vec()
            } else {
                let len = rng.below(12);
                rng.drawn_bytes(len)
            };
            [&code.to_be_bytes()[..], &reason].concat()
        };
        let answer = parse_close(&payload);
        match payload.as_slice() {
            [] => assert_eq!(answer, Ok(None)),
            [_] => assert!(
                matches!(answer, Err(Violation::Protocol(_))),
                "{payload:02x?}"
            ),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                let utf8 = std::str::from_utf8(reason).is_ok();
                match (sendable(code), utf8) {
                    (true, true) => assert_eq!(answer, Ok(Some(code)), "{payload:02x?}"),
                    (true, false) => {
                        assert_eq!(answer, Err(Violation::InvalidUtf8), "{payload:02x?}")
                    }
                    (false, true) => {
                        assert!(
                            matches!(answer, Err(Violation::Protocol(_))),
                            "{payload:02x?}"
                        )
                    }
                    (false, false) => assert!(
                        matches!(answer, Err(Violation::Protocol(_) | Violation::InvalidUtf8)),
                        "{payload:02x?}"
                    ),
                }
            }
        }
    }
}
