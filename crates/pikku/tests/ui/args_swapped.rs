// The channel comes before the context: a handler takes `(ctx, channel)`.
use pikku::prelude::*;

async fn hello(_ch: Channel<Params, ()>, _ctx: Ctx<(), ()>) -> &'static str {
    "hello"
}

fn main() {
    let _ = ChannelRoute::new("events", "/events").on_connect(hello);
}
