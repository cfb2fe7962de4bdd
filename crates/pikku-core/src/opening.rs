//! Channel routes (`/rooms/:roomId`) and opening data from the upgrade URL.
//!
//! Path params and query merge into one string map, which is deserialized into the channel's opening-data type.
//! String values become numbers and booleans where the target field needs one (`?limit=5` gives `5`).

use std::collections::HashMap;
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use crate::error::{ChannelError, RegistrationError};
use crate::input::deserialize_with_message;

/// The opening data of a channel that declares no type: route params and query as strings.
///
/// Use it as the `O` of [`Channel<O, Out>`](crate::Channel) when you do not need a typed opening struct.
///
/// ```
/// use pikku::{Channel, Ctx, Params};
///
/// // `/rooms/lobby?nick=ann` on `/rooms/:roomId`: {"roomId": "lobby", "nick": "ann"}
/// async fn hello(_ctx: Ctx<(), ()>, ch: Channel<Params, String>) {
///     let nick = ch.opening_data().get("nick").map_or("stranger", String::as_str);
///     let _ = ch.send(format!("hello {nick}"));
/// }
/// ```
pub type Params = HashMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route pattern: literal segments and params, written `:name` or `{name}`.
///
/// Apps parse the patterns of their channels at registration; use it directly to check a pattern or to match
/// paths the way the server does (a trailing `/` is ignored, literals are case-sensitive, params are
/// percent-decoded). Both param spellings mean the same: `:name` as in Pikku and Express, `{name}` as in axum.
///
/// ```
/// use pikku::core::RoutePattern;
///
/// let route = RoutePattern::parse("/rooms/:roomId").unwrap();
/// assert_eq!(route.to_string(), "/rooms/:roomId");
/// let params = route.matches("/rooms/caf%C3%A9").unwrap().unwrap();
/// assert_eq!(params, vec![("roomId".to_string(), "café".to_string())]);
/// assert!(route.matches("/Rooms/x").unwrap().is_none());
///
/// let axum_style = RoutePattern::parse("/rooms/{roomId}").unwrap();
/// assert!(axum_style.same_shape(&route));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    source: String,
    segments: Vec<Segment>,
}

