//! Which WebSocket subprotocol an accepted upgrade echoes in `Sec-WebSocket-Protocol`.

use std::sync::Arc;

use crate::error::ChannelError;
use crate::middleware::offered_subprotocols;
use http::{HeaderMap, HeaderValue};

/// The callback of [`SubprotocolPolicy::Select`]: sees the offered names, returns the one to echo.
pub type SelectSubprotocol =
    Arc<dyn Fn(&[&str]) -> Result<Option<String>, ChannelError> + Send + Sync>;

/// How a runner answers the subprotocols a client offers in `Sec-WebSocket-Protocol`.
///
/// Set it in the embedded server's `ServerConfig::subprotocols`, or in a gateway adapter's configuration. Browsers cannot set headers on a
/// WebSocket, so pages often carry a token as a subprotocol (`new WebSocket(url, ["pikku.v1", token])`), and a
/// browser, like Node's `ws`, aborts the connection when it offered subprotocols and the 101 response selects
/// none. Upgrade middleware reads the offer with
/// [`UpgradeRequest::subprotocols`](crate::UpgradeRequest::subprotocols) (for example to turn the token
/// into a session); this policy only decides which name is echoed. It runs after every other upgrade check and
/// after upgrade middleware.
///
/// | policy | client offers nothing | client offers names |
/// |---|---|---|
/// | `None` (default) | no header | no header |
/// | `List` | no header | the first offered name that is listed; only unlisted ones: 400 `Unsupported subprotocol` |
/// | `EchoFirst` | no header | the first offered name |
/// | `Select` | the callback decides (it sees an empty list) | the callback decides |
///
/// ```
/// use pikku::server::SubprotocolPolicy;
/// use pikku::ServerConfig;
///
/// // Select `pikku.v1` when offered.
/// let config = ServerConfig { subprotocols: SubprotocolPolicy::list(["pikku.v1"]), ..Default::default() };
/// # let _ = config;
/// // Echo whatever the client offers first.
/// let config = ServerConfig { subprotocols: SubprotocolPolicy::EchoFirst, ..Default::default() };
/// # let _ = config;
/// ```
///
/// A callback that insists on a token being offered next to the protocol name (middleware that reads the same
/// token sets the session):
///
/// ```
/// use pikku::ChannelError;
/// use pikku::server::SubprotocolPolicy;
/// use pikku::ServerConfig;
///
/// let policy = SubprotocolPolicy::select(|offered| {
///     if !offered.iter().any(|p| p.starts_with("token.")) {
///         return Err(ChannelError::unauthorized("Missing token"));
///     }
///     Ok(offered.iter().find(|p| **p == "pikku.v1").map(|p| (*p).to_owned()))
/// });
/// let config = ServerConfig { subprotocols: policy, ..Default::default() };
/// # let _ = config;
/// ```
#[derive(Clone, Default)]
pub enum SubprotocolPolicy {
    /// Select nothing, whatever is offered (the default).
    #[default]
    None,
    /// Echo the first offered name that is in the list (names compare exactly, case included). A client that
    /// offers names but none of these is refused with 400 `Unsupported subprotocol`: browsers and Node's `ws`
    /// would abort a 101 without the header anyway, and the refusal says why.
    List(Vec<String>),
    /// Echo the first offered name, whatever it is.
    EchoFirst,
    /// Ask a callback. It sees the offered names in the client's order and returns the one to echo (`None`:
    /// no header), or refuses the upgrade with a client error (401, 403, …), answered as JSON like every other
    /// refusal. A name it returns that the client did not offer is a server bug: the upgrade gets 500.
    Select(SelectSubprotocol),
}

impl std::fmt::Debug for SubprotocolPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::List(list) => f.debug_tuple("List").field(list).finish(),
            Self::EchoFirst => f.write_str("EchoFirst"),
            Self::Select(_) => f.write_str("Select(..)"),
        }
    }
}

impl SubprotocolPolicy {
    /// [`SubprotocolPolicy::List`] from any names.
    ///
    /// ```
    /// use pikku::server::SubprotocolPolicy;
    ///
    /// let policy = SubprotocolPolicy::list(["pikku.v2", "pikku.v1"]);
    /// assert!(matches!(policy, SubprotocolPolicy::List(names) if names == ["pikku.v2", "pikku.v1"]));
    /// ```
    #[must_use]
    pub fn list<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        Self::List(names.into_iter().map(Into::into).collect())
    }

    /// [`SubprotocolPolicy::Select`] from a closure; see the type-level example.
    #[must_use]
    pub fn select(
        callback: impl Fn(&[&str]) -> Result<Option<String>, ChannelError> + Send + Sync + 'static,
    ) -> Self {
        Self::Select(Arc::new(callback))
    }

    /// The value of the accepting response's `Sec-WebSocket-Protocol` header for these request headers, or the
    /// refusal; runners call it after every other upgrade check.
    ///
    /// ```
    /// use pikku::server::SubprotocolPolicy;
    ///
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("sec-websocket-protocol", "token.abc, pikku.v1".parse().unwrap());
    /// let chosen = SubprotocolPolicy::list(["pikku.v1"]).choose(&headers).unwrap();
    /// assert_eq!(chosen.unwrap(), "pikku.v1");
    /// ```
    ///
    /// # Errors
    /// 400 `Unsupported subprotocol` when a `List` policy accepts none of the offered names, or what a `Select`
    /// callback returns.
    pub fn choose(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, ChannelError> {
        let chosen = match self {
            Self::None => return Ok(None),
            Self::List(accepted) => {
                let mut offered = offered_subprotocols(headers).peekable();
                if offered.peek().is_none() {
                    return Ok(None);
                }
                match offered.find(|p| accepted.iter().any(|a| a == p)) {
                    Some(found) => found.to_owned(),
                    None => return Err(ChannelError::bad_request("Unsupported subprotocol")),
                }
            }
            Self::EchoFirst => match offered_subprotocols(headers).next() {
                Some(first) => first.to_owned(),
                None => return Ok(None),
            },
            Self::Select(callback) => {
                let offered: Vec<&str> = offered_subprotocols(headers).collect();
                match callback(&offered)? {
                    None => return Ok(None),
                    Some(name) if offered.contains(&name.as_str()) => name,
                    Some(name) => {
                        return Err(ChannelError::internal(format!(
                        "the subprotocol callback chose '{name}', which the client did not offer"
                    )))
                    }
                }
            }
        };
        HeaderValue::from_str(&chosen)
            .map(Some)
            .map_err(|_| ChannelError::bad_request("Malformed upgrade request"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(v),
            );
        }
        headers
    }

    fn chosen(policy: &SubprotocolPolicy, values: &[&'static str]) -> Option<String> {
        policy
            .choose(&offer(values))
            .unwrap()
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn each_policy_chooses_as_documented() {
        let list = SubprotocolPolicy::list(["pikku.v2", "pikku.v1"]);
        assert_eq!(
            chosen(&list, &["chat, pikku.v1", "pikku.v2"]).as_deref(),
            Some("pikku.v1")
        );
        assert_eq!(chosen(&list, &[]), None);
        assert_eq!(list.choose(&offer(&["chat"])).unwrap_err().status(), 400);
        assert_eq!(
            chosen(&SubprotocolPolicy::EchoFirst, &["a, b"]).as_deref(),
            Some("a")
        );
        assert_eq!(chosen(&SubprotocolPolicy::None, &["a"]), None);
        let liar = SubprotocolPolicy::select(|_| Ok(Some("other".into())));
        assert_eq!(liar.choose(&offer(&["a"])).unwrap_err().status(), 500);
    }
}
