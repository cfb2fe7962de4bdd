// The message comes before the channel: a message handler takes `(ctx, channel, input)`.
use pikku::prelude::*;

async fn echo(_ctx: Ctx<(), ()>, text: String, _ch: Channel<Params, ()>) -> String {
    text
}

fn main() {
    let _ = ChannelRoute::new("events", "/events").route("action", "echo", echo);
}
