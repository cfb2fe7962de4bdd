//! Typed calls and typed reverse RPC from message types shared with the server: [`RouteCall`] and
//! [`ClientCapability`].

use std::future::Future;

use futures_util::future::{self, Either, Ready};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Client, ClientBuilder, ClientError, RpcError, RpcRequest};

/// A message type that names its route, so that [`Client::request`] sends it and returns its typed reply.
///
/// Implement it once, next to the type, in a crate both the server and its clients depend on: the server
/// deserializes the same struct as its handler's input, and the client serializes it. The message goes out as
/// the struct's members plus the routing member (`{"action":"create","title":"x"}`), so `Self` must serialize
/// to an object or to unit/`null` (a unit struct: a message of the routing member alone).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pikku_client::ClientError> {
/// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
/// # let url = server.url("/events");
/// use pikku_client::{Client, RouteCall};
/// use serde::{Deserialize, Serialize};
///
/// // In the shared crate: the handler's input, its reply, and the route between them.
/// #[derive(Serialize, Deserialize)]
/// struct Create { title: String }
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Created { id: u32, title: String }
///
/// impl RouteCall for Create {
///     const PROPERTY: &'static str = "action";
///     const VALUE: &'static str = "create";
///     type Reply = Created;
/// }
///
/// // A unit struct sends just the routing member: `{"action":"count"}`.
/// #[derive(Serialize)]
/// struct Count;
///
/// impl RouteCall for Count {
///     const PROPERTY: &'static str = "action";
///     const VALUE: &'static str = "count";
///     type Reply = u32;
/// }
///
/// // In the client.
/// let client = Client::connect(&url).await?; // "ws://127.0.0.1:4002/events"
/// # client.next_frame().await?;
/// # client.route("action").call("auth", &serde_json::json!({"token": "valid"})).await?;
/// let created = client.request(&Create { title: "milk".into() }).await?;
/// assert_eq!(created, Created { id: 1, title: "milk".into() });
/// assert_eq!(client.request(&Count).await?, 1);
/// # Ok(()) }
/// ```
///
/// The reply type reads the handler's result as [`Reply::value`](crate::Reply::value) describes: an object
/// without the routing member, the `result` of a wrapped primitive, array or optional, `()` for a handler
/// without output.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a route",
    note = "implement `pikku_client::RouteCall` for `{Self}` (PROPERTY, VALUE, Reply), ideally in the crate that \
            shares the message types with the server"
)]
pub trait RouteCall: Serialize {
    /// The routing property, usually `"action"`.
    const PROPERTY: &'static str;
    /// The route's name under [`PROPERTY`](RouteCall::PROPERTY), e.g. `"create"`.
    const VALUE: &'static str;
    /// What the handler answers.
    type Reply: DeserializeOwned;
}

/// A function the client offers the server for its reverse calls, as a type: the name the server calls it by,
/// its argument and its result. [`Client::answer`] serves it.
///
/// Implement it in the crate shared with the server, on the same marker type the server's side uses to call
/// it (pikku's `Capability` trait has the same three items, with `Input: Serialize` and
/// `Output: DeserializeOwned` since the server sends the input and reads the output):
///
/// ```
/// use pikku_client::ClientCapability;
/// use serde::{Deserialize, Serialize};
///
/// /// Asks the user to confirm an action.
/// pub struct Confirm;
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Question { pub text: String }
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Answer { pub yes: bool }
///
/// impl ClientCapability for Confirm {
///     const NAME: &'static str = "confirm";
///     type Input = Question;
///     type Output = Answer;
/// }
///
/// // And, in the same crate, behind a `server` feature that depends on `pikku`:
/// // impl pikku::Capability for Confirm {
/// //     const NAME: &'static str = "confirm";
/// //     type Input = Question;
/// //     type Output = Answer;
/// // }
/// ```
pub trait ClientCapability {
    /// The `funcName` the server calls.
    const NAME: &'static str;
    /// The argument (`data`); a request without `data` reads as `null`, so `()` or an `Option` fit one that
    /// sends none.
    type Input: DeserializeOwned;
    /// The result, sent as the response's `result` (owned data: it is produced on a task of its own).
    type Output: Serialize + Send + 'static;
}

/// What a request whose `data` does not fit [`ClientCapability::Input`] is answered with.
const INVALID_INPUT: &str = "RPCInvalidInputError";

/// Wraps a typed function into one [`Client::expose`] takes: a request whose `data` fits is the function's
/// future, one that does not is answered at once.
fn untyped<C, F, Fut>(
    function: F,
) -> impl Fn(RpcRequest) -> Either<Fut, Ready<Result<C::Output, RpcError>>> + Send + Sync + 'static
where
    C: ClientCapability,
    F: Fn(C::Input) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C::Output, RpcError>> + Send + 'static,
{
    move |request: RpcRequest| match serde_json::from_value::<C::Input>(request.into_data()) {
        Ok(input) => Either::Left(function(input)),
        Err(err) => Either::Right(future::ready(Err(RpcError::new(
            INVALID_INPUT,
            format!("the argument of '{}' does not fit: {err}", C::NAME),
        )))),
    }
}

