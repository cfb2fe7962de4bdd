//! Message templates: the JSON a scenario sends, given on the command line so one scenario can
//! load any route of any server (the bench contract's `pub`, the chat demo's `say`, ...).
//!
//! A template is literal text with placeholders: `{t}` (send time, µs on the harness clock),
//! `{seq}` (a per-sender counter), `{topic}`, `{conn}` (the connection's index) and `{payload}`
//! (text the scenario supplies, inserted as is). Any other brace is literal, so JSON such as
//! `{"action":"pub","topic":"{topic}","t":{t}}` is written as it reads.

use crate::Result;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Time,
    Seq,
    Topic,
    Conn,
    Payload,
}

/// The values placeholders are replaced with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    /// `{t}`: the send time, µs.
    pub t: u64,
    /// `{seq}`: the sender's counter.
    pub seq: u64,
    /// `{topic}`.
    pub topic: &'a str,
    /// `{conn}`: the connection's index.
    pub conn: u64,
    /// `{payload}`: inserted as is.
    pub payload: &'a str,
}

/// A parsed template, rendered once per message.
///
/// ```
/// use pikku_bench::template::{Template, Vars};
/// let t = Template::parse(r#"{"action":"pub","topic":"{topic}","t":{t}}"#).unwrap();
/// let vars = Vars { t: 42, topic: "news", ..Vars::default() };
/// assert_eq!(t.render(&vars), r#"{"action":"pub","topic":"news","t":42}"#);
/// assert!(t.uses_time());
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

const PLACEHOLDERS: [(&str, Part); 5] = [
    ("{t}", Part::Time),
    ("{seq}", Part::Seq),
    ("{topic}", Part::Topic),
    ("{conn}", Part::Conn),
    ("{payload}", Part::Payload),
];

impl Template {
    /// Parses `source`; fails when it is empty.
    pub fn parse(source: &str) -> Result<Self> {
        if source.is_empty() {
            return Err("a message template must not be empty".into());
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        'outer: while !rest.is_empty() {
            for (name, part) in &PLACEHOLDERS {
                if let Some(after) = rest.strip_prefix(name) {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part.clone());
                    rest = after;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().expect("non-empty");
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self {
            parts,
            source: source.to_owned(),
        })
    }

    /// The template as given.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template carries the send time (`{t}`), so replies can be timed by it.
    #[must_use]
    pub fn uses_time(&self) -> bool {
        self.parts.contains(&Part::Time)
    }

    /// The message for `vars`.
    #[must_use]
    pub fn render(&self, vars: &Vars<'_>) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.source.len() + vars.payload.len() + 16);
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    Ok(())
                }
                Part::Time => write!(out, "{}", vars.t),
                Part::Seq => write!(out, "{}", vars.seq),
                Part::Topic => {
                    out.push_str(vars.topic);
                    Ok(())
                }
                Part::Conn => write!(out, "{}", vars.conn),
                Part::Payload => {
                    out.push_str(vars.payload);
                    Ok(())
                }
            };
        }
        out
    }
}

/// True when `msg` contains the decimal `number` as a whole number (not part of a longer run of
/// digits): how a reply is matched to the request whose `{t}` it carries back.
#[must_use]
pub fn contains_number(msg: &[u8], number: u64) -> bool {
    let needle = number.to_string();
    let needle = needle.as_bytes();
    let mut from = 0;
    while let Some(pos) = msg[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
    {
        let before = pos.checked_sub(1).map(|i| msg[i]);
        let after = msg.get(pos + needle.len()).copied();
        let digit = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_digit());
        if !digit(before) && !digit(after) {
            return true;
        }
        from = pos + 1;
    }
    false
}

/// A JSON array of consecutive small numbers (`[1,2,3,...]`) of about `bytes` bytes (never more):
/// a payload that parses into many values.
#[must_use]
pub fn number_array(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes);
    out.push('[');
    let mut n = 1u64;
    loop {
        let s = n.to_string();
        // Room for the number, a comma or the closing bracket.
        if out.len() + s.len() + 2 > bytes {
            break;
        }
        if n > 1 {
            out.push(',');
        }
        out.push_str(&s);
        n += 1;
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder_and_keeps_json_braces() {
        let t =
            Template::parse(r#"{"a":{seq},"b":"{topic}-{conn}","p":{payload},"x":"{y}"}"#).unwrap();
        let vars = Vars {
            t: 1,
            seq: 7,
            topic: "room",
            conn: 3,
            payload: "[1,2]",
        };
        assert_eq!(
            t.render(&vars),
            r#"{"a":7,"b":"room-3","p":[1,2],"x":"{y}"}"#
        );
        assert!(!t.uses_time());
        assert!(Template::parse("").is_err());
    }

    #[test]
    fn matches_whole_numbers_only() {
        assert!(contains_number(br#"{"t":12345,"a":1}"#, 12345));
        assert!(contains_number(br#"{"text":"probe 12345"}"#, 12345));
        assert!(!contains_number(br#"{"t":123456}"#, 12345));
        assert!(!contains_number(br#"{"t":112345}"#, 12345));
        assert!(contains_number(br#"{"t":112345,"u":12345}"#, 12345));
    }

    #[test]
    fn number_array_is_json_of_the_size_asked() {
        let a = number_array(10_000);
        assert!(a.len() <= 10_000 && a.len() > 9_990, "{}", a.len());
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v[0], 1);
        assert_eq!(number_array(2), "[]");
    }
}
