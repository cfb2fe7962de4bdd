//! Deterministic randomized tests of the opening-data functions: `parse_query`,
//! `RoutePattern::parse` / `matches` and `opening_from_params`, with a fixed-seed xorshift generator.
//!
//! They never panic on arbitrary input, and round-trip what a client builds: a map encoded by form rules parses
//! back to itself, and a path built from a pattern matches it with the original (decoded) param values. The same
//! functions are fuzzed with libFuzzer by `fuzz/fuzz_targets/opening_data.rs`.

use std::collections::HashMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pikku_core::{opening_from_params, parse_query, Params, RoutePattern};
use pikku_testkit::Rng;

/// A short string over an alphabet rich in the characters that matter to URLs.
fn url_string(rng: &mut Rng, max: usize) -> String {
    const PIECES: [&str; 24] = [
        "a", "b", "Z", "0", "9", "_", "-", ".", "~", "/", ":", "?", "&", "=", "+", "%", "%2",
        "%20", "%C3%A9", "%FF", " ", "é", "✓", "😀",
    ];
    let len = rng.below(max + 1);
    (0..len).map(|_| rng.pick(&PIECES)).collect()
}

/// Everything but unreserved characters is percent-encoded, as `encodeURIComponent` would.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[test]
fn arbitrary_queries_and_paths_never_panic() {
    let mut rng = Rng::from_state(0x0BE4_1234_5678_9ABD);
    let patterns: Vec<RoutePattern> = ["/", "/events", "/rooms/:roomId", "/a/:b/c/:d", "/x/"]
        .iter()
        .map(|p| RoutePattern::parse(p).expect("valid pattern"))
        .collect();
    for _ in 0..100_000 {
        let query = url_string(&mut rng, 12);
        if let Ok(map) = parse_query(&query) {
            // Untyped opening data is the map as is.
            let same: Params = opening_from_params(map.clone()).expect("a string map always fits");
            assert_eq!(same, map);
        }
        let raw = url_string(&mut rng, 10);
        let pattern_text = format!("{}{raw}", if rng.below(4) == 0 { "" } else { "/" });
        if let Ok(pattern) = RoutePattern::parse(&pattern_text) {
            assert_eq!(pattern.as_str(), pattern_text);
            assert!(pattern.same_shape(&pattern));
            assert_eq!(RoutePattern::parse(pattern.as_str()), Ok(pattern.clone()));
        }
        let path = format!("/{}", url_string(&mut rng, 10));
        for pattern in &patterns {
            if let Ok(Some(params)) = pattern.matches(&path) {
                let names: Vec<&str> = pattern
                    .as_str()
                    .split('/')
                    .filter_map(|s| s.strip_prefix(':'))
                    .collect();
                let got: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(got, names, "{path} against {pattern}");
                assert!(params.iter().all(|(_, v)| !v.is_empty()), "{path}");
            }
        }
    }
}

#[test]
fn encoded_queries_parse_back_with_the_last_value_winning() {
    let mut rng = Rng::from_state(0x0BE4_0000_0000_0002);
    for _ in 0..30_000 {
        let mut expected = HashMap::new();
        let mut parts = Vec::new();
        for _ in 0..rng.below(6) {
            let key = url_string(&mut rng, 4);
            let value = url_string(&mut rng, 6);
            // `+` for spaces is the form rule; `%20` must mean the same.
            let encoded_value = if rng.below(2) == 0 {
                encode(&value).replace("%20", "+")
            } else {
                encode(&value)
            };
            if key.is_empty() && value.is_empty() {
                continue;
            }
            parts.push(if value.is_empty() && rng.below(2) == 0 {
                encode(&key)
            } else {
                format!("{}={encoded_value}", encode(&key))
            });
            expected.insert(key, value);
        }
        let query = parts.join("&");
        assert_eq!(
            parse_query(&query).expect("well-formed"),
            expected,
            "{query}"
        );
    }
}

#[test]
fn paths_built_from_a_pattern_match_it_with_decoded_params() {
    let mut rng = Rng::from_state(0x0BE4_0000_0000_0003);
    for _ in 0..30_000 {
        let segments = rng.below(5);
        let mut pattern = String::new();
        let mut path = String::new();
        let mut expected = Vec::new();
        for i in 0..segments {
            if rng.below(2) == 0 {
                let literal = format!("lit{}", rng.below(3));
                pattern.push_str(&format!("/{literal}"));
                path.push_str(&format!("/{literal}"));
            } else {
                let name = format!("p{i}");
                let mut value = url_string(&mut rng, 5);
                if value.is_empty() {
                    value.push('v');
                }
                pattern.push_str(&format!("/:{name}"));
                path.push_str(&format!("/{}", encode(&value)));
                expected.push((name, value));
            }
        }
        if pattern.is_empty() {
            pattern.push('/');
            path.push('/');
        }
        let route = RoutePattern::parse(&pattern).expect("generated patterns are valid");
        assert_eq!(
            route.matches(&path).expect("decodable"),
            Some(expected.clone()),
            "{path}"
        );
        // One trailing slash is ignored; an extra segment is not a match.
        if path != "/" {
            assert_eq!(route.matches(&format!("{path}/")).unwrap(), Some(expected));
        }
        let longer = format!("{}/extra", path.trim_end_matches('/'));
        assert_eq!(
            route.matches(&longer).unwrap(),
            None,
            "{longer} against {pattern}"
        );
    }
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Typed {
    limit: Option<u32>,
    flag: Option<bool>,
    name: Option<String>,
}

#[test]
fn typed_opening_data_converts_exactly_the_values_that_parse() {
    let mut rng = Rng::from_state(0x0BE4_0000_0000_0004);
    let samples = [
        "",
        "0",
        "5",
        "4294967295",
        "4294967296",
        "-1",
        "+1",
        "1.0",
        " 1",
        "true",
        "false",
        "True",
        "1e3",
        "abc",
    ];
    for _ in 0..20_000 {
        let limit = rng.pick(&samples);
        let flag = rng.pick(&samples);
        let map: Params = [
            ("limit".to_owned(), limit.to_owned()),
            ("flag".to_owned(), flag.to_owned()),
            ("name".to_owned(), url_string(&mut rng, 4)),
        ]
        .into();
        let result = opening_from_params::<Typed>(map);
        let ok = limit.parse::<u32>().is_ok() && matches!(flag, "true" | "false");
        match result {
            Ok(typed) => {
                assert!(ok, "{limit:?} {flag:?} accepted as {typed:?}");
                assert_eq!(typed.limit, limit.parse().ok());
                assert_eq!(typed.flag, flag.parse().ok());
            }
            Err(err) => {
                assert!(!ok, "{limit:?} {flag:?} refused: {err}");
                assert_eq!(err.client_message(), "Invalid opening data");
                let path = &err.details()[0].path;
                assert!(path == "/limit" || path == "/flag", "{path}");
            }
        }
    }
}
