//! The context every handler, middleware and permission receives: services, the live session, the event hub.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::app::AppRuntime;
use crate::channel::Connection;
use crate::hub::EventHub;

/// The live session holder of one connection (D8): every read sees the latest `set_session`/`clear_session`.
pub struct SessionSlot<U> {
    value: Mutex<Option<U>>,
}

impl<U> SessionSlot<U> {
    /// A holder seeded with `session`.
    pub fn new(session: Option<U>) -> Self {
        Self {
            value: Mutex::new(session),
        }
    }

    /// Whether a session is present now.
    pub fn is_present(&self) -> bool {
        self.value.lock().is_some()
    }

    /// A copy of the current session.
    pub fn get(&self) -> Option<U>
    where
        U: Clone,
    {
        self.value.lock().clone()
    }

    /// Replaces the session.
    pub fn set(&self, session: U) {
        *self.value.lock() = Some(session);
    }

    /// Removes the session.
    pub fn clear(&self) {
        *self.value.lock() = None;
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
/// ```
/// use pikku_core::{Channel, Ctx, Params};
///
/// #[derive(Clone)]
/// struct User { id: String }
///
/// async fn whoami(ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _input: ()) -> Option<String> {
///     ctx.session().map(|user| user.id)
/// }
/// ```
pub struct Ctx<S, U> {
    pub(crate) rt: Arc<AppRuntime<S, U>>,
    pub(crate) conn: Arc<Connection>,
    pub(crate) session: Arc<SessionSlot<U>>,
    pub(crate) route: Option<(Arc<str>, Arc<str>)>,
}

impl<S, U> Clone for Ctx<S, U> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
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
    /// The application's services.
    #[must_use]
    pub fn state(&self) -> &S {
        self.rt.state()
    }

    /// The event hub.
    #[must_use]
    pub fn hub(&self) -> &EventHub {
        self.rt.hub()
    }

    /// The id of the connection this invocation belongs to.
    #[must_use]
    pub fn channel_id(&self) -> &str {
        self.conn.id()
    }

    /// The name of the channel definition.
    #[must_use]
    pub fn channel_name(&self) -> &str {
        self.conn.channel_name()
    }

    /// The matched route as (routing property, value); `None` for the default route and lifecycle handlers.
    #[must_use]
    pub fn route(&self) -> Option<(&str, &str)> {
        self.route.as_ref().map(|(p, v)| (&**p, &**v))
    }

    /// A copy of the current session (D8: always the latest value).
    #[must_use]
    pub fn session(&self) -> Option<U>
    where
        U: Clone,
    {
        self.session.get()
    }

    /// Whether a session is present.
    #[must_use]
    pub fn has_session(&self) -> bool {
        self.session.is_present()
    }

    /// Sets the session; the auth gate and handlers see it from the next read on.
    pub fn set_session(&self, session: U) {
        self.session.set(session);
    }

    /// Clears the session.
    pub fn clear_session(&self) {
        self.session.clear();
    }

    /// Whether the application runs in development mode (internal error text reaches clients as `debug`).
    #[must_use]
    pub fn dev_mode(&self) -> bool {
        self.rt.config().dev_mode
    }
}
