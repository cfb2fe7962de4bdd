// Every handler form the hints must leave alone: async fns and closures of each kind, routes, inferred types, and
// generic code that forwards a handler.
use std::sync::Arc;

use pikku::core::handler::{ConnectHandler, MessageHandler};
use pikku::core::wiring::IntoRoute;
use pikku::prelude::*;
use pikku::{Json, RateLimit};

#[derive(serde::Deserialize)]
struct Room {
    #[serde(rename = "roomId")]
    room_id: String,
}

#[derive(serde::Deserialize)]
struct Say {
    text: String,
}

#[derive(serde::Serialize)]
struct Said {
    text: String,
}

async fn joined(_ctx: Ctx<(), String>, ch: Channel<Room, String, u32>) -> Result<(), ChannelError> {
    ch.set_socket_state(0);
    ch.send(format!("welcome to {}", ch.opening_data().room_id))?;
    Ok(())
}

async fn say(_ctx: Ctx<(), String>, _ch: Channel<Room, (), u32>, input: Say) -> Json<Said> {
    Json(Said { text: input.text })
}

async fn shout(
    _ctx: Ctx<(), String>,
    _ch: Channel<Room, (), u32>,
    input: Say,
) -> Result<Said, ChannelError> {
    Ok(Said {
        text: input.text.to_uppercase(),
    })
}

async fn anything(
    _ctx: Ctx<(), String>,
    _ch: Channel<Room, (), u32>,
    input: serde_json::Value,
) -> serde_json::Value {
    input
}

async fn upload(_ctx: Ctx<(), String>, _ch: Channel<Room, (), u32>, bytes: Bytes) -> Vec<u8> {
    bytes.to_vec()
}

async fn left(_ctx: Ctx<(), String>, ch: ClosedChannel<Room, u32>) -> Result<(), ChannelError> {
    let _ = (
        ch.opening_data().room_id.as_str(),
        ch.socket_state(),
        ch.reason(),
    );
    Ok(())
}

// Generic code that passes handlers on, bounded by the public handler traits only.
fn with_connect<H, M>(
    channel: ChannelRoute<(), (), Params>,
    handler: H,
) -> ChannelRoute<(), (), Params>
where
    H: ConnectHandler<(), (), Params, (), M>,
{
    channel.on_connect(handler)
}

fn with_route<R, M>(
    channel: ChannelRoute<(), (), Params>,
    value: &str,
    route: R,
) -> ChannelRoute<(), (), Params>
where
    R: IntoRoute<(), (), Params, (), M>,
{
    channel.route("action", value, route)
}

fn as_route<H, M>(handler: H) -> Route<(), (), Params, ()>
where
    H: MessageHandler<(), (), Params, (), M>,
{
    Route::new(handler).auth(false)
}

async fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str {
    "pong"
}

fn main() {
    let greeting = Arc::new(String::from("hello"));
    let rooms = ChannelRoute::new("rooms", "/rooms/:roomId")
        .on_connect(joined)
        .route("action", "say", say)
        .route(
            "action",
            "shout",
            Route::new(shout).rate_limit(RateLimit::per_second(5)),
        )
        .on_message(anything)
        .on_binary(upload)
        .on_disconnect(left)
        .route(
            "type",
            "hello",
            move |_ctx: Ctx<(), String>, _ch: Channel<Room, (), u32>, _in: ()| {
                let greeting = greeting.clone();
                async move { greeting.to_string() }
            },
        );
    let _ = App::new(()).channel(rooms);

    // The types of an unannotated closure come from the app it is added to.
    let _ = App::<(), ()>::new(()).channel(
        ChannelRoute::new("echo", "/echo")
            .auth(false)
            .on_connect(|_ctx, _ch: Channel<Params, ()>| async { "hello" })
            .on_disconnect(|_ctx, _ch: ClosedChannel<Params>| async {}),
    );

    let forwarded = with_connect(
        ChannelRoute::new("fwd", "/fwd"),
        |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>| async {},
    );
    let forwarded = with_route(forwarded, "ping", ping);
    let forwarded = with_route(forwarded, "open-ping", as_route(ping));
    let _ = App::new(()).channel(forwarded);
}
