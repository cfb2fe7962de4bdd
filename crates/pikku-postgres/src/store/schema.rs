//! The stores' tables: their names under a prefix, the migration that creates them, and every statement.

use tokio_postgres::{Client, Statement};

use crate::channel::quote_ident;

/// The table prefix when none is set.
pub(crate) const DEFAULT_PREFIX: &str = "pikku_store";

/// Longest prefix: the longest name made from it (`<prefix>_subscriptions_channel_id`) must fit PostgreSQL's
/// 63-byte identifiers.
const MAX_PREFIX_BYTES: usize = 63 - "_subscriptions_channel_id".len();

/// An advisory lock key every migration holds, so that processes starting together do not race to create the
/// same tables.
const MIGRATION_LOCK: i64 = 0x7069_6b6b_7573_7431; // "pikkust1"

/// Why `prefix` cannot name tables, if it cannot.
pub(crate) fn prefix_problem(prefix: &str) -> Option<&'static str> {
    if prefix.is_empty() {
        Some("must not be empty")
    } else if prefix.len() > MAX_PREFIX_BYTES {
        Some("must be at most 38 bytes long")
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("may only hold lowercase ASCII letters, digits and '_'")
    } else {
        None
    }
}

/// The quoted table names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) prefix: String,
    channels: String,
    subscriptions: String,
    sessions: String,
}

impl Tables {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            channels: quote_ident(&format!("{prefix}_channels")),
            subscriptions: quote_ident(&format!("{prefix}_subscriptions")),
            sessions: quote_ident(&format!("{prefix}_sessions")),
        }
    }

    /// Creates whatever is missing; changes nothing that exists.
    pub(crate) fn migration(&self) -> String {
        let Self {
            prefix,
            channels,
            subscriptions,
            sessions,
        } = self;
        let last_seen_index = quote_ident(&format!("{prefix}_channels_last_seen"));
        let channel_index = quote_ident(&format!("{prefix}_subscriptions_channel_id"));
        format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS {channels} (
                 channel_id   text PRIMARY KEY,
                 channel_name text NOT NULL,
                 opening_data jsonb NOT NULL,
                 user_id      text,
                 state        jsonb,
                 created_at   timestamptz NOT NULL,
                 last_seen    timestamptz NOT NULL
             );
             CREATE INDEX IF NOT EXISTS {last_seen_index} ON {channels} (last_seen);
             CREATE TABLE IF NOT EXISTS {subscriptions} (
                 topic      text NOT NULL,
                 channel_id text NOT NULL,
                 PRIMARY KEY (topic, channel_id)
             );
             CREATE INDEX IF NOT EXISTS {channel_index} ON {subscriptions} (channel_id);
             CREATE TABLE IF NOT EXISTS {sessions} (
                 user_id    text PRIMARY KEY,
                 session    jsonb NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now()
             );
             COMMIT;"
        )
    }
}

/// Every statement of the stores, prepared once per connection.
pub(crate) struct Statements {
    pub(crate) add_channel: Statement,
    pub(crate) get_channel: Statement,
    pub(crate) set_user_id: Statement,
    pub(crate) get_state: Statement,
    pub(crate) set_state: Statement,
    pub(crate) touch: Statement,
    pub(crate) remove_channels: Statement,
    pub(crate) expire: Statement,
    pub(crate) subscribe: Statement,
    pub(crate) unsubscribe: Statement,
    pub(crate) channel_ids: Statement,
    pub(crate) remove_channel: Statement,
    pub(crate) get_session: Statement,
    pub(crate) set_session: Statement,
    pub(crate) remove_session: Statement,
}

impl Statements {
    /// Prepares every statement on `client`, all at once (the client pipelines them).
    pub(crate) async fn prepare(
        client: &Client,
        tables: &Tables,
    ) -> Result<Self, tokio_postgres::Error> {
        let Tables {
            channels,
            subscriptions,
            sessions,
            ..
        } = tables;
        let texts = [
            format!(
                "INSERT INTO {channels}
                     (channel_id, channel_name, opening_data, user_id, state, created_at, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (channel_id) DO NOTHING"
            ),
            format!(
                "SELECT channel_name, opening_data, user_id, state, created_at, last_seen
                 FROM {channels} WHERE channel_id = $1"
            ),
            format!("UPDATE {channels} SET user_id = $2 WHERE channel_id = $1"),
            format!("SELECT state FROM {channels} WHERE channel_id = $1"),
            format!("UPDATE {channels} SET state = $2 WHERE channel_id = $1"),
            format!(
                "UPDATE {channels} SET last_seen = GREATEST(last_seen, $2) WHERE channel_id = $1"
            ),
            format!("DELETE FROM {channels} WHERE channel_id = ANY($1)"),
            format!("DELETE FROM {channels} WHERE last_seen < $1 RETURNING channel_id"),
            format!(
                "INSERT INTO {subscriptions} (topic, channel_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING"
            ),
            format!("DELETE FROM {subscriptions} WHERE topic = $1 AND channel_id = $2"),
            format!("SELECT channel_id FROM {subscriptions} WHERE topic = $1"),
            format!("DELETE FROM {subscriptions} WHERE channel_id = $1"),
            format!("SELECT session FROM {sessions} WHERE user_id = $1"),
            format!(
                "INSERT INTO {sessions} (user_id, session) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET session = EXCLUDED.session, updated_at = now()"
            ),
            format!("DELETE FROM {sessions} WHERE user_id = $1"),
        ];
        let prepared =
            futures_util::future::try_join_all(texts.iter().map(|sql| client.prepare(sql))).await?;
        let mut s = prepared.into_iter();
        let mut next = || s.next().expect("one statement per text");
        Ok(Self {
            add_channel: next(),
            get_channel: next(),
            set_user_id: next(),
            get_state: next(),
            set_state: next(),
            touch: next(),
            remove_channels: next(),
            expire: next(),
            subscribe: next(),
            unsubscribe: next(),
            channel_ids: next(),
            remove_channel: next(),
            get_session: next(),
            set_session: next(),
            remove_session: next(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(prefix_problem("pikku_store"), None);
        assert_eq!(prefix_problem(&"p".repeat(MAX_PREFIX_BYTES)), None);
        assert!(prefix_problem("").is_some());
        assert!(prefix_problem(&"p".repeat(MAX_PREFIX_BYTES + 1)).is_some());
        assert!(prefix_problem("Upper").is_some());
        assert!(prefix_problem("has-dash").is_some());
        assert!(prefix_problem("has\"quote").is_some());
    }

    #[test]
    fn tables_are_quoted_under_the_prefix() {
        let tables = Tables::new("app_1");
        assert!(tables
            .migration()
            .contains("CREATE TABLE IF NOT EXISTS \"app_1_channels\""));
        assert!(tables.migration().contains("\"app_1_subscriptions\""));
        assert!(tables.migration().contains("\"app_1_sessions\""));
    }
}
