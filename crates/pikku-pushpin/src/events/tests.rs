use super::*;

fn parse(body: &[u8]) -> Result<Vec<WsEvent>, EventsError> {
    parse_events(body, &ParseLimits::default())
}

fn every_event() -> Vec<WsEvent> {
    vec![
        WsEvent::Open,
        WsEvent::text("hello world"),
        WsEvent::Text(Bytes::new()),
        WsEvent::Binary(Bytes::from_static(&[0, 1, 2, 0xff, b'\r', b'\n'])),
        WsEvent::Ping(Bytes::from_static(b"p")),
        WsEvent::Pong(Bytes::new()),
        WsEvent::Close {
            code: Some(1000),
            reason: "bye \u{1f44b}".into(),
        },
        WsEvent::Close {
            code: None,
            reason: String::new(),
        },
        WsEvent::Disconnect,
    ]
}

#[test]
fn each_event_parses() {
    assert_eq!(parse(b"OPEN\r\n").unwrap(), [WsEvent::Open]);
    assert_eq!(
        parse(b"TEXT b\r\nhello world\r\n").unwrap(),
        [WsEvent::text("hello world")]
    );
    assert_eq!(
        parse(b"BINARY 3\r\n\x00\r\n\r\n").unwrap(),
        [WsEvent::Binary(Bytes::from_static(b"\x00\r\n"))]
    );
    assert_eq!(
        parse(b"PING 2\r\nab\r\n").unwrap(),
        [WsEvent::Ping("ab".into())]
    );
    assert_eq!(
        parse(b"PONG 2\r\nab\r\n").unwrap(),
        [WsEvent::Pong("ab".into())]
    );
    assert_eq!(
        parse(b"CLOSE 5\r\n\x03\xe8bye\r\n").unwrap(),
        [WsEvent::Close {
            code: Some(1000),
            reason: "bye".into()
        }]
    );
    assert_eq!(
        parse(b"CLOSE 2\r\n\x0f\xa0\r\n").unwrap(),
        [WsEvent::Close {
            code: Some(4000),
            reason: String::new()
        }]
    );
    assert_eq!(parse(b"DISCONNECT\r\n").unwrap(), [WsEvent::Disconnect]);
    assert_eq!(parse(b"").unwrap(), []);
}

#[test]
fn content_events_without_a_length_are_empty() {
    // Pushpin writes pings, pongs and code-less closes this way.
    assert_eq!(parse(b"PING\r\n").unwrap(), [WsEvent::Ping(Bytes::new())]);
    assert_eq!(parse(b"PONG\r\n").unwrap(), [WsEvent::Pong(Bytes::new())]);
    assert_eq!(parse(b"TEXT\r\n").unwrap(), [WsEvent::Text(Bytes::new())]);
    assert_eq!(
        parse(b"BINARY\r\n").unwrap(),
        [WsEvent::Binary(Bytes::new())]
    );
    let no_code = WsEvent::Close {
        code: None,
        reason: String::new(),
    };
    assert_eq!(parse(b"CLOSE\r\n").unwrap(), std::slice::from_ref(&no_code));
    assert_eq!(parse(b"CLOSE 0\r\n\r\n").unwrap(), [no_code]);
    assert_eq!(parse(b"OPEN 0\r\n\r\n").unwrap(), [WsEvent::Open]);
}

#[test]
fn lengths_are_hex_in_either_case() {
    let content = "x".repeat(0x1a);
    for line in ["TEXT 1a", "TEXT 1A", "TEXT 001a"] {
        let body = format!("{line}\r\n{content}\r\n");
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            [WsEvent::text(content.clone())],
            "{line}"
        );
    }
}

#[test]
fn encoding_writes_hex_lengths_for_content_events() {
    assert_eq!(encode_events(&[WsEvent::Open]), b"OPEN\r\n");
    assert_eq!(encode_events(&[WsEvent::Disconnect]), b"DISCONNECT\r\n");
    assert_eq!(
        encode_events(&[WsEvent::Text(Bytes::new())]),
        b"TEXT 0\r\n\r\n"
    );
    assert_eq!(
        encode_events(&[WsEvent::Ping(Bytes::new())]),
        b"PING 0\r\n\r\n"
    );
    let long = "y".repeat(300);
    let encoded = encode_events(&[WsEvent::text(long.clone())]);
    assert_eq!(encoded, format!("TEXT 12c\r\n{long}\r\n").into_bytes());
    assert_eq!(
        encode_events(&[WsEvent::Close {
            code: Some(1001),
            reason: "away".into()
        }]),
        b"CLOSE 6\r\n\x03\xe9away\r\n"
    );
    assert_eq!(
        encode_events(&[WsEvent::Close {
            code: None,
            reason: String::new()
        }]),
        b"CLOSE 0\r\n\r\n"
    );
}

