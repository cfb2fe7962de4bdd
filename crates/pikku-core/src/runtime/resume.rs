//! Rebuilding a channel from its stored record, for runners that handle each event in a fresh invocation.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::LiveChannel;
use crate::app::AppRuntime;
use crate::channel::Connection;
use crate::ctx::SessionSlot;
use crate::error::ChannelError;
use crate::opening::Params;
use crate::socket_state::StatePersistence;
use crate::store::ChannelRecord;

/// Why a stored [`ChannelRecord`] could not be turned back into a channel by
/// [`AppRuntime::resume`](crate::AppRuntime::resume).
///
/// Each means the record no longer fits the app (it was written by another version, or by hand): a runner
/// closes such a connection rather than guess.
///
/// ```
/// use pikku::core::runtime::ResumeError;
///
/// let err = ResumeError::UnknownChannel("chat".into());
/// assert_eq!(err.to_string(), "no channel named 'chat' in this app");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ResumeError {
    /// No channel of the app has the record's channel name.
    UnknownChannel(String),
    /// The stored opening data is not a map of strings, or no longer parses into the channel's opening type.
    OpeningData(ChannelError),
    /// The stored socket state does not decode into the channel's state type, or the channel does not persist
    /// its socket state.
    SocketState(String),
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownChannel(name) => write!(f, "no channel named '{name}' in this app"),
            Self::OpeningData(err) => write!(f, "the stored opening data does not fit: {err}"),
            Self::SocketState(why) => write!(f, "the stored socket state does not fit: {why}"),
        }
    }
}

impl std::error::Error for ResumeError {}

/// The opening params as a channel record stores them: a JSON object of strings.
pub(crate) fn params_to_json(params: &Params) -> Value {
    Value::Object(
        params
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect(),
    )
}

fn params_from_json(value: &Value) -> Option<Params> {
    value
        .as_object()?
        .iter()
        .map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect()
}

impl<S, U> AppRuntime<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// Rebuilds the channel of a stored connection, for a runner that handles each event of a connection in a
    /// new invocation: the record's id and channel, the opening data parsed again from the stored params, the
    /// socket state decoded from the record (for a channel that
    /// [persists it](crate::ChannelRoute::persist_socket_state)), and `session`, which the runner loaded for the
    /// record's user id. The channel is `Open`; reverse calls on it fail at once with
    /// [`RpcFailure::Unsupported`](crate::RpcFailure::Unsupported), since no response could reach this
    /// invocation. `epoch` is as for [`Admitted::into_channel`](super::Admitted::into_channel).
    ///
    /// ```
    /// use std::time::Instant;
    /// use pikku::store::ChannelRecord;
    /// use pikku::{App, Channel, ChannelRoute, ChannelState, Ctx};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Room { #[serde(rename = "roomId")] room_id: String }
    ///
    /// async fn info(_ctx: Ctx<(), ()>, ch: Channel<Room, String>, _in: ()) -> String {
    ///     ch.opening_data().room_id.clone()
    /// }
    ///
    /// let rt = App::new(()).channel(ChannelRoute::new("rooms", "/rooms/:roomId").on_message(info)).into_runtime();
    /// let record = ChannelRecord::new("conn-1", "rooms", serde_json::json!({"roomId": "lobby"}));
    /// let live = rt.resume(&record, None, Instant::now()).unwrap();
    /// assert_eq!(live.connection().id(), "conn-1");
    /// assert_eq!(live.connection().state(), ChannelState::Open);
    /// ```
    ///
    /// # Errors
    /// A [`ResumeError`] when the record does not fit the app.
    pub fn resume(
        self: &Arc<Self>,
        record: &ChannelRecord,
        session: Option<U>,
        epoch: Instant,
    ) -> Result<LiveChannel<S, U>, ResumeError> {
        let index = self
            .channels
            .iter()
            .position(|c| *c.name == *record.channel_name)
            .ok_or_else(|| ResumeError::UnknownChannel(record.channel_name.clone()))?;
        let spec = &self.channels[index];
        let params = params_from_json(&record.opening_data).ok_or_else(|| {
            ResumeError::OpeningData(ChannelError::unprocessable(
                "Invalid opening data",
                Vec::new(),
            ))
        })?;
        let opening = (spec.opening)(params).map_err(ResumeError::OpeningData)?;
        let socket_state = match (&record.state, spec.socket_state) {
            (None, _) => None,
            (Some(state), StatePersistence::Persisted(codec)) => Some(
                (codec.decode)(state.clone())
                    .map_err(|e| ResumeError::SocketState(e.to_string()))?,
            ),
            (Some(_), _) => {
                return Err(ResumeError::SocketState(
                    "the channel does not persist socket state".into(),
                ))
            }
        };
        let conn = Connection::new(
            Arc::from(record.channel_id.as_str()),
            spec.name.clone(),
            opening,
            self.connection_limits(),
            epoch,
        );
        conn.rpc.disable();
        *conn.socket_state.lock() = socket_state;
        conn.mark_open();
        Ok(LiveChannel {
            rt: self.clone(),
            index,
            conn: Arc::new(conn),
            session: Arc::new(SessionSlot::new(session)),
            limiter: None,
        })
    }

    /// Checks that every channel can run statelessly: a channel whose handlers use socket state must
    /// [persist it](crate::ChannelRoute::persist_socket_state). Returns the first that does not, with the
    /// state type's name.
    pub(crate) fn unpersisted_socket_state(&self) -> Option<(&str, &'static str)> {
        self.channels.iter().find_map(|c| match c.socket_state {
            StatePersistence::InProcess(type_name) => Some((&*c.name, type_name)),
            _ => None,
        })
    }
}

impl<S, U> LiveChannel<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// The socket state as JSON for the channel record: `None` when there is none.
    pub(crate) fn socket_state_json(&self) -> Result<Option<Value>, serde_json::Error> {
        let StatePersistence::Persisted(codec) = self.spec().socket_state else {
            return Ok(None);
        };
        let state = self.conn.socket_state.lock();
        match state.as_deref().and_then(|s| (codec.encode)(s)) {
            None => Ok(None),
            Some(encoded) => encoded.map(Some),
        }
    }

    /// The session, if it was set or cleared since the channel was made or last asked (see
    /// [`SessionSlot`]).
    pub(crate) fn session_change(&self) -> Option<Option<U>>
    where
        U: Clone,
    {
        self.session.take_change()
    }

    /// Makes the connection reachable by id in this process while one invocation handles it: the hub delivers
    /// to it directly, so what it receives leaves with the invocation's answer.
    pub(crate) fn attach(&self) {
        self.rt.registry().insert(self.conn.clone());
    }

    /// Ends the invocation: the connection leaves the registry and is sealed; returns what it queued and the
    /// close a handler asked for.
    pub(crate) fn detach(
        &self,
    ) -> (
        std::collections::VecDeque<crate::frame::OutFrame>,
        Option<crate::channel::CloseRequest>,
    ) {
        self.rt.registry().remove(&self.conn);
        self.conn.seal()
    }
}
