//! The context every handler, middleware and permission receives: services, the live session, the event hub.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::channel::{Connection, Registry};
use crate::config::AppConfig;
use crate::hub::EventHub;

/// What an app's handlers share, whatever channel they serve: the services, the connection registry, the event
/// hub and the configuration. Built once with the app; every [`Ctx`] holds it.
pub(crate) struct AppShared<S> {
    pub(crate) state: S,
    pub(crate) registry: Registry,
    pub(crate) hub: EventHub,
    pub(crate) config: AppConfig,
}

/// The live session holder of one connection: every read sees the latest `set_session`/`clear_session`.
///
/// The pipeline keeps one per connection and shares it between upgrade middleware, the auth gate, [`Ctx`] and
/// permissions; applications use those instead ([`Ctx::set_session`], [`Ctx::session`], …). Each call takes a
/// short lock, so a read never sees a half-written session.
///
/// ```
/// use pikku::core::ctx::SessionSlot;
///
/// let slot = SessionSlot::new(None);
/// assert!(!slot.is_present());
/// slot.set("u1".to_string());
/// assert_eq!(slot.get().as_deref(), Some("u1"));
/// slot.clear();
/// assert_eq!(slot.get(), None);
/// ```
pub struct SessionSlot<U> {
    value: Mutex<Session<U>>,
}

/// The session and whether it was set or cleared since the slot was made (what a stateless runner must save).
struct Session<U> {
    current: Option<U>,
    changed: bool,
}

impl<U> SessionSlot<U> {
    /// A holder seeded with `session` (`None`: no session yet).
    pub fn new(session: Option<U>) -> Self {
        Self {
            value: Mutex::new(Session {
                current: session,
                changed: false,
            }),
        }
    }

    /// Whether a session is present now.
    pub fn is_present(&self) -> bool {
        self.value.lock().current.is_some()
    }

    /// A copy of the current session, `None` when there is none.
    pub fn get(&self) -> Option<U>
    where
        U: Clone,
    {
        self.value.lock().current.clone()
    }

    /// Replaces the session (or sets the first one).
    pub fn set(&self, session: U) {
        let mut value = self.value.lock();
        value.current = Some(session);
        value.changed = true;
    }

    /// Removes the session; later reads see none.
    pub fn clear(&self) {
        let mut value = self.value.lock();
        value.current = None;
        value.changed = true;
    }

    /// The session as it is now when it was set or cleared since the slot was made or last asked, and marks it
    /// saved; `None` when nothing changed.
    pub(crate) fn take_change(&self) -> Option<Option<U>>
    where
        U: Clone,
    {
        let mut value = self.value.lock();
        std::mem::take(&mut value.changed).then(|| value.current.clone())
    }
}

impl<U> fmt::Debug for SessionSlot<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSlot")
            .field("present", &self.is_present())
            .finish()
    }
}

/// What a handler knows besides its channel and input: the application's services (`S`), the connection's live
/// session (`U`), the event hub and the matched route.
///
/// Every handler, middleware and permission of a connection gets a `Ctx` for the same connection; they share
/// its session, so a session set by one message is seen by the next (and by the auth gate). Cloning is cheap.
///
/// ```
/// use pikku::{App, Channel, ChannelRoute, Ctx, Params, Route};
/// use serde_json::json;
///
/// struct Services { greeting: String }
///
/// #[derive(Clone)]
/// struct User { id: String }
///
/// async fn login(ctx: Ctx<Services, User>, _ch: Channel<Params, ()>, _in: ()) -> String {
///     ctx.set_session(User { id: "u1".into() });
///     format!("{} u1", ctx.state().greeting)
/// }
///
/// async fn whoami(ctx: Ctx<Services, User>, _ch: Channel<Params, ()>, _in: ()) -> Option<String> {
///     assert_eq!(ctx.route(), Some(("action", "whoami")));
///     ctx.session().map(|user| user.id)
/// }
///
/// let app = App::new(Services { greeting: "hello".into() }).channel(
///     ChannelRoute::new("events", "/events") // messages need a session by default…
///         .route("action", "login", Route::new(login).auth(false)) // …but not this one
///         .route("action", "whoami", whoami),
/// );
/// # async fn run<S, U>(app: App<S, U>, messages: &[serde_json::Value]) -> Vec<serde_json::Value>
/// # where S: Send + Sync + 'static, U: Send + Sync + 'static {
/// #     let input = pikku::core::runtime::UpgradeInput { path: "/events", query: None, headers: Default::default(), peer: None };
/// #     let live = app.into_runtime().admit(input).await.unwrap().into_channel(None, std::time::Instant::now());
/// #     live.open();
/// #     for message in messages { live.run_message(message.clone()).await; }
/// #     let mut out = std::collections::VecDeque::new();
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     let _ = live.connection().poll_outgoing(&mut cx, &mut out, true);
/// #     out.iter().map(|frame| match frame {
/// #         pikku::core::OutFrame::Text(bytes) => serde_json::from_slice(bytes).unwrap(),
/// #         other => panic!("{other:?}"),
/// #     }).collect()
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // What a client sending these three messages reads back (`run` feeds them through the pipeline as a
/// // server would; see the `runtime` module):
/// let frames = run(app, &[json!({"action": "whoami"}), json!({"action": "login"}), json!({"action": "whoami"})]).await;
/// assert_eq!(frames, [
///     json!({"action": "whoami", "error": "Unauthorized for route 'action:whoami'", "errorName": "UnauthorizedError"}),
///     json!({"action": "login", "result": "hello u1"}),
///     json!({"action": "whoami", "result": "u1"}),
/// ]);
/// # });
/// ```
pub struct Ctx<S, U> {
    pub(crate) app: Arc<AppShared<S>>,
    pub(crate) conn: Arc<Connection>,
    pub(crate) session: Arc<SessionSlot<U>>,
    pub(crate) route: Option<(Arc<str>, Arc<str>)>,
}

