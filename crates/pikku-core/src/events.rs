//! A ready-made events channel for Pikku's realtime client: topic subscriptions over a socket, the same topics
//! as Server-Sent Events streams, and [`publish_event`] for the `{"topic","data"}` envelope both expect.
//!
//! # The socket
//! [`EventsChannel::new`]`("/realtime/events")` builds a channel at that path with two routes under `action`:
//! `{"action":"subscribe","topic":"news"}` and `{"action":"unsubscribe","topic":"news"}`. They need no session
//! (the realtime client sends them without one) and are answered as every routed message is:
//! `{"action":"subscribe"}`, or an error frame such as
//! `{"action":"subscribe","error":"Permission denied","errorName":"ForbiddenError"}` when the
//! [authorizer](EventsChannel::authorize) refuses. Each subscriber then receives every event published to
//! the topic through the app's hub, from any channel or from outside one.
//!
//! # The streams
//! The same channel answers `GET /realtime/events/<topic>` (the topic percent-encoded, one path segment) with a
//! `text/event-stream` of that topic's events, when served by `pikku-server` (standalone, or merged through
//! `ChannelServer::router()`). A stream is a hub subscriber like a socket: the upgrade checks and upgrade
//! middleware run for it (so a cookie or an `Authorization` header can set its session), the authorizer sees
//! its session and topic (a refusal is the HTTP status with the usual JSON body), and it has the same bounded
//! outbound queue and slow-consumer policy. Each event is one `data:` line holding exactly the bytes a socket
//! subscriber receives; binary publications are not sent on streams. Delivery is at most once: nothing is
//! replayed after a reconnect, so a client that must not miss events reloads what it shows once it is back.
//!
//! # The envelope
//! The hub adds nothing to what is published. The realtime client dispatches on `{"topic": T, "data": …}`, so
//! publish through [`publish_event`] (or [`EventHub::publish_event`]), which builds that envelope once per
//! publication.
//!
//! ```
//! use pikku::events::{publish_event, EventsChannel};
//! use pikku::{App, ChannelError};
//!
//! let app: App<(), ()> = App::new(()).channel(
//!     EventsChannel::new("/realtime/events")
//!         .authorize(|_ctx, topic| async move {
//!             if topic.starts_with("admin:") {
//!                 return Err(ChannelError::forbidden("Permission denied"));
//!             }
//!             Ok(())
//!         })
//!         .build(),
//! );
//! let hub = app.hub();
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // From a job or an HTTP handler: every subscriber of `news` gets {"topic":"news","data":{"headline":"hi"}}.
//! publish_event(&hub, "news", &serde_json::json!({"headline": "hi"})).await.unwrap();
//! # });
//! ```

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::handler::typed;

use crate::ctx::Ctx;
use crate::error::{ChannelError, HubError};
use crate::hub::EventHub;
use crate::opening::Params;
use crate::wiring::ChannelRoute;
use crate::Channel;

pub(crate) use crate::wiring::EventsSpec;
pub use crate::wiring::TopicAuthorizer;

/// A builder for the events channel of Pikku's realtime client; [`build`](Self::build) gives the
/// [`ChannelRoute`] to add to the app. See the [module docs](self) for what the channel answers.
///
/// The channel is named `events` unless [`name`](Self::name) says otherwise (names are unique in an app). The
/// built route takes further settings as any channel does, for example upgrade middleware that turns a cookie
/// or a token into the session the authorizer then sees.
///
/// ```
/// use pikku::events::EventsChannel;
/// use pikku::{App, ChannelError, Ctx, UpgradeRequest};
///
/// #[derive(Clone)]
/// struct User { id: String }
///
/// async fn cookie_session(req: UpgradeRequest<(), User>) -> Result<(), ChannelError> {
///     if let Some(id) = req.header("cookie").and_then(|c| c.strip_prefix("user=")) {
///         req.set_session(User { id: id.to_owned() });
///     }
///     Ok(())
/// }
///
/// let events = EventsChannel::new("/realtime/events")
///     // `user:<id>` topics are for their user only.
///     .authorize(|ctx: Ctx<(), User>, topic: String| async move {
///         match topic.strip_prefix("user:") {
///             Some(id) if ctx.session().map(|u| u.id).as_deref() != Some(id) => {
///                 Err(ChannelError::forbidden("Permission denied"))
///             }
///             _ => Ok(()),
///         }
///     })
///     .build()
///     .upgrade_middleware(cookie_session);
/// let app = App::new(()).channel(events);
/// # let _ = app;
/// ```
#[must_use = "an events channel does nothing until it is built and added to the app"]
pub struct EventsChannel<S, U> {
    name: String,
    route: String,
    authorize: Option<TopicAuthorizer<S, U>>,
    location: &'static Location<'static>,
}

impl<S, U> std::fmt::Debug for EventsChannel<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsChannel")
            .field("name", &self.name)
            .field("route", &self.route)
            .field("authorized", &self.authorize.is_some())
            .finish()
    }
}

/// An event as an events channel's subscribers receive it: `{"topic": T, "data": …}`. Declared as the push type
/// of `subscribe`, so that descriptions and generated clients know the events' shape.
///
/// ```
/// use pikku::events::TopicEvent;
///
/// let event: TopicEvent = serde_json::from_str(r#"{"topic":"news","data":{"n":1}}"#).unwrap();
/// assert_eq!(event.topic, "news");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TopicEvent {
    /// The topic it was published to.
    pub topic: String,
    /// What was published.
    pub data: serde_json::Value,
}

/// The input of `subscribe` and `unsubscribe`.
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(rename = "EventTopic")]
struct TopicInput {
    topic: String,
}

