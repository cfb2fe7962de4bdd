//! What a channel store keeps about one open connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// One open connection, as a [`ChannelStore`](super::ChannelStore) keeps it between invocations.
///
/// Times are kept to the microsecond, which is what the Redis and PostgreSQL stores can hold; the
/// constructor and [`seen_at`](Self::seen_at) truncate them so that a record reads back equal to the one
/// written.
///
/// ```
/// use pikku::store::ChannelRecord;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let record = ChannelRecord::new("conn-1", "chat", serde_json::json!({"room": "a"}))
///     .with_user_id("user-1")
///     .with_state(serde_json::json!({"typing": false}))
///     .seen_at(at);
/// assert_eq!(record.channel_id, "conn-1");
/// assert_eq!(record.user_id.as_deref(), Some("user-1"));
/// assert_eq!((record.created_at, record.last_seen), (at, at));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChannelRecord {
    /// The platform's connection id, which is the channel id handlers see.
    pub channel_id: String,
    /// The name of the channel route the connection matched.
    pub channel_name: String,
    /// The opening data taken from the connection request (path parameters and query), as JSON.
    pub opening_data: Value,
    /// The user id of the connection's session, when it has one.
    pub user_id: Option<String>,
    /// The socket state handlers set, when there is one.
    pub state: Option<Value>,
    /// When the connection was opened.
    pub created_at: SystemTime,
    /// When the connection was last active; [`expire`](super::ChannelStore::expire) compares this.
    pub last_seen: SystemTime,
}

impl ChannelRecord {
    /// A record opened now, without a user id or state.
    ///
    /// ```
    /// use pikku::store::ChannelRecord;
    ///
    /// let record = ChannelRecord::new("conn-1", "chat", serde_json::json!({}));
    /// assert_eq!(record.created_at, record.last_seen);
    /// assert!(record.user_id.is_none() && record.state.is_none());
    /// ```
    #[must_use]
    pub fn new(
        channel_id: impl Into<String>,
        channel_name: impl Into<String>,
        opening_data: Value,
    ) -> Self {
        let now = to_the_microsecond(SystemTime::now());
        Self {
            channel_id: channel_id.into(),
            channel_name: channel_name.into(),
            opening_data,
            user_id: None,
            state: None,
            created_at: now,
            last_seen: now,
        }
    }

    /// The same record with a user id.
    ///
    /// ```
    /// use pikku::store::ChannelRecord;
    ///
    /// let record = ChannelRecord::new("c", "chat", serde_json::json!({})).with_user_id("u-1");
    /// assert_eq!(record.user_id.as_deref(), Some("u-1"));
    /// ```
    #[must_use]
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// The same record with socket state.
    ///
    /// ```
    /// use pikku::store::ChannelRecord;
    ///
    /// let record = ChannelRecord::new("c", "chat", serde_json::json!({})).with_state(serde_json::json!(1));
    /// assert_eq!(record.state, Some(serde_json::json!(1)));
    /// ```
    #[must_use]
    pub fn with_state(mut self, state: Value) -> Self {
        self.state = Some(state);
        self
    }

    /// The same record opened and last seen at `at` (truncated to the microsecond).
    ///
    /// ```
    /// use pikku::store::ChannelRecord;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let at = UNIX_EPOCH + Duration::from_nanos(1_500);
    /// let record = ChannelRecord::new("c", "chat", serde_json::json!({})).seen_at(at);
    /// assert_eq!(record.last_seen, UNIX_EPOCH + Duration::from_micros(1));
    /// ```
    #[must_use]
    pub fn seen_at(mut self, at: SystemTime) -> Self {
        let at = to_the_microsecond(at);
        self.created_at = at;
        self.last_seen = at;
        self
    }
}

/// `at` truncated to the microsecond; times before the epoch become the epoch.
pub(crate) fn to_the_microsecond(at: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros_since_epoch(at))
}

/// Microseconds since the Unix epoch (0 before it, saturating far in the future).
pub(crate) fn micros_since_epoch(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}
