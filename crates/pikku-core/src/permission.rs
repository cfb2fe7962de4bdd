//! Permissions: checks over the session and a message's validated input that decide whether its handler runs.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::ChannelError;
use crate::future::BoxFuture;

/// What a permission check sees: the context (with the session) and the raw, already validated input.
///
/// ```
/// use pikku::{ChannelError, PermissionCtx};
///
/// #[derive(Clone)]
/// struct User { id: String, admin: bool }
///
/// // Users may edit their own items; admins may edit any.
/// async fn owner_or_admin(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
///     let Some(user) = p.session() else { return Ok(false) };
///     let owner = p.input().get("ownerId").and_then(|v| v.as_str());
///     Ok(user.admin || owner == Some(user.id.as_str()))
/// }
/// ```
pub struct PermissionCtx<S, U> {
    ctx: Ctx<S, U>,
    input: Arc<Value>,
}

impl<S, U> fmt::Debug for PermissionCtx<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermissionCtx")
            .field("ctx", &self.ctx)
            .field("input", &self.input)
            .finish()
    }
}

impl<S, U> PermissionCtx<S, U> {
    pub(crate) fn new(ctx: Ctx<S, U>, input: Arc<Value>) -> Self {
        Self { ctx, input }
    }

    /// The handler context: services, session, hub, matched route.
    ///
    /// ```
    /// use pikku::{ChannelError, PermissionCtx};
    ///
    /// struct Services { banned: Vec<String> }
    ///
    /// async fn not_banned(p: PermissionCtx<Services, String>) -> Result<bool, ChannelError> {
    ///     Ok(p.session().is_some_and(|user| !p.ctx().state().banned.contains(&user)))
    /// }
    /// ```
    #[must_use]
    pub fn ctx(&self) -> &Ctx<S, U> {
        &self.ctx
    }

    /// A copy of the current session, `None` when there is none (shorthand for `ctx().session()`; shown in the
    /// type-level example).
    #[must_use]
    pub fn session(&self) -> Option<U>
    where
        U: Clone,
    {
        self.ctx.session()
    }

    /// The message input as JSON (without the routing member of a routed message). It has already passed the
    /// handler's input validation, so reading the members the handler's type requires is safe. Shown in the
    /// type-level example.
    #[must_use]
    pub fn input(&self) -> &Value {
        &self.input
    }
}

pub(crate) type ErasedPermission<S, U> =
    Arc<dyn Fn(PermissionCtx<S, U>) -> BoxFuture<Result<bool, ChannelError>> + Send + Sync>;

/// A permission: `async fn(PermissionCtx<S, U>) -> Result<bool, ChannelError>`. `Ok(false)` is a
/// `ForbiddenError` `Permission denied`; an `Err` is sent as is.
///
/// Implemented for every such function or closure. Register it on a channel
/// ([`ChannelRoute::permission`](crate::ChannelRoute::permission): every route must pass it) or a route
/// ([`Route::permission`](crate::Route::permission), [`Route::permission_group`](crate::Route::permission_group)).
/// Permissions run after input validation, inside the middleware. You do not implement this trait yourself.
///
/// ```
/// use pikku::{Channel, ChannelError, ChannelRoute, Ctx, Params, PermissionCtx, Route};
///
/// #[derive(Clone)]
/// struct User { admin: bool }
///
/// async fn admin_only(p: PermissionCtx<(), User>) -> Result<bool, ChannelError> {
///     Ok(p.session().is_some_and(|u| u.admin))
/// }
/// async fn shutdown(_ctx: Ctx<(), User>, _ch: Channel<Params, ()>, _in: ()) {}
///
/// let channel = ChannelRoute::new("admin", "/admin")
///     .route("action", "shutdown", Route::new(shutdown).permission(admin_only));
/// # let _ = channel;
/// ```
pub trait Permission<S, U>: Send + Sync + 'static {
    /// Erases the permission for storage.
    #[doc(hidden)]
    fn erase(self) -> ErasedPermission<S, U>;
}

impl<F, Fut, S, U> Permission<S, U> for F
where
    F: Fn(PermissionCtx<S, U>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, ChannelError>> + Send + 'static,
{
    fn erase(self) -> ErasedPermission<S, U> {
        Arc::new(move |p| Box::pin(self(p)))
    }
}

/// The permissions of one route, as stored (an implementation detail of the handler traits).
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct PermissionPlan<S, U> {
    /// Channel permissions: all must pass.
    pub(crate) all: Vec<ErasedPermission<S, U>>,
    /// Route groups: every check of at least one group must pass (no groups: allowed).
    pub(crate) any_group: Vec<Vec<ErasedPermission<S, U>>>,
}

/// Runs a route's permissions: every channel check, then at least one route group.
pub(crate) async fn check_permissions<S, U>(
    plan: &PermissionPlan<S, U>,
    ctx: &Ctx<S, U>,
    input: Arc<Value>,
) -> Result<(), ChannelError> {
    let denied = || ChannelError::forbidden("Permission denied");
    for check in &plan.all {
        if !check(PermissionCtx::new(ctx.clone(), input.clone())).await? {
            return Err(denied());
        }
    }
    if plan.any_group.is_empty() {
        return Ok(());
    }
    let mut first_error = None;
    'groups: for group in &plan.any_group {
        for check in group {
            match check(PermissionCtx::new(ctx.clone(), input.clone())).await {
                Ok(true) => {}
                Ok(false) => continue 'groups,
                Err(err) => {
                    first_error.get_or_insert(err);
                    continue 'groups;
                }
            }
        }
        return Ok(());
    }
    Err(first_error.unwrap_or_else(denied))
}
