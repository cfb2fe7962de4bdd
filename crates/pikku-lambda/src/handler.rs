//! The Lambda function: one API Gateway WebSocket event in, the stateless runtime's outcome out.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{service_fn, LambdaEvent};
use pikku_core::runtime::UpgradeInput;
use pikku_core::stateless::{Outcome, StatelessRuntime, StatelessStores, UserSession};
use pikku_core::store::{PlatformSendError, PlatformSender};
use pikku_core::subprotocol::SubprotocolPolicy;
use pikku_core::{App, ChannelError, RegistrationError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::event::{self, EventKind};
use crate::response;
use crate::sender::ApiGatewaySender;

/// An [`App`] served as the Lambda integration of an API Gateway WebSocket API: `$connect`, `$disconnect`
/// and every message route ([`handle`](Self::handle)), with connections kept in [`StatelessStores`] and frames
/// sent through an [`ApiGatewaySender`]. See the [crate docs](crate) for an example and for what differs from
/// the embedded server.
pub struct LambdaChannels<S, U> {
    runtime: StatelessRuntime<S, U>,
    sender: Arc<ApiGatewaySender>,
    path: ChannelPath,
    subprotocols: SubprotocolPolicy,
}

impl<S, U> fmt::Debug for LambdaChannels<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaChannels")
            .field("runtime", &self.runtime)
            .field("sender", &self.sender)
            .field("path", &self.path)
            .field("subprotocols", &self.subprotocols)
            .finish()
    }
}

/// Where a `$connect` finds its channel path: API Gateway passes no path per connection.
#[derive(Debug, Clone)]
struct ChannelPath {
    fixed: String,
    query_parameter: Option<String>,
}

impl ChannelPath {
    /// The path, and the query parameter that named it (kept out of the opening data).
    fn resolve<'e>(
        &'e self,
        event: &'e ApiGatewayWebsocketProxyRequest,
    ) -> Result<(&'e str, Option<&'e str>), ChannelError> {
        let Some(name) = self.query_parameter.as_deref() else {
            return Ok((&self.fixed, None));
        };
        match event::parameter(event, name) {
            None => Ok((&self.fixed, Some(name))),
            Some(path) if path.starts_with('/') => Ok((path, Some(name))),
            Some(_) => Err(ChannelError::bad_request(format!(
                "Query parameter '{name}' must be a path starting with '/'"
            ))),
        }
    }
}

