//! The bench contract built on the framework: one app, served by `bench-server` (embedded) and by
//! `pushpin-worker` (statelessly behind Pushpin).

use pikku::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

/// The bench channel's handle: no opening data, nothing sent outside replies.
type Bench = Channel<Params, ()>;

async fn echo(_ctx: Ctx<(), ()>, _ch: Bench, input: Value) -> Value {
    input
}

#[derive(Deserialize)]
struct Sub {
    topic: String,
}

async fn sub(ctx: Ctx<(), ()>, ch: Bench, input: Sub) -> Result<(), ChannelError> {
    ctx.hub().subscribe(&input.topic, ch.channel_id()).await?;
    Ok(())
}

#[derive(Deserialize)]
struct Pub {
    topic: String,
    #[serde(default)]
    t: Value,
}

async fn publish(ctx: Ctx<(), ()>, ch: Bench, input: Pub) -> Result<(), ChannelError> {
    let event = json!({ "topic": input.topic, "data": { "t": input.t } });
    ctx.hub()
        .publish(&input.topic, Some(ch.channel_id()), &event)
        .await?;
    Ok(())
}

/// The bench contract as an app (see `bench-server`'s docs).
pub fn app() -> App<(), ()> {
    App::new(()).channel(
        ChannelRoute::new("bench", "/bench")
            .auth(false)
            .route("action", "echo", echo)
            .route("action", "sub", sub)
            .route("action", "pub", publish),
    )
}
