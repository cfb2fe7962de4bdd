//! Reading the server URL: one `nats://` address or a comma-separated list, with optional credentials.

use async_nats::{ConnectOptions, ServerAddr};
use percent_encoding::percent_decode_str;

use crate::error::NatsError;

/// The servers to connect to, as parsed from the URL. The addresses carry no credentials; those are kept apart
/// so that nothing printed (errors, `Debug`, logs) can show them.
#[derive(Clone)]
pub(crate) struct Servers {
    pub(crate) addrs: Vec<ServerAddr>,
    /// The addresses as text, for messages.
    pub(crate) shown: String,
    credentials: Credentials,
}

/// Credentials from a URL's user part: `user:password@` or `token@`.
#[derive(Clone, PartialEq, Eq)]
enum Credentials {
    None,
    UserPassword(String, String),
    Token(String),
}

impl Servers {
    /// Parses `url` without any I/O.
    pub(crate) fn parse(url: &str) -> Result<Self, NatsError> {
        let mut addrs = Vec::new();
        let mut credentials = Credentials::None;
        for entry in url.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(NatsError::BadUrl(
                    "an empty server entry in the list".into(),
                ));
            }
            let (addr, found) = parse_one(entry)?;
            if found != Credentials::None {
                if credentials != Credentials::None && credentials != found {
                    return Err(NatsError::BadUrl(
                        "the servers of the list carry different credentials".into(),
                    ));
                }
                credentials = found;
            }
            addrs.push(addr);
        }
        let shown = addrs
            .iter()
            .map(|a| a.as_url_str().trim_end_matches('/'))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            addrs,
            shown,
            credentials,
        })
    }

    /// `options` with the URL's credentials, if it had any.
    pub(crate) fn authenticate(&self, options: ConnectOptions) -> ConnectOptions {
        match &self.credentials {
            Credentials::None => options,
            Credentials::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(token) => options.token(token.clone()),
        }
    }
}

/// One server: its address without credentials, and the credentials it carried.
fn parse_one(entry: &str) -> Result<(ServerAddr, Credentials), NatsError> {
    let addr: ServerAddr = entry
        .parse()
        .map_err(|e: std::io::Error| NatsError::BadUrl(e.to_string()))?;
    match addr.scheme() {
        "nats" => {}
        "tls" => {
            return Err(NatsError::BadUrl(
                "tls:// is not supported: this driver speaks plain nats:// only".into(),
            ))
        }
        other => {
            return Err(NatsError::BadUrl(format!(
                "the scheme {other}:// is not supported; use nats://"
            )))
        }
    }
    if addr.host().is_empty() {
        return Err(NatsError::BadUrl("a server without a host".into()));
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials = match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => Credentials::UserPassword(decode(user), decode(password)),
        (Some(token), None) => Credentials::Token(decode(token)),
        (None, Some(password)) => Credentials::UserPassword(String::new(), decode(password)),
        (None, None) => Credentials::None,
    };
    let mut url = addr.into_inner();
    // Both only fail for URLs that cannot carry credentials, which then have none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let addr = ServerAddr::from_url(url).map_err(|e| NatsError::BadUrl(e.to_string()))?;
    Ok((addr, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_with_or_without_scheme() {
        let s = Servers::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!(s.addrs.len(), 1);
        assert_eq!(s.addrs[0].port(), 4222);
        assert_eq!(s.shown, "nats://127.0.0.1:4222");
        let bare = Servers::parse("localhost:5222").unwrap();
        assert_eq!(bare.addrs[0].host(), "localhost");
        assert_eq!(bare.addrs[0].port(), 5222);
        assert_eq!(
            Servers::parse("nats://example.com").unwrap().addrs[0].port(),
            4222
        );
    }

    #[test]
    fn a_comma_separated_list() {
        let s = Servers::parse("nats://10.0.0.1:4222, nats://10.0.0.2:4223,10.0.0.3").unwrap();
        let ports: Vec<u16> = s.addrs.iter().map(ServerAddr::port).collect();
        assert_eq!(ports, [4222, 4223, 4222]);
        assert_eq!(s.shown.split(',').count(), 3);
    }

    #[test]
    fn unusable_urls_are_refused() {
        for bad in [
            "",
            "nats://a:4222,",
            ",nats://a:4222",
            "http://a:4222",
            "tls://a:4222",
            "ws://a:8080",
            "wss://a:443",
            "nats://:4222",
            "nats://a:99999",
        ] {
            assert!(
                matches!(Servers::parse(bad), Err(NatsError::BadUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials_are_taken_out_of_the_addresses() {
        let s = Servers::parse("nats://hub%40app:s3cr%2Ft@127.0.0.1:4222").unwrap();
        assert!(
            s.credentials == Credentials::UserPassword("hub@app".into(), "s3cr/t".into()),
            "user and password are percent-decoded"
        );
        assert_eq!(s.shown, "nats://127.0.0.1:4222");
        assert!(!format!("{:?}", s.addrs).contains("s3cr"));
        let token = Servers::parse("nats://t0ken@127.0.0.1:4222").unwrap();
        assert!(token.credentials == Credentials::Token("t0ken".into()));
        let err = Servers::parse("nats://a:b@h1:4222,nats://a:c@h2:4222")
            .err()
            .unwrap();
        assert!(matches!(err, NatsError::BadUrl(_)));
        assert!(!err.to_string().contains("a:b") && !err.to_string().contains("a:c"));
        assert!(
            Servers::parse("nats://a:b@h1:4222,nats://h2:4222").is_ok(),
            "one set of credentials serves the whole list"
        );
    }
}
