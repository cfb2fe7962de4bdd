//! Hub topics as NATS subjects.
//!
//! NATS reads a subject as tokens separated by `.`, treats the tokens `*` and `>` as wildcards and forbids
//! whitespace, while a hub topic is any string. So each topic becomes exactly one token under the prefix: bytes
//! outside `[A-Za-z0-9_:-]` are written as `%` and two upper-case hex digits (`%` itself too, so the mapping
//! can be read back), and the empty topic, which the hub refuses anyway, becomes a lone `%`, a token no other
//! topic produces. Two different topics therefore never share a subject, and no topic can reach into another
//! one's subject with a wildcard or an extra token.

use std::fmt::Write as _;

/// The token of the empty topic: a `%` without its two hex digits, which no other topic produces.
const EMPTY_TOPIC: &str = "%";

/// Whether a topic byte stands for itself in a token.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b':')
}

/// The single subject token for `topic`.
pub(crate) fn token(topic: &str) -> String {
    if topic.is_empty() {
        return EMPTY_TOPIC.to_owned();
    }
    let mut out = String::with_capacity(topic.len());
    for &byte in topic.as_bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `<prefix>.<token>`: the subject `topic` is published to.
pub(crate) fn subject(prefix: &str, topic: &str) -> String {
    let token = token(topic);
    let mut out = String::with_capacity(prefix.len() + 1 + token.len());
    out.push_str(prefix);
    out.push('.');
    out.push_str(&token);
    out
}

/// Whether `prefix` is a literal NATS subject: non-empty tokens separated by `.`, without whitespace, control
/// characters or the wildcard characters `*` and `>`.
pub(crate) fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '*' && c != '>')
        })
}

/// The topic a token was made from; `None` for a string [`token`] never produces.
#[cfg(test)]
pub(crate) fn topic(token: &str) -> Option<String> {
    if token == EMPTY_TOPIC {
        return Some(String::new());
    }
    if token.is_empty() {
        return None;
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if hex.bytes().any(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                let byte = u8::from_str_radix(hex, 16).ok()?;
                if is_plain(byte) {
                    return None;
                }
                out.push(byte);
                i += 3;
            }
            b if is_plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn assert_one_safe_token(token: &str) {
        assert!(!token.is_empty());
        assert!(
            !token.contains(['.', '*', '>']),
            "{token:?} has a separator or wildcard"
        );
        assert!(
            !token.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{token:?} has whitespace"
        );
        assert!(token.is_ascii(), "{token:?} is not ASCII");
    }

    #[test]
    fn examples() {
        assert_eq!(token("room:42"), "room:42");
        assert_eq!(token("chat_room-7"), "chat_room-7");
        assert_eq!(token("room.1"), "room%2E1");
        assert_eq!(token("*"), "%2A");
        assert_eq!(token(">"), "%3E");
        assert_eq!(token("a b\tc"), "a%20b%09c");
        assert_eq!(token("100%"), "100%25");
        assert_eq!(token("ä"), "%C3%A4");
        assert_eq!(token(""), "%");
        assert_eq!(subject("pikku", "room.1"), "pikku.room%2E1");
        assert_eq!(subject("app.hub", "news"), "app.hub.news");
    }

    #[test]
    fn tricky_topics_map_to_distinct_single_tokens_that_read_back() {
        let topics = [
            "", "%", "%%", "%25", "%2E", ".", "..", "a.b", "a%2Eb", "a.b.c", "*", ">", "a.*",
            "a.>", "a*", "a>", " ", "\t", "\n", "\r\n", "a b", "a\u{a0}b", "\u{2028}", "\0",
            "$SYS", "_INBOX.x", "ä", "日本", "🙂", "room:1", "room-1", "room_1", "Room:1",
            "ROOM:1", "%C3%A4", "%c3%a4",
        ];
        let mut seen = HashMap::new();
        for topic in topics {
            let t = token(topic);
            assert_one_safe_token(&t);
            assert_eq!(
                super::topic(&t).as_deref(),
                Some(topic),
                "{topic:?} reads back"
            );
            if let Some(other) = seen.insert(t.clone(), topic) {
                panic!("{topic:?} and {other:?} share the token {t:?}");
            }
        }
    }

    #[test]
    fn random_topics_are_injective_and_safe() {
        let alphabet: Vec<char> = "aZ09_-:.*>% \t\n%äé日🙂$\u{0}\u{7f}\u{a0}"
            .chars()
            .collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut seen: HashMap<String, String> = HashMap::new();
        for _ in 0..50_000 {
            let len = (next() % 7) as usize;
            let topic: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let t = token(&topic);
            assert_one_safe_token(&t);
            assert_eq!(super::topic(&t).as_deref(), Some(topic.as_str()));
            if let Some(other) = seen.insert(t.clone(), topic.clone()) {
                assert_eq!(other, topic, "two topics share the token {t:?}");
            }
        }
        assert!(seen.len() > 10_000, "the generator made varied topics");
    }

    #[test]
    fn strings_no_topic_maps_to_are_refused_on_reading_back() {
        for bad in ["", "%2", "%zz", "%2e", "%41", "a.b", "a b", "ä", "%C3"] {
            assert_eq!(topic(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes_must_be_literal_subjects() {
        for good in ["pikku", "app.pikku", "tenant-1.hub", "$app", "a:b"] {
            assert!(is_valid_prefix(good), "{good:?}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a.*", "a.>", "a*", "a b", "a\tb", "a\nb",
        ] {
            assert!(!is_valid_prefix(bad), "{bad:?}");
        }
    }
}
