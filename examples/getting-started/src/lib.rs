//! Room chat: a channel at `/rooms/{room}` next to an HTTP route, with sign-in at the upgrade, a routed action
//! and publish-with-exclude. The app of `docs/getting-started.md`.
use pikku::prelude::*;
use pikku::UpgradeRequest;
use serde::Deserialize;

/// Opening data: the room from the path (`?token=` is in the query, and ignored here).
#[derive(Deserialize)]
struct Room {
    room: String,
}

/// `{"action":"say","text":"hi"}`.
#[derive(Deserialize)]
struct Say {
    text: String,
}

/// Sign-in at the upgrade: `?token=ann-secret` signs in `ann`; any other token is refused with a 401.
async fn sign_in(req: UpgradeRequest<(), String>) -> Result<(), ChannelError> {
    let token = req.params().get("token").map_or("", String::as_str);
    let name = token
        .strip_suffix("-secret")
        .filter(|name| !name.is_empty());
    req.set_session(
        name.ok_or_else(|| ChannelError::unauthorized("Invalid token"))?
            .to_owned(),
    );
    Ok(())
}

/// On connect: join the room's topic.
async fn join(ctx: Ctx<(), String>, channel: Channel<Room, ()>) -> Result<(), ChannelError> {
    ctx.hub()
        .subscribe(&channel.opening_data().room, channel.channel_id())
        .await?;
    Ok(())
}

/// Everyone else in the room gets `{"from":"ann","text":"hi"}`; the sender gets `{"action":"say"}`.
async fn say(
    ctx: Ctx<(), String>,
    channel: Channel<Room, ()>,
    say: Say,
) -> Result<(), ChannelError> {
    let message = serde_json::json!({ "from": ctx.session(), "text": say.text });
    let room = &channel.opening_data().room;
    ctx.hub()
        .publish(room, Some(channel.channel_id()), &message)
        .await?;
    Ok(())
}

/// The channels.
pub fn app() -> App<(), String> {
    let rooms = ChannelRoute::new("rooms", "/rooms/{room}").upgrade_middleware(sign_in);
    App::new(()).channel(rooms.on_connect(join).route("action", "say", say))
}

/// The app's own HTTP routes; `serve_router` adds the channel's path to them.
pub fn pages() -> axum::Router {
    axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }))
}
