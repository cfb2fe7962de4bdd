// Closures with the wrong number of parameters: a connection handler takes (ctx, channel), a message handler
// (ctx, channel, input).
use pikku::prelude::*;

fn main() {
    let _ =
        ChannelRoute::new("events", "/events").on_connect(|_ctx: Ctx<(), ()>| async { "hello" });
    let _ = ChannelRoute::new("events", "/events").route(
        "action",
        "ping",
        |_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>| async { "pong" },
    );
}
