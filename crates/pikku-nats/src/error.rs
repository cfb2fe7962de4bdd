//! The errors of the NATS driver.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error from the NATS client, kept as the [`source`](StdError::source) of a [`NatsError`].
type ClientError = Box<dyn StdError + Send + Sync + 'static>;

/// Why the NATS driver refused or failed. The hub wraps it in a
/// [`BackendError`](pikku_core::error::BackendError) whose backend is `"nats"`.
///
/// ```
/// use pikku_nats::{NatsError, NatsHub};
///
/// let err = NatsHub::from_url("http://127.0.0.1:4222").unwrap_err();
/// assert!(matches!(err, NatsError::BadUrl(_)));
/// assert!(err.to_string().starts_with("invalid NATS server URL"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum NatsError {
    /// The server URL (or one entry of a server list) cannot be used; the text says why. It never repeats
    /// credentials.
    BadUrl(String),
    /// The subject prefix is not a literal NATS subject (empty tokens, whitespace, `*` or `>`).
    InvalidPrefix(String),
    /// No server of the list could be reached, or the client could not be set up.
    Connect {
        /// The servers tried, without credentials.
        servers: String,
        /// What went wrong.
        reason: String,
    },
    /// The server did not take a subscription.
    Subscribe {
        /// The subject that was being subscribed.
        subject: String,
        /// The client's error.
        source: ClientError,
    },
    /// The server did not take a publication.
    Publish {
        /// The subject that was being published to.
        subject: String,
        /// The client's error (for example a payload over the server's `max_payload`).
        source: ClientError,
    },
    /// The connection to the server is down (or not up yet); the driver is reconnecting. Nothing was sent.
    LinkDown {
        /// The servers, without credentials.
        servers: String,
    },
}

impl fmt::Display for NatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(reason) => write!(f, "invalid NATS server URL: {reason}"),
            Self::InvalidPrefix(prefix) => write!(
                f,
                "invalid NATS subject prefix {prefix:?}: it needs non-empty tokens separated by '.', without \
                 whitespace, '*' or '>'"
            ),
            Self::Connect { servers, reason } => {
                write!(f, "cannot connect to NATS at {servers}: {reason}")
            }
            Self::Subscribe { subject, source } => {
                write!(f, "NATS subscribe to '{subject}' failed: {source}")
            }
            Self::Publish { subject, source } => {
                write!(f, "NATS publish to '{subject}' failed: {source}")
            }
            Self::LinkDown { servers } => {
                write!(f, "the connection to NATS at {servers} is down; reconnecting")
            }
        }
    }
}

impl StdError for NatsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Subscribe { source, .. } | Self::Publish { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_servers_and_subjects_and_keep_the_client_error_as_source() {
        let down = NatsError::LinkDown {
            servers: "nats://10.0.0.1:4222".into(),
        };
        assert_eq!(
            down.to_string(),
            "the connection to NATS at nats://10.0.0.1:4222 is down; reconnecting"
        );
        assert!(down.source().is_none());
        let io = std::io::Error::other("broken pipe");
        let publish = NatsError::Publish {
            subject: "pikku.news".into(),
            source: Box::new(io),
        };
        assert_eq!(
            publish.to_string(),
            "NATS publish to 'pikku.news' failed: broken pipe"
        );
        assert!(publish
            .source()
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()));
    }
}
