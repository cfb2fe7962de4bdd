//! A small real-time chat with rooms, built on pikku channels and served next to an HTML page by axum.
//!
//! # The channel
//! One channel, `chat`, at `/rooms/:room`. The optional query parameter `name` picks a nickname
//! (`/rooms/lobby?name=ada`); without one a client is called `guest-` plus four characters of its channel id.
//! Messages are routed by their `action` member:
//!
//! | client sends | effect | reply |
//! |---|---|---|
//! | *(connect)* | joins topic `room:<room>`, tells the others `joined` | `{"type":"welcome","room":…,"name":…,"members":n}` |
//! | `{"action":"say","text":"hi"}` | everyone in the room, sender included, gets `message` | `{"action":"say"}` |
//! | `{"action":"rename","name":"bob"}` | everyone in the room gets `renamed` | `{"action":"rename","name":"bob"}` |
//! | *(disconnect)* | the others get `left` | — |
//!
//! Each connection may send at most [`SAY_LIMIT`] messages (5 a second, bursts of 10) and [`CHANNEL_LIMIT`]
//! other messages; a client over a limit gets
//! `{"action":"say","error":"Rate limit exceeded","errorName":"TooManyRequestsError"}`, and one that keeps going
//! is closed with 1008 `rate limit exceeded`, so a single client cannot flood a room.
//!
//! # Names from a subprotocol token
//! Browsers cannot set headers on a WebSocket, so the page carries the nickname as a subprotocol:
//! `new WebSocket(url, ["pikku.v1", "token." + encoded_name])`, the name percent-encoded (see [`token_name`]).
//! The upgrade middleware reads the token and makes it the connection's session, which `onConnect` prefers
//! over `?name=`; the server's [`subprotocols`] callback selects `pikku.v1`, so the page's `ws.protocol` is
//! `pikku.v1` and the token is never echoed. A real application would look the token up and refuse unknown
//! ones; the chat has no accounts, so the token *is* the name.
//!
//! Room events arrive as `{"topic":"room:<room>","data":{"type":…}}` (see [`RoomEvent`]). Invalid input gets
//! the protocol's error frame, e.g. an empty `say`:
//! `{"action":"say","error":"Invalid message data","errorName":"UnprocessableContentError","details":[…]}`.
//!
//! # Serving
//! [`app`] builds the pikku application, [`router`] puts its channels and the page at `/` on one axum router,
//! and [`server_config`] is the configuration the binary serves them with (the subprotocol policy).
//! The binary (`cargo run -p example-chat-rooms`) serves that router on 127.0.0.1:4002.

use axum::response::Html;
use axum::routing::get;
use pikku::prelude::*;
use pikku::server::SubprotocolPolicy;
use pikku::{typed, RateLimit, UpgradeRequest, Valid};
use serde::{Deserialize, Deserializer, Serialize};

/// The rate limit of `say` per connection: a person chats at a few lines a second at most, and every line is
/// sent to the whole room.
pub const SAY_LIMIT: RateLimit = RateLimit::per_second(5)
    .burst(10)
    .bytes_per_second(16 * 1024);

/// The rate limit of every other message of a connection (`rename`, unknown actions).
pub const CHANNEL_LIMIT: RateLimit = RateLimit::per_second(10).burst(20);

/// The page served at `/`: plain HTML and JavaScript, no build step and no external resources.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

/// Longest room name, in characters (a room is a hub topic, and topics are bounded).
pub const MAX_ROOM_CHARS: usize = 64;
/// Longest nickname, in characters. A longer `?name=` is cut; a longer `rename` is refused.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest chat message, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// The services of the chat app: none, everything lives in the event hub and the per-socket state.
pub type Services = ();
/// The session type: the nickname a `token.<name>` subprotocol carried (see [`token_name`]); the chat has no
/// login, so a connection without that token has no session.
pub type Session = String;
/// The handler context of the chat app.
pub type ChatCtx = Ctx<Services, Session>;
/// The channel handle chat handlers receive: opened with a [`Room`], holding a [`Member`] as socket state. Its push
/// type is the [`RoomUpdate`] clients receive unasked; the handlers publish those through the hub rather than
/// sending them directly.
pub type ChatChannel = Channel<Room, RoomUpdate, Member>;

