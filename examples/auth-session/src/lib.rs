//! Authentication and live sessions on a pikku channel, end to end.
//!
//! # The channel
//! One channel, `account`, at `/account`. Its `auth` stays at the default (true): a message needs a session
//! unless its route says `auth(false)`. There are two ways to get a session:
//!
//! - **At the upgrade**: `Authorization: Bearer <token>` is checked by upgrade middleware, which seeds the
//!   session. No header gives an anonymous connection; an unknown token or another scheme is refused with
//!   HTTP 401 `{"name":"UnauthorizedError","message":"Invalid token","errorId":…}`.
//! - **Later, with a message**: `login` takes a token and sets the session; it applies from the next message
//!   on (the session is live). `logout` clears it.
//!
//! The demo tokens ([`Services::demo`]) are `alice-token` (user `alice`, a member) and `root-token` (user
//! `root`, an admin). Messages are routed by `action`:
//!
//! | client sends | needs | reply |
//! |---|---|---|
//! | *(connect)* | — | `{"type":"welcome","user":null}` or `{"type":"welcome","user":{"userId":…,"role":…}}` |
//! | `{"action":"login","token":"alice-token"}` | — | `{"action":"login","userId":"alice","role":"member"}` |
//! | `{"action":"logout"}` | — | `{"action":"logout"}` |
//! | `{"action":"me"}` | a session | `{"action":"me","userId":"alice","role":"member"}` |
//! | `{"action":"admin/stats"}` | a session and the admin role | `{"action":"admin/stats","openConnections":1}` |
//!
//! Without a session, `me` gets
//! `{"action":"me","error":"Unauthorized for route 'action:me'","errorName":"UnauthorizedError"}`; a member
//! asking for `admin/stats` gets `{"action":"admin/stats","error":"Permission denied","errorName":"ForbiddenError"}`;
//! a `login` with an unknown token gets `{"action":"login","error":"Invalid token","errorName":"UnauthorizedError"}`
//! and keeps its session, if it had one.
//!
//! Every message that passes the auth gate is logged by a global middleware with its route and user id, and each
//! disconnection is logged with the connection's final session.

use std::collections::HashMap;

use pikku::prelude::*;
use pikku::{MiddlewareCtx, Next, PermissionCtx, Reply, UpgradeRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read their own account.
    Member,
    /// May also read the server statistics.
    Admin,
}

/// The session: who is signed in on a connection. Serialized as `{"userId":"alice","role":"member"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
}

/// The app's services: the table of valid tokens (in memory; a real app would ask its auth service).
#[derive(Debug, Clone, Default)]
pub struct Services {
    tokens: HashMap<String, User>,
}

impl Services {
    /// The demo tokens: `alice-token` for `alice` (member) and `root-token` for `root` (admin).
    #[must_use]
    pub fn demo() -> Self {
        let user = |user_id: &str, role| User {
            user_id: user_id.to_owned(),
            role,
        };
        let tokens = [
            ("alice-token", user("alice", Role::Member)),
            ("root-token", user("root", Role::Admin)),
        ];
        Self {
            tokens: tokens.into_iter().map(|(t, u)| (t.to_owned(), u)).collect(),
        }
    }

    /// The user a token belongs to, if it is valid.
    #[must_use]
    pub fn user_for(&self, token: &str) -> Option<User> {
        self.tokens.get(token).cloned()
    }
}

/// The handler context of this app.
pub type AccountCtx = Ctx<Services, User>;
/// The channel handle its handlers receive (plain opening data, replies only).
pub type AccountChannel = Channel<Params, ()>;

/// The token of an `Authorization` header value `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
#[must_use]
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn invalid_token() -> ChannelError {
    ChannelError::unauthorized("Invalid token")
}

/// Upgrade middleware: no `Authorization` header is an anonymous connection; a valid bearer token seeds the
/// session; anything else refuses the upgrade with 401 (the error's status and a JSON body).
async fn bearer(req: UpgradeRequest<Services, User>) -> Result<(), ChannelError> {
    let Some(header) = req.headers().get("authorization") else {
        return Ok(());
    };
    let user = header
        .to_str()
        .ok()
        .and_then(bearer_token)
        .and_then(|token| req.state().user_for(token))
        .ok_or_else(invalid_token)?;
    req.set_session(user);
    Ok(())
}

