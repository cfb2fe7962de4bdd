//! Choosing the event hub's backend from a URL, so one binary runs alone or in a cluster by configuration.

use std::error::Error as StdError;
use std::fmt;

use pikku_core::App;

/// Links an [`App`]'s event hub to other processes through the broker a URL names.
///
/// | URL | backend | cargo feature of `pikku` |
/// |---|---|---|
/// | `memory` | none: this process only | — |
/// | `redis://…`, `rediss://…` | a Redis server | `redis` |
/// | `redis+cluster://host:port,host:port…`, `rediss+cluster://…` | a Redis Cluster, sharded pub/sub | `redis` |
/// | `nats://host:port[,host:port…]` | a NATS server or cluster | `nats` |
/// | `postgres://…`, `postgresql://…` | PostgreSQL `LISTEN` / `NOTIFY` | `postgres` |
///
/// ```
/// use pikku::{App, HubUrlExt};
///
/// let url = std::env::var("HUB_URL").unwrap_or_else(|_| "memory".to_owned());
/// let app: App<()> = App::new(()).hub_url(&url)?;
/// # let _ = app;
/// # Ok::<(), pikku::HubUrlError>(())
/// ```
pub trait HubUrlExt: Sized {
    /// Installs the driver `url` names (nothing for `memory`).
    ///
    /// # Errors
    /// [`HubUrlError`] when the URL is malformed, names no known broker, or names one whose feature this build
    /// of `pikku` lacks.
    ///
    /// # Panics
    /// When the app already has a hub driver.
    fn hub_url(self, url: &str) -> Result<Self, HubUrlError>;
}

impl<S: Send + Sync + 'static, U: Send + Sync + 'static> HubUrlExt for App<S, U> {
    #[track_caller]
    fn hub_url(self, url: &str) -> Result<Self, HubUrlError> {
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        match scheme {
            "memory" => Ok(self),
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => redis(self, url),
            "nats" => nats(self, url),
            "postgres" | "postgresql" => postgres(self, url),
            _ => Err(HubUrlError::UnknownScheme {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// One function per backend: installs its driver when the feature is built, says which feature is missing
/// otherwise.
macro_rules! backend {
    ($fn:ident, $feature:literal, $driver:path) => {
        #[cfg(feature = $feature)]
        #[track_caller]
        fn $fn<S: Send + Sync + 'static, U: Send + Sync + 'static>(
            app: App<S, U>,
            url: &str,
        ) -> Result<App<S, U>, HubUrlError> {
            let driver =
                <$driver>::from_url(url).map_err(|err| HubUrlError::Invalid(Box::new(err)))?;
            Ok(app.hub_driver(driver))
        }

        #[cfg(not(feature = $feature))]
        fn $fn<S, U>(_app: App<S, U>, _url: &str) -> Result<App<S, U>, HubUrlError> {
            Err(HubUrlError::NotBuilt { feature: $feature })
        }
    };
}

backend!(redis, "redis", pikku_redis::RedisHub);
backend!(nats, "nats", pikku_nats::NatsHub);
backend!(postgres, "postgres", pikku_postgres::PostgresHub);

/// Why [`HubUrlExt::hub_url`] refused a URL.
///
/// ```
/// use pikku::{App, HubUrlError, HubUrlExt};
///
/// let err = App::<()>::new(()).hub_url("carrier-pigeon://coop").unwrap_err();
/// assert!(matches!(err, HubUrlError::UnknownScheme { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HubUrlError {
    /// The scheme names no broker pikku knows.
    UnknownScheme {
        /// The scheme, as given.
        scheme: String,
    },
    /// The broker is known, but this build of `pikku` lacks its cargo feature.
    NotBuilt {
        /// The feature to enable.
        feature: &'static str,
    },
    /// The backend refused the URL; the source says why.
    Invalid(Box<dyn StdError + Send + Sync + 'static>),
}

impl fmt::Display for HubUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownScheme { scheme } => write!(
                f,
                "unknown event hub URL scheme '{scheme}' (expected memory, redis, rediss, redis+cluster, rediss+cluster, nats, postgres)"
            ),
            Self::NotBuilt { feature } => write!(
                f,
                "this build of pikku has no '{feature}' event hub: enable the cargo feature '{feature}'"
            ),
            Self::Invalid(err) => write!(f, "invalid event hub URL: {err}"),
        }
    }
}

impl StdError for HubUrlError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Invalid(err) => Some(&**err),
            _ => None,
        }
    }
}