/// The opening data of `/rooms/:room`: the room from the path, the nickname from the query.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct Room {
    /// The room name (1 to [`MAX_ROOM_CHARS`] characters; longer is refused with 422 at the upgrade).
    #[serde(deserialize_with = "room_name")]
    #[schemars(length(min = 1, max = MAX_ROOM_CHARS))]
    pub room: String,
    /// The requested nickname, if any.
    #[serde(default)]
    pub name: Option<String>,
}

fn room_name<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let room = String::deserialize(de)?;
    if room.chars().count() > MAX_ROOM_CHARS {
        return Err(serde::de::Error::custom(format!(
            "room names have at most {MAX_ROOM_CHARS} characters"
        )));
    }
    Ok(room)
}

/// The per-socket state: who this connection is in its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The current nickname.
    pub name: String,
}

/// The connection handler's reply: sent to the joining client only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename = "welcome")]
pub struct Welcome {
    /// The room joined.
    pub room: String,
    /// The nickname given to the client.
    pub name: String,
    /// How many clients are in the room, this one included.
    pub members: usize,
}

/// Something that happened in a room, published to the room's topic as the `data` of
/// `{"topic":"room:<room>","data":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RoomEvent {
    /// Someone joined (sent to everyone else).
    Joined {
        /// Their nickname.
        name: String,
        /// Clients in the room now.
        members: usize,
    },
    /// Someone left (sent to everyone who stays).
    Left {
        /// Their nickname.
        name: String,
        /// Clients in the room now.
        members: usize,
    },
    /// Someone said something (sent to everyone, the sender included).
    Message {
        /// The sender's nickname.
        name: String,
        /// What they said.
        text: String,
    },
    /// Someone changed their nickname (sent to everyone, the renamed client included).
    Renamed {
        /// The old nickname.
        from: String,
        /// The new nickname.
        name: String,
    },
}

/// A room event as subscribers receive it: `{"topic":"room:<room>","data":…}`, the envelope realtime clients
/// expect (the hub adds none of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RoomUpdate {
    /// The room's topic, `room:<room>`.
    pub topic: String,
    /// What happened.
    pub data: RoomEvent,
}

/// Input of the `say` route.
#[derive(Debug, Deserialize, garde::Validate, schemars::JsonSchema)]
pub struct Say {
    /// The message, 1 to [`MAX_TEXT_CHARS`] characters.
    #[garde(length(chars, min = 1, max = MAX_TEXT_CHARS))]
    pub text: String,
}

/// Input of the `rename` route.
#[derive(Debug, Deserialize, garde::Validate, schemars::JsonSchema)]
pub struct Rename {
    /// The new nickname, 1 to [`MAX_NAME_CHARS`] characters, not only spaces.
    #[garde(length(chars, min = 1, max = MAX_NAME_CHARS), custom(not_blank))]
    pub name: String,
}

fn not_blank(value: &str, _ctx: &()) -> garde::Result {
    if value.trim().is_empty() {
        Err(garde::Error::new("must not be blank"))
    } else {
        Ok(())
    }
}

/// The reply to `rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Renamed {
    /// The nickname now in use.
    pub name: String,
}

/// The subprotocol the page speaks, selected by [`subprotocols`].
pub const PROTOCOL: &str = "pikku.v1";
/// The prefix of the subprotocol that carries the nickname: `token.<percent-encoded name>`.
pub const TOKEN_PREFIX: &str = "token.";

/// The nickname in an offered `token.<name>` subprotocol: the first such offer, percent-decoded (a subprotocol
/// allows no spaces or non-ASCII, so the page encodes the name with `encodeURIComponent` and also escapes
/// `(` and `)`), trimmed and cut to [`MAX_NAME_CHARS`]. `None` when no token is offered, or when it is empty or
/// not UTF-8 once decoded.
///
/// ```
/// use example_chat_rooms::token_name;
///
/// assert_eq!(token_name(["pikku.v1", "token.J%C3%BCrgen%20K"]).as_deref(), Some("Jürgen K"));
/// assert_eq!(token_name(["pikku.v1"]), None);
/// ```
#[must_use]
pub fn token_name<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let token = offered
        .into_iter()
        .find_map(|p| p.strip_prefix(TOKEN_PREFIX))?;
    let decoded = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .ok()?;
    let name = decoded.trim();
    (!name.is_empty()).then(|| name.chars().take(MAX_NAME_CHARS).collect())
}

/// Upgrade middleware: a `token.<name>` subprotocol becomes the session, which `onConnect` uses as the name.
async fn session_from_token(req: UpgradeRequest<Services, Session>) -> Result<(), ChannelError> {
    if let Some(name) = token_name(req.subprotocols()) {
        req.set_session(name);
    }
    Ok(())
}