/// One segment of a [`RoutePattern`], as [`RoutePattern::segments`] yields them.
///
/// ```
/// use pikku::core::{RoutePattern, RouteSegment};
///
/// let route = RoutePattern::parse("/rooms/{roomId}").unwrap();
/// let segments: Vec<_> = route.segments().collect();
/// assert_eq!(segments, [RouteSegment::Literal("rooms"), RouteSegment::Param("roomId")]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSegment<'a> {
    /// Matches exactly this text (still percent-encoded, as paths arrive).
    Literal(&'a str),
    /// Matches any one non-empty segment; the decoded text becomes the opening-data field of this name.
    Param(&'a str),
}

impl RoutePattern {
    /// Parses `/a/:b/c` (or `/a/{b}/c`).
    ///
    /// ```
    /// let route = pikku::core::RoutePattern::parse("/rooms/:roomId").unwrap();
    /// let params = route.matches("/rooms/abc/").unwrap().unwrap();
    /// assert_eq!(params, vec![("roomId".to_string(), "abc".to_string())]);
    /// assert!(route.matches("/rooms").unwrap().is_none());
    ///
    /// // Wildcards and params inside a segment are refused rather than taken as literal text.
    /// assert!(pikku::core::RoutePattern::parse("/files/*rest").is_err());
    /// assert!(pikku::core::RoutePattern::parse("/files/{*rest}").is_err());
    /// assert!(pikku::core::RoutePattern::parse("/files/v{version}").is_err());
    /// ```
    ///
    /// # Errors
    /// [`RegistrationError::InvalidRoute`]: the pattern does not start with `/`, has an empty segment, an invalid
    /// param name (empty, or not `[A-Za-z0-9_]`), the same param name twice, a wildcard (`*rest`, `{*rest}`),
    /// or a `{`, `}` or `*` anywhere but around a whole-segment param.
    pub fn parse(pattern: &str) -> Result<Self, RegistrationError> {
        let invalid = |reason: &str| RegistrationError::InvalidRoute {
            route: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = pattern
            .strip_prefix('/')
            .ok_or_else(|| invalid("it must start with '/'"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        let mut seen = Vec::new();
        if !rest.is_empty() {
            for seg in rest.split('/') {
                if seg.is_empty() {
                    return Err(invalid("empty path segment"));
                }
                let param = seg
                    .strip_prefix(':')
                    .or_else(|| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
                match param {
                    Some(name) => {
                        if name.starts_with('*') {
                            return Err(invalid(WILDCARD));
                        }
                        let valid = !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if !valid {
                            return Err(invalid(
                                "param names are non-empty and use [A-Za-z0-9_]",
                            ));
                        }
                        if seen.contains(&name) {
                            return Err(invalid("a param name appears twice"));
                        }
                        seen.push(name);
                        segments.push(Segment::Param(name.to_owned()));
                    }
                    None if seg.starts_with('*') => return Err(invalid(WILDCARD)),
                    None if seg.contains(['{', '}', '*']) => {
                        return Err(invalid(
                            "a param is a whole segment ('/:name' or '/{name}'); '{', '}' and '*' are not \
                             allowed in literal text",
                        ))
                    }
                    None => segments.push(Segment::Literal(seg.to_owned())),
                }
            }
        }
        Ok(Self {
            source: pattern.to_owned(),
            segments,
        })
    }

    /// The segments, in order: what a runner needs to mount the pattern in another router.
    ///
    /// ```
    /// use pikku::core::{RoutePattern, RouteSegment};
    ///
    /// let route = RoutePattern::parse("/files/:dir/latest/").unwrap();
    /// let axum_path: String = route
    ///     .segments()
    ///     .map(|segment| match segment {
    ///         RouteSegment::Literal(text) => format!("/{text}"),
    ///         RouteSegment::Param(name) => format!("/{{{name}}}"),
    ///     })
    ///     .collect();
    /// assert_eq!(axum_path, "/files/{dir}/latest");
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = RouteSegment<'_>> {
        self.segments.iter().map(|segment| match segment {
            Segment::Literal(text) => RouteSegment::Literal(text),
            Segment::Param(name) => RouteSegment::Param(name),
        })
    }

    /// The pattern as written (also its `Display`).
    ///
    /// ```
    /// let route = pikku::core::RoutePattern::parse("/rooms/:roomId/").unwrap();
    /// assert_eq!(route.as_str(), "/rooms/:roomId/");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no params. Literal patterns are matched before parameterised ones.
    ///
    /// ```
    /// use pikku::core::RoutePattern;
    ///
    /// assert!(RoutePattern::parse("/rooms/lobby").unwrap().is_literal());
    /// assert!(!RoutePattern::parse("/rooms/:roomId").unwrap().is_literal());
    /// ```
    #[must_use]
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Whether two patterns match the same paths (same literals and params in the same positions, whatever the
    /// param names). Two channels with routes of the same shape cannot both be registered.
    ///
    /// ```
    /// use pikku::core::RoutePattern;
    ///
    /// let a = RoutePattern::parse("/rooms/:id").unwrap();
    /// assert!(a.same_shape(&RoutePattern::parse("/rooms/:roomId/").unwrap()));
    /// assert!(!a.same_shape(&RoutePattern::parse("/rooms/lobby").unwrap()));
    /// ```
    #[must_use]
    pub fn same_shape(&self, other: &Self) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
    }

    /// Matches a raw (still percent-encoded) path. `Ok(Some(params))`: a match, with the decoded params in
    /// pattern order; `Ok(None)`: no match; `Err`: a param is not decodable. A param never matches an empty
    /// segment.
    ///
    /// ```
    /// use pikku::core::RoutePattern;
    ///
    /// let route = RoutePattern::parse("/files/:dir/:name").unwrap();
    /// let params = route.matches("/files/docs/a%20b.txt").unwrap().unwrap();
    /// assert_eq!(params[1], ("name".to_string(), "a b.txt".to_string()));
    /// assert!(route.matches("/files/docs").unwrap().is_none());
    /// assert_eq!(route.matches("/files/docs/%FF").unwrap_err().status(), 400);
    /// ```
    ///
    /// # Errors
    /// `BadRequestError` `Malformed upgrade request` when a matched param has a malformed escape (`%zz`, a
    /// trailing `%`), an encoded NUL (`%00`), or does not percent-decode to UTF-8.
    pub fn matches(&self, path: &str) -> Result<Option<Vec<(String, String)>>, ChannelError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Ok(None);
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = if rest.is_empty() {
            None
        } else {
            Some(rest.split('/'))
        };
        let mut params = Vec::new();
        for seg in &self.segments {
            let Some(part) = parts.as_mut().and_then(Iterator::next) else {
                return Ok(None);
            };
            match seg {
                Segment::Literal(lit) => {
                    if lit != part {
                        return Ok(None);
                    }
                }
                Segment::Param(name) => {
                    if part.is_empty() {
                        return Ok(None);
                    }
                    params.push((name.clone(), decode(part, false)?));
                }
            }
        }
        if parts.and_then(|mut p| p.next()).is_some() {
            return Ok(None);
        }
        Ok(Some(params))
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

const WILDCARD: &str =
    "wildcards are not supported: a channel route matches a fixed number of segments";

fn malformed() -> ChannelError {
    ChannelError::bad_request("Malformed upgrade request")
}

pub(crate) fn decode(raw: &str, plus_is_space: bool) -> Result<String, ChannelError> {
    check_escapes(raw)?;
    let owned;
    let raw = if plus_is_space && raw.contains('+') {
        owned = raw.replace('+', " ");
        &owned
    } else {
        raw
    };
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| malformed())
}

/// Refuses what a lenient decoder would let through as literal text: a `%` not followed by two hex digits
/// (`%zz`, a trailing `%`) and an encoded NUL (`%00`), which no route param or query value needs and which
/// confuses whatever later treats the value as a C string or a file name.
fn check_escapes(raw: &str) -> Result<(), ChannelError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + offset;
        match (bytes.get(at + 1), bytes.get(at + 2)) {
            (Some(hi), Some(lo)) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                if *hi == b'0' && *lo == b'0' {
                    return Err(malformed());
                }
            }
            _ => return Err(malformed()),
        }
        i = at + 3;
    }
    Ok(())
}

/// Checks that a whole raw path decodes cleanly: well-formed escapes, no encoded NUL, UTF-8 once decoded. The
/// refusal is the first upgrade check, `BadRequestError` `Malformed upgrade request` (400).
///
/// ```
/// use pikku::core::opening::check_path;
///
/// assert!(check_path("/rooms/caf%C3%A9").is_ok());
/// for bad in ["/rooms/%zz", "/rooms/a%", "/rooms/a%0", "/rooms/%00", "/rooms/%FF"] {
///     assert_eq!(check_path(bad).unwrap_err().status(), 400, "{bad}");
/// }
/// ```
///
/// # Errors
/// `BadRequestError` `Malformed upgrade request`.
pub fn check_path(path: &str) -> Result<(), ChannelError> {
    check_escapes(path)?;
    percent_decode_str(path)
        .decode_utf8()
        .map(|_| ())
        .map_err(|_| malformed())
}

/// Parses a query string by form rules: `+` is a space, `k` alone gives `""`, a repeated key keeps its last value.
///
/// `query` is the part after `?`, still percent-encoded; empty pairs (`a=1&&b=2`) are skipped.
///
/// ```
/// let q = pikku::core::parse_query("limit=1&limit=7&a+b=c%20d&flag").unwrap();
/// assert_eq!(q["limit"], "7");
/// assert_eq!(q["a b"], "c d");
/// assert_eq!(q["flag"], "");
/// ```
///
/// # Errors
/// `BadRequestError` `Malformed upgrade request` when a part has a malformed escape (`%zz`, a trailing `%`), an
/// encoded NUL (`%00`), or does not percent-decode to UTF-8.
pub fn parse_query(query: &str) -> Result<Params, ChannelError> {
    let mut map = Params::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(decode(k, true)?, decode(v, true)?);
    }
    Ok(map)
}