impl<S, U> Clone for Ctx<S, U> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            conn: self.conn.clone(),
            session: self.session.clone(),
            route: self.route.clone(),
        }
    }
}

impl<S, U> fmt::Debug for Ctx<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("channel_id", &self.conn.id())
            .field("channel", &self.conn.channel_name())
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl<S, U> Ctx<S, U> {
    /// The application's services, as given to [`App::new`](crate::App::new) (shown in the type-level example).
    #[must_use]
    pub fn state(&self) -> &S {
        &self.app.state
    }

    /// The app's event hub: subscribe this connection to topics, publish to others.
    ///
    /// ```
    /// use pikku::{Channel, ChannelError, Ctx, Params};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Join { room: String }
    ///
    /// async fn join(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, input: Join) -> Result<(), ChannelError> {
    ///     ctx.hub().subscribe(&input.room, ch.channel_id()).await?;
    ///     // Tell the others in the room, not this connection.
    ///     let event = serde_json::json!({ "joined": ch.channel_id() });
    ///     ctx.hub().publish(&input.room, Some(ctx.channel_id()), &event).await?;
    ///     Ok(())
    /// }
    /// ```
    #[must_use]
    pub fn hub(&self) -> &EventHub {
        &self.app.hub
    }

    /// The id of the connection this invocation belongs to (the same as
    /// [`Channel::channel_id`](crate::Channel::channel_id)); use it to subscribe the connection or to exclude it
    /// from a publication, as in the [`hub`](Self::hub) example.
    #[must_use]
    pub fn channel_id(&self) -> &str {
        self.conn.id()
    }

    /// The name of the channel definition (the first argument of
    /// [`ChannelRoute::new`](crate::ChannelRoute::new)), useful in logs and shared middleware.
    ///
    /// ```
    /// use pikku::{ClosedChannel, Ctx, Params};
    ///
    /// async fn bye(ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
    ///     tracing::info!(channel = ctx.channel_name(), id = ch.channel_id(), "closed");
    /// }
    /// ```
    #[must_use]
    pub fn channel_name(&self) -> &str {
        self.conn.channel_name()
    }

    /// The matched route as (routing property, value), such as `("action", "create")`; `None` for the default
    /// route and lifecycle handlers. Shared middleware uses it to tell routes apart (shown in the type-level
    /// example).
    #[must_use]
    pub fn route(&self) -> Option<(&str, &str)> {
        self.route.as_ref().map(|(p, v)| (&**p, &**v))
    }

    /// A copy of the current session, `None` when there is none (always the latest value, including one set
    /// by another message of the same connection). Shown in the type-level example.
    #[must_use]
    pub fn session(&self) -> Option<U>
    where
        U: Clone,
    {
        self.session.get()
    }

    /// Whether a session is present, without cloning it (and for session types that are not `Clone`).
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// struct Token(String); // not Clone
    ///
    /// async fn status(ctx: Ctx<(), Token>, _ch: Channel<Params, ()>, _in: ()) -> &'static str {
    ///     if ctx.has_session() { "signed in" } else { "anonymous" }
    /// }
    /// ```
    #[must_use]
    pub fn has_session(&self) -> bool {
        self.session.is_present()
    }

    /// Sets (or replaces) the session of this connection; the auth gate, handlers and permissions see it from
    /// their next read on, so later messages to `auth` routes are admitted. Shown in the type-level example.
    pub fn set_session(&self, session: U) {
        self.session.set(session);
    }

    /// Clears the session of this connection: later messages to `auth` routes get `UnauthorizedError`.
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// async fn logout(ctx: Ctx<(), String>, _ch: Channel<Params, ()>, _in: ()) {
    ///     ctx.clear_session();
    /// }
    /// ```
    pub fn clear_session(&self) {
        self.session.clear();
    }

    /// Whether the application runs in development mode ([`AppConfig::dev_mode`](crate::AppConfig::dev_mode):
    /// internal error text reaches clients as `debug`), for example to add diagnostics to replies.
    ///
    /// ```
    /// use pikku::{Channel, Ctx, Params};
    ///
    /// async fn info(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> serde_json::Value {
    ///     if ctx.dev_mode() {
    ///         serde_json::json!({ "channel": ctx.channel_name(), "id": ch.channel_id() })
    ///     } else {
    ///         serde_json::json!({})
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn dev_mode(&self) -> bool {
        self.app.config.dev_mode
    }
}