/// The subprotocol policy: select [`PROTOCOL`] when it is offered, nothing when nothing is offered (plain
/// clients and the tests), and refuse with 400 an offer without it, since such a client speaks something else.
/// The token is read by the upgrade middleware, never echoed.
///
/// ```
/// use example_chat_rooms::subprotocols;
/// use pikku::server::SubprotocolPolicy;
///
/// let SubprotocolPolicy::Select(select) = subprotocols() else { unreachable!() };
/// assert_eq!(select(&["pikku.v1", "token.ada"]).unwrap().as_deref(), Some("pikku.v1"));
/// assert_eq!(select(&[]).unwrap(), None);
/// assert_eq!(select(&["graphql-ws"]).unwrap_err().status(), 400);
/// ```
#[must_use]
pub fn subprotocols() -> SubprotocolPolicy {
    SubprotocolPolicy::select(|offered| {
        if offered.is_empty() {
            Ok(None)
        } else if offered.contains(&PROTOCOL) {
            Ok(Some(PROTOCOL.to_owned()))
        } else {
            Err(ChannelError::bad_request("Unsupported subprotocol"))
        }
    })
}

/// The server configuration the binary uses: the defaults plus the [`subprotocols`] policy.
///
/// ```
/// use example_chat_rooms::server_config;
/// use pikku::server::SubprotocolPolicy;
///
/// assert!(matches!(server_config().subprotocols, SubprotocolPolicy::Select(_)));
/// ```
#[must_use]
pub fn server_config() -> ServerConfig {
    ServerConfig {
        subprotocols: subprotocols(),
        ..ServerConfig::default()
    }
}

/// The hub topic of a room.
#[must_use]
pub fn topic(room: &str) -> String {
    format!("room:{room}")
}

/// The nickname a client starts with: the trimmed `?name=` cut to [`MAX_NAME_CHARS`], or `guest-` plus the
/// first four characters of its channel id.
#[must_use]
pub fn initial_name(requested: Option<&str>, channel_id: &str) -> String {
    match requested.map(str::trim).filter(|name| !name.is_empty()) {
        Some(name) => name.chars().take(MAX_NAME_CHARS).collect(),
        None => format!("guest-{}", channel_id.chars().take(4).collect::<String>()),
    }
}

async fn publish(
    ctx: &ChatCtx,
    topic: &str,
    exclude: Option<&str>,
    event: RoomEvent,
) -> Result<usize, ChannelError> {
    let update = RoomUpdate {
        topic: topic.to_owned(),
        data: event,
    };
    Ok(ctx.hub().publish(topic, exclude, &update).await?)
}

fn current_name(channel: &ChatChannel) -> String {
    channel
        .socket_state()
        .map_or_else(|| initial_name(None, channel.channel_id()), |m| m.name)
}

async fn on_connect(ctx: ChatCtx, channel: ChatChannel) -> Result<Welcome, ChannelError> {
    let opening = channel.opening_data();
    let room = opening.room.clone();
    // A name from the subprotocol token wins over `?name=`.
    let requested = ctx.session().or_else(|| opening.name.clone());
    let name = initial_name(requested.as_deref(), channel.channel_id());
    let topic = topic(&room);
    ctx.hub().subscribe(&topic, channel.channel_id()).await?;
    // Set only once subscribed, so onDisconnect announces only members that really joined.
    channel.set_socket_state(Member { name: name.clone() });
    let members = ctx.hub().subscriber_count(&topic);
    let joined = RoomEvent::Joined {
        name: name.clone(),
        members,
    };
    publish(&ctx, &topic, Some(channel.channel_id()), joined).await?;
    tracing::info!(
        room,
        name,
        members,
        channel_id = channel.channel_id(),
        "joined"
    );
    Ok(Welcome {
        room,
        name,
        members,
    })
}

async fn say(
    ctx: ChatCtx,
    channel: ChatChannel,
    Valid(input): Valid<Say>,
) -> Result<(), ChannelError> {
    let room = &channel.opening_data().room;
    let message = RoomEvent::Message {
        name: current_name(&channel),
        text: input.text,
    };
    let delivered = publish(&ctx, &topic(room), None, message).await?;
    tracing::debug!(room, delivered, "message");
    Ok(())
}

