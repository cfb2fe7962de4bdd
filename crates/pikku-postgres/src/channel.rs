//! Topic to LISTEN/NOTIFY channel names.
//!
//! PostgreSQL channel names are identifiers: at most 63 bytes, and `LISTEN` takes them as SQL text, while
//! `pg_notify` takes them as a plain string. The driver always quotes them for `LISTEN` (so case and every
//! character are kept, as `pg_notify` keeps them) and maps each topic to one name:
//!
//! - `<prefix>:<topic>` when that fits in 63 bytes and the topic is printable ASCII (space to `~`);
//! - `<prefix>_h_<32 hex digits>` otherwise: the first 128 bits of the topic's SHA-256.
//!
//! The prefix has no `:` and hashed names have no `:` at all, so the two forms never meet and different
//! prefixes never share a name; hashed names could in principle collide, which would only cost extra traffic:
//! every message carries its real topic, and the hub delivers by that.

use sha2::{Digest, Sha256};

/// The longest channel name PostgreSQL keeps (one less than its `NAMEDATALEN`).
pub(crate) const MAX_CHANNEL_BYTES: usize = 63;

/// Hex digits of the hash in a hashed name: 128 bits, so that accidental collisions are out of reach.
const HASH_HEX_DIGITS: usize = 32;

/// The longest prefix that leaves room for a hashed name.
pub(crate) const MAX_PREFIX_BYTES: usize = MAX_CHANNEL_BYTES - "_h_".len() - HASH_HEX_DIGITS;

/// Whether `prefix` can start channel names: 1 to [`MAX_PREFIX_BYTES`] ASCII letters, digits or `_`.
pub(crate) fn prefix_problem(prefix: &str) -> Option<&'static str> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
        Some("must be 1 to 28 bytes long")
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Some("may hold only ASCII letters, digits and '_'")
    } else {
        None
    }
}

/// The channel that carries `topic` under `prefix`.
pub(crate) fn channel_name(prefix: &str, topic: &str) -> String {
    let direct_len = prefix.len() + 1 + topic.len();
    let printable = topic.bytes().all(|b| (b' '..=b'~').contains(&b));
    if direct_len <= MAX_CHANNEL_BYTES && printable {
        let mut name = String::with_capacity(direct_len);
        name.push_str(prefix);
        name.push(':');
        name.push_str(topic);
        return name;
    }
    let digest = Sha256::digest(topic.as_bytes());
    let mut name = String::with_capacity(MAX_CHANNEL_BYTES);
    name.push_str(prefix);
    name.push_str("_h_");
    for byte in &digest[..HASH_HEX_DIGITS / 2] {
        push_hex(&mut name, *byte);
    }
    name
}

/// `name` as a quoted SQL identifier: in double quotes, with every `"` doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

pub(crate) fn push_hex(out: &mut String, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(DIGITS[usize::from(byte >> 4)]));
    out.push(char::from(DIGITS[usize::from(byte & 0xF)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_topics_keep_their_name_and_case() {
        assert_eq!(channel_name("pikku", "Room:ABC"), "pikku:Room:ABC");
        assert_eq!(
            channel_name("pikku", r#"say "hi" there"#),
            r#"pikku:say "hi" there"#
        );
    }

    #[test]
    fn long_or_unusual_topics_are_hashed_into_63_bytes() {
        let long = "x".repeat(200);
        for topic in [long.as_str(), "tämä", "tab\there", "nul\0"] {
            let name = channel_name("pikku", topic);
            assert!(name.starts_with("pikku_h_"), "{name}");
            assert_eq!(name.len(), "pikku_h_".len() + 32);
            assert!(name.len() <= MAX_CHANNEL_BYTES);
            assert_eq!(name, channel_name("pikku", topic), "stable");
        }
        let widest = "p".repeat(MAX_PREFIX_BYTES);
        assert_eq!(channel_name(&widest, &long).len(), MAX_CHANNEL_BYTES);
    }

    #[test]
    fn topics_sharing_a_long_prefix_get_different_channels() {
        let stem = "s".repeat(63);
        assert_ne!(
            channel_name("pikku", &format!("{stem}-one")),
            channel_name("pikku", &format!("{stem}-two"))
        );
    }

    #[test]
    fn the_longest_direct_name_fits_exactly() {
        let fits = "t".repeat(MAX_CHANNEL_BYTES - "pikku:".len());
        assert_eq!(channel_name("pikku", &fits), format!("pikku:{fits}"));
        let over = format!("{fits}t");
        assert!(channel_name("pikku", &over).starts_with("pikku_h_"));
    }

    #[test]
    fn identifiers_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_ident("plain"), r#""plain""#);
        assert_eq!(quote_ident(r#"a"b""#), r#""a""b""""#);
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(prefix_problem("pikku_1"), None);
        assert!(prefix_problem("").is_some());
        assert!(prefix_problem("has:colon").is_some());
        assert!(prefix_problem("has-dash").is_some());
        assert!(prefix_problem(&"p".repeat(MAX_PREFIX_BYTES + 1)).is_some());
    }
}
