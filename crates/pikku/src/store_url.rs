//! Choosing the stateless stores from a URL, as [`HubUrlExt::hub_url`](crate::HubUrlExt::hub_url) chooses the hub.

use std::error::Error as StdError;
use std::fmt;

use pikku_core::stateless::StatelessStores;

/// The [`StatelessStores`] a URL names: `memory` (in this process only), `redis://…` or `rediss://…` (one
/// Redis server, cargo feature `redis`), `postgres://…` or `postgresql://…` (cargo feature `postgres`; the
/// tables are created if missing before this returns).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let stores = pikku::stores_from_url("memory").await.unwrap();
/// # let _ = stores;
/// assert!(matches!(
///     pikku::stores_from_url("mongodb://127.0.0.1").await,
///     Err(pikku::StoreUrlError::UnknownScheme { .. })
/// ));
/// # });
/// ```
///
/// # Errors
/// An unknown scheme, a backend this build lacks, a URL the backend refuses, or (PostgreSQL) a failed migration.
pub async fn stores_from_url(url: &str) -> Result<StatelessStores, StoreUrlError> {
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    match scheme {
        "memory" => Ok(StatelessStores::memory()),
        "redis" | "rediss" => redis(url),
        "postgres" | "postgresql" => postgres(url).await,
        _ => Err(StoreUrlError::UnknownScheme {
            scheme: scheme.to_owned(),
        }),
    }
}

#[cfg(feature = "redis")]
fn redis(url: &str) -> Result<StatelessStores, StoreUrlError> {
    let stores = pikku_redis::store::RedisStores::from_url(url)
        .map_err(|err| StoreUrlError::Invalid(Box::new(err)))?;
    Ok(stores.stateless_stores())
}

#[cfg(not(feature = "redis"))]
fn redis(_url: &str) -> Result<StatelessStores, StoreUrlError> {
    Err(StoreUrlError::NotBuilt { feature: "redis" })
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<StatelessStores, StoreUrlError> {
    let stores = pikku_postgres::store::PostgresStores::from_url(url)
        .map_err(|err| StoreUrlError::Invalid(Box::new(err)))?;
    stores
        .migrate()
        .await
        .map_err(|err| StoreUrlError::Invalid(Box::new(err)))?;
    Ok(stores.stateless_stores())
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<StatelessStores, StoreUrlError> {
    Err(StoreUrlError::NotBuilt {
        feature: "postgres",
    })
}

/// Why [`stores_from_url`] could not make stores.
///
/// ```
/// let err = pikku::StoreUrlError::NotBuilt { feature: "redis" };
/// assert_eq!(
///     err.to_string(),
///     "this build of pikku has no 'redis' stores: enable the cargo feature 'redis'"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreUrlError {
    /// The URL's scheme names no store backend.
    UnknownScheme {
        /// The scheme.
        scheme: String,
    },
    /// The backend exists but this build lacks its cargo feature.
    NotBuilt {
        /// The feature to enable.
        feature: &'static str,
    },
    /// The backend refused the URL, or could not prepare its tables.
    Invalid(Box<dyn StdError + Send + Sync + 'static>),
}

impl fmt::Display for StoreUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownScheme { scheme } => write!(
                f,
                "unknown store URL scheme '{scheme}' (expected memory, redis, rediss, postgres, postgresql)"
            ),
            Self::NotBuilt { feature } => write!(
                f,
                "this build of pikku has no '{feature}' stores: enable the cargo feature '{feature}'"
            ),
            Self::Invalid(err) => write!(f, "invalid store URL: {err}"),
        }
    }
}

impl StdError for StoreUrlError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Invalid(err) => Some(&**err),
            _ => None,
        }
    }
}
