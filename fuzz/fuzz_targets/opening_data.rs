//! Arbitrary text into the opening-data functions of `pikku_core`: `RoutePattern::parse` and
//! `matches`, `parse_query`, `merge_params` and `opening_from_params`.
//!
//! The input is split on the first two newlines into a route pattern, a request path and a query.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pikku_core::opening::merge_params;
use pikku_core::{opening_from_params, parse_query, Params, RoutePattern};

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Room {
    #[serde(rename = "roomId")]
    room_id: Option<String>,
    limit: Option<u32>,
    flag: Option<bool>,
    ratio: Option<f64>,
}

fn params_of(pattern: &str) -> Vec<&str> {
    pattern
        .split('/')
        .filter_map(|segment| segment.strip_prefix(':'))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let pattern = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();

    let query_map = parse_query(query).ok();
    if let Some(map) = &query_map {
        let same: Params = opening_from_params(map.clone()).expect("a string map always fits");
        assert_eq!(&same, map);
        let _ = opening_from_params::<Room>(map.clone());
    }

    let fixed = ["/", "/events", "/rooms/:roomId", "/a/:b/c/:d"];
    let parsed = RoutePattern::parse(pattern);
    if let Ok(route) = &parsed {
        assert_eq!(route.as_str(), pattern);
        assert!(route.same_shape(route));
        assert_eq!(RoutePattern::parse(route.as_str()).as_ref(), Ok(route));
    }
    let routes = parsed
        .into_iter()
        .chain(fixed.iter().map(|p| RoutePattern::parse(p).expect("valid")));
    for route in routes {
        let Ok(Some(params)) = route.matches(path) else {
            continue;
        };
        let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, params_of(route.as_str()));
        assert!(params.iter().all(|(_, v)| !v.is_empty()));
        if let Some(map) = &query_map {
            if let Ok(merged) = merge_params(params.clone(), map.clone()) {
                for (key, value) in &params {
                    assert_eq!(merged.get(key), Some(value));
                }
                let _ = opening_from_params::<Room>(merged);
            }
        }
    }
});
