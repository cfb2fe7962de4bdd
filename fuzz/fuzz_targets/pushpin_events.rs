//! The WebSocket-over-HTTP body parser on arbitrary bytes: it must never panic, must stay within its limits,
//! and whatever it accepts must encode back to a body that parses to the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pikku_pushpin::events::{encode_events, parse_events, ParseLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits { max_events: 64, max_body: 64 * 1024 };
    if let Ok(events) = parse_events(data, &limits) {
        assert!(events.len() <= limits.max_events);
        let again = parse_events(&encode_events(&events), &ParseLimits::default())
            .expect("an encoded body parses");
        assert_eq!(again, events);
    }
});
