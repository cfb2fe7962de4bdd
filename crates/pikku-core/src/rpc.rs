//! Reverse RPC: the server calls a function the connected client exposes.
//!
//! Requests are `{"action":"pikku-rpc-request","id":"1","funcName":"f","data":…}` with ids from a per-connection
//! counter. The reader hands response and pending frames to the connection's registry before routing, so a
//! handler awaiting [`Channel::remote`](crate::Channel::remote) is never stuck behind its own message queue.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{ClientError, SendError};
use crate::frame::{encode_json, OutFrame};

/// A function the client exposes, called with [`Channel::remote`](crate::Channel::remote).
///
/// Implement it on a marker type per client function; the types make the call site typed on both ends.
///
/// ```
/// use pikku::{Capability, Channel, ChannelError, Ctx, Params};
///
/// struct ClientThing;
/// impl Capability for ClientThing {
///     const NAME: &'static str = "clientThing";
///     type Input = serde_json::Value;
///     type Output = serde_json::Value;
/// }
///
/// /// A function without an argument: no `data` member is sent.
/// struct GetVersion;
/// impl Capability for GetVersion {
///     const NAME: &'static str = "getVersion";
///     type Input = ();
///     type Output = String;
/// }
///
/// async fn check(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<String, ChannelError> {
///     Ok(ch.remote::<GetVersion>(()).await?)
/// }
/// ```
pub trait Capability {
    /// The `funcName` the client knows it by.
    const NAME: &'static str;
    /// The argument; `()` sends no `data` member.
    type Input: Serialize + Send;
    /// The result, deserialized from the response's `result` (a missing `result` is `null`).
    type Output: DeserializeOwned;
}

/// Why a reverse call failed.
///
/// ```
/// use pikku::{Channel, Ctx, Params, RpcFailure};
///
/// async fn ask(_ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> &'static str {
///     match ch.remote_raw("confirm", None, None).await {
///         Ok(_) => "answered",
///         Err(err) => match err.failure() {
///             RpcFailure::Timeout => "no answer in time",
///             RpcFailure::Remote { .. } => "the client refused",
///             _ => "the call failed",
///         },
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcFailure {
    /// No response within the timeout.
    Timeout,
    /// The client answered `ok: false`.
    Remote {
        /// The peer's error name, when it sent one.
        name: Option<String>,
        /// The peer's message, when it sent one.
        message: Option<String>,
    },
    /// The connection closed before the response.
    Closed,
    /// Too many pending calls on this connection.
    Busy,
    /// The argument or the result did not fit the declared types.
    Invalid,
    /// Reverse calls are not available: the connection is served statelessly, one invocation per event, so no
    /// response could reach the waiting handler. Reported at once, without sending a request; the embedded server
    /// never reports it.
    Unsupported,
}

impl RpcFailure {
    /// A short stable name: `timeout`, `remote`, `closed`, `busy`, `invalid` or `unsupported`, for logs and
    /// metrics labels.
    ///
    /// ```
    /// use pikku::RpcFailure;
    ///
    /// assert_eq!(RpcFailure::Timeout.as_str(), "timeout");
    /// assert_eq!(RpcFailure::Remote { name: None, message: None }.as_str(), "remote");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Remote { .. } => "remote",
            Self::Closed => "closed",
            Self::Busy => "busy",
            Self::Invalid => "invalid",
            Self::Unsupported => "unsupported",
        }
    }
}

/// A failed reverse call. Propagated from a handler it becomes a `ChannelRPCError` frame (status 502) whose
/// message is the `Display` text: the client's own message for a remote failure, otherwise a sentence naming the
/// function (`Remote call 'f' timed out`).
///
/// ```
/// use pikku::{ChannelError, RpcError, RpcFailure};
///
/// let err = RpcError::new("clientThing", RpcFailure::Timeout);
/// assert_eq!(err.func_name(), "clientThing");
/// assert_eq!(err.failure(), &RpcFailure::Timeout);
/// assert_eq!(err.to_string(), "Remote call 'clientThing' timed out");
///
/// let frame_error = ChannelError::from(err);
/// assert_eq!(frame_error.name(), "ChannelRPCError");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    func_name: String,
    failure: RpcFailure,
}

impl RpcError {
    /// A failure of the call to `func_name`; runners and tests build these, handlers receive them from
    /// [`Channel::remote`](crate::Channel::remote).
    pub fn new(func_name: impl Into<String>, failure: RpcFailure) -> Self {
        Self {
            func_name: func_name.into(),
            failure,
        }
    }

    pub(crate) fn invalid(func_name: &str) -> Self {
        Self::new(func_name, RpcFailure::Invalid)
    }

    /// The function that was called (its `funcName`).
    #[must_use]
    pub fn func_name(&self) -> &str {
        &self.func_name
    }