async fn rename(
    ctx: ChatCtx,
    channel: ChatChannel,
    Valid(input): Valid<Rename>,
) -> Result<Renamed, ChannelError> {
    let name = input.name.trim().to_owned();
    let fallback = initial_name(None, channel.channel_id());
    let from = channel.update_socket_state(|member| {
        let member = member.get_or_insert(Member { name: fallback });
        std::mem::replace(&mut member.name, name.clone())
    });
    if from != name {
        let room = &channel.opening_data().room;
        tracing::info!(room, from, name, "renamed");
        let renamed = RoomEvent::Renamed {
            from,
            name: name.clone(),
        };
        publish(&ctx, &topic(room), None, renamed).await?;
    }
    Ok(Renamed { name })
}

async fn on_disconnect(
    ctx: ChatCtx,
    channel: ClosedChannel<Room, Member>,
) -> Result<(), ChannelError> {
    // No state: onConnect never finished subscribing, so nobody was told this client joined.
    let Some(Member { name }) = channel.socket_state() else {
        return Ok(());
    };
    let room = &channel.opening_data().room;
    let topic = topic(room);
    // The closed channel's own subscriptions are already gone: the count and the delivery exclude it.
    let members = ctx.hub().subscriber_count(&topic);
    tracing::info!(room, name, members, reason = %channel.reason(), "left");
    publish(&ctx, &topic, None, RoomEvent::Left { name, members }).await?;
    Ok(())
}

/// The `chat` channel at `/rooms/:room`.
pub fn chat_channel() -> ChannelRoute<Services, Session, Room, Member> {
    ChannelRoute::new("chat", "/rooms/:room")
        .auth(false)
        .upgrade_middleware(session_from_token)
        .rate_limit(CHANNEL_LIMIT)
        .on_connect(typed(on_connect))
        .route(
            "action",
            "say",
            Route::new(typed(say)).rate_limit(SAY_LIMIT),
        )
        .route("action", "rename", typed(rename))
        .on_disconnect(typed(on_disconnect))
}

/// The chat application.
pub fn app() -> App<Services, Session> {
    // Every handler is described, so the page's typed client covers the whole channel.
    App::new(()).require_schemas().channel(chat_channel())
}

/// The chat's page at `/`. [`ChannelServer::serve_router`] serves it with the channel's path merged in.
pub fn pages() -> axum::Router {
    axum::Router::new().route("/", get(|| async { Html(INDEX_HTML) }))
}

/// The page and the channel's path (`/rooms/:room`) in one axum router, for serving it some other way (plain
/// `axum::serve`, say); every other path is a 404.
///
/// Must be called inside a Tokio runtime (the channel service starts its heartbeat sweep).
pub fn router(server: &ChannelServer<Services, Session>) -> axum::Router {
    pages().merge(server.router())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_names() {
        assert_eq!(initial_name(Some(" ada "), "abcdef"), "ada");
        assert_eq!(initial_name(Some("   "), "abcdef"), "guest-abcd");
        assert_eq!(initial_name(None, "ab"), "guest-ab");
        let long = "x".repeat(40);
        assert_eq!(initial_name(Some(&long), "id").len(), MAX_NAME_CHARS);
    }

    #[test]
    fn token_names() {
        assert_eq!(token_name(["token.ada"]).as_deref(), Some("ada"));
        assert_eq!(
            token_name(["pikku.v1", "token.%20bob%20", "token.cy"]).as_deref(),
            Some("bob")
        );
        assert_eq!(token_name(["token.%20"]), None);
        assert_eq!(token_name(["token.%FF"]), None);
        assert_eq!(token_name(["tokens"]), None);
        let long = format!("token.{}", "y".repeat(40));
        assert_eq!(
            token_name([long.as_str()]).map(|n| n.len()),
            Some(MAX_NAME_CHARS)
        );
    }

    #[test]
    fn events_serialize_as_the_page_expects() {
        let event = RoomEvent::Message {
            name: "ada".into(),
            text: "hi".into(),
        };
        let envelope = RoomUpdate {
            topic: "room:lobby".into(),
            data: event,
        };
        assert_eq!(
            serde_json::to_value(&envelope).unwrap(),
            serde_json::json!({"topic":"room:lobby","data":{"type":"message","name":"ada","text":"hi"}})
        );
        let welcome = Welcome {
            room: "lobby".into(),
            name: "ada".into(),
            members: 2,
        };
        assert_eq!(
            serde_json::to_value(&welcome).unwrap(),
            serde_json::json!({"type":"welcome","room":"lobby","name":"ada","members":2})
        );
    }
}
