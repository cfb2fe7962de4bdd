//! What can go wrong between a node and PostgreSQL.

use std::error::Error as StdError;
use std::fmt;

use pikku_core::hub::envelope::EnvelopeError;

/// Why the PostgreSQL driver refused or failed.
///
/// The hub wraps it in a [`BackendError`](pikku_core::error::BackendError) named `"postgres"`; the PostgreSQL
/// error underneath, when there is one, is its [`source`](StdError::source).
///
/// ```
/// use pikku_postgres::{PostgresError, PostgresHub};
///
/// let err = PostgresHub::from_url("postgres://127.0.0.1:not-a-port/db").unwrap_err();
/// assert!(matches!(err, PostgresError::InvalidUrl(_)));
/// assert_eq!(err.to_string(), "invalid PostgreSQL connection URL");
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection URL did not parse.
    InvalidUrl(tokio_postgres::Error),
    /// The URL asks for TLS (`sslmode=require`), which this driver does not speak.
    TlsUnsupported,
    /// A builder setting that can never work.
    InvalidSetting {
        /// The builder method: `"channel_prefix"`, `"table"` or `"retention"`.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`start`](pikku_core::hub::HubDriver::start) was called a second time.
    AlreadyStarted,
    /// Connecting, or preparing a new connection (table, statements), failed.
    Connect(tokio_postgres::Error),
    /// The link is down; the driver is reconnecting.
    Disconnected,
    /// A connection of the link ended; `None` when the server closed it without saying why.
    LinkLost(Option<tokio_postgres::Error>),
    /// A statement failed on a live link.
    Query(tokio_postgres::Error),
    /// The server did not answer within the request timeout; the link is being replaced.
    Timeout,
    /// A notification on a hub channel that is not a hub message (written by something else).
    BadNotification(&'static str),
    /// A hub message whose envelope this node cannot read.
    Envelope(EnvelopeError),
    /// A payload sent by reference was no longer in the table (deleted after the retention period).
    PayloadGone(i64),
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(_) => f.write_str("invalid PostgreSQL connection URL"),
            Self::TlsUnsupported => f.write_str(
                "the PostgreSQL URL requires TLS, which the pikku driver does not support (use sslmode=disable or prefer)",
            ),
            Self::InvalidSetting { setting, reason } => {
                write!(f, "invalid PostgreSQL hub setting {setting}: {reason}")
            }
            Self::AlreadyStarted => f.write_str("the PostgreSQL hub driver was already started"),
            Self::Connect(_) => f.write_str("could not connect to PostgreSQL"),
            Self::Disconnected => f.write_str("not connected to PostgreSQL; reconnecting"),
            Self::LinkLost(Some(_)) => f.write_str("lost the connection to PostgreSQL"),
            Self::LinkLost(None) => f.write_str("PostgreSQL closed the connection"),
            Self::Query(_) => f.write_str("a PostgreSQL statement failed"),
            Self::Timeout => f.write_str("PostgreSQL did not answer in time"),
            Self::BadNotification(why) => write!(f, "not a hub notification: {why}"),
            Self::Envelope(_) => f.write_str("unreadable hub message"),
            Self::PayloadGone(id) => write!(
                f,
                "payload {id} was deleted before it was read (retention period too short?)"
            ),
        }
    }
}

impl StdError for PostgresError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::InvalidUrl(e) | Self::Connect(e) | Self::Query(e) | Self::LinkLost(Some(e)) => {
                Some(e)
            }
            Self::Envelope(e) => Some(e),
            _ => None,
        }
    }
}

/// Shows an error followed by each of its causes, for log lines.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}