/// Merges route params into the query map; a key in both with different values refuses the upgrade with 422. The
/// same value in both is accepted.
///
/// ```
/// use pikku::core::opening::merge_params;
/// use pikku::core::parse_query;
///
/// let params = vec![("roomId".to_string(), "lobby".to_string())];
/// let merged = merge_params(params.clone(), parse_query("nick=ann").unwrap()).unwrap();
/// assert_eq!((merged["roomId"].as_str(), merged["nick"].as_str()), ("lobby", "ann"));
///
/// let err = merge_params(params, parse_query("roomId=other").unwrap()).unwrap_err();
/// assert_eq!(err.client_message(), "Conflicting values for key 'roomId'");
/// ```
///
/// # Errors
/// `UnprocessableContentError` `Conflicting values for key '<key>'`.
pub fn merge_params(
    params: Vec<(String, String)>,
    mut query: Params,
) -> Result<Params, ChannelError> {
    for (key, value) in params {
        if let Some(existing) = query.get(&key) {
            if *existing != value {
                return Err(ChannelError::unprocessable(
                    format!("Conflicting values for key '{key}'"),
                    Vec::new(),
                ));
            }
        }
        query.insert(key, value);
    }
    Ok(query)
}

/// Deserializes the merged string map into `O`, the channel's opening-data type.
///
/// Every value is a string, converted to the type the field asks for: numbers and `true`/`false` parse, an
/// `Option` field is `None` when its key is absent, a unit enum variant is matched by name. A key the type does
/// not declare is ignored unless the type denies unknown fields. On failure the upgrade is refused with 422.
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Room { #[serde(rename = "roomId")] room_id: String, limit: Option<u32> }
///
/// let map = [("roomId".to_string(), "abc".to_string()), ("limit".to_string(), "5".to_string())].into();
/// let room: Room = pikku::core::opening_from_params(map).unwrap();
/// assert_eq!(room, Room { room_id: "abc".into(), limit: Some(5) });
///
/// let bad = [("roomId".to_string(), "abc".to_string()), ("limit".to_string(), "many".to_string())].into();
/// let err = pikku::core::opening_from_params::<Room>(bad).unwrap_err();
/// assert_eq!((err.status(), err.details()[0].path.as_str()), (422, "/limit"));
/// ```
///
/// # Errors
/// `UnprocessableContentError` `Invalid opening data` with a JSON-Pointer detail.
pub fn opening_from_params<O: DeserializeOwned>(params: Params) -> Result<O, ChannelError> {
    let de = de::value::MapDeserializer::<_, de::value::Error>::new(
        params.into_iter().map(|(k, v)| (k, ParamValue(v))),
    );
    deserialize_with_message(de, "Invalid opening data")
}

/// One string value that converts to the type the target field asks for.
struct ParamValue(String);

impl<'de> IntoDeserializer<'de, de::value::Error> for ParamValue {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match self.0.parse() {
                Ok(n) => visitor.$visit(n),
                Err(_) => Err(de::Error::invalid_value(de::Unexpected::Str(&self.0), &visitor)),
            }
        })*
    };
}