/// Global message middleware: logs every message that passed the auth gate, with the sender's user id.
async fn log_messages(
    mw: MiddlewareCtx<Services, User>,
    next: Next<Services, User>,
) -> Result<Reply, ChannelError> {
    let ctx = mw.ctx();
    // Read before the handler runs: the user who sent the message (`login` changes it).
    let user = ctx.session().map(|u| u.user_id);
    let reply = next.run().await;
    tracing::info!(
        channel_id = ctx.channel_id(),
        route = ctx.route().map_or("(default)", |(_, value)| value),
        user_id = user.as_deref().unwrap_or("anonymous"),
        ok = reply.is_ok(),
        "message"
    );
    reply
}

/// onConnect (never gated): tells the client who it is, as seeded by the upgrade middleware.
async fn on_connect(ctx: AccountCtx, _channel: AccountChannel) -> Value {
    json!({ "type": "welcome", "user": ctx.session() })
}

/// Input of `login`.
#[derive(Debug, Deserialize)]
pub struct Login {
    /// A token, as in `Authorization: Bearer <token>`.
    pub token: String,
}

/// `login` (no session needed): sets the session, which the very next message sees.
async fn login(
    ctx: AccountCtx,
    _channel: AccountChannel,
    input: Login,
) -> Result<User, ChannelError> {
    let user = ctx
        .state()
        .user_for(&input.token)
        .ok_or_else(invalid_token)?;
    ctx.set_session(user.clone());
    Ok(user)
}

/// `logout` (no session needed, so it always succeeds): clears the session. No result: `{"action":"logout"}`.
async fn logout(ctx: AccountCtx, _channel: AccountChannel, _: ()) {
    ctx.clear_session();
}

/// `me` (the channel's default auth): the auth gate admits it only with a session, so this is `Some`.
async fn me(ctx: AccountCtx, _channel: AccountChannel, _: ()) -> Option<User> {
    ctx.session()
}

/// The route permission of `admin/stats`. `Ok(false)` is a `ForbiddenError` `Permission denied`.
async fn is_admin(check: PermissionCtx<Services, User>) -> Result<bool, ChannelError> {
    Ok(check.session().is_some_and(|user| user.role == Role::Admin))
}

/// `admin/stats` (admins only): how many connections this server has open.
async fn stats(ctx: AccountCtx, _channel: AccountChannel, _: ()) -> Value {
    json!({ "openConnections": ctx.hub().registry().len() })
}

/// onDisconnect: logs the connection's final session (whatever `login`/`logout` left there).
async fn on_disconnect(ctx: AccountCtx, channel: ClosedChannel<Params>) {
    tracing::info!(
        channel_id = channel.channel_id(),
        reason = %channel.reason(),
        session = ?ctx.session(),
        "disconnected"
    );
}

/// The `account` channel at `/account`.
pub fn account_channel() -> ChannelRoute<Services, User> {
    ChannelRoute::new("account", "/account")
        .upgrade_middleware(bearer)
        .on_connect(on_connect)
        .route("action", "login", Route::new(login).auth(false))
        .route("action", "logout", Route::new(logout).auth(false))
        .route("action", "me", me)
        .route(
            "action",
            "admin/stats",
            Route::new(stats).permission(is_admin),
        )
        .on_disconnect(on_disconnect)
}

/// The application, with the demo tokens of [`Services::demo`].
pub fn app() -> App<Services, User> {
    App::new(Services::demo())
        .middleware(log_messages)
        .channel(account_channel())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn users_serialize_as_the_client_reads_them() {
        let alice = Services::demo().user_for("alice-token").unwrap();
        assert_eq!(
            serde_json::to_value(alice).unwrap(),
            json!({"userId": "alice", "role": "member"})
        );
        assert_eq!(Services::demo().user_for("nope"), None);
    }
}