    /// Why it failed; match on it to handle a timeout differently from a refusal (see [`RpcFailure`]).
    #[must_use]
    pub fn failure(&self) -> &RpcFailure {
        &self.failure
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.func_name;
        match &self.failure {
            RpcFailure::Remote {
                message: Some(message),
                ..
            } => f.write_str(message),
            RpcFailure::Remote { message: None, .. } => f.write_str("Remote call failed"),
            RpcFailure::Timeout => write!(f, "Remote call '{name}' timed out"),
            RpcFailure::Invalid => write!(f, "Remote call '{name}' returned invalid data"),
            RpcFailure::Unsupported => write!(f, "Remote call '{name}' is not supported here"),
            RpcFailure::Busy => write!(f, "Remote call '{name}' has too many pending calls"),
            RpcFailure::Closed => write!(f, "Remote call '{name}' failed: the channel is closed"),
        }
    }
}

impl std::error::Error for RpcError {}

impl ClientError for RpcError {
    fn name(&self) -> &str {
        "ChannelRPCError"
    }
    fn status(&self) -> u16 {
        502
    }
    fn client_message(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

/// A valid reverse-RPC frame from the client: a `pikku-rpc-response` or a `pikku-rpc-pending`.
///
/// The pipeline recognises these in [`LiveChannel::text`](crate::runtime::LiveChannel::text) and hands them to
/// the connection's pending calls; they are never routed to handlers.
///
/// ```
/// use pikku::core::rpc::RpcFrame;
/// use serde_json::json;
///
/// let ok = json!({"action": "pikku-rpc-response", "id": "1", "ok": true, "result": 42});
/// assert_eq!(RpcFrame::parse(&ok), Some(RpcFrame::Response { id: "1".into(), outcome: Ok(json!(42)) }));
///
/// let pending = json!({"action": "pikku-rpc-pending", "id": "1"});
/// assert_eq!(RpcFrame::parse(&pending), Some(RpcFrame::Pending { id: "1".into() }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RpcFrame {
    /// `pikku-rpc-response`.
    Response {
        /// The call id.
        id: String,
        /// `Ok(result)` or `Err((name, message))`.
        outcome: Result<Value, (Option<String>, Option<String>)>,
    },
    /// `pikku-rpc-pending`: stop the call's timer.
    Pending {
        /// The call id.
        id: String,
    },
}

impl RpcFrame {
    /// A cheap test on raw text: `false` means the text is certainly not a reverse-RPC frame, so a runner may
    /// queue it unparsed. Every frame [`parse`](Self::parse) accepts, written without escapes in its `action`
    /// (as clients write it), passes.
    ///
    /// ```
    /// use pikku::core::rpc::RpcFrame;
    ///
    /// assert!(RpcFrame::may_be_reply(r#"{"action":"pikku-rpc-response","id":"1","ok":true}"#));
    /// assert!(!RpcFrame::may_be_reply(r#"{"action":"say","text":"hello"}"#));
    /// ```
    #[must_use]
    pub fn may_be_reply(text: &str) -> bool {
        text.contains("pikku-rpc-")
    }

    /// Recognises a valid envelope; anything else (including an invalid envelope) is an ordinary message.
    ///
    /// A valid envelope has an `action` of `pikku-rpc-response` or `pikku-rpc-pending` and a non-empty string
    /// `id`; a response also has a boolean `ok` and, when `ok` is false, an `error` that is absent, `null` or an
    /// object.
    ///
    /// ```
    /// use pikku::core::rpc::RpcFrame;
    /// use serde_json::json;
    ///
    /// let refused = json!({"action": "pikku-rpc-response", "id": "2", "ok": false, "error": {"message": "no"}});
    /// assert_eq!(
    ///     RpcFrame::parse(&refused),
    ///     Some(RpcFrame::Response { id: "2".into(), outcome: Err((None, Some("no".into()))) }),
    /// );
    /// // No id: an ordinary message, routed like any other.
    /// assert_eq!(RpcFrame::parse(&json!({"action": "pikku-rpc-response", "ok": true})), None);
    /// ```
    #[must_use]
    pub fn parse(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        let action = obj.get("action")?.as_str()?;
        if !action.starts_with("pikku-rpc-") {
            return None;
        }
        let id = obj
            .get("id")?
            .as_str()
            .filter(|id| !id.is_empty())?
            .to_owned();
        match action {
            "pikku-rpc-response" => {
                let ok = obj.get("ok")?.as_bool()?;
                let outcome = if ok {
                    Ok(obj.get("result").cloned().unwrap_or(Value::Null))
                } else {
                    let (name, message) = match obj.get("error") {
                        None | Some(Value::Null) => (None, None),
                        Some(Value::Object(e)) => (
                            e.get("name").and_then(Value::as_str).map(str::to_owned),
                            e.get("message").and_then(Value::as_str).map(str::to_owned),
                        ),
                        Some(_) => return None,
                    };
                    Err((name, message))
                };
                Some(Self::Response { id, outcome })
            }
            "pikku-rpc-pending" => match obj.get("reason") {
                None | Some(Value::String(_)) => Some(Self::Pending { id }),
                Some(_) => None,
            },
            _ => None,
        }
    }
}

enum RpcEvent {
    Pending,
    Done(Result<Value, RpcFailure>),
}

struct PendingCall {
    // Bounded by construction: at most one `Pending` (only the first pending frame counts) and one `Done`.
    tx: mpsc::UnboundedSender<RpcEvent>,
    suspended: bool,
}

struct RpcState {
    next_id: u64,
    /// A list, not a map: it holds at most `max_pending` calls (a few), and an empty list costs no allocation
    /// and less room in every connection than a map.
    pending: Vec<(u64, PendingCall)>,
    closed: bool,
    /// The runner cannot carry reverse calls (stateless mode): every call fails at once.
    unsupported: bool,
}

impl RpcState {
    fn find(&mut self, id: u64) -> Option<usize> {
        self.pending.iter().position(|(call_id, _)| *call_id == id)
    }