#[test]
fn every_event_round_trips_alone_and_together() {
    let events = every_event();
    for event in &events {
        let body = encode_events(std::slice::from_ref(event));
        assert_eq!(
            &parse(&body).unwrap(),
            std::slice::from_ref(event),
            "{event:?}"
        );
    }
    let body = encode_events(&events);
    assert_eq!(parse(&body).unwrap(), events);
}

#[test]
fn a_close_reason_without_a_code_is_not_written() {
    let body = encode_events(&[WsEvent::Close {
        code: None,
        reason: "lost".into(),
    }]);
    assert_eq!(
        parse(&body).unwrap(),
        [WsEvent::Close {
            code: None,
            reason: String::new()
        }]
    );
}

#[test]
fn unknown_types_are_rejected() {
    assert_eq!(
        parse(b"OPEN\r\ntext 1\r\na\r\n").unwrap_err(),
        EventsError::UnknownType {
            offset: 6,
            name: "text".into()
        }
    );
    assert_eq!(
        parse(b"\r\n").unwrap_err(),
        EventsError::UnknownType {
            offset: 0,
            name: String::new()
        }
    );
}

#[test]
fn bad_lengths_are_rejected() {
    for body in [
        &b"TEXT \r\n\r\n"[..],
        b"TEXT -1\r\n",
        b"TEXT +1\r\na\r\n",
        b"TEXT 0x1\r\na\r\n",
        b"TEXT 1 \r\na\r\n",
        b"TEXT  1\r\na\r\n",
        b"TEXT g\r\n",
        b"TEXT 00000000000000001\r\na\r\n",
    ] {
        assert_eq!(
            parse(body).unwrap_err(),
            EventsError::BadLength { offset: 0 },
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn truncated_content_is_rejected() {
    assert_eq!(
        parse(b"TEXT 5\r\nhel").unwrap_err(),
        EventsError::Truncated {
            offset: 0,
            declared: 5,
            available: 3
        }
    );
    // The content is all there but its CRLF is not.
    assert_eq!(
        parse(b"TEXT 5\r\nhello\r").unwrap_err(),
        EventsError::Truncated {
            offset: 0,
            declared: 7,
            available: 6
        }
    );
}

#[test]
fn missing_crlfs_are_rejected() {
    assert_eq!(
        parse(b"OPEN").unwrap_err(),
        EventsError::MissingCrlf { offset: 0 }
    );
    assert_eq!(
        parse(b"OPEN\r\nPING\n").unwrap_err(),
        EventsError::MissingCrlf { offset: 6 }
    );
    assert_eq!(
        parse(b"TEXT 2\r\nhiXX").unwrap_err(),
        EventsError::MissingCrlf { offset: 10 }
    );
    // A type line longer than any real one is not searched to the end of the body.
    let mut long = vec![b'A'; 100];
    long.extend_from_slice(b"\r\n");
    assert_eq!(
        parse(&long).unwrap_err(),
        EventsError::MissingCrlf { offset: 0 }
    );
}

#[test]
fn limits_are_enforced() {
    let limits = ParseLimits {
        max_events: 2,
        max_body: 32,
    };
    assert_eq!(
        parse_events(b"OPEN\r\nOPEN\r\nOPEN\r\n", &limits).unwrap_err(),
        EventsError::TooManyEvents { max: 2 }
    );
    assert_eq!(parse_events(b"OPEN\r\nOPEN\r\n", &limits).unwrap().len(), 2);
    let big = vec![b'x'; 33];
    assert_eq!(
        parse_events(&big, &limits).unwrap_err(),
        EventsError::BodyTooLarge { len: 33, max: 32 }
    );
    assert_eq!(
        parse_events(b"TEXT 21\r\n", &limits).unwrap_err(),
        EventsError::ContentTooLarge {
            offset: 0,
            len: 0x21,
            max: 32
        }
    );
}

#[test]
fn a_huge_declared_length_fails_before_any_allocation() {
    // 2^64 - 1 bytes: the check against the limit comes before any slice or copy is made.
    assert_eq!(
        parse(b"BINARY ffffffffffffffff\r\nab\r\n").unwrap_err(),
        EventsError::ContentTooLarge {
            offset: 0,
            len: u64::MAX,
            max: 1024 * 1024
        }
    );
}

#[test]
fn bad_close_payloads_are_rejected() {
    assert_eq!(
        parse(b"CLOSE 1\r\n\x03\r\n").unwrap_err(),
        EventsError::BadClose {
            offset: 0,
            problem: CloseProblem::ShortCode
        }
    );
    assert_eq!(
        parse(b"CLOSE 3\r\n\x03\xe8\xff\r\n").unwrap_err(),
        EventsError::BadClose {
            offset: 0,
            problem: CloseProblem::ReasonNotUtf8
        }
    );
}

#[test]
fn open_and_disconnect_carry_no_content() {
    assert_eq!(
        parse(b"OPEN 1\r\nx\r\n").unwrap_err(),
        EventsError::UnexpectedContent {
            offset: 0,
            kind: "OPEN"
        }
    );
    assert_eq!(
        parse(b"DISCONNECT 1\r\nx\r\n").unwrap_err(),
        EventsError::UnexpectedContent {
            offset: 0,
            kind: "DISCONNECT"
        }
    );
}

#[test]
fn errors_read_as_sentences() {
    let cases = [
        (
            EventsError::BodyTooLarge { len: 10, max: 5 },
            "events body of 10 bytes is over the limit of 5",
        ),
        (
            EventsError::TooManyEvents { max: 3 },
            "events body holds more than 3 events",
        ),
        (
            EventsError::BadLength { offset: 4 },
            "event at byte 4 has a malformed hex length",
        ),
        (
            EventsError::ContentTooLarge {
                offset: 0,
                len: 99,
                max: 9,
            },
            "event at byte 0 declares 99 bytes of content, over the limit of 9",
        ),
        (
            EventsError::Truncated {
                offset: 1,
                declared: 7,
                available: 2,
            },
            "event at byte 1 needs 7 more bytes but the body has 2",
        ),
        (
            EventsError::MissingCrlf { offset: 8 },
            "expected CRLF at byte 8",
        ),
        (
            EventsError::BadClose {
                offset: 0,
                problem: CloseProblem::ReasonNotUtf8,
            },
            "CLOSE event at byte 0: the close reason is not UTF-8",
        ),
        (
            EventsError::UnexpectedContent {
                offset: 0,
                kind: "OPEN",
            },
            "OPEN event at byte 0 carries content, which it never has",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

/// Valid bodies, cut short at every position and with every byte replaced by a few telling values: the
/// parser never panics, never returns more events than the limit, and a cut inside an event is always an
/// error.
#[test]
fn damaged_bodies_never_panic() {
    let limits = ParseLimits {
        max_events: 16,
        max_body: 4096,
    };
    let bodies = [
        encode_events(&every_event()),
        encode_events(&[
            WsEvent::Open,
            WsEvent::text("c:{\"type\":\"subscribe\",\"channel\":\"conn:1\"}"),
        ]),
        b"OPEN\r\nPING\r\nCLOSE\r\nTEXT 3\r\nabc\r\n".to_vec(),
    ];
    for body in &bodies {
        let whole = parse_events(body, &limits).unwrap();
        // Offsets where one event ends and the next begins: a cut there is a shorter valid body.
        let mut boundaries = vec![0];
        for event in &whole {
            let last = *boundaries.last().unwrap();
            boundaries.push(last + encode_events(std::slice::from_ref(event)).len());
        }
        let boundaries_hold = boundaries.last() == Some(&body.len());

        for cut in 0..body.len() {
            let result = parse_events(&body[..cut], &limits);
            if boundaries_hold && !boundaries.contains(&cut) {
                assert!(
                    result.is_err(),
                    "cut at {cut} of {:?}",
                    String::from_utf8_lossy(body)
                );
            }
            if let Ok(events) = result {
                assert!(events.len() <= limits.max_events);
            }
        }

        for at in 0..body.len() {
            for replacement in [
                0x00,
                0xff,
                b'\r',
                b'\n',
                b' ',
                b'f',
                body[at] ^ 0x20,
                body[at] ^ 0x01,
            ] {
                let mut damaged = body.clone();
                damaged[at] = replacement;
                if let Ok(events) = parse_events(&damaged, &limits) {
                    assert!(events.len() <= limits.max_events);
                    let content: usize = events
                        .iter()
                        .map(|e| encode_events(std::slice::from_ref(e)).len())
                        .sum();
                    // Nothing parsed can hold more than the body did.
                    assert!(content <= damaged.len() + 16 * events.len());
                }
            }
        }
    }
}
