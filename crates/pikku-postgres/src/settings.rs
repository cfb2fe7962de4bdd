//! The driver's configuration: where the server is, and the names and periods it uses there.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::Config;

use crate::channel::{prefix_problem, MAX_CHANNEL_BYTES};
use crate::error::PostgresError;

pub(crate) const DEFAULT_PREFIX: &str = "pikku";
pub(crate) const DEFAULT_TABLE: &str = "pikku_hub_payloads";
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(60);

/// Connect timeout when the URL sets none: a server that does not answer is retried, not waited for.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// TCP keepalive idle time when the URL keeps the library's two hours, so that a listening connection to a
/// server that vanished without closing it is noticed in well under a minute.
const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const LIBRARY_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) prefix: String,
    pub(crate) table: String,
    pub(crate) retention: Duration,
}

impl Settings {
    /// Parses `url` (a `postgres://` URL or `key=value` pairs); no I/O.
    pub(crate) fn from_url(url: &str) -> Result<Self, PostgresError> {
        let mut config = Config::from_str(url).map_err(PostgresError::InvalidUrl)?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(PostgresError::TlsUnsupported);
        }
        // `prefer` would try TLS first; without TLS support the library goes straight to plain text anyway,
        // so say so explicitly.
        config.ssl_mode(SslMode::Disable);
        if config.get_application_name().is_none() {
            config.application_name("pikku-hub");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_keepalives_idle() == LIBRARY_KEEPALIVE_IDLE {
            config.keepalives_idle(DEFAULT_KEEPALIVE_IDLE);
        }
        Ok(Self {
            config,
            prefix: DEFAULT_PREFIX.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            retention: DEFAULT_RETENTION,
        })
    }

    /// The first setting that can never work.
    pub(crate) fn check(&self) -> Result<(), PostgresError> {
        if let Some(reason) = prefix_problem(&self.prefix) {
            return Err(PostgresError::InvalidSetting {
                setting: "channel_prefix",
                reason,
            });
        }
        if self.table.is_empty() || self.table.len() > MAX_CHANNEL_BYTES {
            return Err(PostgresError::InvalidSetting {
                setting: "table",
                reason: "must be 1 to 63 bytes long",
            });
        }
        if self.table.contains('\0') {
            return Err(PostgresError::InvalidSetting {
                setting: "table",
                reason: "may not contain NUL",
            });
        }
        if self.retention.is_zero() {
            return Err(PostgresError::InvalidSetting {
                setting: "retention",
                reason: "must be longer than zero",
            });
        }
        Ok(())
    }

    /// How often the payload table is swept while this node publishes by reference: often enough that rows
    /// live little longer than the retention period, and at most every few seconds.
    pub(crate) fn sweep_every(&self) -> Duration {
        (self.retention / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_without_io_and_tls_is_refused() {
        let s = Settings::from_url("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(s.config.get_ports(), [5432]);
        assert_eq!(s.config.get_dbname(), Some("postgres"));
        assert_eq!(s.config.get_application_name(), Some("pikku-hub"));
        assert!(s.check().is_ok());
        assert!(matches!(
            Settings::from_url("postgres://h/db?sslmode=require"),
            Err(PostgresError::TlsUnsupported)
        ));
        assert!(Settings::from_url("postgres://h/db?sslmode=disable").is_ok());
        assert!(matches!(
            Settings::from_url("postgres://h:port/db"),
            Err(PostgresError::InvalidUrl(_))
        ));
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        let base = Settings::from_url("host=127.0.0.1 user=postgres").unwrap();
        let bad = |f: fn(&mut Settings)| {
            let mut s = base.clone();
            f(&mut s);
            match s.check() {
                Err(PostgresError::InvalidSetting { setting, .. }) => setting,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(bad(|s| s.prefix = "a-b".into()), "channel_prefix");
        assert_eq!(bad(|s| s.table = String::new()), "table");
        assert_eq!(bad(|s| s.table = "t".repeat(64)), "table");
        assert_eq!(bad(|s| s.retention = Duration::ZERO), "retention");
    }

    #[test]
    fn sweeps_follow_the_retention_within_bounds() {
        let mut s = Settings::from_url("host=h").unwrap();
        assert_eq!(s.sweep_every(), Duration::from_secs(5));
        s.retention = Duration::from_millis(300);
        assert_eq!(s.sweep_every(), Duration::from_millis(150));
        s.retention = Duration::from_millis(10);
        assert_eq!(s.sweep_every(), Duration::from_millis(100));
    }
}
