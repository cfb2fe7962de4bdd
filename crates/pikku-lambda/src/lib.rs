//! # pikku-lambda
//!
//! Runs a pikku app on an AWS API Gateway WebSocket API with Lambda. API Gateway holds the sockets and invokes
//! the function once per event; [`LambdaChannels`] answers each event with the app's
//! [stateless runtime](pikku_core::stateless), keeping connections in the
//! [stores](pikku_core::stateless::StatelessStores) between invocations, and [`ApiGatewaySender`] writes frames
//! through the management API (`POST /@connections/{id}`). In the facade this crate is `pikku::lambda`
//! (cargo feature `lambda`).
//!
//! Point the API's `$connect`, `$disconnect` and `$default` routes (and any custom route) at the function.
//! The function's role needs `execute-api:ManageConnections` on the API's `@connections` resources.
//!
//! ```no_run
//! use pikku::lambda::{ApiGatewaySender, LambdaChannels};
//! use pikku::prelude::*;
//! use pikku::stateless::StatelessStores;
//!
//! #[derive(serde::Deserialize)]
//! struct Say { text: String }
//!
//! async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, say: Say) -> String {
//!     format!("you said {}", say.text)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), pikku::lambda::Error> {
//!     let app = App::new(()).channel(
//!         ChannelRoute::new("chat", "/").auth(false).route("action", "say", say),
//!     );
//!     // The stage's callback URL; region and credentials come from the variables Lambda sets.
//!     let sender = ApiGatewaySender::from_env(std::env::var("WEBSOCKET_CALLBACK_URL")?)?;
//!     // In memory for a sketch: use the Redis or PostgreSQL stores, which every invocation reaches.
//!     let channels = LambdaChannels::new(app, StatelessStores::memory(), sender)?;
//!     channels.run().await
//! }
//! ```
//!
//! [`LambdaChannels::handle`] is the whole function for one event, so it can be driven without Lambda:
//!
//! ```
//! use pikku::lambda::{ApiGatewaySender, ApiGatewayWebsocketProxyRequest, LambdaChannels};
//! use pikku::prelude::*;
//! use pikku::stateless::StatelessStores;
//!
//! async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = App::new(()).channel(ChannelRoute::new("rooms", "/rooms/{room}").auth(false).on_connect(hello));
//! let sender = ApiGatewaySender::builder("http://127.0.0.1:9/prod")
//!     .region("eu-west-1")
//!     .credentials("AKIDEXAMPLE", "secret", None)
//!     .build()
//!     .unwrap();
//! let channels = LambdaChannels::new(app, StatelessStores::memory(), sender)
//!     .unwrap()
//!     .with_path_parameter("channel");
//!
//! let connect: ApiGatewayWebsocketProxyRequest = serde_json::from_value(serde_json::json!({
//!     "queryStringParameters": {"channel": "/rooms/lobby"},
//!     "requestContext": {"connectedAt": 0, "requestTimeEpoch": 0, "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c-1"}
//! })).unwrap();
//! assert_eq!(channels.handle(connect).await.status_code, 200);
//! # });
//! ```
//!
//! # The channel path
//! A WebSocket API has one URL per stage, and API Gateway does not pass a path per connection. So the channel
//! a connection opens is configured: every connection opens [`with_path`](LambdaChannels::with_path) (default
//! `/`), or, with [`with_path_parameter`](LambdaChannels::with_path_parameter), the path a query parameter of
//! the WebSocket URL names (`wss://…/prod?channel=/rooms/lobby`), falling back to the fixed path when the
//! parameter is absent. Route parameters and the rest of the query become the opening data, as with the
//! embedded server. Headers pass through to upgrade middleware and the origin check; the `Host` header is the
//! API's domain. A client that offers subprotocols (`Sec-WebSocket-Protocol`) gets one only from a list given
//! to [`with_subprotocols`](LambdaChannels::with_subprotocols), as with the embedded server.
//!
//! # What differs from the embedded server
//! - **Frames sent in onConnect are dropped** with a warning: API Gateway delivers nothing to a connection
//!   before its `$connect` has returned, and a Lambda does not run once it has answered. Send a greeting in
//!   reply to the client's first message instead.
//! - **A close asked for in onConnect refuses the handshake** with 403 `ForbiddenError` (the close reason as
//!   its message); onDisconnect runs then, since API Gateway sends no `$disconnect` for a refused connect.
//! - **A close elsewhere is `DeleteConnection`**, after the outcome's frames. It carries no code or reason:
//!   API Gateway writes its own close frame. onDisconnect has run already, in the invocation that closed, so
//!   the `$disconnect` that follows finds nothing to do.
//! - **Message order** is not guaranteed: API Gateway may invoke the function for two messages of one
//!   connection at once.
//! - Binary messages arrive base64-encoded (`isBase64Encoded`) and reach binary handlers as bytes. The
//!   management API takes bytes only, so API Gateway chooses the frame type the client receives.
//! - A publication reaches other connections with one `PostToConnection` each; one reported gone (410) is
//!   removed from the stores.
//! - Everything else of [stateless mode](pikku_core::stateless) applies: socket state must be persisted,
//!   sessions live in the session store under their user id, and reverse calls fail at once.
//!
//! # Cargo features
//! - `https` (default): TLS for the management API (rustls with ring). Without it only `http://` endpoints,
//!   such as a local stand-in in tests, can be reached.

mod event;
mod handler;
mod response;
mod sender;

/// The event of every WebSocket route, and the answer [`LambdaChannels::handle`] gives.
pub use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
/// The body of an [`ApiGatewayProxyResponse`]: a refusal's JSON is [`Body::Text`].
pub use aws_lambda_events::encodings::Body;
pub use handler::LambdaChannels;
pub use sender::{ApiGatewaySender, ApiGatewaySenderBuilder, SenderConfigError};

/// The error [`LambdaChannels::run`] returns: the Lambda runtime client's boxed error, which also takes any
/// error with `?` in a function's `main`.
pub type Error = lambda_runtime::Error;