    fn remove(&mut self, id: u64) -> Option<PendingCall> {
        self.find(id).map(|at| self.pending.swap_remove(at).1)
    }
}

/// Pending reverse calls of one connection.
pub(crate) struct RpcRegistry {
    state: Mutex<RpcState>,
    max_pending: usize,
    /// The default timeout in milliseconds; `NO_TIMEOUT` for none. An atomic rather than a locked `Option`,
    /// to keep every connection small.
    timeout_ms: AtomicU64,
}

const NO_TIMEOUT: u64 = u64::MAX;

impl RpcRegistry {
    pub(crate) fn new(max_pending: usize) -> Self {
        Self {
            state: Mutex::new(RpcState {
                next_id: 0,
                pending: Vec::new(),
                closed: false,
                unsupported: false,
            }),
            max_pending,
            timeout_ms: AtomicU64::new(30_000),
        }
    }

    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_millis()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Makes every later call fail at once with [`RpcFailure::Unsupported`]: for runners that serve one event per
    /// invocation, where no response could ever reach the waiting handler.
    pub(crate) fn disable(&self) {
        self.state.lock().unsupported = true;
    }

    fn default_timeout(&self) -> Option<Duration> {
        match self.timeout_ms.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Sends the request with `push` (the connection's outbound queue) and waits for the answer.
    pub(crate) async fn call(
        &self,
        push: impl FnOnce(OutFrame) -> Result<(), SendError>,
        func_name: &str,
        data: Option<Value>,
        timeout: Option<Option<Duration>>,
    ) -> Result<Value, RpcError> {
        let fail = |failure| RpcError::new(func_name, failure);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = {
            let mut state = self.state.lock();
            if state.unsupported {
                return Err(fail(RpcFailure::Unsupported));
            }
            if state.closed {
                return Err(fail(RpcFailure::Closed));
            }
            if state.pending.len() >= self.max_pending {
                return Err(fail(RpcFailure::Busy));
            }
            state.next_id += 1;
            let id = state.next_id;
            state.pending.push((
                id,
                PendingCall {
                    tx,
                    suspended: false,
                },
            ));
            id
        };
        // Removes the entry however this call ends, including when its future is dropped.
        let _entry = EntryGuard { registry: self, id };

        let mut request = serde_json::Map::with_capacity(4);
        request.insert("action".into(), Value::String("pikku-rpc-request".into()));
        request.insert("id".into(), Value::String(id.to_string()));
        request.insert("funcName".into(), Value::String(func_name.to_owned()));
        if let Some(data) = data {
            request.insert("data".into(), data);
        }
        if push(encode_json(&Value::Object(request))).is_err() {
            return Err(fail(RpcFailure::Closed));
        }

        let timeout = timeout.unwrap_or_else(|| self.default_timeout());
        let mut deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let event = match deadline {
                Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                    Ok(event) => event,
                    Err(_) => return Err(fail(RpcFailure::Timeout)),
                },
                None => rx.recv().await,
            };
            match event {
                Some(RpcEvent::Pending) => deadline = None,
                Some(RpcEvent::Done(result)) => return result.map_err(fail),
                None => return Err(fail(RpcFailure::Closed)),
            }
        }
    }

    /// Delivers a response or pending frame; unknown and settled ids are ignored.
    pub(crate) fn deliver(&self, frame: RpcFrame) {
        let mut state = self.state.lock();
        match frame {
            RpcFrame::Pending { id } => {
                let Some(at) = id.parse().ok().and_then(|id: u64| state.find(id)) else {
                    tracing::debug!(%id, "pending frame for an unknown reverse call ignored");
                    return;
                };
                let call = &mut state.pending[at].1;
                if !call.suspended {
                    call.suspended = true;
                    let _ = call.tx.send(RpcEvent::Pending);
                }
            }
            RpcFrame::Response { id, outcome } => {
                let Some(call) = id.parse().ok().and_then(|id: u64| state.remove(id)) else {
                    tracing::debug!(%id, "response for an unknown reverse call ignored");
                    return;
                };
                let result =
                    outcome.map_err(|(name, message)| RpcFailure::Remote { name, message });
                let _ = call.tx.send(RpcEvent::Done(result));
            }
        }
    }

    /// Fails every pending call with `closed` and refuses new ones.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.pending.clear();
    }
}

struct EntryGuard<'a> {
    registry: &'a RpcRegistry,
    id: u64,
}

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        self.registry.state.lock().remove(self.id);
    }
}
