//! Arbitrary bytes into the WebSocket frame functions of `pikku_server::ws::frame`.
//!
//! The first input byte picks the payload limit; the rest is read as client frames. Besides "no panic", an
//! accepted header must fit the input and the limit, every prefix of it must ask for more bytes, and unmasking
//! must match the bytewise definition of RFC 6455 (section 5.3).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pikku_server::ws::frame::{parse_close, parse_header, unmask, Violation};

const MAXES: [usize; 8] = [0, 1, 125, 126, 65_535, 65_536, 1 << 20, usize::MAX];

fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let max = MAXES[usize::from(selector) % MAXES.len()];

    match parse_header(input, max) {
        Ok(Some(header)) => {
            assert!(header.header_len <= input.len());
            assert!(header.payload_len <= max);
            assert!(matches!(header.header_len, 6 | 8 | 14));
            if header.opcode & 0x08 != 0 {
                assert!(header.fin && header.payload_len <= 125);
            }
            for cut in 0..header.header_len {
                assert_eq!(parse_header(&input[..cut], max), Ok(None));
            }
            let available = &input[header.header_len..];
            let n = available.len().min(header.payload_len);
            let mut body = available[..n].to_vec();
            unmask(&mut body, header.mask);
            for (i, (plain, masked)) in body.iter().zip(&available[..n]).enumerate() {
                assert_eq!(*plain, masked ^ header.mask[i % 4]);
            }
            unmask(&mut body, header.mask);
            assert_eq!(&body[..], &available[..n]);
            if header.opcode == 0x8 && n == header.payload_len {
                let _ = parse_close(&available[..n]);
            }
        }
        Ok(None) => assert!(input.len() < 14),
        Err(Violation::InvalidUtf8) => panic!("a header cannot be invalid UTF-8"),
        Err(_) => {}
    }

    // Walk the input as a stream of frames, as the server's reader does.
    let mut at = 0;
    while let Ok(Some(header)) = parse_header(&input[at..], max) {
        let total = header.header_len + header.payload_len;
        if input.len() - at < total {
            break;
        }
        at += total;
    }

    // The whole input as a close payload.
    match parse_close(input) {
        Ok(None) => assert!(input.is_empty()),
        Ok(Some(code)) => {
            assert!(sendable(code));
            assert_eq!(code, u16::from_be_bytes([input[0], input[1]]));
            assert!(std::str::from_utf8(&input[2..]).is_ok());
        }
        Err(Violation::InvalidUtf8) => assert!(std::str::from_utf8(&input[2..]).is_err()),
        Err(_) => {}
    }
});
