//! Minimal field scanners for the few reply shapes the load generator reads.
//!
//! The client must not be the bottleneck, so it does not build a JSON tree per message: it looks
//! for a top-level-looking key and reads a number or a string after it. The bench contract's
//! replies are flat or one level deep (`{"topic":"t","data":{"t":5}}`), and the keys scanned for
//! (`t`, `action`, `errorName`) never occur inside the payload strings the harness sends.

/// Finds the value text following `"key"` + optional spaces + `:` + optional spaces.
fn value_after<'a>(msg: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let key = key.as_bytes();
    let mut from = 0;
    while from < msg.len() {
        let pos = find(&msg[from..], b'"')? + from;
        let end = pos + 1 + key.len();
        if msg.get(pos + 1..end) == Some(key) && msg.get(end) == Some(&b'"') {
            let mut i = skip_ws(msg, end + 1);
            if msg.get(i) == Some(&b':') {
                i = skip_ws(msg, i + 1);
                return Some(&msg[i..]);
            }
        }
        from = pos + 1;
    }
    None
}

fn find(hay: &[u8], b: u8) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

fn skip_ws(msg: &[u8], mut i: usize) -> usize {
    while matches!(msg.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// Reads the unsigned integer value of the first `"key":` in `msg`.
#[must_use]
pub fn u64_field(msg: &[u8], key: &str) -> Option<u64> {
    let v = value_after(msg, key)?;
    let digits = v.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    std::str::from_utf8(&v[..digits]).ok()?.parse().ok()
}

/// Reads the string value (without escapes) of the first `"key":` in `msg`.
#[must_use]
pub fn str_field<'a>(msg: &'a [u8], key: &str) -> Option<&'a str> {
    let v = value_after(msg, key)?;
    let rest = v.strip_prefix(b"\"")?;
    let end = find(rest, b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// True when `msg` is an error frame of the protocol (it carries `errorName`).
#[must_use]
pub fn is_error(msg: &[u8]) -> bool {
    value_after(msg, "errorName").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_from_contract_shapes() {
        let echo = br#"{"seq":1,"t":5,"p":"xx","action":"echo"}"#;
        assert_eq!(u64_field(echo, "t"), Some(5));
        assert_eq!(u64_field(echo, "seq"), Some(1));
        assert_eq!(str_field(echo, "action"), Some("echo"));
        let delivery = br#"{"topic":"t","data":{"t":123456}}"#;
        assert_eq!(u64_field(delivery, "t"), Some(123456));
        assert_eq!(str_field(delivery, "topic"), Some("t"));
        let spaced = br#"{ "action" : "pub" }"#;
        assert_eq!(str_field(spaced, "action"), Some("pub"));
        assert!(!is_error(spaced));
        let err = br#"{"action":"x","error":"No route","errorName":"NotFoundError"}"#;
        assert!(is_error(err));
        assert_eq!(u64_field(br#"{"t":"x"}"#, "t"), None);
    }
}
