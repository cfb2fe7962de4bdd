//! Reverse RPC: functions the client exposes to the server, answered with `pikku-rpc-response` (and
//! `pikku-rpc-pending`) frames.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_websockets::Message;

use crate::driver::Command;

/// A call the server made to an exposed function (a `pikku-rpc-request` frame).
///
/// See [`Client::expose`](crate::Client::expose).
pub struct RpcRequest {
    id: String,
    func_name: String,
    data: Value,
    trace_id: Option<String>,
    commands: mpsc::WeakSender<Command>,
    /// The connection the request came on: answers meant for a connection that has since dropped are not
    /// written on the next one.
    generation: u64,
}

impl RpcRequest {
    /// The argument (`null` when the request carried no `data`).
    #[must_use]
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The argument, consuming the request.
    #[must_use]
    pub fn into_data(self) -> Value {
        self.data
    }

    /// The name the server called (`funcName`).
    #[must_use]
    pub fn func_name(&self) -> &str {
        &self.func_name
    }

    /// The request's trace id, when the server sent one.
    #[must_use]
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// Tells the server the answer will take a while (a `pikku-rpc-pending` frame), which suspends its
    /// reverse-RPC timeout, e.g. while a person is asked for approval.
    ///
    /// Does nothing once the connection is closed, or once the connection the request came on dropped (the
    /// server that asked is gone).
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, the frame may or may not have been queued.
    pub async fn pending(&self, reason: &str) {
        let frame = json!({"action": "pikku-rpc-pending", "id": self.id, "reason": reason});
        send(&self.commands, self.generation, &frame).await;
    }
}

impl fmt::Debug for RpcRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcRequest")
            .field("id", &self.id)
            .field("func_name", &self.func_name)
            .field("data", &self.data)
            .field("trace_id", &self.trace_id)
            .finish_non_exhaustive()
    }
}

/// The error an exposed function answers with: `{"ok":false,"error":{"name","message"}}`.
///
/// The server's handler sees it as a failed remote call; the pikku server turns a propagated one into a
/// `ChannelRPCError` frame whose `error` is `message`.
///
/// ```
/// use pikku_client::RpcError;
///
/// let denied = RpcError::new("RPCDeniedError", "\"clientThing\" was not approved");
/// assert_eq!(denied.name, "RPCDeniedError");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The error class, e.g. `RPCDeniedError`.
    pub name: String,
    /// A message for the server side.
    pub message: String,
}

impl RpcError {
    /// An error with this class name and message.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> RpcError {
        RpcError {
            name: name.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for RpcError {}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;

/// An exposed function, boxed once when it is registered.
pub(crate) type Exposed = Arc<dyn Fn(RpcRequest) -> BoxFuture + Send + Sync>;

/// Boxes `f`, serializing its result.
pub(crate) fn exposed<F, Fut, T>(f: F) -> Exposed
where
    F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, RpcError>> + Send + 'static,
    T: Serialize,
{
    Arc::new(move |request| {
        let call = f(request);
        Box::pin(async move {
            let result = call.await?;
            serde_json::to_value(result)
                .map_err(|err| RpcError::new("RPCSerializationError", err.to_string()))
        })
    })
}

/// Reads a `pikku-rpc-request` frame; `None` when `frame` is not a valid one.
pub(crate) fn request(
    frame: &mut serde_json::Map<String, Value>,
    commands: &mpsc::WeakSender<Command>,
    generation: u64,
) -> Option<RpcRequest> {
    if frame.get("action")?.as_str()? != "pikku-rpc-request" {
        return None;
    }
    let id = frame.get("id")?.as_str().filter(|id| !id.is_empty())?;
    let func_name = frame.get("funcName")?.as_str()?;
    Some(RpcRequest {
        id: id.to_owned(),
        func_name: func_name.to_owned(),
        trace_id: frame
            .get("traceId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        data: frame.remove("data").unwrap_or(Value::Null),
        commands: commands.clone(),
        generation,
    })
}

/// Runs `request` on its own task (`function` is `None` when nothing is exposed under its name) and sends the
/// `pikku-rpc-response`. A function that panics answers `RPCPanicError`. One task per request: the server
/// decides how many it sends; a task outlives the server's timeout only as long as its function runs.
pub(crate) fn answer(request: RpcRequest, function: Option<Exposed>) {
    tokio::spawn(async move {
        let id = request.id.clone();
        let commands = request.commands.clone();
        let generation = request.generation;
        let outcome = match function {
            Some(function) => AssertUnwindSafe(async move { function(request).await })
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(RpcError::new(
                        "RPCPanicError",
                        "the exposed function panicked",
                    ))
                }),
            None => Err(RpcError::new(
                "RPCNotFoundError",
                format!("No function '{}' is exposed", request.func_name),
            )),
        };
        let response = match outcome {
            Ok(result) => {
                json!({"action": "pikku-rpc-response", "id": id, "ok": true, "result": result})
            }
            Err(err) => json!({
                "action": "pikku-rpc-response", "id": id, "ok": false,
                "error": {"name": err.name, "message": err.message},
            }),
        };
        send(&commands, generation, &response).await;
    });
}

/// Queues a JSON frame for connection `generation`, if the client is still open.
async fn send(commands: &mpsc::WeakSender<Command>, generation: u64, frame: &Value) {
    if let Some(commands) = commands.upgrade() {
        let message = Message::text(frame.to_string());
        let _ = commands
            .send(Command::Respond {
                generation,
                message,
            })
            .await;
    }
}