impl Client {
    /// Sends the routed message `call` (see [`RouteCall`]) and returns its typed reply: the typed form of
    /// [`route(C::PROPERTY).call_as(C::VALUE, call)`](crate::Route::call_as).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// use pikku_client::{ClientError, RouteCall};
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// struct Auth<'a> { token: &'a str }
    ///
    /// #[derive(serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct AuthResult { auth_result: bool }
    ///
    /// impl RouteCall for Auth<'_> {
    ///     const PROPERTY: &'static str = "action";
    ///     const VALUE: &'static str = "auth";
    ///     type Reply = AuthResult;
    /// }
    ///
    /// #[derive(Serialize)]
    /// struct Forbid;
    ///
    /// impl RouteCall for Forbid {
    ///     const PROPERTY: &'static str = "action";
    ///     const VALUE: &'static str = "forbid";
    ///     type Reply = ();
    /// }
    ///
    /// assert!(client.request(&Auth { token: "valid" }).await?.auth_result);
    /// // An error frame is an error.
    /// let err = client.request(&Forbid).await.unwrap_err();
    /// assert!(matches!(err, ClientError::Remote { name, .. } if name == "ForbiddenError"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Route::call_as`](crate::Route::call_as): [`ClientError::Remote`] for an error frame,
    /// [`ClientError::Decode`] when the reply does not fit `C::Reply`, [`ClientError::Encode`] when `call` is
    /// not an object, [`ClientError::Closed`] or [`ClientError::Disconnected`] when the connection ends first.
    ///
    /// # Cancel safety
    /// As [`Route::call`](crate::Route::call).
    pub async fn request<C: RouteCall + ?Sized>(&self, call: &C) -> Result<C::Reply, ClientError> {
        self.route(C::PROPERTY).call_as(C::VALUE, call).await
    }

    /// [`request`](Client::request), remembering the message under `id` to send it again after every
    /// reconnect, as [`Route::call_remembered`](crate::Route::call_remembered) does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use pikku_client::{Backoff, Client, RouteCall};
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// struct Sub<'a> { topic: &'a str }
    ///
    /// impl RouteCall for Sub<'_> {
    ///     const PROPERTY: &'static str = "action";
    ///     const VALUE: &'static str = "sub";
    ///     type Reply = ();
    /// }
    ///
    /// let client = Client::builder(&url).reconnect(Backoff::default()).connect().await?;
    /// # client.next_frame().await?;
    /// client.route("action").call_remembered("login", "auth", &serde_json::json!({"token": "valid"})).await?;
    /// client.request_remembered("news", &Sub { topic: "news" }).await?; // after the login, on every connection
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`request`](Client::request).
    ///
    /// # Cancel safety
    /// As [`Route::call_remembered`](crate::Route::call_remembered).
    pub async fn request_remembered<C: RouteCall + ?Sized>(
        &self,
        id: impl Into<String>,
        call: &C,
    ) -> Result<C::Reply, ClientError> {
        self.route(C::PROPERTY)
            .call_remembered(id, C::VALUE, call)
            .await?
            .json()
    }

    /// Serves the capability `C` (see [`ClientCapability`]) with `function`: the typed form of
    /// [`expose`](Client::expose) under `C::NAME`. The request's `data` is deserialized into `C::Input`; one
    /// that does not fit is answered `RPCInvalidInputError` without calling `function`. For
    /// [`RpcRequest::pending`], use [`expose`](Client::expose).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let client = pikku_client::Client::connect(&server.url("/events")).await?;
    /// # client.next_frame().await?;
    /// # client.route("action").call("auth", &serde_json::json!({"token": "valid"})).await?;
    /// use pikku_client::{ClientCapability, RpcError};
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::json;
    ///
    /// struct ClientThing;
    ///
    /// #[derive(Deserialize)]
    /// struct Asked { q: u32 }
    ///
    /// #[derive(Serialize)]
    /// struct Said { doubled: u32 }
    ///
    /// impl ClientCapability for ClientThing {
    ///     const NAME: &'static str = "clientThing";
    ///     type Input = Asked;
    ///     type Output = Said;
    /// }
    ///
    /// client.answer::<ClientThing, _, _>(|asked: Asked| async move {
    ///     Ok::<_, RpcError>(Said { doubled: asked.q * 2 })
    /// });
    /// // The `rev` route calls `clientThing` with `{"q":1}` and returns what it said.
    /// let said = client.route("action").call("rev", &()).await?.value();
    /// assert_eq!(said, json!({"remoteSaid": {"doubled": 2}}));
    /// # Ok(()) }
    /// ```
    pub fn answer<C, F, Fut>(&self, function: F)
    where
        C: ClientCapability,
        F: Fn(C::Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Output, RpcError>> + Send + 'static,
    {
        self.expose(C::NAME, untyped::<C, F, Fut>(function));
    }
}

impl ClientBuilder {
    /// [`Client::answer`] before the connection opens, so that requests the server sends from its onConnect
    /// already find the function.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use pikku_client::{Client, ClientCapability, RpcError};
    /// use serde_json::Value;
    ///
    /// struct ClientThing;
    ///
    /// impl ClientCapability for ClientThing {
    ///     const NAME: &'static str = "clientThing";
    ///     type Input = Value;
    ///     type Output = &'static str;
    /// }
    ///
    /// let client = Client::builder(&url)
    ///     .answer::<ClientThing, _, _>(|_asked: Value| async { Ok::<_, RpcError>("ready") })
    ///     .connect()
    ///     .await?;
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    pub fn answer<C, F, Fut>(self, function: F) -> ClientBuilder
    where
        C: ClientCapability,
        F: Fn(C::Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Output, RpcError>> + Send + 'static,
    {
        self.expose(C::NAME, untyped::<C, F, Fut>(function))
    }
}
