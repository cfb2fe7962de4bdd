//! Which web origins may open a channel: the defence against cross-site WebSocket hijacking.
//!
//! Browsers attach cookies to a WebSocket upgrade whatever page starts it, and the same-origin policy does not
//! apply to WebSockets; the `Origin` header is the only sign of which site asked. So by default an upgrade that
//! carries an `Origin` must come from the host it is addressed to, as Phoenix's `check_origin` and gorilla's
//! websocket upgrader do. Clients that are not browsers send no `Origin` and are not affected.

use http::HeaderMap;

/// Which `Origin` values an upgrade may carry, set with [`AppConfig::origin`](crate::AppConfig::origin).
///
/// An upgrade refused by the policy gets 403 `ForbiddenError` `Origin not allowed` (after the route matched).
///
/// ```
/// use pikku::{App, OriginPolicy};
///
/// assert_eq!(OriginPolicy::default(), OriginPolicy::SameHost);
/// // A page served from another host talks to this app.
/// let app: App<()> = App::new(()).configure(|c| {
///     c.origin = OriginPolicy::allow(["https://app.example.com", "http://localhost:3000"]);
/// });
/// # let _ = app;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OriginPolicy {
    /// The default: an upgrade with an `Origin` header is allowed only when the origin's `host[:port]` equals the
    /// request's `Host` header (ASCII case-insensitive; the scheme is not compared, so a TLS-terminating proxy in
    /// front does not matter). The opaque origin `null` never matches. An upgrade without `Origin` (a client that
    /// is not a browser) is allowed.
    #[default]
    SameHost,
    /// Only these exact origins (`https://example.com`, as browsers send them: scheme, host and a non-default
    /// port, no trailing `/`). An upgrade without `Origin` is refused too: the list is meant to admit only the
    /// listed web origins.
    Allow(Vec<String>),
    /// Every origin, and none. Only for apps that authenticate each connection without cookies (a token in the
    /// first message, say), since any web page can then open a channel in the visitor's name otherwise.
    Any,
}

impl OriginPolicy {
    /// An [`Allow`](Self::Allow) list from anything iterable of strings.
    ///
    /// ```
    /// use pikku::OriginPolicy;
    ///
    /// let policy = OriginPolicy::allow(["https://example.com"]);
    /// assert!(policy.allows(Some("https://example.com"), Some("api.example.com")));
    /// assert!(!policy.allows(Some("https://evil.example"), Some("api.example.com")));
    /// assert!(!policy.allows(None, Some("api.example.com")));
    /// ```
    pub fn allow<I, T>(origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::Allow(origins.into_iter().map(Into::into).collect())
    }

    /// Whether an upgrade with this `Origin` header value (if any) addressed to this `Host` header value (if
    /// any) passes the policy.
    ///
    /// ```
    /// use pikku::OriginPolicy;
    ///
    /// let same = OriginPolicy::SameHost;
    /// assert!(same.allows(Some("https://chat.example.com"), Some("chat.example.com")));
    /// assert!(same.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
    /// assert!(same.allows(None, Some("chat.example.com"))); // not a browser
    /// assert!(!same.allows(Some("https://evil.example"), Some("chat.example.com")));
    /// assert!(!same.allows(Some("null"), Some("chat.example.com")));
    /// assert!(!same.allows(Some("http://127.0.0.1:9999"), Some("127.0.0.1:8080")));
    /// assert!(OriginPolicy::Any.allows(Some("null"), None));
    /// ```
    #[must_use]
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::Allow(list) => origin.is_some_and(|o| list.iter().any(|allowed| allowed == o)),
            Self::SameHost => match origin {
                None => true,
                Some(origin) => {
                    let authority = origin_authority(origin);
                    match (authority, host) {
                        (Some(a), Some(h)) => a.eq_ignore_ascii_case(h.trim()),
                        _ => false,
                    }
                }
            },
        }
    }

    /// [`allows`](Self::allows) applied to request headers: the first `Origin` and `Host` values. A header
    /// value that is not visible ASCII counts as present but matching nothing.
    #[must_use]
    pub(crate) fn allows_request(&self, headers: &HeaderMap) -> bool {
        if matches!(self, Self::Any) {
            return true;
        }
        let origin = headers
            .get(http::header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("null"));
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok());
        self.allows(origin, host)
    }
}

/// The `host[:port]` of a serialized origin (`scheme://host[:port]`), or `None` for `null` and anything that
/// is not an origin (a path, user info, an empty host).
fn origin_authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let valid_scheme = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme || rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_compares_the_authority_only() {
        let p = OriginPolicy::SameHost;
        assert!(p.allows(Some("wss://Example.COM"), Some("example.com")));
        assert!(p.allows(Some("https://[::1]:8080"), Some("[::1]:8080")));
        assert!(!p.allows(Some("https://example.com"), Some("example.com:8443")));
        assert!(!p.allows(Some("https://example.com.evil"), Some("example.com")));
        assert!(!p.allows(Some("https://example.com/"), Some("example.com")));
        assert!(!p.allows(Some("https://user@example.com"), Some("example.com")));
        assert!(!p.allows(Some("example.com"), Some("example.com")));
        assert!(!p.allows(Some("https://example.com"), None));
        assert!(!p.allows(Some(""), Some("example.com")));
    }
}