impl<S, U> EventsChannel<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// An events channel at `route` (any literal or parameterised path, `/events` for the client's default),
    /// named `events`, open to every topic. Its streams are at `<route>/<topic>`.
    ///
    /// ```
    /// use pikku::events::EventsChannel;
    /// use pikku::App;
    ///
    /// let rt = App::new(()).channel(EventsChannel::<(), ()>::new("/realtime/events").build()).into_runtime();
    /// assert_eq!(rt.channel_routes().collect::<Vec<_>>(), [("events", "/realtime/events")]);
    /// ```
    #[track_caller]
    pub fn new(route: impl Into<String>) -> Self {
        Self {
            name: "events".to_owned(),
            route: route.into(),
            authorize: None,
            location: Location::caller(),
        }
    }

    /// Names the channel (default `events`), for an app with more than one events channel.
    ///
    /// ```
    /// use pikku::events::EventsChannel;
    /// use pikku::App;
    ///
    /// let app: App<(), ()> = App::new(())
    ///     .channel(EventsChannel::new("/public/events").build())
    ///     .channel(EventsChannel::new("/staff/events").name("staff-events").build());
    /// # let _ = app;
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks every subscription, on sockets and streams alike: the callback sees the context (services, the
    /// connection's session) and the topic, and returns `Ok(())` to allow it or a client error to refuse it.
    /// A refused `subscribe` is answered with that error frame; a refused stream with the error's HTTP status
    /// and JSON body. Unsubscribing is never checked. See the type-level example.
    pub fn authorize<F, Fut>(mut self, authorize: F) -> Self
    where
        F: Fn(Ctx<S, U>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ChannelError>> + Send + 'static,
    {
        self.authorize = Some(Arc::new(move |ctx, topic| Box::pin(authorize(ctx, topic))));
        self
    }

    /// The channel route: `subscribe` and `unsubscribe` under `action`, both without a session, plus the
    /// topic streams. Add it with [`App::channel`](crate::App::channel).
    ///
    /// Settings added to the route apply to its sockets and, where they make sense for a stream, to its streams
    /// too: upgrade middleware and a disconnection handler run for both. A connection handler runs for sockets
    /// only, since a stream carries nothing but its topic's events.
    ///
    /// ```
    /// use pikku::events::EventsChannel;
    /// use pikku::App;
    ///
    /// let app: App<(), ()> = App::new(()).channel(EventsChannel::new("/events").build());
    /// # let _ = app;
    /// ```
    pub fn build(self) -> ChannelRoute<S, U> {
        let authorize = self.authorize.clone();
        let subscribe =
            move |ctx: Ctx<S, U>, ch: Channel<Params, TopicEvent>, input: TopicInput| {
                let authorize = authorize.clone();
                async move {
                    if let Some(authorize) = authorize {
                        authorize(ctx.clone(), input.topic.clone()).await?;
                    }
                    ctx.hub().subscribe(&input.topic, ch.channel_id()).await?;
                    Ok::<(), ChannelError>(())
                }
            };
        let unsubscribe = |ctx: Ctx<S, U>, ch: Channel<Params, ()>, input: TopicInput| async move {
            ctx.hub().unsubscribe(&input.topic, ch.channel_id()).await?;
            Ok::<(), ChannelError>(())
        };
        let mut route = ChannelRoute::new(self.name, self.route)
            .auth(false)
            .route("action", "subscribe", typed(subscribe))
            .route("action", "unsubscribe", typed(unsubscribe));
        route.location = self.location;
        route.events = Some(EventsSpec {
            authorize: self.authorize,
        });
        route
    }
}

/// The envelope the realtime client expects: `{"topic": T, "data": …}`.
#[derive(Serialize)]
struct Envelope<'a, T: ?Sized> {
    topic: &'a str,
    data: &'a T,
}

/// Publishes `data` to every subscriber of `topic` as `{"topic": <topic>, "data": <data>}`, the shape Pikku's
/// realtime client dispatches on; returns the number of local deliveries. The envelope is encoded once, and the
/// same bytes reach every socket and stream subscriber. Same as [`EventHub::publish_event`].
///
/// ```
/// use pikku::events::publish_event;
/// use pikku::{Channel, ChannelError, Ctx, Params};
///
/// #[derive(serde::Deserialize)]
/// struct NewTodo { title: String }
///
/// async fn create_todo(ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, todo: NewTodo) -> Result<(), ChannelError> {
///     publish_event(ctx.hub(), "todo-created", &serde_json::json!({ "title": todo.title })).await?;
///     Ok(())
/// }
/// ```
///
/// # Errors
/// As [`EventHub::publish`]: the data does not serialize, or the broker did not take the event.
///
/// # Cancel safety
/// As [`EventHub::publish`].
pub async fn publish_event<T: Serialize + ?Sized>(
    hub: &EventHub,
    topic: &str,
    data: &T,
) -> Result<usize, HubError> {
    hub.publish(topic, None, &Envelope { topic, data }).await
}

impl EventHub {
    /// [`publish_event`] as a method: publishes `{"topic": <topic>, "data": <data>}` to every subscriber of
    /// `topic`, encoded once.
    ///
    /// ```
    /// use pikku::core::HubLimits;
    /// use pikku::EventHub;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let hub = EventHub::new(HubLimits::default());
    /// assert_eq!(hub.publish_event("news", &serde_json::json!({"headline": "hi"})).await.unwrap(), 0);
    /// # });
    /// ```
    ///
    /// # Errors
    /// As [`EventHub::publish`].
    ///
    /// # Cancel safety
    /// As [`EventHub::publish`].
    pub async fn publish_event<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
    ) -> Result<usize, HubError> {
        publish_event(self, topic, data).await
    }
}
