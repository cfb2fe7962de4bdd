//! What can go wrong between the stores and PostgreSQL.

use std::error::Error as StdError;
use std::fmt;

use pikku_core::store::StoreError;

/// Why a PostgreSQL store failed. Store operations return it inside [`StoreError::Backend`], whose
/// [`backend`](pikku_core::error::BackendError::backend) is `"postgres"`.
///
/// ```
/// use pikku::postgres::store::{PostgresStoreError, PostgresStores};
///
/// let err = PostgresStores::from_url("postgres://127.0.0.1:not-a-port/db").unwrap_err();
/// assert!(matches!(err, PostgresStoreError::InvalidUrl(_)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// The connection URL did not parse.
    InvalidUrl(tokio_postgres::Error),
    /// The URL asks for TLS (`sslmode=require`), which the stores do not speak.
    TlsUnsupported,
    /// A table prefix that cannot work.
    InvalidPrefix(&'static str),
    /// Connecting, creating the tables or preparing the statements failed.
    Connect(tokio_postgres::Error),
    /// A statement failed.
    Query(tokio_postgres::Error),
    /// The server did not answer within the request timeout; the connection is replaced on next use.
    Timeout,
}

impl fmt::Display for PostgresStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(_) => f.write_str("invalid PostgreSQL connection URL"),
            Self::TlsUnsupported => f.write_str(
                "the PostgreSQL URL requires TLS, which the pikku stores do not support (use sslmode=disable or prefer)",
            ),
            Self::InvalidPrefix(reason) => write!(f, "invalid table prefix: {reason}"),
            Self::Connect(e) => write!(f, "could not connect to PostgreSQL: {e}"),
            Self::Query(e) => write!(f, "a PostgreSQL statement failed: {e}"),
            Self::Timeout => f.write_str("PostgreSQL did not answer in time"),
        }
    }
}

impl StdError for PostgresStoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::InvalidUrl(e) | Self::Connect(e) | Self::Query(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PostgresStoreError> for StoreError {
    fn from(err: PostgresStoreError) -> Self {
        StoreError::backend("postgres", err)
    }
}