impl<'de> de::Deserializer<'de> for ParamValue {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.as_str() {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Str(other),
                &visitor,
            )),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    parse_number! {
        deserialize_i8 => visit_i8, deserialize_i16 => visit_i16, deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64, deserialize_u8 => visit_u8, deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32, deserialize_u64 => visit_u64, deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_param_matching() {
        let p = RoutePattern::parse("/rooms/:id").unwrap();
        assert!(p.matches("/rooms/").unwrap().is_none());
        assert!(p.matches("/rooms/a/b").unwrap().is_none());
        assert!(p.matches("/Rooms/a").unwrap().is_none());
        assert_eq!(p.matches("/rooms/a%20b").unwrap().unwrap()[0].1, "a b");
        let root = RoutePattern::parse("/").unwrap();
        assert!(root.matches("/").unwrap().is_some());
        assert!(root.matches("/x").unwrap().is_none());
    }

    #[test]
    fn malformed_escapes_are_refused() {
        let p = RoutePattern::parse("/rooms/:id").unwrap();
        for bad in [
            "/rooms/%zz",
            "/rooms/a%",
            "/rooms/a%4",
            "/rooms/%00",
            "/rooms/a%00b",
        ] {
            assert_eq!(p.matches(bad).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(p.matches("/rooms/100%25").unwrap().unwrap()[0].1, "100%");
        for bad in ["a=%zz", "a=1%", "%00=x", "a=%00", "a=%G1"] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_query("a=%41%2b").unwrap()["a"], "A+");
    }

    #[test]
    fn invalid_patterns_are_refused() {
        assert!(RoutePattern::parse("rooms").is_err());
        assert!(RoutePattern::parse("/a//b").is_err());
        assert!(RoutePattern::parse("/:").is_err());
        assert!(RoutePattern::parse("/:a-b").is_err());
        assert!(RoutePattern::parse("/:a/:a").is_err());
    }

    #[test]
    fn conflicting_keys_are_422() {
        let err = merge_params(
            vec![("roomId".into(), "abc".into())],
            parse_query("roomId=zzz").unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.client_message(), "Conflicting values for key 'roomId'");
        merge_params(
            vec![("roomId".into(), "abc".into())],
            parse_query("roomId=abc").unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn bad_number_reports_its_path() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Room {
            limit: Option<u32>,
        }
        let err = opening_from_params::<Room>(parse_query("limit=abc").unwrap()).unwrap_err();
        assert_eq!(err.client_message(), "Invalid opening data");
        assert_eq!(err.details()[0].path, "/limit");
    }
}