impl<S, U> LambdaChannels<S, U>
where
    S: Send + Sync + 'static,
    U: UserSession + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Builds `app` for API Gateway: connections in `stores`, frames and closes through `sender`. Every
    /// connection opens the channel at `/` until [`with_path`](Self::with_path) or
    /// [`with_path_parameter`](Self::with_path_parameter) says otherwise.
    ///
    /// # Errors
    /// [`RegistrationError::SocketStateNotPersisted`] when a channel keeps socket state it does not persist (a
    /// Lambda keeps nothing between events).
    pub fn new(
        app: App<S, U>,
        stores: StatelessStores,
        sender: ApiGatewaySender,
    ) -> Result<Self, RegistrationError> {
        let sender = Arc::new(sender);
        let runtime = StatelessRuntime::new(app, stores, sender.clone())?;
        Ok(Self {
            runtime,
            sender,
            path: ChannelPath {
                fixed: "/".to_owned(),
                query_parameter: None,
            },
            subprotocols: SubprotocolPolicy::None,
        })
    }

    /// The channel path every connection opens (default `/`), as it would appear in a URL: route parameters
    /// in it (`/rooms/lobby` for `/rooms/{room}`) become the opening data.
    ///
    /// # Panics
    /// When `path` does not start with `/`.
    #[must_use]
    #[track_caller]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        assert!(
            path.starts_with('/'),
            "a channel path starts with '/', got {path:?}"
        );
        self.path.fixed = path;
        self
    }

    /// Lets each connection name its channel path in query parameter `name` of the WebSocket URL
    /// (`wss://…/prod?channel=/rooms/lobby`); a connection without it gets the [fixed path](Self::with_path).
    /// The value is the path as it would appear in a URL, after the query's own decoding; the parameter is
    /// not part of the channel's opening data. A value that does not start with `/` is refused with 400.
    #[must_use]
    pub fn with_path_parameter(mut self, name: impl Into<String>) -> Self {
        self.path.query_parameter = Some(name.into());
        self
    }

    /// The subprotocols a connection may select, as the embedded server's `SubprotocolPolicy::List`: the first
    /// name the client offers that is listed is echoed in the `$connect` answer's `Sec-WebSocket-Protocol`
    /// header (API Gateway passes it on to the handshake), and a client offering only unlisted names is refused
    /// with 400 `Unsupported subprotocol`. By default none is selected, whatever is offered.
    #[must_use]
    pub fn with_subprotocols(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.subprotocols = SubprotocolPolicy::list(names);
        self
    }

    /// Any subprotocol policy, as the embedded server's (a callback that insists on a token, say).
    #[must_use]
    pub fn with_subprotocol_policy(mut self, policy: SubprotocolPolicy) -> Self {
        self.subprotocols = policy;
        self
    }

    /// The stateless runtime underneath: its hub publishes from outside any event, its stores hold the
    /// connections, and [`sweep`](StatelessRuntime::sweep) forgets quiet ones.
    #[must_use]
    pub fn runtime(&self) -> &StatelessRuntime<S, U> {
        &self.runtime
    }

    /// The sender frames and closes go through.
    #[must_use]
    pub fn sender(&self) -> &ApiGatewaySender {
        &self.sender
    }

    /// Handles one event of the WebSocket API and returns the integration's answer.
    ///
    /// - `$connect` (route key, or event type `CONNECT`): the upgrade checks run on the event's headers and
    ///   query with the configured channel path. A refusal answers its status with the JSON body
    ///   `{name, message, errorId[, details]}`, and API Gateway refuses the handshake; otherwise 200, with the
    ///   selected [subprotocol](Self::with_subprotocols) if any.
    ///   Frames onConnect sends are dropped with a warning, since API Gateway delivers nothing before the
    ///   connect completes; a close onConnect asks for refuses the connection with 403 (onDisconnect runs).
    /// - `$disconnect`: onDisconnect runs and the record goes; a repeated disconnect does nothing. 200.
    /// - Any other route key (`$default`, custom routes): one message, binary when API Gateway base64-encoded
    ///   the body. The outcome's frames are posted in order, then a close becomes `DeleteConnection`. 200.
    ///
    /// A store failure answers 500 with the same JSON body.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped future may have run handlers and sent some frames.
    pub async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(connection_id) = event.request_context.connection_id.as_deref() else {
            tracing::warn!("WebSocket event without a connection id");
            return response::refusal(&ChannelError::bad_request("Missing connection id"));
        };
        match event::kind(&event) {
            EventKind::Connect => self.connect(connection_id, &event).await,
            EventKind::Disconnect => self.disconnect(connection_id, &event).await,
            EventKind::Message => self.message(connection_id, &event).await,
        }
    }

    /// Runs the function: polls the Lambda Runtime API for events and answers each with
    /// [`handle`](Self::handle), until the runtime stops.
    ///
    /// # Errors
    /// The runtime client's own failure (the Runtime API cannot be reached).
    ///
    /// # Panics
    /// Outside Lambda: the runtime client needs the variables Lambda sets (`AWS_LAMBDA_RUNTIME_API`,
    /// `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_FUNCTION_VERSION`).
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let channels = Arc::new(self);
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
                let channels = channels.clone();
                async move { Ok::<_, Infallible>(channels.handle(event.payload).await) }
            },
        ))
        .await
    }

    async fn connect(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let (path, parameter) = match self.path.resolve(event) {
            Ok(resolved) => resolved,
            Err(err) => return response::refusal(&err),
        };
        let query = event::query(event, parameter);
        let headers = Arc::new(event::headers(event));
        let subprotocol = match self.subprotocols.choose(&headers) {
            Ok(selected) => selected,
            Err(err) => return response::refusal(&err),
        };
        let upgrade = UpgradeInput {
            path,
            query: query.as_deref(),
            headers: headers.clone(),
            peer: event::peer(event),
        };
        let outcome = match self.runtime.connect(connection_id, upgrade).await {
            Ok(outcome) => outcome,
            Err(err) => return response::refusal(&err),
        };
        if !outcome.frames.is_empty() {
            // API Gateway answers 410 to any send before the connect completes, and the Lambda is frozen once
            // it has answered: these frames cannot reach the client.
            tracing::warn!(
                channel_id = connection_id,
                frames = outcome.frames.len(),
                "onConnect sent frames, which API Gateway cannot deliver before the connect completes; \
                 they were dropped (send them in reply to the client's first message)"
            );
        }
        if let Some(close) = outcome.close {
            // A refused handshake never opens, so API Gateway sends no $disconnect; the runtime already ran
            // the disconnect of a connection its app closed.
            let reason = if close.reason.is_empty() {
                "Connection closed by the server".into()
            } else {
                close.reason
            };
            return response::refusal(&ChannelError::forbidden(reason));
        }
        let mut accepted = response::ok();
        if let Some(name) = subprotocol {
            accepted
                .headers
                .insert(http::header::SEC_WEBSOCKET_PROTOCOL, name);
        }
        accepted
    }

    async fn message(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let inbound = match event::inbound(event) {
            Ok(inbound) => inbound,
            Err(err) => {
                tracing::warn!(channel_id = connection_id, error = %err, "message dropped");
                return response::refusal(&ChannelError::bad_request("Invalid binary message"));
            }
        };
        match self.runtime.message(connection_id, [inbound]).await {
            Ok(outcome) => {
                self.deliver(connection_id, outcome).await;
                response::ok()
            }
            Err(err) => response::refusal(&ChannelError::internal(err)),
        }
    }

    async fn disconnect(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let reason = event::disconnect_reason(event);
        match self.runtime.disconnect(connection_id, reason).await {
            Ok(()) => response::ok(),
            Err(err) => response::refusal(&ChannelError::internal(err)),
        }
    }

    /// Posts the frames in order, then performs the close. A connection reported gone gets nothing more; its
    /// record goes with the `$disconnect` API Gateway sends. Other failures are logged and the next frame is
    /// still tried.
    async fn deliver(&self, connection_id: &str, outcome: Outcome) {
        for frame in &outcome.frames {
            match self.sender.send(connection_id, frame).await {
                Ok(()) => {}
                Err(PlatformSendError::Gone) => {
                    tracing::info!(
                        channel_id = connection_id,
                        "connection gone; its remaining frames are dropped"
                    );
                    return;
                }
                Err(err) => {
                    tracing::warn!(channel_id = connection_id, error = %err, "frame not delivered");
                }
            }
        }
        if let Some(close) = outcome.close {
            // DeleteConnection carries no code or reason: API Gateway writes its own close frame.
            tracing::debug!(
                channel_id = connection_id,
                code = close.code,
                reason = %close.reason,
                "closing the connection"
            );
            match self.sender.delete(connection_id).await {
                Ok(()) | Err(PlatformSendError::Gone) => {}
                Err(err) => {
                    tracing::warn!(channel_id = connection_id, error = %err, "could not close the connection");
                }
            }
        }
    }
}
