//! Sessions between invocations: kept in the session store under the user id the session type names.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{ChannelStore, SessionStore, StoreError};

/// A session type that names its user, so a stateless runner can keep the session in a
/// [`SessionStore`](crate::store::SessionStore) and find it again from the connection's record.
///
/// A session whose `user_id` is `None` is not stored: it lasts the invocation that set it.
///
/// ```
/// use pikku::stateless::UserSession;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { id: String, admin: bool }
///
/// impl UserSession for User {
///     fn user_id(&self) -> Option<&str> {
///         Some(&self.id)
///     }
/// }
/// ```
pub trait UserSession {
    /// The id the session is stored under.
    fn user_id(&self) -> Option<&str>;
}

/// Apps without sessions.
impl UserSession for () {
    fn user_id(&self) -> Option<&str> {
        None
    }
}

/// A session that is a name or a token: it is its own user id.
impl UserSession for String {
    fn user_id(&self) -> Option<&str> {
        Some(self)
    }
}

/// The stored session of `user_id`; `None` when there is none or it no longer decodes (logged).
pub(super) async fn load<U: DeserializeOwned>(
    sessions: &dyn SessionStore,
    user_id: &str,
) -> Result<Option<U>, StoreError> {
    let Some(value) = sessions.get(user_id).await? else {
        return Ok(None);
    };
    match serde_json::from_value(value) {
        Ok(session) => Ok(Some(session)),
        Err(err) => {
            tracing::warn!(user_id, error = %err, "stored session does not decode; treating it as absent");
            Ok(None)
        }
    }
}

/// Records a session change of connection `channel_id`: a session with a user id is stored under it and the
/// record points at it; a cleared session, or one without a user id, leaves the record without one.
pub(super) async fn save<U: UserSession + Serialize>(
    sessions: &dyn SessionStore,
    channels: &dyn ChannelStore,
    channel_id: &str,
    session: Option<&U>,
) -> Result<(), StoreError> {
    let Some((session, user_id)) = session.and_then(|s| Some((s, s.user_id()?))) else {
        return channels.set_user_id(channel_id, None).await;
    };
    match serde_json::to_value(session) {
        Ok(value) => sessions.set(user_id, value).await?,
        Err(err) => {
            tracing::error!(user_id, error = %err, "session does not serialize; not saved");
            return channels.set_user_id(channel_id, None).await;
        }
    }
    channels.set_user_id(channel_id, Some(user_id)).await
}
